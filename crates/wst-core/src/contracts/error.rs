//! The error type of wst-core.

use std::path::PathBuf;

/// A boxed error from an implementation crate (wst-crypto, wst-pg, wst-objstore), carried across
/// a trait boundary. Downcast it to the implementation's own error for the specific kind.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in wst-core and at its trait boundaries.
///
/// Messages name the thing to check (a path, a sink, an artifact) and never contain secret
/// material: implementations must redact before converting into this type (design invariant 7).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configured source path does not exist (doctrine 026 F2 "missing source paths").
    #[error("source path `{path}` does not exist (doctrine F2): check the configured source path")]
    SourceMissing {
        /// The configured path.
        path: PathBuf,
    },
    /// A file or directory of a source could not be read; the run fails rather than skipping it.
    /// The advice names the two ways to exclude it (issue 15): `exclude = ["GLOB"]` in the
    /// tree's `[[files]]` section, or `wst backup --exclude GLOB` (library:
    /// `FileTreeSource::exclude`).
    #[error(
        "cannot read `{path}`: {source}; the run fails rather than skip it (fix its permissions, \
         or exclude it: `exclude = [\"GLOB\"]` in its [[files]] section, or `wst backup --exclude GLOB`)"
    )]
    SourceRead {
        /// The path that could not be read.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A source's guard against silent emptiness stopped the run (issue 15): the tree has
    /// fewer entries than its `min_entries`, or its entries or bytes fell by more than its
    /// `max_shrink` since the previous artifact. Nothing is published: the uploads are aborted
    /// before the artifact is complete, so no sink holds it (design invariant 2). Not
    /// retryable: mount the volume, or change the guard if the shrink is intended.
    #[error("source `{name}` stopped the run: {reason}; nothing was published")]
    SourceGuard {
        /// The source's name (for a file tree, its archive root).
        name: String,
        /// What was found, against which limit, and what to check.
        reason: String,
    },
    /// A source implementation (e.g. `PostgreSQL`) failed; `source` is that crate's error.
    #[error("source `{name}` failed: {source}")]
    Source {
        /// The source's name as in the run report.
        name: String,
        /// The implementation's error.
        source: BoxError,
    },
    /// The cipher failed: wrong key, tampering, truncation, unsupported format. `source` is the
    /// cipher crate's error (for wst-crypto: `wst_crypto::Error`).
    #[error("cipher: {source}")]
    Cipher {
        /// The cipher implementation's error.
        source: BoxError,
    },
    /// A sink operation failed.
    #[error("sink `{sink}`: {operation} `{name}` failed: {source}")]
    Sink {
        /// The sink's configured name.
        sink: String,
        /// The operation: `put`, `get`, `head`, `list`, `delete`.
        operation: &'static str,
        /// The object name involved (empty for `list`).
        name: String,
        /// Whether retrying the same operation later may succeed (network, throttling).
        retryable: bool,
        /// The implementation's error.
        source: BoxError,
    },
    /// The named object does not exist on the sink.
    #[error("`{name}` not found on sink `{sink}`")]
    NotFound {
        /// The sink's configured name.
        sink: String,
        /// The object name.
        name: String,
    },
    /// A name is not a valid artifact or object name.
    #[error("invalid name `{name}`: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The archive (tar, zstd or manifest) inside an authenticated artifact is malformed.
    #[error("artifact `{artifact}` is malformed: {detail}")]
    Malformed {
        /// The artifact name.
        artifact: String,
        /// What is wrong, with the entry path where known.
        detail: String,
    },
    /// Another process holds the repository lock (a backup or prune is running).
    #[error(
        "the repository is locked by {holder} (lock file `{path}`); wait for it to finish, or check that process"
    )]
    Locked {
        /// The lock file.
        path: std::path::PathBuf,
        /// Who holds it: operation, pid, host, since.
        holder: String,
    },
    /// The content read is not the artifact asked for (design invariant 9): its manifest names
    /// another artifact, or its ciphertext's size or SHA-256 differs from the copy's sidecar.
    /// An object substituted or rolled back by someone who can write the sink looks like this;
    /// nothing read from it is restored. Try another sink's copy.
    #[error(
        "artifact `{artifact}` on sink `{sink}` is not what its name and sidecar say: {detail}; nothing was restored from this copy"
    )]
    Substituted {
        /// The artifact requested.
        artifact: String,
        /// The sink the copy was read from.
        sink: String,
        /// What disagrees.
        detail: String,
    },
    /// A restore refused an archive entry that could write outside the target or is not a
    /// permitted kind (design invariant 5).
    #[error("refused archive entry `{path}`: {reason}; nothing was written outside the target")]
    UnsafeEntry {
        /// The entry path as stored in the archive.
        path: String,
        /// Why it was refused.
        reason: String,
    },
    /// A restore target was refused (not empty, a production path without break-glass, not a
    /// directory).
    #[error("restore target `{path}` refused: {reason}")]
    RestoreTarget {
        /// The requested target.
        path: PathBuf,
        /// Why it was refused and what to do.
        reason: String,
    },
    /// A selective restore's include patterns matched no entry of the artifact: refused rather
    /// than an empty restore that looks like success. Nothing was promoted into the target.
    #[error(
        "artifact `{artifact}`: include pattern(s) `{}` match no entry; nothing was restored (list the entries with `ls`)",
        .patterns.join("`, `")
    )]
    SelectionUnmatched {
        /// The artifact name.
        artifact: String,
        /// The patterns that matched nothing, as given.
        patterns: Vec<String>,
    },
    /// A selective restore selected a hard link whose target lies outside the selection. The
    /// target's content passed earlier in the single stream and was not kept, so the link can
    /// be neither made nor copied (GNU tar's "Cannot hard link" for the same reason). Nothing was
    /// promoted into the target.
    #[error(
        "hard link `{path}` points to `{target}`, which is outside the restore selection; add `{target}` (or its directory) to the selection; nothing was restored"
    )]
    SelectionIncomplete {
        /// The hard link's archive path.
        path: String,
        /// The link's target (an archive path outside the selection).
        target: String,
    },
    /// The erasure register could not be applied to a restored tree (an entry failed, or a
    /// register copy was unusable and its entry is known from no other sink), and no
    /// break-glass let the restore go on: nothing was promoted into the target (issue 18;
    /// seeds/003 "Erased data must not be restored unintentionally").
    #[error(
        "restore of {artifact} refused: the erasure register could not be applied to the restored files ({detail}); nothing was promoted into the target. Fix the register (`wst erasure list`) or restore with break-glass (audited)"
    )]
    ErasureNotApplied {
        /// The artifact.
        artifact: String,
        /// What could not be applied, `#SEQ ID: error`, and the register anomalies.
        detail: String,
    },
    /// An object that must be created fresh already exists on the sink (create-if-absent):
    /// another run, possibly on another host, claimed or wrote that name first. Nothing of the
    /// existing object was changed.
    #[error(
        "`{name}` already exists on sink `{sink}`: another run (perhaps on another host) wrote or claimed it first; nothing was overwritten"
    )]
    AlreadyExists {
        /// The sink's configured name.
        sink: String,
        /// The object name.
        name: String,
    },
    /// The audit log does not match the evidence anchored on the sinks or in artifacts: it
    /// was truncated, rewritten or replaced (issue 14), or a record's MAC does not verify.
    #[error("audit log `{path}` cannot be trusted: {detail}")]
    AuditTampered {
        /// The audit log file.
        path: PathBuf,
        /// What disagrees, naming the record and the anchor.
        detail: String,
    },
    /// A limit protecting memory or disk was exceeded (entry count, entry size, manifest size).
    #[error("limit exceeded: {what} ({value} > {limit})")]
    LimitExceeded {
        /// What was counted.
        what: &'static str,
        /// The value found.
        value: u64,
        /// The configured limit.
        limit: u64,
    },
    /// Every sink of a run failed, so no copy of the artifact exists.
    #[error("no sink holds artifact `{artifact}`: every sink failed ({details})")]
    AllSinksFailed {
        /// The artifact name.
        artifact: String,
        /// One `sink: error` per sink.
        details: String,
    },
    /// Invalid configuration passed to a builder or run.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Retention planning or pruning refused to proceed.
    #[error("retention: {0}")]
    Retention(String),
    /// Prune refused a sink because it lists far fewer artifacts than the previous prune left
    /// (a wrong prefix or bucket, credentials scoped elsewhere, a broken listing look like
    /// this). Nothing was deleted. The CLI exits 3 (degraded: prune refused something); rerun
    /// with `wst prune --allow-listing-drop` (library: `PruneOptions::allow_listing_drop`)
    /// when the artifacts really are gone.
    #[error(
        "retention: refusing to prune sink `{sink}`: it lists {listed} `{prefix}` artifacts but the \
         previous prune left {previous}. A wrong prefix or bucket, credentials scoped elsewhere, or \
         a broken listing look like this; nothing was deleted. Check the sink; if the artifacts \
         really are gone, rerun with `wst prune --allow-listing-drop` (library: \
         `PruneOptions::allow_listing_drop`)"
    )]
    ListingDrop {
        /// The sink's configured name.
        sink: String,
        /// The artifact prefix listed.
        prefix: String,
        /// Artifacts listed now.
        listed: usize,
        /// Artifacts the previous prune left.
        previous: usize,
    },
    /// A local I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The operating system's error.
        source: std::io::Error,
    },
}

impl Error {
    /// Wraps an I/O error with a context sentence such as "writing `/srv/wst/x.tmp`".
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    /// Wraps a cipher implementation's error.
    pub fn cipher(source: impl Into<BoxError>) -> Self {
        Self::Cipher {
            source: source.into(),
        }
    }

    /// What kind of failure this is, for a caller that maps errors to exit codes, alerts or
    /// retries (issue 14): see [`ErrorKind`].
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::SourceMissing { .. }
            | Self::SourceRead { .. }
            | Self::Source { .. }
            | Self::SourceGuard { .. } => ErrorKind::Source,
            Self::Sink {
                retryable: true, ..
            } => ErrorKind::Retryable,
            Self::Sink { .. } | Self::NotFound { .. } | Self::AllSinksFailed { .. } => {
                ErrorKind::Storage
            }
            Self::Cipher { .. }
            | Self::Malformed { .. }
            | Self::Substituted { .. }
            | Self::UnsafeEntry { .. }
            | Self::AuditTampered { .. }
            | Self::LimitExceeded { .. } => ErrorKind::Integrity,
            Self::Locked { .. } | Self::AlreadyExists { .. } => ErrorKind::Contention,
            Self::InvalidName { .. }
            | Self::Config(_)
            | Self::RestoreTarget { .. }
            | Self::SelectionUnmatched { .. }
            | Self::SelectionIncomplete { .. } => ErrorKind::Configuration,
            Self::Retention(_) | Self::ListingDrop { .. } | Self::ErasureNotApplied { .. } => {
                ErrorKind::Refused
            }
            Self::Io { .. } => ErrorKind::Io,
        }
    }

    /// Whether retrying the operation later may succeed (transient network or storage faults).
    /// A backup daemon retries these and alerts on the others.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Sink {
                retryable: true,
                ..
            }
        )
    }
}

/// The kind of an [`Error`], from [`Error::kind`]: what a caller should do about it. The `wst`
/// binary maps kinds to exit codes (README, "Exit codes"); a daemon retries
/// [`ErrorKind::Retryable`] and alerts on the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The configuration or the request is wrong (a bad name, a refused target, an invalid
    /// option): fix it; retrying unchanged fails again.
    Configuration,
    /// A source could not be read (doctrine 026 F1/F2/F3).
    Source,
    /// A sink failed or lacks an object, and retrying is not expected to help.
    Storage,
    /// A transient fault (network, throttling): retrying later may succeed.
    Retryable,
    /// Content or evidence failed authentication or is malformed (tampering, corruption, a
    /// wrong key, a hostile artifact): never retried blindly; investigate.
    Integrity,
    /// Another run holds the repository or claimed the name: wait, then retry.
    Contention,
    /// A safety rule refused to act (retention would delete on doubt).
    Refused,
    /// A local file operation failed.
    Io,
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Characters of an entry name quoted in an error, a log line or an audit record.
pub(crate) const QUOTED_NAME_CHARS: usize = 200;

/// An entry name (or link target) as quoted in messages: at most its first
/// [`QUOTED_NAME_CHARS`] characters, invalid UTF-8 replaced, control characters (and the
/// backtick that delimits quotes) escaped as `\u{..}`, and `… (N bytes)` when cut. Whatever an
/// archive holds, the result is at most about 2 KB, one line, and safe for a terminal.
pub(crate) fn quote_name(name: &[u8]) -> String {
    use std::fmt::Write as _;
    // Decode only a bounded prefix: 4 bytes per char at most.
    let head = &name[..name.len().min(QUOTED_NAME_CHARS * 4)];
    let text = String::from_utf8_lossy(head);
    let mut out = String::with_capacity(QUOTED_NAME_CHARS + 16);
    let mut cut = false;
    for (i, c) in text.chars().enumerate() {
        if i == QUOTED_NAME_CHARS {
            cut = true;
            break;
        }
        if c.is_control() || c == '`' {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    if cut || head.len() < name.len() {
        let _ = write!(out, "… ({} bytes)", name.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::quote_name;

    #[test]
    fn quoted_names_are_bounded_and_escaped() {
        assert_eq!(quote_name(b"wst/a.txt"), "wst/a.txt");
        assert_eq!(quote_name(b"a\nb\x1b[31m`"), "a\\u{a}b\\u{1b}[31m\\u{60}");
        let long = vec![b'a'; 1 << 20];
        let q = quote_name(&long);
        assert!(q.len() < 260, "{}", q.len());
        assert!(q.ends_with("… (1048576 bytes)"), "{q}");
        assert_eq!(quote_name(&[0xff, b'x']), "\u{fffd}x");
    }
}
