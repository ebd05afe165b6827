//! `backup`: back up, verify, catch up the other sinks, prune when retention is configured.

use std::io::IsTerminal;
use std::sync::Arc;

use wst::core::{ArtifactName, FileTreeSource, RunOutcome, SourceCounts};
use wst::pg::PgDumpSource;

use super::Ops;
use crate::config::{bucket_source, pg_connection};
use crate::output::say;
use crate::progress::Bar;
use crate::{Out, context, locked, usage};

impl Ops {
    /// The counts of each source in the newest verified artifact, read from its authenticated
    /// sidecar (issue 15: what `max_shrink` compares with). The first sink, in configuration
    /// order, that holds a verified copy answers; `None` when none does (the first backup, or
    /// no sink reachable). A sidecar that does not authenticate is never verified, so a forged
    /// count cannot disarm the guard.
    pub(super) async fn previous_counts(&self) -> Option<(ArtifactName, Vec<SourceCounts>)> {
        for sink in &self.sinks {
            let Ok(catalog) = self.repo.catalog(&**sink).await else {
                continue;
            };
            if let Some(copy) = catalog.verified().next_back() {
                let sources = copy
                    .sidecar
                    .as_ref()
                    .map(|s| s.sources.clone())
                    .unwrap_or_default();
                return Some((copy.name.clone(), sources));
            }
        }
        None
    }

    /// The `[[files]]` trees as sources: each tree's `exclude` plus `--exclude`,
    /// `one_file_system`, and its guards (`min_entries`, `max_shrink` against the previous
    /// artifact's counts).
    async fn file_sources(&self, cli_exclude: &[String]) -> Out<Vec<Arc<FileTreeSource>>> {
        let previous = if self.config.files.iter().any(|f| f.max_shrink.is_some()) {
            self.previous_counts().await
        } else {
            None
        };
        let mut out = Vec::new();
        for f in &self.config.files {
            let mut src = FileTreeSource::new(&f.path, &f.root)
                .and_then(|s| s.exclude(f.exclude.iter().chain(cli_exclude)))
                .map_err(|e| usage(format!("[[files]] `{}`: {e}", f.root)))?
                .one_file_system(f.one_file_system)
                .min_entries(f.min_entries.unwrap_or(0));
            if let Some(x) = f.max_shrink {
                src = src
                    .max_shrink(x)
                    .map_err(|e| usage(format!("[[files]] `{}`: {e}", f.root)))?;
                let root = f.root.trim_end_matches('/');
                if let Some((name, counts)) = &previous
                    && let Some(c) = counts.iter().find(|c| c.name == root && c.kind == "files")
                {
                    src = src.previous(name.clone(), c.clone());
                }
            }
            out.push(Arc::new(src));
        }
        Ok(out)
    }

    pub(crate) async fn backup(&self, exclude: &[String]) -> Out<u8> {
        // One writer per repository: a second backup (or a prune) exits 4 naming the holder.
        let _lock = self.repo.lock("backup").map_err(|e| locked(&e))?;
        // The repository's job: a sink without this repository's marker (an unmounted disk,
        // two sinks on one location) is not written; it stands in as unavailable and the run
        // is degraded.
        let mut b = self.repo.job().await.zstd_level(self.config.zstd_level);
        for src in self.file_sources(exclude).await? {
            b = b.source(src);
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
            say!(
                "backup {} {:?} in {:.1} s",
                report.artifact,
                report.outcome,
                report.duration_seconds
            );
            say!(
                "  {} entries, {} bytes read, {} bytes per copy (ratio {:.2})",
                report.entries,
                report.bytes_read,
                report.ciphertext_bytes,
                report.compression_ratio
            );
            for s in &report.sources {
                say!(
                    "  source {:<12} {:<16} prepared in {:.1} s, {} entries, {} bytes",
                    s.kind,
                    s.name,
                    s.prepare_seconds,
                    s.entries,
                    s.bytes
                );
            }
            for s in &report.sinks {
                say!("  {:<12} {}", s.sink, s.error.as_deref().unwrap_or("ok"));
            }
            for w in &report.warnings {
                say!("  warning: {w}");
            }
            for c in report
                .verification
                .iter()
                .flat_map(wst::core::VerificationReport::failures)
            {
                say!("  FAILED {}: {}", c.name, c.detail);
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
