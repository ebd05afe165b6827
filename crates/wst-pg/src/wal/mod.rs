//! Continuous WAL archiving (issue 16; seeds/002 "WAL archiving", seeds/004 RPO ≤ 15 min):
//! PostgreSQL's `archive_command` and `restore_command` over a wst repository's sinks, with
//! the same `wst-aead-v1` encryption as every artifact.
//!
//! ```text
//! archive_command = 'wst --config /etc/wst/wst.toml wal-push %p'
//! restore_command = 'wst --config /etc/wst/wst.toml wal-fetch %f %p'
//! ```
//!
//! [`WalArchive`] does the work; the `wst` binary wires it to `wst.toml` (`[wal]`). The object
//! format — names `{prefix}.wal.{file}.zst.wst`, a zstd skippable frame with the authenticated
//! [`WalHeader`] (file name, size, SHA-256), then the zstd frames of the file, sealed
//! `wst-aead-v1` — is specified in `docs/WAL.md`, precisely enough to restore WAL without wst
//! (`wst_decrypt.py --wal NAME`, then `zstd -d`).
//!
//! # Behaviour
//! - A push is durable on every synchronous sink before it succeeds, idempotent for the same
//!   content, and refuses ([`WalError::Conflict`]) different content under the same name.
//! - Asynchronous sinks are fed from a bounded local [`WalQueue`]; over its bound a copy is
//!   dropped only with an audited, error-logged decision ([`PushReport::dropped`]).
//! - A fetch authenticates and checks the whole object before `dest` appears, falls back to the
//!   next sink when a copy is bad (naming it), and reports "not in the archive" as
//!   [`WalError::NotFound`] ([`WalError::is_not_found`]).
//! - Everything read from a sink is bounded: [`MAX_WAL_OBJECT_BYTES`],
//!   [`MAX_WAL_FILE_BYTES`], [`MAX_HEADER_JSON_BYTES`].

mod archive;
mod continuity;
mod error;
mod format;
mod name;
mod queue;
mod spool;

pub use archive::{
    DEFAULT_WAL_ZSTD_LEVEL, DrainReport, DroppedCopy, FetchReport, PushReport, SinkDrain,
    WalArchive, WalArchiveBuilder,
};
pub use continuity::{Continuity, TimelineContinuity, WalGap, check_continuity};
pub use error::WalError;
pub use format::{
    MAX_HEADER_JSON_BYTES, MAX_WAL_FILE_BYTES, MAX_WAL_OBJECT_BYTES, WAL_FORMAT, WAL_FRAME_MAGIC,
    WalHeader,
};
pub use name::{
    WAL_OBJECT_EXTENSION, WAL_OBJECT_INFIX, WalFileKind, WalFileName, wal_object_prefix,
};
pub use queue::{DEFAULT_QUEUE_MAX_BYTES, QueueStatus, WalQueue};
pub use spool::{Ack, WalSpool, WorkerLock, WorkerReport};

/// A name as quoted in errors: at most 200 characters, control characters and backticks
/// escaped, so hostile text from a sink or an argument stays one bounded line.
pub(crate) fn quote(text: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == 200 {
            let _ = write!(out, "… ({} bytes)", text.len());
            break;
        }
        if c.is_control() || c == '`' {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}
