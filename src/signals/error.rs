//! The signals' one error type.

use std::path::PathBuf;

/// An error of [`crate::signals`]: operator-actionable, never carrying a secret (a webhook
/// URL is never quoted, only its host).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignalError {
    /// A file (state, metrics, lock) could not be read or written.
    #[error("{what} `{}`: {source}", path.display())]
    Io {
        /// What was being done, e.g. `writing the metrics file`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The state file does not parse or is larger than [`super::STATE_MAX_BYTES`].
    #[error(
        "the signal state file `{}` is unreadable ({detail}); move it aside to start afresh \
         (last success and failure times are then forgotten)",
        path.display()
    )]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A `[[schedule]]` entry is wrong: an unparsable cron expression, an unknown job or time
    /// zone, or a schedule that cannot be rendered for systemd or Windows.
    #[error("schedule `{expression}`: {detail}")]
    Schedule {
        /// The cron expression (or job name) as configured.
        expression: String,
        /// What is wrong.
        detail: String,
    },
    /// The metrics endpoint could not be served.
    #[error("serving /metrics: {0}")]
    Serve(String),
}

impl SignalError {
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            what,
            path: path.into(),
            source,
        }
    }
}
