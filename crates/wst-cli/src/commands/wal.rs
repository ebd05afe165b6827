//! `wal-push`, `wal-fetch`, `wal-drain`: continuous WAL archiving for point-in-time recovery
//! (issue 16), over `wst::pg::wal::WalArchive` and the `[wal]` section of `wst.toml`.
//!
//! ```text
//! archive_command = 'wst --config /etc/wst/wst.toml wal-push %p'
//! restore_command = 'wst --config /etc/wst/wst.toml wal-fetch %f %p'
//! ```
//!
//! Exit status: `wal-push` 0 once the file is durable on every synchronous sink (a copy
//! dropped for an asynchronous sink is reported on standard error, audited, and still 0: the
//! offsite store must not stop archiving), 1 otherwise (`PostgreSQL` keeps the file and
//! retries). `wal-fetch` 0 with the file at its destination; 1 **without a message** when no
//! sink has it (`PostgreSQL` probes for files that do not exist); 126 with a message naming
//! every sink's problem when no good copy could be read (`PostgreSQL` then stops recovery: a
//! corrupt archive must not look like its end). `wal-drain` 0 when the queue is empty (or
//! another drainer runs), 3 when a backlog remains.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use std::time::{Duration, Instant};

use wst::config::{Config, WalConfig};
use wst::pg::wal::{
    Ack, DEFAULT_QUEUE_MAX_BYTES, WalArchive, WalError, WalFileName, WalQueue, WalSpool,
};

use super::Ops;
use crate::output::{say, warn_line};
use crate::{Out, failed, usage};

/// `name` in the audit log's directory: where the WAL queue (`wal-queue`, `[wal] queue_dir`
/// unset) and the asynchronous archiving spool (`wal-spool`, `[wal] spool_dir` unset) live.
fn beside_audit_log(audit_log: &Path, name: &str) -> PathBuf {
    audit_log
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."))
        .join(name)
}

/// The spool of asynchronous archiving of this configuration.
fn spool_of(config: &Config, wal: &WalConfig) -> WalSpool {
    WalSpool::new(
        wal.spool_dir
            .clone()
            .unwrap_or_else(|| beside_audit_log(&config.audit_log, "wal-spool")),
    )
}

/// `[wal] process_max` default: WAL files the asynchronous worker pushes at a time.
const DEFAULT_PROCESS_MAX: usize = 2;
/// `[wal] async_timeout_seconds` default (pgBackRest's `archive-timeout`).
const DEFAULT_ASYNC_TIMEOUT_SECONDS: u64 = 60;
/// How often a waiting `wal-push` checks that a worker runs (and starts one if none does).
const WORKER_CHECK: Duration = Duration::from_millis(100);

/// Whether `PostgreSQL` marked the WAL file at `path` ready for archiving
/// (`archive_status/{name}.ready` beside it): the files the asynchronous worker pushes.
pub(crate) fn marked_ready(path: &Path) -> bool {
    match (path.parent(), path.file_name().and_then(|n| n.to_str())) {
        (Some(dir), Some(name)) => dir
            .join("archive_status")
            .join(format!("{name}.ready"))
            .is_file(),
        _ => false,
    }
}

/// `wal-push PATH` with `[wal] archive_async = true`: answers `PostgreSQL` from the worker's
/// acknowledgement of PATH in the spool, starting the worker when none runs and waiting up
/// to `async_timeout_seconds`. Exit 0 only for an acknowledgement the worker wrote after the
/// file was durable on every synchronous sink; 1 when the worker's push failed (its message)
/// or no acknowledgement came in time (`PostgreSQL` keeps the file and retries).
pub(crate) async fn wal_push_async(
    config_path: &Path,
    config: &Config,
    wal: &WalConfig,
    path: &Path,
    json: bool,
) -> Out<u8> {
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| usage(format!("wal-push: `{}` names no WAL file", path.display())))?;
    let name = WalFileName::parse(file_name).map_err(|e| wal_failure(&e))?;
    let path = std::path::absolute(path)
        .map_err(|e| failed(format!("wal-push: `{}`: {e}", path.display())))?;
    let pg_wal = path
        .parent()
        .map(Path::to_owned)
        .ok_or_else(|| usage("wal-push: the WAL file has no directory"))?;
    let spool = spool_of(config, wal);
    let timeout = Duration::from_secs(
        wal.async_timeout_seconds
            .unwrap_or(DEFAULT_ASYNC_TIMEOUT_SECONDS),
    );
    let started = Instant::now();
    let mut next_check = started;
    let mut pause = Duration::from_millis(1);
    loop {
        match spool.take_ack(&name, &path).map_err(|e| wal_failure(&e))? {
            Some(Ack::Archived { sha256 }) => {
                #[derive(serde::Serialize)]
                struct PushAcknowledged<'a> {
                    name: String,
                    sha256: &'a str,
                    acknowledged_by: &'static str,
                }
                let report = PushAcknowledged {
                    name: name.to_string(),
                    sha256: &sha256,
                    acknowledged_by: "asynchronous worker",
                };
                crate::output::print(json, &report, || {
                    say!("wal-push {name}: archived (acknowledged by the asynchronous worker)");
                });
                return Ok(0);
            }
            Some(Ack::Failed(message)) => {
                return Err(failed(format!(
                    "wal-push {name} (asynchronous worker): {message}"
                )));
            }
            _ => {}
        }
        let now = Instant::now();
        if now >= next_check {
            if !spool.worker_running().map_err(|e| wal_failure(&e))? {
                spawn_wst(
                    config_path,
                    config.job_name.as_deref(),
                    &["wal-push", "--worker"],
                    Some(&pg_wal),
                );
            }
            next_check = now + WORKER_CHECK;
        }
        if now.duration_since(started) >= timeout {
            return Err(failed(format!(
                "wal-push {name}: no acknowledgement from the asynchronous worker within {} s \
                 (spool `{}`); PostgreSQL retries the file. Run `wst wal-push --worker {}` by \
                 hand to see why, or set [wal] archive_async = false",
                timeout.as_secs(),
                spool.dir().display(),
                pg_wal.display()
            )));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// The exit status of `wal-fetch` when the file exists but no good copy could be read: above
/// 125, so `PostgreSQL`'s startup process treats it as a fatal error (as for a shell's "cannot
/// execute") and stops recovery instead of taking it for the end of the archive.
const RESTORE_COMMAND_FATAL: u8 = 126;

/// A configuration mistake is exit 2; everything else exit 1.
fn wal_failure(e: &WalError) -> crate::Failure {
    match e {
        WalError::InvalidName { .. } | WalError::Config(_) => usage(e.to_string()),
        _ => failed(e.to_string()),
    }
}

impl Ops {
    /// The archive of this configuration: `[wal] sync_sinks` (default: the first sink)
    /// synchronous, the other sinks through the queue.
    pub(super) fn wal_archive(&self) -> Out<WalArchive> {
        let wal = self.config.wal.as_ref();
        let configured: Vec<&str> = self.sinks.iter().map(|s| s.info().name.as_str()).collect();
        let sync: Vec<String> = match wal.map(|w| &w.sync_sinks) {
            Some(names) if !names.is_empty() => names.clone(),
            _ => vec![configured[0].to_owned()],
        };
        for n in &sync {
            if !configured.contains(&n.as_str()) {
                return Err(usage(format!(
                    "[wal] sync_sinks names `{n}`, which is not a [[sinks]] name (configured: {})",
                    configured.join(", ")
                )));
            }
        }
        let queue_dir = wal
            .and_then(|w| w.queue_dir.clone())
            .unwrap_or_else(|| beside_audit_log(&self.config.audit_log, "wal-queue"));
        let max = wal
            .and_then(|w| w.queue_max_bytes)
            .unwrap_or(DEFAULT_QUEUE_MAX_BYTES);
        let mut b = WalArchive::builder(Arc::clone(&self.cipher))
            .prefix(self.repo.prefix())
            .clock(self.repo.clock().clone())
            .audit(self.audit.clone())
            .queue(WalQueue::new(queue_dir, max));
        if let Some(level) = wal.and_then(|w| w.zstd_level) {
            b = b.zstd_level(level);
        }
        for s in &self.sinks {
            b = if sync.iter().any(|n| *n == s.info().name) {
                b.sync_sink(Arc::clone(s))
            } else {
                b.async_sink(Arc::clone(s))
            };
        }
        b.build().map_err(|e| usage(e.to_string()))
    }

    /// `wal-push PATH`: archive one WAL file (`archive_command`).
    pub(crate) async fn wal_push(&self, config: &Path, path: &Path) -> Out<u8> {
        let archive = self.wal_archive()?;
        let report = archive.push(path).await.map_err(|e| wal_failure(&e))?;
        for d in &report.dropped {
            warn_line!(
                "wst: WAL {} DROPPED for sink `{}` (audited): {}",
                report.name,
                d.sink,
                d.reason
            );
        }
        // Anything waiting (this file, or a backlog a dead store left): drain in the
        // background, so this push returns as soon as the synchronous sinks hold the file.
        let backlog = archive
            .queue_status()
            .map_err(|e| wal_failure(&e))?
            .iter()
            .any(|q| q.objects > 0);
        if backlog {
            spawn_drainer(config, self.config.job_name.as_deref());
        }
        self.print(&report, || {});
        Ok(0)
    }

    /// `wal-push --worker PG_WAL`: the asynchronous archiving worker. Pushes every ready WAL
    /// file of `pg_wal` (`[wal] process_max` at a time), acknowledging each in the spool,
    /// until none waits; then drains the asynchronous sinks' queue in this process. Exit 0
    /// (also when another worker runs), 1 when a push failed (its `.error` acknowledgement
    /// tells the waiting `wal-push`).
    pub(crate) async fn wal_push_worker(&self, pg_wal: &Path) -> Out<u8> {
        let Some(wal) = self.config.wal.as_ref() else {
            return Err(usage("wal-push --worker needs a [wal] section"));
        };
        let spool = spool_of(&self.config, wal);
        let Some(lock) = spool.try_lock_worker().map_err(|e| wal_failure(&e))? else {
            return Ok(0);
        };
        let archive = self.wal_archive()?;
        let process_max = wal.process_max.unwrap_or(DEFAULT_PROCESS_MAX);
        let report = spool
            .run_worker(&lock, &archive, pg_wal, process_max)
            .await
            .map_err(|e| wal_failure(&e))?;
        drop(lock);
        for p in &report.pushed {
            for d in &p.dropped {
                warn_line!(
                    "wst: WAL {} DROPPED for sink `{}` (audited): {}",
                    p.name,
                    d.sink,
                    d.reason
                );
            }
        }
        for f in &report.failed {
            warn_line!("wst: wal-push (asynchronous worker) {f}");
        }
        // The queued copies go to the asynchronous sinks from this background process.
        let drained = archive.drain().await.map_err(|e| wal_failure(&e))?;
        self.print(&report, || {
            say!(
                "wal-push worker: {} pushed, {} failed; asynchronous sinks: {}",
                report.pushed.len(),
                report.failed.len(),
                if drained.busy {
                    "another drainer runs".to_owned()
                } else {
                    drained
                        .sinks
                        .iter()
                        .map(|s| format!("{} backlog {}", s.sink, s.remaining.objects))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            );
        });
        Ok(u8::from(!report.failed.is_empty()))
    }

    /// `wal-fetch NAME DEST`: restore one WAL file (`restore_command`).
    pub(crate) async fn wal_fetch(&self, name: &str, dest: &Path) -> Out<u8> {
        let name = WalFileName::parse(name).map_err(|e| wal_failure(&e))?;
        let archive = self.wal_archive()?;
        match archive.fetch(&name, dest).await {
            Ok(report) => {
                // Access audit (issue 18): one record per WAL file handed to PostgreSQL. A
                // read that cannot be recorded is removed and fails fatally (126: recovery
                // stops rather than going on unaudited or promoting early).
                if let Err(e) = self.audit.append(wst::core::AuditEvent::ContentRead {
                    artifact: name.to_string(),
                    sink: report.sink.clone(),
                    purpose: "wal-fetch".to_owned(),
                }) {
                    let _ = std::fs::remove_file(dest);
                    return Err(crate::Failure {
                        code: RESTORE_COMMAND_FATAL,
                        message: format!("cannot audit the read of WAL {name}, not restored: {e}"),
                    });
                }
                for s in &report.skipped {
                    warn_line!(
                        "wst: WAL {name}: skipped {s}; restored from sink `{}`",
                        report.sink
                    );
                }
                self.print(&report, || {});
                Ok(0)
            }
            // PostgreSQL asks for files past the end of the archive and for history files
            // that never existed: exit 1 without noise in the server log.
            Err(e) if e.is_not_found() => Ok(1),
            // Every copy is bad, or no sink could be read: exit 126, which PostgreSQL treats
            // as a fatal `restore_command` failure and stops recovery. Exit 1 would read as
            // "the end of the archive": recovery to the latest point would promote before the
            // file, losing everything after it without a word.
            Err(e) => Err(crate::Failure {
                code: RESTORE_COMMAND_FATAL,
                message: e.to_string(),
            }),
        }
    }

    /// `wal-drain`: copy the queued WAL objects to the asynchronous sinks now.
    pub(crate) async fn wal_drain(&self) -> Out<u8> {
        let archive = self.wal_archive()?;
        let report = archive.drain().await.map_err(|e| wal_failure(&e))?;
        self.print(&report, || {
            if report.busy {
                say!("wal-drain: another drainer is running");
            }
            for s in &report.sinks {
                say!(
                    "wal-drain {}: {} copied, {} already present, {} failed; backlog {} objects \
                     ({} bytes){}",
                    s.sink,
                    s.copied.len(),
                    s.already_present.len(),
                    s.failed.len(),
                    s.remaining.objects,
                    s.remaining.bytes,
                    s.stopped
                        .as_ref()
                        .map(|w| format!("; stopped: {w}"))
                        .unwrap_or_default()
                );
                for f in &s.failed {
                    say!("  failed: {f}");
                }
            }
        });
        Ok(if report.busy || report.complete() {
            0
        } else {
            3
        })
    }
}

/// Starts `wst --config CONFIG [--job JOB] wal-drain` in the background (see [`spawn_wst`]).
fn spawn_drainer(config: &Path, job: Option<&str>) {
    spawn_wst(config, job, &["wal-drain"], None);
}

/// Starts `wst --config CONFIG [--job JOB] ARGS… [PATH]` in the background (its own process group on
/// Unix, so a signal to the archiver's group does not stop it mid-upload). It is not waited
/// for: it outlives this process and is reaped by init. Its standard error stays ours, so
/// its errors reach the server log.
fn spawn_wst(config: &Path, job: Option<&str>, args: &[&str], path: Option<&Path>) {
    let what = args.join(" ");
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            warn_line!("wst: cannot start `wst {what}` ({e}); run it by hand");
            return;
        }
    };
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--config").arg(config);
    if let Some(j) = job {
        cmd.arg("--job").arg(j);
    }
    cmd.args(args);
    if let Some(p) = path {
        cmd.arg(p);
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    // Not waited for on purpose (see above).
    #[allow(clippy::zombie_processes)]
    if let Err(e) = cmd.spawn() {
        warn_line!("wst: cannot start `wst {what}` ({e}); run it by hand");
    }
}
