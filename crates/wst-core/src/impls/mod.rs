//! Implementations that live in the core: the file-tree source, the in-memory sink (unit
//! tests), and the sink conformance suite every sink runs.

#[cfg(feature = "conformance")]
pub mod conformance;
pub(crate) mod files;
pub(crate) mod memory;
