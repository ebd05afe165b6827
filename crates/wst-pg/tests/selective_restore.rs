//! Selective restore (issue 9) on a real server: a backup of the multi-schema demo database
//! goes through wst-core's pipeline; only the dump entry is restored from the artifact (an
//! include selection), then only some tables or schemas into a scratch database
//! (`pg_restore --use-list`), proven against the manifest's row counts of the selection.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use wst_core::{ArtifactVerifier, BackupJob, MemorySink, RunOutcome};
use wst_pg::{DatabaseFacts, Error, PgDumpSource, RestoreOptions, SOURCE_KIND, TestCluster};

const ENTRY: &str = "wst_dev_database.backup";

/// Backs up `wst_dev` and restores only its dump entry; returns the dump path and the facts.
async fn dump_and_facts(cluster: &TestCluster, dir: &std::path::Path) -> (PathBuf, DatabaseFacts) {
    let cipher = Arc::new(
        wst_crypto::AeadCipher::builder()
            .recipient_key(wst_crypto::Key::generate().unwrap())
            .build()
            .unwrap(),
    );
    let sink = Arc::new(MemorySink::new("local"));
    let job = BackupJob::builder(cipher.clone())
        .source(Arc::new(
            PgDumpSource::new(cluster.connection("wst_dev")).with_tools(cluster.tools().clone()),
        ))
        .sink(sink.clone())
        .verifier(ArtifactVerifier::new().require(ENTRY))
        .build()
        .unwrap();
    let report = job.run().await.unwrap();
    assert_eq!(report.outcome, RunOutcome::Success, "{report:#?}");
    let target = dir.join("restore");
    let files = wst_core::restore(
        sink.as_ref(),
        &report.artifact,
        cipher.as_ref(),
        &wst_core::RestoreOptions::isolated(&target).include([ENTRY]),
    )
    .await
    .unwrap();
    assert_eq!(files.entries, 1);
    assert_eq!(files.selection, [ENTRY]);
    let desc = files
        .sources
        .iter()
        .find(|s| s.kind == SOURCE_KIND)
        .unwrap();
    (
        target.join(ENTRY),
        DatabaseFacts::from_description(desc).unwrap(),
    )
}

/// `schema.table` of every user table in `database`, with its row count.
fn tables(cluster: &TestCluster, database: &str) -> BTreeMap<String, u64> {
    let out = cluster
        .psql(
            database,
            "SELECT n.nspname || '.' || c.relname FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
             ORDER BY 1",
        )
        .unwrap();
    out.lines()
        .map(|t| {
            let (s, n) = t.split_once('.').unwrap();
            let n: u64 = cluster
                .psql(database, &format!("SELECT count(*) FROM \"{s}\".\"{n}\""))
                .unwrap()
                .parse()
                .unwrap();
            (t.to_owned(), n)
        })
        .collect()
}

fn options(cluster: &TestCluster, database: &str) -> RestoreOptions {
    RestoreOptions::new(cluster.connection("postgres"))
        .with_database(database)
        .with_tools(cluster.tools().clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_table_of_a_multi_schema_database_and_nothing_else() {
    let Some(cluster) = common::demo_cluster(1) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (dump, facts) = dump_and_facts(&cluster, tmp.path()).await;
    assert!(facts.row_counts.len() > 6, "{:?}", facts.row_counts);

    // sales.orders alone: its foreign key to the unselected sales.customers is left out.
    let proof = wst_pg::restore_dump(
        &dump,
        &facts,
        &options(&cluster, "only_orders").with_tables(["sales.orders"]),
    )
    .await
    .unwrap();
    assert!(proof.passed(), "{:#?}", proof.checks);
    assert_eq!(
        tables(&cluster, "only_orders"),
        BTreeMap::from([("sales.orders".to_owned(), 2000)]),
        "exactly the selected table exists"
    );
    assert_eq!(
        proof.restored.row_counts,
        BTreeMap::from([("sales.orders".to_owned(), facts.row_counts["sales.orders"])])
    );
    let sel = proof.selection.as_ref().expect("a selective proof says so");
    assert_eq!(sel.tables, ["sales.orders"]);
    assert_eq!(sel.restored_tables, ["sales.orders"]);
    assert!(sel.items_restored < sel.items_in_dump);
    let names: Vec<&str> = proof.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "pg_restore",
            "selection",
            "tables_present",
            "row_count:sales.orders",
            "row_count_total"
        ]
    );
    // Its own objects came with it: the index, the serial's value, the enum type.
    assert_eq!(
        cluster
            .psql(
                "only_orders",
                "SELECT indexname FROM pg_indexes WHERE schemaname = 'sales' ORDER BY 1; \
                 SELECT last_value FROM sales.orders_id_seq; \
                 SELECT count(*) FROM pg_constraint WHERE contype = 'f';",
            )
            .unwrap(),
        "orders_attrs_gin\norders_pkey\n2000\n0"
    );

    // Two tables of different schemas, one with an index from an extension (pg_trgm) and a
    // trigger whose function must come along.
    let proof = wst_pg::restore_dump(
        &dump,
        &facts,
        &options(&cluster, "two_tables")
            .with_tables(["sales.customers", "public.pgbench_branches"]),
    )
    .await
    .unwrap();
    assert!(proof.passed(), "{:#?}", proof.checks);
    assert_eq!(
        tables(&cluster, "two_tables"),
        BTreeMap::from([
            ("public.pgbench_branches".to_owned(), 1),
            ("sales.customers".to_owned(), 200)
        ])
    );
    assert_eq!(
        cluster
            .psql(
                "two_tables",
                "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal; \
                 SELECT indexname FROM pg_indexes WHERE indexname = 'customers_name_trgm';",
            )
            .unwrap(),
        "customers_touch\ncustomers_name_trgm"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_a_partitioned_table_and_unknown_names() {
    let Some(cluster) = common::demo_cluster(1) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (dump, facts) = dump_and_facts(&cluster, tmp.path()).await;

    let proof = wst_pg::restore_dump(
        &dump,
        &facts,
        &options(&cluster, "only_lager").with_schemas(["lager"]),
    )
    .await
    .unwrap();
    assert!(proof.passed(), "{:#?}", proof.checks);
    let want: BTreeMap<String, u64> = facts
        .row_counts
        .iter()
        .filter(|(k, _)| k.starts_with("lager."))
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    assert_eq!(want.len(), 2);
    assert_eq!(proof.restored.row_counts, want);
    assert_eq!(
        cluster
            .psql("only_lager", "SELECT nextval('lager.ticket_seq')")
            .unwrap(),
        "105",
        "the standalone sequence of the schema kept its value"
    );

    // A partitioned table brings its partitions (where its rows are).
    let proof = wst_pg::restore_dump(
        &dump,
        &facts,
        &options(&cluster, "only_events").with_tables(["sales.events"]),
    )
    .await
    .unwrap();
    assert!(proof.passed(), "{:#?}", proof.checks);
    assert_eq!(
        proof.restored.row_counts.keys().collect::<Vec<_>>(),
        ["sales.events_2025", "sales.events_2026"]
    );
    assert_eq!(proof.restored.total_rows(), 300);
    assert_eq!(
        cluster
            .psql("only_events", "SELECT count(*) FROM sales.events")
            .unwrap(),
        "300"
    );

    // Unknown names are refused before any database is created.
    let err = wst_pg::restore_dump(
        &dump,
        &facts,
        &options(&cluster, "never_created")
            .with_tables(["sales.nope", "sales.orders"])
            .with_schemas(["ghost"]),
    )
    .await
    .unwrap_err();
    match &err {
        Error::SelectionUnmatched { missing } => {
            assert_eq!(missing, &["sales.nope", "schema ghost"]);
        }
        other => panic!("{other}"),
    }
    assert_eq!(
        cluster
            .psql(
                "postgres",
                "SELECT count(*) FROM pg_database WHERE datname = 'never_created'"
            )
            .unwrap(),
        "0"
    );
    let err = wst_pg::restore_dump(
        &dump,
        &facts,
        &options(&cluster, "never_created").with_tables(["orders"]),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, Error::Config(m) if m.contains("`orders`")),
        "{err}"
    );
}
