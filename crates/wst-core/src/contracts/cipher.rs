//! The `Cipher` trait: streaming, authenticated encryption of whole artifacts.
//!
//! The trait is sans-I/O: a [`Sealer`] turns plaintext into ciphertext and an [`Opener`] does the
//! reverse, each fed byte slices of any size. [`SealWriter`] and [`OpenReader`] adapt them to
//! `std::io`, which is what the tar → zstd → cipher pipeline runs on; async callers feed
//! `Bytes` from a stream into the same objects.
//!
//! There is deliberately no plaintext implementation: the pipeline cannot write an unencrypted
//! artifact (design invariant 1).

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Identifies a key without revealing it: 16 bytes derived one-way from the key, shown as 32
/// lowercase hex digits. Fingerprints appear in artifact headers, sidecars, manifests and errors.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyFingerprint(pub [u8; 16]);

impl fmt::Display for KeyFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyFingerprint({self})")
    }
}

impl FromStr for KeyFingerprint {
    type Err = Error;

    /// Parses 32 hex digits.
    ///
    /// # Errors
    /// [`Error::Config`] when the text is not 32 hex digits.
    fn from_str(s: &str) -> Result<Self> {
        let mut out = [0u8; 16];
        hex::decode_to_slice(s, &mut out).map_err(|_| {
            Error::Config(format!("`{s}` is not a key fingerprint (32 hex digits)"))
        })?;
        Ok(Self(out))
    }
}

impl Serialize for KeyFingerprint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for KeyFingerprint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Authenticated, streaming encryption of whole artifacts.
///
/// Implementations hold their keys (for sealing: the recipients each new artifact is wrapped for;
/// for opening: every key that may open an artifact) and must never expose key material through
/// `Debug`, errors or logs.
pub trait Cipher: Send + Sync + fmt::Debug {
    /// The format/suite identifier recorded in sidecars, e.g. `"wst-aead-v1/aes-256-gcm-stream"`.
    fn suite(&self) -> String;

    /// Fingerprints of the keys that new artifacts are sealed for, in slot order. The first is the
    /// operational key; the sidecar records all of them.
    fn recipients(&self) -> Vec<KeyFingerprint>;

    /// Starts sealing one new artifact (fresh per-artifact data key and nonces).
    ///
    /// # Errors
    /// [`Error::Cipher`] if the cipher has no recipient or the random generator fails.
    fn seal(&self) -> Result<Box<dyn Sealer>>;

    /// Starts opening one artifact. The header is parsed from the first bytes fed to the opener.
    ///
    /// # Errors
    /// [`Error::Cipher`] if the cipher holds no key that could open anything.
    fn open(&self) -> Result<Box<dyn Opener>>;

    /// The evidence keys (sidecar and verification MACs) derived from the keys this cipher
    /// holds; the first is the one new evidence is sealed with (derived from the operational
    /// key), the others authenticate evidence sealed under older or other keys of the ring.
    /// The default has none: evidence written through such a cipher is unsealed and never
    /// counts as verified (design invariant 8).
    fn evidence_keys(&self) -> Vec<crate::evidence::EvidenceKey> {
        Vec::new()
    }
}

/// Encrypts one artifact. Ciphertext is appended to `out`; nothing is written elsewhere.
pub trait Sealer: Send {
    /// Feeds plaintext of any length (0 included).
    ///
    /// # Errors
    /// [`Error::Cipher`] when the artifact would exceed the format's maximum size.
    fn update(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<()>;

    /// Seals the final chunk, which authenticates the end of the stream. An artifact whose
    /// sealer was dropped without `finish` cannot be opened (it is a truncated stream).
    ///
    /// # Errors
    /// [`Error::Cipher`] on an internal failure.
    fn finish(self: Box<Self>, out: &mut Vec<u8>) -> Result<()>;
}

/// Decrypts and authenticates one artifact. Plaintext is appended to `out` only after the chunk
/// that carried it authenticated.
pub trait Opener: Send {
    /// Feeds ciphertext of any length.
    ///
    /// # Errors
    /// [`Error::Cipher`]: wrong key (naming the fingerprints), tampering, reordering, bytes after
    /// the final chunk, an unknown version or suite, or header parameters beyond the caps.
    fn update(&mut self, ciphertext: &[u8], out: &mut Vec<u8>) -> Result<()>;

    /// Declares the end of the ciphertext.
    ///
    /// # Errors
    /// [`Error::Cipher`] when the final chunk was never seen (truncation, also exactly at a chunk
    /// boundary).
    fn finish(self: Box<Self>, out: &mut Vec<u8>) -> Result<()>;

    /// The fingerprint of the key that opened the artifact, once the header has been read.
    fn opened_with(&self) -> Option<KeyFingerprint>;
}

/// Forwarding so `Arc<dyn Cipher>` and `Box<dyn Cipher>` are ciphers too.
impl<C: Cipher + ?Sized> Cipher for std::sync::Arc<C> {
    fn suite(&self) -> String {
        (**self).suite()
    }
    fn recipients(&self) -> Vec<KeyFingerprint> {
        (**self).recipients()
    }
    fn seal(&self) -> Result<Box<dyn Sealer>> {
        (**self).seal()
    }
    fn open(&self) -> Result<Box<dyn Opener>> {
        (**self).open()
    }
    fn evidence_keys(&self) -> Vec<crate::evidence::EvidenceKey> {
        (**self).evidence_keys()
    }
}

fn to_io(e: Error) -> io::Error {
    io::Error::other(e)
}

/// A `std::io::Write` that seals everything written to it and writes the ciphertext to `inner`.
///
/// Memory: the sealer's internal chunk buffer plus one output buffer of about the same size.
/// Call [`SealWriter::finish`]; dropping the writer leaves a truncated (unopenable) stream.
pub struct SealWriter<W: Write> {
    sealer: Option<Box<dyn Sealer>>,
    inner: W,
    buf: Vec<u8>,
}

impl<W: Write> SealWriter<W> {
    /// Starts a new artifact with `cipher`, writing ciphertext to `inner`.
    ///
    /// # Errors
    /// As [`Cipher::seal`].
    pub fn new(cipher: &dyn Cipher, inner: W) -> Result<Self> {
        Ok(Self {
            sealer: Some(cipher.seal()?),
            inner,
            buf: Vec::with_capacity(256 * 1024),
        })
    }

    fn drain(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.inner.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Seals the final chunk, flushes, and returns the inner writer.
    ///
    /// # Errors
    /// The cipher's error, or the inner writer's I/O error.
    pub fn finish(mut self) -> io::Result<W> {
        let sealer = self
            .sealer
            .take()
            .ok_or_else(|| io::Error::other("seal writer already finished"))?;
        sealer.finish(&mut self.buf).map_err(to_io)?;
        self.drain()?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for SealWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let sealer = self
            .sealer
            .as_mut()
            .ok_or_else(|| io::Error::other("seal writer already finished"))?;
        sealer.update(data, &mut self.buf).map_err(to_io)?;
        self.drain()?;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.drain()?;
        self.inner.flush()
    }
}

/// A `std::io::Read` that yields authenticated plaintext of the artifact read from `inner`.
///
/// Reaching EOF of `inner` without the final chunk is an error, never a clean EOF; so are bytes
/// after the final chunk. Errors are `io::Error`s wrapping [`Error::Cipher`]; use
/// [`cipher_error`] to get it back.
pub struct OpenReader<R: Read> {
    opener: Option<Box<dyn Opener>>,
    opened_with: Option<KeyFingerprint>,
    inner: R,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    pos: usize,
    done: bool,
}

impl<R: Read> OpenReader<R> {
    /// Starts opening the artifact read from `inner` with `cipher`'s keys.
    ///
    /// # Errors
    /// As [`Cipher::open`].
    pub fn new(cipher: &dyn Cipher, inner: R) -> Result<Self> {
        Ok(Self::from_opener(cipher.open()?, inner))
    }

    /// Wraps an opener already started with [`Cipher::open`].
    pub fn from_opener(opener: Box<dyn Opener>, inner: R) -> Self {
        Self {
            opener: Some(opener),
            opened_with: None,
            inner,
            inbuf: vec![0; 128 * 1024],
            out: Vec::with_capacity(256 * 1024),
            pos: 0,
            done: false,
        }
    }

    /// The fingerprint of the key that opened the artifact, once its header has been read.
    pub fn opened_with(&self) -> Option<KeyFingerprint> {
        self.opener
            .as_ref()
            .and_then(|o| o.opened_with())
            .or(self.opened_with)
    }

    /// Returns the inner reader.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for OpenReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.pos < self.out.len() {
                let n = buf.len().min(self.out.len() - self.pos);
                buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if self.done {
                return Ok(0);
            }
            self.out.clear();
            self.pos = 0;
            let n = loop {
                match self.inner.read(&mut self.inbuf) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            };
            if n == 0 {
                self.done = true;
                let opener = self
                    .opener
                    .take()
                    .ok_or_else(|| io::Error::other("open reader already finished"))?;
                opener.finish(&mut self.out).map_err(to_io)?;
            } else {
                let opener = self
                    .opener
                    .as_mut()
                    .ok_or_else(|| io::Error::other("open reader already finished"))?;
                opener
                    .update(&self.inbuf[..n], &mut self.out)
                    .map_err(to_io)?;
                if self.opened_with.is_none() {
                    self.opened_with = opener.opened_with();
                }
            }
        }
    }
}

/// Recovers the [`Error`] (usually [`Error::Cipher`]) that a [`SealWriter`] or [`OpenReader`]
/// wrapped into an `io::Error`, if it is one.
pub fn cipher_error(e: &io::Error) -> Option<&Error> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<Error>())
}
