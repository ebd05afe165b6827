//! Artifact naming (`wst-backup-YYYYMMDD-HHMMSS`, UTC) and the plaintext sidecar.

use std::fmt;

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::cipher::KeyFingerprint;
use crate::error::{Error, Result};

/// The default artifact name prefix (doctrine 026 "Backup Artifact: wst-backup-YYYYMMDD-HHMMSS").
pub const DEFAULT_PREFIX: &str = "wst-backup";

/// The extension of the encrypted artifact object: tar, then zstd, then the wst AEAD format.
pub const ARTIFACT_EXTENSION: &str = ".tar.zst.wst";

/// The extension of the plaintext sidecar object.
pub const SIDECAR_EXTENSION: &str = ".sidecar.json";

/// The name of one artifact: a prefix and a UTC time to the second, written
/// `{prefix}-YYYYMMDD-HHMMSS`. The name alone orders artifacts and gives retention its times.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ArtifactName {
    time: Timestamp,
    prefix: String,
}

impl ArtifactName {
    /// Names an artifact taken at `time` (truncated to whole seconds, UTC).
    ///
    /// # Errors
    /// [`Error::InvalidName`] when `prefix` is empty, longer than 64 bytes, or has characters other
    /// than ASCII letters, digits, `-` and `_`.
    pub fn new(prefix: &str, time: Timestamp) -> Result<Self> {
        validate_prefix(prefix)?;
        let time = Timestamp::from_second(time.as_second()).map_err(|e| Error::InvalidName {
            name: prefix.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            time,
            prefix: prefix.to_owned(),
        })
    }

    /// Parses `{prefix}-YYYYMMDD-HHMMSS`, optionally followed by [`ARTIFACT_EXTENSION`] or
    /// [`SIDECAR_EXTENSION`].
    ///
    /// # Errors
    /// [`Error::InvalidName`] when the text is not such a name.
    pub fn parse(text: &str) -> Result<Self> {
        let stem = text
            .strip_suffix(ARTIFACT_EXTENSION)
            .or_else(|| text.strip_suffix(SIDECAR_EXTENSION))
            .unwrap_or(text);
        let invalid = |reason: &str| Error::InvalidName {
            name: text.to_owned(),
            reason: reason.to_owned(),
        };
        if stem.len() < 17 || !stem.is_char_boundary(stem.len() - 15) {
            return Err(invalid("expected `PREFIX-YYYYMMDD-HHMMSS`"));
        }
        let (head, stamp) = stem.split_at(stem.len() - 15);
        let prefix = head
            .strip_suffix('-')
            .ok_or_else(|| invalid("expected `-` before the date"))?;
        let b = stamp.as_bytes();
        if b[8] != b'-'
            || !b
                .iter()
                .enumerate()
                .all(|(i, c)| i == 8 || c.is_ascii_digit())
        {
            return Err(invalid("expected the date as `YYYYMMDD-HHMMSS`"));
        }
        let dt = DateTime::strptime("%Y%m%d-%H%M%S", stamp)
            .map_err(|_| invalid("the date `YYYYMMDD-HHMMSS` is not a valid UTC time"))?;
        let time = dt
            .to_zoned(TimeZone::UTC)
            .map_err(|_| invalid("the date is out of range"))?
            .timestamp();
        Self::new(prefix, time).map_err(|_| invalid("invalid prefix"))
    }

    /// The UTC time to the second.
    pub fn time(&self) -> Timestamp {
        self.time
    }

    /// The prefix, e.g. `wst-backup`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The artifact object's name: `{name}.tar.zst.wst`.
    pub fn artifact_object(&self) -> String {
        format!("{self}{ARTIFACT_EXTENSION}")
    }

    /// The sidecar object's name: `{name}.sidecar.json`.
    pub fn sidecar_object(&self) -> String {
        format!("{self}{SIDECAR_EXTENSION}")
    }
}

impl fmt::Display for ArtifactName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stamp = self.time.to_zoned(TimeZone::UTC).strftime("%Y%m%d-%H%M%S");
        write!(f, "{}-{stamp}", self.prefix)
    }
}

impl fmt::Debug for ArtifactName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ArtifactName({self})")
    }
}

impl Serialize for ArtifactName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ArtifactName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

pub(crate) fn validate_prefix(prefix: &str) -> Result<()> {
    if prefix.is_empty()
        || prefix.len() > 64
        || !prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(Error::InvalidName {
            name: prefix.to_owned(),
            reason: "a prefix is 1 to 64 ASCII letters, digits, `-` or `_`".to_owned(),
        });
    }
    Ok(())
}

/// The sidecar format identifier.
pub const SIDECAR_FORMAT: &str = "wst-sidecar/1";

/// Non-sensitive facts stored in plaintext beside each artifact, so that integrity and the 3-2-1
/// copies can be checked without the key. Written after the artifact completed; an artifact
/// without a sidecar is incomplete (a crashed run) and never counts for retention.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sidecar {
    /// Always [`SIDECAR_FORMAT`].
    pub format: String,
    /// The artifact name.
    pub name: ArtifactName,
    /// The artifact object name (`{name}.tar.zst.wst`).
    pub object: String,
    /// When the run started (UTC).
    pub created: Timestamp,
    /// When the artifact was completely written (UTC).
    pub completed: Timestamp,
    /// The cipher suite, e.g. `wst-aead-v1/aes-256-gcm-stream`.
    pub cipher_suite: String,
    /// Fingerprints of the keys the artifact is sealed for, in slot order.
    pub key_fingerprints: Vec<KeyFingerprint>,
    /// Ciphertext size in bytes.
    pub ciphertext_size: u64,
    /// SHA-256 of the ciphertext, lowercase hex.
    pub ciphertext_sha256: String,
    /// The wst version that wrote it.
    pub tool_version: String,
    /// Each source's entry and byte counts in this artifact, in archive order (issue 15: the
    /// previous artifact's counts, read from its authenticated sidecar, let a file tree's
    /// `max_shrink` guard notice a tree that shrank). Absent (empty) in sidecars written
    /// before wst recorded them; readers ignore it then. Only configuration names and counts:
    /// no entry name, no content (`docs/EVIDENCE.md` §2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<SourceCounts>,
    /// The verification outcome, when the artifact was verified before the sidecar was written.
    #[serde(default)]
    pub verification: Option<SidecarVerification>,
    /// The audit chain's head when the run started (its `backup_started` record), so a log cut
    /// short or rewritten after this artifact was written is detected against it (issue 14;
    /// `docs/EVIDENCE.md`, "Audit anchors"). Covered by the MAC. `None` when the run had no
    /// audit log (a bare [`BackupJob`](crate::BackupJob)) or was written by an older wst.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_head: Option<crate::audit::AuditHead>,
    /// The sidecar's MAC, `"hmac-sha256 <key fingerprint> <64 hex>"`, always the last member
    /// as stored: written by [`seal_sidecar`](crate::seal_sidecar), checked by
    /// [`open_sidecar`](crate::open_sidecar) over the stored bytes (`docs/FORMAT.md`, "Sidecar
    /// MAC"). `None` for an unsealed sidecar, whose verification claim does not count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// One source's counts in an artifact, as recorded in its sidecar ([`Sidecar::sources`]) and
/// compared by a file tree's `max_shrink` guard (issue 15).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceCounts {
    /// The source's name (for a file tree, its archive root, e.g. `wst`).
    pub name: String,
    /// The source's kind (`files`, `postgresql`, `object_store`, …).
    pub kind: String,
    /// Archive entries the source wrote (for a file tree: its root directory, every
    /// directory, file and link under it).
    pub entries: u64,
    /// Content bytes the source wrote (the sum of its files' sizes).
    pub bytes: u64,
    /// The source's listing facts ([`SourceDescription::listing`](crate::SourceDescription)),
    /// e.g. a `PostgreSQL` base backup's timeline and WAL range (issue 16). Absent when empty.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub listing: std::collections::BTreeMap<String, String>,
    /// The source's schema fingerprint (a `PostgreSQL` source: SHA-256 hex of its canonical
    /// schema, as in the manifest's facts), so status can tell a schema change since the last
    /// passing drill without opening the artifact (issue 17, seeds/004). Absent for other
    /// sources and in sidecars of older wst versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_fingerprint: Option<String>,
}

impl Sidecar {
    /// The counts of the source named `name`, when the sidecar records them.
    pub fn source(&self, name: &str) -> Option<&SourceCounts> {
        self.sources.iter().find(|s| s.name == name)
    }
}

/// The verification summary recorded in a sidecar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SidecarVerification {
    /// When the verification finished (UTC).
    pub at: Timestamp,
    /// Whether every check passed.
    pub passed: bool,
    /// Number of checks that passed.
    pub checks_passed: u32,
    /// Number of checks that failed.
    pub checks_failed: u32,
}

impl Sidecar {
    /// Whether the artifact was verified and every check passed (doctrine R5); only such
    /// artifacts count for retention and justify deleting older ones.
    pub fn is_verified(&self) -> bool {
        self.verification.as_ref().is_some_and(|v| v.passed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_round_trips_and_orders() {
        let t: Timestamp = "2026-11-21T05:38:04.9Z".parse().unwrap();
        let n = ArtifactName::new(DEFAULT_PREFIX, t).unwrap();
        assert_eq!(n.to_string(), "wst-backup-20261121-053804");
        assert_eq!(
            n.artifact_object(),
            "wst-backup-20261121-053804.tar.zst.wst"
        );
        assert_eq!(ArtifactName::parse(&n.artifact_object()).unwrap(), n);
        assert_eq!(ArtifactName::parse(&n.sidecar_object()).unwrap(), n);
        let later = ArtifactName::new(
            DEFAULT_PREFIX,
            t.checked_add(jiff::SignedDuration::from_secs(1)).unwrap(),
        )
        .unwrap();
        assert!(later > n);
    }

    #[test]
    fn rejects_malformed_names() {
        for bad in [
            "",
            "wst-backup-2026112-053804",
            "wst-backup-20261321-053804",
            "wst-backup20261121-053804",
            "-20261121-053804",
            "wst/backup-20261121-053804",
            "wst-backup-20261121_053804",
        ] {
            assert!(
                matches!(ArtifactName::parse(bad), Err(Error::InvalidName { .. })),
                "{bad}"
            );
        }
    }
}

#[cfg(test)]
mod sidecar_tests {
    use super::*;

    #[test]
    fn sidecar_round_trips_through_json() {
        let t: Timestamp = "2026-11-21T05:38:04Z".parse().unwrap();
        let name = ArtifactName::new(DEFAULT_PREFIX, t).unwrap();
        let s = Sidecar {
            audit_head: None,
            format: SIDECAR_FORMAT.into(),
            object: name.artifact_object(),
            name,
            created: t,
            completed: t,
            cipher_suite: "wst-aead-v1/aes-256-gcm-stream".into(),
            key_fingerprints: vec![KeyFingerprint([7; 16])],
            ciphertext_size: 42,
            ciphertext_sha256: "ab".repeat(32),
            tool_version: "0.1.0".into(),
            sources: vec![SourceCounts {
                name: "wst".into(),
                kind: "files".into(),
                entries: 12,
                bytes: 4096,
                listing: [("timeline".to_owned(), "1".to_owned())].into(),
                schema_fingerprint: None,
            }],
            mac: None,
            verification: Some(SidecarVerification {
                at: t,
                passed: true,
                checks_passed: 3,
                checks_failed: 0,
            }),
        };
        let json = serde_json::to_vec_pretty(&s).unwrap();
        let back: Sidecar = serde_json::from_slice(&json).unwrap();
        assert_eq!(back, s);
        assert!(back.is_verified());
        assert_eq!(back.source("wst").map(|c| c.entries), Some(12));
        // A sidecar written before the counts existed still parses (the member is additive).
        let mut old: serde_json::Value = serde_json::from_slice(&json).unwrap();
        old.as_object_mut().unwrap().remove("sources");
        let back: Sidecar = serde_json::from_value(old).unwrap();
        assert!(back.sources.is_empty() && back.source("wst").is_none());
    }
}
