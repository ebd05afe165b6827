//! The auditor's evidence bundle (issue 17; seeds/002 `ISO_27001_MAPPING`): one directory
//! with the audit chain's verification, the period's records, the drill reports, the 3-2-1
//! and compliance status, the retention policy, the BCP and an index mapping each file to
//! ISO/IEC 27001:2022 A.8.13, A.5.29 and A.5.30. Layout: `docs/REPORTS.md`.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::Serialize;
use wst_core::{AuditEvent, AuditRecord, Error, Repository, Result};

use super::bcp::{drill_history, render_bcp, retention_line};
use super::{cell, hours};
use crate::config::Config;

/// Largest drill report file copied into a bundle (a report is a few KiB; anything larger is
/// not a wst drill report).
const MAX_DRILL_REPORT_BYTES: u64 = 16 * 1024 * 1024;

/// What [`write_evidence`] bundles.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EvidenceOptions {
    /// The start of the period (UTC, inclusive); see [`parse_since`](super::parse_since).
    pub since: Timestamp,
    /// The end of the period and the instant the status is evaluated at (UTC, inclusive).
    pub now: Timestamp,
    /// The bundle's directory: created when missing, refused when not empty.
    pub out: PathBuf,
    /// Where the drills wrote their reports (`restore-test-*.json` and `.md`). Default: the
    /// configuration's `[drill] scratch_dir`.
    pub drill_reports: Option<PathBuf>,
}

impl EvidenceOptions {
    /// A bundle of the period `since..=now` written into `out`, the drill reports looked up
    /// in `[drill] scratch_dir`.
    pub fn new(since: Timestamp, now: Timestamp, out: impl Into<PathBuf>) -> Self {
        Self {
            since,
            now,
            out: out.into(),
            drill_reports: None,
        }
    }
}

/// The bundle written by [`write_evidence`]: where, which files, and its headline figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct EvidenceBundle {
    /// The bundle's directory.
    pub dir: PathBuf,
    /// The files written, relative to `dir`, in index order.
    pub files: Vec<String>,
    /// The period's start (UTC).
    pub since: Timestamp,
    /// The period's end (UTC).
    pub until: Timestamp,
    /// Audit records in the period.
    pub records: u64,
    /// Backup runs completed in the period (`backup_completed`).
    pub backups: u64,
    /// Backup runs that failed in the period (`backup_failed`).
    pub backups_failed: u64,
    /// Verifications in the period, and how many failed.
    pub verifications: (u64, u64),
    /// Artifacts deleted by retention in the period (dry runs not counted).
    pub deletions: u64,
    /// Restore drills in the period, and how many passed.
    pub drills: (u64, u64),
    /// Restores in the period (break-glass included).
    pub restores: u64,
    /// Drill reports copied (those dated in the period).
    pub drill_reports: u64,
    /// Whether the audit chain verified and matched every anchor on the sinks.
    pub audit_trustworthy: bool,
    /// Whether every status rule held at `until`.
    pub compliant: bool,
}

fn io(context: &str, e: std::io::Error) -> Error {
    Error::io(context.to_owned(), e)
}

fn json_error(e: &serde_json::Error) -> Error {
    Error::io(
        "serialising the evidence",
        std::io::Error::other(e.to_string()),
    )
}

/// A staging directory beside the bundle's directory, removed unless promoted: the bundle
/// appears complete under its name, or not at all (a failed write leaves nothing that looks
/// like evidence).
struct Staging {
    dir: PathBuf,
    promoted: bool,
}

impl Staging {
    /// Creates `.{name}.wst-staging-{pid}-{nanoseconds of now}` beside `out`.
    fn beside(out: &Path, now: Timestamp) -> Result<Self> {
        let abs = std::path::absolute(out)
            .map_err(|e| io(&format!("resolving `{}`", out.display()), e))?;
        let (Some(parent), Some(name)) = (abs.parent(), abs.file_name()) else {
            return Err(Error::Config(format!(
                "`{}` cannot hold an evidence bundle: give a new directory",
                out.display()
            )));
        };
        fs::create_dir_all(parent)
            .map_err(|e| io(&format!("creating `{}`", parent.display()), e))?;
        let dir = parent.join(format!(
            ".{}.wst-staging-{}-{}",
            name.to_string_lossy(),
            std::process::id(),
            now.as_nanosecond()
        ));
        fs::create_dir(&dir).map_err(|e| io(&format!("creating `{}`", dir.display()), e))?;
        Ok(Self {
            dir,
            promoted: false,
        })
    }

    /// Renames the staging directory to `out` (replacing `out` when it is an empty directory).
    fn promote(mut self, out: &Path) -> Result<()> {
        if out.is_dir() {
            fs::remove_dir(out).map_err(|e| io(&format!("replacing `{}`", out.display()), e))?;
        }
        fs::rename(&self.dir, out)
            .map_err(|e| io(&format!("moving the bundle to `{}`", out.display()), e))?;
        self.promoted = true;
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.promoted {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Refuses `out` when it exists and is not an empty directory (nothing is created).
fn prepare_dir(out: &Path) -> Result<()> {
    match fs::read_dir(out) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(Error::Config(format!(
                    "`{}` is not empty: an evidence bundle is written into a new or empty \
                     directory only (nothing was written)",
                    out.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if out.is_file() => Err(Error::Config(format!(
            "`{}` is a file, not a directory ({e}): give a new directory",
            out.display()
        ))),
        Err(e) => Err(io(&format!("reading `{}`", out.display()), e)),
    }
}

struct Writer<'a> {
    dir: &'a Path,
    files: Vec<String>,
}

impl Writer<'_> {
    fn write(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        let path = self.dir.join(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| io(&format!("creating `{}`", parent.display()), e))?;
        }
        fs::write(&path, bytes).map_err(|e| io(&format!("writing `{}`", path.display()), e))?;
        self.files.push(name.to_owned());
        Ok(())
    }
}

/// The audit log's lines (exactly as stored) whose record is dated in `since..=now`, and the
/// parsed records. Lines that do not parse are counted (the chain check names them).
fn period_lines(
    log: &Path,
    since: Timestamp,
    now: Timestamp,
) -> Result<(Vec<u8>, Vec<AuditRecord>, u64)> {
    let bytes = match fs::read(log) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io(&format!("reading `{}`", log.display()), e)),
    };
    let mut out = Vec::new();
    let mut records = Vec::new();
    let mut unparsed = 0;
    for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        match serde_json::from_slice::<AuditRecord>(line) {
            Ok(r) if r.time >= since && r.time <= now => {
                out.extend_from_slice(line);
                out.push(b'\n');
                records.push(r);
            }
            Ok(_) => {}
            Err(_) => unparsed += 1,
        }
    }
    Ok((out, records, unparsed))
}

/// A drill report found beside the drills: its files and the audit record it matches.
struct FoundReport {
    json: PathBuf,
    md: Option<PathBuf>,
    date: Timestamp,
    artifact: String,
    passed: bool,
    rto_seconds: f64,
    matched: Option<u64>,
}

/// The drill reports (`restore-test-*.json` with their `.md`) in `dirs` dated in the period,
/// each matched with the `restore_drill` record of the same artifact and restore target.
fn find_drill_reports(
    dirs: &[PathBuf],
    records: &[AuditRecord],
    since: Timestamp,
    now: Timestamp,
) -> Vec<FoundReport> {
    let mut seen = std::collections::BTreeSet::new();
    let mut found = Vec::new();
    for dir in dirs {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.extension().is_some_and(|x| x == "json")
                    && p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("restore-test-"))
            })
            .collect();
        paths.sort();
        for json in paths {
            let key = fs::canonicalize(&json).unwrap_or_else(|_| json.clone());
            if !seen.insert(key) {
                continue;
            }
            if fs::metadata(&json)
                .map_or(true, |m| !m.is_file() || m.len() > MAX_DRILL_REPORT_BYTES)
            {
                continue;
            }
            let Ok(v) = fs::read(&json)
                .map_err(|_| ())
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).map_err(|_| ()))
            else {
                continue;
            };
            let Some(date) = v["date"].as_str().and_then(|d| d.parse::<Timestamp>().ok()) else {
                continue;
            };
            if date < since || date > now {
                continue;
            }
            let artifact = v["artifact"].as_str().unwrap_or_default().to_owned();
            let target = v["restore_target"].as_str().unwrap_or_default();
            let passed = v["passed"].as_bool().unwrap_or(false);
            let matched = records.iter().find_map(|r| match &r.event {
                AuditEvent::RestoreDrill {
                    artifact: a,
                    passed: p,
                    report,
                    ..
                } if *a == artifact && *p == passed && report == target => Some(r.seq),
                _ => None,
            });
            let md = json.with_extension("md");
            found.push(FoundReport {
                md: md.is_file().then_some(md),
                json,
                date,
                artifact,
                passed,
                rto_seconds: v["rto_seconds"].as_f64().unwrap_or(f64::NAN),
                matched,
            });
        }
    }
    found.sort_by_key(|f| f.date);
    found
}

/// The readable summary of the period's records, by kind.
fn records_markdown(records: &[AuditRecord], since: Timestamp, now: Timestamp) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# Audit records {since} — {now}\n");
    let _ = writeln!(
        o,
        "{} records. The exact lines (hash and MAC included) are in `records.jsonl`; the \
         complete log is `audit-log.jsonl`, its verification `audit-check.json`.\n",
        records.len()
    );
    let ok = |p: bool| if p { "PASS" } else { "FAIL" };
    let _ = writeln!(
        o,
        "## Backups\n\n| audit | time | artifact | outcome | seconds | bytes read | ciphertext bytes | sinks |\n|---|---|---|---|---|---|---|---|"
    );
    for r in records {
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
                let sinks: Vec<String> = sinks
                    .iter()
                    .map(|s| {
                        format!(
                            "{}: {}",
                            s.sink,
                            if s.written { "written" } else { "FAILED" }
                        )
                    })
                    .collect();
                let _ = writeln!(
                    o,
                    "| #{} | {} | {} | {} | {duration_seconds:.1} | {bytes_read} | {ciphertext_bytes} | {} |",
                    r.seq,
                    r.time,
                    cell(artifact),
                    cell(outcome),
                    cell(&sinks.join(", "))
                );
            }
            AuditEvent::BackupFailed {
                duration_seconds,
                error,
            } => {
                let _ = writeln!(
                    o,
                    "| #{} | {} | — | FAILED: {} | {duration_seconds:.1} | | | |",
                    r.seq,
                    r.time,
                    cell(error)
                );
            }
            _ => {}
        }
    }
    let _ = writeln!(
        o,
        "\n## Verifications\n\n| audit | time | artifact | sink | result | failed checks |\n|---|---|---|---|---|---|"
    );
    for r in records {
        if let AuditEvent::Verification {
            artifact,
            sink,
            passed,
            checks,
        } = &r.event
        {
            let failed: Vec<String> = checks
                .iter()
                .filter(|c| !c.passed)
                .map(|c| format!("{}: {}", c.name, c.detail))
                .collect();
            let _ = writeln!(
                o,
                "| #{} | {} | {} | {} | {} | {} |",
                r.seq,
                r.time,
                cell(artifact),
                cell(sink),
                ok(*passed),
                cell(&failed.join("; "))
            );
        }
    }
    let _ = writeln!(
        o,
        "\n## Deletions (retention)\n\n| audit | time | sink | artifact | reasons | dry run |\n|---|---|---|---|---|---|"
    );
    for r in records {
        if let AuditEvent::PruneDeletion {
            sink,
            artifact,
            reasons,
            dry_run,
        } = &r.event
        {
            let _ = writeln!(
                o,
                "| #{} | {} | {} | {} | {} | {} |",
                r.seq,
                r.time,
                cell(sink),
                cell(artifact),
                cell(&reasons.join(", ")),
                if *dry_run { "yes" } else { "no" }
            );
        }
    }
    let _ = writeln!(
        o,
        "\n## Prune runs\n\n| audit | time | sink | kept | deleted | dry run | refusals |\n|---|---|---|---|---|---|---|"
    );
    for r in records {
        if let AuditEvent::Prune {
            sink,
            kept,
            deleted,
            dry_run,
            refusals,
        } = &r.event
        {
            let _ = writeln!(
                o,
                "| #{} | {} | {} | {kept} | {deleted} | {} | {} |",
                r.seq,
                r.time,
                cell(sink),
                if *dry_run { "yes" } else { "no" },
                cell(&refusals.join("; "))
            );
        }
    }
    let _ = writeln!(
        o,
        "\n## Restore drills\n\n| audit | time | artifact | result | RTO | RPO | by | restore target |\n|---|---|---|---|---|---|---|---|"
    );
    for d in drill_history(records) {
        let _ = writeln!(
            o,
            "| #{} | {} | {} | {} | {} | {} | {} | {} |",
            d.seq,
            d.time,
            cell(&d.artifact),
            ok(d.passed),
            hours(d.rto_seconds),
            hours(d.rpo_seconds),
            cell(&d.by),
            cell(&d.report)
        );
    }
    let _ = writeln!(
        o,
        "\n## Restores\n\n| audit | time | artifact | sink | target | result | seconds | break-glass |\n|---|---|---|---|---|---|---|---|"
    );
    for r in records {
        match &r.event {
            AuditEvent::Restore {
                artifact,
                sink,
                target,
                passed,
                duration_seconds,
                break_glass,
                error,
            } => {
                let bg = break_glass.as_ref().map_or_else(String::new, |b| {
                    format!("{} ({})", b.authorized_by, b.reason)
                });
                let result = match error {
                    Some(e) => format!("FAIL: {e}"),
                    None => ok(*passed).to_owned(),
                };
                let _ = writeln!(
                    o,
                    "| #{} | {} | {} | {} | {} | {} | {duration_seconds:.1} | {} |",
                    r.seq,
                    r.time,
                    cell(artifact),
                    cell(sink),
                    cell(target),
                    cell(&result),
                    cell(&bg)
                );
            }
            AuditEvent::BreakGlassAuthorized {
                operation,
                artifact,
                break_glass,
                ..
            } => {
                let _ = writeln!(
                    o,
                    "| #{} | {} | {} | — | break-glass authorized: {} | — | | {} ({}) |",
                    r.seq,
                    r.time,
                    cell(artifact),
                    cell(operation),
                    cell(&break_glass.authorized_by),
                    cell(&break_glass.reason)
                );
            }
            _ => {}
        }
    }
    let _ = writeln!(
        o,
        "\n## Replication\n\n| audit | time | from | to | copied | failed |\n|---|---|---|---|---|---|"
    );
    for r in records {
        if let AuditEvent::Replicate {
            from,
            to,
            copied,
            failed,
        } = &r.event
        {
            let _ = writeln!(
                o,
                "| #{} | {} | {} | {} | {} | {} |",
                r.seq,
                r.time,
                cell(from),
                cell(to),
                cell(&copied.join(", ")),
                cell(&failed.join("; "))
            );
        }
    }
    let _ = writeln!(
        o,
        "\n## 3-2-1 and compliance checks\n\n| audit | time | result | failed rules |\n|---|---|---|---|"
    );
    for r in records {
        if let AuditEvent::ComplianceCheck { passed, rules } = &r.event {
            let failed: Vec<&String> = rules.iter().filter(|l| l.contains(": FAIL")).collect();
            let _ = writeln!(
                o,
                "| #{} | {} | {} | {} |",
                r.seq,
                r.time,
                ok(*passed),
                cell(
                    &failed
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            );
        }
    }
    o
}

/// Writes an auditor's evidence bundle for the period `options.since..=options.now` into the
/// new or empty directory `options.out` (issue 17; seeds/002 `ISO_27001_MAPPING`), and
/// records it in the audit log (`report_written`). The files (`docs/REPORTS.md` specifies
/// each):
///
/// - `INDEX.md`: the period, the headline figures and every file mapped to ISO/IEC
///   27001:2022 A.8.13 (information backup), A.5.29 (information security during
///   disruption) and A.5.30 (ICT readiness for business continuity);
/// - `audit-check.json`: [`Repository::check_audit`] (the keyed chain and its anchors);
/// - `audit-log.jsonl`: the complete audit log as stored, for independent verification
///   (`docs/EVIDENCE.md` §5);
/// - `records.jsonl` and `records.md`: every record dated in the period (exact lines), and a
///   readable summary (backups, verifications, deletions, prune runs, drills, restores and
///   break-glass, replication, compliance checks);
/// - `status.json` and `status.md`: [`Repository::status`] at `now` with the configuration's
///   [`Config::compliance_options`] (3-2-1, R1–R7, placement, schema-change drill, audit);
/// - `retention.md`: the retention policy and the period's deletions;
/// - `bcp.md`: [`render_bcp`] at `now`;
/// - `drill-reports/`: the drill reports (`restore-test-*.json` and `.md`) dated in the
///   period, from `options.drill_reports` (default `[drill] scratch_dir`) and beside each
///   drill record's restore target, each matched with its audit record in the index.
///
/// Reads the sinks (catalogs, audit anchors) and the audit log; writes only into `out` and
/// the audit log. The files are written into a staging directory beside `out`
/// (`.{name}.wst-staging-…`), which is renamed to `out` once every file is written: a failed
/// write leaves no partial bundle, and the staging directory is removed.
///
/// # Errors
/// [`Error::Config`] when `out` exists and is not an empty directory, or the retention
/// policy's `min_age` is not a duration (nothing written); [`Error::Io`] when a file cannot
/// be written or the audit log read.
pub async fn write_evidence(
    repo: &Repository,
    config: &Config,
    options: &EvidenceOptions,
) -> Result<EvidenceBundle> {
    let (since, now) = (options.since, options.now);
    let compliance = config
        .compliance_options()
        .map_err(|e| Error::Config(e.to_string()))?;
    prepare_dir(&options.out)?;
    let staging = Staging::beside(&options.out, now)?;
    let mut w = Writer {
        dir: &staging.dir,
        files: Vec::new(),
    };
    let audit_path = repo.audit().path().to_owned();

    // The chain and its anchors; the complete log; the period.
    let check = repo.check_audit().await?;
    let all = repo.audit().records().unwrap_or_default();
    let (lines, records, unparsed) = period_lines(&audit_path, since, now)?;
    let status = repo.status(&compliance, now).await?;

    // Drill reports: the configured directory and the directories of the drills' targets.
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(d) = options
        .drill_reports
        .clone()
        .or_else(|| config.drill.as_ref().map(|d| d.scratch_dir.clone()))
    {
        dirs.push(d);
    }
    for d in drill_history(&records) {
        if let Some(parent) = Path::new(&d.report).parent()
            && !dirs.iter().any(|x| x == parent)
        {
            dirs.push(parent.to_owned());
        }
    }
    let reports = find_drill_reports(&dirs, &all, since, now);

    // Counts.
    let count =
        |f: &dyn Fn(&AuditEvent) -> bool| records.iter().filter(|r| f(&r.event)).count() as u64;
    let backups = count(&|e| matches!(e, AuditEvent::BackupCompleted { .. }));
    let backups_failed = count(&|e| matches!(e, AuditEvent::BackupFailed { .. }));
    let verifications = (
        count(&|e| matches!(e, AuditEvent::Verification { .. })),
        count(&|e| matches!(e, AuditEvent::Verification { passed: false, .. })),
    );
    let deletions = count(&|e| matches!(e, AuditEvent::PruneDeletion { dry_run: false, .. }));
    let drills = (
        count(&|e| matches!(e, AuditEvent::RestoreDrill { .. })),
        count(&|e| matches!(e, AuditEvent::RestoreDrill { passed: true, .. })),
    );
    let restores = count(&|e| matches!(e, AuditEvent::Restore { .. }));

    // The files, in index order.
    w.files.push("INDEX.md".into()); // written last, listed first
    w.write(
        "audit-check.json",
        &serde_json::to_vec_pretty(&check).map_err(|e| json_error(&e))?,
    )?;
    let log = match fs::read(&audit_path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io(&format!("reading `{}`", audit_path.display()), e)),
    };
    w.write("audit-log.jsonl", &log)?;
    w.write("records.jsonl", &lines)?;
    w.write(
        "records.md",
        records_markdown(&records, since, now).as_bytes(),
    )?;
    w.write(
        "status.json",
        &serde_json::to_vec_pretty(&status).map_err(|e| json_error(&e))?,
    )?;
    let mut s = format!(
        "# Status at {now}: {}\n\n| rule | result | detail | evidence |\n|---|---|---|---|\n",
        if status.compliant() {
            "COMPLIANT"
        } else {
            "NOT COMPLIANT"
        }
    );
    for r in &status.rules {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            cell(&r.rule),
            if r.passed { "PASS" } else { "FAIL" },
            cell(&r.detail),
            cell(&r.evidence.join(", "))
        );
    }
    w.write("status.md", s.as_bytes())?;
    let mut ret = format!(
        "# Retention policy\n\npolicy: {}\n\nWhatever the policy says, prune never deletes the \
         last backup of a sink, a backup younger than its minimum age, or one without a newer \
         verified backup on that sink (proven by a deep verification first); every deletion \
         is an audit record.\n\n",
        retention_line(config)
    );
    if let Some(r) = &config.retention {
        let _ = writeln!(
            ret,
            "```json\n{}\n```\n",
            serde_json::to_string_pretty(&r.policy).map_err(|e| json_error(&e))?
        );
    }
    let _ = writeln!(
        ret,
        "Deletions in the period: {deletions} (listed in `records.md`, Deletions)."
    );
    w.write("retention.md", ret.as_bytes())?;
    w.write("bcp.md", render_bcp(config, &all, now).as_bytes())?;
    let mut copied = Vec::new();
    for r in &reports {
        for src in std::iter::once(&r.json).chain(r.md.as_ref()) {
            let name = format!(
                "drill-reports/{}",
                src.file_name().and_then(|n| n.to_str()).unwrap_or("report")
            );
            let bytes =
                fs::read(src).map_err(|e| io(&format!("reading `{}`", src.display()), e))?;
            w.write(&name, &bytes)?;
        }
        copied.push(r);
    }

    // The index.
    let mut x = String::new();
    let _ = writeln!(x, "# Evidence bundle — {}\n", config.project);
    let _ = writeln!(x, "period: {since} — {now} (UTC)");
    let _ = writeln!(
        x,
        "generated by: wst {} (`wst report evidence`); audit log `{}`\n",
        env!("CARGO_PKG_VERSION"),
        audit_path.display()
    );
    let _ = writeln!(x, "## Figures\n");
    let _ = writeln!(
        x,
        "- audit chain: {} ({} records, {} authenticated by their MAC; {} anchors on the sinks checked{})",
        if check.trustworthy() {
            "VERIFIED"
        } else {
            "NOT TRUSTWORTHY"
        },
        check.chain.records,
        check.chain.authenticated,
        check.anchors_checked,
        if check.problems.is_empty() {
            String::new()
        } else {
            format!("; problems: {}", check.problems.join("; "))
        }
    );
    let _ = writeln!(
        x,
        "- records in the period: {}{}",
        records.len(),
        if unparsed > 0 {
            format!(" ({unparsed} lines of the log do not parse)")
        } else {
            String::new()
        }
    );
    let _ = writeln!(x, "- backups: {backups} completed, {backups_failed} failed");
    let _ = writeln!(
        x,
        "- verifications: {}, {} failed",
        verifications.0, verifications.1
    );
    let _ = writeln!(x, "- deletions by retention: {deletions}");
    let _ = writeln!(x, "- restore drills: {}, {} passed", drills.0, drills.1);
    if let Some(d) = drill_history(&records).iter().rev().find(|d| d.passed) {
        let target = config
            .drill
            .as_ref()
            .map(|d| d.rto_target_minutes.unwrap_or(240.0) * 60.0);
        let _ = writeln!(
            x,
            "- measured RTO of the newest passing drill ({}, audit #{}): {} ({:.1} s){}; RPO {}",
            d.artifact,
            d.seq,
            hours(d.rto_seconds),
            d.rto_seconds,
            target.map_or_else(String::new, |t| format!(
                " (target {}: {})",
                hours(t),
                if d.rto_seconds <= t { "within" } else { "OVER" }
            )),
            hours(d.rpo_seconds)
        );
    }
    let _ = writeln!(x, "- restores: {restores}");
    let _ = writeln!(
        x,
        "- status at {now}: {} ({} of {} rules hold)",
        if status.compliant() {
            "COMPLIANT"
        } else {
            "NOT COMPLIANT"
        },
        status.rules.iter().filter(|r| r.passed).count(),
        status.rules.len()
    );
    let _ = writeln!(x, "\n## Files and ISO/IEC 27001:2022 controls\n");
    let _ = writeln!(
        x,
        "A.8.13 information backup; A.5.29 information security during disruption; A.5.30 \
         ICT readiness for business continuity (seeds/002 `ISO_27001_MAPPING`).\n"
    );
    let _ = writeln!(x, "| file | content | controls |\n|---|---|---|");
    let rows: [(&str, &str, &str); 10] = [
        (
            "INDEX.md",
            "this index: period, figures, mapping",
            "A.8.13, A.5.29, A.5.30",
        ),
        (
            "audit-check.json",
            "the audit chain verified (SHA-256 links, HMACs under the repository key) and compared with its anchors on every sink",
            "A.8.13",
        ),
        (
            "audit-log.jsonl",
            "the complete audit log as stored, to verify independently (docs/EVIDENCE.md §5)",
            "A.8.13, A.5.30",
        ),
        (
            "records.jsonl",
            "every audit record dated in the period, exact lines",
            "A.8.13, A.5.29, A.5.30",
        ),
        (
            "records.md",
            "the period's backups, verifications, deletions, drills, restores, break-glass, replication, 3-2-1 checks",
            "A.8.13, A.5.29, A.5.30",
        ),
        (
            "status.json",
            "compliance status at the period's end: 3-2-1, R1–R7, placement, drill after schema change, audit",
            "A.8.13, A.5.30",
        ),
        ("status.md", "the same, readable", "A.8.13, A.5.30"),
        (
            "retention.md",
            "the retention policy and the period's deletions",
            "A.8.13",
        ),
        (
            "bcp.md",
            "the business continuity plan (seeds/002 template) with the test history",
            "A.5.29, A.5.30",
        ),
        (
            "drill-reports/",
            "the restore drill reports of the period (seeds/002 restore test report, Markdown and JSON)",
            "A.8.13, A.5.30",
        ),
    ];
    for (file, what, controls) in rows {
        let _ = writeln!(x, "| `{file}` | {what} | {controls} |");
    }
    let _ = writeln!(x, "\n## Drill reports\n");
    if copied.is_empty() {
        let _ = writeln!(
            x,
            "No drill report dated in the period was found{}.",
            if dirs.is_empty() {
                " (no `[drill] scratch_dir` configured)"
            } else {
                ""
            }
        );
    } else {
        let _ = writeln!(
            x,
            "| report | date | artifact | result | RTO | audit record |\n|---|---|---|---|---|---|"
        );
        for r in &copied {
            let _ = writeln!(
                x,
                "| `drill-reports/{}` | {} | {} | {} | {} | {} |",
                r.json.file_name().and_then(|n| n.to_str()).unwrap_or("?"),
                r.date,
                cell(&r.artifact),
                if r.passed { "PASS" } else { "FAIL" },
                hours(r.rto_seconds),
                r.matched.map_or_else(
                    || "NONE: the report matches no drill in the audit log; it is not evidence"
                        .to_owned(),
                    |s| format!("#{s}")
                )
            );
        }
    }
    fs::write(staging.dir.join("INDEX.md"), x.as_bytes()).map_err(|e| {
        io(
            &format!("writing `{}`", staging.dir.join("INDEX.md").display()),
            e,
        )
    })?;
    let files = w.files;
    staging.promote(&options.out)?;

    repo.record(AuditEvent::ReportWritten {
        report: "evidence".into(),
        since: Some(since),
        until: now,
        destination: options.out.display().to_string(),
        files: files.clone(),
    })
    .await?;
    Ok(EvidenceBundle {
        dir: options.out.clone(),
        files,
        since,
        until: now,
        records: records.len() as u64,
        backups,
        backups_failed,
        verifications,
        deletions,
        drills,
        restores,
        drill_reports: copied.len() as u64,
        audit_trustworthy: check.trustworthy(),
        compliant: status.compliant(),
    })
}
