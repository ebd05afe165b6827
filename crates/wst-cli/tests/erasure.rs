//! The erasure register through the operator binary, on a real `PostgreSQL` cluster and moto's
//! S3 server (issue 18; seeds/003 GDPR mode: "Erased data must not be restored
//! unintentionally"): a backup holds subject `u-3`'s rows in three tables, objects in a
//! `[[bucket]]` and files in a `[[files]]` tree; the erasure is recorded and the subject
//! deleted in production; restoring the older artifact (database, files, bucket) and a drill
//! bring none of it back and report the counts; an entry whose SQL fails makes the restore fail
//! without break-glass; a tampered register object is refused and named.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::ObjectStore;
use wst::objstore::ObjectStoreTarget;
use wst::objstore::testing::MotoServer;
use wst::pg::TestCluster;

mod common;
use common::{MOTO_ENV, Run, json, run};

fn wst(config: &Path, args: &[&str]) -> Run {
    run(config, args, &MOTO_ENV)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn store(moto: &MotoServer, url: &str) -> Arc<dyn ObjectStore> {
    Arc::clone(
        ObjectStoreTarget::builder(url)
            .from_env(false)
            .options(moto.sink_options())
            .build()
            .unwrap()
            .store(),
    )
}

/// Every key in `bucket` (sorted).
fn keys(moto: &MotoServer, bucket: &str) -> Vec<String> {
    let s = store(moto, &format!("s3://{bucket}"));
    runtime().block_on(async {
        let mut k: Vec<String> = s
            .list(None)
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .unwrap();
        k.sort();
        k
    })
}

/// The sum of every `field` over `items`.
fn total(items: &serde_json::Value, field: &str) -> u64 {
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[field].as_u64().unwrap())
        .sum()
}

#[test]
#[allow(clippy::too_many_lines)]
fn erased_subjects_stay_erased_through_restore_bucket_restore_and_drill() {
    let Some(cluster) = TestCluster::start_or_skip() else {
        return;
    };
    let Some(moto) = MotoServer::start_or_skip() else {
        return;
    };
    cluster.create_database("wst_dev").unwrap();
    cluster
        .psql(
            "wst_dev",
            "CREATE SCHEMA app; \
             CREATE TABLE app.users (id text PRIMARY KEY, name text NOT NULL); \
             CREATE TABLE app.orders (id serial PRIMARY KEY, user_id text NOT NULL REFERENCES app.users, total int); \
             CREATE TABLE app.notes (user_id text NOT NULL REFERENCES app.users, body text); \
             INSERT INTO app.users VALUES ('u-1', 'Ada'), ('u-3', 'Bob'), ('u-30', 'Cy'), ('u-4', 'Dee'); \
             INSERT INTO app.orders (user_id, total) VALUES ('u-1', 10), ('u-3', 20), ('u-3', 30), ('u-30', 40), ('u-4', 50); \
             INSERT INTO app.notes VALUES ('u-3', 'likes tea'), ('u-30', 'likes coffee'), ('u-4', 'x');",
        )
        .unwrap();
    moto.create_bucket("wst-er-proofs").unwrap();
    moto.create_bucket("wst-er-scratch").unwrap();
    let proofs = store(&moto, "s3://wst-er-proofs");
    runtime().block_on(async {
        for key in [
            "uploads/u-1/a.pdf",
            "uploads/u-3/b.pdf",
            "uploads/u-3/c.pdf",
            "uploads/u-30/d.pdf",
        ] {
            proofs
                .put(
                    &object_store::path::Path::parse(key).unwrap(),
                    key.as_bytes().to_vec().into(),
                )
                .await
                .unwrap();
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    for f in [
        "wst-api/src/main.rs",
        "wst-api/uploads/u-3/avatar.png",
        "wst-api/uploads/u-3/cv/2026.pdf",
        "wst-api/uploads/u-30/avatar.png",
    ] {
        fs::create_dir_all(t.join(f).parent().unwrap()).unwrap();
        fs::write(t.join(f), f).unwrap();
    }
    let endpoint = moto.endpoint();
    let base = format!(
        r#"
project = "wst-erasure"
actor = "ci@test"
audit_log = "{t}/state/audit.jsonl"

[[files]]
path = "{t}/wst-api"
root = "wst-api"

[[bucket]]
name = "proofs"
url = "s3://wst-er-proofs"
options = {{ aws_endpoint = "{endpoint}", aws_region = "us-east-1", allow_http = "true" }}
options_env = {{ aws_access_key_id = "WST_TEST_KEY_ID", aws_secret_access_key = "WST_TEST_SECRET" }}

[database]
url = "postgresql://{user}@127.0.0.1:{port}/wst_dev"
password_file = "{keyfile}"
restore_url = "postgresql://{user}@127.0.0.1:{port}/postgres"

[encryption]
key_file = "{t}/control/backup.key"

[[sinks]]
name = "local-c"
url = "{t}/C"

[[sinks]]
name = "mirror-d"
url = "{t}/D"

[drill]
scratch_dir = "{t}/drill"

[[drill.check]]
kind = "sql"
name = "subject_rows_gone"
query = "SELECT (SELECT count(*) FROM app.users WHERE id = 'u-3') + (SELECT count(*) FROM app.orders WHERE user_id = 'u-3') + (SELECT count(*) FROM app.notes WHERE user_id = 'u-3')"
expect = 0

[[drill.check]]
kind = "sql"
name = "others_kept"
query = "SELECT count(*) FROM app.orders"
expect = 3
"#,
        t = t.display(),
        user = cluster.superuser(),
        port = cluster.port(),
        keyfile = cluster.key_file().display(),
    );
    let erasure = r#"
[erasure]
sql = [
  "DELETE FROM app.notes WHERE user_id = $1",
  "DELETE FROM app.orders WHERE user_id = $1",
  "DELETE FROM app.users WHERE id = $1",
]
paths = ["wst-api/uploads/{subject}/**"]
[erasure.bucket_prefixes]
proofs = ["uploads/{subject}/"]
"#;
    let config = t.join("wst.toml");
    fs::write(&config, format!("{base}{erasure}")).unwrap();
    for args in [&["keygen"][..], &["init"], &["backup"]] {
        let r = wst(&config, args);
        assert_eq!(r.code, 0, "{args:?}: {}{}", r.stdout, r.stderr);
    }
    let artifact = fs::read_dir(t.join("C"))
        .unwrap()
        .find_map(|e| {
            e.unwrap()
                .file_name()
                .to_str()?
                .strip_suffix(".tar.zst.wst")
                .map(ToOwned::to_owned)
        })
        .unwrap();

    // The erasure, recorded after the backup; then the subject is erased in production.
    let r = wst(
        &config,
        &[
            "--json",
            "erasure",
            "record",
            "--subject",
            "u-3",
            "--requested-by",
            "dpo@example.com",
            "--reason",
            "Art. 17 request 2026-118",
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let recorded = json(&r);
    assert_eq!(
        recorded["written"],
        serde_json::json!(["local-c", "mirror-d"])
    );
    assert_eq!(recorded["entry"]["paths"][0], "wst-api/uploads/u-3/**");
    assert_eq!(recorded["entry"]["objects"][0]["prefix"], "uploads/u-3/");
    assert_eq!(recorded["entry"]["objects"][0]["root"], "buckets/proofs/");
    let entry_id = recorded["entry"]["id"].as_str().unwrap().to_owned();
    // Encrypted on the sinks: the subject id is not readable there.
    let object = format!("wst-backup.erasure.00000001-{entry_id}.wst");
    for sink in ["C", "D"] {
        let bytes = fs::read(t.join(sink).join(&object)).unwrap();
        assert!(
            !bytes.windows(3).any(|w| w == b"u-3"),
            "plaintext on {sink}"
        );
    }
    cluster
        .psql(
            "wst_dev",
            "DELETE FROM app.notes WHERE user_id = 'u-3'; DELETE FROM app.orders WHERE user_id = 'u-3'; DELETE FROM app.users WHERE id = 'u-3';",
        )
        .unwrap();
    fs::remove_dir_all(t.join("wst-api/uploads/u-3")).unwrap();

    // Restoring the older artifact: database, files and the bucket's objects in the tree.
    let r1 = t.join("r1");
    let r = wst(
        &config,
        &[
            "--json",
            "restore",
            "--target",
            r1.to_str().unwrap(),
            "--database",
            "wst_scratch_1",
            &artifact,
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let out = json(&r);
    assert_eq!(out["database_usable"], true);
    let er = &out["erasures"];
    assert_eq!(total(er, "files"), 2, "{er}");
    assert_eq!(total(er, "objects"), 2, "{er}");
    assert_eq!(total(er, "rows"), 4, "{er}");
    let db = er
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["target"] == "database wst_scratch_1")
        .unwrap();
    let per_statement: Vec<(String, u64)> = db["statements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["statement"].as_str().unwrap().to_owned(),
                s["rows"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        per_statement,
        [
            ("DELETE FROM app.notes WHERE user_id = $1".to_owned(), 1),
            ("DELETE FROM app.orders WHERE user_id = $1".to_owned(), 2),
            ("DELETE FROM app.users WHERE id = $1".to_owned(), 1),
        ]
    );
    assert_eq!(db["id"], entry_id.as_str());
    assert_eq!(
        cluster
            .psql(
                "wst_scratch_1",
                "SELECT string_agg(id, ',' ORDER BY id) FROM app.users"
            )
            .unwrap(),
        "u-1,u-30,u-4"
    );
    assert_eq!(
        cluster
            .psql(
                "wst_scratch_1",
                "SELECT count(*) FROM app.orders WHERE user_id = 'u-3'"
            )
            .unwrap(),
        "0"
    );
    assert!(!r1.join("wst-api/uploads/u-3").exists());
    assert!(r1.join("wst-api/uploads/u-30/avatar.png").exists());
    assert!(r1.join("wst-api/src/main.rs").exists());
    assert!(!r1.join("buckets/proofs/uploads/u-3").exists());
    assert!(r1.join("buckets/proofs/uploads/u-30/d.pdf").exists());
    // The text report lists the re-erasure too.
    let r = wst(
        &config,
        &[
            "restore",
            "--target",
            t.join("r1b").to_str().unwrap(),
            &artifact,
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains(&format!("re-erased #1 {entry_id}")) && r.stdout.contains("2 files"),
        "{}",
        r.stdout
    );

    // The bucket restored into a scratch bucket.
    let r = wst(
        &config,
        &[
            "--json",
            "restore",
            "--bucket",
            "proofs",
            "--to-bucket",
            "s3://wst-er-scratch/r1",
            &artifact,
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let out = json(&r);
    assert_eq!(total(&out["erasures"], "objects"), 2, "{}", out["erasures"]);
    assert_eq!(
        keys(&moto, "wst-er-scratch"),
        ["r1/uploads/u-1/a.pdf", "r1/uploads/u-30/d.pdf"]
    );

    // The drill proves it: the post-restore checks run after the re-erasure.
    let r = wst(&config, &["--json", "drill"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let report = json(&r);
    assert_eq!(report["passed"], true);
    let re = &report["re_erasures"];
    assert_eq!(total(re, "rows"), 4, "{re}");
    assert_eq!(total(re, "files") + total(re, "objects"), 4, "{re}");
    let md = fs::read_dir(t.join("drill"))
        .unwrap()
        .find_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "md").then_some(p)
        })
        .unwrap();
    let md = fs::read_to_string(md).unwrap();
    assert!(
        md.contains("## RE_ERASURES") && md.contains(&entry_id),
        "{md}"
    );
    let post: Vec<(&str, bool)> = report["post_restore_checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["passed"] == true))
        .collect();
    assert_eq!(post.len(), 2, "{post:?}");
    assert!(
        post.iter()
            .all(|(n, ok)| *ok && (n.contains("subject_rows_gone") || n.contains("others_kept"))),
        "{post:?}"
    );

    // An entry whose SQL cannot run (its table is not in the artifact): the restore fails
    // without break-glass, the scratch database reported as not usable.
    let bad = base.clone()
        + "\n[erasure]\nsql = [\"DELETE FROM app.no_such_table WHERE user_id = $1\"]\n";
    let bad_config = t.join("bad.toml");
    fs::write(&bad_config, bad).unwrap();
    let r = wst(
        &bad_config,
        &[
            "erasure",
            "record",
            "--subject",
            "u-4",
            "--requested-by",
            "dpo",
            "--reason",
            "#2",
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let r = wst(
        &config,
        &[
            "--json",
            "restore",
            "--target",
            t.join("r2").to_str().unwrap(),
            "--database",
            "wst_scratch_2",
            &artifact,
        ],
    );
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let out = json(&r);
    assert_eq!(out["database_usable"], false);
    assert!(r.stderr.contains("no_such_table"), "{}", r.stderr);
    // The other entry still applied (its own transaction).
    assert_eq!(
        cluster
            .psql(
                "wst_scratch_2",
                "SELECT count(*) FROM app.users WHERE id = 'u-3'"
            )
            .unwrap(),
        "0"
    );
    // With break-glass it goes on, and the authorization is audited.
    let r = wst(
        &config,
        &[
            "restore",
            "--target",
            t.join("r3").to_str().unwrap(),
            "--database",
            "wst_scratch_3",
            "--break-glass-by",
            "L6 on-call",
            "--reason",
            "INC-9 table dropped since",
            &artifact,
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let log = fs::read_to_string(t.join("state/audit.jsonl")).unwrap();
    assert!(
        log.lines().any(|l| l.contains("\"erasure_applied\"")
            && l.contains("no_such_table")
            && l.contains("L6 on-call")),
        "{log}"
    );
    assert!(log.contains("\"erasure_recorded\"") && log.contains(&entry_id));
    assert!(
        !log.contains("u-3"),
        "the subject id is not in the audit log"
    );
    // The drill fails on it.
    let r = wst(&config, &["drill"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("erasure:db:"), "{}", r.stdout);

    // A tampered register object: named, not used; covered while the mirror's copy is good.
    let flip = |path: &Path| {
        let mut b = fs::read(path).unwrap();
        let n = b.len() / 2;
        b[n] ^= 0x40;
        fs::write(path, b).unwrap();
    };
    flip(&t.join("C").join(&object));
    let r = wst(&config, &["erasure", "list"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(&object) && r.stderr.contains("local-c"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.contains("2 erasure entries"), "{}", r.stdout);
    // Tampered on every sink: the entry is unknown, a restore refuses and names the object.
    flip(&t.join("D").join(&object));
    let r = wst(&config, &["erasure", "list"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let r4 = t.join("r4");
    let r = wst(
        &config,
        &["restore", "--target", r4.to_str().unwrap(), &artifact],
    );
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains(&object), "{}", r.stderr);
    assert!(!r4.exists(), "nothing handed over");
}
