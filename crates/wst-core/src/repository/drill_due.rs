//! Drill triggers (issue 17; seeds/004 "Run restore drills … after any change to database
//! schema"): has the database schema changed since the last passing restore drill?
//!
//! Every artifact's sealed sidecar records each database source's schema fingerprint
//! (`sources[].schema_fingerprint`, `docs/EVIDENCE.md` §2). The newest authentic artifact's
//! fingerprints are compared with those of the artifact the newest **passing** drill in the
//! audit log restored. [`Repository::drill_due`] answers for a scheduler; status shows the
//! same judgement as the rule [`SCHEMA_DRILL_RULE`].

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{AuditEvent, Catalog, Repository, Result, RuleStatus};
use crate::audit::AuditRecord;
use crate::compliance::CLOCK_SKEW_TOLERANCE;
use crate::evidence::SidecarTrust;

/// The status rule's name: the schema changed since the last passing drill (seeds/004).
pub const SCHEMA_DRILL_RULE: &str = "drill after schema change";

/// Whether a restore drill is due because of the database schema (issue 17, seeds/004), as
/// judged by [`Repository::drill_due`]. Fingerprints are SHA-256 hex of a database's canonical
/// schema, keyed by source name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
#[non_exhaustive]
pub enum DrillDue {
    /// The newest artifact records no schema fingerprint (no database source, or a sidecar
    /// written by a wst before issue 17): nothing to judge.
    NoSchema,
    /// No passing drill is on record (R7 of the status covers it): a drill is due.
    NeverDrilled {
        /// The newest artifact.
        newest: String,
    },
    /// The newest artifact has the schema of the artifact last drilled successfully.
    Unchanged {
        /// The newest artifact.
        newest: String,
        /// The artifact the newest passing drill restored.
        drilled: String,
        /// The audit record of that drill (`seq`).
        drill_record: u64,
    },
    /// The schema changed since the last passing drill: a drill is due.
    SchemaChanged {
        /// The newest artifact.
        newest: String,
        /// The artifact the newest passing drill restored.
        drilled: String,
        /// The audit record of that drill (`seq`).
        drill_record: u64,
        /// When that drill was recorded (UTC).
        drilled_at: Timestamp,
        /// One line per database whose fingerprint differs: `name: old… → new…`.
        changes: Vec<String>,
    },
    /// The drilled artifact's fingerprints cannot be read (it is on no sink any more, or its
    /// sidecar predates fingerprints): whether the schema changed cannot be told, so a drill
    /// is due.
    Unknown {
        /// The newest artifact.
        newest: String,
        /// The artifact the newest passing drill restored.
        drilled: String,
        /// The audit record of that drill (`seq`).
        drill_record: u64,
        /// Why the drilled artifact's schema is unknown.
        why: String,
    },
}

impl DrillDue {
    /// Whether a drill should run now: [`DrillDue::SchemaChanged`], [`DrillDue::Unknown`] and
    /// [`DrillDue::NeverDrilled`].
    pub fn is_due(&self) -> bool {
        matches!(
            self,
            Self::SchemaChanged { .. } | Self::Unknown { .. } | Self::NeverDrilled { .. }
        )
    }
}

/// The schema fingerprints (source name → hex) of the newest authentic copy of each artifact
/// across `catalogs`, artifacts dated up to `now` (plus clock skew), oldest first.
fn fingerprints_by_artifact(
    catalogs: &[Option<Catalog>],
    now: Timestamp,
) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for catalog in catalogs.iter().flatten() {
        for c in catalog.complete() {
            if c.name.time().duration_since(now) > CLOCK_SKEW_TOLERANCE
                || !c.trust.is_some_and(SidecarTrust::is_authentic)
            {
                continue;
            }
            let Some(s) = &c.sidecar else { continue };
            let f: BTreeMap<String, String> = s
                .sources
                .iter()
                .filter_map(|s| Some((s.name.clone(), s.schema_fingerprint.clone()?)))
                .collect();
            out.entry(c.name.to_string()).or_default().extend(f);
        }
    }
    out
}

fn short(f: &str) -> &str {
    &f[..f.len().min(12)]
}

/// Judges the schema trigger from the catalogs and the audit records at `now`.
pub(crate) fn judge(
    catalogs: &[Option<Catalog>],
    records: &[AuditRecord],
    now: Timestamp,
) -> DrillDue {
    let all = fingerprints_by_artifact(catalogs, now);
    // The newest artifact (names order by time).
    let Some((newest, newest_f)) = all.iter().next_back() else {
        return DrillDue::NoSchema;
    };
    if newest_f.is_empty() {
        return DrillDue::NoSchema;
    }
    // Only drills of this repository's artifacts: a point-in-time recovery drill restores a
    // base backup (`{prefix}-base-…`, issue 16), whose schema is not in these catalogs.
    let prefix = catalogs.iter().flatten().next().map(|c| c.prefix.clone());
    let ours = |artifact: &str| {
        prefix
            .as_deref()
            .is_none_or(|p| crate::ArtifactName::parse(artifact).is_ok_and(|n| n.prefix() == p))
    };
    let drill = records.iter().rev().find_map(|r| match &r.event {
        AuditEvent::RestoreDrill {
            artifact,
            passed: true,
            ..
        } if r.time.duration_since(now) <= CLOCK_SKEW_TOLERANCE && ours(artifact) => {
            Some((r.seq, r.time, artifact.clone()))
        }
        _ => None,
    });
    let Some((seq, at, drilled)) = drill else {
        return DrillDue::NeverDrilled {
            newest: newest.clone(),
        };
    };
    let drilled_f = match all.get(&drilled) {
        None => {
            return DrillDue::Unknown {
                newest: newest.clone(),
                drilled,
                drill_record: seq,
                why: "it is on no sink any more (pruned), so its schema cannot be read".into(),
            };
        }
        Some(f) if f.is_empty() => {
            return DrillDue::Unknown {
                newest: newest.clone(),
                drilled,
                drill_record: seq,
                why: "its sidecar records no schema fingerprint (written before wst recorded \
                      them)"
                    .into(),
            };
        }
        Some(f) => f,
    };
    let mut changes = Vec::new();
    for (db, f) in newest_f {
        match drilled_f.get(db) {
            Some(old) if old == f => {}
            Some(old) => changes.push(format!("{db}: {}… → {}…", short(old), short(f))),
            None => changes.push(format!("{db}: not in the drilled artifact → {}…", short(f))),
        }
    }
    for db in drilled_f.keys().filter(|db| !newest_f.contains_key(*db)) {
        changes.push(format!("{db}: no longer in the newest artifact"));
    }
    if changes.is_empty() {
        DrillDue::Unchanged {
            newest: newest.clone(),
            drilled,
            drill_record: seq,
        }
    } else {
        DrillDue::SchemaChanged {
            newest: newest.clone(),
            drilled,
            drill_record: seq,
            drilled_at: at,
            changes,
        }
    }
}

/// The status rule [`SCHEMA_DRILL_RULE`] for `due`.
pub(crate) fn rule(due: &DrillDue) -> RuleStatus {
    let (passed, detail, evidence) = match due {
        DrillDue::NoSchema => (
            true,
            "the newest artifact records no database schema fingerprint: nothing to compare"
                .to_owned(),
            Vec::new(),
        ),
        DrillDue::NeverDrilled { newest } => (
            true,
            format!(
                "no passing restore drill is on record to compare `{newest}` with (R7 restore \
                 tested covers it)"
            ),
            vec![newest.clone()],
        ),
        DrillDue::Unchanged {
            newest,
            drilled,
            drill_record,
        } => (
            true,
            format!(
                "the newest artifact `{newest}` has the database schema of `{drilled}`, \
                 restored by the last passing drill (audit #{drill_record})"
            ),
            vec![
                newest.clone(),
                drilled.clone(),
                format!("audit #{drill_record}"),
            ],
        ),
        DrillDue::SchemaChanged {
            newest,
            drilled,
            drill_record,
            drilled_at,
            changes,
        } => (
            false,
            format!(
                "the database schema changed since the last passing restore drill (`{drilled}`, \
                 drilled {drilled_at}, audit #{drill_record}): the newest artifact `{newest}` \
                 differs ({}); run `wst drill` (seeds/004: restore drills after any change to \
                 the database schema)",
                changes.join("; ")
            ),
            vec![
                newest.clone(),
                drilled.clone(),
                format!("audit #{drill_record}"),
            ],
        ),
        DrillDue::Unknown {
            newest,
            drilled,
            drill_record,
            why,
        } => (
            false,
            format!(
                "cannot tell whether the database schema changed since the last passing drill \
                 (`{drilled}`, audit #{drill_record}): {why}; run `wst drill` on the newest \
                 artifact `{newest}`"
            ),
            vec![
                newest.clone(),
                drilled.clone(),
                format!("audit #{drill_record}"),
            ],
        ),
    };
    RuleStatus {
        rule: SCHEMA_DRILL_RULE.into(),
        passed,
        detail,
        evidence,
    }
}

impl Repository {
    /// Whether a restore drill is due because the database schema changed (issue 17,
    /// seeds/004): the newest authentic artifact on any sink (dated up to `now` plus
    /// [`CLOCK_SKEW_TOLERANCE`]) is compared with the artifact the newest passing drill in the
    /// audit log restored, by the schema fingerprints their sealed sidecars record per
    /// database source. A scheduler (the daemon) runs a drill when [`DrillDue::is_due`];
    /// status reports the same judgement as the rule [`SCHEMA_DRILL_RULE`]. Reads the sinks'
    /// catalogs and the audit log; writes nothing and audits nothing.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) when the audit log cannot be read. A sink that cannot
    /// be listed is left out (its copies are judged by the others').
    pub async fn drill_due(&self, now: Timestamp) -> Result<DrillDue> {
        let mut catalogs = Vec::with_capacity(self.sinks.len());
        for sink in &self.sinks {
            catalogs.push(self.catalog(&**sink).await.ok());
        }
        let records = self.audit.records()?;
        Ok(judge(&catalogs, &records, now))
    }
}
