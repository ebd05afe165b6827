//! The performance harness (issue 8): whole-process backups and restores of the same generated
//! data — a mixed file tree (text, binaries, at least 100 MiB incompressible) plus a `pgbench`
//! database — by wst and by its peers, in one run, printed as one table.
//!
//! ```text
//! cargo run --release --features zstdmt --example bench -- [--gib 1 (0: database only)] [--scale 30] [--rounds 2]
//!     [--dir /var/tmp/wst-bench] [--only wst,zstd,gpg,restic,borg] [--no-db] [--no-restore]
//!     [--drop-caches]   (Linux, root: drop the page cache before every round, then re-read the inputs)
//! ```
//!
//! Backups (files + database → local disk):
//! - `wst`: `FileTreeSource` per top-level directory + `PgDumpSource` → `LocalDiskSink`,
//!   AES-256-GCM, zstd -3 with one worker per core; once without and once with the read-back
//!   verification every production run does (doctrine 026 R5);
//! - `tar | zstd -T0 -3` then `pg_dump -Fc -Z0 | zstd -T0 -3`: the compression-bound limit,
//!   no encryption (and the same two run concurrently, as a reference);
//! - the doctrine's shell pipeline: `tar | zstd -T0 -3 | gpg --symmetric --cipher-algo AES256`
//!   then `pg_dump -Fc | gpg --symmetric --cipher-algo AES256` (gpg's defaults otherwise);
//! - `restic backup` of the tree + `pg_dump -Fc -Z0 | restic backup --stdin` (first backup into
//!   a new repository, restic's default compression);
//! - `borg create --compression zstd,3` of the tree + `pg_dump -Fc -Z0 | borg create … -`
//!   (first backup into a new `repokey` repository).
//!
//! Restores (files into an empty directory + the database into a new database with
//! `pg_restore --jobs <cores>` from a file): `wst restore` + `wst_pg::restore_dump` (which also
//! proves row counts and the schema fingerprint); `zstd -d | tar -x`; `gpg -d | zstd -d | tar
//! -x`; `restic restore` / `restic dump`; `borg extract`.
//!
//! Every command runs as its own process tree under GNU `time` (wall s, CPU s = user + sys of
//! the whole tree, peak RSS = the largest single process); the best of `--rounds` is reported,
//! page cache warm for all alike, `sync` before each command. Needs Debian's `time`, `zstd`, `gnupg`, `restic`,
//! `borgbackup` and `postgresql` packages; the database runs in a throwaway cluster
//! ([`wst::pg::TestCluster`]).

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
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

/// Runs `shell` with bash under GNU time; returns (wall s, CPU s, peak RSS MiB).
fn timed(shell: &str) -> (f64, f64, f64) {
    let out = Command::new("/usr/bin/time")
        .args([
            "-f",
            "TIME %e %U %S %M",
            "bash",
            "-c",
            &format!("set -eo pipefail; {shell}"),
        ])
        .output()
        .expect("run /usr/bin/time (apt-get install time)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "`{shell}` failed: {err}");
    // The commands' own diagnostics (e.g. wst's per-source timings) go to the log.
    for line in err.lines().filter(|l| l.starts_with("wst ")) {
        eprintln!("  {line}");
    }
    let line = err
        .lines()
        .rev()
        .find(|l| l.starts_with("TIME "))
        .expect("time output");
    let v: Vec<f64> = line[5..].split(' ').map(|x| x.parse().unwrap()).collect();
    (v[0], v[1] + v[2], v[3] / 1024.0)
}

/// Runs `shell` with bash (setup and cleanup steps, untimed).
fn run(shell: &str) {
    let out = Command::new("bash")
        .args(["-c", &format!("set -eo pipefail; {shell}")])
        .output()
        .expect("run bash");
    assert!(
        out.status.success(),
        "`{shell}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
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

fn workers() -> u32 {
    if cfg!(feature = "zstdmt") {
        std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
    } else {
        0
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// The benchmark database as the child processes see it (loopback, password from a key file).
fn database(port: u16, key: &Path, name: &str) -> wst::pg::ConnectionConfig {
    wst::pg::ConnectionConfig::new("127.0.0.1", "postgres", name)
        .with_port(port)
        .with_password(wst::pg::PasswordSource::KeyFile(key.to_owned()))
        .with_sslmode(wst::pg::SslMode::Disable)
}

/// `--child-backup SRC SINK KEY verify|noverify [PORT DBKEY]`: one wst backup.
async fn child_backup(args: &[String]) {
    use wst::core::{BackupJob, FileTreeSource, Sink};
    let (src, sink_dir, key) = (&args[0], &args[1], &args[2]);
    let cipher = Arc::new(wst::crypto::AeadCipher::from_key_file(Path::new(key)).unwrap());
    let sink: Arc<dyn Sink> = Arc::new(
        wst::objstore::LocalDiskSink::builder("bench", sink_dir)
            .create_dir(true)
            .open()
            .await
            .unwrap(),
    );
    let mut b = BackupJob::builder(cipher.clone())
        .sink(Arc::clone(&sink))
        .zstd_workers(
            std::env::var("WST_BENCH_ZSTD_WORKERS")
                .ok()
                .and_then(|w| w.parse().ok())
                .unwrap_or_else(workers),
        )
        .verify_on_run(args[3] == "verify");
    if let (Some(port), Some(db_key)) = (args.get(4), args.get(5)) {
        let conn = database(port.parse().unwrap(), Path::new(db_key), "bench");
        let mut pg = wst::pg::PgDumpSource::new(conn);
        if let Some(w) = std::env::var("WST_BENCH_PG_WORKERS")
            .ok()
            .and_then(|w| w.parse().ok())
        {
            pg = pg.with_zstd(3, w);
        }
        b = b.source(Arc::new(pg));
    }
    let mut roots: Vec<_> = fs::read_dir(src).unwrap().map(|e| e.unwrap()).collect();
    roots.sort_by_key(fs::DirEntry::file_name);
    for entry in roots {
        let root = entry.file_name().to_string_lossy().into_owned();
        b = b.source(Arc::new(FileTreeSource::new(entry.path(), &root).unwrap()));
    }
    let report = b.build().unwrap().run().await.unwrap();
    assert!(report.ciphertext_bytes > 0);
    for s in &report.sources {
        eprintln!(
            "wst source {} ({}): prepared in {:.2} s",
            s.name, s.kind, s.prepare_seconds
        );
    }
    eprintln!(
        "wst run {:.2} s, sink write {:.2} s",
        report.duration_seconds,
        report.sinks.first().map_or(0.0, |s| s.seconds)
    );
    // Diagnostics (outside a timed comparison): the manifest's stage timings.
    if std::env::var_os("WST_BENCH_TIMINGS").is_some() {
        let listing = wst::core::list_artifact(
            &*sink,
            &report.artifact,
            &*cipher,
            wst::core::ReadLimits::default(),
        )
        .await
        .unwrap();
        eprintln!("wst timings {:?}", listing.manifest.timings);
    }
}

/// `--child-restore SINK KEY TARGET [PORT DBKEY DBNAME]`: one wst restore (files, then the
/// database with `pg_restore --jobs <cores>` and wst-pg's proof).
async fn child_restore(args: &[String]) {
    use wst::core::{RestoreOptions, Sink, restore};
    let (sink_dir, key, target) = (&args[0], &args[1], &args[2]);
    let cipher = wst::crypto::AeadCipher::from_key_file(Path::new(key)).unwrap();
    let sink = wst::objstore::LocalDiskSink::builder("bench", sink_dir)
        .open()
        .await
        .unwrap();
    let name = wst::core::complete_artifacts(&sink)
        .await
        .unwrap()
        .pop()
        .expect("an artifact to restore");
    let report = restore(&sink, &name, &cipher, &RestoreOptions::isolated(target))
        .await
        .unwrap();
    let _ = sink.info();
    if let (Some(port), Some(db_key), Some(db)) = (args.get(3), args.get(4), args.get(5)) {
        let pg = report
            .sources
            .iter()
            .find(|s| s.kind == wst::pg::SOURCE_KIND)
            .expect("a database in the artifact");
        let facts: wst::pg::DatabaseFacts = serde_json::from_value(pg.details.clone()).unwrap();
        let options = wst::pg::RestoreOptions::new(database(
            port.parse().unwrap(),
            Path::new(db_key),
            "postgres",
        ))
        .with_database(db.as_str())
        .with_jobs(cores() as u32);
        let started = std::time::Instant::now();
        let proof = wst::pg::restore_dump(&Path::new(target).join(&pg.root), &facts, &options)
            .await
            .unwrap();
        assert!(proof.passed(), "{:?}", proof.checks);
        eprintln!(
            "wst restore: files {:.2} s, database {:.2} s (pg_restore {:.2} s)",
            report.duration_seconds,
            started.elapsed().as_secs_f64(),
            proof.pg_restore_seconds
        );
    }
}

struct Case {
    tool: &'static str,
    /// The output directory under `out/` (backups write there, restores read from there).
    dir: &'static str,
    name: &'static str,
    /// Untimed, before every round (e.g. `restic init`).
    setup: String,
    command: String,
    /// Untimed, after every round (e.g. drop the restored database).
    cleanup: String,
}

struct Row {
    tool: &'static str,
    name: &'static str,
    wall: f64,
    cpu: f64,
    rss: f64,
    bytes: u64,
}

#[allow(clippy::too_many_lines, clippy::many_single_char_names)]
fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--child-backup") => {
            let rt = tokio::runtime::Runtime::new().unwrap();
            return rt.block_on(child_backup(&args[2..]));
        }
        Some("--child-restore") => {
            let rt = tokio::runtime::Runtime::new().unwrap();
            return rt.block_on(child_restore(&args[2..]));
        }
        _ => {}
    }
    let mut gib = 1.0f64;
    let mut scale = 30u32;
    let mut dir = std::env::temp_dir().join("wst-bench");
    let mut rounds = 2;
    let mut only: Option<Vec<String>> = None;
    let mut with_db = true;
    let mut with_restore = true;
    let mut drop_caches = false;
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--gib" => gib = it.next().unwrap().parse().unwrap(),
            "--scale" => scale = it.next().unwrap().parse().unwrap(),
            "--dir" => dir = it.next().unwrap().into(),
            "--rounds" => rounds = it.next().unwrap().parse().unwrap(),
            "--only" => only = Some(it.next().unwrap().split(',').map(str::to_owned).collect()),
            "--no-db" => with_db = false,
            "--no-restore" => with_restore = false,
            "--drop-caches" => drop_caches = true,
            other => panic!("unknown argument {other}"),
        }
    }
    let wanted = |tool: &str| only.as_ref().is_none_or(|o| o.iter().any(|t| t == tool));
    let total = (gib * f64::from(1u32 << 30)) as u64;
    let src = dir.join(format!("tree-{gib}g"));
    if gib == 0.0 {
        // `--gib 0`: the database alone (a one-file tree, since every tool needs a tree).
        fs::create_dir_all(src.join("wst")).unwrap();
        fs::write(src.join("wst/README.txt"), "database only\n").unwrap();
    } else if !src.exists() {
        eprintln!("generating a {gib} GiB tree in {} …", src.display());
        generate(&src, total).unwrap();
    }
    let tree_bytes = du(&src);
    let key = dir.join("bench.key");
    if !key.exists() {
        wst::crypto::Key::generate()
            .unwrap()
            .write_to(&key)
            .unwrap();
    }
    let secret = dir.join("bench.pass");
    fs::write(&secret, "correct horse battery staple, benchmark only\n").unwrap();
    let exe = std::env::current_exe().unwrap();
    let out = dir.join("out");
    let restored = dir.join("restored");
    let cache = dir.join("cache");
    let gnupg = dir.join("gnupg");
    fs::create_dir_all(&gnupg).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&gnupg, fs::Permissions::from_mode(0o700)).unwrap();
    }

    // The database: a throwaway cluster with pgbench at `scale`.
    let cluster = with_db.then(|| {
        let cluster = wst::pg::TestCluster::start().expect("start a PostgreSQL cluster");
        cluster.create_database("bench").unwrap();
        let init = cluster
            .client_command("pgbench")
            .args(["-i", "-q", "-s", &scale.to_string(), "bench"])
            .output()
            .unwrap();
        assert!(
            init.status.success(),
            "pgbench -i failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        cluster
    });
    let (pg_env, db_args, db_bytes) = match &cluster {
        Some(c) => {
            let mut probe = Command::new("true");
            c.configure_client(&mut probe);
            let mut env = String::new();
            for (k, v) in probe.get_envs() {
                if let Some(v) = v {
                    let _ = write!(
                        env,
                        "export {}={}; ",
                        k.to_string_lossy(),
                        v.to_string_lossy()
                    );
                }
            }
            let bin = c.tools().program("pg_dump");
            let bin = bin.parent().unwrap().display().to_string();
            let _ = write!(env, "export PATH={bin}:$PATH; ");
            let size: u64 = c
                .psql("bench", "SELECT pg_database_size('bench')")
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            (
                env,
                format!("{} {}", c.port(), c.key_file().display()),
                size,
            )
        }
        None => (String::new(), String::new(), 0),
    };
    let db = cluster.is_some();
    // The database's files, re-read after a page-cache drop like every other input.
    let pg_data = cluster
        .as_ref()
        .map_or_else(|| src.clone(), |c| c.data_dir().to_path_buf());
    let jobs = cores();
    let gpg = format!(
        "GNUPGHOME={} gpg --batch --yes --pinentry-mode loopback --passphrase-file {}",
        gnupg.display(),
        secret.display()
    );
    let restic = format!(
        "RESTIC_PASSWORD_FILE={} RESTIC_CACHE_DIR={}/restic restic -q -r {}/restic",
        secret.display(),
        cache.display(),
        out.display()
    );
    let borg = format!(
        "BORG_PASSCOMMAND='cat {}' BORG_BASE_DIR={}/borg borg",
        secret.display(),
        cache.display()
    );
    let (s, o, r) = (src.display(), out.display(), restored.display());

    // Warm the page cache for everyone alike.
    run(&format!("tar -cf - -C {s} . > /dev/null"));

    let mut backups: Vec<Case> = Vec::new();
    let db_then = |cmd: String| {
        if db {
            format!("; {pg_env}{cmd}")
        } else {
            String::new()
        }
    };
    if wanted("wst") {
        for (name, verify, dir) in [
            ("wst backup", "noverify", "wst"),
            ("wst backup + read-back verify", "verify", "wst-verify"),
        ] {
            backups.push(Case {
                tool: "wst",
                dir,
                name,
                setup: String::new(),
                command: format!(
                    "{} --child-backup {s} {o}/{dir} {} {verify} {db_args}",
                    exe.display(),
                    key.display()
                ),
                cleanup: String::new(),
            });
        }
    }
    if wanted("zstd") {
        backups.push(Case {
            tool: "zstd",
            dir: "zstd",
            name: "tar | zstd -T0 -3 (then pg_dump -Z0 | zstd)",
            setup: format!("mkdir -p {o}/zstd"),
            command: format!(
                "tar -cf - -C {s} . | zstd -q -T0 -3 > {o}/zstd/files.tar.zst{}",
                db_then(format!(
                    "pg_dump -Fc -Z0 bench | zstd -q -T0 -3 > {o}/zstd/db.dump.zst"
                ))
            ),
            cleanup: String::new(),
        });
        if db {
            backups.push(Case {
                tool: "zstd",
                dir: "zstdpar",
                name: "same, tree and database concurrently",
                setup: format!("mkdir -p {o}/zstdpar"),
                command: format!(
                    "{pg_env} (tar -cf - -C {s} . | zstd -q -T0 -3 > {o}/zstdpar/files.tar.zst) & files=$!; \
                     (pg_dump -Fc -Z0 bench | zstd -q -T0 -3 > {o}/zstdpar/db.dump.zst); wait $files"
                ),
                cleanup: String::new(),
            });
        }
    }
    if wanted("gpg") {
        backups.push(Case {
            tool: "gpg",
            dir: "gpg",
            name: "tar | zstd | gpg (then pg_dump -Fc | gpg)",
            setup: format!("mkdir -p {o}/gpg"),
            command: format!(
                "tar -cf - -C {s} . | zstd -q -T0 -3 | {gpg} --symmetric --cipher-algo AES256 -o {o}/gpg/files.tar.zst.gpg{}",
                db_then(format!("pg_dump -Fc bench | {gpg} --symmetric --cipher-algo AES256 -o {o}/gpg/db.dump.gpg"))
            ),
            cleanup: String::new(),
        });
    }
    if wanted("restic") {
        backups.push(Case {
            tool: "restic",
            dir: "restic",
            name: "restic backup (first)",
            setup: format!("rm -rf {}/restic; {restic} init", cache.display()),
            command: format!(
                "{restic} backup --tag files {s}{}",
                db_then(format!(
                    "pg_dump -Fc -Z0 bench | {restic} backup --tag db --stdin --stdin-filename db.dump"
                ))
            ),
            cleanup: String::new(),
        });
    }
    if wanted("borg") {
        backups.push(Case {
            tool: "borg",
            dir: "borg",
            name: "borg create --compression zstd,3 (first)",
            setup: format!(
                "rm -rf {}/borg; mkdir -p {}/borg; {borg} init -e repokey {o}/borg",
                cache.display(),
                cache.display()
            ),
            command: format!(
                "{borg} create --compression zstd,3 {o}/borg::files {s}{}",
                db_then(format!(
                    "pg_dump -Fc -Z0 bench | {borg} create --compression zstd,3 {o}/borg::db -"
                ))
            ),
            cleanup: String::new(),
        });
    }

    let mut restores: Vec<Case> = Vec::new();
    let pg_restore = |db_name: &str, file: &str| {
        db_then(format!(
            "createdb {db_name} && pg_restore -j {jobs} -d {db_name} {file}"
        ))
    };
    let dropdb = |db_name: &str| {
        format!(
            "rm -rf {r}{}",
            if db {
                format!("; {pg_env}dropdb --if-exists {db_name}")
            } else {
                String::new()
            }
        )
    };
    if wanted("wst") {
        restores.push(Case {
            tool: "wst",
            dir: "wst",
            name: "wst restore + pg_restore --jobs + proof",
            setup: String::new(),
            command: format!(
                "{} --child-restore {o}/wst {} {r}/files {db_args} {}",
                exe.display(),
                key.display(),
                if db { "r_wst" } else { "" }
            ),
            cleanup: dropdb("r_wst"),
        });
    }
    if wanted("zstd") {
        restores.push(Case {
            tool: "zstd",
            dir: "zstd",
            name: "zstd -d | tar -x (+ pg_restore --jobs)",
            setup: format!("mkdir -p {r}/files"),
            command: format!(
                "zstd -q -dc {o}/zstd/files.tar.zst | tar -xf - -C {r}/files{}{}",
                db_then(format!("zstd -q -dc {o}/zstd/db.dump.zst > {r}/db.dump")),
                pg_restore("r_zstd", &format!("{r}/db.dump"))
            ),
            cleanup: dropdb("r_zstd"),
        });
    }
    if wanted("gpg") {
        restores.push(Case {
            tool: "gpg",
            dir: "gpg",
            name: "gpg -d | zstd -d | tar -x (+ pg_restore --jobs)",
            setup: format!("mkdir -p {r}/files"),
            command: format!(
                "{gpg} -d {o}/gpg/files.tar.zst.gpg 2>/dev/null | zstd -q -d | tar -xf - -C {r}/files{}{}",
                db_then(format!("{gpg} -d {o}/gpg/db.dump.gpg 2>/dev/null > {r}/db.dump")),
                pg_restore("r_gpg", &format!("{r}/db.dump"))
            ),
            cleanup: dropdb("r_gpg"),
        });
    }
    if wanted("restic") {
        restores.push(Case {
            tool: "restic",
            dir: "restic",
            name: "restic restore (+ restic dump, pg_restore --jobs)",
            setup: format!("mkdir -p {r}/files"),
            command: format!(
                "{restic} restore latest --tag files --target {r}/files{}{}",
                db_then(format!(
                    "{restic} dump latest --tag db /db.dump > {r}/db.dump"
                )),
                pg_restore("r_restic", &format!("{r}/db.dump"))
            ),
            cleanup: dropdb("r_restic"),
        });
    }
    if wanted("borg") {
        restores.push(Case {
            tool: "borg",
            dir: "borg",
            name: "borg extract (+ pg_restore --jobs)",
            setup: format!("mkdir -p {r}/files"),
            command: format!(
                "cd {r}/files && {borg} extract {o}/borg::files{}{}",
                db_then(format!(
                    "{borg} extract --stdout {o}/borg::db > {r}/db.dump"
                )),
                pg_restore("r_borg", &format!("{r}/db.dump"))
            ),
            cleanup: dropdb("r_borg"),
        });
    }

    let _ = fs::remove_dir_all(&out);
    let _ = fs::remove_dir_all(&restored);
    fs::create_dir_all(&out).unwrap();
    // Backups start from an empty directory or new repository every round (first backups) and
    // keep the last round's output for the restores; restores clean up after every round.
    // Rounds are interleaved (every case once per round), so that a drift of the machine's
    // state over the run (page cache, writeback) is spread over all tools alike.
    let measure = |cases: &[Case], restore: bool| -> Vec<Row> {
        let mut best = vec![(f64::MAX, 0.0, 0.0); cases.len()];
        let mut bytes = vec![0; cases.len()];
        for round in 0..rounds {
            if drop_caches {
                // Start every round from the same memory state: write back, drop the page
                // cache (Linux, root), read the inputs back in.
                run("sync; echo 3 > /proc/sys/vm/drop_caches");
                run(&format!(
                    "tar -cf - -C {} . > /dev/null; find {} {} -type f -exec cat {{}} + > /dev/null 2>&1 || true",
                    src.display(),
                    out.display(),
                    pg_data.display()
                ));
            }
            // Each round starts with a different case: no tool always runs first.
            for i in (0..cases.len()).map(|k| (k + round) % cases.len()) {
                let case = &cases[i];
                eprintln!("{} (round {}/{rounds}) …", case.name, round + 1);
                let output = out.join(case.dir);
                if !restore {
                    let _ = fs::remove_dir_all(&output);
                }
                if !case.setup.is_empty() {
                    run(&case.setup);
                }
                // Write back what earlier commands left dirty, so that no command pays for the
                // previous one's writeback.
                run("sync");
                let t = timed(&case.command);
                if t.0 < best[i].0 {
                    best[i] = t;
                }
                bytes[i] = du(if restore { &restored } else { &output });
                if !case.cleanup.is_empty() {
                    run(&case.cleanup);
                }
            }
        }
        cases
            .iter()
            .zip(best)
            .zip(bytes)
            .map(|((case, (wall, cpu, rss)), bytes)| Row {
                tool: case.tool,
                name: case.name,
                wall,
                cpu,
                rss,
                bytes,
            })
            .collect()
    };
    let backup_rows = measure(&backups, false);
    let restore_rows = if with_restore {
        measure(&restores, true)
    } else {
        Vec::new()
    };

    let mut text = String::new();
    let _ = writeln!(
        text,
        "\ninput: file tree {:.2} GiB ({tree_bytes} bytes){}; {} cores; best of {rounds}\n",
        tree_bytes as f64 / f64::from(1u32 << 30),
        if db {
            format!(
                ", pgbench scale {scale} database {:.0} MiB ({db_bytes} bytes)",
                db_bytes as f64 / f64::from(1u32 << 20)
            )
        } else {
            String::new()
        },
        cores()
    );
    for (title, rows) in [("Backup", &backup_rows), ("Restore", &restore_rows)] {
        if rows.is_empty() {
            continue;
        }
        let base = rows
            .iter()
            .find(|r| r.tool == "wst")
            .map_or(f64::NAN, |r| r.wall);
        let limit = rows
            .iter()
            .find(|r| r.tool == "zstd")
            .map_or(f64::NAN, |r| r.wall);
        let _ = writeln!(
            text,
            "| {title} | wall s | CPU s | peak RSS MiB | {} MiB | wall ÷ wst | wall ÷ tar+zstd |",
            if title == "Backup" {
                "stored"
            } else {
                "restored files"
            }
        );
        let _ = writeln!(text, "|---|---:|---:|---:|---:|---:|---:|");
        for row in rows {
            let _ = writeln!(
                text,
                "| {} | {:.2} | {:.2} | {:.0} | {:.1} | {:.2} | {:.2} |",
                row.name,
                row.wall,
                row.cpu,
                row.rss,
                row.bytes as f64 / f64::from(1u32 << 20),
                row.wall / base,
                row.wall / limit
            );
        }
        text.push('\n');
    }
    print!("{text}");
    let _ = fs::remove_dir_all(&restored);
}
