//! Micro benchmark of the backup pipeline without disks or servers: one source in memory →
//! tar → zstd (level 3) → AES-256-GCM → an in-memory sink, read-back verification off, so the
//! figure is the pipeline's own throughput (input bytes per second). Two ways in:
//!
//! - `add`: the source hands raw bytes; the archive hashes and compresses them;
//! - `add_zstd`: the source hands zstd frames it compressed itself (as `wst-pg` does with
//!   `pg_dump`'s output); the archive splices them, so the run costs sealing and fan-out only.
//!
//! ```text
//! cargo bench --features zstdmt --bench pipeline
//! ```
//!
//! Whole-process comparisons with `tar | zstd`, gpg, restic and borg are in `examples/bench.rs`
//! and `BENCHMARKS.md`.

use std::io::Write as _;
use std::sync::Arc;

use async_trait::async_trait;
use criterion::{Criterion, Throughput, criterion_main};
use sha2::{Digest, Sha256};
use wst::core::{
    BackupJob, EntryKind, EntryMeta, EntryWriter, MemorySink, PreparedSource, Source,
    SourceDescription,
};

/// Input size, bytes.
const SIZE: usize = 128 << 20;
/// Bytes per entry.
const ENTRY: usize = 8 << 20;

/// Half text-like, half random: compresses about 2:1 like the mixed tree of `examples/bench.rs`.
fn data() -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut out = Vec::with_capacity(SIZE);
    while out.len() < SIZE {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if (out.len() / 4096) % 2 == 0 {
            out.extend_from_slice(
                format!("{{\"id\":{},\"status\":\"ok\"}}\n", x % 10_000).as_bytes(),
            );
        } else {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    out.truncate(SIZE);
    out
}

/// Per entry: zstd frames and the SHA-256 of the raw bytes.
type Frames = Vec<(Vec<u8>, [u8; 32])>;

/// The benchmark source: `entries` of raw bytes, or of ready-made zstd frames.
#[derive(Debug, Clone)]
struct MemSource {
    raw: Arc<Vec<u8>>,
    /// Per entry: (zstd frames, SHA-256 of the raw bytes) when the source pre-compresses.
    frames: Option<Arc<Frames>>,
}

#[async_trait]
impl Source for MemSource {
    fn name(&self) -> String {
        "memory".into()
    }
    async fn prepare(&self) -> wst::core::Result<Box<dyn PreparedSource>> {
        Ok(Box::new(self.clone()))
    }
}

impl PreparedSource for MemSource {
    fn description(&self) -> SourceDescription {
        SourceDescription {
            kind: "files".into(),
            name: "memory".into(),
            root: "mem".into(),
            details: serde_json::Value::Null,
            listing: std::collections::BTreeMap::new(),
        }
    }

    fn write_entries(&mut self, out: &mut dyn EntryWriter) -> wst::core::Result<()> {
        for (i, chunk) in self.raw.chunks(ENTRY).enumerate() {
            let meta = EntryMeta {
                path: format!("mem/entry-{i:04}.bin"),
                kind: EntryKind::File,
                size: chunk.len() as u64,
                mode: 0o644,
                mtime: 1_790_000_000,
            };
            match &self.frames {
                Some(frames) => {
                    let (zst, sha) = &frames[i];
                    out.add_zstd(&meta, &mut zst.as_slice(), *sha)?;
                }
                None => {
                    out.add(&meta, &mut &chunk[..])?;
                }
            }
        }
        Ok(())
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let raw = Arc::new(data());
    let frames: Frames = raw
        .chunks(ENTRY)
        .map(|chunk| {
            let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).expect("zstd");
            enc.write_all(chunk).expect("compress");
            (enc.finish().expect("finish"), Sha256::digest(chunk).into())
        })
        .collect();
    let frames = Arc::new(frames);
    let cipher: Arc<dyn wst::core::Cipher> = Arc::new(
        wst::crypto::AeadCipher::builder()
            .recipient_key(wst::crypto::Key::generate().expect("key"))
            .build()
            .expect("cipher"),
    );
    let workers = if cfg!(feature = "zstdmt") {
        std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
    } else {
        0
    };
    let mut group = c.benchmark_group("pipeline");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(SIZE as u64));
    for (name, pre) in [("add", false), ("add_zstd", true)] {
        let source = MemSource {
            raw: Arc::clone(&raw),
            frames: pre.then(|| Arc::clone(&frames)),
        };
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                let job = BackupJob::builder(Arc::clone(&cipher))
                    .source(Arc::new(source.clone()))
                    .sink(Arc::new(MemorySink::new("memory")))
                    .zstd_workers(workers)
                    .verify_on_run(false)
                    .build()
                    .expect("job");
                async move {
                    let report = job.run().await.expect("backup");
                    assert_eq!(report.bytes_read, SIZE as u64);
                }
            });
        });
    }
    group.finish();
}

#[allow(missing_docs)]
mod harness {
    criterion::criterion_group!(benches, super::bench);
}
criterion_main!(harness::benches);
