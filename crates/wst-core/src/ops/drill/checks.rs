//! Post-restore checks and what they can reach: the restored entries and the scratch
//! systems' access.

use std::any::Any;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;

use super::ProofReport;
use crate::verify::Check;

/// Removes secrets from a text.
type Redactor = dyn Fn(&str) -> String + Send + Sync;

/// Access to a restored scratch system for post-restore checks, given by
/// [`EntryRestorer::scratch_access`](crate::EntryRestorer::scratch_access) so that wst-core stays agnostic of what was restored.
///
/// - [`ScratchAccess::env`](crate::ScratchAccess::env): variables a child program (a [`SmokeTest`](crate::SmokeTest)) gets, e.g. `PGHOST`,
///   `PGDATABASE`, `PGPASSFILE`; by contract never a secret in a value (design invariant 7).
/// - kept-alive guards: private files (a passfile) deleted when the access is dropped, which
///   the drill does after the checks and before [`EntryRestorer::cleanup`](crate::EntryRestorer::cleanup).
/// - a redactor applied to every child output recorded in the report.
/// - a typed handle ([`ScratchAccess::handle`](crate::ScratchAccess::handle)) that checks from the restorer's own crate
///   downcast to reach the scratch system natively (wst-pg's SQL assertions).
#[derive(Default)]
pub struct ScratchAccess {
    env: Vec<(String, String)>,
    keep_alive: Vec<Box<dyn Any + Send + Sync>>,
    redactor: Option<Arc<Redactor>>,
    handle: Option<Arc<dyn Any + Send + Sync>>,
}

impl ScratchAccess {
    /// An access offering nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) an environment variable for child programs. Never pass a secret:
    /// the values may be logged; hand secrets over in a private file kept alive with
    /// [`ScratchAccess::keep_alive`](crate::ScratchAccess::keep_alive).
    #[must_use]
    pub fn with_env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        self.env.retain(|(n, _)| *n != name);
        self.env.push((name, value.into()));
        self
    }

    /// Keeps `guard` (e.g. a temporary passfile that deletes itself on drop) alive for as long
    /// as this access.
    #[must_use]
    pub fn keep_alive(mut self, guard: impl Any + Send + Sync) -> Self {
        self.keep_alive.push(Box::new(guard));
        self
    }

    /// Sets the function that removes secrets from child output before it is recorded.
    #[must_use]
    pub fn with_redactor(
        mut self,
        redact: impl Fn(&str) -> String + Send + Sync + 'static,
    ) -> Self {
        self.redactor = Some(Arc::new(redact));
        self
    }

    /// Attaches a typed handle for checks that know the restorer's type (see
    /// [`ScratchAccess::handle`](crate::ScratchAccess::handle)).
    #[must_use]
    pub fn with_handle<T: Any + Send + Sync>(mut self, handle: T) -> Self {
        self.handle = Some(Arc::new(handle));
        self
    }

    /// The environment variables for child programs, in insertion order.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// `text` with secrets removed by the redactor (unchanged without one).
    pub fn redact(&self, text: &str) -> String {
        match &self.redactor {
            Some(r) => r(text),
            None => text.to_owned(),
        }
    }

    /// The handle, when one of type `T` was attached.
    pub fn handle<T: Any>(&self) -> Option<&T> {
        self.handle.as_deref().and_then(|h| h.downcast_ref::<T>())
    }
}

impl std::fmt::Debug for ScratchAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScratchAccess")
            .field("env", &self.env)
            .field("keep_alive", &self.keep_alive.len())
            .field("redactor", &self.redactor.is_some())
            .field("handle", &self.handle.is_some())
            .finish()
    }
}

/// One restored entry as post-restore checks see it: its proof and, when its restorer offers
/// one, its [`ScratchAccess`](crate::ScratchAccess).
#[derive(Debug)]
#[non_exhaustive]
pub struct RestoredEntry {
    /// The restorer's report (kind, source, scratch name, proof checks).
    pub proof: ProofReport,
    /// How to reach its scratch system, if the restorer offers it.
    pub access: Option<ScratchAccess>,
}

impl RestoredEntry {
    /// An entry from its parts (the drill builds these; tests of checks may too).
    pub fn new(proof: ProofReport, access: Option<ScratchAccess>) -> Self {
        Self { proof, access }
    }
}

/// What a [`PostRestoreCheck`](crate::PostRestoreCheck) is given: the restored file tree and every restored entry.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct CheckContext<'a> {
    /// The drill's restore target: the isolated directory the artifact's files were restored
    /// into (`<scratch_dir>/restore-test-YYYYMMDD-HHMMSS`).
    pub restore_target: &'a Path,
    /// The artifact drilled.
    pub artifact: &'a str,
    /// The entries restored into scratch systems by [`EntryRestorer`](crate::EntryRestorer)s, in manifest order.
    pub entries: &'a [RestoredEntry],
}

impl<'a> CheckContext<'a> {
    /// A context from its parts.
    pub fn new(restore_target: &'a Path, artifact: &'a str, entries: &'a [RestoredEntry]) -> Self {
        Self {
            restore_target,
            artifact,
            entries,
        }
    }

    /// The restored entries of source kind `kind` (e.g. `postgresql`).
    pub fn entries_of_kind<'b>(
        &'b self,
        kind: &'b str,
    ) -> impl Iterator<Item = &'a RestoredEntry> + 'b {
        self.entries.iter().filter(move |e| e.proof.kind == kind)
    }
}

/// A check run by the drill after the files were restored and every [`EntryRestorer`](crate::EntryRestorer) proved
/// its entry, and before any cleanup (seeds/002 `RESTORE_TESTING` step 4: "application
/// connects and functions? (basic smoke test)"; issue 9: SQL assertions, database ↔ object
/// cross-checks).
///
/// Implementations: [`SmokeTest`](crate::SmokeTest) here; `SqlAssertion` and `ObjectKeyCrossCheck` in wst-pg.
#[async_trait]
pub trait PostRestoreCheck: Send + Sync + std::fmt::Debug {
    /// The check's configured name (for the report when it returns nothing or panics).
    fn name(&self) -> &str;

    /// Whether this check proves that the application connects and functions: its outcome
    /// fills the report's `application connected` line (seeds/002). Default `false`.
    fn proves_application(&self) -> bool {
        false
    }

    /// Runs the check. A check that cannot run (connection refused, SQL error, program
    /// missing) returns a failed [`Check`] with the reason — never nothing, never a skip; the
    /// drill records an empty result or a panic as a failure.
    async fn run(&self, context: &CheckContext<'_>) -> Vec<Check>;
}
