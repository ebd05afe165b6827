//! The error type of wst-crypto.

use std::fmt::Write as _;
use std::io;
use std::path::PathBuf;

use wst_core::KeyFingerprint;

/// Everything that can go wrong in wst-crypto.
///
/// No variant carries key material, a passphrase, a data key or plaintext (design invariant 7):
/// keys are named by their [`KeyFingerprint`] only. Across the [`wst_core::Cipher`] trait this
/// error travels boxed inside [`wst_core::Error::Cipher`]; get it back with [`crypto_error`] (or
/// [`crypto_io_error`] for the `std::io` adapters).
///
/// Offsets are byte offsets from the first byte of the artifact (the header's magic); chunk
/// indices count payload chunks from 0. Both are laid out in `docs/FORMAT.md`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The key file does not exist.
    #[error(
        "key file `{}` does not exist: fix the configured path, or create a key with `wst keygen --out {}` (library: `Key::generate` and `Key::write_to`)",
        path.display(),
        path.display()
    )]
    KeyFileMissing {
        /// The path that was looked up.
        path: PathBuf,
    },
    /// `Key::write_to` refused to replace an existing file (a key that sealed artifacts must never
    /// be overwritten: those artifacts would become unopenable).
    #[error(
        "key file `{}` already exists; refusing to overwrite a key (artifacts sealed for it would become unopenable)",
        path.display()
    )]
    KeyFileExists {
        /// The existing file.
        path: PathBuf,
    },
    /// The key or passphrase file is readable or writable by group or others (Unix only; the
    /// Windows ACL is not checked). Doctrine 026 R6: secret files are restricted to the operator.
    #[error(
        "key file `{}` has mode {mode:04o}, which lets group/others access it: run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    KeyFilePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits (`st_mode & 0o7777`).
        mode: u32,
    },
    /// The file is not a wst key file (`wst-key-v1:` followed by 64 hex digits and an optional
    /// newline), or a passphrase file is empty.
    #[error("key file `{}` is not valid: {reason}", path.display())]
    KeyFileFormat {
        /// The file.
        path: PathBuf,
        /// What is wrong (never the file's content).
        reason: String,
    },
    /// Reading or writing a key or passphrase file failed.
    #[error("{operation} key file `{}` failed: {source}", path.display())]
    KeyFileIo {
        /// The file.
        path: PathBuf,
        /// `"reading"`, `"creating"`, `"writing"` or `"syncing"`.
        operation: &'static str,
        /// The operating system's error.
        source: io::Error,
    },
    /// A passphrase was empty.
    #[error("the passphrase is empty; an empty passphrase protects nothing")]
    EmptyPassphrase,
    /// Argon2id parameters given to [`crate::KdfParams::new`] are outside the accepted range.
    #[error("invalid Argon2id parameter {what} = {value}: it must be within {min}..={max}")]
    InvalidKdfParams {
        /// `"memory_kib"`, `"iterations"` or `"parallelism"`.
        what: &'static str,
        /// The value given.
        value: u64,
        /// The smallest accepted value.
        min: u64,
        /// The largest accepted value.
        max: u64,
    },
    /// A chunk size given to the builder is outside the format's range.
    #[error("invalid chunk size {value} bytes: it must be within {min}..={max} bytes")]
    InvalidChunkSize {
        /// The value given, in bytes.
        value: u64,
        /// [`crate::MIN_CHUNK_SIZE`].
        min: u64,
        /// [`crate::MAX_CHUNK_SIZE`].
        max: u64,
    },
    /// The cipher was built with more than [`crate::MAX_SLOTS`] recipients or with nothing at
    /// all, or an open-only cipher (no recipient) was asked to seal or rewrap.
    #[error(
        "a cipher needs between 1 and {max} recipients (key files or passphrases) to seal for, got {count}"
    )]
    RecipientCount {
        /// The number of recipients given.
        count: usize,
        /// [`crate::MAX_SLOTS`].
        max: usize,
    },
    /// The cipher holds no key or passphrase to open artifacts with.
    #[error(
        "the cipher holds no key or passphrase to open artifacts with: add the key file (or the recovery key) to its keyring"
    )]
    EmptyKeyring,
    /// The cipher was given more passphrase recipients than [`crate::MAX_PASSPHRASE_SLOTS`].
    #[error(
        "a cipher seals for at most {max} passphrases (each costs an Argon2id run to open), got {count}: use key files for the others"
    )]
    PassphraseCount {
        /// The number of passphrase recipients given.
        count: usize,
        /// [`crate::MAX_PASSPHRASE_SLOTS`].
        max: usize,
    },
    /// The operating system's random generator failed.
    #[error("the operating system's random generator failed: {detail}")]
    Random {
        /// The generator's error message.
        detail: String,
    },
    /// Argon2id itself failed (should not happen with parameters inside the caps).
    #[error("Argon2id key derivation failed: {detail}")]
    Kdf {
        /// The argon2 crate's error message.
        detail: String,
    },
    /// The input does not start with the `wst-aead` magic: not a wst encrypted artifact (or
    /// the first bytes were damaged).
    #[error(
        "not a wst encrypted artifact: the 8 bytes at offset 0 are not the magic `wst-aead` (wrong file, or its start is damaged)"
    )]
    NotAnArtifact,
    /// The header's format version is not one this build reads. Never guessed or fallen back from.
    #[error(
        "unsupported artifact format version {version} at offset 8 (this build reads version 1): use a wst that knows it, or the reference decryptor of that version"
    )]
    UnsupportedVersion {
        /// The version byte found.
        version: u8,
    },
    /// The header's cipher suite is not one this build knows. Never guessed or fallen back from.
    #[error(
        "unsupported cipher suite {suite} at offset 9 (this build knows suite 1, AES-256-GCM STREAM): use a wst that knows it"
    )]
    UnsupportedSuite {
        /// The suite byte found.
        suite: u8,
    },
    /// A header field parsed before authentication is beyond its hard cap (CRYPTO-NOTES: caps on
    /// everything parsed before authentication). Rejected before any allocation or key work.
    #[error(
        "header field `{what}` at offset {offset} is {value}, outside the format's bounds {min}..={max}: damaged or hostile header"
    )]
    HeaderLimit {
        /// The field: `"chunk_size"`, `"slot_count"`, `"header_len"` or `"passphrase_slots"`.
        what: &'static str,
        /// The field's offset.
        offset: u64,
        /// The value found.
        value: u64,
        /// The smallest accepted value.
        min: u64,
        /// The largest accepted value.
        max: u64,
    },
    /// A passphrase slot's Argon2id parameters are beyond the caps (the format's, or the
    /// keyring's own lower limit). Rejected before any memory is allocated for Argon2id.
    #[error(
        "key slot {slot}: Argon2id {what} = {value} (field at offset {offset}) is outside the accepted range {min}..={max}; refusing to derive (a header must not be able to exhaust memory or CPU)"
    )]
    KdfLimit {
        /// The slot index (0-based).
        slot: usize,
        /// The field's offset.
        offset: u64,
        /// `"memory_kib"`, `"iterations"` or `"parallelism"`.
        what: &'static str,
        /// The value found.
        value: u64,
        /// The smallest accepted value.
        min: u64,
        /// The largest accepted value.
        max: u64,
    },
    /// The header is structurally invalid (reserved bits set, unknown slot type, lengths that
    /// do not add up).
    #[error("malformed artifact header at offset {offset}: {detail}")]
    MalformedHeader {
        /// Offset of the offending field.
        offset: u64,
        /// What is wrong.
        detail: String,
    },
    /// None of the supplied keys or passphrases opens any key slot of the artifact.
    #[error(
        "wrong key: the artifact is sealed for {exp}; supplied keys {sup} and {passphrases} passphrase(s) open none of its slots",
        exp = fingerprint_list(expected),
        sup = fingerprint_list(supplied)
    )]
    WrongKey {
        /// The fingerprints recorded in the artifact's slots (passphrase slots included).
        expected: Vec<KeyFingerprint>,
        /// The fingerprints of the raw keys supplied.
        supplied: Vec<KeyFingerprint>,
        /// How many passphrases were tried.
        passphrases: usize,
    },
    /// A key slot named a supplied key but did not open with it: the slot was modified.
    #[error(
        "key slot {slot} (bytes {start}..{end}) names key {fingerprint} which was supplied, but does not open with it: the slot was tampered with or damaged"
    )]
    SlotAuthentication {
        /// The slot index (0-based).
        slot: usize,
        /// First byte of the slot.
        start: u64,
        /// One past the last byte of the slot.
        end: u64,
        /// The fingerprint the slot names.
        fingerprint: KeyFingerprint,
    },
    /// A slot opened, but the header MAC does not match: some header byte was modified.
    #[error("artifact header bytes {start}..{end} failed authentication: {detail}")]
    HeaderAuthentication {
        /// First byte of the region known to be bad.
        start: u64,
        /// One past its last byte.
        end: u64,
        /// What is known about the damage.
        detail: String,
    },
    /// The input ended before the final chunk was authenticated (CRYPTO-NOTES pitfall 1): also
    /// exactly at a chunk boundary, or inside the header.
    #[error(
        "artifact truncated: it ends at byte {offset} {detail}, before its final chunk (after {chunks} authenticated chunk(s)); the copy is incomplete"
    )]
    Truncated {
        /// The total number of bytes received.
        offset: u64,
        /// The number of chunks authenticated before the end.
        chunks: u64,
        /// Where it ended: `"inside the header"`, `"at a chunk boundary"`, `"inside a chunk"`.
        detail: &'static str,
    },
    /// A payload chunk failed authentication. AES-GCM cannot tell these apart: a modified byte in
    /// the chunk, a chunk moved, duplicated, deleted or taken from another artifact, a
    /// truncation inside the chunk, or bytes appended after the artifact's final chunk.
    #[error(
        "payload chunk {index} (ciphertext bytes {offset}..) failed authentication: it was modified, reordered, duplicated, deleted, spliced from another artifact, truncated, or followed by appended bytes"
    )]
    ChunkAuthentication {
        /// The chunk index (0-based).
        index: u64,
        /// Offset of the chunk's first byte.
        offset: u64,
    },
    /// The artifact would exceed 2^32 chunks (CRYPTO-NOTES pitfall 3): the STREAM counter must
    /// never wrap.
    #[error(
        "artifact exceeds the format's maximum of 2^32 chunks ({max_bytes} bytes at this chunk size): use a larger chunk size"
    )]
    TooLarge {
        /// The largest plaintext this chunk size allows, in bytes.
        max_bytes: u64,
    },
    /// The opener or rewrapper was fed again after it had already failed.
    #[error(
        "the artifact already failed to open; it is not retried byte by byte (start a new opener)"
    )]
    AlreadyFailed,
    /// An I/O error while rewrapping.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The underlying error.
        source: io::Error,
    },
}

fn fingerprint_list(fps: &[KeyFingerprint]) -> String {
    if fps.is_empty() {
        return "[]".to_owned();
    }
    let mut s = String::from("[");
    for (i, fp) in fps.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        let _ = write!(s, "{fp}");
    }
    s.push(']');
    s
}

impl From<Error> for wst_core::Error {
    fn from(e: Error) -> Self {
        wst_core::Error::cipher(e)
    }
}

/// Returns the wst-crypto [`Error`] carried by a [`wst_core::Error::Cipher`], if that is what
/// `e` is.
pub fn crypto_error(e: &wst_core::Error) -> Option<&Error> {
    match e {
        wst_core::Error::Cipher { source } => source.downcast_ref::<Error>(),
        _ => None,
    }
}

/// Returns the wst-crypto [`Error`] inside an `io::Error` produced by
/// [`wst_core::SealWriter`] / [`wst_core::OpenReader`], if there is one.
pub fn crypto_io_error(e: &io::Error) -> Option<&Error> {
    wst_core::cipher_error(e).and_then(crypto_error)
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
