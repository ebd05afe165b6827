//! `LocalDiskSink`: the wst-core Sink conformance suite, plus the local-disk specifics (temporary
//! file naming, stale temp clean-up, root checks, bounded read chunks, permissions).

use std::path::Path;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::StreamExt;
use wst_core::{Medium, Sink, SinkExt, conformance};
use wst_objstore::LocalDiskSink;

async fn sink_in(dir: &Path) -> LocalDiskSink {
    LocalDiskSink::open("local-c", dir)
        .await
        .expect("open sink")
}

macro_rules! conformance_cases {
    ($($case:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let dir = tempfile::tempdir().unwrap();
            let sink = sink_in(dir.path()).await;
            conformance::$case(&sink).await;
            assert_eq!(entries(dir.path()), Vec::<String>::new(), "the case must leave the directory empty");
        }
    )*};
}

conformance_cases!(
    put_get_head_delete,
    empty_object,
    list_by_prefix_sorted,
    overwrite_replaces,
    delete_missing_is_ok,
    missing_object_not_found,
    interrupted_put_invisible,
    concurrent_puts,
    invalid_names_rejected,
    large_multipart_round_trip,
    create_if_absent,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_on_shared_sink_through_arc() {
    let dir = tempfile::tempdir().unwrap();
    let sink: std::sync::Arc<dyn Sink> = std::sync::Arc::new(sink_in(dir.path()).await);
    conformance::run_all(&sink).await;
}

/// All directory entries (including dot files), sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn upload_uses_hidden_temp_file_then_renames() {
    let dir = tempfile::tempdir().unwrap();
    let sink = LocalDiskSink::builder("local-c", dir.path())
        .write_buffer_size(4)
        .open()
        .await
        .unwrap();
    let mut up = sink
        .put("wst-backup-20261121-053804.tar.zst.wst")
        .await
        .unwrap();
    up.write(Bytes::from_static(b"0123456789")).await.unwrap();
    let during = entries(dir.path());
    assert_eq!(during.len(), 1, "{during:?}");
    let temp = &during[0];
    let random = temp
        .strip_prefix(".wst-backup-20261121-053804.tar.zst.wst.")
        .and_then(|r| r.strip_suffix(".tmp"))
        .unwrap_or_else(|| panic!("temp name `{temp}` is not `.{{name}}.{{random}}.tmp`"));
    assert_eq!(random.len(), 8, "{temp}");
    assert!(random.bytes().all(|b| b.is_ascii_alphanumeric()), "{temp}");
    assert_eq!(std::fs::read(dir.path().join(temp)).unwrap(), b"0123456789");
    let meta = up.complete().await.unwrap();
    assert_eq!(meta.size, 10);
    assert_eq!(
        entries(dir.path()),
        ["wst-backup-20261121-053804.tar.zst.wst"]
    );
    assert_eq!(
        std::fs::read(dir.path().join("wst-backup-20261121-053804.tar.zst.wst")).unwrap(),
        b"0123456789"
    );
}

#[tokio::test]
async fn dropped_and_aborted_uploads_remove_their_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let sink = LocalDiskSink::builder("local-c", dir.path())
        .write_buffer_size(0)
        .open()
        .await
        .unwrap();
    let mut up = sink.put("a").await.unwrap();
    up.write(Bytes::from_static(b"partial")).await.unwrap();
    assert_eq!(entries(dir.path()).len(), 1);
    drop(up);
    assert_eq!(entries(dir.path()), Vec::<String>::new());

    let mut up = sink.put("b").await.unwrap();
    up.write(Bytes::from_static(b"partial")).await.unwrap();
    up.abort().await.unwrap();
    assert_eq!(entries(dir.path()), Vec::<String>::new());
}

#[tokio::test]
async fn long_names_get_a_temp_name_within_file_name_limits() {
    let dir = tempfile::tempdir().unwrap();
    let sink = sink_in(dir.path()).await;
    let name = "n".repeat(255);
    let meta = sink
        .put_bytes(&name, Bytes::from_static(b"x"))
        .await
        .unwrap();
    assert_eq!(meta.name, name);
    assert_eq!(
        sink.get_bytes(&name, 10).await.unwrap(),
        Bytes::from_static(b"x")
    );
}

fn write_aged(path: &Path, age: Duration) {
    std::fs::write(path, b"stale").unwrap();
    let t = filetime::FileTime::from_system_time(SystemTime::now() - age);
    filetime::set_file_mtime(path, t).unwrap();
}

#[tokio::test]
async fn stale_temp_files_are_removed_on_open_and_list_fresh_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    let day = Duration::from_secs(24 * 3600);
    write_aged(
        &dir.path().join(".crashed.AbCdEfGh.tmp"),
        day + Duration::from_secs(60),
    );
    write_aged(
        &dir.path().join(".live.AbCdEfGh.tmp"),
        Duration::from_secs(60),
    );
    write_aged(&dir.path().join(".DS_Store"), day * 30);
    let sink = sink_in(dir.path()).await;
    assert_eq!(
        entries(dir.path()),
        [".DS_Store", ".live.AbCdEfGh.tmp"],
        "open removes only stale temps"
    );

    write_aged(&dir.path().join(".crashed-again.12345678.tmp"), day * 2);
    let listed = sink.list("").await.unwrap();
    assert!(listed.is_empty(), "dot files are never objects: {listed:?}");
    assert_eq!(
        entries(dir.path()),
        [".DS_Store", ".live.AbCdEfGh.tmp"],
        "list removes stale temps"
    );

    let eager = LocalDiskSink::builder("local-c", dir.path())
        .stale_temp_age(Duration::from_secs(10))
        .open()
        .await
        .unwrap();
    assert_eq!(entries(dir.path()), [".DS_Store"]);
    write_aged(&dir.path().join(".x.abcdefgh.tmp"), Duration::from_secs(11));
    assert_eq!(eager.remove_stale_temp_files().await.unwrap(), 1);
}

#[tokio::test]
async fn list_ignores_directories_and_invalid_names() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("subdir")).unwrap();
    std::fs::write(dir.path().join("ok"), b"1").unwrap();
    let sink = sink_in(dir.path()).await;
    let listed = sink.list("").await.unwrap();
    assert_eq!(
        listed.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
        ["ok"]
    );
    assert!(matches!(
        sink.head("subdir").await,
        Err(wst_core::Error::NotFound { .. })
    ));
    assert!(matches!(
        sink.get("subdir").await.map(drop),
        Err(wst_core::Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn missing_root_is_an_error_unless_create_dir() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("not-mounted").join("wst");
    let err = LocalDiskSink::open("mirror-d", &root).await.unwrap_err();
    match &err {
        wst_core::Error::Sink {
            sink,
            operation,
            retryable,
            source,
            ..
        } => {
            assert_eq!(sink, "mirror-d");
            assert_eq!(*operation, "open");
            assert!(!retryable);
            assert!(
                matches!(
                    source.downcast_ref::<wst_objstore::Error>(),
                    Some(wst_objstore::Error::Root { .. })
                ),
                "{source:?}"
            );
        }
        other => panic!("expected a Sink error, got {other:?}"),
    }
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(!root.exists());

    let sink = LocalDiskSink::builder("mirror-d", &root)
        .create_dir(true)
        .open()
        .await
        .unwrap();
    assert!(root.is_dir());
    assert_eq!(sink.root(), root);
}

#[tokio::test]
async fn root_that_is_a_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"").unwrap();
    let err = LocalDiskSink::builder("x", &file)
        .create_dir(true)
        .open()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not a directory"), "{err}");
}

#[tokio::test]
async fn empty_sink_name_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = LocalDiskSink::open(" ", dir.path()).await.unwrap_err();
    assert!(matches!(err, wst_core::Error::Config(_)), "{err:?}");
}

#[tokio::test]
async fn info_reports_disk_medium_and_offsite_flag() {
    let dir = tempfile::tempdir().unwrap();
    let onsite = sink_in(dir.path()).await;
    assert_eq!(onsite.info().medium, Medium::Disk);
    assert!(!onsite.info().offsite);
    assert_eq!(onsite.info().name, "local-c");
    assert_eq!(onsite.info().location, dir.path().display().to_string());
    let offsite = LocalDiskSink::builder("vault", dir.path())
        .offsite(true)
        .open()
        .await
        .unwrap();
    assert!(offsite.info().offsite);
}

#[tokio::test]
async fn get_yields_bounded_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let sink = LocalDiskSink::builder("local-c", dir.path())
        .read_chunk_size(4096)
        .open()
        .await
        .unwrap();
    let data = vec![7u8; 100_000];
    sink.put_bytes("big", Bytes::from(data.clone()))
        .await
        .unwrap();
    let mut stream = sink.get("big").await.unwrap();
    let mut total = 0;
    let mut largest = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        largest = largest.max(chunk.len());
        total += chunk.len();
    }
    assert_eq!(total, 100_000);
    assert!(largest <= 4096, "largest chunk {largest}");
}

#[tokio::test]
async fn c_and_d_pair_are_independent() {
    let c = tempfile::tempdir().unwrap();
    let d = tempfile::tempdir().unwrap();
    let local = LocalDiskSink::open("local-c", c.path()).await.unwrap();
    let mirror = LocalDiskSink::open("mirror-d", d.path()).await.unwrap();
    local
        .put_bytes("a", Bytes::from_static(b"1"))
        .await
        .unwrap();
    assert!(!mirror.exists("a").await.unwrap());
    mirror
        .put_bytes("a", Bytes::from_static(b"2"))
        .await
        .unwrap();
    assert_eq!(
        local.get_bytes("a", 8).await.unwrap(),
        Bytes::from_static(b"1")
    );
    assert_eq!(
        mirror.get_bytes("a", 8).await.unwrap(),
        Bytes::from_static(b"2")
    );
}

#[cfg(unix)]
#[tokio::test]
async fn objects_are_private_to_the_owner_on_unix() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let sink = sink_in(dir.path()).await;
    sink.put_bytes("secret-ish", Bytes::from_static(b"x"))
        .await
        .unwrap();
    let mode = std::fs::metadata(dir.path().join("secret-ish"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}
