//! `wal-push` throughput (issue 16: "measure segments per second"): real WAL segments from a
//! pgbench run on a throwaway cluster (`full_page_writes = on`, as in production), pushed one
//! by one through [`WalArchive::push`] to a local-disk sink (fsynced), at zstd levels 1 and 3;
//! then fetched back and compared. Prints segments per second, MiB per second and the
//! compression ratio.
//!
//! ```sh
//! cargo run --release -p wst-pg --example wal_push_bench -- [SEGMENTS, default 64]
//! ```
//!
//! This measures the library (one process, the sink opened once). The operator binary adds a
//! process start, the configuration, the key and a marker read per segment: with
//! `WST_WAL_BENCH_SEGMENTS=DIR` the segments are kept in DIR (created), and
//! `time (for f in DIR/*; do wst --config wst.toml wal-push $f; done)` times the binary
//! (BENCHMARKS.md, "WAL archiving").
//! Without the PostgreSQL server programs it prints a notice and exits.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use wst_core::{AuditLog, Cipher, Repository, Sink};
use wst_crypto::{AeadCipher, Key};
use wst_objstore::LocalDiskSink;
use wst_pg::TestCluster;
use wst_pg::wal::{WalArchive, WalFileName};

fn segments_of(pg_wal: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(pg_wal)
        .expect("read pg_wal")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| WalFileName::parse(n).ok())
                .is_some_and(|n| n.kind() == wst_pg::wal::WalFileKind::Segment)
        })
        .collect();
    v.sort();
    v
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let wanted: usize = std::env::args()
        .nth(1)
        .map_or(64, |s| s.parse().expect("SEGMENTS is a number"));
    let Some(cluster) = TestCluster::start_or_skip() else {
        return Ok(());
    };
    let work = tempfile::tempdir()?;
    let src = std::env::var_os("WST_WAL_BENCH_SEGMENTS")
        .map_or_else(|| work.path().join("segments"), PathBuf::from);
    std::fs::create_dir_all(&src)?;

    // Real WAL: pgbench with full-page writes, until enough finished segments exist.
    cluster.psql(
        "postgres",
        "ALTER SYSTEM SET full_page_writes = on; SELECT pg_reload_conf();",
    )?;
    cluster.create_database("bench")?;
    let pgbench = |args: &[&str]| {
        let out = cluster
            .client_command("pgbench")
            .args(args)
            .arg("bench")
            .output()
            .expect("pgbench runs");
        assert!(
            out.status.success(),
            "pgbench: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    pgbench(&["-i", "-q", "-s", "20"]);
    let mut copied = 0usize;
    let mut seen = std::collections::BTreeSet::new();
    while copied < wanted {
        pgbench(&["-n", "-c", "4", "-t", "2000"]);
        cluster.psql("bench", "CHECKPOINT; SELECT pg_switch_wal();")?;
        let segs = segments_of(&cluster.data_dir().join("pg_wal"));
        // The newest segment is being written: leave it.
        for p in &segs[..segs.len().saturating_sub(1)] {
            let name = p.file_name().unwrap().to_owned();
            if copied < wanted && seen.insert(name.clone()) {
                std::fs::copy(p, src.join(&name))?;
                copied += 1;
            }
        }
    }
    let segments = segments_of(&src);
    let bytes: u64 = segments
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    println!(
        "{} real WAL segments of {} MiB from pgbench (scale 20, full_page_writes on)",
        segments.len(),
        (bytes / segments.len() as u64) >> 20
    );

    let key_path = work.path().join("backup.key");
    Key::generate()?.write_to(&key_path)?;
    let cipher: Arc<dyn Cipher> = Arc::new(AeadCipher::from_key_file(&key_path)?);
    for level in [1, 3] {
        let sink_dir = work.path().join(format!("sink-{level}"));
        std::fs::create_dir(&sink_dir)?;
        let sink: Arc<dyn Sink> = Arc::new(LocalDiskSink::open("local-c", &sink_dir).await?);
        let audit = AuditLog::new(work.path().join(format!("audit-{level}.jsonl")), "bench");
        Repository::builder(Arc::clone(&cipher), audit.clone())
            .sink(Arc::clone(&sink))
            .build()?
            .init()
            .await?;
        let archive = WalArchive::builder(Arc::clone(&cipher))
            .sync_sink(Arc::clone(&sink))
            .audit(audit)
            .zstd_level(level)
            .build()?;
        let start = Instant::now();
        let mut stored = 0u64;
        for p in &segments {
            stored += archive.push(p).await?.object_size;
        }
        let push = start.elapsed().as_secs_f64();
        let dest = work.path().join("RECOVERYXLOG");
        let start = Instant::now();
        for p in &segments {
            let name = WalFileName::parse(p.file_name().unwrap().to_str().unwrap())?;
            archive.fetch(&name, &dest).await?;
            assert_eq!(
                std::fs::read(&dest)?,
                std::fs::read(p)?,
                "{name} round trip"
            );
        }
        let fetch = start.elapsed().as_secs_f64();
        let n = segments.len() as f64;
        let mib = bytes as f64 / f64::from(1 << 20);
        println!(
            "zstd {level}: wal-push {:.1} segments/s ({:.0} MiB/s, {:.1} ms each), stored {:.1} % \
             of the input; wal-fetch (+ compare) {:.1} segments/s",
            n / push,
            mib / push,
            push * 1000.0 / n,
            stored as f64 * 100.0 / bytes as f64,
            n / fetch
        );
    }
    Ok(())
}
