//! End to end through wst-core's pipeline: `PgDumpSource` → tar → zstd → AES-256-GCM →
//! sink, verified with `PgRestoreListCheck`; then the artifact is restored to an isolated
//! directory and the dump restored into a scratch database, proven against the manifest.

mod common;

use std::sync::Arc;

use wst_core::{ArtifactVerifier, BackupJob, MemorySink, RunOutcome};
use wst_pg::{DatabaseFacts, PgDumpSource, PgRestoreListCheck, RestoreOptions, SOURCE_KIND};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_verify_restore_drill_through_the_pipeline() {
    let Some(cluster) = common::demo_cluster(1) else {
        return;
    };
    let keys = tempfile::tempdir().unwrap();
    let key_path = keys.path().join("backup.key");
    wst_crypto::Key::generate()
        .unwrap()
        .write_to(&key_path)
        .unwrap();
    let cipher = Arc::new(wst_crypto::AeadCipher::from_key_file(&key_path).unwrap());
    let sink = Arc::new(MemorySink::new("local"));
    let entry = "wst_dev_database.backup";
    let list_check = PgRestoreListCheck::new(
        entry,
        vec!["public.pgbench_accounts".into(), "sales.orders".into()],
    )
    .with_tools(cluster.tools().clone());
    let job = BackupJob::builder(cipher.clone())
        .source(Arc::new(
            PgDumpSource::new(cluster.connection("wst_dev")).with_tools(cluster.tools().clone()),
        ))
        .sink(sink.clone())
        .verifier(
            ArtifactVerifier::new()
                .require(entry)
                .entry_check(Arc::new(list_check)),
        )
        .build()
        .expect("job");
    let report = job.run().await.expect("backup run");
    assert_eq!(report.outcome, RunOutcome::Success, "{report:#?}");
    let verification = report.verification.as_ref().expect("verified");
    assert!(verification.passed(), "{verification:#?}");
    for name in ["dump_non_empty", "pg_restore_list", "dump_tables"] {
        assert!(
            verification
                .checks
                .iter()
                .any(|c| c.name == name && c.passed),
            "{name} missing in {:#?}",
            verification.checks
        );
    }

    // Restore drill: files to an isolated directory, then the dump to a scratch database.
    let target = tempfile::tempdir().unwrap();
    let restored_dir = target.path().join("restore");
    let files = wst_core::restore(
        sink.as_ref(),
        &report.artifact,
        cipher.as_ref(),
        &wst_core::RestoreOptions::isolated(&restored_dir),
    )
    .await
    .expect("artifact restore");
    let description = files
        .sources
        .iter()
        .find(|s| s.kind == SOURCE_KIND)
        .expect("database source in the manifest");
    let facts = DatabaseFacts::from_description(description).expect("facts");
    assert_eq!(facts.row_counts["public.pgbench_accounts"], 100_000);
    let proof = wst_pg::restore_dump(
        &restored_dir.join(entry),
        &facts,
        &RestoreOptions::new(cluster.connection("postgres"))
            .with_jobs(2)
            .with_drop_after(true)
            .with_tools(cluster.tools().clone()),
    )
    .await
    .expect("database restore");
    assert!(proof.passed(), "{:#?}", proof.checks);
    assert!(proof.dropped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_database_source_fails_the_run_and_publishes_nothing() {
    let Some(cluster) = common::cluster() else {
        return;
    };
    let keys = tempfile::tempdir().unwrap();
    let key_path = keys.path().join("backup.key");
    wst_crypto::Key::generate()
        .unwrap()
        .write_to(&key_path)
        .unwrap();
    let cipher = Arc::new(wst_crypto::AeadCipher::from_key_file(&key_path).unwrap());
    let wrong = keys.path().join("db.key");
    common::key_file(keys.path(), "not-the-password\n", 0o600);
    let sink = Arc::new(MemorySink::new("local"));
    let job = BackupJob::builder(cipher)
        .source(Arc::new(
            PgDumpSource::new(
                cluster
                    .connection("postgres")
                    .with_password(wst_pg::PasswordSource::KeyFile(wrong)),
            )
            .with_tools(cluster.tools().clone()),
        ))
        .sink(sink.clone())
        .build()
        .expect("job");
    let err = job.run().await.expect_err("F1 fails the run");
    let wst_core::Error::Source { source, .. } = &err else {
        panic!("expected a source error, got {err:?}")
    };
    assert!(matches!(
        source.downcast_ref::<wst_pg::Error>(),
        Some(wst_pg::Error::AuthenticationFailed { .. })
    ));
    let listed = wst_core::Sink::list(sink.as_ref(), "").await.expect("list");
    assert!(listed.is_empty(), "nothing published: {listed:?}");
}
