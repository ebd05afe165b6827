//! The database part of a restore drill: a [`wst_core::EntryRestorer`] for dumps written by
//! [`PgDumpSource`](crate::PgDumpSource).

use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use wst_core::{Check, EntryRestorer, ProofReport, ScratchAccess, SourceDescription};

use crate::checks::ScratchDatabase;
use crate::config::ConnectionConfig;
use crate::connect::{connect, query_error, quote_ident};
use crate::error::Error;
use crate::facts::DatabaseFacts;
use crate::restore::{RestoreOptions, drop_database, restore_dump};
use crate::source::SOURCE_KIND;
use crate::tools::passfile_for;

/// Restores a `postgresql` entry of a drilled artifact into a new scratch database on the
/// configured server and proves it against the manifest's [`DatabaseFacts`] (row counts per
/// table, schema fingerprint, large objects) — doctrine 026 R7, seeds/002 "restore to temporary
/// instance … row counts match expected".
///
/// Each drill restores into a fresh, generated scratch database
/// `wst_restore_YYYYMMDD_HHMMSS_xxxxxx` (UTC; the options' `database` is ignored so that two
/// drills never collide). With `drop_after` the database is dropped at the drill's cleanup
/// ([`EntryRestorer::cleanup`]), after the post-restore checks ran — or at once when
/// `pg_restore` fails.
///
/// For post-restore checks ([`EntryRestorer::scratch_access`]) it offers: the scratch
/// database to wst-pg's [`SqlAssertion`](crate::SqlAssertion) and
/// [`ObjectKeyCrossCheck`](crate::ObjectKeyCrossCheck), and to a
/// [`wst_core::SmokeTest`] the variables `PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE` (the
/// scratch database), `PGSSLMODE`, `PGCONNECT_TIMEOUT`, `PGSSLROOTCERT` (when set),
/// `WST_SCRATCH_DATABASE` and `WST_SCRATCH_DATABASE_URL` (`postgresql://user@host:port/db?…`,
/// never a password) and, when the server needs a password, `PGPASSFILE`: a private
/// passfile (mode 0600 on Unix) deleted after the checks (design invariant 7). The smoke
/// test's output is redacted of the password.
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

    /// The server the scratch databases are created on (its `database` is the maintenance
    /// database), and where its password comes from.
    pub fn server(&self) -> &ConnectionConfig {
        &self.options.server
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
        // The database stays until the drill's cleanup, after the post-restore checks.
        let mut options = self.options.clone();
        let name = scratch_name();
        options.database = Some(name.clone());
        options.drop_after = false;
        let mut proof = match restore_dump(file, &expected, &options).await {
            Ok(proof) => proof,
            Err(e) => {
                // A fresh random name: whatever exists under it now, this restore created.
                if self.options.drop_after
                    && !matches!(e, Error::RestoreTargetRefused { .. })
                    && let Err(drop) = self.drop(&name).await
                {
                    tracing::warn!(database = %name, error = %drop, "could not drop the scratch database after a failed restore");
                }
                return Err(to_core(e));
            }
        };
        let newest_data = match self.newest_data(&proof.database).await {
            Ok(t) => t,
            Err(e) => {
                proof.checks.push(Check::fail("newest_data", e.to_string()));
                None
            }
        };
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
                if self.options.drop_after && proof.created_database {
                    " (dropped after the post-restore checks)"
                } else {
                    " (kept)"
                }
            ),
        ));
        Ok(ProofReport {
            kind: SOURCE_KIND.to_owned(),
            source: description.name.clone(),
            target: format!("{} on {}", proof.database, proof.server),
            scratch_name: Some(proof.database.clone()),
            scratch_created: proof.created_database,
            checks,
            schema_matches,
            // A selective restore is proven on its selection: expected rows of those tables only.
            rows: Some((
                proof.selection.as_ref().map_or_else(
                    || expected.total_rows(),
                    |sel| {
                        sel.restored_tables
                            .iter()
                            .filter_map(|t| expected.row_counts.get(t))
                            .sum()
                    },
                ),
                proof.restored.total_rows(),
            )),
            newest_data,
        })
    }

    async fn scratch_access(&self, proof: &ProofReport) -> wst_core::Result<Option<ScratchAccess>> {
        let Some(database) = &proof.scratch_name else {
            return Ok(None);
        };
        let to_core = |e: Error| wst_core::Error::Source {
            name: proof.source.clone(),
            source: Box::new(e),
        };
        let conn = self.options.server.with_database(database.clone());
        let password = conn.password.load().map_err(to_core)?;
        let passfile = passfile_for(password.as_ref()).map_err(to_core)?;
        let mut access = ScratchAccess::new()
            .with_env("PGHOST", conn.host.clone())
            .with_env("PGPORT", conn.port.to_string())
            .with_env("PGUSER", conn.user.clone())
            .with_env("PGDATABASE", database.clone())
            .with_env("PGSSLMODE", conn.sslmode.as_str())
            .with_env("PGCONNECT_TIMEOUT", conn.connect_timeout_secs.to_string())
            .with_env("WST_SCRATCH_DATABASE", database.clone())
            .with_env("WST_SCRATCH_DATABASE_URL", database_url(&conn));
        if let Some(root) = &conn.sslrootcert {
            access = access.with_env("PGSSLROOTCERT", root.display().to_string());
        }
        if let Some(pf) = passfile {
            access = access
                .with_env("PGPASSFILE", pf.path().display().to_string())
                .keep_alive(pf);
        }
        if let Some(pw) = password {
            access = access.with_redactor(move |text| pw.redact(text));
        }
        Ok(Some(
            access.with_handle(ScratchDatabase { connection: conn }),
        ))
    }

    /// Runs the register's SQL in the scratch database ([`crate::erase_database`]).
    async fn erase(
        &self,
        proof: &ProofReport,
        entries: &[wst_core::ErasureEntry],
    ) -> wst_core::Result<Vec<wst_core::ReErasure>> {
        let Some(database) = &proof.scratch_name else {
            return Err(wst_core::Error::Config(format!(
                "the restore of `{}` left no scratch database to apply the erasure register to",
                proof.source
            )));
        };
        crate::erasure::erase_database(
            &self.options.server.with_database(database.clone()),
            entries,
        )
        .await
        .map_err(|e| wst_core::Error::Source {
            name: proof.source.clone(),
            source: Box::new(e),
        })
    }

    async fn cleanup(&self, proof: &ProofReport) -> wst_core::Result<Vec<Check>> {
        let Some(database) = &proof.scratch_name else {
            return Ok(Vec::new());
        };
        if !(self.options.drop_after && proof.scratch_created) {
            return Ok(Vec::new());
        }
        self.drop(database)
            .await
            .map_err(|e| wst_core::Error::Source {
                name: proof.source.clone(),
                source: Box::new(e),
            })?;
        Ok(vec![Check::pass(
            "db:scratch_database_dropped",
            format!("`{database}` dropped after the post-restore checks"),
        )])
    }
}

impl PgDrillRestorer {
    /// Drops the scratch database `name` (if it exists) through the maintenance database.
    async fn drop(&self, name: &str) -> crate::Result<()> {
        let password = self.options.server.password.load()?;
        let maintenance = connect(&self.options.server, password.as_ref()).await?;
        drop_database(&maintenance, name, password.as_ref()).await
    }
}

/// A new scratch database name, `wst_restore_YYYYMMDD_HHMMSS_xxxxxx` (UTC, 24 random-ish bits
/// from the clock, the process id and a counter, so concurrent drills never collide).
fn scratch_name() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let now = jiff::Timestamp::now();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let salt = (now.subsec_nanosecond().unsigned_abs()
        ^ std::process::id().rotate_left(13)
        ^ n.wrapping_mul(0x9e37_79b9))
        & 0x00ff_ffff;
    format!("wst_restore_{}_{salt:06x}", now.strftime("%Y%m%d_%H%M%S"))
}

/// `postgresql://user@host:port/database?sslmode=…` with every part percent-encoded (a Unix
/// socket directory becomes an encoded host, as libpq accepts); never a password.
fn database_url(conn: &ConnectionConfig) -> String {
    format!(
        "postgresql://{}@{}:{}/{}?sslmode={}",
        percent_encode(&conn.user),
        percent_encode(&conn.host),
        conn.port,
        percent_encode(&conn.database),
        conn.sslmode.as_str()
    )
}

/// RFC 3986 percent-encoding of everything but the unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_encode_every_part_and_hold_no_password() {
        let conn = ConnectionConfig::new("/run/postgresql", "ops@corp", "wst_restore_x")
            .with_port(5433)
            .with_password(crate::PasswordSource::Env("WST_TEST_PW".into()));
        assert_eq!(
            database_url(&conn),
            "postgresql://ops%40corp@%2Frun%2Fpostgresql:5433/wst_restore_x?sslmode=prefer"
        );
    }

    #[test]
    fn scratch_names_are_fresh_valid_identifiers() {
        let (a, b) = (scratch_name(), scratch_name());
        assert_ne!(a, b);
        for n in [a, b] {
            assert!(n.starts_with("wst_restore_") && n.len() <= 63, "{n}");
            assert!(
                n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            );
        }
    }
}
