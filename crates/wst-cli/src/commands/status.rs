//! `status`: the configured sources and the compliance status (doctrine 026 R1, R3, R4, R5,
//! R7, audit chain; sink identity, keys, unfinished runs), from the repository: only
//! authenticated, verified copies count.

use wst::core::AuditEvent;
use wst::pg::ConnectionConfig;

use super::Ops;
use crate::output::say;
use crate::{Out, usage};

impl Ops {
    /// Every configured source (files, database, buckets) as `{kind, name, from, root}`, for
    /// `status`; no credential (bucket URLs carry none, the database URL's password is not
    /// in the configuration).
    fn configured_sources(&self) -> Vec<serde_json::Value> {
        let mut out: Vec<serde_json::Value> = self
            .config
            .files
            .iter()
            .map(|f| {
                serde_json::json!({
                    "kind": "files", "name": f.root, "from": f.path.display().to_string(),
                    "root": format!("{}/", f.root),
                })
            })
            .collect();
        if let (Some(db), Some(entry)) = (&self.config.database, self.entry()) {
            let (name, from) = ConnectionConfig::from_url(&db.url).map_or_else(
                |_| (String::new(), "(invalid url)".to_owned()),
                |c| (c.database.clone(), c.display_target()),
            );
            out.push(serde_json::json!({
                "kind": wst::pg::SOURCE_KIND, "name": name, "from": from, "root": entry,
            }));
        }
        for b in &self.config.buckets {
            out.push(serde_json::json!({
                "kind": "object_store", "name": b.name, "from": b.full_url(),
                "root": format!("{}/", b.root()),
            }));
        }
        out
    }

    /// Issue 15: a `[[files]]` tree that was empty in the newest verified backup (its
    /// authenticated sidecar's counts: the root directory alone) is named, so an unmounted
    /// volume shows in `status` and not only in that run's report. Warnings do not change
    /// compliance.
    async fn empty_tree_warnings(&self) -> Vec<String> {
        let Some((artifact, counts)) = self.previous_counts().await else {
            return Vec::new();
        };
        self.config
            .files
            .iter()
            .filter_map(|f| {
                let root = f.root.trim_end_matches('/');
                let c = counts
                    .iter()
                    .find(|c| c.name == root && c.kind == "files")?;
                (c.entries <= 1).then(|| {
                    format!(
                        "[[files]] `{root}` ({}) was empty in the newest verified backup \
                         {artifact}: if a volume should be mounted there, it was not (set \
                         min_entries to fail such runs)",
                        f.path.display()
                    )
                })
            })
            .collect()
    }

    pub(crate) async fn status(&self) -> Out<u8> {
        // The thresholds, R4's minimum age and the placement rules (issue 17), as the
        // library reads them from the configuration.
        let mut options = self
            .config
            .compliance_options()
            .map_err(|e| usage(e.to_string()))?;
        let now = self.repo.clock().now();
        // The retention ceiling (issue 18): `now - max_age` in the policy's time zone.
        options.retention_ceiling = match &self.config.retention {
            Some(r) if r.policy.max_age.is_some() => {
                let tz =
                    wst::retention::time_zone(&r.time_zone).map_err(|e| usage(e.to_string()))?;
                r.policy
                    .cutoffs(now, &tz)
                    .map_err(|e| usage(e.to_string()))?
                    .max_age
            }
            _ => None,
        };
        let mut report = self.repo.status(&options, now).await?;
        // Point-in-time recovery (issue 16): continuity, lag and RPO of the WAL archive.
        report.rules.extend(self.wal_rules(now).await);
        let sources = self.configured_sources();
        if report.rules.iter().any(|r| r.rule != "audit trail intact") {
            let _ = self.audit.append(AuditEvent::ComplianceCheck {
                passed: report.compliant(),
                rules: report
                    .rules
                    .iter()
                    .map(|r| {
                        format!(
                            "{}: {} {}",
                            r.rule,
                            if r.passed { "PASS" } else { "FAIL" },
                            r.detail
                        )
                    })
                    .collect(),
            });
        }
        let warnings = self.empty_tree_warnings().await;
        let mut value = serde_json::to_value(&report)?;
        value["sources"] = serde_json::to_value(&sources)?;
        value["warnings"] = serde_json::to_value(&warnings)?;
        if let Some(job) = &self.config.job_name {
            // The [[job]] this status is of (issue 18, "Services").
            value["job"] = serde_json::to_value(job)?;
        }
        self.print(&value, || {
            say!("sources backed up:");
            for s in &sources {
                say!(
                    "  {:<12} {:<16} {} → {}",
                    s["kind"].as_str().unwrap_or_default(),
                    s["name"].as_str().unwrap_or_default(),
                    s["from"].as_str().unwrap_or_default(),
                    s["root"].as_str().unwrap_or_default()
                );
            }
            say!(
                "compliance at {}: {}",
                report.at,
                if report.compliant() {
                    "COMPLIANT"
                } else {
                    "NOT COMPLIANT"
                }
            );
            for w in &warnings {
                say!("  warning: {w}");
            }
            for r in &report.rules {
                say!(
                    "  [{}] {:<24} {}",
                    if r.passed { "PASS" } else { "FAIL" },
                    r.rule,
                    r.detail
                );
                if !r.evidence.is_empty() {
                    say!("         evidence: {}", r.evidence.join(", "));
                }
            }
        });
        Ok(u8::from(!report.compliant()))
    }
}
