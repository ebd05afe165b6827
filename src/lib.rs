//! wst: encrypted, verified, 3-2-1 backups of `PostgreSQL` plus file trees.
//!
//! This facade re-exports the wst crates behind features:
//!
//! | feature | module | crate |
//! |---|---|---|
//! | (always) | [`core`] | `wst-core`: traits, pipeline, manifest, verification, restore, drill, audit log |
//! | `crypto` | `crypto` | `wst-crypto`: AES-256-GCM streaming artifacts, key files, passphrases |
//! | `objstore` | `objstore` | `wst-objstore`: durable local-disk sink, object-store sinks |
//! | `pg` | `pg` | `wst-pg`: snapshot-consistent `pg_dump` source, scratch-database restore |
//! | `retention` | `retention` | `wst-retention`: GFS retention planning |
//! | `config` | `config` | the `wst.toml` schema of the `wst` binary, for services that embed it (needs `retention`) |
//! | `config` | `report` | the business continuity plan and the auditor's evidence bundle (`wst report`, issue 17) |
//! | `signals` | [`signals`] | metrics (OpenMetrics text), alerts (command, webhook), cron schedules and the scheduler, `/metrics` (issue 17; needs `config`) |
//! | `zstdmt` | — | multi-threaded zstd in the pipeline |
//!
//! ```no_run
//! # #[cfg(all(feature = "crypto", feature = "objstore"))]
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use wst::core::{ArtifactVerifier, BackupJob, FileTreeSource, RestoreOptions, restore};
//! use wst::crypto::AeadCipher;
//! use wst::objstore::LocalDiskSink;
//!
//! let cipher = Arc::new(AeadCipher::from_key_file("/etc/wst/backup.key")?);
//! let c = Arc::new(LocalDiskSink::builder("local-c", "/srv/wst").open().await?);
//! let d = Arc::new(LocalDiskSink::builder("mirror-d", "/mnt/d/wst").open().await?);
//! let job = BackupJob::builder(cipher.clone())
//!     .source(Arc::new(FileTreeSource::new("/srv/app/wst", "wst")?))
//!     .source(Arc::new(FileTreeSource::new("/srv/app/wst-api", "wst-api")?))
//!     .sink(c.clone())
//!     .sink(d.clone())
//!     .verifier(ArtifactVerifier::new().require("wst/").require("wst-api/"))
//!     .build()?;
//! let report = job.run().await?; // Ok even if one sink failed: read the outcome
//! if !report.is_success() {
//!     eprintln!("backup {}: {:?}", report.artifact, report.outcome);
//! }
//! // Restore into an isolated, empty directory (never over production without break-glass).
//! restore(&*d, &report.artifact, &*cipher, &RestoreOptions::isolated("/tmp/restore-test")).await?;
//! # Ok(()) }
//! ```
#![deny(rustdoc::broken_intra_doc_links)]

#[cfg(feature = "config")]
pub mod config;
#[cfg(feature = "config")]
pub mod report;
pub use wst_core as core;
#[cfg(feature = "crypto")]
pub use wst_crypto as crypto;
#[cfg(feature = "objstore")]
pub use wst_objstore as objstore;
#[cfg(feature = "pg")]
pub use wst_pg as pg;
#[cfg(feature = "retention")]
pub use wst_retention as retention;
#[cfg(feature = "signals")]
pub mod signals;
