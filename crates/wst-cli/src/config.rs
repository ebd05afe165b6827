//! The configuration (`wst::config::Config`, the same `wst.toml` schema a service can embed)
//! loaded with operator-facing messages, and turned into the cipher, sinks, bucket sources and
//! targets and database connections the commands use. A configuration mistake is bad usage
//! (exit 2).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wst::config::{
    BucketConfig, Config, ConfigError, DatabaseConfig, EncryptionConfig, SinkConfig,
};
use wst::core::{Cipher, Medium, Sink, SinkInfo, UnavailableSink};
use wst::crypto::{AeadCipher, KdfParams, Key, Passphrase};
use wst::objstore::{LocalDiskSink, ObjectStoreSink, ObjectStoreSource, ObjectStoreTarget};
use wst::pg::{ConnectionConfig, PasswordSource};

use crate::{Failure, Out, failed, usage};

/// Reads, parses and checks the whole configuration file (`Config::problems`, issue 15):
/// every problem, listed at once, is bad usage (exit 2). Every command calls this before it
/// does any work.
pub(crate) fn load_config(path: &Path) -> Out<Config> {
    Config::load(path).map_err(|e| match e {
        ConfigError::Read { .. } => {
            usage(format!("{e} (pass --config PATH; see examples/wst.toml)"))
        }
        e => config_error(&e),
    })
}

/// A configuration mistake found while using it: bad usage (exit 2).
pub(crate) fn config_error(e: &ConfigError) -> Failure {
    usage(e.to_string())
}

/// A key file that cannot be loaded: bad configuration (exit 2). A missing key file advises
/// the command that creates one (issue 15), not the library call.
fn key_error(e: &wst::crypto::Error, key: &str) -> Failure {
    match e {
        wst::crypto::Error::KeyFileMissing { path } => usage(format!(
            "{key} `{}` does not exist: fix the path in the configuration, or create a key \
             with `wst keygen --out {}` (keep a copy offline, apart from the backups; a new \
             key cannot open artifacts sealed for a lost one)",
            path.display(),
            path.display()
        )),
        e => usage(e.to_string()),
    }
}

pub(crate) fn build_cipher(config: &EncryptionConfig) -> Out<Arc<dyn Cipher>> {
    let key = Key::load(&config.key_file).map_err(|e| key_error(&e, "[encryption] key_file"))?;
    let mut b = AeadCipher::builder().recipient_key(key);
    if let Some(p) = &config.recovery_passphrase_file {
        b = b.recipient_passphrase(
            Passphrase::load(p).map_err(|e| usage(e.to_string()))?,
            KdfParams::default(),
        );
    }
    for old in &config.old_key_files {
        b = b.opening_key(
            Key::load(old).map_err(|e| key_error(&e, "[encryption] old_key_files entry"))?,
        );
    }
    Ok(Arc::new(b.build()?))
}

/// The sink a `[[sinks]]` section configures. A local directory that does not exist is
/// created only when `create` (`wst init`); otherwise the sink stands in as an
/// [`UnavailableSink`] saying the disk may not be mounted, so a backup is degraded and status
/// names it instead of writing onto the root filesystem.
pub(crate) async fn build_sink(s: &SinkConfig, create: bool) -> Out<Arc<dyn Sink>> {
    let local = s.url.strip_prefix("file://").map_or_else(
        || (!s.url.contains("://")).then(|| PathBuf::from(&s.url)),
        |p| Some(PathBuf::from(p)),
    );
    if let Some(dir) = local {
        if !create && !dir.is_dir() {
            let info = SinkInfo {
                name: s.name.clone(),
                medium: Medium::Disk,
                offsite: s.offsite,
                location: dir.display().to_string(),
            };
            return Ok(Arc::new(UnavailableSink::new(
                info,
                format!(
                    "`{}` does not exist: the disk may not be mounted, or the path is wrong \
                     (wst creates a sink directory only in `wst init`)",
                    dir.display()
                ),
            )));
        }
        return Ok(Arc::new(
            LocalDiskSink::builder(&s.name, dir)
                .create_dir(create)
                .offsite(s.offsite)
                .open()
                .await?,
        ));
    }
    let medium = match s.medium.as_deref() {
        None | Some("object_storage") => Medium::ObjectStorage,
        Some("disk") => Medium::Disk,
        Some("tape") => Medium::Tape,
        Some(other) => {
            return Err(usage(format!(
                "sink `{}`: unknown medium `{other}`",
                s.name
            )));
        }
    };
    // A sink that cannot be configured (an unparsable URL, credentials in it, an unknown
    // option) is a configuration mistake: exit 2, like every other one.
    let options = s.resolved_options().map_err(|e| config_error(&e))?;
    Ok(Arc::new(
        ObjectStoreSink::builder(&s.name, &s.url)
            .options(options)
            .from_env(true)
            .medium(medium)
            .offsite(s.offsite)
            .build()
            .map_err(|e| match e {
                wst::core::Error::Config(_) => usage(format!("[[sinks]] `{}`: {e}", s.name)),
                e => failed(format!("[[sinks]] `{}`: {e}", s.name)),
            })?,
    ))
}

pub(crate) fn pg_connection(db: &DatabaseConfig, url: &str) -> Out<ConnectionConfig> {
    let password = match (&db.password_file, &db.password_env) {
        (Some(f), _) => PasswordSource::KeyFile(f.clone()),
        (None, Some(v)) => PasswordSource::Env(v.clone()),
        (None, None) => PasswordSource::None,
    };
    Ok(ConnectionConfig::from_url(url)
        .map_err(|e| usage(e.to_string()))?
        .with_password(password))
}

/// The `[[bucket]]`'s objects as a backup source.
pub(crate) fn bucket_source(bucket: &BucketConfig) -> Out<ObjectStoreSource> {
    let mut b = ObjectStoreSource::builder(&bucket.name, bucket.full_url(), bucket.root())
        .options(bucket.resolved_options().map_err(|e| config_error(&e))?)
        .from_env(bucket.from_env);
    if let Some(c) = bucket.max_concurrency {
        b = b.max_concurrency(c);
    }
    b.build()
        .map_err(|e| usage(format!("[[bucket]] `{}`: {e}", bucket.name)))
}

/// A restore target at `url` opened with the `[[bucket]]`'s options and credentials.
pub(crate) fn bucket_target(bucket: &BucketConfig, url: &str) -> Out<ObjectStoreTarget> {
    ObjectStoreTarget::builder(url)
        .options(bucket.resolved_options().map_err(|e| config_error(&e))?)
        .from_env(bucket.from_env)
        .build()
        .map_err(|e| usage(format!("--to-bucket `{url}`: {e}")))
}
