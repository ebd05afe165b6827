//! Keeping the copies: replication from good copies and retention (delete only on proof).

use super::{
    Arc, AuditEvent, PruneOptions, PruneReport, Repository, Result, RetentionPolicy, Sink,
    Timestamp, run_audited,
};

impl Repository {
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
}
