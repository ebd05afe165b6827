//! Asynchronous WAL archiving: a worker process pushes every `.ready` WAL file, several at a
//! time, and leaves an acknowledgement per file in a local spool that `wal-push` answers
//! PostgreSQL from (`docs/WAL.md` §9; pgBackRest's `archive-async` idea, issue 16).
//!
//! An acknowledgement is written only **after** [`WalArchive::push`] returned: the file is
//! durable on every synchronous sink and queued for the others, exactly as a synchronous
//! `wal-push` would have left it. What the spool buys is throughput (one process pushes a
//! batch with `process_max` files in flight and looks ahead at the files PostgreSQL has not
//! asked for yet), never a weaker promise.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use futures::StreamExt;
use serde::Serialize;

use crate::wal::archive::{PushReport, WalArchive};
use crate::wal::error::WalError;
use crate::wal::name::WalFileName;

/// The lock file that lets one worker run at a time.
const WORKER_LOCK: &str = "worker.lock";
/// First line of an acknowledgement file.
const ACK_MAGIC: &str = "wst-wal-ack-v1";
/// The most bytes of an acknowledgement (or error) file that are read.
const ACK_MAX_BYTES: u64 = 4096;
/// Suffix of a success acknowledgement.
const OK_SUFFIX: &str = ".ok";
/// Suffix of a failure acknowledgement.
const ERROR_SUFFIX: &str = ".error";

/// The spool directory of asynchronous archiving: `{dir}/{WAL name}.ok` once a WAL file is
/// archived, `{dir}/{WAL name}.error` when its push failed, and `{dir}/worker.lock`.
///
/// An `.ok` file is text, UTF-8, `\n`-separated (format `wst-wal-ack-v1`, `docs/WAL.md` §9):
/// ```text
/// wst-wal-ack-v1
/// size=16777216
/// modified=1796083200123456789
/// sha256=<64 hex digits of the WAL file>
/// ```
/// `size` and `modified` (nanoseconds since the Unix epoch, UTC) are the file's as the worker
/// read it; [`WalSpool::take_ack`] honours the acknowledgement only while the file PostgreSQL
/// asks about still has them (a recycled or rewritten segment under the same name is pushed
/// again, never answered from a stale acknowledgement). An `.error` file holds the push's
/// error message (one line, no secret: [`WalError`] messages never carry one).
///
/// Put the spool on local disk; it holds at most one small file per WAL file PostgreSQL has
/// not yet been answered about.
#[derive(Debug, Clone)]
pub struct WalSpool {
    dir: PathBuf,
}

/// What the worker said about one WAL file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ack {
    /// Archived: durable on the synchronous sinks, queued for the others.
    Archived {
        /// The WAL file's SHA-256 (hex).
        sha256: String,
    },
    /// The push failed with this message; PostgreSQL retries the file (and a new worker run
    /// pushes it again).
    Failed(String),
}

/// Holds the worker lock until dropped.
#[derive(Debug)]
pub struct WorkerLock {
    _file: fs::File,
}

/// What one worker run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct WorkerReport {
    /// Another worker held the lock, so this one did nothing.
    pub busy: bool,
    /// The files pushed, in the order their pushes finished.
    pub pushed: Vec<PushReport>,
    /// `name: error` for the files whose push failed (each has an `.error` acknowledgement).
    pub failed: Vec<String>,
    /// Stale acknowledgements removed (their files were no longer waiting).
    pub cleaned: usize,
}

impl WalSpool {
    /// A spool in `dir` (created on first use).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn ack_path(&self, name: &str, suffix: &str) -> PathBuf {
        self.dir.join(format!("{name}{suffix}"))
    }

    /// Takes (reads and removes) the acknowledgement of `name` for the file at `path`:
    /// `None` when there is none yet, or when an `.ok` names another size or modification
    /// time than the file now has (it is removed: the file must be pushed again).
    ///
    /// # Errors
    /// [`WalError::Read`] / [`WalError::Write`] when the spool or the file cannot be read, or
    /// the acknowledgement cannot be removed.
    pub fn take_ack(&self, name: &WalFileName, path: &Path) -> Result<Option<Ack>, WalError> {
        let name = name.to_string();
        let error = self.ack_path(&name, ERROR_SUFFIX);
        if let Some(text) = read_capped(&error)? {
            remove(&error)?;
            let line = text.lines().next().unwrap_or("").trim().to_owned();
            return Ok(Some(Ack::Failed(if line.is_empty() {
                "the asynchronous push failed (no message)".to_owned()
            } else {
                line
            })));
        }
        let ok = self.ack_path(&name, OK_SUFFIX);
        let Some(text) = read_capped(&ok)? else {
            return Ok(None);
        };
        remove(&ok)?;
        let Some(ack) = AckRecord::parse(&text) else {
            tracing::warn!(file = %ok.display(), "unreadable WAL acknowledgement removed; the file is pushed again");
            return Ok(None);
        };
        let meta = fs::metadata(path).map_err(|source| WalError::Read {
            path: path.to_owned(),
            source,
        })?;
        if meta.len() != ack.size || modified_ns(&meta) != Some(ack.modified) {
            tracing::warn!(wal = %name, "the WAL file changed since it was acknowledged; it is pushed again");
            return Ok(None);
        }
        Ok(Some(Ack::Archived { sha256: ack.sha256 }))
    }

    /// Takes the worker lock without waiting: `None` when a worker runs. The lock is the
    /// operating system's (released when the process ends, however it ends).
    ///
    /// # Errors
    /// [`WalError::Write`] when the spool directory or its lock file cannot be created.
    pub fn try_lock_worker(&self) -> Result<Option<WorkerLock>, WalError> {
        create_dir(&self.dir)?;
        let path = self.dir.join(WORKER_LOCK);
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
            Ok(()) => Ok(Some(WorkerLock { _file: file })),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(source)) => Err(WalError::Write { path, source }),
        }
    }

    /// Whether a worker holds the lock now.
    ///
    /// # Errors
    /// As [`WalSpool::try_lock_worker`].
    pub fn worker_running(&self) -> Result<bool, WalError> {
        Ok(self.try_lock_worker()?.is_none())
    }

    /// Runs the worker under `lock` until no WAL file in `pg_wal` waits: every file
    /// PostgreSQL marked ready (`pg_wal/archive_status/{name}.ready`) and this spool has no
    /// acknowledgement for is pushed through `archive`, at most `process_max` at a time
    /// (1 or more), and acknowledged (`.ok` or `.error`) as each push returns. A file is
    /// pushed once per run: one whose push failed is tried again by the run PostgreSQL's
    /// retry starts.
    /// Acknowledgements of files no longer ready are removed (PostgreSQL is done with them).
    ///
    /// The lock is taken by the caller ([`WalSpool::try_lock_worker`]) and released when it
    /// is dropped after this returns.
    ///
    /// # Errors
    /// [`WalError::Read`] / [`WalError::Write`] when `pg_wal/archive_status` or the spool
    /// cannot be read or written. A failed push is not an error of the run: it is in
    /// [`WorkerReport::failed`] and its `.error` acknowledgement.
    pub async fn run_worker(
        &self,
        _lock: &WorkerLock,
        archive: &WalArchive,
        pg_wal: &Path,
        process_max: usize,
    ) -> Result<WorkerReport, WalError> {
        let mut report = WorkerReport::default();
        // Files this run already answered (pushed or failed): not again in this run. After
        // `wal-push` took an acknowledgement, PostgreSQL marks the file done a moment later;
        // until then it still looks ready.
        let mut answered = BTreeSet::new();
        loop {
            let ready = ready_files(pg_wal)?;
            report.cleaned += self.clean(&ready)?;
            let todo: Vec<String> = ready
                .into_iter()
                .filter(|n| !answered.contains(n))
                .filter(|n| {
                    !self.ack_path(n, OK_SUFFIX).exists()
                        && !self.ack_path(n, ERROR_SUFFIX).exists()
                })
                .collect();
            if todo.is_empty() {
                return Ok(report);
            }
            let mut pushes = futures::stream::iter(todo)
                .map(|name| async move {
                    let path = pg_wal.join(&name);
                    let meta = fs::metadata(&path);
                    let pushed = archive.push(&path).await;
                    (name, meta, pushed)
                })
                .buffered(process_max.max(1));
            while let Some((name, meta, pushed)) = pushes.next().await {
                match (pushed, meta) {
                    (Ok(r), Ok(meta)) => {
                        let record = AckRecord {
                            size: meta.len(),
                            modified: modified_ns(&meta).unwrap_or(0),
                            sha256: r.sha256.clone(),
                        };
                        self.write_ack(&name, OK_SUFFIX, &record.render())?;
                        report.pushed.push(r);
                        answered.insert(name);
                    }
                    (Err(e), _) => {
                        let message = e.to_string().replace(['\n', '\r'], " ");
                        self.write_ack(&name, ERROR_SUFFIX, &message)?;
                        report.failed.push(format!("{name}: {message}"));
                        answered.insert(name);
                    }
                    (Ok(_), Err(source)) => {
                        let e = WalError::Read {
                            path: pg_wal.join(&name),
                            source,
                        };
                        let message = e.to_string();
                        self.write_ack(&name, ERROR_SUFFIX, &message)?;
                        report.failed.push(format!("{name}: {message}"));
                        answered.insert(name);
                    }
                }
            }
        }
    }

    /// Removes acknowledgements of files that are no longer ready; returns how many.
    fn clean(&self, ready: &BTreeSet<String>) -> Result<usize, WalError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(source) => {
                return Err(WalError::Read {
                    path: self.dir.clone(),
                    source,
                });
            }
        };
        let mut cleaned = 0;
        for entry in entries.flatten() {
            let file = entry.file_name();
            let Some(file) = file.to_str() else { continue };
            let Some(name) = file
                .strip_suffix(OK_SUFFIX)
                .or_else(|| file.strip_suffix(ERROR_SUFFIX))
            else {
                continue;
            };
            if WalFileName::parse(name).is_ok() && !ready.contains(name) {
                remove(&entry.path())?;
                cleaned += 1;
            }
        }
        Ok(cleaned)
    }

    /// Writes an acknowledgement atomically (a temporary file renamed into place), so a
    /// reader never sees half of one. Not synced: a lost acknowledgement only means the file
    /// is pushed again, which is idempotent.
    fn write_ack(&self, name: &str, suffix: &str, text: &str) -> Result<(), WalError> {
        create_dir(&self.dir)?;
        let target = self.ack_path(name, suffix);
        let err = |path: &Path| {
            let path = path.to_owned();
            move |source| WalError::Write { path, source }
        };
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
            .tempfile_in(&self.dir)
            .map_err(err(&self.dir))?;
        tmp.write_all(text.as_bytes()).map_err(err(tmp.path()))?;
        tmp.persist(&target).map_err(|e| err(&target)(e.error))?;
        Ok(())
    }
}

/// The parsed body of an `.ok` file.
struct AckRecord {
    size: u64,
    modified: u128,
    sha256: String,
}

impl AckRecord {
    fn render(&self) -> String {
        format!(
            "{ACK_MAGIC}\nsize={}\nmodified={}\nsha256={}\n",
            self.size, self.modified, self.sha256
        )
    }

    fn parse(text: &str) -> Option<Self> {
        let mut lines = text.lines();
        if lines.next()? != ACK_MAGIC {
            return None;
        }
        let (mut size, mut modified, mut sha256) = (None, None, None);
        for line in lines {
            match line.split_once('=')? {
                ("size", v) => size = v.parse().ok(),
                ("modified", v) => modified = v.parse().ok(),
                ("sha256", v) if v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    sha256 = Some(v.to_owned());
                }
                _ => return None,
            }
        }
        Some(Self {
            size: size?,
            modified: modified?,
            sha256: sha256?,
        })
    }
}

/// The WAL files PostgreSQL marked ready in `pg_wal/archive_status`, sorted by name.
fn ready_files(pg_wal: &Path) -> Result<BTreeSet<String>, WalError> {
    let status = pg_wal.join("archive_status");
    let entries = fs::read_dir(&status).map_err(|source| WalError::Read {
        path: status.clone(),
        source,
    })?;
    let mut out = BTreeSet::new();
    for entry in entries.flatten() {
        if let Some(name) = entry
            .file_name()
            .to_str()
            .and_then(|f| f.strip_suffix(".ready"))
            && WalFileName::parse(name).is_ok()
        {
            out.insert(name.to_owned());
        }
    }
    Ok(out)
}

/// The modification time in nanoseconds since the Unix epoch (UTC), when the platform has it.
fn modified_ns(meta: &fs::Metadata) -> Option<u128> {
    meta.modified()
        .ok()?
        .duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_nanos())
}

/// Reads at most [`ACK_MAX_BYTES`] of `path`; `None` when it does not exist.
fn read_capped(path: &Path) -> Result<Option<String>, WalError> {
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(WalError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    let mut text = String::new();
    file.take(ACK_MAX_BYTES)
        .read_to_string(&mut text)
        .map_err(|source| WalError::Read {
            path: path.to_owned(),
            source,
        })?;
    Ok(Some(text))
}

fn remove(path: &Path) -> Result<(), WalError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(WalError::Write {
            path: path.to_owned(),
            source,
        }),
    }
}

fn create_dir(dir: &Path) -> Result<(), WalError> {
    fs::create_dir_all(dir).map_err(|source| WalError::Write {
        path: dir.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use wst_core::{AuditLog, Cipher, MemorySink, Repository, SinkExt};
    use wst_crypto::{AeadCipher, Key};

    use super::*;

    struct Fixture {
        dir: tempfile::TempDir,
        archive: WalArchive,
        sink: Arc<MemorySink>,
        pg_wal: PathBuf,
        spool: WalSpool,
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let cipher: Arc<dyn Cipher> = Arc::new(
            AeadCipher::builder()
                .recipient_key(Key::from_bytes([5; 32]))
                .build()
                .unwrap(),
        );
        let sink = Arc::new(MemorySink::new("local-c"));
        let audit = AuditLog::new(dir.path().join("audit.jsonl"), "test");
        Repository::builder(Arc::clone(&cipher), audit.clone())
            .sink(sink.clone())
            .build()
            .unwrap()
            .init()
            .await
            .unwrap();
        let archive = WalArchive::builder(cipher)
            .sync_sink(sink.clone())
            .audit(audit)
            .build()
            .unwrap();
        let pg_wal = dir.path().join("pg_wal");
        fs::create_dir_all(pg_wal.join("archive_status")).unwrap();
        let spool = WalSpool::new(dir.path().join("spool"));
        Fixture {
            dir,
            archive,
            sink,
            pg_wal,
            spool,
        }
    }

    impl Fixture {
        /// A WAL file PostgreSQL marked ready.
        fn ready(&self, name: &str, fill: u8) -> PathBuf {
            let p = self.pg_wal.join(name);
            let mut data = vec![0u8; 64 * 1024];
            for (i, b) in data.iter_mut().enumerate().step_by(37) {
                *b = fill.wrapping_add(i as u8);
            }
            fs::write(&p, data).unwrap();
            fs::write(
                self.pg_wal
                    .join("archive_status")
                    .join(format!("{name}.ready")),
                "",
            )
            .unwrap();
            p
        }

        async fn work(&self) -> WorkerReport {
            let lock = self
                .spool
                .try_lock_worker()
                .unwrap()
                .expect("no other worker");
            self.spool
                .run_worker(&lock, &self.archive, &self.pg_wal, 2)
                .await
                .unwrap()
        }
    }

    fn wal(n: &str) -> WalFileName {
        WalFileName::parse(n).unwrap()
    }

    const A: &str = "000000010000000000000003";
    const B: &str = "000000010000000000000004";
    const C: &str = "000000010000000000000005";

    #[tokio::test]
    async fn the_worker_pushes_every_ready_file_and_acknowledges_it_after_the_push() {
        let f = fixture().await;
        let paths: Vec<PathBuf> = [A, B, C].iter().map(|n| f.ready(n, 1)).collect();
        let r = f.work().await;
        assert!(r.failed.is_empty(), "{r:?}");
        let mut pushed: Vec<&str> = r.pushed.iter().map(|p| p.name.as_str()).collect();
        pushed.sort_unstable();
        assert_eq!(pushed, [A, B, C]);
        // Each acknowledged file is on the synchronous sink, with the acknowledged digest.
        for (n, p) in [A, B, C].iter().zip(&paths) {
            let object = f.archive.object_name(&wal(n));
            assert!(f.sink.exists(&object).await.unwrap(), "{n} on the sink");
            let stored = f.archive.check_copy(&*f.sink, &wal(n)).await.unwrap();
            match f.spool.take_ack(&wal(n), p).unwrap() {
                Some(Ack::Archived { sha256 }) => assert_eq!(sha256, stored.sha256),
                other => panic!("{n}: {other:?}"),
            }
            // Taken once.
            assert_eq!(f.spool.take_ack(&wal(n), p).unwrap(), None);
            // PostgreSQL marks it done.
            let status = f.pg_wal.join("archive_status");
            fs::rename(
                status.join(format!("{n}.ready")),
                status.join(format!("{n}.done")),
            )
            .unwrap();
        }
        // Nothing left: a second run pushes nothing.
        assert!(f.work().await.pushed.is_empty());
    }

    #[tokio::test]
    async fn a_file_rewritten_after_its_acknowledgement_is_not_answered_from_it() {
        let f = fixture().await;
        let p = f.ready(A, 1);
        f.work().await;
        // The segment is recycled and rewritten under the same name (another size here).
        fs::write(&p, vec![9u8; 1024]).unwrap();
        assert_eq!(f.spool.take_ack(&wal(A), &p).unwrap(), None);
        assert!(
            !f.spool.ack_path(A, OK_SUFFIX).exists(),
            "the stale one is gone"
        );
    }

    #[tokio::test]
    async fn a_failed_push_is_acknowledged_as_failed_and_not_retried_in_the_same_run() {
        let f = fixture().await;
        // The sink already holds other content under A's name: the push is a conflict.
        let p = f.ready(A, 1);
        f.work().await;
        f.spool.take_ack(&wal(A), &p).unwrap();
        let p = f.ready(A, 2);
        f.ready(B, 3);
        let r = f.work().await;
        assert_eq!(r.failed.len(), 1, "{r:?}");
        assert!(r.failed[0].starts_with(A), "{r:?}");
        assert_eq!(r.pushed.len(), 1, "B still goes: {r:?}");
        match f.spool.take_ack(&wal(A), &p).unwrap() {
            Some(Ack::Failed(m)) => assert!(m.contains(A), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn acknowledgements_of_files_no_longer_ready_are_removed_and_one_worker_runs() {
        let f = fixture().await;
        let p = f.ready(A, 1);
        f.work().await;
        // PostgreSQL archived A by other means (it is done with it): the ack goes.
        fs::rename(
            f.pg_wal.join("archive_status").join(format!("{A}.ready")),
            f.pg_wal.join("archive_status").join(format!("{A}.done")),
        )
        .unwrap();
        f.ready(B, 2);
        let r = f.work().await;
        assert_eq!(r.cleaned, 1);
        assert_eq!(f.spool.take_ack(&wal(A), &p).unwrap(), None);

        let held = f.spool.try_lock_worker().unwrap().expect("free");
        assert!(f.spool.worker_running().unwrap());
        assert!(f.spool.try_lock_worker().unwrap().is_none());
        drop(held);
        assert!(!f.spool.worker_running().unwrap());
        assert!(f.dir.path().exists());
    }
}
