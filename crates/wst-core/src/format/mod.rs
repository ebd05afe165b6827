//! The artifact format: names and sidecars, the archive writer, the bounded tar reader with
//! the one entry-acceptance rule verify and restore share, the manifest, and selections
//! (`docs/FORMAT.md`, `docs/ARCHIVE.md`).

pub(crate) mod archive;
pub(crate) mod artifact;
pub(crate) mod bridge;
pub(crate) mod entry_rules;
pub(crate) mod manifest;
pub(crate) mod reader;
pub(crate) mod selection;
pub(crate) mod tarstream;
