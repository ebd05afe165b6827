//! The main job on an embedded default — no configuration needed:
//!
//! ```text
//! cargo run --release --example quickstart [-- SOURCE_DIR]
//! ```
//!
//! It backs up a real directory tree (default: this repository's `crates/` directory) under the
//! archive root `wst/`, encrypted with a freshly generated key, to two local sinks standing for
//! the doctrine's C: disk and D: mirror; verifies the artifact (doctrine 026 R5); restores it into
//! an isolated scratch directory; and compares the restored tree with the source byte for byte.
//! Everything lands in a new directory under the system temp directory, printed at the end.
//! Exit status: 0 when every step passed, 1 otherwise.

use std::collections::BTreeMap;
use std::fs;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use wst::core::{
    ArtifactVerifier, BackupJob, Cipher, FileTreeSource, Progress, RestoreOptions, Sink, Stage,
    restore,
};
use wst::crypto::{AeadCipher, Key};
use wst::objstore::LocalDiskSink;

/// Draws the archive progress as a bar on a terminal.
#[derive(Debug)]
struct Bar(indicatif::ProgressBar);

impl Progress for Bar {
    fn stage(&self, stage: Stage) {
        self.0.set_message(format!("{stage:?}").to_lowercase());
        if stage == Stage::Done {
            self.0.finish_and_clear();
        }
    }
    fn bytes(&self, n: u64) {
        self.0.inc(n);
    }
}

fn tree_size(root: &Path) -> u64 {
    walkdir::WalkDir::new(root)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// Path → (kind, content SHA-256 or link target, mode) for a byte-for-byte comparison.
fn fingerprint(root: &Path) -> std::io::Result<BTreeMap<PathBuf, (String, String, u32)>> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(root).follow_links(false).min_depth(1) {
        let e = e?;
        let rel = e.path().strip_prefix(root).unwrap_or(e.path()).to_path_buf();
        let md = e.path().symlink_metadata()?;
        #[cfg(unix)]
        let mode = std::os::unix::fs::PermissionsExt::mode(&md.permissions()) & 0o7777;
        #[cfg(not(unix))]
        let mode = u32::from(md.permissions().readonly());
        let entry = if md.file_type().is_symlink() {
            ("symlink".into(), fs::read_link(e.path())?.display().to_string(), 0)
        } else if md.is_dir() {
            ("dir".into(), String::new(), mode)
        } else {
            let mut h = Sha256::new();
            let mut f = fs::File::open(e.path())?;
            let mut buf = vec![0; 1 << 20];
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            ("file".into(), hex::encode(h.finalize()), mode)
        };
        out.insert(rel, entry);
    }
    Ok(out)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run().await {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(1),
        Err(e) => {
            eprintln!("quickstart failed: {e}");
            std::process::ExitCode::from(1)
        }
    }
}

async fn run() -> Result<bool, Box<dyn std::error::Error>> {
    let source = std::env::args_os().nth(1).map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("crates"),
        PathBuf::from,
    );
    let stamp = jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S").to_string();
    let work = std::env::temp_dir().join(format!("wst-quickstart-{stamp}"));
    let keys = work.join("keys");
    fs::create_dir_all(&keys)?;
    println!("wst quickstart — working directory {}", work.display());
    println!("source tree:      {} → archive root wst/", source.display());

    // The key lives apart from the backups (doctrine: "keys kept apart from backups").
    let key_file = keys.join("backup.key");
    let key = Key::generate()?;
    println!("encryption key:   {} (fingerprint {})", key_file.display(), key.fingerprint());
    key.write_to(&key_file)?;
    let cipher: Arc<dyn Cipher> = Arc::new(AeadCipher::from_key_file(&key_file)?);

    let c: Arc<dyn Sink> = Arc::new(
        LocalDiskSink::builder("local-c", work.join("C"))
            .create_dir(true)
            .open()
            .await?,
    );
    let d: Arc<dyn Sink> = Arc::new(
        LocalDiskSink::builder("mirror-d", work.join("D"))
            .create_dir(true)
            .open()
            .await?,
    );
    let mut builder = BackupJob::builder(Arc::clone(&cipher))
        .source(Arc::new(FileTreeSource::new(&source, "wst")?))
        .sink(Arc::clone(&c))
        .sink(Arc::clone(&d))
        .verifier(ArtifactVerifier::new().require("wst/"));
    if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(tree_size(&source));
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg:>10} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec}",
            )?
            .progress_chars("=> "),
        );
        builder = builder.progress(Arc::new(Bar(bar)));
    }
    let report = builder.build()?.run().await?;

    println!("\n== backup {} ({:?})", report.artifact, report.outcome);
    println!(
        "   {} entries, {} bytes read, {} bytes stored (ratio {:.2}), {:.2} s",
        report.entries,
        report.bytes_read,
        report.ciphertext_bytes,
        report.compression_ratio,
        report.duration_seconds
    );
    for s in &report.sinks {
        println!(
            "   sink {:<9} {:<5} {} {}",
            s.sink,
            if s.written { "ok" } else { "FAIL" },
            s.bytes,
            s.error.as_deref().unwrap_or("")
        );
    }
    for w in &report.warnings {
        println!("   warning: {w}");
    }
    let verification = report.verification.as_ref().ok_or("no verification")?;
    println!("\n== verification (doctrine R5) on {}", verification.sink);
    for check in &verification.checks {
        println!(
            "   [{}] {:<28} {}",
            if check.passed { "PASS" } else { "FAIL" },
            check.name,
            check.detail
        );
    }

    println!("\n== isolated restore from the D: mirror");
    let target = work.join("restore");
    let rr = restore(
        &*d,
        &report.artifact,
        &*cipher,
        &RestoreOptions::isolated(&target).protect([source.clone()]),
    )
    .await?;
    println!(
        "   {} entries, {} bytes into {} in {:.2} s (RTO of this tree)",
        rr.entries,
        rr.bytes,
        target.display(),
        rr.duration_seconds
    );
    let same = fingerprint(&source)? == fingerprint(&target.join("wst"))?;
    println!(
        "   [{}] restored tree equals the source byte for byte",
        if same { "PASS" } else { "FAIL" }
    );

    let ok = report.is_success() && verification.passed() && same;
    println!(
        "\nRESULT: {}\nartifacts: {} and {}\nrun report: {}",
        if ok { "PASS" } else { "FAIL" },
        work.join("C").display(),
        work.join("D").display(),
        work.join("run-report.json").display()
    );
    fs::write(work.join("run-report.json"), serde_json::to_vec_pretty(&report)?)?;
    Ok(ok)
}
