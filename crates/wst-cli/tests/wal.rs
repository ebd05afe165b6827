//! `wst wal-push` as a real cluster's `archive_command` and `wst wal-fetch` as a
//! `restore_command` would call it (issue 16), end to end: a throwaway `PostgreSQL` with
//! `archive_mode = on` archives the WAL of real writes (`pg_switch_wal()`) through the built
//! binary to a local disk (synchronous) and moto's S3 server (asynchronous, through the queue
//! and the background drain); every archived segment is fetched back and equals the file in
//! `pg_wal`; a repeated push is idempotent, different content under a pushed name fails
//! naming the segment, a flipped byte in the local copy falls back to S3 naming the bad copy,
//! and a missing segment or history file exits 1 without a word.
//!
//! Unix only: the server runs as its own user (`postgres` when the tests run as root), and the
//! test runs `wst` as that user too.
#![cfg(unix)]

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wst::core::Sink;
use wst::objstore::ObjectStoreSink;
use wst::objstore::testing::MotoServer;
use wst::pg::TestCluster;

/// The operator binary, built by Cargo for this test (never a stale copy).
const WST: &str = env!("CARGO_BIN_EXE_wst");

/// moto's accept-anything test credentials, passed as the server's environment would.
const S3_KEY_ID: &str = "wst-test-key-id";
const S3_SECRET: &str = "wst-test-secret-key";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// The owner of the cluster's data directory: the user `archive_command` runs as. The test's
/// own `wst` runs as that user too, so every file it creates stays usable by the server's.
fn server_user(cluster: &TestCluster) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(cluster.data_dir()).unwrap();
    (m.uid(), m.gid())
}

fn chown_tree(dir: &Path, (uid, gid): (u32, u32)) {
    for e in walkdir::WalkDir::new(dir) {
        std::os::unix::fs::chown(e.unwrap().path(), Some(uid), Some(gid)).unwrap();
    }
}

fn wst(user: (u32, u32), config: &Path, args: &[&str]) -> Run {
    let mut cmd = Command::new(WST);
    cmd.arg("--config")
        .arg(config)
        .args(args)
        .env("RUST_LOG", "warn")
        .env("AWS_ACCESS_KEY_ID", S3_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", S3_SECRET);
    std::os::unix::process::CommandExt::uid(&mut cmd, user.0);
    std::os::unix::process::CommandExt::gid(&mut cmd, user.1);
    let out = cmd.output().unwrap();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    eprintln!(
        "$ wst {} → {}\n{}{}",
        args.join(" "),
        run.code,
        run.stdout,
        run.stderr
    );
    run
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_command_and_restore_command_with_a_real_cluster() {
    let Some(mut cluster) = TestCluster::start_or_skip() else {
        return;
    };
    let Some(moto) = MotoServer::start_or_skip() else {
        return;
    };
    moto.create_bucket("wst-wal").unwrap();
    let user = server_user(&cluster);

    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // Credentials never go into wst.toml (issue 15): the sink reads AWS_* from the
    // environment, which `wst()` and the archive_command set (moto accepts any).
    let mut s3_options = String::new();
    for (k, v) in moto.sink_options() {
        if !wst::config::is_secret_option(&k) && k != "aws_access_key_id" {
            write!(s3_options, "{k} = \"{v}\", ").unwrap();
        }
    }
    let config = t.join("wst.toml");
    fs::write(
        &config,
        format!(
            r#"
actor = "postgres@test"
audit_log = "{t}/state/audit.jsonl"

[encryption]
key_file = "{t}/control/backup.key"

[[sinks]]
name = "local-c"
url = "{t}/C"

[[sinks]]
name = "offsite-s3"
url = "s3://wst-wal/prod"
medium = "object_storage"
offsite = true
options = {{ {s3_options} }}

[wal]
sync_sinks = ["local-c"]
queue_dir = "{t}/queue"
queue_max_bytes = 1073741824
"#,
            t = t.display()
        ),
    )
    .unwrap();
    fs::create_dir_all(t.join("state")).unwrap();
    fs::create_dir_all(t.join("control")).unwrap();
    chown_tree(t, user);
    assert_eq!(wst(user, &config, &["keygen"]).code, 0);
    assert_eq!(wst(user, &config, &["init"]).code, 0);

    // archive_mode takes effect at server start. Keep archived segments in pg_wal so the
    // test can compare them (no recycling).
    cluster
        .psql(
            "postgres",
            &format!(
                "ALTER SYSTEM SET archive_mode = on; \
                 ALTER SYSTEM SET archive_command = 'AWS_ACCESS_KEY_ID={S3_KEY_ID} \
                 AWS_SECRET_ACCESS_KEY={S3_SECRET} RUST_LOG=warn {WST} --config {} wal-push %p'; \
                 ALTER SYSTEM SET wal_keep_size = '2GB';",
                config.display()
            ),
        )
        .unwrap();
    cluster.restart().unwrap();

    // Real WAL: rows, then a switch, three times.
    cluster
        .psql("postgres", "CREATE TABLE t (id int, body text);")
        .unwrap();
    for round in 0..3 {
        cluster
            .psql(
                "postgres",
                &format!(
                    "INSERT INTO t SELECT g, repeat('wal {round} ' || g, 20) \
                     FROM generate_series(1, 30000) g; SELECT pg_switch_wal();"
                ),
            )
            .unwrap();
    }
    let last: String = cluster
        .psql(
            "postgres",
            "SELECT pg_walfile_name(pg_current_wal_lsn() - 1);",
        )
        .unwrap()
        .trim()
        .to_owned();
    let archiver = || {
        cluster
            .psql(
                "postgres",
                "SELECT archived_count || ' ' || failed_count || ' ' || coalesce(last_archived_wal, '') \
                 FROM pg_stat_archiver;",
            )
            .unwrap()
    };
    wait_for("the archiver", Duration::from_secs(120), || {
        archiver().contains(&last)
    });
    let stats = archiver();
    assert!(
        stats.split(' ').nth(1) == Some("0"),
        "no failed archive_command: {stats}"
    );

    // Which files PostgreSQL considers archived: every `.done` in archive_status.
    let pg_wal = cluster.data_dir().join("pg_wal");
    let archived: BTreeSet<String> = fs::read_dir(pg_wal.join("archive_status"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".done"))
                .map(str::to_owned)
        })
        .collect();
    assert!(archived.len() >= 3, "{archived:?}");
    assert!(archived.contains(&last), "{archived:?}");

    // On the local sink at once (synchronous) …
    for name in &archived {
        let object = t.join("C").join(format!("wst-backup.wal.{name}.zst.wst"));
        assert!(object.is_file(), "{name} on local-c");
    }
    // … and on S3 once the background drain ran.
    let s3: Arc<dyn Sink> = Arc::new(
        ObjectStoreSink::builder("offsite-s3", "s3://wst-wal/prod")
            .options(moto.sink_options())
            .build()
            .unwrap(),
    );
    let want: BTreeSet<String> = archived
        .iter()
        .map(|n| format!("wst-backup.wal.{n}.zst.wst"))
        .collect();
    let start = Instant::now();
    loop {
        let on_s3: BTreeSet<String> = s3
            .list("wst-backup.wal.")
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.name)
            .collect();
        if want.is_subset(&on_s3) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "S3 still lacks {:?}",
            want.difference(&on_s3).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let drain = wst(user, &config, &["wal-drain"]);
    assert_eq!(drain.code, 0, "the queue is empty");
    assert!(
        drain.stdout.contains("backlog 0 objects"),
        "{}",
        drain.stdout
    );

    // Every archived file comes back byte for byte (what restore_command does).
    let restore = t.join("restore");
    fs::create_dir(&restore).unwrap();
    chown_tree(&restore, user);
    for name in &archived {
        let dest = restore.join("RECOVERYXLOG");
        let r = wst(user, &config, &["wal-fetch", name, dest.to_str().unwrap()]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(
            fs::read(&dest).unwrap(),
            fs::read(pg_wal.join(name)).unwrap(),
            "{name} restored byte for byte"
        );
    }

    // Idempotent: pushing an archived segment again succeeds without rewriting it.
    let name = archived.iter().next().unwrap().clone();
    let path = pg_wal.join(&name);
    let again = wst(
        user,
        &config,
        &["--json", "wal-push", path.to_str().unwrap()],
    );
    assert_eq!(again.code, 0, "{}", again.stderr);
    let report: serde_json::Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(report["already_archived"], serde_json::json!(["local-c"]));

    // Different content under the same name: exit 1, the message names the segment.
    let other = t.join("other");
    fs::create_dir(&other).unwrap();
    let mut bytes = fs::read(&path).unwrap();
    bytes[100] ^= 0xFF;
    fs::write(other.join(&name), &bytes).unwrap();
    chown_tree(&other, user);
    let conflict = wst(
        user,
        &config,
        &["wal-push", other.join(&name).to_str().unwrap()],
    );
    assert_eq!(conflict.code, 1);
    assert!(
        conflict.stderr.contains(&name) && conflict.stderr.contains("different content"),
        "{}",
        conflict.stderr
    );

    // A flipped byte in the local copy: restored from S3, the bad copy named.
    let object = t.join("C").join(format!("wst-backup.wal.{name}.zst.wst"));
    let mut sealed = fs::read(&object).unwrap();
    let mid = sealed.len() / 2;
    sealed[mid] ^= 0x01;
    fs::write(&object, &sealed).unwrap();
    let dest: PathBuf = restore.join("RECOVERYXLOG");
    fs::remove_file(&dest).unwrap();
    let r = wst(user, &config, &["wal-fetch", &name, dest.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("local-c") && r.stderr.contains("offsite-s3"),
        "names the bad copy and the sink used: {}",
        r.stderr
    );
    assert_eq!(fs::read(&dest).unwrap(), fs::read(&path).unwrap());

    // Missing: exit 1 and quiet (PostgreSQL probes for these), nothing written.
    fs::remove_file(&dest).unwrap();
    for missing in ["0000000100000000000000FF", "00000002.history"] {
        let r = wst(
            user,
            &config,
            &["wal-fetch", missing, dest.to_str().unwrap()],
        );
        assert_eq!(r.code, 1, "{missing}");
        assert!(r.stderr.trim().is_empty(), "quiet: {}", r.stderr);
        assert!(!dest.exists());
    }
    assert_eq!(
        fs::read_dir(&restore).unwrap().count(),
        0,
        "no temporary files left"
    );
    // Not a WAL name: bad usage.
    let r = wst(
        user,
        &config,
        &["wal-fetch", "../etc/passwd", dest.to_str().unwrap()],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);

    // The audit trail is intact and records the conflict and the bad copy.
    assert_eq!(wst(user, &config, &["audit", "verify"]).code, 0);
    let audit = fs::read_to_string(t.join("state/audit.jsonl")).unwrap();
    assert!(audit.contains("wal_same_content"), "{audit}");
    assert!(audit.contains("wal_copy_authentic"), "{audit}");
    assert!(!audit.contains("dropped"), "nothing was dropped: {audit}");
    // Access audit (issue 18): one `content_read` record per WAL file handed out (every
    // archived file once, the re-fetched one after the flipped byte again), naming the actor;
    // none for the files that were not there.
    let reads: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["event"]["type"] == "content_read")
        .collect();
    assert_eq!(reads.len(), archived.len() + 1, "{reads:?}");
    assert!(
        reads
            .iter()
            .all(|r| r["actor"] == "postgres@test" && r["event"]["purpose"] == "wal-fetch")
    );
    assert!(
        reads
            .iter()
            .any(|r| r["event"]["artifact"] == name.as_str() && r["event"]["sink"] == "offsite-s3")
    );
}

/// A free TCP port on the loopback (for a recovered server's port; it listens on its socket).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `psql` against a recovered server listening on `socket_dir`/`port`, as the superuser.
fn psql_at(cluster: &TestCluster, socket_dir: &Path, port: u16, sql: &str) -> String {
    let out = cluster
        .client_command("psql")
        .env("PGHOST", socket_dir)
        .env("PGPORT", port.to_string())
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            "postgres",
            "-c",
            sql,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "psql on port {port}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn pg_ctl_stop(cluster: &TestCluster, user: (u32, u32), pgdata: &Path) {
    let mut cmd = Command::new(cluster.tools().program("pg_ctl"));
    cmd.args(["stop", "-m", "fast", "-w", "-D"]).arg(pgdata);
    std::os::unix::process::CommandExt::uid(&mut cmd, user.0);
    std::os::unix::process::CommandExt::gid(&mut cmd, user.1);
    assert!(
        cmd.status().unwrap().success(),
        "pg_ctl stop {}",
        pgdata.display()
    );
}

/// Point-in-time recovery end to end (issue 16): a cluster archiving through `wst wal-push`,
/// pgbench traffic, `wst base-backup`, rows committed before and after a chosen time T and a
/// WAL switch; `restore --pitr --target-time T` brings back exactly the rows committed up to
/// T, `--latest` all of them; after a break-glass recovery that keeps archiving, the promoted
/// server archives timeline 2 and a later recovery follows it; a deleted segment is named as
/// a gap before anything is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base_backup_and_point_in_time_recovery_with_a_real_cluster() {
    let Some(mut cluster) = TestCluster::start_or_skip() else {
        return;
    };
    let user = server_user(&cluster);
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    fs::create_dir_all(t.join("state")).unwrap();
    fs::create_dir_all(t.join("control")).unwrap();
    fs::create_dir_all(t.join("scratch")).unwrap();
    let db_key = t.join("control/db.key");
    fs::write(&db_key, fs::read(cluster.key_file()).unwrap()).unwrap();
    fs::set_permissions(&db_key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let config = t.join("wst.toml");
    fs::write(
        &config,
        format!(
            r#"
actor = "postgres@test"
audit_log = "{t}/state/audit.jsonl"

[database]
url = "postgresql://postgres@127.0.0.1:{port}/postgres?sslmode=disable"
restore_url = "postgresql://postgres@127.0.0.1:{port}/postgres?sslmode=disable"
password_file = "{t}/control/db.key"
expected_tables = ["public.marks", "public.pgbench_accounts"]
freshness_column = "public.marks.at"

[drill]
scratch_dir = "{t}/drill"

[erasure]
sql = ["DELETE FROM public.marks WHERE batch = $1"]

[retention]
time_zone = "UTC"
[retention.policy]
keep_daily = 7
min_age = "7d"

[encryption]
key_file = "{t}/control/backup.key"

[[sinks]]
name = "local-c"
url = "{t}/C"

[[sinks]]
name = "local-d"
url = "{t}/D"

[wal]
sync_sinks = ["local-c", "local-d"]
"#,
            t = t.display(),
            port = cluster.port()
        ),
    )
    .unwrap();
    chown_tree(t, user);
    assert_eq!(wst(user, &config, &["keygen"]).code, 0);
    assert_eq!(wst(user, &config, &["init"]).code, 0);
    cluster
        .psql(
            "postgres",
            &format!(
                "ALTER SYSTEM SET archive_mode = on; \
                 ALTER SYSTEM SET archive_timeout = '60s'; \
                 ALTER SYSTEM SET archive_command = 'RUST_LOG=warn {WST} --config {} wal-push %p';",
                config.display()
            ),
        )
        .unwrap();
    cluster.restart().unwrap();

    // pgbench traffic before the base backup, and a table of marks with known commit times.
    let pgbench = cluster
        .client_command("pgbench")
        .args(["-i", "-s", "2", "-q", "postgres"])
        .output()
        .unwrap();
    assert!(
        pgbench.status.success(),
        "{}",
        String::from_utf8_lossy(&pgbench.stderr)
    );
    cluster
        .psql("postgres", "CREATE TABLE marks (id int PRIMARY KEY, batch text, at timestamptz DEFAULT clock_timestamp());")
        .unwrap();
    let base = wst(user, &config, &["--json", "base-backup"]);
    assert_eq!(base.code, 0, "{}", base.stderr);
    let report: serde_json::Value = serde_json::from_str(&base.stdout).unwrap();
    let base_name = report["artifact"].as_str().unwrap().to_owned();
    assert!(base_name.starts_with("wst-backup-base-"), "{base_name}");
    let listing = &report["sources"][0]["listing"];
    assert_eq!(listing["timeline"], "1", "{listing}");
    assert!(
        t.join("D")
            .join(format!("{base_name}.tar.zst.wst"))
            .is_file(),
        "replicated to D:"
    );

    let traffic = cluster
        .client_command("pgbench")
        .args(["-T", "2", "-c", "2", "postgres"])
        .output()
        .unwrap();
    assert!(
        traffic.status.success(),
        "{}",
        String::from_utf8_lossy(&traffic.stderr)
    );
    cluster
        .psql(
            "postgres",
            "INSERT INTO marks (id, batch) SELECT g, 'before' FROM generate_series(1, 100) g;",
        )
        .unwrap();
    // T: after every 'before' row committed, before any 'after' row.
    std::thread::sleep(Duration::from_millis(1100));
    let target: String = cluster
        .psql("postgres", "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"');")
        .unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    cluster
        .psql(
            "postgres",
            "INSERT INTO marks (id, batch) SELECT g, 'after' FROM generate_series(101, 150) g;",
        )
        .unwrap();
    let last: String = cluster
        .psql(
            "postgres",
            "SELECT pg_walfile_name(pg_current_wal_lsn()); SELECT pg_switch_wal();",
        )
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_owned();
    wait_for("the archiver", Duration::from_secs(120), || {
        t.join("C")
            .join(format!("wst-backup.wal.{last}.zst.wst"))
            .is_file()
    });

    // PITR to T: exactly the rows committed up to T.
    let scratch = t.join("scratch");
    let port1 = free_port();
    let pg1 = scratch.join("pg1");
    let r = wst(
        user,
        &config,
        &[
            "restore",
            "--pitr",
            "--pgdata",
            pg1.to_str().unwrap(),
            "--target-time",
            &target,
            "--port",
            &port1.to_string(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains(&base_name), "{}", r.stdout);
    assert_eq!(
        psql_at(
            &cluster,
            &scratch,
            port1,
            "SELECT count(*) FROM marks WHERE batch = 'before';"
        ),
        "100"
    );
    assert_eq!(
        psql_at(
            &cluster,
            &scratch,
            port1,
            "SELECT count(*) FROM marks WHERE batch = 'after';"
        ),
        "0"
    );
    assert_eq!(
        psql_at(
            &cluster,
            &scratch,
            port1,
            "SELECT count(*) FROM pgbench_accounts;"
        ),
        "200000"
    );
    assert_eq!(
        psql_at(&cluster, &scratch, port1, "SHOW archive_mode;"),
        "off",
        "a scratch copy never archives"
    );
    pg_ctl_stop(&cluster, user, &pg1);

    // Status, from listings: the archive is continuous from the base backup and fresh.
    let status = wst(user, &config, &["--json", "status"]);
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let rule = |name: &str| {
        status["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["rule"] == name)
            .unwrap_or_else(|| panic!("no rule {name}: {status}"))
            .clone()
    };
    assert_eq!(rule("WAL continuity")["passed"], true, "{status}");
    assert_eq!(rule("RPO (WAL)")["passed"], true, "{status}");
    assert_eq!(rule("WAL archive lag")["passed"], true, "{status}");

    // The drill: a random point since the base backup, proven, with RTO and the real RPO.
    let drill = wst(user, &config, &["--json", "drill", "--pitr"]);
    assert_eq!(drill.code, 0, "{}{}", drill.stdout, drill.stderr);
    let report: serde_json::Value = serde_json::from_str(&drill.stdout).unwrap();
    assert_eq!(report["passed"], true, "{report}");
    assert_eq!(report["base_backup"], base_name.as_str());
    assert_eq!(
        report["row_counts"]["public.pgbench_accounts"], 200_000,
        "{report}"
    );
    assert!(report["rpo_seconds"].as_f64().unwrap() <= 900.0, "{report}");
    assert!(report["rto_seconds"].as_f64().unwrap() > 0.0);
    // The RPO bound: the server's archive_timeout plus the last push's measured latency.
    assert_eq!(report["archive_timeout_seconds"], 60, "{report}");
    let latency = report["push_latency_seconds"].as_f64().unwrap();
    assert!(latency > 0.0, "{report}");
    let bound = report["rpo_bound_seconds"].as_f64().unwrap();
    assert!((bound - (60.0 + latency)).abs() < 1e-6, "{report}");
    assert!(
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c[0] == "archive_timeout bounds the RPO" && c[1] == true),
        "{report}"
    );
    let reports: Vec<_> = fs::read_dir(t.join("drill"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("pitr-drill-"))
        .collect();
    assert_eq!(reports.len(), 2, "the Markdown and JSON reports");

    // WAL retention: WAL older than the oldest retained base backup's first segment goes
    // (once past the 7-day floor), WAL it needs stays. Only local-c's copies are made old.
    let start_wal = listing["start_wal"].as_str().unwrap().to_owned();
    let wal_on = |sink: &str| -> BTreeSet<String> {
        fs::read_dir(t.join(sink))
            .unwrap()
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_prefix("wst-backup.wal.")?
                    .strip_suffix(".zst.wst")
                    .map(str::to_owned)
            })
            .collect()
    };
    let before: BTreeSet<String> = wal_on("C");
    let old: BTreeSet<String> = before
        .iter()
        .filter(|n| n.len() == 24 && n.starts_with("00000001") && n.as_str() < start_wal.as_str())
        .cloned()
        .collect();
    assert!(
        !old.is_empty(),
        "WAL archived before the base backup: {before:?}"
    );
    for n in &before {
        let path = t.join("C").join(format!("wst-backup.wal.{n}.zst.wst"));
        assert!(
            Command::new("touch")
                .args(["-d", "30 days ago"])
                .arg(&path)
                .status()
                .unwrap()
                .success()
        );
    }
    let prune = wst(user, &config, &["--json", "prune"]);
    assert_eq!(prune.code, 0, "{}", prune.stderr);
    let after = wal_on("C");
    assert_eq!(
        before.difference(&after).cloned().collect::<BTreeSet<_>>(),
        old,
        "only WAL before {start_wal} was deleted"
    );
    assert!(
        old.is_subset(&wal_on("D")),
        "local-d's young copies are kept"
    );
    let pruned: serde_json::Value = serde_json::from_str(&prune.stdout).unwrap();
    assert_eq!(
        pruned["wal"][0]["keep_from"],
        start_wal.as_str(),
        "{pruned}"
    );

    // PITR to the latest point, under break-glass: everything, and archiving goes on.
    let port2 = free_port();
    let pg2 = scratch.join("pg2");
    let r = wst(
        user,
        &config,
        &[
            "restore",
            "--pitr",
            "--pgdata",
            pg2.to_str().unwrap(),
            "--latest",
            "--port",
            &port2.to_string(),
            "--break-glass-by",
            "oncall@example",
            "--reason",
            "INC-16 drill of a promotion",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        psql_at(&cluster, &scratch, port2, "SELECT count(*) FROM marks;"),
        "150"
    );
    // Promoted on timeline 2, archiving into the same repository.
    psql_at(
        &cluster,
        &scratch,
        port2,
        "INSERT INTO marks (id, batch) SELECT g, 'timeline 2' FROM generate_series(151, 160) g;",
    );
    let tl2_last = psql_at(
        &cluster,
        &scratch,
        port2,
        "SELECT pg_walfile_name(pg_current_wal_lsn());",
    );
    assert!(tl2_last.starts_with("00000002"), "{tl2_last}");
    psql_at(&cluster, &scratch, port2, "SELECT pg_switch_wal();");
    wait_for("timeline 2 archived", Duration::from_secs(120), || {
        t.join("C")
            .join(format!("wst-backup.wal.{tl2_last}.zst.wst"))
            .is_file()
            && t.join("C")
                .join("wst-backup.wal.00000002.history.zst.wst")
                .is_file()
    });
    pg_ctl_stop(&cluster, user, &pg2);

    // Both histories stay restorable: the latest point now follows timeline 2.
    let port3 = free_port();
    let pg3 = scratch.join("pg3");
    let r = wst(
        user,
        &config,
        &[
            "restore",
            "--pitr",
            "--pgdata",
            pg3.to_str().unwrap(),
            "--latest",
            "--port",
            &port3.to_string(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        psql_at(
            &cluster,
            &scratch,
            port3,
            "SELECT count(*) FROM marks WHERE batch = 'timeline 2';"
        ),
        "10"
    );
    pg_ctl_stop(&cluster, user, &pg3);

    // Erased data stays erased after a point-in-time recovery (issue 18): the register's SQL
    // runs in the recovered database before it is handed over.
    let r = wst(
        user,
        &config,
        &[
            "erasure",
            "record",
            "--subject",
            "after",
            "--requested-by",
            "dpo",
            "--reason",
            "GDPR-17",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let port6 = free_port();
    let pg6 = scratch.join("pg6");
    let r = wst(
        user,
        &config,
        &[
            "--json",
            "restore",
            "--pitr",
            "--pgdata",
            pg6.to_str().unwrap(),
            "--latest",
            "--port",
            &port6.to_string(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        out["erasures"][0]["rows"], 50,
        "the 50 'after' rows were re-erased: {out}"
    );
    assert_eq!(
        psql_at(
            &cluster,
            &scratch,
            port6,
            "SELECT count(*) FROM marks WHERE batch = 'after';"
        ),
        "0"
    );
    assert_eq!(
        psql_at(
            &cluster,
            &scratch,
            port6,
            "SELECT count(*) FROM marks WHERE batch = 'before';"
        ),
        "100"
    );
    pg_ctl_stop(&cluster, user, &pg6);

    // A deleted segment after the base backup (timeline 1 goes on past it): named as a gap,
    // nothing written.
    let newest_tl1: String = cluster
        .psql("postgres", "INSERT INTO marks (id, batch) SELECT g, 'later' FROM generate_series(161, 170) g; SELECT pg_walfile_name(pg_current_wal_lsn()); SELECT pg_switch_wal();")
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_owned();
    wait_for("the archiver", Duration::from_secs(120), || {
        t.join("C")
            .join(format!("wst-backup.wal.{newest_tl1}.zst.wst"))
            .is_file()
    });
    let stop_wal = listing["stop_wal"].as_str().unwrap().to_owned();
    let victim = {
        let seg = u64::from_str_radix(&stop_wal[16..], 16).unwrap() + 1;
        format!("{}{seg:08X}", &stop_wal[..16])
    };
    for sink in ["C", "D"] {
        fs::remove_file(
            t.join(sink)
                .join(format!("wst-backup.wal.{victim}.zst.wst")),
        )
        .unwrap();
    }
    let pg4 = scratch.join("pg4");
    let r = wst(
        user,
        &config,
        &[
            "restore",
            "--pitr",
            "--pgdata",
            pg4.to_str().unwrap(),
            "--latest",
        ],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains(&victim) && r.stderr.contains("gap"),
        "{}",
        r.stderr
    );
    assert!(!pg4.exists(), "nothing written");
    // Every copy of an archived segment corrupt: exit 126, which PostgreSQL takes as fatal
    // (not as the end of the archive, which would promote early and lose what follows).
    for sink in ["C", "D"] {
        let object = t
            .join(sink)
            .join(format!("wst-backup.wal.{stop_wal}.zst.wst"));
        let mut sealed = fs::read(&object).unwrap();
        let mid = sealed.len() / 2;
        sealed[mid] ^= 0x01;
        fs::write(&object, &sealed).unwrap();
    }
    let dest = scratch.join("RECOVERYXLOG");
    let r = wst(
        user,
        &config,
        &["wal-fetch", &stop_wal, dest.to_str().unwrap()],
    );
    assert_eq!(r.code, 126, "{}", r.stderr);
    assert!(
        r.stderr.contains("local-c") && r.stderr.contains("local-d"),
        "{}",
        r.stderr
    );
    assert!(!dest.exists());
    let status = wst(user, &config, &["--json", "status"]);
    assert_eq!(status.code, 1);
    assert!(
        status.stdout.contains(&victim),
        "status names the gap: {}",
        status.stdout
    );

    assert_eq!(wst(user, &config, &["audit", "verify"]).code, 0);
    let audit = fs::read_to_string(t.join("state/audit.jsonl")).unwrap();
    assert!(audit.contains("INC-16"), "break-glass audited");
    assert!(audit.contains("recovered to time"), "{audit}");
}

/// `[wal] archive_async = true`: `PostgreSQL`'s archiver calls `wal-push`, which starts the
/// worker and answers from its acknowledgements; every segment ends up on the synchronous
/// sink byte for byte, `PostgreSQL` records no failure, a push by hand of a file not marked
/// ready goes the synchronous way, and a failed push in the worker reaches the waiting
/// `wal-push` as exit 1 naming the segment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asynchronous_archiving_with_a_real_cluster() {
    let Some(mut cluster) = TestCluster::start_or_skip() else {
        return;
    };
    let user = server_user(&cluster);
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let config = t.join("wst.toml");
    fs::write(
        &config,
        format!(
            r#"
actor = "postgres@test"
audit_log = "{t}/state/audit.jsonl"

[encryption]
key_file = "{t}/control/backup.key"

[[sinks]]
name = "local-c"
url = "{t}/C"

[wal]
archive_async = true
spool_dir = "{t}/spool"
process_max = 2
async_timeout_seconds = 30
"#,
            t = t.display()
        ),
    )
    .unwrap();
    fs::create_dir_all(t.join("state")).unwrap();
    fs::create_dir_all(t.join("control")).unwrap();
    chown_tree(t, user);
    assert_eq!(wst(user, &config, &["keygen"]).code, 0);
    assert_eq!(wst(user, &config, &["init"]).code, 0);

    // Segments pile up while archive_command fails, then the worker takes them in a batch.
    cluster
        .psql(
            "postgres",
            "ALTER SYSTEM SET archive_mode = on; ALTER SYSTEM SET archive_command = 'false'; \
             ALTER SYSTEM SET wal_keep_size = '2GB';",
        )
        .unwrap();
    cluster.restart().unwrap();
    cluster
        .psql("postgres", "CREATE TABLE t (id int, body text);")
        .unwrap();
    for round in 0..5 {
        cluster
            .psql(
                "postgres",
                &format!(
                    "INSERT INTO t SELECT g, repeat('async {round} ' || g, 20) \
                     FROM generate_series(1, 20000) g; SELECT pg_switch_wal();"
                ),
            )
            .unwrap();
    }
    let last: String = cluster
        .psql(
            "postgres",
            "SELECT pg_walfile_name(pg_current_wal_lsn() - 1);",
        )
        .unwrap()
        .trim()
        .to_owned();
    cluster
        .psql(
            "postgres",
            &format!(
                "ALTER SYSTEM SET archive_command = 'RUST_LOG=warn {WST} --config {} wal-push %p'; \
                 SELECT pg_reload_conf();",
                config.display()
            ),
        )
        .unwrap();
    let archiver = || {
        cluster
            .psql(
                "postgres",
                "SELECT archived_count || ' ' || coalesce(last_archived_wal, '') \
                 FROM pg_stat_archiver;",
            )
            .unwrap()
    };
    wait_for("the archiver", Duration::from_secs(120), || {
        archiver().contains(&last)
    });

    let pg_wal = cluster.data_dir().join("pg_wal");
    let archived: BTreeSet<String> = fs::read_dir(pg_wal.join("archive_status"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".done"))
                .map(str::to_owned)
        })
        .collect();
    assert!(archived.len() >= 5, "{archived:?}");
    // The worker ran (its lock file) and every segment is on the sink, byte for byte.
    assert!(t.join("spool").join("worker.lock").is_file());
    let restore = t.join("restore");
    fs::create_dir(&restore).unwrap();
    chown_tree(&restore, user);
    for name in &archived {
        let dest = restore.join("RECOVERYXLOG");
        let r = wst(user, &config, &["wal-fetch", name, dest.to_str().unwrap()]);
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
        assert_eq!(
            fs::read(&dest).unwrap(),
            fs::read(pg_wal.join(name)).unwrap(),
            "{name} restored byte for byte"
        );
        fs::remove_file(&dest).unwrap();
    }

    // By hand, a file PostgreSQL is done with: the synchronous path, idempotent.
    let name = archived.iter().next().unwrap().clone();
    let again = wst(
        user,
        &config,
        &["--json", "wal-push", pg_wal.join(&name).to_str().unwrap()],
    );
    assert_eq!(again.code, 0, "{}", again.stderr);
    let report: serde_json::Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(report["already_archived"], serde_json::json!(["local-c"]));

    // A file marked ready whose content differs from the archived copy: the worker's push
    // fails, and the waiting wal-push exits 1 naming the segment.
    let other = t.join("other-wal");
    fs::create_dir_all(other.join("archive_status")).unwrap();
    let mut bytes = fs::read(pg_wal.join(&name)).unwrap();
    bytes[100] ^= 0xFF;
    fs::write(other.join(&name), &bytes).unwrap();
    fs::write(
        other.join("archive_status").join(format!("{name}.ready")),
        "",
    )
    .unwrap();
    chown_tree(&other, user);
    let conflict = wst(
        user,
        &config,
        &["wal-push", other.join(&name).to_str().unwrap()],
    );
    assert_eq!(conflict.code, 1, "{}", conflict.stderr);
    assert!(
        conflict.stderr.contains(&name)
            && conflict.stderr.contains("asynchronous worker")
            && conflict.stderr.contains("different content"),
        "{}",
        conflict.stderr
    );
    // And the archived copy is untouched.
    let dest = restore.join("RECOVERYXLOG");
    assert_eq!(
        wst(user, &config, &["wal-fetch", &name, dest.to_str().unwrap()]).code,
        0
    );
    assert_eq!(
        fs::read(&dest).unwrap(),
        fs::read(pg_wal.join(&name)).unwrap()
    );
    cluster.stop().unwrap();
}
