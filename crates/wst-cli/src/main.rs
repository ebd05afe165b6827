//! `wst`, the operator binary: a config-driven command an operations team runs from cron or a
//! systemd timer. See `examples/wst.toml` (at the workspace root) for a documented
//! configuration. Install with `cargo install --path crates/wst-cli`.
//!
//! ```text
//! wst --config wst.toml <COMMAND>        (from a checkout: cargo run --release -p wst-cli -- …)
//! wst --config wst.toml --job NAME <COMMAND>   one [[job]]'s repository (issue 18; see `jobs`)
//!   keygen --out FILE          generate an encryption key file (0600)
//!   backup                     backup → verify → replicate catch-up → prune (when configured)
//!   verify [ARTIFACT]          deep-verify an artifact (default: the newest) on every sink
//!   ls [--manifest | --report] [--include GLOB]... [--exclude GLOB]... [ARTIFACT]
//!                              list an artifact's entries and sources without restoring it
//!   restore --target DIR [--include GLOB]... [--exclude GLOB]... [--no-database]
//!           [--database NAME [--table S.T]... [--schema S]... [--no-files]] [ARTIFACT]
//!                              restore (all or selected entries) into an isolated directory,
//!                              and the database (all or selected tables) into a scratch one
//!   restore --bucket NAME --to-bucket URL [--prefix P]... [ARTIFACT]
//!                              put a [[bucket]]'s objects (all, or under the prefixes) back
//!                              into a scratch bucket, each checked against the manifest
//!   drill                      restore drill with RTO/RPO report (doctrine R7) and the
//!                              [[drill.check]] post-restore checks (sql, cross_check, smoke)
//!   prune [--dry-run]          apply retention on every sink
//!   replicate                  copy missing artifacts between sinks
//!   status                     compliance status (doctrine 026 R1, R3, R4, R5, R7)
//!   audit verify               verify the audit log's hash chain
//!   config check               check the whole configuration; list every problem
//!   wal-push PATH              archive one WAL file (archive_command; [wal] in wst.toml)
//!   wal-fetch NAME DEST        restore one WAL file (restore_command; exit 1 when absent)
//!   wal-drain                  copy queued WAL to the asynchronous sinks
//!   report bcp [--out FILE]    the business continuity plan (seeds/002) as Markdown
//!   report evidence --since 90d --out DIR
//!                              an auditor's evidence bundle (docs/REPORTS.md)
//!   daemon                     run the [[schedule]] jobs; /metrics on [metrics] listen
//!   schedule print --systemd | --windows-task [--out DIR]
//!                              the same schedules as systemd units or Task Scheduler XML
//! ```
//!
//! `[[job]]` (issue 18, "Services"): several repositories in one file. `--job NAME` selects
//! one; without it `init`, `backup`, `verify`, `prune`, `replicate`, `status`, `report`, `audit
//! verify` and `config check` run every job in turn (a `== job NAME ==` section each, or one
//! JSON document each with `--json`; the exit status is the worst: 2 > 1 > 4 > 3 > 0) and the
//! commands that need one repository are bad usage naming the jobs (`jobs`).
//!
//! Access audit (issue 18): every read of artifact content is an audit record naming the
//! actor — `restore`, `verify` and `drill` through their own events, `ls` (entries or
//! manifest) and `wal-fetch` (one per file) as `content_read` (`docs/EVIDENCE.md` §5).
//!
//! After every operation (issue 17) the signal state beside the audit log is updated, alerts
//! and recovery notices go to `[alerts]` (each audited), and `[metrics] textfile` is
//! rewritten atomically (`signals`; names in `docs/SIGNALS.md`).
//!
//! Every command that reads the configuration checks all of it first (`wst::config`'s
//! `Config::problems`, issue 15): a mistyped time zone, a policy that keeps nothing, a
//! negative threshold or a credential in any options table is exit 2 with every problem
//! listed, before anything is read, written or uploaded.
//!
//! Exit status: 0 success; 1 the operation failed or found a violation (backup failed,
//! verification failed, drill FAIL, not compliant, audit chain broken); 2 bad usage or
//! configuration (credentials in a sink URL included); 3 degraded (the backup exists but not
//! on every sink, or a prune refused something, e.g. a listing that dropped: rerun with
//! `--allow-listing-drop`); 4 another run (backup, prune) holds the repository lock.
//! `--json` prints machine-readable reports on standard output. Human-readable lines have
//! their control characters escaped (`output::escape`).
//!
//! `[[bucket]]` sections add object-store buckets to every backup (each object's key, size,
//! `ETag` and last-modified time in the manifest); `ls` and `status` show them. Restoring into
//! a `--to-bucket` prefix that already holds objects needs `--break-glass-by WHO --reason WHY`
//! (doctrine 026 L6), as restoring files over existing data does. Restore is exit 1 when it
//! fails (the target is then untouched, or for a bucket holds only verified objects), 2 for an
//! unknown `--bucket` name (the message lists the configured ones).
//!
//! Layout: this file holds the command line, the dispatch and the exit codes; `config` loads
//! `wst.toml` (the schema is the library's `wst::config`) and builds the cipher, sinks and
//! sources; `commands/` has one module per command group; `output` prints reports as text or
//! JSON.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use wst::core::BreakGlass;

use crate::commands::Ops;
use crate::commands::restore::RestoreRequest;
use crate::config::load_config;

mod commands;
mod config;
mod jobs;
mod output;
mod progress;
mod signals;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "wst",
    about = "Encrypted, verified 3-2-1 backups of PostgreSQL, file trees and buckets",
    after_help = "Configuration: examples/wst.toml documents every section ([[files]], \
                  [database], [[bucket]], [[sinks]], [retention], [drill] with \
                  [[drill.check]], [compliance], [wal], [metrics], [alerts], [[schedule]]); `wst config check` checks all of it. Exit \
                  status: 0 success; 1 failure or violation; 2 bad usage or configuration; 3 \
                  degraded (a sink missed the backup, or prune refused something); 4 another \
                  run holds the repository lock."
)]
struct Cli {
    /// The configuration file (TOML; see examples/wst.toml).
    #[arg(long, short, global = true, default_value = "wst.toml")]
    config: PathBuf,
    /// Print machine-readable JSON on standard output.
    #[arg(long, global = true)]
    json: bool,
    /// The `[[job]]` to work on (issue 18). Without it, a configuration with jobs runs init,
    /// backup, verify, prune, replicate, status, report, audit verify and config check for
    /// every job in turn (the worst exit status wins) and refuses the other commands.
    #[arg(long, global = true, value_name = "NAME")]
    job: Option<String>,
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of the largest variant (`restore`'s flags) costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug, Clone)]
enum Command {
    /// Generate an encryption key file (mode 0600, never overwritten).
    Keygen {
        /// Where to write it (default: the configured key file).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Mark every configured sink as this repository's (a marker object; creates missing
    /// local sink directories). Run once, and after adding a sink. Without its marker a sink
    /// is refused: an unmounted disk is never written or counted as a copy.
    Init,
    /// Back up, verify, catch up the other sinks, and prune when retention is configured.
    Backup {
        /// Leave out entries of every [[files]] tree matching this glob (repeatable), in
        /// addition to each tree's `exclude`: a path relative to the tree (`cache/**`), an
        /// archive path (`wst/cache/**`), or a file name without `/` (`node_modules`,
        /// `*.log`). An excluded directory is not read.
        #[arg(long, value_name = "GLOB")]
        exclude: Vec<String>,
    },
    /// Deep-verify an artifact on every sink.
    Verify {
        /// The artifact name (default: the newest complete one).
        artifact: Option<String>,
    },
    /// List an artifact's entries (like `restic ls -l`) and sources without restoring it. The
    /// artifact has no index: listing downloads, decrypts and decompresses it once.
    Ls {
        /// Print the manifest as JSON instead (sources with their facts, timings, entries).
        #[arg(long, conflicts_with = "report")]
        manifest: bool,
        /// Print the newest restore-drill report of this artifact (from the drill's
        /// `scratch_dir`) instead; reads no artifact.
        #[arg(long)]
        report: bool,
        /// Only entries matching this root or glob (repeatable), e.g. `wst-api/`, `**/*.json`.
        #[arg(long, value_name = "GLOB")]
        include: Vec<String>,
        /// Leave out entries matching this root or glob (repeatable).
        #[arg(long, value_name = "GLOB")]
        exclude: Vec<String>,
        /// The sink to read from (default: the first).
        #[arg(long)]
        sink: Option<String>,
        /// The artifact name (default: the newest complete one).
        artifact: Option<String>,
    },
    /// Restore into an isolated directory (and a scratch database), or a bucket's objects
    /// into a scratch bucket (--bucket NAME --to-bucket URL).
    Restore {
        /// An empty or new directory.
        #[arg(long, required_unless_present_any = ["bucket", "in_place", "pitr"])]
        target: Option<PathBuf>,
        /// Point-in-time recovery (issue 16): restore the base backup that reaches the
        /// target (`wst base-backup`) into --pgdata and configure it to replay the archived
        /// WAL through `wst wal-fetch` up to --target-time, --target-lsn, --target-xid or
        /// --latest. A gap in the archive is named before anything is written. Without
        /// break-glass the recovered server does not archive (`archive_mode = off`).
        #[arg(
            long,
            requires = "pgdata",
            conflicts_with_all = ["target", "in_place", "bucket", "include", "exclude", "no_database", "database", "no_files"]
        )]
        pitr: bool,
        /// With --pitr: the new or empty data directory to recover into.
        #[arg(long, requires = "pitr")]
        pgdata: Option<PathBuf>,
        /// With --pitr: recover up to and including the last transaction committed at this
        /// time (RFC 3339, e.g. `2026-11-30T14:05:00Z`).
        #[arg(long, requires = "pitr", conflicts_with_all = ["target_lsn", "target_xid", "latest"])]
        target_time: Option<String>,
        /// With --pitr: recover up to this WAL location (`X/Y`, e.g. `0/5000028`).
        #[arg(long, requires = "pitr", conflicts_with_all = ["target_xid", "latest"])]
        target_lsn: Option<String>,
        /// With --pitr: recover up to and including this transaction id.
        #[arg(long, requires = "pitr", conflicts_with = "latest")]
        target_xid: Option<u64>,
        /// With --pitr: recover to the end of the archived WAL.
        #[arg(long, requires = "pitr")]
        latest: bool,
        /// With --pitr: what the server does at the target: `promote` (default), `pause`
        /// (read-only, inspect, then `SELECT pg_wal_replay_resume()`), `shutdown`.
        #[arg(long, requires = "pitr", value_name = "ACTION")]
        target_action: Option<String>,
        /// With --pitr: use this base backup (`wst-backup-base-YYYYMMDD-HHMMSS`) instead of the
        /// newest one that reaches the target.
        #[arg(long, requires = "pitr", value_name = "NAME")]
        base_backup: Option<String>,
        /// With --pitr: start the recovered server on this port (as the current OS user, who
        /// must not be root), wait until it reached the target, and leave it running.
        #[arg(long, requires = "pitr")]
        port: Option<u16>,
        /// Disaster restore of every [[files]] tree into its configured `path` (production),
        /// with --break-glass-by/--reason (doctrine 026 L6): each tree is restored and checked
        /// in a staging directory beside its path, then swapped in; the tree that was there is
        /// kept beside it as `.NAME.wst-replaced-TIMESTAMP`. Restore the database separately
        /// (--target DIR --no-files --database NAME).
        #[arg(
            long,
            requires = "break_glass_by",
            conflicts_with_all = ["target", "bucket", "include", "exclude", "no_database", "database", "no_files"]
        )]
        in_place: bool,
        /// Restore the objects of this configured [[bucket]] into --to-bucket instead of
        /// restoring files (each object's size and SHA-256 checked against the manifest).
        #[arg(
            long,
            value_name = "NAME",
            requires = "to_bucket",
            conflicts_with_all = ["target", "include", "exclude", "no_database", "database", "no_files"]
        )]
        bucket: Option<String>,
        /// The bucket URL (and key prefix) to restore into, e.g. `s3://scratch/restore-1`; it
        /// is opened with the [[bucket]]'s options and credentials. A prefix that already
        /// holds objects is refused without --break-glass-by/--reason.
        #[arg(long, value_name = "URL", requires = "bucket")]
        to_bucket: Option<String>,
        /// Restore only objects under this key prefix, relative to the bucket's prefix, as a
        /// folder (repeatable): `tenants/acme` selects `tenants/acme/…`. A prefix that
        /// selects nothing fails the restore.
        #[arg(long, value_name = "PREFIX", requires = "bucket")]
        prefix: Vec<String>,
        /// Restore only entries matching this root or glob (repeatable): `wst-api/`,
        /// `wst-api/config/**`, `**/*.json`. A pattern matching nothing fails the restore.
        #[arg(long, value_name = "GLOB")]
        include: Vec<String>,
        /// Leave out entries matching this root or glob (repeatable), even when included.
        #[arg(long, value_name = "GLOB")]
        exclude: Vec<String>,
        /// Leave the database dump entry out of the restored files.
        #[arg(long, conflicts_with = "database")]
        no_database: bool,
        /// Also restore the database dump into this database (created when missing): a new
        /// scratch database, or, with --break-glass-by/--reason, the source database's own
        /// name (disaster restore into production, doctrine 026 L6). A database that holds
        /// objects is refused unless break-glass and --clean are both given.
        #[arg(long)]
        database: Option<String>,
        /// With break-glass: replace the objects of a non-empty --database (`pg_restore
        /// --clean --if-exists`; writes made since the backup are lost).
        #[arg(long, requires = "database", requires = "break_glass_by")]
        clean: bool,
        /// With break-glass: the `PostgreSQL` server to restore --database into, as
        /// `postgresql://USER@HOST:PORT/MAINTENANCE_DB` (e.g. a new production server),
        /// instead of [database] `restore_url`. No password in the URL: it uses [database]
        /// `password_file` or `password_env`.
        #[arg(
            long,
            value_name = "URL",
            requires = "database",
            requires = "break_glass_by"
        )]
        server: Option<String>,
        /// Restore only this table into the scratch database (repeatable; `schema.table`),
        /// with its data, constraints, indexes and owned sequences.
        #[arg(long, value_name = "SCHEMA.TABLE", requires = "database")]
        table: Vec<String>,
        /// Restore only the objects of this schema into the scratch database (repeatable).
        #[arg(long, value_name = "SCHEMA", requires = "database")]
        schema: Vec<String>,
        /// Restore no files, only the database (needs --database).
        #[arg(long, requires = "database", conflicts_with = "include")]
        no_files: bool,
        /// The sink to read from (default: the first).
        #[arg(long)]
        sink: Option<String>,
        /// Break-glass: who authorizes a restore over existing data or a production path.
        #[arg(long, requires = "reason")]
        break_glass_by: Option<String>,
        /// Break-glass: why (incident or change number).
        #[arg(long)]
        reason: Option<String>,
        /// Tenant restore (issue 18, [tenant] in wst.toml, docs/TENANTS.md): only this
        /// tenant's files (the `paths` templates) and objects (`bucket_prefixes`) into --target,
        /// and with --database its rows: the dump restored into that scratch database, then
        /// every other tenant's rows deleted from the tenant-owned tables (shared tables kept
        /// whole), with per-table counts. With --bucket NAME --to-bucket URL: only the tenant's
        /// prefixes of that bucket.
        #[arg(
            long,
            value_name = "ID",
            conflicts_with_all = ["pitr", "in_place", "include", "table", "schema", "clean", "server", "prefix"]
        )]
        tenant: Option<String>,
        /// With --tenant, --database SCRATCH and break-glass: then copy the tenant's rows from
        /// the scratch database into the production database ([database] url) in one
        /// transaction (the tenant's current rows deleted, the restored ones inserted); no
        /// other tenant's rows are touched.
        #[arg(
            long,
            requires = "tenant",
            requires = "database",
            requires = "break_glass_by"
        )]
        into_production: bool,
        /// The artifact name (default: the newest complete one).
        artifact: Option<String>,
    },
    /// A physical base backup of the [database] cluster (`pg_basebackup`) into a base-backup
    /// artifact `{prefix}-base-YYYYMMDD-HHMMSS` on every sink, verified, with its timeline and
    /// WAL range; the starting point of `restore --pitr` (issue 16).
    BaseBackup,
    /// Restore drill with RTO/RPO report (doctrine R7), running the [[drill.check]]
    /// post-restore checks (`sql`, `cross_check`, `smoke`); each is in the report. Exit 1 on
    /// FAIL.
    Drill {
        /// The sink to drill from (default: the first).
        #[arg(long)]
        sink: Option<String>,
        /// Point-in-time recovery drill (issue 16): recover the newest base backup and the
        /// archived WAL to a random moment since it, on a scratch port, prove the data at
        /// that moment, and report RTO and the real RPO.
        #[arg(long)]
        pitr: bool,
        /// With --pitr: the scratch server's port (default: a free loopback port).
        #[arg(long, requires = "pitr")]
        port: Option<u16>,
    },
    /// Apply retention on every sink.
    Prune {
        /// Plan and report only; delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Proceed although a sink lists far fewer artifacts than at the last prune.
        #[arg(long)]
        allow_listing_drop: bool,
    },
    /// Copy artifacts missing on one sink from another (D: mirror and offsite catch-up).
    Replicate,
    /// The configured sources (files, database, buckets) and the compliance status (exit 1
    /// when not compliant).
    Status,
    /// Archive one WAL file (`archive_command = 'wst --config F wal-push %p'`): durable on the
    /// synchronous sinks ([wal] `sync_sinks`) before exit 0, queued for the others (issue 16).
    WalPush {
        /// The WAL file to archive (%p); with `--worker`, the `pg_wal` directory.
        path: PathBuf,
        /// Run as the asynchronous archiving worker ([wal] `archive_async`): push every
        /// ready file in the `pg_wal` directory PATH and acknowledge each in the spool
        /// (`wal-push` starts it; not for operators).
        #[arg(long, hide = true)]
        worker: bool,
    },
    /// Restore one WAL file (`restore_command = 'wst --config F wal-fetch %f %p'`): from the
    /// first sink with a good copy, authenticated before DEST appears; exit 1 quietly when no
    /// sink has it.
    WalFetch {
        /// The WAL file name (%f).
        name: String,
        /// Where to write it (%p).
        dest: PathBuf,
    },
    /// Copy queued WAL to the asynchronous sinks now (wal-push starts it in the background).
    WalDrain,
    /// Audit log commands.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Reports for people (issue 17): the business continuity plan and an auditor's evidence
    /// bundle (layout in docs/REPORTS.md).
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
    /// Run the [[schedule]] jobs in this process (one at a time, one catch-up run after
    /// downtime) and serve GET /metrics on [metrics] listen; SIGTERM or Ctrl-C stops it (a
    /// running job is cancelled; nothing that looks complete is left behind).
    Daemon,
    /// Schedule commands.
    Schedule {
        #[command(subcommand)]
        command: ScheduleCommand,
    },
    /// The erasure register (issue 18, docs/ERASURE.md): erasure requests every restore and
    /// drill re-applies, so erased data is not restored unintentionally (seeds/003).
    Erasure {
        #[command(subcommand)]
        command: ErasureCommand,
    },
}

#[derive(Subcommand, Debug, Clone)]
enum ReportCommand {
    /// The business continuity plan (seeds/002 template) as Markdown: scope, recovery
    /// objectives with the measured RTO/RPO, backup inventory, recovery procedures, contacts
    /// ([bcp]), test history from the drills. What the configuration does not hold is marked
    /// TO FILL.
    Bcp {
        /// Write it into this new file instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// An auditor's evidence bundle: audit chain verification, the period's records, drill
    /// reports, 3-2-1 and compliance status, retention policy, BCP, and INDEX.md mapping them
    /// to ISO 27001 A.8.13, A.5.29, A.5.30.
    Evidence {
        /// The period: `90d`, `12w`, `48h` before now (the repository's clock), or an RFC
        /// 3339 date or time.
        #[arg(long, value_name = "PERIOD", default_value = "90d")]
        since: String,
        /// A new or empty directory for the bundle.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

#[derive(Subcommand, Debug, Clone)]
enum ScheduleCommand {
    /// Render the [[schedule]] entries for the host's scheduler instead of `wst daemon`.
    Print {
        /// systemd `wst-JOB.service` + `wst-JOB.timer` units (`OnCalendar=`, `Persistent=true`).
        #[arg(
            long,
            required_unless_present = "windows_task",
            conflicts_with = "windows_task"
        )]
        systemd: bool,
        /// Windows Task Scheduler XML, one `wst-JOB.xml` per job.
        #[arg(long)]
        windows_task: bool,
        /// Write the files into this directory instead of printing them.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// The `wst` program the units run (default: this executable's path).
        #[arg(long, value_name = "PATH")]
        program: Option<String>,
    },
}

impl Command {
    /// The operation name signals record (issue 17), `None` for commands that are not
    /// repository operations (`ls` browses, `wal-fetch` probes for files that may not exist).
    fn signal_name(&self) -> Option<&'static str> {
        Some(match self {
            Command::Init => "init",
            Command::Backup { .. } => "backup",
            Command::Verify { .. } => "verify",
            Command::Restore { .. } => "restore",
            Command::Drill { .. } => "drill",
            Command::Prune { .. } => "prune",
            Command::Replicate => "replicate",
            Command::Status => "status",
            Command::WalPush { .. } => "wal-push",
            Command::WalDrain => "wal-drain",
            Command::BaseBackup => "base-backup",
            _ => return None,
        })
    }
}

#[derive(Subcommand, Debug, Clone)]
enum ErasureCommand {
    /// Record an erasure request: the [erasure] templates resolved for the subject, encrypted
    /// and sealed, on every sink. Erase the subject in production yourself; wst makes sure
    /// no restore brings it back.
    Record {
        /// The data subject's id (ASCII letters, digits, `._-@+:`).
        #[arg(long, required_unless_present = "tenant", conflicts_with = "tenant")]
        subject: Option<String>,
        /// A tenant's id instead of a subject's.
        #[arg(long)]
        tenant: Option<String>,
        /// Who requested the erasure (accountable person or role).
        #[arg(long)]
        requested_by: String,
        /// The request's reference (ticket, Art. 17 request number).
        #[arg(long)]
        reason: String,
    },
    /// List the register: every authentic entry, and every copy not used (exit 1 when an
    /// unusable copy may hide an entry).
    List,
}

#[derive(Subcommand, Debug, Clone)]
enum ConfigCommand {
    /// Check the whole configuration without doing anything: exit 0 and a one-line summary
    /// when it is valid, exit 2 with every problem (each naming its TOML key) when not.
    Check,
}

#[derive(Subcommand, Debug, Clone)]
enum AuditCommand {
    /// Verify the hash chain; names the first broken record.
    Verify,
}

// ---- exit codes ----------------------------------------------------------------------------

/// An operator-facing failure with its exit code (printed as `wst: MESSAGE` on standard error).
#[derive(Debug)]
pub(crate) struct Failure {
    code: u8,
    message: String,
}

pub(crate) fn usage(message: impl Into<String>) -> Failure {
    Failure {
        code: 2,
        message: message.into(),
    }
}

/// Another process holds the repository lock (exit 4): nothing was done.
pub(crate) fn locked(e: &wst::core::Error) -> Failure {
    Failure {
        message: format!("{e}; nothing was done"),
        code: 4,
    }
}

/// A library error with what was being done: the exit code follows the error's kind (see
/// `From` below), the message reads `{what}: {error}`.
pub(crate) fn context(what: &str, e: wst::core::Error) -> Failure {
    let mut f = Failure::from(e);
    f.message = format!("{what}: {}", f.message);
    f
}

pub(crate) fn failed(message: impl Into<String>) -> Failure {
    Failure {
        code: 1,
        message: message.into(),
    }
}

impl<E: std::fmt::Display + 'static> From<E> for Failure {
    /// A library error's exit code follows its kind (issue 14): configuration → 2, another
    /// run holds the lock or claimed the name → 4, anything else → 1.
    fn from(e: E) -> Self {
        let any: &dyn std::any::Any = &e;
        let code = match any
            .downcast_ref::<wst::core::Error>()
            .map(wst::core::Error::kind)
        {
            Some(wst::core::ErrorKind::Configuration) => 2,
            Some(wst::core::ErrorKind::Contention) => 4,
            _ => 1,
        };
        Failure {
            code,
            message: e.to_string(),
        }
    }
}

pub(crate) type Out<T = ()> = Result<T, Failure>;

// ---- dispatch --------------------------------------------------------------------------------

async fn run(cli: Cli) -> Out<u8> {
    if let Command::Keygen { out } = &cli.command {
        // With [[job]], the configured key is the selected job's (issue 18).
        if out.is_none() && (cli.job.is_some() || !load_config(&cli.config)?.jobs.is_empty()) {
            let config = jobs::select(cli.job.as_deref(), &cli.command, load_config(&cli.config)?)?;
            return commands::keygen::keygen(&cli.config, Some(&config[0].encryption.key_file));
        }
        return commands::keygen::keygen(&cli.config, out.as_ref());
    }
    // The whole configuration is checked before any command does work (issue 15).
    let config = load_config(&cli.config)?;
    // One repository per [[job]] (issue 18): the selected job, or every job in turn.
    let mut configs = jobs::select(cli.job.as_deref(), &cli.command, config)?;
    if configs.len() == 1 {
        return Box::pin(run_one(cli, configs.remove(0))).await;
    }
    // A report written to one new file or directory is one job's.
    if let Command::Report {
        command: ReportCommand::Bcp { out: Some(_) } | ReportCommand::Evidence { .. },
    } = &cli.command
    {
        return Err(usage(format!(
            "several jobs: a report written with --out is one job's; pass --job NAME (one of {})",
            configs
                .iter()
                .filter_map(|c| c.job_name.clone())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let mut worst = 0;
    for config in configs {
        let name = config.job_name.clone().unwrap_or_default();
        if !cli.json {
            output::say!("== job {name} ==");
        }
        let code = match Box::pin(run_one(cli.clone(), config)).await {
            Ok(code) => code,
            Err(f) => {
                output::err(&format!(
                    "wst: job {name}: {}\n",
                    output::escape_lines(&f.message)
                ));
                f.code
            }
        };
        worst = jobs::worse(worst, code);
    }
    Ok(worst)
}

/// One job's (one repository's) run of the command.
async fn run_one(cli: Cli, config: wst::config::Config) -> Out<u8> {
    if let Command::Config {
        command: ConfigCommand::Check,
    } = &cli.command
    {
        return commands::config_check(&cli.config, &config, cli.json);
    }
    if let Command::Audit {
        command: AuditCommand::Verify,
    } = &cli.command
    {
        return commands::audit::verify(config, cli.json).await;
    }
    if let Command::Schedule {
        command:
            ScheduleCommand::Print {
                windows_task,
                out,
                program,
                ..
            },
    } = &cli.command
    {
        return commands::daemon::schedule_print(
            &cli.config,
            &config,
            *windows_task,
            out.as_deref(),
            program.as_deref(),
        );
    }
    let creating = matches!(cli.command, Command::Init);
    let operation = cli.command.signal_name();
    let signals = signals::Signals::of(&config);
    let started = std::time::Instant::now();
    // Asynchronous archiving: `wal-push` answers from the worker's acknowledgement, without
    // opening the repository (the worker does; issue 16). A file PostgreSQL has not marked
    // ready (a push by hand) is pushed synchronously: no worker would look at it.
    if let Command::WalPush {
        path,
        worker: false,
    } = &cli.command
        && let Some(wal) = config
            .wal
            .as_ref()
            .filter(|w| w.archive_async == Some(true))
        && commands::wal::marked_ready(path)
    {
        let code = commands::wal::wal_push_async(&cli.config, &config, wal, path, cli.json).await;
        let (c, message) = match &code {
            Ok(c) => (*c, None),
            Err(f) => (f.code, Some(f.message.as_str())),
        };
        signals
            .after(
                "wal-push",
                c,
                message,
                started.elapsed().as_secs_f64(),
                wst::core::Clock::system().now(),
                None,
                None,
                None,
            )
            .await;
        return code;
    }
    let ops = match Ops::new(config, cli.json, creating).await {
        Ok(ops) => ops.with_config_path(&cli.config),
        Err(f) => {
            // The repository could not be opened (a missing key, a sink that cannot be
            // configured): still a failed run for the signals, without an audit record.
            if let Some(op) = operation {
                signals
                    .after(
                        op,
                        f.code,
                        Some(&f.message),
                        started.elapsed().as_secs_f64(),
                        wst::core::Clock::system().now(),
                        None,
                        None,
                        None,
                    )
                    .await;
            }
            return Err(f);
        }
    };
    let head = ops.audit_head();
    // A `wal-fetch` runs once per WAL file during recovery: its `content_read` record is
    // anchored by the next command that anchors, not by a round trip to every sink per file.
    let anchors = !matches!(cli.command, Command::WalFetch { .. });
    let code = dispatch(cli, &ops).await;
    if let Some(op) = operation {
        let (c, message) = match &code {
            Ok(c) => (*c, None),
            Err(f) => (f.code, Some(f.message.as_str())),
        };
        signals
            .after(
                op,
                c,
                message,
                started.elapsed().as_secs_f64(),
                ops.now(),
                Some(ops.audit_log()),
                head.as_ref(),
                ops.wal_queue_facts(),
            )
            .await;
    }
    // Whatever the command recorded is anchored on the sinks (issue 14).
    if anchors && ops.audit_head() != head {
        ops.anchor().await;
    }
    code
}

async fn dispatch(cli: Cli, ops: &Ops) -> Out<u8> {
    match cli.command {
        Command::Init => ops.init().await,
        Command::Backup { exclude } => ops.backup(&exclude).await,
        Command::Verify { artifact } => ops.verify(artifact.as_deref()).await,
        Command::Ls {
            manifest,
            report,
            include,
            exclude,
            sink,
            artifact,
        } => {
            ops.ls(
                sink.as_deref(),
                artifact.as_deref(),
                &include,
                &exclude,
                manifest,
                report,
            )
            .await
        }
        Command::Restore {
            target: _,
            bucket: Some(bucket),
            to_bucket,
            prefix,
            sink,
            break_glass_by,
            reason,
            artifact,
            tenant,
            ..
        } => {
            let break_glass = break_glass_by.map(|by| BreakGlass {
                authorized_by: by,
                reason: reason.unwrap_or_default(),
            });
            let to = to_bucket.ok_or_else(|| usage("--bucket needs --to-bucket URL"))?;
            let prefix = match tenant.as_deref() {
                Some(t) => commands::tenant_bucket_prefixes(ops, t, &bucket)?,
                None => prefix,
            };
            ops.restore_bucket(
                &bucket,
                &to,
                prefix,
                sink.as_deref(),
                break_glass,
                artifact.as_deref(),
            )
            .await
        }
        Command::Restore {
            pitr: true,
            pgdata,
            target_time,
            target_lsn,
            target_xid,
            latest,
            target_action,
            base_backup,
            port,
            sink,
            break_glass_by,
            reason,
            ..
        } => {
            let break_glass = break_glass_by.map(|by| BreakGlass {
                authorized_by: by,
                reason: reason.unwrap_or_default(),
            });
            let target = match (target_time, target_lsn, target_xid, latest) {
                (Some(t), None, None, false) => {
                    wst::pg::RecoveryTarget::Time(t.parse::<jiff::Timestamp>().map_err(|e| {
                        usage(format!("--target-time `{t}` is not an RFC 3339 time: {e}"))
                    })?)
                }
                (None, Some(l), None, false) => wst::pg::RecoveryTarget::Lsn(
                    l.parse()
                        .map_err(|e: wst::pg::Error| usage(e.to_string()))?,
                ),
                (None, None, Some(x), false) => wst::pg::RecoveryTarget::Xid(x),
                (None, None, None, true) => wst::pg::RecoveryTarget::Latest,
                _ => {
                    return Err(usage(
                        "--pitr needs one of --target-time, --target-lsn, --target-xid or --latest",
                    ));
                }
            };
            let action = match target_action.as_deref() {
                None | Some("promote") => wst::pg::TargetAction::Promote,
                Some("pause") => wst::pg::TargetAction::Pause,
                Some("shutdown") => wst::pg::TargetAction::Shutdown,
                Some(other) => {
                    return Err(usage(format!(
                        "--target-action `{other}`: expected promote, pause or shutdown"
                    )));
                }
            };
            ops.restore_pitr(commands::PitrRequest {
                pgdata: pgdata.ok_or_else(|| usage("--pitr needs --pgdata DIR"))?,
                target,
                action,
                base_backup,
                start_port: port,
                sink,
                break_glass,
                config_path: ops.config_path().to_owned(),
            })
            .await
        }
        Command::Restore {
            in_place: true,
            sink,
            break_glass_by,
            reason,
            artifact,
            ..
        } => {
            let break_glass = break_glass_by.map(|by| BreakGlass {
                authorized_by: by,
                reason: reason.unwrap_or_default(),
            });
            ops.restore_in_place(sink.as_deref(), break_glass, artifact.as_deref())
                .await
        }
        Command::Restore {
            target,
            include,
            exclude,
            no_database,
            database,
            table,
            schema,
            no_files,
            clean,
            server,
            sink,
            break_glass_by,
            reason,
            artifact,
            tenant,
            into_production,
            ..
        } => {
            let break_glass = break_glass_by.map(|by| BreakGlass {
                authorized_by: by,
                reason: reason.unwrap_or_default(),
            });
            ops.restore(RestoreRequest {
                tenant,
                into_production,
                clean,
                server,
                target: target.ok_or_else(|| usage("restore needs --target DIR (or --bucket)"))?,
                include,
                exclude,
                no_database,
                database,
                tables: table,
                schemas: schema,
                no_files,
                sink,
                break_glass,
                artifact,
            })
            .await
        }
        Command::BaseBackup => ops.base_backup().await,
        Command::Drill {
            sink,
            pitr: true,
            port,
        } => ops.drill_pitr(sink.as_deref(), port).await,
        Command::Drill { sink, .. } => ops.drill(sink.as_deref()).await,
        Command::Prune {
            dry_run,
            allow_listing_drop,
        } => ops.prune(dry_run, allow_listing_drop).await,
        Command::Replicate => ops.replicate().await,
        Command::Status => ops.status().await,
        Command::WalPush {
            path,
            worker: false,
        } => ops.wal_push(&cli.config, &path).await,
        Command::WalPush { path, worker: true } => ops.wal_push_worker(&path).await,
        Command::WalFetch { name, dest } => ops.wal_fetch(&name, &dest).await,
        Command::WalDrain => ops.wal_drain().await,
        Command::Erasure { command } => match command {
            ErasureCommand::Record {
                subject,
                tenant,
                requested_by,
                reason,
            } => {
                let is_tenant = tenant.is_some();
                let id = subject.or(tenant).unwrap_or_default();
                ops.erasure_record(&id, is_tenant, &requested_by, &reason)
                    .await
            }
            ErasureCommand::List => ops.erasure_list().await,
        },
        Command::Report {
            command: ReportCommand::Bcp { out },
        } => ops.report_bcp(out.as_deref()).await,
        Command::Report {
            command: ReportCommand::Evidence { since, out },
        } => ops.report_evidence(&since, &out).await,
        Command::Keygen { .. }
        | Command::Audit { .. }
        | Command::Config { .. }
        | Command::Daemon
        | Command::Schedule { .. } => {
            unreachable!("handled above")
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: cron mail and log files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let result = if matches!(cli.command, Command::Daemon) && cli.job.is_some() {
        // The daemon runs its schedules for every job (issue 18); one job is scheduled with
        // the host's scheduler.
        Err(usage(
            "daemon runs its [[schedule]] entries for every [[job]]: leave out --job, or schedule \
             one job with cron or a systemd timer running `wst --job NAME backup`",
        ))
    } else if matches!(cli.command, Command::Daemon) {
        Box::pin(commands::daemon::daemon(cli.config, cli.json)).await
    } else {
        Box::pin(run(cli)).await
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            // Messages may quote names from artifacts and sinks: escaped line by line.
            output::err(&format!("wst: {}\n", output::escape_lines(&f.message)));
            ExitCode::from(f.code)
        }
    }
}
