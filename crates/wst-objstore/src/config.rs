//! Sink configuration as an operator writes it (a TOML or JSON table), turned into builders.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use wst_core::Medium;

use crate::local::{LocalDiskSink, LocalDiskSinkBuilder};
use crate::objstore::{ObjectStoreSink, ObjectStoreSinkBuilder};

/// The configuration of one sink, tagged by `kind`:
///
/// ```toml
/// [sinks.local-c]
/// kind = "local_disk"
/// path = "/srv/wst/backups"
///
/// [sinks.mirror-d]
/// kind = "local_disk"
/// path = "/mnt/backup-disk/wst"
///
/// [sinks.offsite-s3]
/// kind = "object_store"
/// url = "s3://wst-backups/prod"
/// offsite = true
/// options = { aws_region = "eu-west-1" }   # credentials: from the environment
/// ```
///
/// Unknown fields are rejected, so that a typo (`offiste = true`) is an error rather than a
/// silently onsite copy. Not `Serialize`: options may hold secrets.
#[derive(Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum SinkConfig {
    /// A [`LocalDiskSink`].
    LocalDisk(LocalDiskConfig),
    /// An [`ObjectStoreSink`].
    ObjectStore(ObjectStoreConfig),
}

impl fmt::Debug for SinkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LocalDisk(c) => c.fmt(f),
            Self::ObjectStore(c) => c.fmt(f),
        }
    }
}

impl SinkConfig {
    /// Opens the configured sink as a trait object, named `name`.
    ///
    /// # Errors
    /// As [`LocalDiskSinkBuilder::open`] and [`ObjectStoreSinkBuilder::build`].
    pub async fn open(&self, name: &str) -> wst_core::Result<Box<dyn wst_core::Sink>> {
        Ok(match self {
            Self::LocalDisk(c) => Box::new(c.builder(name).open().await?),
            Self::ObjectStore(c) => Box::new(c.builder(name).build()?),
        })
    }
}

/// The configuration of a [`LocalDiskSink`]; see [`LocalDiskSinkBuilder`] for each setting.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct LocalDiskConfig {
    /// The directory holding the objects.
    pub path: PathBuf,
    /// Whether the disk is in another physical location (default `false`).
    #[serde(default)]
    pub offsite: bool,
    /// Create the directory when missing (default `false`: an unmounted disk is an error).
    #[serde(default)]
    pub create_dir: bool,
    /// Idle age in seconds after which abandoned temporary files are removed (default 86 400).
    #[serde(default)]
    pub stale_temp_age_secs: Option<u64>,
}

impl LocalDiskConfig {
    /// A builder with these settings, for a sink named `name`.
    pub fn builder(&self, name: &str) -> LocalDiskSinkBuilder {
        let mut b = LocalDiskSink::builder(name, &self.path)
            .offsite(self.offsite)
            .create_dir(self.create_dir);
        if let Some(secs) = self.stale_temp_age_secs {
            b = b.stale_temp_age(Duration::from_secs(secs));
        }
        b
    }
}

/// The configuration of an [`ObjectStoreSink`]; see [`ObjectStoreSinkBuilder`] for each
/// setting. `Debug` redacts option values that may be secrets.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ObjectStoreConfig {
    /// The store URL (`s3://bucket/prefix`, `az://container/prefix`, `gs://bucket/prefix`,
    /// `file:///dir`, `memory://`), without credentials.
    pub url: String,
    /// `object_store` options (see [`ObjectStoreSinkBuilder::option`]).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Read configuration and credentials from the environment first (default `true`).
    #[serde(default = "default_true")]
    pub from_env: bool,
    /// Whether the store is in another physical location (default `false`).
    #[serde(default)]
    pub offsite: bool,
    /// The medium for the 3-2-1 check (default: by URL scheme).
    #[serde(default)]
    pub medium: Option<Medium>,
    /// Initial multipart part size in bytes (default 16 MiB).
    #[serde(default)]
    pub part_size: Option<usize>,
    /// Parts uploaded concurrently (default 4).
    #[serde(default)]
    pub max_concurrency: Option<usize>,
}

fn default_true() -> bool {
    true
}

impl fmt::Debug for ObjectStoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The builder's Debug redacts secrets and credentials in the URL.
        fmt::Debug::fmt(&self.builder("(config)"), f)
    }
}

impl ObjectStoreConfig {
    /// A builder with these settings, for a sink named `name`.
    pub fn builder(&self, name: &str) -> ObjectStoreSinkBuilder {
        let mut b = ObjectStoreSink::builder(name, self.url.clone())
            .options(self.options.clone())
            .from_env(self.from_env)
            .offsite(self.offsite);
        if let Some(m) = self.medium {
            b = b.medium(m);
        }
        if let Some(p) = self.part_size {
            b = b.part_size(p);
        }
        if let Some(c) = self.max_concurrency {
            b = b.max_concurrency(c);
        }
        b
    }
}
