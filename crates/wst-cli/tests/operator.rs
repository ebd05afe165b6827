//! The operator binary `wst` (`crates/wst-cli`) end to end against a real `PostgreSQL`, a local
//! sink, a mirror and moto's S3 server (issue: operations): backup twice, drill, prune, status;
//! a tampered audit record is named by `audit verify`; a deleted mirror copy shows as a 3-2-1
//! violation in `status` and `replicate` repairs it; `ls` browses an artifact without restoring
//! it, and a selective restore (one root, one table) restores exactly those (issue 9).
//! A configured `[[bucket]]` (50 objects on moto) is backed up with the database and files and
//! listed by `ls` and `status`; the drill runs two `[[drill.check]]` SQL assertions and a
//! database↔object cross-check, all in its JSON report; `restore --bucket … --to-bucket …`
//! puts the objects into a second bucket byte for byte, refuses a non-empty target without
//! break-glass, restores one `--prefix` alone, and names the configured buckets when given an
//! unknown one (issue 9).

use std::collections::BTreeMap;

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::ObjectStore;
use wst::objstore::ObjectStoreTarget;
use wst::objstore::testing::MotoServer;
use wst::pg::TestCluster;

mod common;
use common::{MOTO_ENV, Run, run};

fn wst(config: &Path, args: &[&str]) -> Run {
    run(config, args, &MOTO_ENV)
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
    let proofs = fill_proofs_bucket(&moto);
    let rows: Vec<String> = proofs
        .keys()
        .enumerate()
        .map(|(i, k)| format!("({i}, 'proofs/{k}')"))
        .collect();
    cluster
        .psql(
            "wst_dev",
            &format!(
                "CREATE TABLE public.proofs (id int PRIMARY KEY, pdf_key text NOT NULL); \
                 INSERT INTO public.proofs VALUES {};",
                rows.join(", ")
            ),
        )
        .unwrap();

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
    for (k, v) in s3_sink_options(&moto) {
        write!(s3_options, "{k} = \"{v}\", ").unwrap();
    }
    let endpoint = moto.endpoint();
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

[[bucket]]
name = "proofs"
url = "s3://wst-e2e-proofs"
prefix = "proofs"
options = {{ aws_endpoint = "{endpoint}", aws_region = "us-east-1", allow_http = "true" }}
options_env = {{ aws_access_key_id = "WST_TEST_PROOFS_KEY_ID", aws_secret_access_key = "WST_TEST_PROOFS_SECRET" }}

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

[[drill.check]]
kind = "sql"
name = "proof_count"
query = "SELECT count(*) FROM public.proofs"
expect = 50

[[drill.check]]
kind = "sql"
name = "no_orphan_accounts"
query = "SELECT a.aid FROM pgbench_accounts a LEFT JOIN pgbench_branches b ON b.bid = a.bid WHERE b.bid IS NULL"
expect = "no_rows"

[[drill.check]]
kind = "cross_check"
name = "proof_objects"
query = "SELECT pdf_key FROM public.proofs ORDER BY id"
root = "buckets/proofs"
strip_prefix = "proofs/"
"#,
            t = t.display(),
            user = cluster.superuser(),
            port = cluster.port(),
            keyfile = cluster.key_file().display(),
        ),
    )
    .unwrap();

    // The library reads the same file (`wst::config`, what a service embedding wst.toml uses).
    let parsed = wst::config::Config::load(&config).unwrap();
    assert_eq!((parsed.sinks.len(), parsed.buckets.len()), (3, 1));
    assert_eq!(parsed.drill.as_ref().unwrap().checks.len(), 3);
    let r = wst(&config, &["keygen"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Before `init` no sink carries the repository marker: a backup writes nowhere.
    let r = wst(&config, &["backup"]);
    assert_ne!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("wst init") || r.stdout.contains("wst init"),
        "{}{}",
        r.stdout,
        r.stderr
    );
    let r = wst(&config, &["init"]);
    assert_eq!(r.code, 0, "init: {}{}", r.stdout, r.stderr);
    for _ in 0..2 {
        let r = wst(&config, &["backup"]);
        assert_eq!(r.code, 0, "backup: {}{}", r.stdout, r.stderr);
        assert!(
            r.stdout.lines().any(|l| l.contains("source object_store")
                && l.split_whitespace().nth(2) == Some("proofs")),
            "the run report names the bucket source: {}",
            r.stdout
        );
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

    let r = wst(&config, &["--json", "drill"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    let drill: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(drill["passed"], true, "{}", r.stdout);
    assert_eq!(drill["proofs"][0]["schema_matches"], true);
    let post: Vec<(&str, bool, &str)> = drill["post_restore_checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap(),
                c["passed"].as_bool().unwrap(),
                c["detail"].as_str().unwrap(),
            )
        })
        .collect();
    let names: Vec<&str> = post.iter().map(|c| c.0).collect();
    assert_eq!(
        names,
        [
            "sql:proof_count",
            "sql:no_orphan_accounts",
            "cross_check:proof_objects"
        ]
    );
    assert!(post.iter().all(|c| c.1), "{post:?}");
    assert!(post[2].2.starts_with("all 50 keys"), "{}", post[2].2);

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
    assert!(
        r.stdout.lines().any(|l| l.contains("object_store")
            && l.contains("proofs")
            && l.ends_with("s3://wst-e2e-proofs/proofs → buckets/proofs/")),
        "{}",
        r.stdout
    );
    let r = wst(&config, &["--json", "status"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    let status: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let kinds: Vec<&str> = status["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["files", "files", "postgresql", "object_store"]);

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

    browse_and_select(&config, t, &cluster, &proofs);
    bucket_restore(&config, &moto, &proofs);

    // An object deleted from the bucket before the next backup: that backup's drill fails
    // (exit 1) on the cross-check, naming the missing key; the SQL checks still pass.
    let gone = "t1/proof-004.pdf";
    runtime().block_on(async {
        bucket_store(&moto, "s3://wst-e2e-proofs")
            .delete(&object_store::path::Path::from(format!("proofs/{gone}")))
            .await
            .unwrap();
    });
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let r = wst(&config, &["backup"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let r = wst(&config, &["drill"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("## RESULT: FAIL"), "{}", r.stdout);
    let line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("- [FAIL] cross_check:proof_objects: 1 of 50 keys"))
        .unwrap_or_else(|| panic!("{}", r.stdout));
    assert!(line.contains(&format!("proofs/{gone}")), "{line}");
    assert!(
        r.stdout.contains("- [PASS] sql:proof_count")
            && r.stdout.contains("- [PASS] sql:no_orphan_accounts"),
        "{}",
        r.stdout
    );
}

/// The proofs bucket's 50 objects: key relative to the prefix `proofs/` → body.
/// moto's sink options without the credentials (`wst()` passes them as `AWS_*` variables).
fn s3_sink_options(moto: &MotoServer) -> BTreeMap<String, String> {
    moto.sink_options()
        .into_iter()
        .filter(|(k, _)| !wst::config::is_secret_option(k) && k != "aws_access_key_id")
        .collect()
}

fn fill_proofs_bucket(moto: &MotoServer) -> BTreeMap<String, Vec<u8>> {
    moto.create_bucket("wst-e2e-proofs").unwrap();
    moto.create_bucket("wst-e2e-scratch").unwrap();
    let objects: BTreeMap<String, Vec<u8>> = (0..50)
        .map(|i| {
            (
                format!("t{}/proof-{i:03}.pdf", i % 3),
                format!("%PDF-1.7 proof {i} {}\n", "x".repeat(i * 7)).into_bytes(),
            )
        })
        .collect();
    let store = bucket_store(moto, "s3://wst-e2e-proofs");
    runtime().block_on(async {
        for (key, body) in &objects {
            let path = object_store::path::Path::parse(format!("proofs/{key}")).unwrap();
            store.put(&path, body.clone().into()).await.unwrap();
        }
    });
    objects
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The whole bucket of `url` on moto.
fn bucket_store(moto: &MotoServer, url: &str) -> Arc<dyn ObjectStore> {
    Arc::clone(
        ObjectStoreTarget::builder(url)
            .from_env(false)
            .options(moto.sink_options())
            .build()
            .unwrap()
            .store(),
    )
}

/// Every object under `prefix/` in `bucket`: key relative to the prefix → body.
fn bucket_objects(moto: &MotoServer, bucket: &str, prefix: &str) -> BTreeMap<String, Vec<u8>> {
    let store = bucket_store(moto, &format!("s3://{bucket}"));
    runtime().block_on(async {
        let listed: Vec<object_store::ObjectMeta> = store
            .list(Some(&object_store::path::Path::from(prefix)))
            .try_collect()
            .await
            .unwrap();
        let mut out = BTreeMap::new();
        for meta in listed {
            let body = store
                .get(&meta.location)
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            let key = meta.location.to_string();
            out.insert(
                key.strip_prefix(&format!("{prefix}/")).unwrap().to_owned(),
                body.to_vec(),
            );
        }
        out
    })
}

/// `restore --bucket`: into an empty second bucket (objects equal), refused over existing
/// objects without break-glass, one `--prefix` alone, and an unknown bucket name.
fn bucket_restore(config: &Path, moto: &MotoServer, proofs: &BTreeMap<String, Vec<u8>>) {
    let r = wst(
        config,
        &[
            "--json",
            "restore",
            "--bucket",
            "proofs",
            "--to-bucket",
            "s3://wst-e2e-scratch/restored",
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(report["objects"], 50);
    assert_eq!(report["source_prefix"], "proofs");
    assert_eq!(report["target_prefix"], "restored");
    let checks: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == true)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        checks.contains(&"objects_sha256") && checks.contains(&"objects_read_back"),
        "{checks:?}"
    );
    assert_eq!(
        &bucket_objects(moto, "wst-e2e-scratch", "restored"),
        proofs,
        "every object restored byte for byte, nothing else"
    );

    // The same target again: it holds objects now, so it is refused without break-glass …
    let again = [
        "restore",
        "--bucket",
        "proofs",
        "--to-bucket",
        "s3://wst-e2e-scratch/restored",
        "--prefix",
        "t1",
    ];
    let r = wst(config, &again);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("already holds objects") && r.stderr.contains("--break-glass-by"),
        "{}",
        r.stderr
    );
    // … and allowed with it, restoring only the selected prefix.
    let mut with_glass = again.to_vec();
    with_glass.extend(["--break-glass-by", "ci@test", "--reason", "TEST-1"]);
    let r = wst(config, &with_glass);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let t1 = proofs.keys().filter(|k| k.starts_with("t1/")).count();
    assert_eq!(t1, 17);
    assert!(
        r.stdout.contains(&format!("restored {t1} objects")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("break-glass: authorized by ci@test"),
        "{}",
        r.stdout
    );
    assert_eq!(bucket_objects(moto, "wst-e2e-scratch", "restored"), *proofs);

    // A selected prefix into a fresh prefix: exactly those objects.
    let r = wst(
        config,
        &[
            "restore",
            "--bucket",
            "proofs",
            "--to-bucket",
            "s3://wst-e2e-scratch/t2-only",
            "--prefix",
            "t2",
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let t2: BTreeMap<String, Vec<u8>> = proofs
        .iter()
        .filter(|(k, _)| k.starts_with("t2/"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(bucket_objects(moto, "wst-e2e-scratch", "t2-only"), t2);

    // An unknown bucket is bad usage, naming the configured ones.
    let r = wst(
        config,
        &[
            "restore",
            "--bucket",
            "invoices",
            "--to-bucket",
            "s3://wst-e2e-scratch/x",
        ],
    );
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("no [[bucket]] named `invoices`; configured: proofs"),
        "{}",
        r.stderr
    );
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
fn browse_and_select(
    config: &Path,
    t: &Path,
    cluster: &TestCluster,
    proofs: &BTreeMap<String, Vec<u8>>,
) {
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
    let total: usize = proofs.values().map(Vec::len).sum();
    assert!(
        r.stdout.lines().any(|l| l.contains("object_store")
            && l.contains("proofs")
            && l.contains(&format!(
                "buckets/proofs/  (50 objects, {total} bytes, from s3://wst-e2e-proofs/proofs)"
            ))),
        "{}",
        r.stdout
    );
    for (key, body) in proofs {
        assert!(
            r.stdout.lines().any(|l| l.starts_with("-rw")
                && l.split_whitespace().nth(1) == Some(body.len().to_string().as_str())
                && l.ends_with(&format!(" buckets/proofs/{key}"))),
            "ls shows {key}: {}",
            r.stdout
        );
    }

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
    assert_eq!(
        roots,
        [
            "wst/",
            "wst-api/",
            "wst_dev_database.backup",
            "buckets/proofs/"
        ]
    );

    let r = wst(config, &["ls", "--report"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("## RESULT: PASS"), "{}", r.stdout);
    assert!(
        r.stdout.contains("## POST_RESTORE_CHECKS")
            && r.stdout.contains("- [PASS] cross_check:proof_objects"),
        "{}",
        r.stdout
    );

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
            "--exclude",
            "buckets/",
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

/// Configuration mistakes are bad usage (exit 2) with a message naming what to fix, and a
/// `smoke` drill check runs against the restored files and is in the drill's JSON report. No
/// database or S3 server needed.
#[test]
fn bucket_and_check_configuration_errors_and_smoke_check() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    fs::create_dir_all(t.join("wst")).unwrap();
    fs::write(t.join("wst/a.txt"), "a").unwrap();
    let config = t.join("wst.toml");
    let write = |extra: &str| {
        fs::write(
            &config,
            format!(
                r#"
audit_log = "{t}/audit.jsonl"

[[files]]
path = "{t}/wst"
root = "wst"

[encryption]
key_file = "{t}/backup.key"

[[sinks]]
name = "local-c"
url = "{t}/C"
{extra}
"#,
                t = t.display()
            ),
        )
        .unwrap();
    };
    // The smoke check looks for the restored file (`sh` is a Unix program).
    let smoke = if cfg!(unix) {
        r#"
[[drill.check]]
kind = "smoke"
name = "files_present"
program = "sh"
args = ["-c", "test -f \"$WST_RESTORE_DIR/wst/a.txt\""]
timeout_secs = 30
"#
    } else {
        ""
    };
    write(&format!(
        "[drill]\nscratch_dir = \"{}/drill\"\n{smoke}",
        t.display()
    ));
    wst::config::Config::load(&config).unwrap();
    assert_eq!(wst(&config, &["keygen"]).code, 0);
    assert_eq!(wst(&config, &["init"]).code, 0);
    let r = wst(&config, &["backup"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let r = wst(&config, &["--json", "drill"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let drill: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(drill["passed"], true);
    if cfg!(unix) {
        assert_eq!(
            drill["post_restore_checks"][0]["name"],
            "smoke:files_present"
        );
        assert_eq!(drill["post_restore_checks"][0]["passed"], true);
        assert_eq!(drill["application_connected"], true);
    }

    let refused = |extra: &str, args: &[&str], wanted: &str| {
        write(extra);
        let r = wst(&config, args);
        assert_eq!(r.code, 2, "{extra}\n{}{}", r.stdout, r.stderr);
        assert!(
            r.stderr.contains(wanted),
            "wanted `{wanted}` in: {}",
            r.stderr
        );
    };
    let bucket = "[[bucket]]\nname = \"proofs\"\nurl = \"s3://wst-proofs\"\n";
    refused(
        &format!("{bucket}options = {{ aws_secret_access_key = \"s3cr3t\" }}\n"),
        &["backup"],
        "bucket[0].options.aws_secret_access_key: is a credential",
    );
    refused(
        &format!("{bucket}options_env = {{ aws_access_key_id = \"WST_TEST_NOT_SET_ANYWHERE\" }}\n"),
        &["backup"],
        "`WST_TEST_NOT_SET_ANYWHERE` for `aws_access_key_id`, but it is not set",
    );
    refused(
        &format!("{bucket}{bucket}"),
        &["status"],
        "two [[bucket]] sections are named `proofs`",
    );
    refused(
        "",
        &[
            "restore",
            "--bucket",
            "proofs",
            "--to-bucket",
            "s3://scratch/r",
        ],
        "no [[bucket]] named `proofs`: the configuration has no [[bucket]] sections",
    );
    let drill = format!("[drill]\nscratch_dir = \"{}/drill\"\n", t.display());
    refused(
        &format!(
            "{drill}[[drill.check]]\nkind = \"sql\"\nname = \"n\"\nquery = \"SELECT 1\"\n\
             expect = \"1\"\n"
        ),
        &["drill"],
        "drill.check[0].kind: check `n` queries the scratch database, but the configuration \
         has no [database] section",
    );
    refused(
        &format!(
            "{drill}[[drill.check]]\nkind = \"smoke\"\nname = \"s\"\nprogram = \"true\"\n\
             [[drill.check]]\nkind = \"smoke\"\nname = \"s\"\nprogram = \"true\"\n"
        ),
        &["drill"],
        "two [[drill.check]] entries are named `s`",
    );
    refused(
        &format!(
            "{drill}[[drill.check]]\nkind = \"sql\"\nname = \"b\"\nquery = \"SELECT true\"\n\
             expect = true\n"
        ),
        &["drill"],
        "`expect` must be \"no_rows\", one value as `psql -At` prints it",
    );
    refused(
        &format!("{drill}[[drill.check]]\nkind = \"sqll\"\nname = \"x\"\n"),
        &["drill"],
        "unknown variant `sqll`",
    );
}

/// Issue 14's findings through the CLI, on two local disks and moto's S3 server: a flipped
/// byte, a substituted artifact, an unmounted mirror, two sinks on one directory, a held lock,
/// and a wrong key each change what `wst` says and does.
#[test]
fn evidence_holds_when_a_sink_lies() {
    let Some(moto) = MotoServer::start_or_skip() else {
        return;
    };
    moto.create_bucket("wst-evidence").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    fs::create_dir_all(t.join("app")).unwrap();
    fs::write(t.join("app/index.html"), "<h1>wst</h1>\n".repeat(64)).unwrap();
    let mut s3_options = String::new();
    for (k, v) in s3_sink_options(&moto) {
        write!(s3_options, "{k} = \"{v}\", ").unwrap();
    }
    let config = t.join("wst.toml");
    let body = |key_file: &str, d: &str| {
        format!(
            r#"
audit_log = "{t}/state/audit.jsonl"
[[files]]
path = "{t}/app"
root = "wst"
[encryption]
key_file = "{key_file}"
[[sinks]]
name = "local-c"
url = "{t}/C"
[[sinks]]
name = "mirror-d"
url = "{d}"
[[sinks]]
name = "offsite-s3"
url = "s3://wst-evidence/prod"
medium = "object_storage"
offsite = true
options = {{ {s3_options} }}
[verify]
required = ["wst/"]
"#,
            t = t.display()
        )
    };
    let key = format!("{}/control/backup.key", t.display());
    fs::write(&config, body(&key, &format!("{}/D", t.display()))).unwrap();
    assert_eq!(wst(&config, &["keygen"]).code, 0);
    assert_eq!(wst(&config, &["init"]).code, 0);
    let mut names = Vec::new();
    for _ in 0..2 {
        let r = wst(&config, &["--json", "backup"]);
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        // The run report comes first (replication and prune reports may follow).
        let v: serde_json::Value = serde_json::Deserializer::from_str(&r.stdout)
            .into_iter()
            .next()
            .unwrap()
            .unwrap();
        names.push(v["artifact"].as_str().unwrap().to_owned());
    }
    let (older, newer) = (&names[0], &names[1]);
    let status = |config: &Path| {
        let r = wst(config, &["--json", "status"]);
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        (r.code, v)
    };
    let rule = |v: &serde_json::Value, name: &str| {
        v["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["rule"] == name)
            .unwrap()
            .clone()
    };

    // Finding 1: one byte flipped in the newest artifact on C:. verify fails it, and from then
    // on status does not count that copy.
    let c_obj = t.join("C").join(format!("{newer}.tar.zst.wst"));
    let mut bytes = fs::read(&c_obj).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    fs::write(&c_obj, &bytes).unwrap();
    let r = wst(&config, &["verify", newer]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains(&format!("{newer} on local-c: FAIL")),
        "{}",
        r.stdout
    );
    let (code, v) = status(&config);
    assert_eq!(code, 1);
    let r3 = rule(&v, "R3 3-2-1 copies");
    assert_eq!(r3["passed"], false);
    assert!(r3["detail"].as_str().unwrap().contains("local-c"), "{r3}");
    // Restore the flipped byte; verify seals the copy as good again.
    bytes[mid] ^= 1;
    fs::write(&c_obj, &bytes).unwrap();
    assert_eq!(wst(&config, &["verify", newer]).code, 0);

    // Finding 2: the older artifact (object and sidecar) put under the newer name on C:.
    let c = t.join("C");
    fs::copy(
        c.join(format!("{older}.tar.zst.wst")),
        c.join(format!("{newer}.tar.zst.wst")),
    )
    .unwrap();
    // The attacker also renames the sidecar's claims to the newer artifact.
    let sidecar = fs::read_to_string(c.join(format!("{older}.sidecar.json")))
        .unwrap()
        .replace(older.as_str(), newer);
    fs::write(c.join(format!("{newer}.sidecar.json")), sidecar).unwrap();
    let target = t.join("restored");
    let r = wst(
        &config,
        &["restore", "--target", target.to_str().unwrap(), newer],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("rejected copy local-c"), "{}", r.stderr);
    assert!(target.join("wst/index.html").is_file());
    let only_c = t.join("only-c");
    let r = wst(
        &config,
        &[
            "restore",
            "--sink",
            "local-c",
            "--target",
            only_c.to_str().unwrap(),
            newer,
        ],
    );
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(!only_c.join("wst").exists());
    // Repair C: from the other copies.
    fs::remove_file(c.join(format!("{newer}.tar.zst.wst"))).unwrap();
    fs::remove_file(c.join(format!("{newer}.sidecar.json"))).unwrap();
    assert_eq!(wst(&config, &["replicate"]).code, 0);

    // Finding 4: another run holds the repository lock: backup exits 4 naming it.
    let lock_path = t.join("state/wst-wst-backup.lock");
    let held = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&lock_path)
        .unwrap();
    held.lock().unwrap();
    fs::write(
        &lock_path,
        r#"{"operation":"backup","host":"ops-1","pid":4242,"since":"2026-11-30T02:00:00Z"}"#,
    )
    .unwrap();
    let r = wst(&config, &["backup"]);
    assert_eq!(r.code, 4, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("pid 4242 on ops-1"), "{}", r.stderr);
    drop(held);

    // Finding 3: the D: mirror unmounted (its path gone): the backup is degraded, not written
    // onto the root filesystem, and status names the sink.
    fs::rename(t.join("D"), t.join("D-unplugged")).unwrap();
    let r = wst(&config, &["backup"]);
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("may not be mounted"), "{}", r.stdout);
    assert!(!t.join("D").exists(), "the mirror's path was not created");
    let (code, v) = status(&config);
    assert_eq!(code, 1);
    assert_eq!(rule(&v, "sinks identified")["passed"], false);
    fs::rename(t.join("D-unplugged"), t.join("D")).unwrap();

    // Two sinks on one directory: init refuses.
    let same = t.join("same.toml");
    fs::write(&same, body(&key, &format!("{}/C", t.display()))).unwrap();
    let r = wst(&same, &["init"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("one directory or bucket prefix"),
        "{}",
        r.stderr
    );
    let (code, v) = status(&same);
    assert_eq!(code, 1);
    let ids = rule(&v, "sinks identified");
    assert!(
        ids["detail"].as_str().unwrap().contains("`local-c`"),
        "{ids}"
    );

    // Finding 5: an artifact whose tar holds an 8 MiB entry name (built with the key, as a
    // buggy or hostile writer would) is refused by restore with a bounded message and a
    // bounded audit record, and the next backup works.
    let hostile = "wst-backup-20200101-000000";
    plant_long_name_artifact(&t.join("C"), &key, hostile);
    let r = wst(
        &config,
        &[
            "restore",
            "--target",
            t.join("hostile").to_str().unwrap(),
            hostile,
        ],
    );
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.len() < 16 * 1024,
        "{} bytes on stderr",
        r.stderr.len()
    );
    assert!(
        r.stderr.contains("8388608") || r.stderr.contains("limit"),
        "{}",
        r.stderr
    );
    let log = t.join("state/audit.jsonl");
    assert!(fs::metadata(&log).unwrap().len() < 1 << 20);
    let r = wst(&config, &["backup"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    for ext in ["tar.zst.wst", "sidecar.json"] {
        fs::remove_file(t.join("C").join(format!("{hostile}.{ext}"))).unwrap();
    }
    assert_eq!(wst(&config, &["audit", "verify"]).code, 0);

    // Issue 14, "log truncated → detected": the log cut after the first run is still a valid
    // chain, but the heads anchored on the sinks and in the newest sidecars name records it
    // no longer holds.
    let text = fs::read_to_string(&log).unwrap();
    let first: Vec<&str> = text.lines().take(3).collect();
    fs::write(&log, first.join("\n") + "\n").unwrap();
    let r = wst(&config, &["audit", "verify"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("chain intact"), "{}", r.stdout);
    assert!(
        r.stdout.contains("anchor: FAIL") && r.stdout.contains("truncated"),
        "{}",
        r.stdout
    );
    let (code, v) = status(&config);
    assert_eq!(code, 1);
    assert_eq!(rule(&v, "audit log anchored")["passed"], false);
    fs::write(&log, text).unwrap();
    assert_eq!(wst(&config, &["audit", "verify"]).code, 0);

    // Finding 6: a wrong key file: nothing authenticates or opens; status says so.
    let other_key = format!("{}/control/other.key", t.display());
    let wrong = t.join("wrong.toml");
    fs::write(&wrong, body(&other_key, &format!("{}/D", t.display()))).unwrap();
    assert_eq!(wst(&wrong, &["keygen"]).code, 0);
    let (code, v) = status(&wrong);
    assert_eq!(code, 1);
    assert_eq!(rule(&v, "keys open the artifacts")["passed"], false);
    assert_eq!(rule(&v, "R5 artifacts verified")["passed"], false);
    // ... and it could not write records under its key into the repository's keyed log.
    let r = wst(&wrong, &["backup"]);
    assert_ne!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("not a configured key"), "{}", r.stderr);
    let r = wst(&config, &["audit", "verify"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
}

/// A GNU tar header block (`name` ≤ 100 bytes, octal size, checksum).
fn tar_header(name: &[u8], typeflag: u8, size: u64) -> [u8; 512] {
    fn octal(field: &mut [u8], v: u64) {
        let w = field.len() - 1;
        let s = format!("{v:0w$o}");
        field[..w].copy_from_slice(&s.as_bytes()[s.len() - w..]);
    }
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name);
    octal(&mut h[100..108], 0o644);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], 1_700_000_000);
    h[156] = typeflag;
    h[257..265].copy_from_slice(b"ustar  \0");
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

/// Writes into local sink directory `dir` an artifact `name`, sealed with the key file `key`
/// and with a sealed sidecar, whose tar holds one entry with an 8 MiB GNU long name.
fn plant_long_name_artifact(dir: &Path, key: &str, name: &str) {
    use sha2::Digest as _;
    use wst::core::Cipher as _;
    let cipher = wst::crypto::AeadCipher::from_key_file(key).unwrap();
    let long = vec![b'n'; 8 << 20];
    let mut tar = Vec::new();
    tar.extend(tar_header(b"././@LongLink", b'L', long.len() as u64 + 1));
    tar.extend(&long);
    tar.push(0);
    tar.resize(tar.len().div_ceil(512) * 512, 0);
    tar.extend(tar_header(b"x", b'0', 0));
    tar.extend([0u8; 1024]);
    let zst = zstd::encode_all(&tar[..], 3).unwrap();
    let mut sealed = Vec::new();
    let mut sealer = cipher.seal().unwrap();
    sealer.update(&zst, &mut sealed).unwrap();
    sealer.finish(&mut sealed).unwrap();
    let artifact = wst::core::ArtifactName::parse(name).unwrap();
    fs::write(dir.join(artifact.artifact_object()), &sealed).unwrap();
    let sidecar = wst::core::Sidecar {
        format: wst::core::SIDECAR_FORMAT.to_owned(),
        name: artifact.clone(),
        object: artifact.artifact_object(),
        created: artifact.time(),
        completed: artifact.time(),
        cipher_suite: cipher.suite(),
        key_fingerprints: cipher.recipients(),
        ciphertext_size: sealed.len() as u64,
        ciphertext_sha256: hex::encode(sha2::Sha256::digest(&sealed)),
        tool_version: "test".into(),
        verification: None,
        audit_head: None,
        sources: Vec::new(),
        mac: None,
    };
    let keys = cipher.evidence_keys();
    let bytes = wst::core::seal_sidecar(&sidecar, keys.first()).unwrap();
    fs::write(dir.join(artifact.sidecar_object()), bytes).unwrap();
}
