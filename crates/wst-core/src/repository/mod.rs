//! The repository: the one owner of a backup job's artifacts on every sink.
//!
//! A [`Repository`] is opened with the job's sinks, cipher (whose keys also derive the
//! evidence keys), artifact prefix, audit log and clock. The operations that judge or change
//! artifacts go through it, and it audits each one itself: what it says about a copy comes from
//! one [`Catalog`] rule, and a verification claim counts only when its sidecar authenticates
//! under the repository key (design invariant 8).
//!
//! Operations here: [`Repository::init`] and [`Repository::check_sinks`] (sink identity),
//! [`Repository::lock`] (one writer), [`Repository::job`] and [`Repository::backup`] (a run on
//! the identified sinks, audited; its sidecars are sealed), [`Repository::catalog`],
//! [`Repository::verify`] (records the result on the copy it read, so a failure demotes that
//! copy everywhere), [`Repository::restore`] (falls back to the next good copy),
//! [`Repository::prune`] (delete only on proof), [`Repository::status`] and
//! [`Repository::check_audit`] (the keyed audit chain against its anchors on the sinks). Still
//! outside it:
//! drill, replicate and `ls` (they read the sinks themselves).

pub(crate) mod anchor;
pub(crate) mod audit;
pub(crate) mod catalog;
pub(crate) mod erasure;
pub(crate) mod evidence;
pub(crate) mod lock;
pub(crate) mod marker;
pub(crate) mod unavailable;

mod audit_retention;
mod ceiling;
mod copies;
pub(crate) mod drill_due;
mod maintain;
mod status;

use std::sync::Arc;

use bytes::Bytes;
use jiff::Timestamp;

use crate::anchor::{AuditCheck, read_head, write_head};
use crate::artifact::{ArtifactName, DEFAULT_PREFIX, validate_prefix};
use crate::audit::{AuditEvent, AuditHead, AuditLog};
use crate::catalog::{Catalog, Trust};
use crate::cipher::Cipher;
use crate::clock::Clock;
use crate::compliance::{ComplianceOptions, ComplianceReport, RuleStatus, compliance_with};
use crate::error::{Error, Result};
use crate::evidence::{EvidenceKey, SIDECAR_MAX_BYTES, open_sidecar, seal_sidecar};
use crate::lock::RepositoryLock;
use crate::marker::{
    MARKER_OBJECT, RepositoryMarker, SinkIdentity, new_repository_id, read_marker, write_marker,
};
use crate::pipeline::{BackupJob, BackupJobBuilder};
use crate::prune::{PruneOptions, PruneReport, run_audited};
use crate::report::RunReport;
use crate::restore::{RestoreOptions, RestoreReport};
use crate::retention::RetentionPolicy;
use crate::sink::{Sink, SinkExt};
use crate::unavailable::UnavailableSink;
use crate::verify::{ArtifactVerifier, Check, VerificationReport};

/// One backup job's artifacts on its sinks: the catalog, authenticated evidence, audited
/// operations. Build it with [`Repository::builder`].
#[derive(Debug, Clone)]
pub struct Repository {
    sinks: Vec<Arc<dyn Sink>>,
    cipher: Arc<dyn Cipher>,
    keys: Vec<EvidenceKey>,
    prefix: String,
    audit: AuditLog,
    clock: Clock,
    verifier: ArtifactVerifier,
}

/// Builds a [`Repository`].
#[derive(Debug)]
pub struct RepositoryBuilder {
    repo: Repository,
}

impl Repository {
    /// A repository whose artifacts are sealed and opened with `cipher` and whose operations
    /// are recorded in `audit`. Defaults: prefix [`DEFAULT_PREFIX`], the audit log's clock, a
    /// verifier with no required entries.
    pub fn builder(cipher: Arc<dyn Cipher>, audit: AuditLog) -> RepositoryBuilder {
        let clock = audit.clock().clone();
        RepositoryBuilder {
            repo: Self {
                sinks: Vec::new(),
                keys: Vec::new(),
                cipher,
                prefix: DEFAULT_PREFIX.to_owned(),
                audit,
                clock,
                verifier: ArtifactVerifier::default(),
            },
        }
    }

    /// The sinks, in configured order (the first is the primary, C:).
    pub fn sinks(&self) -> &[Arc<dyn Sink>] {
        &self.sinks
    }

    /// The sink named `name`.
    ///
    /// # Errors
    /// [`Error::Config`] naming the configured sinks when none is called `name`.
    pub fn sink(&self, name: &str) -> Result<&Arc<dyn Sink>> {
        self.sinks
            .iter()
            .find(|s| s.info().name == name)
            .ok_or_else(|| {
                let names: Vec<&str> = self.sinks.iter().map(|s| s.info().name.as_str()).collect();
                Error::Config(format!(
                    "no sink is called `{name}`; the configured sinks are {}",
                    names.join(", ")
                ))
            })
    }

    /// The cipher.
    pub fn cipher(&self) -> &Arc<dyn Cipher> {
        &self.cipher
    }

    /// The evidence keys (the first seals new evidence).
    pub fn evidence_keys(&self) -> &[EvidenceKey] {
        &self.keys
    }

    /// The artifact prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The audit log.
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// The clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The verifier.
    pub fn verifier(&self) -> &ArtifactVerifier {
        &self.verifier
    }

    /// Initialises the repository on every sink (`wst init`): writes the repository marker
    /// (repository id, sink name), sealed under the evidence key, on each sink that has none.
    /// The id is the one the sinks' markers already share, or a new one. Idempotent. Returns
    /// [`Repository::check_sinks`] afterwards.
    ///
    /// # Errors
    /// [`Error::Config`] when the sinks' markers name different repositories, when a sink's
    /// marker is sealed under another key, or when a sink's location already holds another
    /// configured sink's marker (two sinks on one directory or bucket prefix); nothing is
    /// written then. The sink's error when a marker cannot be read or written.
    pub async fn init(&self) -> Result<Vec<SinkIdentity>> {
        let mut markers = Vec::with_capacity(self.sinks.len());
        for sink in &self.sinks {
            markers.push(read_marker(&**sink).await?);
        }
        let mut ids: Vec<&str> = markers
            .iter()
            .flatten()
            .map(|m| m.repository_id.as_str())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() > 1 {
            return Err(Error::Config(format!(
                "the sinks' markers name different repositories ({}); check the sink configuration: nothing was written",
                ids.join(", ")
            )));
        }
        for (sink, marker) in self.sinks.iter().zip(&markers) {
            let name = &sink.info().name;
            if let Some(m) = marker {
                if !m.authentic(&self.keys) {
                    return Err(Error::Config(format!(
                        "sink `{name}` holds a repository marker sealed with key {}, not with this repository's key: it belongs to another repository, or the configured key is wrong; nothing was written",
                        m.key
                    )));
                }
                if m.sink != *name {
                    return Err(Error::Config(format!(
                        "sink `{name}` is the location of sink `{}` (its marker names it): two configured sinks point at one directory or bucket prefix, which is one copy, not two; nothing was written",
                        m.sink
                    )));
                }
            }
        }
        let key = self.keys.first().expect("a repository has an evidence key");
        let id = match ids.first() {
            Some(id) => (*id).to_owned(),
            None => new_repository_id(self.clock.now(), &self.prefix, key),
        };
        // Written one at a time, each sink read again first: a marker that appeared since the
        // first read was written by this loop on another configured sink, so both are one
        // location. The markers this call wrote are then removed again.
        let mut written: Vec<&Arc<dyn Sink>> = Vec::new();
        for (sink, marker) in self.sinks.iter().zip(&markers) {
            if marker.is_some() {
                continue;
            }
            if let Some(m) = read_marker(&**sink).await? {
                for w in &written {
                    if let Err(e) = w.delete(MARKER_OBJECT).await {
                        tracing::error!(sink = %w.info().name, error = %e, "init: cannot remove the marker it wrote");
                    }
                }
                return Err(Error::Config(format!(
                    "sink `{}` is the location of sink `{}`: two configured sinks point at one \
                     directory or bucket prefix, which is one copy, not two; nothing was written",
                    sink.info().name,
                    m.sink
                )));
            }
            let m =
                RepositoryMarker::new(&id, &sink.info().name, &self.prefix, self.clock.now(), key);
            write_marker(&**sink, &m).await?;
            written.push(sink);
        }
        Ok(self.check_sinks().await)
    }

    /// Checks every sink's identity: its marker exists, authenticates, names this sink, and
    /// all sinks name one repository. A sink that fails is not a copy (an unmounted disk, a
    /// wrong path, two sinks on one location) and must not be written or counted.
    pub async fn check_sinks(&self) -> Vec<SinkIdentity> {
        let mut out: Vec<SinkIdentity> = Vec::with_capacity(self.sinks.len());
        let mut markers = Vec::with_capacity(self.sinks.len());
        for sink in &self.sinks {
            markers.push(read_marker(&**sink).await);
        }
        // The repository id: the one most authentic markers carry.
        let mut counts: Vec<(&str, usize)> = Vec::new();
        for m in markers.iter().flatten().flatten() {
            if m.authentic(&self.keys) {
                match counts.iter_mut().find(|(id, _)| *id == m.repository_id) {
                    Some((_, n)) => *n += 1,
                    None => counts.push((&m.repository_id, 1)),
                }
            }
        }
        let id = counts
            .iter()
            .max_by_key(|(_, n)| *n)
            .map(|(id, _)| (*id).to_owned());
        for (sink, marker) in self.sinks.iter().zip(markers) {
            let name = sink.info().name.clone();
            let problem = match &marker {
                Err(e) => Some(format!("its repository marker cannot be read: {e}")),
                Ok(None) => Some(
                    "it holds no repository marker: the disk may not be mounted, the path or bucket may be wrong, or the sink is new (then run `wst init`)"
                        .to_owned(),
                ),
                Ok(Some(m)) if !m.authentic(&self.keys) => Some(format!(
                    "its repository marker is not sealed with this repository's key (it names key {}): another repository, or a wrong key",
                    m.key
                )),
                Ok(Some(m)) if m.sink != name => Some(format!(
                    "it holds the marker of sink `{}`: both sinks point at one location (one copy, not two), or a disk is mounted at the wrong path",
                    m.sink
                )),
                Ok(Some(m)) if Some(&m.repository_id) != id.as_ref() => Some(format!(
                    "it belongs to repository {}, the other sinks to {}",
                    m.repository_id,
                    id.as_deref().unwrap_or("-")
                )),
                Ok(Some(_)) => None,
            };
            out.push(SinkIdentity {
                sink: name,
                ok: problem.is_none(),
                repository_id: marker.ok().flatten().map(|m| m.repository_id),
                problem,
            });
        }
        out
    }

    /// A backup job for this repository, to which the caller adds its sources: the
    /// repository's cipher, prefix, clock and verifier, and its sinks in configured order. A
    /// sink whose identity check fails ([`Repository::check_sinks`]: an unmounted disk, no
    /// marker, two sinks on one location) takes part as an [`UnavailableSink`] naming the
    /// problem, so the run writes nothing there and is degraded, never silently short of a copy.
    pub async fn job(&self) -> BackupJobBuilder {
        let identities = self.check_sinks().await;
        let mut b = BackupJob::builder(Arc::clone(&self.cipher))
            .prefix(&self.prefix)
            .clock(self.clock.clone())
            .verifier(self.verifier.clone());
        for (sink, id) in self.sinks.iter().zip(identities) {
            b = b.sink(match id.problem {
                None => Arc::clone(sink),
                Some(problem) => Arc::new(UnavailableSink::new(sink.info().clone(), problem)),
            });
        }
        b
    }

    /// Runs `job` (built from [`Repository::job`]) and audits it: `backup_started` before,
    /// then `backup_completed` with the per-sink outcomes and the run's verification, or
    /// `backup_failed` with the error. The caller holds the lock ([`Repository::lock`]).
    ///
    /// # Errors
    /// The run's error (after `backup_failed` is recorded), or the audit log's.
    pub async fn backup(&self, job: &BackupJob) -> Result<RunReport> {
        let start = self.audit.append(AuditEvent::BackupStarted {
            sources: job.sources().iter().map(|s| s.name()).collect(),
            sinks: job.sinks().iter().map(|s| s.info().name.clone()).collect(),
        })?;
        // The run's manifest and sidecars anchor the chain at this record.
        let mut job = job.clone();
        job.audit_head = Some(start.head());
        let sinks: Vec<&dyn Sink> = job.sinks().iter().map(|s| &**s).collect();
        let started = std::time::Instant::now();
        let report = match job.run().await {
            Ok(r) => r,
            Err(e) => {
                self.audit.append(AuditEvent::BackupFailed {
                    duration_seconds: started.elapsed().as_secs_f64(),
                    error: e.to_string(),
                })?;
                self.anchor_on(&sinks).await;
                return Err(e);
            }
        };
        self.audit.append(AuditEvent::BackupCompleted {
            artifact: report.artifact.to_string(),
            outcome: format!("{:?}", report.outcome).to_lowercase(),
            duration_seconds: report.duration_seconds,
            bytes_read: report.bytes_read,
            ciphertext_bytes: report.ciphertext_bytes,
            ciphertext_sha256: report.ciphertext_sha256.clone(),
            sinks: report.sinks.clone(),
            warnings: report.warnings.clone(),
        })?;
        if let Some(v) = &report.verification {
            self.audit.append(AuditEvent::Verification {
                artifact: report.artifact.to_string(),
                sink: v.sink.clone(),
                passed: v.passed(),
                checks: v.checks.clone(),
            })?;
        }
        self.anchor_on(&sinks).await;
        Ok(report)
    }

    /// Records `event` in the repository's keyed audit log and anchors the new head on the
    /// sinks: for what the repository cannot do itself but must be in its trail (a database
    /// restored by wst-pg, a bucket restored, a compliance check run by a scheduler). The
    /// repository's own operations record themselves.
    ///
    /// # Errors
    /// The audit log's error.
    pub async fn record(&self, event: AuditEvent) -> Result<crate::audit::AuditRecord> {
        let r = self.audit.append(event)?;
        self.anchor().await;
        Ok(r)
    }

    /// Writes the audit chain's head, sealed, on every identified sink (`{prefix}.audit-head.json`;
    /// `docs/EVIDENCE.md`, "Audit anchors"), so a log cut short or rewritten later is detected
    /// ([`Repository::check_audit`]). Every audited operation of the repository ends with it;
    /// call it after appending records of your own. Failures are logged, not returned: the
    /// next operation writes the head again, and status reports a stale one.
    pub async fn anchor(&self) {
        let ids = self.check_sinks().await;
        let sinks: Vec<&dyn Sink> = self
            .sinks
            .iter()
            .zip(&ids)
            .filter(|(_, id)| id.ok)
            .map(|(s, _)| &**s)
            .collect();
        self.anchor_on(&sinks).await;
    }

    /// [`Repository::anchor`] on `sinks` (already identified; an [`UnavailableSink`] refuses).
    async fn anchor_on(&self, sinks: &[&dyn Sink]) {
        let head = match self.audit.head() {
            Ok(Some(h)) => h,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(error = %e, "audit anchor: cannot read the log's head");
                return;
            }
        };
        let key = self.keys.first().expect("a repository has an evidence key");
        for sink in sinks {
            if let Err(e) = write_head(*sink, &self.prefix, &head, self.clock.now(), key).await {
                tracing::warn!(sink = %sink.info().name, error = %e, "audit anchor not written");
            }
        }
    }

    /// Takes the repository lock for `operation` (backup, prune): one writer per repository on
    /// this host, held until the returned guard is dropped or the process ends (the OS
    /// releases it even after `kill -9`). The lock file is `wst-{prefix}.lock` beside the
    /// audit log.
    ///
    /// # Errors
    /// [`Error::Locked`] naming the holder (operation, pid, host, since) when another process
    /// holds it; [`Error::Io`] when the lock file cannot be used.
    pub fn lock(&self, operation: &str) -> Result<RepositoryLock> {
        crate::lock::acquire(&self.lock_path(), operation, self.clock.now())
    }

    /// The catalog of `sink` (this repository's prefix; sidecars judged under its evidence
    /// keys).
    ///
    /// # Errors
    /// As [`Catalog::read`].
    pub async fn catalog(&self, sink: &dyn Sink) -> Result<Catalog> {
        Catalog::read(sink, &self.prefix, Trust::Authenticated(&self.keys)).await
    }

    /// Verifies the copy of `name` on `sink` deeply (decrypt, every entry against the
    /// manifest, the ciphertext against the copy's sidecar), records the result in that copy's
    /// sidecar (sealed; a failure demotes the copy for status, retention and replication), and
    /// audits it.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the sink has no such artifact; the sink's error when it cannot
    /// be read. A failed verification is not an error: read [`VerificationReport::passed`].
    pub async fn verify(&self, sink: &dyn Sink, name: &ArtifactName) -> Result<VerificationReport> {
        let (copy, _) = Catalog::read_one(sink, name, Trust::Authenticated(&self.keys))
            .await?
            .ok_or_else(|| Error::NotFound {
                sink: sink.info().name.clone(),
                name: name.artifact_object(),
            })?;
        let expected = copy
            .sidecar
            .as_ref()
            .map(|s| (s.ciphertext_size, s.ciphertext_sha256.clone()));
        let mut report = self
            .verifier
            .verify_expecting(sink, name, &*self.cipher, expected)
            .await?;
        if copy.sidecar.is_none() {
            report.checks.push(Check::fail(
                "sidecar",
                "the copy has no readable sidecar: it is incomplete (a run that did not finish); \
                 `wst replicate` can restore it from a complete copy",
            ));
        }
        self.record_verification(sink, name, &report).await?;
        self.anchor().await;
        Ok(report)
    }

    /// Records `report` (a verification of the copy of `name` on `sink`) in the audit log and
    /// in that copy's sidecar, sealed under the repository's evidence key. The sidecar is
    /// rewritten when it authenticates, or when the verification passed (the repository key
    /// opened the content and it matched the sidecar: an unsealed sidecar of an older wst is
    /// sealed, an altered one repaired). A failed verification never rewrites a sidecar it
    /// cannot authenticate: with a wrong key configured, every verification fails, and
    /// sealing under that key would take good copies' evidence away. A copy without a
    /// sidecar gets only the audit record.
    ///
    /// # Errors
    /// The audit log's error; the sink's error when the sidecar cannot be rewritten.
    pub async fn record_verification(
        &self,
        sink: &dyn Sink,
        name: &ArtifactName,
        report: &VerificationReport,
    ) -> Result<()> {
        self.audit.append(AuditEvent::Verification {
            artifact: name.to_string(),
            sink: sink.info().name.clone(),
            passed: report.passed(),
            checks: report.checks.clone(),
        })?;
        let object = name.sidecar_object();
        let bytes = match sink.get_bytes(&object, SIDECAR_MAX_BYTES).await {
            Ok(b) => b,
            Err(Error::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        let Ok((mut sidecar, trust)) = open_sidecar(&bytes, &self.keys, &object) else {
            // An unreadable sidecar stays as it is: the catalog reports it, and the copy is
            // incomplete whatever this verification said.
            return Ok(());
        };
        if sidecar.name != *name || !(trust.is_authentic() || report.passed()) {
            return Ok(());
        }
        sidecar.verification = Some(crate::pipeline::summary(report));
        let sealed = seal_sidecar(&sidecar, self.keys.first())?;
        sink.put_bytes(&object, Bytes::from(sealed))
            .await
            .map(|_| ())
    }

    fn lock_path(&self) -> std::path::PathBuf {
        let dir = self
            .audit
            .path()
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map_or_else(
                || std::path::PathBuf::from("."),
                std::path::Path::to_path_buf,
            );
        dir.join(format!("wst-{}.lock", self.prefix))
    }
}

impl RepositoryBuilder {
    /// Adds a sink (the first added is the primary).
    #[must_use]
    pub fn sink(mut self, sink: Arc<dyn Sink>) -> Self {
        self.repo.sinks.push(sink);
        self
    }

    /// The artifact prefix (default [`DEFAULT_PREFIX`]).
    #[must_use]
    pub fn prefix(mut self, prefix: &str) -> Self {
        prefix.clone_into(&mut self.repo.prefix);
        self
    }

    /// The clock (default: the audit log's).
    #[must_use]
    pub fn clock(mut self, clock: Clock) -> Self {
        self.repo.clock = clock;
        self
    }

    /// The verifier for [`Repository::verify`] and prune's proof (required entries, entry
    /// checks); it is given the repository's clock.
    #[must_use]
    pub fn verifier(mut self, verifier: ArtifactVerifier) -> Self {
        self.repo.verifier = verifier;
        self
    }

    /// Checks and builds.
    ///
    /// # Errors
    /// [`Error::Config`] without a sink, with two sinks of one name, or when the cipher
    /// derives no evidence key (sidecars could not be authenticated); [`Error::InvalidName`]
    /// for a bad prefix.
    pub fn build(self) -> Result<Repository> {
        let mut repo = self.repo;
        if repo.sinks.is_empty() {
            return Err(Error::Config("a repository needs at least one sink".into()));
        }
        let mut names: Vec<&str> = repo.sinks.iter().map(|s| s.info().name.as_str()).collect();
        names.sort_unstable();
        if let Some(dup) = names.windows(2).find(|w| w[0] == w[1]).map(|w| w[0]) {
            return Err(Error::Config(format!("two sinks are called `{dup}`")));
        }
        validate_prefix(&repo.prefix)?;
        repo.keys = repo.cipher.evidence_keys();
        if repo.keys.is_empty() {
            return Err(Error::Config(
                "the cipher derives no evidence key, so sidecars could not be authenticated; \
                 use wst-crypto's AeadCipher with a key file"
                    .into(),
            ));
        }
        repo.audit = repo.audit.with_keys(repo.keys.clone());
        repo.verifier = repo
            .verifier
            .clock(repo.clock.clone())
            .audit_log(repo.audit.clone());
        Ok(repo)
    }
}
