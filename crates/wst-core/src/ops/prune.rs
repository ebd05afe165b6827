//! The prune executor: list a sink, read each artifact's verification state from its sidecar,
//! plan with a [`RetentionPolicy`], re-check the deletion invariants independently of the
//! policy, delete, and report every decision ([`PruneReport`], `tracing` events, and with
//! [`prune_audited`] the hash-chained audit log).
//!
//! # Deletion order and crashes
//!
//! A backup run writes the artifact first and its sidecar last: the sidecar is the commit record
//! ("this artifact is complete, and here is how it was verified"). Prune undoes that in reverse:
//! **sidecar first, then artifact**. A crash (or a failed delete) between the two leaves an
//! artifact without a sidecar, which every reader already treats as incomplete: it counts for no
//! rule, justifies no deletion, and the next prune deletes it once a newer verified backup is
//! kept. The other order could leave a sidecar claiming a verified backup that no longer exists,
//! which a 3-2-1 check reading sidecars would count as a copy. Backups are deleted oldest first,
//! so an interrupted prune never leaves a gap newer than what it kept.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use crate::artifact::DEFAULT_PREFIX;
use crate::audit::{AuditEvent, AuditLog};
use crate::catalog::{Anomaly, Catalog, CatalogCopy, Trust};
use crate::error::{Error, Result};
use crate::repository::Repository;
use crate::retention::{BackupRecord, Flag, Reason, RetentionPolicy};
use crate::sink::Sink;

/// How [`prune`] runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PruneOptions {
    /// Plan, check and report, but delete nothing. The report's `deleted` then lists what would
    /// be deleted.
    pub dry_run: bool,
    /// The artifact prefix to prune (default [`DEFAULT_PREFIX`]); artifacts with another prefix
    /// on the same sink are neither listed nor touched.
    pub prefix: String,
    /// The executor's own minimum age (doctrine 026 R4; default 7 days = 168 hours of elapsed
    /// time), enforced whatever the policy says. Set it to the policy's `min_age` when that is
    /// shorter, or prune refuses those deletions.
    pub min_age: SignedDuration,
    /// How many artifacts the previous prune of this sink left ([`PruneReport::remaining`]).
    /// When given, a listing with none of them, or with fewer than half of them, is refused:
    /// a wrong prefix, credentials scoped to another bucket or a broken listing can look like
    /// an almost empty sink, and planning over it would be planning over the wrong data.
    pub previous_count: Option<usize>,
    /// Proceed even when the listing shrank as described under `previous_count` (the operator
    /// has checked that the artifacts are really gone).
    pub allow_listing_drop: bool,
}

impl Default for PruneOptions {
    fn default() -> Self {
        Self {
            dry_run: false,
            prefix: DEFAULT_PREFIX.to_owned(),
            min_age: SignedDuration::from_hours(7 * 24),
            previous_count: None,
            allow_listing_drop: false,
        }
    }
}

impl PruneOptions {
    /// The defaults: delete for real, prefix [`DEFAULT_PREFIX`], minimum age 7 days, no
    /// previous count.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `dry_run`.
    #[must_use]
    pub fn dry_run(mut self, yes: bool) -> Self {
        self.dry_run = yes;
        self
    }

    /// Sets the artifact prefix.
    #[must_use]
    pub fn prefix(mut self, prefix: &str) -> Self {
        prefix.clone_into(&mut self.prefix);
        self
    }

    /// Sets the executor's minimum age.
    #[must_use]
    pub fn min_age(mut self, min_age: SignedDuration) -> Self {
        self.min_age = min_age;
        self
    }

    /// Sets the number of artifacts the previous prune left.
    #[must_use]
    pub fn previous_count(mut self, n: usize) -> Self {
        self.previous_count = Some(n);
        self
    }

    /// Sets `allow_listing_drop`.
    #[must_use]
    pub fn allow_listing_drop(mut self, yes: bool) -> Self {
        self.allow_listing_drop = yes;
        self
    }
}

/// One artifact in a [`PruneReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneEntry {
    /// The artifact name (`{prefix}-YYYYMMDD-HHMMSS`).
    pub name: String,
    /// When it was taken (UTC, from the name).
    pub time: Timestamp,
    /// Whether its sidecar records a passed verification.
    pub verified: bool,
    /// Whether it has a readable sidecar that matches it.
    pub complete: bool,
    /// The policy's reasons, or for a refused deletion the protection that refused it first.
    pub reasons: Vec<Reason>,
}

/// A deletion the policy planned and the executor refused (design invariant 3). The artifact
/// is kept. A correct policy never causes one: a refusal means the policy is wrong, or its
/// `min_age` is shorter than [`PruneOptions::min_age`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The artifact name.
    pub name: String,
    /// When it was taken (UTC).
    pub time: Timestamp,
    /// The protection that forbids the deletion: `future_dated`, `min_age`, `last_backup`,
    /// `newest_verified` or `no_newer_verified`.
    pub protection: Reason,
    /// The reasons the policy gave for deleting it.
    pub planned: Vec<Reason>,
}

/// A deletion that failed on the sink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteFailure {
    /// The artifact name.
    pub name: String,
    /// The object whose deletion failed (the sidecar, or the artifact after its sidecar was
    /// deleted: it is then an incomplete artifact that the next prune deletes).
    pub object: String,
    /// The sink's error message.
    pub error: String,
    /// Whether retrying later may succeed.
    pub retryable: bool,
}

/// What [`prune`] did (or, in a dry run, would do). Serializable for the run report and,
/// once it exists, the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneReport {
    /// The sink's configured name.
    pub sink: String,
    /// The `now` the plan was made at (UTC).
    pub now: Timestamp,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Number of artifacts listed (objects named `{prefix}-YYYYMMDD-HHMMSS.tar.zst.wst`).
    pub listed: usize,
    /// Kept artifacts, newest first, with their reasons.
    pub kept: Vec<PruneEntry>,
    /// Deleted artifacts (dry run: to be deleted), oldest first, in deletion order, with the
    /// reasons.
    pub deleted: Vec<PruneEntry>,
    /// Deletions the policy planned and the executor refused, newest first; those artifacts
    /// are in `kept`.
    pub refusals: Vec<Refusal>,
    /// Deletions that failed on the sink; those artifacts are in neither `kept` nor `deleted`.
    pub failures: Vec<DeleteFailure>,
    /// The plan's flags (future-dated backups, max-age conflicts).
    pub flags: Vec<Flag>,
    /// Odd objects found while listing.
    pub anomalies: Vec<Anomaly>,
    /// Why nothing was deleted although the plan deleted something: the newer verified backup
    /// the deletions rely on failed its deep verification (or could not be read). `None` when
    /// it was proven, or no proof was needed (dry run, nothing to delete, no proof configured).
    #[serde(default)]
    pub unproven: Option<String>,
}

impl PruneReport {
    /// Number of artifacts left on the sink after this run (all of them after a dry run): pass
    /// it as [`PruneOptions::previous_count`] next time.
    pub fn remaining(&self) -> usize {
        if self.dry_run {
            self.listed
        } else {
            self.listed - self.deleted.len()
        }
    }

    /// Every item that needs an operator's attention, one sentence each: refusals, failed
    /// deletions, flags, anomalies (the `refusals` of the audit log's prune record).
    pub fn attention(&self) -> Vec<String> {
        let mut out = Vec::new();
        for r in &self.refusals {
            out.push(format!(
                "refused deleting `{}`: {} (the policy planned: {})",
                r.name,
                r.protection,
                join(&r.planned)
            ));
        }
        for f in &self.failures {
            out.push(format!("failed deleting `{}`: {}", f.object, f.error));
        }
        for f in &self.flags {
            out.push(f.to_string());
        }
        for a in &self.anomalies {
            out.push(a.to_string());
        }
        if let Some(u) = &self.unproven {
            out.push(format!("deleted nothing: {u}"));
        }
        out
    }

    /// Whether the run needs no attention: no refusal, no failed deletion, no flag, no anomaly.
    pub fn is_clean(&self) -> bool {
        self.refusals.is_empty()
            && self.failures.is_empty()
            && self.flags.is_empty()
            && self.anomalies.is_empty()
            && self.unproven.is_none()
    }
}

fn join(reasons: &[Reason]) -> String {
    let v: Vec<String> = reasons.iter().map(ToString::to_string).collect();
    v.join(", ")
}

/// Applies `policy` to the artifacts on `sink` at `now`.
///
/// The rules and the time zone periods are counted in belong to the policy: for wst's own
/// planner pass a `wst_retention::Planner` (a `Policy` bound to an IANA time zone).
///
/// Steps: read the sink's [`Catalog`] for `options.prefix`; refuse a listing that shrank
/// suspiciously (see [`PruneOptions::previous_count`]); an artifact without a readable,
/// matching sidecar is incomplete, and a passed verification in the sidecar makes it verified
/// ([`Sidecar::is_verified`](crate::Sidecar::is_verified); this low-level function believes
/// sidecars as they are, [`Repository::prune`](crate::Repository::prune) only authentic ones
/// and proves the newer backup before deleting); plan; check that the plan decides every artifact exactly
/// once; refuse every planned deletion of the newest artifact, of the newest complete verified
/// one, of one without a strictly newer complete verified artifact kept, of one younger than
/// `options.min_age`, and of one dated after `now` (design invariant 3, doctrine R4); delete the
/// rest oldest first, each sidecar before its artifact; emit a `tracing` event per deletion,
/// refusal, flag and anomaly.
///
/// # Warning
/// Without `dry_run` this deletes backups. Preview with `dry_run` (or the
/// `retention_preview` example) before enabling a new policy.
///
/// # Errors
/// [`Error::ListingDrop`] when the listing looks wrong (nothing deleted);
/// [`Error::Retention`] when the policy fails,
/// or when its plan does not decide every listed artifact exactly once (nothing deleted);
/// [`Error::Sink`] when the sink cannot be listed or a sidecar cannot be read (nothing deleted).
/// A failed deletion is not an error: it is recorded in [`PruneReport::failures`] and the run
/// goes on with the next artifact.
///
/// This variant writes no audit record: use [`prune_audited`] for real runs.
pub async fn prune(
    sink: &dyn Sink,
    policy: &dyn RetentionPolicy,
    now: Timestamp,
    options: &PruneOptions,
) -> Result<PruneReport> {
    let span = tracing::info_span!("prune", sink = %sink.info().name, dry_run = options.dry_run);
    run(sink, policy, now, options, None, None)
        .instrument(span)
        .await
}

/// [`prune`], recording every deletion in the audit log before it happens.
///
/// Audit records: one [`AuditEvent::PruneDeletion`] per artifact, appended (and synced)
/// *before* its deletion — an unaudited deletion is impossible; a crash between the record and
/// the deletion leaves a record of a deletion the next listing shows did not happen, which an
/// auditor can reconcile, whereas the opposite order could lose the record of a real deletion.
/// Then one [`AuditEvent::Prune`] summary with every refusal, failed deletion, flag and
/// anomaly. A run refused as a whole (suspicious listing, inconsistent plan, unreadable sink)
/// is recorded as a [`AuditEvent::Prune`] with nothing deleted and the reason. Dry runs are
/// recorded too, marked `dry_run`. Appends are synchronous file writes with `fsync`.
///
/// # Errors
/// As [`prune`]; and the audit log's error when a record cannot be appended: the run stops
/// before the deletion that could not be recorded (earlier deletions were recorded).
pub async fn prune_audited(
    sink: &dyn Sink,
    policy: &dyn RetentionPolicy,
    now: Timestamp,
    options: &PruneOptions,
    audit: &AuditLog,
) -> Result<PruneReport> {
    run_audited(sink, policy, now, options, audit, None).await
}

/// [`prune_audited`], or with `repository` its guarded form: only sidecars that authenticate
/// under the repository's evidence keys make a copy verified, and before anything is deleted
/// on the sink the newest verified artifact there is verified deeply with the repository's
/// cipher and verifier (the result recorded on that copy); if it fails nothing is deleted.
pub(crate) async fn run_audited(
    sink: &dyn Sink,
    policy: &dyn RetentionPolicy,
    now: Timestamp,
    options: &PruneOptions,
    audit: &AuditLog,
    repository: Option<&Repository>,
) -> Result<PruneReport> {
    let span = tracing::info_span!("prune", sink = %sink.info().name, dry_run = options.dry_run);
    let result = run(sink, policy, now, options, Some(audit), repository)
        .instrument(span)
        .await;
    if let Err(e) = &result {
        let event = AuditEvent::Prune {
            sink: sink.info().name.clone(),
            kept: 0,
            deleted: 0,
            dry_run: options.dry_run,
            refusals: vec![format!("prune stopped: {e}")],
        };
        if let Err(audit_error) = audit.append(event) {
            tracing::error!(error = %audit_error, "prune: cannot record the failed run in the audit log");
        }
    }
    result
}

pub(crate) async fn run(
    sink: &dyn Sink,
    policy: &dyn RetentionPolicy,
    now: Timestamp,
    options: &PruneOptions,
    audit: Option<&AuditLog>,
    repository: Option<&Repository>,
) -> Result<PruneReport> {
    let sink_name = sink.info().name.clone();
    let trust = match repository {
        Some(repo) => Trust::Authenticated(repo.evidence_keys()),
        None => Trust::Unauthenticated,
    };
    let catalog = Catalog::read(sink, &options.prefix, trust).await?;
    check_listing(&sink_name, catalog.copies.len(), options)?;
    for a in &catalog.anomalies {
        tracing::warn!(anomaly = %a, "prune: odd object on sink");
    }
    let Catalog {
        copies, anomalies, ..
    } = catalog;
    let listed: Vec<Listed> = copies
        .into_iter()
        .map(|c| Listed {
            record: BackupRecord {
                name: c.name.to_string(),
                time: c.name.time(),
                verified: c.verified,
                complete: c.complete,
            },
            copy: c,
        })
        .collect();

    let records: Vec<BackupRecord> = listed.iter().map(|l| l.record.clone()).collect();
    let plan = policy.plan(&records, now)?;

    // Invariant 1: the plan decides every listed artifact exactly once, and nothing else.
    let mut decided: BTreeMap<&str, &crate::retention::Decision> = BTreeMap::new();
    for d in &plan.decisions {
        if decided.insert(d.name.as_str(), d).is_some() {
            return Err(inconsistent_plan(
                &sink_name,
                &format!("decides `{}` twice", d.name),
            ));
        }
    }
    if let Some(missing) = records
        .iter()
        .find(|r| !decided.contains_key(r.name.as_str()))
    {
        return Err(inconsistent_plan(
            &sink_name,
            &format!("does not decide `{}`", missing.name),
        ));
    }
    if decided.len() != records.len() {
        return Err(inconsistent_plan(
            &sink_name,
            "decides artifacts that were not listed",
        ));
    }

    // Invariants 2-4, independently of the policy.
    let key = |r: &BackupRecord| (r.time, r.name.clone());
    let newest = records.iter().map(key).max();
    let newest_counting = records.iter().filter(|r| r.counts_at(now)).map(key).max();
    let protection = |r: &BackupRecord| -> Option<Reason> {
        let k = key(r);
        if r.time > now {
            Some(Reason::FutureDated)
        } else if now.duration_since(r.time) < options.min_age {
            Some(Reason::MinAge)
        } else if Some(&k) == newest.as_ref() {
            Some(Reason::LastBackup)
        } else if Some(&k) == newest_counting.as_ref() {
            Some(Reason::NewestVerified)
        } else if newest_counting.as_ref().is_none_or(|nc| &k > nc) {
            Some(Reason::NoNewerVerified)
        } else {
            None
        }
    };

    let relied_on: Option<CatalogCopy> = newest_counting.as_ref().and_then(|(_, n)| {
        listed
            .iter()
            .find(|l| &l.record.name == n)
            .map(|l| l.copy.clone())
    });
    let mut unproven_detail = None;
    let mut kept = Vec::new();
    let mut to_delete = Vec::new();
    let mut refusals = Vec::new();
    for l in listed {
        let decision = decided[l.record.name.as_str()];
        let entry = |reasons: Vec<Reason>| PruneEntry {
            name: l.record.name.clone(),
            time: l.record.time,
            verified: l.record.verified,
            complete: l.record.complete,
            reasons,
        };
        if decision.keep {
            kept.push(entry(decision.reasons.clone()));
        } else if let Some(p) = protection(&l.record) {
            tracing::warn!(
                artifact = %l.record.name, protection = %p,
                "prune: refused a deletion the policy planned"
            );
            refusals.push(Refusal {
                name: l.record.name.clone(),
                time: l.record.time,
                protection: p.clone(),
                planned: decision.reasons.clone(),
            });
            kept.push(entry(vec![p]));
        } else {
            to_delete.push((entry(decision.reasons.clone()), l));
        }
    }
    kept.sort_by(|a, b| (b.time, &b.name).cmp(&(a.time, &a.name)));
    refusals.sort_by(|a, b| (b.time, &b.name).cmp(&(a.time, &a.name)));
    to_delete.sort_by(|a, b| (a.0.time, &a.0.name).cmp(&(b.0.time, &b.0.name)));
    for f in &plan.flags {
        tracing::warn!(flag = %f, "prune: retention flag");
    }

    // Delete only on proof (seeds/002 "verify newer backup exists before deleting expired"):
    // every deletion here relies on the newest verified artifact of this sink; verify it deeply
    // (decrypt, every entry against the manifest, ciphertext against the sidecar) first.
    if let (Some(repo), false) = (repository, to_delete.is_empty() || options.dry_run) {
        let unproven = match &relied_on {
            None => Some("no newer verified artifact to prove".to_owned()),
            Some(c) => {
                let report = repo
                    .verifier()
                    .verify_expecting(sink, &c.name, &**repo.cipher(), c.expected())
                    .await;
                match report {
                    Ok(r) => {
                        if let Err(e) = repo.record_verification(sink, &c.name, &r).await {
                            tracing::error!(artifact = %c.name, error = %e, "prune: cannot record the verification");
                        }
                        (!r.passed()).then(|| {
                            let failed: Vec<String> = r
                                .checks
                                .iter()
                                .filter(|c| !c.passed)
                                .map(|c| format!("{}: {}", c.name, c.detail))
                                .collect();
                            format!(
                                "`{}` failed deep verification ({})",
                                c.name,
                                failed.join("; ")
                            )
                        })
                    }
                    Err(e) => Some(format!("`{}` could not be verified: {e}", c.name)),
                }
            }
        };
        if let Some(why) = unproven {
            tracing::error!(sink = %sink_name, %why, "prune: the backup deletions rely on is unproven; deleting nothing");
            for (entry, _) in to_delete.drain(..) {
                refusals.push(Refusal {
                    name: entry.name.clone(),
                    time: entry.time,
                    protection: Reason::NewerBackupUnproven,
                    planned: entry.reasons.clone(),
                });
                kept.push(PruneEntry {
                    reasons: vec![Reason::NewerBackupUnproven],
                    ..entry
                });
            }
            unproven_detail = Some(why);
        }
    }

    let mut deleted = Vec::new();
    let mut failures = Vec::new();
    for (entry, l) in to_delete {
        let reasons: Vec<String> = entry.reasons.iter().map(ToString::to_string).collect();
        if let Some(log) = audit {
            log.append(AuditEvent::PruneDeletion {
                sink: sink_name.clone(),
                artifact: entry.name.clone(),
                reasons: reasons.clone(),
                dry_run: options.dry_run,
            })?;
        }
        let reasons = reasons.join(", ");
        if options.dry_run {
            tracing::info!(artifact = %entry.name, %reasons, "prune (dry run): would delete");
            deleted.push(entry);
            continue;
        }
        if let Err(f) = delete_backup(sink, &l).await {
            tracing::error!(
                artifact = %entry.name, object = %f.object, error = %f.error,
                "prune: deletion failed"
            );
            failures.push(f);
            continue;
        }
        tracing::info!(artifact = %entry.name, %reasons, "prune: deleted");
        deleted.push(entry);
    }

    let report = PruneReport {
        sink: sink_name,
        now,
        dry_run: options.dry_run,
        listed: records.len(),
        kept,
        deleted,
        refusals,
        failures,
        flags: plan.flags,
        anomalies,
        unproven: unproven_detail,
    };
    tracing::info!(
        listed = report.listed,
        kept = report.kept.len(),
        deleted = report.deleted.len(),
        refused = report.refusals.len(),
        failed = report.failures.len(),
        "prune finished"
    );
    if let Some(log) = audit {
        log.append(AuditEvent::Prune {
            sink: report.sink.clone(),
            kept: report.kept.len() as u64,
            deleted: report.deleted.len() as u64,
            dry_run: report.dry_run,
            refusals: report.attention(),
        })?;
    }
    Ok(report)
}

fn check_listing(sink: &str, listed: usize, options: &PruneOptions) -> Result<()> {
    let Some(previous) = options.previous_count else {
        return Ok(());
    };
    if options.allow_listing_drop || previous == 0 || listed * 2 >= previous {
        return Ok(());
    }
    Err(Error::ListingDrop {
        sink: sink.to_owned(),
        prefix: options.prefix.clone(),
        listed,
        previous,
    })
}

fn inconsistent_plan(sink: &str, what: &str) -> Error {
    Error::Retention(format!(
        "refusing to prune sink `{sink}`: the retention policy's plan {what}; nothing was \
         deleted (this is a bug in the policy)"
    ))
}

/// One listed artifact with its state.
struct Listed {
    copy: CatalogCopy,
    record: BackupRecord,
}

/// Deletes the sidecar (if any), then the artifact; see the module docs for why in this order.
async fn delete_backup(sink: &dyn Sink, l: &Listed) -> std::result::Result<(), DeleteFailure> {
    let fail = |object: String, e: &Error| DeleteFailure {
        name: l.record.name.clone(),
        object,
        error: e.to_string(),
        retryable: e.is_retryable(),
    };
    if l.copy.has_sidecar {
        let object = l.copy.name.sidecar_object();
        sink.delete(&object).await.map_err(|e| fail(object, &e))?;
    }
    let object = l.copy.name.artifact_object();
    sink.delete(&object).await.map_err(|e| fail(object, &e))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Mutex;

    use async_trait::async_trait;
    use bytes::Bytes;
    use futures::executor::block_on;
    use proptest::prelude::*;

    use super::*;
    use crate::artifact::{
        ARTIFACT_EXTENSION, ArtifactName, SIDECAR_FORMAT, Sidecar, SidecarVerification,
    };
    use crate::memory::MemorySink;
    use crate::retention::{Decision, RetentionPlan};
    use crate::sink::{ByteStream, SinkInfo, SinkUpload};
    use crate::sink::{ObjectMeta, SinkExt};

    const NOW: &str = "2026-11-21T12:00:00Z";

    fn now() -> Timestamp {
        NOW.parse().unwrap()
    }

    fn days_ago(d: i64) -> Timestamp {
        now() - SignedDuration::from_hours(24 * d)
    }

    #[derive(Clone, Copy, Debug)]
    enum State {
        Verified,
        Unverified,
        /// Artifact without a sidecar.
        Incomplete,
    }

    /// Stores an artifact of 100 bytes and, unless incomplete, its sidecar.
    fn put(sink: &MemorySink, prefix: &str, time: Timestamp, state: State) -> ArtifactName {
        let name = ArtifactName::new(prefix, time).unwrap();
        block_on(sink.put_bytes(&name.artifact_object(), Bytes::from(vec![7u8; 100]))).unwrap();
        if !matches!(state, State::Incomplete) {
            let sidecar = sidecar(&name, 100, matches!(state, State::Verified));
            block_on(sink.put_bytes(
                &name.sidecar_object(),
                Bytes::from(serde_json::to_vec(&sidecar).unwrap()),
            ))
            .unwrap();
        }
        name
    }

    fn sidecar(name: &ArtifactName, size: u64, verified: bool) -> Sidecar {
        Sidecar {
            audit_head: None,
            format: SIDECAR_FORMAT.to_owned(),
            name: name.clone(),
            object: name.artifact_object(),
            created: name.time(),
            completed: name.time(),
            cipher_suite: "test".to_owned(),
            key_fingerprints: Vec::new(),
            ciphertext_size: size,
            ciphertext_sha256: "00".repeat(32),
            tool_version: "test".to_owned(),
            sources: Vec::new(),
            mac: None,
            verification: Some(SidecarVerification {
                at: name.time(),
                passed: verified,
                checks_passed: 3,
                checks_failed: u32::from(!verified),
            }),
        }
    }

    fn objects(sink: &MemorySink) -> BTreeSet<String> {
        block_on(sink.list(""))
            .unwrap()
            .into_iter()
            .map(|m| m.name)
            .collect()
    }

    fn names(entries: &[PruneEntry]) -> Vec<String> {
        entries.iter().map(|e| e.name.clone()).collect()
    }

    /// A policy that deletes every backup whose index in the input is in `delete` (or all).
    #[derive(Debug)]
    struct Scripted {
        delete: Option<Vec<bool>>,
        drop_one: bool,
    }

    impl Scripted {
        fn delete_all() -> Self {
            Self {
                delete: None,
                drop_one: false,
            }
        }
    }

    impl RetentionPolicy for Scripted {
        fn plan(&self, backups: &[BackupRecord], _now: Timestamp) -> Result<RetentionPlan> {
            let mut decisions: Vec<Decision> = backups
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    let delete = self
                        .delete
                        .as_ref()
                        .is_none_or(|d| d.get(i).copied().unwrap_or(false));
                    Decision {
                        name: b.name.clone(),
                        time: b.time,
                        keep: !delete,
                        reasons: vec![if delete {
                            Reason::NotSelected
                        } else {
                            Reason::Last { n: 1 }
                        }],
                    }
                })
                .collect();
            if self.drop_one {
                decisions.pop();
            }
            Ok(RetentionPlan {
                decisions,
                flags: Vec::new(),
            })
        }
    }

    #[test]
    fn deletes_oldest_first_sidecar_before_artifact_and_keeps_the_last() {
        let sink = MemorySink::new("local");
        let n: Vec<ArtifactName> = (10..14)
            .rev()
            .map(|d| put(&sink, DEFAULT_PREFIX, days_ago(d), State::Verified))
            .collect();
        // n[3] is the newest (10 days old).
        let report = block_on(prune(
            &sink,
            &Scripted::delete_all(),
            now(),
            &PruneOptions::new(),
        ))
        .unwrap();
        assert_eq!(report.listed, 4);
        assert_eq!(
            names(&report.deleted),
            [n[0].to_string(), n[1].to_string(), n[2].to_string()]
        );
        assert_eq!(report.deleted[0].reasons, [Reason::NotSelected]);
        assert_eq!(names(&report.kept), [n[3].to_string()]);
        assert_eq!(report.refusals.len(), 1);
        assert_eq!(report.refusals[0].protection, Reason::LastBackup);
        assert_eq!(report.refusals[0].planned, [Reason::NotSelected]);
        assert_eq!(report.remaining(), 1);
        assert!(!report.is_clean());
        assert_eq!(
            objects(&sink),
            BTreeSet::from([n[3].artifact_object(), n[3].sidecar_object()])
        );
    }

    #[test]
    fn dry_run_deletes_nothing() {
        let sink = MemorySink::new("local");
        for d in 10..14 {
            put(&sink, DEFAULT_PREFIX, days_ago(d), State::Verified);
        }
        let before = objects(&sink);
        let report = block_on(prune(
            &sink,
            &Scripted::delete_all(),
            now(),
            &PruneOptions::new().dry_run(true),
        ))
        .unwrap();
        assert!(report.dry_run);
        assert_eq!(report.deleted.len(), 3);
        assert_eq!(report.remaining(), 4);
        assert_eq!(objects(&sink), before);
    }

    #[test]
    fn refuses_every_protected_deletion() {
        let sink = MemorySink::new("local");
        let future = put(
            &sink,
            DEFAULT_PREFIX,
            now() + SignedDuration::from_hours(24 * 30),
            State::Verified,
        );
        let young = put(&sink, DEFAULT_PREFIX, days_ago(2), State::Unverified);
        let unverified = put(&sink, DEFAULT_PREFIX, days_ago(10), State::Unverified);
        let newest_verified = put(&sink, DEFAULT_PREFIX, days_ago(11), State::Verified);
        let older = put(&sink, DEFAULT_PREFIX, days_ago(12), State::Verified);
        let incomplete = put(&sink, DEFAULT_PREFIX, days_ago(20), State::Incomplete);
        let report = block_on(prune(
            &sink,
            &Scripted::delete_all(),
            now(),
            &PruneOptions::new(),
        ))
        .unwrap();
        let refused: Vec<(String, Reason)> = report
            .refusals
            .iter()
            .map(|r| (r.name.clone(), r.protection.clone()))
            .collect();
        assert_eq!(
            refused,
            [
                (future.to_string(), Reason::FutureDated),
                (young.to_string(), Reason::MinAge),
                (unverified.to_string(), Reason::NoNewerVerified),
                (newest_verified.to_string(), Reason::NewestVerified),
            ]
        );
        assert_eq!(
            names(&report.deleted),
            [incomplete.to_string(), older.to_string()]
        );
        assert!(!report.deleted[0].complete);
        let left = objects(&sink);
        for kept in [&future, &young, &unverified, &newest_verified] {
            assert!(left.contains(&kept.artifact_object()));
            assert!(left.contains(&kept.sidecar_object()));
        }
        assert_eq!(left.len(), 8);
    }

    #[test]
    fn executor_min_age_applies_whatever_the_policy_says() {
        let sink = MemorySink::new("local");
        put(&sink, DEFAULT_PREFIX, days_ago(1), State::Verified);
        let old = put(&sink, DEFAULT_PREFIX, days_ago(3), State::Verified);
        let report = block_on(prune(
            &sink,
            &Scripted::delete_all(),
            now(),
            &PruneOptions::new(),
        ))
        .unwrap();
        assert!(report.deleted.is_empty());
        assert_eq!(report.refusals[1].protection, Reason::MinAge);
        let report = block_on(prune(
            &sink,
            &Scripted::delete_all(),
            now(),
            &PruneOptions::new().min_age(SignedDuration::from_hours(48)),
        ))
        .unwrap();
        assert_eq!(names(&report.deleted), [old.to_string()]);
    }

    #[test]
    fn refuses_a_listing_that_shrank() {
        let sink = MemorySink::new("offsite");
        let opts = PruneOptions::new().previous_count(30);
        let err = block_on(prune(&sink, &Scripted::delete_all(), now(), &opts)).unwrap_err();
        assert!(
            matches!(
                err,
                Error::ListingDrop {
                    listed: 0,
                    previous: 30,
                    ..
                }
            ),
            "expected Error::ListingDrop, got {err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains("lists 0"), "{msg}");
        assert!(msg.contains("wst prune --allow-listing-drop"), "{msg}");
        let report = block_on(prune(
            &sink,
            &Scripted::delete_all(),
            now(),
            &opts.clone().allow_listing_drop(true),
        ))
        .unwrap();
        assert_eq!(report.listed, 0);

        for d in 10..12 {
            put(&sink, DEFAULT_PREFIX, days_ago(d), State::Verified);
        }
        let before = objects(&sink);
        let err = block_on(prune(
            &sink,
            &Scripted::delete_all(),
            now(),
            &PruneOptions::new().previous_count(5),
        ))
        .unwrap_err();
        assert!(matches!(err, Error::ListingDrop { .. }));
        assert_eq!(objects(&sink), before);
        let report = block_on(prune(
            &sink,
            &Scripted::delete_all(),
            now(),
            &PruneOptions::new().previous_count(4),
        ))
        .unwrap();
        assert_eq!(report.deleted.len(), 1);
    }

    #[test]
    fn refuses_a_plan_that_skips_an_artifact() {
        let sink = MemorySink::new("local");
        for d in 10..14 {
            put(&sink, DEFAULT_PREFIX, days_ago(d), State::Verified);
        }
        let before = objects(&sink);
        let broken = Scripted {
            delete: None,
            drop_one: true,
        };
        let err = block_on(prune(&sink, &broken, now(), &PruneOptions::new())).unwrap_err();
        let Error::Retention(msg) = err else {
            panic!("expected Error::Retention, got {err:?}");
        };
        assert!(msg.contains("does not decide"), "{msg}");
        assert_eq!(objects(&sink), before);
    }

    #[test]
    fn odd_sidecars_make_artifacts_incomplete_and_are_reported() {
        let sink = MemorySink::new("local");
        let newest = put(&sink, DEFAULT_PREFIX, days_ago(10), State::Verified);
        let mismatched = put(&sink, DEFAULT_PREFIX, days_ago(11), State::Incomplete);
        let bad = sidecar(&mismatched, 99, true);
        block_on(sink.put_bytes(
            &mismatched.sidecar_object(),
            Bytes::from(serde_json::to_vec(&bad).unwrap()),
        ))
        .unwrap();
        let garbage = put(&sink, DEFAULT_PREFIX, days_ago(12), State::Incomplete);
        block_on(sink.put_bytes(&garbage.sidecar_object(), Bytes::from_static(b"{not json")))
            .unwrap();
        let orphan = ArtifactName::new(DEFAULT_PREFIX, days_ago(13)).unwrap();
        block_on(sink.put_bytes(
            &orphan.sidecar_object(),
            Bytes::from(serde_json::to_vec(&sidecar(&orphan, 100, true)).unwrap()),
        ))
        .unwrap();
        let other = put(&sink, "other-app", days_ago(30), State::Verified);

        let report = block_on(prune(
            &sink,
            &Scripted::delete_all(),
            now(),
            &PruneOptions::new().dry_run(true),
        ))
        .unwrap();
        assert_eq!(report.listed, 3);
        assert_eq!(report.anomalies.len(), 3);
        assert_eq!(
            report.anomalies[0],
            Anomaly::OrphanSidecar {
                object: orphan.sidecar_object()
            }
        );
        assert!(report.anomalies.iter().any(|a| matches!(a,
            Anomaly::SidecarMismatch { name, detail }
                if *name == mismatched.to_string() && detail.contains("99 bytes"))));
        assert!(report.anomalies.iter().any(|a| matches!(a,
            Anomaly::UnreadableSidecar { name, .. } if *name == garbage.to_string())));
        assert_eq!(names(&report.kept), [newest.to_string()]);
        assert!(report.deleted.iter().all(|e| !e.complete && !e.verified));
        assert!(objects(&sink).contains(&other.artifact_object()));
    }

    /// A sink whose artifact deletions fail, as a crash between the two deletions would.
    #[derive(Debug)]
    struct FailingArtifactDelete {
        inner: MemorySink,
        attempts: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl Sink for FailingArtifactDelete {
        fn info(&self) -> &SinkInfo {
            self.inner.info()
        }
        async fn put(&self, name: &str) -> Result<Box<dyn SinkUpload>> {
            self.inner.put(name).await
        }
        async fn get(&self, name: &str) -> Result<ByteStream> {
            self.inner.get(name).await
        }
        async fn head(&self, name: &str) -> Result<ObjectMeta> {
            self.inner.head(name).await
        }
        async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
            self.inner.list(prefix).await
        }
        async fn delete(&self, name: &str) -> Result<()> {
            self.attempts.lock().unwrap().push(name.to_owned());
            if name.ends_with(ARTIFACT_EXTENSION) {
                return Err(Error::Sink {
                    sink: "local".into(),
                    operation: "delete",
                    name: name.to_owned(),
                    retryable: true,
                    source: "injected failure".into(),
                });
            }
            self.inner.delete(name).await
        }
    }

    #[test]
    fn a_failed_artifact_delete_leaves_an_incomplete_artifact_the_next_prune_removes() {
        let inner = MemorySink::new("local");
        let newest = put(&inner, DEFAULT_PREFIX, days_ago(10), State::Verified);
        let old = put(&inner, DEFAULT_PREFIX, days_ago(11), State::Verified);
        let failing = FailingArtifactDelete {
            inner: inner.clone(),
            attempts: Mutex::default(),
        };
        let report = block_on(prune(
            &failing,
            &Scripted::delete_all(),
            now(),
            &PruneOptions::new(),
        ))
        .unwrap();
        assert_eq!(
            *failing.attempts.lock().unwrap(),
            [old.sidecar_object(), old.artifact_object()]
        );
        assert!(report.deleted.is_empty());
        assert_eq!(report.failures.len(), 1);
        assert_eq!(report.failures[0].object, old.artifact_object());
        assert!(report.failures[0].retryable);
        assert_eq!(
            objects(&inner),
            BTreeSet::from([
                newest.artifact_object(),
                newest.sidecar_object(),
                old.artifact_object()
            ])
        );

        let report = block_on(prune(
            &inner,
            &Scripted::delete_all(),
            now(),
            &PruneOptions::new(),
        ))
        .unwrap();
        assert_eq!(names(&report.deleted), [old.to_string()]);
        assert!(!report.deleted[0].complete);
        assert_eq!(
            objects(&inner),
            BTreeSet::from([newest.artifact_object(), newest.sidecar_object()])
        );
    }

    #[test]
    fn report_serializes() {
        let sink = MemorySink::new("local");
        put(&sink, DEFAULT_PREFIX, days_ago(10), State::Verified);
        put(&sink, DEFAULT_PREFIX, days_ago(11), State::Verified);
        let report = block_on(prune(
            &sink,
            &Scripted::delete_all(),
            now(),
            &PruneOptions::new(),
        ))
        .unwrap();
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["deleted"][0]["reasons"][0]["rule"], "not_selected");
        assert_eq!(json["refusals"][0]["protection"]["rule"], "last_backup");
        let back: PruneReport = serde_json::from_value(json).unwrap();
        assert_eq!(back, report);
    }

    #[test]
    fn audited_prune_records_each_deletion_before_the_summary() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(dir.path().join("audit.jsonl"), "test");
        let sink = MemorySink::new("local");
        let n: Vec<ArtifactName> = (10..13)
            .rev()
            .map(|d| put(&sink, DEFAULT_PREFIX, days_ago(d), State::Verified))
            .collect();
        let report = block_on(prune_audited(
            &sink,
            &Scripted::delete_all(),
            now(),
            &PruneOptions::new(),
            &log,
        ))
        .unwrap();
        assert_eq!(report.deleted.len(), 2);
        let events: Vec<AuditEvent> = log
            .records()
            .unwrap()
            .into_iter()
            .map(|r| r.event)
            .collect();
        assert_eq!(
            events,
            [
                AuditEvent::PruneDeletion {
                    sink: "local".into(),
                    artifact: n[0].to_string(),
                    reasons: vec!["not_selected".into()],
                    dry_run: false,
                },
                AuditEvent::PruneDeletion {
                    sink: "local".into(),
                    artifact: n[1].to_string(),
                    reasons: vec!["not_selected".into()],
                    dry_run: false,
                },
                AuditEvent::Prune {
                    sink: "local".into(),
                    kept: 1,
                    deleted: 2,
                    dry_run: false,
                    refusals: vec![format!(
                        "refused deleting `{}`: last_backup (the policy planned: not_selected)",
                        n[2]
                    )],
                },
            ]
        );
        assert!(log.verify().unwrap().intact());
    }

    #[test]
    fn audited_prune_records_a_refused_run() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(dir.path().join("audit.jsonl"), "test");
        let sink = MemorySink::new("offsite");
        let err = block_on(prune_audited(
            &sink,
            &Scripted::delete_all(),
            now(),
            &PruneOptions::new().previous_count(10),
            &log,
        ))
        .unwrap_err();
        assert!(matches!(err, Error::ListingDrop { .. }));
        let records = log.records().unwrap();
        assert_eq!(records.len(), 1);
        let AuditEvent::Prune {
            deleted, refusals, ..
        } = &records[0].event
        else {
            panic!("expected a prune record, got {:?}", records[0].event);
        };
        assert_eq!(*deleted, 0);
        assert!(refusals[0].contains("lists 0"), "{refusals:?}");
    }

    #[test]
    fn no_deletion_without_an_audit_record() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the log file should be: every append fails.
        let log = AuditLog::new(dir.path(), "test");
        let sink = MemorySink::new("local");
        for d in 10..13 {
            put(&sink, DEFAULT_PREFIX, days_ago(d), State::Verified);
        }
        let before = objects(&sink);
        let err = block_on(prune_audited(
            &sink,
            &Scripted::delete_all(),
            now(),
            &PruneOptions::new(),
            &log,
        ))
        .unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err:?}");
        assert_eq!(objects(&sink), before);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whatever a policy plans, the executor never deletes the newest backup or the newest
        /// verified one, nothing younger than min_age or dated after now, and nothing without a
        /// strictly newer verified backup left on the sink (design invariant 3).
        #[test]
        fn executor_enforces_invariants_against_any_plan(
            backups in prop::collection::btree_map(-5i64..40, 0..3u8, 0..12),
            delete in prop::collection::vec(any::<bool>(), 12),
        ) {
            let sink = MemorySink::new("local");
            let mut all = Vec::new();
            for (&day, &state) in &backups {
                let state = [State::Verified, State::Unverified, State::Incomplete][state as usize];
                let time = days_ago(day) - SignedDuration::from_mins(day.rem_euclid(7) * 13);
                all.push((put(&sink, DEFAULT_PREFIX, time, state), state));
            }
            let policy = Scripted { delete: Some(delete), drop_one: false };
            let report = block_on(prune(&sink, &policy, now(), &PruneOptions::new())).unwrap();
            let left = objects(&sink);
            let alive = |n: &ArtifactName| left.contains(&n.artifact_object());
            let counts = |n: &ArtifactName, s: State| {
                matches!(s, State::Verified) && n.time() <= now() && left.contains(&n.sidecar_object())
            };
            if let Some((newest, _)) = all.iter().max_by_key(|(n, _)| (n.time(), n.to_string())) {
                prop_assert!(alive(newest));
            }
            if let Some((nv, _)) = all.iter()
                .filter(|(n, s)| matches!(s, State::Verified) && n.time() <= now())
                .max_by_key(|(n, _)| (n.time(), n.to_string())) {
                prop_assert!(alive(nv) && left.contains(&nv.sidecar_object()));
            }
            prop_assert_eq!(report.deleted.len() + report.kept.len(), all.len());
            for (n, _) in all.iter().filter(|(n, _)| !alive(n)) {
                prop_assert!(n.time() <= now());
                prop_assert!(now().duration_since(n.time()) >= SignedDuration::from_hours(168));
                prop_assert!(!left.contains(&n.sidecar_object()));
                prop_assert!(all.iter().any(|(k, s)| alive(k) && counts(k, *s) && k.time() > n.time()));
            }
        }
    }
}
