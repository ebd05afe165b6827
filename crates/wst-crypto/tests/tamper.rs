//! Every way an artifact can be damaged or attacked is detected, each as a specific error
//! (CRYPTO-NOTES "What the format must detect"; design invariant 6).

mod common;

use common::{cipher, data, key, open, open_split, seal, two_slot_cipher};
use wst_core::Cipher;
use wst_crypto::{AeadCipher, Error, KdfParams, Keyring, Passphrase};

const CS: usize = 1024;
/// Header length of a one-raw-slot artifact: 78 fixed + 97 slot + 32 MAC.
const H1: usize = 207;
/// Header length of a raw + passphrase artifact: 78 + 97 + 125 + 32.
const H2: usize = 332;
const FULL: usize = CS + 16;

/// An artifact of 3 full chunks and a 100-byte final chunk.
fn artifact() -> (AeadCipher, Vec<u8>, Vec<u8>) {
    let c = cipher(CS as u32);
    let pt = data(3 * CS + 100, 1);
    let ct = seal(&c, &pt);
    assert_eq!(ct.len(), H1 + 3 * FULL + 116);
    (c, pt, ct)
}

fn chunk_range(k: usize) -> std::ops::Range<usize> {
    H1 + k * FULL..H1 + (k + 1) * FULL
}

#[test]
fn wrong_key_names_expected_and_supplied_fingerprints() {
    let (_, _, ct) = artifact();
    let other = AeadCipher::builder().recipient_key(key(9)).build().unwrap();
    let err = open(&other, &ct).unwrap_err();
    match &err {
        Error::WrongKey {
            expected,
            supplied,
            passphrases,
        } => {
            assert_eq!(expected, &vec![key(1).fingerprint()]);
            assert_eq!(supplied, &vec![key(9).fingerprint()]);
            assert_eq!(*passphrases, 0);
        }
        other => panic!("expected WrongKey, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains(&key(1).fingerprint().to_string()), "{msg}");
    assert!(msg.contains(&key(9).fingerprint().to_string()), "{msg}");
}

#[test]
fn wrong_passphrase_is_a_wrong_key() {
    let sealer = two_slot_cipher(CS as u32);
    let ct = seal(&sealer, b"x");
    let c = AeadCipher::builder()
        .opening_passphrase(Passphrase::new("wrong horse").unwrap())
        .build()
        .unwrap();
    match open(&c, &ct) {
        Err(Error::WrongKey {
            expected,
            supplied,
            passphrases,
        }) => {
            assert_eq!(expected, sealer.recipients());
            assert!(supplied.is_empty());
            assert_eq!(passphrases, 1);
        }
        other => panic!("expected WrongKey, got {other:?}"),
    }
}

/// Truncation at every possible length: inside the header, exactly at each chunk boundary,
/// inside a chunk.
#[test]
fn truncation_anywhere_is_detected() {
    let (c, _, ct) = artifact();
    for len in 0..ct.len() {
        let err = open(&c, &ct[..len]).unwrap_err();
        if len < H1 {
            assert!(
                matches!(err, Error::Truncated { offset, chunks: 0, detail: "inside the header" } if offset == len as u64),
                "len {len}: {err:?}"
            );
            continue;
        }
        let k = (len - H1) / FULL;
        let rem = (len - H1) % FULL;
        if rem == 0 {
            assert!(
                matches!(err, Error::Truncated { offset, chunks, detail: "at a chunk boundary" }
                    if offset == len as u64 && chunks == k as u64),
                "len {len}: {err:?}"
            );
        } else if rem < 16 {
            assert!(
                matches!(err, Error::Truncated { chunks, detail: "inside a chunk", .. } if chunks == k as u64),
                "len {len}: {err:?}"
            );
        } else {
            assert!(
                matches!(err, Error::ChunkAuthentication { index, offset }
                    if index == k as u64 && offset == (H1 + k * FULL) as u64),
                "len {len}: {err:?}"
            );
        }
    }
}

#[test]
fn truncation_of_the_whole_final_chunk_of_an_exact_multiple_is_detected() {
    // 2 full chunks + an empty final chunk (16 bytes): dropping the final chunk leaves a
    // stream that ends exactly at a chunk boundary.
    let c = cipher(CS as u32);
    let ct = seal(&c, &data(2 * CS, 2));
    assert_eq!(ct.len(), H1 + 2 * FULL + 16);
    let err = open(&c, &ct[..H1 + 2 * FULL]).unwrap_err();
    assert!(matches!(
        err,
        Error::Truncated {
            chunks: 2,
            detail: "at a chunk boundary",
            ..
        }
    ));
}

#[test]
fn trailing_bytes_are_detected_at_the_final_chunk() {
    let (c, _, ct) = artifact();
    let final_offset = (H1 + 3 * FULL) as u64;
    let second = seal(&c, b"another artifact");
    for extra in [
        vec![0u8],
        vec![0u8; 15],
        vec![0xAB; 100],
        vec![0u8; FULL],
        second,
    ] {
        let mut bad = ct.clone();
        bad.extend_from_slice(&extra);
        let err = open(&c, &bad).unwrap_err();
        assert!(
            matches!(err, Error::ChunkAuthentication { index: 3, offset } if offset == final_offset),
            "{} trailing bytes: {err:?}",
            extra.len()
        );
    }
}

#[test]
fn chunk_reorder_duplicate_and_delete_are_detected() {
    let (c, _, ct) = artifact();
    let chunk = |k| ct[chunk_range(k)].to_vec();
    let head = &ct[..H1];
    let tail = &ct[chunk_range(2).end..];

    // swap chunks 0 and 1
    let swapped = [head, &chunk(1), &chunk(0), &chunk(2), tail].concat();
    assert!(matches!(
        open(&c, &swapped),
        Err(Error::ChunkAuthentication { index: 0, .. })
    ));
    // duplicate chunk 1
    let dup = [head, &chunk(0), &chunk(1), &chunk(1), &chunk(2), tail].concat();
    assert!(matches!(
        open(&c, &dup),
        Err(Error::ChunkAuthentication { index: 2, .. })
    ));
    // delete chunk 1
    let del = [head, &chunk(0), &chunk(2), tail].concat();
    assert!(matches!(
        open(&c, &del),
        Err(Error::ChunkAuthentication { index: 1, .. })
    ));
    // final chunk moved before a full one
    let moved = [head, &chunk(0), &chunk(1), tail, &chunk(2)].concat();
    assert!(matches!(
        open(&c, &moved),
        Err(Error::ChunkAuthentication { index: 2, .. })
    ));
}

#[test]
fn chunk_spliced_from_another_artifact_with_the_same_key_is_detected() {
    let (c, pt, ct) = artifact();
    // Same key, same plaintext, same position: only the per-artifact data key differs.
    let other = seal(&c, &pt);
    let mut spliced = ct.clone();
    spliced[chunk_range(1)].copy_from_slice(&other[chunk_range(1)]);
    let err = open(&c, &spliced).unwrap_err();
    assert!(
        matches!(err, Error::ChunkAuthentication { index: 1, offset } if offset == chunk_range(1).start as u64),
        "{err:?}"
    );
    // A whole header swapped in from the other artifact: the payload no longer matches it.
    let mut header_swapped = other[..H1].to_vec();
    header_swapped.extend_from_slice(&ct[H1..]);
    assert!(matches!(
        open(&c, &header_swapped),
        Err(Error::ChunkAuthentication { index: 0, .. })
    ));
}

/// A flipped bit anywhere in a one-slot artifact, each region with its error.
#[test]
fn flipped_bit_in_every_byte_of_a_one_slot_artifact() {
    let (c, _, ct) = artifact();
    for at in 0..ct.len() {
        for bit in [0u8, 7] {
            let mut bad = ct.clone();
            bad[at] ^= 1 << bit;
            let err = open(&c, &bad).unwrap_err();
            let ok = match at {
                0..8 => matches!(err, Error::NotAnArtifact),
                8 => matches!(err, Error::UnsupportedVersion { .. }),
                9 => matches!(err, Error::UnsupportedSuite { .. }),
                10 | 11 => matches!(err, Error::MalformedHeader { offset: 10, .. }),
                12..16 => matches!(
                    err,
                    Error::HeaderLimit {
                        what: "chunk_size",
                        offset: 12,
                        ..
                    } | Error::HeaderAuthentication { start: 0, .. }
                ),
                16..71 => matches!(
                    err,
                    Error::HeaderAuthentication {
                        start: 0,
                        end: 175,
                        ..
                    }
                ),
                71 => matches!(err, Error::MalformedHeader { offset: 71, .. }),
                72..74 => matches!(err, Error::HeaderLimit { .. }),
                74..78 => matches!(
                    err,
                    Error::HeaderLimit {
                        what: "header_len",
                        ..
                    } | Error::MalformedHeader { .. }
                ),
                78 => matches!(err, Error::MalformedHeader { offset: 78, .. }),
                79..95 => matches!(
                    err,
                    Error::HeaderAuthentication {
                        start: 79,
                        end: 95,
                        ..
                    }
                ),
                95..175 => matches!(
                    err,
                    Error::SlotAuthentication {
                        slot: 0,
                        start: 78,
                        end: 175,
                        ..
                    }
                ),
                175..H1 => matches!(
                    err,
                    Error::HeaderAuthentication {
                        start: 0,
                        end: 175,
                        ..
                    }
                ),
                _ => {
                    let k = (at - H1) / FULL;
                    matches!(err, Error::ChunkAuthentication { index, offset }
                        if index == k as u64 && offset == (H1 + k * FULL) as u64)
                }
            };
            assert!(ok, "byte {at} bit {bit}: {err:?}");
        }
    }
}

/// A flipped bit in each region of a two-slot artifact, opened by the raw key and by the
/// passphrase.
#[test]
fn flipped_bit_in_each_slot_of_a_two_slot_artifact() {
    let sealer = two_slot_cipher(CS as u32);
    let ct = seal(&sealer, &data(2 * CS + 5, 3));
    assert_eq!(ct.len(), H2 + 2 * FULL + 21);
    let by_key = AeadCipher::builder().opening_key(key(1)).build().unwrap();
    let by_pass = AeadCipher::builder()
        .opening_passphrase(Passphrase::new("correct horse").unwrap())
        .build()
        .unwrap();
    let slot1 = 175..300;
    for at in 78..H2 {
        let mut bad = ct.clone();
        bad[at] ^= 0x01;
        let e_key = open(&by_key, &bad).unwrap_err();
        let e_pass = open(&by_pass, &bad).unwrap_err();
        let (ok_key, ok_pass) = match at {
            78 | 175 => (
                matches!(e_key, Error::MalformedHeader { .. }),
                matches!(e_pass, Error::MalformedHeader { .. }),
            ),
            // slot 0 (raw key): its fingerprint, then salt and wrapped key
            79..95 => (
                matches!(
                    e_key,
                    Error::HeaderAuthentication {
                        start: 79,
                        end: 95,
                        ..
                    }
                ),
                matches!(
                    e_pass,
                    Error::HeaderAuthentication {
                        start: 0,
                        end: 300,
                        ..
                    }
                ),
            ),
            95..175 => (
                matches!(e_key, Error::SlotAuthentication { slot: 0, .. }),
                matches!(
                    e_pass,
                    Error::HeaderAuthentication {
                        start: 0,
                        end: 300,
                        ..
                    }
                ),
            ),
            // slot 1 (passphrase): fingerprint
            176..192 => (
                matches!(
                    e_key,
                    Error::HeaderAuthentication {
                        start: 0,
                        end: 300,
                        ..
                    }
                ),
                matches!(
                    e_pass,
                    Error::HeaderAuthentication {
                        start: 176,
                        end: 192,
                        ..
                    }
                ),
            ),
            // slot salt and wrapped key: the passphrase's fingerprint still matches
            192..224 | 252..300 => (
                matches!(
                    e_key,
                    Error::HeaderAuthentication {
                        start: 0,
                        end: 300,
                        ..
                    }
                ),
                matches!(
                    e_pass,
                    Error::SlotAuthentication {
                        slot: 1,
                        start: 175,
                        end: 300,
                        ..
                    }
                ),
            ),
            // Argon2id parameters and salt: a different derivation, so a wrong passphrase
            // (or parameters beyond the caps)
            224..252 => (
                matches!(
                    e_key,
                    Error::HeaderAuthentication {
                        start: 0,
                        end: 300,
                        ..
                    } | Error::KdfLimit { slot: 1, .. }
                ),
                matches!(
                    e_pass,
                    Error::WrongKey { .. } | Error::KdfLimit { slot: 1, .. }
                ),
            ),
            // MAC
            _ => (
                matches!(
                    e_key,
                    Error::HeaderAuthentication {
                        start: 0,
                        end: 300,
                        ..
                    }
                ),
                matches!(
                    e_pass,
                    Error::HeaderAuthentication {
                        start: 0,
                        end: 300,
                        ..
                    }
                ),
            ),
        };
        assert!(
            ok_key,
            "byte {at} (slot1 {}): by key: {e_key:?}",
            slot1.contains(&at)
        );
        assert!(ok_pass, "byte {at}: by passphrase: {e_pass:?}");
    }
}

#[test]
fn unknown_version_and_suite_are_rejected() {
    let (c, _, ct) = artifact();
    let mut bad_version = ct.clone();
    bad_version[8] = 2;
    assert!(matches!(
        open(&c, &bad_version),
        Err(Error::UnsupportedVersion { version: 2 })
    ));
    let mut bad_suite = ct.clone();
    bad_suite[9] = 7;
    assert!(matches!(
        open(&c, &bad_suite),
        Err(Error::UnsupportedSuite { suite: 7 })
    ));
    // Rejected from the first bytes, before the rest of the header arrives.
    let mut o = c.open().unwrap();
    let e = o.update(&bad_version[..9], &mut Vec::new()).unwrap_err();
    assert!(matches!(
        wst_crypto::crypto_error(&e),
        Some(Error::UnsupportedVersion { version: 2 })
    ));
}

#[test]
fn not_an_artifact_and_empty_input() {
    let c = cipher(CS as u32);
    assert!(matches!(
        open(&c, b"PK\x03\x04 this is a zip file"),
        Err(Error::NotAnArtifact)
    ));
    assert!(matches!(
        open(&c, b""),
        Err(Error::Truncated {
            offset: 0,
            chunks: 0,
            ..
        })
    ));
}

fn set_be32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// Argon2id parameters beyond the caps are rejected at parse time, before any derivation or
/// allocation: the error names the slot, the field and its offset.
#[test]
fn kdf_parameters_beyond_the_caps_are_rejected_before_deriving() {
    let sealer = two_slot_cipher(CS as u32);
    let ct = seal(&sealer, b"payload");
    let by_pass = AeadCipher::builder()
        .opening_passphrase(Passphrase::new("correct horse").unwrap())
        .build()
        .unwrap();
    // slot 1 starts at 175; memory at +49, iterations at +53, parallelism at +57
    let cases = [
        (224, u32::MAX, "memory_kib"),
        (224, KdfParams::MAX_MEMORY_KIB + 1, "memory_kib"),
        (228, 1_000_000, "iterations"),
        (228, 0, "iterations"),
        (232, 1 << 24, "parallelism"),
        (232, 0, "parallelism"),
    ];
    for (at, value, what) in cases {
        let mut bad = ct.clone();
        set_be32(&mut bad, at, value);
        for c in [&by_pass, &sealer] {
            let err = open(c, &bad).unwrap_err();
            assert!(
                matches!(&err, Error::KdfLimit { slot: 1, offset, what: w, value: v, .. }
                    if *offset == at as u64 && *w == what && *v == u64::from(value)),
                "{what}={value}: {err:?}"
            );
        }
    }
}

/// A host may lower the Argon2id cost it accepts; a slot above it is refused before deriving.
#[test]
fn keyring_kdf_limit_is_enforced_before_deriving() {
    let sealer = AeadCipher::builder()
        .recipient_passphrase(
            Passphrase::new("pw").unwrap(),
            KdfParams::new(256, 2, 1).unwrap(),
        )
        .build()
        .unwrap();
    let ct = seal(&sealer, b"payload");
    let strict = AeadCipher::builder()
        .keyring(
            Keyring::new()
                .with_passphrase(Passphrase::new("pw").unwrap())
                .with_kdf_limit(KdfParams::new(128, 2, 1).unwrap()),
        )
        .build()
        .unwrap();
    match open(&strict, &ct) {
        Err(Error::KdfLimit {
            slot: 0,
            offset: 127,
            what: "memory_kib",
            value: 256,
            max: 128,
            ..
        }) => {}
        other => panic!("expected KdfLimit, got {other:?}"),
    }
}

#[test]
fn header_caps_are_enforced() {
    let (c, _, ct) = artifact();
    let mut big_chunk = ct.clone();
    set_be32(&mut big_chunk, 12, 64 * 1024 * 1024);
    assert!(matches!(
        open(&c, &big_chunk),
        Err(Error::HeaderLimit {
            what: "chunk_size",
            value: 67_108_864,
            ..
        })
    ));
    let mut many_slots = ct.clone();
    many_slots[72..74].copy_from_slice(&1000u16.to_be_bytes());
    assert!(matches!(
        open(&c, &many_slots),
        Err(Error::HeaderLimit {
            what: "slot_count",
            value: 1000,
            max: 16,
            ..
        })
    ));
    let mut huge_header = ct.clone();
    set_be32(&mut huge_header, 74, u32::MAX);
    assert!(matches!(
        open(&c, &huge_header),
        Err(Error::HeaderLimit {
            what: "header_len",
            ..
        })
    ));
}

#[test]
fn opener_stays_failed_after_an_error() {
    let (c, _, ct) = artifact();
    let mut bad = ct.clone();
    bad[H1 + 5] ^= 1;
    let mut o = c.open().unwrap();
    let mut out = Vec::new();
    o.update(&bad[..H1 + FULL], &mut out).unwrap_err();
    assert!(out.is_empty(), "no unauthenticated plaintext is released");
    let e = o.update(&bad[H1 + FULL..], &mut out).unwrap_err();
    assert!(matches!(
        wst_crypto::crypto_error(&e),
        Some(Error::AlreadyFailed)
    ));
}

#[test]
fn plaintext_is_released_only_for_authenticated_chunks() {
    let (c, pt, ct) = artifact();
    let mut bad = ct.clone();
    bad[chunk_range(2).start + 3] ^= 1;
    let mut o = c.open().unwrap();
    let mut out = Vec::new();
    let e = o.update(&bad, &mut out).unwrap_err();
    assert!(matches!(
        wst_crypto::crypto_error(&e),
        Some(Error::ChunkAuthentication { index: 2, .. })
    ));
    assert_eq!(out, pt[..2 * CS], "exactly the two authenticated chunks");
    // Piecewise feeding gives the same error.
    assert!(matches!(
        open_split(&c, &bad, 333),
        Err(Error::ChunkAuthentication { index: 2, .. })
    ));
}

#[test]
fn rewrap_of_a_tampered_or_truncated_header_fails() {
    let (_, _, ct) = artifact();
    let mut bad = ct.clone();
    bad[40] ^= 1;
    let rot = AeadCipher::builder()
        .recipient_key(key(2))
        .opening_key(key(1))
        .build()
        .unwrap();
    let mut out = Vec::new();
    assert!(matches!(
        rot.rewrap(bad.as_slice(), &mut out),
        Err(Error::HeaderAuthentication { .. })
    ));
    assert!(matches!(
        rot.rewrap(&ct[..100], &mut Vec::new()),
        Err(Error::Truncated { offset: 100, .. })
    ));
}

/// At most 4 passphrase slots per header (each may cost an Argon2id run per passphrase tried):
/// a fifth is refused at parse time, before any derivation.
#[test]
fn more_than_four_passphrase_slots_are_refused() {
    let sealer = AeadCipher::builder()
        .recipient_passphrase(Passphrase::new("pw").unwrap(), common::small_kdf())
        .build()
        .unwrap();
    let ct = seal(&sealer, b"x");
    let slot = &ct[78..78 + 125];
    // 5 slots, header_len at its cap for 5 slots (4 passphrase + 1 raw); five passphrase slots.
    let header_len: u32 = 78 + 4 * 125 + 97 + 32;
    let mut bad = ct[..72].to_vec();
    bad.extend_from_slice(&5u16.to_be_bytes());
    bad.extend_from_slice(&header_len.to_be_bytes());
    for _ in 0..5 {
        bad.extend_from_slice(slot);
    }
    bad.resize(header_len as usize + 100, 0);
    let opener = AeadCipher::builder()
        .opening_passphrase(Passphrase::new("pw").unwrap())
        .build()
        .unwrap();
    match open(&opener, &bad) {
        Err(Error::HeaderLimit {
            what: "passphrase_slots",
            offset,
            value: 5,
            max: 4,
            ..
        }) => assert_eq!(offset, 78 + 4 * 125),
        other => panic!("expected HeaderLimit(passphrase_slots), got {other:?}"),
    }
    let mut b = AeadCipher::builder();
    for _ in 0..5 {
        b = b.recipient_passphrase(Passphrase::new("pw").unwrap(), common::small_kdf());
    }
    assert!(matches!(
        b.build(),
        Err(Error::PassphraseCount { count: 5, max: 4 })
    ));
}
