//! `ObjectStoreSink` against real servers on loopback: moto's S3 server and Azurite (Azure Blob).
//! The harness starts each server on a free 127.0.0.1 port and kills it at the end of the test.
//!
//! Install (CI): `pip install 'moto[server]'` (provides `moto_server`) and
//! `npm install -g azurite` (provides `azurite-blob`). Under `CI=true` a missing binary fails.

mod common;

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use wst_core::{Medium, Sink, SinkExt, conformance};
use wst_objstore::{MIN_PART_SIZE, ObjectStoreSink};

const MOTO_INSTALL: &str = "pip install 'moto[server]'";
const AZURITE_INSTALL: &str = "npm install -g azurite";

/// Azurite's well-known development account (public, documented by Microsoft).
const AZURITE_ACCOUNT: &str = "devstoreaccount1";
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

// ----- S3 (moto) -----

fn start_moto() -> Option<common::Server> {
    let bin = common::require("moto_server", MOTO_INSTALL)?;
    Some(common::start(
        &bin,
        &["-H", "127.0.0.1", "-p", "{port}"],
        common::answers_http,
    ))
}

fn create_bucket(port: u16, bucket: &str) {
    let (status, body) = common::http(
        port,
        &format!("PUT /{bucket} HTTP/1.1\r\nContent-Length: 0"),
    )
    .expect("create bucket request");
    assert_eq!(status, 200, "create bucket `{bucket}`: {body}");
}

fn s3_sink(port: u16, bucket: &str, prefix: &str) -> ObjectStoreSink {
    ObjectStoreSink::builder("offsite-s3", format!("s3://{bucket}/{prefix}"))
        .from_env(false)
        .option("aws_endpoint", format!("http://127.0.0.1:{port}"))
        .option("aws_region", "us-east-1")
        .option("aws_access_key_id", "wst-test-key-id")
        .option("aws_secret_access_key", "wst-test-secret-key")
        .option("allow_http", "true")
        .part_size(MIN_PART_SIZE)
        .max_concurrency(4)
        .offsite(true)
        .build()
        .expect("build S3 sink")
}

/// Incomplete multipart uploads in the bucket, as moto reports them.
fn open_multipart_uploads(port: u16, bucket: &str) -> usize {
    let (status, body) =
        common::http(port, &format!("GET /{bucket}?uploads HTTP/1.1")).expect("list uploads");
    assert_eq!(status, 200, "list multipart uploads: {body}");
    body.matches("<Upload>").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_moto_conformance_and_multipart_abort() {
    let Some(server) = start_moto() else {
        return;
    };
    let port = server.port;
    create_bucket(port, "wst-test");
    let sink = s3_sink(port, "wst-test", "backups/prod");
    assert_eq!(sink.info().medium, Medium::ObjectStorage);
    assert!(sink.info().offsite);

    conformance::run_all(&sink).await;

    // The objects were stored under the URL prefix, as S3 keys.
    sink.put_bytes("probe", Bytes::from_static(b"x"))
        .await
        .unwrap();
    let (status, body) = common::http(
        port,
        "GET /wst-test?list-type=2&prefix=backups/prod/ HTTP/1.1",
    )
    .expect("list objects");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<Key>backups/prod/probe</Key>"), "{body}");
    sink.delete("probe").await.unwrap();

    // Aborted and dropped multipart uploads are aborted on the server, not just hidden.
    assert_eq!(
        open_multipart_uploads(port, "wst-test"),
        0,
        "after the conformance suite"
    );
    let part = Bytes::from(vec![7u8; MIN_PART_SIZE]);
    let mut up = sink.put("aborted-multipart").await.unwrap();
    up.write(part.clone()).await.unwrap();
    up.write(part.clone()).await.unwrap();
    assert_eq!(
        open_multipart_uploads(port, "wst-test"),
        1,
        "multipart upload in progress"
    );
    up.abort().await.unwrap();
    assert_eq!(open_multipart_uploads(port, "wst-test"), 0, "after abort()");

    let mut up = sink.put("dropped-multipart").await.unwrap();
    up.write(part.clone()).await.unwrap();
    up.write(part).await.unwrap();
    drop(up);
    let deadline = Instant::now() + Duration::from_secs(10);
    while open_multipart_uploads(port, "wst-test") > 0 {
        assert!(
            Instant::now() < deadline,
            "dropped multipart upload was not aborted within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!sink.exists("aborted-multipart").await.unwrap());
    assert!(!sink.exists("dropped-multipart").await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_missing_bucket_is_a_sink_error() {
    let Some(server) = start_moto() else {
        return;
    };
    let sink = s3_sink(server.port, "no-such-bucket", "");
    let err = sink
        .put_bytes("x", Bytes::from_static(b"1"))
        .await
        .unwrap_err();
    match &err {
        wst_core::Error::Sink {
            sink, operation, ..
        } => {
            assert_eq!(sink, "offsite-s3");
            assert_eq!(*operation, "put");
        }
        other => panic!("expected a Sink error, got {other:?}"),
    }
    assert!(!err.to_string().contains("wst-test-secret-key"), "{err}");
}

// ----- Azure Blob (Azurite) -----

fn start_azurite() -> Option<common::Server> {
    let bin = common::require("azurite-blob", AZURITE_INSTALL)?;
    Some(common::start(
        &bin,
        &[
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            "{port}",
            "--location",
            "{dir}",
            "--skipApiVersionCheck",
            "--silent",
        ],
        common::answers_http,
    ))
}

/// Creates a container with a Shared Key signed request (Azure Storage REST API
/// "Create Container"; the signature scheme of "Authorize with Shared Key").
fn create_container(port: u16, container: &str) {
    let date = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let version = "2021-08-06";
    let string_to_sign = format!(
        "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n\
         /{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}/{container}\nrestype:container"
    );
    let key = B64.decode(AZURITE_KEY).expect("Azurite key is base64");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC key");
    mac.update(string_to_sign.as_bytes());
    let signature = B64.encode(mac.finalize().into_bytes());
    let (status, body) = common::http(
        port,
        &format!(
            "PUT /{AZURITE_ACCOUNT}/{container}?restype=container HTTP/1.1\r\n\
             x-ms-date: {date}\r\nx-ms-version: {version}\r\nContent-Length: 0\r\n\
             Authorization: SharedKey {AZURITE_ACCOUNT}:{signature}"
        ),
    )
    .expect("create container request");
    assert_eq!(status, 201, "create container `{container}`: {body}");
}

fn azure_sink(port: u16, container: &str, key: &str) -> ObjectStoreSink {
    ObjectStoreSink::builder("offsite-azure", format!("az://{container}/wst"))
        .from_env(false)
        .option("azure_storage_account_name", AZURITE_ACCOUNT)
        .option("azure_storage_account_key", key)
        .option(
            "azure_storage_endpoint",
            format!("http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"),
        )
        .option("allow_http", "true")
        .part_size(MIN_PART_SIZE)
        .offsite(true)
        .build()
        .expect("build Azure sink")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_azurite_conformance() {
    let Some(server) = start_azurite() else {
        return;
    };
    create_container(server.port, "wst-test");
    let sink = azure_sink(server.port, "wst-test", AZURITE_KEY);
    assert_eq!(sink.info().location, "az://wst-test/wst");
    conformance::run_all(&sink).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_wrong_key_is_refused_without_leaking_it() {
    let Some(server) = start_azurite() else {
        return;
    };
    create_container(server.port, "wst-test");
    // A valid base64 key that is not the account's.
    let wrong = B64.encode([42u8; 64]);
    let sink = azure_sink(server.port, "wst-test", &wrong);
    let err = sink
        .put_bytes("x", Bytes::from_static(b"1"))
        .await
        .unwrap_err();
    let wst_core::Error::Sink { retryable, .. } = &err else {
        panic!("expected a Sink error, got {err:?}");
    };
    assert!(
        !retryable,
        "an authentication failure is not retryable: {err}"
    );
    let text = format!("{err} {err:?} {sink:?}");
    assert!(!text.contains(&wrong), "{text}");
}
