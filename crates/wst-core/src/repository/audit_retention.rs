//! The audit-retention status rule (issue 18, "Access audit"; seeds/003 HIPAA mode: "audit
//! logs retained per regulation", 6 years).
//!
//! wst never deletes, truncates or rotates audit records (the log is append-only; prune keeps
//! its state in a separate file). What can shorten the log is an operator rotating or
//! replacing the file by hand. This rule makes that visible: every artifact still held on a
//! sink and taken within the configured years must be covered by the log, either because the
//! log names the run that made it (`backup_completed` with its name) or because the log's first
//! record is not younger than the artifact. An artifact the log does not cover means records
//! of that period were removed while the data they account for still exists.

use std::collections::{BTreeMap, BTreeSet};

use jiff::{Timestamp, ToSpan, tz::TimeZone};

use crate::ArtifactName;
use crate::audit::{AuditEvent, AuditRecord};
use crate::catalog::Catalog;
use crate::compliance::RuleStatus;

/// The rule's name in status reports.
pub(crate) const AUDIT_RETENTION_RULE: &str = "audit retention";

/// The start of the window the log must cover: `now` minus `years` calendar years in UTC
/// (saturating at the earliest timestamp).
fn window_start(now: Timestamp, years: u32) -> Timestamp {
    now.to_zoned(TimeZone::UTC)
        .checked_sub(i64::from(years).years())
        .map_or(Timestamp::MIN, |z| z.timestamp())
}

/// The judgement on plain data: `held` maps each artifact to the sinks holding it, `first`
/// is the log's first record's time (`None`: an empty log), `named` the artifacts the log's
/// `backup_completed` records name. Returns the artifacts taken on or after
/// `now - years` that the log does not cover, as `NAME on SINK, …` lines, oldest first.
pub(crate) fn uncovered(
    held: &BTreeMap<ArtifactName, Vec<String>>,
    first: Option<Timestamp>,
    named: &BTreeSet<String>,
    years: u32,
    now: Timestamp,
) -> Vec<String> {
    let since = window_start(now, years);
    held.iter()
        .filter(|(name, _)| name.time() >= since)
        .filter(|(name, _)| !named.contains(&name.to_string()))
        .filter(|(name, _)| first.is_none_or(|f| f > name.time()))
        .map(|(name, sinks)| format!("{name} on {}", sinks.join(", ")))
        .collect()
}

/// The rule `audit retention` over the sinks' catalogs and the log's records: fails when an
/// artifact taken within the last `years` (UTC calendar years before `now`) is still on a sink
/// but older than the log's first record, and the log names no run that made it. The detail
/// states the configured years and that wst never deletes audit records.
pub(crate) fn audit_retention_rule(
    catalogs: &[Option<Catalog>],
    records: &[AuditRecord],
    years: u32,
    now: Timestamp,
) -> RuleStatus {
    let mut held: BTreeMap<ArtifactName, Vec<String>> = BTreeMap::new();
    for c in catalogs.iter().flatten() {
        for copy in &c.copies {
            held.entry(copy.name.clone())
                .or_default()
                .push(format!("`{}`", c.sink));
        }
    }
    let first = records.first().map(|r| r.time);
    let named: BTreeSet<String> = records
        .iter()
        .filter_map(|r| match &r.event {
            AuditEvent::BackupCompleted { artifact, .. } => Some(artifact.clone()),
            _ => None,
        })
        .collect();
    let missing = uncovered(&held, first, &named, years, now);
    let since = window_start(now, years);
    RuleStatus {
        rule: AUDIT_RETENTION_RULE.into(),
        passed: missing.is_empty(),
        detail: if missing.is_empty() {
            format!(
                "the audit log covers every artifact taken since {since} ({years} years \
                 configured; first record {}); wst never deletes audit records, and a log \
                 rotated by hand must be kept {years} years",
                first.map_or_else(|| "none".to_owned(), |t| t.to_string())
            )
        } else {
            format!(
                "{} artifact(s) taken within the {years} years the audit log must cover are older \
                 than its first record ({}) and the log names no run that made them: the log \
                 was rotated, truncated or replaced; put the earlier log back beside it and keep \
                 it {years} years (seeds/003 HIPAA mode)",
                missing.len(),
                first.map_or_else(|| "none: the log is empty".to_owned(), |t| t.to_string())
            )
        },
        evidence: missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn held(times: &[&str]) -> BTreeMap<ArtifactName, Vec<String>> {
        times
            .iter()
            .map(|t| {
                (
                    ArtifactName::new("wst-backup", at(t)).unwrap(),
                    vec!["`c`".to_owned()],
                )
            })
            .collect()
    }

    #[test]
    fn a_log_younger_than_an_artifact_it_does_not_name_fails() {
        let now = at("2030-06-01T00:00:00Z");
        let h = held(&["2029-01-01T00:00:00Z", "2030-05-01T00:00:00Z"]);
        let names: Vec<String> = h.keys().map(ToString::to_string).collect();
        // The log starts after the first artifact and does not name it.
        let first = Some(at("2029-06-01T00:00:00Z"));
        let named: BTreeSet<String> = [names[1].clone()].into();
        let missing = uncovered(&h, first, &named, 6, now);
        assert_eq!(missing, [format!("{} on `c`", names[0])]);
        // An empty log covers nothing.
        assert_eq!(uncovered(&h, None, &BTreeSet::new(), 6, now).len(), 2);
    }

    #[test]
    fn a_log_from_before_the_artifacts_or_naming_them_passes() {
        let now = at("2030-06-01T00:00:00Z");
        let h = held(&["2029-01-01T00:00:00Z", "2030-05-01T00:00:00Z"]);
        let names: BTreeSet<String> = h.keys().map(ToString::to_string).collect();
        assert!(
            uncovered(
                &h,
                Some(at("2028-01-01T00:00:00Z")),
                &BTreeSet::new(),
                6,
                now
            )
            .is_empty()
        );
        // A first record stamped just after the artifact's name (the run's own
        // `backup_started`): the log names the run, so it covers it.
        assert!(uncovered(&h, Some(at("2029-01-01T00:00:01Z")), &names, 6, now).is_empty());
    }

    #[test]
    fn artifacts_older_than_the_years_need_no_coverage() {
        let now = at("2030-06-01T00:00:00Z");
        let h = held(&["2022-01-01T00:00:00Z"]);
        let first = Some(at("2025-01-01T00:00:00Z"));
        assert!(uncovered(&h, first, &BTreeSet::new(), 6, now).is_empty());
        assert_eq!(uncovered(&h, first, &BTreeSet::new(), 10, now).len(), 1);
    }
}
