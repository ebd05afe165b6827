//! `prune`: apply retention on every sink (doctrine 026 R4), audited, with a floor of 7 days.

use std::collections::BTreeMap;

use wst::core::{PruneOptions, Reason};
use wst::retention::{Planner, time_zone};

use super::Ops;
use crate::output::{say, warn_line};
use crate::{Out, locked, usage};

impl Ops {
    /// `prune` on its own: takes the repository lock first (exit 4 when another run holds it).
    pub(crate) async fn prune(&self, dry_run: bool, allow_drop: bool) -> Out<u8> {
        let _lock = if dry_run {
            None
        } else {
            Some(self.repo.lock("prune").map_err(|e| locked(&e))?)
        };
        self.prune_locked(dry_run, allow_drop).await
    }

    /// Prune on every sink through the repository (only authenticated verified copies count;
    /// a deletion needs the newer backup it relies on proven first). The caller holds the lock.
    pub(crate) async fn prune_locked(&self, dry_run: bool, allow_drop: bool) -> Out<u8> {
        let r = self
            .config
            .retention
            .as_ref()
            .ok_or_else(|| usage("the configuration has no [retention] section"))?;
        let tz = time_zone(&r.time_zone).map_err(|e| usage(e.to_string()))?;
        let planner = Planner::new(r.policy.clone(), tz).map_err(|e| usage(e.to_string()))?;
        // The executor's own floor never goes below doctrine 026 R4's 7 days, whatever the
        // policy says: a policy typo must not delete yesterday's backups.
        let min_age = r
            .policy
            .min_age_duration()
            .map_err(|e| usage(e.to_string()))?
            .max(jiff::SignedDuration::from_hours(24 * 7));
        let state_path = self.config.audit_log.with_extension("prune-state.json");
        let mut state: BTreeMap<String, usize> = std::fs::read(&state_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let now = self.repo.clock().now();
        let mut reports = Vec::new();
        let mut code = 0;
        // A sink that could not be pruned at all: the run failed (exit 1, over degraded).
        let mut failed = false;
        for sink in &self.sinks {
            let mut options = PruneOptions::new()
                .dry_run(dry_run)
                .min_age(min_age)
                .allow_listing_drop(allow_drop);
            if let Some(p) = &self.config.prefix {
                options = options.prefix(p);
            }
            if let Some(n) = state.get(&sink.info().name) {
                options = options.previous_count(*n);
            }
            match self.repo.prune_sink(&**sink, &planner, &options, now).await {
                Ok(report) => {
                    if !dry_run {
                        state.insert(sink.info().name.clone(), report.remaining());
                    }
                    if !report.is_clean() {
                        code = code.max(3);
                    }
                    reports.push(report);
                }
                // The listing-drop refusal is prune refusing something (exit 3, as the README
                // documents), not a failure; the message names `--allow-listing-drop`.
                Err(e @ wst::core::Error::ListingDrop { .. }) => {
                    warn_line!("prune on `{}` refused: {e}", sink.info().name);
                    code = code.max(3);
                }
                Err(e) => {
                    warn_line!("prune on `{}` failed: {e}", sink.info().name);
                    failed = true;
                }
            }
        }
        if !dry_run {
            std::fs::write(&state_path, serde_json::to_vec_pretty(&state)?)?;
        }
        // Point-in-time recovery (issue 16): base backups under the same policy, then the WAL
        // no retained base backup needs.
        let mut wal_reports = Vec::new();
        if self.config.wal.is_some() {
            let (c, base, wal) = self.prune_pitr(&planner, min_age, dry_run, now).await?;
            code = code.max(c);
            reports.extend(base);
            wal_reports = wal;
        }
        // `--json`: the reports as before; with [wal], `{"artifacts": [...], "wal": [...]}`.
        let json = if self.config.wal.is_some() {
            serde_json::json!({ "artifacts": reports, "wal": wal_reports })
        } else {
            serde_json::to_value(&reports)?
        };
        self.print(&json, || {
            for r in &reports {
                say!(
                    "prune {}{}: {} listed, {} kept, {} {}",
                    r.sink,
                    if r.dry_run { " (dry run)" } else { "" },
                    r.listed,
                    r.kept.len(),
                    r.deleted.len(),
                    if r.dry_run {
                        "would be deleted"
                    } else {
                        "deleted"
                    }
                );
                // A dry run shows the whole plan: what stays and why, then what would go and
                // why (issue 15).
                if r.dry_run {
                    for k in &r.kept {
                        say!("  keep   {} ({})", k.name, reasons(&k.reasons));
                    }
                }
                for d in &r.deleted {
                    say!(
                        "  {} {} ({})",
                        if r.dry_run { "would delete" } else { "delete" },
                        d.name,
                        reasons(&d.reasons)
                    );
                }
                for a in r.attention() {
                    say!("  attention: {a}");
                }
            }
            for w in &wal_reports {
                say!(
                    "prune WAL {}{}: {} {}{}",
                    w.sink,
                    if w.dry_run { " (dry run)" } else { "" },
                    w.deleted.len(),
                    if w.dry_run {
                        "would be deleted"
                    } else {
                        "deleted"
                    },
                    match (&w.keep_from, &w.oldest_base_backup) {
                        (Some(k), Some(b)) => format!(", kept from {k} (base backup {b})"),
                        _ => String::new(),
                    }
                );
                if let Some(n) = &w.note {
                    say!("  {n}");
                }
            }
        });
        Ok(if failed { 1 } else { code })
    }
}

/// A retention plan's reasons in the words of the configuration (`keep_daily #3`, `younger
/// than min_age`), for the text output.
fn reasons(reasons: &[Reason]) -> String {
    if reasons.is_empty() {
        return "no reason recorded".to_owned();
    }
    reasons
        .iter()
        .map(|r| match r {
            Reason::Last { n } => format!("keep_last #{n}"),
            Reason::Period { period, n, oldest } => format!(
                "keep_{period} #{n}{}",
                if *oldest {
                    " (oldest: fewer periods than the count)"
                } else {
                    ""
                }
            ),
            Reason::Within => "keep_within".to_owned(),
            Reason::MinAge => "younger than min_age (doctrine 026 R4)".to_owned(),
            Reason::LastBackup => "the newest backup of the sink (never deleted)".to_owned(),
            Reason::NewestVerified => "the newest verified backup".to_owned(),
            Reason::NoNewerVerified => "no newer verified backup is kept".to_owned(),
            Reason::FutureDated => "dated in the future (flagged)".to_owned(),
            Reason::NewerBackupUnproven => {
                "the newer backup it relies on failed its proof".to_owned()
            }
            Reason::MaxAgeConflict => "older than max_age but protected (flagged)".to_owned(),
            Reason::MaxAge => "older than max_age".to_owned(),
            Reason::NotSelected => "no keep rule selects it".to_owned(),
            Reason::Unverified => "not verified".to_owned(),
            Reason::Incomplete => "incomplete (no valid sidecar)".to_owned(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
