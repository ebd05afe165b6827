//! The metrics (issue 17): the signal state in the Prometheus/OpenMetrics text format,
//! encoded by `prometheus-client`, for `node_exporter`'s textfile collector and the daemon's
//! `/metrics`. The names and their meaning are listed in `docs/SIGNALS.md`.

use std::path::Path;

use jiff::Timestamp;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::state::write_atomically;
use super::{SignalError, SignalState};

/// The backlog of one asynchronous WAL sink (from `wst::pg::wal::WalArchive::queue_status`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WalQueueFacts {
    /// The sink's configured name.
    pub sink: String,
    /// WAL objects waiting for it.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// What the metrics need besides the state file.
#[derive(Debug, Clone)]
pub struct MetricsInputs {
    /// The instant the metrics describe (UTC; the caller's clock): the WAL archive lag is
    /// `now` minus the last successful `wal-push`.
    pub now: Timestamp,
    /// Whether continuous WAL archiving (`[wal]`) is configured: the WAL metrics are
    /// rendered, the queues from [`SignalState::wal_queues`].
    pub wal: bool,
}

type Labels = Vec<(String, String)>;
type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

/// Escapes a label value for the text format (`\`, `"` and line feeds; `prometheus-client`
/// writes label values as given).
fn label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), label(v)))
        .collect()
}

fn seconds(t: Timestamp) -> f64 {
    t.as_millisecond() as f64 / 1000.0
}

fn bit(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// A family of float gauges, registered under `name`.
fn gauges(registry: &mut Registry, name: &str, help: &str) -> Family<Labels, FloatGauge> {
    let f = Family::<Labels, FloatGauge>::default();
    registry.register(name, help, f.clone());
    f
}

/// Renders `state` as an `OpenMetrics` text exposition (ends with `# EOF`), every metric
/// prefixed `wst_`:
///
/// | metric | labels | meaning |
/// |---|---|---|
/// | `wst_last_success_timestamp_seconds` | `operation` | Unix time of the last success |
/// | `wst_last_failure_timestamp_seconds` | `operation` | Unix time of the last failure or degraded run |
/// | `wst_last_run_duration_seconds` | `operation` | the last run's duration |
/// | `wst_last_run_success` | `operation` | 1 when the last run succeeded, else 0 |
/// | `wst_runs_total` | `operation`, `result` | runs per outcome (counter) |
/// | `wst_backup_read_bytes` / `wst_backup_stored_bytes` | — | the last backup's content bytes read, ciphertext bytes per copy |
/// | `wst_backup_copy_written` | `sink` | 1 when the last backup's copy landed on the sink |
/// | `wst_backup_copies` | — | how many sinks the last backup landed on |
/// | `wst_verification_passed` / `wst_verification_timestamp_seconds` | `sink` | each sink's last verification (doctrine R5) |
/// | `wst_drill_passed`, `wst_drill_rto_seconds`, `wst_drill_rpo_seconds`, `wst_drill_timestamp_seconds` | — | the last restore drill (doctrine R7) |
/// | `wst_compliant` / `wst_compliance_rule_passed` | — / `rule` | the last `status` (doctrine 026 rules), 0/1 |
/// | `wst_alert_active` | `condition` | 1 for each condition whose recovery notice is owed |
/// | `wst_wal_archive_lag_seconds` | — | `now` minus the last successful `wal-push` (with `[wal]`) |
/// | `wst_wal_queue_objects` / `wst_wal_queue_bytes` | `sink` | the asynchronous sinks' WAL backlog |
///
/// Source: issue 17, seeds/003 ("emit success and failure signals, backup duration, backup
/// size, restore attempts and outcomes").
pub fn render_metrics(state: &SignalState, inputs: &MetricsInputs) -> String {
    let mut r = Registry::default();
    let last_success = gauges(
        &mut r,
        "wst_last_success_timestamp_seconds",
        "Unix time (UTC) of the operation's last successful run",
    );
    let last_failure = gauges(
        &mut r,
        "wst_last_failure_timestamp_seconds",
        "Unix time (UTC) of the operation's last failed or degraded run",
    );
    let duration = gauges(
        &mut r,
        "wst_last_run_duration_seconds",
        "Duration of the operation's last run, seconds",
    );
    let last_ok = gauges(
        &mut r,
        "wst_last_run_success",
        "1 when the operation's last run succeeded, 0 when it failed, was degraded or found the repository locked",
    );
    let runs = Family::<Labels, Counter>::default();
    r.register(
        "wst_runs",
        "Runs of the operation per result (success, degraded, failed, locked)",
        runs.clone(),
    );
    for (name, op) in &state.operations {
        let l = labels(&[("operation", name)]);
        if let Some(t) = op.last_success {
            last_success.get_or_create(&l).set(seconds(t));
        }
        if let Some(t) = op.last_failure {
            last_failure.get_or_create(&l).set(seconds(t));
        }
        duration.get_or_create(&l).set(op.last_duration_seconds);
        last_ok
            .get_or_create(&l)
            .set(bit(op.last_outcome == Some(super::Outcome::Success)));
        for (result, n) in &op.runs {
            runs.get_or_create(&labels(&[("operation", name), ("result", result)]))
                .inc_by(*n);
        }
    }

    if let Some(b) = &state.backup {
        let read = FloatGauge::default();
        let stored = FloatGauge::default();
        let copies = FloatGauge::default();
        r.register(
            "wst_backup_read_bytes",
            "Content bytes read from the sources by the last backup",
            read.clone(),
        );
        r.register(
            "wst_backup_stored_bytes",
            "Ciphertext bytes stored per copy by the last backup",
            stored.clone(),
        );
        r.register(
            "wst_backup_copies",
            "Sinks the last backup's artifact landed on",
            copies.clone(),
        );
        read.set(b.bytes_read as f64);
        stored.set(b.bytes_stored as f64);
        copies.set(b.copies.values().filter(|w| **w).count() as f64);
        let written = gauges(
            &mut r,
            "wst_backup_copy_written",
            "1 when the last backup's artifact landed on the sink, else 0",
        );
        for (sink, w) in &b.copies {
            written
                .get_or_create(&labels(&[("sink", sink)]))
                .set(bit(*w));
        }
    }

    if !state.verification.is_empty() {
        let passed = gauges(
            &mut r,
            "wst_verification_passed",
            "1 when the sink's last verification (doctrine R5) passed, else 0",
        );
        let at = gauges(
            &mut r,
            "wst_verification_timestamp_seconds",
            "Unix time (UTC) of the sink's last verification",
        );
        for (sink, v) in &state.verification {
            let l = labels(&[("sink", sink)]);
            passed.get_or_create(&l).set(bit(v.passed));
            at.get_or_create(&l).set(seconds(v.at));
        }
    }

    if let Some(d) = &state.drill {
        for (name, help, value) in [
            (
                "wst_drill_passed",
                "1 when the last restore drill (doctrine R7) passed, else 0",
                bit(d.passed),
            ),
            (
                "wst_drill_rto_seconds",
                "Recovery time measured by the last restore drill, seconds",
                d.rto_seconds,
            ),
            (
                "wst_drill_rpo_seconds",
                "Recovery point measured by the last restore drill (drill time minus backup time), seconds",
                d.rpo_seconds,
            ),
            (
                "wst_drill_timestamp_seconds",
                "Unix time (UTC) of the last restore drill",
                seconds(d.at),
            ),
        ] {
            let g = FloatGauge::default();
            g.set(value);
            r.register(name, help, g);
        }
    }

    if let Some(c) = &state.compliance {
        let g = FloatGauge::default();
        g.set(bit(c.compliant));
        r.register(
            "wst_compliant",
            "1 when the last compliance check (wst status) found every rule passing, else 0",
            g,
        );
        let rules = gauges(
            &mut r,
            "wst_compliance_rule_passed",
            "1 when the rule passed in the last compliance check, else 0",
        );
        for (rule, ok) in &c.rules {
            rules
                .get_or_create(&labels(&[("rule", rule)]))
                .set(bit(*ok));
        }
    }

    let active = gauges(
        &mut r,
        "wst_alert_active",
        "1 for each condition that alerted and has not recovered",
    );
    for condition in state.alerts.keys() {
        active
            .get_or_create(&labels(&[("condition", condition)]))
            .set(1.0);
    }

    if inputs.wal {
        let lag = FloatGauge::default();
        r.register(
            "wst_wal_archive_lag_seconds",
            "Seconds since the last successful wal-push (continuous WAL archiving)",
            lag.clone(),
        );
        if let Some(t) = state
            .operations
            .get("wal-push")
            .and_then(|o| o.last_success)
        {
            lag.set(inputs.now.duration_since(t).as_secs_f64().max(0.0));
        } else {
            lag.set(f64::NAN);
        }
        let objects = gauges(
            &mut r,
            "wst_wal_queue_objects",
            "WAL objects waiting for the asynchronous sink",
        );
        let bytes = gauges(
            &mut r,
            "wst_wal_queue_bytes",
            "Bytes of WAL waiting for the asynchronous sink",
        );
        for q in state.wal_queues.iter().flatten() {
            let l = labels(&[("sink", &q.sink)]);
            objects.get_or_create(&l).set(q.objects as f64);
            bytes.get_or_create(&l).set(q.bytes as f64);
        }
    }

    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &r);
    out
}

/// Writes the metrics text to `path` atomically (a temporary file in the same directory,
/// `fsync`, rename; mode 0644 on Unix so `node_exporter`, another user, can read it), so the
/// textfile collector never reads half a file.
///
/// # Errors
/// [`SignalError::Io`] when the directory or the file cannot be written.
pub fn write_textfile(path: &Path, text: &str) -> Result<(), SignalError> {
    write_atomically(path, text.as_bytes(), true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals::Outcome;

    #[test]
    fn label_values_are_escaped_and_names_follow_the_conventions() {
        let mut s = SignalState::default();
        let at: Timestamp = "2026-05-01T02:00:00Z".parse().unwrap();
        s.record_operation("backup", Outcome::Success, at, 1.5);
        s.compliance = Some(crate::signals::ComplianceFacts {
            at: Some(at),
            compliant: false,
            rules: [("R3 \"3-2-1\"\ncopies".to_owned(), false)].into(),
            failing: vec![],
        });
        let text = render_metrics(
            &s,
            &MetricsInputs {
                now: at,
                wal: false,
            },
        );
        assert!(
            text.contains("wst_last_success_timestamp_seconds{operation=\"backup\"} 1777600800"),
            "{text}"
        );
        assert!(text.contains("wst_runs_total{operation=\"backup\",result=\"success\"} 1"));
        assert!(
            text.contains("rule=\"R3 \\\"3-2-1\\\"\\ncopies\"} 0"),
            "{text}"
        );
        assert!(text.trim_end().ends_with("# EOF"));
        assert!(!text.contains("wst_wal_"), "no WAL metrics without [wal]");
    }
}
