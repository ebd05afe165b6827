//! The commands, one module per command group, as methods of [`Ops`]: the configuration
//! turned into a cipher, sinks and an audit log once per process.

use std::path::PathBuf;
use std::sync::Arc;

use wst::config::{BucketConfig, Config};
use wst::core::{ArtifactName, ArtifactVerifier, AuditLog, Cipher, Repository, Sink};
use wst::pg::PgRestoreListCheck;

use crate::config::{build_cipher, build_sink, config_error};
use crate::{Out, failed, usage};

pub(crate) use config_check::config_check;
pub(crate) use pitr::PitrRequest;
pub(crate) use tenant::tenant_bucket_prefixes;

pub(crate) mod audit;
mod backup;
mod config_check;
pub(crate) mod daemon;
mod drill;
mod erasure;
mod init;
pub(crate) mod keygen;
mod ls;
mod pitr;
mod prune;
mod replicate;
mod report;
pub(crate) mod restore;
mod status;
mod tenant;
mod verify;
pub(crate) mod wal;

/// One process's wiring: the configuration, its cipher, sinks and audit log.
pub(crate) struct Ops {
    config: Config,
    json: bool,
    audit: AuditLog,
    cipher: Arc<dyn Cipher>,
    sinks: Vec<Arc<dyn Sink>>,
    /// The one owner of the artifacts: catalog, authenticated evidence, markers, lock.
    repo: Repository,
    /// The configuration file as given (`--config`), for the `restore_command` a
    /// point-in-time recovery writes.
    config_path: PathBuf,
}

/// The selection of `--include`/`--exclude` (`None`: every entry).
fn selection(include: &[String], exclude: &[String]) -> Out<Option<wst::core::Selection>> {
    if include.is_empty() && exclude.is_empty() {
        return Ok(None);
    }
    let base = if include.is_empty() {
        wst::core::Selection::all()
    } else {
        wst::core::Selection::new(include).map_err(|e| usage(e.to_string()))?
    };
    Ok(Some(
        base.exclude(exclude).map_err(|e| usage(e.to_string()))?,
    ))
}

impl Ops {
    /// `create`: local sink directories that do not exist are created (`wst init` only).
    pub(crate) async fn new(config: Config, json: bool, create: bool) -> Out<Self> {
        let actor = config
            .actor
            .clone()
            .unwrap_or_else(|| std::env::var("USER").unwrap_or_else(|_| "wst".into()));
        let mut audit = AuditLog::new(&config.audit_log, actor);
        if let Some(job) = &config.job_name {
            // Every record names its [[job]] (issue 18, "Services").
            audit = audit.with_job(job);
        }
        let cipher = build_cipher(&config.encryption)?;
        let mut sinks = Vec::new();
        for s in &config.sinks {
            sinks.push(build_sink(s, create).await?);
        }
        let mut builder =
            Repository::builder(Arc::clone(&cipher), audit.clone()).verifier(verifier_of(&config));
        for s in &sinks {
            builder = builder.sink(Arc::clone(s));
        }
        if let Some(p) = &config.prefix {
            builder = builder.prefix(p);
        }
        let repo = builder.build().map_err(|e| usage(e.to_string()))?;
        // The repository's log is keyed under the repository key: every record goes there.
        let audit = repo.audit().clone();
        Ok(Self {
            config,
            json,
            audit,
            cipher,
            sinks,
            repo,
            config_path: PathBuf::from("wst.toml"),
        })
    }

    /// The configuration file's path (absolute when it exists).
    pub(crate) fn config_path(&self) -> &std::path::Path {
        &self.config_path
    }

    /// Records the configuration file's path (made absolute when it exists).
    pub(crate) fn with_config_path(mut self, path: &std::path::Path) -> Self {
        self.config_path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        self
    }

    /// The audit log's last record, to tell whether a command recorded anything.
    pub(crate) fn audit_head(&self) -> Option<wst::core::AuditHead> {
        self.audit.head().ok().flatten()
    }

    /// Writes the audit head on the sinks ([`Repository::anchor`]).
    pub(crate) async fn anchor(&self) {
        self.repo.anchor().await;
    }

    fn entry(&self) -> Option<String> {
        entry_of(&self.config)
    }

    fn protected(&self) -> Vec<PathBuf> {
        self.config.files.iter().map(|f| f.path.clone()).collect()
    }

    fn sink(&self, name: Option<&str>) -> Out<Arc<dyn Sink>> {
        match name {
            None => Ok(Arc::clone(&self.sinks[0])),
            Some(n) => self
                .sinks
                .iter()
                .find(|s| s.info().name == n)
                .cloned()
                .ok_or_else(|| usage(format!("no sink named `{n}` in the configuration"))),
        }
    }

    async fn artifact(&self, sink: &dyn Sink, name: Option<&str>) -> Out<ArtifactName> {
        match name {
            Some(n) => ArtifactName::parse(n).map_err(|e| usage(e.to_string())),
            None => self
                .repo
                .catalog(sink)
                .await?
                .complete()
                .next_back()
                .map(|c| c.name.clone())
                .ok_or_else(|| {
                    failed(format!(
                        "sink `{}` holds no complete artifact",
                        sink.info().name
                    ))
                }),
        }
    }

    /// The `[[bucket]]` named `name`; the error lists the configured ones.
    fn bucket(&self, name: &str) -> Out<&BucketConfig> {
        self.config.bucket(name).map_err(|e| config_error(&e))
    }

    fn print<T: serde::Serialize>(&self, value: &T, human: impl FnOnce()) {
        crate::output::print(self.json, value, human);
    }
}

/// The archive entry of the database dump, when a database is configured.
fn entry_of(config: &Config) -> Option<String> {
    config.database.as_ref().map(|d| {
        d.entry
            .clone()
            .unwrap_or_else(|| wst::pg::DEFAULT_ENTRY.to_owned())
    })
}

/// The verifier every verification uses: required entries and `pg_restore --list` on the dump.
fn verifier_of(config: &Config) -> ArtifactVerifier {
    let mut v = ArtifactVerifier::new();
    for r in &config.verify.required {
        v = v.require(r.clone());
    }
    if let (Some(db), Some(entry)) = (&config.database, entry_of(config)) {
        v = v.entry_check(Arc::new(PgRestoreListCheck::new(
            entry,
            db.expected_tables.clone(),
        )));
    }
    v
}

fn actor_of(audit: &AuditLog) -> String {
    let _ = audit;
    std::env::var("USER").unwrap_or_else(|_| "wst".into())
}
