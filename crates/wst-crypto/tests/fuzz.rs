//! Proptest-driven fuzzing of the opener (runs in every `cargo test`): arbitrary bytes and
//! mutated valid artifacts never panic, never authenticate unless unchanged, and never make the
//! opener allocate beyond a fixed bound (the global allocator of this test binary counts every
//! byte and aborts the process past a hard limit).

mod common;

use std::alloc::System;

use cap::Cap;
use common::{data, key, small_kdf};
use proptest::prelude::*;
use wst_core::Cipher;
use wst_crypto::{AeadCipher, KdfParams, Keyring, Passphrase, crypto_error};

#[global_allocator]
static ALLOC: Cap<System> = Cap::new(System, usize::MAX);

/// Header length of the fuzzed artifact (raw-key slot + passphrase slot).
const HEADER_LEN: usize = 78 + 97 + 125 + 32;

/// Peak heap growth allowed while fuzzing: proptest's own inputs (< 100 KiB) plus the opener's
/// bounded buffers (one 1 KiB chunk, a header of at most 2110 bytes, a 64 KiB Argon2id block).
const PEAK_BOUND: usize = 8 * 1024 * 1024;

fn sealer() -> AeadCipher {
    AeadCipher::builder()
        .recipient_key(key(1))
        .recipient_passphrase(Passphrase::new("pw").unwrap(), small_kdf())
        .chunk_size(1024)
        .build()
        .unwrap()
}

/// Opens with both the key and the passphrase; mutated Argon2id parameters above 64 KiB / 1
/// pass are refused by the keyring's limit, so a case stays cheap.
fn opener() -> AeadCipher {
    AeadCipher::builder()
        .keyring(
            Keyring::new()
                .with_key(key(1))
                .with_passphrase(Passphrase::new("pw").unwrap())
                .with_kdf_limit(KdfParams::new(64, 1, 1).unwrap()),
        )
        .build()
        .unwrap()
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, bit: u8 },
    Overwrite { at: usize, bytes: Vec<u8> },
    Insert { at: usize, bytes: Vec<u8> },
    Delete { at: usize, len: usize },
    Truncate { at: usize },
    Duplicate { at: usize, len: usize, to: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = any::<prop::sample::Index>();
    prop_oneof![
        (at.clone(), 0..8u8).prop_map(|(i, bit)| Mutation::Flip {
            at: i.index(usize::MAX),
            bit
        }),
        (at.clone(), prop::collection::vec(any::<u8>(), 1..64)).prop_map(|(i, bytes)| {
            Mutation::Overwrite {
                at: i.index(usize::MAX),
                bytes,
            }
        }),
        (at.clone(), prop::collection::vec(any::<u8>(), 1..64)).prop_map(|(i, bytes)| {
            Mutation::Insert {
                at: i.index(usize::MAX),
                bytes,
            }
        }),
        (at.clone(), 1..2000usize).prop_map(|(i, len)| Mutation::Delete {
            at: i.index(usize::MAX),
            len
        }),
        at.clone().prop_map(|i| Mutation::Truncate {
            at: i.index(usize::MAX)
        }),
        (at.clone(), 1..2000usize, at).prop_map(|(i, len, t)| Mutation::Duplicate {
            at: i.index(usize::MAX),
            len,
            to: t.index(usize::MAX),
        }),
    ]
}

fn apply(ct: &mut Vec<u8>, m: &Mutation) {
    let n = ct.len();
    match m {
        Mutation::Flip { at, bit } => ct[at % n] ^= 1 << bit,
        Mutation::Overwrite { at, bytes } => {
            let at = at % n;
            let end = (at + bytes.len()).min(n);
            ct[at..end].copy_from_slice(&bytes[..end - at]);
        }
        Mutation::Insert { at, bytes } => {
            let at = at % (n + 1);
            ct.splice(at..at, bytes.iter().copied());
        }
        Mutation::Delete { at, len } => {
            let at = at % n;
            let end = (at + len).min(n);
            ct.drain(at..end);
        }
        Mutation::Truncate { at } => ct.truncate(at % n),
        Mutation::Duplicate { at, len, to } => {
            let at = at % n;
            let end = (at + len).min(n);
            let piece = ct[at..end].to_vec();
            let to = to % (n + 1);
            ct.splice(to..to, piece);
        }
    }
}

/// Feeds `bytes` in pieces of `piece`; returns whether it opened, checking that a failure is a
/// wst-crypto error and that the plaintext released never exceeds the ciphertext fed.
fn feed(c: &AeadCipher, bytes: &[u8], piece: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut o = c.open().unwrap();
    for p in bytes.chunks(piece.max(1)) {
        if let Err(e) = o.update(p, &mut out) {
            assert!(crypto_error(&e).is_some(), "not a wst-crypto error: {e}");
            assert!(out.len() <= bytes.len());
            return Err(e.to_string());
        }
    }
    match o.finish(&mut out) {
        Ok(()) => Ok(out),
        Err(e) => {
            assert!(crypto_error(&e).is_some(), "not a wst-crypto error: {e}");
            Err(e.to_string())
        }
    }
}

#[test]
fn opener_survives_arbitrary_and_mutated_input_within_bounded_memory() {
    let sealer = sealer();
    let opener = opener();
    let opener_rewrap = AeadCipher::builder()
        .recipient_key(key(2))
        .keyring(opener.keyring().clone())
        .build()
        .unwrap();
    let pt = data(5 * 1024 + 300, 42);
    let mut valid = Vec::new();
    {
        let mut s = sealer.seal().unwrap();
        s.update(&pt, &mut valid).unwrap();
        s.finish(&mut valid).unwrap();
    }
    assert_eq!(feed(&opener, &valid, 100).unwrap(), pt);

    let baseline = ALLOC.allocated();
    // Hard guard: anything beyond this aborts the test binary (a failure, never a pass).
    ALLOC.set_limit(baseline + 64 * 1024 * 1024).unwrap();

    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(5000));
    runner
        .run(
            &(
                prop::collection::vec(any::<u8>(), 0..4096),
                1..3000usize,
                any::<bool>(),
            ),
            |(mut bytes, piece, with_magic)| {
                if with_magic && bytes.len() >= 10 {
                    // Get past the magic/version/suite checks to reach the deeper parsers.
                    bytes[..10].copy_from_slice(b"wst-aead\x01\x01");
                }
                prop_assert!(feed(&opener, &bytes, piece).is_err());
                Ok(())
            },
        )
        .unwrap();

    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(20_000));
    runner
        .run(
            &(prop::collection::vec(mutation(), 1..4), 1..3000usize),
            |(mutations, piece)| {
                let mut ct = valid.clone();
                for m in &mutations {
                    if !ct.is_empty() {
                        apply(&mut ct, m);
                    }
                }
                // The rewrapper parses the same header: it never panics, and it only succeeds
                // when the header is intact (it copies the payload without decrypting it).
                let mut rw = opener_rewrap.rewrapper().unwrap();
                let mut sink = Vec::new();
                let rewrapped = ct
                    .chunks(piece)
                    .try_for_each(|p| rw.update(p, &mut sink))
                    .and_then(|()| rw.finish());
                if rewrapped.is_ok() {
                    prop_assert_eq!(&ct[..HEADER_LEN], &valid[..HEADER_LEN]);
                }
                let result = feed(&opener, &ct, piece);
                // Only an unchanged artifact opens, and then to the original plaintext.
                prop_assert_eq!(result.is_ok(), ct == valid, "{:?}", result.as_ref().err());
                if let Ok(out) = result {
                    prop_assert_eq!(out, pt.clone());
                }
                Ok(())
            },
        )
        .unwrap();

    let peak = ALLOC.max_allocated().saturating_sub(baseline);
    assert!(
        peak < PEAK_BOUND,
        "peak heap growth {peak} bytes while fuzzing"
    );
}
