//! The reference operator (`examples/wst.rs`) end to end against a real `PostgreSQL`, a local
//! sink, a mirror and moto's S3 server (issue: operations): backup twice, drill, prune, status;
//! a tampered audit record is named by `audit verify`; a deleted mirror copy shows as a 3-2-1
//! violation in `status` and `replicate` repairs it; `ls` browses an artifact without restoring
//! it, and a selective restore (one root, one table) restores exactly those (issue 9).

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use wst::objstore::testing::MotoServer;
use wst::pg::TestCluster;

/// The operator binary (`examples/wst.rs`). `cargo test --workspace` (the CI command) builds
/// it next to the tests; when it is missing or older than its source (e.g. after
/// `cargo test --test operator` alone), it is built here.
fn operator() -> PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    let deps = std::env::current_exe().unwrap();
    let bin = deps
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join("wst");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/wst.rs");
    let modified = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    BUILT.call_once(|| {
        if modified(&bin).is_some() && modified(&bin) >= modified(&source) {
            return;
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--example", "wst"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(status.success(), "building the operator example failed");
    });
    bin
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn wst(config: &Path, args: &[&str]) -> Run {
    let out = Command::new(operator())
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    eprintln!("$ wst {}\n{}{}", args.join(" "), run.stdout, run.stderr);
    run
}

#[test]
fn operator_cycle_audit_tamper_and_3_2_1_repair() {
    let Some(cluster) = TestCluster::start_or_skip() else {
        return;
    };
    let Some(moto) = MotoServer::start_or_skip() else {
        return;
    };
    moto.create_bucket("wst-e2e").unwrap();
    cluster.create_database("wst_dev").unwrap();
    cluster.load_demo("wst_dev", 1).unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    for (dir, file, text) in [
        ("wst/public", "index.html", "<h1>wst</h1>"),
        ("wst-api/src", "main.rs", "fn main() {}"),
    ] {
        fs::create_dir_all(t.join(dir)).unwrap();
        fs::write(t.join(dir).join(file), text).unwrap();
    }
    let mut s3_options = String::new();
    for (k, v) in moto.sink_options() {
        write!(s3_options, "{k} = \"{v}\", ").unwrap();
    }
    let config = t.join("wst.toml");
    fs::write(
        &config,
        format!(
            r#"
project = "wst-e2e"
actor = "ci@test"
audit_log = "{t}/state/audit.jsonl"

[[files]]
path = "{t}/wst"
root = "wst"

[[files]]
path = "{t}/wst-api"
root = "wst-api"

[database]
url = "postgresql://{user}@127.0.0.1:{port}/wst_dev"
password_file = "{keyfile}"
expected_tables = ["public.pgbench_accounts"]
restore_url = "postgresql://{user}@127.0.0.1:{port}/postgres"

[encryption]
key_file = "{t}/control/backup.key"

[[sinks]]
name = "local-c"
url = "{t}/C"

[[sinks]]
name = "mirror-d"
url = "{t}/D"

[[sinks]]
name = "offsite-s3"
url = "s3://wst-e2e/prod"
medium = "object_storage"
offsite = true
options = {{ {s3_options} }}

[retention]
time_zone = "Europe/Amsterdam"
[retention.policy]
keep_daily = 7
min_age = "7d"

[verify]
required = ["wst/", "wst-api/", "wst_dev_database.backup"]

[drill]
scratch_dir = "{t}/drill"
"#,
            t = t.display(),
            user = cluster.superuser(),
            port = cluster.port(),
            keyfile = cluster.key_file().display(),
        ),
    )
    .unwrap();

    let r = wst(&config, &["keygen"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for _ in 0..2 {
        let r = wst(&config, &["backup"]);
        assert_eq!(r.code, 0, "backup: {}{}", r.stdout, r.stderr);
    }
    let listed = |dir: &str| -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(t.join(dir))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tar.zst.wst"))
            .collect();
        v.sort();
        v
    };
    assert_eq!(listed("C").len(), 2);
    assert_eq!(listed("C"), listed("D"));

    let r = wst(&config, &["drill"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.contains("## RESULT: PASS") && r.stdout.contains("- schema matches: yes"));

    let r = wst(&config, &["--json", "prune"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let prune: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(prune.as_array().unwrap().len(), 3, "one report per sink");
    for p in prune.as_array().unwrap() {
        assert_eq!(
            p["deleted"].as_array().unwrap().len(),
            0,
            "nothing is older than min_age"
        );
    }

    let r = wst(&config, &["status"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.contains("COMPLIANT") && !r.stdout.contains("NOT COMPLIANT"));

    // Tamper with one audit record: `audit verify` names it.
    let audit = t.join("state/audit.jsonl");
    let original = fs::read_to_string(&audit).unwrap();
    let mut lines: Vec<String> = original.lines().map(str::to_owned).collect();
    assert!(lines.len() > 4);
    lines[3] = lines[3].replacen("\"actor\":\"ci@test\"", "\"actor\":\"mallory\"", 1);
    fs::write(&audit, lines.join("\n") + "\n").unwrap();
    let r = wst(&config, &["audit", "verify"]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("BROKEN at record 3"), "{}", r.stdout);
    fs::write(&audit, original).unwrap();
    assert_eq!(wst(&config, &["audit", "verify"]).code, 0);

    // Delete the mirror's copy of the newest artifact: 3-2-1 is violated; replicate repairs it.
    let newest = listed("D").pop().unwrap();
    fs::remove_file(t.join("D").join(&newest)).unwrap();
    let r = wst(&config, &["status"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.contains("[FAIL] R3 3-2-1 copies") && r.stdout.contains("3 copies"),
        "{}",
        r.stdout
    );
    let r = wst(&config, &["replicate"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("1 copied"), "{}", r.stdout);
    assert!(listed("D").contains(&newest));
    let r = wst(&config, &["status"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert_eq!(wst(&config, &["audit", "verify"]).code, 0);

    browse_and_select(&config, t, &cluster);
}

/// Every path under `root`, relative, `/`-separated.
fn tree_paths(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = walkdir::WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .map(|e| {
            e.unwrap()
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/")
        })
        .collect();
    v.sort();
    v
}

/// `ls` (entries, `--json`, `--manifest`, `--report`) and a selective restore of one root and
/// one table: exactly those appear in the target directory and the scratch database.
fn browse_and_select(config: &Path, t: &Path, cluster: &TestCluster) {
    let r = wst(config, &["ls"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("verified PASS"), "{}", r.stdout);
    assert!(
        r.stdout.lines().any(|l| l.starts_with("-rw")
            && l.split_whitespace().nth(1) == Some("12")
            && l.ends_with(" wst-api/src/main.rs")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .lines()
            .any(|l| l.contains("postgresql") && l.contains("wst_dev_database.backup")),
        "{}",
        r.stdout
    );

    let r = wst(config, &["--json", "ls", "--include", "wst/"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let listing: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let paths: Vec<&str> = listing["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["wst", "wst/public", "wst/public/index.html"]);
    assert_eq!(listing["sidecar"]["verification"]["passed"], true);

    let r = wst(config, &["ls", "--manifest"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let manifest: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(manifest["format"], "wst-manifest/1");
    let roots: Vec<&str> = manifest["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["root"].as_str().unwrap())
        .collect();
    assert_eq!(roots, ["wst/", "wst-api/", "wst_dev_database.backup"]);

    let r = wst(config, &["ls", "--report"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("## RESULT: PASS"), "{}", r.stdout);

    // One root and one table: nothing else appears in the target or the scratch database.
    let target = t.join("selective");
    let r = wst(
        config,
        &[
            "restore",
            "--target",
            target.to_str().unwrap(),
            "--include",
            "wst-api/",
            "--database",
            "wst_selective",
            "--table",
            "public.pgbench_branches",
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("tables restored: public.pgbench_branches"),
        "{}",
        r.stdout
    );
    assert_eq!(
        tree_paths(&target),
        ["wst-api", "wst-api/src", "wst-api/src/main.rs"]
    );
    assert_eq!(
        cluster
            .psql(
                "wst_selective",
                "SELECT string_agg(n.nspname || '.' || c.relname, ',' ORDER BY 1) FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') \
                 AND n.nspname NOT IN ('pg_catalog', 'information_schema')",
            )
            .unwrap(),
        "public.pgbench_branches"
    );
    assert_eq!(
        cluster
            .psql(
                "wst_selective",
                "SELECT count(*) FROM public.pgbench_branches"
            )
            .unwrap(),
        "1"
    );

    // Files without the dump and without one subtree.
    let files_only = t.join("files-only");
    let r = wst(
        config,
        &[
            "restore",
            "--target",
            files_only.to_str().unwrap(),
            "--no-database",
            "--exclude",
            "wst/public/",
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        tree_paths(&files_only),
        ["wst", "wst-api", "wst-api/src", "wst-api/src/main.rs"]
    );

    // A pattern that matches nothing fails, names the pattern and restores nothing.
    let none = t.join("none");
    let r = wst(
        config,
        &[
            "restore",
            "--target",
            none.to_str().unwrap(),
            "--include",
            "tenants/**",
        ],
    );
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stderr.contains("`tenants/**`"), "{}", r.stderr);
    assert!(!none.exists());
}
