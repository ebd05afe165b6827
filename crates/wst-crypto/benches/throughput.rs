//! Encrypt and decrypt throughput of `AeadCipher` on a 256 MiB artifact (64 KiB chunks, fed in
//! 1 MiB pieces as the pipeline does). Goal: ≥ 1 GiB/s per core with AES-NI (CRYPTO-NOTES
//! measured ≈ 1.3 GiB/s for AES-256-GCM STREAM on this kind of machine).
//!
//! ```text
//! cargo bench -p wst-crypto --bench throughput
//! ```
//!
//! aes-gcm selects AES-NI + CLMUL at run time (cpufeatures) with the default target CPU; no
//! `-C target-cpu` flag is needed.

// criterion_group!/criterion_main! generate undocumented functions.
#![allow(missing_docs)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;
use wst_core::Cipher;
use wst_crypto::{AeadCipher, Key};

const TOTAL: usize = 256 * 1024 * 1024;
const PIECE: usize = 1024 * 1024;

fn cipher() -> AeadCipher {
    AeadCipher::builder()
        .recipient_key(Key::from_bytes([7; 32]))
        .build()
        .expect("cipher")
}

/// Seals `TOTAL` bytes (one 1 MiB buffer fed 256 times); returns the ciphertext if `keep`.
fn seal(c: &AeadCipher, piece: &[u8], keep: bool) -> Vec<u8> {
    let mut all = Vec::with_capacity(if keep { TOTAL + TOTAL / 4096 + 4096 } else { 0 });
    let mut out = Vec::with_capacity(PIECE + 64 * 1024);
    let mut s = c.seal().expect("seal");
    for _ in 0..TOTAL / PIECE {
        s.update(piece, &mut out).expect("update");
        if keep {
            all.extend_from_slice(&out);
        }
        black_box(&out);
        out.clear();
    }
    s.finish(&mut out).expect("finish");
    if keep {
        all.extend_from_slice(&out);
    }
    all
}

fn bench(crit: &mut Criterion) {
    let c = cipher();
    let piece: Vec<u8> = (0..PIECE).map(|i| (i * 31 % 251) as u8).collect();
    let mut g = crit.benchmark_group("aes-256-gcm-stream");
    g.throughput(Throughput::Bytes(TOTAL as u64));
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(8));

    g.bench_function("encrypt 256 MiB", |b| b.iter(|| seal(&c, &piece, false)));

    let ct = seal(&c, &piece, true);
    let mut out = Vec::with_capacity(PIECE + 64 * 1024);
    g.bench_function("decrypt 256 MiB", |b| {
        b.iter(|| {
            let mut o = c.open().expect("open");
            for p in ct.chunks(PIECE) {
                o.update(p, &mut out).expect("update");
                black_box(&out);
                out.clear();
            }
            o.finish(&mut out).expect("finish");
            out.clear();
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
