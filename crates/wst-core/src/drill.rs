//! The restore drill (doctrine 026 R7; seeds/002 `RESTORE_TESTING`): restore an artifact into an
//! isolated scratch environment, prove it, measure RTO and RPO, and report PASS or FAIL.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::artifact::{ArtifactName, Sidecar};
use crate::audit::{AuditEvent, AuditLog};
use crate::cipher::Cipher;
use crate::error::{Error, Result};
use crate::restore::{RestoreOptions, restore};
use crate::sink::{Sink, SinkExt};
use crate::source::SourceDescription;
use crate::verify::{ArtifactVerifier, Check, Verifier};

/// Restores one restored entry into a scratch system and proves it against its source's
/// manifest description — e.g. wst-pg restores `wst_dev_database.backup` into a scratch
/// database and compares row counts and the schema fingerprint.
#[async_trait]
pub trait EntryRestorer: Send + Sync + std::fmt::Debug {
    /// The source kind this restorer handles (the manifest's `SourceDescription::kind`, e.g.
    /// `"postgresql"`).
    fn source_kind(&self) -> &str;

    /// Restores `file` (the entry as restored on disk) and proves it against `description`.
    /// A failed proof is reported in the returned checks; `Err` means the restore could not run.
    ///
    /// # Errors
    /// The implementation's error, wrapped as [`Error::Source`].
    async fn restore_and_prove(
        &self,
        file: &Path,
        description: &SourceDescription,
    ) -> Result<ProofReport>;
}

/// What an [`EntryRestorer`] restored and proved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProofReport {
    /// Where it restored to, e.g. the scratch database's name (no credentials).
    pub target: String,
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
    /// `restore-test-YYYYMMDD-HHMMSS` directory inside it.
    pub scratch_dir: PathBuf,
    /// Production paths the restore must not touch.
    pub protected_paths: Vec<PathBuf>,
    /// Remove the restored files afterwards.
    pub cleanup: bool,
    /// RTO target, seconds (seeds/002 "Standard": 4 hours).
    pub rto_target_seconds: f64,
    /// RPO target, seconds (seeds/002 "Standard": 24 hours).
    pub rpo_target_seconds: f64,
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
        }
    }
}

/// The drill's result, rendered as Markdown ([`DrillReport::to_markdown`], the seeds/002
/// `RESTORE_TEST_REPORT` template) and JSON (serde).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrillReport {
    /// Project name.
    pub project: String,
    /// Who ran it.
    pub tested_by: String,
    /// Drill start (UTC).
    pub date: jiff::Timestamp,
    /// The artifact restored.
    pub artifact: String,
    /// How it was selected.
    pub selection: DrillSelection,
    /// The sink it was fetched from.
    pub sink: String,
    /// When the backup was taken (UTC).
    pub backup_time: jiff::Timestamp,
    /// Ciphertext size, bytes.
    pub backup_size: u64,
    /// Where the files were restored.
    pub restore_target: PathBuf,
    /// Databases or other systems restored (from the restorers).
    pub proofs: Vec<ProofReport>,
    /// RTO measured: start of the drill to the verified restore, seconds.
    pub rto_seconds: f64,
    /// RPO measured: drill start minus backup time, seconds.
    pub rpo_seconds: f64,
    /// Data RPO: backup time minus the newest restored data timestamp, seconds, when known.
    pub data_rpo_seconds: Option<f64>,
    /// RTO target, seconds.
    pub rto_target_seconds: f64,
    /// RPO target, seconds.
    pub rpo_target_seconds: f64,
    /// Every check, in order: verification, file restore, proofs, targets.
    pub checks: Vec<Check>,
    /// Whether every check passed.
    pub passed: bool,
    /// Whether the scratch files were removed.
    pub cleaned_up: bool,
}

impl DrillReport {
    /// The failed checks, as `name: detail` lines.
    pub fn issues(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect()
    }

    /// Renders the report in the seeds/002 `RESTORE_TEST_REPORT` template (Markdown), followed by
    /// every check.
    pub fn to_markdown(&self) -> String {
        let yes_no = |b: Option<bool>| match b {
            Some(true) => "yes",
            Some(false) => "no",
            None => "not tested",
        };
        let db = self
            .proofs
            .iter()
            .map(|p| p.target.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let schema = if self.proofs.is_empty() {
            None
        } else {
            Some(self.proofs.iter().all(|p| p.schema_matches == Some(true)))
        };
        let (expected, actual) = self
            .proofs
            .iter()
            .filter_map(|p| p.rows)
            .fold((0, 0), |(e, a), (pe, pa)| (e + pe, a + pa));
        let rows = if self.proofs.iter().any(|p| p.rows.is_some()) {
            format!("{expected} / {actual}")
        } else {
            "not counted".into()
        };
        let recent = self
            .data_rpo_seconds
            .map(|s| s <= self.rpo_target_seconds)
            .or(Some(self.rpo_seconds <= self.rpo_target_seconds));
        let mut md = String::new();
        let _ = writeln!(md, "# Restore Test — {}", self.project);
        let _ = writeln!(md, "TESTED_BY: {}", self.tested_by);
        let _ = writeln!(md, "DATE: {}", self.date);
        let _ = writeln!(md, "## TARGET");
        let _ = writeln!(
            md,
            "database: {}",
            if db.is_empty() {
                "none (files only)"
            } else {
                &db
            }
        );
        let _ = writeln!(md, "backup_date: {} ({})", self.backup_time, self.artifact);
        let _ = writeln!(md, "backup_size: {} bytes", self.backup_size);
        let _ = writeln!(md, "## METRICS");
        let _ = writeln!(
            md,
            "RTO_measured: {:.2}min (target: <{:.0}min)",
            self.rto_seconds / 60.0,
            self.rto_target_seconds / 60.0
        );
        let _ = writeln!(
            md,
            "RPO_measured: {:.2}h (target: <{:.0}h)",
            self.rpo_seconds / 3600.0,
            self.rpo_target_seconds / 3600.0
        );
        if let Some(d) = self.data_rpo_seconds {
            let _ = writeln!(
                md,
                "RPO_data: {:.2}h (backup time − newest restored row)",
                d / 3600.0
            );
        }
        let _ = writeln!(md, "## VERIFICATION");
        let _ = writeln!(md, "- schema matches: {}", yes_no(schema));
        let _ = writeln!(md, "- row count: {rows}");
        let _ = writeln!(md, "- recent data within RPO: {}", yes_no(recent));
        let _ = writeln!(md, "- application connected: not tested");
        let _ = writeln!(
            md,
            "## RESULT: {}",
            if self.passed { "PASS" } else { "FAIL" }
        );
        let issues = self.issues();
        let _ = writeln!(
            md,
            "ISSUES: {}",
            if issues.is_empty() {
                "none".to_owned()
            } else {
                issues.join("; ")
            }
        );
        let _ = writeln!(md, "## CHECKS");
        for c in &self.checks {
            let _ = writeln!(
                md,
                "- [{}] {}: {}",
                if c.passed { "PASS" } else { "FAIL" },
                c.name,
                c.detail
            );
        }
        md
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

fn select(
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
/// (e.g. a scratch database) for proof; measure RTO (drill start → verified restore) and RPO
/// (drill start − backup time; data RPO when a restorer reports the newest data time); check
/// them against the targets; clean up if asked; and record the drill in `audit` when given.
/// A drill that fails any check is reported as FAIL, never as an `Err`.
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
    let date = jiff::Timestamp::now();
    let clock = Instant::now();
    let _span = tracing::info_span!("restore_drill", sink = %sink.info().name).entered();
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
    let backup_size = match &sidecar {
        Some(s) => s.ciphertext_size,
        None => sink
            .head(&name.artifact_object())
            .await
            .map_or(0, |m| m.size),
    };
    let stamp = date.strftime("%Y%m%d-%H%M%S").to_string();
    let target = options.scratch_dir.join(format!("restore-test-{stamp}"));
    let mut checks = Vec::new();

    // 1. Verify (doctrine R5) before trusting anything.
    let verification = verifier.verify(sink, &name, cipher).await?;
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
    let mut proofs = Vec::new();
    let restore_opts = RestoreOptions::isolated(&target).protect(options.protected_paths.clone());
    match restore(sink, &name, cipher, &restore_opts).await {
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
            // 3. Each restorable source (databases) into its scratch system, with proof.
            for desc in &rr.sources {
                let Some(r) = restorers.iter().find(|r| r.source_kind() == desc.kind) else {
                    continue;
                };
                let file = target.join(desc.root.trim_end_matches('/'));
                match r.restore_and_prove(&file, desc).await {
                    Ok(proof) => {
                        checks.extend(proof.checks.iter().cloned());
                        proofs.push(proof);
                    }
                    Err(e) => {
                        checks.push(Check::fail(format!("restore:{}", desc.name), e.to_string()));
                    }
                }
            }
        }
        Err(e) => checks.push(Check::fail("restore_files", e.to_string())),
    }
    let rto_seconds = clock.elapsed().as_secs_f64();
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

    // 4. Clean up.
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
        passed,
        cleaned_up,
    };
    if passed {
        tracing::info!(artifact = %name, rto = rto_seconds, "restore drill passed");
    } else {
        tracing::error!(artifact = %name, issues = ?report.issues(), "restore drill FAILED");
    }
    if let Some(log) = audit {
        log.append(AuditEvent::RestoreDrill {
            artifact: report.artifact.clone(),
            passed,
            rto_seconds,
            rpo_seconds,
            authorized_by: options.tested_by.clone(),
            report: report.restore_target.display().to_string(),
        })?;
    }
    Ok(report)
}
