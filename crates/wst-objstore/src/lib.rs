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
//! [`ObjectStoreSink`] stores artifacts in any [`object_store`] backend, chosen by URL: the
//! doctrine's optional offsite copy in S3 or an S3-compatible server, Azure Blob Storage or
//! Google Cloud Storage, or `file://` and `memory://` for tests:
//!
//! ```no_run
//! use wst_core::Sink;
//! use wst_objstore::ObjectStoreSink;
//!
//! # async fn demo() -> wst_core::Result<()> {
//! // Credentials from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, …) or from
//! // options read from the operator's configuration; never in the URL or the code.
//! let offsite = ObjectStoreSink::builder("offsite-s3", "s3://wst-backups/prod")
//!     .option("aws_region", "eu-west-1")
//!     .offsite(true)
//!     .build()?;
//! let latest = offsite.list("wst-backup-").await?;
//! # Ok(())
//! # }
//! ```
//!
//! [`ObjectStoreSource`] is the other direction: a [`wst_core::Source`] that archives every
//! object under a bucket prefix (proof payloads, certificate PDFs, exports) into the artifact,
//! with each object's key, size, `ETag`, last-modified time and SHA-256 in the manifest, and
//! [`restore_objects`] puts them back into a (scratch) bucket, each checked against the
//! manifest:
//!
//! ```no_run
//! use std::sync::Arc;
//! use wst_core::{BackupJob, Cipher, Sink};
//! use wst_objstore::{ObjectRestoreOptions, ObjectStoreSource, ObjectStoreTarget, restore_objects};
//!
//! # async fn demo(cipher: Arc<dyn Cipher>, sink: Arc<dyn Sink>) -> wst_core::Result<()> {
//! let proofs = ObjectStoreSource::builder("proofs", "s3://wst-proofs/tenants", "buckets/proofs")
//!     .option("aws_region", "eu-west-1")
//!     .build()?;
//! let run = BackupJob::builder(Arc::clone(&cipher))
//!     .source(Arc::new(proofs))
//!     .sink(Arc::clone(&sink))
//!     .build()?
//!     .run()
//!     .await?;
//!
//! // Into an empty scratch prefix; a non-empty one needs a break-glass authorization.
//! let scratch = ObjectStoreTarget::builder("s3://wst-scratch/drill-1")
//!     .option("aws_region", "eu-west-1")
//!     .build()?;
//! let report = restore_objects(
//!     &*sink,
//!     &run.artifact,
//!     &*cipher,
//!     &scratch,
//!     &ObjectRestoreOptions::new("buckets/proofs"),
//! )
//! .await?;
//! println!("{} objects, {} bytes restored", report.objects, report.bytes);
//! # Ok(())
//! # }
//! ```
//!
//! # Behaviour
//! - Every sink honours the [`wst_core::Sink`] contract: nothing is visible under a name until
//!   its upload completes; an aborted, failed or dropped upload leaves nothing under that name.
//!   wst-core's conformance suite (feature `conformance`) checks this in this crate's tests, on
//!   the local disk, `memory://`, `file://`, moto's S3 server and Azurite.
//! - Memory is bounded: reads stream in chunks; uploads buffer at most one write buffer
//!   (local disk) or `part size × (concurrency + 1)` (object stores). The bucket source holds
//!   at most `(2 × max_concurrency + 1) × piece_size` bytes of object data (68 MiB by
//!   default) plus about 200 bytes of metadata per listed object; a bucket restore at most
//!   `2 × max_concurrency × part_size` (80 MiB by default).
//! - Errors cross the trait boundary as [`wst_core::Error::Sink`] whose `source` is this crate's
//!   [`Error`]; `retryable` tells a daemon whether to retry or alert. No credential appears in
//!   an error or in `Debug` output (design invariant 7).
//!
//! # Supported URLs ([`ObjectStoreSink::builder`])
//!
//! | URL | store | credentials and options |
//! |---|---|---|
//! | `s3://bucket/prefix` | Amazon S3 or S3-compatible (MinIO, Ceph, moto) | `AWS_*` environment, or `aws_access_key_id`, `aws_secret_access_key`, `aws_region`, `aws_endpoint`, `allow_http` |
//! | `az://container/prefix` | Azure Blob Storage (or Azurite) | `AZURE_STORAGE_*` environment, or `azure_storage_account_name`, `azure_storage_account_key`, `azure_storage_endpoint`, `allow_http` |
//! | `gs://bucket/prefix` | Google Cloud Storage | `GOOGLE_*` environment, or `google_service_account` |
//! | `file:///dir` | a local directory (prefer [`LocalDiskSink`]) | none |
//! | `memory://` | memory, for tests | none |
#![deny(rustdoc::broken_intra_doc_links)]

mod config;
mod error;
mod local;
mod objstore;
mod restore;
mod source;
#[cfg(feature = "test-servers")]
pub mod testing;

pub use config::{LocalDiskConfig, ObjectStoreConfig, SinkConfig};
pub use error::Error;
pub use local::{
    DEFAULT_READ_CHUNK_SIZE, DEFAULT_STALE_TEMP_AGE, DEFAULT_WRITE_BUFFER_SIZE, LocalDiskSink,
    LocalDiskSinkBuilder, WRITE_BEHIND_BYTES,
};
/// The `object_store` crate this crate builds on, for [`ObjectStoreSink::builder_for_store`].
pub use object_store;
pub use objstore::{
    DEFAULT_MAX_CONCURRENCY, DEFAULT_PART_SIZE, MAX_PART_SIZE, MIN_PART_SIZE, ObjectStoreSink,
    ObjectStoreSinkBuilder,
};
pub use restore::{
    DEFAULT_RESTORE_CONCURRENCY, DEFAULT_RESTORE_PART_SIZE, ObjectRestoreOptions,
    ObjectRestoreReport, ObjectStoreTarget, ObjectStoreTargetBuilder, erase_objects,
    restore_objects,
};
pub use source::{
    DEFAULT_PIECE_SIZE, DEFAULT_SOURCE_CONCURRENCY, MIN_PIECE_SIZE, ObjectStoreSource,
    ObjectStoreSourceBuilder, ObjectStoreSourceConfig,
};
