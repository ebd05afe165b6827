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
//! # Checked completely, before any work
//!
//! [`Config::load`] and [`Config::from_toml_str`] parse, then run [`Config::problems`]: one
//! function that checks every time zone, retention policy (a policy that keeps nothing is an
//! error), number range, URL, archive root and exclude pattern, and applies one secret rule
//! to every options table (issue 15). It returns **every** problem at once, each naming its
//! TOML key path (`sinks[2].options.aws_secret_access_key`), so an operator fixes a file in
//! one pass; [`ConfigError::Invalid`] carries the list. The `wst` binary runs it before any
//! command does work, and `wst config check` runs only it.
//!
//! # Secrets
//!
//! No secret belongs in the file (doctrine 026 R6): the database password comes from a key
//! file or an environment variable, object-store credentials from the environment (or
//! `options_env`, naming the variables). One rule ([`is_secret_option`], [`url_credential`])
//! covers every options table — `[[sinks]]` and `[[bucket]]` `options`, the database `url`
//! and `restore_url`, sink and bucket URLs, a smoke check's `env` — and a credential in any
//! of them is a problem naming the key. `Debug` of these types redacts sink and bucket
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
    /// The configuration parsed but is not valid: every problem [`Config::problems`] found,
    /// each naming its TOML key path (issue 15). Nothing was done.
    #[error("{}", invalid(path.as_deref(), problems))]
    Invalid {
        /// The file, when the text came from one.
        path: Option<PathBuf>,
        /// Every problem, in file order.
        problems: Vec<Problem>,
    },
    /// No `[[bucket]]` has the name asked for.
    #[error("{}", unknown_bucket(name, configured))]
    UnknownBucket {
        /// The name asked for.
        name: String,
        /// The configured bucket names, in file order.
        configured: Vec<String>,
    },
    /// A `[[sinks]]` or `[[bucket]]` section writes a credential into `options` (doctrine 026
    /// R6; the one secret rule of issue 15).
    #[error(
        "{section}: option `{option}` is a credential and does not belong in the \
         configuration file (doctrine 026 R6): set the store's variable (e.g. \
         AWS_SECRET_ACCESS_KEY) or name one in options_env = {{ {option} = \"VAR\" }}"
    )]
    CredentialInFile {
        /// The section, e.g. ``[[bucket]] `proofs` ``.
        section: String,
        /// The option's name (its value is never shown).
        option: String,
    },
    /// No `[[job]]` has the name asked for (`--job`, issue 18).
    #[error("{}", unknown_job(name, configured))]
    UnknownJob {
        /// The name asked for.
        name: String,
        /// The configured job names, in file order (empty: no `[[job]]`).
        configured: Vec<String>,
    },
    /// An `options_env` entry names an environment variable that is not set.
    #[error(
        "{section}: options_env names the environment variable `{var}` for \
         `{option}`, but it is not set (or not UTF-8)"
    )]
    EnvNotSet {
        /// The section, e.g. ``[[bucket]] `proofs` ``.
        section: String,
        /// The option the variable was to provide.
        option: String,
        /// The variable's name.
        var: String,
    },
    /// A tenant id (`restore --tenant`) that breaks the subject-id rule of the erasure
    /// register (issue 18; `docs/TENANTS.md`). The id itself is not repeated: it may be
    /// personal.
    #[error("--tenant: {reason}")]
    TenantId {
        /// The rule broken.
        reason: String,
    },
}

fn invalid(path: Option<&Path>, problems: &[Problem]) -> String {
    use std::fmt::Write as _;
    let mut out = format!(
        "configuration{} is not valid ({} problem{}; nothing was done):",
        path.map(|p| format!(" `{}`", p.display()))
            .unwrap_or_default(),
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for p in problems {
        let _ = write!(out, "\n  - {p}");
    }
    out
}

/// One problem in a configuration: the TOML key path it is about and what to do (issue 15).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Problem {
    /// The TOML key path, e.g. `retention.time_zone`, `sinks[2].options.aws_secret_access_key`
    /// (array indices count from 0 in file order), or a section such as `sinks` when the
    /// problem is the section as a whole.
    pub key: String,
    /// What is wrong and what to write instead (never a secret's value).
    pub message: String,
}

impl Problem {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

fn unknown_job(name: &str, configured: &[String]) -> String {
    if configured.is_empty() {
        format!(
            "no [[job]] named `{name}`: the configuration has no [[job]] sections (leave out --job)"
        )
    } else {
        format!(
            "no [[job]] named `{name}`; configured: {}",
            configured.join(", ")
        )
    }
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
    /// The zstd compression level of the artifact (1–19). Default 3.
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
    /// `[wal]`: continuous WAL archiving (`wal-push`/`wal-fetch`, issue 16). Absent: the
    /// defaults of [`WalConfig`].
    pub wal: Option<WalConfig>,
    /// `[bcp]`: what the business continuity plan (`wst report bcp`, issue 17) needs and the
    /// configuration does not otherwise hold (client, systems, contacts, the DR procedure).
    /// Absent: those parts of the plan are rendered as `TO FILL` markers.
    pub bcp: Option<BcpConfig>,
    /// `[metrics]`: the metrics file and the daemon's `/metrics` (issue 17).
    pub metrics: Option<MetricsConfig>,
    /// `[alerts]`: where alerts and recovery notices go (issue 17).
    pub alerts: Option<AlertsConfig>,
    /// `[[schedule]]` entries: jobs `wst daemon` runs (issue 17).
    #[serde(default, rename = "schedule")]
    pub schedules: Vec<ScheduleConfig>,
    /// `[erasure]`: what erasing a subject means (issue 18, `docs/ERASURE.md`). Absent:
    /// `wst erasure record` is refused; restores still apply the register's entries.
    pub erasure: Option<ErasureConfig>,
    /// `[tenant]`: the tenant key per source, for `restore --tenant ID` (issue 18,
    /// `docs/TENANTS.md`). Absent: `--tenant` is refused.
    pub tenant: Option<TenantConfig>,
    /// This configuration's `[[job]]` name (issue 18, "Services"; [`jobs`]); `None` for a
    /// file without `[[job]]`.
    #[serde(skip)]
    pub job_name: Option<String>,
    /// Every `[[job]]`'s configuration in file order (each with its [`Config::job_name`]);
    /// empty without `[[job]]`. With jobs, the other fields are the first job's: select one
    /// with [`Config::into_job`] or take all with [`Config::into_jobs`].
    #[serde(skip)]
    pub jobs: Vec<Config>,
    /// The top-level keys this job sets itself (for problem key paths).
    #[serde(skip)]
    job_keys: Vec<String>,
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
        // `[[job]]` tables: one repository per job (issue 18; `jobs`).
        if let Ok(table) = toml::from_str::<toml::Table>(text)
            && table.contains_key("job")
        {
            return jobs::parse(table, path);
        }
        let config: Self = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.map(Path::to_owned),
            message: e.to_string(),
        })?;
        let problems = config.problems();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid {
                path: path.map(Path::to_owned),
                problems,
            })
        }
    }

    /// Checks the whole configuration ([`Config::problems`]); [`Config::load`] and
    /// [`Config::from_toml_str`] call it.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] with every problem found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid {
                path: None,
                problems,
            })
        }
    }

    /// Every problem of the configuration, in file order; empty when it is valid (issue 15:
    /// "configuration validated completely before any work"). What the schema cannot say:
    ///
    /// - **secrets** (doctrine 026 R6), one rule for every options table: a credential option
    ///   ([`is_secret_option`]) in `[[sinks]]` or `[[bucket]]` `options`, credentials in a
    ///   sink, bucket or database URL or `restore_url` ([`url_credential`]), a secret-looking
    ///   variable in a smoke check's `env`;
    /// - **retention**: the time zone exists (IANA name), the policy keeps something, no
    ///   negative or conflicting durations (`max_age` longer than `min_age`);
    /// - **numbers**: `zstd_level` 1–19, `compliance.max_backup_age_hours` 1–8784,
    ///   `compliance.min_copies` ≥ 1, drill `rto_target_minutes`/`rpo_target_hours` positive
    ///   and finite, `database.jobs`, `max_concurrency` and `timeout_secs` ≥ 1, `max_shrink`
    ///   strictly between 0 and 1;
    /// - **URLs**: sink and bucket URLs parse and use a supported scheme (`s3`, `az`, `gs`,
    ///   `file`, or a local path for sinks), database URLs parse;
    /// - **names**: at least one sink, sink and bucket names present and unique, archive
    ///   roots valid and not overlapping (files, database entry, buckets), exclude globs
    ///   valid, the artifact prefix valid, `[[drill.check]]` names present and unique, a
    ///   cross-check naming exactly one of `root` or a configured `bucket`, SQL checks and
    ///   drills of a database having `restore_url`, `freshness_column` as
    ///   `schema.table.column`, `medium` one of `object_storage`, `disk`, `tape`;
    /// - **placement** (issue 17): `region`, `jurisdiction`, `production_region`,
    ///   `production_jurisdiction` and `allowed_jurisdictions` entries not empty, no
    ///   jurisdiction listed twice (a sink that does not declare what a configured placement
    ///   rule needs is a finding of `status`, not a problem here: backups still run);
    /// - **`[bcp]`**: contacts with a role and a name, `review_interval_months` 1–36;
    /// - **`[wal]`** (issue 16): `sync_sinks` naming configured sinks once each,
    ///   `rpo_target_minutes` positive, `zstd_level` 1–19, `queue_max_bytes` above 0,
    ///   `process_max` 1–64, `async_timeout_seconds` 1–3600.
    ///
    /// Files are not opened (a key file may not exist before `wst keygen`); environment
    /// variables are not read.
    pub fn problems(&self) -> Vec<Problem> {
        if !self.jobs.is_empty() {
            // Each job's problems and the checks across jobs (issue 18, `jobs`).
            return jobs::problems(self);
        }
        let mut p = Vec::new();
        check_top(self, &mut p);
        check_files(self, &mut p);
        check_database(self, &mut p);
        check_buckets(self, &mut p);
        check_encryption(&self.encryption, &mut p);
        check_sinks(self, &mut p);
        check_retention(self, &mut p);
        check_verify(&self.verify, &mut p);
        check_drill(self, &mut p);
        check_compliance(&self.compliance, &mut p);
        check_roots(self, &mut p);
        check_placement(self, &mut p);
        check_bcp(self, &mut p);
        signals::check_signals(self, &mut p);
        check_erasure(self, &mut p);
        check_wal(self, &mut p);
        tenant::check_tenant(self, &mut p);
        p
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
    /// Globs of entries left out (issue 15): matched against the path relative to `path`
    /// (`cache/**`), the archive path (`wst/cache/**`), or, without `/`, the file name at any
    /// depth (`node_modules`, `*.log`). An excluded directory is not entered. `wst backup
    /// --exclude GLOB` adds patterns for one run. See `wst::core::FileTreeSource::exclude`.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Stay on the file system of `path`: a mount point below it is archived as an empty
    /// directory and not entered (Unix: device id; Windows: volume serial number). Default
    /// `false`.
    #[serde(default)]
    pub one_file_system: bool,
    /// Fail the run, before anything of this tree is archived, when fewer entries than this
    /// are found under `path` (an unmounted volume leaves an empty mount point). Default: off
    /// (an empty tree only warns).
    pub min_entries: Option<u64>,
    /// Fail the run when the tree's entry count or bytes fell by more than this fraction
    /// (0 < x < 1; `0.5`: to less than half) since the previous verified artifact, whose
    /// authenticated sidecar records each source's counts. Default: off.
    pub max_shrink: Option<f64>,
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
        resolve_options(
            &format!("[[bucket]] `{}`", self.name),
            &self.options,
            &self.options_env,
        )
    }
}

/// The one secret rule applied at use (issue 15): `options` without credentials, plus the
/// `options_env` variables' values.
fn resolve_options(
    section: &str,
    options: &BTreeMap<String, String>,
    options_env: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut out = BTreeMap::new();
    for (k, v) in options {
        if is_secret_option(k) {
            return Err(ConfigError::CredentialInFile {
                section: section.to_owned(),
                option: k.clone(),
            });
        }
        out.insert(k.clone(), v.clone());
    }
    for (k, var) in options_env {
        let value = std::env::var(var).map_err(|_| ConfigError::EnvNotSet {
            section: section.to_owned(),
            option: k.clone(),
            var: var.clone(),
        })?;
        out.insert(k.clone(), value);
    }
    Ok(out)
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
///
/// This is the one secret rule of the configuration (issue 15): [`Config::problems`] applies
/// it to every options table — `[[sinks]]` and `[[bucket]]` `options`, a smoke check's `env`
/// (`API_TOKEN`, `PGPASSWORD`) — and to the query parameters of URLs ([`url_credential`]).
pub fn is_secret_option(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["secret", "password", "passwd", "customer_key", "apikey"]
        .iter()
        .any(|w| n.contains(w))
        || n.ends_with("_key")
        || n.ends_with("token")
}

/// Query parameters that carry a signature or temporary credential (Azure SAS `sig`, S3
/// presigned `X-Amz-Signature`, `X-Amz-Credential`, `X-Amz-Security-Token`).
const SIGNATURE_PARAMETERS: [&str; 4] = [
    "sig",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
];

/// Where a URL or connection string carries a credential, described without its value; `None`
/// when it carries none (issue 15, doctrine 026 R6: the same rule as [`is_secret_option`]).
///
/// Credentials are: a password in the user information (`user:…@`); for object-store URLs
/// (any scheme but `postgres`/`postgresql`) also a user name there (an access key); a query
/// parameter whose name is a credential ([`is_secret_option`]: `password=`, `sslpassword=`)
/// or a signature (`sig=` of an Azure SAS, `X-Amz-Signature=`); in a `PostgreSQL` key/value
/// string (`host=db user=ops password=…`), a credential key. A text that does not parse is
/// not judged here ([`Config::problems`] reports it as unparsable).
pub fn url_credential(text: &str) -> Option<String> {
    if !text.contains("://") {
        // A local path, or a PostgreSQL key/value connection string.
        return text.split_whitespace().find_map(|pair| {
            let (k, _) = pair.split_once('=')?;
            is_secret_option(k.trim()).then(|| format!("`{}=…`", k.trim()))
        });
    }
    let url = url::Url::parse(text).ok()?;
    if url.password().is_some() {
        return Some("a password in its user information (`user:…@`)".to_owned());
    }
    let database = matches!(url.scheme(), "postgres" | "postgresql");
    if !database && !url.username().is_empty() {
        return Some("a user name (an access key) in its user information (`…@`)".to_owned());
    }
    url.query_pairs().find_map(|(k, _)| {
        let lower = k.to_ascii_lowercase();
        (is_secret_option(&k) || SIGNATURE_PARAMETERS.contains(&lower.as_str()))
            .then(|| format!("the query parameter `{k}`"))
    })
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
    /// database, e.g. `…/postgres`); never the source database's name without break-glass
    /// (invariant 4; `restore --database NAME --break-glass-by … --reason …` is the disaster
    /// restore, doctrine 026 L6, issue 15). Required by `drill` and `restore --database`
    /// (unless `restore --server URL`).
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
    /// `object_store` options that are not secrets (endpoint, region, …). Credentials come
    /// from the environment (`AWS_*`, `AZURE_*`, `GOOGLE_*`), which is always read, or from
    /// the variables `options_env` names; a credential here is refused (the same rule as
    /// `[[bucket]]`, [`is_secret_option`]).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Options read from environment variables: option name → variable name (credentials,
    /// e.g. `{ aws_secret_access_key = "WST_OFFSITE_SECRET" }`).
    #[serde(default)]
    pub options_env: BTreeMap<String, String>,
    /// The medium of an object-store sink for the 3-2-1 count: `object_storage` (default),
    /// `disk` or `tape`. A local path is always `disk`.
    pub medium: Option<String>,
    /// Whether the copy is offsite (3-2-1 needs one). Default `false`.
    #[serde(default)]
    pub offsite: bool,
    /// The region or data center the copy is in, e.g. `nl-ams1` (issue 17 placement rules:
    /// an offsite sink must be in another region than `[compliance] production_region`,
    /// seeds/002 anti-pattern 5). Required for offsite sinks when `production_region` is set.
    pub region: Option<String>,
    /// The jurisdiction the copy is in, e.g. `EU` (issue 17: it must be one of `[compliance]
    /// allowed_jurisdictions`, seeds/002 anti-pattern 6). Required when that list is set.
    pub jurisdiction: Option<String>,
}

impl SinkConfig {
    /// Whether `url` is a local directory (a path or a `file://` URL: the durable local-disk
    /// sink) rather than an object store.
    pub fn is_local(&self) -> bool {
        self.url.starts_with("file://") || !self.url.contains("://")
    }

    /// `options` plus the `options_env` values read from the environment now.
    ///
    /// # Errors
    /// [`ConfigError::CredentialInFile`] for a credential written into `options` (doctrine
    /// 026 R6; [`Config::problems`] reports it first), [`ConfigError::EnvNotSet`] for a
    /// variable of `options_env` that is not set.
    pub fn resolved_options(&self) -> Result<BTreeMap<String, String>, ConfigError> {
        resolve_options(
            &format!("[[sinks]] `{}`", self.name),
            &self.options,
            &self.options_env,
        )
    }
}

impl fmt::Debug for SinkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SinkConfig")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("options", &Redacted(&self.options))
            .field("options_env", &self.options_env)
            .field("medium", &self.medium)
            .field("offsite", &self.offsite)
            .field("region", &self.region)
            .field("jurisdiction", &self.jurisdiction)
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
    /// The production system's region or data center, e.g. `de-fra1` (issue 17). When set,
    /// status has the rule *offsite in another region*: every offsite `[[sinks]]` declares a
    /// `region` other than this (seeds/002 anti-pattern 5). Default: not judged.
    pub production_region: Option<String>,
    /// The production system's jurisdiction, e.g. `EU` (the first copy of seeds/002's three).
    /// Needed when `allowed_jurisdictions` is set.
    pub production_jurisdiction: Option<String>,
    /// The jurisdictions copies may be in, e.g. `["EU"]` (issue 17). When set, status has the
    /// rule *copies in allowed jurisdictions*: production and every `[[sinks]]` declare a
    /// `jurisdiction` in this list (seeds/002 anti-pattern 6). Default: not judged.
    #[serde(default)]
    pub allowed_jurisdictions: Vec<String>,
    /// Years the audit log must cover (issue 18; seeds/003 HIPAA mode: audit logs retained
    /// per regulation, 6 years). wst never deletes or rotates audit records; with this set,
    /// status has the rule *audit retention*, which fails when an artifact taken within
    /// these years (still on a sink) is older than the log's first record and the log names
    /// no run that made it: the log was truncated or rotated away (`docs/EVIDENCE.md`).
    /// 1–100. Default: not judged.
    pub audit_retention_years: Option<u32>,
}

impl Default for ComplianceConfig {
    fn default() -> Self {
        Self {
            max_backup_age_hours: default_age(),
            min_copies: default_copies(),
            production_region: None,
            production_jurisdiction: None,
            allowed_jurisdictions: Vec::new(),
            audit_retention_years: None,
        }
    }
}

fn default_age() -> i64 {
    24
}
fn default_copies() -> usize {
    3
}

// ---- the complete check (issue 15) ------------------------------------------------------------

/// The schemes of object-store URLs (`wst::objstore`) and what each is.
const STORE_SCHEMES: [&str; 6] = ["s3", "s3a", "az", "azure", "gs", "file"];

/// Where a secret goes instead, per kind of table.
const USE_ENV: &str = "set the store's variable (AWS_SECRET_ACCESS_KEY, AZURE_STORAGE_ACCOUNT_KEY, \
                       GOOGLE_SERVICE_ACCOUNT_KEY, …) or name one with options_env = { OPTION = \"VAR\" }";

/// The one secret rule over an options table (`key` is its TOML path).
fn secret_options(key: &str, options: &BTreeMap<String, String>, p: &mut Vec<Problem>) {
    for k in options.keys().filter(|k| is_secret_option(k)) {
        p.push(Problem::new(
            format!("{key}.{k}"),
            format!(
                "is a credential and does not belong in the configuration file (doctrine 026 \
                 R6): {}",
                USE_ENV.replace("OPTION", k)
            ),
        ));
    }
}

/// `options_env`: names present, no option both in `options` and `options_env`.
fn options_env(
    key: &str,
    options: &BTreeMap<String, String>,
    env: &BTreeMap<String, String>,
    p: &mut Vec<Problem>,
) {
    for (k, var) in env {
        if var.trim().is_empty() {
            p.push(Problem::new(
                format!("{key}.options_env.{k}"),
                "names no environment variable",
            ));
        }
        if options.contains_key(k) {
            p.push(Problem::new(
                format!("{key}.options_env.{k}"),
                format!("`{k}` is also set in options: keep one"),
            ));
        }
    }
}

/// An object-store URL (sinks and buckets): parses, a supported scheme, no credential.
fn store_url(key: &str, text: &str, p: &mut Vec<Problem>) {
    if let Some(c) = url_credential(text) {
        p.push(Problem::new(
            key,
            format!(
                "the URL carries {c}: credentials never belong in a URL or this file (doctrine \
                 026 R6); {USE_ENV}"
            ),
        ));
        return;
    }
    match url::Url::parse(text) {
        Err(e) => p.push(Problem::new(key, format!("is not a URL: {e}"))),
        Ok(u) if !STORE_SCHEMES.contains(&u.scheme()) => p.push(Problem::new(
            key,
            format!(
                "scheme `{}://` is not supported: use s3://, az://, gs:// or file:///",
                u.scheme()
            ),
        )),
        Ok(u) if u.scheme() != "file" && u.host_str().is_none_or(str::is_empty) => p.push(
            Problem::new(key, "names no bucket or container (`s3://BUCKET/path`)"),
        ),
        Ok(_) => {}
    }
}

/// A database URL or connection string: no password (use a key file or an environment
/// variable), and it parses.
fn database_url(key: &str, text: &str, p: &mut Vec<Problem>) {
    if text.trim().is_empty() {
        p.push(Problem::new(key, "is empty"));
        return;
    }
    if let Some(c) = url_credential(text) {
        p.push(Problem::new(
            key,
            format!(
                "carries {c}: no password belongs in the configuration file (doctrine 026 R6); \
                 remove it and put it in a key file readable only by the operator \
                 ([database] password_file) or an environment variable ([database] \
                 password_env)"
            ),
        ));
        return;
    }
    if text.contains("://") {
        match url::Url::parse(text) {
            Ok(u) if !matches!(u.scheme(), "postgres" | "postgresql") => p.push(Problem::new(
                key,
                format!(
                    "scheme `{}://` is not PostgreSQL: write postgresql://USER@HOST:PORT/DATABASE",
                    u.scheme()
                ),
            )),
            Err(e) => p.push(Problem::new(key, format!("is not a URL: {e}"))),
            Ok(_) => {}
        }
    }
    if let Some(e) = pg_parse_problem(text) {
        p.push(Problem::new(key, e));
    }
}

/// What wst-pg's parser refuses in a connection URL or string (several hosts, no user, …).
#[cfg(feature = "pg")]
fn pg_parse_problem(text: &str) -> Option<String> {
    crate::pg::ConnectionConfig::from_url(text)
        .err()
        .map(|e| e.to_string())
}

/// Without the `pg` feature the URL checks above are all there is.
#[cfg(not(feature = "pg"))]
fn pg_parse_problem(_text: &str) -> Option<String> {
    None
}

fn positive_count(key: &str, value: Option<u64>, p: &mut Vec<Problem>) {
    if value == Some(0) {
        p.push(Problem::new(key, "must be at least 1"));
    }
}

fn non_empty_path(key: &str, path: &Path, p: &mut Vec<Problem>) {
    if path.as_os_str().is_empty() {
        p.push(Problem::new(key, "is empty: give a path"));
    }
}

fn check_top(c: &Config, p: &mut Vec<Problem>) {
    if c.project.trim().is_empty() {
        p.push(Problem::new("project", "is empty"));
    }
    if c.actor.as_deref().is_some_and(|a| a.trim().is_empty()) {
        p.push(Problem::new(
            "actor",
            "is empty: remove it or name who runs wst",
        ));
    }
    if let Some(prefix) = &c.prefix
        && let Err(e) = crate::core::ArtifactName::new(prefix, jiff::Timestamp::UNIX_EPOCH)
    {
        p.push(Problem::new("prefix", e.to_string()));
    }
    non_empty_path("audit_log", &c.audit_log, p);
    if !(1..=19).contains(&c.zstd_level) {
        p.push(Problem::new(
            "zstd_level",
            format!("{} is outside 1..=19 (3 is the default)", c.zstd_level),
        ));
    }
}

fn check_files(c: &Config, p: &mut Vec<Problem>) {
    for (i, f) in c.files.iter().enumerate() {
        let key = format!("files[{i}]");
        non_empty_path(&format!("{key}.path"), &f.path, p);
        // The library's own checks: the root, the exclude globs, max_shrink.
        match crate::core::FileTreeSource::new(&f.path, &f.root) {
            Err(e) => p.push(Problem::new(format!("{key}.root"), e.to_string())),
            Ok(src) => {
                if let Err(e) = src.exclude(&f.exclude) {
                    p.push(Problem::new(format!("{key}.exclude"), e.to_string()));
                }
            }
        }
        if let Some(x) = f.max_shrink
            && !(x > 0.0 && x < 1.0)
        {
            p.push(Problem::new(
                format!("{key}.max_shrink"),
                format!(
                    "{x} must be a fraction strictly between 0 and 1 (0.5: fail when the tree \
                     lost more than half of its entries or bytes since the previous backup)"
                ),
            ));
        }
    }
}

fn check_database(c: &Config, p: &mut Vec<Problem>) {
    let Some(db) = &c.database else {
        return;
    };
    database_url("database.url", &db.url, p);
    if let Some(r) = &db.restore_url {
        database_url("database.restore_url", r, p);
    }
    if db
        .password_env
        .as_deref()
        .is_some_and(|v| v.trim().is_empty())
    {
        p.push(Problem::new(
            "database.password_env",
            "names no environment variable",
        ));
    }
    if let Some(f) = &db.password_file {
        non_empty_path("database.password_file", f, p);
    }
    if let Some(e) = &db.entry
        && let Err(err) = crate::core::FileTreeSource::new("", e)
    {
        p.push(Problem::new("database.entry", err.to_string()));
    }
    if db.jobs == Some(0) {
        p.push(Problem::new(
            "database.jobs",
            "must be at least 1 (pg_restore --jobs)",
        ));
    }
    if let Some(spec) = &db.freshness_column
        && (spec.split('.').count() != 3 || spec.split('.').any(|s| s.trim().is_empty()))
    {
        p.push(Problem::new(
            "database.freshness_column",
            format!("`{spec}` must be `schema.table.column`"),
        ));
    }
    for (i, t) in db.expected_tables.iter().enumerate() {
        if t.trim().is_empty() {
            p.push(Problem::new(
                format!("database.expected_tables[{i}]"),
                "is empty",
            ));
        }
    }
}

fn check_buckets(c: &Config, p: &mut Vec<Problem>) {
    let mut names = BTreeSet::new();
    for (i, b) in c.buckets.iter().enumerate() {
        let key = format!("bucket[{i}]");
        if b.name.trim().is_empty() {
            p.push(Problem::new(
                format!("{key}.name"),
                "is empty: name the bucket source",
            ));
        } else if !names.insert(b.name.as_str()) {
            p.push(Problem::new(
                format!("{key}.name"),
                format!(
                    "two [[bucket]] sections are named `{}`: names must be unique",
                    b.name
                ),
            ));
        }
        store_url(&format!("{key}.url"), &b.url, p);
        secret_options(&format!("{key}.options"), &b.options, p);
        options_env(&key, &b.options, &b.options_env, p);
        positive_count(
            &format!("{key}.max_concurrency"),
            b.max_concurrency.map(|n| n as u64),
            p,
        );
    }
}

fn check_encryption(e: &EncryptionConfig, p: &mut Vec<Problem>) {
    non_empty_path("encryption.key_file", &e.key_file, p);
    if let Some(f) = &e.recovery_passphrase_file {
        non_empty_path("encryption.recovery_passphrase_file", f, p);
    }
    for (i, f) in e.old_key_files.iter().enumerate() {
        non_empty_path(&format!("encryption.old_key_files[{i}]"), f, p);
    }
}

fn check_sinks(c: &Config, p: &mut Vec<Problem>) {
    if c.sinks.is_empty() {
        p.push(Problem::new(
            "sinks",
            "the configuration has no [[sinks]]: a backup would have nowhere to go",
        ));
    }
    let mut names = BTreeSet::new();
    for (i, s) in c.sinks.iter().enumerate() {
        let key = format!("sinks[{i}]");
        if s.name.trim().is_empty() {
            p.push(Problem::new(
                format!("{key}.name"),
                "is empty: name the sink",
            ));
        } else if !names.insert(s.name.as_str()) {
            p.push(Problem::new(
                format!("{key}.name"),
                format!("two [[sinks]] are named `{}`: names must be unique", s.name),
            ));
        }
        if s.url.trim().is_empty() {
            p.push(Problem::new(format!("{key}.url"), "is empty"));
        } else if s.url.contains("://") {
            store_url(&format!("{key}.url"), &s.url, p);
        }
        secret_options(&format!("{key}.options"), &s.options, p);
        options_env(&key, &s.options, &s.options_env, p);
        if let Some(m) = &s.medium
            && !matches!(m.as_str(), "object_storage" | "disk" | "tape")
        {
            p.push(Problem::new(
                format!("{key}.medium"),
                format!("unknown medium `{m}`: use object_storage, disk or tape"),
            ));
        }
    }
}

fn check_retention(c: &Config, p: &mut Vec<Problem>) {
    let Some(r) = &c.retention else {
        return;
    };
    let tz = match crate::retention::time_zone(&r.time_zone) {
        Ok(tz) => Some(tz),
        Err(e) => {
            p.push(Problem::new("retention.time_zone", e.to_string()));
            None
        }
    };
    if let Err(e) = r.policy.validate() {
        p.push(Problem::new("retention.policy", e.to_string()));
    } else if let Some(tz) = tz
        // Durations that contradict each other (`max_age` not longer than `min_age`): a
        // structural check, at a fixed reference instant (the planner re-checks at `now`).
        && let Err(e) = r.policy.cutoffs(jiff::Timestamp::UNIX_EPOCH, &tz)
    {
        p.push(Problem::new("retention.policy", e.to_string()));
    }
}

/// `[wal]` (issue 16): `sync_sinks` name configured sinks, once each; the RPO target and the
/// zstd level are in range.
fn check_wal(c: &Config, p: &mut Vec<Problem>) {
    let Some(w) = &c.wal else {
        return;
    };
    let mut seen = std::collections::BTreeSet::new();
    for (i, n) in w.sync_sinks.iter().enumerate() {
        if !c.sinks.iter().any(|s| &s.name == n) {
            p.push(Problem::new(
                format!("wal.sync_sinks[{i}]"),
                format!("`{n}` is not a [[sinks]] name"),
            ));
        } else if !seen.insert(n) {
            p.push(Problem::new(
                format!("wal.sync_sinks[{i}]"),
                format!("`{n}` is listed twice"),
            ));
        }
    }
    if w.rpo_target_minutes
        .is_some_and(|m| !(m > 0.0 && m.is_finite()))
    {
        p.push(Problem::new(
            "wal.rpo_target_minutes",
            "must be a positive number of minutes (seeds/004: 15)",
        ));
    }
    if w.zstd_level.is_some_and(|l| !(1..=19).contains(&l)) {
        p.push(Problem::new("wal.zstd_level", "must be 1–19"));
    }
    if w.queue_max_bytes == Some(0) {
        p.push(Problem::new(
            "wal.queue_max_bytes",
            "must be above 0: a zero queue drops every copy for the asynchronous sinks",
        ));
    }
    if w.process_max.is_some_and(|n| !(1..=64).contains(&n)) {
        p.push(Problem::new("wal.process_max", "must be 1–64"));
    }
    if w.async_timeout_seconds
        .is_some_and(|n| !(1..=3600).contains(&n))
    {
        p.push(Problem::new(
            "wal.async_timeout_seconds",
            "must be 1–3600 seconds (pgBackRest's archive-timeout default: 60)",
        ));
    }
}

fn check_verify(v: &VerifyConfig, p: &mut Vec<Problem>) {
    for (i, r) in v.required.iter().enumerate() {
        if r.trim().is_empty() || r.trim() == "/" {
            p.push(Problem::new(
                format!("verify.required[{i}]"),
                "is empty: name a root (`wst/`) or an entry (`wst_dev_database.backup`)",
            ));
        }
    }
}

fn check_drill(c: &Config, p: &mut Vec<Problem>) {
    let Some(d) = &c.drill else {
        return;
    };
    non_empty_path("drill.scratch_dir", &d.scratch_dir, p);
    for (key, value, unit) in [
        ("drill.rto_target_minutes", d.rto_target_minutes, "minutes"),
        ("drill.rpo_target_hours", d.rpo_target_hours, "hours"),
    ] {
        if let Some(v) = value
            && !(v.is_finite() && v > 0.0)
        {
            p.push(Problem::new(
                key,
                format!("{v} must be a positive number of {unit}"),
            ));
        }
    }
    if let Some(db) = &c.database
        && db.restore_url.is_none()
    {
        p.push(Problem::new(
            "database.restore_url",
            "is not set, but [drill] restores the database: name the scratch server's \
             maintenance database (e.g. postgresql://ops@restore-test:5432/postgres)",
        ));
    }
    let mut names = BTreeSet::new();
    for (i, check) in d.checks.iter().enumerate() {
        let key = format!("drill.check[{i}]");
        let name = check.name();
        if name.trim().is_empty() {
            p.push(Problem::new(format!("{key}.name"), "is empty"));
        } else if !names.insert(name) {
            p.push(Problem::new(
                format!("{key}.name"),
                format!(
                    "two [[drill.check]] entries are named `{name}`: names must be unique (the \
                     report tells checks apart by name)"
                ),
            ));
        }
        let needs_db = |p: &mut Vec<Problem>| {
            if c.database.is_none() {
                p.push(Problem::new(
                    format!("{key}.kind"),
                    format!(
                        "check `{name}` queries the scratch database, but the configuration \
                         has no [database] section"
                    ),
                ));
            }
        };
        match check {
            CheckConfig::Sql {
                query,
                timeout_secs,
                ..
            } => {
                needs_db(p);
                if query.trim().is_empty() {
                    p.push(Problem::new(format!("{key}.query"), "is empty"));
                }
                positive_count(&format!("{key}.timeout_secs"), *timeout_secs, p);
            }
            CheckConfig::CrossCheck {
                query,
                root,
                bucket,
                timeout_secs,
                ..
            } => {
                needs_db(p);
                if query.trim().is_empty() {
                    p.push(Problem::new(format!("{key}.query"), "is empty"));
                }
                match (root, bucket) {
                    (Some(_), None) => {}
                    (None, Some(b)) => {
                        if c.bucket(b).is_err() {
                            p.push(Problem::new(
                                format!("{key}.bucket"),
                                unknown_bucket(
                                    b,
                                    &c.buckets.iter().map(|b| b.name.clone()).collect::<Vec<_>>(),
                                ),
                            ));
                        }
                    }
                    _ => p.push(Problem::new(
                        key.clone(),
                        format!(
                            "cross_check `{name}` needs exactly one of `root` (an archive root, \
                             e.g. \"buckets/proofs\") or `bucket` (a [[bucket]] name)"
                        ),
                    )),
                }
                positive_count(&format!("{key}.timeout_secs"), *timeout_secs, p);
            }
            CheckConfig::Smoke {
                program,
                timeout_secs,
                env,
                ..
            } => {
                non_empty_path(&format!("{key}.program"), program, p);
                positive_count(&format!("{key}.timeout_secs"), *timeout_secs, p);
                for var in env.keys().filter(|v| is_secret_option(v)) {
                    p.push(Problem::new(
                        format!("{key}.env.{var}"),
                        format!(
                            "looks like a secret, and this file is logged (doctrine 026 R6): \
                             pass it from the drill's environment with inherit = [\"{var}\"]"
                        ),
                    ));
                }
            }
        }
    }
}

fn check_compliance(c: &ComplianceConfig, p: &mut Vec<Problem>) {
    if !(1..=MAX_BACKUP_AGE_HOURS).contains(&c.max_backup_age_hours) {
        p.push(Problem::new(
            "compliance.max_backup_age_hours",
            format!(
                "{} is outside 1..={MAX_BACKUP_AGE_HOURS} hours (doctrine 026 R1: daily \
                 backups, 24)",
                c.max_backup_age_hours
            ),
        ));
    }
    if c.min_copies == 0 {
        p.push(Problem::new(
            "compliance.min_copies",
            "must be at least 1 (doctrine 026 R3: 3-2-1 wants 3)",
        ));
    }
    if let Some(y) = c.audit_retention_years
        && !(1..=100).contains(&y)
    {
        p.push(Problem::new(
            "compliance.audit_retention_years",
            format!("{y} is outside 1..=100 years (seeds/003 HIPAA mode: 6)"),
        ));
    }
}

/// The largest `max_backup_age_hours` accepted: one leap year.
const MAX_BACKUP_AGE_HOURS: i64 = 366 * 24;

/// Archive roots must not collide: two sources writing the same path fail every backup.
fn check_roots(c: &Config, p: &mut Vec<Problem>) {
    let mut roots: Vec<(String, String)> = c
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            (
                format!("files[{i}].root"),
                f.root.trim_end_matches('/').to_owned(),
            )
        })
        .collect();
    if let Some(db) = &c.database {
        roots.push((
            "database.entry".to_owned(),
            db.entry
                .clone()
                .unwrap_or_else(|| "wst_dev_database.backup".to_owned()),
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, b) in c.buckets.iter().enumerate() {
        // A repeated name is already a problem of its own; its default root repeats too.
        if seen.insert(b.name.as_str()) {
            roots.push((format!("bucket[{i}].root"), b.root()));
        }
    }
    let under = |a: &str, b: &str| a == b || a.starts_with(&format!("{b}/"));
    for (i, (ka, a)) in roots.iter().enumerate() {
        for (kb, b) in &roots[..i] {
            if !a.is_empty() && !b.is_empty() && (under(a, b) || under(b, a)) {
                p.push(Problem::new(
                    ka.clone(),
                    format!("`{a}` overlaps `{b}` ({kb}): give every source its own archive root"),
                ));
            }
        }
    }
}

// ---- [[job]]: several repositories in one file (issue 18) -----------------------------------
pub mod jobs;

// ---- [metrics], [alerts], [[schedule]]: signals (issue 17) --------------------------------
mod signals;
pub use signals::{AlertsConfig, MetricsConfig, ScheduleConfig};
mod tenant;
pub use tenant::{ALL_BUCKETS, TENANT_PLACEHOLDER, TenantConfig, TenantSelection};

// ---- [wal]: continuous WAL archiving (issue 16) -------------------------------------------
// Additive and self-contained: the `wst wal-push` / `wal-fetch` / `wal-drain` commands read it.

/// `[wal]`: continuous WAL archiving (`archive_command = 'wst --config F wal-push %p'`,
/// `restore_command = 'wst --config F wal-fetch %f %p'`; issue 16, seeds/002). Every key is
/// optional; without the section the first `[[sinks]]` is synchronous and the others are fed
/// through a queue beside the audit log.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct WalConfig {
    /// `[[sinks]]` names a WAL file must be durable on before `wal-push` succeeds. Default:
    /// the first `[[sinks]]`. The other sinks are asynchronous.
    #[serde(default)]
    pub sync_sinks: Vec<String>,
    /// The local queue of WAL objects for the asynchronous sinks (not on `pg_wal`'s file
    /// system). Default: `wal-queue` in the audit log's directory.
    pub queue_dir: Option<PathBuf>,
    /// Per asynchronous sink, the most bytes queued; a WAL object that would exceed it is
    /// dropped for that sink, audited and logged at error level (pgBackRest's
    /// `archive-push-queue-max`). Default 4 GiB.
    pub queue_max_bytes: Option<u64>,
    /// The zstd level of WAL objects (1–19). Default 3.
    pub zstd_level: Option<i32>,
    /// The WAL recovery point objective in minutes: `status` fails its "RPO (WAL)" rule when
    /// the newest archived WAL file is older, and its "WAL archive lag" rule when a sink is
    /// further behind the newest archived file (seeds/004: RPO ≤ 15 minutes). Default 15.
    pub rpo_target_minutes: Option<f64>,
    /// Asynchronous archiving (pgBackRest's `archive-async`): `wal-push` answers `PostgreSQL`
    /// from an acknowledgement a background worker leaves in `spool_dir` after it pushed the
    /// file exactly as a synchronous `wal-push` would (durable on the synchronous sinks); the
    /// worker pushes every ready file, `process_max` at a time, ahead of `PostgreSQL`'s calls
    /// (`docs/WAL.md` §9). Default false.
    pub archive_async: Option<bool>,
    /// The acknowledgement spool of asynchronous archiving (local disk). Default `wal-spool`
    /// in the audit log's directory.
    pub spool_dir: Option<PathBuf>,
    /// WAL files the asynchronous worker pushes at a time (1–64). Default 2.
    pub process_max: Option<usize>,
    /// Seconds `wal-push` waits for the asynchronous worker's acknowledgement before it fails
    /// (`PostgreSQL` then retries the file), 1–3600. Default 60 (pgBackRest's
    /// `archive-timeout`).
    pub async_timeout_seconds: Option<u64>,
}

/// `[erasure]`: what erasing one subject (or tenant) means for each source (issue 18; seeds/003
/// GDPR mode: "Erased data must not be restored unintentionally"). `wst erasure record`
/// resolves these templates for the subject and stores the result in the register entry, so a
/// later change here does not change what an old entry erases (`docs/ERASURE.md`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ErasureConfig {
    /// SQL statements for the database, each using `$1` for the subject id (bound as `text`,
    /// never interpolated: cast it, `WHERE id = $1::bigint`), run in this order in one
    /// transaction per entry.
    #[serde(default)]
    pub sql: Vec<String>,
    /// Object key prefixes per `[[bucket]]` name (relative to the bucket's prefix), each
    /// holding `{subject}`, e.g. `proofs = ["uploads/{subject}/"]`.
    #[serde(default)]
    pub bucket_prefixes: BTreeMap<String, Vec<String>>,
    /// Archive path globs of `[[files]]` trees, each holding `{subject}`, e.g.
    /// `"wst-api/uploads/{subject}/**"`.
    #[serde(default)]
    pub paths: Vec<String>,
}

impl Config {
    /// The `[erasure]` templates with each bucket's archive root filled in; `None` without an
    /// `[erasure]` section.
    ///
    /// # Errors
    /// [`ConfigError::UnknownBucket`] for a `bucket_prefixes` key that is no `[[bucket]]`.
    pub fn erasure_template(&self) -> Result<Option<crate::core::ErasureTemplate>, ConfigError> {
        let Some(e) = &self.erasure else {
            return Ok(None);
        };
        let mut objects = Vec::new();
        for (bucket, prefixes) in &e.bucket_prefixes {
            let root = format!("{}/", self.bucket(bucket)?.root());
            for prefix in prefixes {
                objects.push(crate::core::ObjectErasure {
                    bucket: bucket.clone(),
                    root: root.clone(),
                    prefix: prefix.clone(),
                });
            }
        }
        Ok(Some(crate::core::ErasureTemplate {
            sql: e.sql.clone(),
            objects,
            paths: e.paths.clone(),
        }))
    }
}

/// `[erasure]`: known buckets, `$1` in every statement, `{subject}` in every prefix and glob.
fn check_erasure(c: &Config, p: &mut Vec<Problem>) {
    let Some(e) = &c.erasure else {
        return;
    };
    for b in e.bucket_prefixes.keys() {
        if c.bucket(b).is_err() {
            p.push(Problem::new(
                format!("erasure.bucket_prefixes.{b}"),
                "names no [[bucket]]",
            ));
        }
    }
    if let Ok(Some(t)) = c.erasure_template() {
        if let Err(err) = t.validate() {
            p.push(Problem::new("erasure", err.to_string()));
        } else if t.is_empty() {
            p.push(Problem::new(
                "erasure",
                "says nothing to erase: give sql, bucket_prefixes or paths",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wal_section_problems_name_their_keys() {
        let base = "audit_log = \"/a\"\n[encryption]\nkey_file = \"/k\"\n\
                    [[sinks]]\nname = \"c\"\nurl = \"/c\"\n[wal]\n";
        // Loading refuses a configuration with problems and lists them all.
        let keys = |wal: &str| -> Vec<String> {
            match Config::from_toml_str(&format!("{base}{wal}")) {
                Ok(c) => c.problems(),
                Err(ConfigError::Invalid { problems, .. }) => problems,
                Err(e) => panic!("{e}"),
            }
            .into_iter()
            .map(|p| p.key)
            .collect()
        };
        assert!(keys("sync_sinks = [\"c\"]\nrpo_target_minutes = 15.0\n").is_empty());
        assert_eq!(
            keys(
                "sync_sinks = [\"c\", \"d\", \"c\"]\nrpo_target_minutes = 0.0\nzstd_level = 22\nqueue_max_bytes = 0\nprocess_max = 0\nasync_timeout_seconds = 0\n"
            ),
            [
                "wal.sync_sinks[1]",
                "wal.sync_sinks[2]",
                "wal.rpo_target_minutes",
                "wal.zstd_level",
                "wal.queue_max_bytes",
                "wal.process_max",
                "wal.async_timeout_seconds"
            ]
        );
    }

    /// The shipped sample parses, with every section present.
    #[test]
    fn the_shipped_example_config_parses() {
        let text = include_str!("../examples/wst.toml");
        let c = Config::from_toml_str(text).unwrap();
        assert_eq!(c.project, "wst");
        assert_eq!(c.prefix.as_deref(), Some("wst-backup"));
        assert_eq!(c.files.len(), 2);
        assert_eq!(c.files[0].exclude, ["cache/", "node_modules", "*.tmp"]);
        assert_eq!(
            (c.files[0].min_entries, c.files[0].max_shrink),
            (Some(10), Some(0.5))
        );
        assert!(c.files[0].one_file_system && !c.files[1].one_file_system);
        assert!(c.problems().is_empty(), "{:?}", c.problems());
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
        let e = Config::from_toml_str(no_sinks).unwrap_err();
        assert!(
            matches!(&e, ConfigError::Invalid { problems, .. } if problems[0].key == "sinks"),
            "{e}"
        );
        let typo = format!("{minimal}zstd_levle = 3\n");
        let e = Config::from_toml_str(&typo).unwrap_err();
        assert!(e.to_string().contains("zstd_levle"), "{e}");
        let bucket = "[[bucket]]\nname = \"p\"\nurl = \"s3://p\"\n";
        let e = Config::from_toml_str(&format!("{minimal}{bucket}{bucket}")).unwrap_err();
        assert!(
            e.to_string().ends_with(
                "bucket[1].name: two [[bucket]] sections are named `p`: names must be unique"
            ),
            "{e}"
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
        // Loading refuses all three with one rule, naming each key and never a value.
        let e = Config::from_toml_str(text).unwrap_err().to_string();
        for key in [
            "sinks[0].options.aws_secret_access_key: is a credential",
            "bucket[0].options.aws_secret_access_key: is a credential",
            "database.url: carries a password in its user information",
        ] {
            assert!(e.contains(key), "{key} in {e}");
        }
        assert!(!e.contains("s3cr3t") && !e.contains("hunter2"), "{e}");
        // Parsed without the check (as a service holding such a file might), Debug redacts.
        let c: Config = toml::from_str(text).unwrap();
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("s3cr3t") && !debug.contains("hunter2"),
            "{debug}"
        );
        assert!(debug.contains("\"eu\"") && debug.contains("postgresql://ops:[REDACTED]@db/"));
        for e in [
            c.buckets[0].resolved_options().unwrap_err().to_string(),
            c.sinks[0].resolved_options().unwrap_err().to_string(),
        ] {
            assert!(
                e.contains("option `aws_secret_access_key` is a credential"),
                "{e}"
            );
            assert!(!e.contains("s3cr3t"));
        }
    }

    /// The one secret rule over URLs and connection strings (issue 15).
    #[test]
    fn url_credentials_are_found_without_their_values() {
        for (url, found) in [
            ("s3://AKIAXX:wJalr@bucket/prod", Some("a password")),
            ("s3://AKIAXX@bucket/prod", Some("a user name")),
            ("az://c/p?sv=2022&sig=abc", Some("`sig`")),
            ("postgresql://ops:pw@db/x", Some("a password")),
            ("postgresql://ops@db/x?password=pw", Some("`password`")),
            ("host=db user=ops password=pw", Some("`password=…`")),
            ("postgresql://ops@db/x?sslmode=require", None),
            ("s3://bucket/prod", None),
            ("/var/backups/wst", None),
            ("host=db user=ops dbname=x", None),
        ] {
            let got = url_credential(url);
            match found {
                Some(f) => assert!(
                    got.as_deref().is_some_and(|g| g.contains(f)),
                    "{url}: {got:?}"
                ),
                None => assert_eq!(got, None, "{url}"),
            }
            if let Some(g) = got {
                assert!(!g.contains("pw") && !g.contains("wJalr") && !g.contains("abc"));
            }
        }
    }

    /// Every mistake of issue 15, reported at once with its key path.
    #[test]
    fn every_problem_is_reported_at_once() {
        let text = r#"
audit_log = "/a"
zstd_level = 25
[[files]]
path = "/srv/a"
root = "a"
exclude = ["ok/**", "bad[" ]
max_shrink = 1.5
[[files]]
path = "/srv/b"
root = "a/b"
[database]
url = "postgresql://ops@db/x"
restore_url = "postgresql://ops:pw@scratch/postgres"
freshness_column = "proofs.created_at"
jobs = 0
[encryption]
key_file = "/k"
[[sinks]]
name = "c"
url = "/c"
[[sinks]]
name = "c"
url = "ftp://example/x"
medium = "floppy"
options = { azure_storage_account_key = "k" }
[retention]
time_zone = "Mars/Olympus_Mons"
[retention.policy]
keep_daily = 0
[drill]
scratch_dir = "/d"
rto_target_minutes = -240.0
[[drill.check]]
kind = "smoke"
name = "s"
program = "/bin/true"
env = { API_TOKEN = "t" }
[[drill.check]]
kind = "cross_check"
name = "s"
query = "SELECT 1"
[compliance]
max_backup_age_hours = -24
min_copies = 0
"#;
        let Err(ConfigError::Invalid { problems, .. }) = Config::from_toml_str(text) else {
            panic!("expected Invalid");
        };
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        for key in [
            "zstd_level",
            "files[0].exclude",
            "files[0].max_shrink",
            "database.restore_url",
            "database.jobs",
            "database.freshness_column",
            "sinks[1].name",
            "sinks[1].url",
            "sinks[1].options.azure_storage_account_key",
            "sinks[1].medium",
            "retention.time_zone",
            "retention.policy",
            "drill.rto_target_minutes",
            "drill.check[0].env.API_TOKEN",
            "drill.check[1].name",
            "drill.check[1]",
            "compliance.max_backup_age_hours",
            "compliance.min_copies",
            "files[1].root",
        ] {
            assert!(keys.contains(&key), "{key} missing from {keys:?}");
        }
        let all = problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        assert!(all.contains("keeps nothing"), "{all}");
        assert!(
            all.contains("unknown time zone `Mars/Olympus_Mons`"),
            "{all}"
        );
        assert!(!all.contains("pw@"), "{all}");
        // A policy whose durations contradict each other.
        let conflicting = "audit_log = \"/a\"\n[encryption]\nkey_file = \"/k\"\n\
                           [[sinks]]\nname = \"c\"\nurl = \"/c\"\n[retention]\n\
                           time_zone = \"UTC\"\n[retention.policy]\nkeep_daily = 7\n\
                           min_age = \"30d\"\nmax_age = \"10d\"\n";
        let e = Config::from_toml_str(conflicting).unwrap_err().to_string();
        assert!(
            e.contains("retention.policy: conflicting retention durations"),
            "{e}"
        );
    }

    /// `[erasure]` (issue 18): bucket roots filled in from `[[bucket]]`; an unknown bucket, a
    /// statement without `$1` and a glob without `{subject}` are problems, each with its key.
    #[test]
    fn erasure_section_resolves_and_is_checked() {
        let c = Config::from_toml_str(include_str!("../examples/wst.toml")).unwrap();
        let t = c.erasure_template().unwrap().unwrap();
        assert_eq!(t.objects[0].root, "buckets/proofs/");
        assert_eq!(t.objects[0].prefix, "users/{subject}/");
        let r = t.resolve("4711").unwrap();
        assert_eq!(r.paths, ["wst-api/uploads/4711/**"]);
        assert_eq!(r.objects[0].prefix, "users/4711/");
        assert!(r.sql.iter().all(|s| s.contains("$1")));

        let base = "audit_log = \"/a\"\n[encryption]\nkey_file = \"/k\"\n\
                    [[sinks]]\nname = \"c\"\nurl = \"/c\"\n";
        let bad = format!(
            "{base}[erasure]\nsql = [\"DELETE FROM t\"]\npaths = [\"wst/all/**\"]\n\
             [erasure.bucket_prefixes]\nnope = [\"u/{{subject}}/\"]\n"
        );
        let e = Config::from_toml_str(&bad).unwrap_err().to_string();
        assert!(e.contains("erasure.bucket_prefixes.nope"), "{e}");
        let bad = format!("{base}[erasure]\nsql = [\"DELETE FROM t\"]\npaths = [\"wst/all/**\"]\n");
        let e = Config::from_toml_str(&bad).unwrap_err().to_string();
        assert!(
            e.contains("does not use $1") && e.contains("wst/all/**"),
            "{e}"
        );
    }
}

// ---- placement and the business continuity plan (issue 17) -------------------------------
// Additive: `[[sinks]]` `region`/`jurisdiction`, `[compliance]` placement keys, `[bcp]`.

/// `[bcp]`: the parts of the business continuity plan (seeds/002 `BCP_TEMPLATE`; `wst report
/// bcp`, issue 17) that the rest of the configuration does not hold. Every key is optional;
/// whatever is missing is rendered as an explicit `TO FILL` marker, never invented.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct BcpConfig {
    /// The plan's version, e.g. `1.2` (`VERSION`).
    pub version: Option<String>,
    /// Who reviewed the plan (`REVIEWED_BY`).
    pub reviewed_by: Option<String>,
    /// The client the project serves (`SCOPE` `client`).
    pub client: Option<String>,
    /// The systems the plan covers (`SCOPE` `systems`), e.g. `["wst API", "admin UI"]`.
    /// Default: the configured sources.
    #[serde(default)]
    pub systems: Vec<String>,
    /// Months until the next review (`NEXT_REVIEW` = the report's date plus this). Default 3
    /// (seeds/002: "date + 3 months").
    pub review_interval_months: Option<u32>,
    /// `[[bcp.contacts]]`: who is called in a disaster (`CONTACTS`).
    #[serde(default)]
    pub contacts: Vec<BcpContact>,
    /// The full disaster-recovery failover steps (`4b. Full DR Failover`), one per line, in
    /// order. The database and file recovery steps (`4a`) are generated from the configuration.
    #[serde(default)]
    pub dr_failover: Vec<String>,
}

/// One `[[bcp.contacts]]` row of the BCP's `CONTACTS` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct BcpContact {
    /// The role, e.g. `incident commander`, `DBA`.
    pub role: String,
    /// Who holds it (a person, team or on-call alias).
    pub name: String,
    /// How fast to escalate, e.g. `immediate`, `within 15 min`.
    pub escalation: Option<String>,
}

fn blank(v: Option<&String>) -> bool {
    v.is_some_and(|s| s.trim().is_empty())
}

fn check_placement(c: &Config, p: &mut Vec<Problem>) {
    for (i, s) in c.sinks.iter().enumerate() {
        if blank(s.region.as_ref()) {
            p.push(Problem::new(
                format!("sinks[{i}].region"),
                "is empty: name the region or data center (e.g. \"nl-ams1\"), or remove the key",
            ));
        }
        if blank(s.jurisdiction.as_ref()) {
            p.push(Problem::new(
                format!("sinks[{i}].jurisdiction"),
                "is empty: name the jurisdiction (e.g. \"EU\"), or remove the key",
            ));
        }
    }
    let k = &c.compliance;
    if blank(k.production_region.as_ref()) {
        p.push(Problem::new(
            "compliance.production_region",
            "is empty: name production's region (e.g. \"de-fra1\"), or remove the key",
        ));
    }
    if blank(k.production_jurisdiction.as_ref()) {
        p.push(Problem::new(
            "compliance.production_jurisdiction",
            "is empty: name production's jurisdiction (e.g. \"EU\"), or remove the key",
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, j) in k.allowed_jurisdictions.iter().enumerate() {
        if j.trim().is_empty() {
            p.push(Problem::new(
                format!("compliance.allowed_jurisdictions[{i}]"),
                "is empty",
            ));
        } else if !seen.insert(j.trim().to_ascii_uppercase()) {
            p.push(Problem::new(
                format!("compliance.allowed_jurisdictions[{i}]"),
                format!("`{j}` is listed twice"),
            ));
        }
    }
}

fn check_bcp(c: &Config, p: &mut Vec<Problem>) {
    let Some(b) = &c.bcp else { return };
    if b.review_interval_months
        .is_some_and(|m| !(1..=36).contains(&m))
    {
        p.push(Problem::new(
            "bcp.review_interval_months",
            "must be 1–36 months (seeds/002: every 3 months)",
        ));
    }
    for (i, contact) in b.contacts.iter().enumerate() {
        for (key, v) in [("role", &contact.role), ("name", &contact.name)] {
            if v.trim().is_empty() {
                p.push(Problem::new(format!("bcp.contacts[{i}].{key}"), "is empty"));
            }
        }
    }
}

impl Config {
    /// The placement the status judges (issue 17): `[compliance]` `production_region`,
    /// `production_jurisdiction`, `allowed_jurisdictions` and each `[[sinks]]` `region` and
    /// `jurisdiction`, by sink name.
    pub fn placement(&self) -> crate::core::Placement {
        crate::core::Placement {
            production_region: self.compliance.production_region.clone(),
            production_jurisdiction: self.compliance.production_jurisdiction.clone(),
            allowed_jurisdictions: self.compliance.allowed_jurisdictions.clone(),
            sinks: self
                .sinks
                .iter()
                .map(|s| {
                    (
                        s.name.clone(),
                        crate::core::SinkPlacement {
                            region: s.region.clone(),
                            jurisdiction: s.jurisdiction.clone(),
                        },
                    )
                })
                .collect(),
        }
    }

    /// The options of the compliance status this configuration asks for: `[compliance]`
    /// thresholds (R1 age, R3 copies), the artifact prefix, the retention policy's `min_age`
    /// (R4; zero without `[retention]`) and the placement rules ([`Config::placement`]).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming `retention.policy` when its `min_age` is not a
    /// duration (months or years, negative).
    pub fn compliance_options(&self) -> Result<crate::core::ComplianceOptions, ConfigError> {
        let mut t321 = crate::core::ThreeTwoOneOptions::default();
        t321.min_copies = self.compliance.min_copies;
        if let Some(p) = &self.prefix {
            t321.prefix.clone_from(p);
        }
        let min_age = match &self.retention {
            Some(r) => r
                .policy
                .min_age_duration()
                .map_err(|e| ConfigError::Invalid {
                    path: None,
                    problems: vec![Problem::new("retention.policy", e.to_string())],
                })?,
            None => jiff::SignedDuration::ZERO,
        };
        Ok(crate::core::ComplianceOptions {
            max_backup_age: jiff::SignedDuration::from_hours(self.compliance.max_backup_age_hours),
            retention_min_age: min_age,
            three_two_one: t321,
            placement: self.placement(),
            audit_retention_years: self.compliance.audit_retention_years,
            ..crate::core::ComplianceOptions::default()
        })
    }
}
