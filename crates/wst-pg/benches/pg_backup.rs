//! Database backup speed on a pgbench data set (scale 30 by default, `WST_BENCH_SCALE` to
//! change), all in one run against the same throwaway cluster:
//!
//! - `wst_backup/Z0`: wst's database backup — `PgDumpSource` (snapshot, facts, `pg_dump -Fc
//!   -Z0` spooled) → tar → zstd (level 3, 2 workers) → AES-256-GCM (wst-crypto) → local disk
//!   sink, including the pipeline's read-back verification of the artifact;
//! - `wst_backup/Z6`: the same with `pg_dump`'s default gzip level 6 inside (the `-Z` choice);
//! - `pg_dump_gpg`: `pg_dump -Fc | gpg --symmetric --cipher-algo AES256` (doctrine seed 002);
//! - `pg_dump_zstd`: `pg_dump -Fc -Z0 | zstd -T0`;
//! - `restore_jobs2`: `restore_dump` with `pg_restore --jobs 2` into a scratch database plus
//!   the proof (row counts, fingerprint), scratch database dropped afterwards.
//!
//! Sizes are printed once per variant. Needs the PostgreSQL server programs, `gpg` and
//! `zstd` (`apt-get install postgresql gnupg zstd`).
#![allow(missing_docs)]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use wst_pg::{DumpCompression, PgDumpSource, RestoreOptions, TestCluster};

/// The uncompressed custom-format dump of `dump` in a temporary file (deleted on drop).
fn plain_dump(dump: &wst_pg::PreparedDump) -> tempfile::TempPath {
    let path = tempfile::NamedTempFile::new()
        .expect("temp file")
        .into_temp_path();
    dump.write_dump(&path).expect("decompress the spooled dump");
    path
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |rd| {
        rd.flatten()
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    })
}

fn shell(cluster: &TestCluster, script: &str) {
    let mut sh = Command::new("sh");
    cluster.configure_client(&mut sh);
    let bindir = cluster
        .tools()
        .bindir()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    sh.env(
        "PATH",
        format!("{bindir}:{}", std::env::var("PATH").unwrap_or_default()),
    );
    let out = sh
        .arg("-c")
        .arg(script)
        .output()
        .expect("run shell pipeline");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn bench(c: &mut Criterion) {
    let scale: u32 = std::env::var("WST_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let cluster = match TestCluster::start() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("\n** pg_backup bench NOT RUN: {e}\n");
            return;
        }
    };
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let loading = Instant::now();
    cluster.create_database("bench").expect("create db");
    cluster
        .load_demo("bench", scale)
        .expect("load pgbench data");
    // Optional less redundant rows (hex digests, JSON), to measure the `-Z` choice on data
    // that compresses like application data rather than pgbench's blank filler.
    let extra: u64 = std::env::var("WST_BENCH_EXTRA_ROWS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if extra > 0 {
        cluster
            .psql(
                "bench",
                &format!(
                    "CREATE TABLE public.app_events AS SELECT g AS id, md5(g::text) AS digest, \
                     timestamptz '2026-01-01' + g * interval '1 second' AS at, \
                     jsonb_build_object('user', md5((g * 7)::text), 'n', g % 1000, 'ok', g % 3 = 0) AS payload, \
                     (g::bigint * 7919) % 1000003 AS amount FROM generate_series(1, {extra}) g; \
                     ALTER TABLE public.app_events ADD PRIMARY KEY (id);"
                ),
            )
            .expect("extra rows");
    }
    eprintln!(
        "loaded pgbench scale {scale} (+{extra} app_events rows) in {:.1} s",
        loading.elapsed().as_secs_f64()
    );
    let size = cluster
        .psql("bench", "SELECT pg_size_pretty(pg_database_size('bench'))")
        .unwrap();
    eprintln!("database size: {size}");

    let work = tempfile::tempdir().expect("work dir");
    for z in ["0", "6"] {
        let file = work.path().join("plain.dump");
        let started = Instant::now();
        shell(
            &cluster,
            &format!("pg_dump -Fc -Z{z} -d bench -f '{}'", file.display()),
        );
        eprintln!(
            "baseline pg_dump -Fc -Z{z} to a file: {:.2} s, {} bytes",
            started.elapsed().as_secs_f64(),
            std::fs::metadata(&file).map_or(0, |m| m.len())
        );
        std::fs::remove_file(&file).ok();
    }
    let key_path = work.path().join("backup.key");
    wst_crypto::Key::generate()
        .expect("key")
        .write_to(&key_path)
        .expect("write key");
    let cipher = Arc::new(wst_crypto::AeadCipher::from_key_file(&key_path).expect("cipher"));
    let gpg_pass = work.path().join("gpg.pass");
    std::fs::write(&gpg_pass, "bench-passphrase\n").unwrap();

    let mut group = c.benchmark_group(format!("pg_backup_scale{scale}"));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(30))
        .warm_up_time(Duration::from_secs(1));

    for (label, compression) in [
        ("wst_backup/Z0", DumpCompression::None),
        ("wst_backup/Z6", DumpCompression::Gzip(6)),
    ] {
        let mut reported = false;
        group.bench_function(label, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let out = tempfile::tempdir_in(work.path()).unwrap();
                    let spool = tempfile::tempdir_in(work.path()).unwrap();
                    let source = PgDumpSource::new(cluster.connection("bench"))
                        .with_tools(cluster.tools().clone())
                        .with_compression(compression)
                        .with_spool_dir(spool.path());
                    let started = Instant::now();
                    let report = rt.block_on(async {
                        let sink = wst_objstore::LocalDiskSink::open("bench", out.path()).await.expect("sink");
                        let job = wst_core::BackupJob::builder(cipher.clone())
                            .source(Arc::new(source))
                            .sink(Arc::new(sink))
                            .zstd_level(3)
                            .zstd_workers(2)
                            .build()
                            .expect("job");
                        job.run().await.expect("backup run")
                    });
                    total += started.elapsed();
                    if !reported {
                        reported = true;
                        let verify = report
                            .verification
                            .as_ref()
                            .map_or(0.0, |v| {
                                (v.finished - v.started).total(jiff::Unit::Second).unwrap_or(0.0)
                            });
                        eprintln!(
                            "{label}: artifact {} bytes (tar {} bytes, ratio {:.2}), run {:.2} s: prepare (snapshot, facts, spooled pg_dump) {:.2} s, read-back verification {verify:.2} s, outcome {:?}",
                            report.ciphertext_bytes, report.tar_bytes, report.compression_ratio,
                            report.duration_seconds,
                            report.sources.first().map_or(0.0, |s| s.prepare_seconds),
                            report.outcome
                        );
                    }
                }
                total
            });
        });
    }

    let conninfo = format!(
        "host=127.0.0.1 port={} user=postgres dbname=bench",
        cluster.port()
    );
    let mut reported = false;
    group.bench_function("pg_dump_gpg", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let out = work.path().join("dump.gpg");
                let started = Instant::now();
                shell(&cluster, &format!(
                    "set -e; pg_dump -Fc -d '{conninfo}' | gpg --batch --yes --quiet --homedir '{home}' --pinentry-mode loopback --passphrase-file '{pass}' --symmetric --cipher-algo AES256 -o '{out}'",
                    home = work.path().display(), pass = gpg_pass.display(), out = out.display()
                ));
                total += started.elapsed();
                if !reported {
                    reported = true;
                    eprintln!("pg_dump_gpg: {} bytes", std::fs::metadata(&out).map_or(0, |m| m.len()));
                }
                std::fs::remove_file(&out).ok();
            }
            total
        });
    });
    let mut reported = false;
    group.bench_function("pg_dump_zstd", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let out = work.path().join("dump.zst");
                let started = Instant::now();
                shell(
                    &cluster,
                    &format!(
                        "set -e; pg_dump -Fc -Z0 -d '{conninfo}' | zstd -q -T0 -f -o '{}'",
                        out.display()
                    ),
                );
                total += started.elapsed();
                if !reported {
                    reported = true;
                    eprintln!(
                        "pg_dump_zstd: {} bytes",
                        std::fs::metadata(&out).map_or(0, |m| m.len())
                    );
                }
                std::fs::remove_file(&out).ok();
            }
            total
        });
    });

    let dump = rt
        .block_on(
            PgDumpSource::new(cluster.connection("bench"))
                .with_tools(cluster.tools().clone())
                .dump(),
        )
        .expect("dump for restore");

    let dump_file = plain_dump(&dump);
    let mut reported = false;
    group.bench_function("restore_jobs2", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let options = RestoreOptions::new(cluster.connection("postgres"))
                    .with_jobs(2)
                    .with_drop_after(true)
                    .with_tools(cluster.tools().clone());
                let started = Instant::now();
                let proof = rt
                    .block_on(wst_pg::restore_dump(&dump_file, dump.facts(), &options))
                    .expect("restore");
                total += started.elapsed();
                assert!(proof.passed(), "{:?}", proof.failures().collect::<Vec<_>>());
                if !reported {
                    reported = true;
                    eprintln!(
                        "restore_jobs2: pg_restore {:.2} s, with proof {:.2} s, {} rows",
                        proof.pg_restore_seconds,
                        proof.total_seconds,
                        proof.restored.total_rows()
                    );
                }
            }
            total
        });
    });
    group.finish();
    eprintln!("work dir bytes at end: {}", dir_bytes(work.path()));
}

criterion_group!(benches, bench);
criterion_main!(benches);
