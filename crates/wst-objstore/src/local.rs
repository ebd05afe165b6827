//! The durable local-disk sink: the doctrine's layer 2 (local C:) and layer 3 (mirror D:).

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use futures::{FutureExt as _, TryStreamExt};
use tempfile::TempPath;
use tokio_util::io::ReaderStream;
use wst_core::{ByteStream, Medium, ObjectMeta, Sink, SinkInfo, SinkUpload, validate_object_name};

use crate::error::Error;

/// Default age after which an abandoned temporary upload file is removed: 24 hours.
///
/// The age is measured from the temporary file's last modification, which every write of a live
/// upload refreshes, so only uploads that have been idle this long are removed.
pub const DEFAULT_STALE_TEMP_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// Default size of the chunks [`Sink::get`] yields: 256 KiB.
pub const DEFAULT_READ_CHUNK_SIZE: usize = 256 * 1024;

/// Default size of the write buffer of one upload: 1 MiB. Smaller writes are gathered up to this
/// size before they go to the operating system; larger ones are written directly.
pub const DEFAULT_WRITE_BUFFER_SIZE: usize = 1024 * 1024;

/// Longest object-name part kept in a temporary file's name, in bytes, so that
/// `.{name}.{random}.tmp` stays within the 255-byte file-name limit of common file systems.
const TEMP_NAME_MAX: usize = 200;

/// Configures and opens a [`LocalDiskSink`]; created by [`LocalDiskSink::builder`].
#[derive(Debug, Clone)]
pub struct LocalDiskSinkBuilder {
    name: String,
    root: PathBuf,
    offsite: bool,
    create_dir: bool,
    stale_temp_age: Duration,
    read_chunk_size: usize,
    write_buffer_size: usize,
}

impl LocalDiskSinkBuilder {
    /// Marks the sink as offsite (in another physical location than the production system), for
    /// the 3-2-1 check. Default: `false` (a local or attached disk is onsite).
    #[must_use]
    pub fn offsite(mut self, offsite: bool) -> Self {
        self.offsite = offsite;
        self
    }

    /// Whether [`open`](Self::open) creates a missing root directory (with its parents).
    ///
    /// Default: `false`, so that an unmounted mirror disk is an error instead of silently
    /// filling the directory the mount point leaves behind on the system disk.
    #[must_use]
    pub fn create_dir(mut self, create: bool) -> Self {
        self.create_dir = create;
        self
    }

    /// Age (since last modification) after which an abandoned temporary upload file is removed
    /// by [`open`](Self::open) and [`Sink::list`]. Default: [`DEFAULT_STALE_TEMP_AGE`].
    ///
    /// Choose it longer than the longest pause a live upload can have between two writes; a
    /// value of zero removes every temporary file, including those of uploads still running in
    /// another process, and is meant for tests.
    #[must_use]
    pub fn stale_temp_age(mut self, age: Duration) -> Self {
        self.stale_temp_age = age;
        self
    }

    /// Size in bytes of the chunks [`Sink::get`] yields (at least 1). Default:
    /// [`DEFAULT_READ_CHUNK_SIZE`]. Memory used by a download is bounded by about this size.
    #[must_use]
    pub fn read_chunk_size(mut self, bytes: usize) -> Self {
        self.read_chunk_size = bytes.max(1);
        self
    }

    /// Size in bytes of an upload's write buffer. Default: [`DEFAULT_WRITE_BUFFER_SIZE`].
    /// Memory used by an upload is bounded by this size plus the chunk being written.
    #[must_use]
    pub fn write_buffer_size(mut self, bytes: usize) -> Self {
        self.write_buffer_size = bytes;
        self
    }

    /// Checks the root directory (creating it if [`create_dir`](Self::create_dir) is set) and
    /// removes stale temporary files left by crashed uploads.
    ///
    /// # Errors
    /// [`wst_core::Error::Config`] for an empty sink name; [`wst_core::Error::Sink`] (operation
    /// `open`, source [`Error::Root`] or [`Error::Io`]) when the root is missing, not a
    /// directory, or cannot be read or created.
    pub async fn open(self) -> wst_core::Result<LocalDiskSink> {
        if self.name.trim().is_empty() {
            return Err(wst_core::Error::Config(
                "a local-disk sink needs a non-empty name (e.g. `local-c`)".to_owned(),
            ));
        }
        let root = std::path::absolute(&self.root).map_err(|e| {
            Error::io("resolving sink root", &self.root, e).into_sink_error(&self.name, "open", "")
        })?;
        let sink = LocalDiskSink {
            info: SinkInfo {
                name: self.name,
                medium: Medium::Disk,
                offsite: self.offsite,
                location: root.display().to_string(),
            },
            root,
            stale_temp_age: self.stale_temp_age,
            read_chunk_size: self.read_chunk_size,
            write_buffer_size: self.write_buffer_size,
        };
        let root = sink.root.clone();
        let create = self.create_dir;
        let age = sink.stale_temp_age;
        blocking(&root.clone(), move || {
            prepare_root(&root, create)?;
            scan(&root, "", age).map(drop)
        })
        .await
        .map_err(|e| e.into_sink_error(&sink.info.name, "open", ""))?;
        Ok(sink)
    }
}

/// A sink storing each object as one file in a directory: the doctrine's layer 2 (local C:) and,
/// as a second instance on another disk, layer 3 (the D: mirror).
///
/// # Behaviour
/// - **Atomic publish.** [`Sink::put`] writes to a temporary file `.{name}.{random}.tmp` in the
///   same directory; [`SinkUpload::complete`] flushes it, `fsync`s the file, renames it over the
///   final name and then `fsync`s the directory (Unix), so after `complete` returns the object
///   survives a power loss. A partial upload is never visible under its final name: temporary
///   names start with `.`, which object names cannot ([`validate_object_name`]) and
///   [`Sink::list`] ignores.
/// - **Abandoned uploads.** Dropping an upload without completing it removes its temporary file
///   (best effort) and never renames it. Temporary files left by a crash are removed by
///   [`LocalDiskSinkBuilder::open`] and [`Sink::list`] once they have not been modified for
///   [`LocalDiskSinkBuilder::stale_temp_age`] (default 24 hours).
/// - **Write-behind.** While an upload is written, every [`WRITE_BEHIND_BYTES`] the data
///   written so far is flushed to the device in the background (`fdatasync` on a second handle;
///   `FlushFileBuffers` on Windows), one flush at a time, the way borg's `SyncFile` spreads
///   writeback over a run: the final `fsync` then waits for the last few megabytes instead of
///   the whole artifact. A failed background flush fails the upload at `complete` (an I/O
///   error reported to one `fsync` may not be reported again).
/// - **Streaming.** [`Sink::get`] yields chunks of
///   [`LocalDiskSinkBuilder::read_chunk_size`] bytes; an upload buffers at most
///   [`LocalDiskSinkBuilder::write_buffer_size`] bytes plus the chunk being written. Writes run
///   on tokio's blocking pool and return once the data is handed to the operating system.
/// - **Permissions.** On Unix files are created with mode `0600` (owner only); on Windows they
///   inherit the directory's ACL.
/// - **Windows.** The rename uses `MoveFileExW` with `MOVEFILE_REPLACE_EXISTING` (through the
///   standard library), which replaces an existing object; Windows has no directory `fsync`, so
///   the rename's durability rests on NTFS's metadata journal.
/// - Only plain files directly in the root are objects; sub-directories and names that are not
///   valid object names (including non-UTF-8 names) are ignored by [`Sink::list`].
///
/// Medium: [`Medium::Disk`]; offsite: as configured (default `false`).
#[derive(Debug)]
pub struct LocalDiskSink {
    info: SinkInfo,
    root: PathBuf,
    stale_temp_age: Duration,
    read_chunk_size: usize,
    write_buffer_size: usize,
}

impl LocalDiskSink {
    /// Starts configuring a sink called `name` (e.g. `"local-c"`, `"mirror-d"`) storing objects
    /// in the directory `root`. Finish with [`LocalDiskSinkBuilder::open`].
    pub fn builder(name: impl Into<String>, root: impl Into<PathBuf>) -> LocalDiskSinkBuilder {
        LocalDiskSinkBuilder {
            name: name.into(),
            root: root.into(),
            offsite: false,
            create_dir: false,
            stale_temp_age: DEFAULT_STALE_TEMP_AGE,
            read_chunk_size: DEFAULT_READ_CHUNK_SIZE,
            write_buffer_size: DEFAULT_WRITE_BUFFER_SIZE,
        }
    }

    /// Opens an onsite sink on the existing directory `root` with the default settings; the same
    /// as `LocalDiskSink::builder(name, root).open()`.
    ///
    /// # Errors
    /// As [`LocalDiskSinkBuilder::open`].
    pub async fn open(name: impl Into<String>, root: impl Into<PathBuf>) -> wst_core::Result<Self> {
        Self::builder(name, root).open().await
    }

    /// The absolute root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Removes temporary files of abandoned uploads that have not been modified for the
    /// configured stale age, and returns how many were removed. [`Sink::list`] and
    /// [`LocalDiskSinkBuilder::open`] do the same implicitly.
    ///
    /// # Errors
    /// [`wst_core::Error::Sink`] (operation `list`) when the directory cannot be read.
    pub async fn remove_stale_temp_files(&self) -> wst_core::Result<usize> {
        let root = self.root.clone();
        let age = self.stale_temp_age;
        blocking(&self.root, move || scan(&root, "", age).map(|(_, n)| n))
            .await
            .map_err(|e| e.into_sink_error(&self.info.name, "list", ""))
    }

    fn path_of(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    fn not_found(&self, name: &str) -> wst_core::Error {
        wst_core::Error::NotFound {
            sink: self.info.name.clone(),
            name: name.to_owned(),
        }
    }
}

#[async_trait]
impl Sink for LocalDiskSink {
    fn info(&self) -> &SinkInfo {
        &self.info
    }

    async fn put(&self, name: &str) -> wst_core::Result<Box<dyn SinkUpload>> {
        validate_object_name(name)?;
        let root = self.root.clone();
        let prefix = format!(".{}.", truncate_at_char(name, TEMP_NAME_MAX));
        let (file, temp) = blocking(&self.root, move || {
            tempfile::Builder::new()
                .prefix(&prefix)
                .suffix(".tmp")
                .rand_bytes(8)
                .tempfile_in(&root)
                .map(tempfile::NamedTempFile::into_parts)
                .map_err(|e| Error::io("creating temporary upload file in", &root, e))
        })
        .await
        .map_err(|e| e.into_sink_error(&self.info.name, "put", name))?;
        tracing::debug!(sink = %self.info.name, name, temp = %temp.display(), "upload started");
        Ok(Box::new(LocalDiskUpload {
            sink: self.info.name.clone(),
            name: name.to_owned(),
            root: self.root.clone(),
            file: Some(file),
            temp: Some(temp),
            pending: Vec::new(),
            buffer_size: self.write_buffer_size,
            written: 0,
            flushed_at: 0,
            flush: None,
        }))
    }

    async fn get(&self, name: &str) -> wst_core::Result<ByteStream> {
        validate_object_name(name)?;
        let path = self.path_of(name);
        let file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(self.not_found(name)),
            Err(e) => {
                return Err(Error::io("opening", &path, e).into_sink_error(
                    &self.info.name,
                    "get",
                    name,
                ));
            }
        };
        let meta = file.metadata().await.map_err(|e| {
            Error::io("reading metadata of", &path, e).into_sink_error(&self.info.name, "get", name)
        })?;
        if !meta.is_file() {
            return Err(self.not_found(name));
        }
        let sink = self.info.name.clone();
        let name = name.to_owned();
        let stream = ReaderStream::with_capacity(file, self.read_chunk_size)
            .map_err(move |e| Error::io("reading", &path, e).into_sink_error(&sink, "get", &name));
        Ok(Box::pin(stream))
    }

    async fn head(&self, name: &str) -> wst_core::Result<ObjectMeta> {
        validate_object_name(name)?;
        let path = self.path_of(name);
        match tokio::fs::metadata(&path).await {
            Ok(m) if m.is_file() => object_meta(name, &m)
                .map_err(|e| Error::io("reading mtime of", &path, e))
                .map_err(|e| e.into_sink_error(&self.info.name, "head", name)),
            Ok(_) => Err(self.not_found(name)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(self.not_found(name)),
            Err(e) => Err(Error::io("reading metadata of", &path, e).into_sink_error(
                &self.info.name,
                "head",
                name,
            )),
        }
    }

    async fn list(&self, prefix: &str) -> wst_core::Result<Vec<ObjectMeta>> {
        let root = self.root.clone();
        let prefix_owned = prefix.to_owned();
        let age = self.stale_temp_age;
        blocking(&self.root, move || {
            scan(&root, &prefix_owned, age).map(|(objects, _)| objects)
        })
        .await
        .map_err(|e| e.into_sink_error(&self.info.name, "list", prefix))
    }

    async fn delete(&self, name: &str) -> wst_core::Result<()> {
        validate_object_name(name)?;
        let path = self.path_of(name);
        let root = self.root.clone();
        blocking(&self.root, move || match fs::remove_file(&path) {
            Ok(()) => sync_dir(&root).map_err(|e| Error::io("syncing directory", &root, e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("removing", &path, e)),
        })
        .await
        .map_err(|e| e.into_sink_error(&self.info.name, "delete", name))?;
        tracing::debug!(sink = %self.info.name, name, "deleted");
        Ok(())
    }

    /// Create-if-absent: the data goes to a synced temporary file, which is then published
    /// without replacing (`link` + `unlink` on Unix, `MoveFileExW` without
    /// `MOVEFILE_REPLACE_EXISTING` on Windows, through `tempfile`'s `persist_noclobber`), so of
    /// two concurrent creates exactly one succeeds, even from two hosts on one network share
    /// that honours these calls.
    async fn create(&self, name: &str, data: Bytes) -> wst_core::Result<ObjectMeta> {
        validate_object_name(name)?;
        let root = self.root.clone();
        let prefix = format!(".{}.", truncate_at_char(name, TEMP_NAME_MAX));
        let final_path = self.path_of(name);
        let owned = name.to_owned();
        let result = blocking(&self.root, move || {
            let (mut file, temp) = tempfile::Builder::new()
                .prefix(&prefix)
                .suffix(".tmp")
                .rand_bytes(8)
                .tempfile_in(&root)
                .map(tempfile::NamedTempFile::into_parts)
                .map_err(|e| Error::io("creating temporary upload file in", &root, e))?;
            file.write_all(&data)
                .and_then(|()| file.sync_all())
                .map_err(|e| Error::io("writing and syncing temporary file", &*temp, e))?;
            drop(file);
            match temp.persist_noclobber(&final_path) {
                Ok(()) => {}
                Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => return Ok(None),
                Err(e) => {
                    return Err(Error::io(
                        "publishing temporary file without replacing as",
                        &final_path,
                        e.error,
                    ));
                }
            }
            sync_dir(&root).map_err(|e| Error::io("syncing directory", &root, e))?;
            let m = fs::metadata(&final_path)
                .map_err(|e| Error::io("reading metadata of", &final_path, e))?;
            object_meta(&owned, &m)
                .map(Some)
                .map_err(|e| Error::io("reading mtime of", &final_path, e))
        })
        .await
        .map_err(|e| e.into_sink_error(&self.info.name, "put", name))?;
        result.ok_or_else(|| wst_core::Error::AlreadyExists {
            sink: self.info.name.clone(),
            name: name.to_owned(),
        })
    }
}

/// Bytes written between two background flushes of an upload (see "Write-behind" on
/// [`LocalDiskSink`]): 32 MiB.
pub const WRITE_BEHIND_BYTES: u64 = 32 << 20;

/// One in-progress upload to a [`LocalDiskSink`]: a temporary file in the sink's directory.
///
/// Dropping it closes the file first and then removes the temporary file (`TempPath`'s drop),
/// in field order.
struct LocalDiskUpload {
    sink: String,
    name: String,
    root: PathBuf,
    /// `None` after a write was cancelled or failed: the upload is then poisoned.
    file: Option<fs::File>,
    /// Removed on drop unless persisted.
    temp: Option<TempPath>,
    pending: Vec<u8>,
    buffer_size: usize,
    written: u64,
    /// Bytes handed to the file when the last background flush started.
    flushed_at: u64,
    /// The background flush in flight, if any.
    flush: Option<tokio::task::JoinHandle<io::Result<()>>>,
}

impl LocalDiskUpload {
    /// Starts a background flush of what was written so far when [`WRITE_BEHIND_BYTES`] more
    /// were written since the last one and none is in flight; returns the error of a finished
    /// one.
    fn write_behind(&mut self, file: &fs::File) -> wst_core::Result<()> {
        if self.flush.as_ref().is_some_and(|f| !f.is_finished()) {
            return Ok(());
        }
        if let Some(done) = self.flush.take() {
            let path = self.temp_path();
            let result = done.now_or_never().ok_or_else(|| {
                self.err(Error::io(
                    "flushing",
                    &path,
                    io::Error::other("flush task lost"),
                ))
            })?;
            result
                .map_err(|e| {
                    self.err(Error::Task {
                        path: path.clone(),
                        detail: e.to_string(),
                    })
                })?
                .map_err(|e| self.err(Error::io("flushing temporary file", &path, e)))?;
        }
        let on_disk = self.written - self.pending.len() as u64;
        if on_disk - self.flushed_at < WRITE_BEHIND_BYTES {
            return Ok(());
        }
        let handle = file
            .try_clone()
            .map_err(|e| self.err(Error::io("opening a second handle to", self.temp_path(), e)))?;
        self.flushed_at = on_disk;
        self.flush = Some(tokio::task::spawn_blocking(move || handle.sync_data()));
        Ok(())
    }

    /// Waits for the background flush in flight, if any, and returns its error.
    async fn finish_flush(&mut self) -> wst_core::Result<()> {
        let Some(flush) = self.flush.take() else {
            return Ok(());
        };
        let path = self.temp_path();
        flush
            .await
            .map_err(|e| {
                self.err(Error::Task {
                    path: path.clone(),
                    detail: e.to_string(),
                })
            })?
            .map_err(|e| self.err(Error::io("flushing temporary file", &path, e)))
    }

    fn err(&self, e: Error) -> wst_core::Error {
        e.into_sink_error(&self.sink, "put", &self.name)
    }

    fn poisoned(&self) -> wst_core::Error {
        self.err(Error::UploadPoisoned {
            name: self.name.clone(),
        })
    }

    fn temp_path(&self) -> PathBuf {
        self.temp
            .as_ref()
            .map_or_else(|| self.root.clone(), |t| t.to_path_buf())
    }
}

#[async_trait]
impl SinkUpload for LocalDiskUpload {
    async fn write(&mut self, data: Bytes) -> wst_core::Result<()> {
        let Some(mut file) = self.file.take() else {
            return Err(self.poisoned());
        };
        if self.pending.len() + data.len() <= self.buffer_size {
            if self.pending.capacity() == 0 {
                self.pending.reserve_exact(self.buffer_size);
            }
            self.pending.extend_from_slice(&data);
            self.written += data.len() as u64;
            self.file = Some(file);
            return Ok(());
        }
        let mut pending = std::mem::take(&mut self.pending);
        let path = self.temp_path();
        let len = data.len() as u64;
        let (file, pending, result) = blocking(&path, move || {
            let r = file
                .write_all(&pending)
                .and_then(|()| file.write_all(&data));
            pending.clear();
            Ok((file, pending, r))
        })
        .await
        .map_err(|e| self.err(e))?;
        result.map_err(|e| self.err(Error::io("writing temporary file", &path, e)))?;
        self.pending = pending;
        self.written += len;
        self.write_behind(&file)?;
        self.file = Some(file);
        Ok(())
    }

    async fn complete(mut self: Box<Self>) -> wst_core::Result<ObjectMeta> {
        if self.file.is_none() || self.temp.is_none() {
            return Err(self.poisoned());
        }
        self.finish_flush().await?;
        let (Some(mut file), Some(temp)) = (self.file.take(), self.temp.take()) else {
            return Err(self.poisoned());
        };
        let pending = std::mem::take(&mut self.pending);
        let root = self.root.clone();
        let name = self.name.clone();
        let final_path = root.join(&name);
        let meta = blocking(&final_path.clone(), move || {
            file.write_all(&pending)
                .and_then(|()| file.sync_all())
                .map_err(|e| Error::io("writing and syncing temporary file", &*temp, e))?;
            drop(file);
            // On failure the returned TempPath is dropped here, removing the temporary file.
            temp.persist(&final_path).map_err(|e| {
                Error::io(
                    "renaming temporary file into place as",
                    &final_path,
                    e.error,
                )
            })?;
            if let Err(e) = sync_dir(&root) {
                // The contract says a failed complete leaves nothing under the final name.
                let _ = fs::remove_file(&final_path);
                return Err(Error::io("syncing directory", &root, e));
            }
            let m = fs::metadata(&final_path)
                .map_err(|e| Error::io("reading metadata of", &final_path, e))?;
            object_meta(&name, &m).map_err(|e| Error::io("reading mtime of", &final_path, e))
        })
        .await
        .map_err(|e| self.err(e))?;
        tracing::debug!(sink = %self.sink, name = %self.name, bytes = self.written, "upload completed");
        Ok(meta)
    }

    async fn abort(mut self: Box<Self>) -> wst_core::Result<()> {
        drop(self.file.take());
        let Some(temp) = self.temp.take() else {
            return Ok(());
        };
        let path = temp.to_path_buf();
        blocking(&path.clone(), move || {
            temp.close()
                .map_err(|e| Error::io("removing temporary file", &path, e))
        })
        .await
        .map_err(|e| self.err(e))?;
        tracing::debug!(sink = %self.sink, name = %self.name, "upload aborted");
        Ok(())
    }
}

/// Runs `f` on tokio's blocking pool; `path` names the work in a [`Error::Task`].
async fn blocking<T, F>(path: &Path, f: F) -> Result<T, Error>
where
    F: FnOnce() -> Result<T, Error> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Task {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?
}

/// Checks (or creates) the root directory.
fn prepare_root(root: &Path, create: bool) -> Result<(), Error> {
    match fs::metadata(root) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::Root {
            path: root.to_path_buf(),
            reason: "it exists but is not a directory".to_owned(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
            fs::create_dir_all(root).map_err(|e| Error::io("creating sink root directory", root, e))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::Root {
            path: root.to_path_buf(),
            reason: "it does not exist".to_owned(),
        }),
        Err(e) => Err(Error::io("reading metadata of sink root", root, e)),
    }
}

/// Whether a directory entry is a temporary upload file of this sink.
#[allow(
    clippy::case_sensitive_file_extension_comparisons,
    reason = "only names this sink created itself, always with a lowercase `.tmp`, are temporary"
)]
fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

/// One pass over the root: collects the objects whose name starts with `prefix` (sorted by
/// name) and removes temporary files idle for longer than `stale_age`. Returns the objects and
/// the number of temporary files removed.
fn scan(root: &Path, prefix: &str, stale_age: Duration) -> Result<(Vec<ObjectMeta>, usize), Error> {
    let now = SystemTime::now();
    let mut objects = Vec::new();
    let mut removed = 0;
    let entries = fs::read_dir(root).map_err(|e| Error::io("listing", root, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("listing", root, e))?;
        let Ok(name) = entry.file_name().into_string() else {
            tracing::debug!(path = %entry.path().display(), "ignoring non-UTF-8 file name");
            continue;
        };
        let meta = match entry.metadata() {
            Ok(m) => m,
            // Removed between read_dir and metadata (a concurrent delete or rename).
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("reading metadata of", entry.path(), e)),
        };
        if !meta.is_file() {
            continue;
        }
        if is_temp_name(&name) {
            let idle = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .unwrap_or_default();
            if idle >= stale_age {
                match fs::remove_file(entry.path()) {
                    Ok(()) => {
                        removed += 1;
                        tracing::info!(
                            path = %entry.path().display(),
                            idle_secs = idle.as_secs(),
                            "removed stale temporary upload file"
                        );
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => tracing::warn!(
                        path = %entry.path().display(),
                        error = %e,
                        "cannot remove stale temporary upload file"
                    ),
                }
            }
            continue;
        }
        if !name.starts_with(prefix) || validate_object_name(&name).is_err() {
            continue;
        }
        let m = object_meta(&name, &meta)
            .map_err(|e| Error::io("reading mtime of", entry.path(), e))?;
        objects.push(m);
    }
    objects.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((objects, removed))
}

fn object_meta(name: &str, meta: &fs::Metadata) -> io::Result<ObjectMeta> {
    let modified = meta.modified()?;
    let last_modified = jiff::Timestamp::try_from(modified).map_err(io::Error::other)?;
    Ok(ObjectMeta {
        name: name.to_owned(),
        size: meta.len(),
        last_modified,
    })
}

/// Makes a rename or removal in `dir` durable.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Windows has no directory `fsync`; NTFS journals the rename itself.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

fn truncate_at_char(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_recognised() {
        assert!(is_temp_name(
            ".wst-backup-20261121-053804.tar.zst.wst.AbCd1234.tmp"
        ));
        assert!(!is_temp_name("wst-backup-20261121-053804.tar.zst.wst"));
        assert!(!is_temp_name(".DS_Store"));
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate_at_char("abc", 10), "abc");
        assert_eq!(truncate_at_char("aé", 2), "a");
        assert_eq!(truncate_at_char("aéb", 3), "aé");
    }
}
