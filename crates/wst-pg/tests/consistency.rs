//! Consistency under concurrent writes: the manifest's counts come from the dump's own
//! snapshot, so a restore reproduces them exactly even while the source keeps changing.

mod common;

use std::process::Stdio;
use std::time::Duration;

use wst_pg::{PgDumpSource, RestoreOptions};

fn count(cluster: &wst_pg::TestCluster, sql: &str) -> u64 {
    cluster.psql("wst_dev", sql).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_match_exactly_under_concurrent_inserts() {
    let Some(cluster) = common::demo_cluster(1) else {
        return;
    };
    // Concurrent load: pgbench's TPC-B (inserts into pgbench_history) plus a script inserting
    // into a partitioned table and creating large objects, rate-limited, for up to 60 s.
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("load.sql");
    std::fs::write(
        &script,
        "\\set d random(0, 700)\n\
         INSERT INTO sales.events VALUES (date '2025-01-01' + :d, 'load');\n\
         SELECT lo_create(0);\n",
    )
    .unwrap();
    let mut load = cluster
        .client_command("pgbench")
        .args([
            "-n",
            "-c",
            "4",
            "-j",
            "2",
            "-T",
            "60",
            "-R",
            "400",
            "-b",
            "tpcb-like",
        ])
        .arg("-f")
        .arg(&script)
        .arg("wst_dev")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start pgbench");

    let history = "SELECT count(*) FROM public.pgbench_history";
    let mut before = 0;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        before = count(&cluster, history);
        if before > 50 {
            break;
        }
    }
    assert!(before > 50, "the load is running");

    let dump = PgDumpSource::new(cluster.connection("wst_dev"))
        .with_tools(cluster.tools().clone())
        .dump()
        .await
        .expect("dump under load");

    let dump_file = common::plain_dump(&dump);
    assert!(
        load.try_wait().unwrap().is_none(),
        "the load must still be running when the dump finishes"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = count(&cluster, history);
    load.kill().ok();
    load.wait().ok();

    let facts = dump.facts();
    let dumped_history = facts.row_counts["public.pgbench_history"];
    assert!(dumped_history >= before, "{dumped_history} >= {before}");
    assert!(
        after > dumped_history,
        "rows were inserted after the snapshot: {after} > {dumped_history}"
    );
    let dumped_events =
        facts.row_counts["sales.events_2025"] + facts.row_counts["sales.events_2026"];
    assert!(
        dumped_events > 300,
        "concurrent event inserts before the snapshot: {dumped_events}"
    );
    assert!(
        facts.large_object_count > 3,
        "concurrent large objects: {}",
        facts.large_object_count
    );

    let proof = wst_pg::restore_dump(
        &dump_file,
        facts,
        &RestoreOptions::new(cluster.connection("postgres"))
            .with_jobs(2)
            .with_tools(cluster.tools().clone()),
    )
    .await
    .expect("restore");
    assert!(
        proof.passed(),
        "{:#?}",
        proof.failures().collect::<Vec<_>>()
    );
    assert_eq!(proof.restored.row_counts, facts.row_counts);
    assert_eq!(proof.restored.large_object_count, facts.large_object_count);
    let restored_history: u64 = cluster
        .psql(&proof.database, history)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(restored_history, dumped_history);
}
