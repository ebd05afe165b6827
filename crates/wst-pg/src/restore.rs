//! Restore a dump into a scratch database and prove it against the manifest's facts
//! (doctrine 026 R7, design invariant 4).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use wst_core::{BreakGlass, Check};

use crate::config::{ConnectionConfig, Password};
use crate::connect::{Session, connect, query_error, quote_ident};
use crate::error::{Error, Result};
use crate::facts::{self, DatabaseFacts};
use crate::toc;
use crate::tools::{PgTools, ToolVersion, clean_stderr, passfile_for};

/// Where and how to restore.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// The target server and credentials. Its `database` is the maintenance database the
    /// scratch database is created from (usually `postgres`); it is never restored into.
    pub server: ConnectionConfig,
    /// The scratch database's name; `None` generates `wst_restore_YYYYMMDD_HHMMSS_xxxxxx` (UTC).
    pub database: Option<String>,
    /// `pg_restore --jobs` (parallel restore; ≥ 1). Default 2.
    pub jobs: u32,
    /// `--no-owner`: objects are owned by the restoring user. Default true.
    pub no_owner: bool,
    /// `--no-privileges`: GRANTs are not restored. Default true.
    pub no_privileges: bool,
    /// Drop the scratch database after the proof (only when this restore created it).
    pub drop_after: bool,
    /// Break-glass authorization (doctrine 026 L6; the same [`BreakGlass`] record as
    /// wst-core's file restore). Required to restore into the source database's name on the
    /// source's own server (disaster restore into production, seeds/002 §4a, issue 15) and,
    /// together with [`Self::clean`], into an existing database that holds objects.
    pub break_glass: Option<BreakGlass>,
    /// Replace the objects of an existing non-empty target (`pg_restore --clean
    /// --if-exists`). Only honoured with [`Self::break_glass`]; without it a non-empty target
    /// is refused whatever this says. Default false (issue 15: "with an explicit `--clean`,
    /// replacing objects").
    pub clean: bool,
    /// The PostgreSQL programs.
    pub tools: PgTools,
    /// Selective restore: only these tables, `schema.table` (the form of
    /// [`crate::table_key`]; double-quote a name containing `.`), each with its data,
    /// constraints, indexes, defaults, owned sequences and triggers. Empty (with
    /// [`Self::schemas`] empty): the whole database.
    pub tables: Vec<String>,
    /// Selective restore: every object of these schemas. Combined with [`Self::tables`] as a
    /// union.
    pub schemas: Vec<String>,
    /// The clock that stamps the proof's start time (UTC). Default
    /// [`wst_core::Clock::system`]; the duration is measured with a monotonic clock.
    pub clock: wst_core::Clock,
}

impl RestoreOptions {
    /// Restore to a new scratch database on `server` with the defaults above.
    pub fn new(server: ConnectionConfig) -> Self {
        Self {
            server,
            database: None,
            jobs: 2,
            no_owner: true,
            no_privileges: true,
            drop_after: false,
            break_glass: None,
            clean: false,
            tools: PgTools::discover(),
            tables: Vec::new(),
            schemas: Vec::new(),
            clock: wst_core::Clock::system(),
        }
    }

    /// Stamps the proof with `clock`.
    #[must_use]
    pub fn with_clock(mut self, clock: wst_core::Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Restores only these tables (`schema.table`), added to any given before; see
    /// [`restore_dump`] for what comes with a table.
    #[must_use]
    pub fn with_tables<I, S>(mut self, tables: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tables.extend(tables.into_iter().map(Into::into));
        self
    }

    /// Restores every object of these schemas, added to any given before.
    #[must_use]
    pub fn with_schemas<I, S>(mut self, schemas: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.schemas.extend(schemas.into_iter().map(Into::into));
        self
    }

    /// Sets the scratch database name.
    #[must_use]
    pub fn with_database(mut self, name: impl Into<String>) -> Self {
        self.database = Some(name.into());
        self
    }

    /// Sets `--jobs`.
    #[must_use]
    pub fn with_jobs(mut self, jobs: u32) -> Self {
        self.jobs = jobs.max(1);
        self
    }

    /// Drops the scratch database after the proof.
    #[must_use]
    pub fn with_drop_after(mut self, drop_after: bool) -> Self {
        self.drop_after = drop_after;
        self
    }

    /// Authorizes a restore into the source database's name (disaster restore, doctrine 026
    /// L6) and, with [`Self::with_clean`], over an existing non-empty database.
    #[must_use]
    pub fn with_break_glass(mut self, authorization: BreakGlass) -> Self {
        self.break_glass = Some(authorization);
        self
    }

    /// Replaces the objects of an existing non-empty target (`pg_restore --clean
    /// --if-exists`); needs [`Self::with_break_glass`] as well.
    #[must_use]
    pub fn with_clean(mut self, clean: bool) -> Self {
        self.clean = clean;
        self
    }

    /// Uses the PostgreSQL programs in `tools`.
    #[must_use]
    pub fn with_tools(mut self, tools: PgTools) -> Self {
        self.tools = tools;
        self
    }

    /// Whether only some tables or schemas are restored.
    pub fn is_selective(&self) -> bool {
        !self.tables.is_empty() || !self.schemas.is_empty()
    }
}

/// What a selective database restore selected and restored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DatabaseSelection {
    /// The tables asked for (`schema.table`), as given.
    pub tables: Vec<String>,
    /// The schemas asked for.
    pub schemas: Vec<String>,
    /// The table keys whose definitions were restored (the tables asked for plus the tables
    /// of the schemas asked for).
    pub restored_tables: Vec<String>,
    /// Table-of-contents items restored.
    pub items_restored: usize,
    /// Table-of-contents items in the dump.
    pub items_in_dump: usize,
}

/// The evidence of one database restore: where, how long, and every check against the
/// manifest's [`DatabaseFacts`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RestoreProof {
    /// The database restored into.
    pub database: String,
    /// `user@host:port` of the target server.
    pub server: String,
    /// Whether this restore created the database.
    pub created_database: bool,
    /// Whether the database was dropped after the proof.
    pub dropped: bool,
    /// The break-glass authorization used, if any.
    pub break_glass: Option<BreakGlass>,
    /// Whether the target was the source database's own name on the source's server (a
    /// disaster restore into production under break-glass; issue 15). Unknown cluster
    /// identity counts as the source's server.
    #[serde(default)]
    pub into_source: bool,
    /// Whether `pg_restore --clean --if-exists` replaced the objects of a non-empty target.
    #[serde(default)]
    pub cleaned: bool,
    /// `pg_restore --jobs`.
    pub jobs: u32,
    /// Start (UTC).
    pub started: jiff::Timestamp,
    /// End of the proof (UTC).
    pub finished: jiff::Timestamp,
    /// Seconds `pg_restore` ran.
    pub pg_restore_seconds: f64,
    /// Seconds from start to the end of the proof (the database part of a drill's RTO).
    pub total_seconds: f64,
    /// The facts of the restored database.
    pub restored: DatabaseFacts,
    /// Every check, in order: `pg_restore`, `tables_present`, one `row_count:<table>` per
    /// table, `row_count_total`, `schema_fingerprint`, `large_objects`. A selective restore
    /// has `selection` first and no `schema_fingerprint`/`large_objects` (see
    /// [`restore_dump`]).
    pub checks: Vec<Check>,
    /// What a selective restore selected; `None` for a whole-database restore.
    pub selection: Option<DatabaseSelection>,
}

impl RestoreProof {
    /// Whether there is at least one check and all passed.
    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.passed)
    }

    /// The failed checks.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.passed)
    }
}

/// Restores the custom-format dump `dump_file` into a scratch database and proves it against
/// `expected` (the facts from the manifest): per-table row counts, schema fingerprint and
/// large-object count must be equal.
///
/// The target database must not exist (it is created from `template0` with the source's
/// encoding), or exist and be empty; restoring into an existing non-empty database requires
/// [`RestoreOptions::break_glass`] and [`RestoreOptions::clean`], and then uses `pg_restore
/// --clean --if-exists`. The source database itself (same cluster `system_identifier` and
/// name, or an unknown identity) is refused without break-glass (design invariant 4: drills
/// go to a scratch database); with break-glass it is the disaster restore into production of
/// seeds/002 §4a (doctrine 026 L6, issue 15): created when missing (a new server), restored
/// when empty, replaced with `clean`, and proven exactly as a drill is.
///
/// # Warning
/// With break-glass and `clean`, `pg_restore --clean` drops and recreates every object of
/// the dump in the target: writes made since the backup are lost. Record the authorization
/// in the audit log before calling this (the `wst` CLI does).
///
/// A failed proof is a [`RestoreProof`] whose [`RestoreProof::passed`] is false, not an `Err`.
///
/// # Selective restore
/// With [`RestoreOptions::tables`] / [`RestoreOptions::schemas`], the dump's table of contents
/// (`pg_restore --list --verbose`, which prints each item's dependencies) is filtered into a
/// `--use-list` file: each selected table with its data, constraints, indexes, defaults,
/// owned sequences (and their values), triggers, policies, rules and comments; every object of
/// a selected schema; and what those need (schemas, types, functions, sequences),
/// recursively. Another table is never pulled in: a foreign key or a view that needs an
/// unselected table is left out. Large objects are not restored. `pg_restore` restores the
/// list in dependency order (also with `--jobs`). `pg_restore --table` is not used: it matches
/// table names in every schema and restores no indexes or constraints.
///
/// The proof then covers only the selection: `selection` (what was restored), `tables_present`
/// (exactly the selected tables exist in the scratch database — nothing else), one
/// `row_count:<table>` per selected table against the manifest, and `row_count_total` over the
/// selection. The schema fingerprint and the large-object count describe the whole database,
/// so they are not compared.
///
/// # Errors
/// [`Error::SelectionUnmatched`] naming every table or schema not in the dump (before a
/// scratch database is created); [`Error::Config`] for a table not written `schema.table`;
/// [`Error::RestoreTargetRefused`], [`Error::EmptyDump`], [`Error::ToolMissing`] /
/// [`Error::ToolTooOld`] for `pg_restore`, [`Error::ToolFailed`] when `pg_restore` fails (the
/// scratch database is kept for inspection unless `drop_after`), and the connection errors of
/// [`crate::PgDumpSource::dump`].
pub async fn restore_dump(
    dump_file: &Path,
    expected: &DatabaseFacts,
    options: &RestoreOptions,
) -> Result<RestoreProof> {
    let started_at = options.clock.now();
    let started = Instant::now();
    let dump_len = std::fs::metadata(dump_file)
        .map_err(|e| Error::io(format!("reading dump `{}`", dump_file.display()), e))?
        .len();
    if dump_len == 0 {
        return Err(Error::EmptyDump {
            database: expected.database.clone(),
        });
    }
    let pg_restore = options.tools.version("pg_restore")?;
    if let Some(dumped_by) = expected
        .pg_dump_version
        .as_deref()
        .and_then(ToolVersion::parse)
        && pg_restore.major < dumped_by.major
    {
        return Err(Error::ToolTooOld {
            tool: "pg_restore".to_owned(),
            tool_version: pg_restore.to_string(),
            server_version: format!("{dumped_by} (the pg_dump that wrote the dump)"),
        });
    }
    let plan = if options.is_selective() {
        Some(plan_selection(dump_file, options).await?)
    } else {
        None
    };
    let password = options.server.password.load()?;
    let pw = password.as_ref();
    let name = options.database.clone().unwrap_or_else(generated_name);
    let maintenance = connect(&options.server, pw).await?;
    let (created, clean, into_source) =
        prepare_target(&maintenance, &name, expected, options, pw).await?;

    let target = options.server.with_database(&name);
    let restore_started = Instant::now();
    let list_file = match &plan {
        Some(p) => Some(write_list(&p.list)?),
        None => None,
    };
    let result = run_pg_restore(
        dump_file,
        &target,
        options,
        clean,
        list_file.as_ref().map(tempfile::NamedTempFile::path),
        pw,
    )
    .await;
    drop(list_file);
    let pg_restore_seconds = restore_started.elapsed().as_secs_f64();
    if let Err(e) = result {
        if created && options.drop_after {
            drop_database(&maintenance, &name, pw).await.ok();
        }
        return Err(e);
    }
    let mut checks = vec![Check::pass(
        "pg_restore",
        format!(
            "pg_restore --jobs {}{} into `{name}` succeeded in {pg_restore_seconds:.1} s",
            options.jobs,
            if plan.is_some() { " --use-list" } else { "" }
        ),
    )];

    let restored = {
        let session = connect(&target, pw).await?;
        let client = &session.client;
        client
            .batch_execute(
                "SET search_path = pg_catalog; BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            )
            .await
            .map_err(|e| query_error("opening the proof transaction", &e, pw))?;
        let head = client
            .query_one(
                "SELECT (extract(epoch FROM now()) * 1000000)::int8, current_setting('server_version'), \
                        current_setting('server_version_num')::int4, pg_database_size(current_database()), \
                        pg_encoding_to_char(d.encoding)::text \
                 FROM pg_database d WHERE d.datname = current_database()",
                &[],
            )
            .await
            .map_err(|e| query_error("reading the restored database", &e, pw))?;
        let collected = facts::collect(client, pw).await?;
        client
            .batch_execute("COMMIT")
            .await
            .map_err(|e| query_error("ending the proof transaction", &e, pw))?;
        DatabaseFacts {
            server_version: head.get(1),
            server_version_num: head.get(2),
            system_identifier: None,
            database: name.clone(),
            encoding: head.get(4),
            database_size_bytes: head.get::<_, i64>(3).max(0) as u64,
            snapshot_id: None,
            snapshot_time: jiff::Timestamp::from_microsecond(head.get(0))
                .unwrap_or_else(|_| jiff::Timestamp::now()),
            row_counts: collected.row_counts,
            large_object_count: collected.large_object_count,
            schema_fingerprint: collected.schema_fingerprint,
            schema_objects: collected.schema_objects,
            pg_dump_version: None,
            pg_dump_compression: None,
            dump_bytes: None,
            dump_seconds: None,
        }
    };
    let selection = plan.map(|p| DatabaseSelection {
        tables: options.tables.clone(),
        schemas: options.schemas.clone(),
        restored_tables: p.tables.into_iter().collect(),
        items_restored: p.items.0,
        items_in_dump: p.items.1,
    });
    match &selection {
        None => checks.extend(compare(expected, &restored)),
        Some(sel) => checks.extend(compare_selection(expected, &restored, sel)),
    }

    let dropped = if created && options.drop_after {
        drop_database(&maintenance, &name, pw).await?;
        true
    } else {
        false
    };
    let proof = RestoreProof {
        database: name,
        server: format!(
            "{}@{}:{}",
            options.server.user, options.server.host, options.server.port
        ),
        created_database: created,
        dropped,
        break_glass: options.break_glass.clone(),
        into_source,
        cleaned: clean,
        jobs: options.jobs,
        started: started_at,
        finished: options.clock.now(),
        pg_restore_seconds,
        total_seconds: started.elapsed().as_secs_f64(),
        restored,
        checks,
        selection,
    };
    tracing::info!(
        database = %proof.database,
        passed = proof.passed(),
        seconds = proof.total_seconds,
        "database restore proof finished"
    );
    Ok(proof)
}

/// The checks of a restored database against the manifest's facts.
pub fn compare(expected: &DatabaseFacts, restored: &DatabaseFacts) -> Vec<Check> {
    let mut checks = Vec::new();
    let want: BTreeSet<&String> = expected.row_counts.keys().collect();
    let got: BTreeSet<&String> = restored.row_counts.keys().collect();
    let missing: Vec<&str> = want.difference(&got).map(|s| s.as_str()).collect();
    let extra: Vec<&str> = got.difference(&want).map(|s| s.as_str()).collect();
    if missing.is_empty() && extra.is_empty() {
        checks.push(Check::pass(
            "tables_present",
            format!("{} tables, as in the manifest", want.len()),
        ));
    } else {
        checks.push(Check::fail(
            "tables_present",
            format!(
                "missing: [{}]; unexpected: [{}]",
                missing.join(", "),
                extra.join(", ")
            ),
        ));
    }
    for (table, &rows) in &expected.row_counts {
        let name = format!("row_count:{table}");
        match restored.row_counts.get(table) {
            Some(&got) if got == rows => checks.push(Check::pass(name, format!("{rows} rows"))),
            Some(&got) => checks.push(Check::fail(
                name,
                format!("expected {rows} rows (manifest), restored {got}"),
            )),
            None => checks.push(Check::fail(
                name,
                format!("expected {rows} rows (manifest), table not restored"),
            )),
        }
    }
    let (want_total, got_total) = (expected.total_rows(), restored.total_rows());
    if want_total == got_total {
        checks.push(Check::pass("row_count_total", format!("{want_total} rows")));
    } else {
        checks.push(Check::fail(
            "row_count_total",
            format!("expected {want_total} rows, restored {got_total}"),
        ));
    }
    if expected.schema_fingerprint == restored.schema_fingerprint {
        checks.push(Check::pass(
            "schema_fingerprint",
            format!("sha256 {}", expected.schema_fingerprint),
        ));
    } else {
        let mut diffs = Vec::new();
        let kinds: BTreeSet<&String> = expected
            .schema_objects
            .keys()
            .chain(restored.schema_objects.keys())
            .collect();
        for kind in kinds {
            let a = expected.schema_objects.get(kind).copied().unwrap_or(0);
            let b = restored.schema_objects.get(kind).copied().unwrap_or(0);
            if a != b {
                diffs.push(format!("{kind}: {a} → {b}"));
            }
        }
        let where_ = if diffs.is_empty() {
            "same object counts, a definition differs".to_owned()
        } else {
            diffs.join(", ")
        };
        checks.push(Check::fail(
            "schema_fingerprint",
            format!(
                "manifest {} ≠ restored {} ({where_})",
                expected.schema_fingerprint, restored.schema_fingerprint
            ),
        ));
    }
    if expected.large_object_count == restored.large_object_count {
        checks.push(Check::pass(
            "large_objects",
            format!("{} large objects", expected.large_object_count),
        ));
    } else {
        checks.push(Check::fail(
            "large_objects",
            format!(
                "expected {} large objects, restored {}",
                expected.large_object_count, restored.large_object_count
            ),
        ));
    }
    checks
}

/// The checks of a selective restore: what was selected, then [`compare`] over the selected
/// tables only (schema fingerprint and large objects left out: they describe the whole
/// database).
fn compare_selection(
    expected: &DatabaseFacts,
    restored: &DatabaseFacts,
    selection: &DatabaseSelection,
) -> Vec<Check> {
    let mut want = expected.clone();
    want.row_counts
        .retain(|k, _| selection.restored_tables.contains(k));
    let mut checks = vec![Check::pass(
        "selection",
        format!(
            "restored tables [{}] ({} of {} dump items); schema fingerprint and large objects \
             describe the whole database and are not compared",
            selection.restored_tables.join(", "),
            selection.items_restored,
            selection.items_in_dump
        ),
    )];
    checks.extend(
        compare(&want, restored)
            .into_iter()
            .filter(|c| c.name != "schema_fingerprint" && c.name != "large_objects"),
    );
    checks
}

/// Reads the dump's table of contents and chooses the items of the selection.
async fn plan_selection(dump_file: &Path, options: &RestoreOptions) -> Result<toc::Plan> {
    let tables = options
        .tables
        .iter()
        .map(|t| toc::parse_table(t))
        .collect::<Result<Vec<_>>>()?;
    let out = tokio::process::Command::new(options.tools.program("pg_restore"))
        .arg("--list")
        .arg("--verbose")
        .arg(dump_file)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| Error::io("running pg_restore --list", e))?;
    if !out.status.success() {
        return Err(Error::ToolFailed {
            tool: "pg_restore --list".to_owned(),
            status: out.status.to_string(),
            stderr: clean_stderr(&out.stderr, None),
        });
    }
    let items = toc::parse_list(&String::from_utf8_lossy(&out.stdout));
    toc::plan(&items, &tables, &options.schemas)
}

/// Writes the `--use-list` file (item lines only; no secret) to a private temporary file.
fn write_list(list: &str) -> Result<tempfile::NamedTempFile> {
    use std::io::Write as _;
    let mut f = tempfile::Builder::new()
        .prefix(".wst-use-list-")
        .tempfile()
        .map_err(|e| Error::io("creating the pg_restore --use-list file", e))?;
    f.write_all(list.as_bytes())
        .and_then(|()| f.flush())
        .map_err(|e| Error::io("writing the pg_restore --use-list file", e))?;
    Ok(f)
}

fn generated_name() -> String {
    let now = jiff::Timestamp::now();
    let salt =
        (now.subsec_nanosecond().unsigned_abs() ^ std::process::id().rotate_left(13)) & 0x00ff_ffff;
    format!("wst_restore_{}_{salt:06x}", now.strftime("%Y%m%d_%H%M%S"))
}

/// Creates or admits the target database. Returns (created, use `--clean`, the source's own
/// name on the source's server).
async fn prepare_target(
    maintenance: &Session,
    name: &str,
    expected: &DatabaseFacts,
    options: &RestoreOptions,
    pw: Option<&Password>,
) -> Result<(bool, bool, bool)> {
    let refuse = |reason: String| Error::RestoreTargetRefused {
        database: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(refuse("the database name is empty".to_owned()));
    }
    let client = &maintenance.client;
    let sysid: Option<String> = client
        .query_one(
            "SELECT CASE WHEN pg_catalog.has_function_privilege('pg_catalog.pg_control_system()', 'EXECUTE') \
             THEN (SELECT system_identifier::text FROM pg_catalog.pg_control_system()) END",
            &[],
        )
        .await
        .ok()
        .and_then(|r| r.get(0));
    let same_cluster = match (&sysid, &expected.system_identifier) {
        (Some(a), Some(b)) => a == b,
        // Unknown identity: assume the worst for the source's own name.
        _ => true,
    };
    let into_source = same_cluster && name == expected.database;
    if into_source {
        match &options.break_glass {
            None => {
                return Err(refuse(format!(
                    "it is the source database `{}` on the same server; restore drills go to a scratch database. A disaster restore into production needs a break-glass authorization (doctrine 026 L6; wst: --break-glass-by WHO --reason WHY, and --clean to replace existing objects)",
                    expected.database
                )));
            }
            Some(bg) => tracing::warn!(
                database = name,
                authorized_by = %bg.authorized_by,
                reason = %bg.reason,
                "break-glass: disaster restore into the source database"
            ),
        }
    }
    if name == options.server.database {
        return Err(refuse(
            "it is the maintenance database the scratch database is created from".to_owned(),
        ));
    }
    let exists = client
        .query_opt(
            "SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1",
            &[&name],
        )
        .await
        .map_err(|e| query_error("looking up the target database", &e, pw))?
        .is_some();
    if exists {
        let objects = {
            let session = connect(&options.server.with_database(name), pw).await?;
            session
                .client
                .query_one(
                    "SELECT (SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' \
                      AND n.nspname NOT LIKE 'pg\\_temp\\_%') \
                     + (SELECT count(*) FROM pg_catalog.pg_largeobject_metadata)",
                    &[],
                )
                .await
                .map_err(|e| query_error("checking that the target database is empty", &e, pw))?
                .get::<_, i64>(0)
        };
        if objects == 0 {
            tracing::info!(database = name, "restoring into an existing empty database");
            return Ok((false, false, into_source));
        }
        return match (&options.break_glass, options.clean) {
            (Some(bg), true) => {
                tracing::warn!(
                    database = name,
                    authorized_by = %bg.authorized_by,
                    reason = %bg.reason,
                    "break-glass restore replacing the objects of an existing non-empty database"
                );
                Ok((false, true, into_source))
            }
            (Some(_), false) => Err(refuse(format!(
                "it exists and is not empty ({objects} relations/large objects); nothing was changed. To replace its objects with the backup's (pg_restore --clean --if-exists; writes since the backup are lost) add --clean (RestoreOptions::clean)"
            ))),
            (None, _) => Err(refuse(format!(
                "it exists and is not empty ({objects} relations/large objects): choose a new scratch database, or give a break-glass authorization and --clean (doctrine 026 L6; wst: --break-glass-by WHO --reason WHY --clean)"
            ))),
        };
    }
    let sql = format!(
        "CREATE DATABASE {} TEMPLATE template0 ENCODING '{}'",
        quote_ident(name),
        expected.encoding.replace('\'', "''")
    );
    client
        .batch_execute(&sql)
        .await
        .map_err(|e| query_error(format!("creating database `{name}`"), &e, pw))?;
    tracing::info!(database = name, "target database created");
    Ok((true, false, into_source))
}

async fn run_pg_restore(
    dump_file: &Path,
    target: &ConnectionConfig,
    options: &RestoreOptions,
    clean: bool,
    use_list: Option<&Path>,
    pw: Option<&Password>,
) -> Result<()> {
    let passfile = passfile_for(pw)?;
    let mut cmd = options
        .tools
        .command("pg_restore", target, passfile.as_ref());
    cmd.arg(format!("--jobs={}", options.jobs.max(1)))
        .arg("--exit-on-error")
        .arg("--no-password");
    if options.no_owner {
        cmd.arg("--no-owner");
    }
    if options.no_privileges {
        cmd.arg("--no-privileges");
    }
    if clean {
        cmd.arg("--clean").arg("--if-exists");
    }
    if let Some(list) = use_list {
        cmd.arg("--use-list").arg(list);
    }
    cmd.arg("--dbname")
        .arg(target.conninfo())
        .arg(dump_file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    let out = cmd
        .output()
        .await
        .map_err(|e| Error::io("running pg_restore", e))?;
    drop(passfile);
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::ToolFailed {
            tool: "pg_restore".to_owned(),
            status: out.status.to_string(),
            stderr: clean_stderr(&out.stderr, pw),
        })
    }
}

pub(crate) async fn drop_database(
    maintenance: &Session,
    name: &str,
    pw: Option<&Password>,
) -> Result<()> {
    maintenance
        .client
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(name)
        ))
        .await
        .map_err(|e| query_error(format!("dropping scratch database `{name}`"), &e, pw))?;
    tracing::info!(database = name, "scratch database dropped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn facts(rows: &[(&str, u64)], fp: &str, lo: u64) -> DatabaseFacts {
        DatabaseFacts {
            server_version: "15.18".into(),
            server_version_num: 150_018,
            system_identifier: None,
            database: "db".into(),
            encoding: "UTF8".into(),
            database_size_bytes: 0,
            snapshot_id: None,
            snapshot_time: jiff::Timestamp::UNIX_EPOCH,
            row_counts: rows.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            large_object_count: lo,
            schema_fingerprint: fp.into(),
            schema_objects: BTreeMap::from([("relation".to_owned(), rows.len() as u64)]),
            pg_dump_version: None,
            pg_dump_compression: None,
            dump_bytes: None,
            dump_seconds: None,
        }
    }

    #[test]
    fn equal_facts_pass_every_check() {
        let a = facts(&[("public.a", 3), ("s.b", 0)], "f", 2);
        let checks = compare(&a, &a.clone());
        assert!(checks.iter().all(|c| c.passed), "{checks:?}");
        let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "tables_present",
                "row_count:public.a",
                "row_count:s.b",
                "row_count_total",
                "schema_fingerprint",
                "large_objects"
            ]
        );
    }

    #[test]
    fn differences_fail_the_right_checks() {
        let a = facts(&[("public.a", 3), ("s.b", 0)], "f", 2);
        let b = facts(&[("public.a", 2)], "g", 1);
        let checks = compare(&a, &b);
        let failed: Vec<&str> = checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(
            failed,
            [
                "tables_present",
                "row_count:public.a",
                "row_count:s.b",
                "row_count_total",
                "schema_fingerprint",
                "large_objects"
            ]
        );
        let rc = checks
            .iter()
            .find(|c| c.name == "row_count:public.a")
            .unwrap();
        assert_eq!(rc.detail, "expected 3 rows (manifest), restored 2");
        let fp = checks
            .iter()
            .find(|c| c.name == "schema_fingerprint")
            .unwrap();
        assert!(fp.detail.contains("relation: 2 → 1"), "{}", fp.detail);
    }

    #[test]
    fn generated_names_are_valid_identifiers() {
        let n = generated_name();
        assert!(n.starts_with("wst_restore_"));
        assert!(n.len() <= 63);
        assert!(
            n.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        );
    }
}
