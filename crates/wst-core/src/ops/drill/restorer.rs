//! Entry restorers: how a drill restores one entry (a database dump) into a scratch system
//! and proves it against the manifest.

use std::path::Path;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::ScratchAccess;
use crate::error::Result;
use crate::source::SourceDescription;
use crate::verify::Check;

/// Restores one restored entry into a scratch system and proves it against its source's
/// manifest description — e.g. wst-pg restores `wst_dev_database.backup` into a scratch
/// database and compares row counts and the schema fingerprint.
///
/// The drill calls, per restored entry: [`EntryRestorer::restore_and_prove`](crate::EntryRestorer::restore_and_prove), then (only when
/// post-restore checks are configured) [`EntryRestorer::scratch_access`](crate::EntryRestorer::scratch_access), then runs the
/// checks, then [`EntryRestorer::cleanup`](crate::EntryRestorer::cleanup) — so a scratch system is never removed before the
/// checks that need it ran.
#[async_trait]
pub trait EntryRestorer: Send + Sync + std::fmt::Debug {
    /// The source kind this restorer handles (the manifest's `SourceDescription::kind`, e.g.
    /// `"postgresql"`).
    fn source_kind(&self) -> &str;

    /// Restores `file` (the entry as restored on disk) and proves it against `description`.
    /// A failed proof is reported in the returned checks; `Err` means the restore could not run.
    /// The scratch system must stay in place until [`EntryRestorer::cleanup`](crate::EntryRestorer::cleanup).
    ///
    /// The drill sets the returned report's [`ProofReport::kind`](crate::ProofReport::kind) and [`ProofReport::source`](crate::ProofReport::source)
    /// from `description`.
    ///
    /// # Errors
    /// The implementation's error, wrapped as [`Error::Source`](crate::Error::Source).
    async fn restore_and_prove(
        &self,
        file: &Path,
        description: &SourceDescription,
    ) -> Result<ProofReport>;

    /// How post-restore checks reach the scratch system of `proof`: environment variables for
    /// a child program (never a secret in a value), private files kept alive while the checks
    /// run (e.g. a libpq passfile), a redactor for the children's output, and a typed handle
    /// for checks from the restorer's own crate. The default offers nothing (`Ok(None)`).
    ///
    /// # Errors
    /// The implementation's error (e.g. the password key file is unreadable); the drill
    /// records it as a failed `scratch_access:<source>` check.
    async fn scratch_access(&self, proof: &ProofReport) -> Result<Option<ScratchAccess>> {
        let _ = proof;
        Ok(None)
    }

    /// Re-applies the SQL statements of the erasure register's `entries` to the scratch
    /// system of `proof` (issue 18), after the proof and before the post-restore checks: each
    /// entry's statements with the subject id bound as `$1`, all of an entry or nothing.
    /// Returns one [`ReErasure`](crate::ReErasure) per entry with statements (rows per
    /// statement, or the entry's error). The default can apply no SQL: it returns an error
    /// when an entry has statements, and nothing otherwise.
    ///
    /// # Errors
    /// The implementation's error when the scratch system cannot be reached; the drill
    /// records it as a failed `erasure:db:<source>` check.
    async fn erase(
        &self,
        proof: &ProofReport,
        entries: &[crate::erasure::ErasureEntry],
    ) -> Result<Vec<crate::erasure::ReErasure>> {
        if entries.iter().any(|e| !e.sql.is_empty()) {
            return Err(crate::error::Error::Config(format!(
                "the restorer of `{}` cannot apply the erasure register's SQL statements",
                proof.source
            )));
        }
        Ok(Vec::new())
    }

    /// Removes the scratch system of `proof` when the restorer is configured to (e.g. wst-pg's
    /// `drop_after`), after every post-restore check ran. Returns checks recording what was
    /// done (they join the report's checks). The default does nothing.
    ///
    /// # Errors
    /// The implementation's error; the drill records it as a failed `cleanup:<source>` check.
    async fn cleanup(&self, proof: &ProofReport) -> Result<Vec<Check>> {
        let _ = proof;
        Ok(Vec::new())
    }
}

/// What an [`EntryRestorer`](crate::EntryRestorer) restored and proved.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProofReport {
    /// The source kind (the manifest's `SourceDescription::kind`, e.g. `postgresql`); set by
    /// the drill.
    #[serde(default)]
    pub kind: String,
    /// The source's name in the manifest (e.g. `wst_dev`); set by the drill.
    #[serde(default)]
    pub source: String,
    /// Where it restored to, for people, e.g. `wst_restore_… on wst@db:5432` (no credentials).
    pub target: String,
    /// The scratch system's own name, e.g. the scratch database's name, for post-restore
    /// checks and [`EntryRestorer::cleanup`](crate::EntryRestorer::cleanup); `None` when there is none.
    #[serde(default)]
    pub scratch_name: Option<String>,
    /// Whether this restore created the scratch system (only then may cleanup remove it).
    #[serde(default)]
    pub scratch_created: bool,
    /// Every check (row counts per table, schema fingerprint, large objects …).
    pub checks: Vec<Check>,
    /// Whether the restored schema equals the manifest's, when checked.
    pub schema_matches: Option<bool>,
    /// Rows expected (manifest) and found (restored), when counted.
    pub rows: Option<(u64, u64)>,
    /// The newest data timestamp found in the restored data, when a column is configured
    /// (for the data RPO).
    pub newest_data: Option<jiff::Timestamp>,
}
