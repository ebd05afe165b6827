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
}
