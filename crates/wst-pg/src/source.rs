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
/// `pg_dump --format=custom --snapshot=<id>` dumps that snapshot to a pipe, hashed and
/// zstd-compressed as it arrives into a private temporary spool (which the archive splices into
/// the artifact unchanged, [`EntryWriter::add_zstd`]), while this session, concurrently and from the same snapshot, records the exact per-table
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
    zstd_level: i32,
    zstd_workers: u32,
}

/// zstd worker threads used by default: the available cores, at most 4, with the `zstdmt`
/// feature; 0 (compress on the reading thread) without it.
fn default_zstd_workers() -> u32 {
    if cfg!(feature = "zstdmt") {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(4) as u32)
    } else {
        0
    }
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
            zstd_level: 3,
            zstd_workers: default_zstd_workers(),
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
    /// the compressed dump (the spool holds zstd frames, not the raw dump).
    #[must_use]
    pub fn with_spool_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.spool_dir = Some(dir.into());
        self
    }

    /// The zstd level (1–19, default 3, as `BackupJob`'s default) and worker threads (0:
    /// compress on the reading thread; more need the `zstdmt` feature and are ignored
    /// without it; default: the available cores, at most 4) used to compress the dump while
    /// `pg_dump` writes it. The compressed frames are spliced into the artifact as they are
    /// ([`EntryWriter::add_zstd`]), so this level, not the job's, applies to the dump.
    #[must_use]
    pub fn with_zstd(mut self, level: i32, workers: u32) -> Self {
        self.zstd_level = level.clamp(1, 19);
        self.zstd_workers = workers;
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
        let system_identifier = crate::facts::system_identifier(client).await;
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
        let ((spooled, dump_seconds), collected) = joined?;
        commit.map_err(|e| query_error("ending the snapshot transaction", &e, pw))?;
        let dump_bytes = spooled.plain_bytes;
        if dump_bytes == 0 {
            return Err(Error::EmptyDump { database });
        }
        tracing::info!(
            database = %database,
            bytes = dump_bytes,
            compressed_bytes = spooled.compressed_bytes,
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
            spooled,
            facts,
        })
    }

    /// Runs `pg_dump` on the exported snapshot, writing the custom-format archive to a pipe
    /// that a blocking thread hashes (SHA-256) and zstd-compresses into the private spool as
    /// it arrives: compression overlaps the dump, as in `pg_dump | zstd`, and the spool holds
    /// only the compressed bytes.
    ///
    /// Written to a pipe, the archive's table of contents carries no data offsets; `pg_restore`
    /// (PostgreSQL 12 and later) finds the data blocks by scanning and still restores with
    /// `--jobs` (measured on PostgreSQL 15: same restore time as an archive written to a file).
    async fn spool_dump(&self, snapshot_id: &str, password: Option<&Password>) -> Result<Spooled> {
        use tokio::io::AsyncReadExt as _;

        let mut builder = tempfile::Builder::new();
        builder.prefix(".wst-pgdump-").suffix(".backup.zst");
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
            .arg("--dbname")
            .arg(self.conn.conninfo())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::ToolMissing {
                    tool: "pg_dump".to_owned(),
                    searched: self.tools.program("pg_dump").display().to_string(),
                }
            } else {
                Error::io("running pg_dump", e)
            }
        })?;
        let (Some(mut stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take())
        else {
            return Err(Error::io(
                "running pg_dump",
                std::io::Error::other("pg_dump's output pipes are missing"),
            ));
        };
        let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(SPOOL_DEPTH);
        let (level, workers) = (self.zstd_level, self.zstd_workers);
        let compress =
            tokio::task::spawn_blocking(move || compress_spool(file, rx, level, workers));
        let pump = async move {
            loop {
                let mut buf = vec![0u8; SPOOL_CHUNK];
                let mut filled = 0;
                // Fill whole chunks: fewer, larger hand-offs to the compressing thread.
                while filled < buf.len() {
                    let n = stdout.read(&mut buf[filled..]).await?;
                    if n == 0 {
                        break;
                    }
                    filled += n;
                }
                if filled == 0 {
                    return Ok::<_, std::io::Error>(());
                }
                buf.truncate(filled);
                let last = filled < SPOOL_CHUNK;
                if tx.send(buf).await.is_err() {
                    return Err(std::io::Error::other("the dump compressor stopped"));
                }
                if last {
                    return Ok(());
                }
            }
        };
        let errors = async move {
            let mut text = Vec::new();
            stderr.read_to_end(&mut text).await.map(|_| text)
        };
        let (pumped, stderr_text) = tokio::join!(pump, errors);
        let status = child.wait().await;
        drop(passfile);
        let status = status.map_err(|e| Error::io("running pg_dump", e))?;
        // The pump is done and dropped its sender: the compressor finishes (or has failed).
        let compressed = compress
            .await
            .map_err(|e| Error::Config(format!("the dump compressor failed: {e}")))?;
        if pumped.is_err() {
            // The compressor stopped first (e.g. the spool's disk is full): its error is the
            // cause of the broken pipe pg_dump saw.
            if let Err(e) = compressed {
                return Err(Error::io("compressing the dump into the spool file", e));
            }
        }
        let stderr_text = stderr_text.unwrap_or_default();
        if !status.success() {
            return Err(Error::ToolFailed {
                tool: "pg_dump".to_owned(),
                status: status.to_string(),
                stderr: clean_stderr(&stderr_text, password),
            });
        }
        pumped.map_err(|e| Error::io("reading pg_dump's output", e))?;
        compressed.map_err(|e| Error::io("compressing the dump into the spool file", e))
    }
}

/// Bytes per hand-off from `pg_dump`'s pipe to the compressing thread.
const SPOOL_CHUNK: usize = 1024 * 1024;
/// Hand-offs buffered; memory ≈ depth × 1 MiB plus zstd's buffers.
const SPOOL_DEPTH: usize = 4;

/// The compressed dump: spool file, raw size and SHA-256 of the raw (custom-format) bytes.
#[derive(Debug)]
struct Spooled {
    file: tempfile::NamedTempFile,
    plain_bytes: u64,
    plain_sha256: [u8; 32],
    compressed_bytes: u64,
}

/// Hashes and compresses what arrives on `rx` into `file` until the channel closes.
fn compress_spool(
    file: tempfile::NamedTempFile,
    mut rx: tokio::sync::mpsc::Receiver<Vec<u8>>,
    level: i32,
    workers: u32,
) -> std::io::Result<Spooled> {
    use sha2::Digest as _;
    use std::io::Write as _;

    let out = std::io::BufWriter::with_capacity(1 << 20, file.reopen()?);
    #[allow(unused_mut)]
    let mut encoder = zstd::stream::write::Encoder::new(out, level)?;
    #[cfg(feature = "zstdmt")]
    if workers > 0 {
        encoder.multithread(workers)?;
    }
    let _ = workers;
    let mut hasher = sha2::Sha256::new();
    let mut plain_bytes = 0u64;
    while let Some(chunk) = rx.blocking_recv() {
        hasher.update(&chunk);
        plain_bytes += chunk.len() as u64;
        encoder.write_all(&chunk)?;
    }
    let out = encoder.finish()?;
    let inner = out
        .into_inner()
        .map_err(std::io::IntoInnerError::into_error)?;
    let compressed_bytes = inner.metadata()?.len();
    Ok(Spooled {
        file,
        plain_bytes,
        plain_sha256: hasher.finalize().into(),
        compressed_bytes,
    })
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

/// A finished dump with its facts: the [`PreparedSource`] of [`PgDumpSource`]. The dump is
/// spooled zstd-compressed; the spool file is deleted when this is dropped.
#[derive(Debug)]
pub struct PreparedDump {
    name: String,
    entry: String,
    spooled: Spooled,
    facts: DatabaseFacts,
}

impl PreparedDump {
    /// The facts recorded from the dump's snapshot.
    pub fn facts(&self) -> &DatabaseFacts {
        &self.facts
    }

    /// The spool file (valid while `self` lives): the custom-format dump as zstd frames.
    pub fn spool_path(&self) -> &Path {
        self.spooled.file.path()
    }

    /// The dump's size in bytes (custom format, uncompressed).
    pub fn dump_bytes(&self) -> u64 {
        self.spooled.plain_bytes
    }

    /// Writes the uncompressed custom-format dump to `path` (created or truncated), e.g. for
    /// `pg_restore` outside a backup.
    ///
    /// # Errors
    /// [`Error::Io`] when the spool cannot be read or decoded, or `path` cannot be written.
    pub fn write_dump(&self, path: &Path) -> Result<()> {
        let spool =
            File::open(self.spool_path()).map_err(|e| Error::io("opening the dump spool", e))?;
        let mut decoder = zstd::stream::read::Decoder::new(spool)
            .map_err(|e| Error::io("decoding the dump spool", e))?;
        let mut out = File::create(path)
            .map_err(|e| Error::io(format!("creating `{}`", path.display()), e))?;
        std::io::copy(&mut decoder, &mut out)
            .map_err(|e| Error::io(format!("writing `{}`", path.display()), e))?;
        Ok(())
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
            listing: std::collections::BTreeMap::new(),
        }
    }
}

impl PreparedSource for PreparedDump {
    fn description(&self) -> SourceDescription {
        self.source_description()
    }

    /// Adds the dump as one file entry, its compressed frames spliced into the artifact
    /// ([`EntryWriter::add_zstd`]).
    fn write_entries(&mut self, out: &mut dyn EntryWriter) -> wst_core::Result<()> {
        let path = self.spooled.file.path().to_owned();
        let mut file = File::open(&path).map_err(|source| wst_core::Error::SourceRead {
            path: path.clone(),
            source,
        })?;
        let meta = EntryMeta {
            path: self.entry.clone(),
            kind: EntryKind::File,
            size: self.spooled.plain_bytes,
            mode: 0o600,
            mtime: self.facts.snapshot_time.as_second(),
        };
        out.add_zstd(&meta, &mut file, self.spooled.plain_sha256)?;
        Ok(())
    }
}
