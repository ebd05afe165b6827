//! Issue 17 through the operator binary: `wst status` with placement rules that pass and fail
//! as configured, `wst report bcp` and `wst report evidence` of a repository with real runs
//! (init, backup, verify, drill, prune), and their refusals (an existing `--out`, a bad
//! `--since`). Local-disk sinks only: the reports need no server.

use std::fs;
use std::path::Path;

mod common;
use common::{Run, run};

fn wst(config: &Path, args: &[&str]) -> Run {
    run(config, args, &[])
}

/// The configuration: one tree, `local-c` in production's region, `offsite-d` declared by
/// `offsite_keys`, placement rules on, a drill, retention and a `[bcp]` section.
fn write_config(t: &Path, offsite_keys: &str) -> std::path::PathBuf {
    let path = t.join("wst.toml");
    fs::write(
        &path,
        format!(
            r#"
project = "acme-shop"
actor = "ci@test"
audit_log = "{t}/state/audit.jsonl"

[[files]]
path = "{t}/app"
root = "app"

[encryption]
key_file = "{t}/control/backup.key"

[[sinks]]
name = "local-c"
url = "{t}/C"
region = "de-fra1"
jurisdiction = "EU"

[[sinks]]
name = "offsite-d"
url = "{t}/D"
offsite = true
{offsite_keys}

[retention]
time_zone = "Europe/Amsterdam"
[retention.policy]
keep_daily = 30

[drill]
scratch_dir = "{t}/scratch"
rto_target_minutes = 240

[compliance]
min_copies = 2
production_region = "de-fra1"
production_jurisdiction = "EU"
allowed_jurisdictions = ["EU"]

[bcp]
version = "1.0"
client = "ACME B.V."
[[bcp.contacts]]
role = "DBA"
name = "boris"
escalation = "immediate"
"#,
            t = t.display()
        ),
    )
    .unwrap();
    path
}

fn rule<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    status["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == name)
        .unwrap_or_else(|| panic!("no rule `{name}` in {status:#}"))
}

fn status(config: &Path) -> serde_json::Value {
    let run = wst(config, &["--json", "status"]);
    assert!(run.code == 0 || run.code == 1, "{}", run.stderr);
    serde_json::from_str(&run.stdout).unwrap()
}

#[test]
fn placement_in_status_and_the_auditor_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    fs::create_dir_all(t.join("app/public")).unwrap();
    fs::write(t.join("app/public/index.html"), "<h1>acme</h1>").unwrap();
    let config = write_config(t, "region = \"nl-ams1\"\njurisdiction = \"EU\"");
    for args in [
        &["keygen"][..],
        &["init"],
        &["backup"],
        &["verify"],
        &["drill"],
        &["prune"],
    ] {
        let run = wst(&config, args);
        assert_eq!(run.code, 0, "wst {args:?}: {}", run.stderr);
    }

    // Placement as seeds/002 wants it.
    let s = status(&config);
    assert_eq!(rule(&s, "offsite in another region")["passed"], true);
    assert_eq!(rule(&s, "copies in allowed jurisdictions")["passed"], true);
    assert_eq!(rule(&s, "drill after schema change")["passed"], true);

    // Anti-pattern 5: the "offsite" copy sits in the production region.
    write_config(t, "region = \"de-fra1\"\njurisdiction = \"EU\"");
    let run = wst(&config, &["status"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.contains("[FAIL] offsite in another region")
            && run
                .stdout
                .contains("offsite sink `offsite-d` is in region `de-fra1`"),
        "{}",
        run.stdout
    );
    // Anti-pattern 6, and an undeclared region: the detail says what to add.
    write_config(t, "jurisdiction = \"US\"");
    let s = status(&config);
    let j = rule(&s, "copies in allowed jurisdictions");
    assert_eq!(j["passed"], false);
    assert!(
        j["detail"]
            .as_str()
            .unwrap()
            .contains("sink `offsite-d` is in jurisdiction `US`")
    );
    let r = rule(&s, "offsite in another region");
    assert!(
        r["detail"].as_str().unwrap().contains("add region = "),
        "{r}"
    );
    // An empty declaration is a configuration problem (exit 2) naming the key.
    write_config(t, "region = \"\"");
    let run = wst(&config, &["config", "check"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("sinks[1].region: is empty"),
        "{}",
        run.stderr
    );
    write_config(t, "region = \"nl-ams1\"\njurisdiction = \"EU\"");

    // The BCP on standard output: every section, the measured RTO of the drill.
    let drill: serde_json::Value = {
        let json = fs::read_dir(t.join("scratch"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|x| x == "json"))
            .unwrap();
        serde_json::from_slice(&fs::read(json).unwrap()).unwrap()
    };
    let rto = format!("{:.2}h", drill["rto_seconds"].as_f64().unwrap() / 3600.0);
    let bcp = wst(&config, &["report", "bcp"]);
    assert_eq!(bcp.code, 0, "{}", bcp.stderr);
    for needle in [
        "# Business Continuity Plan — acme-shop",
        "VERSION: 1.0",
        "## 1. SCOPE",
        "client: ACME B.V.",
        "## 2. RECOVERY_OBJECTIVES",
        "RTO: 4.00h",
        &format!("RTO {rto} (within target)"),
        "## 3. BACKUP_INVENTORY",
        "| offsite-d | disk | yes | nl-ams1 | EU |",
        "## 4. RECOVERY_PROCEDURES",
        "## 5. CONTACTS",
        "| DBA | boris | immediate |",
        "## 6. TEST_HISTORY",
        &format!("| restore test | pass | {rto} |"),
        "**TO FILL** (`[bcp] reviewed_by`)",
    ] {
        assert!(bcp.stdout.contains(needle), "{needle} in\n{}", bcp.stdout);
    }
    let file = t.join("bcp.md");
    let run = wst(&config, &["report", "bcp", "--out", file.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        fs::read_to_string(&file)
            .unwrap()
            .contains("## 6. TEST_HISTORY")
    );
    let run = wst(&config, &["report", "bcp", "--out", file.to_str().unwrap()]);
    assert_eq!(run.code, 2, "an existing file is not overwritten");

    // The evidence bundle.
    let out = t.join("evidence");
    let run = wst(
        &config,
        &[
            "--json",
            "report",
            "evidence",
            "--since",
            "90d",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let bundle: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(bundle["backups"], 1);
    assert_eq!(bundle["drills"], serde_json::json!([1, 1]));
    assert_eq!(bundle["drill_reports"], 1);
    assert_eq!(bundle["audit_trustworthy"], true);
    for f in [
        "INDEX.md",
        "audit-check.json",
        "audit-log.jsonl",
        "records.jsonl",
        "records.md",
        "status.json",
        "status.md",
        "retention.md",
        "bcp.md",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let index = fs::read_to_string(out.join("INDEX.md")).unwrap();
    for needle in [
        "# Evidence bundle — acme-shop",
        "audit chain: VERIFIED",
        "backups: 1 completed, 0 failed",
        "restore drills: 1, 1 passed",
        "| `bcp.md` |",
        "A.8.13",
        "A.5.29",
        "A.5.30",
    ] {
        assert!(index.contains(needle), "{needle} in\n{index}");
    }
    let placement = fs::read_to_string(out.join("status.md")).unwrap();
    assert!(
        placement.contains("| offsite in another region | PASS |"),
        "{placement}"
    );
    assert!(
        fs::read_to_string(out.join("retention.md"))
            .unwrap()
            .contains("daily 30 (Europe/Amsterdam)")
    );
    // The same directory again, and a period that cannot be read: exit 2, nothing written.
    let run = wst(
        &config,
        &["report", "evidence", "--out", out.to_str().unwrap()],
    );
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("is not empty"), "{}", run.stderr);
    let run = wst(
        &config,
        &[
            "report",
            "evidence",
            "--since",
            "ninety days",
            "--out",
            t.join("other").to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 2);
    assert!(!t.join("other").exists());
    // Both reports are on record.
    let log = fs::read_to_string(t.join("state/audit.jsonl")).unwrap();
    assert!(
        log.contains(r#""type":"report_written","report":"bcp""#),
        "{log}"
    );
    assert!(log.contains(r#""type":"report_written","report":"evidence""#));
    assert_eq!(wst(&config, &["audit", "verify"]).code, 0);
}
