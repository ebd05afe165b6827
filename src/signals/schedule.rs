//! Schedules (issue 17; seeds/002: database backups at 2 am, cleanup weekly, monthly restore
//! tests, a weekly 3-2-1 check; doctrine 026 R1: daily minimum, every 4 hours recommended):
//! cron expressions (parsed by `croner`) evaluated on the wall clock of a time zone (`jiff`'s
//! time zone database), and a scheduler that never reads the clock itself.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use croner::Cron;
use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::SignalError;

/// A job a schedule runs: the CLI command of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Job {
    /// `wst backup` (backup → verify → replicate → prune when retention is configured).
    Backup,
    /// `wst drill` (restore drill, doctrine R7).
    Drill,
    /// `wst prune` (retention).
    Prune,
    /// `wst status` (compliance, the weekly 3-2-1 check).
    Status,
    /// `wst verify` (deep verification of the newest artifact on every sink, doctrine R5).
    Verify,
    /// `wst base-backup` (a physical base backup for point-in-time recovery, issue 16).
    BaseBackup,
    /// `wst drill --pitr` (a point-in-time recovery drill, issue 16).
    PitrDrill,
}

impl Job {
    /// Every job, in the order above.
    pub const ALL: [Job; 7] = [
        Job::Backup,
        Job::Drill,
        Job::Prune,
        Job::Status,
        Job::Verify,
        Job::BaseBackup,
        Job::PitrDrill,
    ];

    /// `backup`, `drill`, `prune`, `status`, `verify`, `base-backup`, `drill-pitr`.
    pub fn as_str(self) -> &'static str {
        match self {
            Job::Backup => "backup",
            Job::Drill => "drill",
            Job::Prune => "prune",
            Job::Status => "status",
            Job::Verify => "verify",
            Job::BaseBackup => "base-backup",
            Job::PitrDrill => "drill-pitr",
        }
    }

    /// The `wst` arguments that run the job, e.g. `drill --pitr` for [`Job::PitrDrill`] (what
    /// systemd units and Windows tasks run after `--config FILE`).
    pub fn command_line(self) -> &'static str {
        match self {
            Job::PitrDrill => "drill --pitr",
            other => other.as_str(),
        }
    }
}

impl fmt::Display for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Job {
    type Err = SignalError;
    fn from_str(s: &str) -> Result<Self, SignalError> {
        Job::ALL
            .into_iter()
            .find(|j| j.as_str() == s)
            .ok_or_else(|| SignalError::Schedule {
                expression: s.to_owned(),
                detail: "unknown job: one of backup, drill, prune, status, verify, base-backup, drill-pitr".into(),
            })
    }
}

/// One `[[schedule]]` entry: a job, a cron expression and the time zone its wall clock is in.
///
/// The expression has 5 fields (`minute hour day-of-month month day-of-week`, e.g.
/// `0 */4 * * *`) or 6 with a leading seconds field (`*/10 * * * * *`); `croner`'s syntax
/// (ranges, steps, lists, names, `L`, `W`, `#`, aliases such as `@daily`). A wall-clock time
/// that a daylight-saving change skips fires at the first instant after the gap; one that
/// happens twice fires at the first.
#[derive(Clone)]
pub struct Schedule {
    job: Job,
    expression: String,
    cron: Cron,
    time_zone: TimeZone,
    time_zone_name: String,
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schedule")
            .field("job", &self.job)
            .field("expression", &self.expression)
            .field("time_zone", &self.time_zone_name)
            .finish_non_exhaustive()
    }
}

fn naive(dt: jiff::civil::DateTime) -> Option<chrono::DateTime<chrono::Utc>> {
    Some(
        chrono::NaiveDate::from_ymd_opt(
            i32::from(dt.year()),
            u32::try_from(dt.month()).ok()?,
            u32::try_from(dt.day()).ok()?,
        )?
        .and_hms_opt(
            u32::try_from(dt.hour()).ok()?,
            u32::try_from(dt.minute()).ok()?,
            u32::try_from(dt.second()).ok()?,
        )?
        .and_utc(),
    )
}

fn civil(dt: chrono::DateTime<chrono::Utc>) -> Option<jiff::civil::DateTime> {
    use chrono::{Datelike, Timelike};
    jiff::civil::DateTime::new(
        i16::try_from(dt.year()).ok()?,
        i8::try_from(dt.month()).ok()?,
        i8::try_from(dt.day()).ok()?,
        i8::try_from(dt.hour()).ok()?,
        i8::try_from(dt.minute()).ok()?,
        i8::try_from(dt.second()).ok()?,
        0,
    )
    .ok()
}

impl Schedule {
    /// Parses `expression` for `job` in the IANA time zone `time_zone` (e.g. `Europe/Berlin`,
    /// `UTC`).
    ///
    /// # Errors
    /// [`SignalError::Schedule`] for an expression `croner` rejects, an unknown time zone, or
    /// an expression that never fires.
    pub fn new(job: Job, expression: &str, time_zone: &str) -> Result<Self, SignalError> {
        let err = |detail: String| SignalError::Schedule {
            expression: expression.to_owned(),
            detail,
        };
        let cron = croner::parser::CronParser::new()
            .parse(expression)
            .map_err(|e| err(format!("not a cron expression: {e}")))?;
        let tz =
            TimeZone::get(time_zone).map_err(|e| err(format!("time zone `{time_zone}`: {e}")))?;
        let s = Self {
            job,
            expression: expression.trim().to_owned(),
            cron,
            time_zone: tz,
            time_zone_name: time_zone.to_owned(),
        };
        s.next_after(Timestamp::UNIX_EPOCH)?;
        Ok(s)
    }

    /// The job.
    pub fn job(&self) -> Job {
        self.job
    }

    /// The cron expression as configured (trimmed).
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The time zone's name as configured.
    pub fn time_zone_name(&self) -> &str {
        &self.time_zone_name
    }

    /// The parsed pattern (for renderers).
    pub(crate) fn cron(&self) -> &Cron {
        &self.cron
    }

    /// The key its last run is remembered under in the state file: `"<job> <expression>"`.
    pub fn key(&self) -> String {
        format!("{} {}", self.job, self.expression)
    }

    /// The first instant strictly after `after` (UTC) at which the schedule fires.
    ///
    /// # Errors
    /// [`SignalError::Schedule`] when it never fires again (e.g. a year field in the past).
    pub fn next_after(&self, after: Timestamp) -> Result<Timestamp, SignalError> {
        let err = |detail: &str| SignalError::Schedule {
            expression: self.expression.clone(),
            detail: detail.to_owned(),
        };
        let local = after.to_zoned(self.time_zone.clone()).datetime();
        // croner matches wall-clock fields: the wall clock is carried as a chrono UTC value
        // and turned into an instant in the real zone by jiff.
        let mut wall = naive(local).ok_or_else(|| err("time out of range"))?;
        for _ in 0..64 {
            let next = self
                .cron
                .find_next_occurrence(&wall, false)
                .map_err(|e| err(&format!("never fires after {after}: {e}")))?;
            let c = civil(next).ok_or_else(|| err("time out of range"))?;
            let instant = self
                .time_zone
                .to_ambiguous_timestamp(c)
                .compatible()
                .map_err(|e| err(&e.to_string()))?;
            if instant > after {
                return Ok(instant);
            }
            wall = next;
        }
        Err(err("no fire time found after a daylight-saving change"))
    }
}

/// One job taken by [`Scheduler::take_due`]: give it back with [`Scheduler::finish`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// The job to run.
    pub job: Job,
    /// The schedule's key ([`Schedule::key`]): record its start in the state file under it.
    pub key: String,
    /// The instant it was due (UTC); earlier than now for a catch-up.
    pub due: Timestamp,
}

/// Fires schedules: next fire times from the caller's `now`, one catch-up run after downtime,
/// never two runs of one job at once. It never reads the clock and never sleeps: the caller
/// (`wst daemon`, or a service that embeds wst) asks [`Scheduler::next_due`] when to wake up,
/// then [`Scheduler::take_due`] with its `now`.
///
/// Catch-up (issue 17): a schedule whose last start (from the state file) is older than a
/// fire time that has passed is due at once, once, however many fire times were missed; a
/// schedule never run before waits for its next fire time.
#[derive(Debug)]
pub struct Scheduler {
    entries: Vec<(Schedule, Timestamp)>,
    running: BTreeSet<Job>,
}

impl Scheduler {
    /// A scheduler for `schedules` at `now`, with each schedule's last start
    /// (`last_started`, keyed by [`Schedule::key`]; the state file's `schedule` map).
    ///
    /// # Errors
    /// [`SignalError::Schedule`] when a schedule never fires again.
    pub fn new(
        schedules: Vec<Schedule>,
        last_started: &BTreeMap<String, Timestamp>,
        now: Timestamp,
    ) -> Result<Self, SignalError> {
        let mut entries = Vec::new();
        for s in schedules {
            let next = match last_started.get(&s.key()) {
                Some(last) if s.next_after(*last)? <= now => now,
                _ => s.next_after(now)?,
            };
            entries.push((s, next));
        }
        Ok(Self {
            entries,
            running: BTreeSet::new(),
        })
    }

    /// The schedules.
    pub fn schedules(&self) -> impl Iterator<Item = &Schedule> {
        self.entries.iter().map(|(s, _)| s)
    }

    /// The earliest next fire time among jobs not running, with its job; `None` when every
    /// scheduled job is running or there is no schedule.
    pub fn next_due(&self) -> Option<(Job, Timestamp)> {
        self.entries
            .iter()
            .filter(|(s, _)| !self.running.contains(&s.job))
            .map(|(s, t)| (s.job, *t))
            .min_by_key(|(_, t)| *t)
    }

    /// Takes the earliest schedule due at `now` whose job is not running, marks the job
    /// running and moves that schedule to its next fire time after `now`; `None` when nothing
    /// is due.
    ///
    /// # Errors
    /// [`SignalError::Schedule`] when the schedule never fires again.
    pub fn take_due(&mut self, now: Timestamp) -> Result<Option<Ticket>, SignalError> {
        let Some(i) = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, (s, t))| *t <= now && !self.running.contains(&s.job))
            .min_by_key(|(_, (_, t))| *t)
            .map(|(i, _)| i)
        else {
            return Ok(None);
        };
        let (s, due) = &self.entries[i];
        let ticket = Ticket {
            job: s.job,
            key: s.key(),
            due: *due,
        };
        let next = s.next_after(now)?;
        self.entries[i].1 = next;
        self.running.insert(ticket.job);
        Ok(Some(ticket))
    }

    /// The job of `ticket` ended: it may be taken again.
    pub fn finish(&mut self, ticket: &Ticket) {
        self.running.remove(&ticket.job);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn next_fire_times_follow_the_wall_clock_of_the_zone() {
        let every4 = Schedule::new(Job::Backup, "0 */4 * * *", "UTC").unwrap();
        assert_eq!(
            every4.next_after(t("2026-03-28T01:30:00Z")).unwrap(),
            t("2026-03-28T04:00:00Z")
        );
        assert_eq!(
            every4.next_after(t("2026-03-28T04:00:00Z")).unwrap(),
            t("2026-03-28T08:00:00Z"),
            "strictly after"
        );
        // 2 am in Berlin: CET (+01) before the spring change, CEST (+02) after it.
        let nightly = Schedule::new(Job::Backup, "0 2 * * *", "Europe/Berlin").unwrap();
        assert_eq!(
            nightly.next_after(t("2026-03-27T12:00:00Z")).unwrap(),
            t("2026-03-28T01:00:00Z")
        );
        // 2026-03-29 02:00 does not exist in Berlin: it fires at 03:00 CEST (01:00 UTC).
        assert_eq!(
            nightly.next_after(t("2026-03-28T12:00:00Z")).unwrap(),
            t("2026-03-29T01:00:00Z")
        );
        assert_eq!(
            nightly.next_after(t("2026-03-29T12:00:00Z")).unwrap(),
            t("2026-03-30T00:00:00Z")
        );
        let seconds = Schedule::new(Job::Status, "*/10 * * * * *", "UTC").unwrap();
        assert_eq!(
            seconds.next_after(t("2026-01-01T00:00:01Z")).unwrap(),
            t("2026-01-01T00:00:10Z")
        );
    }

    #[test]
    fn bad_schedules_are_named() {
        let e = Schedule::new(Job::Backup, "0 25 * * *", "UTC").unwrap_err();
        assert!(e.to_string().contains("0 25 * * *"), "{e}");
        let e = Schedule::new(Job::Backup, "0 2 * * *", "Mars/Olympus").unwrap_err();
        assert!(e.to_string().contains("Mars/Olympus"), "{e}");
        assert!("backups".parse::<Job>().is_err());
        assert_eq!("drill".parse::<Job>().unwrap(), Job::Drill);
    }

    #[test]
    fn one_catch_up_after_downtime_and_never_two_runs_of_a_job() {
        let s = Schedule::new(Job::Backup, "0 */4 * * *", "UTC").unwrap();
        let now = t("2026-06-03T10:30:00Z");
        // Down for two days: one catch-up run, now.
        let last = BTreeMap::from([(s.key(), t("2026-06-01T08:00:00Z"))]);
        let mut sch = Scheduler::new(vec![s.clone()], &last, now).unwrap();
        assert_eq!(sch.next_due(), Some((Job::Backup, now)));
        let ticket = sch.take_due(now).unwrap().unwrap();
        assert_eq!(ticket.due, now);
        assert_eq!(
            sch.take_due(now).unwrap(),
            None,
            "one catch-up, not one per missed slot"
        );
        // The run lasts past its next fire time: no second run while it runs.
        let late = t("2026-06-03T12:10:00Z");
        assert_eq!(sch.take_due(late).unwrap(), None);
        sch.finish(&ticket);
        let again = sch.take_due(late).unwrap().unwrap();
        assert_eq!(again.due, t("2026-06-03T12:00:00Z"));
        sch.finish(&again);
        assert_eq!(
            sch.next_due(),
            Some((Job::Backup, t("2026-06-03T16:00:00Z")))
        );
        // Never run before: wait for the next fire time. Two schedules of one job: one at a time.
        let other = Schedule::new(Job::Backup, "30 10 * * *", "UTC").unwrap();
        let mut sch =
            Scheduler::new(vec![s, other], &BTreeMap::new(), t("2026-06-03T10:00:00Z")).unwrap();
        let at = t("2026-06-03T12:00:00Z");
        let first = sch.take_due(at).unwrap().unwrap();
        assert_eq!(first.due, t("2026-06-03T10:30:00Z"));
        assert_eq!(
            sch.take_due(at).unwrap(),
            None,
            "the other backup schedule waits"
        );
        sch.finish(&first);
        assert_eq!(
            sch.take_due(at).unwrap().unwrap().due,
            t("2026-06-03T12:00:00Z")
        );
    }
}
