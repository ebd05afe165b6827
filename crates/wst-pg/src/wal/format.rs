//! The content of a WAL object (`docs/WAL.md` §2): a `wst-aead-v1` ciphertext whose plaintext
//! is a zstd skippable frame holding the JSON [`WalHeader`], then the zstd frames of the file.

use std::io::{self, Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use wst_core::{Cipher, Opener};

use crate::wal::error::WalError;
use crate::wal::name::WalFileName;

/// The `format` member of every WAL header.
pub const WAL_FORMAT: &str = "wst-wal/1";

/// The magic number of the header's zstd skippable frame (RFC 8878 §3.1.2 reserves
/// `0x184D2A50`–`0x184D2A5F`; wst uses `0x184D2A57`), stored little-endian: `57 2A 4D 18`.
pub const WAL_FRAME_MAGIC: u32 = 0x184D_2A57;

/// Most bytes of the header's JSON.
pub const MAX_HEADER_JSON_BYTES: usize = 4096;

/// The largest WAL file wst archives or restores: 1 GiB, PostgreSQL's largest
/// `--wal-segsize` (`initdb`; history and backup history files are far smaller).
pub const MAX_WAL_FILE_BYTES: u64 = 1 << 30;

/// The largest WAL object wst reads from a sink: [`MAX_WAL_FILE_BYTES`] plus zstd's worst-case
/// expansion (`ZSTD_compressBound`, < 4.1 MiB for 1 GiB), the header frame and the
/// `wst-aead-v1` overhead at its smallest chunk size (16 bytes per 1 KiB: 16 MiB), rounded up
/// to 1 GiB + 32 MiB. A larger object is refused before it is read (design invariant 10).
pub const MAX_WAL_OBJECT_BYTES: u64 = MAX_WAL_FILE_BYTES + (32 << 20);

/// The authenticated metadata sealed at the start of every WAL object (`docs/WAL.md` §2): it
/// binds the object to its WAL file name and to the file's size and SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WalHeader {
    /// Always [`WAL_FORMAT`].
    pub format: String,
    /// The WAL file name; a reader asking for another name refuses the object.
    pub name: String,
    /// The file's size, bytes (at most [`MAX_WAL_FILE_BYTES`]).
    pub size: u64,
    /// The SHA-256 of the file's bytes, 64 lower-case hex digits; the idempotence check of
    /// `wal-push` compares it.
    pub sha256: String,
    /// When `wal-push` sealed it (UTC, from the archive's clock). Informational.
    pub archived: jiff::Timestamp,
    /// The wst version that wrote it. Informational.
    pub tool_version: String,
}

impl WalHeader {
    /// The header of `name`'s content of `size` bytes with SHA-256 `sha256`.
    pub(crate) fn new(
        name: &WalFileName,
        size: u64,
        sha256: [u8; 32],
        archived: jiff::Timestamp,
    ) -> Self {
        Self {
            format: WAL_FORMAT.to_owned(),
            name: name.as_str().to_owned(),
            size,
            sha256: hex::encode(sha256),
            archived,
            tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }

    /// The skippable frame: magic, JSON length (both little-endian u32), JSON.
    pub(crate) fn frame(&self) -> Vec<u8> {
        let json = serde_json::to_vec(self).expect("a WAL header serialises");
        debug_assert!(json.len() <= MAX_HEADER_JSON_BYTES);
        let mut out = Vec::with_capacity(8 + json.len());
        out.extend_from_slice(&WAL_FRAME_MAGIC.to_le_bytes());
        out.extend_from_slice(&(json.len() as u32).to_le_bytes());
        out.extend_from_slice(&json);
        out
    }

    /// Checks the parsed header against the name asked for and the format's rules.
    fn check(&self, expected: &WalFileName) -> Result<(), String> {
        if self.format != WAL_FORMAT {
            return Err(format!(
                "its header has format `{}`, not `{WAL_FORMAT}`",
                crate::wal::quote(&self.format)
            ));
        }
        if self.name != expected.as_str() {
            return Err(format!(
                "it holds WAL file `{}`, not {expected}: an object substituted under another name",
                crate::wal::quote(&self.name)
            ));
        }
        if self.size > MAX_WAL_FILE_BYTES {
            return Err(format!(
                "its header claims {} bytes, more than the largest WAL file ({MAX_WAL_FILE_BYTES})",
                self.size
            ));
        }
        if self.sha256.len() != 64
            || !self
                .sha256
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err("its header's sha256 is not 64 lower-case hex digits".into());
        }
        Ok(())
    }
}

/// A WAL file read, hashed and compressed: what [`seal`] needs.
pub(crate) struct Compressed {
    pub(crate) data: Vec<u8>,
    pub(crate) size: u64,
    pub(crate) sha256: [u8; 32],
}

/// Reads `path` once, hashing and zstd-compressing it at `level`; refuses a file over
/// [`MAX_WAL_FILE_BYTES`]. Blocking.
pub(crate) fn compress_file(path: &Path, level: i32) -> Result<Compressed, WalError> {
    let read_err = |source| WalError::Read {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(read_err)?;
    let len = file.metadata().map_err(read_err)?.len();
    if len > MAX_WAL_FILE_BYTES {
        return Err(WalError::TooLarge {
            what: format!("WAL file `{}`", path.display()),
            size: len,
            limit: MAX_WAL_FILE_BYTES,
        });
    }
    let mut encoder =
        zstd::stream::write::Encoder::new(Vec::with_capacity((len / 4) as usize + 4096), level)
            .map_err(|e| WalError::Config(format!("zstd level {level}: {e}")))?;
    // The size is known: zstd records it in the frame header and sizes its window to it.
    encoder
        .set_pledged_src_size(Some(len))
        .and_then(|()| encoder.include_contentsize(true))
        .map_err(|e| WalError::Config(format!("zstd: {e}")))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_err(e)),
        };
        size += n as u64;
        if size > len {
            // The file grew while it was read: PostgreSQL never does that to a finished WAL
            // file, so something else is writing it.
            return Err(read_err(io::Error::other(format!(
                "the file grew while it was read (from {len} bytes); nothing was archived"
            ))));
        }
        hasher.update(&buf[..n]);
        encoder
            .write_all(&buf[..n])
            .map_err(|e| WalError::Config(format!("zstd: {e}")))?;
    }
    if size != len {
        return Err(read_err(io::Error::other(format!(
            "the file shrank while it was read ({len} → {size} bytes); nothing was archived"
        ))));
    }
    let data = encoder
        .finish()
        .map_err(|e| WalError::Config(format!("zstd: {e}")))?;
    Ok(Compressed {
        data,
        size,
        sha256: hasher.finalize().into(),
    })
}

/// Seals `header`'s frame followed by `compressed` with `cipher`: the object's bytes. Blocking.
pub(crate) fn seal(
    cipher: &dyn Cipher,
    header: &WalHeader,
    compressed: &[u8],
) -> Result<Vec<u8>, WalError> {
    let frame = header.frame();
    // Ciphertext ≈ plaintext + 16 bytes per chunk + header; 1/64 covers chunks ≥ 1 KiB.
    let plain_len = frame.len() + compressed.len();
    let mut out = Vec::with_capacity(plain_len + plain_len / 64 + 4096);
    let mut sealer = cipher.seal()?;
    sealer.update(&frame, &mut out)?;
    sealer.update(compressed, &mut out)?;
    sealer.finish(&mut out)?;
    Ok(out)
}

/// Why reading a copy failed: the copy's fault (try the next sink), the sink's (unreachable:
/// try the next sink, nothing is wrong with the copy), or ours (the local write: stop).
#[derive(Debug)]
pub(crate) enum ReadFailure {
    /// The copy is bad: it does not authenticate, names another file, or fails its checks.
    Integrity(String),
    /// The sink could not deliver it.
    Sink(wst_core::Error),
    /// Writing the plaintext locally failed.
    Local(io::Error),
}

/// A local write error, marked so that it is told apart from zstd's errors.
#[derive(Debug)]
struct LocalWrite(io::Error);

impl std::fmt::Display for LocalWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for LocalWrite {}

/// The decompressed output: counted against the header's size, hashed, then written on.
struct Checked<W: Write> {
    inner: W,
    hasher: Sha256,
    written: u64,
    limit: u64,
}

impl<W: Write> Write for Checked<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written + buf.len() as u64 > self.limit {
            return Err(io::Error::other(format!(
                "it decompresses to more than the {} bytes its header states",
                self.limit
            )));
        }
        self.inner
            .write_all(buf)
            .map_err(|e| io::Error::other(LocalWrite(e)))?;
        self.hasher.update(buf);
        self.written += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner
            .flush()
            .map_err(|e| io::Error::other(LocalWrite(e)))
    }
}

fn classify(e: io::Error) -> ReadFailure {
    match e.get_ref().and_then(|i| i.downcast_ref::<LocalWrite>()) {
        Some(_) => {
            let inner = e.into_inner().expect("checked above");
            let local = inner.downcast::<LocalWrite>().expect("checked above");
            ReadFailure::Local(local.0)
        }
        None => ReadFailure::Integrity(format!("its zstd content is invalid: {e}")),
    }
}

/// Opens one WAL object fed chunk by chunk: authenticates it (the cipher releases plaintext
/// only after each chunk's tag verified), checks the header frame against the name asked for,
/// decompresses into `out` and, at [`ObjectReader::finish`], checks the size and SHA-256.
///
/// Memory: the cipher's chunk buffers, the header (≤ 4 KiB + 8), zstd's window (refused
/// beyond 2^27 bytes) and the output buffer of one chunk. `out` receives plaintext that is
/// authenticated but not yet checked against the header's hash: write it to a temporary file
/// and promote it only after `finish` succeeds.
pub(crate) struct ObjectReader<W: Write> {
    expected: WalFileName,
    opener: Option<Box<dyn Opener>>,
    plain: Vec<u8>,
    head: Vec<u8>,
    header: Option<WalHeader>,
    decoder: Option<zstd::stream::write::Decoder<'static, Checked<W>>>,
    out: Option<W>,
    ciphertext: u64,
}

impl<W: Write> ObjectReader<W> {
    /// Starts reading the object of `expected` with `cipher`'s keys, writing its content to `out`.
    pub(crate) fn new(
        cipher: &dyn Cipher,
        expected: &WalFileName,
        out: W,
    ) -> Result<Self, ReadFailure> {
        Ok(Self {
            expected: expected.clone(),
            opener: Some(
                cipher
                    .open()
                    .map_err(|e| ReadFailure::Integrity(e.to_string()))?,
            ),
            plain: Vec::with_capacity(128 * 1024),
            head: Vec::new(),
            header: None,
            decoder: None,
            out: Some(out),
            ciphertext: 0,
        })
    }

    /// Feeds ciphertext.
    pub(crate) fn update(&mut self, ciphertext: &[u8]) -> Result<(), ReadFailure> {
        self.ciphertext += ciphertext.len() as u64;
        if self.ciphertext > MAX_WAL_OBJECT_BYTES {
            return Err(ReadFailure::Integrity(format!(
                "it is larger than any WAL object can be ({MAX_WAL_OBJECT_BYTES} bytes)"
            )));
        }
        let opener = self.opener.as_mut().expect("not finished");
        self.plain.clear();
        opener
            .update(ciphertext, &mut self.plain)
            .map_err(|e| ReadFailure::Integrity(e.to_string()))?;
        let plain = std::mem::take(&mut self.plain);
        let r = self.consume(&plain);
        self.plain = plain;
        r
    }

    fn consume(&mut self, mut plain: &[u8]) -> Result<(), ReadFailure> {
        while self.header.is_none() {
            if plain.is_empty() {
                return Ok(());
            }
            // Collect the frame's 8-byte head, then its JSON.
            let need = if self.head.len() < 8 {
                8
            } else {
                8 + json_len(&self.head)?
            };
            let take = (need - self.head.len()).min(plain.len());
            self.head.extend_from_slice(&plain[..take]);
            plain = &plain[take..];
            if self.head.len() < 8 || self.head.len() < 8 + json_len(&self.head)? {
                continue;
            }
            let header: WalHeader = serde_json::from_slice(&self.head[8..]).map_err(|e| {
                ReadFailure::Integrity(format!("its header is not valid WAL header JSON: {e}"))
            })?;
            header
                .check(&self.expected)
                .map_err(ReadFailure::Integrity)?;
            let checked = Checked {
                inner: self.out.take().expect("output present until the header"),
                hasher: Sha256::new(),
                written: 0,
                limit: header.size,
            };
            let mut decoder = zstd::stream::write::Decoder::new(checked)
                .map_err(|e| ReadFailure::Local(io::Error::other(e)))?;
            decoder
                .window_log_max(27)
                .map_err(|e| ReadFailure::Local(io::Error::other(e)))?;
            self.decoder = Some(decoder);
            self.header = Some(header);
        }
        if !plain.is_empty() {
            self.decoder
                .as_mut()
                .expect("decoder after the header")
                .write_all(plain)
                .map_err(classify)?;
        }
        Ok(())
    }

    /// Declares the end of the object and checks everything: the final chunk authenticated,
    /// the zstd frames complete, the content's size and SHA-256 equal the header's. Returns
    /// the header and the output.
    pub(crate) fn finish(mut self) -> Result<(WalHeader, W), ReadFailure> {
        let opener = self.opener.take().expect("not finished");
        let mut tail = Vec::new();
        opener
            .finish(&mut tail)
            .map_err(|e| ReadFailure::Integrity(e.to_string()))?;
        self.consume(&tail)?;
        let Some(header) = self.header.take() else {
            return Err(ReadFailure::Integrity(
                "it ends before its header is complete".into(),
            ));
        };
        let decoder = self.decoder.take().expect("decoder after the header");
        let checked = decoder.finish().map_err(classify)?;
        if checked.written != header.size {
            return Err(ReadFailure::Integrity(format!(
                "it decompresses to {} bytes, its header states {}",
                checked.written, header.size
            )));
        }
        let sha = hex::encode(checked.hasher.finalize());
        if sha != header.sha256 {
            return Err(ReadFailure::Integrity(format!(
                "its content's SHA-256 is {sha}, its header states {}",
                header.sha256
            )));
        }
        Ok((header, checked.inner))
    }
}

fn json_len(head: &[u8]) -> Result<usize, ReadFailure> {
    let magic = u32::from_le_bytes(head[..4].try_into().expect("8 bytes"));
    if magic != WAL_FRAME_MAGIC {
        return Err(ReadFailure::Integrity(format!(
            "its plaintext does not start with the WAL header frame (magic {magic:#010x}, \
             expected {WAL_FRAME_MAGIC:#010x}): not a WAL object"
        )));
    }
    let len = u32::from_le_bytes(head[4..8].try_into().expect("8 bytes")) as usize;
    if len == 0 || len > MAX_HEADER_JSON_BYTES {
        return Err(ReadFailure::Integrity(format!(
            "its header frame claims {len} bytes of JSON (1 to {MAX_HEADER_JSON_BYTES} allowed)"
        )));
    }
    Ok(len)
}

/// Opens a whole object held in memory (a queued copy). See [`ObjectReader`].
pub(crate) fn open_bytes<W: Write>(
    cipher: &dyn Cipher,
    expected: &WalFileName,
    object: &[u8],
    out: W,
) -> Result<(WalHeader, W), ReadFailure> {
    let mut r = ObjectReader::new(cipher, expected, out)?;
    for chunk in object.chunks(256 * 1024) {
        r.update(chunk)?;
    }
    r.finish()
}

#[cfg(test)]
#[allow(clippy::many_single_char_names)]
mod tests {
    use super::*;
    use wst_crypto::{AeadCipher, Key};

    fn cipher() -> AeadCipher {
        AeadCipher::builder()
            .recipient_key(Key::from_bytes([7; 32]))
            .chunk_size(4096)
            .build()
            .unwrap()
    }

    fn name(n: &str) -> WalFileName {
        WalFileName::parse(n).unwrap()
    }

    /// WAL-like content: mostly zeros with some structure.
    fn content(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| if i % 97 < 10 { (i % 251) as u8 } else { 0 })
            .collect()
    }

    fn sealed(c: &AeadCipher, n: &WalFileName, data: &[u8]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(n.as_str());
        std::fs::write(&path, data).unwrap();
        let comp = compress_file(&path, 3).unwrap();
        assert_eq!(comp.size, data.len() as u64);
        let header = WalHeader::new(n, comp.size, comp.sha256, jiff::Timestamp::UNIX_EPOCH);
        seal(c, &header, &comp.data).unwrap()
    }

    fn integrity(r: Result<(WalHeader, Vec<u8>), ReadFailure>) -> String {
        match r {
            Err(ReadFailure::Integrity(d)) => d,
            Err(other) => panic!("expected an integrity failure, got {other:?}"),
            Ok(_) => panic!("expected an integrity failure, got a good copy"),
        }
    }

    #[test]
    fn round_trip_binds_name_size_and_hash() {
        let c = cipher();
        let n = name("000000010000000000000003");
        let data = content(300_000);
        let object = sealed(&c, &n, &data);
        assert!(
            object.len() < data.len() / 2,
            "compressed: {}",
            object.len()
        );
        let (h, out) = open_bytes(&c, &n, &object, Vec::new()).unwrap();
        assert_eq!(out, data);
        assert_eq!(h.name, n.as_str());
        assert_eq!(h.size, 300_000);
        assert_eq!(h.sha256, hex::encode(Sha256::digest(&data)));
        assert_eq!(h.format, WAL_FORMAT);

        // Byte by byte feeding gives the same result (the header may arrive in pieces).
        let mut r = ObjectReader::new(&c, &n, Vec::new()).unwrap();
        for b in &object {
            r.update(std::slice::from_ref(b)).unwrap();
        }
        assert_eq!(r.finish().unwrap().1, data);
    }

    #[test]
    fn an_object_under_another_name_is_refused() {
        let c = cipher();
        let object = sealed(&c, &name("000000010000000000000003"), &content(5000));
        let d = integrity(open_bytes(
            &c,
            &name("000000010000000000000004"),
            &object,
            Vec::new(),
        ));
        assert!(d.contains("substituted"), "{d}");
        assert!(d.contains("000000010000000000000003"), "{d}");
    }

    #[test]
    fn a_flipped_byte_a_truncation_or_a_wrong_key_is_refused() {
        let c = cipher();
        let n = name("00000002.history");
        let object = sealed(&c, &n, &content(20_000));
        for pos in [0, 10, 100, object.len() / 2, object.len() - 1] {
            let mut bad = object.clone();
            bad[pos] ^= 0x01;
            integrity(open_bytes(&c, &n, &bad, Vec::new()));
        }
        // Truncated anywhere.
        for len in [0, 50, object.len() / 2, object.len() - 1] {
            integrity(open_bytes(&c, &n, &object[..len], Vec::new()));
        }
        // A wrong key.
        let other = AeadCipher::builder()
            .recipient_key(Key::from_bytes([8; 32]))
            .build()
            .unwrap();
        integrity(open_bytes(&other, &n, &object, Vec::new()));
    }

    /// Seals arbitrary plaintext with the cipher (to build hostile-but-authentic objects).
    fn seal_raw(c: &AeadCipher, plain: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut s = c.seal().unwrap();
        s.update(plain, &mut out).unwrap();
        s.finish(&mut out).unwrap();
        out
    }

    fn frame(json: &[u8]) -> Vec<u8> {
        let mut f = WAL_FRAME_MAGIC.to_le_bytes().to_vec();
        f.extend_from_slice(&(json.len() as u32).to_le_bytes());
        f.extend_from_slice(json);
        f
    }

    #[test]
    fn authentic_but_malformed_objects_are_refused() {
        let c = cipher();
        let n = name("000000010000000000000003");
        let data = content(10_000);
        let z = zstd::encode_all(&data[..], 3).unwrap();
        let good = WalHeader::new(
            &n,
            data.len() as u64,
            Sha256::digest(&data).into(),
            jiff::Timestamp::UNIX_EPOCH,
        );
        let with = |h: &WalHeader| {
            let mut p = frame(&serde_json::to_vec(h).unwrap());
            p.extend_from_slice(&z);
            seal_raw(&c, &p)
        };
        open_bytes(&c, &n, &with(&good), Vec::new()).unwrap();

        // A plain artifact payload (no header frame): not a WAL object.
        let d = integrity(open_bytes(&c, &n, &seal_raw(&c, &z), Vec::new()));
        assert!(d.contains("not a WAL object"), "{d}");
        // A header frame claiming a huge JSON: refused before reading it.
        let mut p = WAL_FRAME_MAGIC.to_le_bytes().to_vec();
        p.extend_from_slice(&u32::MAX.to_le_bytes());
        let d = integrity(open_bytes(&c, &n, &seal_raw(&c, &p), Vec::new()));
        assert!(d.contains("4294967295 bytes of JSON"), "{d}");
        // Only the header, no content frames.
        integrity(open_bytes(
            &c,
            &n,
            &seal_raw(&c, &frame(&serde_json::to_vec(&good).unwrap())),
            Vec::new(),
        ));
        // A header that lies about the size (smaller, larger) or the hash, or the format.
        let mut h = good.clone();
        h.size -= 1;
        let d = integrity(open_bytes(&c, &n, &with(&h), Vec::new()));
        assert!(d.contains("more than the 9999 bytes"), "{d}");
        let mut h = good.clone();
        h.size += 1;
        let d = integrity(open_bytes(&c, &n, &with(&h), Vec::new()));
        assert!(d.contains("decompresses to 10000 bytes"), "{d}");
        let mut h = good.clone();
        h.sha256 = "0".repeat(64);
        let d = integrity(open_bytes(&c, &n, &with(&h), Vec::new()));
        assert!(d.contains("SHA-256"), "{d}");
        let mut h = good.clone();
        h.format = "wst-wal/2".into();
        integrity(open_bytes(&c, &n, &with(&h), Vec::new()));
        let mut h = good.clone();
        h.size = MAX_WAL_FILE_BYTES + 1;
        integrity(open_bytes(&c, &n, &with(&h), Vec::new()));
        // Garbage after the zstd frames.
        let mut p = frame(&serde_json::to_vec(&good).unwrap());
        p.extend_from_slice(&z);
        p.extend_from_slice(b"garbage");
        integrity(open_bytes(&c, &n, &seal_raw(&c, &p), Vec::new()));
    }

    #[test]
    fn the_plaintext_is_a_zstd_stream_any_decoder_reads() {
        // docs/WAL.md §3: decrypt, then `zstd -d`: the skippable header frame is skipped.
        let c = cipher();
        let n = name("000000010000000000000003");
        let data = content(70_000);
        let object = sealed(&c, &n, &data);
        let mut plain = Vec::new();
        let mut o = c.open().unwrap();
        o.update(&object, &mut plain).unwrap();
        o.finish(&mut plain).unwrap();
        assert_eq!(&plain[..4], &[0x57, 0x2A, 0x4D, 0x18]);
        assert_eq!(zstd::decode_all(&plain[..]).unwrap(), data);
    }

    #[test]
    fn files_over_one_gib_are_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("000000010000000000000003");
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(MAX_WAL_FILE_BYTES + 1).unwrap(); // sparse
        assert!(matches!(
            compress_file(&path, 3),
            Err(WalError::TooLarge { .. })
        ));
    }
}
