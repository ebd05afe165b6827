//! Compliance status (doctrine 026 "Compliance Statement" and R1, R3, R4, R5, R7): each rule
//! pass or fail, with the evidence an auditor can follow (artifact names, audit records).

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::artifact::DEFAULT_PREFIX;
use crate::audit::{AuditEvent, AuditLog};
use crate::catalog::{Catalog, CatalogCopy, Trust};
use crate::error::Result;
use crate::sink::Sink;
use crate::three_two_one::{ThreeTwoOneOptions, check_3_2_1_catalogued};

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
    /// Placement rules (issue 17; seeds/002 anti-patterns 5 and 6): the production system's
    /// and each sink's declared region and jurisdiction. Default: no rule configured.
    pub placement: crate::placement::Placement,
    /// The retention ceiling (issue 18; seeds/003 data minimisation): `now - max_age` of the
    /// retention policy (UTC). With it, [`Repository::status`](crate::Repository::status)
    /// adds the rule `retention ceiling`, which fails while any copy on any sink was taken
    /// before it. Default `None` (no ceiling).
    pub retention_ceiling: Option<Timestamp>,
    /// Years the audit log must cover (issue 18; seeds/003 HIPAA mode: 6). With it,
    /// [`Repository::status`](crate::Repository::status) adds the rule `audit retention`.
    /// Default `None` (not judged).
    pub audit_retention_years: Option<u32>,
}

impl Default for ComplianceOptions {
    fn default() -> Self {
        Self {
            max_backup_age: SignedDuration::from_hours(24),
            verified_window: SignedDuration::from_hours(24 * 7),
            drill_within: SignedDuration::from_hours(24 * 7),
            retention_min_age: SignedDuration::from_hours(24 * 7),
            three_two_one: ThreeTwoOneOptions::default(),
            placement: crate::placement::Placement::default(),
            retention_ceiling: None,
            audit_retention_years: None,
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

/// How far into the future of `now` a timestamp may lie and still count as evidence at `now`
/// (clock skew between the host that wrote it and the host evaluating). Anything later is
/// evidence *of a later time*, not of `now`, and is ignored.
pub const CLOCK_SKEW_TOLERANCE: SignedDuration = SignedDuration::from_secs(300);

/// Whether `t` lies in the window `[now - window, now + CLOCK_SKEW_TOLERANCE]`.
fn within(now: Timestamp, t: Timestamp, window: SignedDuration) -> bool {
    let ahead = t.duration_since(now);
    ahead <= CLOCK_SKEW_TOLERANCE && now.duration_since(t) <= window
}

/// `" (…)"` saying why a complete copy is not verified.
fn why_unverified(copy: &CatalogCopy) -> String {
    match (&copy.sidecar, copy.trust) {
        (Some(s), _) if s.verification.as_ref().is_some_and(|v| !v.passed) => {
            " (its last verification FAILED)".to_owned()
        }
        (Some(s), _) if s.verification.is_none() => " (never verified)".to_owned(),
        (_, Some(t)) if !t.is_authentic() => format!(" (sidecar {t})"),
        _ => String::new(),
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
/// - **R3 3-2-1**: [`check_3_2_1`](crate::check_3_2_1) holds for the newest artifact.
/// - **R4 retention**: the configured minimum age is at least 7 days.
/// - **audit trail intact**: the audit chain verifies.
/// - **offsite in another region**, **copies in allowed jurisdictions**: when
///   [`ComplianceOptions::placement`] configures them ([`placement_rules`](crate::placement_rules)).
///
/// Artifacts and audit records dated later than `now` (beyond [`CLOCK_SKEW_TOLERANCE`]) are not
/// evidence at `now` and are ignored, so a report evaluated for a past `now` says what was true
/// then.
///
/// # Errors
/// [`Error::Io`](crate::Error::Io) when the audit log cannot be read. A sink that cannot be
/// listed is a finding, not an error: R1 (for the primary), R5 and R3 fail naming it.
pub async fn compliance_status(
    sinks: &[&dyn Sink],
    audit: &AuditLog,
    options: &ComplianceOptions,
    now: Timestamp,
) -> Result<ComplianceReport> {
    compliance_with(sinks, audit, options, now, Trust::Unauthenticated)
        .await
        .map(|(report, _)| report)
}

/// [`compliance_status`] judging sidecars by `trust` (the repository passes its evidence keys,
/// so a forged, unsealed or failed verification never counts for R1, R3 or R5). Also returns
/// each sink's catalog (`None` for a sink that could not be listed), for the repository's own
/// rules, so no sink is listed twice.
pub(crate) async fn compliance_with(
    sinks: &[&dyn Sink],
    audit: &AuditLog,
    options: &ComplianceOptions,
    now: Timestamp,
    trust: Trust<'_>,
) -> Result<(ComplianceReport, Vec<Option<Catalog>>)> {
    let mut rules = Vec::new();
    let Some(primary) = sinks.first() else {
        return Err(crate::Error::Config(
            "compliance needs at least one sink".into(),
        ));
    };
    let prefix = if options.three_two_one.prefix.is_empty() {
        DEFAULT_PREFIX
    } else {
        options.three_two_one.prefix.as_str()
    };

    // R1 and R5 from the catalogs (one rule for complete and verified).
    let mut newest_verified: Option<(String, Timestamp)> = None;
    let mut unverified = Vec::new();
    let mut checked = 0usize;
    let mut catalogs: Vec<Option<Catalog>> = Vec::with_capacity(sinks.len());
    let mut primary_error: Option<String> = None;
    for (i, sink) in sinks.iter().enumerate() {
        let catalog = match Catalog::read(*sink, prefix, trust).await {
            Ok(c) => c,
            Err(e) => {
                // An unreachable sink (an unmounted disk, a dead store) is a finding of the
                // status, not a reason to give none: the primary's fails R1 with the error.
                if i == 0 {
                    primary_error = Some(e.to_string());
                }
                unverified.push(format!("{}: cannot be listed: {e}", sink.info().name));
                catalogs.push(None);
                continue;
            }
        };
        for copy in catalog.complete().rev() {
            let t = copy.name.time();
            if t.duration_since(now) > CLOCK_SKEW_TOLERANCE {
                continue; // made after `now`
            }
            if within(now, t, options.verified_window) {
                checked += 1;
                if !copy.verified {
                    unverified.push(format!(
                        "{}: {}{}",
                        sink.info().name,
                        copy.name,
                        why_unverified(copy)
                    ));
                }
            }
            if i == 0 && copy.verified && newest_verified.is_none() {
                newest_verified = Some((copy.name.to_string(), t));
            }
        }
        catalogs.push(Some(catalog));
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
            match &primary_error {
                Some(e) => format!("`{}` cannot be listed: {e}", primary.info().name),
                None => format!("no verified backup on `{}`", primary.info().name),
            },
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
    // The newest drill within the window decides: a failed drill after a passing one means
    // the last restore test failed, whatever passed before it.
    let newest_drill = records.iter().rev().find_map(|r| match &r.event {
        AuditEvent::RestoreDrill {
            artifact, passed, ..
        } if within(now, r.time, options.drill_within) => {
            Some((r.seq, artifact.clone(), r.time, *passed))
        }
        _ => None,
    });
    rules.push(match newest_drill {
        Some((seq, artifact, t, true)) => rule(
            "R7 restore tested",
            true,
            format!("restore drill of {artifact} passed {} ago", age(now, t)),
            vec![format!("audit #{seq}"), artifact],
        ),
        Some((seq, artifact, t, false)) => rule(
            "R7 restore tested",
            false,
            format!(
                "the newest restore drill ({artifact}, {} ago) FAILED: read its report, fix the \
                 cause and run `drill` again",
                age(now, t)
            ),
            vec![format!("audit #{seq}"), artifact],
        ),
        None => rule(
            "R7 restore tested",
            false,
            format!(
                "no restore drill in the last {} days: run `drill`",
                options.drill_within.as_secs() / 86_400
            ),
            Vec::new(),
        ),
    });

    // R3 3-2-1.
    let mut r321 = check_3_2_1_catalogued(sinks, &catalogs, &options.three_two_one).await?;
    if let Some(name) = r321.artifact.clone() {
        for (sink, catalog) in sinks.iter().zip(&catalogs) {
            let Some(copy) = catalog.as_ref().and_then(|c| c.get(&name)) else {
                continue;
            };
            if copy.complete && !copy.verified {
                r321.demote(
                    &sink.info().name,
                    format!("`{name}` is not verified{}", why_unverified(copy)),
                    &options.three_two_one,
                );
            }
        }
    }
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
    // Placement (issue 17): declared regions and jurisdictions, when configured.
    let infos: Vec<&crate::sink::SinkInfo> = sinks.iter().map(|s| s.info()).collect();
    rules.extend(crate::placement::placement_rules(
        &options.placement,
        &infos,
    ));
    Ok((ComplianceReport { at: now, rules }, catalogs))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::artifact::{ArtifactName, SIDECAR_FORMAT, Sidecar, SidecarVerification};
    use crate::clock::Clock;
    use crate::memory::MemorySink;
    use crate::sink::SinkExt;
    use crate::sink::{Medium, SinkInfo};

    async fn plant(sink: &MemorySink, time: Timestamp, verified: bool) -> ArtifactName {
        let name = ArtifactName::new("wst-backup", time).unwrap();
        let data = Bytes::from_static(b"ciphertext");
        sink.put_bytes(&name.artifact_object(), data.clone())
            .await
            .unwrap();
        let sidecar = Sidecar {
            audit_head: None,
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
            sources: Vec::new(),
            mac: None,
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
        // The drill is recorded 2 hours before `now`, whatever the real date is.
        let clock = Clock::manual(now.checked_sub(SignedDuration::from_hours(2)).unwrap());
        let audit = AuditLog::new(dir.path().join("audit.jsonl"), "otto").with_clock(clock);
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

        // Evidence from the future of `now` is not evidence at `now`: an hour before the drill
        // was recorded, R7 fails (the drill had not happened yet); R1 still passes.
        let before_drill = now.checked_sub(SignedDuration::from_hours(3)).unwrap();
        let r = compliance_status(&all, &audit, &opts, before_drill)
            .await
            .unwrap();
        let failed: Vec<&str> = r.violations().map(|v| v.rule.as_str()).collect();
        assert_eq!(failed, ["R7 restore tested"], "{r:#?}");

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
