//! The main job on an embedded default — no configuration needed:
//!
//! ```text
//! cargo run --release --example quickstart [-- SOURCE_DIR]
//! ```
//!
//! It runs the whole doctrine cycle on real parts:
//! 1. starts a throwaway `PostgreSQL` cluster from the system's binaries (initdb in a temporary
//!    directory, loopback port; as root it runs as the `postgres` user) and loads real data:
//!    pgbench at scale 5 plus schemas with `bytea`, `jsonb`, arrays, unicode names, large
//!    objects, a view, a sequence and functions. Without the binaries it says how to install
//!    them and continues with the file trees only;
//! 2. takes real directory trees as the file sources (default: this repository's `crates/` as
//!    `wst/` and `examples/` as `wst-api/`, or `SOURCE_DIR` as `wst/`);
//! 3. generates an encryption key kept apart from the backups;
//! 4. backs up files + database to two local sinks (the doctrine's C: disk and D: mirror) and
//!    verifies the artifact (doctrine 026 R5, including `pg_restore --list`);
//! 5. runs a restore drill (R7): files into an isolated directory, the dump into a scratch
//!    database proven against the manifest's row counts and schema fingerprint, RTO and RPO
//!    measured, the seeds/002 restore test report printed;
//! 6. restores the artifact from the mirror and compares the trees byte for byte;
//! 7. prints the compliance status (R1, R3, R4, R5, R7, audit trail) — the quickstart has no
//!    offsite sink, so R3 (3-2-1) is reported as failing, as it would be in production.
//!
//! Everything lands in a new directory under the system temp directory, printed at the end.
//! Exit status: 0 when backup, verification, drill and restore passed; 1 otherwise.

use std::collections::BTreeMap;
use std::fs;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use wst::core::{
    ArtifactVerifier, AuditLog, Cipher, ComplianceOptions, DrillOptions, EntryRestorer,
    FileTreeSource, Repository, RestoreOptions, Sink, Source,
};
use wst::crypto::{AeadCipher, Key};
use wst::objstore::LocalDiskSink;
use wst::pg::{PgDrillRestorer, PgDumpSource, PgRestoreListCheck, TestCluster};

// The operator binary's progress bar, shared rather than copied.
#[path = "../crates/wst-cli/src/progress.rs"]
mod progress;
use progress::Bar;

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
        let rel = e
            .path()
            .strip_prefix(root)
            .unwrap_or(e.path())
            .to_path_buf();
        let md = e.path().symlink_metadata()?;
        #[cfg(unix)]
        let mode = std::os::unix::fs::PermissionsExt::mode(&md.permissions()) & 0o7777;
        #[cfg(not(unix))]
        let mode = u32::from(md.permissions().readonly());
        let entry = if md.file_type().is_symlink() {
            (
                "symlink".into(),
                fs::read_link(e.path())?.display().to_string(),
                0,
            )
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
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
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

/// Starts the throwaway cluster with demo data, or explains how to get the binaries.
fn start_database() -> Option<TestCluster> {
    let cluster = match TestCluster::start() {
        Ok(c) => c,
        Err(e) => {
            println!(
                "database:         NOT RUN — {e}\n                  \
                 install PostgreSQL's server binaries (Debian/Ubuntu: `apt-get install postgresql`) \
                 and run again; continuing with the file trees only"
            );
            return None;
        }
    };
    let loaded = cluster
        .create_database("wst_dev")
        .and_then(|()| cluster.load_demo("wst_dev", 5));
    match loaded {
        Ok(()) => Some(cluster),
        Err(e) => {
            println!("database:         NOT RUN — loading the demo data failed: {e}");
            None
        }
    }
}

async fn run() -> Result<bool, Box<dyn std::error::Error>> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let trees: Vec<(PathBuf, &str)> = match std::env::args_os().nth(1) {
        Some(dir) => vec![(PathBuf::from(dir), "wst")],
        None => vec![
            (repo.join("crates"), "wst"),
            (repo.join("examples"), "wst-api"),
        ],
    };
    let stamp = jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S").to_string();
    let work = std::env::temp_dir().join(format!("wst-quickstart-{stamp}"));
    let keys = work.join("keys");
    fs::create_dir_all(&keys)?;
    println!("wst quickstart — working directory {}", work.display());
    for (path, root) in &trees {
        println!(
            "file source:      {} → archive root {root}/",
            path.display()
        );
    }
    let cluster = start_database();
    if let Some(c) = &cluster {
        println!(
            "database:         wst_dev on a throwaway PostgreSQL at 127.0.0.1:{} (pgbench scale 5 + demo schemas)",
            c.port()
        );
    }

    // The key lives apart from the backups (doctrine: "keys kept apart from backups").
    let key_file = keys.join("backup.key");
    let key = Key::generate()?;
    println!(
        "encryption key:   {} (fingerprint {})",
        key_file.display(),
        key.fingerprint()
    );
    key.write_to(&key_file)?;
    let cipher: Arc<dyn Cipher> = Arc::new(AeadCipher::from_key_file(&key_file)?);
    let audit = AuditLog::new(work.join("audit.jsonl"), "quickstart");

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
    let entry = wst::pg::DEFAULT_ENTRY;
    let mut verifier = ArtifactVerifier::new();
    for (_, root) in &trees {
        verifier = verifier.require(format!("{root}/"));
    }
    // The repository owns the artifacts on both disks: markers (`init`), sealed evidence, the
    // keyed audit log and its anchors, one lock.
    let mut repo_builder = Repository::builder(Arc::clone(&cipher), audit)
        .sink(Arc::clone(&c))
        .sink(Arc::clone(&d));
    let mut sources: Vec<Arc<dyn Source>> = Vec::new();
    for (path, root) in &trees {
        sources.push(Arc::new(FileTreeSource::new(path, root)?));
    }
    let mut restorers: Vec<Arc<dyn EntryRestorer>> = Vec::new();
    if let Some(cl) = &cluster {
        sources.push(Arc::new(
            PgDumpSource::new(cl.connection("wst_dev")).with_tools(cl.tools().clone()),
        ));
        verifier = verifier.require(entry).entry_check(Arc::new(
            PgRestoreListCheck::new(entry, vec!["public.pgbench_accounts".into()])
                .with_tools(cl.tools().clone()),
        ));
        restorers.push(Arc::new(
            PgDrillRestorer::new(
                wst::pg::RestoreOptions::new(cl.connection("postgres"))
                    .with_jobs(2)
                    .with_drop_after(true)
                    .with_tools(cl.tools().clone()),
            )
            // The data RPO: the newest customer row in the restored database.
            .freshness_column("sales", "customers", "created"),
        ));
    }
    repo_builder = repo_builder.verifier(verifier.clone());
    let repo = repo_builder.build()?;
    repo.init().await?;
    let lock = repo.lock("backup")?;
    // The repository's job: its sinks, cipher, verifier and clock, plus this run's sources.
    let mut job = repo.job().await;
    for source in sources {
        job = job.source(source);
    }
    if std::io::stderr().is_terminal() {
        let total = trees.iter().map(|(p, _)| tree_size(p)).sum();
        job = job.progress(Arc::new(Bar::new(total)));
    }
    // Audited by the repository: started, completed, the verification.
    let report = repo.backup(&job.build()?).await?;
    drop(lock); // the run is over: status would otherwise report it in progress
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

    println!("\n== restore drill (doctrine R7) from the C: disk");
    let mut drill_options = DrillOptions::new("wst quickstart", "quickstart", work.join("drill"));
    drill_options.protected_paths = trees.iter().map(|(p, _)| p.clone()).collect();
    let drill = repo
        .drill(&restorers, &drill_options, Some("local-c"))
        .await?;
    let drill_md = work.join("restore-test-report.md");
    fs::write(&drill_md, drill.to_markdown())?;
    fs::write(
        work.join("restore-test-report.json"),
        serde_json::to_vec_pretty(&drill)?,
    )?;
    print!("{}", drill.to_markdown());

    println!("\n== isolated restore from the D: mirror");
    let target = work.join("restore");
    let rr = repo
        .restore(
            &report.artifact,
            &RestoreOptions::isolated(&target).protect(trees.iter().map(|(p, _)| p.clone())),
            Some("mirror-d"),
        )
        .await?;
    println!(
        "   {} entries, {} bytes into {} in {:.2} s (RTO of this tree)",
        rr.entries,
        rr.bytes,
        target.display(),
        rr.duration_seconds
    );
    let mut same = true;
    for (path, root) in &trees {
        let equal = fingerprint(path)? == fingerprint(&target.join(root))?;
        println!(
            "   [{}] restored {root}/ equals {} byte for byte",
            if equal { "PASS" } else { "FAIL" },
            path.display()
        );
        same &= equal;
    }

    println!("\n== compliance status (doctrine 026)");
    let status = repo
        .status(&ComplianceOptions::default(), repo.clock().now())
        .await?;
    for r in &status.rules {
        println!(
            "   [{}] {:<24} {}",
            if r.passed { "PASS" } else { "FAIL" },
            r.rule,
            r.detail
        );
    }
    println!(
        "   {} (the quickstart has two local disks and no offsite sink, so 3-2-1 cannot hold: \
         add an S3 or Azure sink — see examples/wst.toml)",
        if status.compliant() {
            "COMPLIANT"
        } else {
            "NOT COMPLIANT"
        }
    );

    let ok = report.is_success() && verification.passed() && drill.passed && same;
    println!(
        "\nRESULT: {} (backup, verification, restore drill with RTO {:.1} s, byte-for-byte restore)\n\
         artifacts:   {} and {}\nrun report:  {}\ndrill report: {}\naudit log:   {}",
        if ok { "PASS" } else { "FAIL" },
        drill.rto_seconds,
        work.join("C").display(),
        work.join("D").display(),
        work.join("run-report.json").display(),
        drill_md.display(),
        repo.audit().path().display()
    );
    fs::write(
        work.join("run-report.json"),
        serde_json::to_vec_pretty(&report)?,
    )?;
    Ok(ok)
}
