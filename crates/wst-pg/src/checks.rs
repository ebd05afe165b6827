//! Post-restore checks against the scratch database of a restore drill (issue 9; seeds/002
//! `RESTORE_TESTING` step 4): SQL assertions and database ↔ object cross-checks.
//!
//! Both are [`wst_core::PostRestoreCheck`]s: put them in [`wst_core::DrillOptions::checks`].
//! They find the scratch database among the drill's restored entries of kind `postgresql`
//! (restored by [`PgDrillRestorer`](crate::PgDrillRestorer)) and query it in a read-only
//! transaction through a server-side cursor, so memory stays bounded whatever the query
//! returns.

use std::fmt::{self, Write as _};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio_postgres::SimpleQueryMessage;
use wst_core::{BoxError, Check, CheckContext, PostRestoreCheck, RestoredEntry};

use crate::config::{ConnectionConfig, Password};
use crate::connect::{Session, connect, query_error};
use crate::error::{Error, Result};
use crate::source::SOURCE_KIND;

/// Rows fetched from the cursor per round trip.
const FETCH_ROWS: usize = 1000;
/// Rows shown in a failed assertion's detail.
const SHOW_ROWS: usize = 5;
/// Characters shown per row in a detail.
const SHOW_CHARS: usize = 200;
/// Missing keys named in a failed cross-check's detail.
const SHOW_KEYS: usize = 20;
/// Default time limit of one check, seconds.
const DEFAULT_TIMEOUT_SECS: u64 = 300;

/// The scratch database a [`PgDrillRestorer`](crate::PgDrillRestorer) restored, as attached to
/// its [`wst_core::ScratchAccess`] for the checks in this module.
#[derive(Debug, Clone)]
pub(crate) struct ScratchDatabase {
    /// The scratch database on the drill's server, with the server's password source.
    pub(crate) connection: ConnectionConfig,
}

/// The scratch databases the checks run against: the entries of kind `postgresql` (of
/// `source` when given). `Err` explains why there is none.
fn scratch_databases<'a>(
    context: &'a CheckContext<'a>,
    source: Option<&str>,
) -> std::result::Result<Vec<(&'a RestoredEntry, &'a ConnectionConfig)>, String> {
    let entries: Vec<&RestoredEntry> = context
        .entries_of_kind(SOURCE_KIND)
        .filter(|e| source.is_none_or(|s| e.proof.source == s))
        .collect();
    if entries.is_empty() {
        return Err(match source {
            Some(s) => format!(
                "no scratch database of source `{s}` was restored by this drill (is the source in the artifact, and did its restore succeed? see the `restore:{s}` and `db:` checks)"
            ),
            None => "no PostgreSQL scratch database was restored by this drill (no `postgresql` entry in the artifact, no PgDrillRestorer given, or its restore failed: see the `restore:` and `db:` checks)".to_owned(),
        });
    }
    entries
        .into_iter()
        .map(|e| {
            e.access
                .as_ref()
                .and_then(|a| a.handle::<ScratchDatabase>())
                .map(|db| (e, &db.connection))
                .ok_or_else(|| {
                    format!(
                        "the scratch database of source `{}` ({}) offers no access to the checks (see the `scratch_access:{}` check; a PgDrillRestorer must restore it)",
                        e.proof.source, e.proof.target, e.proof.source
                    )
                })
        })
        .collect()
}

/// The check name: `<prefix>:<name>`, with `@<source>` when several databases are checked.
fn check_name(prefix: &str, name: &str, source: &str, several: bool) -> String {
    if several {
        format!("{prefix}:{name}@{source}")
    } else {
        format!("{prefix}:{name}")
    }
}

/// A query running in a read-only transaction, read through a server-side cursor.
struct ReadOnlyQuery {
    session: Session,
    password: Option<Password>,
    columns: usize,
}

impl ReadOnlyQuery {
    /// Connects to `conn` and declares a cursor over `sql`.
    ///
    /// The session is read-only (`default_transaction_read_only`, and a `READ ONLY`
    /// transaction), each statement is limited to `timeout` (`statement_timeout`), and `sql`
    /// must be a single row-returning statement (`SELECT`, `VALUES`, `TABLE`, `WITH … SELECT`):
    /// it is parsed on its own first (the extended protocol rejects several statements), so it
    /// cannot end the transaction.
    async fn open(conn: &ConnectionConfig, sql: &str, timeout: Duration) -> Result<Self> {
        let password = conn.password.load()?;
        let pw = password.as_ref();
        let session = connect(conn, pw).await?;
        let millis = timeout.as_millis().max(1);
        session
            .client
            .batch_execute(&format!(
                "SET default_transaction_read_only = on; SET statement_timeout = {millis}; \
                 BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
            ))
            .await
            .map_err(|e| query_error("opening a read-only transaction", &e, pw))?;
        let sql = sql.trim().trim_end_matches(';').trim_end();
        let statement = session
            .client
            .prepare(sql)
            .await
            .map_err(|e| query_error("preparing the query (one SELECT statement)", &e, pw))?;
        let columns = statement.columns().len();
        if columns == 0 {
            return Err(Error::Config(
                "the query returns no rows: it must be a SELECT (or VALUES, TABLE, WITH … SELECT)"
                    .to_owned(),
            ));
        }
        session
            .client
            .batch_execute(&format!("DECLARE wst_check NO SCROLL CURSOR FOR {sql}"))
            .await
            .map_err(|e| query_error("running the query", &e, pw))?;
        Ok(Self {
            session,
            password,
            columns,
        })
    }

    /// The next rows, each column as text (`None` for NULL); empty at the end.
    async fn next_batch(&self) -> Result<Vec<Vec<Option<String>>>> {
        let messages = self
            .session
            .client
            .simple_query(&format!("FETCH FORWARD {FETCH_ROWS} FROM wst_check"))
            .await
            .map_err(|e| query_error("running the query", &e, self.password.as_ref()))?;
        Ok(messages
            .iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(row) => Some(
                    (0..row.len())
                        .map(|i| row.get(i).map(str::to_owned))
                        .collect(),
                ),
                _ => None,
            })
            .collect())
    }

    /// Ends the transaction (nothing was written).
    async fn close(self) {
        let _ = self.session.client.batch_execute("ROLLBACK").await;
    }
}

/// A row as `psql --no-align --tuples-only` (`psql -At`) prints it: columns joined by `|`,
/// NULL as the empty string.
fn row_text(row: &[Option<String>]) -> String {
    row.iter()
        .map(|c| c.as_deref().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("|")
}

/// `text` cut to [`SHOW_CHARS`] characters, in backticks.
fn show(text: &str) -> String {
    match text.char_indices().nth(SHOW_CHARS) {
        Some((cut, _)) => format!("`{}…`", &text[..cut]),
        None => format!("`{text}`"),
    }
}

/// What an [`SqlAssertion`]'s query must return. Rows compare as text, the way
/// `psql -At -c '<query>'` prints them (columns joined by `|`, NULL as the empty string), so
/// an expectation can be written by running the query in `psql -At` on a good database.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Expectation {
    /// No row at all (e.g. "orders without a customer": `SELECT … WHERE NOT EXISTS (…)`).
    ReturnsNoRows,
    /// Exactly these rows, in this order (give the query an `ORDER BY`).
    Equals(Vec<String>),
    /// Exactly one row of one column, equal to this text (e.g. `count(*)` = `"1000"`).
    ScalarEquals(String),
}

impl fmt::Display for Expectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ReturnsNoRows => f.write_str("no rows"),
            Self::Equals(rows) => write!(f, "{} rows", rows.len()),
            Self::ScalarEquals(v) => write!(f, "the single value {}", show(v)),
        }
    }
}

/// An SQL assertion run against the drill's scratch database: a query and what it must return
/// ([`Expectation`]), e.g. "no order references a missing customer" or "there are 1 000
/// proofs" — issue 9, "configurable SQL assertions run against the scratch database".
///
/// The query runs read-only (a `READ ONLY` transaction in a session with
/// `default_transaction_read_only`, one statement only, rolled back) with a time limit
/// ([`SqlAssertion::with_timeout_secs`], default 300 s). The check is named `sql:<name>`
/// (`sql:<name>@<source>` when the drill restored several databases: it runs on each, unless
/// [`SqlAssertion::for_source`] picks one). It fails — never skips — when no scratch database
/// was restored, the query cannot run (the redacted SQL error is the detail), or the result
/// differs; the detail then shows the row count and the first 5 rows that came back.
#[derive(Debug, Clone)]
pub struct SqlAssertion {
    name: String,
    sql: String,
    expect: Expectation,
    source: Option<String>,
    timeout_secs: u64,
}

impl SqlAssertion {
    /// Asserts that `sql` returns what `expect` says.
    pub fn new(name: &str, sql: &str, expect: Expectation) -> Self {
        Self {
            name: name.to_owned(),
            sql: sql.to_owned(),
            expect,
            source: None,
            timeout_secs: DEFAULT_TIMEOUT_SECS,
        }
    }

    /// Asserts that `sql` returns no rows.
    pub fn returns_no_rows(name: &str, sql: &str) -> Self {
        Self::new(name, sql, Expectation::ReturnsNoRows)
    }

    /// Runs only against the scratch database of the manifest source `source` (e.g. `wst_dev`).
    #[must_use]
    pub fn for_source(mut self, source: &str) -> Self {
        self.source = Some(source.to_owned());
        self
    }

    /// Limits connecting plus the query to `seconds` (at least 1), and each statement on the
    /// server (`statement_timeout`) as well.
    #[must_use]
    pub fn with_timeout_secs(mut self, seconds: u64) -> Self {
        self.timeout_secs = seconds.max(1);
        self
    }

    /// The expectation.
    pub fn expectation(&self) -> &Expectation {
        &self.expect
    }

    /// Runs the query on `conn` and judges the result; `Err` when it cannot run.
    async fn evaluate(&self, conn: &ConnectionConfig) -> Result<(bool, String)> {
        let query = ReadOnlyQuery::open(conn, &self.sql, self.limit()).await?;
        let mut count = 0usize;
        let mut shown: Vec<String> = Vec::new();
        let mut first: Option<Vec<Option<String>>> = None;
        let mut first_difference: Option<(usize, Option<String>, String)> = None;
        loop {
            let batch = match query.next_batch().await {
                Ok(b) => b,
                Err(e) => {
                    query.close().await;
                    return Err(e);
                }
            };
            if batch.is_empty() {
                break;
            }
            for row in batch {
                let text = row_text(&row);
                if let Expectation::Equals(want) = &self.expect
                    && first_difference.is_none()
                    && want.get(count) != Some(&text)
                {
                    first_difference = Some((count, want.get(count).cloned(), text.clone()));
                }
                if shown.len() < SHOW_ROWS {
                    shown.push(if row.len() == 1 && row[0].is_none() {
                        "NULL".to_owned()
                    } else {
                        show(&text)
                    });
                }
                if first.is_none() {
                    first = Some(row);
                }
                count += 1;
            }
        }
        let columns = query.columns;
        query.close().await;
        let got = || {
            let more = if count > shown.len() { ", …" } else { "" };
            format!(
                "got {count} row{} × {columns} column{}: [{}{more}]",
                if count == 1 { "" } else { "s" },
                if columns == 1 { "" } else { "s" },
                shown.join(", ")
            )
        };
        Ok(match &self.expect {
            Expectation::ReturnsNoRows if count == 0 => (true, "no rows, as expected".to_owned()),
            Expectation::ReturnsNoRows => (false, format!("expected no rows, {}", got())),
            Expectation::Equals(want) => {
                let want_len = want.len();
                match first_difference {
                    None if count == want_len => {
                        (true, format!("{count} rows, equal to the expected rows"))
                    }
                    None => (
                        false,
                        format!(
                            "expected {want_len} rows, {}; the first {count} are as expected, row {} is missing",
                            got(),
                            count + 1
                        ),
                    ),
                    Some((i, want_row, got_row)) => (
                        false,
                        format!(
                            "expected {want_len} rows, {}; row {} differs: expected {}, got {}",
                            got(),
                            i + 1,
                            want_row.as_deref().map_or("no row".to_owned(), show),
                            show(&got_row)
                        ),
                    ),
                }
            }
            Expectation::ScalarEquals(want) => {
                let value = first
                    .as_deref()
                    .filter(|_| count == 1 && columns == 1)
                    .map(row_text);
                match value {
                    Some(v) if v == *want => (true, format!("{}, as expected", show(&v))),
                    _ => (
                        false,
                        format!("expected one row of one column {}, {}", show(want), got()),
                    ),
                }
            }
        })
    }

    fn limit(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

#[async_trait]
impl PostRestoreCheck for SqlAssertion {
    fn name(&self) -> &str {
        &self.name
    }

    async fn run(&self, context: &CheckContext<'_>) -> Vec<Check> {
        let databases = match scratch_databases(context, self.source.as_deref()) {
            Ok(d) => d,
            Err(why) => return vec![Check::fail(format!("sql:{}", self.name), why)],
        };
        let several = databases.len() > 1;
        let mut checks = Vec::with_capacity(databases.len());
        for (entry, conn) in databases {
            let name = check_name("sql", &self.name, &entry.proof.source, several);
            let outcome = tokio::time::timeout(self.limit(), self.evaluate(conn)).await;
            checks.push(match outcome {
                Ok(Ok((true, detail))) => Check::pass(name, detail),
                Ok(Ok((false, detail))) => Check::fail(name, detail),
                Ok(Err(e)) => {
                    Check::fail(name, format!("could not run on `{}`: {e}", conn.database))
                }
                Err(_) => Check::fail(
                    name,
                    format!(
                        "did not finish within {} s on `{}`",
                        self.timeout_secs, conn.database
                    ),
                ),
            });
        }
        checks
    }
}

/// Where an [`ObjectKeyCrossCheck`] looks for the objects a query names.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ObjectLocation {
    /// A directory of the drill's restored file tree: key `k` must be the regular file
    /// `<restore target>/<root>/<k>` (how wst-objstore's `ObjectStoreSource` archives a
    /// bucket under its root, e.g. `buckets/proofs`).
    RestoredTree {
        /// The archive root, relative to the restore target (`/`-separated).
        root: String,
    },
    /// Any other store (e.g. a scratch bucket the objects were restored to).
    Store(Arc<dyn ObjectLookup>),
}

/// Where the objects of an [`ObjectKeyCrossCheck`] are when they are not in the restored file
/// tree, e.g. a scratch bucket the drill restored them to. Implement it over any object store
/// client (wst-pg does not depend on one).
#[async_trait]
pub trait ObjectLookup: Send + Sync + fmt::Debug {
    /// Where it looks, for the report (e.g. `s3://scratch-bucket/proofs/`; no credentials).
    fn describe(&self) -> String;

    /// The keys of `keys` that do not exist (in any order). Called with batches of up to 1 000
    /// keys; implementations may look them up concurrently.
    ///
    /// # Errors
    /// Any error that prevents the lookup (the store is unreachable, access denied); the
    /// cross-check then fails with it.
    async fn missing(&self, keys: &[String]) -> std::result::Result<Vec<String>, BoxError>;
}

/// A cross-check between the scratch database and restored objects (issue 9: "every database
/// row that names an object key has its object"): a query yields object keys (its first
/// column, as text; e.g. `SELECT pdf_key FROM proofs`), and each must exist where the objects
/// were restored ([`ObjectLocation`]).
///
/// With [`ObjectKeyCrossCheck::strip_key_prefix`], the prefix the bucket source listed is
/// removed from each key first (a database that stores `tenants/a.pdf` for a source of prefix
/// `tenants/` archived as `<root>/a.pdf`); a key outside the prefix counts as missing.
///
/// The query runs read-only like an [`SqlAssertion`], through a cursor: keys are checked in
/// batches of 1 000 and only the missing ones' first 20 are kept, so any number of keys fits
/// in bounded memory. The check (`cross_check:<name>`, `@<source>` with several databases)
/// fails when any key is missing, naming the first 20 missing keys and their count; a NULL key
/// or one that cannot be a path (empty, absolute, `.`/`..` or empty segments, a backslash or
/// NUL) counts as missing and is named as such. It also fails, with the reason, when the query
/// or the lookup cannot run.
#[derive(Debug, Clone)]
pub struct ObjectKeyCrossCheck {
    name: String,
    sql: String,
    location: ObjectLocation,
    strip_prefix: Option<String>,
    source: Option<String>,
    timeout_secs: u64,
}

impl ObjectKeyCrossCheck {
    /// Checks that each key `sql` yields is a regular file `<restore target>/<root>/<key>`.
    pub fn in_restored_tree(name: &str, sql: &str, root: &str) -> Self {
        Self::new(
            name,
            sql,
            ObjectLocation::RestoredTree {
                root: root.trim_matches('/').to_owned(),
            },
        )
    }

    /// Checks that each key `sql` yields exists in `store`.
    pub fn in_store(name: &str, sql: &str, store: Arc<dyn ObjectLookup>) -> Self {
        Self::new(name, sql, ObjectLocation::Store(store))
    }

    /// Checks the keys `sql` yields against `location`.
    pub fn new(name: &str, sql: &str, location: ObjectLocation) -> Self {
        Self {
            name: name.to_owned(),
            sql: sql.to_owned(),
            location,
            strip_prefix: None,
            source: None,
            timeout_secs: DEFAULT_TIMEOUT_SECS,
        }
    }

    /// Removes `prefix` (e.g. the bucket source's prefix `tenants/`) from each key before the
    /// lookup; a key without it counts as missing.
    #[must_use]
    pub fn strip_key_prefix(mut self, prefix: &str) -> Self {
        self.strip_prefix = Some(prefix.to_owned());
        self
    }

    /// Runs only against the scratch database of the manifest source `source`.
    #[must_use]
    pub fn for_source(mut self, source: &str) -> Self {
        self.source = Some(source.to_owned());
        self
    }

    /// Limits the whole check to `seconds` (at least 1), and each statement on the server.
    #[must_use]
    pub fn with_timeout_secs(mut self, seconds: u64) -> Self {
        self.timeout_secs = seconds.max(1);
        self
    }

    /// Where the objects are looked for, for the report.
    fn describe_location(&self, restore_target: &Path) -> String {
        match &self.location {
            ObjectLocation::RestoredTree { root } => {
                format!("`{}`", tree_dir(restore_target, root).display())
            }
            ObjectLocation::Store(store) => store.describe(),
        }
    }

    /// Runs the query on `conn`, looks every key up; `Err` when it cannot run.
    async fn evaluate(
        &self,
        conn: &ConnectionConfig,
        restore_target: &Path,
    ) -> std::result::Result<Tally, String> {
        let query = ReadOnlyQuery::open(conn, &self.sql, Duration::from_secs(self.timeout_secs))
            .await
            .map_err(|e| format!("the key query could not run on `{}`: {e}", conn.database))?;
        let mut tally = Tally::default();
        let result = loop {
            let batch = match query.next_batch().await {
                Ok(b) => b,
                Err(e) => break Err(format!("the key query failed: {e}")),
            };
            if batch.is_empty() {
                break Ok(());
            }
            tally.keys += batch.len() as u64;
            let mut lookup = Vec::with_capacity(batch.len());
            for row in batch {
                match row.into_iter().next().flatten() {
                    None => tally.miss("(NULL key)".to_owned()),
                    Some(key) => match self.relative(&key) {
                        Some(rel) => lookup.push((key, rel)),
                        None => tally.miss(format!(
                            "{key} (outside the prefix `{}`)",
                            self.strip_prefix.as_deref().unwrap_or_default()
                        )),
                    },
                }
            }
            if let Err(e) = self.lookup(restore_target, lookup, &mut tally).await {
                break Err(e);
            }
        };
        query.close().await;
        result.map(|()| tally)
    }

    /// The key relative to the location (`strip_prefix` removed), `None` when outside it.
    fn relative(&self, key: &str) -> Option<String> {
        match &self.strip_prefix {
            Some(p) => key.strip_prefix(p.as_str()).map(str::to_owned),
            None => Some(key.to_owned()),
        }
    }

    /// Looks up a batch of `(key, relative key)`; records the missing ones in `tally`.
    async fn lookup(
        &self,
        restore_target: &Path,
        batch: Vec<(String, String)>,
        tally: &mut Tally,
    ) -> std::result::Result<(), String> {
        match &self.location {
            ObjectLocation::RestoredTree { root } => {
                let dir = tree_dir(restore_target, root);
                let missing = tokio::task::spawn_blocking(move || {
                    batch
                        .into_iter()
                        .filter_map(|(key, rel)| match key_path(&dir, &rel) {
                            Some(path) => std::fs::symlink_metadata(&path)
                                .map_or(true, |m| !m.is_file())
                                .then_some(key),
                            None => Some(format!("{key} (cannot be a path)")),
                        })
                        .collect::<Vec<_>>()
                })
                .await
                .map_err(|e| format!("looking up the restored files failed: {e}"))?;
                for key in missing {
                    tally.miss(key);
                }
            }
            ObjectLocation::Store(store) => {
                let (keys, relative): (Vec<String>, Vec<String>) = batch.into_iter().unzip();
                let missing = store.missing(&relative).await.map_err(|e| {
                    format!("looking up objects in {} failed: {e}", store.describe())
                })?;
                let missing: std::collections::HashSet<&str> =
                    missing.iter().map(String::as_str).collect();
                keys.into_iter()
                    .zip(&relative)
                    .filter(|(_, rel)| missing.contains(rel.as_str()))
                    .for_each(|(k, _)| tally.miss(k));
            }
        }
        Ok(())
    }
}

/// `<restore target>/<root>` (root `/`-separated).
fn tree_dir(restore_target: &Path, root: &str) -> PathBuf {
    root.split('/')
        .filter(|s| !s.is_empty())
        .fold(restore_target.to_path_buf(), |p, s| p.join(s))
}

/// `<dir>/<key>` when `key` is a safe relative path (non-empty `/`-separated segments, none
/// `.` or `..`, no backslash, NUL or drive prefix); `None` otherwise.
fn key_path(dir: &Path, key: &str) -> Option<PathBuf> {
    if key.is_empty() || key.contains('\\') || key.contains('\0') {
        return None;
    }
    let mut path = dir.to_path_buf();
    for segment in key.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return None;
        }
        let mut components = Path::new(segment).components();
        match (components.next(), components.next()) {
            (Some(Component::Normal(_)), None) => path.push(segment),
            _ => return None,
        }
    }
    Some(path)
}

/// Keys seen and missing (the first [`SHOW_KEYS`] named).
#[derive(Debug, Default)]
struct Tally {
    keys: u64,
    missing: u64,
    named: Vec<String>,
}

impl Tally {
    fn miss(&mut self, key: String) {
        self.missing += 1;
        if self.named.len() < SHOW_KEYS {
            self.named.push(key);
        }
    }
}

#[async_trait]
impl PostRestoreCheck for ObjectKeyCrossCheck {
    fn name(&self) -> &str {
        &self.name
    }

    async fn run(&self, context: &CheckContext<'_>) -> Vec<Check> {
        let databases = match scratch_databases(context, self.source.as_deref()) {
            Ok(d) => d,
            Err(why) => return vec![Check::fail(format!("cross_check:{}", self.name), why)],
        };
        let several = databases.len() > 1;
        let location = self.describe_location(context.restore_target);
        let mut checks = Vec::with_capacity(databases.len());
        for (entry, conn) in databases {
            let name = check_name("cross_check", &self.name, &entry.proof.source, several);
            let limit = Duration::from_secs(self.timeout_secs);
            let outcome =
                tokio::time::timeout(limit, self.evaluate(conn, context.restore_target)).await;
            checks.push(match outcome {
                Ok(Ok(t)) if t.missing == 0 => Check::pass(
                    name,
                    format!("all {} keys from `{}` present in {location}", t.keys, conn.database),
                ),
                Ok(Ok(t)) => {
                    let more = if t.missing > t.named.len() as u64 {
                        format!(" (first {})", t.named.len())
                    } else {
                        String::new()
                    };
                    let mut detail = format!(
                        "{} of {} keys from `{}` missing in {location}{more}: {}",
                        t.missing,
                        t.keys,
                        conn.database,
                        t.named.join(", ")
                    );
                    if let ObjectLocation::RestoredTree { root } = &self.location
                        && !tree_dir(context.restore_target, root).is_dir()
                    {
                        let _ = write!(
                            detail,
                            " — the root `{root}` was not restored at all (is the bucket source in the artifact, under this root?)"
                        );
                    }
                    Check::fail(name, detail)
                }
                Ok(Err(why)) => Check::fail(name, why),
                Err(_) => Check::fail(
                    name,
                    format!(
                        "did not finish within {} s on `{}`",
                        self.timeout_secs, conn.database
                    ),
                ),
            });
        }
        checks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_read_like_psql_unaligned() {
        let row = vec![Some("1".to_owned()), None, Some("a b".to_owned())];
        assert_eq!(row_text(&row), "1||a b");
    }

    #[test]
    fn only_safe_keys_become_paths() {
        let dir = Path::new("/r/buckets/proofs");
        assert_eq!(
            key_path(dir, "2026/a.pdf"),
            Some(dir.join("2026").join("a.pdf"))
        );
        for bad in [
            "",
            "/etc/passwd",
            "a/../b",
            "./a",
            "a//b",
            "a/",
            "..",
            "a\\b",
            "a\0b",
        ] {
            assert_eq!(key_path(dir, bad), None, "{bad:?}");
        }
    }

    #[test]
    fn long_text_is_cut_for_the_report() {
        let long = "x".repeat(500);
        let shown = show(&long);
        assert_eq!(shown.chars().count(), SHOW_CHARS + 3);
        assert!(shown.ends_with("…`"));
        assert_eq!(show("42"), "`42`");
    }

    #[test]
    fn tallies_name_the_first_twenty_and_count_all() {
        let mut t = Tally::default();
        for i in 0..25 {
            t.miss(format!("k{i}"));
        }
        assert_eq!(t.missing, 25);
        assert_eq!(t.named.len(), 20);
        assert_eq!(t.named[19], "k19");
    }

    #[tokio::test]
    async fn a_drill_without_a_database_fails_the_checks_with_the_reason() {
        let entries = [];
        let context = CheckContext::new(Path::new("/nonexistent"), "a", &entries);
        let sql = SqlAssertion::returns_no_rows("orphans", "SELECT 1")
            .run(&context)
            .await;
        assert_eq!(sql.len(), 1);
        assert!(!sql[0].passed);
        assert_eq!(sql[0].name, "sql:orphans");
        assert!(
            sql[0].detail.contains("no PostgreSQL scratch database"),
            "{}",
            sql[0].detail
        );
        let cross = ObjectKeyCrossCheck::in_restored_tree("proofs", "SELECT k FROM t", "b/p")
            .for_source("wst_dev")
            .run(&context)
            .await;
        assert_eq!(cross.len(), 1);
        assert!(!cross[0].passed);
        assert!(
            cross[0].detail.contains("source `wst_dev`"),
            "{}",
            cross[0].detail
        );
    }
}
