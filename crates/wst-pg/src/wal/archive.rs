//! [`WalArchive`]: `wal-push`, `wal-fetch` and the queue drain over wst-core's sinks and cipher.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use futures::StreamExt;
use serde::Serialize;
use wst_core::{
    AuditEvent, AuditLog, Check, Cipher, Clock, EvidenceKey, MARKER_OBJECT, RepositoryMarker, Sink,
    SinkExt,
};

use crate::wal::error::WalError;
use crate::wal::format::{
    self, MAX_WAL_OBJECT_BYTES, ObjectReader, ReadFailure, WalHeader, compress_file, seal,
};
use crate::wal::name::{WalFileName, validate_prefix};
use crate::wal::queue::{Enqueued, QueueStatus, WalQueue};

/// The default zstd level of WAL objects: 3 (zstd's default; measured in
/// `examples/wal_push_bench.rs`).
pub const DEFAULT_WAL_ZSTD_LEVEL: i32 = 3;

/// Most bytes of a repository marker read from a sink.
const MARKER_MAX_BYTES: u64 = 64 * 1024;

/// Continuous WAL archiving into a wst repository's sinks (issue 16; seeds/002 "WAL archiving"):
/// [`WalArchive::push`] for `archive_command`, [`WalArchive::fetch`] for `restore_command`,
/// [`WalArchive::drain`] for the asynchronous sinks' queue.
///
/// Built from the repository's cipher, its sinks (each either *synchronous*: a push succeeds
/// only once the file is durable there, or *asynchronous*: reached through the bounded
/// [`WalQueue`]), a [`Clock`] and an [`AuditLog`]. Every object is the format of
/// `docs/WAL.md`: zstd frames after an authenticated header naming the file, sealed
/// `wst-aead-v1` like every artifact.
///
/// ```no_run
/// # async fn demo(cipher: std::sync::Arc<dyn wst_core::Cipher>,
/// #               local: std::sync::Arc<dyn wst_core::Sink>,
/// #               s3: std::sync::Arc<dyn wst_core::Sink>) -> Result<(), wst_pg::wal::WalError> {
/// use wst_pg::wal::{WalArchive, WalFileName, WalQueue};
///
/// let archive = WalArchive::builder(cipher)
///     .prefix("wst-backup")
///     .sync_sink(local)                      // durable here before success
///     .async_sink(s3)                        // through the queue
///     .queue(WalQueue::new("/var/lib/wst/wal-queue", 4 << 30))
///     .audit(wst_core::AuditLog::new("/var/lib/wst/audit.jsonl", "postgres"))
///     .build()?;
/// archive.push("pg_wal/000000010000000000000003".as_ref()).await?;   // archive_command
/// archive.drain().await?;                                             // later, in the background
/// let name = WalFileName::parse("000000010000000000000003")?;
/// archive.fetch(&name, "pg_wal/RECOVERYXLOG".as_ref()).await?;       // restore_command
/// # Ok(()) }
/// ```
///
/// # Behaviour
/// - **Durable before success.** `push` returns `Ok` only when every synchronous sink holds the
///   file (newly written, or found with the same content). A new copy is written
///   create-if-absent and atomically ([`Sink::create`]): nothing partial is ever visible under
///   the final name, and of two writers of one name exactly one wins (the other then compares).
/// - **Idempotent.** A copy already on a sink is opened and compared (size and SHA-256 of the
///   content): the same content succeeds without rewriting it; different content is
///   [`WalError::Conflict`], audited, and nothing is overwritten.
/// - **Bounded queue.** For each asynchronous sink the sealed object is queued durably on local
///   disk; when that sink's queue would exceed its bound, the copy is dropped for that sink —
///   an audited (`replicate` event, the drop in `failed`) decision logged at error level and
///   listed in [`PushReport::dropped`], never silent. The push still succeeds: a dead offsite
///   store must not stop archiving and fill `pg_wal`.
/// - **Sink identity.** Before writing to a sink the archive checks its repository marker
///   (`docs/EVIDENCE.md` §6) with the cipher's evidence keys, once per sink and instance: an
///   unmounted disk or a sink of another repository is never written
///   ([`WalArchiveBuilder::require_sink_markers`]).
/// - **Fetch authenticates first.** `fetch` reads the first sink that has a good copy: the
///   object is authenticated, its header must name the file asked for, its content's size and
///   SHA-256 must match; only then is the temporary file beside `dest` renamed to `dest`. A
///   bad copy is named ([`FetchReport::skipped`], a warning event, an audited `verification`
///   event) and the next sink is tried.
/// - **Bounded reads.** No object over [`MAX_WAL_OBJECT_BYTES`] and no content over
///   [`format::MAX_WAL_FILE_BYTES`] (1 GiB) is accepted; zstd's window is capped at 128 MiB.
/// - **Memory.** A push holds the compressed file and its ciphertext (about twice the
///   compressed size); a fetch streams (a few chunks).
/// - **Time** comes from the [`Clock`] (the header's `archived`), never the wall clock.
#[derive(Debug)]
pub struct WalArchive {
    cipher: Arc<dyn Cipher>,
    prefix: String,
    sinks: Vec<(Arc<dyn Sink>, bool)>,
    queue: Option<WalQueue>,
    clock: Clock,
    audit: Option<AuditLog>,
    zstd_level: i32,
    require_markers: bool,
    keys: Vec<EvidenceKey>,
    /// Sinks whose marker was found good, with the repository id it names.
    identified: Mutex<BTreeMap<String, String>>,
}

/// Configures a [`WalArchive`]; see [`WalArchive::builder`].
#[derive(Debug)]
pub struct WalArchiveBuilder {
    cipher: Arc<dyn Cipher>,
    prefix: String,
    sinks: Vec<(Arc<dyn Sink>, bool)>,
    queue: Option<WalQueue>,
    clock: Clock,
    audit: Option<AuditLog>,
    zstd_level: i32,
    require_markers: bool,
}

/// Where one push put the file, per sink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PushReport {
    /// The WAL file name.
    pub name: String,
    /// The object name on every sink.
    pub object: String,
    /// The file's size, bytes.
    pub size: u64,
    /// The object's size (compressed, sealed), bytes.
    pub object_size: u64,
    /// The file's SHA-256 (hex).
    pub sha256: String,
    /// Synchronous sinks the object was written to.
    pub stored: Vec<String>,
    /// Synchronous sinks that already held the same content (a repeated push).
    pub already_archived: Vec<String>,
    /// Asynchronous sinks the object was queued for.
    pub queued: Vec<String>,
    /// Asynchronous sinks the object was *not* queued for, with the audited reason.
    pub dropped: Vec<DroppedCopy>,
}

/// A copy dropped for an asynchronous sink (its queue was full or could not be written).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DroppedCopy {
    /// The sink that will miss this WAL file until it is copied there by other means.
    pub sink: String,
    /// Why, as audited.
    pub reason: String,
}

/// Where a fetch found its copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct FetchReport {
    /// The WAL file name.
    pub name: String,
    /// The sink the good copy came from.
    pub sink: String,
    /// Bytes written to the destination.
    pub size: u64,
    /// Their SHA-256 (hex), as the object's header states and the content matched.
    pub sha256: String,
    /// Sinks tried first that did not deliver a good copy, `sink: problem` (bad copies are
    /// also audited).
    pub skipped: Vec<String>,
}

/// What one drain of the queue did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DrainReport {
    /// Another drainer held the queue's lock, so this one did nothing.
    pub busy: bool,
    /// One entry per asynchronous sink.
    pub sinks: Vec<SinkDrain>,
}

/// What one drain did for one asynchronous sink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SinkDrain {
    /// The sink.
    pub sink: String,
    /// WAL objects copied there.
    pub copied: Vec<String>,
    /// Queued objects the sink already held with the same content.
    pub already_present: Vec<String>,
    /// `object: error` for objects that could not be copied (they stay queued).
    pub failed: Vec<String>,
    /// Why the drain of this sink stopped early (unreachable, not identified), if it did.
    pub stopped: Option<String>,
    /// The backlog afterwards (replication lag).
    pub remaining: QueueStatus,
}

impl DrainReport {
    /// Whether every queued object reached its sink (no failure, nothing stopped, nothing left).
    pub fn complete(&self) -> bool {
        !self.busy
            && self
                .sinks
                .iter()
                .all(|s| s.failed.is_empty() && s.stopped.is_none() && s.remaining.objects == 0)
    }
}

/// The outcome of placing an object on one sink.
enum Placed {
    Stored,
    AlreadyArchived,
}

/// A synchronous sink's part in a push: placed, failed (PostgreSQL retries), or an integrity
/// finding that stops the push as it is.
enum SyncOutcome {
    Placed(Placed),
    Failed(String),
    Fatal(WalError),
}

impl WalArchive {
    /// Starts configuring an archive sealing with `cipher` (which also opens: give it every
    /// key that may have sealed WAL, like the repository's).
    pub fn builder(cipher: Arc<dyn Cipher>) -> WalArchiveBuilder {
        WalArchiveBuilder {
            cipher,
            prefix: wst_core::DEFAULT_PREFIX.to_owned(),
            sinks: Vec::new(),
            queue: None,
            clock: Clock::system(),
            audit: None,
            zstd_level: DEFAULT_WAL_ZSTD_LEVEL,
            require_markers: true,
        }
    }

    /// The repository prefix the object names start with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The object name of `name` on every sink (`docs/WAL.md` §1).
    pub fn object_name(&self, name: &WalFileName) -> String {
        name.object_name(&self.prefix)
    }

    /// The queue, when asynchronous sinks are configured.
    pub fn queue(&self) -> Option<&WalQueue> {
        self.queue.as_ref()
    }

    fn sync_sinks(&self) -> impl Iterator<Item = &Arc<dyn Sink>> {
        self.sinks.iter().filter(|(_, s)| *s).map(|(k, _)| k)
    }

    fn async_sinks(&self) -> impl Iterator<Item = &Arc<dyn Sink>> {
        self.sinks.iter().filter(|(_, s)| !*s).map(|(k, _)| k)
    }

    /// Archives the WAL file at `path` (PostgreSQL's `%p`; its file name must be a WAL file
    /// name): compresses and seals it once, makes it durable on every synchronous sink, queues
    /// it for the asynchronous ones.
    ///
    /// # Errors
    /// [`WalError::InvalidName`] when the file name is not WAL; [`WalError::Read`] /
    /// [`WalError::TooLarge`] for the local file; [`WalError::Conflict`] when a synchronous
    /// sink holds different content under this name; [`WalError::NotDurable`] when a
    /// synchronous sink failed (PostgreSQL retries; sinks that succeeded are recognised then);
    /// [`WalError::Audit`] when a drop could not be audited.
    pub async fn push(&self, path: &Path) -> Result<PushReport, WalError> {
        let file_name =
            path.file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| WalError::InvalidName {
                    name: crate::wal::quote(&path.to_string_lossy()),
                    reason: "the path has no UTF-8 file name".into(),
                })?;
        let name = WalFileName::parse(file_name)?;
        let level = self.zstd_level;
        let owned = path.to_owned();
        let compressed = blocking(move || compress_file(&owned, level)).await?;
        let header = WalHeader::new(&name, compressed.size, compressed.sha256, self.clock.now());
        let cipher = Arc::clone(&self.cipher);
        let sealed_header = header.clone();
        let data =
            Bytes::from(blocking(move || seal(&*cipher, &sealed_header, &compressed.data)).await?);
        self.push_sealed(&name, &header, data).await
    }

    /// Places an already sealed object (`data`, whose header is `header`) on every sink.
    async fn push_sealed(
        &self,
        name: &WalFileName,
        header: &WalHeader,
        data: Bytes,
    ) -> Result<PushReport, WalError> {
        let object = self.object_name(name);
        let mut report = PushReport {
            name: name.to_string(),
            object: object.clone(),
            size: header.size,
            object_size: data.len() as u64,
            sha256: header.sha256.clone(),
            stored: Vec::new(),
            already_archived: Vec::new(),
            queued: Vec::new(),
            dropped: Vec::new(),
        };
        let placed = futures::future::join_all(self.sync_sinks().map(|sink| {
            let data = data.clone();
            let object = &object;
            async move {
                let outcome = match self.identify(&**sink).await {
                    Ok(()) => {
                        match self
                            .place(&**sink, name, object, &header.sha256, header.size, data)
                            .await
                        {
                            Ok(p) => SyncOutcome::Placed(p),
                            // The operator's to resolve: returned as they are.
                            Err(
                                e @ (WalError::Conflict { .. }
                                | WalError::ExistingCopyUnreadable { .. }),
                            ) => SyncOutcome::Fatal(e),
                            Err(e) => SyncOutcome::Failed(e.to_string()),
                        }
                    }
                    Err(problem) => SyncOutcome::Failed(format!("not used: {problem}")),
                };
                (sink.info().name.clone(), outcome)
            }
        }))
        .await;
        let mut failures = Vec::new();
        for (sink, outcome) in placed {
            match outcome {
                SyncOutcome::Placed(Placed::Stored) => report.stored.push(sink),
                SyncOutcome::Placed(Placed::AlreadyArchived) => report.already_archived.push(sink),
                SyncOutcome::Fatal(e) => return Err(e),
                SyncOutcome::Failed(problem) => failures.push(format!("sink `{sink}`: {problem}")),
            }
        }
        if !failures.is_empty() {
            tracing::debug!(wal = %name, failures = ?failures, "WAL file not durable on every synchronous sink");
            return Err(WalError::NotDurable {
                name: name.to_string(),
                failures,
            });
        }
        if let Some(queue) = &self.queue {
            for sink in self.async_sinks() {
                let sink_name = sink.info().name.clone();
                let (queue_, sink_, object_, data_) = (
                    queue.clone(),
                    sink_name.clone(),
                    object.clone(),
                    data.clone(),
                );
                let outcome = blocking(move || queue_.enqueue(&sink_, &object_, &data_)).await;
                let reason = match outcome {
                    Ok(Enqueued::Queued) => {
                        report.queued.push(sink_name);
                        continue;
                    }
                    Ok(Enqueued::OverLimit { queued }) => format!(
                        "not queued for sink `{sink_name}`: its queue in `{}` holds {queued} bytes \
                         and this object ({} bytes) would exceed the bound of {} bytes; the sink \
                         is unreachable or too slow. Repair it; this WAL file stays on the \
                         synchronous sinks under the same object name, to be copied from there",
                        queue.dir().display(),
                        data.len(),
                        queue.max_bytes()
                    ),
                    Err(e) => format!("not queued for sink `{sink_name}`: the queue failed: {e}"),
                };
                self.drop_copy(&object, &sink_name, &reason)?;
                report.dropped.push(DroppedCopy {
                    sink: sink_name,
                    reason,
                });
            }
        }
        tracing::debug!(wal = %name, stored = ?report.stored, already = ?report.already_archived,
            queued = ?report.queued, "WAL file archived");
        Ok(report)
    }

    /// Audits and logs the decision to drop `object`'s copy for `sink`.
    fn drop_copy(&self, object: &str, sink: &str, reason: &str) -> Result<(), WalError> {
        tracing::error!(
            object,
            sink,
            reason,
            "WAL copy DROPPED for an asynchronous sink"
        );
        let event = AuditEvent::Replicate {
            from: "wal-queue".to_owned(),
            to: sink.to_owned(),
            copied: Vec::new(),
            failed: vec![format!("{object}: dropped: {reason}")],
        };
        match &self.audit {
            Some(log) => log
                .append(event)
                .map(drop)
                .map_err(|source| WalError::Audit {
                    detail: format!("dropping {object} for sink `{sink}`"),
                    source,
                }),
            None => Err(WalError::Config(
                "an archive with asynchronous sinks needs an audit log".into(),
            )),
        }
    }

    /// Audits a bad copy (best effort: a fetch is not stopped by the audit log).
    fn audit_bad_copy(&self, object: &str, sink: &str, check: &str, detail: &str) {
        if let Some(log) = &self.audit {
            let event = AuditEvent::Verification {
                artifact: object.to_owned(),
                sink: sink.to_owned(),
                passed: false,
                checks: vec![Check::fail(check, detail)],
            };
            if let Err(e) = log.append(event) {
                tracing::error!(object, sink, error = %e, "cannot audit a bad WAL copy");
            }
        }
    }

    /// Creates `object` on `sink` from `data` unless the sink already holds it
    /// (create-if-absent, [`Sink::create`]: atomic where the sink allows, as wst's disk and
    /// object-store sinks do); an existing copy — found first, or created concurrently by
    /// another writer — is opened and its content compared.
    async fn place(
        &self,
        sink: &dyn Sink,
        name: &WalFileName,
        object: &str,
        sha256: &str,
        size: u64,
        data: Bytes,
    ) -> Result<Placed, WalError> {
        match sink.head(object).await {
            Ok(meta) => {
                self.compare_existing(sink, name, object, meta.size, sha256, size)
                    .await
            }
            Err(wst_core::Error::NotFound { .. }) => match sink.create(object, data).await {
                Ok(_) => Ok(Placed::Stored),
                // Another writer won the name between the check and the create.
                Err(wst_core::Error::AlreadyExists { .. }) => {
                    let meta = sink.head(object).await?;
                    self.compare_existing(sink, name, object, meta.size, sha256, size)
                        .await
                }
                Err(e) => Err(e.into()),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// Opens the copy of `object` already on `sink` (`listed` bytes) and compares its content
    /// with `size` bytes of SHA-256 `sha256`: the same is [`Placed::AlreadyArchived`]; other
    /// content or a copy that does not open is refused, audited, never overwritten.
    async fn compare_existing(
        &self,
        sink: &dyn Sink,
        name: &WalFileName,
        object: &str,
        listed: u64,
        sha256: &str,
        size: u64,
    ) -> Result<Placed, WalError> {
        let sink_name = &sink.info().name;
        let unreadable = |detail: String| {
            self.audit_bad_copy(object, sink_name, "wal_copy_authentic", &detail);
            let e = WalError::ExistingCopyUnreadable {
                name: name.to_string(),
                sink: sink_name.clone(),
                object: object.to_owned(),
                detail,
            };
            tracing::debug!(object, sink = %sink_name, "{e}");
            e
        };
        if listed > MAX_WAL_OBJECT_BYTES {
            return Err(unreadable(format!(
                "it is {listed} bytes, larger than any WAL object can be ({MAX_WAL_OBJECT_BYTES})"
            )));
        }
        match self.read_copy(sink, name, object, io::sink()).await {
            Ok((h, _)) if h.sha256 == sha256 && h.size == size => {
                tracing::info!(object, sink = %sink_name, "WAL file already archived with the same content");
                Ok(Placed::AlreadyArchived)
            }
            Ok((h, _)) => {
                let e = WalError::Conflict {
                    name: name.to_string(),
                    sink: sink_name.clone(),
                    archived_size: h.size,
                    archived_sha256: h.sha256,
                    size,
                    sha256: sha256.to_owned(),
                };
                tracing::debug!(object, sink = %sink_name, "{e}");
                self.audit_bad_copy(object, sink_name, "wal_same_content", &e.to_string());
                Err(e)
            }
            Err(ReadFailure::Integrity(detail)) => Err(unreadable(detail)),
            Err(ReadFailure::Sink(e)) => Err(e.into()),
            Err(ReadFailure::Local(source)) => Err(WalError::Write {
                path: PathBuf::from("(discarded output)"),
                source,
            }),
        }
    }

    /// Streams `object` from `sink` through the [`ObjectReader`] into `out`.
    async fn read_copy<W: Write>(
        &self,
        sink: &dyn Sink,
        name: &WalFileName,
        object: &str,
        out: W,
    ) -> Result<(WalHeader, W), ReadFailure> {
        let mut stream = sink.get(object).await.map_err(ReadFailure::Sink)?;
        let mut reader = ObjectReader::new(&*self.cipher, name, out)?;
        while let Some(chunk) = stream.next().await {
            reader.update(&chunk.map_err(ReadFailure::Sink)?)?;
        }
        reader.finish()
    }

    /// Checks one copy of `name` on `sink` completely (authenticated, named, size and SHA-256)
    /// without writing it anywhere; returns its header. For verification and status.
    ///
    /// # Errors
    /// [`WalError::NotFound`] when the sink lacks it; [`WalError::NoGoodCopy`] naming the
    /// problem when the copy is bad or the sink cannot be read.
    pub async fn check_copy(
        &self,
        sink: &dyn Sink,
        name: &WalFileName,
    ) -> Result<WalHeader, WalError> {
        let object = self.object_name(name);
        let sink_name = sink.info().name.clone();
        match self.read_copy(sink, name, &object, io::sink()).await {
            Ok((h, _)) => Ok(h),
            Err(ReadFailure::Sink(wst_core::Error::NotFound { .. })) => Err(WalError::NotFound {
                name: name.to_string(),
                sinks: vec![sink_name],
            }),
            Err(f) => Err(WalError::NoGoodCopy {
                name: name.to_string(),
                problems: vec![format!("sink `{sink_name}`: {}", describe(&f))],
            }),
        }
    }

    /// Restores the WAL file `name` to `dest` (PostgreSQL's `%f` and `%p`) from the first sink,
    /// in configured order, with a good copy. The content goes to a temporary file beside
    /// `dest` (`.{dest name}.….wst-partial`) and is renamed to `dest` only after the whole
    /// object authenticated and matched its header; a bad copy is skipped, named (warning,
    /// audit) and the next sink tried. `dest` is replaced if it exists. Not `fsync`ed:
    /// PostgreSQL renames and syncs restored files itself.
    ///
    /// # Errors
    /// [`WalError::NotFound`] when every sink answered "no such object" (exit status 1 for
    /// `restore_command`, quietly); [`WalError::NoGoodCopy`] when copies were bad or sinks
    /// unreachable; [`WalError::Write`] when the local write failed.
    pub async fn fetch(&self, name: &WalFileName, dest: &Path) -> Result<FetchReport, WalError> {
        let object = self.object_name(name);
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let dest_name = dest
            .file_name()
            .map_or_else(|| "wal".to_owned(), |n| n.to_string_lossy().into_owned());
        let mut problems = Vec::new();
        let mut missing = Vec::new();
        for (sink, _) in &self.sinks {
            let sink_name = sink.info().name.clone();
            let out = LazyTemp::new(&dir, &dest_name);
            match self.read_copy(&**sink, name, &object, out).await {
                Ok((header, out)) => {
                    let tmp = out.finish().map_err(|source| WalError::Write {
                        path: dir.clone(),
                        source,
                    })?;
                    // An empty file is still a file: create it when no byte was written.
                    let tmp = match tmp {
                        Some(t) => t,
                        None => tempfile::Builder::new()
                            .prefix(&format!(".{dest_name}."))
                            .suffix(".wst-partial")
                            .tempfile_in(&dir)
                            .map_err(|source| WalError::Write {
                                path: dir.clone(),
                                source,
                            })?,
                    };
                    tmp.persist(dest).map_err(|e| WalError::Write {
                        path: dest.to_owned(),
                        source: e.error,
                    })?;
                    return Ok(FetchReport {
                        name: name.to_string(),
                        sink: sink_name,
                        size: header.size,
                        sha256: header.sha256,
                        skipped: problems,
                    });
                }
                Err(ReadFailure::Sink(wst_core::Error::NotFound { .. })) => {
                    missing.push(sink_name);
                }
                Err(ReadFailure::Local(source)) => {
                    return Err(WalError::Write { path: dir, source });
                }
                Err(f) => {
                    if let ReadFailure::Integrity(detail) = &f {
                        self.audit_bad_copy(&object, &sink_name, "wal_copy_authentic", detail);
                        tracing::warn!(object, sink = %sink_name, problem = %detail,
                            "bad WAL copy skipped; trying the next sink");
                    } else {
                        tracing::warn!(object, sink = %sink_name, problem = %describe(&f),
                            "cannot read WAL copy; trying the next sink");
                    }
                    problems.push(format!("sink `{sink_name}`: {}", describe(&f)));
                }
            }
        }
        if problems.is_empty() {
            return Err(WalError::NotFound {
                name: name.to_string(),
                sinks: missing,
            });
        }
        problems.extend(missing.iter().map(|s| format!("sink `{s}`: not found")));
        Err(WalError::NoGoodCopy {
            name: name.to_string(),
            problems,
        })
    }

    /// Copies the queued objects to their asynchronous sinks, oldest first, and removes each
    /// from the queue once its sink holds it (written, or found with the same content). A
    /// sink that fails stops its own drain (its objects stay queued, in order); other sinks go
    /// on. One drainer runs at a time: when another holds the queue's lock, returns at once
    /// with [`DrainReport::busy`].
    ///
    /// After each round the lock is released and the queue looked at again: a push that
    /// queued an object while this round ran found the lock held and left its object to this
    /// drainer, so a new round starts while a sink that did not stop has objects this drain
    /// has not yet failed on. (Without it such an object waited for the next push.)
    ///
    /// # Errors
    /// [`WalError::Read`] / [`WalError::Write`] when the queue directory cannot be used.
    pub async fn drain(&self) -> Result<DrainReport, WalError> {
        let Some(queue) = &self.queue else {
            return Ok(DrainReport::default());
        };
        let mut report: Option<DrainReport> = None;
        loop {
            let Some(lock) = queue.try_lock()? else {
                // Another drainer took over after our last round: it sees what is left.
                return Ok(report.unwrap_or(DrainReport {
                    busy: true,
                    sinks: Vec::new(),
                }));
            };
            let round = self.drain_round(queue).await?;
            drop(lock);
            let mut again = false;
            for s in &round.sinks {
                if s.stopped.is_some() {
                    continue;
                }
                let failed: BTreeSet<&str> = s
                    .failed
                    .iter()
                    .filter_map(|f| f.split(": ").next())
                    .collect();
                again |= queue
                    .items(&s.sink)?
                    .iter()
                    .any(|(i, _)| !failed.contains(i.object.as_str()));
            }
            report = Some(match report.take() {
                None => round,
                Some(mut total) => {
                    for (t, r) in total.sinks.iter_mut().zip(round.sinks) {
                        t.copied.extend(r.copied);
                        t.already_present.extend(r.already_present);
                        t.failed = r.failed;
                        t.stopped = r.stopped;
                        t.remaining = r.remaining;
                    }
                    total
                }
            });
            if !again {
                return Ok(report.unwrap_or_default());
            }
        }
    }

    /// One pass over every asynchronous sink's queue, under the drain lock.
    async fn drain_round(&self, queue: &WalQueue) -> Result<DrainReport, WalError> {
        let mut report = DrainReport::default();
        for sink in self.async_sinks() {
            let sink_name = sink.info().name.clone();
            let mut s = SinkDrain {
                sink: sink_name.clone(),
                copied: Vec::new(),
                already_present: Vec::new(),
                failed: Vec::new(),
                stopped: None,
                remaining: queue.status(&sink_name, |_| None)?,
            };
            if s.remaining.objects > 0 {
                match self.identify(&**sink).await {
                    Ok(()) => self.drain_sink(queue, &**sink, &mut s).await?,
                    Err(problem) => s.stopped = Some(format!("sink not used: {problem}")),
                }
            }
            s.remaining = self.queue_status_of(queue, &sink_name)?;
            if let Some(why) = &s.stopped {
                tracing::error!(sink = %sink_name, reason = %why, backlog_objects = s.remaining.objects,
                    backlog_bytes = s.remaining.bytes, "WAL queue drain stopped");
            }
            report.sinks.push(s);
        }
        Ok(report)
    }

    async fn drain_sink(
        &self,
        queue: &WalQueue,
        sink: &dyn Sink,
        s: &mut SinkDrain,
    ) -> Result<(), WalError> {
        for (item, size) in queue.items(&s.sink)? {
            let Some(wal) = WalFileName::from_object_name(&item.object, &self.prefix) else {
                tracing::warn!(file = %item.path.display(), "not a WAL object of this repository; left in the queue");
                continue;
            };
            if size > MAX_WAL_OBJECT_BYTES {
                s.failed.push(format!(
                    "{}: queued file is {size} bytes, larger than any WAL object",
                    item.object
                ));
                continue;
            }
            let path = item.path.clone();
            let data = match blocking(move || {
                std::fs::read(&path).map_err(|source| WalError::Read { path, source })
            })
            .await
            {
                Ok(d) => Bytes::from(d),
                // Taken by a concurrent push's replacement or already removed: next time.
                Err(e) => {
                    s.failed.push(format!("{}: {e}", item.object));
                    continue;
                }
            };
            // The queued copy is ours, but a disk can damage it: never upload a bad object.
            let cipher = Arc::clone(&self.cipher);
            let (w, d) = (wal.clone(), data.clone());
            let header = match blocking(move || {
                Ok(format::open_bytes(&*cipher, &w, &d, io::sink()))
            })
            .await?
            {
                Ok((h, _)) => h,
                Err(f) => {
                    let detail = format!("the queued copy is damaged: {}", describe(&f));
                    tracing::error!(object = %item.object, sink = %s.sink, %detail, "WAL queue");
                    self.audit_bad_copy(&item.object, "wal-queue", "wal_copy_authentic", &detail);
                    s.failed.push(format!("{}: {detail}", item.object));
                    continue;
                }
            };
            match self
                .place(sink, &wal, &item.object, &header.sha256, header.size, data)
                .await
            {
                Ok(placed) => {
                    item.remove()?;
                    match placed {
                        Placed::Stored => s.copied.push(item.object),
                        Placed::AlreadyArchived => s.already_present.push(item.object),
                    }
                }
                Err(e @ (WalError::Conflict { .. } | WalError::ExistingCopyUnreadable { .. })) => {
                    s.failed.push(format!("{}: {e}", item.object));
                }
                Err(e) => {
                    s.failed.push(format!("{}: {e}", item.object));
                    s.stopped = Some(e.to_string());
                    break;
                }
            }
        }
        Ok(())
    }

    fn queue_status_of(&self, queue: &WalQueue, sink: &str) -> Result<QueueStatus, WalError> {
        let prefix = self.prefix.clone();
        queue.status(sink, move |o| {
            WalFileName::from_object_name(o, &prefix).map(|n| n.to_string())
        })
    }

    /// The backlog (replication lag) of every asynchronous sink: objects, bytes, the oldest
    /// waiting WAL file. Local only: cheap enough for every status run.
    ///
    /// # Errors
    /// [`WalError::Read`] when the queue directory cannot be read.
    pub fn queue_status(&self) -> Result<Vec<QueueStatus>, WalError> {
        let Some(queue) = &self.queue else {
            return Ok(Vec::new());
        };
        self.async_sinks()
            .map(|s| self.queue_status_of(queue, &s.info().name))
            .collect()
    }

    /// Checks `sink`'s repository marker once per instance (see the type's "Sink identity").
    async fn identify(&self, sink: &dyn Sink) -> Result<(), String> {
        if !self.require_markers {
            return Ok(());
        }
        let name = sink.info().name.clone();
        if self
            .identified
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(&name)
        {
            return Ok(());
        }
        let raw = match sink.get_bytes(MARKER_OBJECT, MARKER_MAX_BYTES).await {
            Ok(b) => b,
            Err(wst_core::Error::NotFound { .. }) => {
                return Err(
                    "it holds no repository marker: the disk may not be mounted, the \
                            path or bucket may be wrong, or the sink is new (then run `wst init`)"
                        .into(),
                );
            }
            Err(e) => return Err(format!("its repository marker cannot be read: {e}")),
        };
        let marker: RepositoryMarker = serde_json::from_slice(&raw)
            .map_err(|e| format!("its repository marker does not parse: {e}"))?;
        if !marker.authentic(&self.keys) {
            return Err(format!(
                "its repository marker is not sealed with this repository's key (it names key \
                 {}): another repository, or a wrong key",
                crate::wal::quote(&marker.key)
            ));
        }
        if marker.sink != name {
            return Err(format!(
                "it holds the marker of sink `{}`: two sinks point at one location, or a disk is \
                 mounted at the wrong path",
                crate::wal::quote(&marker.sink)
            ));
        }
        let mut ids = self
            .identified
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(other) = ids.values().find(|id| **id != marker.repository_id) {
            return Err(format!(
                "it belongs to repository {}, the other sinks to {other}",
                marker.repository_id
            ));
        }
        ids.insert(name, marker.repository_id);
        Ok(())
    }
}

fn describe(f: &ReadFailure) -> String {
    match f {
        ReadFailure::Integrity(d) => format!("bad copy: {d}"),
        ReadFailure::Sink(e) => format!("cannot read: {e}"),
        ReadFailure::Local(e) => format!("local write failed: {e}"),
    }
}

/// Runs blocking work (compression, sealing, file I/O) off the async executor.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, WalError> + Send + 'static,
) -> Result<T, WalError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(WalError::Config(format!("blocking task cancelled: {e}"))),
    }
}

/// A temporary file beside the destination, created on the first byte (a missing object
/// creates nothing in `pg_wal`); removed on drop unless persisted.
struct LazyTemp {
    dir: PathBuf,
    prefix: String,
    file: Option<io::BufWriter<tempfile::NamedTempFile>>,
}

impl LazyTemp {
    fn new(dir: &Path, dest_name: &str) -> Self {
        Self {
            dir: dir.to_owned(),
            prefix: format!(".{dest_name}."),
            file: None,
        }
    }

    fn finish(self) -> io::Result<Option<tempfile::NamedTempFile>> {
        self.file
            .map(|f| f.into_inner().map_err(io::IntoInnerError::into_error))
            .transpose()
    }
}

impl Write for LazyTemp {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.file.is_none() {
            let t = tempfile::Builder::new()
                .prefix(&self.prefix)
                .suffix(".wst-partial")
                .tempfile_in(&self.dir)?;
            self.file = Some(io::BufWriter::with_capacity(1 << 20, t));
        }
        self.file.as_mut().expect("created above").write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().map_or(Ok(()), Write::flush)
    }
}

impl WalArchiveBuilder {
    /// The repository prefix (default `wst-backup`, `wst_core::DEFAULT_PREFIX`); objects are
    /// `{prefix}.wal.{file}.zst.wst`.
    #[must_use]
    pub fn prefix(mut self, prefix: &str) -> Self {
        prefix.clone_into(&mut self.prefix);
        self
    }

    /// Adds a synchronous sink: a push succeeds only once the file is durable there. Fetch
    /// tries sinks in the order added.
    #[must_use]
    pub fn sync_sink(mut self, sink: Arc<dyn Sink>) -> Self {
        self.sinks.push((sink, true));
        self
    }

    /// Adds an asynchronous sink, reached through the queue ([`WalArchive::drain`]).
    #[must_use]
    pub fn async_sink(mut self, sink: Arc<dyn Sink>) -> Self {
        self.sinks.push((sink, false));
        self
    }

    /// The bounded local queue for the asynchronous sinks (required when there are any).
    #[must_use]
    pub fn queue(mut self, queue: WalQueue) -> Self {
        self.queue = Some(queue);
        self
    }

    /// The clock stamping each header's `archived` (default [`Clock::system`]).
    #[must_use]
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The audit log for decisions (dropped queue copies) and integrity findings (conflicts,
    /// bad copies). Required with asynchronous sinks.
    #[must_use]
    pub fn audit(mut self, audit: AuditLog) -> Self {
        self.audit = Some(audit);
        self
    }

    /// The zstd level, 1–19 (default [`DEFAULT_WAL_ZSTD_LEVEL`]).
    #[must_use]
    pub fn zstd_level(mut self, level: i32) -> Self {
        self.zstd_level = level;
        self
    }

    /// Whether a sink must carry this repository's authentic marker (`wst init`) before it is
    /// written (default `true`). Turn it off only when the caller checks sink identity itself
    /// (the repository does, with `Repository::check_sinks`).
    #[must_use]
    pub fn require_sink_markers(mut self, require: bool) -> Self {
        self.require_markers = require;
        self
    }

    /// Checks and builds.
    ///
    /// # Errors
    /// [`WalError::Config`] without a synchronous sink, with two sinks of one name, with
    /// asynchronous sinks but no queue or no audit log, with a zstd level outside 1–19, or
    /// when markers are required but the cipher derives no evidence key;
    /// [`WalError::InvalidName`] for a bad prefix.
    pub fn build(self) -> Result<WalArchive, WalError> {
        validate_prefix(&self.prefix)?;
        if !self.sinks.iter().any(|(_, sync)| *sync) {
            return Err(WalError::Config(
                "at least one synchronous sink is needed: a push must be durable somewhere before \
                 PostgreSQL may recycle the file"
                    .into(),
            ));
        }
        let mut names: Vec<&str> = self
            .sinks
            .iter()
            .map(|(s, _)| s.info().name.as_str())
            .collect();
        names.sort_unstable();
        if let Some(dup) = names.windows(2).find(|w| w[0] == w[1]).map(|w| w[0]) {
            return Err(WalError::Config(format!("two sinks are called `{dup}`")));
        }
        let has_async = self.sinks.iter().any(|(_, sync)| !*sync);
        if has_async && self.queue.is_none() {
            return Err(WalError::Config(
                "asynchronous sinks need a queue directory".into(),
            ));
        }
        if has_async && self.audit.is_none() {
            return Err(WalError::Config(
                "asynchronous sinks need an audit log: dropping a queued copy is an audited decision"
                    .into(),
            ));
        }
        if !(1..=19).contains(&self.zstd_level) {
            return Err(WalError::Config(format!(
                "zstd level {} is outside 1–19",
                self.zstd_level
            )));
        }
        let keys = self.cipher.evidence_keys();
        if self.require_markers && keys.is_empty() {
            return Err(WalError::Config(
                "the cipher derives no evidence key, so sink markers cannot be checked; use \
                 wst-crypto's AeadCipher with a key file"
                    .into(),
            ));
        }
        Ok(WalArchive {
            cipher: self.cipher,
            prefix: self.prefix,
            sinks: self.sinks,
            queue: self.queue,
            clock: self.clock,
            audit: self.audit,
            zstd_level: self.zstd_level,
            require_markers: self.require_markers,
            keys,
            identified: Mutex::new(BTreeMap::new()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wst_core::{MemorySink, Repository};
    use wst_crypto::{AeadCipher, Key};

    struct Fixture {
        dir: tempfile::TempDir,
        cipher: Arc<dyn Cipher>,
        a: Arc<MemorySink>,
        b: Arc<MemorySink>,
        audit: AuditLog,
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let cipher: Arc<dyn Cipher> = Arc::new(
            AeadCipher::builder()
                .recipient_key(Key::from_bytes([3; 32]))
                .build()
                .unwrap(),
        );
        let a = Arc::new(MemorySink::new("local-c"));
        let b = Arc::new(MemorySink::new("offsite"));
        let audit = AuditLog::new(dir.path().join("audit.jsonl"), "test");
        Repository::builder(Arc::clone(&cipher), audit.clone())
            .sink(a.clone())
            .sink(b.clone())
            .build()
            .unwrap()
            .init()
            .await
            .unwrap();
        Fixture {
            dir,
            cipher,
            a,
            b,
            audit,
        }
    }

    impl Fixture {
        fn archive(&self, max_queue: u64) -> WalArchive {
            WalArchive::builder(Arc::clone(&self.cipher))
                .sync_sink(self.a.clone())
                .async_sink(self.b.clone())
                .queue(WalQueue::new(self.dir.path().join("queue"), max_queue))
                .audit(self.audit.clone())
                .clock(Clock::manual("2026-12-01T00:00:00Z".parse().unwrap()))
                .build()
                .unwrap()
        }

        fn wal(&self, name: &str, fill: u8) -> PathBuf {
            let d = self.dir.path().join("pg_wal");
            std::fs::create_dir_all(&d).unwrap();
            let p = d.join(name);
            let mut data = vec![0u8; 256 * 1024];
            for (i, b) in data.iter_mut().enumerate().step_by(61) {
                *b = fill.wrapping_add(i as u8);
            }
            std::fs::write(&p, data).unwrap();
            p
        }

        fn events(&self) -> Vec<AuditEvent> {
            self.audit
                .records()
                .unwrap()
                .into_iter()
                .map(|r| r.event)
                .collect()
        }
    }

    const SEG: &str = "000000010000000000000003";

    #[tokio::test]
    async fn push_is_durable_idempotent_and_refuses_different_content() {
        let f = fixture().await;
        let archive = f.archive(1 << 30);
        let path = f.wal(SEG, 1);
        let r = archive.push(&path).await.unwrap();
        assert_eq!(r.stored, ["local-c"]);
        assert_eq!(r.queued, ["offsite"]);
        assert!(r.dropped.is_empty());
        let object = "wst-backup.wal.000000010000000000000003.zst.wst";
        assert_eq!(r.object, object);
        assert!(f.a.exists(object).await.unwrap());
        assert!(!f.b.exists(object).await.unwrap(), "only queued so far");
        assert_eq!(
            archive.queue_status().unwrap()[0].oldest.as_deref(),
            Some(SEG)
        );

        // Idempotent: the same content again.
        let again = archive.push(&path).await.unwrap();
        assert!(again.stored.is_empty());
        assert_eq!(again.already_archived, ["local-c"]);

        // Different content under the same name: refused, named, audited, nothing overwritten.
        let before = f.a.get_bytes(object, 1 << 30).await.unwrap();
        let other = f.wal(SEG, 2);
        let e = archive.push(&other).await.unwrap_err();
        assert!(matches!(e, WalError::Conflict { .. }), "{e}");
        let msg = e.to_string();
        assert!(msg.contains(SEG) && msg.contains("local-c"), "{msg}");
        assert_eq!(f.a.get_bytes(object, 1 << 30).await.unwrap(), before);
        assert!(f.events().iter().any(|e| matches!(e,
            AuditEvent::Verification { artifact, passed: false, checks, .. }
                if artifact == object && checks[0].name == "wal_same_content")));

        // The drain copies the queued object; the queue is empty afterwards.
        let d = archive.drain().await.unwrap();
        assert!(d.complete(), "{d:?}");
        assert_eq!(d.sinks[0].copied, [object]);
        // The same content (each push seals anew, so the ciphertexts differ).
        let name = WalFileName::parse(SEG).unwrap();
        assert_eq!(
            archive.check_copy(&*f.b, &name).await.unwrap().sha256,
            r.sha256
        );
        assert_eq!(archive.queue_status().unwrap()[0].objects, 0);
    }

    #[tokio::test]
    async fn fetch_authenticates_falls_back_and_names_the_bad_copy() {
        let f = fixture().await;
        let archive = f.archive(1 << 30);
        let path = f.wal(SEG, 5);
        let original = std::fs::read(&path).unwrap();
        archive.push(&path).await.unwrap();
        archive.drain().await.unwrap();
        let name = WalFileName::parse(SEG).unwrap();
        let restore = f.dir.path().join("restore");
        std::fs::create_dir(&restore).unwrap();
        let dest = restore.join("RECOVERYXLOG");

        let r = archive.fetch(&name, &dest).await.unwrap();
        assert_eq!(r.sink, "local-c");
        assert_eq!(std::fs::read(&dest).unwrap(), original);

        // A flipped byte on the first sink: the second's copy is used, the bad one named.
        let object = archive.object_name(&name);
        f.a.tamper(&object, |b| {
            let n = b.len() / 2;
            b[n] ^= 0x40;
        })
        .unwrap();
        std::fs::remove_file(&dest).unwrap();
        let r = archive.fetch(&name, &dest).await.unwrap();
        assert_eq!(r.sink, "offsite");
        assert_eq!(r.skipped.len(), 1);
        assert!(
            r.skipped[0].contains("local-c") && r.skipped[0].contains("bad copy"),
            "{r:?}"
        );
        assert_eq!(std::fs::read(&dest).unwrap(), original);
        assert!(f.events().iter().any(|e| matches!(e,
            AuditEvent::Verification { sink, passed: false, .. } if sink == "local-c")));

        // Both bad: no good copy, nothing written, no temporary file left.
        f.b.tamper(&object, |b| b.truncate(b.len() - 1)).unwrap();
        std::fs::remove_file(&dest).unwrap();
        let e = archive.fetch(&name, &dest).await.unwrap_err();
        assert!(
            matches!(e, WalError::NoGoodCopy { .. }) && !e.is_not_found(),
            "{e}"
        );
        assert!(e.to_string().contains("local-c") && e.to_string().contains("offsite"));
        assert_eq!(std::fs::read_dir(&restore).unwrap().count(), 0);

        // A missing file (PostgreSQL probing for a history file): not found, nothing written.
        let e = archive
            .fetch(&WalFileName::parse("00000002.history").unwrap(), &dest)
            .await
            .unwrap_err();
        assert!(e.is_not_found(), "{e}");
        assert_eq!(std::fs::read_dir(&restore).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn a_segment_swapped_for_another_name_is_refused() {
        let f = fixture().await;
        let archive = f.archive(1 << 30);
        archive.push(&f.wal(SEG, 1)).await.unwrap();
        let next = WalFileName::parse("000000010000000000000004").unwrap();
        let obj3 = archive.object_name(&WalFileName::parse(SEG).unwrap());
        let bytes = f.a.get_bytes(&obj3, 1 << 30).await.unwrap();
        f.a.put_bytes(&archive.object_name(&next), bytes)
            .await
            .unwrap();
        let dest = f.dir.path().join("x");
        let e = archive.fetch(&next, &dest).await.unwrap_err();
        assert!(e.to_string().contains("substituted"), "{e}");
        assert!(!dest.exists());
    }

    /// A sink whose first `head` of a WAL object misses it, as if another writer created the
    /// object between wal-push's check and its create.
    #[derive(Debug)]
    struct RacingSink {
        inner: MemorySink,
        missed: std::sync::atomic::AtomicBool,
    }

    #[async_trait::async_trait]
    impl Sink for RacingSink {
        fn info(&self) -> &wst_core::SinkInfo {
            self.inner.info()
        }
        async fn put(&self, name: &str) -> wst_core::Result<Box<dyn wst_core::SinkUpload>> {
            self.inner.put(name).await
        }
        async fn get(&self, name: &str) -> wst_core::Result<wst_core::ByteStream> {
            self.inner.get(name).await
        }
        async fn head(&self, name: &str) -> wst_core::Result<wst_core::ObjectMeta> {
            if name.contains(".wal.")
                && !self.missed.swap(true, std::sync::atomic::Ordering::SeqCst)
            {
                return Err(wst_core::Error::NotFound {
                    sink: self.info().name.clone(),
                    name: name.to_owned(),
                });
            }
            self.inner.head(name).await
        }
        async fn list(&self, prefix: &str) -> wst_core::Result<Vec<wst_core::ObjectMeta>> {
            self.inner.list(prefix).await
        }
        async fn delete(&self, name: &str) -> wst_core::Result<()> {
            self.inner.delete(name).await
        }
        async fn create(&self, name: &str, data: Bytes) -> wst_core::Result<wst_core::ObjectMeta> {
            self.inner.create(name, data).await
        }
    }

    #[tokio::test]
    async fn a_writer_that_loses_the_create_race_compares_and_never_overwrites() {
        let f = fixture().await;
        let racing = Arc::new(RacingSink {
            inner: MemorySink::new("racing"),
            missed: std::sync::atomic::AtomicBool::new(false),
        });
        Repository::builder(Arc::clone(&f.cipher), f.audit.clone())
            .sink(racing.clone())
            .build()
            .unwrap()
            .init()
            .await
            .unwrap();
        let archive = || {
            WalArchive::builder(Arc::clone(&f.cipher))
                .sync_sink(racing.clone())
                .build()
                .unwrap()
        };
        // The other writer's copy: different content under the same name.
        archive().push(&f.wal(SEG, 1)).await.unwrap();
        let object = archive().object_name(&WalFileName::parse(SEG).unwrap());
        let theirs = racing.inner.get_bytes(&object, 1 << 30).await.unwrap();
        racing
            .missed
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let e = archive().push(&f.wal(SEG, 2)).await.unwrap_err();
        assert!(matches!(e, WalError::Conflict { .. }), "{e}");
        assert!(
            racing.missed.load(std::sync::atomic::Ordering::SeqCst),
            "the race was simulated"
        );
        assert_eq!(
            racing.inner.get_bytes(&object, 1 << 30).await.unwrap(),
            theirs
        );
        // The same content: the loser finds it and succeeds.
        racing
            .missed
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let r = archive().push(&f.wal(SEG, 1)).await.unwrap();
        assert_eq!(r.already_archived, ["racing"]);
    }

    /// An asynchronous sink that, while the drainer writes its first WAL object to it, lets
    /// another push queue a later segment and try to drain (it finds the lock held).
    #[derive(Debug)]
    struct PushingSink {
        inner: Arc<MemorySink>,
        during: tokio::sync::Mutex<Option<(WalArchive, PathBuf)>>,
    }

    #[async_trait::async_trait]
    impl Sink for PushingSink {
        fn info(&self) -> &wst_core::SinkInfo {
            self.inner.info()
        }
        async fn put(&self, name: &str) -> wst_core::Result<Box<dyn wst_core::SinkUpload>> {
            self.inner.put(name).await
        }
        async fn get(&self, name: &str) -> wst_core::Result<wst_core::ByteStream> {
            self.inner.get(name).await
        }
        async fn head(&self, name: &str) -> wst_core::Result<wst_core::ObjectMeta> {
            self.inner.head(name).await
        }
        async fn list(&self, prefix: &str) -> wst_core::Result<Vec<wst_core::ObjectMeta>> {
            self.inner.list(prefix).await
        }
        async fn delete(&self, name: &str) -> wst_core::Result<()> {
            self.inner.delete(name).await
        }
        async fn create(&self, name: &str, data: Bytes) -> wst_core::Result<wst_core::ObjectMeta> {
            if name.contains(".wal.")
                && let Some((other, path)) = self.during.lock().await.take()
            {
                other.push(&path).await.unwrap();
                let busy = other.drain().await.unwrap();
                assert!(busy.busy, "the first drainer holds the lock: {busy:?}");
            }
            self.inner.create(name, data).await
        }
    }

    #[tokio::test]
    async fn an_object_queued_during_a_drain_is_drained_by_it() {
        let f = fixture().await;
        // The repository's own offsite sink, seen through the wrapper by the first drainer.
        let slow = Arc::new(PushingSink {
            inner: f.b.clone(),
            during: tokio::sync::Mutex::new(None),
        });
        let queue = || WalQueue::new(f.dir.path().join("queue"), 1 << 30);
        // The archive whose drain runs, and a second process's (same queue, same sink name).
        let first = WalArchive::builder(Arc::clone(&f.cipher))
            .sync_sink(f.a.clone())
            .async_sink(slow.clone())
            .queue(queue())
            .audit(f.audit.clone())
            .build()
            .unwrap();
        let second = WalArchive::builder(Arc::clone(&f.cipher))
            .sync_sink(f.a.clone())
            .async_sink(f.b.clone())
            .queue(queue())
            .audit(f.audit.clone())
            .build()
            .unwrap();
        first.push(&f.wal(SEG, 1)).await.unwrap();
        let later = "000000010000000000000004";
        *slow.during.lock().await = Some((second, f.wal(later, 2)));

        let d = first.drain().await.unwrap();
        assert!(
            slow.during.lock().await.is_none(),
            "the later push ran mid-drain"
        );
        assert!(d.complete(), "{d:?}");
        let both: Vec<String> = [SEG, later]
            .iter()
            .map(|n| first.object_name(&WalFileName::parse(n).unwrap()))
            .collect();
        assert_eq!(d.sinks[0].copied, both, "both in one drain");
        for object in &both {
            assert!(slow.inner.exists(object).await.unwrap(), "{object}");
        }
        assert_eq!(first.queue_status().unwrap()[0].objects, 0);
    }

    #[tokio::test]
    async fn over_its_bound_the_queue_drops_loudly_and_audited() {
        let f = fixture().await;
        let archive = f.archive(100); // smaller than any object
        let r = archive.push(&f.wal(SEG, 1)).await.unwrap();
        assert_eq!(r.stored, ["local-c"], "the push itself succeeds");
        assert!(r.queued.is_empty());
        assert_eq!(r.dropped.len(), 1);
        assert_eq!(r.dropped[0].sink, "offsite");
        assert!(
            r.dropped[0].reason.contains("bound of 100 bytes"),
            "{:?}",
            r.dropped
        );
        assert!(f.events().iter().any(|e| matches!(e,
            AuditEvent::Replicate { from, to, failed, .. }
                if from == "wal-queue" && to == "offsite" && failed[0].contains("dropped"))));
        assert_eq!(archive.queue_status().unwrap()[0].objects, 0);
    }

    #[tokio::test]
    async fn a_sink_without_this_repositorys_marker_is_never_written() {
        let f = fixture().await;
        let stranger = Arc::new(MemorySink::new("mirror-d")); // never `init`ed: unmounted?
        let archive = WalArchive::builder(Arc::clone(&f.cipher))
            .sync_sink(f.a.clone())
            .sync_sink(stranger.clone())
            .build()
            .unwrap();
        let e = archive.push(&f.wal(SEG, 1)).await.unwrap_err();
        assert!(matches!(e, WalError::NotDurable { .. }), "{e}");
        assert!(
            e.to_string().contains("mirror-d") && e.to_string().contains("wst init"),
            "{e}"
        );
        assert!(stranger.list("").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn builder_rules() {
        let f = fixture().await;
        let c = || WalArchive::builder(Arc::clone(&f.cipher));
        assert!(c().build().is_err(), "no synchronous sink");
        assert!(c().async_sink(f.b.clone()).build().is_err());
        assert!(
            c().sync_sink(f.a.clone())
                .async_sink(f.b.clone())
                .audit(f.audit.clone())
                .build()
                .is_err(),
            "asynchronous sinks need a queue"
        );
        assert!(
            c().sync_sink(f.a.clone())
                .async_sink(f.b.clone())
                .queue(WalQueue::new(f.dir.path(), 1))
                .build()
                .is_err(),
            "asynchronous sinks need an audit log"
        );
        assert!(
            c().sync_sink(f.a.clone())
                .sync_sink(f.a.clone())
                .build()
                .is_err()
        );
        assert!(c().sync_sink(f.a.clone()).zstd_level(0).build().is_err());
        assert!(c().sync_sink(f.a.clone()).prefix("a.b").build().is_err());
        let e = c()
            .sync_sink(f.a.clone())
            .build()
            .unwrap()
            .push(&f.dir.path().join("RECOVERYXLOG"))
            .await
            .unwrap_err();
        assert!(matches!(e, WalError::InvalidName { .. }), "{e}");
    }
}
