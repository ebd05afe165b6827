//! The `Sink` trait: a place where artifacts live (local disk, a mirror disk, object storage).

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The storage medium of a sink, for the 3-2-1 rule's "two media types".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Medium {
    /// A local or attached disk (the doctrine's C: and D: layers).
    Disk,
    /// Object storage (S3-compatible, Azure Blob, GCS).
    ObjectStorage,
    /// Tape or another offline medium.
    Tape,
}

impl fmt::Display for Medium {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Disk => "disk",
            Self::ObjectStorage => "object_storage",
            Self::Tape => "tape",
        })
    }
}

/// What a sink is, for reports and the 3-2-1 check. Contains no credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkInfo {
    /// The configured name, e.g. `"local-c"`, `"mirror-d"`, `"offsite-s3"`.
    pub name: String,
    /// The medium.
    pub medium: Medium,
    /// Whether the sink is in another physical location than the production system.
    pub offsite: bool,
    /// A human-readable location without secrets, e.g. `/srv/wst` or `s3://bucket/prefix`.
    pub location: String,
}

/// Metadata of one stored object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    /// The object name relative to the sink (no directories: artifact and sidecar names).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification time (UTC), as reported by the sink.
    pub last_modified: jiff::Timestamp,
}

/// A stream of an object's bytes, in chunks of any size.
pub type ByteStream = BoxStream<'static, Result<Bytes>>;

/// A place artifacts live.
///
/// Behaviour every implementation guarantees (checked by the conformance suite):
/// - [`Sink::put`] is atomic: nothing is visible under the final name until
///   [`SinkUpload::complete`] returns `Ok`; an upload that is aborted, dropped or interrupted by a
///   crash leaves no object under that name (temporary data is cleaned up later).
/// - A completed put replaces an existing object of the same name atomically.
/// - [`Sink::list`] returns only completed objects, sorted by name.
/// - Names are plain file names: no `/`, `\`, `..`, or leading `.`; see [`validate_object_name`].
#[async_trait]
pub trait Sink: Send + Sync + fmt::Debug {
    /// What this sink is.
    fn info(&self) -> &SinkInfo;

    /// Starts an atomic upload of `name`.
    ///
    /// # Errors
    /// [`Error::InvalidName`] for a bad name; [`Error::Sink`] when the sink is unreachable.
    async fn put(&self, name: &str) -> Result<Box<dyn SinkUpload>>;

    /// Streams the object `name`.
    ///
    /// # Errors
    /// [`Error::NotFound`] when it does not exist; [`Error::Sink`] otherwise.
    async fn get(&self, name: &str) -> Result<ByteStream>;

    /// Metadata of `name`.
    ///
    /// # Errors
    /// [`Error::NotFound`] when it does not exist; [`Error::Sink`] otherwise.
    async fn head(&self, name: &str) -> Result<ObjectMeta>;

    /// Completed objects whose name starts with `prefix` (empty: all), sorted by name.
    ///
    /// # Errors
    /// [`Error::Sink`] when the sink cannot be listed.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>>;

    /// Deletes `name`. Deleting a missing object is `Ok` (idempotent), as in object stores.
    ///
    /// # Errors
    /// [`Error::Sink`] when the deletion failed.
    async fn delete(&self, name: &str) -> Result<()>;

    /// Stores the small object `data` under `name` only if no object of that name exists
    /// (create-if-absent), atomically: of two concurrent creates of one name, on one host or
    /// two, exactly one succeeds. The repository claims artifact names with it, so two hosts
    /// backing up one repository in the same second never overwrite each other's artifact
    /// (issue 14).
    ///
    /// The provided implementation checks with [`Sink::head`] and then puts, which is **not
    /// atomic**: implementations override it with the storage's own primitive (`O_EXCL`/hard
    /// link on a disk, `If-None-Match: *` on S3 and Azure). wst's sinks all do.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`] when `name` exists; otherwise as [`Sink::put`].
    async fn create(&self, name: &str, data: Bytes) -> Result<ObjectMeta> {
        match self.head(name).await {
            Ok(_) => {
                return Err(Error::AlreadyExists {
                    sink: self.info().name.clone(),
                    name: name.to_owned(),
                });
            }
            Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        let mut up = self.put(name).await?;
        if let Err(e) = up.write(data).await {
            let _ = up.abort().await;
            return Err(e);
        }
        up.complete().await
    }
}

/// One in-progress atomic upload.
#[async_trait]
pub trait SinkUpload: Send {
    /// Appends bytes. Back-pressure: returns when the data is accepted (buffered or written).
    ///
    /// # Errors
    /// [`Error::Sink`] on a write failure; the upload is then unusable and must be aborted.
    async fn write(&mut self, data: Bytes) -> Result<()>;

    /// Makes the object durable and visible under its final name.
    ///
    /// # Errors
    /// [`Error::Sink`]; the object is then not visible under its final name.
    async fn complete(self: Box<Self>) -> Result<ObjectMeta>;

    /// Discards the upload; nothing becomes visible.
    ///
    /// # Errors
    /// [`Error::Sink`] when cleanup failed (the partial data is still invisible).
    async fn abort(self: Box<Self>) -> Result<()>;
}

#[async_trait]
impl<S: Sink + ?Sized> Sink for Arc<S> {
    fn info(&self) -> &SinkInfo {
        (**self).info()
    }
    async fn put(&self, name: &str) -> Result<Box<dyn SinkUpload>> {
        (**self).put(name).await
    }
    async fn get(&self, name: &str) -> Result<ByteStream> {
        (**self).get(name).await
    }
    async fn head(&self, name: &str) -> Result<ObjectMeta> {
        (**self).head(name).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        (**self).list(prefix).await
    }
    async fn delete(&self, name: &str) -> Result<()> {
        (**self).delete(name).await
    }
    async fn create(&self, name: &str, data: Bytes) -> Result<ObjectMeta> {
        (**self).create(name, data).await
    }
}

#[async_trait]
impl<S: Sink + ?Sized> Sink for Box<S> {
    fn info(&self) -> &SinkInfo {
        (**self).info()
    }
    async fn put(&self, name: &str) -> Result<Box<dyn SinkUpload>> {
        (**self).put(name).await
    }
    async fn get(&self, name: &str) -> Result<ByteStream> {
        (**self).get(name).await
    }
    async fn head(&self, name: &str) -> Result<ObjectMeta> {
        (**self).head(name).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        (**self).list(prefix).await
    }
    async fn delete(&self, name: &str) -> Result<()> {
        (**self).delete(name).await
    }
    async fn create(&self, name: &str, data: Bytes) -> Result<ObjectMeta> {
        (**self).create(name, data).await
    }
}

/// Conveniences for small objects (sidecars, audit copies), on every [`Sink`].
#[async_trait]
pub trait SinkExt: Sink {
    /// Atomically stores `data` under `name`.
    ///
    /// # Errors
    /// As [`Sink::put`] and [`SinkUpload::write`]; on failure the upload is aborted.
    async fn put_bytes(&self, name: &str, data: Bytes) -> Result<ObjectMeta> {
        let mut up = self.put(name).await?;
        if let Err(e) = up.write(data).await {
            let _ = up.abort().await;
            return Err(e);
        }
        up.complete().await
    }

    /// Reads the whole object `name` into memory, refusing objects over `limit` bytes.
    ///
    /// # Errors
    /// As [`Sink::get`]; [`Error::LimitExceeded`] when the object is larger than `limit`.
    async fn get_bytes(&self, name: &str, limit: u64) -> Result<Bytes> {
        let mut stream = self.get(name).await?;
        let mut out = Vec::new();
        while let Some(chunk) = stream.try_next().await? {
            if (out.len() + chunk.len()) as u64 > limit {
                return Err(Error::LimitExceeded {
                    what: "object size",
                    value: (out.len() + chunk.len()) as u64,
                    limit,
                });
            }
            out.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(out))
    }

    /// Whether `name` exists.
    ///
    /// # Errors
    /// [`Error::Sink`] when the sink could not answer.
    async fn exists(&self, name: &str) -> Result<bool> {
        match self.head(name).await {
            Ok(_) => Ok(true),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl<S: Sink + ?Sized> SinkExt for S {}

/// Checks that `name` is a plain object name: 1..=255 bytes, no `/` or `\`, no NUL or control
/// characters, not starting with `.` (reserved for temporary files), not `..`.
///
/// # Errors
/// [`Error::InvalidName`] naming the rule broken.
pub fn validate_object_name(name: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(Error::InvalidName {
            name: name.to_owned(),
            reason: reason.to_owned(),
        })
    };
    if name.is_empty() || name.len() > 255 {
        return bad("must be 1 to 255 bytes long");
    }
    if name.starts_with('.') {
        return bad("must not start with `.` (reserved for temporary uploads)");
    }
    if name.contains(['/', '\\']) {
        return bad("must not contain `/` or `\\`");
    }
    if name.chars().any(char::is_control) {
        return bad("must not contain control characters");
    }
    Ok(())
}

/// Collects a [`ByteStream`] chunk by chunk into `f`, e.g. to hash an object.
///
/// # Errors
/// The stream's first error.
pub async fn for_each_chunk(
    mut stream: ByteStream,
    mut f: impl FnMut(&[u8]) + Send,
) -> Result<u64> {
    let mut n = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        n += chunk.len() as u64;
        f(&chunk);
    }
    Ok(n)
}
