//! Post-restore checks in the restore drill (issue 9): SQL assertions and a database ↔ object
//! cross-check against the scratch database of a real `PostgreSQL`, smoke-test commands with
//! the scratch database in their environment, all before the scratch database is dropped; and
//! the same hook on a files-only drill (no server needed).
//!
//! The smoke tests run `sh`, so these tests are Unix-only; on Windows the hook is the same and
//! a smoke test would name e.g. `cmd.exe /C …` or a program directly.
#![cfg(unix)]

mod common;

use std::collections::HashSet;
use std::fs;
use std::ops::Not as _;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use common::{cipher, local_sink};
use wst::core::{
    ArtifactVerifier, BackupJob, BoxError, Check, CheckContext, Cipher, DrillOptions, DrillReport,
    EntryRestorer, FileTreeSource, PostRestoreCheck, Sink, SmokeTest, restore_drill,
};
use wst::pg::{
    Expectation, ObjectKeyCrossCheck, ObjectLookup, PgDrillRestorer, PgDumpSource, RestoreOptions,
    SqlAssertion, TestCluster,
};

const PROOFS: usize = 50;

fn key(i: usize) -> String {
    format!("proofs/2026/{i:04}.pdf")
}

/// Backs up the `shop` database and the "bucket" tree (under the archive root
/// `buckets/proofs`, the way a bucket source lays objects out).
async fn backup(
    cluster: &TestCluster,
    bucket: &Path,
    sink: &Arc<dyn Sink>,
    cipher: &Arc<dyn Cipher>,
) -> ArtifactVerifier {
    let verifier = ArtifactVerifier::new()
        .require("buckets/proofs/")
        .require("shop_database.backup");
    let report = BackupJob::builder(Arc::clone(cipher))
        .source(Arc::new(
            FileTreeSource::new(bucket, "buckets/proofs").unwrap(),
        ))
        .source(Arc::new(
            PgDumpSource::new(cluster.connection("shop"))
                .with_entry("shop_database.backup")
                .with_tools(cluster.tools().clone()),
        ))
        .sink(Arc::clone(sink))
        .verifier(verifier.clone())
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    assert!(report.is_success(), "{report:#?}");
    verifier
}

fn restorer(cluster: &TestCluster, drop_after: bool) -> Arc<dyn EntryRestorer> {
    Arc::new(PgDrillRestorer::new(
        RestoreOptions::new(cluster.connection("postgres"))
            .with_drop_after(drop_after)
            .with_tools(cluster.tools().clone()),
    ))
}

/// The cross-check the lead's end-to-end test composes the same way: keys from the database,
/// objects under `<restore target>/buckets/proofs/`, the bucket prefix `proofs/` stripped.
fn cross_check() -> Arc<dyn PostRestoreCheck> {
    Arc::new(
        ObjectKeyCrossCheck::in_restored_tree(
            "proof_pdfs",
            "SELECT pdf_key FROM proofs ORDER BY id",
            "buckets/proofs",
        )
        .strip_key_prefix("proofs/"),
    )
}

/// `PATH` with the cluster's `psql` first.
fn path_with_psql(cluster: &TestCluster) -> String {
    let bindir = cluster
        .tools()
        .program("psql")
        .parent()
        .unwrap()
        .display()
        .to_string();
    format!("{bindir}:{}", std::env::var("PATH").unwrap_or_default())
}

fn check<'r>(report: &'r DrillReport, name: &str) -> &'r Check {
    report
        .post_restore_checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check `{name}` in {:#?}", report.post_restore_checks))
}

fn database_exists(cluster: &TestCluster, name: &str) -> bool {
    cluster
        .psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'"),
        )
        .unwrap()
        == "1"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_restore_checks_prove_the_scratch_database_and_objects_before_cleanup() {
    let Some(cluster) = TestCluster::start_or_skip() else {
        return;
    };
    cluster.create_database("shop").unwrap();
    cluster
        .psql(
            "shop",
            &format!(
                "CREATE TABLE proofs (id int PRIMARY KEY, pdf_key text NOT NULL);
                 CREATE TABLE orders (id int PRIMARY KEY, proof_id int NOT NULL);
                 INSERT INTO proofs SELECT i, 'proofs/2026/' || lpad(i::text, 4, '0') || '.pdf'
                   FROM generate_series(1, {PROOFS}) i;
                 INSERT INTO orders SELECT i, i FROM generate_series(1, {PROOFS}) i;"
            ),
        )
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let bucket = tmp.path().join("bucket");
    for i in 1..=PROOFS {
        let file = bucket.join(key(i).strip_prefix("proofs/").unwrap());
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(&file, format!("%PDF proof {i}")).unwrap();
    }
    let sink = local_sink("local-c", &tmp.path().join("C")).await;
    let cipher = cipher();
    let verifier = backup(&cluster, &bucket, &sink, &cipher).await;
    let path = path_with_psql(&cluster);

    // 1. Everything holds: the drill passes, and the scratch database is dropped only after
    //    the checks (which queried it).
    let mut options = DrillOptions::new("shop", "otto", tmp.path().join("scratch"))
        .with_check(Arc::new(SqlAssertion::new(
            "proof_count",
            "SELECT count(*) FROM proofs",
            Expectation::ScalarEquals(PROOFS.to_string()),
        )))
        .with_check(Arc::new(SqlAssertion::returns_no_rows(
            "orders_have_proofs",
            "SELECT o.id FROM orders o LEFT JOIN proofs p ON p.id = o.proof_id WHERE p.id IS NULL",
        )))
        .with_check(Arc::new(SqlAssertion::new(
            "first_proofs",
            "SELECT id, pdf_key FROM proofs ORDER BY id LIMIT 2",
            Expectation::Equals(vec![format!("1|{}", key(1)), format!("2|{}", key(2))]),
        )))
        .with_check(cross_check())
        .with_check(Arc::new(
            SmokeTest::new(
                "app_reads_db",
                "sh",
                [
                    "-c",
                    r#"test -d "$WST_RESTORE_DIR/buckets/proofs" && psql -X -At -c "select count(*) from proofs""#,
                ],
            )
            .with_env("PATH", &path)
            .with_timeout_secs(60),
        ))
        .with_check(Arc::new(SmokeTest::new(
            "passfile_is_redacted",
            "sh",
            ["-c", r#"env | sort; cat "$PGPASSFILE""#],
        )));
    options.protected_paths = vec![bucket.clone()];
    let report = restore_drill(
        &*sink,
        &*cipher,
        &verifier,
        &[restorer(&cluster, true)],
        &options,
        None,
    )
    .await
    .unwrap();
    assert!(report.passed, "{}", report.to_markdown());
    assert_eq!(report.application_connected, Some(true));
    let names: Vec<&str> = report
        .post_restore_checks
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "sql:proof_count",
            "sql:orders_have_proofs",
            "sql:first_proofs",
            "cross_check:proof_pdfs",
            "smoke:app_reads_db",
            "smoke:passfile_is_redacted",
        ]
    );
    assert_eq!(
        check(&report, "sql:proof_count").detail,
        "`50`, as expected"
    );
    assert_eq!(
        check(&report, "cross_check:proof_pdfs").detail,
        format!(
            "all 50 keys from `{}` present in `{}`",
            report.proofs[0].scratch_name.as_deref().unwrap(),
            report
                .restore_target
                .join("buckets")
                .join("proofs")
                .display()
        )
    );
    let smoke = &check(&report, "smoke:app_reads_db").detail;
    assert!(smoke.contains("exited with status 0"), "{smoke}");
    assert!(smoke.contains("stdout: 50;"), "{smoke}");
    // The password reaches the child only through the private passfile and never the report.
    let env = &check(&report, "smoke:passfile_is_redacted").detail;
    assert!(env.contains("*:*:*:*:[REDACTED]"), "{env}");
    assert!(env.contains("PGDATABASE=wst_restore_"), "{env}");
    assert!(
        env.contains("WST_SCRATCH_DATABASE_URL=postgresql://postgres@127.0.0.1:"),
        "{env}"
    );
    assert!(!env.contains("PGPASSWORD"), "{env}");
    let json = serde_json::to_string(&report).unwrap();
    assert!(!json.contains(cluster.password()));
    // Cleanup came after the checks: the drop is recorded after them, and the database is gone.
    let position = |name: &str| report.checks.iter().position(|c| c.name == name).unwrap();
    assert!(position("db:scratch_database_dropped") > position("smoke:passfile_is_redacted"));
    let scratch = report.proofs[0].scratch_name.clone().unwrap();
    assert!(
        !database_exists(&cluster, &scratch),
        "{scratch} still exists"
    );
    assert!(!report.restore_target.exists());
    let md = report.to_markdown();
    for line in [
        "## POST_RESTORE_CHECKS",
        "- [PASS] sql:proof_count: `50`, as expected",
        "- [PASS] sql:orders_have_proofs: no rows, as expected",
        "- [PASS] cross_check:proof_pdfs: all 50 keys",
        "- application connected: yes",
        "## RESULT: PASS",
    ] {
        assert!(md.contains(line), "missing `{line}` in\n{md}");
    }
    // Post-restore checks are listed once, in their own section.
    assert_eq!(md.matches("sql:proof_count").count(), 1, "{md}");

    // 2. Failing checks fail the drill, each named with what came back; the query runs
    //    read-only; without drop_after the scratch database is kept.
    let options = DrillOptions::new("shop", "otto", tmp.path().join("scratch"))
        .with_check(Arc::new(SqlAssertion::returns_no_rows(
            "no_proofs",
            "SELECT id, pdf_key FROM proofs ORDER BY id",
        )))
        .with_check(Arc::new(SqlAssertion::new(
            "wrong_count",
            "SELECT count(*) FROM proofs",
            Expectation::ScalarEquals("49".into()),
        )))
        .with_check(Arc::new(SqlAssertion::returns_no_rows(
            "missing_table",
            "SELECT * FROM no_such_table",
        )))
        .with_check(Arc::new(SqlAssertion::returns_no_rows(
            "sneaky_write",
            "WITH gone AS (DELETE FROM proofs RETURNING id) SELECT id FROM gone",
        )))
        .with_check(Arc::new(SqlAssertion::returns_no_rows(
            "two_statements",
            "SELECT 1; DELETE FROM proofs",
        )))
        .with_check(Arc::new(SmokeTest::new(
            "app_fails",
            "sh",
            ["-c", "echo boom >&2; exit 3"],
        )))
        .with_check(Arc::new(
            SmokeTest::new("app_hangs", "sleep", ["30"]).with_timeout_secs(1),
        ));
    let report = restore_drill(
        &*sink,
        &*cipher,
        &verifier,
        &[restorer(&cluster, false)],
        &options,
        None,
    )
    .await
    .unwrap();
    assert!(!report.passed);
    assert_eq!(report.application_connected, Some(false));
    for c in &report.post_restore_checks {
        assert!(!c.passed, "{c:?}");
    }
    assert_eq!(
        check(&report, "sql:no_proofs").detail,
        format!(
            "expected no rows, got 50 rows × 2 columns: [`1|{}`, `2|{}`, `3|{}`, `4|{}`, `5|{}`, …]",
            key(1),
            key(2),
            key(3),
            key(4),
            key(5)
        )
    );
    assert_eq!(
        check(&report, "sql:wrong_count").detail,
        "expected one row of one column `49`, got 1 row × 1 column: [`50`]"
    );
    let missing = &check(&report, "sql:missing_table").detail;
    assert!(
        missing.contains("relation \"no_such_table\" does not exist"),
        "{missing}"
    );
    assert!(
        check(&report, "sql:sneaky_write")
            .detail
            .contains("could not run"),
    );
    assert!(
        check(&report, "sql:two_statements")
            .detail
            .contains("cannot insert multiple commands into a prepared statement"),
    );
    let fails = &check(&report, "smoke:app_fails").detail;
    assert!(fails.contains("exited with status 3"), "{fails}");
    assert!(fails.contains("stderr: boom"), "{fails}");
    let hangs = &check(&report, "smoke:app_hangs").detail;
    assert!(
        hangs.starts_with("`sleep` timed out and was killed after 1."),
        "{hangs}"
    );
    assert!(hangs.contains("(timeout 1 s;"), "{hangs}");
    let issues = report.issues().join("\n");
    assert!(
        issues.contains("sql:no_proofs: expected no rows"),
        "{issues}"
    );
    let md = report.to_markdown();
    assert!(
        md.contains("- [FAIL] sql:no_proofs: expected no rows"),
        "{md}"
    );
    assert!(md.contains("- application connected: no"), "{md}");
    assert!(md.contains("## RESULT: FAIL"), "{md}");
    let scratch = report.proofs[0].scratch_name.clone().unwrap();
    assert!(
        database_exists(&cluster, &scratch),
        "kept without drop_after"
    );
    assert_eq!(
        cluster
            .psql(&scratch, "SELECT count(*) FROM proofs")
            .unwrap(),
        PROOFS.to_string(),
        "the checks wrote nothing"
    );
    cluster
        .psql("postgres", &format!("DROP DATABASE \"{scratch}\""))
        .unwrap();

    // 3. An object deleted from the source before the backup: the cross-check names exactly
    //    that key.
    fs::remove_file(bucket.join("2026/0007.pdf")).unwrap();
    let verifier = backup(&cluster, &bucket, &sink, &cipher).await;
    // The same keys against another store (e.g. a restored scratch bucket) missing two objects,
    // and against one that cannot be reached.
    let bucket_keys: HashSet<String> = (1..=PROOFS)
        .filter(|i| ![12, 31].contains(i))
        .map(|i| key(i).strip_prefix("proofs/").unwrap().to_owned())
        .collect();
    let options = DrillOptions::new("shop", "otto", tmp.path().join("scratch"))
        .with_check(cross_check())
        .with_check(Arc::new(
            ObjectKeyCrossCheck::in_store(
                "proofs_in_bucket",
                "SELECT pdf_key FROM proofs ORDER BY id",
                Arc::new(SetLookup(Some(bucket_keys))),
            )
            .strip_key_prefix("proofs/"),
        ))
        .with_check(Arc::new(ObjectKeyCrossCheck::in_store(
            "bucket_down",
            "SELECT pdf_key FROM proofs",
            Arc::new(SetLookup(None)),
        )))
        .with_check(Arc::new(
            SqlAssertion::returns_no_rows("elsewhere", "SELECT 1").for_source("billing"),
        ));
    let report = restore_drill(
        &*sink,
        &*cipher,
        &verifier,
        &[restorer(&cluster, true)],
        &options,
        None,
    )
    .await
    .unwrap();
    assert!(!report.passed);
    let cross = check(&report, "cross_check:proof_pdfs");
    assert!(!cross.passed);
    assert!(
        cross.detail.starts_with(&format!(
            "1 of 50 keys from `{}` missing in `",
            report.proofs[0].scratch_name.as_deref().unwrap()
        )),
        "{}",
        cross.detail
    );
    assert!(
        cross.detail.ends_with(": proofs/2026/0007.pdf"),
        "{}",
        cross.detail
    );
    assert_eq!(
        check(&report, "cross_check:proofs_in_bucket").detail,
        format!(
            "2 of 50 keys from `{}` missing in memory://scratch-bucket: {}, {}",
            report.proofs[0].scratch_name.as_deref().unwrap(),
            key(12),
            key(31)
        )
    );
    assert_eq!(
        check(&report, "cross_check:bucket_down").detail,
        "looking up objects in memory://scratch-bucket failed: connection refused"
    );
    assert!(
        check(&report, "sql:elsewhere")
            .detail
            .starts_with("no scratch database of source `billing` was restored"),
    );
    assert_eq!(report.issues().len(), 4, "{:?}", report.issues());
    assert!(!database_exists(
        &cluster,
        report.proofs[0].scratch_name.as_deref().unwrap()
    ));
}

/// An object store holding `keys` (relative to its prefix); `None`: unreachable.
#[derive(Debug)]
struct SetLookup(Option<HashSet<String>>);

#[async_trait]
impl ObjectLookup for SetLookup {
    fn describe(&self) -> String {
        "memory://scratch-bucket".to_owned()
    }

    async fn missing(&self, keys: &[String]) -> Result<Vec<String>, BoxError> {
        let present = self.0.as_ref().ok_or("connection refused")?;
        Ok(keys
            .iter()
            .filter(|k| !present.contains(*k))
            .cloned()
            .collect())
    }
}

/// A check that misbehaves: panics, or returns nothing.
#[derive(Debug)]
struct Misbehaving {
    panic: bool,
}

#[async_trait]
impl PostRestoreCheck for Misbehaving {
    fn name(&self) -> &str {
        if self.panic { "panics" } else { "silent" }
    }

    async fn run(&self, context: &CheckContext<'_>) -> Vec<Check> {
        assert!(context.restore_target.is_dir());
        assert!(self.panic.not(), "checker bug");
        Vec::new()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_only_drill_runs_smoke_tests_and_never_skips_a_check() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("wst");
    fs::create_dir_all(src.join("public")).unwrap();
    fs::write(src.join("public/index.html"), "<h1>wst</h1>").unwrap();
    let sink = local_sink("local-c", &tmp.path().join("C")).await;
    let cipher = cipher();
    let verifier = ArtifactVerifier::new().require("wst/");
    let backup = BackupJob::builder(Arc::clone(&cipher))
        .source(Arc::new(FileTreeSource::new(&src, "wst").unwrap()))
        .sink(Arc::clone(&sink))
        .verifier(verifier.clone())
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    assert!(backup.is_success());

    let options = DrillOptions::new("wst", "otto", tmp.path().join("scratch"))
        .with_check(Arc::new(SmokeTest::new(
            "site_restored",
            "sh",
            [
                "-c",
                r#"grep -q wst "$WST_RESTORE_DIR/wst/public/index.html" && pwd && echo "${PGHOST:-no libpq env}""#,
            ],
        )))
        .with_check(Arc::new(
            SmokeTest::new("no_such_program", "/nonexistent/wst-smoke", Vec::<String>::new()),
        ))
        .with_check(Arc::new(SmokeTest::new(
            "leaves_a_daemon",
            "sh",
            [
                "-c",
                r#"sleep 300 & echo $! > "$WST_RESTORE_DIR/../daemon.pid"; echo started"#,
            ],
        )))
        .with_check(Arc::new(SqlAssertion::returns_no_rows("needs_db", "SELECT 1")))
        .with_check(Arc::new(ObjectKeyCrossCheck::in_restored_tree(
            "needs_db_too",
            "SELECT 'a'",
            "wst",
        )))
        .with_check(Arc::new(Misbehaving { panic: true }))
        .with_check(Arc::new(Misbehaving { panic: false }));
    let report = restore_drill(&*sink, &*cipher, &verifier, &[], &options, None)
        .await
        .unwrap();
    assert!(!report.passed);
    let site = check(&report, "smoke:site_restored");
    assert!(site.passed, "{site:?}");
    // Runs in the restore target; inherits no libpq variables from the drill's process.
    assert!(
        site.detail.contains(&format!(
            "stdout: {} ⏎ no libpq env;",
            report.restore_target.display()
        )),
        "{}",
        site.detail
    );
    let missing = check(&report, "smoke:no_such_program");
    assert!(!missing.passed);
    assert!(
        missing
            .detail
            .starts_with("cannot start `/nonexistent/wst-smoke`"),
        "{}",
        missing.detail
    );
    assert_eq!(report.application_connected, Some(false));
    assert!(
        check(&report, "sql:needs_db")
            .detail
            .starts_with("no PostgreSQL scratch database was restored")
    );
    assert!(!check(&report, "cross_check:needs_db_too").passed);
    assert_eq!(
        check(&report, "check:panics").detail,
        "the check panicked: checker bug"
    );
    assert_eq!(
        check(&report, "check:silent").detail,
        "the check returned no result (a check must pass or fail)"
    );
    // A process the smoke test left behind holding its output is killed with its group.
    let daemon = check(&report, "smoke:leaves_a_daemon");
    assert!(daemon.passed, "{daemon:?}");
    assert!(
        daemon.detail.contains("stdout: started;"),
        "{}",
        daemon.detail
    );
    let pid = fs::read_to_string(tmp.path().join("scratch/daemon.pid")).unwrap();
    #[cfg(target_os = "linux")]
    {
        let stat = fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
        assert!(
            stat.is_empty() || stat.contains(") Z "),
            "the daemon {} still runs: {stat}",
            pid.trim()
        );
    }
    assert_eq!(report.post_restore_checks.len(), 7);
    assert!(report.cleaned_up && !report.restore_target.exists());
}
