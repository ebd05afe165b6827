//! `ObjectStoreSource` and `restore_objects` (issue 9): a 1 000-object bucket on moto's S3
//! server backed up into an encrypted artifact on a local disk and restored byte for byte into
//! a second bucket; refusals (non-empty target, `..` key, key conflicts); objects deleted or
//! replaced between the listing and the download. The moto tests need `moto_server`
//! (`pip install 'moto[server]'`); under `CI=true` a missing server fails.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};
use wst_core::{
    BackupJob, BreakGlass, Cipher, PreparedSource, RunOutcome, RunReport, Sink, Source,
    SourceDescription,
};
use wst_crypto::{AeadCipher, Key};
use wst_objstore::testing::MotoServer;
use wst_objstore::{
    LocalDiskSink, ObjectRestoreOptions, ObjectStoreSource, ObjectStoreSourceConfig,
    ObjectStoreTarget, restore_objects,
};

const BIG: usize = 9 * 1024 * 1024 + 12_345;

fn cipher() -> Arc<dyn Cipher> {
    Arc::new(
        AeadCipher::builder()
            .recipient_key(Key::generate().expect("key"))
            .build()
            .expect("cipher"),
    )
}

async fn local_sink(dir: &std::path::Path) -> Arc<dyn Sink> {
    Arc::new(
        LocalDiskSink::builder("local-c", dir)
            .create_dir(true)
            .open()
            .await
            .expect("local sink"),
    )
}

/// Deterministic, incompressible-enough content for object `i`.
fn content(i: usize, len: usize) -> Vec<u8> {
    let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}

/// The 1 000 keys (relative to the prefix) and contents of the issue's bucket: nested keys, a
/// unicode key, an empty object and one object over 8 MiB.
fn bucket_objects() -> Vec<(String, Vec<u8>)> {
    let mut out = vec![
        ("tenants/ünïcødé/証明書 🚀.pdf".to_owned(), content(1, 3000)),
        ("exports/empty.csv".to_owned(), Vec::new()),
        ("exports/2026/11/big.bin".to_owned(), content(2, BIG)),
    ];
    for i in out.len()..1000 {
        let key = format!("tenants/t{:02}/proofs/{:03}/proof-{i}.json", i % 17, i % 5);
        out.push((key, content(i + 10, 1 + (i * 37) % 5000)));
    }
    out
}

async fn put_all(store: &Arc<dyn ObjectStore>, prefix: &str, objects: &[(String, Vec<u8>)]) {
    futures::stream::iter(objects)
        .map(|(k, v)| {
            let store = Arc::clone(store);
            let path = Path::parse(format!("{prefix}/{k}")).expect("valid key");
            let body = PutPayload::from(Bytes::from(v.clone()));
            async move { store.put(&path, body).await.map(|_| ()) }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await
        .expect("populate bucket");
}

/// Every object under `prefix`: relative key → content.
async fn dump(store: &Arc<dyn ObjectStore>, prefix: &str) -> BTreeMap<String, Vec<u8>> {
    let base = Path::from(prefix);
    let metas: Vec<_> = store.list(Some(&base)).try_collect().await.expect("list");
    futures::stream::iter(metas)
        .map(|m| {
            let store = Arc::clone(store);
            let rel = m.location.as_ref()[prefix.len() + 1..].to_owned();
            async move {
                let b = store.get(&m.location).await?.bytes().await?;
                Ok::<_, object_store::Error>((rel, b.to_vec()))
            }
        })
        .buffer_unordered(16)
        .try_collect()
        .await
        .expect("read objects")
}

fn s3_source(server: &MotoServer, url: &str) -> ObjectStoreSource {
    ObjectStoreSource::builder("proofs", url, "buckets/proofs")
        .from_env(false)
        .options(server.sink_options())
        .piece_size(1024 * 1024)
        .build()
        .expect("source")
}

fn s3_target(server: &MotoServer, url: &str) -> ObjectStoreTarget {
    ObjectStoreTarget::builder(url)
        .from_env(false)
        .options(server.sink_options())
        .build()
        .expect("target")
}

async fn backup(
    source: Arc<dyn Source>,
    sink: Arc<dyn Sink>,
    cipher: Arc<dyn Cipher>,
) -> RunReport {
    BackupJob::builder(cipher)
        .source(source)
        .sink(sink)
        .build()
        .expect("job")
        .run()
        .await
        .expect("backup run")
}

fn object_records(d: &SourceDescription) -> BTreeMap<String, serde_json::Value> {
    d.details["objects"]
        .as_array()
        .expect("objects array")
        .iter()
        .map(|o| (o["key"].as_str().expect("key").to_owned(), o.clone()))
        .collect()
}

fn break_glass() -> BreakGlass {
    BreakGlass {
        authorized_by: "alice (L6)".into(),
        reason: "CHG-1234".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_objects_on_moto_round_trip_byte_for_byte() {
    let Some(server) = MotoServer::start_or_skip() else {
        return;
    };
    server.create_bucket("wst-proofs").expect("bucket");
    server.create_bucket("wst-scratch").expect("bucket");
    let source = s3_source(&server, "s3://wst-proofs/data");
    let objects = bucket_objects();
    put_all(source.store(), "data", &objects).await;
    // An object outside the prefix is not archived.
    source
        .store()
        .put(&Path::from("other/x.txt"), PutPayload::from_static(b"x"))
        .await
        .expect("put");
    let listed: BTreeMap<String, (u64, Option<String>)> = source
        .store()
        .list(Some(&Path::from("data")))
        .map_ok(|m| (m.location.to_string(), (m.size, m.e_tag)))
        .try_collect()
        .await
        .expect("list");
    assert_eq!(listed.len(), 1000);

    let dir = tempfile::tempdir().expect("tempdir");
    let sink = local_sink(&dir.path().join("sink")).await;
    let cipher = cipher();
    let report = backup(Arc::new(source), Arc::clone(&sink), Arc::clone(&cipher)).await;
    assert_eq!(report.outcome, RunOutcome::Success, "{:?}", report.warnings);
    assert_eq!(report.entries, 1000);
    assert_eq!(
        report.bytes_read,
        objects.iter().map(|(_, v)| v.len() as u64).sum::<u64>()
    );

    let target = s3_target(&server, "s3://wst-scratch/restored");
    let mut options = ObjectRestoreOptions::new("buckets/proofs");
    options.work_dir = Some(dir.path().to_path_buf());
    let restored = restore_objects(&*sink, &report.artifact, &*cipher, &target, &options)
        .await
        .expect("restore objects");
    assert_eq!(restored.objects, 1000);
    assert_eq!(restored.source_url, "s3://wst-proofs/data");
    assert!(
        restored.checks.iter().all(|c| c.passed),
        "{:?}",
        restored.checks
    );
    assert!(
        restored
            .checks
            .iter()
            .any(|c| c.name == "objects_read_back")
    );
    assert!(
        restored
            .keys
            .contains(&"restored/exports/empty.csv".to_owned())
    );
    assert_eq!(
        restored.target_key("data/exports/empty.csv").as_deref(),
        Some("restored/exports/empty.csv")
    );
    assert_eq!(restored.target_key("elsewhere/x"), None);

    // The manifest lists every key with its size and ETag (and last-modified, SHA-256).
    let description = restored
        .artifact_restore
        .sources
        .iter()
        .find(|s| s.kind == "object_store")
        .expect("object_store source in the manifest");
    assert_eq!(description.root, "buckets/proofs/");
    assert_eq!(description.details["object_count"], 1000);
    assert_eq!(description.details["prefix"], "data");
    let records = object_records(description);
    assert_eq!(records.len(), 1000);
    for (key, (size, etag)) in &listed {
        let r = &records[key];
        assert_eq!(r["size"].as_u64(), Some(*size), "{key}");
        assert_eq!(r["etag"].as_str(), etag.as_deref(), "{key}");
        assert!(
            r["last_modified"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z')),
            "{key}"
        );
        assert_eq!(r["sha256"].as_str().map(str::len), Some(64), "{key}");
    }

    // Byte for byte.
    let expected: BTreeMap<String, Vec<u8>> = objects.into_iter().collect();
    let got = dump(target.store(), "restored").await;
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "restored bucket differs from the source");
    assert_eq!(got["exports/2026/11/big.bin"].len(), BIG);

    // A non-empty target is refused without break-glass, before anything is read…
    let err = restore_objects(&*sink, &report.artifact, &*cipher, &target, &options)
        .await
        .expect_err("non-empty target");
    match &err {
        wst_core::Error::RestoreTarget { path, reason } => {
            assert_eq!(path.to_str(), Some("s3://wst-scratch/restored"));
            assert!(reason.contains("already holds objects"), "{reason}");
            assert!(reason.contains("break-glass"), "{reason}");
        }
        other => panic!("expected RestoreTarget, got {other}"),
    }
    // …and allowed with it.
    options.break_glass = Some(break_glass());
    let again = restore_objects(&*sink, &report.artifact, &*cipher, &target, &options)
        .await
        .expect("restore under break-glass");
    assert_eq!(again.break_glass, Some(break_glass()));
    assert_eq!(again.objects, 1000);
    // Nothing is left in the work directory but the sink.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("read work dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("sink")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_dot_key_on_moto_is_refused_naming_the_key() {
    let Some(server) = MotoServer::start_or_skip() else {
        return;
    };
    server.create_bucket("wst-evil").expect("bucket");
    // object_store refuses to write such a key; a raw request does it.
    let (status, body) = wst_objstore::testing::http(
        server.port(),
        "PUT /wst-evil/data/a/%2E%2E/escape.txt HTTP/1.1\r\nContent-Length: 0",
    )
    .expect("raw put");
    assert_eq!(status, 200, "{body}");
    let source = s3_source(&server, "s3://wst-evil/data");
    source
        .store()
        .put(&Path::from("data/fine.txt"), PutPayload::from_static(b"ok"))
        .await
        .expect("put");
    let err = source.prepare().await.map(|_| ()).expect_err("`..` key");
    let wst_core::Error::Source { name, source } = &err else {
        panic!("expected a source error, got {err}");
    };
    assert_eq!(name, "proofs");
    match source.downcast_ref::<wst_objstore::Error>() {
        Some(wst_objstore::Error::InvalidKey { key, .. }) => {
            assert_eq!(key, "data/a/../escape.txt");
        }
        other => panic!("expected InvalidKey, got {other:?}"),
    }
    assert!(err.to_string().contains("`data/a/../escape.txt`"), "{err}");
}

/// A source that runs `after_prepare` on the bucket between listing and archiving.
#[derive(Debug)]
struct Meddle {
    inner: ObjectStoreSource,
    action: Action,
}

#[derive(Debug)]
enum Action {
    Delete(&'static str),
    Replace(&'static str, &'static [u8]),
}

#[async_trait]
impl Source for Meddle {
    fn name(&self) -> String {
        self.inner.name()
    }

    async fn prepare(&self) -> wst_core::Result<Box<dyn PreparedSource>> {
        let prepared = self.inner.prepare().await?;
        let store = self.inner.store();
        match self.action {
            Action::Delete(key) => store.delete(&Path::from(key)).await.expect("delete"),
            Action::Replace(key, body) => {
                store
                    .put(&Path::from(key), PutPayload::from_static(body))
                    .await
                    .expect("replace");
            }
        }
        Ok(prepared)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_deleted_after_listing_on_moto_is_a_warning_naming_the_key() {
    let Some(server) = MotoServer::start_or_skip() else {
        return;
    };
    server.create_bucket("wst-vanish").expect("bucket");
    let source = s3_source(&server, "s3://wst-vanish/data");
    let objects: Vec<(String, Vec<u8>)> = (0..20)
        .map(|i| (format!("k/{i:02}.bin"), content(i, 100 + i)))
        .collect();
    put_all(source.store(), "data", &objects).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = local_sink(&dir.path().join("sink")).await;
    let cipher = cipher();
    let meddle = Meddle {
        inner: source,
        action: Action::Delete("data/k/07.bin"),
    };
    let report = backup(Arc::new(meddle), Arc::clone(&sink), Arc::clone(&cipher)).await;
    assert_eq!(report.outcome, RunOutcome::SuccessWithWarnings);
    assert_eq!(report.entries, 19);
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    assert!(
        report.warnings[0].contains("`data/k/07.bin`")
            && report.warnings[0].contains("no longer exists"),
        "{}",
        report.warnings[0]
    );

    server.create_bucket("wst-vanish-restore").expect("bucket");
    let target = s3_target(&server, "s3://wst-vanish-restore/r");
    let mut options = ObjectRestoreOptions::new("buckets/proofs/");
    options.work_dir = Some(dir.path().to_path_buf());
    let restored = restore_objects(&*sink, &report.artifact, &*cipher, &target, &options)
        .await
        .expect("restore");
    assert_eq!(restored.objects, 19);
    assert!(!restored.keys.contains(&"r/k/07.bin".to_owned()));
    let d = &restored.artifact_restore.sources[0];
    assert_eq!(d.details["vanished"], serde_json::json!(["data/k/07.bin"]));
    assert!(!object_records(d).contains_key("data/k/07.bin"));
}

fn memory_source(store: &Arc<dyn ObjectStore>, prefix: &str) -> ObjectStoreSource {
    ObjectStoreSource::builder_for_store("bucket", Arc::clone(store), prefix, "buckets/b")
        .piece_size(64 * 1024)
        .max_concurrency(3)
        .build()
        .expect("source")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_replaced_after_listing_is_stored_as_downloaded_and_flagged() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let objects: Vec<(String, Vec<u8>)> = vec![
        ("a.txt".into(), b"first version".to_vec()),
        ("b/large.bin".into(), content(3, 300_000)),
    ];
    put_all(&store, "p", &objects).await;
    let meddle = Meddle {
        inner: memory_source(&store, "p"),
        action: Action::Replace("p/a.txt", b"the second, longer version"),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = local_sink(&dir.path().join("sink")).await;
    let cipher = cipher();
    let report = backup(Arc::new(meddle), Arc::clone(&sink), Arc::clone(&cipher)).await;
    assert_eq!(report.outcome, RunOutcome::SuccessWithWarnings);
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    let w = &report.warnings[0];
    assert!(
        w.contains("`p/a.txt` changed between the listing and its download"),
        "{w}"
    );
    assert!(
        w.contains("listed 13 bytes") && w.contains("stored 26 bytes"),
        "{w}"
    );

    let target_store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let target = ObjectStoreTarget::for_store(Arc::clone(&target_store), "t").expect("target");
    let mut options = ObjectRestoreOptions::new("buckets/b");
    options.work_dir = Some(dir.path().to_path_buf());
    let restored = restore_objects(&*sink, &report.artifact, &*cipher, &target, &options)
        .await
        .expect("restore");
    let records = object_records(&restored.artifact_restore.sources[0]);
    assert_eq!(records["p/a.txt"]["size"], 26);
    assert_eq!(records["p/a.txt"]["changed_since_listing"], true);
    assert!(
        records["p/b/large.bin"]
            .get("changed_since_listing")
            .is_none()
    );
    let got = dump(&target_store, "t").await;
    assert_eq!(got["a.txt"], b"the second, longer version");
    assert_eq!(got["b/large.bin"], objects[1].1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_conflicts_and_folder_markers() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    put_all(
        &store,
        "p",
        &[
            ("docs".into(), Vec::new()),
            ("docs/a.pdf".into(), b"pdf".to_vec()),
            ("docs-2/b.pdf".into(), b"pdf".to_vec()),
        ],
    )
    .await;
    // A zero-byte key that is also a folder is a folder marker: skipped with a warning.
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = local_sink(dir.path()).await;
    let report = backup(Arc::new(memory_source(&store, "p")), sink, cipher()).await;
    assert_eq!(report.entries, 2);
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    assert!(
        report.warnings[0].contains("`p/docs`") && report.warnings[0].contains("folder marker")
    );

    // A non-empty one cannot be archived beside its children.
    store
        .put(&Path::from("p/docs"), PutPayload::from_static(b"not empty"))
        .await
        .expect("put");
    let err = memory_source(&store, "p")
        .prepare()
        .await
        .map(|_| ())
        .expect_err("conflict");
    let wst_core::Error::Source { source, .. } = &err else {
        panic!("expected a source error, got {err}");
    };
    match source.downcast_ref::<wst_objstore::Error>() {
        Some(wst_objstore::Error::KeyConflict { key, other }) => {
            assert_eq!(key, "p/docs");
            assert_eq!(other, "p/docs/a.pdf");
        }
        other => panic!("expected KeyConflict, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_checks_target_and_root() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    put_all(&store, "", &[("x/y.txt".into(), b"y".to_vec())]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = local_sink(&dir.path().join("sink")).await;
    let cipher = cipher();
    let source = ObjectStoreSource::builder_for_store("bucket", Arc::clone(&store), "", "b")
        .build()
        .expect("source");
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).expect("mkdir");
    std::fs::write(files.join("a.txt"), "a").expect("write");
    let report = BackupJob::builder(Arc::clone(&cipher))
        .source(Arc::new(source))
        .source(Arc::new(
            wst_core::FileTreeSource::new(&files, "files").expect("files source"),
        ))
        .sink(Arc::clone(&sink))
        .build()
        .expect("job")
        .run()
        .await
        .expect("backup");
    assert_eq!(report.outcome, RunOutcome::Success);

    // A root that is not in the artifact restores nothing and says so.
    let target = ObjectStoreTarget::for_store(Arc::new(InMemory::new()), "").expect("target");
    let mut options = ObjectRestoreOptions::new("nope");
    options.work_dir = Some(dir.path().to_path_buf());
    let err = restore_objects(&*sink, &report.artifact, &*cipher, &target, &options)
        .await
        .expect_err("unknown root");
    assert!(
        matches!(&err, wst_core::Error::SelectionUnmatched { patterns, .. } if patterns == &["nope/"]),
        "{err}"
    );
    // A root of another kind of source names the object-store roots the artifact has.
    options.root = "files".into();
    let err = restore_objects(&*sink, &report.artifact, &*cipher, &target, &options)
        .await
        .expect_err("files root");
    assert!(
        matches!(&err, wst_core::Error::Config(m) if m.contains("[\"b/\"]")),
        "{err}"
    );

    // Restoring the source's own bucket (production) is refused without break-glass.
    let prod = ObjectStoreTarget::for_store(Arc::clone(&store), "").expect("target");
    options.root = "b".into();
    let err = restore_objects(&*sink, &report.artifact, &*cipher, &prod, &options)
        .await
        .expect_err("production");
    assert!(
        matches!(&err, wst_core::Error::RestoreTarget { reason, .. } if reason.contains("`x/y.txt`")),
        "{err}"
    );
}

#[test]
fn config_and_url_checks() {
    let c: ObjectStoreSourceConfig = toml::from_str(
        r#"
        url = "s3://wst-proofs/tenants"
        root = "buckets/proofs"
        options = { aws_region = "eu-west-1", aws_access_key_id = "AKIAEXAMPLE", aws_secret_access_key = "very-secret-value" }
        max_concurrency = 4
        "#,
    )
    .expect("config");
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("very-secret-value") && shown.contains("eu-west-1"),
        "{shown}"
    );
    let source = c.builder("proofs").from_env(false).build().expect("source");
    assert_eq!(source.prefix(), "tenants");
    assert_eq!(source.url(), "s3://wst-proofs/tenants");
    assert!(!format!("{source:?}").contains("very-secret-value"));
    assert!(
        toml::from_str::<ObjectStoreSourceConfig>("url = \"s3://b\"\nroot = \"r\"\nrot = 1")
            .is_err()
    );

    let err = ObjectStoreSource::builder("p", "s3://AKIA:hunter22@bucket/x", "r")
        .from_env(false)
        .build()
        .expect_err("credentials in URL");
    let m = err.to_string();
    assert!(
        m.contains("carries credentials") && !m.contains("hunter22"),
        "{m}"
    );
    for root in ["", "../up", ".wst", "a//b"] {
        let err = ObjectStoreSource::builder("p", "s3://bucket/x", root)
            .from_env(false)
            .option("aws_region", "us-east-1")
            .build()
            .expect_err(root);
        assert!(matches!(err, wst_core::Error::Config(_)), "{root}: {err}");
    }
}

/// Also runs on a current-thread runtime: the archive writer blocks on a blocking thread while
/// the downloads run on the runtime's one thread.
#[tokio::test]
async fn selective_restore_of_key_prefixes() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let objects: Vec<(String, Vec<u8>)> = [
        "acme/p1.pdf",
        "acme/sub/p2.pdf",
        "acme-2/p3.pdf",
        "globex/p4.pdf",
        "initech/[draft] p5.pdf",
    ]
    .iter()
    .enumerate()
    .map(|(i, k)| ((*k).to_owned(), content(i, 100 + i)))
    .collect();
    put_all(&store, "tenants", &objects).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = local_sink(&dir.path().join("sink")).await;
    let cipher = cipher();
    let report = backup(
        Arc::new(memory_source(&store, "tenants")),
        Arc::clone(&sink),
        Arc::clone(&cipher),
    )
    .await;
    assert_eq!(report.entries, 5);

    let target_store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let target = ObjectStoreTarget::for_store(Arc::clone(&target_store), "r").expect("target");
    let mut options = ObjectRestoreOptions::new("buckets/b");
    options.work_dir = Some(dir.path().to_path_buf());
    options.prefixes = vec!["acme/".into(), "initech/[draft] p5.pdf".into()];
    let restored = restore_objects(&*sink, &report.artifact, &*cipher, &target, &options)
        .await
        .expect("selective restore");
    assert_eq!(
        restored.keys,
        vec![
            "r/acme/p1.pdf",
            "r/acme/sub/p2.pdf",
            "r/initech/[draft] p5.pdf"
        ]
    );
    assert_eq!(restored.selection, options.prefixes);
    let got = dump(&target_store, "r").await;
    assert_eq!(got.len(), 3, "nothing else appears in the target");
    assert_eq!(got["acme/sub/p2.pdf"], objects[1].1);

    // A prefix that selects nothing is an error, not an empty restore.
    let other = ObjectStoreTarget::for_store(Arc::new(InMemory::new()), "").expect("target");
    options.prefixes = vec!["umbrella".into()];
    let err = restore_objects(&*sink, &report.artifact, &*cipher, &other, &options)
        .await
        .expect_err("unmatched prefix");
    assert!(err.to_string().contains("umbrella"), "{err}");
}

/// `file://` URLs: a local directory as a bucket (`object_store`'s local file system store,
/// with its own `ETag`s and range reads).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_url_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("bucket");
    let objects: Vec<(String, Vec<u8>)> = vec![
        ("a.txt".into(), b"alpha".to_vec()),
        ("nested/deeper/b.bin".into(), content(7, 200_000)),
        ("nested/empty".into(), Vec::new()),
    ];
    for (k, v) in &objects {
        let p = src.join(k);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, v).expect("write");
    }
    let url = |p: &std::path::Path| {
        url::Url::from_directory_path(p)
            .expect("absolute path")
            .to_string()
    };
    let source = ObjectStoreSource::builder("local-bucket", url(&src), "buckets/local")
        .piece_size(64 * 1024)
        .build()
        .expect("source");
    let sink = local_sink(&dir.path().join("sink")).await;
    let cipher = cipher();
    let report = backup(Arc::new(source), Arc::clone(&sink), Arc::clone(&cipher)).await;
    assert_eq!(report.outcome, RunOutcome::Success, "{:?}", report.warnings);
    assert_eq!(report.entries, 3);

    let dst = dir.path().join("restored");
    std::fs::create_dir_all(&dst).expect("mkdir");
    let target = ObjectStoreTarget::builder(url(&dst))
        .build()
        .expect("target");
    let mut options = ObjectRestoreOptions::new("buckets/local");
    options.work_dir = Some(dir.path().to_path_buf());
    let restored = restore_objects(&*sink, &report.artifact, &*cipher, &target, &options)
        .await
        .expect("restore");
    assert_eq!(
        restored.keys,
        vec!["a.txt", "nested/deeper/b.bin", "nested/empty"]
    );
    for (k, v) in &objects {
        assert_eq!(
            &std::fs::read(dst.join(k)).expect("restored file"),
            v,
            "{k}"
        );
    }
    let err = restore_objects(&*sink, &report.artifact, &*cipher, &target, &options)
        .await
        .expect_err("non-empty");
    assert!(
        matches!(err, wst_core::Error::RestoreTarget { .. }),
        "{err}"
    );
}
