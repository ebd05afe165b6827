//! Benchmark: a full file-tree backup with wst against `tar -cf - | zstd -T0 -3` on the same
//! generated tree, in one run (issue 3's goal: wall ≤ 1.15× that pipeline, peak RSS < 256 MiB and
//! flat as the tree grows).
//!
//! ```text
//! cargo run --release --features zstdmt --example bench_files -- [--gib 1] [--dir /var/tmp/wst-bench] [--rounds 2]
//! ```
//!
//! Needs GNU `time` and `zstd` (`apt-get install time zstd`). Each command runs as its own
//! process under `/usr/bin/time`, which gives wall seconds, CPU seconds and peak RSS; the best
//! of `--rounds` runs is reported (page cache warm for every command alike).

use std::fmt::Write as _;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// Deterministic pseudo-random generator (xorshift64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}

const WORDS: &[&str] = &[
    "backup",
    "restore",
    "tenant",
    "invoice",
    "proof",
    "certificate",
    "ledger",
    "account",
    "session",
    "request",
    "response",
    "error",
    "warning",
    "user",
    "order",
    "payment",
    "status",
    "created",
    "updated",
    "deleted",
    "id",
    "name",
    "amount",
    "currency",
    "EUR",
    "true",
    "false",
];

/// Writes a mixed tree of about `total` bytes: 45% text (logs, JSON, source), 30% binaries
/// (structured, compressible about 2:1), and the rest (at least 100 MiB) incompressible.
fn generate(root: &Path, total: u64) -> std::io::Result<()> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let incompressible = (total / 4).max(100 << 20);
    let text = (total - incompressible) * 60 / 100;
    let binary = total - incompressible - text;
    // Text: many small and medium files in nested directories.
    let mut written = 0u64;
    let mut i = 0u64;
    while written < text {
        let dir = root.join(format!("wst/app/module-{:03}/sub-{:02}", i % 97, i % 13));
        fs::create_dir_all(&dir)?;
        let size = 2_000 + (rng.next() % 200_000);
        let mut s = String::with_capacity(size as usize + 200);
        while (s.len() as u64) < size {
            let n = rng.next();
            let _ = writeln!(
                s,
                "{{\"ts\":\"2026-11-{:02}T{:02}:{:02}:{:02}Z\",\"{}\":\"{}\",\"{}\":{}}}",
                1 + n % 28,
                n % 24,
                n % 60,
                (n >> 8) % 60,
                WORDS[(n >> 16) as usize % WORDS.len()],
                WORDS[(n >> 24) as usize % WORDS.len()],
                WORDS[(n >> 32) as usize % WORDS.len()],
                (n >> 40) % 100_000
            );
        }
        fs::write(dir.join(format!("file-{i}.log")), &s)?;
        written += s.len() as u64;
        i += 1;
    }
    // Binaries: structured records with random fields.
    let mut written = 0u64;
    let mut i = 0u64;
    let bin = root.join("wst-api/bin");
    fs::create_dir_all(&bin)?;
    while written < binary {
        let size = (8 << 20).min(binary - written).max(1);
        let mut buf = vec![0u8; size as usize];
        for rec in buf.chunks_mut(64) {
            let n = rng.next();
            for (j, b) in rec.iter_mut().enumerate() {
                *b = if j < 16 {
                    (n >> (j % 8 * 8)) as u8
                } else {
                    (j as u8).wrapping_mul(31)
                };
            }
        }
        fs::write(bin.join(format!("blob-{i}.bin")), &buf)?;
        written += size;
        i += 1;
    }
    // Incompressible: media-like files.
    let media = root.join("wst-api/media");
    fs::create_dir_all(&media)?;
    let mut written = 0u64;
    let mut i = 0u64;
    while written < incompressible {
        let size = (32 << 20).min(incompressible - written);
        let mut buf = vec![0u8; size as usize];
        rng.fill(&mut buf);
        fs::write(media.join(format!("video-{i}.mp4")), &buf)?;
        written += size;
        i += 1;
    }
    Ok(())
}

/// Runs `cmd` under GNU time; returns (wall s, cpu s, peak RSS MiB).
fn timed(shell: &str) -> (f64, f64, f64) {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "TIME %e %U %S %M", "bash", "-c", shell])
        .output()
        .expect("run /usr/bin/time (apt-get install time)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "`{shell}` failed: {err}");
    let line = err
        .lines()
        .rev()
        .find(|l| l.starts_with("TIME "))
        .expect("time output");
    let v: Vec<f64> = line[5..].split(' ').map(|x| x.parse().unwrap()).collect();
    (v[0], v[1] + v[2], v[3] / 1024.0)
}

fn du(p: &Path) -> u64 {
    walkdir::WalkDir::new(p)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

async fn child(src: PathBuf, sink_dir: PathBuf, key: PathBuf, verify: bool) {
    use wst::core::{BackupJob, FileTreeSource, Sink};
    let cipher = Arc::new(wst::crypto::AeadCipher::from_key_file(&key).unwrap());
    let sink: Arc<dyn Sink> = Arc::new(
        wst::objstore::LocalDiskSink::builder("bench", &sink_dir)
            .create_dir(true)
            .open()
            .await
            .unwrap(),
    );
    let workers = if cfg!(feature = "zstdmt") {
        std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
    } else {
        0
    };
    let mut b = BackupJob::builder(cipher).sink(sink).zstd_workers(workers);
    for entry in fs::read_dir(&src).unwrap() {
        let entry = entry.unwrap();
        let root = entry.file_name().to_string_lossy().into_owned();
        b = b.source(Arc::new(FileTreeSource::new(entry.path(), &root).unwrap()));
    }
    if !verify {
        b = b.verify_on_run(false);
    }
    let report = b.build().unwrap().run().await.unwrap();
    assert!(report.ciphertext_bytes > 0);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(child(
            args[2].clone().into(),
            args[3].clone().into(),
            args[4].clone().into(),
            args[5] == "verify",
        ));
        return;
    }
    let mut gib = 1.0f64;
    let mut dir = std::env::temp_dir().join("wst-bench");
    let mut rounds = 2;
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--gib" => gib = it.next().unwrap().parse().unwrap(),
            "--dir" => dir = it.next().unwrap().into(),
            "--rounds" => rounds = it.next().unwrap().parse().unwrap(),
            other => panic!("unknown argument {other}"),
        }
    }
    let total = (gib * f64::from(1u32 << 30)) as u64;
    let src = dir.join(format!("tree-{gib}g"));
    if !src.exists() {
        eprintln!("generating {gib} GiB tree in {} …", src.display());
        generate(&src, total).unwrap();
    }
    let size = du(&src);
    let key = dir.join("bench.key");
    if !key.exists() {
        wst::crypto::Key::generate()
            .unwrap()
            .write_to(&key)
            .unwrap();
    }
    let exe = std::env::current_exe().unwrap();
    let out = dir.join("out");
    // Warm the page cache for everyone alike.
    timed(&format!("tar -cf - -C {} . > /dev/null", src.display()));
    let mut rows: Vec<(&str, (f64, f64, f64), u64)> = Vec::new();
    let cases: [(&str, String); 3] = [
        (
            "tar | zstd -T0 -3",
            format!(
                "tar -cf - -C {} . | zstd -q -T0 -3 > {}/tar.zst",
                src.display(),
                out.display()
            ),
        ),
        (
            "wst backup (no read-back)",
            format!(
                "{} --child {} {}/wst1 {} noverify",
                exe.display(),
                src.display(),
                out.display(),
                key.display()
            ),
        ),
        (
            "wst backup + deep verify",
            format!(
                "{} --child {} {}/wst2 {} verify",
                exe.display(),
                src.display(),
                out.display(),
                key.display()
            ),
        ),
    ];
    for (name, cmd) in &cases {
        let mut best = (f64::MAX, 0.0, 0.0);
        let mut stored = 0;
        for _ in 0..rounds {
            let _ = fs::remove_dir_all(&out);
            fs::create_dir_all(&out).unwrap();
            let r = timed(cmd);
            if r.0 < best.0 {
                best = r;
            }
            stored = du(&out);
        }
        rows.push((name, best, stored));
    }
    let _ = fs::remove_dir_all(&out);
    let base = rows[0].1.0;
    let mut stdout = std::io::stdout();
    writeln!(
        stdout,
        "\ninput: {:.2} GiB ({} bytes), {} cores, best of {rounds}",
        size as f64 / f64::from(1u32 << 30),
        size,
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
    )
    .unwrap();
    writeln!(
        stdout,
        "| command | wall s | CPU s | peak RSS MiB | stored MiB | wall / tar+zstd |"
    )
    .unwrap();
    writeln!(stdout, "|---|---:|---:|---:|---:|---:|").unwrap();
    for (name, (wall, cpu, rss), stored) in rows {
        writeln!(
            stdout,
            "| {name} | {wall:.2} | {cpu:.2} | {rss:.0} | {:.1} | {:.2}× |",
            stored as f64 / f64::from(1u32 << 20),
            wall / base
        )
        .unwrap();
    }
}
