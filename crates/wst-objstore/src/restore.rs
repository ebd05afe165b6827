//! Putting the objects an [`ObjectStoreSource`](crate::ObjectStoreSource) archived back into a
//! (scratch) bucket, each checked against the manifest.

use std::path::PathBuf;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload, WriteMultipart};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use wst_core::{
    ArtifactName, BreakGlass, Check, Cipher, Clock, ReadLimits, RestoreOptions, RestoreReport, Sink,
};

use crate::error::Error;
use crate::objstore::config;
use crate::source::{Bucket, ObjectRecord, StoreSpec, validate_key};

/// Default number of objects uploaded concurrently by [`restore_objects`]: 8.
pub const DEFAULT_RESTORE_CONCURRENCY: usize = 8;

/// Default size of one multipart part of a restore upload: 5 MiB (the S3 minimum). Objects up
/// to this size are stored with one `PUT`.
pub const DEFAULT_RESTORE_PART_SIZE: usize = crate::objstore::MIN_PART_SIZE;

/// The bucket and prefix [`restore_objects`] writes into, built like an
/// [`ObjectStoreSink`](crate::ObjectStoreSink) from a URL (`s3://scratch-bucket/restore-1`,
/// `az://…`, `gs://…`, `file:///dir`) with options or the environment. `Debug` shows no
/// credential.
#[derive(Debug)]
pub struct ObjectStoreTarget {
    bucket: Bucket,
}

/// Configures an [`ObjectStoreTarget`]; created by [`ObjectStoreTarget::builder`].
#[derive(Debug)]
pub struct ObjectStoreTargetBuilder {
    spec: StoreSpec,
}

impl ObjectStoreTarget {
    /// Starts configuring the target at `url`; the URL's path is the key prefix objects are
    /// restored under.
    pub fn builder(url: impl Into<String>) -> ObjectStoreTargetBuilder {
        ObjectStoreTargetBuilder {
            spec: StoreSpec::url(url.into()),
        }
    }

    /// A target over an already built store; objects go under `prefix` (`/`-separated, may be
    /// empty).
    ///
    /// # Errors
    /// [`wst_core::Error::Config`] for an invalid prefix.
    pub fn for_store(
        store: Arc<dyn ObjectStore>,
        prefix: impl Into<String>,
    ) -> wst_core::Result<Self> {
        Ok(Self {
            bucket: StoreSpec::Store {
                store,
                prefix: prefix.into(),
            }
            .open()?,
        })
    }

    /// The URL without credentials or query string.
    pub fn url(&self) -> &str {
        &self.bucket.shown
    }

    /// The key prefix objects are restored under.
    pub fn prefix(&self) -> &str {
        self.bucket.prefix.as_ref()
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.bucket.store
    }

    fn sink_error(&self, operation: &'static str, key: &str, e: Error) -> wst_core::Error {
        e.into_sink_error(
            &format!("restore target {}", self.bucket.shown),
            operation,
            key,
        )
    }
}

impl ObjectStoreTargetBuilder {
    /// Adds one `object_store` option (see
    /// [`ObjectStoreSinkBuilder::option`](crate::ObjectStoreSinkBuilder::option)).
    #[must_use]
    pub fn option(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.spec.push_options([(key.into(), value.into())]);
        self
    }

    /// Adds several options; see [`option`](Self::option).
    #[must_use]
    pub fn options<K: Into<String>, V: Into<String>>(
        mut self,
        options: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.spec
            .push_options(options.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Whether to read configuration and credentials from the environment first (default
    /// `true`).
    #[must_use]
    pub fn from_env(mut self, from_env: bool) -> Self {
        self.spec.set_from_env(from_env);
        self
    }

    /// Builds the target. No request is made.
    ///
    /// # Errors
    /// As [`ObjectStoreSinkBuilder::build`](crate::ObjectStoreSinkBuilder::build): an
    /// unparsable or unsupported URL, credentials in the URL, an unknown option.
    pub fn build(self) -> wst_core::Result<ObjectStoreTarget> {
        Ok(ObjectStoreTarget {
            bucket: self.spec.open()?,
        })
    }
}

/// How [`restore_objects`] restores.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ObjectRestoreOptions {
    /// The archive root of the object-store source to restore, e.g. `buckets/proofs` (with or
    /// without trailing `/`).
    pub root: String,
    /// Directory for the temporary restore of the artifact (default: the system temporary
    /// directory). It needs room for the artifact's content; it is removed afterwards.
    pub work_dir: Option<PathBuf>,
    /// Authorization to write into a target prefix that already holds objects (doctrine 026
    /// L6 break-glass). Without it such a target is refused before anything is read. With it,
    /// objects of the same key are replaced and other objects are left as they are.
    pub break_glass: Option<BreakGlass>,
    /// Objects uploaded concurrently (at least 1). Default: [`DEFAULT_RESTORE_CONCURRENCY`].
    pub max_concurrency: usize,
    /// Multipart part size in bytes (at least 5 MiB). Default: [`DEFAULT_RESTORE_PART_SIZE`].
    /// Memory for object data is at most `2 × max_concurrency × part_size`.
    pub part_size: usize,
    /// Read every uploaded object back from the target and check its size and SHA-256 again
    /// (default `true`): proves what the bucket serves, not only what was sent.
    pub verify_read_back: bool,
    /// Caps for reading the artifact.
    pub limits: ReadLimits,
    /// Selective restore: key prefixes relative to the source prefix, as folders (`acme`
    /// selects `acme` and `acme/…`, not `acme-2/…`). Empty: every object. A prefix that
    /// selects nothing fails the restore (wst-core's selective restore refuses unmatched
    /// patterns), so a typo never passes as an empty restore.
    pub prefixes: Vec<String>,
    /// The clock that stamps the report's `started` and `finished` (UTC). Default
    /// [`Clock::system`]; the duration is measured with a monotonic clock.
    pub clock: Clock,
}

impl ObjectRestoreOptions {
    /// Options restoring the objects archived under `root`, with the defaults.
    pub fn new(root: impl Into<String>) -> Self {
        Self {
            root: root.into(),
            work_dir: None,
            break_glass: None,
            max_concurrency: DEFAULT_RESTORE_CONCURRENCY,
            part_size: DEFAULT_RESTORE_PART_SIZE,
            verify_read_back: true,
            limits: ReadLimits::default(),
            prefixes: Vec::new(),
            clock: Clock::system(),
        }
    }

    /// Stamps the report with `clock`.
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }
}

/// What [`restore_objects`] did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ObjectRestoreReport {
    /// The artifact restored from.
    pub artifact: ArtifactName,
    /// The archive root restored.
    pub root: String,
    /// The source's name in the artifact's manifest.
    pub source: String,
    /// The source bucket URL recorded in the manifest (no credentials).
    pub source_url: String,
    /// The source key prefix recorded in the manifest (empty for a whole bucket).
    pub source_prefix: String,
    /// The target URL (no credentials).
    pub target: String,
    /// The target key prefix.
    pub target_prefix: String,
    /// Start (UTC).
    pub started: jiff::Timestamp,
    /// End (UTC).
    pub finished: jiff::Timestamp,
    /// Seconds from start to the last verified object.
    pub duration_seconds: f64,
    /// Objects restored.
    pub objects: u64,
    /// Content bytes restored.
    pub bytes: u64,
    /// Every restored object's key in the target, sorted.
    pub keys: Vec<String>,
    /// The key prefixes of a selective restore, as given; empty when every object was restored.
    pub selection: Vec<String>,
    /// The checks done: the artifact's (authentication, manifest) and this restore's (every
    /// object's size and SHA-256 as uploaded and, with `verify_read_back`, as read back).
    pub checks: Vec<Check>,
    /// The break-glass authorization used, if any.
    pub break_glass: Option<BreakGlass>,
    /// The temporary restore of the artifact the objects were uploaded from.
    pub artifact_restore: RestoreReport,
}

impl ObjectRestoreReport {
    /// The target key a source object key (as the application stores it, e.g. in a database
    /// row) was restored to, or `None` when it is not under the source prefix. Restoring under
    /// the same prefix as the source keeps keys unchanged.
    pub fn target_key(&self, source_key: &str) -> Option<String> {
        let rel = relative_key(source_key, &self.source_prefix)?;
        Some(if self.target_prefix.is_empty() {
            rel.to_owned()
        } else {
            format!("{}/{rel}", self.target_prefix)
        })
    }
}

/// One object to upload.
struct Job {
    file: PathBuf,
    key: Path,
    expected: ObjectRecord,
}

/// Restores the objects archived under `options.root` in artifact `name` (read from `sink`,
/// opened with `cipher`) into `target`: each object's key relative to the source prefix is put
/// under the target prefix, e.g. source `s3://proofs/tenants` key `tenants/acme/p1.pdf` → target
/// `s3://scratch/restore-1` key `restore-1/acme/p1.pdf`.
///
/// Steps:
/// 1. **Target guard.** The target prefix is listed; if it holds any object the restore is
///    refused unless `options.break_glass` is given (doctrine 026 L6: never restore over data,
///    e.g. production, without break-glass).
/// 2. **Artifact restore.** The entries under `root` (or under the selected `prefixes`) are
///    restored with [`wst_core::restore`]'s selective restore into a private temporary
///    directory: the whole artifact is authenticated and every entry compared with the
///    manifest, but only the selected entries are written to disk.
/// 3. **Upload.** Up to `max_concurrency` objects at a time, each streamed from its file (one
///    `PUT` up to `part_size`, multipart above), its size and SHA-256 computed on the bytes sent
///    and compared with the manifest's object record *before* the upload is committed (a
///    mismatch aborts it); with `verify_read_back`, read back from the target and checked
///    again. Every object recorded in the manifest must be present, and nothing else under the
///    root may be.
///
/// Restored objects get the store's current time as last-modified time (stores do not let a
/// client set it); the original is in the manifest. On Windows, a key with a character Windows
/// forbids in file names (`:`, `*`, `?`, `"`, `<`, `>`, `|`) cannot pass through the temporary
/// directory: the restore fails naming the entry (restore on a Unix host instead).
///
/// # Errors
/// [`wst_core::Error::RestoreTarget`] for a non-empty target without break-glass (nothing read
/// or written); [`wst_core::Error::SelectionUnmatched`] when nothing in the artifact lies
/// under `root` or one of the `prefixes`; [`wst_core::Error::Config`] when `root` is not an
/// object-store source's root; the errors of [`wst_core::restore`] (wrong key, tampering, limits);
/// [`wst_core::Error::Sink`] naming the object for a target store failure, or with a
/// [`Error::RestoreMismatch`] source for an object whose size or SHA-256 differs. Objects
/// uploaded before a failure stay in the target (it is a scratch location).
pub async fn restore_objects(
    sink: &dyn Sink,
    name: &ArtifactName,
    cipher: &dyn Cipher,
    target: &ObjectStoreTarget,
    options: &ObjectRestoreOptions,
) -> wst_core::Result<ObjectRestoreReport> {
    let started = options.clock.now();
    let clock = std::time::Instant::now();
    let root = options.root.trim_end_matches('/').to_owned();
    let max_concurrency = options.max_concurrency.max(1);
    if options.part_size < crate::objstore::MIN_PART_SIZE {
        return Err(config(format!(
            "restore part size {} bytes is below the minimum of 5 MiB",
            options.part_size
        )));
    }
    check_target(target, options).await?;

    let work = options.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    let temp = tempfile::Builder::new()
        .prefix(".wst-objects-")
        .tempdir_in(&work)
        .map_err(|e| {
            wst_core::Error::io(
                format!("creating a temporary directory in `{}`", work.display()),
                e,
            )
        })?;
    let extracted = temp.path().join("artifact");
    let prefixes: Vec<String> = options
        .prefixes
        .iter()
        .map(|p| p.trim_matches('/').to_owned())
        .collect();
    let include: Vec<String> = if prefixes.is_empty() {
        vec![format!("{}/", glob_escape(&root))]
    } else {
        prefixes
            .iter()
            .map(|p| format!("{}/{}/", glob_escape(&root), glob_escape(p)))
            .collect()
    };
    let mut restore_options = RestoreOptions::isolated(&extracted)
        .include(include)
        .with_clock(options.clock.clone());
    restore_options.limits = options.limits;
    let artifact_restore = wst_core::restore(sink, name, cipher, &restore_options).await?;

    let description = artifact_restore
        .sources
        .iter()
        .find(|s| s.kind == "object_store" && s.root.trim_end_matches('/') == root)
        .ok_or_else(|| {
            let roots: Vec<&str> = artifact_restore
                .sources
                .iter()
                .filter(|s| s.kind == "object_store")
                .map(|s| s.root.as_str())
                .collect();
            config(format!(
                "artifact `{name}` has no object-store source archived under `{root}/` (its \
                 object-store roots: {roots:?})"
            ))
        })?;
    let source_prefix = description.details["prefix"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut records: Vec<ObjectRecord> =
        serde_json::from_value(description.details["objects"].clone()).map_err(|e| {
            wst_core::Error::Malformed {
                artifact: name.to_string(),
                detail: format!("object records of source `{}`: {e}", description.name),
            }
        })?;
    if !prefixes.is_empty() {
        records.retain(|r| {
            let rel = relative_key(&r.key, &source_prefix).unwrap_or(&r.key);
            prefixes.iter().any(|p| {
                rel == p
                    || rel
                        .strip_prefix(p.as_str())
                        .is_some_and(|t| t.starts_with('/'))
            })
        });
    }

    let root_dir = root.split('/').fold(extracted.clone(), |p, c| p.join(c));
    let jobs = plan(target, &root_dir, &source_prefix, records, name)?;
    let on_disk = count_files(&root_dir)?;
    if on_disk != jobs.len() as u64 {
        return Err(wst_core::Error::Malformed {
            artifact: name.to_string(),
            detail: format!(
                "{on_disk} files under `{root}/` but {} object records in the manifest",
                jobs.len()
            ),
        });
    }

    let mut keys: Vec<String> = jobs.iter().map(|j| j.key.to_string()).collect();
    keys.sort();
    let bytes: u64 = jobs.iter().map(|j| j.expected.size).sum();
    let objects = jobs.len() as u64;
    futures::stream::iter(jobs)
        .map(|job| upload(target, job, options.part_size, options.verify_read_back))
        .buffer_unordered(max_concurrency)
        .try_collect::<Vec<()>>()
        .await?;

    let mut checks = artifact_restore.checks.clone();
    checks.push(Check::pass(
        "objects_sha256",
        format!(
            "{objects} objects ({bytes} bytes) uploaded under `{}`, each with the size and \
             SHA-256 recorded in the manifest",
            target.prefix()
        ),
    ));
    if options.verify_read_back {
        checks.push(Check::pass(
            "objects_read_back",
            format!(
                "{objects} objects read back from the target with the recorded size and SHA-256"
            ),
        ));
    }
    let report = ObjectRestoreReport {
        artifact: name.clone(),
        root,
        source: description.name.clone(),
        source_prefix: source_prefix.clone(),
        source_url: description.details["url"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        target: target.url().to_owned(),
        target_prefix: target.prefix().to_owned(),
        started,
        finished: options.clock.now(),
        duration_seconds: clock.elapsed().as_secs_f64(),
        objects,
        bytes,
        keys,
        selection: options.prefixes.clone(),
        checks,
        break_glass: options.break_glass.clone(),
        artifact_restore,
    };
    tracing::info!(artifact = %name, target = %report.target, objects, bytes, "objects restored");
    Ok(report)
}

async fn check_target(
    target: &ObjectStoreTarget,
    options: &ObjectRestoreOptions,
) -> wst_core::Result<()> {
    let mut listing = target.bucket.store.list(target.bucket.list_prefix());
    let first = listing
        .next()
        .await
        .transpose()
        .map_err(|e| target.sink_error("list", target.prefix(), target.bucket.error(&e)))?;
    match (first, &options.break_glass) {
        (Some(existing), None) => Err(wst_core::Error::RestoreTarget {
            path: PathBuf::from(target.url()),
            reason: format!(
                "prefix `{}` already holds objects (e.g. `{}`); restore into an empty scratch \
                 bucket or prefix, or pass a break-glass authorization (doctrine 026 L6)",
                target.prefix(),
                existing.location
            ),
        }),
        (Some(_), Some(bg)) => {
            tracing::warn!(target = %target.url(), authorized_by = %bg.authorized_by, reason = %bg.reason, "restoring objects into a non-empty target under break-glass");
            Ok(())
        }
        (None, _) => Ok(()),
    }
}

/// Pairs each object record with its restored file and target key.
fn plan(
    target: &ObjectStoreTarget,
    root_dir: &std::path::Path,
    source_prefix: &str,
    records: Vec<ObjectRecord>,
    name: &ArtifactName,
) -> wst_core::Result<Vec<Job>> {
    let malformed = |detail: String| wst_core::Error::Malformed {
        artifact: name.to_string(),
        detail,
    };
    let mut jobs = Vec::with_capacity(records.len());
    for rec in records {
        let rel = relative_key(&rec.key, source_prefix).ok_or_else(|| {
            malformed(format!(
                "object `{}` is not under the source prefix `{source_prefix}`",
                rec.key
            ))
        })?;
        validate_key(rel).map_err(|r| malformed(format!("object key `{}`: {r}", rec.key)))?;
        let base = target.prefix();
        let key = if base.is_empty() {
            rel.to_owned()
        } else {
            format!("{base}/{rel}")
        };
        let key =
            Path::parse(&key).map_err(|e| malformed(format!("object key `{}`: {e}", rec.key)))?;
        let file = rel
            .split('/')
            .fold(root_dir.to_path_buf(), |p, c| p.join(c));
        jobs.push(Job {
            file,
            key,
            expected: rec,
        });
    }
    Ok(jobs)
}

/// `key` relative to `prefix` (a folder), or `None` when it is not below it.
fn relative_key<'a>(key: &'a str, prefix: &str) -> Option<&'a str> {
    if prefix.is_empty() {
        Some(key)
    } else {
        key.strip_prefix(prefix)?.strip_prefix('/')
    }
}

/// Escapes glob metacharacters so that a key prefix matches literally in a
/// [`wst_core::Selection`] pattern.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '{' | '}') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Regular files below `dir` (0 when it does not exist).
fn count_files(dir: &std::path::Path) -> wst_core::Result<u64> {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(wst_core::Error::io(format!("listing `{}`", d.display()), e)),
        };
        for entry in entries {
            let entry =
                entry.map_err(|e| wst_core::Error::io(format!("listing `{}`", d.display()), e))?;
            let ft = entry
                .file_type()
                .map_err(|e| wst_core::Error::io(format!("reading `{}`", d.display()), e))?;
            if ft.is_dir() {
                stack.push(entry.path());
            } else {
                n += 1;
            }
        }
    }
    Ok(n)
}

/// Checks `size` and `sha256` against the record.
fn check(
    expected: &ObjectRecord,
    key: &Path,
    size: u64,
    sha256: &str,
    what: &str,
) -> Result<(), Error> {
    if size != expected.size || sha256 != expected.sha256 {
        return Err(Error::RestoreMismatch {
            key: key.to_string(),
            detail: format!(
                "{what}: {size} bytes, SHA-256 {sha256}; the manifest records {} bytes, SHA-256 {}",
                expected.size, expected.sha256
            ),
        });
    }
    Ok(())
}

/// Uploads one object from its restored file, checking size and SHA-256 before committing.
async fn upload(
    target: &ObjectStoreTarget,
    job: Job,
    part_size: usize,
    read_back: bool,
) -> wst_core::Result<()> {
    let key_text = job.key.to_string();
    let io_err = |e: std::io::Error| {
        wst_core::Error::io(format!("reading restored file `{}`", job.file.display()), e)
    };
    let store = &target.bucket.store;
    let put_err =
        |e: &object_store::Error| target.sink_error("put", &key_text, target.bucket.error(e));
    let mismatch = |e: Error| target.sink_error("put", &key_text, e);
    let mut file = tokio::fs::File::open(&job.file).await.map_err(io_err)?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    if job.expected.size <= part_size as u64 {
        let mut buf = Vec::with_capacity(usize::try_from(job.expected.size).unwrap_or(0));
        (&mut file)
            .take(part_size as u64 + 1)
            .read_to_end(&mut buf)
            .await
            .map_err(io_err)?;
        hasher.update(&buf);
        size = buf.len() as u64;
        check(
            &job.expected,
            &job.key,
            size,
            &hex::encode(hasher.finalize()),
            "restored file",
        )
        .map_err(mismatch)?;
        store
            .put(&job.key, PutPayload::from(buf))
            .await
            .map_err(|e| put_err(&e))?;
    } else {
        let upload = store
            .put_multipart(&job.key)
            .await
            .map_err(|e| put_err(&e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, part_size);
        let mut buf = vec![0u8; 1024 * 1024];
        let failed = loop {
            let n = match file.read(&mut buf).await {
                Ok(0) => break None,
                Ok(n) => n,
                Err(e) => break Some(io_err(e)),
            };
            hasher.update(&buf[..n]);
            size += n as u64;
            if let Err(e) = writer.wait_for_capacity(1).await {
                break Some(put_err(&e));
            }
            writer.write(&buf[..n]);
        };
        let failed = failed.or_else(|| {
            check(
                &job.expected,
                &job.key,
                size,
                &hex::encode(hasher.clone().finalize()),
                "restored file",
            )
            .err()
            .map(mismatch)
        });
        if let Some(e) = failed {
            let _ = writer.abort().await;
            return Err(e);
        }
        writer.finish().await.map_err(|e| put_err(&e))?;
    }
    if read_back {
        let got = store
            .get(&job.key)
            .await
            .map_err(|e| target.sink_error("get", &key_text, target.bucket.error(&e)))?;
        let mut stream = got.into_stream();
        let mut hasher = Sha256::new();
        let mut n = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| target.sink_error("get", &key_text, target.bucket.error(&e)))?;
            hasher.update(&chunk);
            n += chunk.len() as u64;
        }
        check(
            &job.expected,
            &job.key,
            n,
            &hex::encode(hasher.finalize()),
            "read back from the target",
        )
        .map_err(|e| target.sink_error("get", &key_text, e))?;
    }
    Ok(())
}

/// Re-applies the erasure register to objects of `[[bucket]]` `bucket` restored into `target`
/// (issue 18; seeds/003 "Erased data must not be restored unintentionally"): for each entry
/// with a prefix for `bucket`, every object under the target prefix whose key (relative to
/// the target prefix, i.e. relative to the source bucket's prefix as archived) starts with
/// the recorded prefix is deleted. Listing goes under the prefix's last `/` and filters by
/// the whole prefix, so `uploads/u-1` does not take `uploads/u-10`'s objects when written
/// `uploads/u-1/`. Idempotent. One [`wst_core::ReErasure`] per entry with a prefix for
/// `bucket` (objects removed, or the entry's error: a failed listing or deletion).
pub async fn erase_objects(
    target: &ObjectStoreTarget,
    bucket: &str,
    entries: &[wst_core::ErasureEntry],
) -> Vec<wst_core::ReErasure> {
    let mut out = Vec::new();
    for entry in entries {
        let prefixes: Vec<&str> = entry
            .objects
            .iter()
            .filter(|o| o.bucket == bucket)
            .map(|o| o.prefix.as_str())
            .collect();
        if prefixes.is_empty() {
            continue;
        }
        let mut r = wst_core::ReErasure::new(entry, format!("bucket {}", target.url()));
        for prefix in prefixes {
            let dir = prefix.rfind('/').map_or("", |i| &prefix[..i]);
            let base = target.prefix().trim_end_matches('/');
            let list_at = match (base.is_empty(), dir.is_empty()) {
                (true, _) => dir.to_owned(),
                (false, true) => base.to_owned(),
                (false, false) => format!("{base}/{dir}"),
            };
            let list_path = Path::from(list_at.as_str());
            let mut listing = target
                .bucket
                .store
                .list((!list_at.is_empty()).then_some(&list_path));
            let mut doomed = Vec::new();
            while let Some(item) = listing.next().await {
                match item {
                    Ok(meta) => {
                        let key = meta.location.as_ref();
                        let rel = relative_key(key, base).unwrap_or(key);
                        if rel.starts_with(prefix) {
                            doomed.push(meta.location);
                        }
                    }
                    Err(e) => {
                        r.error = Some(format!("listing `{list_at}`: {e}"));
                        break;
                    }
                }
            }
            for loc in doomed {
                match target.bucket.store.delete(&loc).await {
                    Ok(()) => r.objects += 1,
                    Err(e) => {
                        r.error = Some(format!("deleting `{loc}`: {e}"));
                        break;
                    }
                }
            }
        }
        out.push(r);
    }
    out
}
