//! The drill report (seeds/002 "Restore Test Report") and its Markdown rendering.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{DrillSelection, ProofReport};
use crate::verify::Check;

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
    /// Every check, in order: verification, file restore, proofs, post-restore checks,
    /// cleanup of scratch systems, RTO/RPO targets.
    pub checks: Vec<Check>,
    /// The post-restore checks' results (also in `checks`), in the configured order.
    #[serde(default)]
    pub post_restore_checks: Vec<Check>,
    /// Whether the application connected and functioned: the outcome of the checks that prove
    /// it ([`PostRestoreCheck::proves_application`](crate::PostRestoreCheck::proves_application), e.g. a [`SmokeTest`](crate::SmokeTest)); `None` when none
    /// ran (seeds/002 "application connected").
    #[serde(default)]
    pub application_connected: Option<bool>,
    /// Whether every check passed.
    pub passed: bool,
    /// Whether the scratch files were removed.
    pub cleaned_up: bool,
    /// Copies rejected before this one, `sink: why` (a copy that failed verification: the
    /// drill then proved the next sink's copy; issue 14). Empty when the first copy served.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejected_copies: Vec<String>,
    /// The erasure register re-applied to the restored files, objects and databases before
    /// the post-restore checks (issue 18), one outcome per entry and target, with row, object
    /// and file counts. Empty when the register is empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub re_erasures: Vec<crate::erasure::ReErasure>,
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

    /// Renders the report in the seeds/002 `RESTORE_TEST_REPORT` template (Markdown): `TARGET`,
    /// `METRICS`, `VERIFICATION` (with "application connected" from the smoke tests), a
    /// `POST_RESTORE_CHECKS` section when post-restore checks ran, `RESULT` and `ISSUES`,
    /// followed by every other check.
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
        let _ = writeln!(md, "copy: sink {}", self.sink);
        for r in &self.rejected_copies {
            let _ = writeln!(md, "- rejected copy: {r}");
        }
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
        let _ = writeln!(
            md,
            "- application connected: {}",
            yes_no(self.application_connected)
        );
        if !self.post_restore_checks.is_empty() {
            let _ = writeln!(md, "## POST_RESTORE_CHECKS");
            for c in &self.post_restore_checks {
                let _ = writeln!(
                    md,
                    "- [{}] {}: {}",
                    if c.passed { "PASS" } else { "FAIL" },
                    c.name,
                    c.detail
                );
            }
        }
        if !self.re_erasures.is_empty() {
            let _ = writeln!(md, "## RE_ERASURES");
            for r in &self.re_erasures {
                let _ = writeln!(
                    md,
                    "- [{}] entry #{} {} on {}: {} rows, {} objects, {} files{}",
                    if r.applied() { "PASS" } else { "FAIL" },
                    r.seq,
                    r.id,
                    r.target,
                    r.rows,
                    r.objects,
                    r.files,
                    r.error
                        .as_ref()
                        .map_or_else(String::new, |e| format!(": {e}"))
                );
                for st in &r.statements {
                    let _ = writeln!(md, "  - {} rows: `{}`", st.rows, st.statement);
                }
            }
        }
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
        for c in self
            .checks
            .iter()
            .filter(|c| !self.post_restore_checks.contains(c))
        {
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
