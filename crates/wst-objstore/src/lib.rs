//! wst-objstore: the places wst artifacts live.
//!
//! [`LocalDiskSink`] stores artifacts as files in a directory, durably and atomically: the
//! doctrine's layer 2 (local C:) and, as a second instance on another disk, layer 3 (the D:
//! mirror). Both implement [`wst_core::Sink`].
//!
//! ```no_run
//! use bytes::Bytes;
//! use wst_core::{Sink, SinkExt};
//! use wst_objstore::LocalDiskSink;
//!
//! # async fn demo() -> wst_core::Result<()> {
//! // The C:/D: pair of doctrine 026 R3: two instances on two disks.
//! let local = LocalDiskSink::open("local-c", "/srv/wst/backups").await?;
//! let mirror = LocalDiskSink::builder("mirror-d", "/mnt/backup-disk/wst")
//!     .offsite(false)
//!     .open()
//!     .await?;
//!
//! // An atomic upload: nothing is visible under the name until `complete` returns.
//! let mut upload = local.put("wst-backup-20261121-053804.tar.zst.wst").await?;
//! upload.write(Bytes::from_static(b"ciphertext...")).await?;
//! let meta = upload.complete().await?;
//! assert_eq!(meta.size, 13);
//!
//! mirror.put_bytes("note.txt", Bytes::from_static(b"hello")).await?;
//! for object in local.list("wst-backup-").await? {
//!     println!("{} {} bytes", object.name, object.size);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Behaviour
//! - Every sink honours the [`wst_core::Sink`] contract, checked by wst-core's conformance
//!   suite (feature `conformance`) in this crate's tests.
//! - Errors cross the trait boundary as [`wst_core::Error::Sink`] whose `source` is this crate's
//!   [`Error`]; `retryable` tells a daemon whether to retry or alert.
#![deny(rustdoc::broken_intra_doc_links)]

mod error;
mod local;
mod objstore;

pub use error::Error;
pub use local::{
    DEFAULT_READ_CHUNK_SIZE, DEFAULT_STALE_TEMP_AGE, DEFAULT_WRITE_BUFFER_SIZE, LocalDiskSink,
    LocalDiskSinkBuilder,
};
/// The `object_store` crate this crate builds on, for [`ObjectStoreSink::builder_for_store`].
pub use object_store;
pub use objstore::{
    DEFAULT_MAX_CONCURRENCY, DEFAULT_PART_SIZE, MAX_PART_SIZE, MIN_PART_SIZE, ObjectStoreSink,
    ObjectStoreSinkBuilder,
};
