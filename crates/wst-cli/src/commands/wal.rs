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

use wst::pg::wal::{DEFAULT_QUEUE_MAX_BYTES, WalArchive, WalError, WalFileName, WalQueue};

use super::Ops;
use crate::output::{say, warn_line};
use crate::{Out, failed, usage};

/// The queue directory when `[wal] queue_dir` is not set: `wal-queue` beside the audit log.
fn default_queue_dir(audit_log: &Path) -> PathBuf {
    audit_log
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."))
        .join("wal-queue")
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
            .unwrap_or_else(|| default_queue_dir(&self.config.audit_log));
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
            spawn_drainer(config);
        }
        self.print(&report, || {});
        Ok(0)
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

/// Starts `wst --config CONFIG wal-drain` in the background (its own process group on Unix, so
/// a signal to the archiver's group does not stop it mid-upload). It is not waited for: it
/// outlives this push and is reaped by init. Its standard error stays the archiver's, so its
/// errors reach the server log.
fn spawn_drainer(config: &Path) {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            warn_line!("wst: cannot start the WAL queue drain ({e}); run `wst wal-drain`");
            return;
        }
    };
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--config")
        .arg(config)
        .arg("wal-drain")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    // Not waited for on purpose (see above).
    #[allow(clippy::zombie_processes)]
    if let Err(e) = cmd.spawn() {
        warn_line!("wst: cannot start the WAL queue drain ({e}); run `wst wal-drain`");
    }
}
