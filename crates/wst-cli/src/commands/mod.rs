//! The commands, one module per command group, as methods of [`Ops`]: the configuration
//! turned into a cipher, sinks and an audit log once per process.

use std::path::PathBuf;
use std::sync::Arc;

use wst::config::{BucketConfig, Config};
use wst::core::{ArtifactName, ArtifactVerifier, AuditLog, Cipher, Sink, complete_artifacts};
use wst::pg::PgRestoreListCheck;

use crate::config::{build_cipher, build_sink, config_error};
use crate::{Out, failed, usage};

pub(crate) mod audit;
mod backup;
mod drill;
pub(crate) mod keygen;
mod ls;
mod prune;
mod replicate;
pub(crate) mod restore;
mod status;
mod verify;

/// One process's wiring: the configuration, its cipher, sinks and audit log.
pub(crate) struct Ops {
    config: Config,
    json: bool,
    audit: AuditLog,
    cipher: Arc<dyn Cipher>,
    sinks: Vec<Arc<dyn Sink>>,
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
    pub(crate) async fn new(config: Config, json: bool) -> Out<Self> {
        let actor = config
            .actor
            .clone()
            .unwrap_or_else(|| std::env::var("USER").unwrap_or_else(|_| "wst".into()));
        let audit = AuditLog::new(&config.audit_log, actor);
        let cipher = build_cipher(&config.encryption)?;
        let mut sinks = Vec::new();
        for s in &config.sinks {
            sinks.push(build_sink(s).await?);
        }
        Ok(Self {
            config,
            json,
            audit,
            cipher,
            sinks,
        })
    }

    fn entry(&self) -> Option<String> {
        self.config.database.as_ref().map(|d| {
            d.entry
                .clone()
                .unwrap_or_else(|| wst::pg::DEFAULT_ENTRY.to_owned())
        })
    }

    fn verifier(&self) -> ArtifactVerifier {
        let mut v = ArtifactVerifier::new();
        for r in &self.config.verify.required {
            v = v.require(r.clone());
        }
        if let (Some(db), Some(entry)) = (&self.config.database, self.entry()) {
            v = v.entry_check(Arc::new(PgRestoreListCheck::new(
                entry,
                db.expected_tables.clone(),
            )));
        }
        v
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
            None => complete_artifacts(sink).await?.pop().ok_or_else(|| {
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

fn actor_of(audit: &AuditLog) -> String {
    let _ = audit;
    std::env::var("USER").unwrap_or_else(|_| "wst".into())
}
