//! `prune`: apply retention on every sink (doctrine 026 R4), audited, with a floor of 7 days.

use std::collections::BTreeMap;

use wst::core::PruneOptions;
use wst::retention::{Planner, time_zone};

use super::Ops;
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
                        code = 3;
                    }
                    reports.push(report);
                }
                Err(e) => {
                    eprintln!("prune on `{}` refused: {e}", sink.info().name);
                    code = 1;
                }
            }
        }
        if !dry_run {
            std::fs::write(&state_path, serde_json::to_vec_pretty(&state)?)?;
        }
        self.print(&reports, || {
            for r in &reports {
                println!(
                    "prune {}{}: {} listed, {} kept, {} deleted",
                    r.sink,
                    if r.dry_run { " (dry run)" } else { "" },
                    r.listed,
                    r.kept.len(),
                    r.deleted.len()
                );
                for d in &r.deleted {
                    let why: Vec<String> = d.reasons.iter().map(ToString::to_string).collect();
                    println!("  delete {} ({})", d.name, why.join(", "));
                }
                for a in r.attention() {
                    println!("  attention: {a}");
                }
            }
        });
        Ok(code)
    }
}
