//! `wst`, the operator binary: a config-driven command an operations team runs from cron or a
//! systemd timer. See `examples/wst.toml` (at the workspace root) for a documented
//! configuration. Install with `cargo install --path crates/wst-cli`.
//!
//! ```text
//! wst --config wst.toml <COMMAND>        (from a checkout: cargo run --release -p wst-cli -- …)
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
//! ```
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
mod output;
mod progress;

#[derive(Parser, Debug)]
#[command(
    name = "wst",
    about = "Encrypted, verified 3-2-1 backups of PostgreSQL, file trees and buckets",
    after_help = "Configuration: examples/wst.toml documents every section ([[files]], \
                  [database], [[bucket]], [[sinks]], [retention], [drill] with \
                  [[drill.check]], [compliance]); `wst config check` checks all of it. Exit \
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
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of the largest variant (`restore`'s flags) costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
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
        #[arg(long, required_unless_present_any = ["bucket", "in_place"])]
        target: Option<PathBuf>,
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
        /// The artifact name (default: the newest complete one).
        artifact: Option<String>,
    },
    /// Restore drill with RTO/RPO report (doctrine R7), running the [[drill.check]]
    /// post-restore checks (`sql`, `cross_check`, `smoke`); each is in the report. Exit 1 on
    /// FAIL.
    Drill {
        /// The sink to drill from (default: the first).
        #[arg(long)]
        sink: Option<String>,
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
        /// The WAL file to archive (%p).
        path: PathBuf,
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
    /// The erasure register (issue 18, docs/ERASURE.md): erasure requests every restore and
    /// drill re-applies, so erased data is not restored unintentionally (seeds/003).
    Erasure {
        #[command(subcommand)]
        command: ErasureCommand,
    },
}

#[derive(Subcommand, Debug)]
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

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Check the whole configuration without doing anything: exit 0 and a one-line summary
    /// when it is valid, exit 2 with every problem (each naming its TOML key) when not.
    Check,
}

#[derive(Subcommand, Debug)]
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
        return commands::keygen::keygen(&cli.config, out.as_ref());
    }
    // The whole configuration is checked before any command does work (issue 15).
    let config = load_config(&cli.config)?;
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
    let creating = matches!(cli.command, Command::Init);
    let ops = Ops::new(config, cli.json, creating).await?;
    let head = ops.audit_head();
    let code = dispatch(cli, &ops).await;
    // Whatever the command recorded is anchored on the sinks (issue 14).
    if ops.audit_head() != head {
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
            ..
        } => {
            let break_glass = break_glass_by.map(|by| BreakGlass {
                authorized_by: by,
                reason: reason.unwrap_or_default(),
            });
            let to = to_bucket.ok_or_else(|| usage("--bucket needs --to-bucket URL"))?;
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
            ..
        } => {
            let break_glass = break_glass_by.map(|by| BreakGlass {
                authorized_by: by,
                reason: reason.unwrap_or_default(),
            });
            ops.restore(RestoreRequest {
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
        Command::Drill { sink } => ops.drill(sink.as_deref()).await,
        Command::Prune {
            dry_run,
            allow_listing_drop,
        } => ops.prune(dry_run, allow_listing_drop).await,
        Command::Replicate => ops.replicate().await,
        Command::Status => ops.status().await,
        Command::WalPush { path } => ops.wal_push(&cli.config, &path).await,
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
        Command::Keygen { .. } | Command::Audit { .. } | Command::Config { .. } => {
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
    match run(cli).await {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            // Messages may quote names from artifacts and sinks: escaped line by line.
            eprintln!("wst: {}", output::escape_lines(&f.message));
            ExitCode::from(f.code)
        }
    }
}
