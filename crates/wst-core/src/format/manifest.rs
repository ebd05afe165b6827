//! The manifest: the last entry of every artifact's tar, listing every entry with its SHA-256.

use serde::{Deserialize, Serialize};

use crate::source::{EntryKind, SourceDescription};

/// The manifest format identifier.
pub const MANIFEST_FORMAT: &str = "wst-manifest/1";

/// The archive path of the manifest. The `.wst/` directory is reserved: sources may not write
/// entries under it.
pub const MANIFEST_PATH: &str = ".wst/manifest.json";

/// Largest manifest a reader accepts, in bytes (protects memory when reading untrusted input).
pub const MANIFEST_MAX_BYTES: u64 = 512 * 1024 * 1024;

/// What an artifact contains: written as the last tar entry, after every other entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`MANIFEST_FORMAT`].
    pub format: String,
    /// The artifact name, `{prefix}-YYYYMMDD-HHMMSS`.
    pub artifact: String,
    /// The tool that wrote it, e.g. `wst 0.1.0`.
    pub tool: String,
    /// When the run started (UTC).
    pub started: jiff::Timestamp,
    /// When the last entry was written (UTC).
    pub finished: jiff::Timestamp,
    /// Every source, with its facts (database row counts, schema fingerprint).
    pub sources: Vec<SourceDescription>,
    /// Every entry in archive order (the manifest itself excluded).
    pub entries: Vec<ManifestEntry>,
    /// Seconds spent per stage, e.g. `{"prepare:db": 1.2, "archive": 30.5}`.
    #[serde(default)]
    pub timings: std::collections::BTreeMap<String, f64>,
    /// Warnings raised while archiving (e.g. a file changed while it was read).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// The audit chain's head when the run started (issue 14): the log must still hold this
    /// record, or it was cut short or rewritten (`docs/EVIDENCE.md`, "Audit anchors").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_head: Option<crate::audit::AuditHead>,
}

/// One archive entry as recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Archive path (relative, `/`-separated).
    pub path: String,
    /// The kind (and link target for links).
    #[serde(flatten)]
    pub kind: EntryKind,
    /// Content size in bytes.
    pub size: u64,
    /// Unix permission bits.
    pub mode: u32,
    /// Modification time, seconds since the Unix epoch (UTC).
    pub mtime: i64,
    /// SHA-256 of the content, lowercase hex (of empty content for non-files).
    pub sha256: String,
    /// True when the file changed while it was read.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub changed: bool,
}

impl Manifest {
    /// The entry at `path`, if any.
    pub fn entry(&self, path: &str) -> Option<&ManifestEntry> {
        self.entries.iter().find(|e| e.path == path)
    }

    /// The description of the first source of `kind` (e.g. `"postgresql"`).
    pub fn source_of_kind(&self, kind: &str) -> Option<&SourceDescription> {
        self.sources.iter().find(|s| s.kind == kind)
    }
}
