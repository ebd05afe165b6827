//! `backup`: back up, verify, catch up the other sinks, prune when retention is configured.

use std::io::IsTerminal;
use std::sync::Arc;

use wst::core::{FileTreeSource, RunOutcome};
use wst::pg::PgDumpSource;

use super::Ops;
use crate::config::{bucket_source, pg_connection};
use crate::progress::Bar;
use crate::{Out, context, locked, usage};

impl Ops {
    pub(crate) async fn backup(&self) -> Out<u8> {
        // One writer per repository: a second backup (or a prune) exits 4 naming the holder.
        let _lock = self.repo.lock("backup").map_err(|e| locked(&e))?;
        // The repository's job: a sink without this repository's marker (an unmounted disk,
        // two sinks on one location) is not written; it stands in as unavailable and the run
        // is degraded.
        let mut b = self.repo.job().await.zstd_level(self.config.zstd_level);
        for f in &self.config.files {
            b = b.source(Arc::new(FileTreeSource::new(&f.path, &f.root)?));
        }
        if let (Some(db), Some(entry)) = (&self.config.database, self.entry()) {
            b = b.source(Arc::new(
                PgDumpSource::new(pg_connection(db, &db.url)?).with_entry(entry),
            ));
        }
        for bucket in &self.config.buckets {
            b = b.source(Arc::new(bucket_source(bucket)?));
        }
        if !self.json && std::io::stderr().is_terminal() {
            b = b.progress(Arc::new(Bar::new(0)));
        }
        let job = b.build().map_err(|e| usage(e.to_string()))?;
        // The repository audits the run (started, completed or failed, verification).
        let report = self
            .repo
            .backup(&job)
            .await
            .map_err(|e| context("backup failed", e))?;
        self.print(&report, || {
            println!(
                "backup {} {:?} in {:.1} s",
                report.artifact, report.outcome, report.duration_seconds
            );
            println!(
                "  {} entries, {} bytes read, {} bytes per copy (ratio {:.2})",
                report.entries,
                report.bytes_read,
                report.ciphertext_bytes,
                report.compression_ratio
            );
            for s in &report.sources {
                println!(
                    "  source {:<12} {:<16} prepared in {:.1} s",
                    s.kind, s.name, s.prepare_seconds
                );
            }
            for s in &report.sinks {
                println!("  {:<12} {}", s.sink, s.error.as_deref().unwrap_or("ok"));
            }
            for c in report
                .verification
                .iter()
                .flat_map(wst::core::VerificationReport::failures)
            {
                println!("  FAILED {}: {}", c.name, c.detail);
            }
        });
        let mut code = match report.outcome {
            RunOutcome::Success | RunOutcome::SuccessWithWarnings => 0,
            RunOutcome::Degraded => 3,
            RunOutcome::Failed => return Ok(1),
        };
        // Catch up sinks that missed earlier runs, then prune.
        if self.sinks.len() > 1 {
            code = code.max(self.replicate().await?);
        }
        if self.config.retention.is_some() {
            code = code.max(self.prune_locked(false, false).await?);
        }
        Ok(code)
    }
}
