//! `PgDumpSource`: a consistent `pg_dump` of one database as a wst-core [`Source`].

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use async_trait::async_trait;
use wst_core::{EntryKind, EntryMeta, EntryWriter, PreparedSource, Source, SourceDescription};

use crate::config::{ConnectionConfig, Password};
use crate::connect::{connect, query_error};
use crate::error::{Error, Result};
use crate::facts::{self, DatabaseFacts};
use crate::tools::{PgTools, ToolVersion, clean_stderr, passfile_for};

/// The archive entry name of the dump by default (doctrine 026 R2: `wst_dev_database.backup`).
pub const DEFAULT_ENTRY: &str = "wst_dev_database.backup";

/// The source kind in the manifest.
pub const SOURCE_KIND: &str = "postgresql";

/// `pg_dump`'s own compression of the custom-format archive (`--compress`).
///
/// The artifact is zstd-compressed as a whole, so the default is [`DumpCompression::None`]
/// (`-Z0`), chosen by measurement (`benches/pg_backup.rs`, 2 shared cores, PostgreSQL 15,
/// `pgbench` scale 30 plus 2 million rows of hex digests and JSON, an 819 MB database): with
/// `-Z0` the whole wst backup took 8.3 s for a 106.9 MB artifact, with `-Z6` (gzip inside,
/// `pg_dump`'s default) 15.8 s for 111.5 MB — gzip runs single-threaded inside `pg_dump` at a
/// fraction of zstd's speed, and zstd cannot compress gzip's output any further. Only on
/// `pgbench`'s blank-padded rows alone is gzip competitive (2.2 s against 4.0 s in the same
/// quick run), which is not what application data looks like. The choice is recorded in
/// [`DatabaseFacts::pg_dump_compression`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DumpCompression {
    /// `--compress=0`: no compression inside the dump.
    #[default]
    None,
    /// `--compress=N` (gzip level 1–9).
    Gzip(u8),
}

impl DumpCompression {
    /// The `--compress` argument value.
    pub fn arg(self) -> String {
        match self {
            Self::None => "0".to_owned(),
            Self::Gzip(level) => level.clamp(1, 9).to_string(),
        }
    }
}

/// A PostgreSQL database as a backup [`Source`]: one archive entry holding a custom-format
/// (`-Fc`) `pg_dump`, plus [`DatabaseFacts`] in the manifest that describe the same instant.
///
/// [`Source::prepare`] connects, opens a `REPEATABLE READ READ ONLY` transaction, exports its
/// snapshot (`pg_export_snapshot()`) and records the server version and database size; then
/// `pg_dump --format=custom --snapshot=<id>` dumps that snapshot into a private temporary file
/// while this session, concurrently and from the same snapshot, records the exact per-table
/// row counts, the large-object count and the schema fingerprint. The exporting transaction
/// stays open until `pg_dump` has finished (DESIGN "PostgreSQL: consistency"). The password
/// reaches `pg_dump` through a private passfile, never argv (design invariant 7).
#[derive(Debug, Clone)]
pub struct PgDumpSource {
    name: String,
    conn: ConnectionConfig,
    entry: String,
    compression: DumpCompression,
    tools: PgTools,
    spool_dir: Option<PathBuf>,
}

impl PgDumpSource {
    /// A source for `conn`'s database, named `database` in reports, written as
    /// [`DEFAULT_ENTRY`], tools found by [`PgTools::discover`].
    pub fn new(conn: ConnectionConfig) -> Self {
        Self {
            name: "database".to_owned(),
            conn,
            entry: DEFAULT_ENTRY.to_owned(),
            compression: DumpCompression::default(),
            tools: PgTools::discover(),
            spool_dir: None,
        }
    }

    /// Sets the source's name in reports.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the archive entry name (default [`DEFAULT_ENTRY`]).
    #[must_use]
    pub fn with_entry(mut self, entry: impl Into<String>) -> Self {
        self.entry = entry.into();
        self
    }

    /// Sets `pg_dump`'s own compression (default [`DumpCompression::None`]).
    #[must_use]
    pub fn with_compression(mut self, compression: DumpCompression) -> Self {
        self.compression = compression;
        self
    }

    /// Uses the PostgreSQL programs in `tools`.
    #[must_use]
    pub fn with_tools(mut self, tools: PgTools) -> Self {
        self.tools = tools;
        self
    }

    /// Spools the dump in `dir` instead of the system temporary directory. It needs room for
    /// the whole dump.
    #[must_use]
    pub fn with_spool_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.spool_dir = Some(dir.into());
        self
    }

    /// The connection configuration.
    pub fn connection(&self) -> &ConnectionConfig {
        &self.conn
    }

    /// Takes the dump: the work of [`Source::prepare`], with this crate's error type.
    ///
    /// # Errors
    /// [`Error::KeyFileInsecure`]/[`Error::KeyFileFormat`]/… for the password (R6),
    /// [`Error::AuthenticationFailed`] (F1), [`Error::ServerUnreachable`],
    /// [`Error::DatabaseMissing`], [`Error::ToolMissing`] / [`Error::ToolTooOld`] for `pg_dump`,
    /// [`Error::ToolFailed`] with `pg_dump`'s redacted stderr, [`Error::EmptyDump`] (F3).
    pub async fn dump(&self) -> Result<PreparedDump> {
        let password = self.conn.password.load()?;
        let pg_dump_version = self.tools.version("pg_dump")?;
        let session = connect(&self.conn, password.as_ref()).await?;
        let client = &session.client;
        let pw = password.as_ref();

        // Outside the transaction: an error here (no privilege) must not abort the snapshot.
        let system_identifier = client
            .query_one(
                "SELECT CASE WHEN pg_catalog.has_function_privilege('pg_catalog.pg_control_system()', 'EXECUTE') \
                 THEN (SELECT system_identifier::text FROM pg_catalog.pg_control_system()) END",
                &[],
            )
            .await
            .ok()
            .and_then(|r| r.get::<_, Option<String>>(0));
        client
            .batch_execute(
                "SET search_path = pg_catalog; SET idle_in_transaction_session_timeout = 0; \
                 BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            )
            .await
            .map_err(|e| query_error("opening the snapshot transaction", &e, pw))?;
        let head = client
            .query_one(
                "SELECT pg_export_snapshot(), (extract(epoch FROM now()) * 1000000)::int8, \
                        current_setting('server_version'), current_setting('server_version_num')::int4, \
                        current_database()::text, pg_database_size(current_database()), \
                        pg_encoding_to_char(d.encoding)::text \
                 FROM pg_database d WHERE d.datname = current_database()",
                &[],
            )
            .await
            .map_err(|e| query_error("exporting the snapshot", &e, pw))?;
        let snapshot_id: String = head.get(0);
        let snapshot_micros: i64 = head.get(1);
        let server_version: String = head.get(2);
        let server_version_num: i32 = head.get(3);
        let database: String = head.get(4);
        let database_size: i64 = head.get(5);
        let encoding: String = head.get(6);

        let server = ToolVersion::from_server_num(server_version_num);
        if pg_dump_version.major < server.major {
            return Err(Error::ToolTooOld {
                tool: "pg_dump".to_owned(),
                tool_version: pg_dump_version.to_string(),
                server_version: server_version.clone(),
            });
        }
        let snapshot_time = jiff::Timestamp::from_microsecond(snapshot_micros)
            .map_err(|e| Error::Config(format!("server returned an invalid snapshot time: {e}")))?;
        // pg_dump imports the snapshot while this session keeps it exported; the facts are
        // read from the same snapshot concurrently, so neither waits for the other.
        let started = Instant::now();
        let spool = async {
            let file = self.spool_dump(&snapshot_id, password.as_ref()).await?;
            Ok::<_, Error>((file, started.elapsed().as_secs_f64()))
        };
        let facts = async {
            let collected = facts::collect(client, pw).await?;
            tracing::debug!(
                snapshot = %snapshot_id,
                tables = collected.row_counts.len(),
                seconds = started.elapsed().as_secs_f64(),
                "facts collected from the exported snapshot"
            );
            Ok::<_, Error>(collected)
        };
        // The first error drops the other future (and kills pg_dump).
        let joined = tokio::try_join!(spool, facts);
        // End the exporting transaction only now that pg_dump has finished with the snapshot.
        let commit = client.batch_execute("COMMIT").await;
        drop(session);
        let ((file, dump_seconds), collected) = joined?;
        commit.map_err(|e| query_error("ending the snapshot transaction", &e, pw))?;
        let dump_bytes = file
            .as_file()
            .metadata()
            .map_err(|e| Error::io("reading the spooled dump's size", e))?
            .len();
        if dump_bytes == 0 {
            return Err(Error::EmptyDump { database });
        }
        tracing::info!(
            database = %database,
            bytes = dump_bytes,
            seconds = dump_seconds,
            "pg_dump finished"
        );
        let facts = DatabaseFacts {
            server_version,
            server_version_num,
            system_identifier,
            database,
            encoding,
            database_size_bytes: database_size.max(0) as u64,
            snapshot_id: Some(snapshot_id),
            snapshot_time,
            row_counts: collected.row_counts,
            large_object_count: collected.large_object_count,
            schema_fingerprint: collected.schema_fingerprint,
            schema_objects: collected.schema_objects,
            pg_dump_version: Some(pg_dump_version.to_string()),
            pg_dump_compression: Some(self.compression.arg()),
            dump_bytes: Some(dump_bytes),
            dump_seconds: Some(dump_seconds),
        };
        Ok(PreparedDump {
            name: self.name.clone(),
            entry: self.entry.clone(),
            file,
            facts,
        })
    }

    async fn spool_dump(
        &self,
        snapshot_id: &str,
        password: Option<&Password>,
    ) -> Result<tempfile::NamedTempFile> {
        let mut builder = tempfile::Builder::new();
        builder.prefix(".wst-pgdump-").suffix(".backup");
        let file = match &self.spool_dir {
            Some(dir) => builder.tempfile_in(dir),
            None => builder.tempfile(),
        }
        .map_err(|e| Error::io("creating the dump spool file", e))?;
        let passfile = passfile_for(password)?;
        let mut cmd = self.tools.command("pg_dump", &self.conn, passfile.as_ref());
        cmd.arg("--format=custom")
            .arg(format!("--snapshot={snapshot_id}"))
            .arg(format!("--compress={}", self.compression.arg()))
            .arg("--no-password")
            // The spool is a temporary file: durability is the sinks' job, so skip pg_dump's
            // final fsync of it.
            .arg("--no-sync")
            .arg("--file")
            .arg(file.path())
            .arg("--dbname")
            .arg(self.conn.conninfo())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.kill_on_drop(true);
        let out = cmd.output().await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::ToolMissing {
                    tool: "pg_dump".to_owned(),
                    searched: self.tools.program("pg_dump").display().to_string(),
                }
            } else {
                Error::io("running pg_dump", e)
            }
        })?;
        drop(passfile);
        if !out.status.success() {
            return Err(Error::ToolFailed {
                tool: "pg_dump".to_owned(),
                status: out.status.to_string(),
                stderr: clean_stderr(&out.stderr, password),
            });
        }
        Ok(file)
    }
}

#[async_trait]
impl Source for PgDumpSource {
    fn name(&self) -> String {
        self.name.clone()
    }

    async fn prepare(&self) -> wst_core::Result<Box<dyn PreparedSource>> {
        match self.dump().await {
            Ok(d) => Ok(Box::new(d)),
            Err(e) => {
                tracing::error!(source = %self.name, error = %e, "database dump failed");
                Err(e.into_core(self.name.clone()))
            }
        }
    }
}

/// A finished, spooled dump with its facts: the [`PreparedSource`] of [`PgDumpSource`].
/// The spool file is deleted when this is dropped.
#[derive(Debug)]
pub struct PreparedDump {
    name: String,
    entry: String,
    file: tempfile::NamedTempFile,
    facts: DatabaseFacts,
}

impl PreparedDump {
    /// The facts recorded from the dump's snapshot.
    pub fn facts(&self) -> &DatabaseFacts {
        &self.facts
    }

    /// The spooled dump file (valid while `self` lives).
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// The archive entry name.
    pub fn entry(&self) -> &str {
        &self.entry
    }

    /// The manifest description: kind [`SOURCE_KIND`], root = the entry name, details = the
    /// facts as JSON.
    pub fn source_description(&self) -> SourceDescription {
        SourceDescription {
            kind: SOURCE_KIND.to_owned(),
            name: self.name.clone(),
            root: self.entry.clone(),
            details: serde_json::to_value(&self.facts).unwrap_or_default(),
        }
    }
}

impl PreparedSource for PreparedDump {
    fn description(&self) -> SourceDescription {
        self.source_description()
    }

    fn write_entries(&mut self, out: &mut dyn EntryWriter) -> wst_core::Result<()> {
        let path = self.file.path().to_owned();
        let mut file = File::open(&path).map_err(|source| wst_core::Error::SourceRead {
            path: path.clone(),
            source,
        })?;
        let size = file
            .metadata()
            .map_err(|source| wst_core::Error::SourceRead {
                path: path.clone(),
                source,
            })?
            .len();
        let meta = EntryMeta {
            path: self.entry.clone(),
            kind: EntryKind::File,
            size,
            mode: 0o600,
            mtime: self.facts.snapshot_time.as_second(),
        };
        let outcome = out.add(&meta, &mut file)?;
        if outcome.changed {
            return Err(wst_core::Error::Source {
                name: self.name.clone(),
                source: "the spooled dump changed while it was archived".into(),
            });
        }
        Ok(())
    }
}
