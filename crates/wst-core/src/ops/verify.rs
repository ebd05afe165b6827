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

/// The standard artifact verifier (doctrine 026 R5, design "Verifier").
///
/// One pass over the artifact read back from a sink, with these named checks:
/// - `artifact_present`: the object exists (and, when expected, has the expected size);
/// - `ciphertext_sha256`: the bytes read hash to the sidecar's (or the run's) SHA-256;
/// - `authenticated`: the cipher authenticated every chunk and the end of the stream;
/// - `archive_well_formed`: zstd and tar parse, the manifest is present and last;
/// - `manifest_entries`: every entry's kind, size and SHA-256 match the manifest, none missing
///   or extra;
/// - `required_entry:<path>`: each configured required entry exists — a path ending in `/` is a
///   tree root that must be present; any other path is a file that must be larger than 0 bytes
///   (doctrine R5 "DB backup file exists and > 0 KB");
/// - `audit_anchor` (with [`ArtifactVerifier::audit_log`], when the manifest records one): the
///   audit log still holds the record the run started at, so the log was not cut short or
///   rewritten since (issue 14);
/// - the checks of each configured [`EntryCheck`] (e.g. `pg_restore --list`).
#[derive(Debug, Clone, Default)]
pub struct ArtifactVerifier {
    required: Vec<String>,
    entry_checks: Vec<std::sync::Arc<dyn EntryCheck>>,
    limits: crate::reader::ReadLimits,
    clock: crate::clock::Clock,
    audit: Option<crate::audit::AuditLog>,
}

impl ArtifactVerifier {
    /// A verifier with no required entries and no deep checks.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requires an entry: `wst/` (a tree root) or `wst_dev_database.backup` (a non-empty file).
    #[must_use]
    pub fn require(mut self, path: impl Into<String>) -> Self {
        self.required.push(path.into());
        self
    }

    /// Adds a deep check of matching entries.
    #[must_use]
    pub fn entry_check(mut self, check: std::sync::Arc<dyn EntryCheck>) -> Self {
        self.entry_checks.push(check);
        self
    }

    /// Sets the read limits.
    #[must_use]
    pub fn limits(mut self, limits: crate::reader::ReadLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Stamps reports (`started`, `finished`) with `clock` instead of the system clock.
    #[must_use]
    pub fn clock(mut self, clock: crate::clock::Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Checks each artifact's audit anchor (the manifest's [`AuditHead`](crate::AuditHead))
    /// against `log`: a log that no longer holds that record fails the `audit_anchor` check.
    /// An empty or missing log passes with a note (a new host restoring after a disaster has
    /// no log yet; the repository's status still compares the sinks' anchors). A
    /// [`Repository`](crate::Repository) sets its own log.
    #[must_use]
    pub fn audit_log(mut self, log: crate::audit::AuditLog) -> Self {
        self.audit = Some(log);
        self
    }

    /// The required entries.
    pub fn required(&self) -> &[String] {
        &self.required
    }

    /// Verifies, comparing the ciphertext with `expected` `(size, sha256 hex)` when given;
    /// otherwise with the artifact's sidecar when the sink has one.
    pub(crate) async fn verify_expecting(
        &self,
        sink: &dyn Sink,
        name: &ArtifactName,
        cipher: &dyn Cipher,
        expected: Option<(u64, String)>,
    ) -> Result<VerificationReport> {
        use crate::sink::SinkExt;
        let started = self.clock.now();
        let mut checks = Vec::new();
        let expected = match expected {
            Some(e) => Some(e),
            None => match sink.get_bytes(&name.sidecar_object(), 1 << 20).await {
                Ok(b) => serde_json::from_slice::<crate::artifact::Sidecar>(&b)
                    .ok()
                    .map(|s| (s.ciphertext_size, s.ciphertext_sha256)),
                Err(_) => None,
            },
        };
        let meta = match sink.head(&name.artifact_object()).await {
            Ok(m) => m,
            Err(crate::Error::NotFound { .. }) => {
                checks.push(Check::fail(
                    "artifact_present",
                    "the artifact object does not exist",
                ));
                return Ok(VerificationReport {
                    artifact: name.clone(),
                    sink: sink.info().name.clone(),
                    started,
                    finished: self.clock.now(),
                    checks,
                });
            }
            Err(e) => return Err(e),
        };
        match &expected {
            Some((size, _)) if *size != meta.size => checks.push(Check::fail(
                "artifact_present",
                format!("{} bytes stored, {size} expected", meta.size),
            )),
            _ => checks.push(Check::pass(
                "artifact_present",
                format!("{} bytes", meta.size),
            )),
        }
        let visitor = CheckVisitor {
            checks: self.entry_checks.clone(),
            results: Vec::new(),
        };
        let out = crate::reader::read_artifact(sink, name, cipher, visitor, self.limits).await?;
        if let Some(p) = &out.ciphertext {
            let got = hex::encode(p.sha256);
            match &expected {
                Some((_, sha)) if *sha == got => {
                    checks.push(Check::pass("ciphertext_sha256", got));
                }
                Some((_, sha)) => checks.push(Check::fail(
                    "ciphertext_sha256",
                    format!("read {got}, expected {sha}"),
                )),
                None => checks.push(Check::pass(
                    "ciphertext_sha256",
                    format!("{got} (no sidecar to compare with)"),
                )),
            }
        }
        match &out.error {
            None => checks.push(Check::pass(
                "authenticated",
                match out.opened_with {
                    Some(fp) => {
                        format!("every chunk and the end of stream authenticated with key {fp}")
                    }
                    None => "every chunk and the end of stream authenticated".into(),
                },
            )),
            Some(crate::reader::ReadFailure::Cipher(e)) => {
                checks.push(Check::fail("authenticated", e.to_string()));
            }
            Some(crate::reader::ReadFailure::Sink(e)) => {
                checks.push(Check::fail(
                    "authenticated",
                    format!("the sink failed mid-read: {e}"),
                ));
            }
            Some(other) => {
                // The cipher did not complain before the failure, but the stream did not end.
                checks.push(Check::fail(
                    "authenticated",
                    format!("not reached the end of the stream: {other}"),
                ));
            }
        }
        let manifest = out.manifest.as_ref();
        // Bind content to name (design invariant 9): the manifest must name the artifact asked
        // for, or this object is another artifact (substituted or rolled back).
        if let Some(m) = manifest {
            if m.artifact == name.to_string() {
                checks.push(Check::pass(
                    "artifact_identity",
                    format!("the manifest names `{name}`"),
                ));
            } else {
                checks.push(Check::fail(
                    "artifact_identity",
                    format!(
                        "the manifest names `{}`, not `{name}`: this object is another artifact \
                         (substituted or rolled back)",
                        crate::error::quote_name(m.artifact.as_bytes())
                    ),
                ));
            }
        }
        if let (Some(log), Some(head)) = (&self.audit, manifest.and_then(|m| m.audit_head.as_ref()))
        {
            checks.push(anchor_check(log, head));
        }
        match (&out.error, manifest) {
            (None, Some(m)) => checks.push(Check::pass(
                "archive_well_formed",
                format!("{} entries and the manifest", m.entries.len()),
            )),
            (None, None) => checks.push(Check::fail("archive_well_formed", "no manifest entry")),
            (Some(crate::reader::ReadFailure::Malformed(d)), _) => {
                checks.push(Check::fail("archive_well_formed", d.clone()));
            }
            (Some(crate::reader::ReadFailure::Visitor(e)), _) => {
                checks.push(Check::fail("archive_well_formed", e.to_string()));
            }
            (Some(_), _) => {}
        }
        if let Some(m) = manifest {
            checks.push(compare_manifest(m, &out.entries));
        }
        // Required entries are judged only on an artifact read to its end: a wrong key, a
        // tampered or truncated artifact yields no (or some) entries, and calling the rest
        // "missing" would blame the backup (doctrine F3) for what is a read failure (issue 15).
        for req in &self.required {
            checks.push(if out.error.is_none() {
                required_check(req, &out.entries)
            } else {
                Check::fail(
                    format!("required_entry:{req}"),
                    "not checked: the artifact could not be read to its end (see the \
                     `authenticated` and `archive_well_formed` checks)",
                )
            });
        }
        checks.extend(out.visitor.results);
        Ok(VerificationReport {
            artifact: name.clone(),
            sink: sink.info().name.clone(),
            started,
            finished: self.clock.now(),
            checks,
        })
    }
}

/// The `audit_anchor` check: `log` must hold the record `head`.
fn anchor_check(log: &crate::audit::AuditLog, head: &crate::audit::AuditHead) -> Check {
    match log.head() {
        Ok(None) => {
            return Check::pass(
                "audit_anchor",
                format!(
                    "the run started at audit record {head}; there is no audit log here to check it against (a new host?)"
                ),
            );
        }
        Err(e) => return Check::fail("audit_anchor", e.to_string()),
        Ok(Some(_)) => {}
    }
    match log.check_anchor(head, "the artifact's manifest") {
        Ok(None) => Check::pass(
            "audit_anchor",
            format!("the audit log holds record {head}, where the run started"),
        ),
        Ok(Some(problem)) => Check::fail("audit_anchor", problem),
        Err(e) => Check::fail("audit_anchor", e.to_string()),
    }
}

#[async_trait]
impl Verifier for ArtifactVerifier {
    async fn verify(
        &self,
        sink: &dyn Sink,
        name: &ArtifactName,
        cipher: &dyn Cipher,
    ) -> Result<VerificationReport> {
        self.verify_expecting(sink, name, cipher, None).await
    }
}

pub(crate) fn compare_manifest(
    manifest: &crate::manifest::Manifest,
    read: &[(crate::reader::ReadEntry, [u8; 32])],
) -> Check {
    let mut problems = Vec::new();
    if manifest.entries.len() != read.len() {
        problems.push(format!(
            "{} entries read, {} in the manifest",
            read.len(),
            manifest.entries.len()
        ));
    }
    for (m, (r, sha)) in manifest.entries.iter().zip(read) {
        let q = |p: &str| crate::error::quote_name(p.as_bytes());
        if m.path != r.path {
            problems.push(format!(
                "entry `{}` read where the manifest has `{}`",
                q(&r.path),
                q(&m.path)
            ));
        } else if m.kind != r.kind {
            problems.push(format!("`{}`: kind differs from the manifest", q(&r.path)));
        } else if m.size != r.size {
            problems.push(format!(
                "`{}`: {} bytes, manifest says {}",
                q(&r.path),
                r.size,
                m.size
            ));
        } else if m.sha256 != hex::encode(sha) {
            problems.push(format!(
                "`{}`: SHA-256 differs from the manifest",
                q(&r.path)
            ));
        }
        if problems.len() >= 5 {
            break;
        }
    }
    if problems.is_empty() {
        Check::pass(
            "manifest_entries",
            format!(
                "{} entries match the manifest (size and SHA-256)",
                read.len()
            ),
        )
    } else {
        Check::fail("manifest_entries", problems.join("; "))
    }
}

fn required_check(req: &str, read: &[(crate::reader::ReadEntry, [u8; 32])]) -> Check {
    let name = format!("required_entry:{req}");
    if let Some(root) = req.strip_suffix('/') {
        let prefix = format!("{root}/");
        let n = read
            .iter()
            .filter(|(e, _)| e.path == root || e.path.starts_with(&prefix))
            .count();
        if n > 0 {
            Check::pass(name, format!("{n} entries under `{req}`"))
        } else {
            Check::fail(
                name,
                format!("no entry under `{req}` (doctrine R2 requires it)"),
            )
        }
    } else {
        match read.iter().find(|(e, _)| e.path == req) {
            Some((e, _)) if e.size > 0 => Check::pass(name, format!("{} bytes", e.size)),
            Some(_) => Check::fail(
                name,
                "present but empty (0 bytes; doctrine R5 requires > 0)",
            ),
            // The artifact was read to its end and the entry is not in it: the backup really
            // lacks it (for the database dump, doctrine F3: a backup without the database).
            None => Check::fail(
                name,
                "missing from the artifact, which was read completely (doctrine R5; for the \
                 database dump, doctrine F3: a backup without the database)",
            ),
        }
    }
}

/// Spools entries that an [`EntryCheck`] wants and runs it.
struct CheckVisitor {
    checks: Vec<std::sync::Arc<dyn EntryCheck>>,
    results: Vec<Check>,
}

impl crate::reader::Visitor for CheckVisitor {
    fn entry(
        &mut self,
        entry: &crate::reader::ReadEntry,
        content: &mut dyn std::io::Read,
    ) -> Result<()> {
        let wanted: Vec<_> = self
            .checks
            .iter()
            .filter(|c| entry.kind == crate::source::EntryKind::File && c.applies_to(&entry.path))
            .cloned()
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let mut tmp = tempfile::NamedTempFile::new()
            .map_err(|e| crate::Error::io("creating a temporary file for an entry check", e))?;
        crate::reader::copy_blocks(content, tmp.as_file_mut()).map_err(|e| {
            crate::Error::io(
                format!(
                    "spooling `{}`",
                    crate::error::quote_name(entry.path.as_bytes())
                ),
                e,
            )
        })?;
        for c in wanted {
            self.results.extend(c.check(&entry.path, tmp.path()));
        }
        Ok(())
    }
}
