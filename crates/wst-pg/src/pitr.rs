//! Point-in-time recovery (issue 16; seeds/002 "PITR: restore the base backup, set
//! `restore_command`, `recovery_target_time`, replay, verify"): choosing the base backup for a
//! target, configuring a restored data directory for recovery, and running the recovery on a
//! scratch port until the server reached its target.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde::Serialize;

use crate::basebackup::BaseBackupRange;
use crate::config::ConnectionConfig;
use crate::connect::connect;
use crate::error::{Error, Result};
use crate::lsn::Lsn;
use crate::tools::PgTools;

/// How far to recover (`PostgreSQL`'s `recovery_target_*` settings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RecoveryTarget {
    /// Up to and including the last transaction committed at or before this time (UTC)
    /// (`recovery_target_time`, `recovery_target_inclusive = on`).
    Time(Timestamp),
    /// Up to this WAL location (`recovery_target_lsn`).
    Lsn(Lsn),
    /// Up to and including this transaction (`recovery_target_xid`).
    Xid(u64),
    /// To the end of the archived WAL (no target setting).
    Latest,
}

impl std::fmt::Display for RecoveryTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Time(t) => write!(f, "time {t}"),
            Self::Lsn(l) => write!(f, "LSN {l}"),
            Self::Xid(x) => write!(f, "transaction {x}"),
            Self::Latest => f.write_str("the end of the archived WAL"),
        }
    }
}

/// What the server does once it reached the target (`recovery_target_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TargetAction {
    /// End recovery and accept writes on a new timeline (default).
    #[default]
    Promote,
    /// Stay in recovery, paused, read-only: inspect, then promote with `pg_wal_replay_resume()`.
    Pause,
    /// Stop the server.
    Shutdown,
}

impl TargetAction {
    fn as_str(self) -> &'static str {
        match self {
            Self::Promote => "promote",
            Self::Pause => "pause",
            Self::Shutdown => "shutdown",
        }
    }
}

/// Chooses the base backup to recover from: the newest one that can reach `target`.
///
/// - [`RecoveryTarget::Time`]: the newest whose `stop_time` (server time after the backup
///   finished, an upper bound of its consistency point) is at or before the target;
/// - [`RecoveryTarget::Lsn`]: the newest whose `stop_lsn` is at or before the target;
/// - [`RecoveryTarget::Xid`] and [`RecoveryTarget::Latest`]: the newest (a transaction id
///   has no place in the WAL that a listing can know; choose an older one explicitly when the
///   transaction committed before the newest backup).
///
/// `candidates` are `(name, range)` pairs in any order; the name is returned with the range.
pub fn choose_base_backup<'a, N: Ord>(
    candidates: &'a [(N, BaseBackupRange)],
    target: &RecoveryTarget,
) -> Option<&'a (N, BaseBackupRange)> {
    candidates
        .iter()
        .filter(|(_, r)| match target {
            RecoveryTarget::Time(t) => r.stop_time <= *t,
            RecoveryTarget::Lsn(l) => r.stop_lsn <= *l,
            RecoveryTarget::Xid(_) | RecoveryTarget::Latest => true,
        })
        .max_by(|a, b| a.0.cmp(&b.0))
}

/// How a restored data directory is configured for recovery ([`configure_recovery`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RecoveryConfig {
    /// The shell command `PostgreSQL` runs to fetch each WAL file (`%f`, `%p`), e.g. from
    /// [`wal_fetch_command`].
    pub restore_command: String,
    /// How far to recover.
    pub target: RecoveryTarget,
    /// What to do at the target.
    pub action: TargetAction,
    /// Keep `archive_mode` as the backup had it (a production restore that continues
    /// archiving on the new timeline). `false` (default) sets `archive_mode = off`: a scratch
    /// copy never pushes its new timeline's WAL into the production archive, where a later
    /// `recovery_target_timeline = latest` would follow it.
    pub keep_archiving: bool,
    /// `port` for the recovered server, when it will run beside the production server.
    pub port: Option<u16>,
    /// `unix_socket_directories` for the recovered server (Unix), e.g. a private directory.
    pub socket_dir: Option<PathBuf>,
}

impl RecoveryConfig {
    /// Recovery to `target` with `restore_command`, promote at the target, archiving off.
    pub fn new(restore_command: impl Into<String>, target: RecoveryTarget) -> Self {
        Self {
            restore_command: restore_command.into(),
            target,
            action: TargetAction::Promote,
            keep_archiving: false,
            port: None,
            socket_dir: None,
        }
    }

    /// Sets the action at the target.
    #[must_use]
    pub fn action(mut self, action: TargetAction) -> Self {
        self.action = action;
        self
    }

    /// Keeps archiving on (production restores under break-glass only).
    #[must_use]
    pub fn keep_archiving(mut self, keep: bool) -> Self {
        self.keep_archiving = keep;
        self
    }

    /// Sets the port.
    #[must_use]
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Sets the socket directory.
    #[must_use]
    pub fn socket_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.socket_dir = Some(dir.into());
        self
    }
}

/// The `restore_command` that runs `wst wal-fetch` with the configuration file `config`
/// (and, for a configuration with `[[job]]`, `--job JOB`: without it `wal-fetch` refuses, and
/// `PostgreSQL` would take the refusal for the end of the archive):
/// `'<wst>' --config '<config>' [--job '<job>'] wal-fetch %f %p`, quoted for `/bin/sh` (on
/// Windows, for `cmd.exe`: double quotes). Both paths should be absolute: `PostgreSQL` runs
/// the command in the data directory.
pub fn wal_fetch_command(wst: &Path, config: &Path, job: Option<&str>) -> String {
    if cfg!(windows) {
        format!(
            "\"{}\" --config \"{}\"{} wal-fetch \"%f\" \"%p\"",
            wst.display(),
            config.display(),
            job.map(|j| format!(" --job \"{j}\"")).unwrap_or_default()
        )
    } else {
        format!(
            "{} --config {}{} wal-fetch %f %p",
            sh_quote(&wst.display().to_string()),
            sh_quote(&config.display().to_string()),
            job.map(|j| format!(" --job {}", sh_quote(j)))
                .unwrap_or_default()
        )
    }
}

/// One `/bin/sh` word: `'…'` with each `'` written `'\''`.
fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// A `postgresql.conf` string literal: `'…'` with each `'` doubled.
fn conf_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Configures the restored data directory `pgdata` (a base backup, with its `backup_label`)
/// for recovery: appends the recovery settings to `postgresql.auto.conf` (which the server
/// reads last, so they win over `postgresql.conf`), writes `recovery.signal`, and gives the
/// directory mode 0700 (Unix; `PostgreSQL` refuses a group- or world-accessible data directory.
/// On Windows the directory keeps the ACL it was created with).
///
/// # Errors
/// [`Error::Recovery`] when `pgdata` holds no `backup_label` or `PG_VERSION` (not a restored
/// base backup); [`Error::Io`] when a file cannot be written.
pub fn configure_recovery(pgdata: &Path, config: &RecoveryConfig) -> Result<()> {
    for needed in ["PG_VERSION", "backup_label"] {
        if !pgdata.join(needed).is_file() {
            return Err(Error::Recovery {
                reason: format!(
                    "`{}` holds no {needed}: not a restored base backup",
                    pgdata.display()
                ),
            });
        }
    }
    let mut text = String::from(
        "\n# Written by wst for point-in-time recovery (issue 16). Remove these lines once the\n\
         # server is promoted and no longer needs the WAL archive.\n",
    );
    let _ = writeln!(
        text,
        "restore_command = {}",
        conf_quote(&config.restore_command)
    );
    match &config.target {
        RecoveryTarget::Time(t) => {
            // PostgreSQL reads `timestamptz` input; ISO 8601 with an explicit UTC offset.
            let _ = writeln!(
                text,
                "recovery_target_time = {}",
                conf_quote(&t.strftime("%Y-%m-%d %H:%M:%S%.6f+00").to_string())
            );
        }
        RecoveryTarget::Lsn(l) => {
            let _ = writeln!(text, "recovery_target_lsn = '{l}'");
        }
        RecoveryTarget::Xid(x) => {
            let _ = writeln!(text, "recovery_target_xid = '{x}'");
        }
        RecoveryTarget::Latest => {}
    }
    if config.target != RecoveryTarget::Latest {
        text.push_str("recovery_target_inclusive = on\n");
        let _ = writeln!(
            text,
            "recovery_target_action = '{}'",
            config.action.as_str()
        );
    }
    text.push_str("recovery_target_timeline = 'latest'\n");
    if !config.keep_archiving {
        text.push_str("archive_mode = off\n");
    }
    if let Some(port) = config.port {
        let _ = writeln!(text, "port = {port}");
    }
    if let Some(dir) = &config.socket_dir {
        let _ = writeln!(
            text,
            "unix_socket_directories = {}",
            conf_quote(&dir.display().to_string())
        );
        text.push_str("listen_addresses = ''\n");
    }
    let auto = pgdata.join("postgresql.auto.conf");
    let mut existing = std::fs::read_to_string(&auto).unwrap_or_default();
    existing.push_str(&text);
    std::fs::write(&auto, existing)
        .map_err(|e| Error::io(format!("writing `{}`", auto.display()), e))?;
    std::fs::write(pgdata.join("recovery.signal"), b"")
        .map_err(|e| Error::io("writing recovery.signal", e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(pgdata, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io(format!("chmod 0700 `{}`", pgdata.display()), e))?;
    }
    Ok(())
}

/// What a recovery run reached ([`run_recovery`]).
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct RecoveryOutcome {
    /// The server's timeline after recovery (a new one after promotion).
    pub timeline: u32,
    /// Whether the server left recovery (promoted) — `false` for a paused recovery.
    pub promoted: bool,
    /// The last WAL location replayed.
    pub replayed_lsn: Option<Lsn>,
    /// Commit time of the last transaction replayed (`pg_last_xact_replay_timestamp()`), UTC.
    pub last_replayed_commit: Option<Timestamp>,
    /// Seconds from the start of the server to the end of recovery (part of the RTO).
    pub recovery_seconds: f64,
    /// The server log's lines about the recovery's end (at most 20, each at most 300 bytes).
    pub log: Vec<String>,
}

/// A server started on a recovered data directory; stopped (fast) when dropped unless
/// [`RecoveredServer::keep_running`] was called.
#[derive(Debug)]
pub struct RecoveredServer {
    pgdata: PathBuf,
    tools: PgTools,
    log_file: PathBuf,
    running: bool,
}

impl RecoveredServer {
    /// The log file (`{pgdata}/../{name}.log`, outside the data directory).
    pub fn log_file(&self) -> &Path {
        &self.log_file
    }

    /// Leaves the server running when this value is dropped (a restore the operator keeps).
    pub fn keep_running(mut self) {
        self.running = false;
    }

    /// Stops the server (`pg_ctl stop -m fast`).
    ///
    /// # Errors
    /// [`Error::ToolFailed`] when `pg_ctl` fails.
    pub fn stop(&mut self) -> Result<()> {
        if !self.running {
            return Ok(());
        }
        self.running = false;
        let out = std::process::Command::new(self.tools.program("pg_ctl"))
            .arg("stop")
            .arg("-D")
            .arg(&self.pgdata)
            .args(["-m", "fast", "-w", "-t", "120"])
            .output()
            .map_err(|e| Error::io("running pg_ctl stop", e))?;
        if !out.status.success() && self.pgdata.join("postmaster.pid").exists() {
            return Err(Error::ToolFailed {
                tool: "pg_ctl".into(),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr)
                    .chars()
                    .take(2000)
                    .collect(),
            });
        }
        Ok(())
    }
}

impl Drop for RecoveredServer {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Starts `PostgreSQL` on the recovered `pgdata` (configured by [`configure_recovery`]) with
/// `pg_ctl start`, as the current OS user (who must own `pgdata`; `PostgreSQL` refuses to run
/// as root), and waits until recovery ended: promoted, paused at the target, or shut down.
/// The client session uses `conn`: the recovered server's socket directory (or `127.0.0.1`)
/// and port, and a role of the backed-up cluster with its password source (the data
/// directory is a physical copy: its roles and `pg_hba.conf` are production's).
///
/// # Errors
/// [`Error::Recovery`] naming the server's own message (e.g. `recovery ended before configured
/// recovery target was reached`, `could not locate required checkpoint record`) when the
/// server stops before it reaches the target or does not finish within `limit`.
pub async fn run_recovery(
    pgdata: &Path,
    tools: &PgTools,
    conn: &ConnectionConfig,
    limit: Duration,
) -> Result<(RecoveredServer, RecoveryOutcome)> {
    let password = conn.password.load()?;
    let name = pgdata
        .file_name()
        .map_or_else(|| "pgdata".into(), |n| n.to_string_lossy().into_owned());
    let log_file = pgdata
        .parent()
        .unwrap_or(pgdata)
        .join(format!("{name}.recovery.log"));
    let started = Instant::now();
    let out = std::process::Command::new(tools.program("pg_ctl"))
        .arg("start")
        .arg("-D")
        .arg(pgdata)
        .arg("-l")
        .arg(&log_file)
        .args(["-w", "-t"])
        .arg(limit.as_secs().max(1).to_string())
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::io("running pg_ctl start", e))?;
    let mut server = RecoveredServer {
        pgdata: pgdata.to_owned(),
        tools: tools.clone(),
        log_file: log_file.clone(),
        running: true,
    };
    if !out.status.success() {
        server.running = pgdata.join("postmaster.pid").exists();
        return Err(Error::Recovery {
            reason: format!(
                "the server did not start: {}",
                log_summary(&log_file).join(" | ")
            ),
        });
    }
    loop {
        if started.elapsed() > limit {
            return Err(Error::Recovery {
                reason: format!(
                    "recovery did not finish within {} s: {}",
                    limit.as_secs(),
                    log_summary(&log_file).join(" | ")
                ),
            });
        }
        let session = connect(conn, password.as_ref()).await;
        let Ok(session) = session else {
            if !pgdata.join("postmaster.pid").exists() {
                server.running = false;
                let log = log_summary(&log_file);
                let shut_down_at_target = log.iter().any(|l| {
                    l.contains("recovery stopping") || l.contains("shutdown at recovery target")
                });
                if shut_down_at_target && !log.iter().any(|l| l.contains("FATAL")) {
                    return Ok((
                        server,
                        RecoveryOutcome {
                            timeline: 0,
                            promoted: false,
                            replayed_lsn: None,
                            last_replayed_commit: None,
                            recovery_seconds: started.elapsed().as_secs_f64(),
                            log,
                        },
                    ));
                }
                return Err(Error::Recovery {
                    reason: format!("the server stopped during recovery: {}", log.join(" | ")),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let client = &session.client;
        let row = client
            .query_one(
                "SELECT pg_is_in_recovery(), \
                        CASE WHEN pg_is_in_recovery() THEN pg_get_wal_replay_pause_state() ELSE 'not paused' END, \
                        (SELECT timeline_id FROM pg_control_checkpoint())::int8, \
                        pg_last_wal_replay_lsn()::text, \
                        (extract(epoch FROM pg_last_xact_replay_timestamp()) * 1000000)::int8",
                &[],
            )
            .await;
        let Ok(row) = row else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let in_recovery: bool = row.get(0);
        let pause: String = row.get(1);
        if in_recovery && pause != "paused" {
            drop(session);
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        // After promotion the checkpoint's timeline may lag: ask the control file again once
        // the end-of-recovery checkpoint is written; the WAL insert location's file names the
        // timeline in use.
        let timeline = if in_recovery {
            row.get::<_, i64>(2)
        } else {
            client
                .query_one(
                    "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int8",
                    &[],
                )
                .await
                .map_or_else(|_| row.get::<_, i64>(2), |r| r.get(0))
        };
        let replayed_lsn = row
            .get::<_, Option<String>>(3)
            .and_then(|s| s.parse::<Lsn>().ok());
        let last_replayed_commit = row
            .get::<_, Option<i64>>(4)
            .and_then(|m| Timestamp::from_microsecond(m).ok());
        return Ok((
            server,
            RecoveryOutcome {
                timeline: u32::try_from(timeline).unwrap_or(0),
                promoted: !in_recovery,
                replayed_lsn,
                last_replayed_commit,
                recovery_seconds: started.elapsed().as_secs_f64(),
                log: log_summary(&log_file),
            },
        ));
    }
}

/// The recovery-related lines of a server log (at most 20, each cut at 300 bytes).
fn log_summary(log_file: &Path) -> Vec<String> {
    let text = std::fs::read(log_file).unwrap_or_default();
    let text = String::from_utf8_lossy(&text[text.len().saturating_sub(256 * 1024)..]).into_owned();
    let keys = [
        "recovery stopping",
        "recovery target",
        "last completed transaction",
        "redo done",
        "selected new timeline",
        "archive recovery complete",
        "consistent recovery state",
        "FATAL",
        "PANIC",
        "could not",
    ];
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| keys.iter().any(|k| l.contains(k)))
        .map(|l| {
            let mut s: String = l.chars().take(300).collect();
            s.retain(|c| !c.is_control());
            s
        })
        .collect();
    if lines.len() > 20 {
        lines.drain(..lines.len() - 20);
    }
    lines
}

/// Row counts of `tables` (`schema.table`; a table that does not exist is absent from the map)
/// and the newest value of `freshness` (`schema.table.column`, a timestamp) in the database
/// `conn` reaches: what a point-in-time recovery drill proves about the data at its target.
///
/// # Errors
/// Connection errors; [`Error::Config`] for a malformed name; [`Error::Query`] when the
/// freshness column cannot be read.
pub async fn probe_tables(
    conn: &ConnectionConfig,
    tables: &[String],
    freshness: Option<&str>,
) -> Result<(std::collections::BTreeMap<String, i64>, Option<Timestamp>)> {
    let password = conn.password.load()?;
    let session = connect(conn, password.as_ref()).await?;
    let client = &session.client;
    let ident = crate::connect::quote_ident;
    let mut counts = std::collections::BTreeMap::new();
    for t in tables {
        let Some((schema, table)) = t.split_once('.') else {
            return Err(Error::Config(format!("table `{t}` is not `schema.table`")));
        };
        let sql = format!("SELECT count(*) FROM {}.{}", ident(schema), ident(table));
        if let Ok(row) = client.query_one(&sql, &[]).await {
            counts.insert(t.clone(), row.get::<_, i64>(0));
        }
    }
    let fresh = match freshness {
        None => None,
        Some(spec) => {
            let parts: Vec<&str> = spec.split('.').collect();
            let [schema, table, column] = parts[..] else {
                return Err(Error::Config(format!(
                    "freshness column `{spec}` is not `schema.table.column`"
                )));
            };
            let sql = format!(
                "SELECT (extract(epoch FROM max({})::timestamptz) * 1000000)::int8 FROM {}.{}",
                ident(column),
                ident(schema),
                ident(table)
            );
            let row = client.query_one(&sql, &[]).await.map_err(|e| {
                crate::connect::query_error("reading the freshness column", &e, password.as_ref())
            })?;
            row.get::<_, Option<i64>>(0)
                .and_then(|m| Timestamp::from_microsecond(m).ok())
        }
    };
    Ok((counts, fresh))
}

/// The server's `archive_timeout` in seconds (0 = off): the longest a segment with new WAL
/// stays open before the server switches it and hands it to `archive_command`, so on a quiet
/// server the RPO is bounded by it plus the push latency (PostgreSQL documentation, 'Continuous
/// Archiving'; issue 16's drill goal).
///
/// # Errors
/// Connection and query errors (the password never appears in them).
pub async fn archive_timeout_seconds(conn: &ConnectionConfig) -> Result<u64> {
    let password = conn.password.load()?;
    let session = connect(conn, password.as_ref()).await?;
    let row = session
        .client
        .query_one(
            "SELECT setting::int8 FROM pg_settings WHERE name = 'archive_timeout'",
            &[],
        )
        .await
        .map_err(|e| {
            crate::connect::query_error("reading archive_timeout", &e, password.as_ref())
        })?;
    Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(stop_lsn: &str, stop_time: &str) -> BaseBackupRange {
        BaseBackupRange {
            timeline: 1,
            start_lsn: "0/1000028".parse().unwrap(),
            stop_lsn: stop_lsn.parse().unwrap(),
            start_wal: "000000010000000000000001".into(),
            stop_wal: "000000010000000000000001".into(),
            wal_segment_bytes: 16 << 20,
            stop_time: stop_time.parse().unwrap(),
        }
    }

    #[test]
    fn the_newest_base_backup_that_reaches_the_target_is_chosen() {
        let c = vec![
            ("b1", range("0/3000100", "2026-11-30T01:00:10Z")),
            ("b2", range("0/9000100", "2026-11-30T05:00:10Z")),
            ("b3", range("0/F000100", "2026-11-30T09:00:10Z")),
        ];
        let t = |s: &str| RecoveryTarget::Time(s.parse().unwrap());
        assert_eq!(
            choose_base_backup(&c, &t("2026-11-30T06:00:00Z"))
                .unwrap()
                .0,
            "b2"
        );
        // A target before a backup's consistency point cannot use that backup.
        assert_eq!(
            choose_base_backup(&c, &t("2026-11-30T05:00:09Z"))
                .unwrap()
                .0,
            "b1"
        );
        assert!(choose_base_backup(&c, &t("2026-11-30T00:00:00Z")).is_none());
        let l = RecoveryTarget::Lsn("0/A000000".parse().unwrap());
        assert_eq!(choose_base_backup(&c, &l).unwrap().0, "b2");
        assert_eq!(
            choose_base_backup(&c, &RecoveryTarget::Latest).unwrap().0,
            "b3"
        );
    }

    #[test]
    fn recovery_settings_are_quoted_and_archiving_is_off_unless_kept() {
        let dir = tempfile::tempdir().unwrap();
        let pgdata = dir.path();
        assert!(
            configure_recovery(pgdata, &RecoveryConfig::new("x", RecoveryTarget::Latest)).is_err()
        );
        std::fs::write(pgdata.join("PG_VERSION"), "15\n").unwrap();
        std::fs::write(pgdata.join("backup_label"), "START TIMELINE: 1\n").unwrap();
        std::fs::write(pgdata.join("postgresql.auto.conf"), "work_mem = '8MB'\n").unwrap();
        let cmd = wal_fetch_command(
            Path::new("/opt/it's/wst"),
            Path::new("/etc/wst/wst.toml"),
            None,
        );
        if cfg!(unix) {
            assert_eq!(
                wal_fetch_command(Path::new("/w"), Path::new("/c"), Some("billing")),
                "'/w' --config '/c' --job 'billing' wal-fetch %f %p"
            );
        }
        let target = RecoveryTarget::Time("2026-11-30T12:34:56.5Z".parse().unwrap());
        configure_recovery(pgdata, &RecoveryConfig::new(cmd, target).port(55432)).unwrap();
        let auto = std::fs::read_to_string(pgdata.join("postgresql.auto.conf")).unwrap();
        assert!(auto.starts_with("work_mem = '8MB'\n"), "{auto}");
        assert!(
            auto.contains(r"restore_command = '''/opt/it''\''''s/wst'' --config ''/etc/wst/wst.toml'' wal-fetch %f %p'"),
            "{auto}"
        );
        assert!(
            auto.contains("recovery_target_time = '2026-11-30 12:34:56.500000+00'"),
            "{auto}"
        );
        assert!(auto.contains("recovery_target_action = 'promote'"));
        assert!(auto.contains("archive_mode = off"));
        assert!(auto.contains("port = 55432"));
        assert!(pgdata.join("recovery.signal").is_file());
    }
}
