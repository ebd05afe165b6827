//! The `wst.toml` configuration of one backup job, as the `wst` binary reads it and as a
//! service (a daemon) can embed it: the same keys, defaults and checks.
//!
//! [`Config::load`] reads, parses and validates a file; [`Config::from_toml_str`] does the same
//! for text. Unknown keys are errors (a typo must not silently switch a safeguard off).
//! `examples/wst.toml` at the repository root is a documented sample covering every section.
//!
//! ```no_run
//! # fn demo() -> Result<(), wst::config::ConfigError> {
//! let config = wst::config::Config::load("/etc/wst/wst.toml")?;
//! for sink in &config.sinks {
//!     println!("{} at {} (offsite: {})", sink.name, sink.url, sink.offsite);
//! }
//! # Ok(()) }
//! ```
//!
//! # Secrets
//!
//! No secret belongs in the file (doctrine 026 R6): the database password comes from a key
//! file or an environment variable, object-store credentials from the environment. A
//! `[[bucket]]` option that holds a credential is refused
//! ([`BucketConfig::resolved_options`]). `Debug` of these types redacts sink and bucket
//! options that look like credentials and the password of a database URL.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::retention::Policy;

/// A configuration that cannot be read or is not valid. The message names the section or key
/// to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration `{}`: {source}", path.display())]
    Read {
        /// The configuration file.
        path: PathBuf,
        /// Why reading failed.
        source: std::io::Error,
    },
    /// The text is not TOML, or does not match the schema (unknown key, wrong type, missing
    /// required key).
    #[error("configuration{}: {message}", path.as_ref().map(|p| format!(" `{}`", p.display())).unwrap_or_default())]
    Parse {
        /// The file, when the text came from one.
        path: Option<PathBuf>,
        /// The parser's message, with the line and column.
        message: String,
    },
    /// There is no `[[sinks]]` section: a backup would have nowhere to go.
    #[error("the configuration has no [[sinks]]")]
    NoSinks,
    /// A `[[bucket]]` has an empty `name`.
    #[error("a [[bucket]] (url `{url}`) has an empty name")]
    EmptyBucketName {
        /// The bucket's URL, to find the section.
        url: String,
    },
    /// Two `[[bucket]]` sections share a `name`.
    #[error("two [[bucket]] sections are named `{name}`: names must be unique")]
    DuplicateBucket {
        /// The repeated name.
        name: String,
    },
    /// No `[[bucket]]` has the name asked for.
    #[error("{}", unknown_bucket(name, configured))]
    UnknownBucket {
        /// The name asked for.
        name: String,
        /// The configured bucket names, in file order.
        configured: Vec<String>,
    },
    /// A `[[bucket]]` writes a credential into `options` (doctrine 026 R6).
    #[error(
        "[[bucket]] `{bucket}`: option `{option}` is a credential and does not belong in the \
         configuration file (doctrine 026 R6): set the store's variable (e.g. \
         AWS_SECRET_ACCESS_KEY) or name one in options_env = {{ {option} = \"VAR\" }}"
    )]
    CredentialInFile {
        /// The bucket's name.
        bucket: String,
        /// The option's name (its value is never shown).
        option: String,
    },
    /// A `[[bucket]]`'s `options_env` names an environment variable that is not set.
    #[error(
        "[[bucket]] `{bucket}`: options_env names the environment variable `{var}` for \
         `{option}`, but it is not set (or not UTF-8)"
    )]
    EnvNotSet {
        /// The bucket's name.
        bucket: String,
        /// The option the variable was to provide.
        option: String,
        /// The variable's name.
        var: String,
    },
}

fn unknown_bucket(name: &str, configured: &[String]) -> String {
    if configured.is_empty() {
        format!("no [[bucket]] named `{name}`: the configuration has no [[bucket]] sections")
    } else {
        format!(
            "no [[bucket]] named `{name}`; configured: {}",
            configured.join(", ")
        )
    }
}

/// One backup job: what to back up (`[[files]]`, `[database]`, `[[bucket]]`), how to encrypt
/// it (`[encryption]`), where the copies go (`[[sinks]]`), and the rules the job is held to
/// (`[retention]`, `[verify]`, `[drill]`, `[compliance]`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// The project name in report titles (drill reports). Default `"wst"`.
    #[serde(default = "default_project")]
    pub project: String,
    /// Who is recorded in every audit record. Default: the `USER` environment variable, else
    /// `"wst"`.
    pub actor: Option<String>,
    /// The artifact name prefix: artifacts are `PREFIX-YYYYMMDD-HHMMSS…`. Default
    /// `"wst-backup"` (`wst::core::DEFAULT_PREFIX`). Prune, replicate and status only consider
    /// artifacts with this prefix.
    pub prefix: Option<String>,
    /// The hash-chained, append-only audit log (JSON lines). Prune keeps its safety state
    /// beside it (`<audit_log stem>.prune-state.json`). Required.
    pub audit_log: PathBuf,
    /// The zstd compression level of the artifact (1–22). Default 3.
    #[serde(default = "default_level")]
    pub zstd_level: i32,
    /// `[[files]]`: file trees archived with every backup (doctrine 026 R2: `wst/`, `wst-api/`).
    #[serde(default)]
    pub files: Vec<FilesConfig>,
    /// `[database]`: the `PostgreSQL` database dumped with every backup (doctrine 026 R2).
    pub database: Option<DatabaseConfig>,
    /// `[[bucket]]` sections: object-store buckets archived with every backup.
    #[serde(default, rename = "bucket")]
    pub buckets: Vec<BucketConfig>,
    /// `[encryption]`: the keys every artifact is encrypted to (AES-256-GCM). Required.
    pub encryption: EncryptionConfig,
    /// `[[sinks]]`: where the copies go (doctrine 026 R3, 3-2-1). At least one; the first is
    /// the primary (the default for `ls`, `restore`, `drill`).
    pub sinks: Vec<SinkConfig>,
    /// `[retention]`: which backups prune deletes (doctrine 026 R4). Absent: nothing is pruned.
    pub retention: Option<RetentionConfig>,
    /// `[verify]`: what every backup's verification requires (doctrine 026 R5).
    #[serde(default)]
    pub verify: VerifyConfig,
    /// `[drill]`: restore drills (doctrine 026 R7). Absent: `drill` is refused.
    pub drill: Option<DrillConfig>,
    /// `[compliance]`: the thresholds of the compliance status.
    #[serde(default)]
    pub compliance: ComplianceConfig,
}

fn default_project() -> String {
    "wst".into()
}
fn default_level() -> i32 {
    3
}
fn yes() -> bool {
    true
}

impl Config {
    /// Reads, parses and validates the configuration file at `path`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Read`] when the file cannot be read, [`ConfigError::Parse`] (with the
    /// path) when it is not a valid configuration, and the errors of [`Config::validate`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, Some(path))
    }

    /// Parses and validates configuration text (the content of a `wst.toml`).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Parse`] (without a path) when the text is not a valid configuration,
    /// and the errors of [`Config::validate`].
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        Self::parse(text, None)
    }

    fn parse(text: &str, path: Option<&Path>) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.map(Path::to_owned),
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what the schema cannot: at least one sink, and every `[[bucket]]` named, with
    /// unique names. ([`Config::load`] and [`Config::from_toml_str`] call it.)
    ///
    /// # Errors
    ///
    /// [`ConfigError::NoSinks`], [`ConfigError::EmptyBucketName`],
    /// [`ConfigError::DuplicateBucket`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.sinks.is_empty() {
            return Err(ConfigError::NoSinks);
        }
        let mut names = BTreeSet::new();
        for b in &self.buckets {
            if b.name.trim().is_empty() {
                return Err(ConfigError::EmptyBucketName { url: b.url.clone() });
            }
            if !names.insert(b.name.as_str()) {
                return Err(ConfigError::DuplicateBucket {
                    name: b.name.clone(),
                });
            }
        }
        Ok(())
    }

    /// The `[[bucket]]` named `name`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::UnknownBucket`], whose message lists the configured names.
    pub fn bucket(&self, name: &str) -> Result<&BucketConfig, ConfigError> {
        self.buckets
            .iter()
            .find(|b| b.name == name)
            .ok_or_else(|| ConfigError::UnknownBucket {
                name: name.to_owned(),
                configured: self.buckets.iter().map(|b| b.name.clone()).collect(),
            })
    }
}

/// One `[[files]]`: the tree under `path` is archived under `root/` (doctrine 026 R2; F2: a
/// missing path fails the backup, it is never silently skipped).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct FilesConfig {
    /// The directory on this host, e.g. `/srv/wst/wst` (or `'C:\wst\wst'`).
    pub path: PathBuf,
    /// The archive root, e.g. `wst` (entries are `wst/…`).
    pub root: String,
}

/// One `[[bucket]]`: every object under `url` (+ `prefix`) is archived under `root`, with its
/// key, size, `ETag` and last-modified time in the manifest.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct BucketConfig {
    /// The source's name in the manifest, and what `restore --bucket` and checks refer to.
    /// Required, non-empty, unique.
    pub name: String,
    /// `s3://bucket[/path]`, `az://container[/path]`, `gs://bucket[/path]`, `file:///dir`.
    /// Never credentials.
    pub url: String,
    /// A key prefix appended to the URL's path (folder semantics: `proofs` is `proofs/…`).
    pub prefix: Option<String>,
    /// The archive root (default `buckets/<name>`).
    pub root: Option<String>,
    /// `object_store` options that are not secrets (endpoint, region, `allow_http`). A
    /// credential here is refused (doctrine 026 R6; see [`is_secret_option`]).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Options read from environment variables: option name → variable name (credentials).
    #[serde(default)]
    pub options_env: BTreeMap<String, String>,
    /// Read the store's standard variables (`AWS_*`, `AZURE_*`, `GOOGLE_*`) first. Default
    /// `true`.
    #[serde(default = "yes")]
    pub from_env: bool,
    /// Objects downloaded (and restored) concurrently. Default: the library's (8).
    pub max_concurrency: Option<usize>,
}

impl BucketConfig {
    /// The bucket URL with `prefix` appended to its path.
    pub fn full_url(&self) -> String {
        match self.prefix.as_deref().map(|p| p.trim_matches('/')) {
            None | Some("") => self.url.clone(),
            Some(p) => format!("{}/{p}", self.url.trim_end_matches('/')),
        }
    }

    /// The archive root, without trailing `/`.
    pub fn root(&self) -> String {
        self.root.as_deref().map_or_else(
            || format!("buckets/{}", self.name),
            |r| r.trim_end_matches('/').to_owned(),
        )
    }

    /// `options` plus the `options_env` values read from the environment now.
    ///
    /// # Errors
    ///
    /// [`ConfigError::CredentialInFile`] for a credential written into `options` (doctrine
    /// 026 R6), [`ConfigError::EnvNotSet`] for a variable of `options_env` that is not set.
    pub fn resolved_options(&self) -> Result<BTreeMap<String, String>, ConfigError> {
        let mut out = BTreeMap::new();
        for (k, v) in &self.options {
            if is_secret_option(k) {
                return Err(ConfigError::CredentialInFile {
                    bucket: self.name.clone(),
                    option: k.clone(),
                });
            }
            out.insert(k.clone(), v.clone());
        }
        for (k, var) in &self.options_env {
            let value = std::env::var(var).map_err(|_| ConfigError::EnvNotSet {
                bucket: self.name.clone(),
                option: k.clone(),
                var: var.clone(),
            })?;
            out.insert(k.clone(), value);
        }
        Ok(out)
    }
}

impl fmt::Debug for BucketConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BucketConfig")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("prefix", &self.prefix)
            .field("root", &self.root)
            .field("options", &Redacted(&self.options))
            .field("options_env", &self.options_env)
            .field("from_env", &self.from_env)
            .field("max_concurrency", &self.max_concurrency)
            .finish()
    }
}

/// Whether an `object_store` option holds a credential (`aws_secret_access_key`,
/// `aws_session_token`, `aws_sse_customer_key_base64`, `azure_storage_account_key`,
/// `azure_client_secret`, `google_service_account_key`, …); paths to credential files
/// (`…_token_file`, `google_application_credentials`) are not secrets.
pub fn is_secret_option(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["secret", "password", "customer_key"]
        .iter()
        .any(|w| n.contains(w))
        || n.ends_with("_key")
        || n.ends_with("token")
}

/// Options whose credential values print as `[REDACTED]`.
struct Redacted<'a>(&'a BTreeMap<String, String>);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| {
                let v: &str = if is_secret_option(k) { "[REDACTED]" } else { v };
                (k, v)
            }))
            .finish()
    }
}

/// `[database]`: the `PostgreSQL` database dumped (`pg_dump -Fc`, one snapshot) with every
/// backup (doctrine 026 R2), and where drills and restores put it back.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DatabaseConfig {
    /// The database to back up, e.g. `postgresql://ops@db:5432/wst_dev?sslmode=require`.
    /// No password here (doctrine 026 R6): use `password_file` or `password_env`.
    pub url: String,
    /// A key file holding only the password, readable by the operator account alone
    /// (doctrine 026 R6; a file readable by others is refused). Takes precedence over
    /// `password_env`.
    pub password_file: Option<PathBuf>,
    /// The environment variable holding the password.
    pub password_env: Option<String>,
    /// The dump's entry in the artifact. Default `wst_dev_database.backup` (doctrine 026 R2).
    pub entry: Option<String>,
    /// Tables `pg_restore --list` must show, e.g. `public.users` (doctrine 026 R5 deep check).
    #[serde(default)]
    pub expected_tables: Vec<String>,
    /// The scratch server drills and `restore --database` restore into (its maintenance
    /// database, e.g. `…/postgres`); never production (invariant 4). Required by `drill` and
    /// `restore --database`.
    pub restore_url: Option<String>,
    /// `pg_restore --jobs`. Default 2.
    pub jobs: Option<u32>,
    /// `schema.table.column` of a timestamp whose newest value measures the drill's data RPO.
    pub freshness_column: Option<String>,
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &redact_url(&self.url))
            .field("password_file", &self.password_file)
            .field("password_env", &self.password_env)
            .field("entry", &self.entry)
            .field("expected_tables", &self.expected_tables)
            .field("restore_url", &self.restore_url.as_deref().map(redact_url))
            .field("jobs", &self.jobs)
            .field("freshness_column", &self.freshness_column)
            .finish()
    }
}

/// `url` with the password of its user information (`user:password@`) replaced.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    match rest[..at].split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:[REDACTED]{}", &rest[at..]),
        None => url.to_owned(),
    }
}

/// `[encryption]`: the keys (AES-256-GCM, invariant 1: there is no plaintext mode).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct EncryptionConfig {
    /// The key file (`wst keygen` writes it, mode 0600). Keep it apart from the sinks, with a
    /// copy offline.
    pub key_file: PathBuf,
    /// A file holding an offline recovery passphrase: every artifact gets a key slot for it
    /// (Argon2id), so a lost key file is not a lost backup.
    pub recovery_passphrase_file: Option<PathBuf>,
    /// Keys from before a rotation: they open old artifacts, never encrypt new ones.
    #[serde(default)]
    pub old_key_files: Vec<PathBuf>,
}

/// One `[[sinks]]`: a place every artifact is copied to (doctrine 026 R3, 3-2-1).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SinkConfig {
    /// The sink's name in reports, the audit log and `--sink`.
    pub name: String,
    /// A path or `file://` URL (the durable local-disk sink, medium disk), or an object-store
    /// URL (`s3://`, `az://`, `gs://`).
    pub url: String,
    /// `object_store` options (endpoint, region, …). Credentials come from the environment
    /// (`AWS_*`, `AZURE_*`, `GOOGLE_*`), which is always read.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// The medium of an object-store sink for the 3-2-1 count: `object_storage` (default),
    /// `disk` or `tape`. A local path is always `disk`.
    pub medium: Option<String>,
    /// Whether the copy is offsite (3-2-1 needs one). Default `false`.
    #[serde(default)]
    pub offsite: bool,
}

impl fmt::Debug for SinkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SinkConfig")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("options", &Redacted(&self.options))
            .field("medium", &self.medium)
            .field("offsite", &self.offsite)
            .finish()
    }
}

/// `[retention]`: which backups prune deletes (doctrine 026 R4). Whatever the policy says,
/// prune never deletes a backup younger than 7 days, the last backup of a sink, or one
/// without a newer verified backup (invariant 3).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RetentionConfig {
    /// The IANA time zone whose calendar days, weeks, months and years the GFS rules count,
    /// e.g. `Europe/Amsterdam`.
    pub time_zone: String,
    /// `[retention.policy]`: `keep_last`, `keep_hourly`, `keep_daily`, `keep_weekly`,
    /// `keep_monthly`, `keep_yearly`, `keep_within`, `min_age` (default `"7d"`), `max_age`.
    pub policy: Policy,
}

/// `[verify]`: what every backup's verification requires (doctrine 026 R5).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct VerifyConfig {
    /// Archive roots or entries that must be present, e.g. `["wst/", "wst-api/",
    /// "wst_dev_database.backup"]`. Default: none beyond the built-in checks.
    #[serde(default)]
    pub required: Vec<String>,
}

/// `[drill]`: restore drills (doctrine 026 R7: a tested restore path, weekly, to a
/// non-production path), with the RTO/RPO report of seeds/002.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DrillConfig {
    /// Where drills restore (an isolated path) and write their reports
    /// (`restore-test-YYYYMMDD-HHMMSS.md` and `.json`). Give it room for a whole artifact.
    pub scratch_dir: PathBuf,
    /// The RTO target in minutes. Default 240 (4 hours).
    pub rto_target_minutes: Option<f64>,
    /// The RPO target in hours. Default 24 (doctrine 026 R1: daily backups).
    pub rpo_target_hours: Option<f64>,
    /// Remove the restored files and the scratch database after the drill. Default `true`.
    #[serde(default = "yes")]
    pub cleanup: bool,
    /// `[[drill.check]]`: post-restore checks, each in the drill report; a failing one fails
    /// the drill. Names must be unique.
    #[serde(default, rename = "check")]
    pub checks: Vec<CheckConfig>,
}

/// One `[[drill.check]]`, by `kind`.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum CheckConfig {
    /// `kind = "sql"`: an SQL assertion on the scratch database, run read-only (wst-pg
    /// `SqlAssertion`).
    Sql {
        /// The check's name (the report shows `sql:<name>`).
        name: String,
        /// One statement.
        query: String,
        /// `"no_rows"`, a scalar (`"1000"`), or the rows as `psql -At` prints them.
        expect: Expect,
        /// Only this restored database (default: every one).
        source: Option<String>,
        /// Seconds before the check is cancelled and fails. Default: the library's.
        timeout_secs: Option<u64>,
    },
    /// `kind = "cross_check"`: each object key a query yields exists in the restored tree
    /// (wst-pg `ObjectKeyCrossCheck`).
    CrossCheck {
        /// The check's name (the report shows `cross_check:<name>`).
        name: String,
        /// A query yielding object keys.
        query: String,
        /// The archive root the objects were restored under, e.g. `buckets/proofs`…
        root: Option<String>,
        /// …or the `[[bucket]]` whose root that is (exactly one of `root`, `bucket`).
        bucket: Option<String>,
        /// A prefix the application stores in front of each key, removed before the lookup.
        strip_prefix: Option<String>,
        /// Only this restored database (default: every one).
        source: Option<String>,
        /// Seconds before the check is cancelled and fails. Default: the library's.
        timeout_secs: Option<u64>,
    },
    /// `kind = "smoke"`: a program run against the restored data (wst-core `SmokeTest`) in a
    /// minimal environment; exit 0 passes.
    Smoke {
        /// The check's name (the report shows `smoke:<name>`).
        name: String,
        /// An absolute path or a program on `PATH` (no shell).
        program: PathBuf,
        /// Its arguments.
        #[serde(default)]
        args: Vec<String>,
        /// Seconds before it is killed and fails. Default: the library's.
        timeout_secs: Option<u64>,
        /// Extra variables (never secrets: this file is logged).
        #[serde(default)]
        env: BTreeMap<String, String>,
        /// Variables passed through from the drill's environment.
        #[serde(default)]
        inherit: Vec<String>,
        /// Only for this restored source (default: every one).
        source: Option<String>,
    },
}

impl CheckConfig {
    /// The check's `name`.
    pub fn name(&self) -> &str {
        match self {
            Self::Sql { name, .. } | Self::CrossCheck { name, .. } | Self::Smoke { name, .. } => {
                name
            }
        }
    }
}

/// An SQL check's `expect`: a string (`"no_rows"` or a scalar), an integer (a count), or an
/// array of rows.
#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "`expect` must be \"no_rows\", one value as `psql -At` prints it (\"1000\", \
                 \"t\", or an integer), or an array of rows [\"a|1\", \"b|2\"]"
)]
pub enum Expect {
    /// `"no_rows"`, or the single value as `psql -At` prints it (`"1000"`, `"t"`).
    Text(String),
    /// The single value, an integer (a count).
    Integer(i64),
    /// The rows, columns joined by `|` (give the query an `ORDER BY`).
    Rows(Vec<String>),
}

/// `[compliance]`: the thresholds of the compliance status (doctrine 026 "Compliance
/// Statement").
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ComplianceConfig {
    /// The newest backup may be at most this many hours old (doctrine 026 R1: daily).
    /// Default 24.
    #[serde(default = "default_age")]
    pub max_backup_age_hours: i64,
    /// Complete, verified copies of the newest backup required (doctrine 026 R3: 3-2-1).
    /// Default 3.
    #[serde(default = "default_copies")]
    pub min_copies: usize,
}

impl Default for ComplianceConfig {
    fn default() -> Self {
        Self {
            max_backup_age_hours: default_age(),
            min_copies: default_copies(),
        }
    }
}

fn default_age() -> i64 {
    24
}
fn default_copies() -> usize {
    3
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped sample parses, with every section present.
    #[test]
    fn the_shipped_example_config_parses() {
        let text = include_str!("../examples/wst.toml");
        let c = Config::from_toml_str(text).unwrap();
        assert_eq!(c.project, "wst");
        assert_eq!(c.prefix.as_deref(), Some("wst-backup"));
        assert_eq!(c.files.len(), 2);
        assert_eq!(c.sinks.len(), 3);
        assert!(c.sinks[2].offsite);
        let db = c.database.as_ref().unwrap();
        assert_eq!(db.entry.as_deref(), Some("wst_dev_database.backup"));
        let bucket = c.bucket("proofs").unwrap();
        assert_eq!(bucket.full_url(), "s3://wst-proofs/tenants");
        assert_eq!(bucket.root(), "buckets/proofs");
        assert_eq!(c.retention.as_ref().unwrap().policy.keep_daily, 30);
        let drill = c.drill.as_ref().unwrap();
        let names: Vec<&str> = drill.checks.iter().map(CheckConfig::name).collect();
        assert_eq!(
            names,
            [
                "proofs_have_customers",
                "user_count_positive",
                "proof_objects",
                "api_starts"
            ]
        );
        assert_eq!(c.compliance.min_copies, 3);
        // `Config::load` reads the same file.
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/wst.toml");
        assert_eq!(Config::load(&path).unwrap().sinks.len(), 3);
    }

    #[test]
    fn defaults_and_validation() {
        let minimal = "audit_log = \"/a\"\n[encryption]\nkey_file = \"/k\"\n\
                       [[sinks]]\nname = \"c\"\nurl = \"/c\"\n";
        let c = Config::from_toml_str(minimal).unwrap();
        assert_eq!((c.project.as_str(), c.zstd_level), ("wst", 3));
        assert_eq!(c.compliance.max_backup_age_hours, 24);
        assert!(c.retention.is_none() && c.drill.is_none() && c.database.is_none());

        let no_sinks = "audit_log = \"/a\"\nsinks = []\n[encryption]\nkey_file = \"/k\"\n";
        assert!(matches!(
            Config::from_toml_str(no_sinks),
            Err(ConfigError::NoSinks)
        ));
        let typo = format!("{minimal}zstd_levle = 3\n");
        let e = Config::from_toml_str(&typo).unwrap_err();
        assert!(e.to_string().contains("zstd_levle"), "{e}");
        let bucket = "[[bucket]]\nname = \"p\"\nurl = \"s3://p\"\n";
        let e = Config::from_toml_str(&format!("{minimal}{bucket}{bucket}")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "two [[bucket]] sections are named `p`: names must be unique"
        );
        let e = c.bucket("p").unwrap_err().to_string();
        assert!(
            e.ends_with("the configuration has no [[bucket]] sections"),
            "{e}"
        );
    }

    #[test]
    fn credentials_are_refused_and_redacted() {
        let text = "audit_log = \"/a\"\n[encryption]\nkey_file = \"/k\"\n\
                    [[sinks]]\nname = \"s3\"\nurl = \"s3://b\"\n\
                    options = { aws_secret_access_key = \"s3cr3t\", aws_region = \"eu\" }\n\
                    [[bucket]]\nname = \"p\"\nurl = \"s3://p\"\n\
                    options = { aws_secret_access_key = \"s3cr3t\" }\n\
                    [database]\nurl = \"postgresql://ops:hunter2@db/wst_dev\"\n";
        let c = Config::from_toml_str(text).unwrap();
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("s3cr3t") && !debug.contains("hunter2"),
            "{debug}"
        );
        assert!(debug.contains("\"eu\"") && debug.contains("postgresql://ops:[REDACTED]@db/"));
        let e = c.buckets[0].resolved_options().unwrap_err().to_string();
        assert!(
            e.contains("option `aws_secret_access_key` is a credential"),
            "{e}"
        );
        assert!(!e.contains("s3cr3t"));
    }
}
