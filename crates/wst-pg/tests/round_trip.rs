//! Backup → restore into a scratch database → proof, on a real throwaway cluster.

mod common;

use wst_core::{EntryCheck, EntryKind, Source};
use wst_pg::{
    BreakGlass, DatabaseFacts, Error, PgDumpSource, PgRestoreListCheck, RestoreOptions, SOURCE_KIND,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_counts_fingerprint_and_schema_match() {
    let Some(cluster) = common::demo_cluster(1) else {
        return;
    };
    let source = PgDumpSource::new(cluster.connection("wst_dev"))
        .with_name("db")
        .with_tools(cluster.tools().clone());

    // Through the wst-core Source contract, as the pipeline uses it.
    let mut prepared = source.prepare().await.expect("prepare");
    let mut writer = common::RecordingWriter::default();
    prepared.write_entries(&mut writer).expect("write entries");
    let description = prepared.description();
    assert_eq!(description.kind, SOURCE_KIND);
    assert_eq!(description.name, "db");
    assert_eq!(description.root, "wst_dev_database.backup");
    let facts = DatabaseFacts::from_description(&description).expect("facts parse back");
    assert_eq!(writer.entries.len(), 1);
    let (meta, _sha, read) = &writer.entries[0];
    assert_eq!(meta.path, "wst_dev_database.backup");
    assert_eq!(meta.kind, EntryKind::File);
    assert_eq!(meta.mode, 0o600);
    assert_eq!(meta.mtime, facts.snapshot_time.as_second());
    assert_eq!(Some(meta.size), facts.dump_bytes);
    assert_eq!(*read, meta.size);
    assert!(meta.size > 0);
    drop(prepared);

    // The facts describe the demo data exactly.
    assert_eq!(facts.database, "wst_dev");
    assert_eq!(facts.server_version_num / 10_000, 15);
    assert_eq!(facts.encoding, "UTF8");
    assert!(facts.database_size_bytes > 1_000_000);
    assert!(facts.snapshot_id.is_some());
    assert!(facts.system_identifier.is_some());
    assert_eq!(facts.pg_dump_compression.as_deref(), Some("0"));
    let rc = &facts.row_counts;
    assert_eq!(rc["public.pgbench_accounts"], 100_000);
    assert_eq!(rc["public.pgbench_branches"], 1);
    assert_eq!(rc["public.pgbench_tellers"], 10);
    assert_eq!(rc["public.pgbench_history"], 0);
    assert_eq!(rc["public.documents"], 3);
    assert_eq!(rc["sales.customers"], 200);
    assert_eq!(rc["sales.orders"], 2000);
    assert_eq!(rc["sales.events_2025"] + rc["sales.events_2026"], 300);
    assert!(
        !rc.contains_key("sales.events"),
        "partitioned parent not counted twice"
    );
    assert_eq!(rc["lager.Lagerbestand_ü"], 50);
    assert_eq!(rc["lager.empty_table"], 0);
    assert_eq!(rc.len(), 11, "{rc:?}");
    assert_eq!(facts.large_object_count, 3);
    assert_eq!(facts.schema_fingerprint.len(), 64);
    for kind in [
        "schema",
        "relation",
        "column",
        "constraint",
        "index",
        "sequence",
        "function",
        "view",
        "trigger",
        "type",
        "extension",
    ] {
        assert!(
            facts.schema_objects.get(kind).copied().unwrap_or(0) > 0,
            "no {kind} in {:?}",
            facts.schema_objects
        );
    }

    // A second dump (direct API) for the restore; same data, so the same facts.
    let dump = source.dump().await.expect("dump");
    let dump_file = common::plain_dump(&dump);
    assert_eq!(dump.facts().row_counts, facts.row_counts);
    assert_eq!(dump.facts().schema_fingerprint, facts.schema_fingerprint);

    // Verification: pg_restore --list.
    let check = PgRestoreListCheck::from_facts("wst_dev_database.backup", &facts)
        .with_tools(cluster.tools().clone());
    assert!(check.applies_to("wst_dev_database.backup"));
    let checks = check.check("wst_dev_database.backup", &dump_file);
    let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "dump_non_empty",
            "pg_restore_list",
            "dump_tables",
            "dump_large_objects"
        ]
    );
    assert!(checks.iter().all(|c| c.passed), "{checks:?}");
    let strict = PgRestoreListCheck::new("e", vec!["public.no_such_table".into()])
        .with_tools(cluster.tools().clone());
    let failed = strict.check_file(&dump_file);
    assert!(
        !failed[2].passed && failed[2].detail.contains("public.no_such_table"),
        "{failed:?}"
    );

    // Restore into a new scratch database with --jobs 2, then prove it.
    let options = RestoreOptions::new(cluster.connection("postgres"))
        .with_database("drill_1")
        .with_jobs(2)
        .with_tools(cluster.tools().clone());
    let proof = wst_pg::restore_dump(&dump_file, &facts, &options)
        .await
        .expect("restore");
    assert!(proof.passed(), "{:#?}", proof.checks);
    assert!(proof.created_database);
    assert!(!proof.dropped);
    assert_eq!(proof.database, "drill_1");
    assert_eq!(proof.jobs, 2);
    assert_eq!(proof.checks.len(), 1 + 1 + 11 + 1 + 1 + 1);
    assert_eq!(proof.restored.row_counts, facts.row_counts);
    assert_eq!(proof.restored.schema_fingerprint, facts.schema_fingerprint);
    assert_eq!(proof.restored.large_object_count, 3);
    let lo = cluster
        .psql(
            "drill_1",
            "SELECT convert_from(lo_get(body), 'UTF8') FROM public.documents WHERE id = 2",
        )
        .unwrap();
    assert!(lo.starts_with("large object 2 "), "{lo}");
    let unicode = cluster
        .psql(
            "drill_1",
            "SELECT \"名前\" FROM lager.\"Lagerbestand_ü\" WHERE \"größe\" = 7",
        )
        .unwrap();
    assert_eq!(unicode, "Ware 7 — 名前 ü");

    // `pg_dump --schema-only` of source and restored agree.
    assert_eq!(
        common::schema_only(&cluster, "wst_dev"),
        common::schema_only(&cluster, "drill_1")
    );

    // A changed restored database fails the proof's comparison.
    cluster.psql("drill_1", "DELETE FROM sales.orders WHERE id <= 5; ALTER TABLE lager.empty_table ADD COLUMN x int;").unwrap();
    let session_facts = {
        let again =
            PgDumpSource::new(cluster.connection("drill_1")).with_tools(cluster.tools().clone());
        again.dump().await.unwrap().facts().clone()
    };
    let checks = wst_pg::compare(&facts, &session_facts);
    let failed: Vec<&str> = checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        failed,
        [
            "row_count:sales.orders",
            "row_count_total",
            "schema_fingerprint"
        ]
    );

    // Generated name, drop afterwards.
    let options = RestoreOptions::new(cluster.connection("postgres"))
        .with_drop_after(true)
        .with_tools(cluster.tools().clone());
    let proof = wst_pg::restore_dump(&dump_file, &facts, &options)
        .await
        .expect("restore 2");
    assert!(proof.passed(), "{:#?}", proof.checks);
    assert!(proof.dropped);
    assert!(proof.database.starts_with("wst_restore_"));
    let exists = cluster
        .psql(
            "postgres",
            &format!(
                "SELECT count(*) FROM pg_database WHERE datname = '{}'",
                proof.database
            ),
        )
        .unwrap();
    assert_eq!(exists, "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_source_and_non_empty_targets_without_break_glass() {
    let Some(cluster) = common::demo_cluster(1) else {
        return;
    };
    let dump = PgDumpSource::new(cluster.connection("wst_dev"))
        .with_tools(cluster.tools().clone())
        .dump()
        .await
        .expect("dump");
    let dump_file = common::plain_dump(&dump);
    let facts = dump.facts().clone();
    let base =
        RestoreOptions::new(cluster.connection("postgres")).with_tools(cluster.tools().clone());

    // Never the source database.
    let err = wst_pg::restore_dump(&dump_file, &facts, &base.clone().with_database("wst_dev"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::RestoreTargetRefused { database, .. } if database == "wst_dev"),
        "{err}"
    );
    assert!(err.to_string().contains("source database"), "{err}");
    let err = wst_pg::restore_dump(
        &dump_file,
        &facts,
        &base
            .clone()
            .with_database("wst_dev")
            .with_break_glass(BreakGlass {
                authorized_by: "L6 on-call".into(),
                reason: "drill".into(),
            }),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, Error::RestoreTargetRefused { reason, .. } if reason.contains("--clean")),
        "break-glass without --clean does not replace the source's objects: {err}"
    );

    // An existing empty database is accepted.
    cluster.create_database("empty_target").unwrap();
    let proof = wst_pg::restore_dump(
        &dump_file,
        &facts,
        &base.clone().with_database("empty_target"),
    )
    .await
    .expect("restore into empty db");
    assert!(proof.passed(), "{:#?}", proof.checks);
    assert!(!proof.created_database);

    // Now it is non-empty: refused without break-glass, with nothing changed.
    cluster
        .psql(
            "empty_target",
            "CREATE TABLE public.marker (x int); INSERT INTO public.marker VALUES (42);",
        )
        .unwrap();
    let err = wst_pg::restore_dump(
        &dump_file,
        &facts,
        &base.clone().with_database("empty_target"),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, Error::RestoreTargetRefused { reason, .. } if reason.contains("break-glass")),
        "{err}"
    );
    assert_eq!(
        cluster
            .psql("empty_target", "SELECT x FROM public.marker")
            .unwrap(),
        "42"
    );

    // With break-glass alone it is still refused: replacing objects needs --clean too.
    cluster
        .psql("empty_target", "DROP TABLE public.marker;")
        .unwrap();
    let bg = BreakGlass {
        authorized_by: "L6 on-call".into(),
        reason: "INC-42 restore over drill database".into(),
    };
    let err = wst_pg::restore_dump(
        &dump_file,
        &facts,
        &base
            .clone()
            .with_database("empty_target")
            .with_break_glass(bg.clone()),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, Error::RestoreTargetRefused { reason, .. } if reason.contains("--clean")),
        "{err}"
    );
    // With break-glass and --clean it restores and the authorization is in the proof.
    let proof = wst_pg::restore_dump(
        &dump_file,
        &facts,
        &base
            .clone()
            .with_database("empty_target")
            .with_break_glass(bg.clone())
            .with_clean(true),
    )
    .await
    .expect("break-glass restore");
    assert!(proof.passed(), "{:#?}", proof.checks);
    assert!(proof.cleaned && !proof.into_source);
    assert_eq!(proof.break_glass, Some(bg));
    let json = serde_json::to_value(&proof).unwrap();
    assert_eq!(json["break_glass"]["authorized_by"], "L6 on-call");
}

/// Issue 15, doctrine 026 L6, seeds/002 §4a: the disaster restore into the source database's
/// own name on its own server, refused without break-glass, refused over existing objects
/// without `--clean`, replacing them with it, and into a missing database (a new server),
/// each proven as a drill is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disaster_restore_into_the_source_database_with_and_without_clean() {
    let Some(cluster) = common::demo_cluster(1) else {
        return;
    };
    let dump = PgDumpSource::new(cluster.connection("wst_dev"))
        .with_tools(cluster.tools().clone())
        .dump()
        .await
        .expect("dump");
    let dump_file = common::plain_dump(&dump);
    let facts = dump.facts().clone();
    let base = RestoreOptions::new(cluster.connection("postgres"))
        .with_database("wst_dev")
        .with_tools(cluster.tools().clone());
    let bg = BreakGlass {
        authorized_by: "L6 on-call".into(),
        reason: "INC-7 production database damaged".into(),
    };
    let count = |sql: &str| cluster.psql("wst_dev", sql).unwrap();

    // The disaster: a table dropped, rows deleted.
    cluster
        .psql(
            "wst_dev",
            "DROP TABLE sales.orders CASCADE; DELETE FROM public.pgbench_tellers WHERE tid > 3;",
        )
        .unwrap();
    let damaged = || {
        assert_eq!(
            count("SELECT count(*) FROM pg_tables WHERE tablename = 'orders'"),
            "0"
        );
        assert_eq!(count("SELECT count(*) FROM public.pgbench_tellers"), "3");
    };

    // Without break-glass: refused, naming the flags; nothing changed.
    let err = wst_pg::restore_dump(&dump_file, &facts, &base.clone().with_clean(true))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::RestoreTargetRefused { reason, .. }
            if reason.contains("source database") && reason.contains("--break-glass-by")),
        "{err}"
    );
    damaged();

    // Break-glass without --clean over a non-empty database: refused, nothing changed.
    let err = wst_pg::restore_dump(
        &dump_file,
        &facts,
        &base.clone().with_break_glass(bg.clone()),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, Error::RestoreTargetRefused { reason, .. }
            if reason.contains("not empty") && reason.contains("--clean")),
        "{err}"
    );
    damaged();

    // Break-glass with --clean: replaced and proven against the manifest's facts.
    let proof = wst_pg::restore_dump(
        &dump_file,
        &facts,
        &base.clone().with_break_glass(bg.clone()).with_clean(true),
    )
    .await
    .expect("break-glass --clean restore");
    assert!(proof.passed(), "{:#?}", proof.checks);
    assert!(proof.into_source && proof.cleaned && !proof.created_database);
    assert_eq!(proof.database, "wst_dev");
    assert_eq!(proof.break_glass.as_ref(), Some(&bg));
    assert_eq!(proof.restored.row_counts, facts.row_counts);
    assert_eq!(proof.restored.schema_fingerprint, facts.schema_fingerprint);
    assert_eq!(count("SELECT count(*) FROM sales.orders"), "2000");
    assert_eq!(count("SELECT count(*) FROM public.pgbench_tellers"), "10");

    // A new server: the database is gone; break-glass (no --clean needed) creates it.
    cluster
        .psql("postgres", "DROP DATABASE wst_dev WITH (FORCE)")
        .unwrap();
    let proof = wst_pg::restore_dump(&dump_file, &facts, &base.clone().with_break_glass(bg))
        .await
        .expect("break-glass restore into a missing database");
    assert!(proof.passed(), "{:#?}", proof.checks);
    assert!(proof.into_source && proof.created_database && !proof.cleaned);
    assert_eq!(count("SELECT count(*) FROM sales.orders"), "2000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_of_a_damaged_or_empty_dump_fails_with_the_reason() {
    let Some(cluster) = common::demo_cluster(1) else {
        return;
    };
    let dump = PgDumpSource::new(cluster.connection("wst_dev"))
        .with_tools(cluster.tools().clone())
        .dump()
        .await
        .expect("dump");
    let dump_file = common::plain_dump(&dump);
    let dir = tempfile::tempdir().unwrap();
    let options = RestoreOptions::new(cluster.connection("postgres"))
        .with_drop_after(true)
        .with_tools(cluster.tools().clone());

    // Truncated to half: pg_restore fails, its stderr is reported, the scratch db is dropped.
    let bytes = std::fs::read(&*dump_file).unwrap();
    let truncated = dir.path().join("truncated.backup");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = wst_pg::restore_dump(
        &truncated,
        dump.facts(),
        &options.clone().with_database("damaged"),
    )
    .await
    .unwrap_err();
    match &err {
        Error::ToolFailed { tool, stderr, .. } => {
            assert_eq!(tool, "pg_restore");
            assert!(stderr.contains("pg_restore"), "{stderr}");
        }
        other => panic!("expected ToolFailed, got {other:?}"),
    }
    assert_eq!(
        cluster
            .psql(
                "postgres",
                "SELECT count(*) FROM pg_database WHERE datname = 'damaged'"
            )
            .unwrap(),
        "0",
        "scratch database dropped after the failed restore"
    );

    // Empty file: refused before anything is created.
    let empty = dir.path().join("empty.backup");
    std::fs::write(&empty, b"").unwrap();
    let err = wst_pg::restore_dump(&empty, dump.facts(), &options.with_database("never"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::EmptyDump { .. }), "{err:?}");
    assert_eq!(
        cluster
            .psql(
                "postgres",
                "SELECT count(*) FROM pg_database WHERE datname = 'never'"
            )
            .unwrap(),
        "0"
    );
}
