//! Signals (issue 17, seeds/003 "silent backup failures are unacceptable"): what every
//! operation leaves behind for people and monitoring, and the schedules that run operations.
//!
//! - [`SignalState`]: the small JSON state file beside the audit log (`wst-signals.json`,
//!   format in `docs/SIGNALS.md`) that carries, across processes, the last success and failure
//!   time of every operation, the facts of the last backup, verification, drill and compliance
//!   check (folded from the audit log), the alerts that are active and the schedules' last
//!   runs.
//! - [`render_metrics`] / [`write_textfile`]: that state in the Prometheus/OpenMetrics text
//!   format (encoded by `prometheus-client`), written atomically for `node_exporter`'s textfile
//!   collector; [`serve_metrics`] serves it on a loopback `GET /metrics`.
//! - [`evaluate_alerts`] / [`deliver`]: alerts on a failed or degraded run, a failed
//!   verification or drill, a compliance violation, lock contention past a limit, and a
//!   recovery notice when such a condition clears; sent to a command and/or a webhook with a
//!   JSON body that carries no secret, retried with bounded exponential backoff.
//! - [`Schedule`] / [`Scheduler`]: cron expressions (parsed by `croner`) in a time zone, next
//!   fire times from a caller's `now`, one catch-up run after downtime, never two runs of one
//!   job at once; `wst daemon` runs them, a service can embed them.
//!
//! Nothing here reads the wall clock on its own: every function takes `now` (or a
//! [`Clock`](crate::core::Clock)) from its caller.

mod alerts;
mod error;
mod metrics;
mod schedule;
mod serve;
mod state;
mod units;

pub use alerts::{
    AlertNotice, AlertSettings, Delivery, NoticeKind, Observation, deliver, evaluate_alerts,
};
pub use error::SignalError;
pub use metrics::{MetricsInputs, WalQueueFacts, render_metrics, write_textfile};
pub use schedule::{Job, Schedule, Scheduler, Ticket};
pub use serve::{is_loopback_listen, serve_metrics};
pub use state::{
    ActiveAlert, BackupFacts, ComplianceFacts, DrillFacts, OperationState, Outcome,
    STATE_FILE_NAME, STATE_MAX_BYTES, SignalState, VerificationFacts, state_path,
};
pub use units::{systemd_units, windows_task_xml};
