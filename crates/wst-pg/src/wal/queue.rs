//! The bounded local queue of WAL objects waiting for the asynchronous sinks
//! (`docs/WAL.md` §4; pgBackRest's `archive-push-queue-max` idea, issue 16).

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::wal::error::WalError;

/// The default bound of one asynchronous sink's queue: 4 GiB (256 segments of 16 MiB).
pub const DEFAULT_QUEUE_MAX_BYTES: u64 = 4 << 30;

/// The lock file that lets one drainer run at a time.
const DRAIN_LOCK: &str = "drain.lock";

/// A directory on local disk holding, per asynchronous sink, the sealed WAL objects still to
/// be copied there: `{dir}/{sink}/{object}`. Each sink's part is bounded by `max_bytes`; a
/// WAL object that would exceed it is not queued for that sink (the archive audits and logs
/// that decision, never silently).
///
/// Put it on a local file system that is **not** the one holding `pg_wal`, so a dead offsite
/// store can fill neither.
#[derive(Debug, Clone)]
pub struct WalQueue {
    dir: PathBuf,
    max_bytes: u64,
}

/// The backlog of one asynchronous sink: its replication lag in objects and bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct QueueStatus {
    /// The sink's configured name.
    pub sink: String,
    /// WAL objects waiting.
    pub objects: u64,
    /// Their bytes (ciphertext), counted against the queue's bound.
    pub bytes: u64,
    /// The bound, bytes.
    pub max_bytes: u64,
    /// The oldest waiting WAL file name (the sink holds the archive up to before it, as far
    /// as this queue knows).
    pub oldest: Option<String>,
}

/// The outcome of queueing one object for one sink.
pub(crate) enum Enqueued {
    /// Written (durably) into the queue.
    Queued,
    /// Not written: the sink's queue would exceed its bound.
    OverLimit {
        /// Bytes queued for the sink before this object.
        queued: u64,
    },
}

/// One queued object.
pub(crate) struct Item {
    pub(crate) object: String,
    pub(crate) path: PathBuf,
}

impl Item {
    /// Removes the queued object once its sink holds it.
    pub(crate) fn remove(&self) -> Result<(), WalError> {
        match fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(WalError::Write {
                path: self.path.clone(),
                source,
            }),
        }
    }
}

/// Holds the drain lock until dropped.
pub(crate) struct DrainLock {
    _file: fs::File,
}

impl WalQueue {
    /// A queue in `dir` (created on first use), each sink's part bounded by `max_bytes`.
    pub fn new(dir: impl Into<PathBuf>, max_bytes: u64) -> Self {
        Self {
            dir: dir.into(),
            max_bytes,
        }
    }

    /// The queue directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Each asynchronous sink's bound, bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    fn sink_dir(&self, sink: &str) -> Result<PathBuf, WalError> {
        // Sink names are configuration, not paths: refuse anything that could leave `dir`.
        wst_core::validate_object_name(sink).map_err(|e| {
            WalError::Config(format!(
                "sink name `{}` cannot name a queue directory: {e}",
                crate::wal::quote(sink)
            ))
        })?;
        Ok(self.dir.join(sink))
    }

    /// The objects queued for `sink`, sorted by name (WAL order within a timeline), with
    /// their sizes. Temporary files (names starting with `.`) are not items.
    pub(crate) fn items(&self, sink: &str) -> Result<Vec<(Item, u64)>, WalError> {
        let dir = self.sink_dir(sink)?;
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(WalError::Read { path: dir, source }),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| WalError::Read {
                path: dir.clone(),
                source,
            })?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            let meta = match entry.metadata() {
                Ok(m) if m.is_file() => m,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(WalError::Read {
                        path: entry.path(),
                        source,
                    });
                }
            };
            out.push((
                Item {
                    object: name,
                    path: entry.path(),
                },
                meta.len(),
            ));
        }
        out.sort_by(|a, b| a.0.object.cmp(&b.0.object));
        Ok(out)
    }

    /// The backlog of `sink`. `oldest_name` maps an object name to its WAL file name.
    pub(crate) fn status(
        &self,
        sink: &str,
        oldest_name: impl Fn(&str) -> Option<String>,
    ) -> Result<QueueStatus, WalError> {
        let items = self.items(sink)?;
        Ok(QueueStatus {
            sink: sink.to_owned(),
            objects: items.len() as u64,
            bytes: items.iter().map(|(_, n)| n).sum(),
            max_bytes: self.max_bytes,
            oldest: items.first().and_then(|(i, _)| oldest_name(&i.object)),
        })
    }

    /// Queues `data` as `object` for `sink`: written to a temporary file, synced, renamed, the
    /// directory synced, so a queued object survives a crash. Replaces an object of the same
    /// name (a repeated push of the same WAL file). Refuses, without writing, when the sink's
    /// queue would exceed its bound.
    pub(crate) fn enqueue(
        &self,
        sink: &str,
        object: &str,
        data: &[u8],
    ) -> Result<Enqueued, WalError> {
        let dir = self.sink_dir(sink)?;
        let queued: u64 = self
            .items(sink)?
            .iter()
            .filter(|(i, _)| i.object != object)
            .map(|(_, n)| n)
            .sum();
        if queued + data.len() as u64 > self.max_bytes {
            return Ok(Enqueued::OverLimit { queued });
        }
        let write_err = |path: &Path| {
            let path = path.to_owned();
            move |source| WalError::Write { path, source }
        };
        fs::create_dir_all(&dir).map_err(write_err(&dir))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!(".{object}."))
            .suffix(".tmp")
            .tempfile_in(&dir)
            .map_err(write_err(&dir))?;
        tmp.write_all(data).map_err(write_err(tmp.path()))?;
        tmp.as_file().sync_all().map_err(write_err(tmp.path()))?;
        let target = dir.join(object);
        tmp.persist(&target)
            .map_err(|e| write_err(&target)(e.error))?;
        sync_dir(&dir).map_err(write_err(&dir))?;
        Ok(Enqueued::Queued)
    }

    /// Takes the drain lock without waiting: `None` when another drainer holds it. The lock
    /// is the operating system's (released when the process ends, however it ends).
    pub(crate) fn try_lock(&self) -> Result<Option<DrainLock>, WalError> {
        fs::create_dir_all(&self.dir).map_err(|source| WalError::Write {
            path: self.dir.clone(),
            source,
        })?;
        let path = self.dir.join(DRAIN_LOCK);
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| WalError::Write {
                path: path.clone(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => Ok(Some(DrainLock { _file: file })),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(source)) => Err(WalError::Write { path, source }),
        }
    }
}

/// Syncs a directory so a rename in it is durable (Unix; Windows has no directory `fsync` and
/// relies on NTFS's journal).
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_per_sink_and_replacing_the_same_object_is_not_counted_twice() {
        let d = tempfile::tempdir().unwrap();
        let q = WalQueue::new(d.path().join("q"), 100);
        assert!(matches!(
            q.enqueue("s3", "a", &[1; 60]).unwrap(),
            Enqueued::Queued
        ));
        // The same object again replaces it.
        assert!(matches!(
            q.enqueue("s3", "a", &[2; 60]).unwrap(),
            Enqueued::Queued
        ));
        assert!(matches!(
            q.enqueue("s3", "b", &[3; 41]).unwrap(),
            Enqueued::OverLimit { queued: 60 }
        ));
        // Another sink has its own bound.
        assert!(matches!(
            q.enqueue("azure", "b", &[3; 41]).unwrap(),
            Enqueued::Queued
        ));
        let s = q.status("s3", |o| Some(o.to_owned())).unwrap();
        assert_eq!(
            (s.objects, s.bytes, s.oldest.as_deref()),
            (1, 60, Some("a"))
        );
        assert_eq!(std::fs::read(d.path().join("q/s3/a")).unwrap(), vec![2; 60]);
        let items = q.items("s3").unwrap();
        items[0].0.remove().unwrap();
        assert_eq!(q.status("s3", |_| None).unwrap().objects, 0);
        assert!(q.enqueue("../x", "a", b"x").is_err());
    }

    #[test]
    fn one_drainer_at_a_time() {
        let d = tempfile::tempdir().unwrap();
        let q = WalQueue::new(d.path(), 100);
        let held = q.try_lock().unwrap().expect("free");
        assert!(q.try_lock().unwrap().is_none(), "held by the first");
        drop(held);
        assert!(q.try_lock().unwrap().is_some());
    }
}
