//! The signal state file: what metrics and alerts need across processes (issue 17).
//!
//! One small JSON document beside the audit log ([`STATE_FILE_NAME`]), updated under an
//! exclusive lock by every operation ([`SignalState::update`]) and replaced atomically (a
//! temporary file, `fsync`, rename), so a crash leaves the old or the new state, never half
//! of one. It holds no secret and is not evidence: the audit log is. Its format is in
//! `docs/SIGNALS.md`.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::core::{AuditEvent, AuditRecord};

use super::{SignalError, WalQueueFacts};

/// The state file's name, in the audit log's directory ([`state_path`]).
pub const STATE_FILE_NAME: &str = "wst-signals.json";

/// The largest state file read, bytes: a larger one is [`SignalError::Malformed`] (design
/// invariant 10: no input makes wst use unbounded memory).
pub const STATE_MAX_BYTES: u64 = 4 * 1024 * 1024;

/// The current format version (`"version"` in the file).
const VERSION: u32 = 1;

/// Most rules, sinks or alerts kept per map (a hostile or runaway input stays bounded).
const MAX_KEYS: usize = 256;

/// The state file of the repository whose audit log is `audit_log`: `wst-signals.json` in the
/// same directory.
pub fn state_path(audit_log: &Path) -> PathBuf {
    audit_log
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."))
        .join(STATE_FILE_NAME)
}

/// How one operation ended, as signals see it (from the CLI's exit code: 0, 3, 1 or 2, 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// It did what it was asked (exit 0).
    Success,
    /// It did part of it: a sink missed the backup, prune refused something (exit 3).
    Degraded,
    /// It failed or found a violation (exit 1), or could not start (exit 2).
    Failed,
    /// Another run held the repository lock: nothing was done (exit 4).
    Locked,
}

impl Outcome {
    /// The outcome of a `wst` exit code (README's table).
    pub fn from_exit_code(code: u8) -> Self {
        match code {
            0 => Self::Success,
            3 => Self::Degraded,
            4 => Self::Locked,
            _ => Self::Failed,
        }
    }

    /// `success`, `degraded`, `failed`, `locked`: the `result` label of `wst_runs_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Degraded => "degraded",
            Self::Failed => "failed",
            Self::Locked => "locked",
        }
    }
}

/// One operation's history (key: the operation's name, e.g. `backup`, `drill`, `wal-push`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OperationState {
    /// When it last succeeded (UTC).
    pub last_success: Option<Timestamp>,
    /// When it last failed or was degraded (UTC).
    pub last_failure: Option<Timestamp>,
    /// When it last ended, whatever the outcome (UTC).
    pub last_run: Option<Timestamp>,
    /// How the last run ended.
    pub last_outcome: Option<Outcome>,
    /// The last run's duration, seconds.
    pub last_duration_seconds: f64,
    /// Runs per outcome (`success`, `degraded`, `failed`, `locked`) since the state file was
    /// created.
    pub runs: BTreeMap<String, u64>,
    /// Runs in a row that found the repository locked (reset by any other outcome).
    pub consecutive_locked: u32,
}

/// The last backup run's facts (from its `backup_completed` or `backup_failed` audit record).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BackupFacts {
    /// When it was recorded (UTC).
    pub at: Option<Timestamp>,
    /// The artifact name (empty when the run failed before one existed).
    pub artifact: String,
    /// `success`, `success_with_warnings`, `degraded` or `failed`.
    pub outcome: String,
    /// Duration, seconds.
    pub duration_seconds: f64,
    /// Content bytes read from the sources.
    pub bytes_read: u64,
    /// Ciphertext bytes stored per copy.
    pub bytes_stored: u64,
    /// Per sink: whether the run's copy landed there.
    pub copies: BTreeMap<String, bool>,
}

/// The last verification of one sink's copy (doctrine R5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerificationFacts {
    /// When it was recorded (UTC).
    pub at: Timestamp,
    /// The artifact verified.
    pub artifact: String,
    /// Whether every check passed.
    pub passed: bool,
}

/// The last restore drill (doctrine R7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrillFacts {
    /// When it was recorded (UTC).
    pub at: Timestamp,
    /// The artifact drilled.
    pub artifact: String,
    /// PASS or FAIL.
    pub passed: bool,
    /// Measured RTO, seconds.
    pub rto_seconds: f64,
    /// Measured RPO, seconds.
    pub rpo_seconds: f64,
}

/// The last compliance check (`wst status`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ComplianceFacts {
    /// When it was recorded (UTC).
    pub at: Option<Timestamp>,
    /// Whether every rule passed.
    pub compliant: bool,
    /// Per rule (e.g. `R1 backup frequency`): whether it passed.
    pub rules: BTreeMap<String, bool>,
    /// The failing rules' lines, `rule: FAIL detail`.
    pub failing: Vec<String>,
}

/// A condition that alerted and has not cleared yet (its recovery notice is still owed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveAlert {
    /// When it first fired (UTC).
    pub since: Timestamp,
    /// The latest reason, e.g. `backup_failed`.
    pub reason: String,
    /// Failing runs observed for it so far (an alert is sent for the first, on a change of
    /// reason, and once per repeat interval; the others are counted only).
    pub count: u64,
    /// When an alert for it was last sent (UTC); `None` in state files written before
    /// repeats were limited (the next failure then alerts).
    #[serde(default)]
    pub last_sent: Option<Timestamp>,
}

/// Everything signals remember across processes (the state file's document).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalState {
    /// Format version (1).
    pub version: u32,
    /// The last audit record folded in ([`SignalState::fold`]); `None` before the first.
    pub audit_seq: Option<u64>,
    /// Per operation name.
    pub operations: BTreeMap<String, OperationState>,
    /// The last backup run.
    pub backup: Option<BackupFacts>,
    /// Per sink name: its last verification.
    pub verification: BTreeMap<String, VerificationFacts>,
    /// The last restore drill.
    pub drill: Option<DrillFacts>,
    /// The last compliance check.
    pub compliance: Option<ComplianceFacts>,
    /// Per condition (an operation name): the alert still active.
    pub alerts: BTreeMap<String, ActiveAlert>,
    /// Per schedule key ([`super::Schedule::key`]): when its job last started (UTC), for the
    /// scheduler's catch-up after downtime.
    pub schedule: BTreeMap<String, Timestamp>,
    /// The asynchronous WAL sinks' backlog at the last operation, when `[wal]` is configured.
    #[serde(default)]
    pub wal_queues: Option<Vec<WalQueueFacts>>,
}

impl Default for SignalState {
    fn default() -> Self {
        Self {
            version: VERSION,
            audit_seq: None,
            operations: BTreeMap::new(),
            backup: None,
            verification: BTreeMap::new(),
            drill: None,
            compliance: None,
            alerts: BTreeMap::new(),
            schedule: BTreeMap::new(),
            wal_queues: None,
        }
    }
}

fn insert_bounded<V>(map: &mut BTreeMap<String, V>, key: String, value: V) {
    if map.len() < MAX_KEYS || map.contains_key(&key) {
        map.insert(key, value);
    }
}

impl SignalState {
    /// Reads the state file; a missing file is the empty state.
    ///
    /// # Errors
    /// [`SignalError::Io`] when it cannot be read; [`SignalError::Malformed`] when it is larger
    /// than [`STATE_MAX_BYTES`], does not parse, or has another format version.
    pub fn load(path: &Path) -> Result<Self, SignalError> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(SignalError::io("reading the signal state", path, e)),
        };
        Self::read_from(file, path)
    }

    fn read_from(file: File, path: &Path) -> Result<Self, SignalError> {
        let mut raw = Vec::new();
        file.take(STATE_MAX_BYTES + 1)
            .read_to_end(&mut raw)
            .map_err(|e| SignalError::io("reading the signal state", path, e))?;
        if raw.is_empty() {
            return Ok(Self::default());
        }
        if raw.len() as u64 > STATE_MAX_BYTES {
            return Err(SignalError::Malformed {
                path: path.to_owned(),
                detail: format!("larger than {STATE_MAX_BYTES} bytes"),
            });
        }
        let state: Self = serde_json::from_slice(&raw).map_err(|e| SignalError::Malformed {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
        if state.version != VERSION {
            return Err(SignalError::Malformed {
                path: path.to_owned(),
                detail: format!(
                    "format version {} (this wst reads {VERSION})",
                    state.version
                ),
            });
        }
        Ok(state)
    }

    /// Writes the state atomically: a temporary file beside `path`, `fsync`, rename.
    ///
    /// # Errors
    /// [`SignalError::Io`] when the directory or the file cannot be written.
    pub fn save(&self, path: &Path) -> Result<(), SignalError> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| SignalError::Malformed {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
        write_atomically(path, &json, false)
    }

    /// Loads the state at `path` under an exclusive lock (`path` + `.lock`), lets `change`
    /// update it, saves it and returns what `change` returned, so two processes (a scheduled
    /// backup and a `wal-push`) never lose each other's update. A state file that does not
    /// parse is replaced by the empty state (it is not evidence; a warning is logged).
    ///
    /// # Errors
    /// [`SignalError::Io`] when the lock or state file cannot be opened, locked or written.
    pub fn update<T>(path: &Path, change: impl FnOnce(&mut Self) -> T) -> Result<T, SignalError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)
                .map_err(|e| SignalError::io("creating the state directory", dir, e))?;
        }
        let lock_path = path.with_extension("json.lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| SignalError::io("opening the signal state lock", &lock_path, e))?;
        lock.lock()
            .map_err(|e| SignalError::io("locking the signal state", &lock_path, e))?;
        let mut state = match Self::load(path) {
            Ok(s) => s,
            Err(e @ SignalError::Malformed { .. }) => {
                tracing::warn!("{e}; starting from an empty signal state");
                Self::default()
            }
            Err(e) => return Err(e),
        };
        let out = change(&mut state);
        let saved = state.save(path);
        let _ = lock.unlock();
        saved.map(|()| out)
    }

    /// Records how operation `operation` ended at `at` after `duration_seconds`.
    pub fn record_operation(
        &mut self,
        operation: &str,
        outcome: Outcome,
        at: Timestamp,
        duration_seconds: f64,
    ) {
        if !self.operations.contains_key(operation) && self.operations.len() >= MAX_KEYS {
            return;
        }
        let op = self.operations.entry(operation.to_owned()).or_default();
        match outcome {
            Outcome::Success => op.last_success = Some(at),
            Outcome::Degraded | Outcome::Failed => op.last_failure = Some(at),
            Outcome::Locked => {}
        }
        op.consecutive_locked = if outcome == Outcome::Locked {
            op.consecutive_locked.saturating_add(1)
        } else {
            0
        };
        op.last_run = Some(at);
        op.last_outcome = Some(outcome);
        op.last_duration_seconds = duration_seconds;
        *op.runs.entry(outcome.as_str().to_owned()).or_default() += 1;
    }

    /// Folds the audit records written since the last fold (`seq` greater than
    /// [`SignalState::audit_seq`]) into the facts metrics show: the last backup (bytes, copies
    /// per sink), each sink's last verification, the last drill's RTO/RPO, the last compliance
    /// check per rule. Returns the folded records' one-line summaries of failures (failed
    /// verifications, a failed drill, failing rules, sinks that missed a copy) with the `seq`
    /// of the record each comes from, for an alert's details. A log that was replaced (its
    /// last `seq` lower than the last folded one) is folded from its start.
    pub fn fold(&mut self, records: &[AuditRecord]) -> Vec<(u64, String)> {
        let mut details = Vec::new();
        if let (Some(last), Some(max)) = (self.audit_seq, records.last().map(|r| r.seq))
            && max < last
        {
            self.audit_seq = None;
        }
        for r in records {
            if self.audit_seq.is_some_and(|s| r.seq <= s) {
                continue;
            }
            self.audit_seq = Some(r.seq);
            let mut lines = Vec::new();
            self.fold_one(r, &mut lines);
            details.extend(lines.into_iter().map(|l| (r.seq, l)));
        }
        details
    }

    fn fold_one(&mut self, r: &AuditRecord, details: &mut Vec<String>) {
        match &r.event {
            AuditEvent::BackupCompleted {
                artifact,
                outcome,
                duration_seconds,
                bytes_read,
                ciphertext_bytes,
                sinks,
                ..
            } => {
                let mut copies = BTreeMap::new();
                for s in sinks {
                    insert_bounded(&mut copies, s.sink.clone(), s.written);
                    if let Some(e) = &s.error {
                        details.push(format!("sink {}: {e}", s.sink));
                    }
                }
                self.backup = Some(BackupFacts {
                    at: Some(r.time),
                    artifact: artifact.clone(),
                    outcome: outcome.clone(),
                    duration_seconds: *duration_seconds,
                    bytes_read: *bytes_read,
                    bytes_stored: *ciphertext_bytes,
                    copies,
                });
            }
            AuditEvent::BackupFailed {
                duration_seconds,
                error,
            } => {
                details.push(format!("backup failed: {error}"));
                let copies = self.backup.take().map(|b| b.copies).unwrap_or_default();
                self.backup = Some(BackupFacts {
                    at: Some(r.time),
                    outcome: "failed".into(),
                    duration_seconds: *duration_seconds,
                    copies: copies.into_keys().map(|k| (k, false)).collect(),
                    ..BackupFacts::default()
                });
            }
            AuditEvent::Verification {
                artifact,
                sink,
                passed,
                checks,
            } => {
                if !passed {
                    let failed: Vec<&str> = checks
                        .iter()
                        .filter(|c| !c.passed)
                        .map(|c| c.name.as_str())
                        .collect();
                    details.push(format!(
                        "verification of {artifact} on {sink} failed: {}",
                        failed.join(", ")
                    ));
                }
                insert_bounded(
                    &mut self.verification,
                    sink.clone(),
                    VerificationFacts {
                        at: r.time,
                        artifact: artifact.clone(),
                        passed: *passed,
                    },
                );
            }
            AuditEvent::RestoreDrill {
                artifact,
                passed,
                rto_seconds,
                rpo_seconds,
                ..
            } => {
                if !passed {
                    details.push(format!("restore drill of {artifact}: FAIL"));
                }
                self.drill = Some(DrillFacts {
                    at: r.time,
                    artifact: artifact.clone(),
                    passed: *passed,
                    rto_seconds: *rto_seconds,
                    rpo_seconds: *rpo_seconds,
                });
            }
            AuditEvent::ComplianceCheck { passed, rules } => {
                let mut facts = ComplianceFacts {
                    at: Some(r.time),
                    compliant: *passed,
                    ..ComplianceFacts::default()
                };
                for line in rules {
                    // `rule: PASS detail` or `rule: FAIL detail` (the CLI's status record).
                    let (name, ok) = if let Some((n, _)) = line.split_once(": PASS") {
                        (n, true)
                    } else if let Some((n, _)) = line.split_once(": FAIL") {
                        (n, false)
                    } else {
                        continue;
                    };
                    if !ok {
                        facts.failing.push(line.clone());
                        details.push(line.clone());
                    }
                    insert_bounded(&mut facts.rules, name.to_owned(), ok);
                }
                facts.failing.truncate(MAX_KEYS);
                self.compliance = Some(facts);
            }
            _ => {}
        }
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, `fsync`,
/// rename over `path` (on Windows a rename replaces an existing file too). `world_readable`:
/// mode 0644 on Unix (`node_exporter` runs as another user), else 0600; on Windows the file
/// inherits the directory's ACL.
pub(crate) fn write_atomically(
    path: &Path,
    bytes: &[u8],
    world_readable: bool,
) -> Result<(), SignalError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    fs::create_dir_all(dir).map_err(|e| SignalError::io("creating the directory of", path, e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".wst-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| SignalError::io("creating a temporary file beside", path, e))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| SignalError::io("writing a temporary file beside", path, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = if world_readable { 0o644 } else { 0o600 };
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(mode))
            .map_err(|e| SignalError::io("setting the mode of a temporary file beside", path, e))?;
    }
    #[cfg(not(unix))]
    let _ = world_readable;
    tmp.persist(path)
        .map_err(|e| SignalError::io("replacing", path, e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_follow_the_exit_codes_and_lock_runs_are_counted() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let mut s = SignalState::default();
        s.record_operation("backup", Outcome::from_exit_code(0), t0, 2.5);
        let later = t0 + jiff::SignedDuration::from_hours(4);
        s.record_operation("backup", Outcome::from_exit_code(4), later, 0.1);
        s.record_operation("backup", Outcome::from_exit_code(4), later, 0.1);
        let op = &s.operations["backup"];
        assert_eq!(op.last_success, Some(t0));
        assert_eq!(op.last_failure, None);
        assert_eq!(op.consecutive_locked, 2);
        assert_eq!(op.runs["locked"], 2);
        s.record_operation("backup", Outcome::from_exit_code(1), later, 3.0);
        let op = &s.operations["backup"];
        assert_eq!(op.last_failure, Some(later));
        assert_eq!(op.consecutive_locked, 0);
        assert_eq!(Outcome::from_exit_code(2), Outcome::Failed);
        assert_eq!(Outcome::from_exit_code(3), Outcome::Degraded);
    }

    #[test]
    fn the_state_file_round_trips_and_a_damaged_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = state_path(&dir.path().join("audit.jsonl"));
        assert_eq!(path, dir.path().join(STATE_FILE_NAME));
        let at: Timestamp = "2026-03-01T02:00:00Z".parse().unwrap();
        SignalState::update(&path, |s| {
            s.record_operation("drill", Outcome::Success, at, 9.0);
        })
        .unwrap();
        let back = SignalState::load(&path).unwrap();
        assert_eq!(back.operations["drill"].last_success, Some(at));
        fs::write(&path, b"{ not json").unwrap();
        let e = SignalState::load(&path).unwrap_err();
        assert!(e.to_string().contains("move it aside"), "{e}");
        // `update` starts afresh from a damaged file instead of stopping the operation.
        SignalState::update(&path, |s| {
            s.record_operation("prune", Outcome::Failed, at, 1.0);
        })
        .unwrap();
        let back = SignalState::load(&path).unwrap();
        assert!(back.operations.contains_key("prune"));
        assert!(!back.operations.contains_key("drill"));
    }
}
