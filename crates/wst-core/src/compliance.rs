//! Compliance status (doctrine 026 "Compliance Statement" and R1, R3, R4, R5, R7): each rule
//! pass or fail, with the evidence an auditor can follow (artifact names, audit records).

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::artifact::Sidecar;
use crate::audit::{AuditEvent, AuditLog};
use crate::drill::complete_artifacts;
use crate::error::Result;
use crate::sink::{Sink, SinkExt};
use crate::three_two_one::{ThreeTwoOneOptions, check_3_2_1};

/// What compliance requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComplianceOptions {
    /// R1: the newest verified backup must be younger than this (default 24 h: "Minimum: Daily").
    pub max_backup_age: SignedDuration,
    /// R5: every complete artifact younger than this must be verified (default 7 days).
    pub verified_window: SignedDuration,
    /// R7: a restore drill must have passed within this (default 7 days: "Restore has been
    /// tested within last 7 days").
    pub drill_within: SignedDuration,
    /// R4: the retention policy's minimum age, which must be at least 7 days.
    pub retention_min_age: SignedDuration,
    /// R3: the 3-2-1 thresholds.
    pub three_two_one: ThreeTwoOneOptions,
}

impl Default for ComplianceOptions {
    fn default() -> Self {
        Self {
            max_backup_age: SignedDuration::from_hours(24),
            verified_window: SignedDuration::from_hours(24 * 7),
            drill_within: SignedDuration::from_hours(24 * 7),
            retention_min_age: SignedDuration::from_hours(24 * 7),
            three_two_one: ThreeTwoOneOptions::default(),
        }
    }
}

/// One rule's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleStatus {
    /// The rule, e.g. `R1 backup frequency`.
    pub rule: String,
    /// Whether it holds.
    pub passed: bool,
    /// What was found and, on failure, what to do.
    pub detail: String,
    /// Evidence: artifact names, `audit #seq` references.
    pub evidence: Vec<String>,
}

/// The compliance status at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComplianceReport {
    /// When it was evaluated (UTC).
    pub at: Timestamp,
    /// Every rule.
    pub rules: Vec<RuleStatus>,
}

impl ComplianceReport {
    /// Whether every rule holds ("operationally compliant", doctrine 026).
    pub fn compliant(&self) -> bool {
        self.rules.iter().all(|r| r.passed)
    }

    /// The failed rules.
    pub fn violations(&self) -> impl Iterator<Item = &RuleStatus> {
        self.rules.iter().filter(|r| !r.passed)
    }
}

fn rule(rule: &str, passed: bool, detail: String, evidence: Vec<String>) -> RuleStatus {
    RuleStatus {
        rule: rule.to_owned(),
        passed,
        detail,
        evidence,
    }
}

fn age(now: Timestamp, t: Timestamp) -> String {
    let s = now.duration_since(t).as_secs();
    if s >= 2 * 86_400 {
        format!("{:.1} days", s as f64 / 86_400.0)
    } else {
        format!("{:.1} h", s as f64 / 3_600.0)
    }
}

/// Evaluates compliance at `now` from the sinks (the first is the primary, C:) and the audit
/// log.
///
/// Rules:
/// - **R1 backup frequency**: the newest complete, verified artifact on the primary sink is
///   younger than [`ComplianceOptions::max_backup_age`].
/// - **R5 artifacts verified**: every complete artifact on every sink younger than
///   [`ComplianceOptions::verified_window`] carries a passed verification in its sidecar.
/// - **R7 restore tested**: the audit log has a passed restore drill within
///   [`ComplianceOptions::drill_within`].
/// - **R3 3-2-1**: [`check_3_2_1`] holds for the newest artifact.
/// - **R4 retention**: the configured minimum age is at least 7 days.
/// - **audit trail intact**: the audit chain verifies.
///
/// # Errors
/// [`Error::Sink`](crate::Error::Sink) when the primary sink cannot be listed;
/// [`Error::Io`](crate::Error::Io) when the audit log cannot be read.
pub async fn compliance_status(
    sinks: &[&dyn Sink],
    audit: &AuditLog,
    options: &ComplianceOptions,
    now: Timestamp,
) -> Result<ComplianceReport> {
    let mut rules = Vec::new();
    let Some(primary) = sinks.first() else {
        return Err(crate::Error::Config(
            "compliance needs at least one sink".into(),
        ));
    };

    // R1 and R5 from the sidecars.
    let mut newest_verified: Option<(String, Timestamp)> = None;
    let mut unverified = Vec::new();
    let mut checked = 0usize;
    for (i, sink) in sinks.iter().enumerate() {
        let names = match complete_artifacts(*sink).await {
            Ok(n) => n,
            Err(e) if i > 0 => {
                unverified.push(format!("{}: cannot be listed: {e}", sink.info().name));
                continue;
            }
            Err(e) => return Err(e),
        };
        for name in names.iter().rev() {
            let recent = now.duration_since(name.time()) <= options.verified_window;
            let is_primary = i == 0;
            let needed_for_r1 = is_primary && newest_verified.is_none();
            if !(recent || needed_for_r1) {
                continue;
            }
            let sidecar: Option<Sidecar> = sink
                .get_bytes(&name.sidecar_object(), 1 << 20)
                .await
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            let verified = sidecar.as_ref().is_some_and(Sidecar::is_verified);
            if recent {
                checked += 1;
                if !verified {
                    unverified.push(format!("{}: {name}", sink.info().name));
                }
            }
            if is_primary && verified && newest_verified.is_none() {
                newest_verified = Some((name.to_string(), name.time()));
            }
        }
    }
    rules.push(match &newest_verified {
        Some((name, t)) if now.duration_since(*t) <= options.max_backup_age => rule(
            "R1 backup frequency",
            true,
            format!(
                "newest verified backup on `{}` is {} old (limit {} h)",
                primary.info().name,
                age(now, *t),
                options.max_backup_age.as_secs() / 3600
            ),
            vec![name.clone()],
        ),
        Some((name, t)) => rule(
            "R1 backup frequency",
            false,
            format!(
                "newest verified backup on `{}` is {} old, over the limit of {} h: check the schedule and the last runs' errors",
                primary.info().name,
                age(now, *t),
                options.max_backup_age.as_secs() / 3600
            ),
            vec![name.clone()],
        ),
        None => rule(
            "R1 backup frequency",
            false,
            format!("no verified backup on `{}`", primary.info().name),
            Vec::new(),
        ),
    });
    rules.push(rule(
        "R5 artifacts verified",
        unverified.is_empty() && checked > 0,
        if checked == 0 {
            "no artifact within the verification window".into()
        } else if unverified.is_empty() {
            format!("{checked} recent copies carry a passed verification")
        } else {
            format!(
                "{} of {checked} recent copies are unverified or failed verification: run `verify`",
                unverified.len()
            )
        },
        unverified,
    ));

    // R7 and the audit chain from the audit log.
    let chain = audit.verify()?;
    let records = if chain.intact() {
        audit.records()?
    } else {
        Vec::new()
    };
    let drill = records.iter().rev().find_map(|r| match &r.event {
        AuditEvent::RestoreDrill {
            artifact,
            passed: true,
            ..
        } if now.duration_since(r.time) <= options.drill_within => {
            Some((r.seq, artifact.clone(), r.time))
        }
        _ => None,
    });
    rules.push(match drill {
        Some((seq, artifact, t)) => rule(
            "R7 restore tested",
            true,
            format!("restore drill of {artifact} passed {} ago", age(now, t)),
            vec![format!("audit #{seq}"), artifact],
        ),
        None => rule(
            "R7 restore tested",
            false,
            format!(
                "no passed restore drill in the last {} days: run `drill`",
                options.drill_within.as_secs() / 86_400
            ),
            Vec::new(),
        ),
    });

    // R3 3-2-1.
    let r321 = check_3_2_1(sinks, &options.three_two_one).await?;
    rules.push(rule(
        "R3 3-2-1 copies",
        r321.is_compliant(),
        if r321.is_compliant() {
            format!("{} good copies of the newest artifact", r321.good_copies())
        } else {
            r321.violations
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        },
        r321.artifact.iter().map(ToString::to_string).collect(),
    ));

    // R4 retention.
    let week = SignedDuration::from_hours(24 * 7);
    rules.push(rule(
        "R4 retention ≥ 7 days",
        options.retention_min_age >= week,
        format!(
            "retention keeps everything younger than {} days",
            options.retention_min_age.as_secs() / 86_400
        ),
        Vec::new(),
    ));
    rules.push(rule(
        "audit trail intact",
        chain.intact(),
        match (&chain.first_broken, &chain.problem) {
            (Some(n), Some(p)) => format!("record {n} is broken: {p}"),
            _ => format!("{} records, chain verified", chain.records),
        },
        Vec::new(),
    ));
    Ok(ComplianceReport { at: now, rules })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::artifact::{ArtifactName, SIDECAR_FORMAT, SidecarVerification};
    use crate::memory::MemorySink;
    use crate::sink::{Medium, SinkInfo};

    async fn plant(sink: &MemorySink, time: Timestamp, verified: bool) -> ArtifactName {
        let name = ArtifactName::new("wst-backup", time).unwrap();
        let data = Bytes::from_static(b"ciphertext");
        sink.put_bytes(&name.artifact_object(), data.clone())
            .await
            .unwrap();
        let sidecar = Sidecar {
            format: SIDECAR_FORMAT.into(),
            name: name.clone(),
            object: name.artifact_object(),
            created: time,
            completed: time,
            cipher_suite: "test".into(),
            key_fingerprints: Vec::new(),
            ciphertext_size: data.len() as u64,
            ciphertext_sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&data)),
            tool_version: "test".into(),
            verification: Some(SidecarVerification {
                at: time,
                passed: verified,
                checks_passed: 1,
                checks_failed: u32::from(!verified),
            }),
        };
        sink.put_bytes(
            &name.sidecar_object(),
            Bytes::from(serde_json::to_vec(&sidecar).unwrap()),
        )
        .await
        .unwrap();
        name
    }

    fn sinks() -> (MemorySink, MemorySink, MemorySink) {
        let offsite = MemorySink::with_info(SinkInfo {
            name: "offsite-s3".into(),
            medium: Medium::ObjectStorage,
            offsite: true,
            location: "memory://offsite".into(),
        });
        (
            MemorySink::new("local-c"),
            MemorySink::new("mirror-d"),
            offsite,
        )
    }

    #[tokio::test]
    async fn compliant_then_each_rule_broken_in_turn() {
        let now: Timestamp = "2026-11-21T12:00:00Z".parse().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let audit = AuditLog::new(dir.path().join("audit.jsonl"), "otto");
        let (local, mirror, offsite) = sinks();
        let t = now.checked_sub(SignedDuration::from_hours(3)).unwrap();
        let name = {
            let n = plant(&local, t, true).await;
            plant(&mirror, t, true).await;
            plant(&offsite, t, true).await;
            n
        };
        audit
            .append(AuditEvent::RestoreDrill {
                artifact: name.to_string(),
                passed: true,
                rto_seconds: 12.0,
                rpo_seconds: 60.0,
                authorized_by: "otto".into(),
                report: "r.md".into(),
            })
            .unwrap();
        let all: [&dyn Sink; 3] = [&local, &mirror, &offsite];
        let opts = ComplianceOptions::default();
        let r = compliance_status(&all, &audit, &opts, now).await.unwrap();
        assert!(r.compliant(), "{r:#?}");
        assert_eq!(r.rules.len(), 6);

        // R1: 25 hours later the newest backup is too old (drill still within 7 days).
        let later = now.checked_add(SignedDuration::from_hours(25)).unwrap();
        let r = compliance_status(&all, &audit, &opts, later).await.unwrap();
        let failed: Vec<&str> = r.violations().map(|v| v.rule.as_str()).collect();
        assert_eq!(failed, ["R1 backup frequency"]);

        // R7: eight days later there is no recent drill either.
        let much_later = now.checked_add(SignedDuration::from_hours(24 * 8)).unwrap();
        let r = compliance_status(&all, &audit, &opts, much_later)
            .await
            .unwrap();
        assert!(r.violations().any(|v| v.rule == "R7 restore tested"));

        // R3: the mirror loses its copy.
        mirror.delete(&name.artifact_object()).await.unwrap();
        let r = compliance_status(&all, &audit, &opts, now).await.unwrap();
        let failed: Vec<&str> = r.violations().map(|v| v.rule.as_str()).collect();
        assert_eq!(failed, ["R3 3-2-1 copies"], "{r:#?}");

        // R5: an unverified artifact on the primary.
        let t2 = now.checked_sub(SignedDuration::from_hours(1)).unwrap();
        plant(&local, t2, false).await;
        let r = compliance_status(&all, &audit, &opts, now).await.unwrap();
        let r5 = r
            .rules
            .iter()
            .find(|x| x.rule == "R5 artifacts verified")
            .unwrap();
        assert!(!r5.passed);
        assert!(r5.evidence.iter().any(|e| e.contains("local-c")), "{r5:?}");

        // R4 and a tampered audit trail.
        let short = ComplianceOptions {
            retention_min_age: SignedDuration::from_hours(24),
            ..ComplianceOptions::default()
        };
        let text = std::fs::read_to_string(audit.path())
            .unwrap()
            .replace("otto", "eve");
        std::fs::write(audit.path(), text).unwrap();
        let r = compliance_status(&all, &audit, &short, now).await.unwrap();
        let failed: Vec<&str> = r.violations().map(|v| v.rule.as_str()).collect();
        assert!(failed.contains(&"R4 retention ≥ 7 days"), "{failed:?}");
        assert!(failed.contains(&"audit trail intact"), "{failed:?}");
    }
}
