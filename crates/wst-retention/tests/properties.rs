//! The planner's invariants as properties over random sinks, policies, clocks and time zones.
//!
//! Backups are drawn in clusters (several per hour, day or week) over three years around DST
//! transitions, with same-second ties, unverified, incomplete and future-dated backups.

use std::collections::{BTreeMap, BTreeSet};

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use proptest::prelude::*;
use wst_core::{BackupRecord, Reason, RetentionPlan};
use wst_retention::{Policy, plan, time_zone};

const ZONES: [&str; 5] = [
    "UTC",
    "Europe/Amsterdam",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
];

/// 2026-11-21T12:00:00Z
const NOW: i64 = 1_763_726_400;
const YEAR: i64 = 365 * 86_400;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}

#[derive(Debug, Clone)]
struct Input {
    backups: Vec<BackupRecord>,
    policy: Policy,
    now: Timestamp,
    tz: TimeZone,
}

/// Seconds before `NOW` (negative: future-dated), clustered so that periods hold several backups.
fn offset() -> impl Strategy<Value = i64> {
    prop_oneof![
        // Spread over three years.
        6 => 0..3 * YEAR,
        // Clustered in a few hours, days or weeks, on a coarse grid (so ties happen).
        3 => (0..40i64, 0..8i64).prop_map(|(cluster, k)| cluster * 86_400 * 9 + k * 1_800),
        // Near the 2025 and 2026 DST transitions of Europe and North America.
        2 => (prop::sample::select(vec![
            1_743_296_400i64, // 2025-03-30T01:00Z (EU spring)
            1_761_440_400,    // 2025-10-26T01:00Z (EU fall)
            1_741_503_600,    // 2025-03-09T07:00Z (US spring)
            1_762_063_200,    // 2025-11-02T06:00Z (US fall)
            1_761_354_000,    // 2025-10-25T01:00Z
        ]), -4i64..4).prop_map(|(t, k)| NOW - t + k * 1_200),
        // Future-dated.
        1 => -30 * 86_400..0i64,
    ]
}

fn backups() -> impl Strategy<Value = Vec<BackupRecord>> {
    prop::collection::vec(
        (
            offset(),
            prop::sample::select(vec!["wst-a", "wst-b"]),
            0..10u8,
        ),
        0..40,
    )
    .prop_map(|raw| {
        let mut seen = BTreeSet::new();
        raw.into_iter()
            .filter_map(|(off, prefix, state)| {
                let time = Timestamp::from_second(NOW - off).ok()?;
                let name = format!(
                    "{prefix}-{}",
                    time.to_zoned(TimeZone::UTC).strftime("%Y%m%d-%H%M%S")
                );
                seen.insert(name.clone()).then_some(BackupRecord {
                    name,
                    time,
                    verified: state >= 2,
                    complete: state != 0,
                })
            })
            .collect()
    })
}

fn policy() -> impl Strategy<Value = Policy> {
    (
        prop::array::uniform6(prop_oneof![2 => Just(0u32), 3 => 1..6u32]),
        prop::option::of(0..60i64),
        0..10i64,
        prop::option::of(0..1200i64),
    )
        .prop_map(|(counts, within, min_age, max_age)| {
            let mut p = Policy::default()
                .keep_last(counts[0])
                .keep_hourly(counts[1])
                .keep_daily(counts[2])
                .keep_weekly(counts[3])
                .keep_monthly(counts[4])
                .keep_yearly(counts[5])
                .min_age(min_age.days());
            // max_age strictly above min_age and at least keep_within.
            let max_age = max_age.map(|m| m.max(min_age + 1).max(within.unwrap_or(0)));
            if let Some(w) = within {
                p = p.keep_within(w.days());
            }
            if let Some(m) = max_age {
                p = p.max_age(m.days());
            }
            if !p.has_keep_rule() {
                p = p.keep_last(1);
            }
            p
        })
}

fn input() -> impl Strategy<Value = Input> {
    (
        backups(),
        policy(),
        prop::sample::select(ZONES.to_vec()),
        0..86_400i64,
    )
        .prop_map(|(backups, policy, zone, jitter)| Input {
            backups,
            policy,
            now: Timestamp::from_second(NOW + jitter).expect("in range"),
            tz: time_zone(zone).expect("zone in tzdb"),
        })
}

fn run(i: &Input) -> RetentionPlan {
    plan(&i.backups, &i.policy, i.now, &i.tz).expect("valid policy plans")
}

fn kept(p: &RetentionPlan) -> BTreeSet<String> {
    p.kept().map(|d| d.name.clone()).collect()
}

/// The count-rule reasons (`last #n`, `daily #n`, …) by name.
fn count_reasons(p: &RetentionPlan) -> BTreeMap<String, Vec<Reason>> {
    p.decisions
        .iter()
        .map(|d| {
            let r = d
                .reasons
                .iter()
                .filter(|r| matches!(r, Reason::Last { .. } | Reason::Period { .. }))
                .cloned()
                .collect();
            (d.name.clone(), r)
        })
        .collect()
}

fn newer(a: &BackupRecord, b: &BackupRecord) -> bool {
    (a.time, &a.name) > (b.time, &b.name)
}

/// Applies one of several "more keeping" changes to a policy.
fn widen(p: &Policy, which: u8, by: u32) -> Policy {
    let p = p.clone();
    match which % 10 {
        0 => p.clone().keep_last(p.keep_last + by),
        1 => p.clone().keep_hourly(p.keep_hourly + by),
        2 => p.clone().keep_daily(p.keep_daily + by),
        3 => p.clone().keep_weekly(p.keep_weekly + by),
        4 => p.clone().keep_monthly(p.keep_monthly + by),
        5 => p.clone().keep_yearly(p.keep_yearly + by),
        6 => {
            // Lengthen keep_within (or add it), staying within max_age.
            let cur = p.keep_within.map_or(0, |s| i64::from(s.get_days()));
            let max = p.max_age.map_or(i64::MAX, |s| i64::from(s.get_days()));
            p.clone().keep_within((cur + i64::from(by)).min(max).days())
        }
        7 => {
            // Raise min_age, staying below max_age.
            let cur = i64::from(p.min_age.get_days());
            let max = p.max_age.map_or(i64::MAX, |s| i64::from(s.get_days()) - 1);
            p.clone()
                .min_age((cur + i64::from(by)).min(max).max(cur).days())
        }
        8 => {
            // Lengthen max_age (only less is then deleted for age).
            match p.max_age {
                Some(m) => p
                    .clone()
                    .max_age((i64::from(m.get_days()) + i64::from(by)).days()),
                None => p,
            }
        }
        _ => p,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// Invariant 1: keep ⊎ delete = input; the plan is newest first and ignores input order.
    #[test]
    fn every_backup_decided_once(i in input(), seed in any::<u64>()) {
        let p = run(&i);
        prop_assert_eq!(p.decisions.len(), i.backups.len());
        let names: BTreeSet<&str> = p.decisions.iter().map(|d| d.name.as_str()).collect();
        let input: BTreeSet<&str> = i.backups.iter().map(|b| b.name.as_str()).collect();
        prop_assert_eq!(names, input);
        for w in p.decisions.windows(2) {
            prop_assert!((w[0].time, &w[0].name) > (w[1].time, &w[1].name));
        }
        for d in &p.decisions {
            prop_assert!(!d.reasons.is_empty());
        }
        let mut shuffled = i.clone();
        let len = shuffled.backups.len();
        if len > 1 {
            shuffled.backups.rotate_left((seed % len as u64) as usize);
            shuffled.backups.swap(0, (seed as usize / 7) % len);
        }
        prop_assert_eq!(run(&shuffled), p);
    }

    /// Invariants 2, 3 and 4, and 8's "never justify a deletion".
    #[test]
    fn deletions_are_safe(i in input()) {
        let p = run(&i);
        let by_name: BTreeMap<&str, &BackupRecord> =
            i.backups.iter().map(|b| (b.name.as_str(), b)).collect();
        let keep: BTreeMap<&str, bool> =
            p.decisions.iter().map(|d| (d.name.as_str(), d.keep)).collect();
        if let Some(newest) = i.backups.iter().max_by(|a, b| (a.time, &a.name).cmp(&(b.time, &b.name))) {
            prop_assert!(keep[newest.name.as_str()], "newest backup deleted");
        }
        if let Some(nv) = i.backups.iter().filter(|b| b.counts_at(i.now))
            .max_by(|a, b| (a.time, &a.name).cmp(&(b.time, &b.name))) {
            prop_assert!(keep[nv.name.as_str()], "newest verified backup deleted");
        }
        let min_age = i.policy.min_age_duration().unwrap();
        for d in p.deleted() {
            let b = by_name[d.name.as_str()];
            prop_assert!(b.time <= i.now, "future-dated {} deleted", b.name);
            prop_assert!(i.now.duration_since(b.time) >= min_age, "{} younger than min_age deleted", b.name);
            let justified = i.backups.iter()
                .any(|k| keep[k.name.as_str()] && k.counts_at(i.now) && newer(k, b));
            prop_assert!(justified, "{} deleted without a newer verified kept backup", b.name);
        }
    }

    /// Invariant 5: planning the kept set again deletes nothing.
    #[test]
    fn idempotent(i in input()) {
        let p = run(&i);
        let k = kept(&p);
        let again = Input {
            backups: i.backups.iter().filter(|b| k.contains(&b.name)).cloned().collect(),
            ..i.clone()
        };
        let q = run(&again);
        prop_assert_eq!(q.deleted().count(), 0, "second plan deletes {:?}", q.deleted().collect::<Vec<_>>());
    }

    /// Invariant 6: keeping more (a higher count, a new rule, a longer keep_within, min_age or
    /// max_age) never keeps less.
    #[test]
    fn monotonic(i in input(), which in 0..9u8, by in 1..5u32) {
        let wider = Input { policy: widen(&i.policy, which, by), ..i.clone() };
        let (a, b) = (kept(&run(&i)), kept(&run(&wider)));
        prop_assert!(a.is_subset(&b), "lost {:?} with {:?}", a.difference(&b).collect::<Vec<_>>(), wider.policy);
    }

    /// Invariant 7: moving `now` forward without new backups keeps the count-rule reasons.
    #[test]
    fn count_rules_independent_of_now(i in input(), later in 0..3 * YEAR) {
        let mut i = i;
        i.backups.retain(|b| b.time <= i.now);
        // max_age and keep_within move with now by design; the count rules must not.
        let before = count_reasons(&run(&i));
        let moved = Input {
            now: i.now + SignedDuration::from_secs(later),
            ..i.clone()
        };
        prop_assert_eq!(count_reasons(&run(&moved)), before);
    }

    /// Invariant 8: unverified and incomplete backups change no rule decision about others.
    #[test]
    fn non_counting_backups_change_no_rule(i in input()) {
        let with = run(&i);
        let only = Input {
            backups: i.backups.iter().filter(|b| b.counts_at(i.now)).cloned().collect(),
            ..i.clone()
        };
        let without = run(&only);
        let rules = |p: &RetentionPlan| -> BTreeMap<String, Vec<Reason>> {
            p.decisions.iter()
                .filter(|d| only.backups.iter().any(|b| b.name == d.name))
                .map(|d| (d.name.clone(), d.reasons.iter().filter(|r| r.is_rule()).cloned().collect()))
                .collect()
        };
        prop_assert_eq!(rules(&with), rules(&without));
        for d in &with.decisions {
            let b = i.backups.iter().find(|b| b.name == d.name).unwrap();
            if !b.counts_at(i.now) {
                prop_assert!(!d.reasons.iter().any(Reason::is_rule), "{} selected by a rule", d.name);
            }
        }
    }

    /// Durations are read in the time zone: max_age "1y" at `now` deletes only what is older
    /// than the same wall-clock instant a year earlier.
    #[test]
    fn max_age_is_calendar_aware(i in input()) {
        let p = run(&i);
        if let Some(max) = i.policy.max_age {
            let cutoff = i.now.to_zoned(i.tz.clone()).checked_sub(max).unwrap().timestamp();
            for d in p.decisions.iter().filter(|d| d.reasons.first() == Some(&Reason::MaxAge)) {
                prop_assert!(d.time < cutoff);
            }
        }
    }

    /// The retention ceiling (issue 18): a backup taken before `now - max_age` is kept only by
    /// a protection (the newest backup, the newest verified, no newer verified, future-dated),
    /// never by a keep rule alone, and its reasons then say `max_age_conflict`; the single
    /// newest backup is always kept.
    #[test]
    fn ceiling_yields_only_to_protections(i in input()) {
        let p = run(&i);
        let Some(max) = i.policy.max_age else { return Ok(()); };
        let cutoff = i.now.to_zoned(i.tz.clone()).checked_sub(max).unwrap().timestamp();
        for d in p.decisions.iter().filter(|d| d.time < cutoff && d.keep) {
            prop_assert!(d.reasons.contains(&Reason::MaxAgeConflict), "{}: {:?}", d.name, d.reasons);
            prop_assert!(
                d.reasons.iter().any(|r| matches!(
                    r,
                    Reason::LastBackup | Reason::NewestVerified | Reason::NoNewerVerified
                        | Reason::FutureDated | Reason::MinAge
                )),
                "{} kept over the ceiling without a protection: {:?}", d.name, d.reasons
            );
        }
        if let Some(newest) = p.decisions.iter().max_by(|a, b| (a.time, &a.name).cmp(&(b.time, &b.name))) {
            prop_assert!(newest.keep, "the newest backup {} was deleted", newest.name);
        }
    }
}
