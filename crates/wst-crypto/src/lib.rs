//! wst-crypto: the [`wst_core::Cipher`] of wst — streaming AES-256-GCM artifacts in the
//! documented `wst-aead-v1` format, with key files, Argon2id passphrases, several key slots per
//! artifact and key rotation by rewriting only the header.
//!
//! ```no_run
//! use std::io::{Read, Write};
//! use wst_core::{OpenReader, SealWriter};
//! use wst_crypto::{AeadCipher, KdfParams, Key, Passphrase};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Once: create the operational key file (mode 0600, never overwritten).
//! Key::generate()?.write_to("/etc/wst/backup.key")?;
//!
//! // Seal for the operational key and an offline recovery passphrase (two slots).
//! let cipher = AeadCipher::builder()
//!     .recipient_key(Key::load("/etc/wst/backup.key")?)
//!     .recipient_passphrase(Passphrase::load("/root/recovery.pass")?, KdfParams::default())
//!     .build()?;
//!
//! let mut w = SealWriter::new(&cipher, std::fs::File::create("/tmp/a.wst")?)?;
//! w.write_all(b"backup bytes")?;
//! w.finish()?; // seals the final chunk: without it the artifact is a truncated stream
//!
//! // Open with the key file alone (`AeadCipher::from_key_file` seals for it and opens with it).
//! let opener = AeadCipher::from_key_file("/etc/wst/backup.key")?;
//! let mut plain = Vec::new();
//! OpenReader::new(&opener, std::fs::File::open("/tmp/a.wst")?)?.read_to_end(&mut plain)?;
//! # Ok(()) }
//! ```
//!
//! # Behaviour
//! - A random 256-bit data key per artifact, wrapped in one key slot per recipient (raw key:
//!   HKDF; passphrase: Argon2id with recorded, capped parameters). The payload key is
//!   HKDF(data key, salt, core header); a header MAC keyed from the data key covers every header
//!   byte (CRYPTO-NOTES "a workable shape").
//! - Payload: STREAM-BE32 over AES-256-GCM (aes-gcm's `stream` module), fixed-size non-final
//!   chunks and a strictly shorter final chunk; the opener demands the final chunk and reports
//!   anything else as [`Error::Truncated`] or [`Error::ChunkAuthentication`] (CRYPTO-NOTES
//!   pitfalls 1–5). Plaintext is released only chunk by chunk after authentication.
//! - Constant memory: about two chunks per sealer or opener (64 KiB chunks by default), the
//!   header (at most [`MAX_HEADER_LEN`] bytes) and nothing else, whatever the artifact size.
//! - Everything parsed before authentication is capped ([`MAX_SLOTS`], [`MAX_HEADER_LEN`],
//!   [`MAX_PASSPHRASE_SLOTS`], [`MIN_CHUNK_SIZE`]..=[`MAX_CHUNK_SIZE`],
//!   [`KdfParams::MAX_MEMORY_KIB`] …) and checked
//!   before any allocation or key derivation.
//! - Keys are named by [`wst_core::KeyFingerprint`] only; `Debug` of keys and passphrases
//!   prints `[REDACTED]`, and no error carries key material (design invariant 7).
//! - Async callers: sealers and openers are sans-I/O and `Send`; feed them `Bytes` from a
//!   stream. Opening a passphrase slot runs Argon2id inside the opener's `update` (and
//!   [`AeadCipherBuilder::build`] runs it once per passphrase recipient): CPU-bound for up to
//!   seconds at the default parameters, so call those from `spawn_blocking`. Raw-key slots cost
//!   microseconds.
//! - [`HeaderInfo::parse`] lists an artifact's key slots without any key (unauthenticated).
//! - [`AeadCipher::rewrap`] replaces the key slots (add/remove a recipient, rotate keys) without
//!   decrypting the payload.
//!
//! Errors cross the `Cipher` trait as [`wst_core::Error::Cipher`] boxing an [`Error`]; get the
//! specific kind back with [`crypto_error`] or, from `std::io` adapters, [`crypto_io_error`].
//!
//! `docs/FORMAT.md` specifies the format byte for byte; `reference/wst_decrypt.py` decrypts it
//! with Python's `cryptography` (and `argon2-cffi` for passphrase slots), no wst code needed.
#![deny(rustdoc::broken_intra_doc_links)]

mod cipher;
mod error;
mod format;
mod info;
mod key;
mod keyring;
mod stream;

pub use cipher::{AeadCipher, AeadCipherBuilder, RewrapSummary, Rewrapper};
pub use error::{Error, Result, crypto_error, crypto_io_error};
pub use format::{
    DEFAULT_CHUNK_SIZE, FORMAT_VERSION, MAGIC, MAX_CHUNK_SIZE, MAX_HEADER_LEN,
    MAX_PASSPHRASE_SLOTS, MAX_SLOTS, MIN_CHUNK_SIZE, SUITE_AES256GCM_STREAM, SUITE_NAME,
};
pub use info::{HeaderInfo, SlotInfo};
pub use key::{KEY_FILE_PREFIX, KdfParams, Key, Passphrase};
pub use keyring::Keyring;
