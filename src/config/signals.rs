//! `[metrics]`, `[alerts]` and `[[schedule]]` (issue 17): the signals' part of `wst.toml`,
//! and their checks in [`Config::problems`](super::Config::problems).

use std::path::PathBuf;

use serde::Deserialize;

use super::{Config, Problem};

/// `[metrics]`: the Prometheus/OpenMetrics text of every operation's outcome (names in
/// `docs/SIGNALS.md`). Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MetricsConfig {
    /// Written atomically (temporary file + rename, mode 0644) after every operation, for
    /// `node_exporter`'s textfile collector, e.g. `/var/lib/node_exporter/wst.prom`.
    pub textfile: Option<PathBuf>,
    /// Where `wst daemon` serves `GET /metrics`, `host:port`, e.g. `127.0.0.1:9187`. A
    /// non-loopback address is refused unless `allow_non_loopback = true`.
    pub listen: Option<String>,
    /// Allow `listen` on a non-loopback address (metrics name sinks, artifacts and rules;
    /// put them behind a firewall). Default `false`.
    #[serde(default)]
    pub allow_non_loopback: bool,
    /// The signal state file (last success and failure per operation, active alerts,
    /// schedules' last runs). Default: `wst-signals.json` beside the audit log.
    pub state_file: Option<PathBuf>,
}

/// `[alerts]`: where alerts and recovery notices go (a command and/or a webhook; both when
/// both are set). Without a channel nothing is sent; the metrics still show every failure.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AlertsConfig {
    /// A program and its arguments, e.g. `["/usr/local/bin/page-oncall", "--team", "ops"]`:
    /// the notice's JSON on its standard input, `WST_ALERT_KIND`, `WST_ALERT_CONDITION`,
    /// `WST_ALERT_REASON` in its environment; delivered when it exits 0.
    #[serde(default)]
    pub command: Vec<String>,
    /// An `https://` (or `http://`) URL the notice's JSON is sent to (POST); delivered on 2xx. No
    /// credentials in its user information; it is never written to a log or the audit log.
    pub webhook: Option<String>,
    /// Retries after a failed attempt, 0–10. Default 3.
    pub retries: Option<u32>,
    /// The first retry's delay, seconds (doubles each retry), 0–300. Default 1.
    pub backoff_seconds: Option<f64>,
    /// One attempt's limit, seconds, 1–300. Default 10.
    pub timeout_seconds: Option<u64>,
    /// Runs in a row that find the repository locked (exit 4) before `lock_contention`
    /// alerts, at least 1. Default 3.
    pub lock_contention_limit: Option<u32>,
    /// Minutes before a condition that is still failing alerts again, 1–10080 (a week).
    /// Between repeats its failing runs are counted, not sent; a new condition or a change of
    /// reason alerts at once. Default 60 (a `wal-push` retried every few seconds by
    /// `PostgreSQL` pages once an hour, not every few seconds; Prometheus Alertmanager calls
    /// this `repeat_interval`).
    pub repeat_minutes: Option<u64>,
}

/// Never prints the webhook URL (it may carry a token): only that one is set.
impl std::fmt::Debug for AlertsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertsConfig")
            .field("command", &self.command)
            .field("webhook", &self.webhook.as_ref().map(|_| "[REDACTED]"))
            .field("retries", &self.retries)
            .field("backoff_seconds", &self.backoff_seconds)
            .field("timeout_seconds", &self.timeout_seconds)
            .field("lock_contention_limit", &self.lock_contention_limit)
            .field("repeat_minutes", &self.repeat_minutes)
            .finish()
    }
}

/// One `[[schedule]]`: a job run by `wst daemon` (and rendered by `wst schedule print`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ScheduleConfig {
    /// `backup`, `drill`, `prune`, `status`, `verify`, `base-backup` or `drill-pitr` (`wst drill --pitr`).
    pub job: String,
    /// A cron expression: 5 fields (`0 */4 * * *`: every 4 hours) or 6 with leading seconds.
    pub cron: String,
    /// The IANA time zone of its wall clock. Default: `[retention] time_zone`, else `UTC`.
    pub time_zone: Option<String>,
}

impl ScheduleConfig {
    /// The time zone this schedule is evaluated in: its own, else `[retention] time_zone`,
    /// else `UTC`.
    pub fn time_zone_in(&self, config: &Config) -> String {
        self.time_zone
            .clone()
            .or_else(|| config.retention.as_ref().map(|r| r.time_zone.clone()))
            .unwrap_or_else(|| "UTC".into())
    }
}

pub(super) fn check_signals(c: &Config, p: &mut Vec<Problem>) {
    if let Some(m) = &c.metrics {
        if m.textfile
            .as_ref()
            .is_some_and(|t| t.as_os_str().is_empty())
        {
            p.push(Problem::new(
                "metrics.textfile",
                "is empty: remove it or give a file",
            ));
        }
        if m.state_file
            .as_ref()
            .is_some_and(|t| t.as_os_str().is_empty())
        {
            p.push(Problem::new(
                "metrics.state_file",
                "is empty: remove it or give a file",
            ));
        }
        if let Some(listen) = &m.listen {
            let parsed = listen.parse::<std::net::SocketAddr>().ok();
            let localhost = listen
                .rsplit_once(':')
                .is_some_and(|(h, port)| h == "localhost" && port.parse::<u16>().is_ok());
            match parsed {
                None if !localhost => p.push(Problem::new(
                    "metrics.listen",
                    format!("`{listen}` is not `ip:port` (e.g. `127.0.0.1:9187`)"),
                )),
                Some(a) if !a.ip().is_loopback() && !m.allow_non_loopback => p.push(Problem::new(
                    "metrics.listen",
                    format!(
                        "`{listen}` is not a loopback address: metrics name sinks, artifacts \
                         and rules; use `127.0.0.1:PORT`, or set `allow_non_loopback = true` \
                         behind a firewall"
                    ),
                )),
                _ => {}
            }
        }
    }
    if let Some(a) = &c.alerts {
        if a.command.first().is_some_and(|c| c.trim().is_empty()) {
            p.push(Problem::new(
                "alerts.command",
                "the program (first item) is empty",
            ));
        }
        if let Some(w) = &a.webhook {
            match url::Url::parse(w) {
                Err(e) => p.push(Problem::new(
                    "alerts.webhook",
                    format!("is not a URL ({e})"),
                )),
                Ok(u) if !matches!(u.scheme(), "http" | "https") => p.push(Problem::new(
                    "alerts.webhook",
                    format!(
                        "scheme `{}`: use https:// (or http:// on loopback)",
                        u.scheme()
                    ),
                )),
                Ok(u) if !u.username().is_empty() || u.password().is_some() => {
                    p.push(Problem::new(
                        "alerts.webhook",
                        "carries credentials in its user information (`user:…@`): use a \
                         token path or query the receiver issues, never a password",
                    ));
                }
                Ok(_) => {}
            }
        }
        if a.retries.is_some_and(|r| r > 10) {
            p.push(Problem::new("alerts.retries", "is above 10"));
        }
        if a.backoff_seconds
            .is_some_and(|b| !(0.0..=300.0).contains(&b))
        {
            p.push(Problem::new(
                "alerts.backoff_seconds",
                "is outside 0–300 seconds",
            ));
        }
        if a.timeout_seconds.is_some_and(|t| !(1..=300).contains(&t)) {
            p.push(Problem::new(
                "alerts.timeout_seconds",
                "is outside 1–300 seconds",
            ));
        }
        if a.repeat_minutes.is_some_and(|m| !(1..=10080).contains(&m)) {
            p.push(Problem::new(
                "alerts.repeat_minutes",
                "must be 1–10080 minutes (a week)",
            ));
        }
        if a.lock_contention_limit == Some(0) {
            p.push(Problem::new(
                "alerts.lock_contention_limit",
                "must be at least 1",
            ));
        }
    }
    for (i, s) in c.schedules.iter().enumerate() {
        check_schedule(c, i, s, p);
    }
}

#[cfg(feature = "signals")]
fn check_schedule(config: &Config, index: usize, entry: &ScheduleConfig, p: &mut Vec<Problem>) {
    use crate::signals::{Job, Schedule, SignalError};
    let job = match entry.job.parse::<Job>() {
        Ok(job) => job,
        Err(err) => {
            let detail = match err {
                SignalError::Schedule { detail, .. } => detail,
                other => other.to_string(),
            };
            p.push(Problem::new(
                format!("schedule[{index}].job"),
                format!("`{}`: {detail}", entry.job),
            ));
            return;
        }
    };
    let tz = entry.time_zone_in(config);
    if let Err(err) = jiff::tz::TimeZone::get(&tz) {
        p.push(Problem::new(
            format!("schedule[{index}].time_zone"),
            format!("`{tz}`: {err}"),
        ));
        return;
    }
    if let Err(err) = Schedule::new(job, &entry.cron, &tz) {
        p.push(Problem::new(
            format!("schedule[{index}].cron"),
            err.to_string(),
        ));
    }
}

#[cfg(not(feature = "signals"))]
fn check_schedule(_c: &Config, _i: usize, _s: &ScheduleConfig, _p: &mut Vec<Problem>) {}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const BASE: &str = "audit_log = \"/var/lib/wst/audit.jsonl\"\n\
                        [encryption]\nkey_file = \"/etc/wst/backup.key\"\n\
                        [[sinks]]\nname = \"c\"\nurl = \"/srv/wst\"\n";

    fn problems(extra: &str) -> Vec<String> {
        let text = format!("{BASE}{extra}");
        let c: Config = toml::from_str(&text).unwrap();
        c.problems().into_iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn signals_sections_are_checked() {
        assert!(problems(
            "[metrics]\ntextfile = \"/var/lib/node_exporter/wst.prom\"\nlisten = \"127.0.0.1:9187\"\n\
             [alerts]\ncommand = [\"/bin/true\"]\nwebhook = \"https://hooks.example/T/abc\"\n\
             [[schedule]]\njob = \"backup\"\ncron = \"0 */4 * * *\"\n\
             [[schedule]]\njob = \"drill\"\ncron = \"0 5 * * SUN\"\ntime_zone = \"Europe/Berlin\"\n"
        )
        .is_empty());
        let p = problems(
            "[metrics]\nlisten = \"0.0.0.0:9187\"\n\
             [alerts]\nwebhook = \"https://ops:hunter2@hooks.example/x\"\nlock_contention_limit = 0\nrepeat_minutes = 0\n\
             [[schedule]]\njob = \"backups\"\ncron = \"0 2 * * *\"\n\
             [[schedule]]\njob = \"backup\"\ncron = \"0 26 * * *\"\n\
             [[schedule]]\njob = \"prune\"\ncron = \"0 3 * * 0\"\ntime_zone = \"Mars/Base\"\n",
        );
        let joined = p.join("\n");
        for key in [
            "metrics.listen: `0.0.0.0:9187` is not a loopback address",
            "alerts.webhook: carries credentials",
            "alerts.lock_contention_limit",
            "alerts.repeat_minutes: must be 1–10080",
            "schedule[0].job: `backups`",
            "schedule[1].cron",
            "schedule[2].time_zone: `Mars/Base`",
        ] {
            assert!(joined.contains(key), "{key} missing in:\n{joined}");
        }
        assert!(!joined.contains("hunter2"), "never the secret: {joined}");
        let c = Config::from_toml_str(&format!(
            "{BASE}[alerts]\nwebhook = \"https://hooks.example/T0K3N\"\n"
        ))
        .unwrap();
        assert!(
            !format!("{c:?}").contains("T0K3N"),
            "Debug never prints the webhook"
        );
        assert!(
            problems("[metrics]\nlisten = \"0.0.0.0:9187\"\nallow_non_loopback = true\n")
                .is_empty()
        );
    }
}
