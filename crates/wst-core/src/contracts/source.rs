//! The `Source` trait: something that contributes entries to a snapshot.

use std::fmt;
use std::io::Read;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// The kind of an archive entry. Only these kinds are ever written or restored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EntryKind {
    /// A regular file; its content follows.
    File,
    /// A directory.
    Dir,
    /// A symbolic link, stored as a link (never followed). `target` is the link text as is.
    Symlink {
        /// The link text.
        target: String,
    },
    /// A hard link to an earlier entry of the same archive; `target` is that entry's path.
    Hardlink {
        /// Archive path of the earlier entry.
        target: String,
    },
}

/// Metadata of one entry as a source hands it to the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryMeta {
    /// Archive path: relative, `/`-separated, UTF-8, no `.`/`..` components, e.g.
    /// `wst-api/config/app.json`. Directories carry no trailing slash.
    pub path: String,
    /// The entry kind.
    pub kind: EntryKind,
    /// Content length in bytes (0 for everything but files).
    pub size: u64,
    /// Unix permission bits (`0o7777` mask; restore drops setuid/setgid/sticky bits with a warning
    /// unless it runs under break-glass).
    pub mode: u32,
    /// Modification time, seconds since the Unix epoch (UTC).
    pub mtime: i64,
}

/// What the archive recorded for one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryOutcome {
    /// SHA-256 of the stored content (empty content for non-files).
    pub sha256: [u8; 32],
    /// True when the content read did not have the declared size (the file changed while it
    /// was read). The stored size is always the declared size: a short read is zero-padded, a
    /// long one truncated, and the entry is flagged in the manifest and run report.
    pub changed: bool,
}

/// Receives a source's entries and writes them into the archive (blocking).
pub trait EntryWriter {
    /// Adds one entry. For files, exactly `meta.size` bytes are read from `content`.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) when the archive cannot be written (e.g. every sink
    /// failed), [`Error::SourceRead`](crate::Error::SourceRead) when `content` fails.
    fn add(&mut self, meta: &EntryMeta, content: &mut dyn Read) -> Result<EntryOutcome>;

    /// Adds one file entry whose content the source has already compressed: `frames` holds
    /// complete zstd frames (RFC 8878) that decode to exactly `meta.size` bytes with SHA-256
    /// `sha256`. A source that compresses while it produces its data (e.g. `wst-pg` compresses
    /// `pg_dump`'s output as it is written) uses this so the data is compressed once, overlapped
    /// with its production, instead of spooled raw and compressed again by the archive.
    ///
    /// The backup pipeline's archive writer ends its current zstd frame and splices `frames`
    /// verbatim into the compressed stream (concatenated frames decode as one stream, so readers
    /// see an ordinary tar entry). This default implementation, for other writers, decompresses
    /// `frames` through [`EntryWriter::add`] and checks the digest.
    ///
    /// The caller vouches for `meta.size` and `sha256`; the pipeline's read-back verification
    /// (decrypt, decompress, hash every entry against the manifest) proves them on every run.
    ///
    /// # Errors
    /// As [`EntryWriter::add`]; [`Error::SourceRead`](crate::Error::SourceRead) when `frames`
    /// cannot be read or decoded, or decodes to other bytes than declared.
    fn add_zstd(
        &mut self,
        meta: &EntryMeta,
        frames: &mut dyn Read,
        sha256: [u8; 32],
    ) -> Result<EntryOutcome> {
        add_decompressed(self, meta, frames, sha256)
    }

    /// Records a warning in the run report (e.g. "file changed while read").
    fn warn(&mut self, message: String);
}

/// Adds a compressed entry through [`EntryWriter::add`]: decodes `frames`, then checks the
/// declared size and SHA-256 (the default of [`EntryWriter::add_zstd`], and the archive's own
/// path when its output cannot take frames).
pub(crate) fn add_decompressed<W: EntryWriter + ?Sized>(
    writer: &mut W,
    meta: &EntryMeta,
    frames: &mut dyn Read,
    sha256: [u8; 32],
) -> Result<EntryOutcome> {
    let source_err = |source: std::io::Error| crate::Error::SourceRead {
        path: meta.path.clone().into(),
        source,
    };
    let mut decoder = zstd::stream::read::Decoder::new(frames).map_err(source_err)?;
    let outcome = writer.add(meta, &mut decoder)?;
    if outcome.changed || outcome.sha256 != sha256 {
        return Err(source_err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the compressed entry does not decode to the declared size and SHA-256",
        )));
    }
    Ok(outcome)
}

/// A source's description for the manifest: what it is and, for databases, the facts a restore
/// drill proves against (server version, row counts, schema fingerprint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceDescription {
    /// Source kind: `"files"`, `"postgresql"`, `"object_store"`.
    pub kind: String,
    /// The source's name in reports, e.g. `"wst-api"`.
    pub name: String,
    /// The archive root or entry the source writes under, e.g. `wst-api/` or
    /// `wst_dev_database.backup`.
    pub root: String,
    /// Kind-specific facts. Never contains credentials.
    #[serde(default)]
    pub details: serde_json::Value,
    /// A few facts the source asks to be repeated in the artifact's authenticated sidecar
    /// ([`SourceCounts::listing`](crate::SourceCounts::listing)), so that a listing of the sink
    /// can use them without downloading and decrypting the artifact (issue 16: a base backup's
    /// timeline and WAL range, which status and WAL retention read every minute). Bounded by
    /// the pipeline: at most [`LISTING_MAX_ITEMS`] keys of at most [`LISTING_MAX_KEY_BYTES`]
    /// bytes with values of at most [`LISTING_MAX_VALUE_BYTES`] bytes; more is dropped with a
    /// warning in the run report. Never contains credentials or entry names.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub listing: std::collections::BTreeMap<String, String>,
}

/// At most this many [`SourceDescription::listing`] facts are kept per source.
pub const LISTING_MAX_ITEMS: usize = 16;
/// A [`SourceDescription::listing`] key longer than this (bytes) is dropped.
pub const LISTING_MAX_KEY_BYTES: usize = 64;
/// A [`SourceDescription::listing`] value longer than this (bytes) is dropped.
pub const LISTING_MAX_VALUE_BYTES: usize = 256;

/// Contributes entries to a snapshot.
///
/// A run first awaits [`Source::prepare`] for every source (concurrently), which does the
/// asynchronous work (connecting, exporting a snapshot, spooling a dump), then calls
/// [`PreparedSource::write_entries`] on a blocking thread in configured order.
#[async_trait]
pub trait Source: Send + Sync + fmt::Debug {
    /// The source's name in reports.
    fn name(&self) -> String;

    /// Prepares a point-in-time view of the source.
    ///
    /// # Errors
    /// [`Error::SourceMissing`](crate::Error::SourceMissing) for a missing root (doctrine F2);
    /// [`Error::Source`](crate::Error::Source) for an implementation's failure (e.g. database
    /// authentication, doctrine F1).
    async fn prepare(&self) -> Result<Box<dyn PreparedSource>>;
}

/// A source ready to write its entries.
pub trait PreparedSource: Send {
    /// The manifest description. Called after [`PreparedSource::write_entries`] so it may
    /// include what was written.
    fn description(&self) -> SourceDescription;

    /// Writes every entry (blocking; runs on a blocking thread).
    ///
    /// # Errors
    /// The first error; the run then fails and no artifact is published.
    fn write_entries(&mut self, out: &mut dyn EntryWriter) -> Result<()>;
}
