//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use wst_core::Cipher;
use wst_crypto::{AeadCipher, Error, KdfParams, Key, Passphrase, crypto_error};

/// Small Argon2id parameters so tests run fast (64 KiB, 1 pass, 1 lane).
pub fn small_kdf() -> KdfParams {
    KdfParams::new(64, 1, 1).unwrap()
}

/// A fixed key for reproducible tests.
pub fn key(byte: u8) -> Key {
    Key::from_bytes([byte; 32])
}

/// A cipher sealing for `key(1)` with `chunk_size`.
pub fn cipher(chunk_size: u32) -> AeadCipher {
    AeadCipher::builder()
        .recipient_key(key(1))
        .chunk_size(chunk_size)
        .build()
        .unwrap()
}

/// A cipher sealing for `key(1)` and a passphrase (two slots).
pub fn two_slot_cipher(chunk_size: u32) -> AeadCipher {
    AeadCipher::builder()
        .recipient_key(key(1))
        .recipient_passphrase(Passphrase::new("correct horse").unwrap(), small_kdf())
        .chunk_size(chunk_size)
        .build()
        .unwrap()
}

/// Seals `data` in one update.
pub fn seal(cipher: &dyn Cipher, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut s = cipher.seal().unwrap();
    s.update(data, &mut out).unwrap();
    s.finish(&mut out).unwrap();
    out
}

/// Opens `ct` in one update, returning the plaintext or the wst-crypto error.
pub fn open(cipher: &dyn Cipher, ct: &[u8]) -> Result<Vec<u8>, Error> {
    open_split(cipher, ct, usize::MAX)
}

/// Opens `ct` fed in pieces of `piece` bytes.
pub fn open_split(cipher: &dyn Cipher, ct: &[u8], piece: usize) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    let mut o = cipher.open().unwrap();
    for c in ct.chunks(piece.max(1)) {
        o.update(c, &mut out).map_err(into_crypto)?;
    }
    o.finish(&mut out).map_err(into_crypto)?;
    Ok(out)
}

/// Extracts the wst-crypto error from a core error (panics if it is something else).
pub fn into_crypto(e: wst_core::Error) -> Error {
    assert!(crypto_error(&e).is_some(), "not a wst-crypto error: {e}");
    match e {
        wst_core::Error::Cipher { source } => *source.downcast::<Error>().unwrap(),
        other => panic!("not a cipher error: {other}"),
    }
}

/// Deterministic pseudo-random bytes.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
