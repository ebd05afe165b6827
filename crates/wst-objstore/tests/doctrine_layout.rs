//! The doctrine's storage layout on real sinks: local C: and mirror D: (`LocalDiskSink`) plus an
//! offsite S3 copy (`ObjectStoreSink` on moto's S3 server): replicate C: to the others, then
//! check 3-2-1, then detect a corrupted mirror copy.
//!
//! Install (CI): `pip install 'moto[server]'`. Under `CI=true` a missing `moto_server` fails.

mod common;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use wst_core::{
    ArtifactName, ReplicateOptions, SIDECAR_FORMAT, Sidecar, SinkExt, ThreeTwoOneOptions,
    Violation, check_3_2_1, replicate,
};
use wst_objstore::{LocalDiskSink, MIN_PART_SIZE, ObjectStoreSink};

async fn store_artifact(sink: &LocalDiskSink, name: &ArtifactName, ciphertext: &[u8]) {
    sink.put_bytes(&name.artifact_object(), Bytes::copy_from_slice(ciphertext))
        .await
        .unwrap();
    let sidecar = Sidecar {
        audit_head: None,
        format: SIDECAR_FORMAT.into(),
        name: name.clone(),
        object: name.artifact_object(),
        created: name.time(),
        completed: name.time(),
        cipher_suite: "test-suite".into(),
        key_fingerprints: vec![],
        ciphertext_size: ciphertext.len() as u64,
        ciphertext_sha256: hex_sha256(ciphertext),
        tool_version: "test".into(),
        sources: Vec::new(),
        mac: None,
        verification: None,
    };
    sink.put_bytes(
        &name.sidecar_object(),
        Bytes::from(serde_json_vec(&sidecar)),
    )
    .await
    .unwrap();
}

fn hex_sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn serde_json_vec(sidecar: &Sidecar) -> Vec<u8> {
    serde_json::to_vec_pretty(sidecar).expect("sidecar serialises")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicate_then_3_2_1_on_local_mirror_and_s3() {
    let Some(bin) = common::require("moto_server", "pip install 'moto[server]'") else {
        return;
    };
    let server = common::start(
        &bin,
        &["-H", "127.0.0.1", "-p", "{port}"],
        common::answers_http,
    );
    let (status, body) =
        common::http(server.port, "PUT /offsite HTTP/1.1\r\nContent-Length: 0").unwrap();
    assert_eq!(status, 200, "{body}");

    let c_dir = tempfile::tempdir().unwrap();
    let d_dir = tempfile::tempdir().unwrap();
    let local = LocalDiskSink::open("local-c", c_dir.path()).await.unwrap();
    let mirror = LocalDiskSink::open("mirror-d", d_dir.path()).await.unwrap();
    let s3 = ObjectStoreSink::builder("offsite-s3", "s3://offsite/wst")
        .from_env(false)
        .option("aws_endpoint", format!("http://127.0.0.1:{}", server.port))
        .option("aws_region", "us-east-1")
        .option("aws_access_key_id", "wst-test-key-id")
        .option("aws_secret_access_key", "wst-test-secret-key")
        .option("allow_http", "true")
        .part_size(MIN_PART_SIZE)
        .offsite(true)
        .build()
        .unwrap();

    let older = ArtifactName::parse("wst-backup-20261120-010000").unwrap();
    let newest = ArtifactName::parse("wst-backup-20261121-010000").unwrap();
    // 12 MiB + 1: a multipart upload to S3.
    let big: Vec<u8> = (0..=12 * 1024 * 1024)
        .map(|i: u32| (i % 251) as u8)
        .collect();
    store_artifact(&local, &older, b"older ciphertext").await;
    store_artifact(&local, &newest, &big).await;

    // Before replication: only C: holds the newest artifact.
    let before = check_3_2_1(&[&local, &mirror, &s3], &ThreeTwoOneOptions::default())
        .await
        .unwrap();
    assert_eq!(before.artifact.as_ref(), Some(&newest));
    assert_eq!(before.good_copies(), 1);
    assert!(!before.is_compliant());

    for target in [&mirror as &dyn wst_core::Sink, &s3] {
        let report = replicate(&local, target, &ReplicateOptions::default())
            .await
            .unwrap();
        assert!(report.is_complete(), "{:?}", report.failed);
        let copied: Vec<&ArtifactName> = report.copied.iter().map(|c| &c.name).collect();
        assert_eq!(copied, [&older, &newest]);
        assert_eq!(report.copied[1].bytes, big.len() as u64);
        assert_eq!(report.copied[1].sha256, hex_sha256(&big));
        // Idempotent.
        let again = replicate(&local, target, &ReplicateOptions::default())
            .await
            .unwrap();
        assert!(again.copied.is_empty());
        assert_eq!(again.already_present.len(), 2);
    }

    let mut deep = ThreeTwoOneOptions::default();
    deep.verify_hashes = true;
    let after = check_3_2_1(&[&local, &mirror, &s3], &deep).await.unwrap();
    assert!(after.is_compliant(), "{:?}", after.violations);
    assert_eq!(after.good_copies(), 3);
    assert_eq!(after.sha256.as_deref(), Some(hex_sha256(&big).as_str()));

    // Bit rot on the D: mirror: same size, different bytes; only the deep check sees it.
    let path = d_dir.path().join(newest.artifact_object());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[1000] ^= 0x55;
    std::fs::write(&path, bytes).unwrap();
    let rotten = check_3_2_1(&[&local, &mirror, &s3], &deep).await.unwrap();
    assert_eq!(rotten.good_copies(), 2);
    assert!(
        matches!(&rotten.violations[0], Violation::CopyMismatch { sink, .. } if sink == "mirror-d"),
        "{:?}",
        rotten.violations
    );
    assert!(rotten.violations.contains(&Violation::TooFewCopies {
        found: 2,
        required: 3
    }));
}
