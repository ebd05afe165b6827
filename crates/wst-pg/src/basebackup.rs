//! `BaseBackupSource`: a physical base backup of a whole cluster (`pg_basebackup`) streamed
//! into a wst artifact, the starting point of point-in-time recovery (issue 16; seeds/002
//! "`pg_basebackup` for databases over 10 GB or RTO under 30 minutes").

use std::collections::BTreeMap;
use std::io::{BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Instant;

use async_trait::async_trait;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use wst_core::{EntryKind, EntryMeta, EntryWriter, PreparedSource, Source, SourceDescription};

use crate::config::{ConnectionConfig, Password};
use crate::connect::{connect, query_error};
use crate::error::{Error, Result};
use crate::lsn::Lsn;
use crate::tools::{PgTools, ToolVersion, clean_stderr, passfile_for};

/// The source kind of a base backup in the manifest and sidecar.
pub const BASE_SOURCE_KIND: &str = "postgresql_base";

/// The archive directory a base backup's data directory is written under: the artifact holds
/// `pgdata/PG_VERSION`, `pgdata/base/…`, `pgdata/backup_label`, `pgdata/backup_manifest`, ….
pub const BASE_ROOT: &str = "pgdata";

/// The prefix of base-backup artifacts in a repository whose logical artifacts use `prefix`:
/// `{prefix}-base` (names `wst-backup-base-YYYYMMDD-HHMMSS`). A separate prefix keeps base
/// backups out of the logical backups' catalog, retention and status rules (a catalog lists
/// only names whose prefix is exactly its own), and the other way round.
pub fn base_prefix(prefix: &str) -> String {
    format!("{prefix}-base")
}

/// `backup_label` is a few hundred bytes; more is not a backup label.
const MAX_LABEL_BYTES: u64 = 64 * 1024;
/// The tail of `backup_manifest` kept to read its `WAL-Ranges` (the last members; the file
/// list before them grows with the cluster and is never held).
const MANIFEST_TAIL_BYTES: usize = 1024 * 1024;
/// `pg_basebackup`'s standard error kept for the error message (the tail).
const MAX_STDERR_BYTES: usize = 64 * 1024;

/// The facts of one base backup, recorded in the manifest (`details`) and, for listings, in
/// the authenticated sidecar ([`BaseBackupFacts::listing`]): what point-in-time recovery needs
/// to choose a base backup and the WAL it depends on.
///
/// Times are UTC and come from the server's clock (`now()` just before `pg_basebackup`
/// started and just after it finished), never from the host running wst.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BaseBackupFacts {
    /// `server_version`, e.g. `15.18 (Debian 15.18-0+deb12u1)`.
    pub server_version: String,
    /// `server_version_num`, e.g. `150018`.
    pub server_version_num: i32,
    /// The cluster's system identifier (`pg_control_system()`), which every WAL segment of the
    /// cluster carries; `None` without the privilege to read it.
    pub system_identifier: Option<String>,
    /// The timeline the backup started on (`backup_label` `START TIMELINE`).
    pub timeline: u32,
    /// Where replay starts (`backup_label` `START WAL LOCATION`).
    pub start_lsn: Lsn,
    /// The end of the WAL the backup needs to be consistent (`backup_manifest` `WAL-Ranges`,
    /// the last range's `End-LSN`): recovery to any target at or after it is possible.
    pub stop_lsn: Lsn,
    /// The first WAL segment the backup needs, e.g. `000000010000000000000002`.
    pub start_wal: String,
    /// The last WAL segment the backup needs (the one holding the byte before
    /// [`Self::stop_lsn`]).
    pub stop_wal: String,
    /// WAL segment size of the cluster in bytes (`wal_segment_size`).
    pub wal_segment_bytes: u64,
    /// Server time just before `pg_basebackup` started (a lower bound of the backup's start).
    pub start_time: Timestamp,
    /// Server time just after `pg_basebackup` finished (an upper bound of the moment the
    /// backup became consistent): a recovery target time at or after it is reachable.
    pub stop_time: Timestamp,
    /// Whether the WAL from start to stop is inside the artifact (`pg_basebackup -X fetch`), so
    /// the backup restores to a consistent cluster without the WAL archive.
    pub wal_included: bool,
    /// The server's `archive_mode` at backup time (`on`, `always`, `off`): without archiving
    /// the backup cannot be rolled forward past its stop point.
    pub archive_mode: String,
    /// `pg_basebackup --version`.
    pub pg_basebackup_version: String,
    /// Data directory files in the backup, and their bytes.
    pub files: u64,
    /// Content bytes of those files.
    pub bytes: u64,
    /// `backup_manifest`'s own `Manifest-Checksum` (SHA-256 hex), as `pg_verifybackup` knows it.
    pub manifest_checksum: Option<String>,
}

impl BaseBackupFacts {
    /// The facts repeated in the sidecar so a listing can use them (issue 16: status continuity
    /// and WAL retention read them every minute without decrypting artifacts): `timeline`,
    /// `start_lsn`, `stop_lsn`, `start_wal`, `stop_wal`, `wal_segment_bytes`, `stop_time`
    /// (RFC 3339), `system_identifier`.
    pub fn listing(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert("timeline".into(), self.timeline.to_string());
        m.insert("start_lsn".into(), self.start_lsn.to_string());
        m.insert("stop_lsn".into(), self.stop_lsn.to_string());
        m.insert("start_wal".into(), self.start_wal.clone());
        m.insert("stop_wal".into(), self.stop_wal.clone());
        m.insert(
            "wal_segment_bytes".into(),
            self.wal_segment_bytes.to_string(),
        );
        m.insert("stop_time".into(), self.stop_time.to_string());
        if let Some(id) = &self.system_identifier {
            m.insert("system_identifier".into(), id.clone());
        }
        m
    }
}

/// The WAL range of a base backup as read back from a sidecar's listing facts
/// ([`BaseBackupFacts::listing`]): enough to choose a base backup for a recovery target and to
/// know the WAL it needs, without opening the artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct BaseBackupRange {
    /// The timeline the backup started on.
    pub timeline: u32,
    /// Where replay starts.
    pub start_lsn: Lsn,
    /// Where the backup is consistent.
    pub stop_lsn: Lsn,
    /// The first WAL segment needed.
    pub start_wal: String,
    /// The last WAL segment needed to be consistent.
    pub stop_wal: String,
    /// WAL segment size in bytes.
    pub wal_segment_bytes: u64,
    /// Server time after the backup finished.
    pub stop_time: Timestamp,
}

impl BaseBackupRange {
    /// Reads the range from a sidecar's listing facts; `None` when a fact is missing or does
    /// not parse (a sidecar of another kind of artifact, or of an older wst).
    pub fn from_listing(listing: &BTreeMap<String, String>) -> Option<Self> {
        let get = |k: &str| listing.get(k).map(String::as_str);
        Some(Self {
            timeline: get("timeline")?.parse().ok()?,
            start_lsn: get("start_lsn")?.parse().ok()?,
            stop_lsn: get("stop_lsn")?.parse().ok()?,
            start_wal: crate::wal::WalFileName::parse(get("start_wal")?)
                .ok()?
                .as_str()
                .to_owned(),
            stop_wal: crate::wal::WalFileName::parse(get("stop_wal")?)
                .ok()?
                .as_str()
                .to_owned(),
            wal_segment_bytes: get("wal_segment_bytes")?.parse().ok()?,
            stop_time: get("stop_time")?.parse().ok()?,
        })
    }
}

/// A `PostgreSQL` cluster as a backup [`Source`]: a physical base backup taken with
/// `pg_basebackup --format=tar --pgdata=- --wal-method=fetch`, whose tar stream is read entry
/// by entry and written into the artifact under [`BASE_ROOT`] as it arrives (no spool, no
/// copy on the host's disk), with [`BaseBackupFacts`] in the manifest.
///
/// Needs: a role with the `REPLICATION` attribute (or a superuser) and a `replication` line in
/// `pg_hba.conf` for it, `wal_level = replica` (the default), a free WAL sender
/// (`max_wal_senders`), `PostgreSQL` 13 or later (for `backup_manifest`), and one tablespace
/// (`pg_basebackup` cannot write several to one stream; clusters with tablespaces are refused
/// with its message). For point-in-time recovery past the backup, WAL archiving
/// (`archive_mode = on`, `archive_command` = `wst wal-push %p`). The password reaches
/// `pg_basebackup` through a private passfile, never argv.
#[derive(Debug, Clone)]
pub struct BaseBackupSource {
    name: String,
    conn: ConnectionConfig,
    tools: PgTools,
    fast_checkpoint: bool,
    max_rate: Option<String>,
}

impl BaseBackupSource {
    /// A base backup of the cluster `conn` reaches (its database name only picks the session
    /// used for the facts), named `cluster` in reports, with a fast checkpoint.
    pub fn new(conn: ConnectionConfig) -> Self {
        Self {
            name: "cluster".to_owned(),
            conn,
            tools: PgTools::discover(),
            fast_checkpoint: true,
            max_rate: None,
        }
    }

    /// Sets the source's name in reports.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Uses the `PostgreSQL` programs in `tools`.
    #[must_use]
    pub fn with_tools(mut self, tools: PgTools) -> Self {
        self.tools = tools;
        self
    }

    /// `true` (default): `--checkpoint=fast`, the backup starts at once with an immediate
    /// checkpoint; `false`: `--checkpoint=spread`, it waits for a spread checkpoint (less I/O
    /// burst on a busy primary, up to `checkpoint_timeout` longer).
    #[must_use]
    pub fn fast_checkpoint(mut self, fast: bool) -> Self {
        self.fast_checkpoint = fast;
        self
    }

    /// `--max-rate` (e.g. `100M`: bytes per second, `k`/`M` suffixes as `pg_basebackup` takes
    /// them): limits the read rate on the server.
    #[must_use]
    pub fn max_rate(mut self, rate: impl Into<String>) -> Self {
        self.max_rate = Some(rate.into());
        self
    }

    /// Checks the server and the tool: the work of [`Source::prepare`].
    ///
    /// # Errors
    /// The password's errors (R6), [`Error::AuthenticationFailed`],
    /// [`Error::ServerUnreachable`], [`Error::ToolMissing`]/[`Error::ToolTooOld`] for
    /// `pg_basebackup`, [`Error::BaseBackup`] when `wal_level` is `minimal` or the server is
    /// older than `PostgreSQL` 13.
    pub async fn check(&self) -> Result<PreparedBaseBackup> {
        let password = self.conn.password.load()?;
        let tool_version = self.tools.version("pg_basebackup")?;
        let session = connect(&self.conn, password.as_ref()).await?;
        let client = &session.client;
        let pw = password.as_ref();
        let system_identifier = crate::facts::system_identifier(client).await;
        let row = client
            .query_one(
                "SELECT current_setting('server_version'), current_setting('server_version_num')::int4, \
                        current_setting('wal_level'), current_setting('archive_mode'), \
                        (SELECT setting::int8 FROM pg_catalog.pg_settings WHERE name = 'wal_segment_size'), \
                        (extract(epoch FROM now()) * 1000000)::int8",
                &[],
            )
            .await
            .map_err(|e| query_error("reading the server's settings", &e, pw))?;
        let server_version: String = row.get(0);
        let server_version_num: i32 = row.get(1);
        let wal_level: String = row.get(2);
        let archive_mode: String = row.get(3);
        let wal_segment_bytes: i64 = row.get(4);
        let now_micros: i64 = row.get(5);
        if server_version_num < 130_000 {
            return Err(Error::BaseBackup {
                reason: format!(
                    "the server is PostgreSQL {server_version}; base backups need PostgreSQL 13 or later (backup_manifest)"
                ),
            });
        }
        if wal_level == "minimal" {
            return Err(Error::BaseBackup {
                reason: "the server runs with wal_level = minimal: set wal_level = replica (the default) and restart".into(),
            });
        }
        let server = ToolVersion::from_server_num(server_version_num);
        if tool_version.major < server.major {
            return Err(Error::ToolTooOld {
                tool: "pg_basebackup".to_owned(),
                tool_version: tool_version.to_string(),
                server_version,
            });
        }
        if archive_mode == "off" {
            tracing::warn!(
                "archive_mode is off: this base backup restores to its own end only; turn on WAL archiving (wst wal-push) for point-in-time recovery"
            );
        }
        let start_time = Timestamp::from_microsecond(now_micros)
            .map_err(|e| Error::Config(format!("server returned an invalid time: {e}")))?;
        Ok(PreparedBaseBackup {
            source: self.clone(),
            password,
            runtime: tokio::runtime::Handle::try_current().ok(),
            server_version,
            server_version_num,
            system_identifier,
            archive_mode,
            wal_segment_bytes: u64::try_from(wal_segment_bytes).unwrap_or(16 << 20),
            tool_version: tool_version.to_string(),
            start_time,
            facts: None,
        })
    }
}

#[async_trait]
impl Source for BaseBackupSource {
    fn name(&self) -> String {
        self.name.clone()
    }

    async fn prepare(&self) -> wst_core::Result<Box<dyn PreparedSource>> {
        match self.check().await {
            Ok(p) => Ok(Box::new(p)),
            Err(e) => {
                tracing::error!(source = %self.name, error = %e, "base backup cannot start");
                Err(e.into_core(self.name.clone()))
            }
        }
    }
}

/// A checked server, ready to stream its base backup: the [`PreparedSource`] of
/// [`BaseBackupSource`]. `pg_basebackup` runs inside [`PreparedSource::write_entries`].
#[derive(Debug)]
pub struct PreparedBaseBackup {
    source: BaseBackupSource,
    password: Option<Password>,
    runtime: Option<tokio::runtime::Handle>,
    server_version: String,
    server_version_num: i32,
    system_identifier: Option<String>,
    archive_mode: String,
    wal_segment_bytes: u64,
    tool_version: String,
    start_time: Timestamp,
    facts: Option<BaseBackupFacts>,
}

impl PreparedBaseBackup {
    /// The facts, once the backup was written.
    pub fn facts(&self) -> Option<&BaseBackupFacts> {
        self.facts.as_ref()
    }

    fn spawn(&self) -> Result<(Child, Option<crate::tools::PassFile>)> {
        let passfile = passfile_for(self.password.as_ref())?;
        let mut cmd =
            self.source
                .tools
                .command("pg_basebackup", &self.source.conn, passfile.as_ref());
        cmd.arg("--pgdata=-")
            .arg("--format=tar")
            .arg("--wal-method=fetch")
            .arg(if self.source.fast_checkpoint {
                "--checkpoint=fast"
            } else {
                "--checkpoint=spread"
            })
            .arg("--label=wst base backup")
            .arg("--no-password")
            .arg("--dbname")
            .arg(self.source.conn.conninfo())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(rate) = &self.source.max_rate {
            cmd.arg(format!("--max-rate={rate}"));
        }
        let child = cmd.spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::ToolMissing {
                    tool: "pg_basebackup".to_owned(),
                    searched: self
                        .source
                        .tools
                        .program("pg_basebackup")
                        .display()
                        .to_string(),
                }
            } else {
                Error::io("running pg_basebackup", e)
            }
        })?;
        Ok((child, passfile))
    }

    /// Streams `pg_basebackup`'s tar into `out`, returning the facts.
    fn stream(&self, out: &mut dyn EntryWriter) -> Result<BaseBackupFacts> {
        let started = Instant::now();
        let (child, passfile) = self.spawn()?;
        let mut child = KillOnDrop(child);
        let stderr = child.0.stderr.take();
        let stderr_thread = std::thread::Builder::new()
            .name("wst-basebackup-stderr".into())
            .spawn(move || {
                let mut tail = Vec::new();
                if let Some(mut e) = stderr {
                    let mut buf = [0u8; 8192];
                    while let Ok(n) = e.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        tail.extend_from_slice(&buf[..n]);
                        if tail.len() > MAX_STDERR_BYTES {
                            tail.drain(..tail.len() - MAX_STDERR_BYTES);
                        }
                    }
                }
                tail
            })
            .map_err(|e| Error::io("starting the pg_basebackup stderr reader", e))?;
        let stdout = child.0.stdout.take().ok_or_else(|| {
            Error::io(
                "running pg_basebackup",
                std::io::Error::other("pg_basebackup's output pipe is missing"),
            )
        })?;
        let streamed = stream_tar(stdout, out);
        if let Err(e) = streamed {
            // The stream's error is the cause (a sink failed, the archive refused an entry);
            // pg_basebackup is stopped by the guard.
            drop(child);
            drop(passfile);
            return Err(e);
        }
        let status = child.0.wait();
        drop(passfile);
        let stderr_text = stderr_thread.join().unwrap_or_default();
        let status = status.map_err(|e| Error::io("running pg_basebackup", e))?;
        if !status.success() {
            return Err(Error::ToolFailed {
                tool: "pg_basebackup".to_owned(),
                status: status.to_string(),
                stderr: clean_stderr(&stderr_text, self.password.as_ref()),
            });
        }
        let read = streamed?;
        let label = read.label.ok_or_else(|| Error::BaseBackup {
            reason: "pg_basebackup's archive holds no backup_label".into(),
        })?;
        let (start_lsn, timeline) = parse_label(&label)?;
        let tail = read.manifest_tail.ok_or_else(|| Error::BaseBackup {
            reason: "pg_basebackup's archive holds no backup_manifest (PostgreSQL 13 or later writes one unless --no-manifest)".into(),
        })?;
        let (ranges, manifest_checksum) = parse_manifest_tail(&tail)?;
        let last = ranges.last().ok_or_else(|| Error::BaseBackup {
            reason: "backup_manifest lists no WAL range".into(),
        })?;
        let stop_lsn = last.end;
        let seg = self.wal_segment_bytes;
        let stop_time = self.server_now().unwrap_or_else(|| {
            // Without a session: the start plus the elapsed time, still an upper bound.
            self.start_time + jiff::SignedDuration::try_from(started.elapsed()).unwrap_or_default()
        });
        Ok(BaseBackupFacts {
            server_version: self.server_version.clone(),
            server_version_num: self.server_version_num,
            system_identifier: self.system_identifier.clone(),
            timeline,
            start_lsn,
            stop_lsn,
            start_wal: start_lsn.wal_file_name(timeline, seg),
            stop_wal: Lsn(stop_lsn.0.saturating_sub(1).max(start_lsn.0))
                .wal_file_name(last.timeline, seg),
            wal_segment_bytes: seg,
            start_time: self.start_time,
            stop_time,
            wal_included: true,
            archive_mode: self.archive_mode.clone(),
            pg_basebackup_version: self.tool_version.clone(),
            files: read.files,
            bytes: read.bytes,
            manifest_checksum,
        })
    }

    /// The server's `now()` after the backup (a fresh session on the runtime that prepared the
    /// source); `None` when it cannot be asked.
    fn server_now(&self) -> Option<Timestamp> {
        let handle = self.runtime.as_ref()?;
        let conn = self.source.conn.clone();
        let password = self.password.clone();
        handle.block_on(async move {
            let session = connect(&conn, password.as_ref()).await.ok()?;
            let row = session
                .client
                .query_one("SELECT (extract(epoch FROM now()) * 1000000)::int8", &[])
                .await
                .ok()?;
            Timestamp::from_microsecond(row.get::<_, i64>(0)).ok()
        })
    }
}

impl PreparedSource for PreparedBaseBackup {
    fn description(&self) -> SourceDescription {
        SourceDescription {
            kind: BASE_SOURCE_KIND.to_owned(),
            name: self.source.name.clone(),
            root: format!("{BASE_ROOT}/"),
            details: self
                .facts
                .as_ref()
                .and_then(|f| serde_json::to_value(f).ok())
                .unwrap_or_default(),
            listing: self
                .facts
                .as_ref()
                .map(BaseBackupFacts::listing)
                .unwrap_or_default(),
        }
    }

    fn write_entries(&mut self, out: &mut dyn EntryWriter) -> wst_core::Result<()> {
        match self.stream(out) {
            Ok(f) => {
                tracing::info!(
                    files = f.files,
                    bytes = f.bytes,
                    start_lsn = %f.start_lsn,
                    stop_lsn = %f.stop_lsn,
                    timeline = f.timeline,
                    "pg_basebackup finished"
                );
                self.facts = Some(f);
                Ok(())
            }
            Err(e) => Err(e.into_core(self.source.name.clone())),
        }
    }
}

/// Kills `pg_basebackup` when the stream stops early (a sink failed, the run was cancelled),
/// so the server ends the backup instead of waiting on a full pipe.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// What the stream told besides its entries.
struct Streamed {
    label: Option<String>,
    manifest_tail: Option<Vec<u8>>,
    files: u64,
    bytes: u64,
}

/// Reads `pg_basebackup`'s tar and writes each entry under [`BASE_ROOT`]; keeps
/// `backup_label` and the tail of `backup_manifest`.
fn stream_tar(stdout: impl Read, out: &mut dyn EntryWriter) -> Result<Streamed> {
    let mut archive = tar::Archive::new(BufReader::with_capacity(1 << 20, stdout));
    let read_err = |e: std::io::Error| Error::io("reading pg_basebackup's output", e);
    out.add(
        &EntryMeta {
            path: BASE_ROOT.to_owned(),
            kind: EntryKind::Dir,
            size: 0,
            mode: 0o700,
            mtime: 0,
        },
        &mut std::io::empty(),
    )
    .map_err(Error::Core)?;
    let mut streamed = Streamed {
        label: None,
        manifest_tail: None,
        files: 0,
        bytes: 0,
    };
    for entry in archive.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        let raw = entry.path_bytes();
        let text = std::str::from_utf8(&raw).map_err(|_| Error::BaseBackup {
            reason: "pg_basebackup wrote a path that is not UTF-8".into(),
        })?;
        // pg_basebackup writes `./pg_wal/…` for the WAL it fetched: drop `.` and empty
        // components (the archive's entry rule refuses them); `..` is refused there.
        let path = text
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect::<Vec<_>>()
            .join("/");
        if path.is_empty() {
            continue;
        }
        let header = entry.header();
        let kind = match header.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => EntryKind::File,
            tar::EntryType::Directory => EntryKind::Dir,
            tar::EntryType::Symlink => EntryKind::Symlink {
                target: entry
                    .link_name_bytes()
                    .and_then(|b| std::str::from_utf8(&b).ok().map(str::to_owned))
                    .ok_or_else(|| Error::BaseBackup {
                        reason: format!(
                            "symlink `{}` has no UTF-8 target",
                            crate::wal::quote(&path)
                        ),
                    })?,
            },
            other => {
                return Err(Error::BaseBackup {
                    reason: format!(
                        "pg_basebackup wrote `{}` as tar type {:?}, which wst does not archive",
                        crate::wal::quote(&path),
                        other.as_byte() as char
                    ),
                });
            }
        };
        let size = if kind == EntryKind::File {
            entry.size()
        } else {
            0
        };
        let meta = EntryMeta {
            path: format!("{BASE_ROOT}/{path}"),
            kind,
            size,
            mode: header.mode().map_err(read_err)? & 0o7777,
            mtime: i64::try_from(header.mtime().map_err(read_err)?).unwrap_or(0),
        };
        if meta.kind == EntryKind::File {
            streamed.files += 1;
            streamed.bytes += size;
        }
        let outcome = match path.as_str() {
            "backup_label" => {
                if size > MAX_LABEL_BYTES {
                    return Err(Error::BaseBackup {
                        reason: format!("backup_label is {size} bytes (at most {MAX_LABEL_BYTES})"),
                    });
                }
                let mut text = Vec::new();
                entry.read_to_end(&mut text).map_err(read_err)?;
                let o = out.add(&meta, &mut text.as_slice()).map_err(Error::Core)?;
                streamed.label = Some(String::from_utf8_lossy(&text).into_owned());
                o
            }
            "backup_manifest" => {
                let mut tee = TailTee {
                    inner: &mut entry,
                    tail: Vec::new(),
                };
                let o = out.add(&meta, &mut tee).map_err(Error::Core)?;
                streamed.manifest_tail = Some(tee.tail);
                o
            }
            _ => out.add(&meta, &mut entry).map_err(Error::Core)?,
        };
        if outcome.changed {
            return Err(Error::BaseBackup {
                reason: format!(
                    "pg_basebackup's entry `{}` was shorter or longer than its header said",
                    crate::wal::quote(&path)
                ),
            });
        }
    }
    // The end-of-archive blocks and the record padding after them: read to the end so that
    // pg_basebackup finishes writing (and is not killed by SIGPIPE).
    std::io::copy(&mut archive.into_inner(), &mut std::io::sink()).map_err(read_err)?;
    Ok(streamed)
}

/// Passes bytes through, keeping the last [`MANIFEST_TAIL_BYTES`].
struct TailTee<'a, R: Read> {
    inner: &'a mut R,
    tail: Vec<u8>,
}

impl<R: Read> Read for TailTee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.tail.extend_from_slice(&buf[..n]);
        if self.tail.len() > 2 * MANIFEST_TAIL_BYTES {
            self.tail.drain(..self.tail.len() - MANIFEST_TAIL_BYTES);
        }
        Ok(n)
    }
}

/// `START WAL LOCATION` and `START TIMELINE` of a `backup_label`.
fn parse_label(label: &str) -> Result<(Lsn, u32)> {
    let bad = |what: &str| Error::BaseBackup {
        reason: format!("backup_label: {what}"),
    };
    let mut lsn = None;
    let mut timeline = None;
    for line in label.lines() {
        if let Some(rest) = line.strip_prefix("START WAL LOCATION: ") {
            let text = rest.split_whitespace().next().unwrap_or_default();
            lsn = Some(
                text.parse::<Lsn>()
                    .map_err(|_| bad("START WAL LOCATION is not an LSN"))?,
            );
        } else if let Some(rest) = line.strip_prefix("START TIMELINE: ") {
            timeline = Some(
                rest.trim()
                    .parse::<u32>()
                    .map_err(|_| bad("START TIMELINE is not a number"))?,
            );
        }
    }
    Ok((
        lsn.ok_or_else(|| bad("no START WAL LOCATION"))?,
        timeline.ok_or_else(|| bad("no START TIMELINE"))?,
    ))
}

/// One `WAL-Ranges` member of `backup_manifest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WalRange {
    timeline: u32,
    end: Lsn,
}

/// The `WAL-Ranges` and `Manifest-Checksum` of a `backup_manifest`, from its tail (they are its
/// last members, after the file list).
fn parse_manifest_tail(tail: &[u8]) -> Result<(Vec<WalRange>, Option<String>)> {
    #[derive(Deserialize)]
    struct Tail {
        #[serde(rename = "WAL-Ranges")]
        wal_ranges: Vec<Range>,
        #[serde(rename = "Manifest-Checksum")]
        checksum: Option<String>,
    }
    #[derive(Deserialize)]
    struct Range {
        #[serde(rename = "Timeline")]
        timeline: u32,
        #[serde(rename = "End-LSN")]
        end: Lsn,
    }
    let bad = |what: String| Error::BaseBackup {
        reason: format!("backup_manifest: {what}"),
    };
    let text = std::str::from_utf8(tail).map_err(|_| bad("not UTF-8".into()))?;
    // Tolerate a tail that starts inside a multi-byte character: from_utf8 above fails then,
    // which the 1 MiB tail of an ASCII manifest never does.
    let at = text
        .rfind("\"WAL-Ranges\"")
        .ok_or_else(|| bad("no WAL-Ranges member".into()))?;
    let parsed: Tail = serde_json::from_str(&format!("{{{}", &text[at..]))
        .map_err(|e| bad(format!("WAL-Ranges do not parse: {e}")))?;
    Ok((
        parsed
            .wal_ranges
            .into_iter()
            .map(|r| WalRange {
                timeline: r.timeline,
                end: r.end,
            })
            .collect(),
        parsed.checksum,
    ))
}

/// Where a base backup's data directory lands inside a restore target: `{target}/pgdata`.
pub fn restored_pgdata(target: &std::path::Path) -> PathBuf {
    target.join(BASE_ROOT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_label_and_manifest_of_a_real_backup() {
        let label = "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n\
                     CHECKPOINT LOCATION: 0/2000060\nBACKUP METHOD: streamed\n\
                     BACKUP FROM: primary\nSTART TIME: 2026-11-30 15:38:06 UTC\n\
                     LABEL: pg_basebackup base backup\nSTART TIMELINE: 1\n";
        assert_eq!(
            parse_label(label).unwrap(),
            ("0/2000028".parse().unwrap(), 1)
        );
        assert!(parse_label("START TIMELINE: 1\n").is_err());
        let tail = br#"{ "Path": "global/pg_control", "Size": 8192, "Last-Modified": "2026-11-30 15:38:06 GMT", "Checksum-Algorithm": "CRC32C", "Checksum": "43872087" }
],
"WAL-Ranges": [
{ "Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2000100" }
],
"Manifest-Checksum": "eeed0759bf756bf980ca11c4d350d91216ea23b3aa02abb506a360262a66f407"}
"#;
        let (ranges, sum) = parse_manifest_tail(tail).unwrap();
        assert_eq!(
            ranges,
            vec![WalRange {
                timeline: 1,
                end: "0/2000100".parse().unwrap()
            }]
        );
        assert_eq!(sum.unwrap().len(), 64);
        assert!(parse_manifest_tail(b"{\"Files\": []}").is_err());
    }

    #[test]
    fn listing_facts_round_trip_within_the_sidecar_bounds() {
        let facts = BaseBackupFacts {
            server_version: "15.18".into(),
            server_version_num: 150_018,
            system_identifier: Some("7442123456789012345".into()),
            timeline: 2,
            start_lsn: "0/5000028".parse().unwrap(),
            stop_lsn: "0/6000100".parse().unwrap(),
            start_wal: "000000020000000000000005".into(),
            stop_wal: "000000020000000000000006".into(),
            wal_segment_bytes: 16 << 20,
            start_time: "2026-11-30T15:00:00Z".parse().unwrap(),
            stop_time: "2026-11-30T15:00:09Z".parse().unwrap(),
            wal_included: true,
            archive_mode: "on".into(),
            pg_basebackup_version: "15.18".into(),
            files: 1000,
            bytes: 1 << 30,
            manifest_checksum: None,
        };
        let listing = facts.listing();
        assert!(listing.len() <= wst_core::LISTING_MAX_ITEMS);
        assert!(
            listing
                .iter()
                .all(|(k, v)| k.len() <= wst_core::LISTING_MAX_KEY_BYTES
                    && v.len() <= wst_core::LISTING_MAX_VALUE_BYTES)
        );
        let range = BaseBackupRange::from_listing(&listing).unwrap();
        assert_eq!(range.timeline, 2);
        assert_eq!(range.stop_lsn, facts.stop_lsn);
        assert_eq!(range.start_wal, facts.start_wal);
        assert_eq!(range.stop_time, facts.stop_time);
        let mut broken = listing.clone();
        broken.insert("start_wal".into(), "../../etc".into());
        assert!(BaseBackupRange::from_listing(&broken).is_none());
    }
}
