//! Alerts (issue 17, seeds/002 "alert human immediately", seeds/003 "silent backup failures
//! are unacceptable"): which conditions fire after an operation, which clear, and their
//! delivery to a command and/or a webhook with bounded retries.

use std::process::Stdio;
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;
use tokio::io::AsyncWriteExt;

use super::{ActiveAlert, Outcome, SignalState};

/// Longest `summary` and detail line sent, bytes (the rest is cut, marked `…`).
const MAX_TEXT: usize = 1024;
/// Most detail lines sent.
const MAX_DETAILS: usize = 32;

/// How alerts are delivered (the `[alerts]` section of `wst.toml`).
#[derive(Clone)]
pub struct AlertSettings {
    /// A program and its arguments; the notice's JSON is on its standard input, and
    /// `WST_ALERT_KIND`, `WST_ALERT_CONDITION`, `WST_ALERT_REASON` are in its environment.
    /// Delivered when it exits 0.
    pub command: Vec<String>,
    /// An `http://` or `https://` URL the notice's JSON is sent to (POST); delivered on a 2xx
    /// answer. Never written into a notice, a log line or an audit record (it may carry a
    /// token): only its host is named.
    pub webhook: Option<String>,
    /// Attempts after the first (default 3): each waits `backoff × 2^n`.
    pub retries: u32,
    /// The first retry's delay (default 1 s).
    pub backoff: Duration,
    /// One attempt's time limit (default 10 s): the command is killed, the request dropped.
    pub timeout: Duration,
    /// Runs in a row that find the repository locked before `lock_contention` fires (default 3).
    pub lock_contention_limit: u32,
    /// The `host` field of notices (default: the `HOSTNAME` environment variable, else empty).
    pub host: String,
    /// How long a condition that is still failing stays quiet before it alerts again
    /// (default 1 hour; `[alerts] repeat_minutes`): a new condition or a change of reason
    /// alerts at once, a recovery notice always goes.
    pub repeat_interval: Duration,
}

impl std::fmt::Debug for AlertSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertSettings")
            .field("command", &self.command)
            .field("webhook", &self.webhook.as_ref().map(|_| "[REDACTED]"))
            .field("retries", &self.retries)
            .field("backoff", &self.backoff)
            .field("timeout", &self.timeout)
            .field("lock_contention_limit", &self.lock_contention_limit)
            .field("repeat_interval", &self.repeat_interval)
            .finish_non_exhaustive()
    }
}

impl Default for AlertSettings {
    fn default() -> Self {
        Self {
            command: Vec::new(),
            webhook: None,
            retries: 3,
            backoff: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
            lock_contention_limit: 3,
            host: std::env::var("HOSTNAME").unwrap_or_default(),
            repeat_interval: Duration::from_secs(3600),
        }
    }
}

impl AlertSettings {
    /// Whether any channel is configured.
    pub fn enabled(&self) -> bool {
        !self.command.is_empty() || self.webhook.is_some()
    }
}

/// What one operation did, as alerts see it.
#[derive(Debug, Clone)]
pub struct Observation {
    /// The operation, e.g. `backup`, `verify`, `drill`, `status`, `prune`.
    pub operation: String,
    /// How it ended.
    pub outcome: Outcome,
    /// When it ended (UTC, the caller's clock).
    pub at: Timestamp,
    /// The operator-facing error or result line, when it did not succeed (never a secret:
    /// wst's errors carry none, design invariant 7).
    pub message: Option<String>,
    /// Lines from the audit records the operation wrote (failed checks, failing rules, sinks
    /// that missed the copy).
    pub details: Vec<String>,
}

/// Whether a notice says a condition fired or cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum NoticeKind {
    /// A condition fired.
    Alert,
    /// A condition that alerted cleared (the operation succeeded again).
    Recovery,
}

impl NoticeKind {
    /// `alert` or `recovery`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Alert => "alert",
            Self::Recovery => "recovery",
        }
    }
}

/// One notice, the JSON body sent (format in `docs/SIGNALS.md`): names, outcomes and
/// operator-facing messages, never a key, password or credentialed URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertNotice {
    /// Always `"wst-alert-v1"`: the body's format.
    pub format: &'static str,
    /// `alert` or `recovery`.
    pub kind: NoticeKind,
    /// The condition: the operation whose runs it watches (`backup`, `drill`, `status`, …).
    pub condition: String,
    /// `backup_failed`, `backup_degraded`, `verification_failed`, `drill_failed`,
    /// `compliance_violation`, `lock_contention`, `<operation>_failed`,
    /// `<operation>_degraded`; for a recovery, the reason that had fired.
    pub reason: String,
    /// The operation that produced this notice.
    pub operation: String,
    /// When it was decided (UTC, RFC 3339).
    pub at: Timestamp,
    /// When the condition first fired (UTC); on a recovery, how long it lasted follows.
    pub since: Timestamp,
    /// The host that ran the operation.
    pub host: String,
    /// One line for people.
    pub summary: String,
    /// Details (bounded).
    pub details: Vec<String>,
}

/// One channel's delivery of one notice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// `command` or `webhook`.
    pub channel: &'static str,
    /// Whether the channel accepted it.
    pub delivered: bool,
    /// Attempts made.
    pub attempts: u32,
    /// The last attempt's error, when not delivered (the webhook's host only, never its URL).
    pub error: Option<String>,
}

fn cut(s: &str) -> String {
    if s.len() <= MAX_TEXT {
        return s.to_owned();
    }
    let mut end = MAX_TEXT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The reason `operation` ending in `outcome` fires, `None` when it does not.
fn reason(
    operation: &str,
    outcome: Outcome,
    consecutive_locked: u32,
    limit: u32,
) -> Option<String> {
    match (operation, outcome) {
        (_, Outcome::Success) => None,
        (_, Outcome::Locked) => {
            (consecutive_locked >= limit.max(1)).then(|| "lock_contention".into())
        }
        ("verify", Outcome::Failed) => Some("verification_failed".into()),
        ("drill", Outcome::Failed) => Some("drill_failed".into()),
        ("status", Outcome::Failed) => Some("compliance_violation".into()),
        (op, Outcome::Failed) => Some(format!("{op}_failed")),
        (op, Outcome::Degraded) => Some(format!("{op}_degraded")),
    }
}

/// Decides the notices `observation` calls for and updates `state`'s active alerts (the
/// operation must already be recorded with [`SignalState::record_operation`], for the lock
/// count). A failed, degraded or (past `settings.lock_contention_limit` runs in a row) locked
/// run fires an alert for the condition named after the operation: when the condition is new,
/// when its reason changes, and otherwise at most once per `settings.repeat_interval` (the
/// runs between are counted in its [`ActiveAlert::count`]); the first successful run after
/// one sends one recovery notice and clears it. A locked run below
/// the limit changes nothing.
///
/// Source: issue 17 (conditions: failure, degraded run, failed verification or drill,
/// compliance violation, lock contention past a limit; recovery notices).
pub fn evaluate_alerts(
    state: &mut SignalState,
    observation: &Observation,
    settings: &AlertSettings,
) -> Vec<AlertNotice> {
    let op = &observation.operation;
    let locked = state.operations.get(op).map_or(0, |o| o.consecutive_locked);
    let mut details: Vec<String> = observation
        .details
        .iter()
        .take(MAX_DETAILS)
        .map(|d| cut(d))
        .collect();
    if observation.details.len() > MAX_DETAILS {
        details.push(format!(
            "… {} more",
            observation.details.len() - MAX_DETAILS
        ));
    }
    let notice = |kind, reason: String, since, summary: String, details: Vec<String>| AlertNotice {
        format: "wst-alert-v1",
        kind,
        condition: op.clone(),
        reason,
        operation: op.clone(),
        at: observation.at,
        since,
        host: settings.host.clone(),
        summary: cut(&summary),
        details,
    };
    match (
        reason(
            op,
            observation.outcome,
            locked,
            settings.lock_contention_limit,
        ),
        observation.outcome,
    ) {
        (Some(reason), _) => {
            let active = state.alerts.entry(op.clone()).or_insert(ActiveAlert {
                since: observation.at,
                reason: reason.clone(),
                count: 0,
                last_sent: None,
            });
            let changed = active.reason != reason;
            let due = active.last_sent.is_none_or(|t| {
                observation.at.duration_since(t).unsigned_abs() >= settings.repeat_interval
            });
            active.reason.clone_from(&reason);
            active.count += 1;
            if !(changed || due) {
                // Still failing the same way within the repeat interval: counted, not sent.
                return Vec::new();
            }
            active.last_sent = Some(observation.at);
            let since = active.since;
            let summary = match (&observation.message, reason.as_str()) {
                (Some(m), _) => format!("wst {op}: {m}"),
                (None, "lock_contention") => {
                    format!(
                        "wst {op}: the repository was locked by another run {locked} times in a row"
                    )
                }
                (None, _) => format!("wst {op}: {}", observation.outcome.as_str()),
            };
            vec![notice(NoticeKind::Alert, reason, since, summary, details)]
        }
        (None, Outcome::Success) => match state.alerts.remove(op) {
            Some(was) => {
                let summary = format!(
                    "wst {op}: recovered (succeeded again after {} failing run(s) since {})",
                    was.count, was.since
                );
                vec![notice(
                    NoticeKind::Recovery,
                    was.reason,
                    was.since,
                    summary,
                    Vec::new(),
                )]
            }
            None => Vec::new(),
        },
        (None, _) => Vec::new(),
    }
}

/// The host of a webhook URL, for messages (never the URL: it may carry a token).
fn host_of(url: &str) -> String {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| "(unparsable URL)".into())
}

async fn run_command(
    command: &[String],
    body: &[u8],
    notice: &AlertNotice,
    timeout: Duration,
) -> Result<(), String> {
    let mut child = tokio::process::Command::new(&command[0])
        .args(&command[1..])
        .env("WST_ALERT_KIND", notice.kind.as_str())
        .env("WST_ALERT_CONDITION", &notice.condition)
        .env("WST_ALERT_REASON", &notice.reason)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("starting `{}`: {e}", command[0]))?;
    let mut stdin = child.stdin.take();
    let run = async {
        if let Some(s) = stdin.as_mut() {
            // A command that does not read its input is fine.
            let _ = s.write_all(body).await;
        }
        drop(stdin);
        child.wait().await
    };
    match tokio::time::timeout(timeout, run).await {
        Err(_) => Err(format!("`{}` did not exit within {timeout:?}", command[0])),
        Ok(Err(e)) => Err(format!("waiting for `{}`: {e}", command[0])),
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(format!("`{}` exited with {status}", command[0])),
    }
}

async fn post(client: &reqwest::Client, url: &str, body: &[u8]) -> Result<(), String> {
    let host = host_of(url);
    let response = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_vec())
        .send()
        .await
        // reqwest's error quotes the URL: only its kind is kept.
        .map_err(|e| {
            let what = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "could not connect"
            } else {
                "request failed"
            };
            format!("webhook on {host}: {what}")
        })?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!(
            "webhook on {host}: HTTP {}",
            response.status().as_u16()
        ))
    }
}

/// Sends `notice` on every configured channel, each retried up to `settings.retries` times
/// with exponential backoff (`backoff`, `2 × backoff`, …), each attempt bounded by
/// `settings.timeout`. Returns one [`Delivery`] per channel; the caller audits each
/// (`AuditEvent::Alert`). A channel that fails never fails the operation it reports on.
pub async fn deliver(notice: &AlertNotice, settings: &AlertSettings) -> Vec<Delivery> {
    let body = serde_json::to_vec(notice).unwrap_or_default();
    let mut out = Vec::new();
    if !settings.command.is_empty() {
        let mut attempts = 0;
        let mut result = Err(String::new());
        while attempts <= settings.retries {
            if attempts > 0 {
                tokio::time::sleep(settings.backoff * 2u32.saturating_pow(attempts - 1)).await;
            }
            attempts += 1;
            result = run_command(&settings.command, &body, notice, settings.timeout).await;
            if result.is_ok() {
                break;
            }
        }
        out.push(Delivery {
            channel: "command",
            delivered: result.is_ok(),
            attempts,
            error: result.err(),
        });
    }
    if let Some(url) = &settings.webhook {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .user_agent(concat!("wst/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build();
        let mut attempts = 0;
        let mut result = Err(String::new());
        match client {
            Err(_) => result = Err("webhook: the HTTP client could not be built".into()),
            Ok(client) => {
                while attempts <= settings.retries {
                    if attempts > 0 {
                        tokio::time::sleep(settings.backoff * 2u32.saturating_pow(attempts - 1))
                            .await;
                    }
                    attempts += 1;
                    result = post(&client, url, &body).await;
                    if result.is_ok() {
                        break;
                    }
                }
            }
        }
        out.push(Delivery {
            channel: "webhook",
            delivered: result.is_ok(),
            attempts,
            error: result.err(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observe(state: &mut SignalState, op: &str, code: u8, at: Timestamp) -> Vec<AlertNotice> {
        let outcome = Outcome::from_exit_code(code);
        state.record_operation(op, outcome, at, 1.0);
        evaluate_alerts(
            state,
            &Observation {
                operation: op.into(),
                outcome,
                at,
                message: (code != 0).then(|| format!("exit {code}")),
                details: vec![],
            },
            &AlertSettings {
                lock_contention_limit: 2,
                ..AlertSettings::default()
            },
        )
    }

    #[test]
    fn failures_fire_and_the_next_success_sends_one_recovery() {
        let t0: Timestamp = "2026-02-01T00:00:00Z".parse().unwrap();
        let mut s = SignalState::default();
        assert!(observe(&mut s, "backup", 0, t0).is_empty());
        let a = observe(&mut s, "backup", 1, t0);
        assert_eq!(a.len(), 1);
        assert_eq!(
            (a[0].kind, a[0].reason.as_str()),
            (NoticeKind::Alert, "backup_failed")
        );
        let t1 = t0 + jiff::SignedDuration::from_hours(4);
        let a = observe(&mut s, "backup", 3, t1);
        assert_eq!(a[0].reason, "backup_degraded");
        assert_eq!(
            a[0].since, t0,
            "the condition is the same one, since the first alert"
        );
        let r = observe(&mut s, "backup", 0, t1);
        assert_eq!(r.len(), 1);
        assert_eq!(
            (r[0].kind, r[0].reason.as_str()),
            (NoticeKind::Recovery, "backup_degraded")
        );
        assert!(
            observe(&mut s, "backup", 0, t1).is_empty(),
            "one recovery only"
        );
        assert_eq!(
            observe(&mut s, "status", 1, t1)[0].reason,
            "compliance_violation"
        );
        assert_eq!(observe(&mut s, "drill", 1, t1)[0].reason, "drill_failed");
        assert_eq!(
            observe(&mut s, "verify", 1, t1)[0].reason,
            "verification_failed"
        );
    }

    #[test]
    fn a_condition_still_failing_alerts_again_only_after_the_repeat_interval() {
        let t0: Timestamp = "2026-02-01T00:00:00Z".parse().unwrap();
        let at = |s: i64| t0 + jiff::SignedDuration::from_secs(s);
        let mut s = SignalState::default();
        // wal-push retried every few seconds by PostgreSQL: one alert, then quiet.
        assert_eq!(observe(&mut s, "wal-push", 1, at(0)).len(), 1);
        for secs in [5, 10, 60, 1800, 3599] {
            assert!(
                observe(&mut s, "wal-push", 1, at(secs)).is_empty(),
                "quiet at +{secs} s"
            );
        }
        assert_eq!(s.alerts["wal-push"].count, 6, "every failing run counted");
        // An hour after the last alert: again.
        let again = observe(&mut s, "wal-push", 1, at(3600));
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].since, t0, "the same condition");
        assert!(observe(&mut s, "wal-push", 1, at(3700)).is_empty());
        // A change of reason alerts at once.
        let changed = observe(&mut s, "wal-push", 3, at(3710));
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].reason, "wal-push_degraded");
        // The recovery notice always goes, and counts the failing runs.
        let r = observe(&mut s, "wal-push", 0, at(3720));
        assert_eq!(r[0].kind, NoticeKind::Recovery);
        assert!(
            r[0].summary.contains("9 failing run(s)"),
            "{}",
            r[0].summary
        );
    }

    #[test]
    fn lock_contention_fires_only_past_the_limit() {
        let t0: Timestamp = "2026-02-01T00:00:00Z".parse().unwrap();
        let mut s = SignalState::default();
        assert!(observe(&mut s, "prune", 4, t0).is_empty());
        let a = observe(&mut s, "prune", 4, t0);
        assert_eq!(a[0].reason, "lock_contention");
        assert_eq!(
            observe(&mut s, "prune", 0, t0)[0].kind,
            NoticeKind::Recovery
        );
    }

    #[test]
    fn settings_never_print_the_webhook() {
        let s = AlertSettings {
            webhook: Some("https://hooks.example/T0K3N".into()),
            ..AlertSettings::default()
        };
        assert!(!format!("{s:?}").contains("T0K3N"));
        assert_eq!(host_of("https://hooks.example/T0K3N"), "hooks.example");
    }
}
