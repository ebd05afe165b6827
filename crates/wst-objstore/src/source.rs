//! `ObjectStoreSource`: every object under a bucket prefix, archived as file entries.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{self, Read};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use wst_core::{EntryKind, EntryMeta, EntryWriter, PreparedSource, Source, SourceDescription};

use crate::error::Error;
use crate::objstore::{Redactor, config, is_secret_key, redact_url, store_from_url};

/// Default number of objects downloaded concurrently by an [`ObjectStoreSource`]: 8.
pub const DEFAULT_SOURCE_CONCURRENCY: usize = 8;

/// Default size of one ranged download request of an [`ObjectStoreSource`]: 4 MiB.
pub const DEFAULT_PIECE_SIZE: usize = 4 * 1024 * 1024;

/// Smallest accepted piece size: 64 KiB.
pub const MIN_PIECE_SIZE: usize = 64 * 1024;

/// Attempts to download the first piece of an object that keeps changing under us.
const MAX_ATTEMPTS: u32 = 3;

/// Where a bucket is: a URL with options, or an already built store.
#[derive(Clone)]
pub(crate) enum StoreSpec {
    Url {
        url: String,
        options: Vec<(String, String)>,
        from_env: bool,
    },
    Store {
        store: Arc<dyn ObjectStore>,
        prefix: String,
    },
}

impl fmt::Debug for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Url {
                url,
                options,
                from_env,
            } => {
                let options: Vec<String> = options
                    .iter()
                    .map(|(k, v)| {
                        if is_secret_key(k) {
                            format!("{k}=[REDACTED]")
                        } else {
                            format!("{k}={v}")
                        }
                    })
                    .collect();
                f.debug_struct("Url")
                    .field("url", &redact_url(url))
                    .field("options", &options)
                    .field("from_env", from_env)
                    .finish()
            }
            Self::Store { store, prefix } => f
                .debug_struct("Store")
                .field("store", &store.to_string())
                .field("prefix", prefix)
                .finish(),
        }
    }
}

impl StoreSpec {
    pub(crate) fn url(url: String) -> Self {
        Self::Url {
            url,
            options: Vec::new(),
            from_env: true,
        }
    }

    pub(crate) fn push_options(&mut self, more: impl IntoIterator<Item = (String, String)>) {
        if let Self::Url { options, .. } = self {
            options.extend(more);
        }
    }

    pub(crate) fn set_from_env(&mut self, value: bool) {
        if let Self::Url { from_env, .. } = self {
            *from_env = value;
        }
    }

    /// Builds the store (no request is made).
    pub(crate) fn open(&self) -> wst_core::Result<Bucket> {
        let (store, prefix, shown, redactor) = match self {
            Self::Url {
                url,
                options,
                from_env,
            } => {
                let redactor = Redactor::new(options);
                let (store, prefix, _) = store_from_url(url, options, *from_env, &redactor)?;
                (store, prefix, redact_url(url), redactor)
            }
            Self::Store { store, prefix } => (
                Arc::clone(store),
                prefix.clone(),
                format!("{store}/{prefix}"),
                Redactor::default(),
            ),
        };
        let prefix = Path::from_url_path(prefix.trim_matches('/')).map_err(|e| {
            config(format!(
                "invalid object prefix in `{shown}`: {}",
                redactor.redact(&e.to_string())
            ))
        })?;
        Ok(Bucket {
            store,
            prefix,
            shown,
            redactor: Arc::new(redactor),
        })
    }
}

/// An opened bucket location: the store, the key prefix, the URL for display.
#[derive(Clone)]
pub(crate) struct Bucket {
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) prefix: Path,
    /// The URL without credentials or query string.
    pub(crate) shown: String,
    pub(crate) redactor: Arc<Redactor>,
}

impl fmt::Debug for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The store's own `Debug` may print credentials; its `Display` names only the bucket.
        f.debug_struct("Bucket")
            .field("url", &self.shown)
            .field("store", &self.store.to_string())
            .field("prefix", &self.prefix.as_ref())
            .finish_non_exhaustive()
    }
}

impl Bucket {
    /// `prefix` as `Option` for `list`: `None` for the whole bucket.
    pub(crate) fn list_prefix(&self) -> Option<&Path> {
        (!self.prefix.as_ref().is_empty()).then_some(&self.prefix)
    }

    /// The key of `location` relative to the prefix, or `None` when it is not under it.
    pub(crate) fn relative<'a>(&self, location: &'a Path) -> Option<&'a str> {
        let p = self.prefix.as_ref();
        let key = location.as_ref();
        if p.is_empty() {
            Some(key)
        } else {
            key.strip_prefix(p)?.strip_prefix('/')
        }
    }

    /// Converts an `object_store` error, redacted, into this crate's error.
    pub(crate) fn error(&self, e: &object_store::Error) -> Error {
        if let object_store::Error::InvalidPath { source } = e {
            match source {
                object_store::path::Error::BadSegment { path, source } => {
                    return Error::InvalidKey {
                        key: path.clone(),
                        reason: format!("a `.` or `..` segment or a control character ({source})"),
                    };
                }
                object_store::path::Error::EmptySegment { path } => {
                    return Error::InvalidKey {
                        key: path.clone(),
                        reason: "an empty path segment (`//`)".to_owned(),
                    };
                }
                _ => {}
            }
        }
        Error::ObjectStore {
            message: self.redactor.redact(&e.to_string()),
            retryable: matches!(
                e,
                object_store::Error::Generic { .. } | object_store::Error::JoinError { .. }
            ),
        }
    }
}

/// Checks that `key` (relative to the source prefix) can be an archive path below the root:
/// the rule of wst-core's archive writer (`validate_archive_path`: relative, `/`-separated, no
/// empty, `.` or `..` component, no backslash or NUL, no Windows drive prefix such as `c:`),
/// replicated so that a bad key fails at listing time, naming the key.
pub(crate) fn validate_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("an empty key (the prefix itself is an object)".into());
    }
    if key.starts_with('/') {
        return Err("a leading `/`".into());
    }
    if key.contains('\\') || key.contains('\0') {
        return Err("a backslash or NUL".into());
    }
    for comp in key.split('/') {
        match comp {
            "" => return Err("an empty path segment (`//` or a trailing `/`)".into()),
            "." | ".." => return Err(format!("a `{comp}` segment")),
            c if c.len() >= 2 && c.as_bytes()[1] == b':' => {
                return Err(format!(
                    "a Windows drive prefix in segment `{c}` (second character `:`)"
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Archives every object under a bucket prefix (any URL [`ObjectStoreSink`](crate::ObjectStoreSink)
/// supports: `s3://`, `az://`, `gs://`, `file://`) as file entries `<root>/<key>`, where `<key>`
/// is the object key relative to the prefix.
///
/// ```no_run
/// use std::sync::Arc;
/// use wst_objstore::ObjectStoreSource;
///
/// # fn demo() -> wst_core::Result<()> {
/// // Credentials from the environment (AWS_*) or options, never in the URL.
/// let proofs = ObjectStoreSource::builder("proofs", "s3://wst-proofs/tenants", "buckets/proofs")
///     .option("aws_region", "eu-west-1")
///     .build()?;
/// # let _ = Arc::new(proofs);
/// # Ok(())
/// # }
/// ```
///
/// # Behaviour
/// - **Listing** ([`Source::prepare`]): one paginated `LIST` of the prefix (the store client
///   follows continuation tokens, 1 000 keys per S3 page); only each object's key, size, `ETag`
///   and last-modified time are kept (about 200 bytes per object), never a body. The prefix is
///   a folder: `s3://b/tenants` lists the keys `tenants/…`. Objects are archived in key (byte)
///   order, so the same bucket gives the same archive.
/// - **Keys** must be usable as archive paths (wst-core's archive path rule: relative, no
///   empty, `.` or `..` segment, no backslash, NUL or drive prefix). A key that is not fails
///   `prepare` with [`Error::InvalidKey`] naming it (nothing is skipped silently). A key that
///   is also a "folder" of other keys (`a` and `a/b`) cannot be both a file and a directory in
///   the archive: a zero-byte one is taken as a folder marker (as the S3 console creates) and
///   left out with a warning; a non-empty one fails with [`Error::KeyConflict`].
/// - **Entries**: each object becomes a file entry of the object's size, mode `0o644` and
///   modification time = the object's last-modified time (seconds, UTC).
/// - **Concurrent, bounded downloads** ([`PreparedSource::write_entries`]): up to
///   [`max_concurrency`](ObjectStoreSourceBuilder::max_concurrency) objects are downloaded
///   ahead of the archive writer, each in ranged `GET`s of at most
///   [`piece_size`](ObjectStoreSourceBuilder::piece_size) bytes pinned to the listed `ETag`
///   (`If-Match`). Each download holds at most two pieces (one arriving, one queued) and the
///   writer one, so memory for object data is at most `(2 × max_concurrency + 1) × piece_size`
///   (68 MiB with the defaults), whatever the object and bucket sizes; a large object is
///   streamed piece by piece, never whole in memory. No connection is held idle while the
///   writer is busy: each piece is one complete request.
/// - **An object deleted after listing** (`404` on its first `GET`) is not archived: a warning
///   naming its key goes to the run report and the manifest, and the key is listed under
///   `vanished` in the description. (A zero-byte "folder marker" key ending in `/` shows up
///   the same way: the store client strips the trailing `/`.)
/// - **An object replaced after listing** (different size or `ETag` on its first `GET`) is
///   stored as downloaded (the new size and `ETag`), with a warning naming the key and both
///   sizes; its description record says `changed_since_listing`. One replaced *while* its
///   pieces are downloaded cannot be re-read consistently: the entry is completed with zeros,
///   flagged `changed` in the manifest, and a warning names the key — re-run the backup.
/// - **Errors** other than `404` (permissions, network after `object_store`'s retries) fail the
///   run: no artifact is published.
/// - **Manifest** ([`PreparedSource::description`]): kind `"object_store"`, the root, and
///   details with the URL (no credentials), the prefix, the object count, the total bytes
///   and one record per archived object: `{key, size, etag, last_modified, sha256}`, where
///   `key` is the full object key in the bucket. This is how the manifest carries each object's
///   key, size, `ETag` and last-modified time; [`restore_objects`](crate::restore_objects) uses
///   the records to check each restored object.
///
/// `Debug` shows no credential.
#[derive(Debug)]
pub struct ObjectStoreSource {
    name: String,
    root: String,
    bucket: Bucket,
    max_concurrency: usize,
    piece_size: usize,
}

/// Configures an [`ObjectStoreSource`]; created by [`ObjectStoreSource::builder`] or
/// [`ObjectStoreSource::builder_for_store`]. `Debug` redacts secret option values.
#[derive(Debug)]
pub struct ObjectStoreSourceBuilder {
    name: String,
    root: String,
    spec: StoreSpec,
    max_concurrency: usize,
    piece_size: usize,
}

impl ObjectStoreSource {
    /// Starts configuring a source called `name` (e.g. `"proofs"`) that archives every object
    /// under `url` (`s3://bucket/prefix`, `az://container/prefix`, `gs://bucket/prefix`,
    /// `file:///dir`) below the archive root `root` (e.g. `buckets/proofs`). Options and
    /// credentials work as for [`ObjectStoreSink::builder`](crate::ObjectStoreSink::builder).
    pub fn builder(
        name: impl Into<String>,
        url: impl Into<String>,
        root: impl Into<String>,
    ) -> ObjectStoreSourceBuilder {
        ObjectStoreSourceBuilder {
            name: name.into(),
            root: root.into(),
            spec: StoreSpec::url(url.into()),
            max_concurrency: DEFAULT_SOURCE_CONCURRENCY,
            piece_size: DEFAULT_PIECE_SIZE,
        }
    }

    /// Starts configuring a source over an already built store; the objects under `prefix`
    /// (`/`-separated, may be empty for the whole store) are archived. Options and `from_env`
    /// do not apply.
    pub fn builder_for_store(
        name: impl Into<String>,
        store: Arc<dyn ObjectStore>,
        prefix: impl Into<String>,
        root: impl Into<String>,
    ) -> ObjectStoreSourceBuilder {
        ObjectStoreSourceBuilder {
            name: name.into(),
            root: root.into(),
            spec: StoreSpec::Store {
                store,
                prefix: prefix.into(),
            },
            max_concurrency: DEFAULT_SOURCE_CONCURRENCY,
            piece_size: DEFAULT_PIECE_SIZE,
        }
    }

    /// The archive root (no trailing `/`).
    pub fn root(&self) -> &str {
        &self.root
    }

    /// The store URL without credentials or query string.
    pub fn url(&self) -> &str {
        &self.bucket.shown
    }

    /// The key prefix listed (`/`-separated, empty for the whole bucket).
    pub fn prefix(&self) -> &str {
        self.bucket.prefix.as_ref()
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.bucket.store
    }

    fn fail(&self, e: Error) -> wst_core::Error {
        wst_core::Error::Source {
            name: self.name.clone(),
            source: Box::new(e),
        }
    }
}

impl ObjectStoreSourceBuilder {
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
    /// `true`); see [`ObjectStoreSinkBuilder::from_env`](crate::ObjectStoreSinkBuilder::from_env).
    #[must_use]
    pub fn from_env(mut self, from_env: bool) -> Self {
        self.spec.set_from_env(from_env);
        self
    }

    /// Objects downloaded concurrently, at least 1. Default: [`DEFAULT_SOURCE_CONCURRENCY`].
    #[must_use]
    pub fn max_concurrency(mut self, objects: usize) -> Self {
        self.max_concurrency = objects.max(1);
        self
    }

    /// Bytes per ranged download request, at least [`MIN_PIECE_SIZE`]. Default:
    /// [`DEFAULT_PIECE_SIZE`]. Memory for object data is at most
    /// `(2 × max_concurrency + 1) × piece_size`.
    #[must_use]
    pub fn piece_size(mut self, bytes: usize) -> Self {
        self.piece_size = bytes.max(MIN_PIECE_SIZE);
        self
    }

    /// Builds the source. No request is made: an unreachable store or bad credentials show up
    /// in [`Source::prepare`].
    ///
    /// # Errors
    /// [`wst_core::Error::Config`] for an empty name, a `root` that is not a plain relative
    /// archive path (or lies under the reserved `.wst/`), an unparsable or unsupported URL
    /// (`memory://` builds a new empty store: use [`ObjectStoreSource::builder_for_store`]), a
    /// URL carrying credentials, an unknown option, or a store `object_store` refuses to build;
    /// the message never contains a secret.
    pub fn build(self) -> wst_core::Result<ObjectStoreSource> {
        if self.name.trim().is_empty() {
            return Err(config(
                "an object-store source needs a non-empty name (e.g. `proofs`)",
            ));
        }
        let root = self.root.trim_end_matches('/').to_owned();
        validate_key(&root).map_err(|r| config(format!("archive root `{root}`: {r}")))?;
        if root == ".wst" || root.starts_with(".wst/") {
            return Err(config(format!(
                "archive root `{root}`: `.wst/` is reserved for the manifest"
            )));
        }
        let bucket = self.spec.open()?;
        Ok(ObjectStoreSource {
            name: self.name,
            root,
            bucket,
            max_concurrency: self.max_concurrency,
            piece_size: self.piece_size,
        })
    }
}

/// The configuration of an [`ObjectStoreSource`] as an operator writes it:
///
/// ```toml
/// [sources.proofs]
/// url = "s3://wst-proofs/tenants"
/// root = "buckets/proofs"
/// options = { aws_region = "eu-west-1" }   # credentials: from the environment
/// ```
///
/// Unknown fields are rejected. Not `Serialize`: options may hold secrets; `Debug` redacts them.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ObjectStoreSourceConfig {
    /// The bucket URL with the prefix as its path, without credentials.
    pub url: String,
    /// The archive root the objects go under, e.g. `buckets/proofs`.
    pub root: String,
    /// `object_store` options (see [`ObjectStoreSourceBuilder::option`]).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Read configuration and credentials from the environment first (default `true`).
    #[serde(default = "default_true")]
    pub from_env: bool,
    /// Objects downloaded concurrently (default [`DEFAULT_SOURCE_CONCURRENCY`]).
    #[serde(default)]
    pub max_concurrency: Option<usize>,
    /// Bytes per ranged download request (default [`DEFAULT_PIECE_SIZE`]).
    #[serde(default)]
    pub piece_size: Option<usize>,
}

fn default_true() -> bool {
    true
}

impl fmt::Debug for ObjectStoreSourceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.builder("(config)"), f)
    }
}

impl ObjectStoreSourceConfig {
    /// A builder with these settings, for a source named `name`.
    pub fn builder(&self, name: &str) -> ObjectStoreSourceBuilder {
        let mut b = ObjectStoreSource::builder(name, self.url.clone(), self.root.clone())
            .options(self.options.clone())
            .from_env(self.from_env);
        if let Some(c) = self.max_concurrency {
            b = b.max_concurrency(c);
        }
        if let Some(p) = self.piece_size {
            b = b.piece_size(p);
        }
        b
    }
}

/// One listed object.
#[derive(Debug, Clone)]
struct Listed {
    location: Path,
    /// Key relative to the prefix: the archive path below the root.
    rel: String,
    size: u64,
    etag: Option<String>,
    last_modified: ObjectTime,
}

/// An object's last-modified time, UTC, as seconds and nanoseconds since the Unix epoch
/// (`object_store` hands out `chrono` times; we keep the numbers and render with jiff).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ObjectTime {
    secs: i64,
    nanos: u32,
}

impl ObjectTime {
    fn of(m: &object_store::ObjectMeta) -> Self {
        Self {
            secs: m.last_modified.timestamp(),
            nanos: m.last_modified.timestamp_subsec_nanos(),
        }
    }

    /// RFC 3339, UTC (e.g. `2026-11-21T05:38:04.123Z`).
    fn rfc3339(self) -> String {
        jiff::Timestamp::new(self.secs, self.nanos.cast_signed())
            .map_or_else(|_| format!("@{}", self.secs), |t| t.to_string())
    }
}

/// The record of one archived object in the description (`details.objects[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ObjectRecord {
    /// The full object key in the bucket (prefix included).
    pub(crate) key: String,
    /// Bytes stored.
    pub(crate) size: u64,
    /// The `ETag` of the version stored, as the store reported it.
    #[serde(default)]
    pub(crate) etag: Option<String>,
    /// Last-modified time of the version stored, RFC 3339 UTC.
    pub(crate) last_modified: String,
    /// SHA-256 of the stored content, lowercase hex.
    pub(crate) sha256: String,
    /// The object differed (size or `ETag`) between the listing and its download.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) changed_since_listing: bool,
    /// The object changed while its pieces were downloaded; the stored copy is incomplete.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) changed: bool,
}

#[async_trait]
impl Source for ObjectStoreSource {
    fn name(&self) -> String {
        self.name.clone()
    }

    async fn prepare(&self) -> wst_core::Result<Box<dyn PreparedSource>> {
        let handle = tokio::runtime::Handle::current();
        let mut listing = self.bucket.store.list(self.bucket.list_prefix());
        let mut objects = Vec::new();
        while let Some(item) = listing.next().await {
            let m = item.map_err(|e| self.fail(self.bucket.error(&e)))?;
            let Some(rel) = self.bucket.relative(&m.location) else {
                continue;
            };
            validate_key(rel).map_err(|reason| {
                self.fail(Error::InvalidKey {
                    key: m.location.to_string(),
                    reason,
                })
            })?;
            objects.push(Listed {
                rel: rel.to_owned(),
                size: m.size,
                etag: m.e_tag.clone(),
                last_modified: ObjectTime::of(&m),
                location: m.location,
            });
        }
        objects.sort_by(|a, b| a.rel.cmp(&b.rel));
        let markers: BTreeSet<String> = self
            .folder_markers(&objects)?
            .into_iter()
            .map(str::to_owned)
            .collect();
        let mut skipped = Vec::new();
        objects.retain(|o| {
            let marker = markers.contains(o.rel.as_str());
            if marker {
                skipped.push(o.location.to_string());
            }
            !marker
        });
        tracing::info!(source = %self.name, url = %self.bucket.shown, objects = objects.len(), "bucket listed");
        Ok(Box::new(PreparedObjects {
            name: self.name.clone(),
            root: self.root.clone(),
            bucket: self.bucket.clone(),
            max_concurrency: self.max_concurrency,
            piece_size: self.piece_size,
            handle,
            objects: Arc::new(objects),
            folder_markers: skipped,
            records: Vec::new(),
            vanished: Vec::new(),
        }))
    }
}

impl ObjectStoreSource {
    /// Keys that are also a folder of other keys: zero-byte ones are folder markers (returned);
    /// a non-empty one is a conflict.
    fn folder_markers<'a>(&self, objects: &'a [Listed]) -> wst_core::Result<BTreeSet<&'a str>> {
        let keys: BTreeSet<&str> = objects.iter().map(|o| o.rel.as_str()).collect();
        let mut markers = BTreeSet::new();
        for o in objects {
            let dir = format!("{}/", o.rel);
            if let Some(child) = keys.range(dir.as_str()..).next()
                && child.starts_with(&dir)
            {
                if o.size == 0 {
                    markers.insert(o.rel.as_str());
                } else {
                    let base = self.bucket.prefix.as_ref();
                    let full = |k: &str| {
                        if base.is_empty() {
                            k.to_owned()
                        } else {
                            format!("{base}/{k}")
                        }
                    };
                    return Err(self.fail(Error::KeyConflict {
                        key: o.location.to_string(),
                        other: full(child),
                    }));
                }
            }
        }
        Ok(markers)
    }
}

/// A listed bucket ready to be archived.
struct PreparedObjects {
    name: String,
    root: String,
    bucket: Bucket,
    max_concurrency: usize,
    piece_size: usize,
    handle: tokio::runtime::Handle,
    objects: Arc<Vec<Listed>>,
    folder_markers: Vec<String>,
    records: Vec<ObjectRecord>,
    vanished: Vec<String>,
}

/// What a download task tells the archive writer about its object, in this order: one `Start`
/// (or `Vanished`/`Failed`), then `Data` pieces totalling the size, possibly cut short by
/// `Changed` or `Failed`.
enum Msg {
    Start(Start),
    Data(Bytes),
    Vanished,
    Changed(String),
    Failed(Error),
}

struct Start {
    size: u64,
    etag: Option<String>,
    last_modified: ObjectTime,
    changed_since_listing: bool,
    listed_size: u64,
}

impl PreparedSource for PreparedObjects {
    fn description(&self) -> SourceDescription {
        let bytes: u64 = self.records.iter().map(|r| r.size).sum();
        SourceDescription {
            kind: "object_store".into(),
            name: self.name.clone(),
            root: format!("{}/", self.root),
            details: serde_json::json!({
                "url": self.bucket.shown,
                "prefix": self.bucket.prefix.as_ref(),
                "object_count": self.records.len(),
                "total_bytes": bytes,
                "vanished": self.vanished,
                "folder_markers": self.folder_markers,
                "objects": self.records,
            }),
            listing: std::collections::BTreeMap::new(),
        }
    }

    fn write_entries(&mut self, out: &mut dyn EntryWriter) -> wst_core::Result<()> {
        for key in &self.folder_markers {
            out.warn(format!(
                "object `{key}` is empty and also a folder of other keys (a folder marker); it \
                 is not archived as a file"
            ));
        }
        let (tx, mut rx) = mpsc::channel(self.max_concurrency.saturating_sub(1).max(1));
        let driver = self.handle.spawn(drive(
            self.bucket.clone(),
            Arc::clone(&self.objects),
            self.piece_size,
            tx,
        ));
        let result = (|| {
            while let Some((index, pieces)) = rx.blocking_recv() {
                self.write_one(out, index, pieces)?;
            }
            Ok(())
        })();
        // On error the receivers drop: the driver and download tasks stop at their next send.
        drop(rx);
        driver.abort();
        result
    }
}

impl PreparedObjects {
    fn fail(&self, e: Error) -> wst_core::Error {
        wst_core::Error::Source {
            name: self.name.clone(),
            source: Box::new(e),
        }
    }

    fn write_one(
        &mut self,
        out: &mut dyn EntryWriter,
        index: usize,
        mut pieces: mpsc::Receiver<Msg>,
    ) -> wst_core::Result<()> {
        let objects = Arc::clone(&self.objects);
        let obj = &objects[index];
        let key = obj.location.to_string();
        let start = match pieces.blocking_recv() {
            Some(Msg::Start(s)) => s,
            Some(Msg::Vanished) => {
                out.warn(format!(
                    "object `{key}` was listed but no longer exists (deleted after the listing); \
                     it is not in this backup"
                ));
                self.vanished.push(key);
                return Ok(());
            }
            Some(Msg::Failed(e)) => return Err(self.fail(e)),
            Some(Msg::Data(_) | Msg::Changed(_)) | None => {
                return Err(self.fail(Error::ObjectStore {
                    message: format!("the download of `{key}` ended before it started"),
                    retryable: true,
                }));
            }
        };
        let meta = EntryMeta {
            path: format!("{}/{}", self.root, obj.rel),
            kind: EntryKind::File,
            size: start.size,
            mode: 0o644,
            mtime: start.last_modified.secs,
        };
        let mut reader = PieceReader {
            rx: &mut pieces,
            current: Bytes::new(),
            changed: None,
        };
        let outcome = out.add(&meta, &mut reader)?;
        let midway = reader.changed.take();
        if start.changed_since_listing {
            out.warn(format!(
                "object `{key}` changed between the listing and its download (listed {} bytes, \
                 ETag {}; stored {} bytes, ETag {}): the downloaded version is stored",
                start.listed_size,
                obj.etag.as_deref().unwrap_or("none"),
                start.size,
                start.etag.as_deref().unwrap_or("none"),
            ));
        }
        if let Some(reason) = &midway {
            out.warn(format!(
                "object `{key}` {reason} while it was downloaded; the stored copy is incomplete \
                 (zero-filled) and flagged `changed`: run the backup again"
            ));
        }
        self.records.push(ObjectRecord {
            key,
            size: start.size,
            etag: start.etag,
            last_modified: start.last_modified.rfc3339(),
            sha256: hex::encode(outcome.sha256),
            changed_since_listing: start.changed_since_listing,
            changed: outcome.changed || midway.is_some(),
        });
        Ok(())
    }
}

/// Reads an object's pieces from its download task (blocking).
struct PieceReader<'a> {
    rx: &'a mut mpsc::Receiver<Msg>,
    current: Bytes,
    /// Why the download stopped early, if it did.
    changed: Option<String>,
}

impl Read for PieceReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            if self.changed.is_some() {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Msg::Data(b)) => self.current = b,
                Some(Msg::Changed(reason)) => {
                    self.changed = Some(reason);
                    return Ok(0);
                }
                Some(Msg::Failed(e)) => return Err(io::Error::other(e)),
                Some(Msg::Start(_) | Msg::Vanished) => {
                    return Err(io::Error::other("download protocol error"));
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Starts one download task per object, in order, at most the channel's capacity (plus the one
/// the writer is on) ahead of the writer.
async fn drive(
    bucket: Bucket,
    objects: Arc<Vec<Listed>>,
    piece_size: usize,
    tx: mpsc::Sender<(usize, mpsc::Receiver<Msg>)>,
) {
    let bucket = Arc::new(bucket);
    for index in 0..objects.len() {
        let (ptx, prx) = mpsc::channel(1);
        if tx.send((index, prx)).await.is_err() {
            return;
        }
        let bucket = Arc::clone(&bucket);
        let objects = Arc::clone(&objects);
        tokio::spawn(async move {
            let obj = &objects[index];
            if let Err(e) = download(&bucket, obj, piece_size, &ptx).await {
                let _ = ptx.send(Msg::Failed(e)).await;
            }
        });
    }
}

/// `ETag`s compare without quotes and weak marker (list and `GET` may quote differently).
fn same_etag(a: Option<&str>, b: Option<&str>) -> bool {
    let norm = |s: &str| s.trim_start_matches("W/").trim_matches('"').to_owned();
    match (a, b) {
        (Some(a), Some(b)) => norm(a) == norm(b),
        _ => true,
    }
}

/// Reads a `GET` body of at most `limit` bytes.
async fn read_body(
    bucket: &Bucket,
    r: object_store::GetResult,
    limit: u64,
) -> Result<Option<Bytes>, Error> {
    let mut buf = BytesMut::with_capacity(usize::try_from(limit).unwrap_or(usize::MAX));
    let mut stream = r.into_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| bucket.error(&e))?;
        if (buf.len() + chunk.len()) as u64 > limit {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Some(buf.freeze()))
}

/// Downloads one object into `tx`, piece by piece. Returns `Err` for a failure that must fail
/// the run.
async fn download(
    bucket: &Bucket,
    obj: &Listed,
    piece_size: usize,
    tx: &mpsc::Sender<Msg>,
) -> Result<(), Error> {
    let piece = piece_size as u64;
    let store = &bucket.store;
    let mut size = obj.size;
    let mut etag = obj.etag.clone();
    let mut last_modified = obj.last_modified;
    let mut changed_since_listing = false;
    let mut attempt = 0;
    // The first piece, retried when the object changed since the listing.
    let first = loop {
        attempt += 1;
        if attempt > MAX_ATTEMPTS {
            return Err(Error::ObjectUnstable {
                key: obj.location.to_string(),
                attempts: MAX_ATTEMPTS,
            });
        }
        let len = size.min(piece);
        let options = GetOptions {
            if_match: etag.clone(),
            range: (len > 0).then_some(GetRange::Bounded(0..len)),
            ..GetOptions::default()
        };
        let got = match store.get_opts(&obj.location, options).await {
            Ok(r) => {
                if r.meta.size == size && same_etag(r.meta.e_tag.as_deref(), etag.as_deref()) {
                    read_body(bucket, r, len)
                        .await?
                        .filter(|b| b.len() as u64 == len)
                } else {
                    None
                }
            }
            Err(object_store::Error::NotFound { .. }) => {
                let _ = tx.send(Msg::Vanished).await;
                return Ok(());
            }
            Err(e) => {
                // A precondition or range failure when the object changed; anything else is
                // a real error unless a `HEAD` shows a new version.
                let precondition = matches!(
                    e,
                    object_store::Error::Precondition { .. }
                        | object_store::Error::NotModified { .. }
                );
                match store.head(&obj.location).await {
                    Ok(m)
                        if precondition
                            || m.size != size
                            || !same_etag(m.e_tag.as_deref(), etag.as_deref()) =>
                    {
                        changed_since_listing |= m.size != obj.size
                            || !same_etag(m.e_tag.as_deref(), obj.etag.as_deref());
                        size = m.size;
                        etag.clone_from(&m.e_tag);
                        last_modified = ObjectTime::of(&m);
                        continue;
                    }
                    Err(object_store::Error::NotFound { .. }) => {
                        let _ = tx.send(Msg::Vanished).await;
                        return Ok(());
                    }
                    _ => return Err(bucket.error(&e)),
                }
            }
        };
        if let Some(bytes) = got {
            break bytes;
        }
        // A different version answered: adopt what a `HEAD` says and retry.
        match store.head(&obj.location).await {
            Ok(m) => {
                changed_since_listing |=
                    m.size != obj.size || !same_etag(m.e_tag.as_deref(), obj.etag.as_deref());
                size = m.size;
                etag.clone_from(&m.e_tag);
                last_modified = ObjectTime::of(&m);
            }
            Err(object_store::Error::NotFound { .. }) => {
                let _ = tx.send(Msg::Vanished).await;
                return Ok(());
            }
            Err(e) => return Err(bucket.error(&e)),
        }
    };
    let start = Start {
        size,
        etag: etag.clone(),
        last_modified,
        changed_since_listing,
        listed_size: obj.size,
    };
    if tx.send(Msg::Start(start)).await.is_err() {
        return Ok(());
    }
    let mut offset = first.len() as u64;
    if !first.is_empty() && tx.send(Msg::Data(first)).await.is_err() {
        return Ok(());
    }
    while offset < size {
        let end = (offset + piece).min(size);
        let options = GetOptions {
            if_match: etag.clone(),
            range: Some(GetRange::Bounded(offset..end)),
            ..GetOptions::default()
        };
        let msg = match store.get_opts(&obj.location, options).await {
            Ok(r) if r.meta.size == size && same_etag(r.meta.e_tag.as_deref(), etag.as_deref()) => {
                match read_body(bucket, r, end - offset).await? {
                    Some(b) if b.len() as u64 == end - offset => Msg::Data(b),
                    _ => Msg::Changed("was replaced".to_owned()),
                }
            }
            Ok(_) | Err(object_store::Error::Precondition { .. }) => {
                Msg::Changed("was replaced".to_owned())
            }
            Err(object_store::Error::NotFound { .. }) => Msg::Changed("was deleted".to_owned()),
            Err(e) => return Err(bucket.error(&e)),
        };
        let stop = matches!(msg, Msg::Changed(_));
        if tx.send(msg).await.is_err() || stop {
            return Ok(());
        }
        offset = end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    #[test]
    fn keys_follow_the_archive_path_rule() {
        for ok in [
            "a",
            "a/b.pdf",
            "Ünïcødé/日本語 🚀.pdf",
            "x/.hidden",
            "10:30.pdf",
        ] {
            assert_eq!(validate_key(ok), Ok(()), "{ok}");
        }
        for bad in [
            "", "/a", "a//b", "a/", "a/../b", "..", "./a", "a\\b", "a\0b", "c:/x", "d/a:b",
        ] {
            assert!(validate_key(bad).is_err(), "{bad:?} accepted");
        }
    }

    async fn listed(store: &dyn ObjectStore, key: &str) -> Listed {
        let path = Path::from(key);
        let m = store.head(&path).await.expect("head");
        Listed {
            location: path,
            rel: key.to_owned(),
            size: m.size,
            etag: m.e_tag.clone(),
            last_modified: ObjectTime::of(&m),
        }
    }

    fn bucket(store: Arc<dyn ObjectStore>) -> Bucket {
        Bucket {
            store,
            prefix: Path::default(),
            shown: "test".into(),
            redactor: Arc::default(),
        }
    }

    /// An object replaced after its first piece: the download stops with `Changed` (the entry
    /// is then zero-filled and flagged), never mixing two versions: later pieces are requested
    /// with `If-Match` of the version the first piece came from.
    async fn replaced_between_pieces(store: Arc<dyn ObjectStore>) {
        let v1 = vec![1u8; 3 * MIN_PIECE_SIZE];
        store
            .put(&Path::from("big"), v1.clone().into())
            .await
            .expect("put");
        let obj = listed(&*store, "big").await;
        let (tx, mut rx) = mpsc::channel(1);
        let b = bucket(Arc::clone(&store));
        let task = tokio::spawn(async move { download(&b, &obj, MIN_PIECE_SIZE, &tx).await });
        // Channel capacity 1: once we hold `Start`, the task has fetched at most pieces 1 and 2
        // (piece 3 is requested only after piece 1 is taken).
        let Some(Msg::Start(start)) = rx.recv().await else {
            panic!("expected Start");
        };
        assert_eq!(start.size, v1.len() as u64);
        assert!(!start.changed_since_listing);
        store
            .put(&Path::from("big"), vec![2u8; 3 * MIN_PIECE_SIZE].into())
            .await
            .expect("replace");
        let mut pieces = 0;
        loop {
            match rx.recv().await {
                Some(Msg::Data(piece)) => {
                    assert!(piece.len() == MIN_PIECE_SIZE && piece.iter().all(|&b| b == 1));
                    pieces += 1;
                }
                Some(Msg::Changed(reason)) => {
                    assert_eq!(reason, "was replaced");
                    break;
                }
                _ => panic!("expected a piece of the first version or Changed"),
            }
        }
        assert!(
            (1..=2).contains(&pieces),
            "{pieces} pieces before the change"
        );
        assert!(rx.recv().await.is_none());
        task.await.expect("join").expect("download");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn object_replaced_between_pieces_stops_the_download() {
        replaced_between_pieces(Arc::new(InMemory::new())).await;
    }

    /// The same against moto's S3 server: proves the server honours `If-Match` on ranged reads.
    #[cfg(feature = "test-servers")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn object_replaced_between_pieces_on_moto_stops_the_download() {
        let Some(server) = crate::testing::MotoServer::start_or_skip() else {
            return;
        };
        server.create_bucket("wst-pieces").expect("bucket");
        let mut spec = StoreSpec::url("s3://wst-pieces".into());
        spec.set_from_env(false);
        spec.push_options(server.sink_options());
        replaced_between_pieces(spec.open().expect("store").store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn vanished_object_is_reported_not_failed() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        store
            .put(&Path::from("gone"), b"x".to_vec().into())
            .await
            .expect("put");
        let obj = listed(&*store, "gone").await;
        store.delete(&Path::from("gone")).await.expect("delete");
        let (tx, mut rx) = mpsc::channel(1);
        download(&bucket(store), &obj, MIN_PIECE_SIZE, &tx)
            .await
            .expect("download");
        assert!(matches!(rx.recv().await, Some(Msg::Vanished)));
    }

    #[test]
    fn etags_compare_without_quotes() {
        assert!(same_etag(Some("\"abc\""), Some("abc")));
        assert!(same_etag(Some("W/\"abc\""), Some("\"abc\"")));
        assert!(!same_etag(Some("\"abc\""), Some("\"abd\"")));
        assert!(same_etag(None, Some("x")));
    }
}
