//! The restore drill (doctrine 026 R7; seeds/002 `RESTORE_TESTING`): restore an artifact into an
//! isolated scratch environment, prove it, measure RTO and RPO, and report PASS or FAIL.

use std::any::Any;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::FutureExt as _;
use serde::{Deserialize, Serialize};
use tracing::Instrument as _;

use crate::artifact::{ArtifactName, Sidecar};
use crate::audit::{AuditEvent, AuditLog};
use crate::cipher::Cipher;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::restore::{RestoreOptions, restore};
use crate::sink::{Sink, SinkExt};
use crate::source::SourceDescription;
use crate::verify::{ArtifactVerifier, Check, Verifier};

/// Restores one restored entry into a scratch system and proves it against its source's
/// manifest description — e.g. wst-pg restores `wst_dev_database.backup` into a scratch
/// database and compares row counts and the schema fingerprint.
///
/// The drill calls, per restored entry: [`EntryRestorer::restore_and_prove`], then (only when
/// post-restore checks are configured) [`EntryRestorer::scratch_access`], then runs the
/// checks, then [`EntryRestorer::cleanup`] — so a scratch system is never removed before the
/// checks that need it ran.
#[async_trait]
pub trait EntryRestorer: Send + Sync + std::fmt::Debug {
    /// The source kind this restorer handles (the manifest's `SourceDescription::kind`, e.g.
    /// `"postgresql"`).
    fn source_kind(&self) -> &str;

    /// Restores `file` (the entry as restored on disk) and proves it against `description`.
    /// A failed proof is reported in the returned checks; `Err` means the restore could not run.
    /// The scratch system must stay in place until [`EntryRestorer::cleanup`].
    ///
    /// The drill sets the returned report's [`ProofReport::kind`] and [`ProofReport::source`]
    /// from `description`.
    ///
    /// # Errors
    /// The implementation's error, wrapped as [`Error::Source`].
    async fn restore_and_prove(
        &self,
        file: &Path,
        description: &SourceDescription,
    ) -> Result<ProofReport>;

    /// How post-restore checks reach the scratch system of `proof`: environment variables for
    /// a child program (never a secret in a value), private files kept alive while the checks
    /// run (e.g. a libpq passfile), a redactor for the children's output, and a typed handle
    /// for checks from the restorer's own crate. The default offers nothing (`Ok(None)`).
    ///
    /// # Errors
    /// The implementation's error (e.g. the password key file is unreadable); the drill
    /// records it as a failed `scratch_access:<source>` check.
    async fn scratch_access(&self, proof: &ProofReport) -> Result<Option<ScratchAccess>> {
        let _ = proof;
        Ok(None)
    }

    /// Removes the scratch system of `proof` when the restorer is configured to (e.g. wst-pg's
    /// `drop_after`), after every post-restore check ran. Returns checks recording what was
    /// done (they join the report's checks). The default does nothing.
    ///
    /// # Errors
    /// The implementation's error; the drill records it as a failed `cleanup:<source>` check.
    async fn cleanup(&self, proof: &ProofReport) -> Result<Vec<Check>> {
        let _ = proof;
        Ok(Vec::new())
    }
}

/// What an [`EntryRestorer`] restored and proved.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProofReport {
    /// The source kind (the manifest's `SourceDescription::kind`, e.g. `postgresql`); set by
    /// the drill.
    #[serde(default)]
    pub kind: String,
    /// The source's name in the manifest (e.g. `wst_dev`); set by the drill.
    #[serde(default)]
    pub source: String,
    /// Where it restored to, for people, e.g. `wst_restore_… on wst@db:5432` (no credentials).
    pub target: String,
    /// The scratch system's own name, e.g. the scratch database's name, for post-restore
    /// checks and [`EntryRestorer::cleanup`]; `None` when there is none.
    #[serde(default)]
    pub scratch_name: Option<String>,
    /// Whether this restore created the scratch system (only then may cleanup remove it).
    #[serde(default)]
    pub scratch_created: bool,
    /// Every check (row counts per table, schema fingerprint, large objects …).
    pub checks: Vec<Check>,
    /// Whether the restored schema equals the manifest's, when checked.
    pub schema_matches: Option<bool>,
    /// Rows expected (manifest) and found (restored), when counted.
    pub rows: Option<(u64, u64)>,
    /// The newest data timestamp found in the restored data, when a column is configured
    /// (for the data RPO).
    pub newest_data: Option<jiff::Timestamp>,
}

/// Removes secrets from a text.
type Redactor = dyn Fn(&str) -> String + Send + Sync;

/// Access to a restored scratch system for post-restore checks, given by
/// [`EntryRestorer::scratch_access`] so that wst-core stays agnostic of what was restored.
///
/// - [`ScratchAccess::env`]: variables a child program (a [`SmokeTest`]) gets, e.g. `PGHOST`,
///   `PGDATABASE`, `PGPASSFILE`; by contract never a secret in a value (design invariant 7).
/// - kept-alive guards: private files (a passfile) deleted when the access is dropped, which
///   the drill does after the checks and before [`EntryRestorer::cleanup`].
/// - a redactor applied to every child output recorded in the report.
/// - a typed handle ([`ScratchAccess::handle`]) that checks from the restorer's own crate
///   downcast to reach the scratch system natively (wst-pg's SQL assertions).
#[derive(Default)]
pub struct ScratchAccess {
    env: Vec<(String, String)>,
    keep_alive: Vec<Box<dyn Any + Send + Sync>>,
    redactor: Option<Arc<Redactor>>,
    handle: Option<Arc<dyn Any + Send + Sync>>,
}

impl ScratchAccess {
    /// An access offering nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) an environment variable for child programs. Never pass a secret:
    /// the values may be logged; hand secrets over in a private file kept alive with
    /// [`ScratchAccess::keep_alive`].
    #[must_use]
    pub fn with_env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        self.env.retain(|(n, _)| *n != name);
        self.env.push((name, value.into()));
        self
    }

    /// Keeps `guard` (e.g. a temporary passfile that deletes itself on drop) alive for as long
    /// as this access.
    #[must_use]
    pub fn keep_alive(mut self, guard: impl Any + Send + Sync) -> Self {
        self.keep_alive.push(Box::new(guard));
        self
    }

    /// Sets the function that removes secrets from child output before it is recorded.
    #[must_use]
    pub fn with_redactor(
        mut self,
        redact: impl Fn(&str) -> String + Send + Sync + 'static,
    ) -> Self {
        self.redactor = Some(Arc::new(redact));
        self
    }

    /// Attaches a typed handle for checks that know the restorer's type (see
    /// [`ScratchAccess::handle`]).
    #[must_use]
    pub fn with_handle<T: Any + Send + Sync>(mut self, handle: T) -> Self {
        self.handle = Some(Arc::new(handle));
        self
    }

    /// The environment variables for child programs, in insertion order.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// `text` with secrets removed by the redactor (unchanged without one).
    pub fn redact(&self, text: &str) -> String {
        match &self.redactor {
            Some(r) => r(text),
            None => text.to_owned(),
        }
    }

    /// The handle, when one of type `T` was attached.
    pub fn handle<T: Any>(&self) -> Option<&T> {
        self.handle.as_deref().and_then(|h| h.downcast_ref::<T>())
    }
}

impl std::fmt::Debug for ScratchAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScratchAccess")
            .field("env", &self.env)
            .field("keep_alive", &self.keep_alive.len())
            .field("redactor", &self.redactor.is_some())
            .field("handle", &self.handle.is_some())
            .finish()
    }
}

/// One restored entry as post-restore checks see it: its proof and, when its restorer offers
/// one, its [`ScratchAccess`].
#[derive(Debug)]
#[non_exhaustive]
pub struct RestoredEntry {
    /// The restorer's report (kind, source, scratch name, proof checks).
    pub proof: ProofReport,
    /// How to reach its scratch system, if the restorer offers it.
    pub access: Option<ScratchAccess>,
}

impl RestoredEntry {
    /// An entry from its parts (the drill builds these; tests of checks may too).
    pub fn new(proof: ProofReport, access: Option<ScratchAccess>) -> Self {
        Self { proof, access }
    }
}

/// What a [`PostRestoreCheck`] is given: the restored file tree and every restored entry.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct CheckContext<'a> {
    /// The drill's restore target: the isolated directory the artifact's files were restored
    /// into (`<scratch_dir>/restore-test-YYYYMMDD-HHMMSS`).
    pub restore_target: &'a Path,
    /// The artifact drilled.
    pub artifact: &'a str,
    /// The entries restored into scratch systems by [`EntryRestorer`]s, in manifest order.
    pub entries: &'a [RestoredEntry],
}

impl<'a> CheckContext<'a> {
    /// A context from its parts.
    pub fn new(restore_target: &'a Path, artifact: &'a str, entries: &'a [RestoredEntry]) -> Self {
        Self {
            restore_target,
            artifact,
            entries,
        }
    }

    /// The restored entries of source kind `kind` (e.g. `postgresql`).
    pub fn entries_of_kind<'b>(
        &'b self,
        kind: &'b str,
    ) -> impl Iterator<Item = &'a RestoredEntry> + 'b {
        self.entries.iter().filter(move |e| e.proof.kind == kind)
    }
}

/// A check run by the drill after the files were restored and every [`EntryRestorer`] proved
/// its entry, and before any cleanup (seeds/002 `RESTORE_TESTING` step 4: "application
/// connects and functions? (basic smoke test)"; issue 9: SQL assertions, database ↔ object
/// cross-checks).
///
/// Implementations: [`SmokeTest`] here; `SqlAssertion` and `ObjectKeyCrossCheck` in wst-pg.
#[async_trait]
pub trait PostRestoreCheck: Send + Sync + std::fmt::Debug {
    /// The check's configured name (for the report when it returns nothing or panics).
    fn name(&self) -> &str;

    /// Whether this check proves that the application connects and functions: its outcome
    /// fills the report's `application connected` line (seeds/002). Default `false`.
    fn proves_application(&self) -> bool {
        false
    }

    /// Runs the check. A check that cannot run (connection refused, SQL error, program
    /// missing) returns a failed [`Check`] with the reason — never nothing, never a skip; the
    /// drill records an empty result or a panic as a failure.
    async fn run(&self, context: &CheckContext<'_>) -> Vec<Check>;
}

/// Variables a [`SmokeTest`] child inherits from the drill's process; everything else
/// (database URLs, `PG*`, cloud credentials) is withheld so the test cannot reach production
/// by accident (seeds/002 "NEVER restore directly to production").
const SMOKE_INHERITED: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "TMP",
    "TEMP",
    "SYSTEMROOT",
    "SystemRoot",
    "COMSPEC",
    "PATHEXT",
    "USERPROFILE",
    "APPDATA",
    "LOCALAPPDATA",
    "WINDIR",
];

/// A smoke test (seeds/002 `RESTORE_TESTING` step 4, "application connects and functions?
/// (basic smoke test)"): runs a program — directly, no shell — against the restored data;
/// exit status 0 passes.
///
/// The child runs in the restore target with a minimal environment: from the drill's process
/// only `PATH`, `HOME`, `USER`, `LOGNAME`, `LANG`, `LC_ALL`, `LC_CTYPE`, `TZ`, `TMPDIR`/`TMP`/
/// `TEMP` and Windows' `SystemRoot`, `ComSpec`, `PATHEXT`, `USERPROFILE`, `APPDATA`,
/// `LOCALAPPDATA`, `WINDIR` (plus those named with [`SmokeTest::inherit`]); then
/// `WST_RESTORE_DIR` (the restore target) and `WST_ARTIFACT`; then the variables of the
/// restored entry's [`ScratchAccess`] (wst-pg: `PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE`,
/// `PGSSLMODE`, `PGPASSFILE` when a password is needed, and `WST_SCRATCH_DATABASE_URL`
/// without password); then [`SmokeTest::with_env`]'s. Nothing else is inherited, so database
/// URLs, `PG*` variables or cloud credentials in the drill's environment never reach it.
///
/// With several restored entries offering access, the first (in manifest order) is used
/// unless [`SmokeTest::for_source`] names one.
///
/// The check (named `smoke:<name>`) records the exit status, the duration (seconds) and the
/// last [`SmokeTest::with_tail_bytes`] bytes of stdout and stderr, passed through the access's
/// redactor. After [`SmokeTest::with_timeout_secs`] the child is killed and the check fails.
/// On Unix the child leads its own process group, which is killed with `SIGKILL`
/// on timeout and when processes the child left behind still hold its output open 2 s after
/// it exited, so nothing it started outlives the check and the scratch database; on Windows
/// only the child itself is killed.
#[derive(Debug, Clone)]
pub struct SmokeTest {
    name: String,
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(String, String)>,
    inherit: Vec<String>,
    source: Option<String>,
    timeout_secs: u64,
    tail_bytes: usize,
}

impl SmokeTest {
    /// Runs `program` with `args` (no shell: use `sh -c …` explicitly for one), with a 300 s
    /// timeout and 2 KiB output tails.
    pub fn new<I, A>(name: &str, program: impl Into<PathBuf>, args: I) -> Self
    where
        I: IntoIterator<Item = A>,
        A: Into<OsString>,
    {
        Self {
            name: name.to_owned(),
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            inherit: Vec::new(),
            source: None,
            timeout_secs: 300,
            tail_bytes: 2048,
        }
    }

    /// Kills the program after `seconds` (at least 1); the check then fails.
    #[must_use]
    pub fn with_timeout_secs(mut self, seconds: u64) -> Self {
        self.timeout_secs = seconds.max(1);
        self
    }

    /// Sets an extra environment variable (applied last). Never a secret: the configuration
    /// is logged.
    #[must_use]
    pub fn with_env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Also passes the drill process's variable `name` (when set) to the child.
    #[must_use]
    pub fn inherit(mut self, name: &str) -> Self {
        self.inherit.push(name.to_owned());
        self
    }

    /// Uses the access of the restored entry whose manifest source is `source` (e.g.
    /// `wst_dev`); the check fails when the drill restored no such entry.
    #[must_use]
    pub fn for_source(mut self, source: &str) -> Self {
        self.source = Some(source.to_owned());
        self
    }

    /// Keeps the last `bytes` bytes of stdout and of stderr for the report (default 2048).
    #[must_use]
    pub fn with_tail_bytes(mut self, bytes: usize) -> Self {
        self.tail_bytes = bytes;
        self
    }

    fn command(
        &self,
        context: &CheckContext<'_>,
        access: Option<&ScratchAccess>,
    ) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(&self.args)
            .current_dir(context.restore_target)
            .env_clear()
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        for var in SMOKE_INHERITED
            .iter()
            .copied()
            .chain(self.inherit.iter().map(String::as_str))
        {
            if let Some(value) = std::env::var_os(var) {
                cmd.env(var, value);
            }
        }
        cmd.env("WST_RESTORE_DIR", context.restore_target)
            .env("WST_ARTIFACT", context.artifact);
        if let Some(access) = access {
            for (k, v) in access.env() {
                cmd.env(k, v);
            }
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        #[cfg(unix)]
        cmd.process_group(0);
        cmd
    }
}

/// The last bytes of a child's output stream, filled while it is read.
#[derive(Debug, Default)]
struct Tail {
    kept: Vec<u8>,
    total: u64,
    ended: bool,
}

/// Reads `reader` to its end into `tail`, keeping only the last `limit` bytes.
async fn read_tail<R: tokio::io::AsyncRead + Unpin>(
    reader: Option<R>,
    limit: usize,
    tail: Arc<std::sync::Mutex<Tail>>,
) {
    use tokio::io::AsyncReadExt as _;
    let mut chunk = vec![0u8; 8192];
    if let Some(mut reader) = reader {
        while let Ok(n) = reader.read(&mut chunk).await {
            if n == 0 {
                break;
            }
            let mut t = tail
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            t.total += n as u64;
            t.kept.extend_from_slice(&chunk[..n]);
            if t.kept.len() > limit {
                let cut = t.kept.len() - limit;
                t.kept.drain(..cut);
            }
        }
    }
    tail.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .ended = true;
}

/// A recorded output tail on one line: redacted, trimmed, newlines shown as `⏎`.
fn show_tail(tail: &std::sync::Mutex<Tail>, access: Option<&ScratchAccess>) -> String {
    let tail = tail
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (bytes, total) = (&tail.kept, tail.total);
    let text = String::from_utf8_lossy(bytes);
    let text = match access {
        Some(a) => a.redact(&text),
        None => text.into_owned(),
    };
    let text = text.trim().replace("\r\n", "\n").replace('\n', " ⏎ ");
    let text = if text.is_empty() {
        "(empty)".to_owned()
    } else if total > bytes.len() as u64 {
        format!("…{text}")
    } else {
        text
    };
    if tail.ended {
        text
    } else {
        format!("{text} (still held open by a process the program left running)")
    }
}

/// Kills the process group `pgid` with `SIGKILL` (Unix; the smoke test's child leads it). A
/// group that is already gone is not an error.
#[cfg(unix)]
fn kill_group(pgid: Option<u32>) {
    let pid = pgid
        .and_then(|p| i32::try_from(p).ok())
        .and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

#[cfg(not(unix))]
fn kill_group(_pgid: Option<u32>) {}

#[async_trait]
impl PostRestoreCheck for SmokeTest {
    fn name(&self) -> &str {
        &self.name
    }

    fn proves_application(&self) -> bool {
        true
    }

    async fn run(&self, context: &CheckContext<'_>) -> Vec<Check> {
        let name = format!("smoke:{}", self.name);
        let mut offering = context
            .entries
            .iter()
            .filter(|e| self.source.as_ref().is_none_or(|s| *s == e.proof.source));
        let entry = offering.clone().find(|e| e.access.is_some());
        if let Some(source) = &self.source
            && entry.is_none()
        {
            let why = if offering.next().is_some() {
                "its restorer offers no access for checks"
            } else {
                "the drill restored no such entry (see the restore checks)"
            };
            return vec![Check::fail(name, format!("source `{source}`: {why}"))];
        }
        let access = entry.and_then(|e| e.access.as_ref());
        let program = self.program.display().to_string();
        let mut cmd = self.command(context, access);
        let started = Instant::now();
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                return vec![Check::fail(
                    name,
                    format!("cannot start `{program}`: {e} (check the program path and PATH)"),
                )];
            }
        };
        let pgid = child.id();
        let (out, err) = (Arc::default(), Arc::default());
        let stdout = tokio::spawn(read_tail(
            child.stdout.take(),
            self.tail_bytes,
            Arc::clone(&out),
        ));
        let stderr = tokio::spawn(read_tail(
            child.stderr.take(),
            self.tail_bytes,
            Arc::clone(&err),
        ));
        let limit = Duration::from_secs(self.timeout_secs);
        let (status, passed) = match tokio::time::timeout(limit, child.wait()).await {
            Ok(Ok(s)) => (describe_exit(s), s.success()),
            Ok(Err(e)) => (format!("waiting for the program failed: {e}"), false),
            Err(_) => {
                kill_group(pgid);
                let _ = child.kill().await;
                ("timed out and was killed".to_owned(), false)
            }
        };
        let seconds = started.elapsed().as_secs_f64();
        // Output still open after the child ended: something it started holds it; end it.
        let grace = Duration::from_secs(2);
        let (abort_out, abort_err) = (stdout.abort_handle(), stderr.abort_handle());
        let both = async {
            let _ = (stdout.await, stderr.await);
        };
        tokio::pin!(both);
        if tokio::time::timeout(grace, &mut both).await.is_err() {
            kill_group(pgid);
            if tokio::time::timeout(grace, &mut both).await.is_err() {
                abort_out.abort();
                abort_err.abort();
            }
        }
        let source = entry.map_or_else(
            || "no scratch system".to_owned(),
            |e| format!("source `{}`", e.proof.source),
        );
        let detail = format!(
            "`{program}` {status} after {seconds:.2} s (timeout {} s; {source}); stdout: {}; stderr: {}",
            self.timeout_secs,
            show_tail(&out, access),
            show_tail(&err, access),
        );
        vec![Check {
            name,
            passed,
            detail,
        }]
    }
}

/// `exited with status 3`, `killed by signal 9`.
fn describe_exit(status: std::process::ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exited with status {code}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt as _;
        if let Some(signal) = status.signal() {
            return format!("was killed by signal {signal}");
        }
    }
    format!("ended: {status}")
}

/// Which artifact a drill restores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrillSelection {
    /// The newest complete artifact.
    Newest,
    /// A random complete artifact from the last `days` days (seeds/002: "random selection from
    /// last 30 days"); `seed` makes the choice reproducible.
    RandomWithin {
        /// Window, days.
        days: u32,
        /// Random seed.
        seed: u64,
    },
}

/// How to run a drill.
#[derive(Debug, Clone)]
pub struct DrillOptions {
    /// The project name for the report title.
    pub project: String,
    /// Who runs (or authorized) the drill: recorded in the report and the audit log.
    pub tested_by: String,
    /// Which artifact.
    pub selection: DrillSelection,
    /// A directory for the isolated restore; the drill restores into a new
    /// `restore-test-YYYYMMDD-HHMMSS` directory (UTC) inside it (`…-2`, `…-3` when another drill
    /// started in the same second).
    pub scratch_dir: PathBuf,
    /// Production paths the restore must not touch.
    pub protected_paths: Vec<PathBuf>,
    /// Remove the restored files afterwards.
    pub cleanup: bool,
    /// RTO target, seconds (seeds/002 "Standard": 4 hours).
    pub rto_target_seconds: f64,
    /// RPO target, seconds (seeds/002 "Standard": 24 hours).
    pub rpo_target_seconds: f64,
    /// Post-restore checks, run in this order after the restorers' proofs and before any
    /// cleanup (see [`PostRestoreCheck`]). Default none.
    pub checks: Vec<Arc<dyn PostRestoreCheck>>,
    /// The clock that dates the drill (the report's `DATE`, the restore directory's name, the
    /// RPO measured against the artifact's time, the selection window). Default
    /// [`Clock::system`]; RTO is measured with a monotonic clock.
    pub clock: Clock,
}

impl DrillOptions {
    /// A drill of the newest artifact into `scratch_dir` with the seeds/002 "Standard" targets
    /// (RTO 4 h, RPO 24 h), cleaning up afterwards.
    pub fn new(project: &str, tested_by: &str, scratch_dir: impl Into<PathBuf>) -> Self {
        Self {
            project: project.to_owned(),
            tested_by: tested_by.to_owned(),
            selection: DrillSelection::Newest,
            scratch_dir: scratch_dir.into(),
            protected_paths: Vec::new(),
            cleanup: true,
            rto_target_seconds: 4.0 * 3600.0,
            rpo_target_seconds: 24.0 * 3600.0,
            checks: Vec::new(),
            clock: Clock::system(),
        }
    }

    /// Dates the drill with `clock`.
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Adds a post-restore check (run after those added before).
    #[must_use]
    pub fn with_check(mut self, check: Arc<dyn PostRestoreCheck>) -> Self {
        self.checks.push(check);
        self
    }
}

/// The drill's result, rendered as Markdown ([`DrillReport::to_markdown`], the seeds/002
/// `RESTORE_TEST_REPORT` template) and JSON (serde).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrillReport {
    /// Project name.
    pub project: String,
    /// Who ran it.
    pub tested_by: String,
    /// Drill start (UTC).
    pub date: jiff::Timestamp,
    /// The artifact restored.
    pub artifact: String,
    /// How it was selected.
    pub selection: DrillSelection,
    /// The sink it was fetched from.
    pub sink: String,
    /// When the backup was taken (UTC).
    pub backup_time: jiff::Timestamp,
    /// Ciphertext size, bytes.
    pub backup_size: u64,
    /// Where the files were restored.
    pub restore_target: PathBuf,
    /// Databases or other systems restored (from the restorers).
    pub proofs: Vec<ProofReport>,
    /// RTO measured: start of the drill to the verified restore, seconds.
    pub rto_seconds: f64,
    /// RPO measured: drill start minus backup time, seconds.
    pub rpo_seconds: f64,
    /// Data RPO: backup time minus the newest restored data timestamp, seconds, when known.
    pub data_rpo_seconds: Option<f64>,
    /// RTO target, seconds.
    pub rto_target_seconds: f64,
    /// RPO target, seconds.
    pub rpo_target_seconds: f64,
    /// Every check, in order: verification, file restore, proofs, post-restore checks,
    /// cleanup of scratch systems, RTO/RPO targets.
    pub checks: Vec<Check>,
    /// The post-restore checks' results (also in `checks`), in the configured order.
    #[serde(default)]
    pub post_restore_checks: Vec<Check>,
    /// Whether the application connected and functioned: the outcome of the checks that prove
    /// it ([`PostRestoreCheck::proves_application`], e.g. a [`SmokeTest`]); `None` when none
    /// ran (seeds/002 "application connected").
    #[serde(default)]
    pub application_connected: Option<bool>,
    /// Whether every check passed.
    pub passed: bool,
    /// Whether the scratch files were removed.
    pub cleaned_up: bool,
}

impl DrillReport {
    /// The failed checks, as `name: detail` lines.
    pub fn issues(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect()
    }

    /// Renders the report in the seeds/002 `RESTORE_TEST_REPORT` template (Markdown): `TARGET`,
    /// `METRICS`, `VERIFICATION` (with "application connected" from the smoke tests), a
    /// `POST_RESTORE_CHECKS` section when post-restore checks ran, `RESULT` and `ISSUES`,
    /// followed by every other check.
    pub fn to_markdown(&self) -> String {
        let yes_no = |b: Option<bool>| match b {
            Some(true) => "yes",
            Some(false) => "no",
            None => "not tested",
        };
        let db = self
            .proofs
            .iter()
            .map(|p| p.target.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let schema = if self.proofs.is_empty() {
            None
        } else {
            Some(self.proofs.iter().all(|p| p.schema_matches == Some(true)))
        };
        let (expected, actual) = self
            .proofs
            .iter()
            .filter_map(|p| p.rows)
            .fold((0, 0), |(e, a), (pe, pa)| (e + pe, a + pa));
        let rows = if self.proofs.iter().any(|p| p.rows.is_some()) {
            format!("{expected} / {actual}")
        } else {
            "not counted".into()
        };
        let recent = self
            .data_rpo_seconds
            .map(|s| s <= self.rpo_target_seconds)
            .or(Some(self.rpo_seconds <= self.rpo_target_seconds));
        let mut md = String::new();
        let _ = writeln!(md, "# Restore Test — {}", self.project);
        let _ = writeln!(md, "TESTED_BY: {}", self.tested_by);
        let _ = writeln!(md, "DATE: {}", self.date);
        let _ = writeln!(md, "## TARGET");
        let _ = writeln!(
            md,
            "database: {}",
            if db.is_empty() {
                "none (files only)"
            } else {
                &db
            }
        );
        let _ = writeln!(md, "backup_date: {} ({})", self.backup_time, self.artifact);
        let _ = writeln!(md, "backup_size: {} bytes", self.backup_size);
        let _ = writeln!(md, "## METRICS");
        let _ = writeln!(
            md,
            "RTO_measured: {:.2}min (target: <{:.0}min)",
            self.rto_seconds / 60.0,
            self.rto_target_seconds / 60.0
        );
        let _ = writeln!(
            md,
            "RPO_measured: {:.2}h (target: <{:.0}h)",
            self.rpo_seconds / 3600.0,
            self.rpo_target_seconds / 3600.0
        );
        if let Some(d) = self.data_rpo_seconds {
            let _ = writeln!(
                md,
                "RPO_data: {:.2}h (backup time − newest restored row)",
                d / 3600.0
            );
        }
        let _ = writeln!(md, "## VERIFICATION");
        let _ = writeln!(md, "- schema matches: {}", yes_no(schema));
        let _ = writeln!(md, "- row count: {rows}");
        let _ = writeln!(md, "- recent data within RPO: {}", yes_no(recent));
        let _ = writeln!(
            md,
            "- application connected: {}",
            yes_no(self.application_connected)
        );
        if !self.post_restore_checks.is_empty() {
            let _ = writeln!(md, "## POST_RESTORE_CHECKS");
            for c in &self.post_restore_checks {
                let _ = writeln!(
                    md,
                    "- [{}] {}: {}",
                    if c.passed { "PASS" } else { "FAIL" },
                    c.name,
                    c.detail
                );
            }
        }
        let _ = writeln!(
            md,
            "## RESULT: {}",
            if self.passed { "PASS" } else { "FAIL" }
        );
        let issues = self.issues();
        let _ = writeln!(
            md,
            "ISSUES: {}",
            if issues.is_empty() {
                "none".to_owned()
            } else {
                issues.join("; ")
            }
        );
        let _ = writeln!(md, "## CHECKS");
        for c in self
            .checks
            .iter()
            .filter(|c| !self.post_restore_checks.contains(c))
        {
            let _ = writeln!(
                md,
                "- [{}] {}: {}",
                if c.passed { "PASS" } else { "FAIL" },
                c.name,
                c.detail
            );
        }
        md
    }
}

/// The complete artifacts on `sink` (artifact and sidecar present), oldest first.
///
/// # Errors
/// [`Error::Sink`] when the sink cannot be listed.
pub async fn complete_artifacts(sink: &dyn Sink) -> Result<Vec<ArtifactName>> {
    let listing = sink.list("").await?;
    let sidecars: std::collections::HashSet<&str> = listing
        .iter()
        .filter_map(|m| m.name.strip_suffix(crate::artifact::SIDECAR_EXTENSION))
        .collect();
    let mut names: Vec<ArtifactName> = listing
        .iter()
        .filter_map(|m| m.name.strip_suffix(crate::artifact::ARTIFACT_EXTENSION))
        .filter(|stem| sidecars.contains(stem))
        .filter_map(|stem| ArtifactName::parse(stem).ok())
        .collect();
    names.sort();
    Ok(names)
}

fn select(
    names: &[ArtifactName],
    selection: DrillSelection,
    now: jiff::Timestamp,
) -> Option<ArtifactName> {
    match selection {
        DrillSelection::Newest => names.last().cloned(),
        DrillSelection::RandomWithin { days, seed } => {
            let since = now
                .checked_sub(jiff::SignedDuration::from_hours(24 * i64::from(days)))
                .ok()?;
            let window: Vec<&ArtifactName> = names.iter().filter(|n| n.time() >= since).collect();
            if window.is_empty() {
                return None;
            }
            // splitmix64 of the seed: reproducible, uniform enough for a drill choice.
            let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            Some(window[(z % window.len() as u64) as usize].clone())
        }
    }
}

/// Runs a restore drill against `sink` (doctrine 026 R7).
///
/// Steps: select an artifact; verify it ([`ArtifactVerifier`], deep); restore the files into a
/// new isolated directory; hand each restored entry whose source has an [`EntryRestorer`] to it
/// (e.g. a scratch database) for proof; run the post-restore checks
/// ([`DrillOptions::checks`]: SQL assertions, database ↔ object cross-checks, smoke tests)
/// against the restored tree and scratch systems; then clean up — the restorers'
/// [`EntryRestorer::cleanup`] (e.g. dropping the scratch database) and, if asked, the restored
/// files — never before the checks ran. RTO is measured from the drill's start to the end of
/// the checks (seeds/002: "time from start to verified restoration"); RPO is drill start −
/// backup time (data RPO when a restorer reports the newest data time). Both are checked
/// against the targets, and the drill is recorded in `audit` when given.
///
/// A drill that fails any check is reported as FAIL, never as an `Err`. When the file restore
/// fails, the post-restore checks do not run and each is recorded as failed.
///
/// # Errors
/// [`Error::NotFound`] when the sink holds no complete artifact to drill (in the selection
/// window); [`Error::Sink`] when it cannot be listed; [`Error::Io`] when the audit record
/// cannot be written.
pub async fn restore_drill(
    sink: &dyn Sink,
    cipher: &dyn Cipher,
    verifier: &ArtifactVerifier,
    restorers: &[Arc<dyn EntryRestorer>],
    options: &DrillOptions,
    audit: Option<&AuditLog>,
) -> Result<DrillReport> {
    let span = tracing::info_span!("restore_drill", sink = %sink.info().name);
    drill(sink, cipher, verifier, restorers, options, audit)
        .instrument(span)
        .await
}

async fn drill(
    sink: &dyn Sink,
    cipher: &dyn Cipher,
    verifier: &ArtifactVerifier,
    restorers: &[Arc<dyn EntryRestorer>],
    options: &DrillOptions,
    audit: Option<&AuditLog>,
) -> Result<DrillReport> {
    let date = options.clock.now();
    let clock = Instant::now();
    let names = complete_artifacts(sink).await?;
    let name = select(&names, options.selection, date).ok_or_else(|| Error::NotFound {
        sink: sink.info().name.clone(),
        name: "a complete artifact to drill (none in the selection window)".into(),
    })?;
    let sidecar: Option<Sidecar> = sink
        .get_bytes(&name.sidecar_object(), 1 << 20)
        .await
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let backup_size = match &sidecar {
        Some(s) => s.ciphertext_size,
        None => sink
            .head(&name.artifact_object())
            .await
            .map_or(0, |m| m.size),
    };
    let stamp = date.strftime("%Y%m%d-%H%M%S").to_string();
    // A new directory even when another drill started in the same second.
    let target = (1..=1000)
        .map(|n: u32| {
            options.scratch_dir.join(if n == 1 {
                format!("restore-test-{stamp}")
            } else {
                format!("restore-test-{stamp}-{n}")
            })
        })
        .find(|p| !p.exists())
        .unwrap_or_else(|| options.scratch_dir.join(format!("restore-test-{stamp}")));
    let mut checks = Vec::new();

    // 1. Verify (doctrine R5) before trusting anything.
    let verification = verifier.verify(sink, &name, cipher).await?;
    checks.push(if verification.passed() {
        Check::pass(
            "verify",
            format!("{} checks passed", verification.checks.len()),
        )
    } else {
        Check::fail(
            "verify",
            verification
                .failures()
                .map(|c| format!("{}: {}", c.name, c.detail))
                .collect::<Vec<_>>()
                .join("; "),
        )
    });

    // 2. Files into an isolated directory.
    // 3. Each restorable source (databases) into its scratch system, with proof.
    let mut restored: Vec<(&Arc<dyn EntryRestorer>, ProofReport)> = Vec::new();
    let mut restore_opts = RestoreOptions::isolated(&target)
        .protect(options.protected_paths.clone())
        .with_clock(options.clock.clone());
    // The drill proves the artifact its sidecar describes, not whatever object holds its name.
    restore_opts.expected_ciphertext = sidecar
        .as_ref()
        .map(|s| (s.ciphertext_size, s.ciphertext_sha256.clone()));
    let files_restored = match restore(sink, &name, cipher, &restore_opts).await {
        Ok(rr) => {
            checks.push(Check::pass(
                "restore_files",
                format!(
                    "{} entries, {} bytes into {}",
                    rr.entries,
                    rr.bytes,
                    target.display()
                ),
            ));
            for desc in &rr.sources {
                let Some(r) = restorers.iter().find(|r| r.source_kind() == desc.kind) else {
                    continue;
                };
                let file = target.join(desc.root.trim_end_matches('/'));
                match r.restore_and_prove(&file, desc).await {
                    Ok(mut proof) => {
                        proof.kind.clone_from(&desc.kind);
                        proof.source.clone_from(&desc.name);
                        checks.extend(proof.checks.iter().cloned());
                        restored.push((r, proof));
                    }
                    Err(e) => {
                        checks.push(Check::fail(format!("restore:{}", desc.name), e.to_string()));
                    }
                }
            }
            true
        }
        Err(e) => {
            checks.push(Check::fail("restore_files", e.to_string()));
            false
        }
    };

    // 4. Post-restore checks, while every scratch system still exists.
    let (post_restore_checks, application_connected) = post_restore(
        options,
        &target,
        &name.to_string(),
        &restored,
        files_restored,
    )
    .await;
    checks.extend(post_restore_checks.iter().cloned());
    let rto_seconds = clock.elapsed().as_secs_f64();

    // 5. Clean up: scratch systems first (after the checks), then the restored files.
    for (r, proof) in &restored {
        match r.cleanup(proof).await {
            Ok(done) => checks.extend(done),
            Err(e) => checks.push(Check::fail(
                format!("cleanup:{}", proof.source),
                e.to_string(),
            )),
        }
    }
    let proofs: Vec<ProofReport> = restored.into_iter().map(|(_, p)| p).collect();
    let rpo_seconds = date.duration_since(name.time()).as_secs_f64();
    let data_rpo_seconds = proofs
        .iter()
        .filter_map(|p| p.newest_data)
        .max()
        .map(|t| name.time().duration_since(t).as_secs_f64().max(0.0));
    checks.push(if rto_seconds <= options.rto_target_seconds {
        Check::pass(
            "rto_within_target",
            format!("{rto_seconds:.1} s ≤ {:.0} s", options.rto_target_seconds),
        )
    } else {
        Check::fail(
            "rto_within_target",
            format!("{rto_seconds:.1} s > {:.0} s", options.rto_target_seconds),
        )
    });
    checks.push(if rpo_seconds <= options.rpo_target_seconds {
        Check::pass(
            "rpo_within_target",
            format!("{rpo_seconds:.0} s ≤ {:.0} s", options.rpo_target_seconds),
        )
    } else {
        Check::fail(
            "rpo_within_target",
            format!(
                "the backup is {rpo_seconds:.0} s old > {:.0} s: back up more often (doctrine R1)",
                options.rpo_target_seconds
            ),
        )
    });

    let cleaned_up = options.cleanup && std::fs::remove_dir_all(&target).is_ok();
    let passed = checks.iter().all(|c| c.passed);
    let report = DrillReport {
        project: options.project.clone(),
        tested_by: options.tested_by.clone(),
        date,
        artifact: name.to_string(),
        selection: options.selection,
        sink: sink.info().name.clone(),
        backup_time: name.time(),
        backup_size,
        restore_target: target,
        proofs,
        rto_seconds,
        rpo_seconds,
        data_rpo_seconds,
        rto_target_seconds: options.rto_target_seconds,
        rpo_target_seconds: options.rpo_target_seconds,
        checks,
        post_restore_checks,
        application_connected,
        passed,
        cleaned_up,
    };
    if passed {
        tracing::info!(artifact = %name, rto = rto_seconds, "restore drill passed");
    } else {
        tracing::error!(artifact = %name, issues = ?report.issues(), "restore drill FAILED");
    }
    if let Some(log) = audit {
        log.append(AuditEvent::RestoreDrill {
            artifact: report.artifact.clone(),
            passed,
            rto_seconds,
            rpo_seconds,
            authorized_by: options.tested_by.clone(),
            report: report.restore_target.display().to_string(),
        })?;
    }
    Ok(report)
}

/// Runs the configured post-restore checks; returns their results and the "application
/// connected" outcome. Scratch accesses (and their private files) live only inside.
async fn post_restore(
    options: &DrillOptions,
    target: &Path,
    artifact: &str,
    restored: &[(&Arc<dyn EntryRestorer>, ProofReport)],
    files_restored: bool,
) -> (Vec<Check>, Option<bool>) {
    let mut results = Vec::new();
    let mut application: Option<bool> = None;
    if options.checks.is_empty() {
        return (results, application);
    }
    if !files_restored {
        for check in &options.checks {
            results.push(Check::fail(
                format!("check:{}", check.name()),
                "not run: the file restore failed (see `restore_files`)",
            ));
            if check.proves_application() {
                application = Some(false);
            }
        }
        return (results, application);
    }
    let mut entries = Vec::with_capacity(restored.len());
    for (r, proof) in restored {
        let access = match r.scratch_access(proof).await {
            Ok(a) => a,
            Err(e) => {
                results.push(Check::fail(
                    format!("scratch_access:{}", proof.source),
                    format!("the checks get no access to `{}`: {e}", proof.target),
                ));
                None
            }
        };
        entries.push(RestoredEntry::new(proof.clone(), access));
    }
    let context = CheckContext::new(target, artifact, &entries);
    for check in &options.checks {
        let outcome = std::panic::AssertUnwindSafe(check.run(&context))
            .catch_unwind()
            .await;
        let found = match outcome {
            Ok(found) if found.is_empty() => vec![Check::fail(
                format!("check:{}", check.name()),
                "the check returned no result (a check must pass or fail)",
            )],
            Ok(found) => found,
            Err(panic) => {
                let why = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_owned());
                vec![Check::fail(
                    format!("check:{}", check.name()),
                    format!("the check panicked: {why}"),
                )]
            }
        };
        if check.proves_application() {
            let ok = found.iter().all(|c| c.passed);
            application = Some(application.unwrap_or(true) && ok);
        }
        results.extend(found);
    }
    drop(entries); // private files (passfiles) go before the scratch systems do
    (results, application)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> DrillReport {
        DrillReport {
            project: "wst".into(),
            tested_by: "otto".into(),
            date: jiff::Timestamp::UNIX_EPOCH,
            artifact: "wst-backup-20260101-020000".into(),
            selection: DrillSelection::Newest,
            sink: "local-c".into(),
            backup_time: jiff::Timestamp::UNIX_EPOCH,
            backup_size: 1,
            restore_target: PathBuf::from("/scratch/restore-test"),
            proofs: Vec::new(),
            rto_seconds: 1.0,
            rpo_seconds: 1.0,
            data_rpo_seconds: None,
            rto_target_seconds: 60.0,
            rpo_target_seconds: 60.0,
            checks: Vec::new(),
            post_restore_checks: Vec::new(),
            application_connected: None,
            passed: true,
            cleaned_up: true,
        }
    }

    #[test]
    fn markdown_has_a_post_restore_section_and_lists_each_check_once() {
        let mut r = report();
        let sql = Check::fail(
            "sql:orphans",
            "expected no rows, got 1 row × 1 column: [`7`]",
        );
        let smoke = Check::pass("smoke:app", "`app` exited with status 0 after 0.10 s");
        r.checks = vec![Check::pass("verify", "ok"), sql.clone(), smoke.clone()];
        r.post_restore_checks = vec![sql, smoke];
        r.application_connected = Some(true);
        r.passed = false;
        let md = r.to_markdown();
        let section = md
            .split("## POST_RESTORE_CHECKS\n")
            .nth(1)
            .and_then(|rest| rest.split("## RESULT").next())
            .expect("section before RESULT");
        assert_eq!(
            section,
            "- [FAIL] sql:orphans: expected no rows, got 1 row × 1 column: [`7`]\n\
             - [PASS] smoke:app: `app` exited with status 0 after 0.10 s\n"
        );
        assert!(md.contains("- application connected: yes\n"), "{md}");
        assert_eq!(md.matches("smoke:app").count(), 1, "{md}");
        assert!(md.contains("- [PASS] verify: ok"), "{md}");
        assert!(md.contains("ISSUES: sql:orphans: expected no rows"), "{md}");
    }

    #[test]
    fn without_checks_the_report_is_as_before() {
        let md = report().to_markdown();
        assert!(!md.contains("POST_RESTORE_CHECKS"), "{md}");
        assert!(md.contains("- application connected: not tested\n"), "{md}");
    }

    #[test]
    fn reports_written_before_post_restore_checks_still_read() {
        let mut json = serde_json::to_value(report()).unwrap();
        let object = json.as_object_mut().unwrap();
        object.remove("post_restore_checks");
        object.remove("application_connected");
        object.insert(
            "proofs".into(),
            serde_json::json!([{
                "target": "wst_restore_x on wst@db:5432",
                "checks": [],
                "schema_matches": true,
                "rows": [3, 3],
                "newest_data": null
            }]),
        );
        let old: DrillReport = serde_json::from_value(json).unwrap();
        assert!(old.post_restore_checks.is_empty());
        assert_eq!(old.application_connected, None);
        assert_eq!(old.proofs[0].kind, "");
        assert_eq!(old.proofs[0].scratch_name, None);
        assert!(!old.proofs[0].scratch_created);
    }

    #[test]
    fn scratch_access_redacts_and_hands_out_its_handle() {
        #[derive(Debug, PartialEq)]
        struct Db(&'static str);
        let access = ScratchAccess::new()
            .with_env("PGDATABASE", "old")
            .with_env("PGDATABASE", "wst_restore_x")
            .with_env("PGHOST", "db")
            .with_redactor(|t| t.replace("hunter2", "[REDACTED]"))
            .with_handle(Db("wst_restore_x"));
        assert_eq!(
            access.env(),
            [
                ("PGDATABASE".to_owned(), "wst_restore_x".to_owned()),
                ("PGHOST".to_owned(), "db".to_owned())
            ]
        );
        assert_eq!(access.redact("pw hunter2!"), "pw [REDACTED]!");
        assert_eq!(access.handle::<Db>(), Some(&Db("wst_restore_x")));
        assert_eq!(access.handle::<String>(), None);
        assert_eq!(ScratchAccess::new().redact("hunter2"), "hunter2");
    }

    #[test]
    fn tails_keep_the_end_and_mark_what_was_cut_or_left_open() {
        let tail = std::sync::Mutex::new(Tail {
            kept: b"line 2\nline 3\n".to_vec(),
            total: 20,
            ended: true,
        });
        assert_eq!(show_tail(&tail, None), "…line 2 ⏎ line 3");
        let open = std::sync::Mutex::new(Tail::default());
        assert_eq!(
            show_tail(&open, None),
            "(empty) (still held open by a process the program left running)"
        );
    }

    #[tokio::test]
    async fn read_tail_keeps_only_the_last_bytes() {
        let data: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
        let tail = Arc::new(std::sync::Mutex::new(Tail::default()));
        read_tail(Some(&data[..]), 100, Arc::clone(&tail)).await;
        let t = tail.lock().unwrap();
        assert!(t.ended);
        assert_eq!(t.total, 50_000);
        assert_eq!(t.kept, data[50_000 - 100..]);
    }
}
