//! The database part of a restore drill: a [`wst_core::EntryRestorer`] for dumps written by
//! [`PgDumpSource`](crate::PgDumpSource).

use std::path::Path;

use async_trait::async_trait;
use wst_core::{Check, EntryRestorer, ProofReport, SourceDescription};

use crate::facts::DatabaseFacts;
use crate::restore::{RestoreOptions, restore_dump};
use crate::source::SOURCE_KIND;

/// Restores a `postgresql` entry of a drilled artifact into a new scratch database on the
/// configured server and proves it against the manifest's [`DatabaseFacts`] (row counts per
/// table, schema fingerprint, large objects) — doctrine 026 R7, seeds/002 "restore to temporary
/// instance … row counts match expected".
///
/// Each drill restores into a fresh, generated scratch database (the options' `database` is
/// ignored so that two drills never collide); with `drop_after` the database is dropped after
/// the proof.
#[derive(Debug, Clone)]
pub struct PgDrillRestorer {
    options: RestoreOptions,
}

impl PgDrillRestorer {
    /// Restores with `options` (server, `--jobs`, owner/privilege flags, `drop_after`).
    pub fn new(mut options: RestoreOptions) -> Self {
        options.database = None;
        Self { options }
    }
}

#[async_trait]
impl EntryRestorer for PgDrillRestorer {
    fn source_kind(&self) -> &str {
        SOURCE_KIND
    }

    async fn restore_and_prove(
        &self,
        file: &Path,
        description: &SourceDescription,
    ) -> wst_core::Result<ProofReport> {
        let to_core = |e: crate::Error| wst_core::Error::Source {
            name: description.name.clone(),
            source: Box::new(e),
        };
        let expected = DatabaseFacts::from_description(description).map_err(to_core)?;
        let proof = restore_dump(file, &expected, &self.options)
            .await
            .map_err(to_core)?;
        let schema_matches = proof
            .checks
            .iter()
            .find(|c| c.name == "schema_fingerprint")
            .map(|c| c.passed);
        let mut checks: Vec<Check> = proof
            .checks
            .iter()
            .map(|c| Check {
                name: format!("db:{}", c.name),
                passed: c.passed,
                detail: c.detail.clone(),
            })
            .collect();
        checks.push(Check::pass(
            "db:scratch_database",
            format!(
                "`{}` on {}{}",
                proof.database,
                proof.server,
                if proof.dropped {
                    " (dropped after the proof)"
                } else {
                    " (kept)"
                }
            ),
        ));
        Ok(ProofReport {
            target: format!("{} on {}", proof.database, proof.server),
            checks,
            schema_matches,
            rows: Some((expected.total_rows(), proof.restored.total_rows())),
            newest_data: None,
        })
    }
}
