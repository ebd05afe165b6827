//! The repository's status (compliance plus the rules only it can judge) and the audit
//! log checked against its anchors.

use super::{
    AuditCheck, AuditEvent, AuditHead, Catalog, ComplianceOptions, ComplianceReport, Error,
    Repository, Result, RuleStatus, Sink, Timestamp, Trust, compliance_with, read_head,
};

impl Repository {
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

    /// The compliance status at `now` (doctrine 026 R1, R3, R4, R5, R7 and the audit chain),
    /// counting only authenticated, verified copies of this repository's prefix, plus three
    /// rules only the repository can judge: **sinks identified** (every sink carries this
    /// repository's authentic marker: an unmounted disk or two sinks on one location fail),
    /// **keys open the artifacts** (the newest artifact on every sink is sealed for a
    /// configured key: a wrong `key_file` fails), and **runs finished** (no artifact without a
    /// sidecar, no `backup_started` without an end, unless a run holds the lock now), and
    /// **drill after schema change** (issue 17, seeds/004: see [`Repository::drill_due`]).
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
        // Issue 17, seeds/004: a schema change since the last passing drill.
        let records = self.audit.records().unwrap_or_default();
        report
            .rules
            .push(super::drill_due::rule(&super::drill_due::judge(
                &catalogs, &records, now,
            )));
        if let Some(cutoff) = options.retention_ceiling {
            report
                .rules
                .push(super::ceiling::ceiling_rule(&catalogs, cutoff));
        }
        if let Some(years) = options.audit_retention_years {
            report
                .rules
                .push(super::audit_retention::audit_retention_rule(
                    &catalogs, &records, years, now,
                ));
        }
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
}
