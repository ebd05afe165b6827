//! The run report: what a backup run did, serializable for logs, the audit trail and `--json`.

use serde::{Deserialize, Serialize};

use crate::artifact::ArtifactName;
use crate::cipher::KeyFingerprint;
use crate::sink::Medium;
use crate::verify::VerificationReport;

/// The outcome of one backup run on one sink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SinkOutcome {
    /// The sink's configured name.
    pub sink: String,
    /// Its medium.
    pub medium: Medium,
    /// Whether it is offsite.
    pub offsite: bool,
    /// Whether the artifact and its sidecar are complete and visible on this sink.
    pub written: bool,
    /// Ciphertext bytes written (the artifact's size when `written`).
    pub bytes: u64,
    /// Seconds from the start of the upload to its completion or failure.
    pub seconds: f64,
    /// The error, when the copy failed (never contains credentials).
    pub error: Option<String>,
}

/// Per-source facts of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceOutcome {
    /// The source's name.
    pub name: String,
    /// The source's kind (`files`, `postgresql`, …).
    pub kind: String,
    /// Seconds spent preparing (for databases: snapshot and dump spooling).
    pub prepare_seconds: f64,
    /// Archive entries the source wrote (issue 15; 0 in reports of older wst versions).
    #[serde(default)]
    pub entries: u64,
    /// Content bytes the source wrote (issue 15; 0 in reports of older wst versions).
    #[serde(default)]
    pub bytes: u64,
    /// The source's listing facts, as bounded by the pipeline and recorded in the sidecar
    /// ([`SourceDescription::listing`](crate::SourceDescription)). Absent when empty.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub listing: std::collections::BTreeMap<String, String>,
    /// The source's schema fingerprint, when its description's `details` carry one as the
    /// string member `schema_fingerprint` (a `PostgreSQL` source: SHA-256 hex of its
    /// canonical schema). Copied into the sidecar so status can tell a schema change without
    /// opening the artifact (issue 17, seeds/004). `None` for other sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_fingerprint: Option<String>,
}

/// The overall outcome of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// Every sink holds the verified artifact; no warnings.
    Success,
    /// Every sink holds the verified artifact, with warnings (e.g. a file changed while read).
    SuccessWithWarnings,
    /// The verified artifact exists on some sinks, but at least one sink failed.
    Degraded,
    /// No verified artifact exists (verification failed).
    Failed,
}

/// What a backup run did. Times are UTC; durations in seconds; sizes in bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// The artifact name.
    pub artifact: ArtifactName,
    /// Run start (UTC).
    pub started: jiff::Timestamp,
    /// Run end (UTC).
    pub finished: jiff::Timestamp,
    /// `finished - started`, seconds.
    pub duration_seconds: f64,
    /// Number of archive entries (the manifest excluded).
    pub entries: u64,
    /// Content bytes read from the sources.
    pub bytes_read: u64,
    /// Bytes of the uncompressed tar stream.
    pub tar_bytes: u64,
    /// Bytes of the encrypted artifact.
    pub ciphertext_bytes: u64,
    /// `tar_bytes / ciphertext_bytes` (higher is better; 0 when nothing was written).
    pub compression_ratio: f64,
    /// SHA-256 of the ciphertext, lowercase hex.
    pub ciphertext_sha256: String,
    /// The cipher suite.
    pub cipher_suite: String,
    /// The keys the artifact is sealed for.
    pub key_fingerprints: Vec<KeyFingerprint>,
    /// One outcome per configured sink.
    pub sinks: Vec<SinkOutcome>,
    /// One outcome per source.
    pub sources: Vec<SourceOutcome>,
    /// The verification of the artifact read back from the first sink that holds it.
    pub verification: Option<VerificationReport>,
    /// Warnings raised during the run.
    pub warnings: Vec<String>,
    /// The overall outcome.
    pub outcome: RunOutcome,
}

impl RunReport {
    /// The sinks that hold the complete artifact.
    pub fn written_sinks(&self) -> impl Iterator<Item = &SinkOutcome> {
        self.sinks.iter().filter(|s| s.written)
    }

    /// Whether the run fully succeeded ([`RunOutcome::Success`] or
    /// [`RunOutcome::SuccessWithWarnings`]).
    pub fn is_success(&self) -> bool {
        matches!(
            self.outcome,
            RunOutcome::Success | RunOutcome::SuccessWithWarnings
        )
    }
}
