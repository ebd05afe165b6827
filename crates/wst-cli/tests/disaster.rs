//! Disaster restore into production with break-glass (issue 15; doctrine 026 L6; seeds/002
//! §4a), through the operator binary against a real `PostgreSQL`: `restore --database <source
//! name>` is refused without break-glass (naming the flags), refused over existing objects
//! without `--clean`, and with `--break-glass-by/--reason --clean` replaces the damaged source
//! database, proves it as a drill does and audits the authorization before the outcome.

use std::fs;
use std::path::Path;

use wst::pg::TestCluster;

mod common;
use common::{Run, run};

fn wst(config: &Path, args: &[&str]) -> Run {
    run(config, args, &[])
}

#[test]
fn break_glass_restores_the_damaged_source_database_with_and_without_clean() {
    let Some(cluster) = TestCluster::start_or_skip() else {
        return;
    };
    cluster.create_database("wst_dev").unwrap();
    cluster.load_demo("wst_dev", 1).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    fs::create_dir_all(t.join("site/assets/img")).unwrap();
    fs::write(t.join("site/index.html"), "<h1>wst</h1>").unwrap();
    fs::write(
        t.join("site/assets/app.js"),
        "console.log('wst');\n".repeat(500),
    )
    .unwrap();
    fs::write(
        t.join("site/assets/img/logo.bin"),
        (0..=255u8).cycle().take(70_000).collect::<Vec<u8>>(),
    )
    .unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink("/etc/hostname", t.join("site/host")).unwrap();
    let original = tree(&t.join("site"));
    assert!(original.len() >= 5, "{original:?}");
    let config = t.join("wst.toml");
    fs::write(
        &config,
        format!(
            r#"
project = "wst-dr"
actor = "ci@test"
audit_log = "{t}/state/audit.jsonl"

[[files]]
path = "{t}/site"
root = "site"

[database]
url = "postgresql://{user}@127.0.0.1:{port}/wst_dev"
password_file = "{keyfile}"
restore_url = "postgresql://{user}@127.0.0.1:{port}/postgres"

[encryption]
key_file = "{t}/control/backup.key"

[[sinks]]
name = "local-c"
url = "{t}/C"
"#,
            t = t.display(),
            user = cluster.superuser(),
            port = cluster.port(),
            keyfile = cluster.key_file().display(),
        ),
    )
    .unwrap();
    for args in [&["keygen"][..], &["init"], &["backup"]] {
        let r = wst(&config, args);
        assert_eq!(r.code, 0, "{args:?}: {}{}", r.stdout, r.stderr);
    }

    // The disaster: a table dropped, rows deleted.
    cluster
        .psql(
            "wst_dev",
            "DROP TABLE sales.orders CASCADE; DELETE FROM public.pgbench_tellers WHERE tid > 3;",
        )
        .unwrap();
    let count = |sql: &str| cluster.psql("wst_dev", sql).unwrap();
    let damaged = || {
        assert_eq!(
            count("SELECT count(*) FROM pg_tables WHERE tablename = 'orders'"),
            "0"
        );
        assert_eq!(count("SELECT count(*) FROM public.pgbench_tellers"), "3");
    };
    let target = |n: &str| t.join(n).display().to_string();

    // Without break-glass: refused, the flags named, nothing changed.
    let r = wst(
        &config,
        &[
            "restore",
            "--target",
            &target("r1"),
            "--database",
            "wst_dev",
        ],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("source database") && r.stderr.contains("--break-glass-by"),
        "{}",
        r.stderr
    );
    damaged();
    // --clean alone is a usage error: it needs break-glass.
    let r = wst(
        &config,
        &[
            "restore",
            "--target",
            &target("r2"),
            "--database",
            "wst_dev",
            "--clean",
        ],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    damaged();

    // Break-glass without --clean over a database holding objects: refused, nothing changed.
    let bg = [
        "--break-glass-by",
        "L6 on-call",
        "--reason",
        "INC-7 production database damaged",
    ];
    let mut args = vec!["restore", "--target", "", "--database", "wst_dev"];
    let t3 = target("r3");
    args[2] = &t3;
    args.extend(bg);
    let r = wst(&config, &args);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("not empty") && r.stderr.contains("--clean"),
        "{}",
        r.stderr
    );
    damaged();

    // Break-glass with --clean: replaced, proven, reported.
    let t4 = target("r4");
    args[2] = &t4;
    args.push("--clean");
    let r = wst(&config, &args);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("database proof: PASS"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("disaster restore into the source database `wst_dev`")
            && r.stdout.contains("--clean")
            && r.stdout.contains("L6 on-call"),
        "{}",
        r.stdout
    );
    assert_eq!(count("SELECT count(*) FROM sales.orders"), "2000");
    assert_eq!(count("SELECT count(*) FROM public.pgbench_tellers"), "10");

    // The audit log: the authorization before the outcome, both naming the actor and reason.
    let log = fs::read_to_string(t.join("state/audit.jsonl")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    let authorized = lines
        .iter()
        .rposition(|l| l.contains("\"break_glass_authorized\""))
        .expect("break-glass authorization audited");
    let outcome = lines
        .iter()
        .rposition(|l| l.contains("\"restore\"") && l.contains("database wst_dev"))
        .expect("database restore audited");
    assert!(authorized < outcome, "{log}");
    for i in [authorized, outcome] {
        assert!(
            lines[i].contains("L6 on-call") && lines[i].contains("INC-7"),
            "{}",
            lines[i]
        );
    }
    assert!(
        lines[authorized].contains("--clean"),
        "{}",
        lines[authorized]
    );
    let r = wst(&config, &["audit", "verify"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);

    // JSON output carries the proof's facts.
    let t5 = target("r5");
    args[2] = &t5;
    let mut json_args = vec!["--json"];
    json_args.extend(args.iter().copied());
    let r = wst(&config, &json_args);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["database"]["into_source"], true);
    assert_eq!(v["database"]["cleaned"], true);
    assert_eq!(v["database"]["break_glass"]["authorized_by"], "L6 on-call");

    // Files: the disaster deletes, alters and adds files in the original tree.
    fs::remove_file(t.join("site/index.html")).unwrap();
    fs::write(t.join("site/assets/app.js"), "defaced").unwrap();
    fs::remove_dir_all(t.join("site/assets/img")).unwrap();
    fs::write(t.join("site/stray.txt"), "left by the attacker").unwrap();
    let disaster = tree(&t.join("site"));
    assert_ne!(disaster, original);

    // Without break-glass: refused with the flags named, nothing changed.
    let r = wst(&config, &["restore", "--in-place"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--break-glass-by"), "{}", r.stderr);
    assert_eq!(tree(&t.join("site")), disaster);

    // With break-glass: the tree is back byte for byte; the damaged one is kept aside.
    let mut args = vec!["restore", "--in-place"];
    args.extend(bg);
    let r = wst(&config, &args);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("in place"), "{}", r.stdout);
    assert_eq!(tree(&t.join("site")), original);
    let aside: Vec<_> = fs::read_dir(t)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".site.wst-"))
        .collect();
    assert_eq!(
        aside.len(),
        1,
        "no staging left behind, one previous tree kept: {aside:?}"
    );
    assert!(aside[0].starts_with(".site.wst-replaced-"), "{aside:?}");
    assert_eq!(tree(&t.join(&aside[0])), disaster);
    let log = fs::read_to_string(t.join("state/audit.jsonl")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    let authorized = lines
        .iter()
        .rposition(|l| l.contains("\"break_glass_authorized\"") && l.contains("--in-place"))
        .expect("in-place authorization audited");
    let outcome = lines
        .iter()
        .rposition(|l| l.contains("in place ") && l.contains("\"passed\":true"))
        .expect("in-place outcome audited");
    assert!(authorized < outcome, "{log}");
    let r = wst(&config, &["audit", "verify"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
}

/// Every entry under `root`: relative path → file bytes, `dir`, or `link -> TEXT`.
fn tree(root: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let m = fs::symlink_metadata(&p).unwrap();
            if m.file_type().is_symlink() {
                let text = fs::read_link(&p).unwrap().display().to_string();
                out.insert(rel, format!("link -> {text}").into_bytes());
            } else if m.is_dir() {
                out.insert(rel, b"dir".to_vec());
                stack.push(p);
            } else {
                out.insert(rel, fs::read(&p).unwrap());
            }
        }
    }
    out
}
