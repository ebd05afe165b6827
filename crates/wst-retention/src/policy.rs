//! The retention policy: keep rules, `min_age`, `max_age`, and the doctrine presets.

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, SpanRelativeTo, Timestamp, ToSpan};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The doctrine's minimum retention (doctrine 026 R4: "Minimum retention: 7 days"), the default
/// `min_age`.
pub const DEFAULT_MIN_AGE_DAYS: i64 = 7;

/// The doctrine's recommended rolling window (doctrine 026 R4: "Recommended: 7–14 artifacts").
pub const ROLLING_RANGE: std::ops::RangeInclusive<u32> = 7..=14;

/// A retention policy: which backups of one sink to keep.
///
/// Counts are numbers of backups (`0` switches a rule off). Durations are written as jiff spans,
/// either in the friendly form (`"7d"`, `"36h"`, `"2 weeks"`, `"1y 6mo"`) or ISO 8601 (`"P7D"`).
/// Unknown fields are an error, so a typo such as `keep_dayly` cannot silently weaken a policy.
///
/// | field | meaning |
/// |---|---|
/// | `keep_last` | the newest N counting backups |
/// | `keep_hourly` … `keep_yearly` | the newest backup of each of the newest N periods (borg prune semantics, see the crate docs) |
/// | `keep_within` | every counting backup taken after `now - keep_within` (calendar arithmetic in the time zone: `"1mo"` is one calendar month) |
/// | `min_age` | never delete a backup taken after `now - min_age`; elapsed time (a day is 24 hours, units up to weeks); default 7 days (doctrine 026 R4) |
/// | `max_age` | delete backups taken before `now - max_age` unless an invariant forbids it (GDPR data minimisation; calendar arithmetic in the time zone) |
///
/// # Example
/// ```
/// use jiff::ToSpan;
/// use wst_retention::Policy;
///
/// let p = Policy::default().keep_daily(7).keep_weekly(4).max_age(1.year());
/// assert_eq!(p.keep_daily, 7);
/// let q: Policy = serde_json::from_str(r#"{"keep_daily": 7, "keep_weekly": 4, "max_age": "1y"}"#)?;
/// assert_eq!(q.keep_weekly, 4);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Policy {
    /// Keep the newest N counting backups (each backup is its own period).
    #[serde(default)]
    pub keep_last: u32,
    /// Keep the newest backup of each of the newest N hours (wall-clock hour plus UTC offset).
    #[serde(default)]
    pub keep_hourly: u32,
    /// Keep the newest backup of each of the newest N calendar days.
    #[serde(default)]
    pub keep_daily: u32,
    /// Keep the newest backup of each of the newest N ISO 8601 weeks.
    #[serde(default)]
    pub keep_weekly: u32,
    /// Keep the newest backup of each of the newest N calendar months.
    #[serde(default)]
    pub keep_monthly: u32,
    /// Keep the newest backup of each of the newest N calendar years.
    #[serde(default)]
    pub keep_yearly: u32,
    /// Keep every counting backup taken strictly after `now - keep_within`. Unset or zero: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_within: Option<Span>,
    /// Never delete a backup taken strictly after `now - min_age` (elapsed time; default 7 days,
    /// doctrine 026 R4). Zero switches the floor off (the executor has its own floor).
    #[serde(default = "default_min_age")]
    pub min_age: Span,
    /// Delete backups taken strictly before `now - max_age` even when a rule keeps them, unless
    /// an invariant forbids it (then the plan keeps them and flags the conflict). Unset: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<Span>,
}

fn default_min_age() -> Span {
    DEFAULT_MIN_AGE_DAYS.days()
}

impl Default for Policy {
    /// No keep rule (planning it is an error), `min_age` 7 days, no `max_age`.
    fn default() -> Self {
        Self {
            keep_last: 0,
            keep_hourly: 0,
            keep_daily: 0,
            keep_weekly: 0,
            keep_monthly: 0,
            keep_yearly: 0,
            keep_within: None,
            min_age: default_min_age(),
            max_age: None,
        }
    }
}

impl Policy {
    /// The doctrine's rolling preset (doctrine 026 R4: "Minimum retention: 7 days; Recommended:
    /// 7–14 artifacts (rolling)"): `keep_last = count`, `min_age` 7 days.
    ///
    /// # Errors
    /// [`Error::RollingCountOutOfRange`] when `count` is outside 7..=14.
    pub fn rolling(count: u32) -> Result<Self> {
        if !ROLLING_RANGE.contains(&count) {
            return Err(Error::RollingCountOutOfRange { count });
        }
        Ok(Self::default().keep_last(count))
    }

    /// The doctrine's grandfather-father-son preset (seed 002 "RETENTION: daily=30d, weekly=12w,
    /// monthly=12m, yearly=7y", its `borg prune --keep-daily=30 --keep-weekly=12
    /// --keep-monthly=12 --keep-yearly=7`), with `min_age` 7 days.
    pub fn gfs() -> Self {
        Self::default()
            .keep_daily(30)
            .keep_weekly(12)
            .keep_monthly(12)
            .keep_yearly(7)
    }

    /// Sets `keep_last`.
    #[must_use]
    pub fn keep_last(mut self, n: u32) -> Self {
        self.keep_last = n;
        self
    }

    /// Sets `keep_hourly`.
    #[must_use]
    pub fn keep_hourly(mut self, n: u32) -> Self {
        self.keep_hourly = n;
        self
    }

    /// Sets `keep_daily`.
    #[must_use]
    pub fn keep_daily(mut self, n: u32) -> Self {
        self.keep_daily = n;
        self
    }

    /// Sets `keep_weekly`.
    #[must_use]
    pub fn keep_weekly(mut self, n: u32) -> Self {
        self.keep_weekly = n;
        self
    }

    /// Sets `keep_monthly`.
    #[must_use]
    pub fn keep_monthly(mut self, n: u32) -> Self {
        self.keep_monthly = n;
        self
    }

    /// Sets `keep_yearly`.
    #[must_use]
    pub fn keep_yearly(mut self, n: u32) -> Self {
        self.keep_yearly = n;
        self
    }

    /// Sets `keep_within`.
    #[must_use]
    pub fn keep_within(mut self, span: Span) -> Self {
        self.keep_within = Some(span);
        self
    }

    /// Sets `min_age`.
    #[must_use]
    pub fn min_age(mut self, span: Span) -> Self {
        self.min_age = span;
        self
    }

    /// Sets `max_age`.
    #[must_use]
    pub fn max_age(mut self, span: Span) -> Self {
        self.max_age = Some(span);
        self
    }

    /// The count of the period rule `period`.
    pub fn count(&self, period: wst_core::Period) -> u32 {
        match period {
            wst_core::Period::Hourly => self.keep_hourly,
            wst_core::Period::Daily => self.keep_daily,
            wst_core::Period::Weekly => self.keep_weekly,
            wst_core::Period::Monthly => self.keep_monthly,
            wst_core::Period::Yearly => self.keep_yearly,
        }
    }

    /// `min_age` as elapsed time (a day is 24 hours).
    ///
    /// # Errors
    /// [`Error::InvalidDuration`] when it is negative or uses months or years.
    pub fn min_age_duration(&self) -> Result<SignedDuration> {
        let invalid = |reason: &str| Error::InvalidDuration {
            field: "min_age",
            value: self.min_age.to_string(),
            reason: reason.to_owned(),
        };
        if self.min_age.is_negative() {
            return Err(invalid("must not be negative"));
        }
        self.min_age
            .to_duration(SpanRelativeTo::days_are_24_hours())
            .map_err(|_| {
                invalid("is elapsed time: use units up to weeks (e.g. `7d`), not months or years")
            })
    }

    /// Whether the policy has at least one keep rule (a non-zero count or a non-zero
    /// `keep_within`).
    pub fn has_keep_rule(&self) -> bool {
        self.keep_last > 0
            || wst_core::Period::ALL.iter().any(|p| self.count(*p) > 0)
            || self.keep_within.is_some_and(|s| !s.is_zero())
    }

    /// Checks what can be checked without `now`: a keep rule exists, no duration is negative,
    /// `min_age` is elapsed time.
    ///
    /// # Errors
    /// [`Error::EmptyPolicy`], [`Error::InvalidDuration`].
    pub fn validate(&self) -> Result<()> {
        if !self.has_keep_rule() {
            return Err(Error::EmptyPolicy);
        }
        self.min_age_duration()?;
        for (field, span) in [("keep_within", self.keep_within), ("max_age", self.max_age)] {
            if let Some(span) = span
                && span.is_negative()
            {
                return Err(Error::InvalidDuration {
                    field,
                    value: span.to_string(),
                    reason: "must not be negative".to_owned(),
                });
            }
        }
        Ok(())
    }

    /// Resolves the durations against `now` in `tz`: the instants before or after which each
    /// rule applies. Also checks that `max_age` is longer than `min_age` and not shorter than
    /// `keep_within`.
    ///
    /// # Errors
    /// As [`Policy::validate`]; [`Error::ConflictingDurations`]; [`Error::TimeOutOfRange`].
    pub fn cutoffs(&self, now: Timestamp, tz: &TimeZone) -> Result<Cutoffs> {
        self.validate()?;
        let min_age =
            now.checked_sub(self.min_age_duration()?)
                .map_err(|e| Error::TimeOutOfRange {
                    what: "the min_age cutoff",
                    detail: e.to_string(),
                })?;
        let zoned = now.to_zoned(tz.clone());
        let calendar = |what: &'static str, span: Option<Span>| -> Result<Option<Timestamp>> {
            match span {
                Some(s) if !s.is_zero() => zoned
                    .checked_sub(s)
                    .map(|z| Some(z.timestamp()))
                    .map_err(|e| Error::TimeOutOfRange {
                        what,
                        detail: e.to_string(),
                    }),
                _ => Ok(None),
            }
        };
        let within = calendar("the keep_within cutoff", self.keep_within)?;
        let max_age = match self.max_age {
            Some(s) if s.is_zero() => {
                return Err(Error::InvalidDuration {
                    field: "max_age",
                    value: s.to_string(),
                    reason: "zero would delete everything not protected; remove it to switch \
                             max_age off"
                        .to_owned(),
                });
            }
            other => calendar("the max_age cutoff", other)?,
        };
        if let Some(max) = max_age {
            if max >= min_age {
                return Err(Error::ConflictingDurations(format!(
                    "max_age ({}) must be longer than min_age ({}): doctrine R4 forbids deleting \
                     backups younger than min_age",
                    self.max_age.unwrap_or_default(),
                    self.min_age
                )));
            }
            if within.is_some_and(|w| w < max) {
                return Err(Error::ConflictingDurations(format!(
                    "keep_within ({}) is longer than max_age ({}): backups cannot be both kept \
                     and deleted for their age",
                    self.keep_within.unwrap_or_default(),
                    self.max_age.unwrap_or_default()
                )));
            }
        }
        Ok(Cutoffs {
            within,
            min_age,
            max_age,
        })
    }
}

/// A policy's durations resolved against `now` (UTC instants).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoffs {
    /// `keep_within` keeps backups taken strictly after this instant.
    pub within: Option<Timestamp>,
    /// `min_age` protects backups taken strictly after this instant.
    pub min_age: Timestamp,
    /// `max_age` deletes backups taken strictly before this instant.
    pub max_age: Option<Timestamp>,
}
