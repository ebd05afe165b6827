//! Upload throughput of `ObjectStoreSink` to moto's S3 server on loopback, next to `aws s3 cp`
//! of the same number of bytes to the same server (the reference tool).
//!
//! ```text
//! pip install 'moto[server]' awscli
//! cargo bench -p wst-objstore --bench upload            # 1 GiB
//! WST_BENCH_BYTES=268435456 cargo bench -p wst-objstore --bench upload   # 256 MiB
//! ```
//!
//! Both sides are limited by moto (a Python server), so the comparison says whether the sink
//! keeps up with a mature multipart uploader against the same server, not what S3 would do.
//! The sink runs twice: with its defaults (16 MiB parts, 4 in flight) and with aws-cli's
//! defaults (8 MiB parts, 10 in flight); `aws s3 cp` runs with its defaults.

// criterion_group!/criterion_main! generate undocumented functions.
#![allow(missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use wst_core::Sink;
use wst_objstore::ObjectStoreSink;

const PIECE: usize = 1024 * 1024;

fn total_bytes() -> usize {
    std::env::var("WST_BENCH_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024 * 1024 * 1024)
}

fn upload(c: &mut Criterion) {
    let Some(moto) = common::require("moto_server", "pip install 'moto[server]'") else {
        return;
    };
    let server = common::start(
        &moto,
        &["-H", "127.0.0.1", "-p", "{port}"],
        common::answers_http,
    );
    let port = server.port;
    let (status, body) = common::http(port, "PUT /bench HTTP/1.1\r\nContent-Length: 0")
        .expect("create bucket request");
    assert_eq!(status, 200, "create bucket: {body}");
    let total = total_bytes();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let sink = |part_size: usize, concurrency: usize| {
        ObjectStoreSink::builder("bench", "s3://bench/wst")
            .from_env(false)
            .option("aws_endpoint", format!("http://127.0.0.1:{port}"))
            .option("aws_region", "us-east-1")
            .option("aws_access_key_id", "bench")
            .option("aws_secret_access_key", "bench-secret")
            .option("allow_http", "true")
            .part_size(part_size)
            .max_concurrency(concurrency)
            .build()
            .expect("sink")
    };
    let piece = Bytes::from(
        (0..PIECE)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect::<Vec<u8>>(),
    );

    let mut group = c.benchmark_group("upload_to_moto");
    // One upload per iteration, ten iterations: a 1 GiB upload takes seconds.
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(60));
    group.throughput(Throughput::Bytes(total as u64));
    // The defaults (16 MiB parts, 4 in flight), then aws-cli's defaults (8 MiB parts, 10).
    for (part_size, concurrency) in [
        (
            wst_objstore::DEFAULT_PART_SIZE,
            wst_objstore::DEFAULT_MAX_CONCURRENCY,
        ),
        (8 * 1024 * 1024, 10),
    ] {
        let sink = sink(part_size, concurrency);
        let id = format!(
            "ObjectStoreSink_{}MiB_parts{}MiBx{concurrency}",
            total >> 20,
            part_size >> 20
        );
        group.bench_function(id, |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let mut up = sink.put("artifact").await.expect("put");
                    for _ in 0..total / PIECE {
                        up.write(piece.clone()).await.expect("write");
                    }
                    up.complete().await.expect("complete")
                })
            });
        });
    }

    if common::require("aws", "pip install awscli").is_some() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("artifact");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&file).expect("create file");
            for _ in 0..total / PIECE {
                f.write_all(&piece).expect("write file");
            }
        }
        group.bench_function(format!("aws_s3_cp_{}MiB", total >> 20), |b| {
            b.iter(|| {
                let out = Command::new("aws")
                    .args(["s3", "cp", "--quiet", "--endpoint-url"])
                    .arg(format!("http://127.0.0.1:{port}"))
                    .arg(&file)
                    .arg("s3://bench/aws/artifact")
                    .env("AWS_ACCESS_KEY_ID", "bench")
                    .env("AWS_SECRET_ACCESS_KEY", "bench-secret")
                    .env("AWS_DEFAULT_REGION", "us-east-1")
                    .env_remove("AWS_PROFILE")
                    .output()
                    .expect("run aws");
                assert!(
                    out.status.success(),
                    "aws s3 cp failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            });
        });
    }
    group.finish();
    drop(server);
}

criterion_group!(benches, upload);
criterion_main!(benches);
