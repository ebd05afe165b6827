//! Issue 18, "Services" and "Access audit", through the operator binary: two `[[job]]`s in one
//! configuration, each a repository of its own (key, prefix, sinks on local disks and on
//! moto's S3 server, audit log); `backup` and `status` without `--job` run every job;
//! `--job a ls` lists only a's artifacts; b's key cannot open a's artifacts; two jobs on one
//! sink location are refused by `config check`. Every read of artifact content (`ls`,
//! `verify`, `restore`) is an audit record naming the configured actor, and the chain still
//! verifies. The audit-retention status rule passes with the whole log and fails when the log
//! was rotated away while the artifacts it accounts for are still on the sinks.

use std::fs;
use std::path::{Path, PathBuf};

use wst::objstore::testing::MotoServer;

mod common;
use common::{MOTO_ENV, Run, run};

fn wst(config: &Path, args: &[&str]) -> Run {
    run(config, args, &MOTO_ENV)
}

/// moto's sink options without the credentials (given as `AWS_*` variables).
fn s3_options(moto: &MotoServer) -> String {
    moto.sink_options()
        .into_iter()
        .filter(|(k, _)| !wst::config::is_secret_option(k) && k != "aws_access_key_id")
        .map(|(k, v)| format!("{k} = \"{v}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Two jobs: `a` (tree `a-app`, key `a.key`, prefix `a`, a local disk and `s3://wst-jobs/a`)
/// and `b` (tree `b-app`, key `b.key`, prefix `b`, a local disk and `s3://wst-jobs/b`).
/// `b_sink` replaces b's local disk URL.
fn write_config(t: &Path, name: &str, s3: &str, b_sink: &str) -> PathBuf {
    let config = t.join(name);
    fs::write(
        &config,
        format!(
            r#"
audit_log = "{t}/state/audit.jsonl"
actor = "auditor-ann"

[compliance]
min_copies = 1
audit_retention_years = 6

[[job]]
name = "a"
prefix = "a"
files = [{{ path = "{t}/a-app", root = "app" }}]
encryption = {{ key_file = "{t}/keys/a.key" }}
sinks = [
  {{ name = "c", url = "{t}/A" }},
  {{ name = "s3", url = "s3://wst-jobs/a", options = {{ {s3} }} }},
]

[[job]]
name = "b"
prefix = "b"
files = [{{ path = "{t}/b-app", root = "app" }}]
encryption = {{ key_file = "{t}/keys/b.key" }}
sinks = [
  {{ name = "c", url = "{b_sink}" }},
  {{ name = "s3", url = "s3://wst-jobs/b", options = {{ {s3} }} }},
]
"#,
            t = t.display()
        ),
    )
    .unwrap();
    config
}

fn records(log: &Path) -> Vec<serde_json::Value> {
    fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn rule<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    status["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == name)
        .unwrap_or_else(|| panic!("no rule `{name}` in {status}"))
}

#[test]
fn two_jobs_are_two_repositories_and_every_read_is_audited() {
    let Some(moto) = MotoServer::start_or_skip() else {
        return;
    };
    moto.create_bucket("wst-jobs").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    for (job, file) in [("a", "invoices.csv"), ("b", "contacts.csv")] {
        fs::create_dir_all(t.join(format!("{job}-app"))).unwrap();
        fs::write(
            t.join(format!("{job}-app")).join(file),
            format!("{job} data\n"),
        )
        .unwrap();
    }
    let s3 = s3_options(&moto);
    let config = write_config(t, "wst.toml", &s3, &format!("{}/B", t.display()));

    // Two jobs on one sink location: refused, naming the key and the other job.
    let shared = write_config(t, "shared.toml", &s3, &format!("{}/A/", t.display()));
    let r = wst(&shared, &["config", "check"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("job[1].sinks[0].url")
            && r.stderr.contains("has the location of job `a`'s sink `c`"),
        "{}",
        r.stderr
    );

    // Each job's key (keygen needs the job), then init and backup of every job.
    let r = wst(&config, &["keygen"]);
    assert_eq!(r.code, 2, "keygen of which job? {}", r.stderr);
    assert!(
        r.stderr
            .contains("several jobs: pass --job NAME (one of a, b)")
    );
    for job in ["a", "b"] {
        assert_eq!(wst(&config, &["--job", job, "keygen"]).code, 0);
    }
    assert_ne!(
        fs::read(t.join("keys/a.key")).unwrap(),
        fs::read(t.join("keys/b.key")).unwrap()
    );
    assert_eq!(wst(&config, &["config", "check"]).code, 0);
    let r = wst(&config, &["init"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = wst(&config, &["backup"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("== job a ==") && r.stdout.contains("== job b =="),
        "{}",
        r.stdout
    );
    // Separate prefixes on separate locations; separate audit logs, each record naming its job.
    let names = |dir: &str| -> Vec<String> {
        fs::read_dir(t.join(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tar.zst.wst"))
            .collect()
    };
    let (a_names, b_names) = (names("A"), names("B"));
    assert_eq!(a_names.len(), 1, "{a_names:?}");
    assert_eq!(b_names.len(), 1, "{b_names:?}");
    assert!(a_names[0].starts_with("a-") && b_names[0].starts_with("b-"));
    let a_artifact = a_names[0].trim_end_matches(".tar.zst.wst").to_owned();
    let (a_log, b_log) = (t.join("state/a/audit.jsonl"), t.join("state/b/audit.jsonl"));
    assert!(!t.join("state/audit.jsonl").exists(), "no shared log");
    for (log, job) in [(&a_log, "a"), (&b_log, "b")] {
        let recs = records(log);
        assert!(
            recs.iter()
                .any(|r| r["event"]["type"] == "backup_completed")
        );
        assert!(recs.iter().all(|r| r["job"] == job), "{recs:?}");
        // The signal state beside each job's log is the job's own.
        assert!(t.join("state").join(job).join("wst-signals.json").exists());
    }

    // One repository per command that needs one.
    let r = wst(&config, &["ls"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("several jobs: pass --job NAME (one of a, b)"),
        "{}",
        r.stderr
    );
    let r = wst(&config, &["--job", "c", "status"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no [[job]] named `c`; configured: a, b"));
    let r = wst(&config, &["--job", "a", "daemon"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("for every [[job]]"), "{}", r.stderr);

    // `--job a ls` lists a's artifact only, from a's sinks.
    let r = wst(&config, &["--job", "a", "--json", "ls"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let listing: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(listing["artifact"], a_artifact.as_str());
    let entries = listing["entries"].to_string();
    assert!(entries.contains("app/invoices.csv") && !entries.contains("contacts.csv"));
    let r = wst(&config, &["--job", "a", "ls", "--sink", "s3", &a_artifact]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("app/invoices.csv"));

    // b's key cannot open a's artifact: authentication fails, nothing is restored.
    let out = t.join("stolen");
    let err = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let b_key = wst::crypto::AeadCipher::from_key_file(t.join("keys/b.key")).unwrap();
            let a_disk = wst::objstore::LocalDiskSink::builder("c", t.join("A"))
                .open()
                .await
                .unwrap();
            let name = wst::core::ArtifactName::parse(&a_artifact).unwrap();
            wst::core::restore(
                &a_disk,
                &name,
                &b_key,
                &wst::core::RestoreOptions::isolated(&out),
            )
            .await
            .unwrap_err()
        });
    assert!(
        matches!(err, wst::core::Error::Cipher { .. }),
        "not a key of this artifact: {err}"
    );
    assert!(!out.join("app/invoices.csv").exists());

    // Reads of a's content: verify, restore; each one record naming the actor.
    assert_eq!(wst(&config, &["--job", "a", "verify"]).code, 0);
    let target = t.join("restored");
    let r = wst(
        &config,
        &[
            "--job",
            "a",
            "restore",
            "--target",
            target.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        fs::read_to_string(target.join("app/invoices.csv")).unwrap(),
        "a data\n"
    );
    let recs = records(&a_log);
    let reads: Vec<(String, String, String)> = recs
        .iter()
        .filter_map(|r| {
            let e = &r["event"];
            let kind = e["type"].as_str().unwrap();
            let what = match kind {
                "content_read" => e["purpose"].as_str().unwrap().to_owned(),
                "verification" if e["artifact"] == a_artifact.as_str() => "verify".to_owned(),
                "restore" => "restore".to_owned(),
                _ => return None,
            };
            Some((
                what,
                e["sink"].as_str().unwrap_or_default().to_owned(),
                r["actor"].as_str().unwrap().to_owned(),
            ))
        })
        .collect();
    // backup's own verification, two `ls`, the verification of each sink's copy, the restore.
    let what: Vec<&str> = reads.iter().map(|(w, _, _)| w.as_str()).collect();
    assert_eq!(
        what.iter().filter(|w| **w == "ls").count(),
        2,
        "one record per ls: {reads:?}"
    );
    assert!(reads.contains(&("ls".into(), "s3".into(), "auditor-ann".into())));
    assert!(what.iter().filter(|w| **w == "verify").count() >= 2);
    assert_eq!(what.iter().filter(|w| **w == "restore").count(), 1);
    assert!(reads.iter().all(|(_, _, actor)| actor == "auditor-ann"));
    // No read of a's content went into b's log.
    assert!(
        !records(&b_log)
            .iter()
            .any(|r| r["event"]["type"] == "content_read" || r["event"]["type"] == "restore")
    );
    // The chains still verify (each under its own job's key).
    let r = wst(&config, &["audit", "verify"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.stdout.matches("chain intact").count(), 2, "{}", r.stdout);

    // Status per job; the audit-retention rule passes with the whole log.
    let r = wst(&config, &["status"]);
    assert!(
        r.stdout.contains("== job a ==") && r.stdout.contains("== job b =="),
        "{}",
        r.stdout
    );
    let status = |job: &str| -> serde_json::Value {
        let r = wst(&config, &["--job", job, "--json", "status"]);
        serde_json::from_str(&r.stdout).unwrap()
    };
    let a = status("a");
    assert_eq!(a["job"], "a");
    let retention = rule(&a, "audit retention");
    assert_eq!(retention["passed"], true, "{retention}");
    assert!(retention["detail"].as_str().unwrap().contains("6 years"));

    // The log rotated away by hand while a's artifact is still on its sinks: the rule fails
    // and names the artifact; put back, it passes again.
    let rotated = t.join("state/a/audit.jsonl.1");
    fs::rename(&a_log, &rotated).unwrap();
    let a = status("a");
    let retention = rule(&a, "audit retention");
    assert_eq!(retention["passed"], false, "{retention}");
    assert!(
        retention["evidence"].to_string().contains(&a_artifact),
        "{retention}"
    );
    fs::rename(&rotated, &a_log).unwrap();
    assert_eq!(rule(&status("a"), "audit retention")["passed"], true);
    assert_eq!(rule(&status("b"), "audit retention")["passed"], true);
}
