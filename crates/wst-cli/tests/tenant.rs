//! Tenant restore through the operator binary, on a real `PostgreSQL` cluster and moto's S3
//! server (issue 18, "Tenant restore"; seeds/003: "a single tenant, a single service, an
//! entire environment", "Partial restores must be supported where feasible"): tenants `acme`,
//! `globex` and `initech` own rows in three tables in two schemas (foreign keys between them),
//! a shared reference table, objects under `tenants/{id}/` of a `[[bucket]]` and files under
//! `uploads/{id}/` of a `[[files]]` tree. After a backup and later changes,
//! `restore --tenant globex` brings back exactly globex's rows (the report's per-table counts
//! equal the originals), the shared table whole, and only globex's objects and files; with
//! break-glass, `--into-production` puts globex's rows back as of the artifact and leaves acme's
//! later changes alone. A bad tenant id and a configuration without `[tenant]` are refused.

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
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
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

/// Every file under `dir`, as `/`-separated relative paths (sorted).
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap();
                out.push(
                    rel.components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join("/"),
                );
            }
        }
    }
    out.sort();
    out
}

const TABLES: [&str; 3] = ["app.customers", "app.orders", "billing.invoices"];

/// `tenant:count` of every tenant in `table` of `db`, e.g. `acme:2,globex:3`.
fn per_tenant(cluster: &TestCluster, db: &str, table: &str) -> String {
    cluster
        .psql(
            db,
            &format!(
                "SELECT coalesce(string_agg(tenant_id || ':' || n, ',' ORDER BY tenant_id), '') \
                 FROM (SELECT tenant_id, count(*) n FROM {table} GROUP BY tenant_id) s"
            ),
        )
        .unwrap()
}

#[test]
#[allow(clippy::too_many_lines)]
fn tenant_restore_brings_back_one_tenant_rows_objects_and_files() {
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
            "CREATE SCHEMA app; CREATE SCHEMA billing; CREATE SCHEMA ref; \
             CREATE TABLE ref.countries (code text PRIMARY KEY, name text NOT NULL); \
             CREATE TABLE app.customers (id serial PRIMARY KEY, tenant_id text NOT NULL, \
                name text NOT NULL, country text REFERENCES ref.countries); \
             CREATE TABLE app.orders (id serial PRIMARY KEY, tenant_id text NOT NULL, \
                customer_id int NOT NULL REFERENCES app.customers, total int); \
             CREATE TABLE billing.invoices (id serial PRIMARY KEY, tenant_id text NOT NULL, \
                order_id int NOT NULL REFERENCES app.orders, amount int); \
             INSERT INTO ref.countries VALUES ('DE', 'Germany'), ('FR', 'France'), ('US', 'USA'); \
             INSERT INTO app.customers (tenant_id, name, country) VALUES \
                ('acme', 'a1', 'DE'), ('globex', 'g1', 'US'), ('acme', 'a2', 'FR'), \
                ('globex', 'g2', 'US'), ('initech', 'i1', 'US'), ('globex', 'g3', 'DE'); \
             INSERT INTO app.orders (tenant_id, customer_id, total) VALUES \
                ('acme', 1, 10), ('globex', 2, 20), ('globex', 2, 21), ('acme', 3, 30), \
                ('globex', 4, 40), ('initech', 5, 50), ('globex', 6, 60), ('acme', 1, 11); \
             INSERT INTO billing.invoices (tenant_id, order_id, amount) VALUES \
                ('acme', 1, 10), ('globex', 2, 20), ('globex', 3, 21), ('initech', 6, 50), \
                ('globex', 7, 60), ('acme', 4, 30);",
        )
        .unwrap();
    let originals: Vec<String> = TABLES
        .iter()
        .map(|t| per_tenant(&cluster, "wst_dev", t))
        .collect();
    assert_eq!(
        originals,
        [
            "acme:2,globex:3,initech:1",
            "acme:3,globex:4,initech:1",
            "acme:2,globex:3,initech:1"
        ]
    );
    let globex_rows = |db: &str| -> String {
        cluster
            .psql(
                db,
                "SELECT string_agg(x, ';' ORDER BY x) FROM ( \
                   SELECT 'c' || id || name || country AS x FROM app.customers WHERE tenant_id = 'globex' \
                   UNION ALL SELECT 'o' || id || '-' || customer_id || '-' || total FROM app.orders WHERE tenant_id = 'globex' \
                   UNION ALL SELECT 'i' || id || '-' || order_id || '-' || amount FROM billing.invoices WHERE tenant_id = 'globex') s",
            )
            .unwrap()
    };
    let globex_at_backup = globex_rows("wst_dev");

    moto.create_bucket("wst-tn-proofs").unwrap();
    moto.create_bucket("wst-tn-scratch").unwrap();
    let proofs = store(&moto, "s3://wst-tn-proofs");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            for key in [
                "tenants/acme/a.pdf",
                "tenants/globex/g1.pdf",
                "tenants/globex/sub/g2.pdf",
                "tenants/globexx/not-globex.pdf",
                "tenants/initech/i.pdf",
                "shared/logo.png",
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
        "wst-api/uploads/acme/x.png",
        "wst-api/uploads/globex/y.png",
        "wst-api/uploads/globex/z/w.pdf",
        "wst-api/uploads/initech/q.png",
    ] {
        fs::create_dir_all(t.join(f).parent().unwrap()).unwrap();
        fs::write(t.join(f), f).unwrap();
    }
    let endpoint = moto.endpoint();
    let base = format!(
        r#"
project = "wst-tenant"
actor = "ci@test"
audit_log = "{t}/state/audit.jsonl"

[[files]]
path = "{t}/wst-api"
root = "wst-api"

[[bucket]]
name = "proofs"
url = "s3://wst-tn-proofs"
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
"#,
        t = t.display(),
        user = cluster.superuser(),
        port = cluster.port(),
        keyfile = cluster.key_file().display(),
    );
    let tenant = r#"
[tenant]
column = "tenant_id"
paths = ["wst-api/uploads/{tenant}/**"]
[tenant.bucket_prefixes]
proofs = ["tenants/{tenant}/"]
"#;
    let config = t.join("wst.toml");
    fs::write(&config, format!("{base}{tenant}")).unwrap();
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

    // After the backup: acme works on (an update, a new customer), globex loses its invoices
    // and an order and renames a customer, initech is unchanged.
    cluster
        .psql(
            "wst_dev",
            "UPDATE app.orders SET total = total + 1000 WHERE tenant_id = 'acme'; \
             INSERT INTO app.customers (tenant_id, name, country) VALUES ('acme', 'a3', 'DE'); \
             DELETE FROM billing.invoices WHERE tenant_id = 'globex'; \
             DELETE FROM app.orders WHERE tenant_id = 'globex' AND total = 60; \
             UPDATE app.customers SET name = 'renamed' WHERE tenant_id = 'globex';",
        )
        .unwrap();
    let acme_after_change = |db: &str| -> String {
        cluster
            .psql(
                db,
                "SELECT (SELECT string_agg(id || name, ',' ORDER BY id) FROM app.customers WHERE tenant_id = 'acme') \
                 || '|' || (SELECT string_agg(id || ':' || total, ',' ORDER BY id) FROM app.orders WHERE tenant_id = 'acme')",
            )
            .unwrap()
    };
    let acme_changed = acme_after_change("wst_dev");
    assert!(
        acme_changed.contains("7a3") && acme_changed.contains("1:1010"),
        "{acme_changed}"
    );

    // 1. Into a scratch database and an isolated directory: exactly globex.
    let r1 = t.join("r1");
    let r = wst(
        &config,
        &[
            "--json",
            "restore",
            "--tenant",
            "globex",
            "--target",
            r1.to_str().unwrap(),
            "--database",
            "wst_tenant_1",
            &artifact,
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let out = json(&r);
    assert_eq!(out["database_usable"], true);
    let scratch = &out["tenant"]["scratch"];
    assert_eq!(scratch["database"], "wst_tenant_1");
    assert_eq!(scratch["column"], "tenant_id");
    let counts: Vec<(String, bool, u64, u64)> = scratch["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["table"].as_str().unwrap().to_owned(),
                t["shared"].as_bool().unwrap(),
                t["kept"].as_u64().unwrap(),
                t["removed"].as_u64().unwrap(),
            )
        })
        .collect();
    // Children first (the order the deletes ran in), then the shared table.
    assert_eq!(
        counts,
        [
            ("billing.invoices".to_owned(), false, 3, 3),
            ("app.orders".to_owned(), false, 4, 4),
            ("app.customers".to_owned(), false, 3, 3),
            ("ref.countries".to_owned(), true, 3, 0),
        ]
    );
    let scratch_counts: Vec<String> = TABLES
        .iter()
        .map(|t| per_tenant(&cluster, "wst_tenant_1", t))
        .collect();
    assert_eq!(scratch_counts, ["globex:3", "globex:4", "globex:3"]);
    assert_eq!(globex_rows("wst_tenant_1"), globex_at_backup);
    assert_eq!(
        cluster
            .psql("wst_tenant_1", "SELECT count(*) FROM ref.countries")
            .unwrap(),
        "3"
    );
    // Only globex's files and objects (not `globexx`, not the shared object, not the dump).
    assert_eq!(
        files(&r1),
        [
            "buckets/proofs/tenants/globex/g1.pdf",
            "buckets/proofs/tenants/globex/sub/g2.pdf",
            "wst-api/uploads/globex/y.png",
            "wst-api/uploads/globex/z/w.pdf",
        ]
    );
    assert_eq!(
        fs::read_to_string(r1.join("wst-api/uploads/globex/z/w.pdf")).unwrap(),
        "wst-api/uploads/globex/z/w.pdf"
    );

    // 2. The bucket's tenant prefixes into a scratch bucket.
    let r = wst(
        &config,
        &[
            "--json",
            "restore",
            "--tenant",
            "globex",
            "--bucket",
            "proofs",
            "--to-bucket",
            "s3://wst-tn-scratch/t1",
            &artifact,
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        keys(&moto, "wst-tn-scratch"),
        ["t1/tenants/globex/g1.pdf", "t1/tenants/globex/sub/g2.pdf"]
    );

    // 3. Refusals: into production without break-glass (clap, exit 2), into production from
    // the production database's own name, a bad tenant id, a configuration without [tenant].
    let r2 = t.join("r2");
    let r = wst(
        &config,
        &[
            "restore",
            "--tenant",
            "globex",
            "--target",
            r2.to_str().unwrap(),
            "--database",
            "wst_tenant_2",
            "--into-production",
            &artifact,
        ],
    );
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("--break-glass-by"), "{}", r.stderr);
    let r = wst(
        &config,
        &[
            "restore",
            "--tenant",
            "globex",
            "--target",
            r2.to_str().unwrap(),
            "--database",
            "wst_dev",
            "--into-production",
            "--break-glass-by",
            "L6",
            "--reason",
            "INC-7",
            &artifact,
        ],
    );
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("scratch database"), "{}", r.stderr);
    for bad in ["../acme", "glo*", "a/b", ".hidden"] {
        let r = wst(
            &config,
            &[
                "restore",
                "--tenant",
                bad,
                "--target",
                r2.to_str().unwrap(),
                &artifact,
            ],
        );
        assert_eq!(r.code, 2, "{bad}: {}{}", r.stdout, r.stderr);
        assert!(r.stderr.contains("tenant id"), "{}", r.stderr);
        assert!(
            !r.stderr.contains(bad),
            "the id is not echoed: {}",
            r.stderr
        );
    }
    // A tenant the artifact holds nothing of: its templates match no file or object (not an
    // error by themselves), so a file restore selects nothing and fails, restoring nothing.
    let r = wst(
        &config,
        &[
            "restore",
            "--tenant",
            "hooli",
            "--target",
            r2.to_str().unwrap(),
            &artifact,
        ],
    );
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("holds no file or object of this tenant"),
        "{}",
        r.stderr
    );
    assert!(!r2.exists(), "nothing handed over");
    let plain = t.join("plain.toml");
    fs::write(&plain, &base).unwrap();
    let r = wst(
        &plain,
        &[
            "restore",
            "--tenant",
            "globex",
            "--target",
            r2.to_str().unwrap(),
            &artifact,
        ],
    );
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("[tenant] section"), "{}", r.stderr);
    assert!(!r2.exists(), "nothing restored by a refused command");
    // Nothing was changed in production by the refusals.
    assert_eq!(acme_after_change("wst_dev"), acme_changed);
    assert_ne!(globex_rows("wst_dev"), globex_at_backup);

    // 4. With break-glass, into production: globex back as of the artifact, acme's later
    // changes and initech untouched.
    let initech = |db: &str| -> Vec<String> {
        TABLES
            .iter()
            .map(|t| {
                cluster
                    .psql(
                        db,
                        &format!("SELECT string_agg(id::text, ',' ORDER BY id) FROM {t} WHERE tenant_id = 'initech'"),
                    )
                    .unwrap()
            })
            .collect()
    };
    let initech_before = initech("wst_dev");
    // Refused before production is written: a table without the tenant column that hangs off
    // a tenant-owned one with ON DELETE CASCADE would lose rows the copy does not put back.
    cluster
        .psql(
            "wst_dev",
            "CREATE TABLE app.notes (customer_id int REFERENCES app.customers ON DELETE CASCADE, body text); \
             INSERT INTO app.notes SELECT id, 'n' FROM app.customers;",
        )
        .unwrap();
    let r = wst(
        &config,
        &[
            "restore",
            "--tenant",
            "globex",
            "--target",
            t.join("r-cascade").to_str().unwrap(),
            "--database",
            "wst_tenant_cascade",
            "--into-production",
            "--break-glass-by",
            "L6 on-call",
            "--reason",
            "INC-7",
            &artifact,
        ],
    );
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("`app.notes` references `app.customers` with an ON DELETE action")
            && r.stderr.contains("NOT copied into production"),
        "{}",
        r.stderr
    );
    assert_ne!(
        globex_rows("wst_dev"),
        globex_at_backup,
        "production unchanged"
    );
    assert_eq!(
        cluster
            .psql("wst_dev", "SELECT count(*) FROM app.notes")
            .unwrap(),
        "7"
    );
    cluster.psql("wst_dev", "DROP TABLE app.notes").unwrap();
    let r = wst(
        &config,
        &[
            "restore",
            "--tenant",
            "globex",
            "--target",
            r2.to_str().unwrap(),
            "--database",
            "wst_tenant_2",
            "--into-production",
            "--break-glass-by",
            "L6 on-call",
            "--reason",
            "INC-7 invoices lost",
            &artifact,
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("shared   ref.countries: 3 rows (kept whole)")
            && r.stdout.contains("tenant   billing.invoices: 3 rows kept, 3 rows of other tenants removed")
            && r.stdout.contains("tenant   billing.invoices: 3 rows copied in, 0 previous rows of the tenant replaced")
            && r.stdout.contains("tenant   app.orders: 4 rows copied in, 3 previous rows of the tenant replaced"),
        "{}",
        r.stdout
    );
    assert_eq!(globex_rows("wst_dev"), globex_at_backup);
    assert_eq!(acme_after_change("wst_dev"), acme_changed);
    assert_eq!(initech("wst_dev"), initech_before);
    let log = fs::read_to_string(t.join("state/audit.jsonl")).unwrap();
    let bg = log
        .lines()
        .position(|l| l.contains("\"break_glass_authorized\"") && l.contains("--into-production"))
        .expect("break-glass audited");
    let prod = log
        .lines()
        .position(|l| {
            l.contains("production database wst_dev (tenant restore)")
                && l.contains("L6 on-call")
                && l.contains("\"passed\":true")
        })
        .expect("the production copy audited");
    assert!(bg < prod, "authorization before the write");
    let named: Vec<&str> = log.lines().filter(|l| l.contains("globex")).collect();
    assert!(
        named.is_empty(),
        "the tenant id is not in the audit log: {named:?}"
    );

    // 5. The erasure register still applies: a globex customer erased after the backup stays
    // erased in a later tenant restore (before the database is reduced to the tenant).
    let erasure = r#"
[erasure]
sql = [
  "DELETE FROM billing.invoices WHERE order_id IN (SELECT id FROM app.orders WHERE customer_id = $1::int)",
  "DELETE FROM app.orders WHERE customer_id = $1::int",
  "DELETE FROM app.customers WHERE id = $1::int",
]
"#;
    fs::write(&config, format!("{base}{tenant}{erasure}")).unwrap();
    let r = wst(
        &config,
        &[
            "erasure",
            "record",
            "--subject",
            "6",
            "--requested-by",
            "dpo",
            "--reason",
            "Art. 17 #3",
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let r = wst(
        &config,
        &[
            "--json",
            "restore",
            "--tenant",
            "globex",
            "--target",
            t.join("r3").to_str().unwrap(),
            "--database",
            "wst_tenant_3",
            &artifact,
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let out = json(&r);
    let rows: u64 = out["erasures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["rows"].as_u64().unwrap())
        .sum();
    assert_eq!(rows, 3, "{}", out["erasures"]);
    let scratch_counts: Vec<String> = TABLES
        .iter()
        .map(|t| per_tenant(&cluster, "wst_tenant_3", t))
        .collect();
    assert_eq!(scratch_counts, ["globex:2", "globex:3", "globex:2"]);
    assert_eq!(
        cluster
            .psql(
                "wst_tenant_3",
                "SELECT count(*) FROM app.customers WHERE id = 6"
            )
            .unwrap(),
        "0"
    );
}
