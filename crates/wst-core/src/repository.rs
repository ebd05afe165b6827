//! The repository: the one owner of a backup job's artifacts on every sink.
//!
//! A [`Repository`] is opened with the job's sinks, cipher (whose keys also derive the
//! evidence keys), artifact prefix, audit log and clock. The operations that judge or change
//! artifacts go through it, and it audits each one itself: what it says about a copy comes from
//! one [`Catalog`] rule, and a verification claim counts only when its sidecar authenticates
//! under the repository key (design invariant 8).
//!
//! Operations here: [`Repository::catalog`], [`Repository::verify`] (records the result on
//! the copy it read, so a failure demotes that copy everywhere), [`Repository::prune`] (delete
//! only on proof) and [`Repository::status`]. Backups are run by a [`BackupJob`](crate::BackupJob)
//! built with the same cipher, which seals the sidecars it writes.

use std::sync::Arc;

use bytes::Bytes;
use jiff::Timestamp;

use crate::artifact::{ArtifactName, DEFAULT_PREFIX, validate_prefix};
use crate::audit::{AuditEvent, AuditLog};
use crate::catalog::{Catalog, Trust};
use crate::cipher::Cipher;
use crate::clock::Clock;
use crate::compliance::{ComplianceOptions, ComplianceReport, compliance_with};
use crate::error::{Error, Result};
use crate::evidence::{EvidenceKey, SIDECAR_MAX_BYTES, open_sidecar, seal_sidecar};
use crate::prune::{Guard, Proof, PruneOptions, PruneReport, run_audited};
use crate::retention::RetentionPolicy;
use crate::sink::{Sink, SinkExt};
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
        let catalog = self.catalog(sink).await?;
        let copy = catalog.get(name).ok_or_else(|| Error::NotFound {
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
        Ok(report)
    }

    /// Records `report` (a verification of the copy of `name` on `sink`) in that copy's
    /// sidecar, sealed under the repository's evidence key, and in the audit log. A copy
    /// without a sidecar gets only the audit record.
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
        let Ok((mut sidecar, _)) = open_sidecar(&bytes, &self.keys, &object) else {
            // An unreadable sidecar stays as it is: the catalog reports it, and the copy is
            // incomplete whatever this verification said.
            return Ok(());
        };
        if sidecar.name != *name {
            return Ok(());
        }
        sidecar.verification = Some(crate::pipeline::summary(report));
        let sealed = seal_sidecar(&sidecar, self.keys.first())?;
        sink.put_bytes(&object, Bytes::from(sealed))
            .await
            .map(|_| ())
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
        let mut options = options.clone();
        options.prefix.clone_from(&self.prefix);
        let mut out = Vec::with_capacity(self.sinks.len());
        for sink in &self.sinks {
            let guard = Guard {
                keys: Some(&self.keys),
                proof: Some(Proof { repository: self }),
            };
            let r = run_audited(&**sink, policy, now, &options, &self.audit, guard).await;
            out.push((sink.info().name.clone(), r));
        }
        out
    }

    /// The compliance status at `now` (doctrine 026 R1, R3, R4, R5, R7 and the audit chain),
    /// counting only authenticated, verified copies of this repository's prefix.
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
        compliance_with(
            &sinks,
            &self.audit,
            &options,
            now,
            Trust::Authenticated(&self.keys),
        )
        .await
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
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::Config(format!("two sinks are called `{}`", w[0])));
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
        repo.verifier = repo.verifier.clock(repo.clock.clone());
        Ok(repo)
    }
}
