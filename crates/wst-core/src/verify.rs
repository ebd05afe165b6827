//! The `Verifier` trait and verification reports (doctrine 026 R5).

use std::fmt;
use std::path::Path;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::artifact::ArtifactName;
use crate::cipher::Cipher;
use crate::error::Result;
use crate::sink::Sink;

/// One named check with its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// A stable name, e.g. `authenticated`, `required_entry:wst/`, `entry_sha256`,
    /// `pg_restore_list`.
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// What was found, for the operator (sizes, counts, the first mismatch).
    pub detail: String,
}

impl Check {
    /// A passed check.
    pub fn pass(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            passed: true,
            detail: detail.into(),
        }
    }

    /// A failed check.
    pub fn fail(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            passed: false,
            detail: detail.into(),
        }
    }
}

/// The result of verifying one artifact on one sink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerificationReport {
    /// The artifact name.
    pub artifact: ArtifactName,
    /// The sink the artifact was read from.
    pub sink: String,
    /// Start (UTC).
    pub started: jiff::Timestamp,
    /// End (UTC).
    pub finished: jiff::Timestamp,
    /// Every check, in the order run.
    pub checks: Vec<Check>,
}

impl VerificationReport {
    /// Whether there is at least one check and every check passed.
    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.passed)
    }

    /// The failed checks.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.passed)
    }
}

/// Checks an artifact and reports named checks.
///
/// A failed check is reported in the [`VerificationReport`], not as an `Err`; `Err` means the
/// verification itself could not run (sink unreachable, artifact missing).
#[async_trait]
pub trait Verifier: Send + Sync + fmt::Debug {
    /// Verifies the artifact `name` stored on `sink`, opening it with `cipher`.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) or [`Error::Sink`](crate::Error::Sink) when the
    /// artifact cannot be read at all.
    async fn verify(
        &self,
        sink: &dyn Sink,
        name: &ArtifactName,
        cipher: &dyn Cipher,
    ) -> Result<VerificationReport>;
}

/// A deep check of one archive entry's content, run during verification's single pass: the
/// verifier spools matching entries to a private temporary file and calls [`EntryCheck::check`]
/// (blocking). wst-pg's `pg_restore --list` check is one.
pub trait EntryCheck: Send + Sync + fmt::Debug {
    /// Whether this check wants the entry at archive path `path`.
    fn applies_to(&self, path: &str) -> bool;

    /// Checks the entry's content, spooled at `file`. Returns one or more named checks.
    fn check(&self, path: &str, file: &Path) -> Vec<Check>;
}
