//! `wst`, the operator binary: a config-driven command an operations team runs from cron or a
//! systemd timer. See `examples/wst.toml` (at the workspace root) for a documented
//! configuration. Install with `cargo install --path crates/wst-cli`.
//!
//! ```text
//! wst --config wst.toml <COMMAND>        (from a checkout: cargo run --release -p wst-cli -- …)
//!   keygen --out FILE          generate an encryption key file (0600)
//!   backup                     backup → verify → replicate catch-up → prune (when configured)
//!   verify [ARTIFACT]          deep-verify an artifact (default: the newest) on every sink
//!   ls [--manifest | --report] [--include GLOB]... [--exclude GLOB]... [ARTIFACT]
//!                              list an artifact's entries and sources without restoring it
//!   restore --target DIR [--include GLOB]... [--exclude GLOB]... [--no-database]
//!           [--database NAME [--table S.T]... [--schema S]... [--no-files]] [ARTIFACT]
//!                              restore (all or selected entries) into an isolated directory,
//!                              and the database (all or selected tables) into a scratch one
//!   restore --bucket NAME --to-bucket URL [--prefix P]... [ARTIFACT]
//!                              put a [[bucket]]'s objects (all, or under the prefixes) back
//!                              into a scratch bucket, each checked against the manifest
//!   drill                      restore drill with RTO/RPO report (doctrine R7) and the
//!                              [[drill.check]] post-restore checks (sql, cross_check, smoke)
//!   prune [--dry-run]          apply retention on every sink
//!   replicate                  copy missing artifacts between sinks
//!   status                     compliance status (doctrine 026 R1, R3, R4, R5, R7)
//!   audit verify               verify the audit log's hash chain
//! ```
//!
//! Exit status: 0 success; 1 the operation failed or found a violation (backup failed,
//! verification failed, drill FAIL, not compliant, audit chain broken); 2 bad usage or
//! configuration; 3 degraded (the backup exists but not on every sink, or a prune refused
//! something). `--json` prints machine-readable reports on standard output.
//!
//! `[[bucket]]` sections add object-store buckets to every backup (each object's key, size,
//! `ETag` and last-modified time in the manifest); `ls` and `status` show them. Restoring into
//! a `--to-bucket` prefix that already holds objects needs `--break-glass-by WHO --reason WHY`
//! (doctrine 026 L6), as restoring files over existing data does. Restore is exit 1 when it
//! fails (the target is then untouched, or for a bucket holds only verified objects), 2 for an
//! unknown `--bucket` name (the message lists the configured ones).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use serde::Deserialize;
use wst::core::{
    ArtifactName, ArtifactVerifier, AuditEvent, AuditLog, BackupJob, BreakGlass, Cipher,
    ComplianceOptions, DrillOptions, EntryRestorer, FileTreeSource, ListedEntry, Medium,
    PostRestoreCheck, PruneOptions, ReadLimits, ReplicateOptions, RestoreOptions, RunOutcome, Sink,
    SmokeTest, ThreeTwoOneOptions, Verifier, complete_artifacts, compliance_status, list_artifact,
    prune_audited, replicate, restore, restore_drill,
};
use wst::crypto::{AeadCipher, KdfParams, Key, Passphrase};
use wst::objstore::{
    LocalDiskSink, ObjectRestoreOptions, ObjectStoreSink, ObjectStoreSource, ObjectStoreTarget,
    restore_objects,
};
use wst::pg::{
    ConnectionConfig, Expectation, ObjectKeyCrossCheck, PasswordSource, PgDrillRestorer,
    PgDumpSource, PgRestoreListCheck, SqlAssertion,
};
use wst::retention::{Planner, Policy, time_zone};

mod progress;
use progress::Bar;

#[derive(Parser, Debug)]
#[command(
    name = "wst",
    about = "Encrypted, verified 3-2-1 backups of PostgreSQL, file trees and buckets",
    after_help = "Configuration: examples/wst.toml documents every section ([[files]], \
                  [database], [[bucket]], [[sinks]], [retention], [drill] with \
                  [[drill.check]], [compliance]). Exit status: 0 success; 1 failure or \
                  violation; 2 bad usage or configuration; 3 degraded."
)]
struct Cli {
    /// The configuration file (TOML; see examples/wst.toml).
    #[arg(long, short, global = true, default_value = "wst.toml")]
    config: PathBuf,
    /// Print machine-readable JSON on standard output.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of the largest variant (`restore`'s flags) costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Command {
    /// Generate an encryption key file (mode 0600, never overwritten).
    Keygen {
        /// Where to write it (default: the configured key file).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Back up, verify, catch up the other sinks, and prune when retention is configured.
    Backup,
    /// Deep-verify an artifact on every sink.
    Verify {
        /// The artifact name (default: the newest complete one).
        artifact: Option<String>,
    },
    /// List an artifact's entries (like `restic ls -l`) and sources without restoring it. The
    /// artifact has no index: listing downloads, decrypts and decompresses it once.
    Ls {
        /// Print the manifest as JSON instead (sources with their facts, timings, entries).
        #[arg(long, conflicts_with = "report")]
        manifest: bool,
        /// Print the newest restore-drill report of this artifact (from the drill's
        /// `scratch_dir`) instead; reads no artifact.
        #[arg(long)]
        report: bool,
        /// Only entries matching this root or glob (repeatable), e.g. `wst-api/`, `**/*.json`.
        #[arg(long, value_name = "GLOB")]
        include: Vec<String>,
        /// Leave out entries matching this root or glob (repeatable).
        #[arg(long, value_name = "GLOB")]
        exclude: Vec<String>,
        /// The sink to read from (default: the first).
        #[arg(long)]
        sink: Option<String>,
        /// The artifact name (default: the newest complete one).
        artifact: Option<String>,
    },
    /// Restore into an isolated directory (and a scratch database), or a bucket's objects
    /// into a scratch bucket (--bucket NAME --to-bucket URL).
    Restore {
        /// An empty or new directory.
        #[arg(long, required_unless_present = "bucket")]
        target: Option<PathBuf>,
        /// Restore the objects of this configured [[bucket]] into --to-bucket instead of
        /// restoring files (each object's size and SHA-256 checked against the manifest).
        #[arg(
            long,
            value_name = "NAME",
            requires = "to_bucket",
            conflicts_with_all = ["target", "include", "exclude", "no_database", "database", "no_files"]
        )]
        bucket: Option<String>,
        /// The bucket URL (and key prefix) to restore into, e.g. `s3://scratch/restore-1`; it
        /// is opened with the [[bucket]]'s options and credentials. A prefix that already
        /// holds objects is refused without --break-glass-by/--reason.
        #[arg(long, value_name = "URL", requires = "bucket")]
        to_bucket: Option<String>,
        /// Restore only objects under this key prefix, relative to the bucket's prefix, as a
        /// folder (repeatable): `tenants/acme` selects `tenants/acme/…`. A prefix that
        /// selects nothing fails the restore.
        #[arg(long, value_name = "PREFIX", requires = "bucket")]
        prefix: Vec<String>,
        /// Restore only entries matching this root or glob (repeatable): `wst-api/`,
        /// `wst-api/config/**`, `**/*.json`. A pattern matching nothing fails the restore.
        #[arg(long, value_name = "GLOB")]
        include: Vec<String>,
        /// Leave out entries matching this root or glob (repeatable), even when included.
        #[arg(long, value_name = "GLOB")]
        exclude: Vec<String>,
        /// Leave the database dump entry out of the restored files.
        #[arg(long, conflicts_with = "database")]
        no_database: bool,
        /// Also restore the database dump into this new scratch database.
        #[arg(long)]
        database: Option<String>,
        /// Restore only this table into the scratch database (repeatable; `schema.table`),
        /// with its data, constraints, indexes and owned sequences.
        #[arg(long, value_name = "SCHEMA.TABLE", requires = "database")]
        table: Vec<String>,
        /// Restore only the objects of this schema into the scratch database (repeatable).
        #[arg(long, value_name = "SCHEMA", requires = "database")]
        schema: Vec<String>,
        /// Restore no files, only the database (needs --database).
        #[arg(long, requires = "database", conflicts_with = "include")]
        no_files: bool,
        /// The sink to read from (default: the first).
        #[arg(long)]
        sink: Option<String>,
        /// Break-glass: who authorizes a restore over existing data or a production path.
        #[arg(long, requires = "reason")]
        break_glass_by: Option<String>,
        /// Break-glass: why (incident or change number).
        #[arg(long)]
        reason: Option<String>,
        /// The artifact name (default: the newest complete one).
        artifact: Option<String>,
    },
    /// Restore drill with RTO/RPO report (doctrine R7), running the [[drill.check]]
    /// post-restore checks (`sql`, `cross_check`, `smoke`); each is in the report. Exit 1 on
    /// FAIL.
    Drill {
        /// The sink to drill from (default: the first).
        #[arg(long)]
        sink: Option<String>,
    },
    /// Apply retention on every sink.
    Prune {
        /// Plan and report only; delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Proceed although a sink lists far fewer artifacts than at the last prune.
        #[arg(long)]
        allow_listing_drop: bool,
    },
    /// Copy artifacts missing on one sink from another (D: mirror and offsite catch-up).
    Replicate,
    /// The configured sources (files, database, buckets) and the compliance status (exit 1
    /// when not compliant).
    Status,
    /// Audit log commands.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Subcommand, Debug)]
enum AuditCommand {
    /// Verify the hash chain; names the first broken record.
    Verify,
}

// ---- configuration -----------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "default_project")]
    project: String,
    actor: Option<String>,
    prefix: Option<String>,
    audit_log: PathBuf,
    #[serde(default = "default_level")]
    zstd_level: i32,
    #[serde(default)]
    files: Vec<FilesConfig>,
    database: Option<DatabaseConfig>,
    /// `[[bucket]]` sections: object-store buckets archived with every backup.
    #[serde(default, rename = "bucket")]
    buckets: Vec<BucketConfig>,
    encryption: EncryptionConfig,
    sinks: Vec<SinkConfig>,
    retention: Option<RetentionConfig>,
    #[serde(default)]
    verify: VerifyConfig,
    drill: Option<DrillConfig>,
    #[serde(default)]
    compliance: ComplianceConfig,
}

fn default_project() -> String {
    "wst".into()
}
fn default_level() -> i32 {
    3
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilesConfig {
    path: PathBuf,
    root: String,
}

/// One `[[bucket]]`: every object under `url` (+ `prefix`) is archived under `root`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BucketConfig {
    /// The source's name in the manifest, and what `restore --bucket` and checks refer to.
    name: String,
    /// `s3://bucket[/path]`, `az://container[/path]`, `gs://bucket[/path]`, `file:///dir`.
    url: String,
    /// A key prefix appended to the URL's path (folder semantics: `proofs` is `proofs/…`).
    prefix: Option<String>,
    /// The archive root (default `buckets/<name>`).
    root: Option<String>,
    /// `object_store` options that are not secrets (endpoint, region, `allow_http`).
    #[serde(default)]
    options: BTreeMap<String, String>,
    /// Options read from environment variables: option name → variable name (credentials).
    #[serde(default)]
    options_env: BTreeMap<String, String>,
    /// Read the store's standard variables (`AWS_*`, `AZURE_*`, `GOOGLE_*`) first.
    #[serde(default = "yes")]
    from_env: bool,
    /// Objects downloaded (and restored) concurrently.
    max_concurrency: Option<usize>,
}

impl BucketConfig {
    /// The bucket URL with `prefix` appended to its path.
    fn full_url(&self) -> String {
        match self.prefix.as_deref().map(|p| p.trim_matches('/')) {
            None | Some("") => self.url.clone(),
            Some(p) => format!("{}/{p}", self.url.trim_end_matches('/')),
        }
    }

    /// The archive root, without trailing `/`.
    fn root(&self) -> String {
        self.root.as_deref().map_or_else(
            || format!("buckets/{}", self.name),
            |r| r.trim_end_matches('/').to_owned(),
        )
    }

    /// `options` plus the `options_env` values. Refuses a credential written into the file.
    fn resolved_options(&self) -> Out<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        for (k, v) in &self.options {
            if is_secret_option(k) {
                return Err(usage(format!(
                    "[[bucket]] `{}`: option `{k}` is a credential and does not belong in the \
                     configuration file (doctrine 026 R6): set the store's variable (e.g. \
                     AWS_SECRET_ACCESS_KEY) or name one in options_env = {{ {k} = \"VAR\" }}",
                    self.name
                )));
            }
            out.insert(k.clone(), v.clone());
        }
        for (k, var) in &self.options_env {
            let value = std::env::var(var).map_err(|_| {
                usage(format!(
                    "[[bucket]] `{}`: options_env names the environment variable `{var}` for \
                     `{k}`, but it is not set (or not UTF-8)",
                    self.name
                ))
            })?;
            out.insert(k.clone(), value);
        }
        Ok(out)
    }

    fn source(&self) -> Out<ObjectStoreSource> {
        let mut b = ObjectStoreSource::builder(&self.name, self.full_url(), self.root())
            .options(self.resolved_options()?)
            .from_env(self.from_env);
        if let Some(c) = self.max_concurrency {
            b = b.max_concurrency(c);
        }
        b.build()
            .map_err(|e| usage(format!("[[bucket]] `{}`: {e}", self.name)))
    }

    /// A restore target at `url` opened with this bucket's options and credentials.
    fn target(&self, url: &str) -> Out<ObjectStoreTarget> {
        ObjectStoreTarget::builder(url)
            .options(self.resolved_options()?)
            .from_env(self.from_env)
            .build()
            .map_err(|e| usage(format!("--to-bucket `{url}`: {e}")))
    }
}

/// Option names that hold credentials (`aws_secret_access_key`, `aws_session_token`,
/// `aws_sse_customer_key_base64`, `azure_storage_account_key`, `azure_client_secret`,
/// `google_service_account_key`, …); paths to credential files (`…_token_file`,
/// `google_application_credentials`) are not secrets and are allowed.
fn is_secret_option(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["secret", "password", "customer_key"]
        .iter()
        .any(|w| n.contains(w))
        || n.ends_with("_key")
        || n.ends_with("token")
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DatabaseConfig {
    url: String,
    password_file: Option<PathBuf>,
    password_env: Option<String>,
    entry: Option<String>,
    #[serde(default)]
    expected_tables: Vec<String>,
    restore_url: Option<String>,
    jobs: Option<u32>,
    /// `schema.table.column` of a timestamp whose newest value measures the drill's data RPO.
    freshness_column: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EncryptionConfig {
    key_file: PathBuf,
    recovery_passphrase_file: Option<PathBuf>,
    #[serde(default)]
    old_key_files: Vec<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SinkConfig {
    name: String,
    url: String,
    #[serde(default)]
    options: BTreeMap<String, String>,
    medium: Option<String>,
    #[serde(default)]
    offsite: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetentionConfig {
    time_zone: String,
    policy: Policy,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyConfig {
    #[serde(default)]
    required: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DrillConfig {
    scratch_dir: PathBuf,
    rto_target_minutes: Option<f64>,
    rpo_target_hours: Option<f64>,
    #[serde(default = "yes")]
    cleanup: bool,
    /// `[[drill.check]]`: post-restore checks, each in the drill report.
    #[serde(default, rename = "check")]
    checks: Vec<CheckConfig>,
}

/// One `[[drill.check]]`, by `kind`.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum CheckConfig {
    /// An SQL assertion on the scratch database (wst-pg `SqlAssertion`).
    Sql {
        name: String,
        query: String,
        /// `"no_rows"`, a scalar (`"1000"`), or the rows as `psql -At` prints them.
        expect: Expect,
        source: Option<String>,
        timeout_secs: Option<u64>,
    },
    /// Each object key a query yields exists in the restored tree (wst-pg
    /// `ObjectKeyCrossCheck`).
    CrossCheck {
        name: String,
        query: String,
        /// The archive root the objects were restored under, e.g. `buckets/proofs`…
        root: Option<String>,
        /// …or the `[[bucket]]` whose root that is.
        bucket: Option<String>,
        strip_prefix: Option<String>,
        source: Option<String>,
        timeout_secs: Option<u64>,
    },
    /// A program run against the restored data (wst-core `SmokeTest`); exit 0 passes.
    Smoke {
        name: String,
        program: PathBuf,
        #[serde(default)]
        args: Vec<String>,
        timeout_secs: Option<u64>,
        #[serde(default)]
        env: BTreeMap<String, String>,
        #[serde(default)]
        inherit: Vec<String>,
        source: Option<String>,
    },
}

/// An SQL check's `expect`: a string (`"no_rows"` or a scalar), an integer (a count), or an
/// array of rows.
#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "`expect` must be \"no_rows\", one value as `psql -At` prints it (\"1000\", \
                 \"t\", or an integer), or an array of rows [\"a|1\", \"b|2\"]"
)]
enum Expect {
    Text(String),
    Integer(i64),
    Rows(Vec<String>),
}

impl CheckConfig {
    fn name(&self) -> &str {
        match self {
            Self::Sql { name, .. } | Self::CrossCheck { name, .. } | Self::Smoke { name, .. } => {
                name
            }
        }
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ComplianceConfig {
    #[serde(default = "default_age")]
    max_backup_age_hours: i64,
    #[serde(default = "default_copies")]
    min_copies: usize,
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

/// The `restore` command's arguments.
struct RestoreRequest {
    target: PathBuf,
    include: Vec<String>,
    exclude: Vec<String>,
    no_database: bool,
    database: Option<String>,
    tables: Vec<String>,
    schemas: Vec<String>,
    no_files: bool,
    sink: Option<String>,
    break_glass: Option<BreakGlass>,
    artifact: Option<String>,
}

/// An operator-facing failure with its exit code.
#[derive(Debug)]
struct Failure {
    code: u8,
    message: String,
}

fn usage(message: impl Into<String>) -> Failure {
    Failure {
        code: 2,
        message: message.into(),
    }
}

fn failed(message: impl Into<String>) -> Failure {
    Failure {
        code: 1,
        message: message.into(),
    }
}

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        failed(e.to_string())
    }
}

type Out<T = ()> = Result<T, Failure>;

// ---- wiring ------------------------------------------------------------------------------

struct Ops {
    config: Config,
    json: bool,
    audit: AuditLog,
    cipher: Arc<dyn Cipher>,
    sinks: Vec<Arc<dyn Sink>>,
}

fn load_config(path: &Path) -> Out<Config> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        usage(format!(
            "cannot read the configuration `{}`: {e} (pass --config PATH; see examples/wst.toml)",
            path.display()
        ))
    })?;
    let config: Config = toml::from_str(&text)
        .map_err(|e| usage(format!("configuration `{}`: {e}", path.display())))?;
    if config.sinks.is_empty() {
        return Err(usage("the configuration has no [[sinks]]"));
    }
    let mut names = std::collections::BTreeSet::new();
    for b in &config.buckets {
        if b.name.trim().is_empty() {
            return Err(usage(format!(
                "a [[bucket]] (url `{}`) has an empty name",
                b.url
            )));
        }
        if !names.insert(b.name.as_str()) {
            return Err(usage(format!(
                "two [[bucket]] sections are named `{}`: names must be unique",
                b.name
            )));
        }
    }
    Ok(config)
}

fn build_cipher(config: &EncryptionConfig) -> Out<Arc<dyn Cipher>> {
    let key = Key::load(&config.key_file).map_err(|e| usage(e.to_string()))?;
    let mut b = AeadCipher::builder().recipient_key(key);
    if let Some(p) = &config.recovery_passphrase_file {
        b = b.recipient_passphrase(
            Passphrase::load(p).map_err(|e| usage(e.to_string()))?,
            KdfParams::default(),
        );
    }
    for old in &config.old_key_files {
        b = b.opening_key(Key::load(old).map_err(|e| usage(e.to_string()))?);
    }
    Ok(Arc::new(b.build()?))
}

async fn build_sink(s: &SinkConfig) -> Out<Arc<dyn Sink>> {
    let local = s.url.strip_prefix("file://").map_or_else(
        || (!s.url.contains("://")).then(|| PathBuf::from(&s.url)),
        |p| Some(PathBuf::from(p)),
    );
    if let Some(dir) = local {
        return Ok(Arc::new(
            LocalDiskSink::builder(&s.name, dir)
                .create_dir(true)
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
    Ok(Arc::new(
        ObjectStoreSink::builder(&s.name, &s.url)
            .options(s.options.clone())
            .from_env(true)
            .medium(medium)
            .offsite(s.offsite)
            .build()?,
    ))
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

fn pg_connection(db: &DatabaseConfig, url: &str) -> Out<ConnectionConfig> {
    let password = match (&db.password_file, &db.password_env) {
        (Some(f), _) => PasswordSource::KeyFile(f.clone()),
        (None, Some(v)) => PasswordSource::Env(v.clone()),
        (None, None) => PasswordSource::None,
    };
    Ok(ConnectionConfig::from_url(url)
        .map_err(|e| usage(e.to_string()))?
        .with_password(password))
}

impl Ops {
    async fn new(config: Config, json: bool) -> Out<Self> {
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

    /// Every configured source (files, database, buckets) as `{kind, name, from, root}`, for
    /// `status`; no credential (bucket URLs carry none, the database URL's password is not
    /// in the configuration).
    fn configured_sources(&self) -> Vec<serde_json::Value> {
        let mut out: Vec<serde_json::Value> = self
            .config
            .files
            .iter()
            .map(|f| {
                serde_json::json!({
                    "kind": "files", "name": f.root, "from": f.path.display().to_string(),
                    "root": format!("{}/", f.root),
                })
            })
            .collect();
        if let (Some(db), Some(entry)) = (&self.config.database, self.entry()) {
            let (name, from) = ConnectionConfig::from_url(&db.url).map_or_else(
                |_| (String::new(), "(invalid url)".to_owned()),
                |c| (c.database.clone(), c.display_target()),
            );
            out.push(serde_json::json!({
                "kind": wst::pg::SOURCE_KIND, "name": name, "from": from, "root": entry,
            }));
        }
        for b in &self.config.buckets {
            out.push(serde_json::json!({
                "kind": "object_store", "name": b.name, "from": b.full_url(),
                "root": format!("{}/", b.root()),
            }));
        }
        out
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

    fn print<T: serde::Serialize>(&self, value: &T, human: impl FnOnce()) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(value).unwrap_or_default()
            );
        } else {
            human();
        }
    }

    // ---- commands ----

    async fn backup(&self) -> Out<u8> {
        let mut b = BackupJob::builder(Arc::clone(&self.cipher))
            .zstd_level(self.config.zstd_level)
            .verifier(self.verifier());
        if let Some(p) = &self.config.prefix {
            b = b.prefix(p);
        }
        for f in &self.config.files {
            b = b.source(Arc::new(FileTreeSource::new(&f.path, &f.root)?));
        }
        if let (Some(db), Some(entry)) = (&self.config.database, self.entry()) {
            b = b.source(Arc::new(
                PgDumpSource::new(pg_connection(db, &db.url)?).with_entry(entry),
            ));
        }
        for bucket in &self.config.buckets {
            b = b.source(Arc::new(bucket.source()?));
        }
        for s in &self.sinks {
            b = b.sink(Arc::clone(s));
        }
        if !self.json && std::io::stderr().is_terminal() {
            b = b.progress(Arc::new(Bar::new(0)));
        }
        let job = b.build().map_err(|e| usage(e.to_string()))?;
        self.audit.append(AuditEvent::BackupStarted {
            sources: self
                .config
                .files
                .iter()
                .map(|f| f.root.clone())
                .chain(self.entry())
                .chain(self.config.buckets.iter().map(BucketConfig::root))
                .collect(),
            sinks: self.sinks.iter().map(|s| s.info().name.clone()).collect(),
        })?;
        let started = std::time::Instant::now();
        let report = match job.run().await {
            Ok(r) => r,
            Err(e) => {
                self.audit.append(AuditEvent::BackupFailed {
                    duration_seconds: started.elapsed().as_secs_f64(),
                    error: e.to_string(),
                })?;
                return Err(failed(format!("backup failed: {e}")));
            }
        };
        self.audit.append(AuditEvent::BackupCompleted {
            artifact: report.artifact.to_string(),
            outcome: format!("{:?}", report.outcome).to_lowercase(),
            duration_seconds: report.duration_seconds,
            bytes_read: report.bytes_read,
            ciphertext_bytes: report.ciphertext_bytes,
            ciphertext_sha256: report.ciphertext_sha256.clone(),
            sinks: report.sinks.clone(),
            warnings: report.warnings.clone(),
        })?;
        if let Some(v) = &report.verification {
            self.audit.append(AuditEvent::Verification {
                artifact: report.artifact.to_string(),
                sink: v.sink.clone(),
                passed: v.passed(),
                checks: v.checks.clone(),
            })?;
        }
        self.print(&report, || {
            println!(
                "backup {} {:?} in {:.1} s",
                report.artifact, report.outcome, report.duration_seconds
            );
            println!(
                "  {} entries, {} bytes read, {} bytes per copy (ratio {:.2})",
                report.entries,
                report.bytes_read,
                report.ciphertext_bytes,
                report.compression_ratio
            );
            for s in &report.sources {
                println!(
                    "  source {:<12} {:<16} prepared in {:.1} s",
                    s.kind, s.name, s.prepare_seconds
                );
            }
            for s in &report.sinks {
                println!("  {:<12} {}", s.sink, s.error.as_deref().unwrap_or("ok"));
            }
            for c in report
                .verification
                .iter()
                .flat_map(wst::core::VerificationReport::failures)
            {
                println!("  FAILED {}: {}", c.name, c.detail);
            }
        });
        let mut code = match report.outcome {
            RunOutcome::Success | RunOutcome::SuccessWithWarnings => 0,
            RunOutcome::Degraded => 3,
            RunOutcome::Failed => return Ok(1),
        };
        // Catch up sinks that missed earlier runs, then prune.
        if self.sinks.len() > 1 {
            code = code.max(self.replicate().await?);
        }
        if self.config.retention.is_some() {
            code = code.max(self.prune(false, false).await?);
        }
        Ok(code)
    }

    async fn verify(&self, artifact: Option<&str>) -> Out<u8> {
        let mut all_passed = true;
        let mut reports = Vec::new();
        for sink in &self.sinks {
            let name = self.artifact(&**sink, artifact).await?;
            let report = self
                .verifier()
                .verify(&**sink, &name, &*self.cipher)
                .await?;
            self.audit.append(AuditEvent::Verification {
                artifact: name.to_string(),
                sink: sink.info().name.clone(),
                passed: report.passed(),
                checks: report.checks.clone(),
            })?;
            all_passed &= report.passed();
            reports.push(report);
        }
        self.print(&reports, || {
            for r in &reports {
                println!(
                    "{} on {}: {}",
                    r.artifact,
                    r.sink,
                    if r.passed() { "PASS" } else { "FAIL" }
                );
                for c in &r.checks {
                    println!(
                        "  [{}] {}: {}",
                        if c.passed { "PASS" } else { "FAIL" },
                        c.name,
                        c.detail
                    );
                }
            }
        });
        Ok(u8::from(!all_passed))
    }

    /// `restore`: files (all, or the `--include` selection) into an isolated directory, and
    /// with `--database` the dump (all, or `--table`/`--schema`) into a scratch database.
    async fn restore(&self, req: RestoreRequest) -> Out<u8> {
        let RestoreRequest {
            target,
            include,
            mut exclude,
            no_database,
            database,
            tables,
            schemas,
            no_files,
            sink,
            break_glass,
            artifact,
        } = req;
        let target = target.as_path();
        let sink = self.sink(sink.as_deref())?;
        let name = self.artifact(&*sink, artifact.as_deref()).await?;
        let entry = self.entry();
        let db_entry = || -> Out<String> {
            entry
                .clone()
                .ok_or_else(|| usage("--database needs a [database] section"))
        };
        if no_database && let Some(e) = &entry {
            exclude.push(e.clone());
        }
        // The database restore reads the dump from the restored files: add its entry to a file
        // selection (and remove it afterwards when the operator did not select it).
        let mut patterns = include.clone();
        let mut drop_dump = false;
        if database.is_some() {
            let e = db_entry()?;
            if selection(&[], &exclude)?.is_some_and(|s| !s.matches(&e)) {
                return Err(usage(format!(
                    "--exclude leaves out `{e}`, the dump --database restores"
                )));
            }
            if no_files || !include.is_empty() {
                let selected =
                    !no_files && selection(&include, &[])?.is_some_and(|s| s.matches(&e));
                if !selected {
                    patterns.push(e);
                    drop_dump = true;
                }
            }
        }
        let mut options = RestoreOptions::isolated(target)
            .protect(self.protected())
            .include(patterns)
            .exclude(exclude.clone());
        options.allow_non_empty = break_glass.is_some();
        options.break_glass.clone_from(&break_glass);
        let result = restore(&*sink, &name, &*self.cipher, &options).await;
        let audit_restore = |passed: bool, seconds: f64, target: String, error: Option<String>| {
            self.audit.append(AuditEvent::Restore {
                artifact: name.to_string(),
                sink: sink.info().name.clone(),
                target,
                passed,
                duration_seconds: seconds,
                break_glass: break_glass.clone(),
                error,
            })
        };
        let report = match result {
            Ok(r) => r,
            Err(e) => {
                audit_restore(
                    false,
                    0.0,
                    target.display().to_string(),
                    Some(e.to_string()),
                )?;
                return Err(failed(format!("restore failed, target untouched: {e}")));
            }
        };
        audit_restore(
            true,
            report.duration_seconds,
            target.display().to_string(),
            None,
        )?;
        let mut proof_json = serde_json::Value::Null;
        let mut code = 0;
        let mut dump_bytes = 0;
        if let Some(db_name) = database.as_deref() {
            let db = self
                .config
                .database
                .as_ref()
                .ok_or_else(|| usage("--database needs a [database] section"))?;
            let url = db
                .restore_url
                .as_deref()
                .ok_or_else(|| usage("[database] restore_url is not set"))?;
            let desc = report
                .sources
                .iter()
                .find(|s| s.kind == wst::pg::SOURCE_KIND)
                .ok_or_else(|| failed("the artifact holds no database dump"))?;
            let facts = wst::pg::DatabaseFacts::from_description(desc)?;
            let mut opts = wst::pg::RestoreOptions::new(pg_connection(db, url)?)
                .with_database(db_name)
                .with_jobs(db.jobs.unwrap_or(2))
                .with_tables(tables)
                .with_schemas(schemas);
            if let Some(bg) = &break_glass {
                opts = opts.with_break_glass(bg.clone());
            }
            let dump = target.join(desc.root.trim_end_matches('/'));
            let proof = wst::pg::restore_dump(&dump, &facts, &opts).await;
            if drop_dump {
                dump_bytes = std::fs::metadata(&dump).map_or(0, |m| m.len());
                std::fs::remove_file(&dump).ok();
                if no_files {
                    // Only removed when empty: the target held nothing but the dump.
                    std::fs::remove_dir(target).ok();
                }
            }
            let proof = proof?;
            audit_restore(
                proof.passed(),
                proof.total_seconds,
                format!("database {db_name}"),
                None,
            )?;
            code = u8::from(!proof.passed());
            proof_json = serde_json::to_value(&proof).unwrap_or_default();
        }
        let out = serde_json::json!({ "files": report, "database": proof_json });
        self.print(&out, || {
            if no_files {
                println!(
                    "read the dump of {} ({} bytes) in {:.1} s; no files restored",
                    report.artifact, report.bytes, report.duration_seconds
                );
            } else {
                println!(
                    "restored {} ({} entries, {} bytes) into {} in {:.1} s",
                    report.artifact,
                    report.entries - u64::from(drop_dump),
                    report.bytes - dump_bytes,
                    target.display(),
                    report.duration_seconds
                );
            }
            if !include.is_empty() || !exclude.is_empty() {
                println!(
                    "  selection: {}{}{} ({} other entries authenticated, not written)",
                    if include.is_empty() {
                        "everything".to_owned()
                    } else {
                        include.join(", ")
                    },
                    if exclude.is_empty() {
                        ""
                    } else {
                        " excluding "
                    },
                    exclude.join(", "),
                    report.skipped
                );
            }
            if !proof_json.is_null() {
                println!(
                    "database proof: {}",
                    if code == 0 { "PASS" } else { "FAIL" }
                );
                if let Some(t) = proof_json["selection"]["restored_tables"].as_array() {
                    let t: Vec<&str> = t.iter().filter_map(|v| v.as_str()).collect();
                    println!("  tables restored: {}", t.join(", "));
                }
                for c in proof_json["checks"].as_array().into_iter().flatten() {
                    if c["passed"] == false {
                        println!("  FAILED {}: {}", c["name"], c["detail"]);
                    }
                }
            }
        });
        Ok(code)
    }

    /// `restore --bucket`: the objects of one `[[bucket]]` (all, or under `--prefix`) into the
    /// bucket at `to`, each checked against the manifest and read back.
    async fn restore_bucket(
        &self,
        bucket: &str,
        to: &str,
        prefixes: Vec<String>,
        sink: Option<&str>,
        break_glass: Option<BreakGlass>,
        artifact: Option<&str>,
    ) -> Out<u8> {
        let bucket = self.bucket(bucket)?;
        let target = bucket.target(to)?;
        let sink = self.sink(sink)?;
        let name = self.artifact(&*sink, artifact).await?;
        let mut options = ObjectRestoreOptions::new(bucket.root());
        options.prefixes = prefixes;
        options.break_glass.clone_from(&break_glass);
        if let Some(c) = bucket.max_concurrency {
            options.max_concurrency = c;
        }
        let result = restore_objects(&*sink, &name, &*self.cipher, &target, &options).await;
        let audit = |passed: bool, seconds: f64, error: Option<String>| {
            self.audit.append(AuditEvent::Restore {
                artifact: name.to_string(),
                sink: sink.info().name.clone(),
                target: format!("bucket {}", target.url()),
                passed,
                duration_seconds: seconds,
                break_glass: break_glass.clone(),
                error,
            })
        };
        let report = match result {
            Ok(r) => r,
            Err(e) => {
                audit(false, 0.0, Some(e.to_string()))?;
                let hint = if matches!(e, wst::core::Error::RestoreTarget { .. }) {
                    " (operator: choose an empty --to-bucket prefix, or authorize with \
                     --break-glass-by WHO --reason WHY)"
                } else {
                    ""
                };
                return Err(failed(format!("bucket restore failed: {e}{hint}")));
            }
        };
        let passed = report.checks.iter().all(|c| c.passed);
        audit(passed, report.duration_seconds, None)?;
        self.print(&report, || {
            println!(
                "restored {} objects ({} bytes) of bucket `{}` from {} into {} in {:.1} s",
                report.objects,
                report.bytes,
                report.source,
                report.artifact,
                report.target,
                report.duration_seconds
            );
            println!(
                "  source {} (prefix `{}`), target prefix `{}`",
                report.source_url, report.source_prefix, report.target_prefix
            );
            if !report.selection.is_empty() {
                println!("  selection: {}", report.selection.join(", "));
            }
            if let Some(bg) = &report.break_glass {
                println!(
                    "  break-glass: authorized by {} ({})",
                    bg.authorized_by, bg.reason
                );
            }
            for c in &report.checks {
                println!(
                    "  [{}] {}: {}",
                    if c.passed { "PASS" } else { "FAIL" },
                    c.name,
                    c.detail
                );
            }
        });
        Ok(u8::from(!passed))
    }

    /// `ls`: the entries (or the manifest, or the newest drill report) of an artifact.
    async fn ls(
        &self,
        sink: Option<&str>,
        artifact: Option<&str>,
        include: &[String],
        exclude: &[String],
        manifest: bool,
        report: bool,
    ) -> Out<u8> {
        let sink = self.sink(sink)?;
        let name = self.artifact(&*sink, artifact).await?;
        if report {
            return self.print_drill_report(&name);
        }
        let listing = list_artifact(&*sink, &name, &*self.cipher, ReadLimits::default()).await?;
        if manifest {
            println!("{}", serde_json::to_string_pretty(&listing.manifest)?);
            return Ok(0);
        }
        let selection = selection(include, exclude)?;
        let entries: Vec<&ListedEntry> = match &selection {
            Some(sel) => listing.select(sel),
            None => listing.entries.iter().collect(),
        };
        if self.json {
            let mut value = serde_json::to_value(&listing)?;
            value["entries"] = serde_json::to_value(&entries)?;
            println!("{}", serde_json::to_string_pretty(&value)?);
            return Ok(0);
        }
        let created = listing.sidecar.as_ref().map_or_else(
            || "no sidecar: incomplete".to_owned(),
            |s| s.created.to_string(),
        );
        let verified = match listing
            .sidecar
            .as_ref()
            .and_then(|s| s.verification.as_ref())
        {
            Some(v) if v.passed => format!("verified PASS ({} checks)", v.checks_passed),
            Some(v) => format!("verified FAIL ({} checks failed)", v.checks_failed),
            None => "not verified".to_owned(),
        };
        println!(
            "{} on {}: created {created}, {} bytes, {verified}, {} entries, {} content bytes",
            listing.artifact,
            listing.sink,
            listing.ciphertext_bytes,
            listing.entries.len(),
            listing.content_bytes()
        );
        println!("sources:");
        for s in &listing.manifest.sources {
            let facts = match wst::pg::DatabaseFacts::from_description(s) {
                Ok(f) => format!(
                    "  ({} tables, {} rows, database {})",
                    f.row_counts.len(),
                    f.total_rows(),
                    f.database
                ),
                Err(_) if s.kind == "object_store" => format!(
                    "  ({} objects, {} bytes, from {})",
                    s.details["object_count"],
                    s.details["total_bytes"],
                    s.details["url"].as_str().unwrap_or("?")
                ),
                Err(_) => String::new(),
            };
            println!("  {:<12} {:<16} {}{facts}", s.kind, s.name, s.root);
        }
        for w in &listing.manifest.warnings {
            println!("warning: {w}");
        }
        println!("entries:");
        for e in &entries {
            println!("{e}");
        }
        if let Some(sel) = &selection {
            let unmatched = sel.unmatched(&listing.manifest);
            if !unmatched.is_empty() {
                return Err(failed(format!(
                    "no entry matches `{}`",
                    unmatched.join("`, `")
                )));
            }
        }
        Ok(0)
    }

    /// The `[[drill.check]]` entries as post-restore checks, in configuration order.
    fn drill_checks(&self, cfg: &DrillConfig) -> Out<Vec<Arc<dyn PostRestoreCheck>>> {
        let mut seen = std::collections::BTreeSet::new();
        let mut checks: Vec<Arc<dyn PostRestoreCheck>> = Vec::new();
        for c in &cfg.checks {
            let name = c.name();
            if name.trim().is_empty() {
                return Err(usage("a [[drill.check]] has an empty name"));
            }
            if !seen.insert(name.to_owned()) {
                return Err(usage(format!(
                    "two [[drill.check]] entries are named `{name}`: names must be unique (the \
                     report tells checks apart by name)"
                )));
            }
            let needs_db = || -> Out<()> {
                if self.config.database.is_none() {
                    return Err(usage(format!(
                        "[[drill.check]] `{name}` queries the scratch database, but the \
                         configuration has no [database] section"
                    )));
                }
                Ok(())
            };
            match c {
                CheckConfig::Sql {
                    query,
                    expect,
                    source,
                    timeout_secs,
                    ..
                } => {
                    needs_db()?;
                    let expectation = match expect {
                        Expect::Text(t) if t == "no_rows" => Expectation::ReturnsNoRows,
                        Expect::Text(t) => Expectation::ScalarEquals(t.clone()),
                        Expect::Integer(i) => Expectation::ScalarEquals(i.to_string()),
                        Expect::Rows(rows) => Expectation::Equals(rows.clone()),
                    };
                    let mut check = SqlAssertion::new(name, query, expectation);
                    if let Some(s) = source {
                        check = check.for_source(s);
                    }
                    if let Some(t) = timeout_secs {
                        check = check.with_timeout_secs(*t);
                    }
                    checks.push(Arc::new(check));
                }
                CheckConfig::CrossCheck {
                    query,
                    root,
                    bucket,
                    strip_prefix,
                    source,
                    timeout_secs,
                    ..
                } => {
                    needs_db()?;
                    let root = match (root, bucket) {
                        (Some(r), None) => r.clone(),
                        (None, Some(b)) => self.bucket(b)?.root(),
                        _ => {
                            return Err(usage(format!(
                                "[[drill.check]] `{name}` (cross_check) needs exactly one of \
                                 `root` (an archive root, e.g. \"buckets/proofs\") or `bucket` \
                                 (a [[bucket]] name)"
                            )));
                        }
                    };
                    let mut check = ObjectKeyCrossCheck::in_restored_tree(name, query, &root);
                    if let Some(p) = strip_prefix {
                        check = check.strip_key_prefix(p);
                    }
                    if let Some(s) = source {
                        check = check.for_source(s);
                    }
                    if let Some(t) = timeout_secs {
                        check = check.with_timeout_secs(*t);
                    }
                    checks.push(Arc::new(check));
                }
                CheckConfig::Smoke {
                    program,
                    args,
                    timeout_secs,
                    env,
                    inherit,
                    source,
                    ..
                } => {
                    let mut check = SmokeTest::new(name, program, args);
                    if let Some(t) = timeout_secs {
                        check = check.with_timeout_secs(*t);
                    }
                    for (k, v) in env {
                        check = check.with_env(k, v);
                    }
                    for var in inherit {
                        check = check.inherit(var);
                    }
                    if let Some(s) = source {
                        check = check.for_source(s);
                    }
                    checks.push(Arc::new(check));
                }
            }
        }
        Ok(checks)
    }

    /// The `[[bucket]]` named `name`; the error lists the configured ones.
    fn bucket(&self, name: &str) -> Out<&BucketConfig> {
        self.config
            .buckets
            .iter()
            .find(|b| b.name == name)
            .ok_or_else(|| {
                let names: Vec<&str> = self
                    .config
                    .buckets
                    .iter()
                    .map(|b| b.name.as_str())
                    .collect();
                usage(if names.is_empty() {
                    format!(
                        "no [[bucket]] named `{name}`: the configuration has no [[bucket]] sections"
                    )
                } else {
                    format!(
                        "no [[bucket]] named `{name}`; configured: {}",
                        names.join(", ")
                    )
                })
            })
    }

    /// Prints the newest drill report of `name` found in the drill's `scratch_dir`.
    fn print_drill_report(&self, name: &ArtifactName) -> Out<u8> {
        let cfg =
            self.config.drill.as_ref().ok_or_else(|| {
                usage("the configuration has no [drill] section (where reports are)")
            })?;
        let wanted = name.to_string();
        let mut found: Option<(String, PathBuf, serde_json::Value)> = None;
        for item in std::fs::read_dir(&cfg.scratch_dir).map_err(|e| {
            failed(format!(
                "no drill report for {wanted}: cannot list `{}`: {e}",
                cfg.scratch_dir.display()
            ))
        })? {
            let path = item?.path();
            let is_report = path.extension().is_some_and(|e| e == "json")
                && path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("restore-test-"));
            if !is_report {
                continue;
            }
            let Ok(value) = serde_json::from_slice::<serde_json::Value>(&std::fs::read(&path)?)
            else {
                continue;
            };
            if value["artifact"] != wanted.as_str() {
                continue;
            }
            let date = value["date"].as_str().unwrap_or_default().to_owned();
            if found.as_ref().is_none_or(|(d, _, _)| date > *d) {
                found = Some((date, path, value));
            }
        }
        let Some((_, path, value)) = found else {
            return Err(failed(format!(
                "no drill report for {wanted} in `{}` (run `drill`)",
                cfg.scratch_dir.display()
            )));
        };
        if self.json {
            println!("{}", serde_json::to_string_pretty(&value)?);
        } else {
            match std::fs::read_to_string(path.with_extension("md")) {
                Ok(md) => print!("{md}"),
                Err(_) => println!("{}", serde_json::to_string_pretty(&value)?),
            }
            println!("report: {}", path.display());
        }
        Ok(u8::from(value["passed"] != true))
    }

    async fn drill(&self, sink: Option<&str>) -> Out<u8> {
        let cfg = self
            .config
            .drill
            .as_ref()
            .ok_or_else(|| usage("the configuration has no [drill] section"))?;
        let sink = self.sink(sink)?;
        let mut restorers: Vec<Arc<dyn EntryRestorer>> = Vec::new();
        if let Some(db) = &self.config.database {
            let url = db.restore_url.as_deref().ok_or_else(|| {
                usage("[database] restore_url is not set (the drill's scratch server)")
            })?;
            let mut restorer = PgDrillRestorer::new(
                wst::pg::RestoreOptions::new(pg_connection(db, url)?)
                    .with_jobs(db.jobs.unwrap_or(2))
                    .with_drop_after(cfg.cleanup),
            );
            if let Some(spec) = &db.freshness_column {
                let parts: Vec<&str> = spec.split('.').collect();
                let [schema, table, column] = parts[..] else {
                    return Err(usage(format!(
                        "[database] freshness_column `{spec}` must be `schema.table.column`"
                    )));
                };
                restorer = restorer.freshness_column(schema, table, column);
            }
            restorers.push(Arc::new(restorer));
        }
        let mut options = DrillOptions::new(
            &self.config.project,
            &actor_of(&self.audit),
            &cfg.scratch_dir,
        );
        options.protected_paths = self.protected();
        options.cleanup = cfg.cleanup;
        if let Some(m) = cfg.rto_target_minutes {
            options.rto_target_seconds = m * 60.0;
        }
        if let Some(h) = cfg.rpo_target_hours {
            options.rpo_target_seconds = h * 3600.0;
        }
        options.checks = self.drill_checks(cfg)?;
        let report = restore_drill(
            &*sink,
            &*self.cipher,
            &self.verifier(),
            &restorers,
            &options,
            Some(&self.audit),
        )
        .await?;
        std::fs::create_dir_all(&cfg.scratch_dir)?;
        let stem = cfg.scratch_dir.join(format!(
            "restore-test-{}",
            report.date.strftime("%Y%m%d-%H%M%S")
        ));
        std::fs::write(stem.with_extension("md"), report.to_markdown())?;
        std::fs::write(
            stem.with_extension("json"),
            serde_json::to_vec_pretty(&report)?,
        )?;
        self.print(&report, || {
            print!("{}", report.to_markdown());
            println!("report: {}", stem.with_extension("md").display());
        });
        Ok(u8::from(!report.passed))
    }

    async fn prune(&self, dry_run: bool, allow_drop: bool) -> Out<u8> {
        let r = self
            .config
            .retention
            .as_ref()
            .ok_or_else(|| usage("the configuration has no [retention] section"))?;
        let tz = time_zone(&r.time_zone).map_err(|e| usage(e.to_string()))?;
        let planner = Planner::new(r.policy.clone(), tz).map_err(|e| usage(e.to_string()))?;
        // The executor's own floor never goes below doctrine 026 R4's 7 days, whatever the
        // policy says: a policy typo must not delete yesterday's backups.
        let min_age = r
            .policy
            .min_age_duration()
            .map_err(|e| usage(e.to_string()))?
            .max(jiff::SignedDuration::from_hours(24 * 7));
        let state_path = self.config.audit_log.with_extension("prune-state.json");
        let mut state: BTreeMap<String, usize> = std::fs::read(&state_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let now = jiff::Timestamp::now();
        let mut reports = Vec::new();
        let mut code = 0;
        for sink in &self.sinks {
            let mut options = PruneOptions::new()
                .dry_run(dry_run)
                .min_age(min_age)
                .allow_listing_drop(allow_drop);
            if let Some(p) = &self.config.prefix {
                options = options.prefix(p);
            }
            if let Some(n) = state.get(&sink.info().name) {
                options = options.previous_count(*n);
            }
            match prune_audited(&**sink, &planner, now, &options, &self.audit).await {
                Ok(report) => {
                    if !dry_run {
                        state.insert(sink.info().name.clone(), report.remaining());
                    }
                    if !report.is_clean() {
                        code = 3;
                    }
                    reports.push(report);
                }
                Err(e) => {
                    eprintln!("prune on `{}` refused: {e}", sink.info().name);
                    code = 1;
                }
            }
        }
        if !dry_run {
            std::fs::write(&state_path, serde_json::to_vec_pretty(&state)?)?;
        }
        self.print(&reports, || {
            for r in &reports {
                println!(
                    "prune {}{}: {} listed, {} kept, {} deleted",
                    r.sink,
                    if r.dry_run { " (dry run)" } else { "" },
                    r.listed,
                    r.kept.len(),
                    r.deleted.len()
                );
                for d in &r.deleted {
                    let why: Vec<String> = d.reasons.iter().map(ToString::to_string).collect();
                    println!("  delete {} ({})", d.name, why.join(", "));
                }
                for a in r.attention() {
                    println!("  attention: {a}");
                }
            }
        });
        Ok(code)
    }

    async fn replicate(&self) -> Out<u8> {
        let mut reports = Vec::new();
        let mut code = 0;
        let mut options = ReplicateOptions::default();
        if let Some(p) = &self.config.prefix {
            options.prefix.clone_from(p);
        }
        // Every sink catches up from every other: primary → others first, then others → primary.
        for (i, from) in self.sinks.iter().enumerate() {
            for (j, to) in self.sinks.iter().enumerate() {
                if i == j || (i != 0 && j != 0) {
                    continue;
                }
                let report = match replicate(&**from, &**to, &options).await {
                    Ok(r) => r,
                    Err(e) => {
                        eprintln!("replicate {} → {}: {e}", from.info().name, to.info().name);
                        code = 3;
                        continue;
                    }
                };
                if !report.copied.is_empty() || !report.failed.is_empty() {
                    self.audit.append(AuditEvent::Replicate {
                        from: report.from.clone(),
                        to: report.to.clone(),
                        copied: report.copied.iter().map(|c| c.name.to_string()).collect(),
                        failed: report.failed.iter().map(|f| format!("{f:?}")).collect(),
                    })?;
                }
                if !report.is_complete() {
                    code = 3;
                }
                reports.push(report);
            }
        }
        self.print(&reports, || {
            for r in &reports {
                if !r.copied.is_empty() || !r.failed.is_empty() {
                    println!(
                        "replicate {} → {}: {} copied, {} failed",
                        r.from,
                        r.to,
                        r.copied.len(),
                        r.failed.len()
                    );
                }
            }
        });
        Ok(code)
    }

    async fn status(&self) -> Out<u8> {
        let mut t321 = ThreeTwoOneOptions::default();
        t321.min_copies = self.config.compliance.min_copies;
        if let Some(p) = &self.config.prefix {
            t321.prefix.clone_from(p);
        }
        let min_age = match &self.config.retention {
            Some(r) => r
                .policy
                .min_age_duration()
                .map_err(|e| usage(e.to_string()))?,
            None => jiff::SignedDuration::ZERO,
        };
        let options = ComplianceOptions {
            max_backup_age: jiff::SignedDuration::from_hours(
                self.config.compliance.max_backup_age_hours,
            ),
            retention_min_age: min_age,
            three_two_one: t321,
            ..ComplianceOptions::default()
        };
        let sinks: Vec<&dyn Sink> = self.sinks.iter().map(|s| &**s as &dyn Sink).collect();
        let report =
            compliance_status(&sinks, &self.audit, &options, jiff::Timestamp::now()).await?;
        let sources = self.configured_sources();
        if report.rules.iter().any(|r| r.rule != "audit trail intact") {
            let _ = self.audit.append(AuditEvent::ComplianceCheck {
                passed: report.compliant(),
                rules: report
                    .rules
                    .iter()
                    .map(|r| {
                        format!(
                            "{}: {} {}",
                            r.rule,
                            if r.passed { "PASS" } else { "FAIL" },
                            r.detail
                        )
                    })
                    .collect(),
            });
        }
        let mut value = serde_json::to_value(&report)?;
        value["sources"] = serde_json::to_value(&sources)?;
        self.print(&value, || {
            println!("sources backed up:");
            for s in &sources {
                println!(
                    "  {:<12} {:<16} {} → {}",
                    s["kind"].as_str().unwrap_or_default(),
                    s["name"].as_str().unwrap_or_default(),
                    s["from"].as_str().unwrap_or_default(),
                    s["root"].as_str().unwrap_or_default()
                );
            }
            println!(
                "compliance at {}: {}",
                report.at,
                if report.compliant() {
                    "COMPLIANT"
                } else {
                    "NOT COMPLIANT"
                }
            );
            for r in &report.rules {
                println!(
                    "  [{}] {:<24} {}",
                    if r.passed { "PASS" } else { "FAIL" },
                    r.rule,
                    r.detail
                );
                if !r.evidence.is_empty() {
                    println!("         evidence: {}", r.evidence.join(", "));
                }
            }
        });
        Ok(u8::from(!report.compliant()))
    }
}

fn actor_of(audit: &AuditLog) -> String {
    let _ = audit;
    std::env::var("USER").unwrap_or_else(|_| "wst".into())
}

async fn run(cli: Cli) -> Out<u8> {
    if let Command::Keygen { out } = &cli.command {
        let path = match out {
            Some(p) => p.clone(),
            None => load_config(&cli.config)?.encryption.key_file,
        };
        if let Some(dir) = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty() && !d.exists())
        {
            // The key's directory is created owner-only: keys live apart from backups.
            let mut b = std::fs::DirBuilder::new();
            b.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
            b.create(dir)?;
        }
        let key = Key::generate()?;
        key.write_to(&path)?;
        println!(
            "wrote {} (fingerprint {}); keep a copy offline, apart from the backups",
            path.display(),
            key.fingerprint()
        );
        return Ok(0);
    }
    let config = load_config(&cli.config)?;
    if let Command::Audit {
        command: AuditCommand::Verify,
    } = &cli.command
    {
        let log = AuditLog::new(&config.audit_log, "wst");
        let report = log.verify()?;
        if cli.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else if let (Some(n), Some(p)) = (report.first_broken, &report.problem) {
            println!(
                "audit log {}: BROKEN at record {n}: {p}",
                log.path().display()
            );
        } else {
            println!(
                "audit log {}: {} records, chain intact",
                log.path().display(),
                report.records
            );
        }
        return Ok(u8::from(!report.intact()));
    }
    let ops = Ops::new(config, cli.json).await?;
    match cli.command {
        Command::Backup => ops.backup().await,
        Command::Verify { artifact } => ops.verify(artifact.as_deref()).await,
        Command::Ls {
            manifest,
            report,
            include,
            exclude,
            sink,
            artifact,
        } => {
            ops.ls(
                sink.as_deref(),
                artifact.as_deref(),
                &include,
                &exclude,
                manifest,
                report,
            )
            .await
        }
        Command::Restore {
            target: _,
            bucket: Some(bucket),
            to_bucket,
            prefix,
            sink,
            break_glass_by,
            reason,
            artifact,
            ..
        } => {
            let break_glass = break_glass_by.map(|by| BreakGlass {
                authorized_by: by,
                reason: reason.unwrap_or_default(),
            });
            let to = to_bucket.ok_or_else(|| usage("--bucket needs --to-bucket URL"))?;
            ops.restore_bucket(
                &bucket,
                &to,
                prefix,
                sink.as_deref(),
                break_glass,
                artifact.as_deref(),
            )
            .await
        }
        Command::Restore {
            target,
            include,
            exclude,
            no_database,
            database,
            table,
            schema,
            no_files,
            sink,
            break_glass_by,
            reason,
            artifact,
            ..
        } => {
            let break_glass = break_glass_by.map(|by| BreakGlass {
                authorized_by: by,
                reason: reason.unwrap_or_default(),
            });
            ops.restore(RestoreRequest {
                target: target.ok_or_else(|| usage("restore needs --target DIR (or --bucket)"))?,
                include,
                exclude,
                no_database,
                database,
                tables: table,
                schemas: schema,
                no_files,
                sink,
                break_glass,
                artifact,
            })
            .await
        }
        Command::Drill { sink } => ops.drill(sink.as_deref()).await,
        Command::Prune {
            dry_run,
            allow_listing_drop,
        } => ops.prune(dry_run, allow_listing_drop).await,
        Command::Replicate => ops.replicate().await,
        Command::Status => ops.status().await,
        Command::Keygen { .. } | Command::Audit { .. } => unreachable!("handled above"),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("wst: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}
