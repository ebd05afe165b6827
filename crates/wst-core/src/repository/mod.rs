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
pub(crate) mod evidence;
pub(crate) mod lock;
pub(crate) mod marker;
pub(crate) mod unavailable;

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

    /// Checks the audit log against everything that anchors it (issue 14): the chain itself
    /// (SHA-256 links and MACs under the repository key), the sealed head object on every sink,
    /// and the head recorded in the newest authentic sidecar on every sink. A log that was
    /// truncated, replaced by an older copy or rewritten without the key fails here.
    ///
    /// # Errors
    /// [`Error::Io`] when the log cannot be read.
    pub async fn check_audit(&self) -> Result<AuditCheck> {
        let mut catalogs = Vec::with_capacity(self.sinks.len());
        for sink in &self.sinks {
            catalogs.push(self.catalog(&**sink).await.ok());
        }
        self.check_audit_with(&catalogs).await
    }

    async fn check_audit_with(&self, catalogs: &[Option<Catalog>]) -> Result<AuditCheck> {
        let chain = self.audit.verify()?;
        let mut problems = Vec::new();
        let mut checked = 0u64;
        let mut anchors: Vec<(String, AuditHead)> = Vec::new();
        for sink in &self.sinks {
            let name = &sink.info().name;
            match read_head(&**sink, &self.prefix).await {
                Ok(Some(h)) if h.authentic(&self.keys) && h.prefix == self.prefix => anchors.push((
                    format!("the audit head on sink `{name}` (written {})", h.written),
                    h.head,
                )),
                Ok(Some(_)) => problems.push(format!(
                    "the audit head on sink `{name}` does not authenticate under the repository key: it was forged or altered"
                )),
                // An unreachable sink is reported by the other rules.
                Err(Error::Malformed { detail, .. }) => {
                    problems.push(format!("the audit head on sink `{name}`: {detail}"));
                }
                Ok(None) | Err(_) => {}
            }
        }
        for catalog in catalogs.iter().flatten() {
            let newest = catalog.complete().rev().find(|c| {
                c.trust
                    .is_some_and(crate::evidence::SidecarTrust::is_authentic)
                    && c.sidecar.as_ref().is_some_and(|s| s.audit_head.is_some())
            });
            if let Some(c) = newest {
                let head = c
                    .sidecar
                    .as_ref()
                    .and_then(|s| s.audit_head.clone())
                    .expect("filtered on it");
                anchors.push((
                    format!("the sidecar of `{}` on sink `{}`", c.name, catalog.sink),
                    head,
                ));
            }
        }
        for (origin, head) in &anchors {
            checked += 1;
            if let Some(p) = self.audit.check_anchor(head, origin)? {
                problems.push(p);
            }
        }
        Ok(AuditCheck {
            chain,
            anchors_checked: checked,
            problems,
        })
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

    /// Restores `name` from the first sink whose copy is complete and passes, trying the
    /// sinks in configured order (or only `from`, when given): each copy's ciphertext must have
    /// its sidecar's size and SHA-256 and its manifest must name `name`, or that copy is
    /// rejected before anything is promoted and the next is tried (design invariant 9). A
    /// rejected copy's failure is recorded on it (it no longer counts as verified). The report
    /// names the copies rejected; the restore is audited.
    ///
    /// # Errors
    /// [`Error::NotFound`] when no sink holds a complete copy; otherwise the last copy's error
    /// (restore target refused, every copy rejected, …), after auditing it.
    pub async fn restore(
        &self,
        name: &ArtifactName,
        options: &RestoreOptions,
        from: Option<&str>,
    ) -> Result<RestoreReport> {
        let mut rejected = Vec::new();
        let mut last_error = None;
        for sink in &self.sinks {
            if from.is_some_and(|f| f != sink.info().name) {
                continue;
            }
            let (copy, anomaly) =
                match Catalog::read_one(&**sink, name, Trust::Authenticated(&self.keys)).await {
                    Ok(Some(c)) => c,
                    Ok(None) => continue,
                    Err(e) => {
                        rejected.push(format!("{}: cannot be read: {e}", sink.info().name));
                        continue;
                    }
                };
            if !copy.complete {
                let why = anomaly.map_or_else(|| "it has no sidecar".to_owned(), |a| a.to_string());
                rejected.push(format!("{}: incomplete copy: {why}", sink.info().name));
                continue;
            }
            let mut opts = options.clone();
            opts.clock = self.clock.clone();
            opts.expected_ciphertext = copy.expected();
            match crate::restore::restore(&**sink, name, &*self.cipher, &opts).await {
                Ok(mut report) => {
                    report.rejected_copies = rejected;
                    self.audit_restore(
                        name,
                        &sink.info().name,
                        options,
                        report.duration_seconds,
                        None,
                    )
                    .await?;
                    return Ok(report);
                }
                Err(e) if copy_is_bad(&e) || copy_unreachable(&e) => {
                    tracing::error!(artifact = %name, sink = %sink.info().name, error = %e, "restore: copy rejected; trying the next sink");
                    if copy_is_bad(&e) {
                        // The content is not what the copy's evidence says: that copy fails
                        // verification (an unreachable sink says nothing about its copy).
                        let failed = VerificationReport {
                            artifact: name.clone(),
                            sink: sink.info().name.clone(),
                            started: self.clock.now(),
                            finished: self.clock.now(),
                            checks: vec![Check::fail("restore", e.to_string())],
                        };
                        if let Err(re) = self.record_verification(&**sink, name, &failed).await {
                            tracing::error!(error = %re, "restore: cannot record the rejected copy");
                        }
                    }
                    rejected.push(format!("{}: {e}", sink.info().name));
                    last_error = Some(e);
                }
                Err(e) => {
                    self.audit_restore(name, &sink.info().name, options, 0.0, Some(&e))
                        .await?;
                    return Err(e);
                }
            }
        }
        let e = last_error.unwrap_or_else(|| Error::NotFound {
            sink: from.unwrap_or("any sink").to_owned(),
            name: format!("a complete copy of {name}"),
        });
        self.audit_restore(name, from.unwrap_or("(every sink)"), options, 0.0, Some(&e))
            .await?;
        Err(e)
    }

    /// Runs a restore drill (doctrine 026 R7) of the artifact `options.selection` picks among
    /// this repository's complete copies whose sealed evidence does not record a failed
    /// verification, on every sink (or only `from`): the copy is verified against its sidecar,
    /// restored into an isolated directory and proven ([`restore_drill`](crate::restore_drill)
    /// describes the steps). When a copy fails verification (substituted, tampered, corrupt),
    /// the failure is recorded on that copy and the next sink's copy of the same artifact is
    /// drilled; the report names the copies rejected, and its RTO counts the time they took. A
    /// drill that fails for another reason (the database proof, a post-restore check, the RTO)
    /// is the artifact's failure and is reported as it is. Audited, dated by the repository's
    /// clock.
    ///
    /// # Errors
    /// [`Error::NotFound`] when no sink holds a usable copy in the selection window; the
    /// audit log's error.
    pub async fn drill(
        &self,
        restorers: &[Arc<dyn crate::drill::EntryRestorer>],
        options: &crate::drill::DrillOptions,
        from: Option<&str>,
    ) -> Result<crate::drill::DrillReport> {
        let mut options = options.clone();
        options.clock = self.clock.clone();
        let date = self.clock.now();
        let started = std::time::Instant::now();
        let mut copies: Vec<(&Arc<dyn Sink>, Catalog)> = Vec::new();
        for sink in &self.sinks {
            if from.is_some_and(|f| f != sink.info().name) {
                continue;
            }
            match self.catalog(&**sink).await {
                Ok(c) => copies.push((sink, c)),
                Err(e) => {
                    tracing::warn!(sink = %sink.info().name, error = %e, "drill: sink not catalogued");
                }
            }
        }
        let usable = |c: &crate::catalog::CatalogCopy| {
            c.complete
                && !(c
                    .trust
                    .is_some_and(crate::evidence::SidecarTrust::is_authentic)
                    && c.sidecar
                        .as_ref()
                        .and_then(|s| s.verification.as_ref())
                        .is_some_and(|v| !v.passed))
        };
        let mut names: Vec<ArtifactName> = copies
            .iter()
            .flat_map(|(_, c)| {
                c.copies
                    .iter()
                    .filter(|c| usable(c))
                    .map(|c| c.name.clone())
            })
            .collect();
        names.sort();
        names.dedup();
        let name = crate::drill::select(&names, options.selection, date).ok_or_else(|| {
            Error::NotFound {
                sink: from.unwrap_or("any sink").to_owned(),
                name: "a complete, not demoted artifact to drill (none in the selection window)"
                    .into(),
            }
        })?;
        let mut rejected = Vec::new();
        let mut last = None;
        for (sink, catalog) in &copies {
            let Some(copy) = catalog.get(&name).filter(|c| usable(c)) else {
                continue;
            };
            let (mut report, verification) = crate::drill::drill_artifact(
                &***sink,
                &name,
                copy.expected(),
                &*self.cipher,
                &self.verifier,
                restorers,
                &options,
                (date, started),
            )
            .await?;
            report.rejected_copies.clone_from(&rejected);
            if verification.passed() {
                last = Some(report);
                break;
            }
            // This copy is not the artifact its evidence describes: demote it, try the next.
            self.record_verification(&***sink, &name, &verification)
                .await?;
            rejected.push(format!(
                "{}: {}",
                sink.info().name,
                verification
                    .failures()
                    .map(|c| format!("{}: {}", c.name, c.detail))
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
            last = Some(report);
        }
        let report = last.ok_or_else(|| Error::NotFound {
            sink: from.unwrap_or("any sink").to_owned(),
            name: format!("a usable copy of {name}"),
        })?;
        crate::drill::audit_drill(&self.audit, &report, &options)?;
        self.anchor().await;
        Ok(report)
    }

    /// Brings every identified sink up to date (doctrine 026 R3: the D: mirror and the
    /// offsite copy of the C: artifacts): for each ordered pair of identified sinks, the
    /// complete artifacts of this prefix that the source holds as a good copy (complete,
    /// authentic, not demoted) and the target lacks, or holds only demoted or incomplete, are
    /// copied and checked (see [`replicate`](crate::replicate)). A copy that failed verification
    /// is never a source: the artifact is copied from another sink's good copy. Each pair that
    /// copied or failed anything is audited.
    ///
    /// Returns one report per pair, in order; a pair whose sinks could not be listed carries
    /// the error.
    pub async fn replicate(
        &self,
        options: &crate::replicate::ReplicateOptions,
    ) -> Vec<(String, String, Result<crate::replicate::ReplicationReport>)> {
        let ids = self.check_sinks().await;
        let mut out = Vec::new();
        let live: Vec<&Arc<dyn Sink>> = self
            .sinks
            .iter()
            .zip(&ids)
            .filter(|(_, id)| id.ok)
            .map(|(s, _)| s)
            .collect();
        for from in &live {
            for to in &live {
                if Arc::ptr_eq(from, to) {
                    continue;
                }
                let r = self.replicate_pair(&***from, &***to, options).await;
                if let Ok(report) = &r
                    && (!report.copied.is_empty() || !report.failed.is_empty())
                    && let Err(e) = self.audit.append(AuditEvent::Replicate {
                        from: report.from.clone(),
                        to: report.to.clone(),
                        copied: report.copied.iter().map(|c| c.name.to_string()).collect(),
                        failed: report
                            .failed
                            .iter()
                            .map(|f| format!("{}: {}", f.name, f.detail))
                            .collect(),
                    })
                {
                    out.push((from.info().name.clone(), to.info().name.clone(), Err(e)));
                    continue;
                }
                out.push((from.info().name.clone(), to.info().name.clone(), r));
            }
        }
        self.anchor().await;
        out
    }

    async fn replicate_pair(
        &self,
        from: &dyn Sink,
        to: &dyn Sink,
        options: &crate::replicate::ReplicateOptions,
    ) -> Result<crate::replicate::ReplicationReport> {
        let source = self.catalog(from).await?;
        let target = self.catalog(to).await?;
        let good = |c: &crate::catalog::CatalogCopy| {
            c.complete
                && c.trust
                    .is_some_and(crate::evidence::SidecarTrust::is_authentic)
                && c.sidecar
                    .as_ref()
                    .and_then(|s| s.verification.as_ref())
                    .is_none_or(|v| v.passed)
        };
        let mut options = options.clone();
        options.prefix = format!("{}-", self.prefix);
        options.usable = Some(
            source
                .copies
                .iter()
                .filter(|c| good(c))
                .map(|c| c.name.clone())
                .collect(),
        );
        options.replace = target
            .copies
            .iter()
            .filter(|c| !good(c))
            .map(|c| c.name.clone())
            .collect();
        crate::replicate::replicate(from, to, &options).await
    }

    /// Lists `name` (entries, manifest, sidecar) without restoring it, from the first sink
    /// whose copy is complete and is the artifact its evidence describes (or only `from`): the
    /// ciphertext must have the copy's authenticated size and SHA-256 and the manifest must name
    /// `name`, or that copy is rejected ([`Error::Substituted`]) and the next sink's is read.
    /// The listing's `sidecar` is the copy's, parsed under the catalog's rule.
    ///
    /// # Errors
    /// [`Error::NotFound`] when no sink holds a complete copy; otherwise the last copy's error.
    pub async fn list(
        &self,
        name: &ArtifactName,
        from: Option<&str>,
    ) -> Result<crate::list::ArtifactListing> {
        let mut last_error = None;
        for sink in &self.sinks {
            if from.is_some_and(|f| f != sink.info().name) {
                continue;
            }
            let copy =
                match Catalog::read_one(&**sink, name, Trust::Authenticated(&self.keys)).await {
                    Ok(Some((c, _))) if c.complete => c,
                    Ok(_) => continue,
                    Err(e) => {
                        last_error = Some(e);
                        continue;
                    }
                };
            match crate::list::list_expecting(
                &**sink,
                name,
                &*self.cipher,
                crate::reader::ReadLimits::default(),
                copy.expected(),
            )
            .await
            {
                Ok(mut listing) => {
                    listing.sidecar.clone_from(&copy.sidecar);
                    return Ok(listing);
                }
                Err(e) if copy_is_bad(&e) || copy_unreachable(&e) => {
                    tracing::error!(artifact = %name, sink = %sink.info().name, error = %e, "ls: copy rejected; trying the next sink");
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or_else(|| Error::NotFound {
            sink: from.unwrap_or("any sink").to_owned(),
            name: format!("a complete copy of {name}"),
        }))
    }

    async fn audit_restore(
        &self,
        name: &ArtifactName,
        sink: &str,
        options: &RestoreOptions,
        seconds: f64,
        error: Option<&Error>,
    ) -> Result<()> {
        self.audit.append(AuditEvent::Restore {
            artifact: name.to_string(),
            sink: sink.to_owned(),
            target: options.target.display().to_string(),
            passed: error.is_none(),
            duration_seconds: seconds,
            break_glass: options.break_glass.clone(),
            error: error.map(ToString::to_string),
        })?;
        self.anchor().await;
        Ok(())
    }

    /// Applies `policy` on every sink at `now`, audited, under the repository's guard: only
    /// authenticated verified copies count, and before anything is deleted on a sink the
    /// newer verified backup the deletions rely on is verified deeply; if that fails it is
    /// demoted (recorded), and nothing is deleted on that sink
    /// ([`Reason::NewerBackupUnproven`](crate::Reason::NewerBackupUnproven)).
    ///
    /// Returns one result per sink, in configured order. `options.prefix` is replaced by the
    /// repository's prefix.
    pub async fn prune(
        &self,
        policy: &dyn RetentionPolicy,
        options: &PruneOptions,
        now: Timestamp,
    ) -> Vec<(String, Result<PruneReport>)> {
        let mut out = Vec::with_capacity(self.sinks.len());
        let running = crate::lock::probe(&self.lock_path()).is_some();
        for sink in &self.sinks {
            let r = self.prune_sink(&**sink, policy, options, now).await;
            if r.is_ok() && !running && !options.dry_run {
                self.remove_stale_claims(&**sink, now).await;
            }
            out.push((sink.info().name.clone(), r));
        }
        self.anchor().await;
        out
    }

    /// Removes name claims of killed runs (older than an hour; no run holds the lock).
    async fn remove_stale_claims(&self, sink: &dyn Sink, now: Timestamp) {
        let Ok(objects) = sink.list(&format!("{}-", self.prefix)).await else {
            return;
        };
        for o in objects
            .iter()
            .filter(|o| o.name.ends_with(crate::catalog::CLAIM_EXTENSION))
        {
            if now.duration_since(o.last_modified) > jiff::SignedDuration::from_hours(1) {
                match sink.delete(&o.name).await {
                    Ok(()) => {
                        tracing::info!(sink = %sink.info().name, claim = %o.name, "removed the name claim of a killed run");
                    }
                    Err(e) => {
                        tracing::warn!(sink = %sink.info().name, claim = %o.name, error = %e, "stale name claim not removed");
                    }
                }
            }
        }
    }

    /// [`Repository::prune`] on one sink (e.g. with that sink's
    /// [`PruneOptions::previous_count`]).
    ///
    /// # Errors
    /// As [`prune_audited`](crate::prune_audited).
    pub async fn prune_sink(
        &self,
        sink: &dyn Sink,
        policy: &dyn RetentionPolicy,
        options: &PruneOptions,
        now: Timestamp,
    ) -> Result<PruneReport> {
        let mut options = options.clone();
        options.prefix.clone_from(&self.prefix);
        run_audited(sink, policy, now, &options, &self.audit, Some(self)).await
    }

    /// The compliance status at `now` (doctrine 026 R1, R3, R4, R5, R7 and the audit chain),
    /// counting only authenticated, verified copies of this repository's prefix, plus three
    /// rules only the repository can judge: **sinks identified** (every sink carries this
    /// repository's authentic marker: an unmounted disk or two sinks on one location fail),
    /// **keys open the artifacts** (the newest artifact on every sink is sealed for a
    /// configured key: a wrong `key_file` fails), and **runs finished** (no artifact without a
    /// sidecar, no `backup_started` without an end, unless a run holds the lock now).
    ///
    /// # Errors
    /// As [`compliance_status`](crate::compliance_status).
    pub async fn status(
        &self,
        options: &ComplianceOptions,
        now: Timestamp,
    ) -> Result<ComplianceReport> {
        let mut options = options.clone();
        options.three_two_one.prefix.clone_from(&self.prefix);
        let sinks: Vec<&dyn Sink> = self.sinks.iter().map(|s| &**s).collect();
        let (mut report, catalogs) = compliance_with(
            &sinks,
            &self.audit,
            &options,
            now,
            Trust::Authenticated(&self.keys),
        )
        .await?;
        report.rules.extend(self.repository_rules(&catalogs).await);
        let audit = self.check_audit_with(&catalogs).await?;
        report.rules.push(RuleStatus {
            rule: "audit log anchored".into(),
            passed: audit.problems.is_empty(),
            detail: if audit.problems.is_empty() {
                format!(
                    "the log holds every anchor on the sinks ({} checked)",
                    audit.anchors_checked
                )
            } else {
                format!(
                    "the audit log disagrees with {} anchor(s) on the sinks: it was truncated, \
                     replaced or rewritten; keep it as evidence and investigate ({})",
                    audit.problems.len(),
                    audit.problems.join("; ")
                )
            },
            evidence: audit.problems,
        });
        Ok(report)
    }

    /// The rules only a repository can judge: sink identity, keys, unfinished runs.
    async fn repository_rules(&self, catalogs: &[Option<Catalog>]) -> Vec<RuleStatus> {
        let mut rules = Vec::new();
        // Sink identity (markers).
        let ids = self.check_sinks().await;
        let bad: Vec<String> = ids
            .iter()
            .filter_map(|i| i.problem.as_ref().map(|p| format!("{}: {p}", i.sink)))
            .collect();
        rules.push(RuleStatus {
            rule: "sinks identified".into(),
            passed: bad.is_empty(),
            detail: if bad.is_empty() {
                format!(
                    "{} sinks carry the marker of repository {}",
                    ids.len(),
                    ids.first()
                        .and_then(|i| i.repository_id.as_deref())
                        .unwrap_or("-")
                )
            } else {
                format!(
                    "{} of {} sinks are not this repository's: {}",
                    bad.len(),
                    ids.len(),
                    bad.join("; ")
                )
            },
            evidence: bad,
        });

        // Keys and leftovers, from the catalogs.
        let held: Vec<String> = self.keys.iter().map(|k| k.id().to_string()).collect();
        let mut unopenable = Vec::new();
        let mut incomplete = Vec::new();
        for catalog in catalogs.iter().flatten() {
            if let Some(newest) = catalog.complete().next_back() {
                let sealed_for: Vec<String> = newest
                    .sidecar
                    .iter()
                    .flat_map(|s| s.key_fingerprints.iter().map(ToString::to_string))
                    .collect();
                if !sealed_for.iter().any(|fp| held.contains(fp)) {
                    unopenable.push(format!(
                        "{}: `{}` is sealed for {}, the configured keys are {}",
                        catalog.sink,
                        newest.name,
                        sealed_for.join(", "),
                        held.join(", ")
                    ));
                }
            }
            for c in catalog.copies.iter().filter(|c| !c.has_sidecar) {
                incomplete.push(format!(
                    "{}: `{}` has no sidecar (a run that did not finish)",
                    catalog.sink, c.name
                ));
            }
            for c in &catalog.claims {
                incomplete.push(format!(
                    "{}: the name claim `{}` of a run that did not finish (written {})",
                    catalog.sink, c.name, c.last_modified
                ));
            }
        }
        rules.push(RuleStatus {
            rule: "keys open the artifacts".into(),
            passed: unopenable.is_empty(),
            detail: if unopenable.is_empty() {
                "the configured key opens the newest artifact on every sink".into()
            } else {
                format!(
                    "the configured key cannot open the newest artifact: check `key_file` \
                     ({})",
                    unopenable.join("; ")
                )
            },
            evidence: unopenable,
        });

        // Unfinished runs: artifacts without sidecar, a backup_started that never ended.
        let running = crate::lock::probe(&self.lock_path());
        let records = self.audit.records().unwrap_or_default();
        let mut open_start: Option<(u64, jiff::Timestamp)> = None;
        for r in &records {
            match r.event {
                AuditEvent::BackupStarted { .. } => open_start = Some((r.seq, r.time)),
                AuditEvent::BackupCompleted { .. } | AuditEvent::BackupFailed { .. } => {
                    open_start = None;
                }
                _ => {}
            }
        }
        let mut leftovers = Vec::new();
        if running.is_none() {
            leftovers.extend(incomplete);
            if let Some((seq, t)) = open_start {
                leftovers.push(format!(
                    "audit #{seq}: a backup started at {t} never ended (killed or crashed)"
                ));
            }
        }
        rules.push(RuleStatus {
            rule: "runs finished".into(),
            passed: leftovers.is_empty(),
            detail: match (&running, leftovers.is_empty()) {
                (Some(holder), _) => format!("a run is in progress: {holder}"),
                (None, true) => "no leftovers of unfinished runs".into(),
                (None, false) => format!(
                    "{} leftovers of unfinished runs: check why they stopped, then run `prune` \
                     (incomplete artifacts are removed) or `replicate`",
                    leftovers.len()
                ),
            },
            evidence: leftovers,
        });
        rules
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

/// Whether a restore error condemns the copy's content (substituted, tampered, truncated,
/// malformed): that copy is recorded as failing verification and the next is tried. A wrong
/// key also shows as a cipher error; it cannot demote a good copy, because a failed
/// verification is sealed only into a sidecar that authenticates under the configured key.
fn copy_is_bad(e: &Error) -> bool {
    matches!(
        e,
        Error::Substituted { .. } | Error::Cipher { .. } | Error::Malformed { .. }
    )
}

/// Whether a restore error is the sink's (unreachable, object gone): the next copy is tried,
/// and nothing is recorded against this one.
fn copy_unreachable(e: &Error) -> bool {
    matches!(e, Error::Sink { .. } | Error::NotFound { .. })
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
