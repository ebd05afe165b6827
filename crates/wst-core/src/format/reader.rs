//! Reading an artifact back: sink stream → cipher → zstd → tar entries (one pass, blocking).

use std::io::{self, Read};

use sha2::{Digest, Sha256};

use crate::artifact::ArtifactName;
use crate::bridge::{Pumped, StreamReader, join_error, pump};
use crate::cipher::{Cipher, KeyFingerprint, OpenReader, cipher_error};
use crate::entry_rules::{EntryRules, Refusal, entry_kind};
use crate::error::quote_name;
use crate::error::{Error, Result};
use crate::manifest::{MANIFEST_MAX_BYTES, MANIFEST_PATH, Manifest};
use crate::sink::Sink;
use crate::source::EntryKind;
use crate::tarstream::{TarError, TarStream};

/// Caps applied while reading an artifact, protecting memory and disk against hostile input
/// (design invariant 10). Every cap on tar metadata is checked against the size a header
/// *claims*, before anything is read or allocated for it; a read that hits a cap stops with
/// [`Error::LimitExceeded`] naming the cap. Verify, `ls`, restore and drills read with the
/// same caps, so an artifact one of them accepts, the others accept too.
///
/// The defaults accept anything wst's own writer produces from an ordinary tree (Linux
/// `PATH_MAX` is 4 096 bytes) and bound what a hostile artifact can cost: tar metadata held at
/// once ≤ `max_path_bytes + max_link_bytes + max_pax_header_bytes` (≈ 72 KiB) per entry, plus the
/// entry list (≤ `max_total_path_bytes` of paths, kept about three times: the entry list, the
/// acceptance rule's index and the manifest). Entry content is streamed, never buffered; the
/// zstd window is capped at 128 MiB (`2^27`, zstd's own default cap).
///
/// Build custom limits from the defaults: `ReadLimits { max_entries: 1_000, ..Default::default() }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// Most entries accepted, the manifest not counted (default 10 000 000).
    pub max_entries: u64,
    /// Largest single entry, bytes (default 4 TiB). Checked against the header's claim before
    /// the content is read; content is streamed, so a claim costs no memory either way.
    pub max_entry_bytes: u64,
    /// Most content bytes in total, bytes (default 64 TiB).
    pub max_total_bytes: u64,
    /// Longest entry path, bytes (default 4 096), whether stored in the header, a GNU long
    /// name record (`././@LongLink`, type `L`) or a PAX `path` record.
    pub max_path_bytes: u64,
    /// Longest link target, bytes (default 4 096), whether in the header, a GNU long link
    /// record (type `K`) or a PAX `linkpath` record.
    pub max_link_bytes: u64,
    /// Largest PAX extended (type `x`) or global (type `g`) header, bytes (default 64 KiB).
    pub max_pax_header_bytes: u64,
    /// Most records in one PAX header (default 1 024).
    pub max_pax_records: u64,
    /// Most PAX global headers in the archive (default 16; wst writes none).
    pub max_pax_global_headers: u64,
    /// Most bytes of entry paths and link targets in total, bytes (default 256 MiB, about
    /// 2.5 million paths of 100 bytes). The entry list is held in memory for the manifest
    /// comparison; a valid manifest (≤ [`MANIFEST_MAX_BYTES`](crate::MANIFEST_MAX_BYTES)) names
    /// every path, so an archive far beyond this could not match one anyway.
    pub max_total_path_bytes: u64,
}

impl Default for ReadLimits {
    fn default() -> Self {
        Self {
            max_entries: 10_000_000,
            max_entry_bytes: 4 << 40,
            max_total_bytes: 64 << 40,
            max_path_bytes: 4096,
            max_link_bytes: 4096,
            max_pax_header_bytes: 64 << 10,
            max_pax_records: 1024,
            max_pax_global_headers: 16,
            max_total_path_bytes: 256 << 20,
        }
    }
}

/// One entry as read from the tar stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReadEntry {
    pub(crate) path: String,
    pub(crate) kind: EntryKind,
    pub(crate) size: u64,
    pub(crate) mode: u32,
    pub(crate) mtime: i64,
}

/// Receives entries as they are read; runs on the blocking thread.
pub(crate) trait Visitor: Send + 'static {
    /// Consumes (some of) the entry's content; the reader hashes the rest.
    fn entry(&mut self, entry: &ReadEntry, content: &mut dyn Read) -> Result<()>;
}

/// What a read produced. `error` is set when the read stopped early.
pub(crate) struct ReadOutcome<V> {
    pub(crate) visitor: V,
    /// Every entry with the SHA-256 of its content, in archive order (manifest excluded).
    pub(crate) entries: Vec<(ReadEntry, [u8; 32])>,
    pub(crate) manifest: Option<Manifest>,
    /// The stream authenticated completely (final chunk seen, no trailing bytes).
    pub(crate) authenticated: bool,
    pub(crate) opened_with: Option<KeyFingerprint>,
    pub(crate) error: Option<ReadFailure>,
    /// Bytes and SHA-256 of the ciphertext as delivered by the sink (when it delivered all).
    pub(crate) ciphertext: Option<Pumped>,
}

/// Why a read stopped.
#[derive(Debug)]
pub(crate) enum ReadFailure {
    /// The sink could not deliver the object.
    Sink(Error),
    /// The cipher refused the stream (wrong key, tampering, truncation).
    Cipher(Error),
    /// The authenticated plaintext is not a valid zstd/tar/manifest stream.
    Malformed(String),
    /// The visitor refused (unsafe entry, restore target error) or hit a limit.
    Visitor(Error),
}

impl ReadFailure {
    pub(crate) fn into_error(self, artifact: &ArtifactName) -> Error {
        match self {
            Self::Sink(e) | Self::Cipher(e) | Self::Visitor(e) => e,
            Self::Malformed(detail) => Error::Malformed {
                artifact: artifact.to_string(),
                detail,
            },
        }
    }
}

impl std::fmt::Display for ReadFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sink(e) | Self::Cipher(e) | Self::Visitor(e) => write!(f, "{e}"),
            Self::Malformed(d) => write!(f, "malformed archive: {d}"),
        }
    }
}

/// Reads the artifact `name` from `sink` in one pass.
///
/// # Errors
/// Only when the read could not start (object missing); every later problem is in
/// [`ReadOutcome::error`].
pub(crate) async fn read_artifact<V: Visitor>(
    sink: &dyn Sink,
    name: &ArtifactName,
    cipher: &dyn Cipher,
    visitor: V,
    limits: ReadLimits,
) -> Result<ReadOutcome<V>> {
    let stream = sink.get(&name.artifact_object()).await?;
    let opener = cipher.open()?;
    let (pump_task, reader) = pump(stream, 8);
    let blocking = tokio::task::spawn_blocking(move || {
        let open = OpenReader::from_opener(opener, reader);
        read_blocking(open, visitor, limits)
    });
    let mut outcome = blocking.await.map_err(|e| join_error(&e))?;
    match pump_task.await.map_err(|e| join_error(&e))? {
        Ok(p) => {
            if outcome.authenticated {
                outcome.ciphertext = Some(p);
            }
        }
        Err(e) => outcome.error = Some(ReadFailure::Sink(e)),
    }
    Ok(outcome)
}

/// Bytes per read while copying or discarding entry content.
const COPY_BLOCK: usize = 256 * 1024;

/// Copies `reader` to `writer` in [`COPY_BLOCK`] blocks (`std::io::copy` moves 8 KiB at a time:
/// a system call and a trip through tar, zstd and the cipher per 8 KiB). Returns the bytes
/// copied.
pub(crate) fn copy_blocks(reader: &mut dyn Read, writer: &mut dyn io::Write) -> io::Result<u64> {
    let mut buf = vec![0u8; COPY_BLOCK];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        writer.write_all(&buf[..n])?;
        total += n as u64;
    }
}

fn classify(e: io::Error, what: &str) -> ReadFailure {
    if cipher_error(&e).is_some() {
        // Unwrap the core error the cipher adapter carried through `std::io`.
        if let Some(inner) = e.into_inner() {
            return match inner.downcast::<Error>() {
                Ok(core) => match *core {
                    c @ Error::Cipher { .. } => ReadFailure::Cipher(c),
                    other => ReadFailure::Malformed(format!("{what}: {other}")),
                },
                Err(other) => ReadFailure::Malformed(format!("{what}: {other}")),
            };
        }
        return ReadFailure::Malformed(what.to_owned());
    }
    ReadFailure::Malformed(format!("{what}: {e}"))
}

/// Largest zstd window accepted, log2 bytes (128 MiB).
const ZSTD_WINDOW_LOG_MAX: u32 = 27;

fn tar_failure(e: TarError) -> ReadFailure {
    match e {
        TarError::Io(e) => classify(e, "tar"),
        TarError::Malformed(detail) => ReadFailure::Malformed(detail),
        TarError::Limit { what, value, limit } => {
            ReadFailure::Visitor(Error::LimitExceeded { what, value, limit })
        }
    }
}

fn read_blocking<V: Visitor>(
    open: OpenReader<StreamReader>,
    mut visitor: V,
    limits: ReadLimits,
) -> ReadOutcome<V> {
    let mut metas: Vec<ReadEntry> = Vec::new();
    let mut manifest = None;
    // Entry contents are hashed on a thread of their own while this one decrypts,
    // decompresses, parses and writes; the digests are matched to the entries at the end.
    let mut hashes = HashStage::start();
    let result = (|| -> std::result::Result<OpenReader<StreamReader>, ReadFailure> {
        // The payload is one or more zstd frames (entries compressed by their source are
        // spliced in as their own frames; FORMAT.md); bytes after the last frame that are not
        // a frame fail here as malformed.
        let mut decoder =
            zstd::stream::read::Decoder::new(open).map_err(|e| classify(e, "zstd"))?;
        // zstd's default cap, made explicit: a frame asking for a larger window is refused
        // rather than allocated.
        decoder
            .window_log_max(ZSTD_WINDOW_LOG_MAX)
            .map_err(|e| classify(e, "zstd"))?;
        let mut tar = TarStream::new(decoder, limits);
        let mut rules = EntryRules::new();
        let mut total = 0u64;
        let mut path_bytes = 0u64;
        while let Some(raw) = tar.next_entry().map_err(tar_failure)? {
            let path = String::from_utf8(raw.path).map_err(|e| {
                ReadFailure::Malformed(format!(
                    "the entry path `{}` is not UTF-8",
                    quote_name(e.as_bytes())
                ))
            })?;
            let path = path.trim_end_matches('/').to_owned();
            let size = raw.size;
            if manifest.is_some() {
                return Err(ReadFailure::Malformed(format!(
                    "entry `{}` follows the manifest, which must be last",
                    quote_name(path.as_bytes())
                )));
            }
            if path == MANIFEST_PATH {
                if !matches!(raw.typeflag, b'0' | 0) {
                    return Err(ReadFailure::Malformed(
                        "the manifest entry is not a regular file".into(),
                    ));
                }
                if size > MANIFEST_MAX_BYTES {
                    return Err(ReadFailure::Visitor(Error::LimitExceeded {
                        what: "manifest size",
                        value: size,
                        limit: MANIFEST_MAX_BYTES,
                    }));
                }
                let mut json = Vec::new();
                (&mut tar)
                    .take(MANIFEST_MAX_BYTES)
                    .read_to_end(&mut json)
                    .map_err(|e| classify(e, "manifest"))?;
                manifest = Some(
                    serde_json::from_slice::<Manifest>(&json)
                        .map_err(|e| ReadFailure::Malformed(format!("manifest: {e}")))?,
                );
                continue;
            }
            let limit = |what, value, limit| {
                ReadFailure::Visitor(Error::LimitExceeded { what, value, limit })
            };
            if metas.len() as u64 >= limits.max_entries {
                return Err(limit(
                    "entry count",
                    metas.len() as u64 + 1,
                    limits.max_entries,
                ));
            }
            if size > limits.max_entry_bytes {
                return Err(limit("entry size (bytes)", size, limits.max_entry_bytes));
            }
            total = total.saturating_add(size);
            if total > limits.max_total_bytes {
                return Err(limit(
                    "total content size (bytes)",
                    total,
                    limits.max_total_bytes,
                ));
            }
            path_bytes += (path.len() + raw.link.len()) as u64;
            if path_bytes > limits.max_total_path_bytes {
                return Err(limit(
                    "total size of entry paths and link targets (bytes)",
                    path_bytes,
                    limits.max_total_path_bytes,
                ));
            }
            let refused = |path: &str, r: Refusal| match r {
                Refusal::Unsafe(reason) => ReadFailure::Visitor(Error::UnsafeEntry {
                    path: quote_name(path.as_bytes()),
                    reason,
                }),
                Refusal::Malformed(detail) => ReadFailure::Malformed(detail),
            };
            let kind = entry_kind(raw.typeflag, &raw.link).map_err(|r| refused(&path, r))?;
            rules.accept(&path, &kind).map_err(|r| refused(&path, r))?;
            let meta = ReadEntry {
                path,
                kind,
                size,
                mode: raw.mode,
                mtime: raw.mtime,
            };
            let mut hashing = HashingRead {
                inner: &mut tar,
                stage: &mut hashes,
            };
            visitor.entry(&meta, &mut hashing).map_err(|e| match e {
                Error::Io { source, context } => {
                    if cipher_error(&source).is_some() {
                        classify(source, &context)
                    } else {
                        ReadFailure::Visitor(Error::Io { context, source })
                    }
                }
                other => ReadFailure::Visitor(other),
            })?;
            copy_blocks(&mut hashing, &mut io::sink()).map_err(|e| classify(e, "tar"))?;
            hashes.end_entry();
            metas.push(meta);
        }
        // The tar end marker was read; the zstd frame and the cipher stream must end too.
        let mut decoder = tar.into_inner();
        let extra = copy_blocks(&mut decoder, &mut io::sink()).map_err(|e| classify(e, "zstd"))?;
        if extra > 0 {
            // Padding zeros after the tar end marker are normal; anything else is not.
        }
        let mut open = decoder.finish().into_inner();
        let mut rest = [0u8; 1];
        match open.read(&mut rest) {
            Ok(0) => Ok(open),
            Ok(_) => Err(ReadFailure::Malformed(
                "data after the end of the compressed stream".into(),
            )),
            Err(e) => Err(classify(e, "cipher")),
        }
    })();
    let digests = hashes.finish();
    let complete = digests.len() >= metas.len();
    let entries: Vec<(ReadEntry, [u8; 32])> = metas.into_iter().zip(digests).collect();
    let result = match result {
        Ok(_) if !complete => Err(ReadFailure::Malformed(
            "the hashing thread stopped before the last entry".into(),
        )),
        other => other,
    };
    match result {
        Ok(open) => ReadOutcome {
            visitor,
            entries,
            manifest,
            authenticated: true,
            opened_with: open.opened_with(),
            error: None,
            ciphertext: None,
        },
        Err(failure) => ReadOutcome {
            visitor,
            entries,
            manifest,
            authenticated: false,
            opened_with: None,
            error: Some(failure),
            ciphertext: None,
        },
    }
}

/// Bytes handed to the hashing thread at a time.
const HASH_BLOCK: usize = 256 * 1024;
/// Blocks in flight to the hashing thread (memory ≈ this × 256 KiB).
const HASH_DEPTH: usize = 8;

/// A message to the hashing thread.
enum HashMsg {
    Data(Vec<u8>),
    /// The current entry ended: record its digest and start the next.
    EndEntry,
}

/// The hashing stage: SHA-256 of every entry's content on a thread of its own. Blocks travel in
/// reused buffers (a return channel), so the two threads never allocate or free the other's
/// memory per block. If the thread cannot start, hashing happens inline.
struct HashStage {
    tx: Option<std::sync::mpsc::SyncSender<HashMsg>>,
    spare: std::sync::mpsc::Receiver<Vec<u8>>,
    thread: Option<std::thread::JoinHandle<Vec<[u8; 32]>>>,
    current: Vec<u8>,
    /// Inline fallback.
    inline: Option<(Sha256, Vec<[u8; 32]>)>,
}

impl HashStage {
    fn start() -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel::<HashMsg>(HASH_DEPTH);
        let (spare_tx, spare) = std::sync::mpsc::sync_channel::<Vec<u8>>(HASH_DEPTH + 2);
        let thread = std::thread::Builder::new()
            .name("wst-hash".into())
            .spawn(move || {
                let mut digests = Vec::new();
                let mut hasher = Sha256::new();
                for msg in rx {
                    match msg {
                        HashMsg::Data(mut block) => {
                            hasher.update(&block);
                            block.clear();
                            let _ = spare_tx.try_send(block);
                        }
                        HashMsg::EndEntry => digests.push(hasher.finalize_reset().into()),
                    }
                }
                digests
            });
        match thread {
            Ok(handle) => Self {
                tx: Some(tx),
                spare,
                thread: Some(handle),
                current: Vec::with_capacity(HASH_BLOCK),
                inline: None,
            },
            Err(_) => Self {
                tx: None,
                spare,
                thread: None,
                current: Vec::new(),
                inline: Some((Sha256::new(), Vec::new())),
            },
        }
    }

    fn send(&mut self, msg: HashMsg) {
        if let Some(tx) = &self.tx
            && tx.send(msg).is_err()
        {
            // The thread is gone (it panicked): `finish` reports too few digests.
            self.tx = None;
        }
    }

    fn update(&mut self, data: &[u8]) {
        if let Some((hasher, _)) = &mut self.inline {
            hasher.update(data);
            return;
        }
        let mut rest = data;
        while !rest.is_empty() {
            let take = rest.len().min(HASH_BLOCK - self.current.len());
            self.current.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.current.len() == HASH_BLOCK {
                self.flush();
            }
        }
    }

    fn flush(&mut self) {
        if self.current.is_empty() {
            return;
        }
        let next = self
            .spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(HASH_BLOCK));
        let full = std::mem::replace(&mut self.current, next);
        self.send(HashMsg::Data(full));
    }

    fn end_entry(&mut self) {
        if let Some((hasher, digests)) = &mut self.inline {
            digests.push(hasher.finalize_reset().into());
            return;
        }
        self.flush();
        self.send(HashMsg::EndEntry);
    }

    /// The digests of the ended entries, in order.
    fn finish(mut self) -> Vec<[u8; 32]> {
        if let Some((_, digests)) = self.inline.take() {
            return digests;
        }
        drop(self.tx.take());
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

struct HashingRead<'a, R: Read> {
    inner: &'a mut R,
    stage: &'a mut HashStage,
}

impl<R: Read> Read for HashingRead<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.stage.update(&buf[..n]);
        Ok(n)
    }
}
