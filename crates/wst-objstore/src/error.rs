//! The error type of wst-objstore.
//!
//! At the [`wst_core::Sink`] boundary every error is converted into
//! [`wst_core::Error::Sink`] (or [`wst_core::Error::NotFound`] /
//! [`wst_core::Error::InvalidName`]); the boxed `source` of a `Sink` error is this [`Error`], so a
//! caller can downcast it for the specific kind.

use std::path::PathBuf;

/// Everything that can go wrong in a wst-objstore sink, the bucket source or a bucket restore.
///
/// Messages name the path, URL or option to check and never contain a credential (design
/// invariant 7): URLs are shown without user info or query string, and option values are never
/// echoed for keys that may hold secrets.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A local file-system operation failed.
    #[error("{operation} `{path}`: {source}")]
    Io {
        /// What was being done, e.g. `writing temporary file`.
        operation: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The configured root directory of a local-disk sink does not exist or is not a directory.
    #[error(
        "sink root `{path}` is not a directory: {reason} (mount the disk, or create the directory, \
         or enable `create_dir` on the builder)"
    )]
    Root {
        /// The configured root.
        path: PathBuf,
        /// What was found instead.
        reason: String,
    },
    /// An upload was used after an earlier write failed or was cancelled.
    #[error(
        "upload of `{name}` is unusable after an earlier failed or cancelled write; abort it and \
         start a new upload"
    )]
    UploadPoisoned {
        /// The object name of the upload.
        name: String,
    },
    /// An object store request failed (after `object_store`'s own retries). The message has
    /// option secrets and URL query strings removed (design invariant 7).
    #[error("object store: {message}")]
    ObjectStore {
        /// The store's error message, redacted.
        message: String,
        /// Whether the failure looks transient (network, throttling, server error).
        retryable: bool,
    },
    /// An object key under an [`ObjectStoreSource`](crate::ObjectStoreSource) prefix cannot be
    /// an archive path (wst-core's archive path rule: relative, no empty, `.` or `..` segment, no
    /// backslash, NUL, control character or drive prefix). Nothing is skipped silently: the
    /// backup fails until the object is renamed or the prefix narrowed.
    #[error(
        "object key `{key}` cannot be archived: it has {reason}; rename the object or narrow the \
         source prefix"
    )]
    InvalidKey {
        /// The full object key as the store reported it.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A non-empty object's key is also a folder of another key (`a` and `a/b`): an archive
    /// (and a file system) cannot hold both a file and a directory at one path.
    #[error(
        "object key `{key}` is also a folder of `{other}`: an archive cannot hold both; rename \
         one of them or narrow the source prefix"
    )]
    KeyConflict {
        /// The object whose key is a folder of another.
        key: String,
        /// An object below it.
        other: String,
    },
    /// An object kept changing between the listing and its download.
    #[error(
        "object `{key}` changed on each of {attempts} download attempts; retry the backup when \
         writes to it have stopped"
    )]
    ObjectUnstable {
        /// The full object key.
        key: String,
        /// Attempts made.
        attempts: u32,
    },
    /// A restored object does not match what the artifact's manifest recorded (size or
    /// SHA-256), or the artifact's object records and its entries disagree.
    #[error("restored object `{key}` does not match the backup: {detail}")]
    RestoreMismatch {
        /// The object key in the restore target (or the archive path when not yet uploaded).
        key: String,
        /// Expected and found values.
        detail: String,
    },
    /// A background blocking task panicked or was cancelled by the runtime's shutdown.
    #[error("background I/O task for `{path}` did not finish: {detail}")]
    Task {
        /// The path the task was working on.
        path: PathBuf,
        /// The runtime's explanation.
        detail: String,
    },
}

impl Error {
    /// Whether retrying the same operation later may succeed.
    ///
    /// Local I/O errors are retryable only for the transient kinds (`Interrupted`, `TimedOut`,
    /// `WouldBlock`); a full disk or a permission error needs an operator. Object store errors
    /// are retryable when `object_store` reports a generic (network or server) failure; not
    /// found, permission, authentication and precondition failures are not.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::Interrupted
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::WouldBlock
            ),
            Self::ObjectStore { retryable, .. } => *retryable,
            Self::ObjectUnstable { .. } => true,
            Self::Root { .. }
            | Self::UploadPoisoned { .. }
            | Self::Task { .. }
            | Self::InvalidKey { .. }
            | Self::KeyConflict { .. }
            | Self::RestoreMismatch { .. } => false,
        }
    }

    pub(crate) fn io(
        operation: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            operation,
            path: path.into(),
            source,
        }
    }

    /// Converts into the wst-core error of a sink operation.
    pub(crate) fn into_sink_error(
        self,
        sink: &str,
        operation: &'static str,
        name: &str,
    ) -> wst_core::Error {
        wst_core::Error::Sink {
            sink: sink.to_owned(),
            operation,
            name: name.to_owned(),
            retryable: self.is_retryable(),
            source: Box::new(self),
        }
    }
}
