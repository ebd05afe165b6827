//! A self-contained planning request (policy, `now`, time zone, backups), for previews and tools.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use wst_core::{BackupRecord, RetentionPlan};

use crate::error::{Error, Result};
use crate::planner::plan;
use crate::policy::Policy;

/// Looks up an IANA time zone name (e.g. `Europe/Amsterdam`, `UTC`) in jiff's time zone
/// database: the system's zoneinfo on Unix, the copy bundled into the binary on Windows.
///
/// This is the one function of the crate that reads anything (the database, once, cached by
/// jiff); planning itself takes the resolved [`TimeZone`].
///
/// # Errors
/// [`Error::UnknownTimeZone`] when the name is not in the database.
pub fn time_zone(name: &str) -> Result<TimeZone> {
    TimeZone::get(name).map_err(|e| Error::UnknownTimeZone {
        name: name.to_owned(),
        detail: e.to_string(),
    })
}

/// Everything a plan needs, as one serializable document: what an operator feeds the
/// `retention_preview` example before enabling a new policy.
///
/// ```json
/// { "policy": {"keep_daily": 7, "keep_weekly": 4},
///   "now": "2026-11-21T02:00:00Z",
///   "time_zone": "Europe/Amsterdam",
///   "backups": [{"name": "wst-backup-20261120-010000", "time": "2026-11-20T01:00:00Z", "verified": true}] }
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanRequest {
    /// The policy.
    pub policy: Policy,
    /// The instant to plan at (RFC 3339).
    pub now: Timestamp,
    /// An IANA time zone name, e.g. `Europe/Amsterdam`.
    pub time_zone: String,
    /// The backups of one sink; `complete` defaults to `true`.
    pub backups: Vec<BackupRecord>,
}

impl PlanRequest {
    /// Resolves the time zone and plans.
    ///
    /// # Errors
    /// [`Error::UnknownTimeZone`]; otherwise as [`plan`](crate::plan).
    pub fn plan(&self) -> Result<RetentionPlan> {
        let tz = time_zone(&self.time_zone)?;
        plan(&self.backups, &self.policy, self.now, &tz)
    }
}
