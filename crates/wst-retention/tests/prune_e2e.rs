//! The planner driving the executor on an in-memory sink: what `wst_core::prune` deletes is
//! exactly what the plan deletes, the executor refuses nothing a correct plan asks, and a
//! second prune deletes nothing.

use std::collections::BTreeSet;

use bytes::Bytes;
use futures::executor::block_on;
use jiff::{SignedDuration, Timestamp};
use wst_core::{
    ArtifactName, BackupRecord, DEFAULT_PREFIX, MemorySink, PruneOptions, SIDECAR_FORMAT, Sidecar,
    SidecarVerification, Sink, SinkExt, prune,
};
use wst_retention::{Planner, Policy, time_zone};

fn put(sink: &MemorySink, time: Timestamp, verified: bool, with_sidecar: bool) -> BackupRecord {
    let name = ArtifactName::new(DEFAULT_PREFIX, time).unwrap();
    block_on(sink.put_bytes(&name.artifact_object(), Bytes::from_static(b"ciphertext"))).unwrap();
    if with_sidecar {
        let sidecar = Sidecar {
            audit_head: None,
            format: SIDECAR_FORMAT.to_owned(),
            name: name.clone(),
            object: name.artifact_object(),
            created: time,
            completed: time,
            cipher_suite: "test".to_owned(),
            key_fingerprints: Vec::new(),
            ciphertext_size: 10,
            ciphertext_sha256: "00".repeat(32),
            tool_version: "test".to_owned(),
            sources: Vec::new(),
            mac: None,
            verification: Some(SidecarVerification {
                at: time,
                passed: verified,
                checks_passed: 3,
                checks_failed: u32::from(!verified),
            }),
        };
        block_on(sink.put_bytes(
            &name.sidecar_object(),
            Bytes::from(serde_json::to_vec(&sidecar).unwrap()),
        ))
        .unwrap();
    }
    BackupRecord {
        name: name.to_string(),
        time,
        verified,
        complete: with_sidecar,
    }
}

fn artifacts(sink: &MemorySink) -> BTreeSet<String> {
    block_on(sink.list(""))
        .unwrap()
        .into_iter()
        .filter_map(|m| m.name.strip_suffix(".tar.zst.wst").map(str::to_owned))
        .collect()
}

#[test]
fn executor_applies_the_plan_exactly_and_is_idempotent() {
    let now: Timestamp = "2026-11-21T12:00:00Z".parse().unwrap();
    let tz = time_zone("Europe/Amsterdam").unwrap();
    let sink = MemorySink::new("local-c");
    let mut records = Vec::new();
    for day in 0..90i64 {
        // 01:00 UTC, every day; day 3 failed verification; day 40 crashed (no sidecar).
        let time = now - SignedDuration::from_hours(24 * day + 11);
        records.push(put(&sink, time, day != 3, day != 40));
    }
    let planner = Planner::new(Policy::default().keep_daily(7).keep_weekly(4), tz).unwrap();
    let plan = planner.plan(&records, now).unwrap();
    let planned_deletes: BTreeSet<String> = plan.deleted().map(|d| d.name.clone()).collect();
    let planned_keeps: BTreeSet<String> = plan.kept().map(|d| d.name.clone()).collect();
    assert!(
        planned_deletes.contains(&records[40].name),
        "crashed run is deleted"
    );

    let dry = block_on(prune(
        &sink,
        &planner,
        now,
        &PruneOptions::new().dry_run(true),
    ))
    .unwrap();
    assert_eq!(artifacts(&sink).len(), 90);
    let dry_deleted: BTreeSet<String> = dry.deleted.iter().map(|e| e.name.clone()).collect();
    assert_eq!(dry_deleted, planned_deletes);

    let report = block_on(prune(&sink, &planner, now, &PruneOptions::new())).unwrap();
    assert!(report.refusals.is_empty(), "{:?}", report.refusals);
    assert!(report.failures.is_empty());
    assert!(report.anomalies.is_empty());
    let deleted: BTreeSet<String> = report.deleted.iter().map(|e| e.name.clone()).collect();
    assert_eq!(deleted, planned_deletes);
    assert_eq!(artifacts(&sink), planned_keeps);
    // Sidecars went with their artifacts.
    let sidecars = block_on(sink.list(""))
        .unwrap()
        .into_iter()
        .filter(|m| m.name.ends_with(".sidecar.json"))
        .count();
    assert_eq!(sidecars, planned_keeps.len());
    // Oldest first.
    assert!(report.deleted.windows(2).all(|w| w[0].time < w[1].time));

    let again = block_on(prune(
        &sink,
        &planner,
        now,
        &PruneOptions::new().previous_count(report.remaining()),
    ))
    .unwrap();
    assert!(again.deleted.is_empty());
    assert_eq!(again.listed, planned_keeps.len());
}

mod random {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        /// For any sink and policy, the executor deletes exactly what the planner deletes and
        /// refuses nothing: the two implementations of the invariants agree.
        #[test]
        fn executor_and_planner_agree(
            backups in prop::collection::btree_map(-3i64..400, 0..4u8, 0..25),
            daily in 0..5u32, weekly in 0..4u32, monthly in 0..4u32, last in 0..3u32,
            min_age_days in 0..10i64,
        ) {
            let now: Timestamp = "2026-11-21T12:00:00Z".parse().unwrap();
            let sink = MemorySink::new("local");
            let mut records = Vec::new();
            for (&day, &state) in &backups {
                // Spread within the day so that several land in one week or month.
                let time = now - SignedDuration::from_hours(24 * day + (day * 7) % 23);
                records.push(put(&sink, time, state != 1, state != 2));
            }
            let policy = Policy::default()
                .keep_last(last.max(u32::from(daily + weekly + monthly == 0)))
                .keep_daily(daily)
                .keep_weekly(weekly)
                .keep_monthly(monthly)
                .min_age(jiff::Span::new().days(min_age_days));
            let options = PruneOptions::new().min_age(policy.min_age_duration().unwrap());
            let planner = Planner::new(policy, time_zone("Europe/Amsterdam").unwrap()).unwrap();
            let plan = planner.plan(&records, now).unwrap();
            let report = block_on(prune(&sink, &planner, now, &options)).unwrap();
            prop_assert!(report.refusals.is_empty(), "{:?}", report.refusals);
            let planned: BTreeSet<String> = plan.deleted().map(|d| d.name.clone()).collect();
            let deleted: BTreeSet<String> = report.deleted.iter().map(|e| e.name.clone()).collect();
            prop_assert_eq!(deleted, planned);
            let kept: BTreeSet<String> = plan.kept().map(|d| d.name.clone()).collect();
            prop_assert_eq!(artifacts(&sink), kept);
        }
    }
}
