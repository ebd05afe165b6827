//! The restore drill (doctrine 026 R7; seeds/002 `RESTORE_TESTING`): restore an artifact into an
//! isolated scratch environment, prove it, measure RTO and RPO, and report PASS or FAIL.

mod checks;
mod report;
mod restorer;
mod smoke;

pub use checks::{CheckContext, PostRestoreCheck, RestoredEntry, ScratchAccess};
pub use report::DrillReport;
pub use restorer::{EntryRestorer, ProofReport};
pub use smoke::SmokeTest;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use futures::FutureExt as _;
use serde::{Deserialize, Serialize};
use tracing::Instrument as _;

use crate::artifact::{ArtifactName, Sidecar};
use crate::audit::{AuditEvent, AuditLog};
use crate::cipher::Cipher;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::restore::{RestoreOptions, restore};
use crate::sink::{Sink, SinkExt};
use crate::verify::{ArtifactVerifier, Check, VerificationReport};

/// Which artifact a drill restores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrillSelection {
    /// The newest complete artifact.
    Newest,
    /// A random complete artifact from the last `days` days (seeds/002: "random selection from
    /// last 30 days"); `seed` makes the choice reproducible.
    RandomWithin {
        /// Window, days.
        days: u32,
        /// Random seed.
        seed: u64,
    },
}

/// How to run a drill.
#[derive(Debug, Clone)]
pub struct DrillOptions {
    /// The project name for the report title.
    pub project: String,
    /// Who runs (or authorized) the drill: recorded in the report and the audit log.
    pub tested_by: String,
    /// Which artifact.
    pub selection: DrillSelection,
    /// A directory for the isolated restore; the drill restores into a new
    /// `restore-test-YYYYMMDD-HHMMSS` directory (UTC) inside it (`…-2`, `…-3` when another drill
    /// started in the same second).
    pub scratch_dir: PathBuf,
    /// Production paths the restore must not touch.
    pub protected_paths: Vec<PathBuf>,
    /// Remove the restored files afterwards.
    pub cleanup: bool,
    /// RTO target, seconds (seeds/002 "Standard": 4 hours).
    pub rto_target_seconds: f64,
    /// RPO target, seconds (seeds/002 "Standard": 24 hours).
    pub rpo_target_seconds: f64,
    /// Post-restore checks, run in this order after the restorers' proofs and before any
    /// cleanup (see [`PostRestoreCheck`]). Default none.
    pub checks: Vec<Arc<dyn PostRestoreCheck>>,
    /// The clock that dates the drill (the report's `DATE`, the restore directory's name, the
    /// RPO measured against the artifact's time, the selection window). Default
    /// [`Clock::system`]; RTO is measured with a monotonic clock.
    pub clock: Clock,
    /// The erasure register's entries, re-applied after the restore and before the
    /// post-restore checks (issue 18): path globs and bucket prefixes to the restored tree,
    /// SQL statements through each [`EntryRestorer::erase`]. Each outcome is in the report
    /// and a failure fails the drill. [`Repository::drill`](crate::Repository::drill) fills
    /// it from the register. Default none.
    pub erasures: Vec<crate::erasure::ErasureEntry>,
    /// Register copies that could not be used and whose entry is not known from another
    /// sink (`ErasureRegister::uncovered`): each fails the drill (an erasure may be missing).
    pub erasure_anomalies: Vec<String>,
}

impl DrillOptions {
    /// A drill of the newest artifact into `scratch_dir` with the seeds/002 "Standard" targets
    /// (RTO 4 h, RPO 24 h), cleaning up afterwards.
    pub fn new(project: &str, tested_by: &str, scratch_dir: impl Into<PathBuf>) -> Self {
        Self {
            project: project.to_owned(),
            tested_by: tested_by.to_owned(),
            selection: DrillSelection::Newest,
            scratch_dir: scratch_dir.into(),
            protected_paths: Vec::new(),
            cleanup: true,
            rto_target_seconds: 4.0 * 3600.0,
            rpo_target_seconds: 24.0 * 3600.0,
            checks: Vec::new(),
            clock: Clock::system(),
            erasures: Vec::new(),
            erasure_anomalies: Vec::new(),
        }
    }

    /// Dates the drill with `clock`.
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Adds a post-restore check (run after those added before).
    #[must_use]
    pub fn with_check(mut self, check: Arc<dyn PostRestoreCheck>) -> Self {
        self.checks.push(check);
        self
    }
}

/// The complete artifacts on `sink` (artifact and sidecar present), oldest first.
///
/// # Errors
/// [`Error::Sink`] when the sink cannot be listed.
pub async fn complete_artifacts(sink: &dyn Sink) -> Result<Vec<ArtifactName>> {
    let listing = sink.list("").await?;
    let sidecars: std::collections::HashSet<&str> = listing
        .iter()
        .filter_map(|m| m.name.strip_suffix(crate::artifact::SIDECAR_EXTENSION))
        .collect();
    let mut names: Vec<ArtifactName> = listing
        .iter()
        .filter_map(|m| m.name.strip_suffix(crate::artifact::ARTIFACT_EXTENSION))
        .filter(|stem| sidecars.contains(stem))
        .filter_map(|stem| ArtifactName::parse(stem).ok())
        .collect();
    names.sort();
    Ok(names)
}

pub(crate) fn select(
    names: &[ArtifactName],
    selection: DrillSelection,
    now: jiff::Timestamp,
) -> Option<ArtifactName> {
    match selection {
        DrillSelection::Newest => names.last().cloned(),
        DrillSelection::RandomWithin { days, seed } => {
            let since = now
                .checked_sub(jiff::SignedDuration::from_hours(24 * i64::from(days)))
                .ok()?;
            let window: Vec<&ArtifactName> = names.iter().filter(|n| n.time() >= since).collect();
            if window.is_empty() {
                return None;
            }
            // splitmix64 of the seed: reproducible, uniform enough for a drill choice.
            let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            Some(window[(z % window.len() as u64) as usize].clone())
        }
    }
}

/// Runs a restore drill against `sink` (doctrine 026 R7).
///
/// Steps: select an artifact; verify it ([`ArtifactVerifier`], deep); restore the files into a
/// new isolated directory; hand each restored entry whose source has an [`EntryRestorer`] to it
/// (e.g. a scratch database) for proof; run the post-restore checks
/// ([`DrillOptions::checks`]: SQL assertions, database ↔ object cross-checks, smoke tests)
/// against the restored tree and scratch systems; then clean up — the restorers'
/// [`EntryRestorer::cleanup`] (e.g. dropping the scratch database) and, if asked, the restored
/// files — never before the checks ran. RTO is measured from the drill's start to the end of
/// the checks (seeds/002: "time from start to verified restoration"); RPO is drill start −
/// backup time (data RPO when a restorer reports the newest data time). Both are checked
/// against the targets, and the drill is recorded in `audit` when given.
///
/// A drill that fails any check is reported as FAIL, never as an `Err`. When the file restore
/// fails, the post-restore checks do not run and each is recorded as failed.
///
/// # Errors
/// [`Error::NotFound`] when the sink holds no complete artifact to drill (in the selection
/// window); [`Error::Sink`] when it cannot be listed; [`Error::Io`] when the audit record
/// cannot be written.
pub async fn restore_drill(
    sink: &dyn Sink,
    cipher: &dyn Cipher,
    verifier: &ArtifactVerifier,
    restorers: &[Arc<dyn EntryRestorer>],
    options: &DrillOptions,
    audit: Option<&AuditLog>,
) -> Result<DrillReport> {
    let span = tracing::info_span!("restore_drill", sink = %sink.info().name);
    drill(sink, cipher, verifier, restorers, options, audit)
        .instrument(span)
        .await
}

async fn drill(
    sink: &dyn Sink,
    cipher: &dyn Cipher,
    verifier: &ArtifactVerifier,
    restorers: &[Arc<dyn EntryRestorer>],
    options: &DrillOptions,
    audit: Option<&AuditLog>,
) -> Result<DrillReport> {
    let date = options.clock.now();
    let started = Instant::now();
    let names = complete_artifacts(sink).await?;
    let name = select(&names, options.selection, date).ok_or_else(|| Error::NotFound {
        sink: sink.info().name.clone(),
        name: "a complete artifact to drill (none in the selection window)".into(),
    })?;
    let sidecar: Option<Sidecar> = sink
        .get_bytes(&name.sidecar_object(), 1 << 20)
        .await
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let expected = sidecar.map(|s| (s.ciphertext_size, s.ciphertext_sha256));
    let (report, _) = drill_artifact(
        sink,
        &name,
        expected,
        cipher,
        verifier,
        restorers,
        options,
        (date, started),
    )
    .await?;
    if let Some(log) = audit {
        audit_drill(log, &report, options)?;
    }
    Ok(report)
}

/// Records `report` in `log` (doctrine R7).
pub(crate) fn audit_drill(
    log: &AuditLog,
    report: &DrillReport,
    options: &DrillOptions,
) -> Result<()> {
    log.append(AuditEvent::RestoreDrill {
        artifact: report.artifact.clone(),
        passed: report.passed,
        rto_seconds: report.rto_seconds,
        rpo_seconds: report.rpo_seconds,
        authorized_by: options.tested_by.clone(),
        report: report.restore_target.display().to_string(),
    })?;
    Ok(())
}

/// Drills `name` on `sink`: the ciphertext must have `expected` `(size, SHA-256 hex)` when
/// given (the copy's sidecar). `(date, started)`: when the drill began (dates the report, the
/// RPO) and its monotonic start (the RTO counts from there, copies rejected before included).
/// Returns the report and the verification of the copy.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn drill_artifact(
    sink: &dyn Sink,
    name: &ArtifactName,
    expected: Option<(u64, String)>,
    cipher: &dyn Cipher,
    verifier: &ArtifactVerifier,
    restorers: &[Arc<dyn EntryRestorer>],
    options: &DrillOptions,
    (date, clock): (jiff::Timestamp, Instant),
) -> Result<(DrillReport, VerificationReport)> {
    let name = name.clone();
    let backup_size = match &expected {
        Some((size, _)) => *size,
        None => sink
            .head(&name.artifact_object())
            .await
            .map_or(0, |m| m.size),
    };
    let stamp = date.strftime("%Y%m%d-%H%M%S").to_string();
    // A new directory even when another drill started in the same second.
    let target = (1..=1000)
        .map(|n: u32| {
            options.scratch_dir.join(if n == 1 {
                format!("restore-test-{stamp}")
            } else {
                format!("restore-test-{stamp}-{n}")
            })
        })
        .find(|p| !p.exists())
        .unwrap_or_else(|| options.scratch_dir.join(format!("restore-test-{stamp}")));
    let mut checks = Vec::new();

    // 1. Verify (doctrine R5) before trusting anything.
    let verification = verifier
        .verify_expecting(sink, &name, cipher, expected.clone())
        .await?;
    checks.push(if verification.passed() {
        Check::pass(
            "verify",
            format!("{} checks passed", verification.checks.len()),
        )
    } else {
        Check::fail(
            "verify",
            verification
                .failures()
                .map(|c| format!("{}: {}", c.name, c.detail))
                .collect::<Vec<_>>()
                .join("; "),
        )
    });

    // 2. Files into an isolated directory.
    // 3. Each restorable source (databases) into its scratch system, with proof.
    let mut restored: Vec<(&Arc<dyn EntryRestorer>, ProofReport)> = Vec::new();
    let mut re_erasures: Vec<crate::erasure::ReErasure> = Vec::new();
    for a in &options.erasure_anomalies {
        checks.push(Check::fail(
            "erasure_register",
            format!("a register copy is not usable and its entry is unknown: {a}"),
        ));
    }
    let mut restore_opts = RestoreOptions::isolated(&target)
        .protect(options.protected_paths.clone())
        .with_clock(options.clock.clone());
    // The drill proves the artifact its sidecar describes, not whatever object holds its name.
    restore_opts.expected_ciphertext = expected;
    let files_restored = match restore(sink, &name, cipher, &restore_opts).await {
        Ok(rr) => {
            checks.push(Check::pass(
                "restore_files",
                format!(
                    "{} entries, {} bytes into {}",
                    rr.entries,
                    rr.bytes,
                    target.display()
                ),
            ));
            // The register's paths and bucket objects, before anything reads the tree.
            match crate::erasure::erase_tree(&target, &options.erasures) {
                Ok(done) => {
                    let (files, objects) = done
                        .iter()
                        .fold((0, 0), |(f, o), r| (f + r.files, o + r.objects));
                    if !done.is_empty() {
                        checks.push(Check::pass(
                            "erasure:files",
                            format!(
                                "{} register entries re-applied to the restored tree: {files} files, {objects} bucket objects removed",
                                done.len()
                            ),
                        ));
                    }
                    re_erasures.extend(done);
                }
                Err(e) => checks.push(Check::fail("erasure:files", e.to_string())),
            }
            for desc in &rr.sources {
                let Some(r) = restorers.iter().find(|r| r.source_kind() == desc.kind) else {
                    continue;
                };
                let file = target.join(desc.root.trim_end_matches('/'));
                match r.restore_and_prove(&file, desc).await {
                    Ok(mut proof) => {
                        proof.kind.clone_from(&desc.kind);
                        proof.source.clone_from(&desc.name);
                        checks.extend(proof.checks.iter().cloned());
                        // The register's SQL, after the proof against the manifest and
                        // before any check or person sees the scratch system.
                        if options.erasures.iter().any(|e| !e.sql.is_empty()) {
                            let name = format!("erasure:db:{}", desc.name);
                            match r.erase(&proof, &options.erasures).await {
                                Ok(done) => {
                                    let rows: u64 = done.iter().map(|d| d.rows).sum();
                                    let failed: Vec<String> = done
                                        .iter()
                                        .filter_map(|d| {
                                            d.error
                                                .as_ref()
                                                .map(|e| format!("#{} {}: {e}", d.seq, d.id))
                                        })
                                        .collect();
                                    checks.push(if failed.is_empty() {
                                        Check::pass(
                                            name,
                                            format!(
                                                "{} register entries re-applied to {}: {rows} rows",
                                                done.len(),
                                                proof.target
                                            ),
                                        )
                                    } else {
                                        Check::fail(
                                            name,
                                            format!(
                                                "register entries could not be applied: {}",
                                                failed.join("; ")
                                            ),
                                        )
                                    });
                                    re_erasures.extend(done);
                                }
                                Err(e) => checks.push(Check::fail(name, e.to_string())),
                            }
                        }
                        restored.push((r, proof));
                    }
                    Err(e) => {
                        checks.push(Check::fail(format!("restore:{}", desc.name), e.to_string()));
                    }
                }
            }
            true
        }
        Err(e) => {
            checks.push(Check::fail("restore_files", e.to_string()));
            false
        }
    };

    // 4. Post-restore checks, while every scratch system still exists.
    let (post_restore_checks, application_connected) = post_restore(
        options,
        &target,
        &name.to_string(),
        &restored,
        files_restored,
    )
    .await;
    checks.extend(post_restore_checks.iter().cloned());
    let rto_seconds = clock.elapsed().as_secs_f64();

    // 5. Clean up: scratch systems first (after the checks), then the restored files.
    for (r, proof) in &restored {
        match r.cleanup(proof).await {
            Ok(done) => checks.extend(done),
            Err(e) => checks.push(Check::fail(
                format!("cleanup:{}", proof.source),
                e.to_string(),
            )),
        }
    }
    let proofs: Vec<ProofReport> = restored.into_iter().map(|(_, p)| p).collect();
    let rpo_seconds = date.duration_since(name.time()).as_secs_f64();
    let data_rpo_seconds = proofs
        .iter()
        .filter_map(|p| p.newest_data)
        .max()
        .map(|t| name.time().duration_since(t).as_secs_f64().max(0.0));
    checks.push(if rto_seconds <= options.rto_target_seconds {
        Check::pass(
            "rto_within_target",
            format!("{rto_seconds:.1} s ≤ {:.0} s", options.rto_target_seconds),
        )
    } else {
        Check::fail(
            "rto_within_target",
            format!("{rto_seconds:.1} s > {:.0} s", options.rto_target_seconds),
        )
    });
    checks.push(if rpo_seconds <= options.rpo_target_seconds {
        Check::pass(
            "rpo_within_target",
            format!("{rpo_seconds:.0} s ≤ {:.0} s", options.rpo_target_seconds),
        )
    } else {
        Check::fail(
            "rpo_within_target",
            format!(
                "the backup is {rpo_seconds:.0} s old > {:.0} s: back up more often (doctrine R1)",
                options.rpo_target_seconds
            ),
        )
    });

    let cleaned_up = options.cleanup && std::fs::remove_dir_all(&target).is_ok();
    let passed = checks.iter().all(|c| c.passed);
    let report = DrillReport {
        project: options.project.clone(),
        tested_by: options.tested_by.clone(),
        date,
        artifact: name.to_string(),
        selection: options.selection,
        sink: sink.info().name.clone(),
        backup_time: name.time(),
        backup_size,
        restore_target: target,
        proofs,
        rto_seconds,
        rpo_seconds,
        data_rpo_seconds,
        rto_target_seconds: options.rto_target_seconds,
        rpo_target_seconds: options.rpo_target_seconds,
        checks,
        post_restore_checks,
        application_connected,
        passed,
        cleaned_up,
        rejected_copies: Vec::new(),
        re_erasures,
    };
    if passed {
        tracing::info!(artifact = %name, rto = rto_seconds, "restore drill passed");
    } else {
        tracing::error!(artifact = %name, issues = ?report.issues(), "restore drill FAILED");
    }
    Ok((report, verification))
}

/// Runs the configured post-restore checks; returns their results and the "application
/// connected" outcome. Scratch accesses (and their private files) live only inside.
async fn post_restore(
    options: &DrillOptions,
    target: &Path,
    artifact: &str,
    restored: &[(&Arc<dyn EntryRestorer>, ProofReport)],
    files_restored: bool,
) -> (Vec<Check>, Option<bool>) {
    let mut results = Vec::new();
    let mut application: Option<bool> = None;
    if options.checks.is_empty() {
        return (results, application);
    }
    if !files_restored {
        for check in &options.checks {
            results.push(Check::fail(
                format!("check:{}", check.name()),
                "not run: the file restore failed (see `restore_files`)",
            ));
            if check.proves_application() {
                application = Some(false);
            }
        }
        return (results, application);
    }
    let mut entries = Vec::with_capacity(restored.len());
    for (r, proof) in restored {
        let access = match r.scratch_access(proof).await {
            Ok(a) => a,
            Err(e) => {
                results.push(Check::fail(
                    format!("scratch_access:{}", proof.source),
                    format!("the checks get no access to `{}`: {e}", proof.target),
                ));
                None
            }
        };
        entries.push(RestoredEntry::new(proof.clone(), access));
    }
    let context = CheckContext::new(target, artifact, &entries);
    for check in &options.checks {
        let outcome = std::panic::AssertUnwindSafe(check.run(&context))
            .catch_unwind()
            .await;
        let found = match outcome {
            Ok(found) if found.is_empty() => vec![Check::fail(
                format!("check:{}", check.name()),
                "the check returned no result (a check must pass or fail)",
            )],
            Ok(found) => found,
            Err(panic) => {
                let why = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_owned());
                vec![Check::fail(
                    format!("check:{}", check.name()),
                    format!("the check panicked: {why}"),
                )]
            }
        };
        if check.proves_application() {
            let ok = found.iter().all(|c| c.passed);
            application = Some(application.unwrap_or(true) && ok);
        }
        results.extend(found);
    }
    drop(entries); // private files (passfiles) go before the scratch systems do
    (results, application)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> DrillReport {
        DrillReport {
            project: "wst".into(),
            tested_by: "otto".into(),
            date: jiff::Timestamp::UNIX_EPOCH,
            artifact: "wst-backup-20260101-020000".into(),
            selection: DrillSelection::Newest,
            sink: "local-c".into(),
            backup_time: jiff::Timestamp::UNIX_EPOCH,
            backup_size: 1,
            restore_target: PathBuf::from("/scratch/restore-test"),
            proofs: Vec::new(),
            rto_seconds: 1.0,
            rpo_seconds: 1.0,
            data_rpo_seconds: None,
            rto_target_seconds: 60.0,
            rpo_target_seconds: 60.0,
            checks: Vec::new(),
            post_restore_checks: Vec::new(),
            application_connected: None,
            passed: true,
            cleaned_up: true,
            rejected_copies: Vec::new(),
            re_erasures: Vec::new(),
        }
    }

    #[test]
    fn markdown_has_a_post_restore_section_and_lists_each_check_once() {
        let mut r = report();
        let sql = Check::fail(
            "sql:orphans",
            "expected no rows, got 1 row × 1 column: [`7`]",
        );
        let smoke = Check::pass("smoke:app", "`app` exited with status 0 after 0.10 s");
        r.checks = vec![Check::pass("verify", "ok"), sql.clone(), smoke.clone()];
        r.post_restore_checks = vec![sql, smoke];
        r.application_connected = Some(true);
        r.passed = false;
        let md = r.to_markdown();
        let section = md
            .split("## POST_RESTORE_CHECKS\n")
            .nth(1)
            .and_then(|rest| rest.split("## RESULT").next())
            .expect("section before RESULT");
        assert_eq!(
            section,
            "- [FAIL] sql:orphans: expected no rows, got 1 row × 1 column: [`7`]\n\
             - [PASS] smoke:app: `app` exited with status 0 after 0.10 s\n"
        );
        assert!(md.contains("- application connected: yes\n"), "{md}");
        assert_eq!(md.matches("smoke:app").count(), 1, "{md}");
        assert!(md.contains("- [PASS] verify: ok"), "{md}");
        assert!(md.contains("ISSUES: sql:orphans: expected no rows"), "{md}");
    }

    #[test]
    fn without_checks_the_report_is_as_before() {
        let md = report().to_markdown();
        assert!(!md.contains("POST_RESTORE_CHECKS"), "{md}");
        assert!(md.contains("- application connected: not tested\n"), "{md}");
    }

    #[test]
    fn reports_written_before_post_restore_checks_still_read() {
        let mut json = serde_json::to_value(report()).unwrap();
        let object = json.as_object_mut().unwrap();
        object.remove("post_restore_checks");
        object.remove("application_connected");
        object.insert(
            "proofs".into(),
            serde_json::json!([{
                "target": "wst_restore_x on wst@db:5432",
                "checks": [],
                "schema_matches": true,
                "rows": [3, 3],
                "newest_data": null
            }]),
        );
        let old: DrillReport = serde_json::from_value(json).unwrap();
        assert!(old.post_restore_checks.is_empty());
        assert_eq!(old.application_connected, None);
        assert_eq!(old.proofs[0].kind, "");
        assert_eq!(old.proofs[0].scratch_name, None);
        assert!(!old.proofs[0].scratch_created);
    }

    #[test]
    fn scratch_access_redacts_and_hands_out_its_handle() {
        #[derive(Debug, PartialEq)]
        struct Db(&'static str);
        let access = ScratchAccess::new()
            .with_env("PGDATABASE", "old")
            .with_env("PGDATABASE", "wst_restore_x")
            .with_env("PGHOST", "db")
            .with_redactor(|t| t.replace("hunter2", "[REDACTED]"))
            .with_handle(Db("wst_restore_x"));
        assert_eq!(
            access.env(),
            [
                ("PGDATABASE".to_owned(), "wst_restore_x".to_owned()),
                ("PGHOST".to_owned(), "db".to_owned())
            ]
        );
        assert_eq!(access.redact("pw hunter2!"), "pw [REDACTED]!");
        assert_eq!(access.handle::<Db>(), Some(&Db("wst_restore_x")));
        assert_eq!(access.handle::<String>(), None);
        assert_eq!(ScratchAccess::new().redact("hunter2"), "hunter2");
    }
}
