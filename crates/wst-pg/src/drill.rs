//! The database part of a restore drill: a [`wst_core::EntryRestorer`] for dumps written by
//! [`PgDumpSource`](crate::PgDumpSource).

use std::path::Path;

use async_trait::async_trait;
use wst_core::{Check, EntryRestorer, ProofReport, SourceDescription};

use crate::connect::{connect, query_error, quote_ident};
use crate::facts::DatabaseFacts;
use crate::restore::{RestoreOptions, drop_database, restore_dump};
use crate::source::SOURCE_KIND;

/// Restores a `postgresql` entry of a drilled artifact into a new scratch database on the
/// configured server and proves it against the manifest's [`DatabaseFacts`] (row counts per
/// table, schema fingerprint, large objects) — doctrine 026 R7, seeds/002 "restore to temporary
/// instance … row counts match expected".
///
/// Each drill restores into a fresh, generated scratch database (the options' `database` is
/// ignored so that two drills never collide); with `drop_after` the database is dropped after
/// the proof.
///
/// With [`PgDrillRestorer::freshness_column`], the drill also reads the newest value of a
/// timestamp column from the restored data, so that the report's data RPO (seeds/002 "RPO:
/// gap between backup time and latest data in backup"; "recent data present? check last INSERT
/// timestamps") is measured on what was actually restored.
#[derive(Debug, Clone)]
pub struct PgDrillRestorer {
    options: RestoreOptions,
    freshness: Option<(String, String, String)>,
}

impl PgDrillRestorer {
    /// Restores with `options` (server, `--jobs`, owner/privilege flags, `drop_after`).
    pub fn new(mut options: RestoreOptions) -> Self {
        options.database = None;
        Self {
            options,
            freshness: None,
        }
    }

    /// Reads `max(column)` of `schema.table` (a `timestamp`/`timestamptz` column, e.g. an
    /// `inserted_at`) from the restored database as the newest data time.
    #[must_use]
    pub fn freshness_column(mut self, schema: &str, table: &str, column: &str) -> Self {
        self.freshness = Some((schema.to_owned(), table.to_owned(), column.to_owned()));
        self
    }

    /// `max(column)` in the scratch database `database`, as UTC.
    async fn newest_data(&self, database: &str) -> crate::Result<Option<jiff::Timestamp>> {
        let Some((schema, table, column)) = &self.freshness else {
            return Ok(None);
        };
        let password = self.options.server.password.load()?;
        let pw = password.as_ref();
        let session = connect(&self.options.server.with_database(database), pw).await?;
        let sql = format!(
            "SELECT (extract(epoch FROM max({}::timestamptz)) * 1000000)::int8 FROM {}.{}",
            quote_ident(column),
            quote_ident(schema),
            quote_ident(table)
        );
        let row = session.client.query_one(&sql, &[]).await.map_err(|e| {
            query_error(
                format!("reading the newest `{schema}.{table}.{column}`"),
                &e,
                pw,
            )
        })?;
        let micros: Option<i64> = row.get(0);
        Ok(micros.and_then(|m| jiff::Timestamp::from_microsecond(m).ok()))
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
        // Keep the database until the freshness query ran; drop it here afterwards.
        let mut options = self.options.clone();
        let drop_after = options.drop_after;
        options.drop_after &= self.freshness.is_none();
        let mut proof = restore_dump(file, &expected, &options)
            .await
            .map_err(to_core)?;
        let newest_data = match self.newest_data(&proof.database).await {
            Ok(t) => t,
            Err(e) => {
                proof.checks.push(Check::fail("newest_data", e.to_string()));
                None
            }
        };
        if drop_after && !proof.dropped && proof.created_database {
            let password = self.options.server.password.load().map_err(to_core)?;
            let maintenance = connect(&self.options.server, password.as_ref())
                .await
                .map_err(to_core)?;
            drop_database(&maintenance, &proof.database, password.as_ref())
                .await
                .map_err(to_core)?;
            proof.dropped = true;
        }
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
            newest_data,
        })
    }
}
