//! Writes the test vectors of docs/test-vectors/ (the procedure is kept so vectors can be
//! regenerated; the checked-in files are what the tests check):
//!
//! ```text
//! cargo run -p wst-crypto --example write_test_vectors -- docs/test-vectors
//! ```
//!
//! Artifacts use fresh random data keys and salts, so each run writes different artifacts for
//! the same keys and plaintexts. The `*.json` files (derived values) are then written by the
//! reference decryptor: `python3 crates/wst-crypto/reference/wst_decrypt.py --explain ...`.

use std::path::{Path, PathBuf};

use wst_core::Cipher;
use wst_crypto::{AeadCipher, KdfParams, Key, Passphrase};

/// The public test key: bytes 0x00, 0x01, …, 0x1f.
fn test_key() -> Key {
    let mut b = [0u8; 32];
    for (i, x) in b.iter_mut().enumerate() {
        *x = i as u8;
    }
    Key::from_bytes(b)
}

const PASSPHRASE: &str = "wst test vector passphrase";

fn plaintext(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn seal(cipher: &AeadCipher, pt: &[u8]) -> Result<Vec<u8>, wst_core::Error> {
    let mut out = Vec::new();
    let mut s = cipher.seal()?;
    s.update(pt, &mut out)?;
    s.finish(&mut out)?;
    Ok(out)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(dir.join(name), bytes)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: write_test_vectors DIR")?,
    );
    std::fs::create_dir_all(&dir)?;
    let key = test_key();
    let kdf = KdfParams::new(256, 2, 1)?;
    write(&dir, "raw-key.key", key.to_key_file_text().as_bytes())?;
    write(&dir, "passphrase.txt", format!("{PASSPHRASE}\n").as_bytes())?;

    let raw = AeadCipher::builder()
        .recipient_key(key.clone())
        .chunk_size(1024)
        .build()?;
    let pt = plaintext(2500);
    let ct = seal(&raw, &pt)?;
    write(&dir, "raw-key.plain", &pt)?;
    write(&dir, "raw-key.wst", &ct)?;
    // Negative vectors: the final chunk dropped; a bit flipped in chunk 1.
    let header_len = 78 + 97 + 32;
    write(&dir, "raw-key-truncated.wst", &ct[..header_len + 2 * 1040])?;
    let mut tampered = ct.clone();
    tampered[header_len + 1040 + 100] ^= 0x01;
    write(&dir, "raw-key-tampered.wst", &tampered)?;

    let empty = seal(&raw, b"")?;
    write(&dir, "empty.plain", b"")?;
    write(&dir, "empty.wst", &empty)?;

    let pass = AeadCipher::builder()
        .recipient_passphrase(Passphrase::new(PASSPHRASE)?, kdf)
        .chunk_size(1024)
        .build()?;
    let pt = plaintext(1024);
    write(&dir, "passphrase.plain", &pt)?;
    write(&dir, "passphrase.wst", &seal(&pass, &pt)?)?;

    let two = AeadCipher::builder()
        .recipient_key(key)
        .recipient_passphrase(Passphrase::new(PASSPHRASE)?, kdf)
        .build()?;
    let pt = plaintext(100_000);
    write(&dir, "two-slots.plain", &pt)?;
    write(&dir, "two-slots.wst", &seal(&two, &pt)?)?;
    println!("wrote test vectors to {}", dir.display());
    Ok(())
}
