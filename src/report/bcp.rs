//! The business continuity plan (seeds/002 `BCP_TEMPLATE`), rendered from the configuration,
//! the audit log and the drill history.

use std::fmt::Write as _;

use jiff::{Timestamp, ToSpan as _};
use wst_core::{AuditEvent, AuditRecord};

use super::{cell, hours};
use crate::config::{Config, SinkConfig};

/// The marker of a part of the plan the configuration does not hold: the operator fills it
/// in (`[bcp]` in `wst.toml`, or by hand). wst never invents a contact, client or procedure.
pub const TO_FILL: &str = "TO FILL";

/// Drills listed in the plan's test history, newest first.
const MAX_HISTORY: usize = 50;

/// One restore drill of the test history, from its audit record (`restore_drill`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DrillRow {
    /// The audit record's `seq`.
    pub seq: u64,
    /// When the drill was recorded (UTC).
    pub time: Timestamp,
    /// The artifact restored.
    pub artifact: String,
    /// PASS or FAIL.
    pub passed: bool,
    /// Measured RTO, seconds: drill start to verified restore.
    pub rto_seconds: f64,
    /// Measured RPO, seconds: drill start minus the backup's time.
    pub rpo_seconds: f64,
    /// Who ran or authorized it.
    pub by: String,
    /// Where its files were restored (the report files share its stem).
    pub report: String,
}

/// Every restore drill in `records` (the audit log), oldest first (seeds/002 `TEST_HISTORY`).
pub fn drill_history(records: &[AuditRecord]) -> Vec<DrillRow> {
    records
        .iter()
        .filter_map(|r| match &r.event {
            AuditEvent::RestoreDrill {
                artifact,
                passed,
                rto_seconds,
                rpo_seconds,
                authorized_by,
                report,
            } => Some(DrillRow {
                seq: r.seq,
                time: r.time,
                artifact: artifact.clone(),
                passed: *passed,
                rto_seconds: *rto_seconds,
                rpo_seconds: *rpo_seconds,
                by: authorized_by.clone(),
                report: report.clone(),
            }),
            _ => None,
        })
        .collect()
}

fn fill(what: &str) -> String {
    format!("**{TO_FILL}** ({what})")
}

fn or_fill(v: Option<&str>, what: &str) -> String {
    v.map(str::trim)
        .filter(|s| !s.is_empty())
        .map_or_else(|| fill(what), str::to_owned)
}

/// The database name of a connection URL or key/value string (no credentials: the
/// configuration holds none).
pub(crate) fn database_name(url: &str) -> String {
    if url.contains("://") {
        url::Url::parse(url)
            .ok()
            .and_then(|u| {
                u.path_segments()
                    .and_then(|mut s| s.next_back().map(str::to_owned))
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "(database)".into())
    } else {
        url.split_whitespace()
            .find_map(|kv| kv.strip_prefix("dbname="))
            .unwrap_or("(database)")
            .to_owned()
    }
}

/// The medium a `[[sinks]]` section gives its sink (as the `wst` binary builds it).
pub(crate) fn medium(s: &SinkConfig) -> &str {
    if s.is_local() {
        "disk"
    } else {
        s.medium.as_deref().unwrap_or("object_storage")
    }
}

/// The retention policy in one line, e.g. `daily 30, weekly 12 (Europe/Amsterdam), min age 7d`.
pub(crate) fn retention_line(config: &Config) -> String {
    let Some(r) = &config.retention else {
        return "none configured: nothing is pruned".into();
    };
    let p = &r.policy;
    let mut parts: Vec<String> = [
        ("last", p.keep_last),
        ("hourly", p.keep_hourly),
        ("daily", p.keep_daily),
        ("weekly", p.keep_weekly),
        ("monthly", p.keep_monthly),
        ("yearly", p.keep_yearly),
    ]
    .iter()
    .filter(|(_, n)| *n > 0)
    .map(|(k, n)| format!("{k} {n}"))
    .collect();
    if let Some(w) = &p.keep_within {
        parts.push(format!("everything within {w:#}"));
    }
    let mut line = format!("{} ({})", parts.join(", "), r.time_zone);
    let _ = write!(line, ", min age {:#}", p.min_age);
    if let Some(m) = &p.max_age {
        let _ = write!(line, ", max age {m:#}");
    }
    line
}

/// Where the copies go, in one cell: `local-c (disk), offsite-s3 (object_storage, offsite, nl-ams1)`.
fn storage_cell(config: &Config) -> String {
    config
        .sinks
        .iter()
        .map(|s| {
            let mut attrs = vec![medium(s).to_owned()];
            if s.offsite {
                attrs.push("offsite".into());
            }
            if let Some(r) = &s.region {
                attrs.push(r.clone());
            }
            format!("{} ({})", s.name, attrs.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Backups observed in the 30 days before `now`: completed runs and the newest one.
fn observed_frequency(config: &Config, records: &[AuditRecord], now: Timestamp) -> String {
    let since = now
        .checked_sub(jiff::SignedDuration::from_hours(24 * 30))
        .unwrap_or(now);
    let runs: Vec<&AuditRecord> = records
        .iter()
        .filter(|r| matches!(r.event, AuditEvent::BackupCompleted { .. }))
        .filter(|r| r.time >= since && r.time <= now)
        .collect();
    let limit = config.compliance.max_backup_age_hours;
    match runs.last() {
        None => format!("at most {limit} h apart (R1); none observed in the last 30 days"),
        Some(last) => format!(
            "at most {limit} h apart (R1); {} completed in the last 30 days, newest {}",
            runs.len(),
            last.time
        ),
    }
}

/// Renders the business continuity plan of seeds/002 (`BCP_TEMPLATE`: `SCOPE`,
/// `RECOVERY_OBJECTIVES`, `BACKUP_INVENTORY`, `RECOVERY_PROCEDURES`, `CONTACTS`,
/// `TEST_HISTORY`) as Markdown, dated `now` (UTC).
///
/// From the configuration: the scope (project, sources), the objectives (`[drill]`
/// `rto_target_minutes` and `rpo_target_hours`), one inventory row per configured source
/// (method, observed frequency against `[compliance] max_backup_age_hours`, retention, the
/// sinks with medium, offsite flag and region) plus the WAL row when `[wal]` is configured and
/// a table of the sinks, and recovery procedures as the `wst` commands for this
/// configuration. From `[bcp]`: version, reviewer, client, systems, contacts and the full DR
/// failover steps. From `records` (the audit log): the test history (every `restore_drill`,
/// newest first, at most 50, with measured RTO and RPO against the targets) and the observed
/// backup frequency. Anything the configuration does not hold is an explicit [`TO_FILL`]
/// marker naming the key that would fill it; nothing is invented. Pure: no I/O.
pub fn render_bcp(config: &Config, records: &[AuditRecord], now: Timestamp) -> String {
    let bcp = config.bcp.as_ref();
    let mut o = String::new();
    let project = &config.project;
    let months = bcp.and_then(|b| b.review_interval_months).unwrap_or(3);
    let next_review = now
        .to_zoned(jiff::tz::TimeZone::UTC)
        .checked_add(i64::from(months).months())
        .map_or_else(|_| fill("next review date"), |z| z.date().to_string());
    let _ = writeln!(o, "# Business Continuity Plan — {project}");
    let _ = writeln!(
        o,
        "VERSION: {}",
        or_fill(bcp.and_then(|b| b.version.as_deref()), "`[bcp] version`")
    );
    let _ = writeln!(
        o,
        "REVIEWED_BY: {}",
        or_fill(
            bcp.and_then(|b| b.reviewed_by.as_deref()),
            "`[bcp] reviewed_by`"
        )
    );
    let _ = writeln!(o, "DATE: {now}");
    let _ = writeln!(o, "NEXT_REVIEW: {next_review}");
    let _ = writeln!(
        o,
        "GENERATED_BY: wst {} (`wst report bcp`) from the configuration, the audit log ({} \
         records) and the drill history",
        env!("CARGO_PKG_VERSION"),
        records.len()
    );

    // 1. Scope.
    let _ = writeln!(o, "\n## 1. SCOPE");
    let _ = writeln!(o, "project: {project}");
    let _ = writeln!(
        o,
        "client: {}",
        or_fill(bcp.and_then(|b| b.client.as_deref()), "`[bcp] client`")
    );
    let mut sources: Vec<String> = config
        .files
        .iter()
        .map(|f| format!("files `{}/` ({})", f.root, f.path.display()))
        .collect();
    if let Some(db) = &config.database {
        sources.push(format!("PostgreSQL database `{}`", database_name(&db.url)));
    }
    for b in &config.buckets {
        sources.push(format!("bucket `{}` ({})", b.name, b.full_url()));
    }
    let systems = bcp.map(|b| b.systems.clone()).unwrap_or_default();
    let _ = writeln!(
        o,
        "systems: {}",
        if systems.is_empty() {
            fill("`[bcp] systems`: the applications these data serve")
        } else {
            systems.join(", ")
        }
    );
    let _ = writeln!(o, "data backed up: {}", sources.join("; "));

    // 2. Recovery objectives, with the newest passing drill's measurement.
    let history = drill_history(records);
    let targets = config.drill.as_ref().map(|d| {
        (
            d.rto_target_minutes.unwrap_or(240.0) * 60.0,
            d.rpo_target_hours.unwrap_or(24.0) * 3600.0,
        )
    });
    let _ = writeln!(o, "\n## 2. RECOVERY_OBJECTIVES");
    if let Some((rto, rpo)) = targets {
        let _ = writeln!(o, "RPO: {}", hours(rpo));
        let _ = writeln!(o, "RTO: {}", hours(rto));
    } else {
        let _ = writeln!(o, "RPO: {}", fill("`[drill] rpo_target_hours`"));
        let _ = writeln!(o, "RTO: {}", fill("`[drill] rto_target_minutes`"));
    }
    let _ = writeln!(
        o,
        "backup age limit: {} h (`[compliance] max_backup_age_hours`, doctrine 026 R1)",
        config.compliance.max_backup_age_hours
    );
    match history.iter().rev().find(|d| d.passed) {
        Some(d) => {
            let verdict = |measured: f64, target: Option<f64>| match target {
                Some(t) if measured <= t => "within target",
                Some(_) => "OVER target",
                None => "no target configured",
            };
            let _ = writeln!(
                o,
                "measured (newest passing drill, {} of `{}`, audit #{}): RTO {} ({}), RPO {} ({})",
                d.time,
                d.artifact,
                d.seq,
                hours(d.rto_seconds),
                verdict(d.rto_seconds, targets.map(|t| t.0)),
                hours(d.rpo_seconds),
                verdict(d.rpo_seconds, targets.map(|t| t.1)),
            );
        }
        None => {
            let _ = writeln!(
                o,
                "measured: no passing restore drill on record: run `wst drill`"
            );
        }
    }

    // 3. Backup inventory.
    let _ = writeln!(o, "\n## 3. BACKUP_INVENTORY");
    let _ = writeln!(o, "| data | method | frequency | retention | storage |");
    let _ = writeln!(o, "|---|---|---|---|---|");
    let frequency = observed_frequency(config, records, now);
    let retention = retention_line(config);
    let storage = storage_cell(config);
    let method = "encrypted AES-256-GCM, zstd, verified";
    let mut rows: Vec<(String, String)> = Vec::new();
    if let Some(db) = &config.database {
        rows.push((
            format!("PostgreSQL `{}`", database_name(&db.url)),
            format!("pg_dump -Fc from one snapshot, {method}"),
        ));
    }
    for f in &config.files {
        rows.push((
            format!("files `{}/` ({})", f.root, f.path.display()),
            format!("tar, {method}"),
        ));
    }
    for b in &config.buckets {
        rows.push((
            format!("bucket `{}` ({})", b.name, b.full_url()),
            format!("every object with key, size and ETag, {method}"),
        ));
    }
    for (data, how) in &rows {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} |",
            cell(data),
            cell(how),
            cell(&frequency),
            cell(&retention),
            cell(&storage)
        );
    }
    if let Some(wal) = &config.wal {
        let sync = if wal.sync_sinks.is_empty() {
            config
                .sinks
                .first()
                .map(|s| s.name.clone())
                .unwrap_or_default()
        } else {
            wal.sync_sinks.join(", ")
        };
        let _ = writeln!(
            o,
            "| WAL | `wst wal-push` (archive_command), {method} | continuous | kept while a \
             retained base backup needs it | {} (synchronous: {}) |",
            cell(&storage),
            cell(&sync)
        );
    }
    if rows.is_empty() {
        let _ = writeln!(o, "| {} | | | | |", fill("no source is configured"));
    }
    let _ = writeln!(
        o,
        "\n| sink | medium | offsite | region | jurisdiction | location |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|");
    for s in &config.sinks {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} |",
            cell(&s.name),
            cell(medium(s)),
            if s.offsite { "yes" } else { "no" },
            cell(&or_fill(s.region.as_deref(), "`region` of this sink")),
            cell(&or_fill(
                s.jurisdiction.as_deref(),
                "`jurisdiction` of this sink"
            )),
            cell(&s.url)
        );
    }
    let _ = writeln!(
        o,
        "production: region {}, jurisdiction {}",
        or_fill(
            config.compliance.production_region.as_deref(),
            "`[compliance] production_region`"
        ),
        or_fill(
            config.compliance.production_jurisdiction.as_deref(),
            "`[compliance] production_jurisdiction`"
        )
    );

    // 4. Recovery procedures: the commands for this configuration.
    let _ = writeln!(o, "\n## 4. RECOVERY_PROCEDURES");
    let mut n = b'a';
    let mut section = |o: &mut String, title: &str| {
        let _ = writeln!(o, "### 4{}. {title}", n as char);
        n += 1;
    };
    if let Some(db) = &config.database {
        let name = database_name(&db.url);
        section(&mut o, "Database Recovery");
        let _ = writeln!(
            o,
            "1. identify the backup: `wst --config CONFIG status` (the newest verified artifact) and `wst --config CONFIG ls`"
        );
        let _ = writeln!(
            o,
            "2. decrypt, decompress and check it: `wst --config CONFIG verify ARTIFACT`"
        );
        let _ = writeln!(
            o,
            "3. pg_restore to a scratch target and prove it: `wst --config CONFIG restore --target DIR --no-files --database SCRATCH_DB ARTIFACT`"
        );
        let _ = writeln!(
            o,
            "4. restore into production (break-glass, audited): `wst --config CONFIG restore --target DIR --no-files --database {name} --break-glass-by WHO --reason INCIDENT [--clean] [--server URL]`"
        );
        let _ = writeln!(
            o,
            "5. verify data integrity (row counts and schema are proven against the manifest) and reconnect the application"
        );
    }
    if !config.files.is_empty() {
        section(&mut o, "File Recovery");
        let _ = writeln!(
            o,
            "1. into an isolated directory: `wst --config CONFIG restore --target DIR [--include ROOT/] ARTIFACT`"
        );
        let _ = writeln!(
            o,
            "2. into the configured paths (break-glass, audited; the replaced tree is kept aside): `wst --config CONFIG restore --in-place --break-glass-by WHO --reason INCIDENT`"
        );
    }
    for b in &config.buckets {
        section(&mut o, &format!("Bucket `{}` Recovery", b.name));
        let _ = writeln!(
            o,
            "1. `wst --config CONFIG restore --bucket {} --to-bucket URL [--prefix P] ARTIFACT` (a non-empty target needs --break-glass-by/--reason)",
            b.name
        );
    }
    section(&mut o, "Without wst");
    let _ = writeln!(
        o,
        "1. `python3 wst_decrypt.py` (docs/FORMAT.md, with the key file `{}` or the recovery passphrase) then `zstd -d | tar -x`",
        config.encryption.key_file.display()
    );
    section(&mut o, "Full DR Failover");
    match bcp.map(|b| b.dr_failover.as_slice()).unwrap_or_default() {
        [] => {
            let _ = writeln!(
                o,
                "{}",
                fill("`[bcp] dr_failover`: the failover steps, in order, with who does each")
            );
        }
        steps => {
            for (i, s) in steps.iter().enumerate() {
                let _ = writeln!(o, "{}. {}", i + 1, s.replace('\n', " "));
            }
        }
    }

    // 5. Contacts.
    let _ = writeln!(o, "\n## 5. CONTACTS");
    let _ = writeln!(o, "| role | agent | escalation |");
    let _ = writeln!(o, "|---|---|---|");
    let contacts = bcp.map(|b| b.contacts.as_slice()).unwrap_or_default();
    if contacts.is_empty() {
        let _ = writeln!(
            o,
            "| {} | | |",
            fill("`[[bcp.contacts]]`: role, name, escalation")
        );
    }
    for c in contacts {
        let _ = writeln!(
            o,
            "| {} | {} | {} |",
            cell(&c.role),
            cell(&c.name),
            cell(&or_fill(c.escalation.as_deref(), "`escalation`"))
        );
    }

    // 6. Test history.
    let _ = writeln!(o, "\n## 6. TEST_HISTORY");
    let _ = writeln!(
        o,
        "| date | type | result | rto_actual | rpo_actual | artifact | audit |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|");
    let shown: Vec<&DrillRow> = history.iter().rev().take(MAX_HISTORY).collect();
    if shown.is_empty() {
        let _ = writeln!(
            o,
            "| {} | restore test | — | — | — | — | — |",
            fill("no restore drill on record: run `wst drill`")
        );
    }
    for d in &shown {
        let _ = writeln!(
            o,
            "| {} | restore test | {} | {} | {} | {} | #{} |",
            d.time,
            if d.passed { "pass" } else { "FAIL" },
            hours(d.rto_seconds),
            hours(d.rpo_seconds),
            cell(&d.artifact),
            d.seq
        );
    }
    if history.len() > shown.len() {
        let _ = writeln!(
            o,
            "\n{} older drills are in the audit log.",
            history.len() - shown.len()
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the configuration does not hold is marked, never invented (issue 17).
    #[test]
    fn a_bare_configuration_renders_every_section_with_markers() {
        let config = Config::from_toml_str(
            "audit_log = \"/a\"\n[encryption]\nkey_file = \"/k\"\n\
             [[sinks]]\nname = \"c\"\nurl = \"/srv/wst\"\n\
             [database]\nurl = \"postgresql://ops@db:5432/shop\"\n",
        )
        .unwrap();
        let now: Timestamp = "2026-11-30T12:00:00Z".parse().unwrap();
        let bcp = render_bcp(&config, &[], now);
        for needle in [
            "# Business Continuity Plan — wst",
            "VERSION: **TO FILL** (`[bcp] version`)",
            "REVIEWED_BY: **TO FILL** (`[bcp] reviewed_by`)",
            "DATE: 2026-11-30T12:00:00Z",
            "NEXT_REVIEW: 2027-02-28",
            "client: **TO FILL** (`[bcp] client`)",
            "RPO: **TO FILL** (`[drill] rpo_target_hours`)",
            "RTO: **TO FILL** (`[drill] rto_target_minutes`)",
            "measured: no passing restore drill on record",
            "| PostgreSQL `shop` | pg_dump -Fc",
            "none configured: nothing is pruned",
            "| c | disk | no | **TO FILL** (`region` of this sink) |",
            "### 4a. Database Recovery",
            "--database shop --break-glass-by WHO",
            "**TO FILL** (`[bcp] dr_failover`",
            "| **TO FILL** (`[[bcp.contacts]]`: role, name, escalation) | | |",
            "| **TO FILL** (no restore drill on record: run `wst drill`) |",
        ] {
            assert!(bcp.contains(needle), "{needle} in\n{bcp}");
        }
        // Only the seeds' section headings and the configuration's facts: no contact, client or
        // procedure step from the seeds' example.
        for invented in ["mira", "arjan", "boris", "Dirk-Jan", "UpCloud", "nl-ams1"] {
            assert!(!bcp.contains(invented), "{invented} in\n{bcp}");
        }
        // The same inputs at the same `now` render the same plan.
        assert_eq!(bcp, render_bcp(&config, &[], now));
    }
}
