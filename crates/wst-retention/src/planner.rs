//! The planner: rules, then protections, then `max_age`.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use jiff::Timestamp;
use jiff::tz::{Offset, TimeZone};
use wst_core::{BackupRecord, Decision, Flag, Period, Reason, RetentionPlan, RetentionPolicy};

use crate::error::{Error, Result};
use crate::policy::Policy;

/// A [`Policy`] bound to the time zone its periods are counted in: the value that implements
/// [`RetentionPolicy`] for the executor (`wst_core::prune`).
///
/// # Example
/// ```
/// use jiff::tz::TimeZone;
/// use wst_retention::{Planner, Policy};
///
/// let planner = Planner::new(Policy::gfs(), TimeZone::UTC)?;
/// let plan = planner.plan(&[], "2026-11-21T02:00:00Z".parse()?)?;
/// assert!(plan.decisions.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Planner {
    policy: Policy,
    time_zone: TimeZone,
}

impl Planner {
    /// Binds `policy` to `time_zone` (periods are hours, days, weeks, months and years of that
    /// zone's wall clock).
    ///
    /// # Errors
    /// As [`Policy::validate`]: an empty policy or an invalid duration is refused here, before
    /// any plan.
    pub fn new(policy: Policy, time_zone: TimeZone) -> Result<Self> {
        policy.validate()?;
        Ok(Self { policy, time_zone })
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The time zone.
    pub fn time_zone(&self) -> &TimeZone {
        &self.time_zone
    }

    /// Plans `backups` at `now`; see [`plan`].
    ///
    /// # Errors
    /// As [`plan`].
    pub fn plan(&self, backups: &[BackupRecord], now: Timestamp) -> Result<RetentionPlan> {
        plan(backups, &self.policy, now, &self.time_zone)
    }
}

impl RetentionPolicy for Planner {
    fn plan(&self, backups: &[BackupRecord], now: Timestamp) -> wst_core::Result<RetentionPlan> {
        Ok(Planner::plan(self, backups, now)?)
    }
}

/// The period keys of one backup in the policy's time zone.
#[derive(Clone, Copy)]
struct Keys {
    /// (year, month, day, hour) packed, and the UTC offset in seconds.
    hour: (i32, i32),
    /// (year, month, day) packed.
    day: i32,
    /// ISO week-numbering year and week, packed.
    week: i32,
    /// (year, month) packed.
    month: i32,
    /// The year.
    year: i32,
}

/// The UTC offset of a time zone at ascending timestamps, looking the zone up only when a
/// transition is crossed (a few times per year instead of once per backup).
struct OffsetCache<'a> {
    tz: &'a TimeZone,
    /// `offset` is valid for `from <= t < until`.
    from: Timestamp,
    until: Timestamp,
    offset: Offset,
}

impl<'a> OffsetCache<'a> {
    fn new(tz: &'a TimeZone) -> Self {
        Self {
            tz,
            from: Timestamp::MAX,
            until: Timestamp::MIN,
            offset: Offset::UTC,
        }
    }

    fn get(&mut self, t: Timestamp) -> Offset {
        if self.from <= t && t < self.until {
            return self.offset;
        }
        self.offset = self.tz.to_offset(t);
        self.from = t;
        // The first transition after `t` (if `following` also yields one at `t` itself, the
        // window is empty and every lookup is exact; never wrong, only slower).
        self.until = self
            .tz
            .following(t)
            .next()
            .map_or(Timestamp::MAX, |tr| tr.timestamp());
        self.offset
    }
}

/// FNV-1a, for the duplicate-name check: names come from the sink's own listing, so a
/// collision-resistant hash would only cost time.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

impl Keys {
    fn of(time: Timestamp, offsets: &mut OffsetCache<'_>) -> Self {
        let offset = offsets.get(time);
        let dt = offset.to_datetime(time);
        let (y, m, d, h) = (
            i32::from(dt.year()),
            i32::from(dt.month()),
            i32::from(dt.day()),
            i32::from(dt.hour()),
        );
        let iso = dt.date().iso_week_date();
        let month = y * 12 + m;
        let day = month * 31 + d;
        Self {
            hour: (day * 24 + h, offset.seconds()),
            day,
            week: i32::from(iso.year()) * 53 + i32::from(iso.week()),
            month,
            year: y,
        }
    }

    fn get(&self, period: Period) -> (i32, i32) {
        match period {
            Period::Hourly => self.hour,
            Period::Daily => (self.day, 0),
            Period::Weekly => (self.week, 0),
            Period::Monthly => (self.month, 0),
            Period::Yearly => (self.year, 0),
        }
    }
}

/// Plans retention for the backups of one sink.
///
/// Pure: no I/O, no clock. The result does not depend on the order of `backups`. See the crate
/// documentation for the exact semantics (rules, protections, `max_age`, flags).
///
/// # Errors
/// [`Error::EmptyPolicy`] for a policy without keep rules; [`Error::InvalidDuration`],
/// [`Error::ConflictingDurations`], [`Error::TimeOutOfRange`] for durations that cannot be
/// applied at `now`; [`Error::DuplicateName`] when a name appears twice in `backups`.
pub fn plan(
    backups: &[BackupRecord],
    policy: &Policy,
    now: Timestamp,
    time_zone: &TimeZone,
) -> Result<RetentionPlan> {
    let cutoffs = policy.cutoffs(now, time_zone)?;

    let mut seen: HashSet<&str, BuildHasherDefault<Fnv>> =
        HashSet::with_capacity_and_hasher(backups.len(), BuildHasherDefault::default());
    for b in backups {
        if !seen.insert(b.name.as_str()) {
            return Err(Error::DuplicateName {
                name: b.name.clone(),
            });
        }
    }
    drop(seen);

    // Newest first; equal times: greater name first. A total order, so the plan does not
    // depend on the input order. Sorting compact keys rather than records: fewer cache misses.
    let mut order: Vec<(Timestamp, &str, usize)> = backups
        .iter()
        .enumerate()
        .map(|(i, b)| (b.time, b.name.as_str(), i))
        .collect();
    order.sort_unstable_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.cmp(a.1)));
    let sorted: Vec<&BackupRecord> = order.into_iter().map(|(_, _, i)| &backups[i]).collect();
    let n = sorted.len();

    // Positions (in `sorted`) of the backups that count: complete, verified, not future-dated.
    let counting: Vec<usize> = (0..n).filter(|&i| sorted[i].counts_at(now)).collect();

    // The count chain keeps a backup at most once, so one reason per backup.
    let mut chain: Vec<Option<Reason>> = vec![None; n];
    let mut kept_by_chain = vec![false; n];

    // keep_last: every backup is its own period (see the crate docs on borg's --keep-last).
    if policy.keep_last > 0 {
        for (rank, &i) in counting.iter().take(policy.keep_last as usize).enumerate() {
            kept_by_chain[i] = true;
            chain[i] = Some(Reason::Last {
                n: u32::try_from(rank + 1).unwrap_or(u32::MAX),
            });
        }
    }

    // Period rules, finest first: borg 1.x `prune_split`.
    let rules: Vec<(Period, u32)> = Period::ALL
        .iter()
        .map(|&p| (p, policy.count(p)))
        .filter(|&(_, c)| c > 0)
        .collect();
    if !rules.is_empty() {
        let mut offsets = OffsetCache::new(time_zone);
        // Oldest first, so that the offset cache moves forward through transitions.
        let mut keys: Vec<Keys> = counting
            .iter()
            .rev()
            .map(|&i| Keys::of(sorted[i].time, &mut offsets))
            .collect();
        keys.reverse();
        for (period, count) in rules {
            let mut kept = 0u32;
            let mut last_key = None;
            let mut complete = false;
            for (k, &i) in counting.iter().enumerate() {
                let key = keys[k].get(period);
                if last_key == Some(key) {
                    continue;
                }
                last_key = Some(key);
                if kept_by_chain[i] {
                    // Uses up its period, but is not counted again.
                    continue;
                }
                kept += 1;
                kept_by_chain[i] = true;
                chain[i] = Some(Reason::Period {
                    period,
                    n: kept,
                    oldest: false,
                });
                if kept == count {
                    complete = true;
                    break;
                }
            }
            if !complete
                && let Some(&oldest) = counting.last()
                && !kept_by_chain[oldest]
            {
                kept += 1;
                kept_by_chain[oldest] = true;
                chain[oldest] = Some(Reason::Period {
                    period,
                    n: kept,
                    oldest: true,
                });
            }
        }
    }

    let newest_counting = counting.first().copied();
    let mut decisions = Vec::with_capacity(n);
    let mut flags = Vec::new();
    for (i, (b, chain_reason)) in sorted.iter().zip(chain).enumerate() {
        // keep_within: independent of the count chain (see the crate docs).
        let within = cutoffs
            .within
            .is_some_and(|w| b.time > w && b.counts_at(now));
        let mut protections = Vec::new();
        let future = b.time > now;
        if future {
            protections.push(Reason::FutureDated);
            flags.push(Flag::FutureDated {
                name: b.name.clone(),
                time: b.time,
            });
        } else if b.time > cutoffs.min_age {
            protections.push(Reason::MinAge);
        }
        if i == 0 {
            protections.push(Reason::LastBackup);
        }
        if Some(i) == newest_counting {
            protections.push(Reason::NewestVerified);
        }
        if newest_counting.is_none_or(|nc| i < nc) {
            protections.push(Reason::NoNewerVerified);
        }
        let annotation = if !b.complete {
            Some(Reason::Incomplete)
        } else if !b.verified {
            Some(Reason::Unverified)
        } else {
            None
        };

        let too_old = cutoffs.max_age.is_some_and(|max| b.time < max);
        let selected = chain_reason.is_some() || within;
        let keep = if too_old {
            !protections.is_empty()
        } else {
            selected || !protections.is_empty()
        };
        // One allocation per decision, in the documented order.
        let mut reasons = Vec::with_capacity(4 + protections.len());
        if !keep {
            reasons.push(if too_old {
                Reason::MaxAge
            } else {
                Reason::NotSelected
            });
        }
        reasons.extend(chain_reason);
        if within {
            reasons.push(Reason::Within);
        }
        if keep && too_old {
            flags.push(Flag::MaxAgeConflict {
                name: b.name.clone(),
                time: b.time,
                protected_by: protections.clone(),
            });
        }
        reasons.extend(protections);
        if keep && too_old {
            reasons.push(Reason::MaxAgeConflict);
        }
        reasons.extend(annotation);
        decisions.push(Decision {
            name: b.name.clone(),
            time: b.time,
            keep,
            reasons,
        });
    }

    Ok(RetentionPlan { decisions, flags })
}

#[cfg(test)]
mod tests {
    use jiff::SignedDuration;

    use super::*;

    /// The offset cache agrees with the time zone at every second around DST transitions
    /// (including exactly on them), walking forward as the planner does.
    #[test]
    fn offset_cache_matches_the_time_zone_around_transitions() {
        for (zone, transitions) in [
            (
                "Europe/Amsterdam",
                ["2026-03-29T01:00:00Z", "2026-10-25T01:00:00Z"],
            ),
            (
                "America/New_York",
                ["2026-03-08T07:00:00Z", "2026-11-01T06:00:00Z"],
            ),
            (
                "Australia/Lord_Howe",
                ["2026-04-04T15:00:00Z", "2026-10-03T15:30:00Z"],
            ),
        ] {
            let tz = TimeZone::get(zone).unwrap();
            let mut cache = OffsetCache::new(&tz);
            for t in transitions {
                let t: Timestamp = t.parse().unwrap();
                assert_ne!(
                    tz.to_offset(t - SignedDuration::from_secs(1)),
                    tz.to_offset(t),
                    "{zone} {t} is a transition"
                );
                let mut at = t - SignedDuration::from_hours(2);
                while at <= t + SignedDuration::from_hours(2) {
                    assert_eq!(cache.get(at), tz.to_offset(at), "{zone} at {at}");
                    at += SignedDuration::from_secs(1);
                }
            }
        }
    }

    #[test]
    fn keys_distinguish_the_repeated_hour_but_not_the_day() {
        let tz = TimeZone::get("Europe/Amsterdam").unwrap();
        let mut cache = OffsetCache::new(&tz);
        let cest: Timestamp = "2026-10-25T00:30:00Z".parse().unwrap(); // 02:30 CEST
        let cet: Timestamp = "2026-10-25T01:30:00Z".parse().unwrap(); // 02:30 CET
        let (a, b) = (Keys::of(cest, &mut cache), Keys::of(cet, &mut cache));
        assert_ne!(a.get(Period::Hourly), b.get(Period::Hourly));
        assert_eq!(a.hour.0, b.hour.0, "same wall-clock hour");
        for p in [
            Period::Daily,
            Period::Weekly,
            Period::Monthly,
            Period::Yearly,
        ] {
            assert_eq!(a.get(p), b.get(p), "{p}");
        }
    }
}
