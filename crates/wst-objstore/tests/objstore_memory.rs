//! `ObjectStoreSink` over in-process stores (`memory://`, `file://`): the wst-core Sink
//! conformance suite, URL parsing, secrets redaction and 3-2-1 flags.

use std::sync::Arc;

use bytes::Bytes;
use wst_core::{Medium, Sink, SinkExt, conformance};
use wst_objstore::{MIN_PART_SIZE, ObjectStoreSink};

macro_rules! conformance_cases {
    ($make:expr; $($case:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let (sink, _guard) = $make;
            conformance::$case(&sink).await;
        }
    )*};
}

mod memory {
    use super::*;
    conformance_cases!(
        (ObjectStoreSink::memory("mem"), ());
        put_get_head_delete, empty_object, list_by_prefix_sorted, overwrite_replaces,
        delete_missing_is_ok, missing_object_not_found, interrupted_put_invisible,
        concurrent_puts, invalid_names_rejected, large_multipart_round_trip, create_if_absent,
    );
}

/// A `memory://` URL with a prefix and the smallest part size: many parts, 3 in flight.
fn small_parts() -> (ObjectStoreSink, ()) {
    let sink = ObjectStoreSink::builder("mem-parts", "memory://backups/wst")
        .part_size(MIN_PART_SIZE)
        .max_concurrency(3)
        .build()
        .unwrap();
    (sink, ())
}

mod memory_small_parts {
    use super::*;
    conformance_cases!(
        small_parts();
        put_get_head_delete, interrupted_put_invisible, concurrent_puts,
        large_multipart_round_trip,
    );
}

fn file_sink() -> (ObjectStoreSink, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = url_of(dir.path());
    let sink = ObjectStoreSink::builder("file", url).build().unwrap();
    (sink, dir)
}

fn url_of(path: &std::path::Path) -> String {
    url::Url::from_directory_path(path)
        .expect("absolute directory path")
        .to_string()
}

mod file {
    use super::*;
    conformance_cases!(
        file_sink();
        put_get_head_delete, empty_object, list_by_prefix_sorted, overwrite_replaces,
        delete_missing_is_ok, missing_object_not_found, interrupted_put_invisible,
        concurrent_puts, invalid_names_rejected, large_multipart_round_trip, create_if_absent,
    );
}

#[tokio::test]
async fn objects_live_under_the_url_prefix_and_list_only_that_level() {
    let store: Arc<dyn wst_objstore::object_store::ObjectStore> =
        Arc::new(wst_objstore::object_store::memory::InMemory::new());
    let a = ObjectStoreSink::builder_for_store("a", Arc::clone(&store), "backups/a")
        .build()
        .unwrap();
    let b = ObjectStoreSink::builder_for_store("b", Arc::clone(&store), "backups")
        .build()
        .unwrap();
    a.put_bytes("x", Bytes::from_static(b"1")).await.unwrap();
    b.put_bytes("y", Bytes::from_static(b"2")).await.unwrap();
    let path = wst_objstore::object_store::path::Path::from("backups/a/x");
    assert_eq!(store.head(&path).await.unwrap().size, 1);
    let listed: Vec<String> = b
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(listed, ["y"], "the nested sink's objects are not listed");
    assert!(!b.exists("x").await.unwrap());
}

#[test]
fn info_defaults_and_flags() {
    let s3 = ObjectStoreSink::builder("offsite-s3", "s3://bucket/wst/prod")
        .from_env(false)
        .option("aws_region", "eu-west-1")
        .offsite(true)
        .build()
        .unwrap();
    assert_eq!(s3.info().medium, Medium::ObjectStorage);
    assert!(s3.info().offsite);
    assert_eq!(s3.info().location, "s3://bucket/wst/prod");

    let dir = tempfile::tempdir().unwrap();
    let file = ObjectStoreSink::builder("nas", url_of(dir.path()))
        .build()
        .unwrap();
    assert_eq!(file.info().medium, Medium::Disk);
    assert!(!file.info().offsite);

    let tape = ObjectStoreSink::builder("tape", "memory://")
        .medium(Medium::Tape)
        .build()
        .unwrap();
    assert_eq!(tape.info().medium, Medium::Tape);
}

#[test]
fn debug_never_shows_credentials() {
    let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    let builder = ObjectStoreSink::builder("offsite-s3", "s3://bucket/prefix")
        .from_env(false)
        .option("aws_access_key_id", "AKIAIOSFODNN7EXAMPLE")
        .option("aws_secret_access_key", secret)
        .option("aws_region", "eu-west-1")
        .option("aws_endpoint", "http://127.0.0.1:9000");
    let shown = format!("{builder:?}");
    assert!(!shown.contains(secret), "{shown}");
    assert!(!shown.contains("AKIAIOSFODNN7EXAMPLE"), "{shown}");
    assert!(
        shown.contains("aws_secret_access_key=[REDACTED]"),
        "{shown}"
    );
    assert!(shown.contains("aws_region=eu-west-1"), "{shown}");
    let sink = builder.build().unwrap();
    let shown = format!("{sink:?}");
    assert!(!shown.contains(secret), "{shown}");
    assert!(!shown.contains("AKIAIOSFODNN7EXAMPLE"), "{shown}");
    assert!(shown.contains("bucket"), "{shown}");
}

fn config_error(builder: wst_objstore::ObjectStoreSinkBuilder) -> String {
    match builder.build() {
        Err(wst_core::Error::Config(m)) => m,
        other => panic!("expected a Config error, got {other:?}"),
    }
}

#[test]
fn bad_configuration_is_a_config_error_without_secrets() {
    let m = config_error(ObjectStoreSink::builder("x", "ftp://host/dir"));
    assert!(m.contains("unsupported sink URL scheme `ftp://`"), "{m}");

    let m = config_error(ObjectStoreSink::builder("x", "s3://AKIA:hunter22@bucket/p"));
    assert!(m.contains("carries credentials"), "{m}");
    assert!(!m.contains("hunter22"), "{m}");

    let m = config_error(
        ObjectStoreSink::builder("x", "s3://bucket")
            .from_env(false)
            .option("aws_no_such_key", "v"),
    );
    assert!(m.contains("unknown option `aws_no_such_key`"), "{m}");

    let m = config_error(ObjectStoreSink::builder("x", "memory://").part_size(1024));
    assert!(m.contains("below the minimum"), "{m}");

    let m = config_error(ObjectStoreSink::builder(" ", "memory://"));
    assert!(m.contains("non-empty name"), "{m}");

    let m = config_error(
        ObjectStoreSink::builder("x", "az://container")
            .from_env(false)
            .option("azure_storage_account_name", "acct")
            .option(
                "azure_storage_account_key",
                "not base64 !!! secret-material",
            ),
    );
    assert!(!m.contains("secret-material"), "{m}");
}
