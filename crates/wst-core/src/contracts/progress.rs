//! Progress hooks: a run calls them as it goes, so a front end can draw a progress bar.

use std::fmt;

/// The stage a run is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stage {
    /// Sources are preparing (connecting, snapshotting, spooling a database dump).
    Preparing,
    /// Entries are being archived, compressed, encrypted and written to the sinks.
    Archiving,
    /// The artifact is being completed on the sinks.
    Publishing,
    /// The artifact is being read back and verified.
    Verifying,
    /// A restore is extracting entries.
    Restoring,
    /// Finished.
    Done,
}

/// Receives progress events. Every method has an empty default; implement what you draw.
///
/// Methods are called from the archiving thread; keep them cheap (update an atomic, a progress
/// bar). Byte counts are plaintext content bytes of the entries.
pub trait Progress: Send + Sync + fmt::Debug {
    /// The run entered `stage`.
    fn stage(&self, stage: Stage) {
        let _ = stage;
    }
    /// An entry was started: its archive path and content size in bytes.
    fn entry(&self, path: &str, size: u64) {
        let _ = (path, size);
    }
    /// `n` more content bytes were read.
    fn bytes(&self, n: u64) {
        let _ = n;
    }
}

/// A [`Progress`] that ignores every event.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}
