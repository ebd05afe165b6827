//! Restore drill on a files-only artifact: PASS with a report in the seeds/002 template and an
//! audit record; FAIL (not an error) on a tampered artifact and on a missed RPO target.

mod common;

use std::fs;
use std::sync::Arc;

use common::{cipher, local_sink};
use wst::core::{
    ArtifactVerifier, AuditEvent, AuditLog, BackupJob, DrillOptions, DrillSelection,
    FileTreeSource, restore_drill,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_passes_reports_and_audits_then_fails_on_tampering() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("wst");
    fs::create_dir_all(src.join("public")).unwrap();
    fs::write(src.join("public/index.html"), "<h1>wst</h1>").unwrap();
    let sink = local_sink("local-c", &tmp.path().join("C")).await;
    let cipher = cipher();
    let verifier = ArtifactVerifier::new().require("wst/");
    let job = BackupJob::builder(Arc::clone(&cipher))
        .source(Arc::new(FileTreeSource::new(&src, "wst").unwrap()))
        .sink(Arc::clone(&sink))
        .verifier(verifier.clone())
        .build()
        .unwrap();
    let backup = job.run().await.unwrap();
    let audit = AuditLog::new(tmp.path().join("audit.jsonl"), "otto");
    let mut options = DrillOptions::new("wst", "otto", tmp.path().join("scratch"));
    options.protected_paths = vec![src.clone()];
    let report = restore_drill(&*sink, &*cipher, &verifier, &[], &options, Some(&audit))
        .await
        .unwrap();
    assert!(report.passed, "{:#?}", report.checks);
    assert_eq!(report.artifact, backup.artifact.to_string());
    assert!(report.rto_seconds > 0.0 && report.rto_seconds < 60.0);
    assert!(report.rpo_seconds >= 0.0 && report.rpo_seconds < 60.0);
    assert!(report.cleaned_up && !report.restore_target.exists());
    let md = report.to_markdown();
    for line in [
        "# Restore Test — wst",
        "TESTED_BY: otto",
        "## METRICS",
        "RTO_measured:",
        "(target: <240min)",
        "(target: <24h)",
        "## RESULT: PASS",
        "ISSUES: none",
    ] {
        assert!(md.contains(line), "missing `{line}` in\n{md}");
    }
    let json: serde_json::Value = serde_json::to_value(&report).unwrap();
    assert_eq!(json["passed"], true);
    let records = audit.records().unwrap();
    assert!(matches!(
        &records[0].event,
        AuditEvent::RestoreDrill { passed: true, authorized_by, .. } if authorized_by == "otto"
    ));

    // A missed RPO target fails the drill.
    let mut strict = options.clone();
    strict.rpo_target_seconds = -1.0;
    let report = restore_drill(&*sink, &*cipher, &verifier, &[], &strict, None)
        .await
        .unwrap();
    assert!(!report.passed);
    assert!(
        report
            .issues()
            .iter()
            .any(|i| i.starts_with("rpo_within_target"))
    );
    assert!(report.to_markdown().contains("## RESULT: FAIL"));

    // A tampered artifact fails verification and restores nothing.
    let path = tmp.path().join("C").join(backup.artifact.artifact_object());
    let mut bytes = fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    fs::write(&path, bytes).unwrap();
    options.selection = DrillSelection::RandomWithin { days: 30, seed: 7 };
    let report = restore_drill(&*sink, &*cipher, &verifier, &[], &options, Some(&audit))
        .await
        .unwrap();
    assert!(!report.passed);
    let issues = report.issues().join("\n");
    assert!(
        issues.contains("verify:") && issues.contains("restore_files:"),
        "{issues}"
    );
    assert!(!report.restore_target.exists());
    assert_eq!(audit.records().unwrap().len(), 2);
    assert!(audit.verify().unwrap().intact());
}
