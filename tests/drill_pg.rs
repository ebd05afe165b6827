//! A restore drill of files + a real `PostgreSQL` database (doctrine 026 R7): the dump is
//! restored into a scratch database and proven against the manifest's row counts and schema
//! fingerprint; the report follows the seeds/002 template.

mod common;

use std::fs;
use std::sync::Arc;

use common::{cipher, local_sink};
use wst::core::{
    ArtifactVerifier, AuditLog, BackupJob, DrillOptions, EntryRestorer, FileTreeSource,
    restore_drill,
};
use wst::pg::{PgDrillRestorer, PgDumpSource, PgRestoreListCheck, RestoreOptions, TestCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_restores_files_and_database_and_proves_them() {
    let Some(cluster) = TestCluster::start_or_skip() else {
        return;
    };
    cluster.create_database("wst_dev").unwrap();
    cluster.load_demo("wst_dev", 1).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let web = tmp.path().join("wst");
    let api = tmp.path().join("wst-api");
    fs::create_dir_all(web.join("public")).unwrap();
    fs::create_dir_all(api.join("src")).unwrap();
    fs::write(web.join("public/index.html"), "<h1>wst</h1>").unwrap();
    fs::write(api.join("src/main.rs"), "fn main() {}").unwrap();
    let entry = "wst_dev_database.backup";
    let verifier = ArtifactVerifier::new()
        .require("wst/")
        .require("wst-api/")
        .require(entry)
        .entry_check(Arc::new(
            PgRestoreListCheck::new(entry, vec!["public.pgbench_accounts".into()])
                .with_tools(cluster.tools().clone()),
        ));
    let c = local_sink("local-c", &tmp.path().join("C")).await;
    let d = local_sink("mirror-d", &tmp.path().join("D")).await;
    let cipher = cipher();
    let backup = BackupJob::builder(Arc::clone(&cipher))
        .source(Arc::new(FileTreeSource::new(&web, "wst").unwrap()))
        .source(Arc::new(FileTreeSource::new(&api, "wst-api").unwrap()))
        .source(Arc::new(
            PgDumpSource::new(cluster.connection("wst_dev")).with_tools(cluster.tools().clone()),
        ))
        .sink(Arc::clone(&c))
        .sink(Arc::clone(&d))
        .verifier(verifier.clone())
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    assert!(backup.is_success(), "{backup:#?}");

    let restorer: Arc<dyn EntryRestorer> = Arc::new(
        PgDrillRestorer::new(
            RestoreOptions::new(cluster.connection("postgres"))
                .with_jobs(2)
                .with_drop_after(true)
                .with_tools(cluster.tools().clone()),
        )
        .freshness_column("sales", "customers", "created"),
    );
    let audit = AuditLog::new(tmp.path().join("audit.jsonl"), "otto");
    let mut options = DrillOptions::new("wst", "otto", tmp.path().join("scratch"));
    options.protected_paths = vec![web.clone(), api.clone()];
    let report = restore_drill(
        &*d,
        &*cipher,
        &verifier,
        &[restorer],
        &options,
        Some(&audit),
    )
    .await
    .unwrap();
    assert!(report.passed, "{}", report.to_markdown());
    let proof = &report.proofs[0];
    let (expected, actual) = proof.rows.unwrap();
    assert!(expected >= 100_000, "pgbench scale 1 has 100 000 accounts");
    assert_eq!(expected, actual);
    assert_eq!(proof.schema_matches, Some(true));
    for name in [
        "db:schema_fingerprint",
        "db:row_count_total",
        "db:large_objects",
        "restore_files",
    ] {
        assert!(
            report.checks.iter().any(|c| c.name == name && c.passed),
            "{name}"
        );
    }
    // Data RPO: backup time minus the newest `sales.customers.created` in the restored data.
    let data_rpo = report.data_rpo_seconds.expect("data RPO measured");
    assert!((0.0..600.0).contains(&data_rpo), "{data_rpo}");
    assert!(proof.newest_data.is_some());
    let md = report.to_markdown();
    assert!(md.contains("RPO_data:"), "{md}");
    assert!(md.contains("- schema matches: yes"), "{md}");
    assert!(
        md.contains(&format!("- row count: {expected} / {actual}")),
        "{md}"
    );
    assert!(md.contains("## RESULT: PASS"), "{md}");
    assert!(audit.verify().unwrap().intact());
    // The scratch database was dropped after the proof.
    let dbs = cluster
        .psql("postgres", "SELECT datname FROM pg_database")
        .unwrap();
    assert!(!dbs.contains("wst_restore_"), "{dbs}");
}
