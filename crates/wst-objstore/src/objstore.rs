//! A sink over any [`object_store::ObjectStore`]: S3-compatible stores, Azure Blob, GCS, a
//! local directory and memory.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::{Path, PathPart};
use object_store::{
    MultipartUpload, ObjectStore, PutMode, PutMultipartOptions, PutOptions, PutPayload,
};
use tokio::task::JoinSet;
use wst_core::{ByteStream, Medium, ObjectMeta, Sink, SinkInfo, SinkUpload, validate_object_name};

use crate::error::Error;

/// Default size of one multipart part: 16 MiB.
pub const DEFAULT_PART_SIZE: usize = 16 * 1024 * 1024;

/// Smallest accepted part size: 5 MiB, the S3 minimum for every part but the last.
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;

/// Largest part size the upload grows to: 256 MiB (see [`ObjectStoreSinkBuilder::part_size`]).
pub const MAX_PART_SIZE: usize = 256 * 1024 * 1024;

/// Default number of parts uploaded concurrently: 4.
pub const DEFAULT_MAX_CONCURRENCY: usize = 4;

/// Number of parts after which the part size doubles (S3 and GCS allow 10 000 parts).
const PARTS_PER_SIZE_STEP: usize = 1000;

/// Option keys whose values are shown by `Debug` and not treated as secrets. Every other
/// option value is redacted from `Debug` output and error messages.
const NON_SECRET_KEY_PARTS: &[&str] = &[
    "region",
    "endpoint",
    "allow_http",
    "bucket",
    "container_name",
    "account_name",
    "use_emulator",
    "virtual_hosted",
    "timeout",
    "skip_signature",
    "imdsv1",
    "checksum",
    "s3_express",
    "unsigned_payload",
    "conditional_put",
    "copy_if_not_exists",
    "user_agent",
    "proxy_url",
    "http1_only",
    "http2_only",
];

/// Environment variables that may hold credentials; their values are redacted from error
/// messages when set.
const SECRET_ENV_VARS: &[&str] = &[
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ACCESS_KEY_ID",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_MASTER_KEY",
    "AZURE_STORAGE_SAS_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_STORAGE_TOKEN",
    "AZURE_CLIENT_SECRET",
    "GOOGLE_SERVICE_ACCOUNT_KEY",
];

pub(crate) const REDACTED: &str = "[REDACTED]";

pub(crate) fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    !NON_SECRET_KEY_PARTS.iter().any(|p| k.contains(p))
}

/// Removes known secret values and URL query strings (which may carry SAS signatures) from an
/// error message, so that no credential reaches an error, a log or the audit trail (design
/// invariant 7).
#[derive(Clone, Default)]
pub(crate) struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    pub(crate) fn new(options: &[(String, String)]) -> Self {
        let mut secrets: Vec<String> = options
            .iter()
            .filter(|(k, _)| is_secret_key(k))
            .map(|(_, v)| v.clone())
            .chain(SECRET_ENV_VARS.iter().filter_map(|v| std::env::var(v).ok()))
            .filter(|v| v.len() >= 4)
            .collect();
        // Longest first, so that a secret containing another is removed whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Self { secrets }
    }

    pub(crate) fn redact(&self, text: &str) -> String {
        let mut out = strip_url_queries(text);
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), REDACTED);
            }
        }
        out
    }
}

/// Replaces the query string of every `http://` or `https://` URL in `text` with `?[REDACTED]`.
fn strip_url_queries(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let start = match (rest.find("http://"), rest.find("https://")) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => break,
        };
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ')' | '>' | ','))
            .unwrap_or(tail.len());
        let url = &tail[..end];
        match url.find('?') {
            Some(q) => {
                out.push_str(&url[..q]);
                out.push('?');
                out.push_str(REDACTED);
            }
            None => out.push_str(url),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Where the store of a builder comes from.
enum StoreSource {
    Url(String),
    Store {
        store: Arc<dyn ObjectStore>,
        prefix: String,
    },
}

/// Configures an [`ObjectStoreSink`]; created by [`ObjectStoreSink::builder`] or
/// [`ObjectStoreSink::builder_for_store`].
///
/// `Debug` shows option keys and only non-secret values (region, endpoint, `allow_http`, …);
/// every other value prints as `[REDACTED]`.
pub struct ObjectStoreSinkBuilder {
    name: String,
    source: StoreSource,
    options: Vec<(String, String)>,
    from_env: bool,
    offsite: bool,
    medium: Option<Medium>,
    part_size: usize,
    max_concurrency: usize,
}

impl fmt::Debug for ObjectStoreSinkBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let options: Vec<String> = self
            .options
            .iter()
            .map(|(k, v)| {
                if is_secret_key(k) {
                    format!("{k}={REDACTED}")
                } else {
                    format!("{k}={v}")
                }
            })
            .collect();
        let source = match &self.source {
            StoreSource::Url(u) => redact_url(u),
            StoreSource::Store { store, prefix } => format!("{store}/{prefix}"),
        };
        f.debug_struct("ObjectStoreSinkBuilder")
            .field("name", &self.name)
            .field("source", &source)
            .field("options", &options)
            .field("from_env", &self.from_env)
            .field("offsite", &self.offsite)
            .field("medium", &self.medium)
            .field("part_size", &self.part_size)
            .field("max_concurrency", &self.max_concurrency)
            .finish()
    }
}

/// The URL without user info and query string, for display.
pub(crate) fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => "<unparsable URL>".to_owned(),
    }
}

impl ObjectStoreSinkBuilder {
    /// Adds one `object_store` configuration option, e.g. `("aws_endpoint",
    /// "http://127.0.0.1:9000")`, `("aws_region", "eu-west-1")`, `("allow_http", "true")`,
    /// `("aws_access_key_id", …)`, `("azure_storage_account_name", …)`,
    /// `("azure_storage_account_key", …)`, `("google_service_account", "/path/key.json")`.
    ///
    /// Keys are those of `object_store`'s `AmazonS3ConfigKey`, `AzureConfigKey` and
    /// `GoogleConfigKey` (with or without their `aws_`/`azure_storage_`/`google_` prefix),
    /// including the HTTP client keys such as `allow_http` and `timeout`. Options override the
    /// environment. Credentials belong here (read from the operator's configuration) or in the
    /// environment, never in the URL or in code.
    #[must_use]
    pub fn option(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.options.push((key.into(), value.into()));
        self
    }

    /// Adds several options; see [`option`](Self::option).
    #[must_use]
    pub fn options<K: Into<String>, V: Into<String>>(
        mut self,
        options: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.options
            .extend(options.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Whether to read configuration and credentials from the environment first (`AWS_*` for
    /// `s3://`, `AZURE_*` for `az://`, `GOOGLE_*` for `gs://`), as `object_store`'s
    /// `from_env` builders do. Default: `true`. Options given here override the environment.
    #[must_use]
    pub fn from_env(mut self, from_env: bool) -> Self {
        self.from_env = from_env;
        self
    }

    /// Marks the sink as offsite (another physical location than the production system), for
    /// the 3-2-1 check. Default: `false`: an object store is only counted offsite when the
    /// operator says so (an on-premises S3 server is not offsite).
    #[must_use]
    pub fn offsite(mut self, offsite: bool) -> Self {
        self.offsite = offsite;
        self
    }

    /// The medium reported for the 3-2-1 check. Default: [`Medium::Disk`] for `file://`,
    /// [`Medium::ObjectStorage`] for everything else.
    #[must_use]
    pub fn medium(mut self, medium: Medium) -> Self {
        self.medium = Some(medium);
        self
    }

    /// Initial size in bytes of one multipart part. Default: [`DEFAULT_PART_SIZE`]; at least
    /// [`MIN_PART_SIZE`].
    ///
    /// An object smaller than one part is stored with a single `PUT`. Larger objects are
    /// uploaded in parts of this size; after every 1000 parts the part size doubles, up to
    /// [`MAX_PART_SIZE`], so that the 10 000-part limit of S3 and GCS allows objects of
    /// several terabytes. Memory per upload is bounded by about
    /// `part size × (max_concurrency + 1)`.
    #[must_use]
    pub fn part_size(mut self, bytes: usize) -> Self {
        self.part_size = bytes;
        self
    }

    /// Number of parts uploaded concurrently (at least 1). Default: [`DEFAULT_MAX_CONCURRENCY`].
    /// A write waits (back-pressure) while this many parts are in flight.
    #[must_use]
    pub fn max_concurrency(mut self, parts: usize) -> Self {
        self.max_concurrency = parts.max(1);
        self
    }

    /// Builds the sink. No request is made: an unreachable store or bad credentials show up on
    /// the first operation.
    ///
    /// Supported URLs: `s3://bucket[/prefix]` (also `s3a://`), `az://container[/prefix]` (also
    /// `azure://`), `gs://bucket[/prefix]`, `file:///absolute/dir` and `memory://[prefix]`.
    ///
    /// # Errors
    /// [`wst_core::Error::Config`] for an empty name, an unparsable or unsupported URL, a URL
    /// carrying credentials, an unknown option key, a part size under [`MIN_PART_SIZE`], or a
    /// store `object_store` refuses to build (missing bucket, region or account); the message
    /// never contains an option's secret value.
    pub fn build(self) -> wst_core::Result<ObjectStoreSink> {
        if self.name.trim().is_empty() {
            return Err(config(
                "an object-store sink needs a non-empty name (e.g. `offsite-s3`)",
            ));
        }
        if self.part_size < MIN_PART_SIZE {
            return Err(config(format!(
                "part size {} bytes is below the minimum of {MIN_PART_SIZE} bytes (5 MiB, the S3 \
                 minimum part size)",
                self.part_size
            )));
        }
        let redactor = Redactor::new(&self.options);
        let (store, prefix, location, default_medium) = match self.source {
            StoreSource::Store { store, prefix } => {
                let location = format!("{store}/{prefix}");
                (store, prefix, location, Medium::ObjectStorage)
            }
            StoreSource::Url(ref url) => {
                let (store, prefix, medium) =
                    store_from_url(url, &self.options, self.from_env, &redactor)?;
                (store, prefix, redact_url(url), medium)
            }
        };
        let prefix = Path::from_url_path(prefix.trim_matches('/')).map_err(|e| {
            config(format!(
                "invalid object prefix in `{location}`: {}",
                redactor.redact(&e.to_string())
            ))
        })?;
        Ok(ObjectStoreSink {
            info: SinkInfo {
                name: self.name,
                medium: self.medium.unwrap_or(default_medium),
                offsite: self.offsite,
                location,
            },
            store,
            prefix,
            part_size: self.part_size,
            max_concurrency: self.max_concurrency,
            redactor: Arc::new(redactor),
        })
    }
}

pub(crate) fn config(message: impl Into<String>) -> wst_core::Error {
    wst_core::Error::Config(message.into())
}

/// Builds the store for `url`; returns it, the object prefix (URL path) and the default medium.
pub(crate) fn store_from_url(
    url_text: &str,
    options: &[(String, String)],
    from_env: bool,
    redactor: &Redactor,
) -> wst_core::Result<(Arc<dyn ObjectStore>, String, Medium)> {
    let shown = redact_url(url_text);
    let url = url::Url::parse(url_text)
        .map_err(|e| config(format!("cannot parse sink URL `{shown}`: {e}")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(config(format!(
            "sink URL `{shown}` carries credentials: put them in the environment (AWS_*, AZURE_*, \
             GOOGLE_*) or the builder's options, never in the URL"
        )));
    }
    let built = |r: object_store::Result<Arc<dyn ObjectStore>>| {
        r.map_err(|e| {
            config(format!(
                "cannot configure object store for `{shown}`: {}",
                redactor.redact(&e.to_string())
            ))
        })
    };
    let unknown = |key: &str| {
        config(format!(
            "unknown option `{key}` for a `{}://` sink",
            url.scheme()
        ))
    };
    let prefix = url.path().to_owned();
    match url.scheme() {
        "s3" | "s3a" => {
            let mut b = if from_env {
                AmazonS3Builder::from_env()
            } else {
                AmazonS3Builder::new()
            }
            .with_url(url_text);
            for (k, v) in options {
                let key: AmazonS3ConfigKey = k.parse().map_err(|_| unknown(k))?;
                b = b.with_config(key, v);
            }
            let store = built(b.build().map(|s| Arc::new(s) as Arc<dyn ObjectStore>))?;
            Ok((store, prefix, Medium::ObjectStorage))
        }
        "az" | "azure" => {
            let mut b = if from_env {
                MicrosoftAzureBuilder::from_env()
            } else {
                MicrosoftAzureBuilder::new()
            }
            .with_url(url_text);
            for (k, v) in options {
                let key: AzureConfigKey = k.parse().map_err(|_| unknown(k))?;
                b = b.with_config(key, v);
            }
            let store = built(b.build().map(|s| Arc::new(s) as Arc<dyn ObjectStore>))?;
            Ok((store, prefix, Medium::ObjectStorage))
        }
        "gs" => {
            let mut b = if from_env {
                GoogleCloudStorageBuilder::from_env()
            } else {
                GoogleCloudStorageBuilder::new()
            }
            .with_url(url_text);
            for (k, v) in options {
                let key: GoogleConfigKey = k.parse().map_err(|_| unknown(k))?;
                b = b.with_config(key, v);
            }
            let store = built(b.build().map(|s| Arc::new(s) as Arc<dyn ObjectStore>))?;
            Ok((store, prefix, Medium::ObjectStorage))
        }
        "file" => {
            if let Some((k, _)) = options.first() {
                return Err(unknown(k));
            }
            let dir = url
                .to_file_path()
                .map_err(|()| config(format!("`{shown}` is not an absolute local path")))?;
            let store = built(
                LocalFileSystem::new_with_prefix(&dir).map(|s| Arc::new(s) as Arc<dyn ObjectStore>),
            )?;
            Ok((store, String::new(), Medium::Disk))
        }
        "memory" => {
            if let Some((k, _)) = options.first() {
                return Err(unknown(k));
            }
            // `memory://prefix` parses `prefix` as the host.
            let prefix = format!("{}{}", url.host_str().unwrap_or(""), url.path());
            Ok((Arc::new(InMemory::new()), prefix, Medium::ObjectStorage))
        }
        other => Err(config(format!(
            "unsupported sink URL scheme `{other}://` in `{shown}`: use s3://, az://, gs://, \
             file:// or memory://"
        ))),
    }
}

/// A sink over an [`ObjectStore`]: the doctrine's optional offsite cloud copy (S3-compatible,
/// Azure Blob, GCS), or a local directory or memory.
///
/// # Behaviour
/// - **Atomic, streaming put.** Data is buffered up to one part
///   ([`ObjectStoreSinkBuilder::part_size`]); an object that fits is stored with one `PUT` on
///   [`SinkUpload::complete`]. A larger one becomes a multipart upload (S3 multipart, Azure
///   block list, GCS XML multipart) with up to
///   [`ObjectStoreSinkBuilder::max_concurrency`] parts in flight; writes wait while that many
///   are in flight, so memory stays bounded. The object becomes visible under its name only
///   when the store commits the completed upload.
/// - **Failure and interruption.** A failed part, a failed completion, [`SinkUpload::abort`]
///   or dropping the upload aborts the multipart upload (on drop, in a task spawned on the
///   current tokio runtime), so nothing appears under the final name. If the process dies
///   mid-upload, the store keeps the uploaded parts invisibly until its own clean-up (an S3
///   lifecycle rule `AbortIncompleteMultipartUpload`; Azure discards uncommitted blocks after
///   7 days).
/// - **Layout.** Objects are stored directly under the URL's path (the prefix); `list` lists
///   only that level.
/// - **Secrets.** Credentials come from the environment or the builder's options. `Debug` shows
///   no credential, and error messages have option secrets and URL query strings (SAS
///   signatures) removed (design invariant 7).
pub struct ObjectStoreSink {
    info: SinkInfo,
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    part_size: usize,
    max_concurrency: usize,
    redactor: Arc<Redactor>,
}

impl fmt::Debug for ObjectStoreSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The store's own `Debug` may print credentials; its `Display` names only the bucket.
        f.debug_struct("ObjectStoreSink")
            .field("info", &self.info)
            .field("store", &self.store.to_string())
            .field("prefix", &self.prefix.as_ref())
            .field("part_size", &self.part_size)
            .field("max_concurrency", &self.max_concurrency)
            .finish_non_exhaustive()
    }
}

impl ObjectStoreSink {
    /// Starts configuring a sink called `name` (e.g. `"offsite-s3"`) on the store at `url`:
    /// `s3://bucket/prefix`, `az://container/prefix`, `gs://bucket/prefix`, `file:///dir` or
    /// `memory://`. Finish with [`ObjectStoreSinkBuilder::build`].
    ///
    /// For an S3-compatible server give its endpoint and region as options, e.g.
    /// `.option("aws_endpoint", "http://127.0.0.1:9000").option("aws_region", "us-east-1")
    /// .option("allow_http", "true")`.
    pub fn builder(name: impl Into<String>, url: impl Into<String>) -> ObjectStoreSinkBuilder {
        Self::builder_from(name.into(), StoreSource::Url(url.into()))
    }

    /// Starts configuring a sink over an already built store; objects live under `prefix`
    /// (`/`-separated, may be empty). URL options and `from_env` do not apply.
    pub fn builder_for_store(
        name: impl Into<String>,
        store: Arc<dyn ObjectStore>,
        prefix: impl Into<String>,
    ) -> ObjectStoreSinkBuilder {
        Self::builder_from(
            name.into(),
            StoreSource::Store {
                store,
                prefix: prefix.into(),
            },
        )
    }

    fn builder_from(name: String, source: StoreSource) -> ObjectStoreSinkBuilder {
        ObjectStoreSinkBuilder {
            name,
            source,
            options: Vec::new(),
            from_env: true,
            offsite: false,
            medium: None,
            part_size: DEFAULT_PART_SIZE,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
        }
    }

    /// An empty in-memory sink (`memory://`), onsite, for unit tests.
    pub fn memory(name: impl Into<String>) -> Self {
        Self {
            info: SinkInfo {
                name: name.into(),
                medium: Medium::ObjectStorage,
                offsite: false,
                location: "memory://".to_owned(),
            },
            store: Arc::new(InMemory::new()),
            prefix: Path::default(),
            part_size: DEFAULT_PART_SIZE,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            redactor: Arc::new(Redactor::default()),
        }
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The path of object `name` in the store, after validating the name.
    fn path_of(&self, name: &str) -> wst_core::Result<Path> {
        validate_object_name(name)?;
        let part = PathPart::parse(name).map_err(|e| wst_core::Error::InvalidName {
            name: name.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(self.prefix.child(part))
    }

    fn err(&self, operation: &'static str, name: &str, e: &object_store::Error) -> wst_core::Error {
        store_error(&self.redactor, &self.info.name, operation, name, e)
    }
}

/// Converts an `object_store` error, redacted, into the wst-core error of a sink operation.
fn store_error(
    redactor: &Redactor,
    sink: &str,
    operation: &'static str,
    name: &str,
    e: &object_store::Error,
) -> wst_core::Error {
    if let object_store::Error::NotFound { .. } = e
        && matches!(operation, "get" | "head")
    {
        return wst_core::Error::NotFound {
            sink: sink.to_owned(),
            name: name.to_owned(),
        };
    }
    let retryable = matches!(
        e,
        object_store::Error::Generic { .. } | object_store::Error::JoinError { .. }
    );
    Error::ObjectStore {
        message: redactor.redact(&e.to_string()),
        retryable,
    }
    .into_sink_error(sink, operation, name)
}

fn to_meta(
    sink: &str,
    operation: &'static str,
    name: &str,
    m: &object_store::ObjectMeta,
) -> wst_core::Result<ObjectMeta> {
    let t = m.last_modified;
    let last_modified =
        jiff::Timestamp::new(t.timestamp(), t.timestamp_subsec_nanos().cast_signed()).map_err(
            |e| {
                Error::ObjectStore {
                    message: format!("the store reported an invalid modification time: {e}"),
                    retryable: false,
                }
                .into_sink_error(sink, operation, name)
            },
        )?;
    Ok(ObjectMeta {
        name: name.to_owned(),
        size: m.size,
        last_modified,
    })
}

#[async_trait]
impl Sink for ObjectStoreSink {
    fn info(&self) -> &SinkInfo {
        &self.info
    }

    async fn put(&self, name: &str) -> wst_core::Result<Box<dyn SinkUpload>> {
        let path = self.path_of(name)?;
        Ok(Box::new(ObjectStoreUpload {
            sink: self.info.name.clone(),
            name: name.to_owned(),
            store: Arc::clone(&self.store),
            path,
            redactor: Arc::clone(&self.redactor),
            buffer: VecDeque::new(),
            buffered: 0,
            initial_part_size: self.part_size,
            max_concurrency: self.max_concurrency,
            parts: 0,
            written: 0,
            multipart: None,
            poisoned: false,
        }))
    }

    async fn get(&self, name: &str) -> wst_core::Result<ByteStream> {
        let path = self.path_of(name)?;
        let result = self
            .store
            .get(&path)
            .await
            .map_err(|e| self.err("get", name, &e))?;
        let redactor = Arc::clone(&self.redactor);
        let sink = self.info.name.clone();
        let name = name.to_owned();
        Ok(Box::pin(result.into_stream().map_err(move |e| {
            store_error(&redactor, &sink, "get", &name, &e)
        })))
    }

    async fn head(&self, name: &str) -> wst_core::Result<ObjectMeta> {
        let path = self.path_of(name)?;
        let m = self
            .store
            .head(&path)
            .await
            .map_err(|e| self.err("head", name, &e))?;
        to_meta(&self.info.name, "head", name, &m)
    }

    async fn list(&self, prefix: &str) -> wst_core::Result<Vec<ObjectMeta>> {
        let base = (!self.prefix.as_ref().is_empty()).then_some(&self.prefix);
        let listing = self
            .store
            .list_with_delimiter(base)
            .await
            .map_err(|e| self.err("list", prefix, &e))?;
        let mut out = Vec::new();
        for m in &listing.objects {
            let Some(file) = m.location.filename() else {
                continue;
            };
            if file.starts_with(prefix) && validate_object_name(file).is_ok() {
                out.push(to_meta(&self.info.name, "list", file, m)?);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn delete(&self, name: &str) -> wst_core::Result<()> {
        let path = self.path_of(name)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err("delete", name, &e)),
        }
    }

    /// Create-if-absent with the store's conditional put (`PutMode::Create`: `If-None-Match: *`
    /// on S3 and Azure). A store that does not implement conditional puts (an older S3
    /// emulator, say) gets the non-atomic check-then-put, with a warning in the log.
    async fn create(&self, name: &str, data: Bytes) -> wst_core::Result<ObjectMeta> {
        let path = self.path_of(name)?;
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .store
            .put_opts(&path, PutPayload::from(data.clone()), opts)
            .await
        {
            Ok(_) => self.head(name).await,
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Err(wst_core::Error::AlreadyExists {
                sink: self.info.name.clone(),
                name: name.to_owned(),
            }),
            Err(object_store::Error::NotImplemented) => {
                tracing::warn!(sink = %self.info.name, name, "the store has no conditional put: create-if-absent falls back to check-then-put, which two hosts can race");
                if self.head(name).await.is_ok() {
                    return Err(wst_core::Error::AlreadyExists {
                        sink: self.info.name.clone(),
                        name: name.to_owned(),
                    });
                }
                self.store
                    .put(&path, PutPayload::from(data))
                    .await
                    .map_err(|e| self.err("put", name, &e))?;
                self.head(name).await
            }
            Err(e) => Err(self.err("put", name, &e)),
        }
    }
}

/// A multipart upload in progress and its part uploads in flight.
struct Multipart {
    upload: Box<dyn MultipartUpload>,
    tasks: JoinSet<object_store::Result<()>>,
}

/// One in-progress upload to an [`ObjectStoreSink`].
struct ObjectStoreUpload {
    sink: String,
    name: String,
    store: Arc<dyn ObjectStore>,
    path: Path,
    redactor: Arc<Redactor>,
    /// Data not yet handed to a part (or to the single `PUT`).
    buffer: VecDeque<Bytes>,
    buffered: usize,
    initial_part_size: usize,
    max_concurrency: usize,
    /// Parts started so far.
    parts: usize,
    written: u64,
    multipart: Option<Multipart>,
    poisoned: bool,
}

impl ObjectStoreUpload {
    fn err(&self, e: &object_store::Error) -> wst_core::Error {
        store_error(&self.redactor, &self.sink, "put", &self.name, e)
    }

    /// The size of the next part: doubling every [`PARTS_PER_SIZE_STEP`] parts, capped.
    fn current_part_size(&self) -> usize {
        let doublings = u32::try_from(self.parts / PARTS_PER_SIZE_STEP).unwrap_or(u32::MAX);
        self.initial_part_size
            .checked_mul(1usize.checked_shl(doublings).unwrap_or(usize::MAX))
            .unwrap_or(MAX_PART_SIZE)
            .min(MAX_PART_SIZE.max(self.initial_part_size))
    }

    /// Takes exactly `len` buffered bytes (zero-copy) as one payload.
    fn take_part(&mut self, len: usize) -> PutPayload {
        let mut need = len;
        let mut pieces = Vec::new();
        while need > 0 {
            let Some(mut b) = self.buffer.pop_front() else {
                break;
            };
            if b.len() > need {
                let rest = b.split_off(need);
                self.buffer.push_front(rest);
            }
            need -= b.len();
            pieces.push(b);
        }
        self.buffered -= len - need;
        pieces.into_iter().collect()
    }

    /// Waits until fewer than `limit` parts are in flight; the first part error poisons.
    async fn drain_to(&mut self, limit: usize) -> wst_core::Result<()> {
        loop {
            let joined = match self.multipart.as_mut() {
                Some(mp) if mp.tasks.len() > limit => mp.tasks.join_next().await,
                _ => return Ok(()),
            };
            let Some(joined) = joined else {
                return Ok(());
            };
            if let Err(e) = joined.map_err(object_store::Error::from).and_then(|r| r) {
                self.poisoned = true;
                let err = self.err(&e);
                self.abort_multipart().await;
                return Err(err);
            }
        }
    }

    /// Starts the multipart upload if needed and hands one part to it.
    async fn send_part(&mut self, payload: PutPayload) -> wst_core::Result<()> {
        if self.multipart.is_none() {
            let upload = self
                .store
                .put_multipart_opts(&self.path, PutMultipartOptions::default())
                .await
                .map_err(|e| {
                    self.poisoned = true;
                    self.err(&e)
                })?;
            self.multipart = Some(Multipart {
                upload,
                tasks: JoinSet::new(),
            });
        }
        self.drain_to(self.max_concurrency.saturating_sub(1))
            .await?;
        if let Some(mp) = self.multipart.as_mut() {
            mp.tasks.spawn(mp.upload.put_part(payload));
        }
        self.parts += 1;
        Ok(())
    }

    /// Cancels the part uploads and aborts the multipart upload (best effort, logged).
    async fn abort_multipart(&mut self) {
        if let Some(mut mp) = self.multipart.take() {
            mp.tasks.shutdown().await;
            if let Err(e) = mp.upload.abort().await {
                tracing::warn!(
                    sink = %self.sink,
                    name = %self.name,
                    error = %self.redactor.redact(&e.to_string()),
                    "aborting multipart upload failed; the store's clean-up will remove the parts"
                );
            }
        }
    }

    fn poisoned_error(&self) -> wst_core::Error {
        Error::UploadPoisoned {
            name: self.name.clone(),
        }
        .into_sink_error(&self.sink, "put", &self.name)
    }
}

#[async_trait]
impl SinkUpload for ObjectStoreUpload {
    async fn write(&mut self, data: Bytes) -> wst_core::Result<()> {
        if self.poisoned {
            return Err(self.poisoned_error());
        }
        self.written += data.len() as u64;
        self.buffered += data.len();
        if !data.is_empty() {
            self.buffer.push_back(data);
        }
        loop {
            let part = self.current_part_size();
            if self.buffered < part {
                return Ok(());
            }
            let payload = self.take_part(part);
            self.send_part(payload).await?;
        }
    }

    async fn complete(mut self: Box<Self>) -> wst_core::Result<ObjectMeta> {
        if self.poisoned {
            return Err(self.poisoned_error());
        }
        let rest = self.take_part(self.buffered);
        if self.multipart.is_none() {
            self.store
                .put_opts(&self.path, rest, PutOptions::default())
                .await
                .map_err(|e| self.err(&e))?;
        } else {
            if rest.content_length() > 0 {
                self.send_part(rest).await?;
            }
            self.drain_to(0).await?;
            if let Some(mut mp) = self.multipart.take()
                && let Err(e) = mp.upload.complete().await
            {
                let err = self.err(&e);
                self.multipart = Some(mp);
                self.abort_multipart().await;
                return Err(err);
            }
        }
        let m = self
            .store
            .head(&self.path)
            .await
            .map_err(|e| self.err(&e))?;
        tracing::debug!(sink = %self.sink, name = %self.name, bytes = self.written, parts = self.parts, "upload completed");
        to_meta(&self.sink, "put", &self.name, &m)
    }

    async fn abort(mut self: Box<Self>) -> wst_core::Result<()> {
        if let Some(mut mp) = self.multipart.take() {
            mp.tasks.shutdown().await;
            mp.upload.abort().await.map_err(|e| self.err(&e))?;
        }
        tracing::debug!(sink = %self.sink, name = %self.name, "upload aborted");
        Ok(())
    }
}

impl Drop for ObjectStoreUpload {
    fn drop(&mut self) {
        let Some(mut mp) = self.multipart.take() else {
            return;
        };
        // Part uploads still in flight are cancelled when the JoinSet drops; the multipart
        // upload itself needs an abort request, which needs a runtime.
        mp.tasks.abort_all();
        let sink = self.sink.clone();
        let name = self.name.clone();
        let redactor = Arc::clone(&self.redactor);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                mp.tasks.shutdown().await;
                if let Err(e) = mp.upload.abort().await {
                    tracing::warn!(
                        sink = %sink, name = %name,
                        error = %redactor.redact(&e.to_string()),
                        "aborting dropped multipart upload failed; the store's clean-up will remove the parts"
                    );
                }
            });
        } else {
            tracing::warn!(
                sink = %sink, name = %name,
                "multipart upload dropped outside a tokio runtime; not aborted, the store's clean-up will remove the parts"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_queries_are_stripped() {
        assert_eq!(
            strip_url_queries(
                "error sending request for url (https://a.blob/c/x?sig=SECRET&se=1): boom"
            ),
            "error sending request for url (https://a.blob/c/x?[REDACTED]): boom"
        );
        assert_eq!(strip_url_queries("no url here"), "no url here");
        assert_eq!(
            strip_url_queries("http://h/a and https://h/b?x=1"),
            "http://h/a and https://h/b?[REDACTED]"
        );
    }

    #[test]
    fn secrets_are_redacted_but_region_is_not() {
        let r = Redactor::new(&[
            (
                "aws_secret_access_key".to_owned(),
                "s3cr3t-value".to_owned(),
            ),
            ("aws_region".to_owned(), "eu-west-1".to_owned()),
        ]);
        assert_eq!(
            r.redact("bad key s3cr3t-value in eu-west-1"),
            "bad key [REDACTED] in eu-west-1"
        );
    }

    fn test_upload(buffer: &[&'static [u8]]) -> ObjectStoreUpload {
        let buffer: VecDeque<Bytes> = buffer.iter().map(|b| Bytes::from_static(b)).collect();
        let buffered = buffer.iter().map(Bytes::len).sum();
        ObjectStoreUpload {
            sink: "m".into(),
            name: "n".into(),
            store: Arc::new(InMemory::new()),
            path: Path::from("n"),
            redactor: Arc::default(),
            buffer,
            buffered,
            initial_part_size: MIN_PART_SIZE,
            max_concurrency: 1,
            parts: 0,
            written: 0,
            multipart: None,
            poisoned: false,
        }
    }

    #[test]
    fn part_size_doubles_every_thousand_parts_up_to_the_cap() {
        let mut u = test_upload(&[]);
        assert_eq!(u.current_part_size(), MIN_PART_SIZE);
        u.parts = 999;
        assert_eq!(u.current_part_size(), MIN_PART_SIZE);
        u.parts = 1000;
        assert_eq!(u.current_part_size(), 2 * MIN_PART_SIZE);
        u.parts = 3500;
        assert_eq!(u.current_part_size(), 8 * MIN_PART_SIZE);
        u.parts = 9999;
        assert_eq!(u.current_part_size(), MAX_PART_SIZE);
    }

    #[test]
    fn take_part_splits_without_losing_bytes() {
        let mut u = test_upload(&[b"abc", b"defg"]);
        let p = u.take_part(5);
        assert_eq!(p.content_length(), 5);
        let joined: Vec<u8> = p.iter().flat_map(|b| b.to_vec()).collect();
        assert_eq!(joined, b"abcde");
        assert_eq!(u.buffered, 2);
        let rest = u.take_part(u.buffered);
        let joined: Vec<u8> = rest.iter().flat_map(|b| b.to_vec()).collect();
        assert_eq!(joined, b"fg");
        assert_eq!(u.buffered, 0);
    }
}
