//! Design invariant 7: the database password never appears in an error, a log line, `Debug`
//! output, the manifest description, the dump, the restore proof, a child's argv or
//! environment, or any file except the private passfile (which is gone afterwards).

mod common;

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use wst_core::{EntryCheck, Source};
use wst_pg::{Error, PgDumpSource, PgRestoreListCheck, RestoreOptions};

#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn files_containing(dir: &std::path::Path, needle: &[u8], prefix: Option<&str>) -> Vec<String> {
    let mut hits = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return hits;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if prefix.is_some_and(|p| !name.starts_with(p)) {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            hits.extend(files_containing(&path, needle, None));
        } else if let Ok(bytes) = std::fs::read(&path)
            && bytes.windows(needle.len()).any(|w| w == needle)
        {
            hits.push(path.display().to_string());
        }
    }
    hits
}

/// The tests of this file that dump run one at a time: `password_never_leaks` captures logs
/// with a thread-scoped subscriber, and a dump running meanwhile on another thread can race
/// tracing's callsite registration so that events go missing from the capture.
#[cfg(unix)]
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_never_leaks() {
    let _serial = SERIAL.lock().await;
    let log = LogBuffer::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let Some(cluster) = common::demo_cluster(1) else {
        return;
    };
    let password = cluster.password().to_owned();
    let artifacts = tempfile::tempdir().unwrap();
    let mut seen = String::new();

    // A real dump through a wrapper that records pg_dump's argv and environment.
    let real = cluster.tools().program("pg_dump");
    let record = artifacts.path().join("child");
    std::fs::create_dir(&record).unwrap();
    let (_stub, tools) = common::stub_pg_dump(&format!(
        "printf '%s\\n' \"$@\" > {rec}/argv.txt; env > {rec}/env.txt; exec {real} \"$@\"",
        rec = record.display(),
        real = real.display()
    ));
    let source = PgDumpSource::new(cluster.connection("wst_dev"))
        .with_tools(tools)
        .with_spool_dir(artifacts.path());
    writeln!(seen, "{source:?}\n{:?}", cluster.connection("wst_dev")).unwrap();
    let dump = source.dump().await.expect("dump");
    let dump_file = common::plain_dump(&dump);
    let argv = std::fs::read_to_string(record.join("argv.txt")).unwrap();
    assert!(argv.contains("--snapshot="), "the wrapper ran: {argv}");
    let env = std::fs::read_to_string(record.join("env.txt")).unwrap();
    assert!(
        env.contains("PGPASSFILE="),
        "password handed over by passfile"
    );
    assert!(!env.contains("PGPASSWORD"), "{env}");
    writeln!(
        seen,
        "{dump:?}\n{}",
        serde_json::to_string(&dump.source_description()).unwrap()
    )
    .unwrap();

    let checks = PgRestoreListCheck::from_facts("wst_dev_database.backup", dump.facts())
        .with_tools(cluster.tools().clone())
        .check("wst_dev_database.backup", &dump_file);
    assert!(checks.iter().all(|c| c.passed), "{checks:?}");
    writeln!(seen, "{checks:?}").unwrap();
    let proof = wst_pg::restore_dump(
        &dump_file,
        dump.facts(),
        &RestoreOptions::new(cluster.connection("postgres")).with_tools(cluster.tools().clone()),
    )
    .await
    .expect("restore");
    assert!(proof.passed());
    writeln!(
        seen,
        "{proof:?}\n{}",
        serde_json::to_string(&proof).unwrap()
    )
    .unwrap();

    // Failures while holding the right password.
    let mut errors: Vec<Error> = Vec::new();
    errors.push(
        PgDumpSource::new(cluster.connection("missing_db"))
            .with_tools(cluster.tools().clone())
            .dump()
            .await
            .unwrap_err(),
    );
    let (_s1, failing) = common::stub_pg_dump(
        r#"if [ "$1" = "--version" ]; then echo "pg_dump (PostgreSQL) 15.99"; exit 0; fi
echo "pg_dump: error: password is $(cut -d: -f5 "$PGPASSFILE")" >&2; exit 1"#,
    );
    errors.push(
        PgDumpSource::new(cluster.connection("wst_dev"))
            .with_tools(failing)
            .dump()
            .await
            .unwrap_err(),
    );
    errors.push(
        wst_pg::restore_dump(
            &dump_file,
            dump.facts(),
            &RestoreOptions::new(cluster.connection("postgres"))
                .with_database("wst_dev")
                .with_tools(cluster.tools().clone()),
        )
        .await
        .unwrap_err(),
    );
    let core_err = PgDumpSource::new(cluster.connection("missing_db"))
        .with_tools(cluster.tools().clone())
        .prepare()
        .await
        .map(|_| ())
        .unwrap_err();
    writeln!(seen, "{core_err}\n{core_err:?}").unwrap();
    assert!(matches!(errors[1], Error::ToolFailed { .. }));
    for e in &errors {
        writeln!(seen, "{e}\n{e:?}").unwrap();
    }
    writeln!(seen, "{:?}", cluster.password_secret()).unwrap();

    let logs = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("pg_dump finished"),
        "logging was captured: {logs}"
    );
    println!("---- everything the tests saw ----\n{seen}\n---- log ----\n{logs}");

    assert!(
        seen.contains("[REDACTED]"),
        "the failing stub's stderr was redacted"
    );
    assert!(
        !seen.contains(&password),
        "password in errors/Debug/manifest/proof"
    );
    assert!(!logs.contains(&password), "password in log output");
    assert!(!argv.contains(&password), "password in pg_dump argv");
    assert!(!env.contains(&password), "password in pg_dump environment");
    let hits = files_containing(artifacts.path(), password.as_bytes(), None);
    assert!(hits.is_empty(), "password in artifacts: {hits:?}");
    let server_log = std::fs::read_to_string(cluster.log_file()).unwrap_or_default();
    assert!(
        !server_log.contains(&password),
        "password in the server log"
    );
    // No passfile outlives its run: neither in the private directory nor (old layout) in
    // the temporary directory.
    let mut passfiles = files_containing(&wst_pg::passfile_dir(), password.as_bytes(), None);
    passfiles.extend(files_containing(
        &std::env::temp_dir(),
        password.as_bytes(),
        Some(".wst-pgpass-"),
    ));
    assert!(
        passfiles.is_empty(),
        "private passfiles left behind: {passfiles:?}"
    );
}

/// The environment variable that turns [`killed_run_helper_process`] into the helper.
#[cfg(unix)]
const HELPER: &str = "WST_PG_KILLED_RUN_HELPER";

/// Helper of [`a_killed_runs_passfile_is_removed_by_the_next_run`], run as a child process of
/// this test binary: a dump whose `pg_dump` hangs, so the parent can `kill -9` it while its
/// passfile exists. Without the helper's environment it does nothing.
#[cfg(unix)]
#[tokio::test]
async fn killed_run_helper_process() {
    let (Ok(url), Ok(key), Ok(stub)) = (
        std::env::var(HELPER),
        std::env::var("WST_PG_HELPER_KEY"),
        std::env::var("WST_PG_HELPER_STUB"),
    ) else {
        return;
    };
    let conn = wst_pg::ConnectionConfig::from_url(&url)
        .unwrap()
        .with_password(wst_pg::PasswordSource::KeyFile(key.into()));
    let _ = PgDumpSource::new(conn)
        .with_tools(wst_pg::PgTools::in_dir(&stub))
        .dump()
        .await;
    unreachable!("the parent kills this process while pg_dump hangs");
}

/// Issue 15: a `kill -9` while `pg_dump` runs leaves the passfile (with the password) behind;
/// the next run removes it, and after that run no file holding the password remains.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_runs_passfile_is_removed_by_the_next_run() {
    let _serial = SERIAL.lock().await;
    let Some(cluster) = common::demo_cluster(1) else {
        return;
    };
    let password = cluster.password().to_owned();
    let dir = wst_pg::passfile_dir();
    let holding = |dir: &std::path::Path| files_containing(dir, password.as_bytes(), None);
    // pg_dump that answers the version check, then hangs.
    let (stub, _) = common::stub_pg_dump(
        r#"if [ "$1" = "--version" ]; then echo "pg_dump (PostgreSQL) 99.0"; exit 0; fi
exec sleep 30"#,
    );
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "killed_run_helper_process", "--nocapture"])
        .env(
            HELPER,
            format!(
                "postgresql://{}@127.0.0.1:{}/wst_dev?sslmode=disable",
                cluster.superuser(),
                cluster.port()
            ),
        )
        .env("WST_PG_HELPER_KEY", cluster.key_file())
        .env("WST_PG_HELPER_STUB", stub.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let left = loop {
        let found = holding(&dir);
        if !found.is_empty() {
            break found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the helper never wrote its passfile into {}",
            dir.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    child.kill().unwrap(); // SIGKILL: no destructor runs
    child.wait().unwrap();
    // The orphaned `sleep` holds no lock (the passfile's descriptor is close-on-exec).
    assert_eq!(left.len(), 1, "{left:?}");
    let stale = std::path::PathBuf::from(&left[0]);
    assert!(stale.exists(), "a killed run leaves its passfile behind");
    // Older than a minute, as a passfile from a run killed last night is.
    filetime::set_file_mtime(
        &stale,
        filetime::FileTime::from_system_time(
            std::time::SystemTime::now() - std::time::Duration::from_secs(3600),
        ),
    )
    .unwrap();

    let spool = tempfile::tempdir().unwrap();
    let dump = PgDumpSource::new(cluster.connection("wst_dev"))
        .with_tools(cluster.tools().clone())
        .with_spool_dir(spool.path())
        .dump()
        .await
        .expect("the next run dumps");
    drop(dump);
    assert!(!stale.exists(), "the next run removed the stale passfile");
    let remaining = holding(&dir);
    assert!(
        remaining.is_empty(),
        "no file holding the password remains: {remaining:?}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "the passfile directory is owner-only");
    }
}
