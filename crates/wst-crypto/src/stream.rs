//! The sans-I/O sealer, opener and rewrapper of the `wst-aead-v1` payload.

use std::sync::Arc;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::stream::{NewStream, StreamBE32, StreamPrimitive};
use aes_gcm::aead::{self, KeyInit};
use wst_core::KeyFingerprint;

use crate::error::{Error, Result};
use crate::format::{self, CoreHeader, FIXED_LEN, TAG_LEN};
use crate::keyring::{Keyring, OpenedHeader};

/// An `aead::Buffer` over the tail of a `Vec<u8>` (from `start`), so a chunk is encrypted or
/// decrypted in place in the caller's output buffer: one copy per byte.
struct Tail<'a> {
    vec: &'a mut Vec<u8>,
    start: usize,
}

impl AsRef<[u8]> for Tail<'_> {
    fn as_ref(&self) -> &[u8] {
        &self.vec[self.start..]
    }
}

impl AsMut<[u8]> for Tail<'_> {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.vec[self.start..]
    }
}

impl aead::Buffer for Tail<'_> {
    fn extend_from_slice(&mut self, other: &[u8]) -> aead::Result<()> {
        self.vec.extend_from_slice(other);
        Ok(())
    }

    fn truncate(&mut self, len: usize) {
        self.vec.truncate(self.start + len);
    }
}

fn stream_for(core: &CoreHeader, data_key: &[u8; 32]) -> StreamBE32<Aes256Gcm> {
    let key = core.payload_key(data_key);
    let aead = Aes256Gcm::new(key.as_ref().into());
    StreamBE32::from_aead(aead, core.nonce_prefix.as_slice().into())
}

/// Largest plaintext an artifact may carry at `chunk_size`: 2^32 − 1 full chunks plus a final
/// chunk of at most `chunk_size − 1` bytes.
fn max_plaintext(chunk_size: usize) -> u64 {
    (u64::from(u32::MAX) + 1) * chunk_size as u64 - 1
}

/// Seals one artifact: emits the header, then `chunk_size`-byte non-final chunks, then a
/// strictly shorter final chunk on `finish` (docs/FORMAT.md §Payload).
pub(crate) struct AeadSealer {
    header: Option<Vec<u8>>,
    stream: StreamBE32<Aes256Gcm>,
    chunk_size: usize,
    pending: Vec<u8>,
    /// Index of the next chunk.
    index: u32,
}

impl AeadSealer {
    pub(crate) fn new(header: Vec<u8>, core: &CoreHeader, data_key: &[u8; 32]) -> Self {
        let chunk_size = core.chunk_size as usize;
        Self {
            header: Some(header),
            stream: stream_for(core, data_key),
            chunk_size,
            pending: Vec::with_capacity(chunk_size),
            index: 0,
        }
    }

    fn emit_header(&mut self, out: &mut Vec<u8>) {
        if let Some(h) = self.header.take() {
            out.extend_from_slice(&h);
        }
    }

    fn seal_chunk(&mut self, plaintext: &[u8], last: bool, out: &mut Vec<u8>) -> Result<()> {
        if !last && self.index == u32::MAX {
            // CRYPTO-NOTES pitfall 3: index 2^32 − 1 may only carry the final chunk.
            return Err(Error::TooLarge {
                max_bytes: max_plaintext(self.chunk_size),
            });
        }
        let start = out.len();
        out.reserve(plaintext.len() + TAG_LEN);
        out.extend_from_slice(plaintext);
        let mut tail = Tail { vec: out, start };
        self.stream
            .encrypt_in_place(self.index, last, b"", &mut tail)
            .map_err(|_| Error::TooLarge {
                max_bytes: max_plaintext(self.chunk_size),
            })?;
        if !last {
            self.index += 1;
        }
        Ok(())
    }

    #[cfg(test)]
    pub(crate) fn set_next_index(&mut self, index: u32) {
        self.index = index;
    }
}

impl wst_core::Sealer for AeadSealer {
    fn update(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> wst_core::Result<()> {
        self.emit_header(out);
        let mut pending = std::mem::take(&mut self.pending);
        let r = full_chunks(&mut pending, self.chunk_size, plaintext, |chunk| {
            self.seal_chunk(chunk, false, out)
        });
        self.pending = pending;
        Ok(r?)
    }

    fn finish(mut self: Box<Self>, out: &mut Vec<u8>) -> wst_core::Result<()> {
        self.emit_header(out);
        let chunk = std::mem::take(&mut self.pending);
        self.seal_chunk(&chunk, true, out)?;
        Ok(())
    }
}

/// Accumulates and parses a header from the first bytes of an artifact.
pub(crate) struct HeaderReader {
    buf: Vec<u8>,
    /// Known once the fixed part is parsed.
    header_len: Option<usize>,
}

/// A parsed, not yet authenticated header.
pub(crate) struct RawHeader {
    pub(crate) bytes: Vec<u8>,
    pub(crate) core: CoreHeader,
    pub(crate) slots: Vec<format::Slot>,
}

impl HeaderReader {
    pub(crate) fn new() -> Self {
        Self {
            buf: Vec::with_capacity(FIXED_LEN),
            header_len: None,
        }
    }

    /// Feeds bytes; returns the parsed header and how many bytes of `input` it used once the
    /// header is complete.
    pub(crate) fn feed(&mut self, input: &[u8]) -> Result<Option<(RawHeader, usize)>> {
        let mut used = 0;
        if self.header_len.is_none() {
            let take = (FIXED_LEN - self.buf.len()).min(input.len());
            self.buf.extend_from_slice(&input[..take]);
            used += take;
            format::check_prefix(&self.buf)?;
            if self.buf.len() < FIXED_LEN {
                return Ok(None);
            }
            let (_, _, header_len) = format::parse_fixed(&self.buf)?;
            self.buf.reserve_exact(header_len - FIXED_LEN);
            self.header_len = Some(header_len);
        }
        let header_len = self.header_len.unwrap_or(FIXED_LEN);
        let take = (header_len - self.buf.len()).min(input.len() - used);
        self.buf.extend_from_slice(&input[used..used + take]);
        used += take;
        if self.buf.len() < header_len {
            return Ok(None);
        }
        let bytes = std::mem::take(&mut self.buf);
        let (core, slot_count, _) = format::parse_fixed(&bytes)?;
        let slots = format::parse_slots(&bytes, slot_count)?;
        Ok(Some((RawHeader { bytes, core, slots }, used)))
    }

    /// The error for an input that ended inside the header.
    pub(crate) fn truncated(&self) -> Error {
        if let Err(e) = format::check_prefix(&self.buf) {
            return e;
        }
        Error::Truncated {
            offset: self.buf.len() as u64,
            chunks: 0,
            detail: "inside the header",
        }
    }
}

enum OpenState {
    Header(HeaderReader),
    Payload(Box<Payload>),
    Failed,
}

struct Payload {
    stream: StreamBE32<Aes256Gcm>,
    /// Ciphertext length of a non-final chunk.
    full: usize,
    pending: Vec<u8>,
    /// Index of the next chunk.
    index: u64,
    /// Offset of the next chunk's first byte.
    offset: u64,
}

impl Payload {
    fn open_chunk(&mut self, ct: &[u8], last: bool, out: &mut Vec<u8>) -> Result<()> {
        let Ok(index) = u32::try_from(self.index) else {
            return Err(Error::TooLarge {
                max_bytes: max_plaintext(self.full - TAG_LEN),
            });
        };
        if !last && index == u32::MAX {
            // A non-final chunk at the last possible index: the counter would wrap.
            return Err(Error::TooLarge {
                max_bytes: max_plaintext(self.full - TAG_LEN),
            });
        }
        let start = out.len();
        out.extend_from_slice(ct);
        let mut tail = Tail { vec: out, start };
        if self
            .stream
            .decrypt_in_place(index, last, b"", &mut tail)
            .is_err()
        {
            // Nothing unauthenticated stays in `out` (aes-gcm checks the tag before
            // decrypting; the ciphertext copy is removed here).
            out.truncate(start);
            return Err(Error::ChunkAuthentication {
                index: self.index,
                offset: self.offset,
            });
        }
        self.index += 1;
        self.offset += ct.len() as u64;
        Ok(())
    }

    fn update(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        // A full-size chunk is never the final one (the final chunk is strictly shorter), so
        // it can be authenticated as soon as it is complete (CRYPTO-NOTES pitfall 5).
        let mut pending = std::mem::take(&mut self.pending);
        let r = full_chunks(&mut pending, self.full, input, |chunk| {
            self.open_chunk(chunk, false, out)
        });
        self.pending = pending;
        r
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<()> {
        if self.pending.len() < TAG_LEN {
            return Err(Error::Truncated {
                offset: self.offset + self.pending.len() as u64,
                chunks: self.index,
                detail: if self.pending.is_empty() {
                    "at a chunk boundary"
                } else {
                    "inside a chunk"
                },
            });
        }
        let chunk = std::mem::take(&mut self.pending);
        self.open_chunk(&chunk, true, out)
    }
}

/// Opens one artifact: header, slot, header MAC, then chunk by chunk; the final chunk is
/// demanded at `finish` (CRYPTO-NOTES pitfall 1).
pub(crate) struct AeadOpener {
    keyring: Arc<Keyring>,
    state: OpenState,
    opened_with: Option<KeyFingerprint>,
}

impl AeadOpener {
    pub(crate) fn new(keyring: Arc<Keyring>) -> Self {
        Self {
            keyring,
            state: OpenState::Header(HeaderReader::new()),
            opened_with: None,
        }
    }

    fn update_inner(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        match &mut self.state {
            OpenState::Failed => Err(Error::AlreadyFailed),
            OpenState::Payload(p) => p.update(input, out),
            OpenState::Header(reader) => {
                let Some((raw, used)) = reader.feed(input)? else {
                    return Ok(());
                };
                let header_len = raw.bytes.len() as u64;
                let opened = self.keyring.open_header(raw.core, &raw.bytes, raw.slots)?;
                let OpenedHeader {
                    core,
                    data_key,
                    opened_with,
                    ..
                } = opened;
                self.opened_with = Some(opened_with);
                let full = core.chunk_size as usize + TAG_LEN;
                let mut payload = Box::new(Payload {
                    stream: stream_for(&core, &data_key),
                    full,
                    pending: Vec::with_capacity(full),
                    index: 0,
                    offset: header_len,
                });
                let r = payload.update(&input[used..], out);
                self.state = OpenState::Payload(payload);
                r
            }
        }
    }
}

impl wst_core::Opener for AeadOpener {
    fn update(&mut self, ciphertext: &[u8], out: &mut Vec<u8>) -> wst_core::Result<()> {
        let r = self.update_inner(ciphertext, out);
        if r.is_err() {
            self.state = OpenState::Failed;
        }
        Ok(r?)
    }

    fn finish(mut self: Box<Self>, out: &mut Vec<u8>) -> wst_core::Result<()> {
        match &mut self.state {
            OpenState::Failed => Err(Error::AlreadyFailed.into()),
            OpenState::Header(reader) => Err(reader.truncated().into()),
            OpenState::Payload(p) => Ok(p.finish(out)?),
        }
    }

    fn opened_with(&self) -> Option<KeyFingerprint> {
        self.opened_with
    }
}

/// Cuts `input`, after what `pending` already holds, into `size`-byte chunks and calls `f` on
/// each complete one; the remainder (shorter than `size`) stays in `pending`. Shared by the
/// sealer (plaintext chunks) and the opener (ciphertext chunks).
fn full_chunks<E>(
    pending: &mut Vec<u8>,
    size: usize,
    mut input: &[u8],
    mut f: impl FnMut(&[u8]) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    if !pending.is_empty() {
        let take = (size - pending.len()).min(input.len());
        pending.extend_from_slice(&input[..take]);
        input = &input[take..];
        if pending.len() == size {
            let r = f(pending);
            pending.clear();
            r?;
        }
    }
    while input.len() >= size {
        f(&input[..size])?;
        input = &input[size..];
    }
    pending.extend_from_slice(input);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{CoreHeader, Secret};
    use wst_core::Sealer as _;
    use zeroize::Zeroizing;

    fn sealer() -> (AeadSealer, CoreHeader, Secret) {
        let core = CoreHeader::random(1024).unwrap();
        let dk = Zeroizing::new([7u8; 32]);
        (AeadSealer::new(Vec::new(), &core, &dk), core, dk)
    }

    /// CRYPTO-NOTES pitfall 3: index 2^32 − 1 may carry only the final chunk; the sealer fails
    /// cleanly instead of wrapping the counter.
    #[test]
    fn sealer_refuses_a_non_final_chunk_at_the_last_index() {
        let (mut s, _, _) = sealer();
        s.set_next_index(u32::MAX - 1);
        let mut out = Vec::new();
        s.update(&[0u8; 1024], &mut out).unwrap(); // index 2^32 − 2: fine
        let e = s.update(&[0u8; 1024], &mut out).unwrap_err();
        assert!(matches!(
            crate::crypto_error(&e),
            Some(Error::TooLarge { max_bytes }) if *max_bytes == (1u64 << 32) * 1024 - 1
        ));
    }

    #[test]
    fn final_chunk_at_the_last_index_is_allowed_and_opens() {
        let (mut s, core, dk) = sealer();
        s.set_next_index(u32::MAX);
        let mut out = Vec::new();
        s.update(&[5u8; 100], &mut out).unwrap();
        Box::new(s).finish(&mut out).unwrap();
        assert_eq!(out.len(), 116);
        let mut p = Payload {
            stream: stream_for(&core, &dk),
            full: 1024 + TAG_LEN,
            pending: Vec::new(),
            index: u64::from(u32::MAX),
            offset: 0,
        };
        let mut plain = Vec::new();
        p.update(&out, &mut plain).unwrap();
        p.finish(&mut plain).unwrap();
        assert_eq!(plain, vec![5u8; 100]);
    }

    #[test]
    fn opener_refuses_a_non_final_chunk_at_the_last_index() {
        let (_, core, dk) = sealer();
        let mut p = Payload {
            stream: stream_for(&core, &dk),
            full: 1024 + TAG_LEN,
            pending: Vec::new(),
            index: u64::from(u32::MAX),
            offset: 0,
        };
        let mut plain = Vec::new();
        let e = p.update(&[0u8; 1040], &mut plain).unwrap_err();
        assert!(matches!(e, Error::TooLarge { .. }));
        assert!(plain.is_empty());
    }
}
