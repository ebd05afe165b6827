//! The smoke test: an application started against the restored data, as a child process
//! with a withheld environment, a timeout and its output tail.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{CheckContext, PostRestoreCheck, ScratchAccess};
use crate::verify::Check;

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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

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
