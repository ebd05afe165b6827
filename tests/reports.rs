//! Issue 17, the auditor's evidence: placement rules (seeds/002 anti-patterns 5 and 6), the
//! schema-change drill trigger (seeds/004) on a real `PostgreSQL`, the business continuity
//! plan and the evidence bundle of a repository with real runs (backup, verify, drill,
//! prune). Real local-disk sinks and the real cipher; a manual clock where time must pass.

mod common;

use std::fs;
use std::path::Path;
use std::sync::Arc;

use common::cipher;
use jiff::SignedDuration;
use wst::config::Config;
use wst::core::{
    AuditEvent, AuditLog, Clock, ComplianceOptions, ComplianceReport, DrillDue, DrillOptions,
    EntryRestorer, FileTreeSource, PruneOptions, Repository, RuleStatus, SCHEMA_DRILL_RULE, Sink,
    ThreeTwoOneOptions,
};
use wst::objstore::LocalDiskSink;
use wst::report::{EvidenceOptions, TO_FILL, parse_since, render_bcp, write_evidence};
use wst::retention::{Planner, Policy, time_zone};

async fn disk(name: &str, dir: &Path, offsite: bool) -> Arc<dyn Sink> {
    Arc::new(
        LocalDiskSink::builder(name, dir)
            .create_dir(true)
            .offsite(offsite)
            .open()
            .await
            .unwrap(),
    )
}

fn rule<'a>(report: &'a ComplianceReport, name: &str) -> &'a RuleStatus {
    report
        .rules
        .iter()
        .find(|r| r.rule == name)
        .unwrap_or_else(|| panic!("no rule `{name}` in {report:#?}"))
}

/// A configuration with two sinks: `local-c` in production's region and `offsite-d` (marked
/// offsite) declared by `offsite_keys`.
fn placement_config(dir: &Path, offsite_keys: &str) -> Config {
    Config::from_toml_str(&format!(
        r#"
audit_log = "{d}/audit.jsonl"
[encryption]
key_file = "{d}/k"
[[sinks]]
name = "local-c"
url = "{d}/c"
region = "de-fra1"
jurisdiction = "EU"
[[sinks]]
name = "offsite-d"
url = "{d}/d"
offsite = true
{offsite_keys}
[compliance]
production_region = "de-fra1"
production_jurisdiction = "EU"
allowed_jurisdictions = ["EU"]
"#,
        d = dir.display()
    ))
    .unwrap()
}

#[tokio::test]
async fn placement_rules_pass_and_fail_as_configured() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let clock = Clock::manual("2026-11-01T01:00:00Z".parse().unwrap());
    let repo = Repository::builder(
        cipher(),
        AuditLog::new(t.join("audit.jsonl"), "test").with_clock(clock.clone()),
    )
    .sink(disk("local-c", &t.join("c"), false).await)
    .sink(disk("offsite-d", &t.join("d"), true).await)
    .build()
    .unwrap();
    repo.init().await.unwrap();
    let now = clock.now();

    // Declared as seeds/002 wants: offsite in another region, everything in the EU.
    let good = placement_config(t, "region = \"nl-ams1\"\njurisdiction = \"EU\"");
    let status = repo
        .status(&good.compliance_options().unwrap(), now)
        .await
        .unwrap();
    let region = rule(&status, wst::core::OFFSITE_REGION_RULE);
    assert!(region.passed, "{region:#?}");
    assert_eq!(region.evidence, ["offsite-d: nl-ams1"]);
    assert!(rule(&status, wst::core::JURISDICTION_RULE).passed);

    // Anti-pattern 5: the offsite copy in the production region.
    let same = placement_config(t, "region = \"DE-FRA1\"\njurisdiction = \"EU\"");
    let status = repo
        .status(&same.compliance_options().unwrap(), now)
        .await
        .unwrap();
    let region = rule(&status, wst::core::OFFSITE_REGION_RULE);
    assert!(!region.passed);
    assert!(
        region
            .detail
            .contains("offsite sink `offsite-d` is in region `DE-FRA1`"),
        "{region:#?}"
    );
    assert!(rule(&status, wst::core::JURISDICTION_RULE).passed);

    // Anti-pattern 6, and a sink that declares nothing: each rule says what to add.
    let us = placement_config(t, "jurisdiction = \"US\"");
    let status = repo
        .status(&us.compliance_options().unwrap(), now)
        .await
        .unwrap();
    let region = rule(&status, wst::core::OFFSITE_REGION_RULE);
    assert!(!region.passed && region.detail.contains("add region = "));
    let j = rule(&status, wst::core::JURISDICTION_RULE);
    assert!(!j.passed);
    assert!(
        j.detail
            .contains("sink `offsite-d` is in jurisdiction `US`"),
        "{j:#?}"
    );
    let silent = placement_config(t, "region = \"nl-ams1\"");
    let status = repo
        .status(&silent.compliance_options().unwrap(), now)
        .await
        .unwrap();
    let j = rule(&status, wst::core::JURISDICTION_RULE);
    assert!(
        !j.passed && j.detail.contains("add jurisdiction = "),
        "{j:#?}"
    );

    // Not configured: no placement rule at all.
    let none = ComplianceOptions::default();
    let status = repo.status(&none, now).await.unwrap();
    assert!(!status.rules.iter().any(
        |r| r.rule == wst::core::OFFSITE_REGION_RULE || r.rule == wst::core::JURISDICTION_RULE
    ));

    // The configuration check names empty values and a jurisdiction listed twice.
    let text = format!(
        "audit_log = \"/a\"\n[encryption]\nkey_file = \"/k\"\n[[sinks]]\nname = \"c\"\n\
         url = \"{}\"\nregion = \" \"\n[compliance]\nallowed_jurisdictions = [\"EU\", \"eu\"]\n",
        t.join("c").display()
    );
    let e = Config::from_toml_str(&text).unwrap_err().to_string();
    assert!(e.contains("sinks[0].region: is empty"), "{e}");
    assert!(
        e.contains("compliance.allowed_jurisdictions[1]: `eu` is listed twice"),
        "{e}"
    );
}

/// seeds/004: "run restore drills after any change to the database schema". A real
/// `PostgreSQL`: backup, drill (pass), alter the schema, backup → the rule fails naming both
/// artifacts; drill → it passes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_change_calls_for_a_drill() {
    let Some(cluster) = wst::pg::TestCluster::start_or_skip() else {
        return;
    };
    cluster.create_database("wst_dev").unwrap();
    cluster
        .psql(
            "wst_dev",
            "CREATE TABLE public.orders (id int PRIMARY KEY, total numeric NOT NULL); \
             INSERT INTO public.orders SELECT g, g * 1.5 FROM generate_series(1, 500) g;",
        )
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let repo = Repository::builder(cipher(), AuditLog::new(t.join("audit.jsonl"), "otto"))
        .sink(disk("local-c", &t.join("c"), false).await)
        .sink(disk("mirror-d", &t.join("d"), false).await)
        .build()
        .unwrap();
    repo.init().await.unwrap();
    let job = repo
        .job()
        .await
        .source(Arc::new(
            wst::pg::PgDumpSource::new(cluster.connection("wst_dev"))
                .with_tools(cluster.tools().clone()),
        ))
        .build()
        .unwrap();
    let restorer: Arc<dyn EntryRestorer> = Arc::new(wst::pg::PgDrillRestorer::new(
        wst::pg::RestoreOptions::new(cluster.connection("postgres"))
            .with_drop_after(true)
            .with_tools(cluster.tools().clone()),
    ));
    let drill_options = DrillOptions::new("wst", "otto", t.join("scratch"));
    let mut t321 = ThreeTwoOneOptions::default();
    t321.min_copies = 2;
    t321.min_media = 1;
    t321.min_offsite = 0;
    let options = ComplianceOptions {
        three_two_one: t321,
        ..ComplianceOptions::default()
    };
    let schema_rule = |status: &ComplianceReport| rule(status, SCHEMA_DRILL_RULE).clone();

    let first = repo.backup(&job).await.unwrap();
    assert!(first.is_success(), "{first:#?}");
    // The sealed sidecar records the database's schema fingerprint.
    let catalog = repo
        .catalog(&**repo.sink("local-c").unwrap())
        .await
        .unwrap();
    let sidecar = catalog
        .get(&first.artifact)
        .unwrap()
        .sidecar
        .clone()
        .unwrap();
    let db = sidecar
        .sources
        .iter()
        .find(|s| s.kind == "postgresql")
        .unwrap();
    let fingerprint = db.schema_fingerprint.clone().unwrap();
    assert_eq!(fingerprint.len(), 64, "{fingerprint}");
    // Never drilled: due, and R7 (not this rule) fails.
    let due = repo.drill_due(repo.clock().now()).await.unwrap();
    assert!(
        due.is_due() && matches!(due, DrillDue::NeverDrilled { .. }),
        "{due:?}"
    );
    let status = repo.status(&options, repo.clock().now()).await.unwrap();
    assert!(schema_rule(&status).passed, "{status:#?}");

    let drill = repo
        .drill(std::slice::from_ref(&restorer), &drill_options, None)
        .await
        .unwrap();
    assert!(drill.passed, "{}", drill.to_markdown());
    let status = repo.status(&options, repo.clock().now()).await.unwrap();
    assert!(schema_rule(&status).passed, "{status:#?}");
    assert!(!repo.drill_due(repo.clock().now()).await.unwrap().is_due());

    // The schema changes; the next backup carries a new fingerprint.
    cluster
        .psql("wst_dev", "ALTER TABLE public.orders ADD COLUMN note text")
        .unwrap();
    let second = repo.backup(&job).await.unwrap();
    assert!(second.is_success(), "{second:#?}");
    let status = repo.status(&options, repo.clock().now()).await.unwrap();
    let r = schema_rule(&status);
    assert!(!r.passed, "{r:#?}");
    assert!(
        r.detail.contains(&first.artifact.to_string())
            && r.detail.contains(&second.artifact.to_string())
            && r.detail.contains(&format!("{}…", &fingerprint[..12])),
        "{r:#?}"
    );
    assert!(r.evidence.contains(&second.artifact.to_string()));
    assert!(r.evidence.contains(&first.artifact.to_string()));
    let due = repo.drill_due(repo.clock().now()).await.unwrap();
    let DrillDue::SchemaChanged {
        newest, drilled, ..
    } = &due
    else {
        panic!("{due:?}");
    };
    assert_eq!(
        (newest.as_str(), drilled.as_str()),
        (
            second.artifact.to_string().as_str(),
            first.artifact.to_string().as_str()
        )
    );

    // The drilled artifact gone from every sink (pruned, deleted by hand): whether the schema
    // changed since can no longer be told, so a drill is due and the rule fails.
    for dir in ["c", "d"] {
        fs::remove_file(t.join(dir).join(first.artifact.artifact_object())).unwrap();
        fs::remove_file(t.join(dir).join(first.artifact.sidecar_object())).unwrap();
    }
    let due = repo.drill_due(repo.clock().now()).await.unwrap();
    assert!(
        due.is_due() && matches!(due, DrillDue::Unknown { .. }),
        "{due:?}"
    );
    let status = repo.status(&options, repo.clock().now()).await.unwrap();
    let r = schema_rule(&status);
    assert!(
        !r.passed && r.detail.contains("on no sink any more"),
        "{r:#?}"
    );

    // A passing drill of the new schema clears it.
    let drill = repo
        .drill(std::slice::from_ref(&restorer), &drill_options, None)
        .await
        .unwrap();
    assert!(drill.passed, "{}", drill.to_markdown());
    assert_eq!(drill.artifact, second.artifact.to_string());
    let status = repo.status(&options, repo.clock().now()).await.unwrap();
    assert!(schema_rule(&status).passed, "{status:#?}");
    assert!(matches!(
        repo.drill_due(repo.clock().now()).await.unwrap(),
        DrillDue::Unchanged { .. }
    ));
}

/// The BCP and the evidence bundle of a repository with real runs: three backups eight days
/// apart, verification, a drill whose reports are written as `wst drill` writes them, and a
/// prune that deletes the oldest backup on each sink.
#[tokio::test]
async fn bcp_and_evidence_bundle_of_real_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let src = t.join("src");
    fs::create_dir_all(src.join("public")).unwrap();
    fs::write(src.join("public/index.html"), "<h1>wst</h1>\n".repeat(50)).unwrap();
    let config = Config::from_toml_str(&format!(
        r#"
project = "acme-shop"
audit_log = "{d}/state/audit.jsonl"
[[files]]
path = "{src}"
root = "wst"
[encryption]
key_file = "{d}/k"
[[sinks]]
name = "local-c"
url = "{d}/c"
[[sinks]]
name = "mirror-d"
url = "{d}/d"
[retention]
time_zone = "UTC"
[retention.policy]
keep_last = 2
[drill]
scratch_dir = "{d}/scratch"
rto_target_minutes = 60
rpo_target_hours = 24
[compliance]
min_copies = 2
[bcp]
client = "ACME B.V."
[[bcp.contacts]]
role = "incident commander"
name = "mira"
escalation = "immediate"
"#,
        d = t.display(),
        src = src.display()
    ))
    .unwrap();
    let clock = Clock::manual("2026-10-01T01:00:00Z".parse().unwrap());
    let repo = Repository::builder(
        cipher(),
        AuditLog::new(&config.audit_log, "otto").with_clock(clock.clone()),
    )
    .sink(disk("local-c", &t.join("c"), false).await)
    .sink(disk("mirror-d", &t.join("d"), false).await)
    .build()
    .unwrap();
    repo.init().await.unwrap();
    let job = repo
        .job()
        .await
        .source(Arc::new(FileTreeSource::new(&src, "wst").unwrap()))
        .build()
        .unwrap();
    let mut names = Vec::new();
    for i in 0..3 {
        if i > 0 {
            clock.advance(SignedDuration::from_hours(24 * 8));
        }
        let run = repo.backup(&job).await.unwrap();
        assert!(run.is_success(), "{run:#?}");
        names.push(run.artifact);
    }
    clock.advance(SignedDuration::from_hours(1));
    let c = Arc::clone(repo.sink("local-c").unwrap());
    assert!(repo.verify(&*c, &names[2]).await.unwrap().passed());
    let mut drill_options = DrillOptions::new("acme-shop", "otto", t.join("scratch"));
    drill_options.rto_target_seconds = 3600.0;
    let drill = repo.drill(&[], &drill_options, None).await.unwrap();
    assert!(drill.passed, "{}", drill.to_markdown());
    // As `wst drill` writes its reports.
    let stem = t.join("scratch").join(format!(
        "restore-test-{}",
        drill.date.strftime("%Y%m%d-%H%M%S")
    ));
    fs::write(stem.with_extension("md"), drill.to_markdown()).unwrap();
    fs::write(
        stem.with_extension("json"),
        serde_json::to_vec_pretty(&drill).unwrap(),
    )
    .unwrap();
    let now = clock.now();
    let planner = Planner::new(Policy::default().keep_last(2), time_zone("UTC").unwrap()).unwrap();
    for (sink, r) in repo.prune(&planner, &PruneOptions::new(), now).await {
        let r = r.unwrap();
        assert_eq!(r.deleted.len(), 1, "{sink}: {r:#?}");
    }

    // The BCP: every section of the seeds/002 template, the measured RTO, no invention.
    let records = repo.audit().records().unwrap();
    let bcp = render_bcp(&config, &records, now);
    for section in [
        "# Business Continuity Plan — acme-shop",
        "## 1. SCOPE",
        "## 2. RECOVERY_OBJECTIVES",
        "## 3. BACKUP_INVENTORY",
        "## 4. RECOVERY_PROCEDURES",
        "## 5. CONTACTS",
        "## 6. TEST_HISTORY",
        "client: ACME B.V.",
        "RTO: 1.00h",
        "RPO: 24.00h",
        "| incident commander | mira | immediate |",
    ] {
        assert!(bcp.contains(section), "{section} in\n{bcp}");
    }
    let rto = format!("{:.2}h", drill.rto_seconds / 3600.0);
    assert!(
        bcp.contains(&format!("RTO {rto} (within target)")),
        "{rto} in\n{bcp}"
    );
    assert!(
        bcp.contains(&format!("| restore test | pass | {rto} |")),
        "{bcp}"
    );
    assert!(bcp.contains("3 completed in the last 30 days"), "{bcp}");
    assert!(bcp.contains("last 2 (UTC), min age 7d"), "{bcp}");
    assert!(
        bcp.contains(&format!("**{TO_FILL}** (`[bcp] version`)")),
        "{bcp}"
    );
    assert!(
        bcp.contains(&format!("**{TO_FILL}** (`[bcp] dr_failover`")),
        "{bcp}"
    );
    assert!(
        !bcp.contains("dirk-jan"),
        "nothing from the seeds' example is invented"
    );

    // The evidence bundle of the last 90 days.
    let out = t.join("evidence");
    let since = parse_since("90d", now).unwrap();
    let bundle = write_evidence(&repo, &config, &EvidenceOptions::new(since, now, &out))
        .await
        .unwrap();
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
        assert!(
            bundle.files.iter().any(|x| x == f),
            "{f}: {:?}",
            bundle.files
        );
        assert!(out.join(f).is_file(), "{f}");
    }
    let report_name = stem.file_name().unwrap().to_str().unwrap().to_owned();
    for ext in ["json", "md"] {
        let copied = out
            .join("drill-reports")
            .join(format!("{report_name}.{ext}"));
        assert_eq!(
            fs::read(&copied).unwrap(),
            fs::read(stem.with_extension(ext)).unwrap()
        );
    }
    assert_eq!(bundle.backups, 3);
    assert_eq!(bundle.backups_failed, 0);
    assert_eq!(bundle.deletions, 2, "the oldest backup on each sink");
    assert_eq!(bundle.drills, (1, 1));
    assert_eq!(bundle.drill_reports, 1);
    assert!(bundle.verifications.0 >= 4 && bundle.verifications.1 == 0);
    assert!(bundle.audit_trustworthy);
    // The period's records, exactly as in the log.
    let lines = fs::read_to_string(out.join("records.jsonl")).unwrap();
    assert_eq!(lines.lines().count() as u64, bundle.records);
    let log = fs::read_to_string(&config.audit_log).unwrap();
    for line in lines.lines() {
        assert!(log.contains(line));
    }
    let check: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("audit-check.json")).unwrap()).unwrap();
    assert_eq!(check["problems"], serde_json::json!([]));
    assert!(check["anchors_checked"].as_u64().unwrap() >= 2);
    let status: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("status.json")).unwrap()).unwrap();
    assert!(
        status["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["rule"] == "R3 3-2-1 copies")
    );
    let index = fs::read_to_string(out.join("INDEX.md")).unwrap();
    for needle in [
        "A.8.13",
        "A.5.29",
        "A.5.30",
        "audit chain: VERIFIED",
        "backups: 3 completed, 0 failed",
        "deletions by retention: 2",
        "restore drills: 1, 1 passed",
        &format!(
            "measured RTO of the newest passing drill ({}",
            drill.artifact
        ),
        &format!("| `drill-reports/{report_name}.json` |"),
    ] {
        assert!(index.contains(needle), "{needle} in\n{index}");
    }
    let seq = records
        .iter()
        .find(|r| matches!(r.event, AuditEvent::RestoreDrill { .. }))
        .unwrap()
        .seq;
    assert!(index.contains(&format!("| #{seq} |")), "{index}");
    let summary = fs::read_to_string(out.join("records.md")).unwrap();
    assert!(summary.contains(&names[0].to_string()), "{summary}");
    assert!(
        fs::read_to_string(out.join("bcp.md"))
            .unwrap()
            .contains("## 6. TEST_HISTORY")
    );
    // Writing it is on record.
    let last = repo.audit().records().unwrap().pop().unwrap();
    assert!(
        matches!(&last.event, AuditEvent::ReportWritten { report, files, .. }
            if report == "evidence" && files.len() == bundle.files.len()),
        "{last:?}"
    );

    // A non-empty directory is refused, nothing written.
    let before = fs::read_dir(&out).unwrap().count();
    let e = write_evidence(&repo, &config, &EvidenceOptions::new(since, now, &out))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("is not empty"), "{e}");
    assert_eq!(fs::read_dir(&out).unwrap().count(), before);

    // A bundle that fails half-way (the audit log cannot be read) leaves nothing behind:
    // neither the directory nor its staging.
    let log = config.audit_log.clone();
    let aside = t.join("audit.aside");
    fs::rename(&log, &aside).unwrap();
    fs::create_dir(&log).unwrap();
    let failed = t.join("failed");
    assert!(
        write_evidence(&repo, &config, &EvidenceOptions::new(since, now, &failed))
            .await
            .is_err()
    );
    fs::remove_dir(&log).unwrap();
    fs::rename(&aside, &log).unwrap();
    assert!(!failed.exists(), "no partial bundle");
    let staging: Vec<_> = fs::read_dir(t)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("wst-staging"))
        .collect();
    assert!(staging.is_empty(), "{staging:?}");

    // A shorter period: the last half hour holds the drill and the prune, no backup.
    let recent = (now - SignedDuration::from_mins(30)).to_string();
    let short = write_evidence(
        &repo,
        &config,
        &EvidenceOptions::new(parse_since(&recent, now).unwrap(), now, t.join("short")),
    )
    .await
    .unwrap();
    assert_eq!(
        (short.backups, short.deletions, short.drills),
        (0, 2, (1, 1))
    );

    // A rewritten audit log shows in the bundle: the index says it cannot be trusted.
    let text = fs::read_to_string(&config.audit_log).unwrap().replacen(
        "\"actor\":\"otto\"",
        "\"actor\":\"eve\"",
        1,
    );
    fs::write(&config.audit_log, text).unwrap();
    let tampered = write_evidence(
        &repo,
        &config,
        &EvidenceOptions::new(since, now, t.join("tampered")),
    )
    .await
    .unwrap();
    assert!(!tampered.audit_trustworthy);
    let index = fs::read_to_string(t.join("tampered/INDEX.md")).unwrap();
    assert!(index.contains("audit chain: NOT TRUSTWORTHY"), "{index}");
}
