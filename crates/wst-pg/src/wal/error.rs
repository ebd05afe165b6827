//! The error type of WAL archiving.

use std::path::PathBuf;

/// Everything that can go wrong while archiving or fetching WAL (issue 16).
///
/// Messages name the WAL file, the sink and what to do; they never hold key material or sink
/// credentials (design invariant 7). [`WalError::is_not_found`] tells `restore_command`'s
/// expected "no such file" apart from real failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    /// Not a WAL file name PostgreSQL writes, or a bad repository prefix.
    #[error("`{name}` is not a WAL file name: {reason}")]
    InvalidName {
        /// The name (quoted: at most 200 characters, control characters escaped).
        name: String,
        /// The rule it breaks.
        reason: String,
    },
    /// The archive is misconfigured (no synchronous sink, a duplicate sink, asynchronous sinks
    /// without a queue directory, a zstd level out of range).
    #[error("WAL archive configuration: {0}")]
    Config(String),
    /// The local WAL file (or a queued object) could not be read.
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A size limit protecting memory and disk was exceeded: a WAL file over 1 GiB
    /// (PostgreSQL's largest `--wal-segsize`), or an object on a sink larger than any WAL
    /// object can be.
    #[error("{what} is {size} bytes, more than the limit of {limit} bytes")]
    TooLarge {
        /// What was measured, naming the file or object.
        what: String,
        /// Its size, bytes.
        size: u64,
        /// The limit, bytes.
        limit: u64,
    },
    /// The WAL file is already archived on `sink` with **different** content. wst never
    /// overwrites it: two clusters may be archiving into one repository, or this repository
    /// still holds the archive of an older cluster with the same timeline (issue 16).
    #[error(
        "WAL file {name} is already archived on sink `{sink}` with different content \
         (archived: {archived_size} bytes, SHA-256 {archived_sha256}; this file: {size} bytes, \
         SHA-256 {sha256}); nothing was overwritten. Check that only one cluster archives into \
         this repository (a new cluster needs its own prefix or repository); PostgreSQL keeps \
         the file in pg_wal and retries"
    )]
    Conflict {
        /// The WAL file name.
        name: String,
        /// The sink holding the other content.
        sink: String,
        /// Size of the archived content, bytes.
        archived_size: u64,
        /// SHA-256 of the archived content (hex).
        archived_sha256: String,
        /// Size of the file being pushed, bytes.
        size: u64,
        /// SHA-256 of the file being pushed (hex).
        sha256: String,
    },
    /// A copy already on a sink under this WAL file's object name does not open (wrong key,
    /// tampering, damage), so wst cannot tell whether it holds the same content; it is not
    /// overwritten.
    #[error(
        "WAL file {name}: the copy already on sink `{sink}` ({object}) cannot be checked: \
         {detail}; nothing was overwritten. Investigate that object (tampering, disk damage, \
         a key no longer configured), move it away, and PostgreSQL's retry archives the file again"
    )]
    ExistingCopyUnreadable {
        /// The WAL file name.
        name: String,
        /// The sink.
        sink: String,
        /// The object name.
        object: String,
        /// Why it does not open.
        detail: String,
    },
    /// The WAL file is not durable on every synchronous sink. PostgreSQL keeps it and retries
    /// `archive_command`; sinks that already hold it are recognised as such (idempotent).
    #[error("WAL file {name} is not archived: {}", .failures.join("; "))]
    NotDurable {
        /// The WAL file name.
        name: String,
        /// One `sink `S`: error` per synchronous sink that failed.
        failures: Vec<String>,
    },
    /// No sink holds the WAL file: every sink answered "not found". `restore_command`'s
    /// expected outcome for a file past the end of the archive, or a timeline history file
    /// that never existed (PostgreSQL probes for them).
    #[error("WAL file {name} is not in the archive (looked on {})", .sinks.join(", "))]
    NotFound {
        /// The WAL file name.
        name: String,
        /// The sinks asked, in order.
        sinks: Vec<String>,
    },
    /// No sink delivered a good copy: copies failed authentication or their checks, or sinks
    /// could not be read. Each problem names its sink.
    #[error("WAL file {name}: no good copy on any sink: {}", .problems.join("; "))]
    NoGoodCopy {
        /// The WAL file name.
        name: String,
        /// One `sink `S`: problem` per sink.
        problems: Vec<String>,
    },
    /// Writing the fetched file (or a queued copy) locally failed.
    #[error("cannot write `{}`: {source}", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The audit log could not record a decision that must be audited (dropping a queued
    /// copy): the decision is not taken silently.
    #[error("the audit log refused a record ({detail}): {source}")]
    Audit {
        /// The decision that was to be recorded.
        detail: String,
        /// The audit log's error.
        source: wst_core::Error,
    },
    /// A sink or cipher error from wst-core.
    #[error(transparent)]
    Core(#[from] wst_core::Error),
}

impl WalError {
    /// Whether this is "the archive has no such file" — the answer `restore_command` gives
    /// PostgreSQL with exit status 1 and no noise (PostgreSQL probes for files that do not
    /// exist, e.g. the next timeline's history file).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }
}
