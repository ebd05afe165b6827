//! wst-retention: the pure retention planner of wst.
//!
//! ```no_run
//! use wst_core::BackupRecord;
//! use wst_retention::{Planner, Policy, time_zone};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let planner = Planner::new(Policy::gfs(), time_zone("Europe/Amsterdam")?)?;
//! let backups = vec![BackupRecord {
//!     name: "wst-backup-20261120-010000".into(),
//!     time: "2026-11-20T01:00:00Z".parse()?,
//!     verified: true,
//!     complete: true,
//! }];
//! let plan = planner.plan(&backups, "2026-11-21T02:00:00Z".parse()?)?;
//! for d in &plan.decisions {
//!     let reasons: Vec<String> = d.reasons.iter().map(ToString::to_string).collect();
//!     println!("{} {} {}", if d.keep { "keep" } else { "DELETE" }, d.name, reasons.join(", "));
//! }
//! # Ok(())
//! # }
//! ```
//!
//! [`plan`] takes the backups of one sink, a [`Policy`], `now` and a time zone, and returns a
//! [`RetentionPlan`](wst_core::RetentionPlan): every input backup exactly once, kept or
//! deleted, with every reason. It does no I/O and never reads the clock; the executor
//! (`wst_core::prune`) lists the sink, plans through [`Planner`] (the [`Policy`] bound to its time
//! zone, implementing `wst_core::RetentionPolicy`), re-checks the invariants and deletes.
//!
//! # Semantics
//!
//! **Order.** Backups are ordered newest first by time; equal times (same second) by name, the
//! greater name counting as newer. This is a total order, so the plan does not depend on the
//! order of the input. A name appearing twice is an error.
//!
//! **Counting backups.** A backup *counts* when it is complete, verified (doctrine R5) and not
//! dated after `now`. Only counting backups are selected by rules and only they justify
//! deleting an older backup. Unverified and incomplete backups are annotated `unverified` /
//! `incomplete`.
//!
//! **1. Rules** select among counting backups:
//! - `keep_last N`, then `keep_hourly`, `keep_daily`, `keep_weekly`, `keep_monthly`,
//!   `keep_yearly` — one chain with borg 1.x `prune_split` semantics: walking the counting
//!   backups newest first, each rule takes the first (newest) backup of each period; a backup
//!   already kept by an earlier rule of the chain still uses up its period but is not counted
//!   again; periods without counting backups do not exist for the rule; a rule that finds fewer
//!   periods than its count also keeps the oldest counting backup (`monthly #4 (oldest)`), unless
//!   already kept. `keep_last` treats every backup as its own period, i.e. keeps the N newest
//!   not yet kept (borg's `--keep-last` is `--keep-secondly`, which would merge two backups of
//!   the same second; here names are distinct, so they are distinct backups).
//! - Periods are read on the wall clock of the policy's time zone: an *hour* is a wall-clock
//!   hour together with its UTC offset (the hour repeated when DST ends is two hours; borg merges
//!   them), a *day* is a calendar day (23, 24 or 25 hours), a *week* an ISO 8601 week (Monday to
//!   Sunday; 2026-12-31 and 2027-01-01 are both in week 2026-W53), a *month* and *year* the
//!   calendar ones.
//! - `keep_within d` keeps every counting backup taken strictly after `now - d` (calendar
//!   arithmetic in the time zone). Unlike borg, it is *not* part of the count chain: backups it
//!   keeps still count for the count rules. This makes the count rules independent of `now`
//!   (invariant 7), which borg's ordering does not give.
//!
//! **2. Protections** keep a backup whatever the rules say:
//! - `future_dated`: taken after `now` (clock skew or tampering); kept, counts toward no rule,
//!   flagged ([`Flag::FutureDated`](wst_core::Flag::FutureDated)).
//! - `min_age`: taken strictly after `now - min_age` (doctrine R4; elapsed time, default 7 days).
//! - `last_backup`: the newest backup of the sink, whatever its state.
//! - `newest_verified`: the newest counting backup.
//! - `no_newer_verified`: every backup newer than the newest counting backup (or every backup, if
//!   none counts): deleting it would not be justified by a strictly newer verified kept backup.
//!
//! **3. `max_age`** deletes every backup taken strictly before `now - max_age` (GDPR data
//! minimisation), even one a rule keeps (its reasons then read `max_age`, followed by the rule it
//! overrode), unless a protection applies: then the backup is kept with `max_age_conflict` and
//! flagged ([`Flag::MaxAgeConflict`](wst_core::Flag::MaxAgeConflict)).
//!
//! **4.** Everything else is deleted with `not_selected`. This includes unverified and
//! incomplete backups older than `min_age` and older than the newest counting backup: a failed
//! or crashed run leaves nothing behind for ever, yet is never deleted while a newer verified
//! backup is missing.
//!
//! # Invariants (proved by the property tests in `tests/properties.rs`)
//! 1. Every input backup is decided exactly once (keep ⊎ delete = input).
//! 2. The newest backup and the newest counting backup are kept.
//! 3. Every deleted backup is older than a kept counting backup (the newest one).
//! 4. Nothing taken after `now - min_age`, and nothing dated after `now`, is deleted.
//! 5. Idempotent: planning the kept set again (same `now`, time zone) deletes nothing.
//! 6. Monotonic: raising a count, adding a keep rule, lengthening `keep_within`, `min_age` or
//!    `max_age` never shrinks the kept set.
//! 7. Moving `now` forward without new backups does not change the count-rule reasons.
//! 8. Unverified or incomplete backups change no rule decision about other backups.
//!
//! An empty or all-zero policy is an error ([`Error::EmptyPolicy`]), never "delete
//! everything"; so are `max_age` not longer than `min_age` and `keep_within` longer than
//! `max_age` ([`Error::ConflictingDurations`]).
//!
//! # Presets
//! [`Policy::rolling`] (doctrine R4: 7–14 artifacts, 7 days minimum) and [`Policy::gfs`] (seed
//! 002: daily 30, weekly 12, monthly 12, yearly 7).
#![deny(rustdoc::broken_intra_doc_links)]

mod error;
mod planner;
mod policy;
mod request;

pub use error::{Error, Result};
pub use planner::{Planner, plan};
pub use policy::{Cutoffs, DEFAULT_MIN_AGE_DAYS, Policy, ROLLING_RANGE};
pub use request::{PlanRequest, time_zone};
