//! The `RetentionPolicy` trait and the retention plan types (pure data).
//!
//! The planner lives in `wst-retention`; the executor ([`prune`](crate::prune)) applies a plan to
//! a sink and re-checks the invariants itself, whatever a policy returns.

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// One backup as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRecord {
    /// The artifact name (`{prefix}-YYYYMMDD-HHMMSS`); ties in `time` are broken by name.
    pub name: String,
    /// When the backup was taken (UTC).
    pub time: Timestamp,
    /// Whether the artifact was verified with every check passing (doctrine R5).
    pub verified: bool,
    /// Whether the artifact is complete (artifact and a matching sidecar both present).
    /// Defaults to `true` when absent from a serialized record.
    #[serde(default = "yes")]
    pub complete: bool,
}

fn yes() -> bool {
    true
}

impl BackupRecord {
    /// Whether this backup may count toward a keep rule and justify deleting an older one:
    /// complete, verified, and not dated after `now` (design invariants 3 and 8; a future-dated
    /// backup is a clock-skew or tampering signal and never justifies a deletion).
    pub fn counts_at(&self, now: Timestamp) -> bool {
        self.complete && self.verified && self.time <= now
    }
}

/// The period of a period keep rule (borg prune semantics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// A wall-clock hour in the policy's time zone, together with its UTC offset (the hour that
    /// repeats when DST ends is two periods).
    Hourly,
    /// A calendar day in the policy's time zone (23, 24 or 25 hours long).
    Daily,
    /// An ISO 8601 week (Monday to Sunday, weeks numbered within the ISO week-numbering year).
    Weekly,
    /// A calendar month in the policy's time zone.
    Monthly,
    /// A calendar year in the policy's time zone.
    Yearly,
}

impl Period {
    /// Every period, finest first: the order in which the rules are applied.
    pub const ALL: [Period; 5] = [
        Self::Hourly,
        Self::Daily,
        Self::Weekly,
        Self::Monthly,
        Self::Yearly,
    ];

    /// The rule name: `hourly`, `daily`, `weekly`, `monthly`, `yearly`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hourly => "hourly",
            Self::Daily => "daily",
            Self::Weekly => "weekly",
            Self::Monthly => "monthly",
            Self::Yearly => "yearly",
        }
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a backup is kept or deleted. `Display` gives the operator's wording (`daily #3`,
/// `monthly #1 (oldest)`, `min_age`, …); serde gives `{"rule": "period", "period": "daily", …}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reason {
    /// Kept by `keep_last`: the n-th backup that rule kept (1-based).
    Last {
        /// Rank among the backups this rule kept, 1-based.
        n: u32,
    },
    /// Kept by a period rule: the first (newest) backup of the n-th period this rule kept, or the
    /// oldest backup when the rule found fewer periods than its count (borg prune semantics).
    Period {
        /// The rule.
        period: Period,
        /// Rank among the backups this rule kept, 1-based.
        n: u32,
        /// True for the "(oldest)" keep of borg prune semantics.
        oldest: bool,
    },
    /// Kept by `keep_within`: taken within that duration before `now`.
    Within,
    /// Kept because it is younger than `min_age` (doctrine 026 R4).
    MinAge,
    /// Kept because it is the newest backup of the sink (never delete the last backup).
    LastBackup,
    /// Kept because it is the newest complete, verified backup of the sink.
    NewestVerified,
    /// Kept because no strictly newer complete, verified backup is kept (design invariant 3).
    NoNewerVerified,
    /// Kept and flagged: dated after `now` (clock skew or tampering).
    FutureDated,
    /// Kept: the newer verified backup this deletion relies on failed the deep verification
    /// prune runs before deleting anything on a sink (seeds/002: "verify newer backup exists
    /// before deleting expired"); nothing is deleted on that sink.
    NewerBackupUnproven,
    /// Kept although older than `max_age`, because an invariant forbids its deletion (flagged).
    MaxAgeConflict,
    /// Deleted: older than `max_age` (GDPR data minimisation), and no invariant protects it.
    MaxAge,
    /// Deleted: no rule keeps it and no invariant protects it.
    NotSelected,
    /// Annotation: not verified, so it counts toward no rule and justifies no deletion.
    Unverified,
    /// Annotation: incomplete (no valid sidecar), so it counts toward no rule and justifies no
    /// deletion.
    Incomplete,
}

impl Reason {
    /// Whether this reason is a keep rule of the policy (`keep_last`, a period rule,
    /// `keep_within`) as opposed to an invariant or an annotation.
    pub fn is_rule(&self) -> bool {
        matches!(self, Self::Last { .. } | Self::Period { .. } | Self::Within)
    }

    /// Whether this reason is an invariant that forbids deletion whatever the rules say.
    pub fn is_protection(&self) -> bool {
        matches!(
            self,
            Self::MinAge
                | Self::LastBackup
                | Self::NewestVerified
                | Self::NoNewerVerified
                | Self::FutureDated
                | Self::NewerBackupUnproven
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Last { n } => write!(f, "last #{n}"),
            Self::Period { period, n, oldest } => {
                write!(f, "{period} #{n}{}", if *oldest { " (oldest)" } else { "" })
            }
            Self::Within => f.write_str("within"),
            Self::MinAge => f.write_str("min_age"),
            Self::LastBackup => f.write_str("last_backup"),
            Self::NewestVerified => f.write_str("newest_verified"),
            Self::NoNewerVerified => f.write_str("no_newer_verified"),
            Self::FutureDated => f.write_str("future_dated"),
            Self::NewerBackupUnproven => f.write_str("newer_backup_unproven"),
            Self::MaxAgeConflict => f.write_str("max_age_conflict"),
            Self::MaxAge => f.write_str("max_age"),
            Self::NotSelected => f.write_str("not_selected"),
            Self::Unverified => f.write_str("unverified"),
            Self::Incomplete => f.write_str("incomplete"),
        }
    }
}

/// A condition in a plan that an operator must see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "flag", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Flag {
    /// A backup is dated after `now`: the backup host's clock was wrong, the planner's `now` is
    /// wrong, or the artifact name was tampered with. It is kept and counts toward no rule.
    FutureDated {
        /// The artifact name.
        name: String,
        /// Its time (UTC).
        time: Timestamp,
    },
    /// A backup is older than `max_age` (GDPR data minimisation) but an invariant forbids its
    /// deletion, so it is kept. Usually the sink has no newer verified backup: fix the backups,
    /// then prune again.
    MaxAgeConflict {
        /// The artifact name.
        name: String,
        /// Its time (UTC).
        time: Timestamp,
        /// The invariants that keep it (e.g. `last_backup`, `no_newer_verified`).
        protected_by: Vec<Reason>,
    },
}

impl fmt::Display for Flag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FutureDated { name, time } => write!(
                f,
                "`{name}` is dated {time}, after now: kept, counts toward no rule; check the clocks \
                 of the backup host and of this host, and the sink for tampering"
            ),
            Self::MaxAgeConflict {
                name,
                time,
                protected_by,
            } => {
                write!(f, "`{name}` ({time}) is older than max_age but kept by ")?;
                for (i, r) in protected_by.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{r}")?;
                }
                f.write_str(": take and verify a new backup, then prune again")
            }
        }
    }
}

/// The decision for one backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The artifact name.
    pub name: String,
    /// When the backup was taken (UTC).
    pub time: Timestamp,
    /// Keep (true) or delete (false).
    pub keep: bool,
    /// Every reason that applies: for a kept backup the keep rules (in rule order), then the
    /// invariants that protect it; for a deleted one `max_age` or `not_selected` first (then any
    /// rule `max_age` overrode); annotations (`unverified`, `incomplete`) last.
    pub reasons: Vec<Reason>,
}

/// A retention plan: every input backup exactly once, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionPlan {
    /// One decision per input backup, newest first (equal times: greater name first).
    pub decisions: Vec<Decision>,
    /// Conditions an operator must see (future-dated backups, max-age conflicts).
    pub flags: Vec<Flag>,
}

impl RetentionPlan {
    /// The decisions to keep.
    pub fn kept(&self) -> impl Iterator<Item = &Decision> {
        self.decisions.iter().filter(|d| d.keep)
    }

    /// The decisions to delete.
    pub fn deleted(&self) -> impl Iterator<Item = &Decision> {
        self.decisions.iter().filter(|d| !d.keep)
    }

    /// The decision for `name`, if the plan has one.
    pub fn decision(&self, name: &str) -> Option<&Decision> {
        self.decisions.iter().find(|d| d.name == name)
    }
}

/// Decides which backups of one sink to keep. Pure: no I/O, never reads the clock (`now` is an
/// argument, as in rustic's `KeepOptions::apply`). The time zone, if the policy needs one, is
/// part of the policy value.
///
/// The executor ([`prune`](crate::prune)) does not trust an implementation: it re-checks design
/// invariant 3 (last backup, newer verified backup, minimum age) before every deletion.
pub trait RetentionPolicy: Send + Sync + fmt::Debug {
    /// Plans retention for `backups` (any order) at `now`.
    ///
    /// # Errors
    /// [`Error::Retention`](crate::Error::Retention) for a policy that keeps nothing by rule
    /// (empty or all-zero), which is refused rather than read as "delete everything", and for
    /// inputs the policy cannot plan (duplicate names, times out of range).
    fn plan(&self, backups: &[BackupRecord], now: Timestamp) -> Result<RetentionPlan>;
}

impl<P: RetentionPolicy + ?Sized> RetentionPolicy for std::sync::Arc<P> {
    fn plan(&self, backups: &[BackupRecord], now: Timestamp) -> Result<RetentionPlan> {
        (**self).plan(backups, now)
    }
}

impl<P: RetentionPolicy + ?Sized> RetentionPolicy for Box<P> {
    fn plan(&self, backups: &[BackupRecord], now: Timestamp) -> Result<RetentionPlan> {
        (**self).plan(backups, now)
    }
}
