//! wst: encrypted, verified, 3-2-1 backups of PostgreSQL plus file trees.
//!
//! This facade re-exports the wst crates behind features.
#![deny(rustdoc::broken_intra_doc_links)]

pub use wst_core as core;
#[cfg(feature = "crypto")]
pub use wst_crypto as crypto;
#[cfg(feature = "objstore")]
pub use wst_objstore as objstore;
#[cfg(feature = "pg")]
pub use wst_pg as pg;
#[cfg(feature = "retention")]
pub use wst_retention as retention;
