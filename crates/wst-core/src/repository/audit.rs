//! The audit log: append-only JSON lines, each record chained to the previous one by SHA-256.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::evidence::{EVIDENCE_MAC, EvidenceKey, split_mac};
use crate::report::SinkOutcome;
use crate::restore::BreakGlass;
use crate::verify::Check;

/// The MAC domain of audit records (`docs/EVIDENCE.md`, "Audit log").
const AUDIT_DOMAIN: &str = "wst audit record v1";

/// The `prev` of the first record: 64 zeros.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Longest string field stored in a record, in bytes: a longer one (an error quoting a
/// hostile entry name, say) is cut at a character boundary and marked `… (N bytes)`, so no
/// input can make a record large enough to block later appends (design invariant 10).
pub const AUDIT_MAX_FIELD_BYTES: usize = 2048;

/// Most items stored of one list in a record (checks, warnings, sink outcomes); the rest are
/// dropped, and a list of strings ends with `… N more`.
pub const AUDIT_MAX_LIST_ITEMS: usize = 256;

/// One event of the audit trail. Carries names, numbers, outcomes and operator-facing error
/// messages only — never a secret (design invariant 7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditEvent {
    /// A backup run started.
    BackupStarted {
        /// The sources' names.
        sources: Vec<String>,
        /// The sinks' names.
        sinks: Vec<String>,
    },
    /// A backup run ended with an artifact on at least one sink.
    BackupCompleted {
        /// The artifact name.
        artifact: String,
        /// `success`, `success_with_warnings`, `degraded` or `failed`.
        outcome: String,
        /// Run duration, seconds.
        duration_seconds: f64,
        /// Content bytes read.
        bytes_read: u64,
        /// Ciphertext bytes per copy.
        ciphertext_bytes: u64,
        /// Ciphertext SHA-256, hex.
        ciphertext_sha256: String,
        /// Per-sink outcome.
        sinks: Vec<SinkOutcome>,
        /// Warnings raised.
        warnings: Vec<String>,
    },
    /// A backup run failed: no artifact exists (doctrine: no silent failure).
    BackupFailed {
        /// Seconds until the failure.
        duration_seconds: f64,
        /// The error, as shown to the operator.
        error: String,
    },
    /// An artifact was verified (doctrine R5).
    Verification {
        /// The artifact name.
        artifact: String,
        /// The sink it was read from.
        sink: String,
        /// Whether every check passed.
        passed: bool,
        /// Every check.
        checks: Vec<Check>,
    },
    /// Artifacts were copied between sinks.
    Replicate {
        /// Source sink.
        from: String,
        /// Destination sink.
        to: String,
        /// Artifacts copied.
        copied: Vec<String>,
        /// Failures, `artifact: error`.
        failed: Vec<String>,
    },
    /// One artifact was deleted by retention (or would be, in a dry run).
    PruneDeletion {
        /// The sink.
        sink: String,
        /// The artifact name.
        artifact: String,
        /// The reasons, e.g. `not_selected`, `max_age`.
        reasons: Vec<String>,
        /// Whether this was a dry run (nothing deleted).
        dry_run: bool,
    },
    /// A prune run on one sink ended.
    Prune {
        /// The sink.
        sink: String,
        /// Artifacts kept.
        kept: u64,
        /// Artifacts deleted.
        deleted: u64,
        /// Whether this was a dry run.
        dry_run: bool,
        /// Refusals and anomalies, when the prune refused to delete.
        refusals: Vec<String>,
    },
    /// A break-glass authorization was given for an operation that writes into production
    /// (a disaster restore into the source database or the original file paths; doctrine 026
    /// L6, issue 15). Recorded before the operation writes anything; its outcome follows as
    /// a [`AuditEvent::Restore`] record carrying the same authorization.
    BreakGlassAuthorized {
        /// What is about to happen, e.g. `restore database wst_dev (--clean)`.
        operation: String,
        /// The artifact it uses.
        artifact: String,
        /// The production targets written (database name, file paths).
        targets: Vec<String>,
        /// Who authorized it and why.
        break_glass: BreakGlass,
    },
    /// A restore ran.
    Restore {
        /// The artifact name.
        artifact: String,
        /// The sink it was read from.
        sink: String,
        /// The target directory or database.
        target: String,
        /// Whether it completed and every check passed.
        passed: bool,
        /// Seconds.
        duration_seconds: f64,
        /// The break-glass authorization, when one was used (doctrine 026 L6).
        break_glass: Option<BreakGlass>,
        /// The error, when it failed.
        error: Option<String>,
    },
    /// A restore drill ran (doctrine R7).
    RestoreDrill {
        /// The artifact name.
        artifact: String,
        /// PASS or FAIL.
        passed: bool,
        /// Measured RTO, seconds.
        rto_seconds: f64,
        /// Measured RPO, seconds (drill time minus backup time).
        rpo_seconds: f64,
        /// Who ran or authorized it.
        authorized_by: String,
        /// Where the report was written.
        report: String,
    },
    /// Keys were rotated or slots rewrapped.
    KeyRotation {
        /// Fingerprints before.
        old: Vec<String>,
        /// Fingerprints after.
        new: Vec<String>,
        /// Artifacts rewrapped.
        artifacts: Vec<String>,
    },
    /// A 3-2-1 or compliance check ran.
    ComplianceCheck {
        /// Whether every rule passed.
        passed: bool,
        /// One line per rule, `rule: PASS|FAIL detail`.
        rules: Vec<String>,
    },
    /// A report for people was written from the repository's evidence (issue 17): the
    /// business continuity plan (`wst report bcp`) or an auditor's evidence bundle (`wst
    /// report evidence`).
    ReportWritten {
        /// `bcp` or `evidence`.
        report: String,
        /// The start of the period covered (UTC), for an evidence bundle.
        since: Option<jiff::Timestamp>,
        /// The end of the period covered: the report's `now` (UTC).
        until: jiff::Timestamp,
        /// Where it was written: a directory, a file, or `stdout`.
        destination: String,
        /// The files written (names relative to the destination directory).
        files: Vec<String>,
    },
    /// An alert or a recovery notice was sent on one channel, or could not be sent (issue 17,
    /// seeds/003 "silent backup failures are unacceptable"). One record per channel and
    /// notice; the notice's body carries no secret (no key, password or credentialed URL).
    Alert {
        /// `alert` (a condition fired) or `recovery` (a condition that alerted cleared).
        kind: String,
        /// The condition, e.g. `backup` (the operation whose runs it watches).
        condition: String,
        /// Why, e.g. `backup_failed`, `backup_degraded`, `verification_failed`,
        /// `drill_failed`, `compliance_violation`, `lock_contention`.
        reason: String,
        /// `command` or `webhook` (the webhook's host only is in `error`, never its URL).
        channel: String,
        /// Whether the channel accepted it (command exit 0, HTTP 2xx).
        delivered: bool,
        /// Attempts made (bounded retries with exponential backoff).
        attempts: u32,
        /// The last attempt's error, when it was not delivered.
        error: Option<String>,
    },
    /// An erasure request was recorded in the erasure register (issue 18; seeds/003 GDPR
    /// mode). The subject id is not in the record (it stays in the encrypted register); the
    /// entry id names it there.
    ErasureRecorded {
        /// The entry id (32 hex).
        id: String,
        /// Its sequence number.
        seq: u64,
        /// `subject` or `tenant`.
        scope: String,
        /// Who requested it.
        requested_by: String,
        /// The request's reference.
        reason: String,
        /// SQL statements recorded.
        sql_statements: u64,
        /// Object prefixes recorded.
        object_prefixes: u64,
        /// Path globs recorded.
        paths: u64,
        /// Sinks the entry was written on.
        sinks: Vec<String>,
        /// Sinks it could not be written on, `sink: error`.
        failed: Vec<String>,
    },
    /// The erasure register was read for an operator (`wst erasure list`).
    ErasureListed {
        /// Authentic entries.
        entries: u64,
        /// Copies not used (not authentic, unreadable), one line each.
        anomalies: Vec<String>,
    },
    /// Register entries were copied to sinks that lacked them.
    ErasureReplicated {
        /// `sink: object` copied.
        copied: Vec<String>,
        /// `sink: object: error`.
        failed: Vec<String>,
    },
    /// The erasure register was re-applied to a restored target (issue 18: restore, drill).
    ErasureApplied {
        /// The artifact restored.
        artifact: String,
        /// The target: `files DIR`, `database NAME`, `bucket URL`.
        target: String,
        /// Entries applied.
        entries: u64,
        /// Rows deleted or changed in total.
        rows: u64,
        /// Objects removed.
        objects: u64,
        /// Files removed.
        files: u64,
        /// Entries that could not be applied, `id: error`, and register anomalies not covered.
        failed: Vec<String>,
        /// The break-glass authorization that let the restore go on despite `failed`.
        break_glass: Option<BreakGlass>,
    },
    /// Artifact content was read for someone, by a read no other event records (issue 18,
    /// "Access audit"; seeds/003 "Access is logged and auditable"): `ls` of an artifact's
    /// entries or manifest, `wal-fetch` of one archived WAL file. Restores, verifications and
    /// drills are recorded by their own events. The record's `actor` names who read it.
    ContentRead {
        /// The artifact name, or the WAL object's name.
        artifact: String,
        /// The sink it was read from.
        sink: String,
        /// Why: `ls`, `ls --manifest`, `wal-fetch`.
        purpose: String,
    },
}

/// The record body that is hashed: everything but `hash`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Body {
    seq: u64,
    time: jiff::Timestamp,
    actor: String,
    /// The `[[job]]` (issue 18); absent for a configuration without jobs, so older records
    /// hash exactly as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    job: Option<String>,
    prev: String,
    event: AuditEvent,
}

/// One audit record as stored: sequence number, UTC time, actor, the SHA-256 of the previous
/// record (`prev`), the event, and the SHA-256 of this record's body (`hash`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// 0-based position in the log.
    pub seq: u64,
    /// When it was written (UTC).
    pub time: jiff::Timestamp,
    /// Who or what wrote it (user, host, or a configured operator name).
    pub actor: String,
    /// The `[[job]]` (repository) it was written for (issue 18, "Services"), when the
    /// configuration has jobs ([`AuditLog::with_job`]); covered by `hash` and `mac`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// The previous record's `hash`, or [`GENESIS`] for the first.
    pub prev: String,
    /// The event.
    pub event: AuditEvent,
    /// SHA-256 (hex) of the record's JSON body without the `hash` field, exactly as written.
    pub hash: String,
    /// The keyed chain (issue 14): `"hmac-sha256 <key fingerprint> <64 hex>"`, the HMAC-SHA256
    /// under the evidence key of the repository key with that fingerprint, over the domain
    /// `wst audit record v1`, a zero byte and the same body `hash` covers. `None` for a record
    /// written without a key (by an older wst, or an [`AuditLog`] without
    /// [`AuditLog::with_keys`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

impl AuditRecord {
    /// This record as a chain head.
    pub fn head(&self) -> AuditHead {
        AuditHead {
            seq: self.seq,
            hash: self.hash.clone(),
        }
    }
}

/// A position in the audit chain: a record's `seq` and `hash`. Written into each artifact's
/// manifest and sidecar and into a sealed head object on every sink, so a log that was cut
/// short or rewritten is detected against them ([`AuditLog::check_anchor`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditHead {
    /// The record's sequence number (0-based).
    pub seq: u64,
    /// The record's `hash` (64 hex).
    pub hash: String,
}

impl std::fmt::Display for AuditHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "#{} ({})",
            self.seq,
            &self.hash[..self.hash.len().min(12)]
        )
    }
}

/// The result of [`AuditLog::verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainReport {
    /// Records read.
    pub records: u64,
    /// The first broken record (0-based line number), if any.
    pub first_broken: Option<u64>,
    /// What is wrong with it.
    pub problem: Option<String>,
    /// Records whose MAC verified under one of the log's keys (0 without keys).
    #[serde(default)]
    pub authenticated: u64,
    /// Records without a MAC at the start of the log (written by an older wst, before the log
    /// was keyed); with keys, a record without a MAC after a keyed one breaks the chain.
    #[serde(default)]
    pub unkeyed: u64,
}

impl ChainReport {
    /// Whether the whole chain is intact.
    pub fn intact(&self) -> bool {
        self.first_broken.is_none()
    }
}

/// An append-only, hash-chained audit log in a JSON-lines file.
///
/// Each append takes an exclusive lock on the file (so concurrent processes — a cron backup and a
/// manual drill — keep one chain), reads the last record's hash, writes one line and `fsync`s
/// before returning. The file is created with mode `0600` on Unix (on Windows it inherits the
/// directory's ACL). [`AuditLog::verify`] recomputes every hash and names the first broken
/// record, so editing, deleting, reordering or inserting a record is detected.
#[derive(Debug, Clone)]
pub struct AuditLog {
    path: PathBuf,
    actor: String,
    clock: Clock,
    keys: Vec<EvidenceKey>,
    job: Option<String>,
}

impl AuditLog {
    /// Uses (and creates on first append) the log at `path`; records name `actor` and are
    /// stamped by the system clock (see [`AuditLog::with_clock`]).
    pub fn new(path: impl Into<PathBuf>, actor: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            actor: actor.into(),
            clock: Clock::system(),
            keys: Vec::new(),
            job: None,
        }
    }

    /// Names the `[[job]]` in every record appended (issue 18, "Services": status and
    /// evidence per job). The name is part of the hashed, MAC'd body.
    #[must_use]
    pub fn with_job(mut self, job: impl Into<String>) -> Self {
        self.job = Some(job.into());
        self
    }

    /// The `[[job]]` its records name, if any.
    pub fn job(&self) -> Option<&str> {
        self.job.as_deref()
    }

    /// Keys the chain (issue 14): every record appended carries an HMAC under the first of
    /// `keys` (the repository's evidence keys, [`Cipher::evidence_keys`](crate::Cipher::evidence_keys)),
    /// and [`AuditLog::verify`] checks every record's MAC under them, so a record rewritten or
    /// appended by someone without the repository key breaks the chain even when its SHA-256
    /// links were recomputed. A [`Repository`](crate::Repository) keys its log itself.
    #[must_use]
    pub fn with_keys(mut self, keys: Vec<EvidenceKey>) -> Self {
        self.keys = keys;
        self
    }

    /// Whether records are keyed ([`AuditLog::with_keys`]).
    pub fn is_keyed(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Stamps records with `clock` instead of the system clock (a test or a simulation that
    /// evaluates compliance at a chosen `now` writes its records at chosen times).
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The clock that stamps records.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The actor its records name.
    pub fn actor(&self) -> &str {
        &self.actor
    }

    /// Appends `event` durably and returns the record written.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be opened, locked, read, written or synced;
    /// [`Error::Malformed`] when the last record cannot be parsed (the chain is damaged: run
    /// [`AuditLog::verify`]).
    pub fn append(&self, event: AuditEvent) -> Result<AuditRecord> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)
                .map_err(|e| Error::io(format!("creating `{}`", dir.display()), e))?;
        }
        let mut opts = OpenOptions::new();
        opts.read(true).append(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let ctx = |what: &str| format!("{what} the audit log `{}`", self.path.display());
        let mut file = opts
            .open(&self.path)
            .map_err(|e| Error::io(ctx("opening"), e))?;
        file.lock().map_err(|e| Error::io(ctx("locking"), e))?;
        let result = (|| {
            let last = last_record(&mut file).map_err(|e| Error::io(ctx("reading"), e))?;
            let (seq, prev) = match last {
                None => (0, GENESIS.to_owned()),
                Some(Err(e)) => {
                    return Err(Error::Malformed {
                        artifact: self.path.display().to_string(),
                        detail: format!(
                            "the last audit record does not parse ({e}); run `audit verify`"
                        ),
                    });
                }
                Some(Ok(tail)) => {
                    // A log keyed under another repository key: a wrong `key_file` must not
                    // append records that break the chain for the right key.
                    if let Some(fp) = tail.mac.as_deref().and_then(split_mac).map(|(fp, _)| fp)
                        && !self.keys.is_empty()
                        && !self.keys.iter().any(|k| k.id() == fp)
                    {
                        return Err(Error::Config(format!(
                            "the audit log `{}` is keyed with key {fp}, which is not a configured key (configured: {}): check `key_file`; nothing was recorded",
                            self.path.display(),
                            self.keys
                                .iter()
                                .map(|k| k.id().to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )));
                    }
                    (tail.seq + 1, tail.hash)
                }
            };
            let event = bounded(event)?;
            let body = Body {
                seq,
                time: self.clock.now(),
                actor: self.actor.clone(),
                job: self.job.clone(),
                prev,
                event,
            };
            let (line, hash, mac) = encode(&body, self.keys.first())?;
            file.write_all(&line)
                .map_err(|e| Error::io(ctx("writing"), e))?;
            file.sync_all().map_err(|e| Error::io(ctx("syncing"), e))?;
            Ok(AuditRecord {
                seq: body.seq,
                time: body.time,
                actor: body.actor,
                job: body.job,
                prev: body.prev,
                event: body.event,
                hash,
                mac,
            })
        })();
        let _ = file.unlock();
        result
    }

    /// Reads every record (for reports and compliance evidence).
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read; [`Error::Malformed`] for a line that does
    /// not parse.
    pub fn records(&self) -> Result<Vec<AuditRecord>> {
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(format!("opening `{}`", self.path.display()), e)),
        };
        let mut out = Vec::new();
        for (i, line) in BufReader::new(file).split(b'\n').enumerate() {
            let line =
                line.map_err(|e| Error::io(format!("reading `{}`", self.path.display()), e))?;
            out.push(serde_json::from_slice(&line).map_err(|e| Error::Malformed {
                artifact: self.path.display().to_string(),
                detail: format!("audit record {i} does not parse: {e}"),
            })?);
        }
        Ok(out)
    }

    /// The last record's position, `None` for an empty log.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read; [`Error::Malformed`] when the last record
    /// does not parse.
    pub fn head(&self) -> Result<Option<AuditHead>> {
        let mut file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(format!("opening `{}`", self.path.display()), e)),
        };
        match last_record(&mut file)
            .map_err(|e| Error::io(format!("reading `{}`", self.path.display()), e))?
        {
            None => Ok(None),
            Some(Ok(t)) => Ok(Some(AuditHead {
                seq: t.seq,
                hash: t.hash,
            })),
            Some(Err(e)) => Err(Error::Malformed {
                artifact: self.path.display().to_string(),
                detail: format!("the last audit record does not parse ({e}); run `audit verify`"),
            }),
        }
    }

    /// Checks `anchor` (a head recorded on a sink or in an artifact) against the log: the log
    /// must hold record `anchor.seq` with hash `anchor.hash`. `Ok(None)` when it does;
    /// otherwise what disagrees: the log ends before the anchor (truncated, or replaced by an
    /// older copy) or holds another record there (rewritten). `origin` names where the anchor
    /// was read, for the message.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read.
    pub fn check_anchor(&self, anchor: &AuditHead, origin: &str) -> Result<Option<String>> {
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Some(format!(
                    "{origin} records audit record {anchor}, but the log `{}` does not exist: it was deleted or replaced",
                    self.path.display()
                )));
            }
            Err(e) => return Err(Error::io(format!("opening `{}`", self.path.display()), e)),
        };
        let mut n = 0u64;
        for line in BufReader::new(file).split(b'\n') {
            let line =
                line.map_err(|e| Error::io(format!("reading `{}`", self.path.display()), e))?;
            if n == anchor.seq {
                let hash = serde_json::from_slice::<Tail>(&line).ok().map(|t| t.hash);
                return Ok(match hash {
                    Some(h) if h == anchor.hash => None,
                    _ => Some(format!(
                        "{origin} records audit record {anchor}, but the log holds another record #{}: the log was rewritten or replaced",
                        anchor.seq
                    )),
                });
            }
            n += 1;
        }
        Ok(Some(format!(
            "{origin} records audit record {anchor}, but the log ends after {n} records: it was truncated or replaced by an older copy"
        )))
    }

    /// Verifies the whole chain: every line parses, `seq` counts up from 0, every `hash` is the
    /// SHA-256 of its body as written, and every `prev` is the previous record's `hash`. With
    /// keys ([`AuditLog::with_keys`]) every record's MAC must also verify; records without a
    /// MAC are accepted only before the first keyed one (a log begun by an older wst), and
    /// counted in [`ChainReport::unkeyed`].
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read (a missing file is an empty, intact chain).
    pub fn verify(&self) -> Result<ChainReport> {
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(ChainReport {
                    records: 0,
                    first_broken: None,
                    problem: None,
                    authenticated: 0,
                    unkeyed: 0,
                });
            }
            Err(e) => return Err(Error::io(format!("opening `{}`", self.path.display()), e)),
        };
        let mut prev = GENESIS.to_owned();
        let mut n = 0u64;
        let mut authenticated = 0u64;
        let mut unkeyed = 0u64;
        for line in BufReader::new(file).split(b'\n') {
            let line =
                line.map_err(|e| Error::io(format!("reading `{}`", self.path.display()), e))?;
            let broken = |problem: String| ChainReport {
                records: n + 1,
                first_broken: Some(n),
                problem: Some(problem),
                authenticated,
                unkeyed,
            };
            let record: AuditRecord = match serde_json::from_slice(&line) {
                Ok(r) => r,
                Err(e) => return Ok(broken(format!("record {n} does not parse: {e}"))),
            };
            let Some((body, mac)) = split_line(&line) else {
                return Ok(broken(format!("record {n} does not end with its hash")));
            };
            let actual = hex::encode(Sha256::digest(&body));
            if actual != record.hash {
                return Ok(broken(format!(
                    "record {n} was altered: its content hashes to {actual}, it claims {}",
                    record.hash
                )));
            }
            if record.seq != n {
                return Ok(broken(format!(
                    "record {n} has sequence number {}: a record was removed or inserted",
                    record.seq
                )));
            }
            if record.prev != prev {
                return Ok(broken(format!(
                    "record {n} does not follow record {}: the previous record was altered, removed or reordered",
                    n.saturating_sub(1)
                )));
            }
            if !self.keys.is_empty() {
                match mac {
                    None if authenticated > 0 => {
                        return Ok(broken(format!(
                            "record {n} carries no MAC although earlier records do: it was written without the repository key (a forged or rewritten record)"
                        )));
                    }
                    None => unkeyed += 1,
                    Some(mac) => {
                        let ok = split_mac(mac).is_some_and(|(fp, tag)| {
                            self.keys
                                .iter()
                                .filter(|k| k.id() == fp)
                                .any(|k| k.verify(AUDIT_DOMAIN, &body, &tag))
                        });
                        if !ok {
                            return Ok(broken(format!(
                                "record {n}'s MAC does not verify under the repository key: it was rewritten by someone without the key, or sealed under a key that is not configured"
                            )));
                        }
                        authenticated += 1;
                    }
                }
            }
            prev = record.hash;
            n += 1;
        }
        Ok(ChainReport {
            records: n,
            first_broken: None,
            problem: None,
            authenticated,
            unkeyed,
        })
    }
}

/// Serialises `body` as one line `{...,"hash":"…"}\n`, or with `key`
/// `{...,"hash":"…","mac":"hmac-sha256 <fp> <hex>"}\n`; returns the line, the hash and the MAC.
fn encode(body: &Body, key: Option<&EvidenceKey>) -> Result<(Vec<u8>, String, Option<String>)> {
    let json = serde_json::to_vec(body)
        .map_err(|e| Error::Config(format!("audit record serialisation failed: {e}")))?;
    let hash = hex::encode(Sha256::digest(&json));
    let mac = key.map(|k| {
        format!(
            "{EVIDENCE_MAC} {} {}",
            k.id(),
            hex::encode(k.mac(AUDIT_DOMAIN, &json))
        )
    });
    let mut line = json;
    line.pop(); // the closing brace
    line.extend_from_slice(format!(",\"hash\":\"{hash}\"").as_bytes());
    if let Some(mac) = &mac {
        line.extend_from_slice(format!(",\"mac\":\"{mac}\"").as_bytes());
    }
    line.extend_from_slice(b"}\n");
    Ok((line, hash, mac))
}

/// The body a stored line's hash (and MAC) covers: the line without `,"hash":"<64 hex>"` and
/// an optional `,"mac":"…"` after it, closed again; and the MAC text, if any.
fn split_line(line: &[u8]) -> Option<(Vec<u8>, Option<&str>)> {
    const HASH: &[u8] = b",\"hash\":\"";
    const MAC: &[u8] = b",\"mac\":\"";
    let mut rest = line.strip_suffix(b"\"}")?;
    let mut mac = None;
    // `,"mac":"` cannot occur inside a JSON string (its quotes would be escaped), so its last
    // occurrence, with no quote after it, is the last member.
    if let Some(i) = rest.windows(MAC.len()).rposition(|w| w == MAC) {
        let text = &rest[i + MAC.len()..];
        if !text.contains(&b'"') {
            mac = Some(std::str::from_utf8(text).ok()?);
            rest = rest[..i].strip_suffix(b"\"")?;
        }
    }
    let cut = rest.len().checked_sub(HASH.len() + 64)?;
    if !rest[cut..].starts_with(HASH) || cut < 1 {
        return None;
    }
    let mut body = rest[..cut].to_vec();
    body.push(b'}');
    Some((body, mac))
}

/// What chaining needs of the last record; every other field is skipped while parsing, so a
/// record of any size (one written before fields were bounded) costs no memory to read.
#[derive(Deserialize)]
struct Tail {
    seq: u64,
    hash: String,
    #[serde(default)]
    mac: Option<String>,
}

/// The `seq` and `hash` of the last line of `file`, if any: the line's start is found by
/// reading backwards in 64 KiB blocks, then the line is parsed as a stream.
fn last_record(file: &mut File) -> std::io::Result<Option<serde_json::Result<Tail>>> {
    const BLOCK: u64 = 64 * 1024;
    let len = file.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok(None);
    }
    // The last byte is the newline that ends the last record (appends write whole lines).
    let mut end = len;
    let mut byte = [0u8; 1];
    file.seek(SeekFrom::Start(len - 1))?;
    file.read_exact(&mut byte)?;
    if byte[0] == b'\n' {
        end -= 1;
    }
    let mut start = 0;
    let mut pos = end;
    let mut buf = vec![0u8; BLOCK as usize];
    while pos > 0 {
        let from = pos.saturating_sub(BLOCK);
        let n = (pos - from) as usize;
        file.seek(SeekFrom::Start(from))?;
        file.read_exact(&mut buf[..n])?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b == b'\n') {
            start = from + i as u64 + 1;
            break;
        }
        pos = from;
    }
    file.seek(SeekFrom::Start(start))?;
    let line = BufReader::new(Read::by_ref(file).take(end - start));
    Ok(Some(serde_json::from_reader(line)))
}

/// `event` with every string cut to [`AUDIT_MAX_FIELD_BYTES`] (control characters other than
/// tab and newline escaped as `\u{..}`) and every list to [`AUDIT_MAX_LIST_ITEMS`].
fn bounded(event: AuditEvent) -> Result<AuditEvent> {
    let mut value = serde_json::to_value(&event)
        .map_err(|e| Error::Config(format!("audit record serialisation failed: {e}")))?;
    if !bound_value(&mut value) {
        return Ok(event);
    }
    serde_json::from_value(value)
        .map_err(|e| Error::Config(format!("audit record bounding failed: {e}")))
}

/// Bounds `v` in place; whether anything changed.
fn bound_value(v: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    match v {
        Value::String(s) => {
            let bounded = bound_str(s);
            let changed = bounded != *s;
            *s = bounded;
            changed
        }
        Value::Array(items) => {
            let mut changed = false;
            if items.len() > AUDIT_MAX_LIST_ITEMS {
                let more = items.len() - AUDIT_MAX_LIST_ITEMS;
                let strings = items.iter().all(Value::is_string);
                items.truncate(AUDIT_MAX_LIST_ITEMS);
                if strings {
                    items.push(Value::String(format!("… {more} more")));
                }
                changed = true;
            }
            for item in items {
                changed |= bound_value(item);
            }
            changed
        }
        Value::Object(map) => {
            let mut changed = false;
            for (_, item) in map.iter_mut() {
                changed |= bound_value(item);
            }
            changed
        }
        _ => false,
    }
}

fn bound_str(s: &str) -> String {
    use std::fmt::Write as _;
    if s.len() <= AUDIT_MAX_FIELD_BYTES
        && !s.chars().any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return s.to_owned();
    }
    let mut out = String::with_capacity(AUDIT_MAX_FIELD_BYTES + 32);
    for c in s.chars() {
        if out.len() >= AUDIT_MAX_FIELD_BYTES {
            let _ = write!(out, "… ({} bytes)", s.len());
            return out;
        }
        if c.is_control() && c != '\n' && c != '\t' {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(i: u64) -> AuditEvent {
        AuditEvent::BackupFailed {
            duration_seconds: i as f64 * 0.5,
            error: format!("source path `/srv/wst-{i}` does not exist (doctrine F2)"),
        }
    }

    /// Finding 5 of issue 14: an error quoting an 8 MiB entry name is stored bounded and
    /// escaped, and a record that large written by an older wst does not block later appends.
    #[test]
    fn huge_fields_are_bounded_and_huge_old_records_do_not_block() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(dir.path().join("a.jsonl"), "ops");
        let name = format!("wst/\x1b[2J{}", "n".repeat(8 << 20));
        let error = format!("unsafe entry `{name}`");
        let total = error.len();
        let r = log
            .append(AuditEvent::Restore {
                artifact: "wst-backup-20261121-010000".into(),
                sink: "offsite".into(),
                target: "/tmp/t".into(),
                passed: false,
                duration_seconds: 0.1,
                break_glass: None,
                error: Some(error),
            })
            .unwrap();
        let AuditEvent::Restore { error: Some(e), .. } = &r.event else {
            panic!("{r:?}")
        };
        assert!(e.len() < AUDIT_MAX_FIELD_BYTES + 64, "{}", e.len());
        assert!(e.contains("\\u{1b}") && !e.contains('\x1b'), "{}", &e[..40]);
        assert!(
            e.ends_with(&format!("({total} bytes)")),
            "{}",
            &e[e.len() - 40..]
        );
        let size = std::fs::metadata(log.path()).unwrap().len();
        assert!(size < 8 * 1024, "{size}");

        // A legacy 9 MiB record, correctly chained, as an older wst wrote it.
        let body = Body {
            seq: 1,
            time: jiff::Timestamp::UNIX_EPOCH,
            actor: "ops".into(),
            job: None,
            prev: r.hash.clone(),
            event: AuditEvent::BackupFailed {
                duration_seconds: 1.0,
                error: "x".repeat(9 << 20),
            },
        };
        let (line, _, _) = encode(&body, None).unwrap();
        let mut f = OpenOptions::new().append(true).open(log.path()).unwrap();
        f.write_all(&line).unwrap();
        drop(f);
        let next = log.append(event(2)).unwrap();
        assert_eq!(next.seq, 2);
        assert!(log.verify().unwrap().intact());

        // Lists are bounded too.
        let many = log
            .append(AuditEvent::Replicate {
                from: "a".into(),
                to: "b".into(),
                copied: (0..1000).map(|i| i.to_string()).collect(),
                failed: Vec::new(),
            })
            .unwrap();
        let AuditEvent::Replicate { copied, .. } = &many.event else {
            panic!()
        };
        assert_eq!(copied.len(), AUDIT_MAX_LIST_ITEMS + 1);
        assert_eq!(copied.last().unwrap(), "… 744 more");
        assert!(log.verify().unwrap().intact());
    }

    #[test]
    fn records_name_their_job_inside_the_hashed_body() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        // Without a job the line has no `job` member (older logs hash as before).
        AuditLog::new(&path, "ops").append(event(0)).unwrap();
        assert!(!std::fs::read_to_string(&path).unwrap().contains("\"job\""));
        let log = AuditLog::new(&path, "ops").with_job("billing");
        assert_eq!(log.job(), Some("billing"));
        let r = log.append(event(1)).unwrap();
        assert_eq!(r.job.as_deref(), Some("billing"));
        let records = log.records().unwrap();
        assert_eq!(records[0].job, None);
        assert_eq!(records[1].job.as_deref(), Some("billing"));
        assert!(log.verify().unwrap().intact());
        // The job is covered by the hash: renaming it breaks the chain.
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(
            &path,
            text.replace("\"job\":\"billing\"", "\"job\":\"crm\""),
        )
        .unwrap();
        assert_eq!(log.verify().unwrap().first_broken, Some(1));
    }

    #[test]
    fn appends_chain_and_verify() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(dir.path().join("audit/wst-audit.jsonl"), "ops@host");
        assert!(log.verify().unwrap().intact());
        let a = log.append(event(0)).unwrap();
        let b = log.append(event(1)).unwrap();
        let c = log.append(event(2)).unwrap();
        assert_eq!((a.seq, b.seq, c.seq), (0, 1, 2));
        assert_eq!(a.prev, GENESIS);
        assert_eq!(b.prev, a.hash);
        assert_eq!(c.prev, b.hash);
        let report = log.verify().unwrap();
        assert_eq!(
            report,
            ChainReport {
                records: 3,
                first_broken: None,
                problem: None,
                authenticated: 0,
                unkeyed: 0,
            }
        );
        assert_eq!(log.records().unwrap(), vec![a, b, c]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(log.path()).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }

    fn tampered(f: impl FnOnce(&mut Vec<String>)) -> ChainReport {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(dir.path().join("a.jsonl"), "ops");
        for i in 0..5 {
            log.append(event(i)).unwrap();
        }
        let text = fs::read_to_string(log.path()).unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        f(&mut lines);
        fs::write(log.path(), lines.join("\n") + "\n").unwrap();
        log.verify().unwrap()
    }

    #[test]
    fn an_edited_record_is_named() {
        let r = tampered(|l| l[2] = l[2].replace("/srv/wst-2", "/srv/wst-X"));
        assert_eq!(r.first_broken, Some(2));
        assert!(r.problem.unwrap().contains("altered"));
    }

    #[test]
    fn an_edited_record_with_a_recomputed_hash_breaks_the_next_link() {
        let r = tampered(|l| {
            let mut rec: AuditRecord = serde_json::from_str(&l[1]).unwrap();
            rec.event = event(99);
            let body = Body {
                seq: rec.seq,
                time: rec.time,
                actor: rec.actor,
                job: None,
                prev: rec.prev,
                event: rec.event,
            };
            let (line, _, _) = encode(&body, None).unwrap();
            l[1] = String::from_utf8(line).unwrap().trim_end().to_owned();
        });
        assert_eq!(r.first_broken, Some(2));
        assert!(r.problem.unwrap().contains("does not follow record 1"));
    }

    #[test]
    fn removed_and_reordered_records_are_named() {
        let r = tampered(|l| {
            l.remove(3);
        });
        assert_eq!(r.first_broken, Some(3));
        let r = tampered(|l| l.swap(0, 1));
        assert_eq!(r.first_broken, Some(0));
    }

    #[test]
    fn appending_after_a_reopen_continues_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        let first = AuditLog::new(&path, "cron").append(event(0)).unwrap();
        let second = AuditLog::new(&path, "drill").append(event(1)).unwrap();
        assert_eq!(second.prev, first.hash);
        assert_eq!(second.seq, 1);
        assert!(AuditLog::new(&path, "x").verify().unwrap().intact());
    }

    fn keyed(dir: &std::path::Path, b: u8) -> AuditLog {
        let key = EvidenceKey::new(crate::cipher::KeyFingerprint([b; 16]), [b; 32]);
        AuditLog::new(dir.join("a.jsonl"), "ops").with_keys(vec![key])
    }

    /// Issue 14: a record rewritten with its SHA-256 links recomputed (anyone can) breaks the
    /// keyed chain at that record; records appended without the key after keyed ones break it
    /// too; an older unkeyed prefix is accepted and counted.
    #[test]
    fn the_keyed_chain_catches_rewrites_that_recompute_the_hashes() {
        let dir = tempfile::tempdir().unwrap();
        // An older wst wrote two records without a key.
        let plain = AuditLog::new(dir.path().join("a.jsonl"), "ops");
        plain.append(event(0)).unwrap();
        plain.append(event(1)).unwrap();
        let log = keyed(dir.path(), 7);
        for i in 2..5 {
            let r = log.append(event(i)).unwrap();
            assert!(r.mac.as_deref().unwrap().starts_with("hmac-sha256 "));
        }
        let report = log.verify().unwrap();
        assert!(report.intact(), "{report:?}");
        assert_eq!((report.authenticated, report.unkeyed), (3, 2));
        // The key-less check still sees an intact hash chain.
        assert!(plain.verify().unwrap().intact());

        // Rewrite record 3 and recompute every hash after it, without the key.
        let text = fs::read_to_string(log.path()).unwrap();
        let mut records: Vec<AuditRecord> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let mut prev = records[2].hash.clone();
        let mut lines: Vec<String> = text.lines().take(3).map(str::to_owned).collect();
        for r in &mut records[3..] {
            if r.seq == 3 {
                r.event = event(99);
            }
            let body = Body {
                seq: r.seq,
                time: r.time,
                actor: r.actor.clone(),
                job: None,
                prev: prev.clone(),
                event: r.event.clone(),
            };
            let (line, hash, _) = encode(&body, None).unwrap();
            prev = hash;
            lines.push(String::from_utf8(line).unwrap().trim_end().to_owned());
        }
        fs::write(log.path(), lines.join("\n") + "\n").unwrap();
        assert!(plain.verify().unwrap().intact(), "SHA-256 alone is fooled");
        let r = log.verify().unwrap();
        assert_eq!(r.first_broken, Some(3), "{r:?}");
        assert!(
            r.problem
                .unwrap()
                .contains("no MAC although earlier records do")
        );

        // A run configured with another key is refused: it would break the chain for the
        // right key.
        let other = keyed(dir.path(), 9);
        let first: Vec<&str> = text.lines().take(3).collect();
        fs::write(log.path(), first.join("\n") + "\n").unwrap();
        let err = other.append(event(3)).unwrap_err();
        assert!(err.to_string().contains("not a configured key"), "{err}");
        // A record forged under another key is caught.
        let last: AuditRecord = serde_json::from_str(first[2]).unwrap();
        let key9 = EvidenceKey::new(crate::cipher::KeyFingerprint([9; 16]), [9; 32]);
        let body = Body {
            seq: 3,
            time: last.time,
            actor: "mallory".into(),
            job: None,
            prev: last.hash,
            event: event(3),
        };
        let (line, _, _) = encode(&body, Some(&key9)).unwrap();
        let mut f = OpenOptions::new().append(true).open(log.path()).unwrap();
        f.write_all(&line).unwrap();
        drop(f);
        let r = log.verify().unwrap();
        assert_eq!(r.first_broken, Some(3));
        assert!(r.problem.unwrap().contains("MAC does not verify"));
    }

    /// Issue 14: an anchor (a head written on a sink or into a manifest) names a log cut
    /// short, or one whose record at that position differs.
    #[test]
    fn anchors_detect_truncation_and_replacement() {
        let dir = tempfile::tempdir().unwrap();
        let log = keyed(dir.path(), 7);
        let mut heads = Vec::new();
        for i in 0..6 {
            heads.push(log.append(event(i)).unwrap().head());
        }
        assert_eq!(log.head().unwrap(), Some(heads[5].clone()));
        for h in &heads {
            assert_eq!(log.check_anchor(h, "sink `d`").unwrap(), None);
        }
        // Cut the last two records: the chain left is intact, the anchor is not.
        let text = fs::read_to_string(log.path()).unwrap();
        fs::write(
            log.path(),
            text.lines().take(4).collect::<Vec<_>>().join("\n") + "\n",
        )
        .unwrap();
        assert!(log.verify().unwrap().intact());
        let p = log.check_anchor(&heads[5], "sink `d`").unwrap().unwrap();
        assert!(
            p.contains("ends after 4 records") && p.contains("truncated"),
            "{p}"
        );
        // Replaced by another log of the same length: the record differs.
        fs::remove_file(log.path()).unwrap();
        for i in 10..16 {
            log.append(event(i)).unwrap();
        }
        let p = log.check_anchor(&heads[5], "sink `d`").unwrap().unwrap();
        assert!(p.contains("another record #5"), "{p}");
        fs::remove_file(log.path()).unwrap();
        let p = log.check_anchor(&heads[0], "sink `d`").unwrap().unwrap();
        assert!(p.contains("does not exist"), "{p}");
    }
}
