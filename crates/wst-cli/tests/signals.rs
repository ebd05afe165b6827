//! Signals end to end (issue 17): the `wst` binary against a real `PostgreSQL` and local
//! sinks writes the metrics file after every operation (parsed back with a Prometheus text
//! parser), sends alerts and recovery notices to a webhook on a loopback HTTP server (each
//! audited, no secret in any body, a failed attempt retried), runs `[[schedule]]` jobs in
//! `wst daemon` on time, survives a failing run, serves `/metrics`, and stops cleanly on
//! SIGTERM, also in the middle of a backup, leaving no artifact that looks complete;
//! `wst schedule print` renders the schedules as the fixtures under `tests/fixtures/`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fs;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use wst::pg::TestCluster;

mod common;
use common::{Run, WST, run};

fn wst(config: &Path, args: &[&str]) -> Run {
    run(config, args, &[])
}

/// A webhook receiver on loopback: records every JSON body; answers 500 to the first
/// `fail_first` requests, 200 after.
struct Hook {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
    requests: Arc<AtomicUsize>,
    _rt: tokio::runtime::Runtime,
}

impl Hook {
    fn start(fail_first: usize) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}/hook/T0K3N", listener.local_addr().unwrap());
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(AtomicUsize::new(0));
        let (b, r) = (Arc::clone(&bodies), Arc::clone(&requests));
        rt.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (b, r) = (Arc::clone(&b), Arc::clone(&r));
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let (b, r) = (Arc::clone(&b), Arc::clone(&r));
                            async move {
                                let n = r.fetch_add(1, Ordering::SeqCst);
                                let body = req.into_body().collect().await.unwrap().to_bytes();
                                let mut resp = Response::new(Full::new(Bytes::from_static(b"ok")));
                                if n < fail_first {
                                    *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                                } else {
                                    b.lock()
                                        .unwrap()
                                        .push(serde_json::from_slice(&body).unwrap());
                                }
                                Ok::<_, Infallible>(resp)
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            url,
            bodies,
            requests,
            _rt: rt,
        }
    }

    fn bodies(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().clone()
    }
}

/// Polls `f` every 200 ms until it holds, for at most `limit` (a bound, not a speed claim).
fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn parse_metrics(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

fn value(v: &prometheus_parse::Value) -> f64 {
    match v {
        prometheus_parse::Value::Counter(x)
        | prometheus_parse::Value::Gauge(x)
        | prometheus_parse::Value::Untyped(x) => *x,
        other => panic!("not a scalar: {other:?}"),
    }
}

/// The value of `metric` whose labels include every `(name, value)` of `labels`.
fn metric(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| value(&s.value))
}

fn audit_events(t: &Path) -> Vec<Value> {
    fs::read_to_string(t.join("state/audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["event"].clone())
        .collect()
}

fn files_tree(t: &Path) {
    fs::create_dir_all(t.join("wst/public")).unwrap();
    fs::write(t.join("wst/public/index.html"), "<h1>wst</h1>").unwrap();
}

#[test]
fn metrics_file_and_alerts_from_real_operations() {
    let Some(cluster) = TestCluster::start_or_skip() else {
        return;
    };
    cluster.create_database("wst_dev").unwrap();
    cluster.load_demo("wst_dev", 1).unwrap();
    // The first delivery attempt gets a 500: the alert is retried and then delivered.
    let hook = Hook::start(1);
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    files_tree(t);
    let config = t.join("wst.toml");
    fs::write(
        &config,
        format!(
            r#"
project = "signals"
actor = "ci@test"
audit_log = "{t}/state/audit.jsonl"

[[files]]
path = "{t}/wst"
root = "wst"

[database]
url = "postgresql://{user}@127.0.0.1:{port}/wst_dev"
password_file = "{keyfile}"
restore_url = "postgresql://{user}@127.0.0.1:{port}/postgres"

[encryption]
key_file = "{t}/control/backup.key"

[[sinks]]
name = "local-c"
url = "{t}/C"

[[sinks]]
name = "mirror-d"
url = "{t}/D"

[drill]
scratch_dir = "{t}/drill"

[metrics]
textfile = "{t}/node_exporter/wst.prom"

[alerts]
webhook = "{hook}"
retries = 2
backoff_seconds = 0.05
"#,
            t = t.display(),
            user = cluster.superuser(),
            port = cluster.port(),
            keyfile = cluster.key_file().display(),
            hook = hook.url,
        ),
    )
    .unwrap();
    let prom = t.join("node_exporter/wst.prom");
    let scrape = || parse_metrics(&fs::read_to_string(&prom).unwrap());
    assert_eq!(wst(&config, &["keygen"]).code, 0);
    assert_eq!(wst(&config, &["init"]).code, 0);

    let r = wst(&config, &["backup"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let m = scrape();
    let backup_ok = metric(
        &m,
        "wst_last_success_timestamp_seconds",
        &[("operation", "backup")],
    )
    .expect("last success of backup");
    assert!(backup_ok > 0.0);
    assert_eq!(
        metric(&m, "wst_last_run_success", &[("operation", "backup")]),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &m,
            "wst_runs_total",
            &[("operation", "backup"), ("result", "success")]
        ),
        Some(1.0)
    );
    assert!(
        metric(
            &m,
            "wst_last_run_duration_seconds",
            &[("operation", "backup")]
        )
        .unwrap()
            > 0.0
    );
    assert!(
        metric(&m, "wst_backup_read_bytes", &[]).unwrap() > 1_000_000.0,
        "a pgbench dump"
    );
    assert!(metric(&m, "wst_backup_stored_bytes", &[]).unwrap() > 0.0);
    assert_eq!(metric(&m, "wst_backup_copies", &[]), Some(2.0));
    for sink in ["local-c", "mirror-d"] {
        assert_eq!(
            metric(&m, "wst_backup_copy_written", &[("sink", sink)]),
            Some(1.0)
        );
    }
    // The backup verified its first copy; `verify` verifies every copy.
    assert_eq!(
        metric(&m, "wst_verification_passed", &[("sink", "local-c")]),
        Some(1.0)
    );
    assert!(
        metric(&m, "wst_wal_archive_lag_seconds", &[]).is_none(),
        "no [wal]"
    );
    let r = wst(&config, &["verify"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let m = scrape();
    for sink in ["local-c", "mirror-d"] {
        assert_eq!(
            metric(&m, "wst_verification_passed", &[("sink", sink)]),
            Some(1.0)
        );
        assert!(
            metric(&m, "wst_verification_timestamp_seconds", &[("sink", sink)]).unwrap()
                >= backup_ok
        );
    }
    assert_eq!(
        metric(&m, "wst_last_run_success", &[("operation", "verify")]),
        Some(1.0)
    );

    let r = wst(&config, &["drill"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let m = scrape();
    assert_eq!(metric(&m, "wst_drill_passed", &[]), Some(1.0));
    let rto = metric(&m, "wst_drill_rto_seconds", &[]).unwrap();
    assert!(rto > 0.0);
    assert!(metric(&m, "wst_drill_rpo_seconds", &[]).unwrap() >= 0.0);
    let drill = audit_events(t)
        .into_iter()
        .rev()
        .find(|e| e["type"] == "restore_drill")
        .unwrap();
    assert!(
        (drill["rto_seconds"].as_f64().unwrap() - rto).abs() < 1e-6,
        "the drill's own figure"
    );

    // Two local disks, no offsite copy: status is NOT COMPLIANT (3-2-1) and alerts.
    let r = wst(&config, &["status"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let m = scrape();
    assert_eq!(metric(&m, "wst_compliant", &[]), Some(0.0));
    assert_eq!(
        metric(
            &m,
            "wst_compliance_rule_passed",
            &[("rule", "R3 3-2-1 copies")]
        ),
        Some(0.0)
    );
    assert_eq!(
        metric(
            &m,
            "wst_compliance_rule_passed",
            &[("rule", "R5 artifacts verified")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(&m, "wst_alert_active", &[("condition", "status")]),
        Some(1.0)
    );
    let bodies = hook.bodies();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert_eq!(bodies[0]["kind"], "alert");
    assert_eq!(bodies[0]["reason"], "compliance_violation");
    assert_eq!(bodies[0]["format"], "wst-alert-v1");
    assert!(
        bodies[0]["details"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d.as_str().unwrap().starts_with("R3 3-2-1 copies: FAIL")),
        "{bodies:?}"
    );
    assert_eq!(
        hook.requests.load(Ordering::SeqCst),
        2,
        "one 500, then delivered"
    );

    // A failing backup: the file tree is gone (doctrine F2). Alert, then recovery.
    fs::rename(t.join("wst"), t.join("wst.away")).unwrap();
    let r = wst(&config, &["backup"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let m = scrape();
    assert!(
        metric(
            &m,
            "wst_last_failure_timestamp_seconds",
            &[("operation", "backup")]
        )
        .unwrap()
            >= backup_ok
    );
    assert_eq!(
        metric(&m, "wst_last_run_success", &[("operation", "backup")]),
        Some(0.0)
    );
    assert_eq!(
        metric(
            &m,
            "wst_last_success_timestamp_seconds",
            &[("operation", "backup")]
        ),
        Some(backup_ok),
        "the last success stays"
    );
    let failed = hook.bodies().last().cloned().unwrap();
    assert_eq!(
        (failed["kind"].as_str(), failed["reason"].as_str()),
        (Some("alert"), Some("backup_failed"))
    );
    assert!(
        failed["summary"].as_str().unwrap().contains("wst"),
        "{failed}"
    );
    fs::rename(t.join("wst.away"), t.join("wst")).unwrap();
    let r = wst(&config, &["backup"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let recovered = hook.bodies().last().cloned().unwrap();
    assert_eq!(
        (
            recovered["kind"].as_str(),
            recovered["condition"].as_str(),
            recovered["reason"].as_str()
        ),
        (Some("recovery"), Some("backup"), Some("backup_failed"))
    );
    assert_eq!(recovered["since"], failed["since"]);
    let m = scrape();
    assert_eq!(
        metric(&m, "wst_alert_active", &[("condition", "backup")]),
        None
    );
    assert_eq!(
        metric(
            &m,
            "wst_runs_total",
            &[("operation", "backup"), ("result", "failed")]
        ),
        Some(1.0)
    );

    // Every alert is audited; the first needed two attempts; the chain still verifies.
    let alerts: Vec<Value> = audit_events(t)
        .into_iter()
        .filter(|e| e["type"] == "alert")
        .collect();
    assert_eq!(alerts.len(), 3, "{alerts:?}");
    assert_eq!(alerts[0]["attempts"], 2);
    assert!(
        alerts
            .iter()
            .all(|a| a["delivered"] == true && a["channel"] == "webhook")
    );
    assert_eq!(
        alerts
            .iter()
            .map(|a| a["kind"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["alert", "alert", "recovery"]
    );
    assert_eq!(wst(&config, &["audit", "verify"]).code, 0);

    // No secret in any notice, audit record or metric: not the database password, not the
    // key, not the webhook's token.
    let key_line = fs::read_to_string(t.join("control/backup.key")).unwrap();
    let key_hex = key_line.trim().trim_start_matches("wst-key-v1:");
    assert_eq!(key_hex.len(), 64);
    let everything = format!(
        "{}\n{}\n{}",
        serde_json::to_string(&hook.bodies()).unwrap(),
        fs::read_to_string(t.join("state/audit.jsonl")).unwrap(),
        fs::read_to_string(&prom).unwrap()
    );
    assert!(!everything.contains(cluster.password()));
    assert!(!everything.contains("T0K3N"));
    assert!(!everything.contains(key_hex));
    // The state file is documented JSON beside the audit log.
    let state: Value =
        serde_json::from_str(&fs::read_to_string(t.join("state/wst-signals.json")).unwrap())
            .unwrap();
    assert_eq!(state["version"], 1);
    assert!(state["operations"]["backup"]["last_success"].is_string());
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_get(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// `wst daemon` as a child process; its standard output is read continuously (a full pipe
/// would block it).
struct Daemon {
    child: Child,
    out: Arc<Mutex<String>>,
}

impl Daemon {
    fn start(config: &Path) -> Self {
        let mut child = Command::new(WST)
            .arg("--config")
            .arg(config)
            .arg("daemon")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = Arc::new(Mutex::new(String::new()));
        let mut stdout = child.stdout.take().unwrap();
        let sink = Arc::clone(&out);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Self { child, out }
    }

    /// SIGTERM, then the exit status and standard output.
    #[cfg(unix)]
    fn terminate(mut self) -> (i32, String) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let mut status = None;
        wait_for("the daemon to exit", Duration::from_secs(120), || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        let out = self.out.clone();
        wait_for(
            "the daemon's output to end",
            Duration::from_secs(30),
            || out.lock().unwrap().contains("wst daemon: stopped"),
        );
        let text = out.lock().unwrap().clone();
        eprintln!("daemon output:\n{text}");
        (status.unwrap().code().unwrap_or(-1), text)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signals_config(t: &Path, extra: &str) -> PathBuf {
    let config = t.join("wst.toml");
    fs::write(
        &config,
        format!(
            r#"
actor = "ci@test"
audit_log = "{t}/state/audit.jsonl"

[[files]]
path = "{t}/wst"
root = "wst"

[encryption]
key_file = "{t}/control/backup.key"

[[sinks]]
name = "local-c"
url = "{t}/C"
{extra}
"#,
            t = t.display()
        ),
    )
    .unwrap();
    config
}

#[cfg(unix)]
#[test]
fn daemon_runs_on_time_survives_a_failing_run_serves_metrics_and_stops_on_sigterm() {
    let hook = Hook::start(0);
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    files_tree(t);
    let listen = format!("127.0.0.1:{}", free_port());
    let config = signals_config(
        t,
        &format!(
            r#"
[metrics]
listen = "{listen}"

[alerts]
webhook = "{hook}"
backoff_seconds = 0.05

[[schedule]]
job = "backup"
cron = "*/2 * * * * *"
"#,
            hook = hook.url
        ),
    );
    assert_eq!(wst(&config, &["keygen"]).code, 0);
    assert_eq!(wst(&config, &["init"]).code, 0);
    let daemon = Daemon::start(&config);
    let completed = || {
        audit_events(t)
            .iter()
            .filter(|e| e["type"] == "backup_completed")
            .count()
    };
    wait_for("a scheduled backup", Duration::from_secs(120), || {
        completed() >= 1
    });
    // /metrics on loopback, parsed back.
    let mut answer = String::new();
    wait_for(
        "/metrics to show the backup",
        Duration::from_secs(60),
        || {
            answer = http_get(&listen, "/metrics");
            answer.contains("wst_last_success_timestamp_seconds{operation=\"backup\"}")
        },
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap();
    let m = parse_metrics(body);
    assert!(
        metric(
            &m,
            "wst_last_success_timestamp_seconds",
            &[("operation", "backup")]
        )
        .unwrap()
            > 0.0
    );
    assert!(http_get(&listen, "/other").starts_with("HTTP/1.1 404"));

    // A failing run (the tree is gone): alerted, and the daemon goes on.
    fs::rename(t.join("wst"), t.join("wst.away")).unwrap();
    wait_for("the failure alert", Duration::from_secs(120), || {
        hook.bodies().iter().any(|b| b["reason"] == "backup_failed")
    });
    fs::rename(t.join("wst.away"), t.join("wst")).unwrap();
    wait_for("the recovery notice", Duration::from_secs(120), || {
        hook.bodies().iter().any(|b| b["kind"] == "recovery")
    });
    // A configuration broken while the daemon runs: the job fails with exit 2, alerted.
    let good = fs::read_to_string(&config).unwrap();
    fs::write(
        &config,
        good.replace("job = \"backup\"", "job = \"backup\"\nbogus = 1"),
    )
    .unwrap();
    wait_for("the configuration alert", Duration::from_secs(120), || {
        hook.bodies().iter().any(|b| {
            b["reason"] == "backup_failed" && b["summary"].as_str().unwrap().contains("bogus")
        })
    });
    fs::write(&config, &good).unwrap();
    let recoveries = || {
        hook.bodies()
            .iter()
            .filter(|b| b["kind"] == "recovery")
            .count()
    };
    wait_for("the second recovery", Duration::from_secs(120), || {
        recoveries() >= 2
    });
    let (code, out) = daemon.terminate();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("wst daemon: stopped"), "{out}");
    let events = audit_events(t);
    assert!(events.iter().any(|e| e["type"] == "backup_failed"));
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "alert" && e["kind"] == "recovery")
    );
    assert_eq!(wst(&config, &["audit", "verify"]).code, 0);
    // The schedule's last start is remembered for the catch-up after downtime.
    let state: Value =
        serde_json::from_str(&fs::read_to_string(t.join("state/wst-signals.json")).unwrap())
            .unwrap();
    assert!(
        state["schedule"]["backup */2 * * * * *"].is_string(),
        "{state}"
    );
}

#[cfg(unix)]
#[test]
fn sigterm_in_the_middle_of_a_backup_leaves_no_artifact_that_looks_complete() {
    let Some(cluster) = TestCluster::start_or_skip() else {
        return;
    };
    cluster.create_database("wst_dev").unwrap();
    cluster.load_demo("wst_dev", 1).unwrap();
    // Hold a lock the backup's snapshot needs: the scheduled backup starts and then waits.
    let mut holder = cluster
        .client_command("psql")
        .args(["-X", "-q", "-d", "wst_dev"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    holder
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"BEGIN;\nLOCK TABLE public.pgbench_accounts IN ACCESS EXCLUSIVE MODE;\nSELECT pg_sleep(3600);\n")
        .unwrap();
    wait_for("the lock", Duration::from_secs(60), || {
        cluster
            .psql(
                "wst_dev",
                "SELECT count(*) FROM pg_locks WHERE mode = 'AccessExclusiveLock' AND granted \
                 AND relation = 'public.pgbench_accounts'::regclass",
            )
            .unwrap()
            .trim()
            == "1"
    });
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    files_tree(t);
    let config = signals_config(
        t,
        &format!(
            r#"
[[sinks]]
name = "mirror-d"
url = "{t}/D"

[database]
url = "postgresql://{user}@127.0.0.1:{port}/wst_dev"
password_file = "{keyfile}"

[[schedule]]
job = "backup"
cron = "*/2 * * * * *"
"#,
            t = t.display(),
            user = cluster.superuser(),
            port = cluster.port(),
            keyfile = cluster.key_file().display(),
        ),
    );
    assert_eq!(wst(&config, &["keygen"]).code, 0);
    assert_eq!(wst(&config, &["init"]).code, 0);
    let daemon = Daemon::start(&config);
    wait_for("the backup to start", Duration::from_secs(120), || {
        audit_events(t)
            .iter()
            .any(|e| e["type"] == "backup_started")
    });
    // It is blocked on the lock: nothing has completed.
    assert!(
        !audit_events(t)
            .iter()
            .any(|e| e["type"] == "backup_completed")
    );
    let (code, out) = daemon.terminate();
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("wst daemon: stopped"), "{out}");
    // No artifact, no sidecar under a final name on either sink.
    for sink in ["C", "D"] {
        let names: Vec<String> = walkdir::WalkDir::new(t.join(sink))
            .into_iter()
            .flatten()
            .filter(|e| e.file_type().is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            !names.iter().any(|n| n.starts_with("wst-backup-")
                && (n.ends_with(".tar.zst.wst") || n.ends_with(".sidecar.json"))),
            "{sink}: {names:?}"
        );
    }
    let events = audit_events(t);
    let last_backup = events
        .iter()
        .rev()
        .find(|e| e["type"].as_str().unwrap().starts_with("backup_"))
        .unwrap();
    assert_eq!(last_backup["type"], "backup_failed", "{events:?}");
    assert!(
        last_backup["error"].as_str().unwrap().contains("cancelled"),
        "{last_backup}"
    );
    assert_eq!(wst(&config, &["audit", "verify"]).code, 0);
    // Nothing counts as a backup: the repository holds none.
    let r = wst(&config, &["verify"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
}

fn fixture(name: &str) -> String {
    fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap()
}

#[test]
fn schedule_print_renders_systemd_units_and_windows_tasks_as_the_fixtures() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let config = signals_config(
        t,
        r#"
[retention]
time_zone = "Europe/Berlin"
[retention.policy]
keep_daily = 7

[[schedule]]
job = "backup"
cron = "0 */4 * * *"

[[schedule]]
job = "prune"
cron = "0 3 * * SUN"

[[schedule]]
job = "drill"
cron = "30 4 1 * *"
time_zone = "UTC"

[[schedule]]
job = "status"
cron = "0 6 * * MON"
"#,
    );
    let config_text = config.display().to_string();
    for (flag, dir, files) in [
        (
            "--systemd",
            "systemd",
            vec![
                "wst-backup.service",
                "wst-backup.timer",
                "wst-drill.service",
                "wst-drill.timer",
                "wst-prune.service",
                "wst-prune.timer",
                "wst-status.service",
                "wst-status.timer",
            ],
        ),
        (
            "--windows-task",
            "windows",
            vec![
                "wst-backup.xml",
                "wst-drill.xml",
                "wst-prune.xml",
                "wst-status.xml",
            ],
        ),
    ] {
        let out = t.join(dir);
        let r = wst(
            &config,
            &[
                "schedule",
                "print",
                flag,
                "--out",
                out.to_str().unwrap(),
                "--program",
                "/usr/local/bin/wst",
            ],
        );
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        let mut written: Vec<String> = fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        written.sort();
        assert_eq!(written, files);
        let mut got = HashMap::new();
        for f in &files {
            let text = fs::read_to_string(out.join(f))
                .unwrap()
                .replace(&config_text, "@CONFIG@");
            assert_eq!(text, fixture(&format!("{dir}/{f}")), "{dir}/{f}");
            got.insert(*f, text);
        }
        if dir == "systemd" {
            assert!(
                got["wst-backup.timer"]
                    .contains("OnCalendar=*-*-* 00,04,08,12,16,20:00:00 Europe/Berlin")
            );
        }
    }
    // An expression systemd cannot express is refused with the reason (exit 2).
    let bad = signals_config(t, "[[schedule]]\njob = \"drill\"\ncron = \"0 4 L * *\"\n");
    let r = wst(&bad, &["schedule", "print", "--systemd"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("wst daemon"), "{}", r.stderr);
}

#[cfg(unix)]
#[test]
fn wal_lag_metrics_and_an_alert_command_for_a_failing_wal_push() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    files_tree(t);
    let alerts = t.join("alerts");
    fs::create_dir_all(&alerts).unwrap();
    let config = signals_config(
        t,
        &format!(
            r#"
[[sinks]]
name = "mirror-d"
url = "{t}/D"

[wal]
sync_sinks = ["local-c"]

[metrics]
textfile = "{t}/wst.prom"

[alerts]
command = ["/bin/sh", "-c", "cat > {alerts}/$WST_ALERT_KIND-$WST_ALERT_REASON.json"]
backoff_seconds = 0.05
"#,
            t = t.display(),
            alerts = alerts.display()
        ),
    );
    assert_eq!(wst(&config, &["keygen"]).code, 0);
    assert_eq!(wst(&config, &["init"]).code, 0);
    let wal = t.join("pg_wal");
    fs::create_dir_all(&wal).unwrap();
    let segment = wal.join("000000010000000000000001");
    fs::write(&segment, vec![7u8; 64 * 1024]).unwrap();
    let r = wst(&config, &["wal-push", segment.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let m = parse_metrics(&fs::read_to_string(t.join("wst.prom")).unwrap());
    assert!(
        metric(
            &m,
            "wst_last_success_timestamp_seconds",
            &[("operation", "wal-push")]
        )
        .is_some()
    );
    let lag = metric(&m, "wst_wal_archive_lag_seconds", &[]).unwrap();
    assert!(lag >= 0.0 && lag.is_finite(), "{lag}");
    // The asynchronous sink's backlog is a metric (0 or 1 object: the drain runs behind).
    let queued = metric(&m, "wst_wal_queue_objects", &[("sink", "mirror-d")]).unwrap();
    assert!(
        [0, 1].contains(&(queued as u64)) && queued.fract() == 0.0,
        "{queued}"
    );

    // A WAL file that is not there: wal-push fails, the command gets the alert on stdin.
    let missing = wal.join("000000010000000000000002");
    let r = wst(&config, &["wal-push", missing.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let body: Value = serde_json::from_str(
        &fs::read_to_string(alerts.join("alert-wal-push_failed.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(body["condition"], "wal-push");
    assert!(
        body["summary"]
            .as_str()
            .unwrap()
            .contains("000000010000000000000002"),
        "{body}"
    );
    let m = parse_metrics(&fs::read_to_string(t.join("wst.prom")).unwrap());
    assert_eq!(
        metric(&m, "wst_last_run_success", &[("operation", "wal-push")]),
        Some(0.0)
    );
    assert_eq!(
        metric(&m, "wst_alert_active", &[("condition", "wal-push")]),
        Some(1.0)
    );
    // The next good push recovers it.
    fs::write(&missing, vec![8u8; 64 * 1024]).unwrap();
    assert_eq!(
        wst(&config, &["wal-push", missing.to_str().unwrap()]).code,
        0
    );
    let body: Value = serde_json::from_str(
        &fs::read_to_string(alerts.join("recovery-wal-push_failed.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(body["kind"], "recovery");
    let sent: Vec<Value> = audit_events(t)
        .into_iter()
        .filter(|e| e["type"] == "alert")
        .collect();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(
        sent.iter()
            .all(|a| a["channel"] == "command" && a["delivered"] == true)
    );
}
