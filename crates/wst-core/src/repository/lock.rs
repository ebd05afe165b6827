//! The repository lock: one writer (backup, prune) per repository on a host.
//!
//! A lock file beside the audit log, held with an exclusive OS file lock (`flock` on Unix,
//! `LockFileEx` on Windows, through [`std::fs::File::try_lock`]). The OS releases the lock when
//! the holder exits, even after `kill -9`, so a lock is never stale: a file left by a dead run
//! holds its last holder's description, which the next run reports as "taken over".

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Who holds (or last held) a repository lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    /// The operation, e.g. `backup`.
    pub operation: String,
    /// The host name (from `HOSTNAME`/`COMPUTERNAME`, else `unknown`).
    pub host: String,
    /// The process id.
    pub pid: u32,
    /// Since when (UTC).
    pub since: jiff::Timestamp,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` by pid {} on {} since {}",
            self.operation, self.pid, self.host, self.since
        )
    }
}

/// A held repository lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct RepositoryLock {
    file: File,
    path: PathBuf,
    /// The previous holder whose run ended without releasing (crashed or killed), if any.
    pub taken_over: Option<LockHolder>,
}

impl RepositoryLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RepositoryLock {
    fn drop(&mut self) {
        // Truncate first so a reader never sees a released lock's holder as current.
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

/// Host name for lock holders.
pub(crate) fn host_name() -> String {
    std::env::var("HOSTNAME")
        .or_else(|_| std::env::var("COMPUTERNAME"))
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Takes the lock at `path` for `operation` without waiting.
///
/// # Errors
/// [`Error::Locked`] naming the holder when another process holds it; [`Error::Io`] when the
/// file cannot be created, locked or written.
pub(crate) fn acquire(
    path: &Path,
    operation: &str,
    now: jiff::Timestamp,
) -> Result<RepositoryLock> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating `{}`", dir.display()), e))?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| Error::io(format!("opening the lock file `{}`", path.display()), e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = read_holder(&mut file);
            return Err(Error::Locked {
                path: path.to_path_buf(),
                holder: holder.map_or_else(
                    || "another wst process (starting up)".to_owned(),
                    |h| h.to_string(),
                ),
            });
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(Error::io(format!("locking `{}`", path.display()), e));
        }
    }
    let taken_over = read_holder(&mut file);
    let me = LockHolder {
        operation: operation.to_owned(),
        host: host_name(),
        pid: std::process::id(),
        since: now,
    };
    let json = serde_json::to_vec(&me).expect("a lock holder serialises");
    file.set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)))
        .and_then(|_| file.write_all(&json))
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io(format!("writing the lock file `{}`", path.display()), e))?;
    if let Some(h) = &taken_over {
        tracing::warn!(previous = %h, "repository lock: the previous run ended without releasing it (crashed or killed)");
    }
    Ok(RepositoryLock {
        file,
        path: path.to_path_buf(),
        taken_over,
    })
}

/// Whether the lock at `path` is held by a live process right now, and by whom (probed
/// without taking it for longer than the probe; nothing is written).
pub(crate) fn probe(path: &Path) -> Option<String> {
    let mut file = OpenOptions::new().read(true).write(true).open(path).ok()?;
    match file.try_lock() {
        Ok(()) => {
            let _ = file.unlock();
            None
        }
        Err(std::fs::TryLockError::WouldBlock) => Some(
            read_holder(&mut file)
                .map_or_else(|| "another wst process".to_owned(), |h| h.to_string()),
        ),
        Err(std::fs::TryLockError::Error(_)) => None,
    }
}

fn read_holder(file: &mut File) -> Option<LockHolder> {
    let mut buf = Vec::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    Read::by_ref(file).take(4096).read_to_end(&mut buf).ok()?;
    serde_json::from_slice(&buf).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_naming_the_first_and_a_dead_holder_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wst.lock");
        let t: jiff::Timestamp = "2026-11-21T02:00:00Z".parse().unwrap();
        let first = acquire(&path, "backup", t).unwrap();
        assert!(first.taken_over.is_none());
        let err = acquire(&path, "prune", t).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::Locked { .. }), "{msg}");
        assert!(
            msg.contains("`backup`") && msg.contains(&std::process::id().to_string()),
            "{msg}"
        );
        drop(first);
        let again = acquire(&path, "prune", t).unwrap();
        assert!(
            again.taken_over.is_none(),
            "a released lock is not taken over"
        );
        // A holder that died leaves its description without the OS lock.
        let stale = LockHolder {
            operation: "backup".into(),
            host: "old".into(),
            pid: 1,
            since: t,
        };
        drop(again);
        std::fs::write(&path, serde_json::to_vec(&stale).unwrap()).unwrap();
        let next = acquire(&path, "backup", t).unwrap();
        assert_eq!(next.taken_over, Some(stale));
    }
}
