//! Signals after every operation (issue 17): the state file updated, alerts decided and sent
//! (each delivery audited), the metrics file written. Nothing here can fail the operation it
//! reports on: a problem is logged on standard error and the operation's exit code stands.

use std::path::PathBuf;
use std::time::Duration;

use wst::config::Config;
use wst::core::{AuditEvent, AuditHead, AuditLog};
use wst::signals::{
    AlertSettings, MetricsInputs, Observation, Outcome, SignalState, WalQueueFacts, deliver,
    evaluate_alerts, render_metrics, state_path, write_textfile,
};

use crate::output::warn_line;

/// Operations whose audit records are folded into the state (they read or write the
/// repository's evidence); `wal-push` and `wal-drain` run too often to read the whole log.
const FOLDED: [&str; 8] = [
    "backup",
    "verify",
    "drill",
    "prune",
    "replicate",
    "status",
    "restore",
    "init",
];

/// What signals need from the configuration, taken before it moves into `Ops`.
pub(crate) struct Signals {
    state: PathBuf,
    textfile: Option<PathBuf>,
    alerts: AlertSettings,
    wal: bool,
}

impl Signals {
    pub(crate) fn of(config: &Config) -> Self {
        let metrics = config.metrics.as_ref();
        let mut alerts = AlertSettings::default();
        if let Some(a) = &config.alerts {
            alerts.command.clone_from(&a.command);
            alerts.webhook.clone_from(&a.webhook);
            if let Some(r) = a.retries {
                alerts.retries = r;
            }
            if let Some(b) = a.backoff_seconds {
                alerts.backoff = Duration::from_secs_f64(b.clamp(0.0, 300.0));
            }
            if let Some(t) = a.timeout_seconds {
                alerts.timeout = Duration::from_secs(t);
            }
            if let Some(l) = a.lock_contention_limit {
                alerts.lock_contention_limit = l;
            }
            if let Some(m) = a.repeat_minutes {
                alerts.repeat_interval = Duration::from_secs(m.saturating_mul(60));
            }
        }
        Self {
            state: metrics
                .and_then(|m| m.state_file.clone())
                .unwrap_or_else(|| state_path(&config.audit_log)),
            textfile: metrics.and_then(|m| m.textfile.clone()),
            alerts,
            wal: config.wal.is_some(),
        }
    }

    /// The state file.
    pub(crate) fn state_path(&self) -> &std::path::Path {
        &self.state
    }

    /// The metrics text of the state file now (the daemon's `/metrics`).
    pub(crate) fn render(&self, now: jiff::Timestamp) -> String {
        let state = SignalState::load(&self.state).unwrap_or_default();
        render_metrics(&state, &MetricsInputs { now, wal: self.wal })
    }

    /// After operation `operation` ended with exit `code` (`message`: its error, when it
    /// returned one) after `seconds`: folds the audit records it wrote (those after `head`)
    /// into the state, decides and sends alerts (each delivery audited in `audit`, when the
    /// repository could be opened), and writes the metrics file.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn after(
        &self,
        operation: &str,
        code: u8,
        message: Option<&str>,
        seconds: f64,
        now: jiff::Timestamp,
        audit: Option<&AuditLog>,
        head: Option<&AuditHead>,
        wal_queues: Option<Vec<WalQueueFacts>>,
    ) {
        let records = match audit {
            Some(a) if FOLDED.contains(&operation) => a.records().unwrap_or_else(|e| {
                warn_line!("signals: reading the audit log: {e}");
                Vec::new()
            }),
            _ => Vec::new(),
        };
        let outcome = Outcome::from_exit_code(code);
        let since = head.map(|h| h.seq);
        let alerts = &self.alerts;
        let decided = SignalState::update(&self.state, |s| {
            let details: Vec<String> = s
                .fold(&records)
                .into_iter()
                .filter(|(seq, _)| since.is_none_or(|h| *seq > h))
                .map(|(_, d)| d)
                .collect();
            s.record_operation(operation, outcome, now, seconds);
            if wal_queues.is_some() {
                s.wal_queues = wal_queues;
            }
            let message = message.map(str::to_owned).or_else(|| {
                (outcome != Outcome::Success).then(|| match code {
                    1 => "failed (exit 1)".to_owned(),
                    3 => "degraded (exit 3)".to_owned(),
                    c => format!("exit {c}"),
                })
            });
            evaluate_alerts(
                s,
                &Observation {
                    operation: operation.to_owned(),
                    outcome,
                    at: now,
                    message,
                    details,
                },
                alerts,
            )
        });
        let notices = match decided {
            Ok(n) => n,
            Err(e) => {
                warn_line!("signals: {e}");
                Vec::new()
            }
        };
        if alerts.enabled() {
            for notice in &notices {
                for d in deliver(notice, alerts).await {
                    if !d.delivered {
                        warn_line!(
                            "signals: the {} {} for `{}` was not delivered: {}",
                            notice.kind.as_str(),
                            d.channel,
                            notice.condition,
                            d.error.as_deref().unwrap_or("unknown error")
                        );
                    }
                    if let Some(a) = audit
                        && let Err(e) = a.append(AuditEvent::Alert {
                            kind: notice.kind.as_str().to_owned(),
                            condition: notice.condition.clone(),
                            reason: notice.reason.clone(),
                            channel: d.channel.to_owned(),
                            delivered: d.delivered,
                            attempts: d.attempts,
                            error: d.error.clone(),
                        })
                    {
                        warn_line!("signals: auditing an alert: {e}");
                    }
                }
            }
        }
        if let Some(path) = &self.textfile
            && let Err(e) = write_textfile(path, &self.render(now))
        {
            warn_line!("signals: {e}");
        }
    }
}
