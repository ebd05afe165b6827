//! Example cases: one row per rule and per tricky calendar situation. Each row gives the policy
//! (as the JSON an operator writes), `now`, the time zone, the backups, and the exact plan,
//! newest first, as `TIME keep|delete: reasons`.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use rstest::rstest;
use wst_core::{BackupRecord, Flag, Period, Reason, RetentionPlan};
use wst_retention::{Error, Planner, Policy, plan, time_zone};

/// `"2026-11-21T01:00:00Z"`, optionally followed by ` u` (unverified) or ` i` (incomplete), and
/// optionally preceded by `prefix@` (default prefix `wst-backup`).
fn record(spec: &str) -> BackupRecord {
    let mut parts = spec.split_whitespace();
    let first = parts.next().expect("a time");
    let (prefix, time) = first.split_once('@').unwrap_or(("wst-backup", first));
    let time: Timestamp = time.parse().expect("RFC 3339 time");
    let flag = parts.next();
    BackupRecord {
        name: format!(
            "{prefix}-{}",
            time.to_zoned(TimeZone::UTC).strftime("%Y%m%d-%H%M%S")
        ),
        time,
        verified: flag.is_none(),
        complete: flag != Some("i"),
    }
}

fn label(name: &str, time: Timestamp) -> String {
    let prefix = &name[..name.len() - 16];
    if prefix == "wst-backup" {
        time.to_string()
    } else {
        format!("{prefix}@{time}")
    }
}

fn render(plan: &RetentionPlan) -> Vec<String> {
    plan.decisions
        .iter()
        .map(|d| {
            let reasons: Vec<String> = d.reasons.iter().map(ToString::to_string).collect();
            format!(
                "{} {}: {}",
                label(&d.name, d.time),
                if d.keep { "keep" } else { "delete" },
                reasons.join(", ")
            )
        })
        .collect()
}

fn run(policy: &str, now: &str, tz: &str, backups: &[&str]) -> RetentionPlan {
    let policy: Policy = serde_json::from_str(policy).expect("policy JSON");
    let now: Timestamp = now.parse().expect("now");
    let tz = time_zone(tz).expect("time zone");
    let records: Vec<BackupRecord> = backups.iter().map(|s| record(s)).collect();
    let forward = plan(&records, &policy, now, &tz).expect("plan");
    // The plan does not depend on the input order.
    let mut reversed = records.clone();
    reversed.reverse();
    assert_eq!(plan(&reversed, &policy, now, &tz).expect("plan"), forward);
    forward
}

#[rstest]
#[case::keep_last(
    r#"{"keep_last": 3, "min_age": "0s"}"#, "2026-11-21T12:00:00Z", "UTC",
    &["2026-11-21T01:00:00Z", "2026-11-20T01:00:00Z", "2026-11-19T01:00:00Z",
      "2026-11-18T01:00:00Z", "2026-11-17T01:00:00Z"],
    &["2026-11-21T01:00:00Z keep: last #1, last_backup, newest_verified",
      "2026-11-20T01:00:00Z keep: last #2",
      "2026-11-19T01:00:00Z keep: last #3",
      "2026-11-18T01:00:00Z delete: not_selected",
      "2026-11-17T01:00:00Z delete: not_selected"])]
#[case::keep_daily_first_of_each_day_skipping_empty_days(
    r#"{"keep_daily": 3, "min_age": "0s"}"#, "2026-11-21T12:00:00Z", "UTC",
    &["2026-11-21T01:00:00Z", "2026-11-21T00:30:00Z", "2026-11-20T22:00:00Z",
      "2026-11-20T03:00:00Z", "2026-11-18T12:00:00Z", "2026-11-17T12:00:00Z"],
    &["2026-11-21T01:00:00Z keep: daily #1, last_backup, newest_verified",
      "2026-11-21T00:30:00Z delete: not_selected",
      "2026-11-20T22:00:00Z keep: daily #2",
      "2026-11-20T03:00:00Z delete: not_selected",
      "2026-11-18T12:00:00Z keep: daily #3",
      "2026-11-17T12:00:00Z delete: not_selected"])]
#[case::keep_daily_fewer_periods_keeps_oldest(
    r#"{"keep_daily": 5, "min_age": "0s"}"#, "2026-11-21T12:00:00Z", "UTC",
    &["2026-11-21T01:00:00Z", "2026-11-20T10:00:00Z", "2026-11-20T05:00:00Z"],
    &["2026-11-21T01:00:00Z keep: daily #1, last_backup, newest_verified",
      "2026-11-20T10:00:00Z keep: daily #2",
      "2026-11-20T05:00:00Z keep: daily #3 (oldest)"])]
#[case::weekly_after_daily_uses_period_without_counting(
    r#"{"keep_daily": 2, "keep_weekly": 2, "min_age": "0s"}"#, "2026-11-21T12:00:00Z", "UTC",
    &["2026-11-21T01:00:00Z", "2026-11-20T01:00:00Z", "2026-11-19T01:00:00Z",
      "2026-11-15T01:00:00Z", "2026-11-08T01:00:00Z", "2026-11-01T01:00:00Z"],
    &["2026-11-21T01:00:00Z keep: daily #1, last_backup, newest_verified",
      "2026-11-20T01:00:00Z keep: daily #2",
      "2026-11-19T01:00:00Z delete: not_selected",
      "2026-11-15T01:00:00Z keep: weekly #1",
      "2026-11-08T01:00:00Z keep: weekly #2",
      "2026-11-01T01:00:00Z delete: not_selected"])]
#[case::monthly_oldest(
    r#"{"keep_monthly": 3, "min_age": "0s"}"#, "2026-11-21T12:00:00Z", "UTC",
    &["2026-11-20T01:00:00Z", "2026-11-01T01:00:00Z", "2026-10-15T01:00:00Z",
      "2026-10-02T01:00:00Z"],
    &["2026-11-20T01:00:00Z keep: monthly #1, last_backup, newest_verified",
      "2026-11-01T01:00:00Z delete: not_selected",
      "2026-10-15T01:00:00Z keep: monthly #2",
      "2026-10-02T01:00:00Z keep: monthly #3 (oldest)"])]
#[case::yearly_in_local_time(
    // 2025-12-31T23:30Z is already 2026 in Amsterdam.
    r#"{"keep_yearly": 2, "min_age": "0s"}"#, "2026-11-21T12:00:00Z", "Europe/Amsterdam",
    &["2026-06-01T01:00:00Z", "2025-12-31T23:30:00Z", "2025-12-31T22:30:00Z",
      "2025-06-01T01:00:00Z"],
    &["2026-06-01T01:00:00Z keep: yearly #1, last_backup, newest_verified",
      "2025-12-31T23:30:00Z delete: not_selected",
      "2025-12-31T22:30:00Z keep: yearly #2",
      "2025-06-01T01:00:00Z delete: not_selected"])]
#[case::iso_weeks_across_year_boundary(
    // 2026-12-28 (Mon) .. 2027-01-03 (Sun) is ISO week 2026-W53; 2027-01-04 starts 2027-W01.
    r#"{"keep_weekly": 3, "min_age": "0s"}"#, "2027-01-10T00:00:00Z", "UTC",
    &["2027-01-04T12:00:00Z", "2027-01-03T12:00:00Z", "2026-12-31T12:00:00Z",
      "2026-12-27T12:00:00Z", "2026-12-20T12:00:00Z"],
    &["2027-01-04T12:00:00Z keep: weekly #1, last_backup, newest_verified",
      "2027-01-03T12:00:00Z keep: weekly #2",
      "2026-12-31T12:00:00Z delete: not_selected",
      "2026-12-27T12:00:00Z keep: weekly #3",
      "2026-12-20T12:00:00Z delete: not_selected"])]
#[case::dst_fall_back_repeated_hour_is_two_hours(
    // Amsterdam 2026-10-25: 03:00 CEST becomes 02:00 CET at 01:00Z; 02:xx happens twice.
    r#"{"keep_hourly": 3, "min_age": "0s"}"#, "2026-10-26T00:00:00Z", "Europe/Amsterdam",
    &["2026-10-25T02:10:00Z", "2026-10-25T01:40:00Z", "2026-10-25T01:10:00Z",
      "2026-10-25T00:40:00Z", "2026-10-25T00:10:00Z"],
    &["2026-10-25T02:10:00Z keep: hourly #1, last_backup, newest_verified",
      "2026-10-25T01:40:00Z keep: hourly #2",
      "2026-10-25T01:10:00Z delete: not_selected",
      "2026-10-25T00:40:00Z keep: hourly #3",
      "2026-10-25T00:10:00Z delete: not_selected"])]
#[case::dst_fall_back_daily_uses_local_days(
    // 23:30Z is 00:30 on the 26th in Amsterdam; 22:30Z is 23:30 on the 25th (a 25-hour day).
    r#"{"keep_daily": 2, "min_age": "0s"}"#, "2026-10-27T00:00:00Z", "Europe/Amsterdam",
    &["2026-10-25T23:30:00Z", "2026-10-25T22:30:00Z", "2026-10-24T23:30:00Z"],
    &["2026-10-25T23:30:00Z keep: daily #1, last_backup, newest_verified",
      "2026-10-25T22:30:00Z keep: daily #2",
      "2026-10-24T23:30:00Z delete: not_selected"])]
#[case::same_backups_in_utc_group_differently(
    r#"{"keep_daily": 2, "min_age": "0s"}"#, "2026-10-27T00:00:00Z", "UTC",
    &["2026-10-25T23:30:00Z", "2026-10-25T22:30:00Z", "2026-10-24T23:30:00Z"],
    &["2026-10-25T23:30:00Z keep: daily #1, last_backup, newest_verified",
      "2026-10-25T22:30:00Z delete: not_selected",
      "2026-10-24T23:30:00Z keep: daily #2"])]
#[case::dst_spring_forward_missing_hour_does_not_count(
    // Amsterdam 2026-03-29: 02:00 CET becomes 03:00 CEST at 01:00Z; 02:xx does not exist.
    r#"{"keep_hourly": 3, "min_age": "0s"}"#, "2026-03-30T00:00:00Z", "Europe/Amsterdam",
    &["2026-03-29T01:30:00Z", "2026-03-29T01:00:00Z", "2026-03-29T00:59:00Z",
      "2026-03-29T00:30:00Z"],
    &["2026-03-29T01:30:00Z keep: hourly #1, last_backup, newest_verified",
      "2026-03-29T01:00:00Z delete: not_selected",
      "2026-03-29T00:59:00Z keep: hourly #2",
      "2026-03-29T00:30:00Z keep: hourly #3 (oldest)"])]
#[case::same_second_ties_broken_by_name(
    r#"{"keep_last": 1, "min_age": "0s"}"#, "2026-11-21T12:00:00Z", "UTC",
    &["wst-a@2026-11-21T01:00:00Z", "wst-b@2026-11-21T01:00:00Z"],
    &["wst-b@2026-11-21T01:00:00Z keep: last #1, last_backup, newest_verified",
      "wst-a@2026-11-21T01:00:00Z delete: not_selected"])]
#[case::stale_sink_keeps_its_last_backup(
    r#"{"keep_within": "7d", "min_age": "7d"}"#, "2026-11-21T12:00:00Z", "UTC",
    &["2026-09-03T01:00:00Z", "2026-09-02T01:00:00Z", "2026-09-01T01:00:00Z"],
    &["2026-09-03T01:00:00Z keep: last_backup, newest_verified",
      "2026-09-02T01:00:00Z delete: not_selected",
      "2026-09-01T01:00:00Z delete: not_selected"])]
#[case::stale_sink_max_age_conflict(
    r#"{"keep_daily": 3, "max_age": "30d"}"#, "2026-11-21T12:00:00Z", "UTC",
    &["2026-09-03T01:00:00Z", "2026-09-02T01:00:00Z", "2026-09-01T01:00:00Z"],
    &["2026-09-03T01:00:00Z keep: daily #1, last_backup, newest_verified, max_age_conflict",
      "2026-09-02T01:00:00Z delete: max_age, daily #2",
      "2026-09-01T01:00:00Z delete: max_age, daily #3"])]
#[case::future_dated_counts_for_nothing(
    r#"{"keep_last": 1, "min_age": "0s"}"#, "2026-11-21T12:00:00Z", "UTC",
    &["2027-05-01T01:00:00Z", "2026-11-21T01:00:00Z", "2026-11-20T01:00:00Z",
      "2026-11-19T01:00:00Z"],
    &["2027-05-01T01:00:00Z keep: future_dated, last_backup, no_newer_verified",
      "2026-11-21T01:00:00Z keep: last #1, newest_verified",
      "2026-11-20T01:00:00Z delete: not_selected",
      "2026-11-19T01:00:00Z delete: not_selected"])]
#[case::mixed_verified_unverified_incomplete(
    r#"{"keep_last": 2, "min_age": "0s"}"#, "2026-11-21T12:00:00Z", "UTC",
    &["2026-11-21T01:00:00Z u", "2026-11-20T01:00:00Z", "2026-11-19T01:00:00Z u",
      "2026-11-18T01:00:00Z", "2026-11-17T01:00:00Z i", "2026-11-16T01:00:00Z"],
    &["2026-11-21T01:00:00Z keep: last_backup, no_newer_verified, unverified",
      "2026-11-20T01:00:00Z keep: last #1, newest_verified",
      "2026-11-19T01:00:00Z delete: not_selected, unverified",
      "2026-11-18T01:00:00Z keep: last #2",
      "2026-11-17T01:00:00Z delete: not_selected, incomplete",
      "2026-11-16T01:00:00Z delete: not_selected"])]
#[case::nothing_verified_nothing_deleted(
    r#"{"keep_last": 1, "min_age": "0s"}"#, "2026-11-21T12:00:00Z", "UTC",
    &["2026-11-21T01:00:00Z u", "2026-11-20T01:00:00Z i", "2026-11-19T01:00:00Z u"],
    &["2026-11-21T01:00:00Z keep: last_backup, no_newer_verified, unverified",
      "2026-11-20T01:00:00Z keep: no_newer_verified, incomplete",
      "2026-11-19T01:00:00Z keep: no_newer_verified, unverified"])]
#[case::min_age_default_seven_days(
    r#"{"keep_last": 1}"#, "2026-11-21T12:00:00Z", "UTC",
    &["2026-11-21T01:00:00Z", "2026-11-20T01:00:00Z", "2026-11-15T01:00:00Z",
      "2026-11-14T12:00:01Z", "2026-11-14T12:00:00Z", "2026-11-14T01:00:00Z"],
    &["2026-11-21T01:00:00Z keep: last #1, min_age, last_backup, newest_verified",
      "2026-11-20T01:00:00Z keep: min_age",
      "2026-11-15T01:00:00Z keep: min_age",
      "2026-11-14T12:00:01Z keep: min_age",
      "2026-11-14T12:00:00Z delete: not_selected",
      "2026-11-14T01:00:00Z delete: not_selected"])]
#[case::keep_within(
    r#"{"keep_within": "2d", "min_age": "0s"}"#, "2026-11-21T12:00:00Z", "UTC",
    &["2026-11-21T01:00:00Z", "2026-11-20T01:00:00Z", "2026-11-19T13:00:00Z",
      "2026-11-19T12:00:00Z", "2026-11-19T11:00:00Z"],
    &["2026-11-21T01:00:00Z keep: within, last_backup, newest_verified",
      "2026-11-20T01:00:00Z keep: within",
      "2026-11-19T13:00:00Z keep: within",
      "2026-11-19T12:00:00Z delete: not_selected",
      "2026-11-19T11:00:00Z delete: not_selected"])]
#[case::keep_within_does_not_use_up_counts(
    r#"{"keep_within": "3d", "keep_daily": 2, "min_age": "0s"}"#, "2026-11-21T12:00:00Z", "UTC",
    &["2026-11-21T01:00:00Z", "2026-11-20T01:00:00Z", "2026-11-19T01:00:00Z",
      "2026-11-18T01:00:00Z"],
    &["2026-11-21T01:00:00Z keep: daily #1, within, last_backup, newest_verified",
      "2026-11-20T01:00:00Z keep: daily #2, within",
      "2026-11-19T01:00:00Z keep: within",
      "2026-11-18T01:00:00Z delete: not_selected"])]
#[case::max_age_overrides_rules(
    r#"{"keep_daily": 10, "min_age": "1d", "max_age": "3d"}"#, "2026-11-21T12:00:00Z", "UTC",
    &["2026-11-21T01:00:00Z", "2026-11-20T01:00:00Z", "2026-11-19T01:00:00Z",
      "2026-11-18T01:00:00Z", "2026-11-17T01:00:00Z"],
    &["2026-11-21T01:00:00Z keep: daily #1, min_age, last_backup, newest_verified",
      "2026-11-20T01:00:00Z keep: daily #2",
      "2026-11-19T01:00:00Z keep: daily #3",
      "2026-11-18T01:00:00Z delete: max_age, daily #4",
      "2026-11-17T01:00:00Z delete: max_age, daily #5"])]
#[case::max_age_keeps_what_no_newer_verified_protects(
    r#"{"keep_last": 1, "min_age": "1d", "max_age": "3d"}"#, "2026-11-21T12:00:00Z", "UTC",
    &["2026-11-21T01:00:00Z u", "2026-11-17T01:00:00Z u", "2026-11-16T01:00:00Z",
      "2026-11-15T01:00:00Z"],
    &["2026-11-21T01:00:00Z keep: min_age, last_backup, no_newer_verified, unverified",
      "2026-11-17T01:00:00Z keep: no_newer_verified, max_age_conflict, unverified",
      "2026-11-16T01:00:00Z keep: last #1, newest_verified, max_age_conflict",
      "2026-11-15T01:00:00Z delete: max_age"])]
fn plans(
    #[case] policy: &str,
    #[case] now: &str,
    #[case] tz: &str,
    #[case] backups: &[&str],
    #[case] expected: &[&str],
) {
    let plan = run(policy, now, tz, backups);
    assert_eq!(render(&plan), expected);
}

#[test]
fn flags_future_dated_and_max_age_conflicts() {
    let plan = run(
        r#"{"keep_last": 1, "min_age": "1d", "max_age": "3d"}"#,
        "2026-11-21T12:00:00Z",
        "UTC",
        &[
            "2027-05-01T01:00:00Z",
            "2026-11-10T01:00:00Z",
            "2026-11-09T01:00:00Z",
        ],
    );
    assert_eq!(
        plan.flags,
        vec![
            Flag::FutureDated {
                name: "wst-backup-20270501-010000".into(),
                time: "2027-05-01T01:00:00Z".parse().unwrap(),
            },
            Flag::MaxAgeConflict {
                name: "wst-backup-20261110-010000".into(),
                time: "2026-11-10T01:00:00Z".parse().unwrap(),
                protected_by: vec![Reason::NewestVerified],
            },
        ]
    );
    assert_eq!(
        render(&plan),
        [
            "2027-05-01T01:00:00Z keep: future_dated, last_backup, no_newer_verified",
            "2026-11-10T01:00:00Z keep: last #1, newest_verified, max_age_conflict",
            "2026-11-09T01:00:00Z delete: max_age",
        ]
    );
}

#[rstest]
#[case::empty(r"{}")]
#[case::all_zero(r#"{"keep_last": 0, "keep_daily": 0, "keep_yearly": 0, "keep_within": "0s"}"#)]
#[case::only_ages(r#"{"min_age": "7d", "max_age": "1y"}"#)]
fn empty_policy_is_an_error(#[case] policy: &str) {
    let policy: Policy = serde_json::from_str(policy).unwrap();
    let err = plan(&[], &policy, Timestamp::UNIX_EPOCH, &TimeZone::UTC).unwrap_err();
    assert!(matches!(err, Error::EmptyPolicy), "{err}");
    assert!(matches!(
        Planner::new(policy, TimeZone::UTC),
        Err(Error::EmptyPolicy)
    ));
}

#[rstest]
#[case::max_age_not_above_min_age(r#"{"keep_daily": 7, "min_age": "7d", "max_age": "7d"}"#)]
#[case::within_beyond_max_age(r#"{"keep_within": "2y", "max_age": "1y"}"#)]
fn conflicting_durations_are_an_error(#[case] policy: &str) {
    let policy: Policy = serde_json::from_str(policy).unwrap();
    let now: Timestamp = "2026-11-21T12:00:00Z".parse().unwrap();
    let err = plan(&[], &policy, now, &TimeZone::UTC).unwrap_err();
    assert!(matches!(err, Error::ConflictingDurations(_)), "{err}");
}

#[rstest]
#[case::negative_min_age(r#"{"keep_daily": 7, "min_age": "-1d"}"#, "min_age")]
#[case::calendar_min_age(r#"{"keep_daily": 7, "min_age": "1mo"}"#, "min_age")]
#[case::negative_max_age(r#"{"keep_daily": 7, "max_age": "-1y"}"#, "max_age")]
#[case::zero_max_age(r#"{"keep_daily": 7, "min_age": "0s", "max_age": "0s"}"#, "max_age")]
fn invalid_durations_are_an_error(#[case] policy: &str, #[case] field: &str) {
    let policy: Policy = serde_json::from_str(policy).unwrap();
    let now: Timestamp = "2026-11-21T12:00:00Z".parse().unwrap();
    match plan(&[], &policy, now, &TimeZone::UTC) {
        Err(Error::InvalidDuration { field: f, .. }) => assert_eq!(f, field),
        other => panic!("expected InvalidDuration for {field}, got {other:?}"),
    }
}

#[test]
fn unknown_policy_field_is_rejected() {
    let err = serde_json::from_str::<Policy>(r#"{"keep_dayly": 7}"#).unwrap_err();
    assert!(err.to_string().contains("keep_dayly"), "{err}");
}

#[test]
fn duplicate_names_are_an_error() {
    let a = record("2026-11-21T01:00:00Z");
    let err = plan(
        &[a.clone(), a],
        &Policy::default().keep_last(1),
        "2026-11-22T00:00:00Z".parse().unwrap(),
        &TimeZone::UTC,
    )
    .unwrap_err();
    assert!(
        matches!(&err, Error::DuplicateName { name } if name == "wst-backup-20261121-010000"),
        "{err}"
    );
}

#[test]
fn unknown_time_zone_is_an_error() {
    assert!(matches!(
        time_zone("Europe/Atlantis"),
        Err(Error::UnknownTimeZone { .. })
    ));
}

#[rstest]
#[case(6, false)]
#[case(7, true)]
#[case(14, true)]
#[case(15, false)]
fn rolling_preset_follows_doctrine_r4(#[case] count: u32, #[case] ok: bool) {
    match Policy::rolling(count) {
        Ok(p) => {
            assert!(ok);
            assert_eq!(p.keep_last, count);
            assert_eq!(
                p.min_age_duration().unwrap(),
                jiff::SignedDuration::from_hours(168)
            );
        }
        Err(Error::RollingCountOutOfRange { count: c }) => {
            assert!(!ok);
            assert_eq!(c, count);
        }
        Err(e) => panic!("unexpected {e}"),
    }
}

/// Three years of daily backups at 02:00 Amsterdam time under the GFS preset: 30 dailies, 12
/// weeklies and 12 monthlies beyond them, and yearlies back to the oldest backup.
#[test]
fn gfs_preset_over_three_years_of_dailies() {
    let tz = time_zone("Europe/Amsterdam").unwrap();
    let now: Timestamp = "2026-11-21T12:00:00Z".parse().unwrap();
    let start = jiff::civil::date(2023, 11, 22).at(2, 0, 0, 0);
    let records: Vec<BackupRecord> = (0..1096)
        .map(|d| {
            let time = start
                .checked_add(jiff::Span::new().days(d))
                .unwrap()
                .to_zoned(tz.clone())
                .unwrap()
                .timestamp();
            BackupRecord {
                name: format!(
                    "wst-backup-{}",
                    time.to_zoned(TimeZone::UTC).strftime("%Y%m%d-%H%M%S")
                ),
                time,
                verified: true,
                complete: true,
            }
        })
        .collect();
    assert_eq!(
        records.last().unwrap().time.to_string(),
        "2026-11-21T01:00:00Z"
    );
    let plan = plan(&records, &Policy::gfs(), now, &tz).unwrap();
    let count = |p: Period| {
        plan.decisions
            .iter()
            .flat_map(|d| &d.reasons)
            .filter(|r| matches!(r, Reason::Period { period, .. } if *period == p))
            .count()
    };
    assert_eq!(count(Period::Daily), 30);
    assert_eq!(count(Period::Weekly), 12);
    assert_eq!(count(Period::Monthly), 12);
    // The monthlies reach back to October 2025, so 2026 and 2025 are used up (their newest
    // backups are kept already); 2024 and 2023 are new yearlies; only 2 of 7 years were found,
    // so the oldest backup is kept too.
    let yearly: Vec<String> = plan
        .decisions
        .iter()
        .flat_map(|d| d.reasons.iter().map(move |r| (d, r)))
        .filter(|(_, r)| {
            matches!(
                r,
                Reason::Period {
                    period: Period::Yearly,
                    ..
                }
            )
        })
        .map(|(d, r)| format!("{} {r}", d.time))
        .collect();
    assert_eq!(
        yearly,
        [
            "2024-12-31T01:00:00Z yearly #1",
            "2023-12-31T01:00:00Z yearly #2",
            "2023-11-22T01:00:00Z yearly #3 (oldest)",
        ]
    );
    assert_eq!(plan.kept().count(), 30 + 12 + 12 + 3);
    assert!(plan.flags.is_empty());
}

#[test]
fn planner_errors_cross_the_trait_boundary_as_retention_errors() {
    use wst_core::RetentionPolicy;
    let planner = Planner::new(Policy::default().keep_last(3), TimeZone::UTC).unwrap();
    let a = record("2026-11-21T01:00:00Z");
    let err = RetentionPolicy::plan(
        &planner,
        &[a.clone(), a],
        "2026-11-22T00:00:00Z".parse().unwrap(),
    )
    .unwrap_err();
    match err {
        wst_core::Error::Retention(msg) => assert!(msg.contains("more than once"), "{msg}"),
        other => panic!("expected wst_core::Error::Retention, got {other:?}"),
    }
}

#[test]
fn policy_round_trips_through_json() {
    let json = r#"{"keep_last": 2, "keep_daily": 30, "keep_weekly": 12, "keep_within": "36h",
                   "min_age": "P7D", "max_age": "8y"}"#;
    let p: Policy = serde_json::from_str(json).unwrap();
    let back: Policy = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
    assert_eq!(
        (
            back.keep_last,
            back.keep_daily,
            back.keep_weekly,
            back.keep_monthly
        ),
        (2, 30, 12, 0)
    );
    assert_eq!(
        back.keep_within.unwrap().fieldwise(),
        jiff::Span::new().hours(36)
    );
    assert_eq!(back.min_age.fieldwise(), jiff::Span::new().days(7));
    assert_eq!(
        back.max_age.unwrap().fieldwise(),
        jiff::Span::new().years(8)
    );
    // Defaults: min_age 7 days, no max_age.
    let d: Policy = serde_json::from_str(r#"{"keep_daily": 1}"#).unwrap();
    assert_eq!(
        d.min_age_duration().unwrap(),
        jiff::SignedDuration::from_hours(168)
    );
    assert!(d.max_age.is_none());
}

#[test]
fn plan_request_document() {
    let request: wst_retention::PlanRequest = serde_json::from_str(
        r#"{ "policy": {"keep_daily": 1, "min_age": "0s"},
             "now": "2026-11-21T02:00:00Z",
             "time_zone": "Europe/Amsterdam",
             "backups": [
               {"name": "wst-backup-20261120-010000", "time": "2026-11-20T01:00:00Z", "verified": true},
               {"name": "wst-backup-20261119-010000", "time": "2026-11-19T01:00:00Z", "verified": true}
             ] }"#,
    )
    .unwrap();
    let plan = request.plan().unwrap();
    assert_eq!(
        render(&plan),
        [
            "2026-11-20T01:00:00Z keep: daily #1, last_backup, newest_verified",
            "2026-11-19T01:00:00Z delete: not_selected",
        ]
    );
    let bad = wst_retention::PlanRequest {
        time_zone: "Mars/Olympus_Mons".into(),
        ..request
    };
    assert!(matches!(bad.plan(), Err(Error::UnknownTimeZone { .. })));
}

/// The retention ceiling (issue 18; seeds/003 "Personal data must not be retained
/// indefinitely"): a yearly GFS rule that would keep ten years is cut at `max_age` = 7 years
/// (2555 days): the yearly backups of periods beyond it are deleted although each is the last
/// backup of its year, and the plan names the rule it overrode. Only the single newest backup
/// survives the ceiling, and its reasons say why (`last_backup`, `max_age_conflict`).
#[test]
fn retention_ceiling_cuts_gfs_yearly_backups_but_not_the_last_backup() {
    let yearly = run(
        r#"{"keep_yearly": 10, "max_age": "2555d"}"#,
        "2026-11-21T12:00:00Z",
        "Europe/Amsterdam",
        &[
            "2026-06-01T01:00:00Z",
            "2021-06-01T01:00:00Z",
            "2019-12-01T01:00:00Z",
            "2018-06-01T01:00:00Z",
            "2017-06-01T01:00:00Z",
        ],
    );
    assert_eq!(
        render(&yearly),
        [
            "2026-06-01T01:00:00Z keep: yearly #1, last_backup, newest_verified",
            "2021-06-01T01:00:00Z keep: yearly #2",
            "2019-12-01T01:00:00Z keep: yearly #3",
            "2018-06-01T01:00:00Z delete: max_age, yearly #4",
            "2017-06-01T01:00:00Z delete: max_age, yearly #5",
        ]
    );
    // A sink whose only backup is beyond the ceiling keeps it, and says so.
    let alone = run(
        r#"{"keep_yearly": 10, "max_age": "2555d"}"#,
        "2026-11-21T12:00:00Z",
        "UTC",
        &["2018-06-01T01:00:00Z", "2017-06-01T01:00:00Z"],
    );
    assert_eq!(
        render(&alone),
        [
            "2018-06-01T01:00:00Z keep: yearly #1, last_backup, newest_verified, max_age_conflict",
            "2017-06-01T01:00:00Z delete: max_age, yearly #2",
        ]
    );
    assert!(matches!(
        &alone.flags[..],
        [Flag::MaxAgeConflict { protected_by, .. }]
            if protected_by.contains(&Reason::LastBackup)
    ));
}
