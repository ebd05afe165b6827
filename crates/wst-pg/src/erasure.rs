//! Re-applying the erasure register to a restored database (issue 18; seeds/003 GDPR mode:
//! "Erased data must not be restored unintentionally").

use tokio_postgres::types::Type;
use wst_core::{ErasureEntry, ReErasure, StatementCount};

use crate::config::ConnectionConfig;
use crate::connect::{connect, query_error};
use crate::error::Result;

/// Runs the SQL statements of every entry of `entries` in the database `conn` names (a
/// restored scratch database, or a disaster-restored one): per entry one transaction, each
/// statement prepared with `$1` typed `text` and executed with the entry's subject id bound
/// to it (never interpolated into the SQL), then committed. An entry whose statement fails
/// is rolled back whole and reported with the server's message (the password redacted); the
/// other entries still run. Idempotent for `DELETE`/`UPDATE` statements: an entry recorded
/// before the artifact was taken finds nothing and reports 0 rows.
///
/// Returns one [`ReErasure`] per entry that has statements, in `entries` order, with the
/// rows each statement affected.
///
/// # Errors
/// The connection errors of [`crate::PgDumpSource::dump`] (authentication, unreachable,
/// missing database) when the database cannot be reached at all.
pub async fn erase_database(
    conn: &ConnectionConfig,
    entries: &[ErasureEntry],
) -> Result<Vec<ReErasure>> {
    let mut out = Vec::new();
    if entries.iter().all(|e| e.sql.is_empty()) {
        return Ok(out);
    }
    let password = conn.password.load()?;
    let pw = password.as_ref();
    let session = connect(conn, pw).await?;
    let client = &session.client;
    for entry in entries.iter().filter(|e| !e.sql.is_empty()) {
        let mut r = ReErasure::new(entry, format!("database {}", conn.database));
        client
            .batch_execute("BEGIN")
            .await
            .map_err(|e| query_error("starting an erasure transaction", &e, pw))?;
        let mut error = None;
        for sql in &entry.sql {
            let done = async {
                let stmt = client.prepare_typed(sql, &[Type::TEXT]).await?;
                client.execute(&stmt, &[&entry.subject]).await
            }
            .await;
            match done {
                Ok(rows) => {
                    r.rows += rows;
                    r.statements.push(StatementCount {
                        statement: sql.clone(),
                        rows,
                    });
                }
                Err(e) => {
                    error =
                        Some(query_error(format!("erasure statement `{sql}`"), &e, pw).to_string());
                    break;
                }
            }
        }
        let end = if error.is_some() {
            "ROLLBACK"
        } else {
            "COMMIT"
        };
        if let Err(e) = client.batch_execute(end).await {
            error.get_or_insert_with(|| {
                query_error("ending the erasure transaction", &e, pw).to_string()
            });
        }
        if error.is_some() {
            // Nothing of this entry was applied.
            r.rows = 0;
            r.statements.clear();
        }
        r.error = error;
        out.push(r);
    }
    Ok(out)
}
