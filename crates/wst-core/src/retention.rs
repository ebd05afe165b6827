//! The `RetentionPolicy` trait and the retention plan types (pure data).
//!
//! The planner lives in `wst-retention`; the executor ([`prune`](crate::prune), when present)
//! applies a plan to a sink and re-checks the invariants itself, whatever a policy returns.

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
    /// Whether the artifact is complete (artifact and sidecar both present).
    #[serde(default = "yes")]
    pub complete: bool,
}

fn yes() -> bool {
    true
}

/// Why a backup is kept or deleted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reason {
    /// Kept by `keep_last`: the n-th newest (1-based).
    Last {
        /// Rank, 1-based.
        n: u32,
    },
    /// Kept by a period rule (`hourly`, `daily`, `weekly`, `monthly`, `yearly`): the first backup
    /// of the n-th period, or the oldest backup when the rule found fewer periods than its count.
    Period {
        /// The rule: `hourly`, `daily`, `weekly`, `monthly`, `yearly`.
        period: String,
        /// Period rank, 1-based.
        n: u32,
        /// True for the "(oldest)" keep of borg prune semantics.
        oldest: bool,
    },
    /// Kept by `keep_within`.
    Within,
    /// Kept because it is younger than `min_age` (doctrine 026 R4).
    MinAge,
    /// Kept because it is the newest backup of the sink (never delete the last backup).
    LastBackup,
    /// Kept because it is the newest complete, verified backup.
    NewestVerified,
    /// Kept because no strictly newer verified backup is kept (invariant 3).
    NoNewerVerified,
    /// Kept and flagged: dated after `now` (clock skew or tampering).
    FutureDated,
    /// Kept although older than `max_age`, because an invariant forbids its deletion (flagged).
    MaxAgeConflict,
    /// Deleted: older than `max_age` (GDPR data minimisation).
    MaxAge,
    /// Deleted: no rule keeps it.
    NotSelected,
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
            Self::MaxAgeConflict => f.write_str("max_age_conflict"),
            Self::MaxAge => f.write_str("max_age"),
            Self::NotSelected => f.write_str("not_selected"),
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
    /// Every reason that applies, most decisive first.
    pub reasons: Vec<Reason>,
}

/// A retention plan: every input backup exactly once, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionPlan {
    /// One decision per input backup, newest first (ties by name).
    pub decisions: Vec<Decision>,
    /// Conditions an operator must see (future-dated backups, max-age conflicts).
    pub flags: Vec<String>,
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
}

/// Decides which backups of one sink to keep. Pure: no I/O, never reads the clock (`now` is an
/// argument, as in rustic's `KeepOptions::apply`).
pub trait RetentionPolicy: Send + Sync + fmt::Debug {
    /// Plans retention for `backups` (any order) at `now`.
    ///
    /// # Errors
    /// [`Error::Retention`](crate::Error::Retention) for a policy that keeps nothing by rule
    /// (empty or all-zero), which is refused rather than read as "delete everything".
    fn plan(&self, backups: &[BackupRecord], now: Timestamp) -> Result<RetentionPlan>;
}
