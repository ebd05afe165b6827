//! Issue 9 end to end, on a real `PostgreSQL` and moto's S3 server: one artifact holds a database,
//! two file trees and a bucket of 1 000 objects; a restore drill with an SQL assertion and a
//! database↔object cross-check passes; an object deleted from the bucket before the next backup
//! makes the cross-check of that backup's drill fail naming the missing key; a selective
//! restore of one root and one table restores exactly those.

mod common;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::PutPayload;
use wst::core::{
    ArtifactVerifier, BackupJob, Cipher, DrillOptions, EntryRestorer, FileTreeSource,
    RestoreOptions, RunOutcome, RunReport, Sink, restore, restore_drill,
};
use wst::objstore::ObjectStoreSource;
use wst::objstore::testing::MotoServer;
use wst::pg::{Expectation, ObjectKeyCrossCheck, PgDrillRestorer, SqlAssertion, TestCluster};

/// The object key of proof `i` (relative to the bucket prefix), as the database stores it.
fn proof_key(i: usize) -> String {
    format!("tenants/t{:02}/proof-{i:04}.pdf", i % 7)
}

fn proof_body(i: usize) -> Bytes {
    Bytes::from(format!("%PDF-1.7 proof {i} {}\n", "x".repeat(i % 300)))
}

/// A database with proofs naming their objects, plus tables the selective restore leaves out.
fn load_database(cluster: &TestCluster) {
    cluster.create_database("wst_dev").expect("create database");
    let sql = "\
        CREATE SCHEMA app; CREATE SCHEMA audit;\n\
        CREATE TABLE app.customers (id int PRIMARY KEY, name text NOT NULL);\n\
        INSERT INTO app.customers SELECT g, 'customer ' || g FROM generate_series(1, 250) g;\n\
        CREATE TABLE app.proofs (id int PRIMARY KEY, customer_id int REFERENCES app.customers, \
                                 pdf_key text NOT NULL, meta jsonb);\n\
        CREATE TABLE audit.events (id bigserial PRIMARY KEY, at timestamptz DEFAULT now(), what text);\n\
        INSERT INTO audit.events (what) SELECT 'event ' || g FROM generate_series(1, 500) g;\n";
    cluster.psql("wst_dev", sql).expect("schema");
    let mut rows = String::from("INSERT INTO app.proofs VALUES\n");
    for i in 0..1000 {
        let sep = if i == 999 { ";\n" } else { ",\n" };
        let _ = write!(
            rows,
            "({i}, {}, 'proofs/{}', '{{\"n\": {i}}}'){sep}",
            1 + i % 250,
            proof_key(i)
        );
    }
    cluster.psql("wst_dev", &rows).expect("proof rows");
}

fn write_trees(root: &Path) {
    for (dir, files) in [("wst-api", 12), ("wst-web", 9)] {
        for i in 0..files {
            let path = root.join(dir).join(format!("sub-{}/file-{i}.json", i % 3));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, format!("{{\"{dir}\": {i}}}\n")).unwrap();
        }
    }
}

struct Setup {
    cluster: TestCluster,
    moto: MotoServer,
    dir: tempfile::TempDir,
    sink: Arc<dyn Sink>,
    cipher: Arc<dyn Cipher>,
}

impl Setup {
    fn bucket_source(&self) -> ObjectStoreSource {
        ObjectStoreSource::builder("proofs", "s3://wst-proofs/proofs", "buckets/proofs")
            .from_env(false)
            .options(self.moto.sink_options())
            .build()
            .expect("bucket source")
    }

    async fn backup(&self) -> RunReport {
        let files = self.dir.path().join("src");
        let mut job = BackupJob::builder(Arc::clone(&self.cipher))
            .source(Arc::new(
                wst::pg::PgDumpSource::new(self.cluster.connection("wst_dev"))
                    .with_tools(self.cluster.tools().clone()),
            ))
            .source(Arc::new(self.bucket_source()))
            .sink(Arc::clone(&self.sink));
        for root in ["wst-api", "wst-web"] {
            job = job.source(Arc::new(
                FileTreeSource::new(files.join(root), root).expect("tree"),
            ));
        }
        job.build().expect("job").run().await.expect("backup")
    }

    fn restorer(&self) -> Arc<dyn EntryRestorer> {
        Arc::new(PgDrillRestorer::new(
            wst::pg::RestoreOptions::new(self.cluster.connection("postgres"))
                .with_drop_after(true)
                .with_tools(self.cluster.tools().clone()),
        ))
    }

    fn drill_options(&self, scratch: &str) -> DrillOptions {
        DrillOptions::new("wst", "e2e test", self.dir.path().join(scratch))
            .with_check(Arc::new(SqlAssertion::new(
                "proof_count",
                "SELECT count(*) FROM app.proofs",
                Expectation::ScalarEquals("1000".into()),
            )))
            .with_check(Arc::new(SqlAssertion::returns_no_rows(
                "proofs_have_customers",
                "SELECT p.id FROM app.proofs p LEFT JOIN app.customers c ON c.id = p.customer_id \
                 WHERE c.id IS NULL",
            )))
            .with_check(Arc::new(
                ObjectKeyCrossCheck::in_restored_tree(
                    "proof_objects",
                    "SELECT pdf_key FROM app.proofs ORDER BY id",
                    "buckets/proofs",
                )
                .strip_key_prefix("proofs/"),
            ))
    }
}

async fn setup() -> Option<Setup> {
    let cluster = TestCluster::start_or_skip()?;
    let moto = MotoServer::start_or_skip()?;
    moto.create_bucket("wst-proofs").expect("bucket");
    load_database(&cluster);
    let dir = tempfile::tempdir().expect("tempdir");
    write_trees(&dir.path().join("src"));
    let sink = common::local_sink("local-c", &dir.path().join("sink")).await;
    let setup = Setup {
        cluster,
        moto,
        dir,
        sink,
        cipher: common::cipher(),
    };
    let store = Arc::clone(setup.bucket_source().store());
    futures::stream::iter(0..1000)
        .map(|i| {
            let store = Arc::clone(&store);
            async move {
                let path = object_store::path::Path::parse(format!("proofs/{}", proof_key(i)))
                    .expect("key");
                store
                    .put(&path, PutPayload::from(proof_body(i)))
                    .await
                    .map(drop)
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await
        .expect("fill the bucket");
    Some(setup)
}

fn check<'a>(report: &'a wst::core::DrillReport, name: &str) -> &'a wst::core::Check {
    report
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check `{name}` in {:#?}", report.checks))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_files_and_bucket_drill_with_checks_and_selective_restore() {
    let Some(s) = setup().await else {
        return;
    };

    // 1. One artifact: database + 1 000 objects + two trees.
    let first = s.backup().await;
    assert_eq!(first.outcome, RunOutcome::Success, "{:#?}", first.warnings);
    let kinds: Vec<&str> = first.sources.iter().map(|x| x.kind.as_str()).collect();
    assert_eq!(kinds, ["postgresql", "object_store", "files", "files"]);
    assert_eq!(first.entries, 1 + 1000 + (12 + 3 + 1) + (9 + 3 + 1));

    // 2. The drill: proofs, the SQL assertions and the cross-check all pass.
    let verifier = ArtifactVerifier::new();
    let report = restore_drill(
        &*s.sink,
        &*s.cipher,
        &verifier,
        &[s.restorer()],
        &s.drill_options("drill-1"),
        None,
    )
    .await
    .expect("drill");
    assert!(report.passed, "{:#?}", report.issues());
    for name in [
        "sql:proof_count",
        "sql:proofs_have_customers",
        "cross_check:proof_objects",
    ] {
        assert!(check(&report, name).passed, "{name}");
    }
    assert!(report.to_markdown().contains("POST_RESTORE_CHECKS"));

    // 3. One object disappears from the bucket before the next backup: that backup's drill
    //    fails its cross-check, naming exactly the missing key.
    let gone = proof_key(417);
    let store = Arc::clone(s.bucket_source().store());
    store
        .delete(&object_store::path::Path::parse(format!("proofs/{gone}")).unwrap())
        .await
        .expect("delete one object");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let second = s.backup().await;
    assert_ne!(second.artifact, first.artifact);
    assert_eq!(second.entries, first.entries - 1);
    let report = restore_drill(
        &*s.sink,
        &*s.cipher,
        &verifier,
        &[s.restorer()],
        &s.drill_options("drill-2"),
        None,
    )
    .await
    .expect("drill");
    assert_eq!(report.artifact, second.artifact.to_string());
    assert!(!report.passed);
    let cross = check(&report, "cross_check:proof_objects");
    assert!(!cross.passed);
    assert!(cross.detail.contains("1 of 1000"), "{}", cross.detail);
    assert!(cross.detail.contains(&gone), "{}", cross.detail);
    // Only the cross-check failed: the database itself is intact.
    let failed: Vec<&str> = report
        .checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.name.as_str())
        .collect();
    assert!(
        failed
            .iter()
            .all(|n| n.starts_with("cross_check:") || *n == "result"),
        "{failed:?}"
    );

    // 4. Selective restore of one root and one table: exactly those appear.
    let target = s.dir.path().join("selective");
    let files = restore(
        &*s.sink,
        &first.artifact,
        &*s.cipher,
        &RestoreOptions::isolated(&target).include(["wst-api/"]),
    )
    .await
    .expect("selective file restore");
    let restored: BTreeSet<String> = walkdir::WalkDir::new(&target)
        .min_depth(1)
        .into_iter()
        .map(|e| {
            e.unwrap()
                .path()
                .strip_prefix(&target)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/")
        })
        .collect();
    assert!(!restored.is_empty());
    assert!(
        restored.iter().all(|p| p.starts_with("wst-api")),
        "{restored:?}"
    );
    assert_eq!(
        restored
            .iter()
            .filter(|p| Path::new(p).extension().is_some_and(|e| e == "json"))
            .count(),
        12
    );
    assert_eq!(files.entries as usize, restored.len());

    // The database entry alone, into a private directory, then one table of it.
    let dump_dir = s.dir.path().join("dump");
    restore(
        &*s.sink,
        &first.artifact,
        &*s.cipher,
        &RestoreOptions::isolated(&dump_dir).include([wst::pg::DEFAULT_ENTRY]),
    )
    .await
    .expect("dump entry");
    let facts: wst::pg::DatabaseFacts = serde_json::from_value(
        files
            .sources
            .iter()
            .find(|d| d.kind == wst::pg::SOURCE_KIND)
            .expect("database source")
            .details
            .clone(),
    )
    .unwrap();
    let proof = wst::pg::restore_dump(
        &dump_dir.join(wst::pg::DEFAULT_ENTRY),
        &facts,
        &wst::pg::RestoreOptions::new(s.cluster.connection("postgres"))
            .with_database("one_table")
            .with_tables(["app.customers"])
            .with_tools(s.cluster.tools().clone()),
    )
    .await
    .expect("one table");
    assert!(proof.passed(), "{:#?}", proof.checks);
    let tables = s
        .cluster
        .psql(
            "one_table",
            "SELECT table_schema || '.' || table_name FROM information_schema.tables \
             WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
        )
        .unwrap();
    assert_eq!(tables.trim(), "app.customers");
    let count = s
        .cluster
        .psql("one_table", "SELECT count(*) FROM app.customers")
        .unwrap();
    assert_eq!(count.trim(), "250");
}
