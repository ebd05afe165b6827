//! The erasure register and the retention ceiling through the library (issue 18): real
//! local-disk sinks, the real cipher, a manual clock.
//!
//! - the register: recorded on every sink (encrypted, no subject id on the sink or in the audit
//!   log), listed as the union by id, a tampered or renamed copy named and not used, a sink
//!   that lost an entry caught up; re-applied to a restored tree (files and bucket objects).
//! - the ceiling: `status` fails while any copy is older than `max_age` (before prune runs);
//!   prune deletes it, except a sink's single newest backup, which the plan keeps and says so.

mod common;

use std::fs;
use std::sync::Arc;

use bytes::Bytes;
use common::{cipher, local_sink};
use jiff::SignedDuration;
use wst::core::{
    AuditEvent, AuditLog, BackupJob, Clock, ComplianceOptions, ErasureRequest, ErasureScope,
    ErasureTemplate, FileTreeSource, ObjectErasure, PruneOptions, Reason, Repository,
    RestoreOptions, RunOutcome, SinkExt, ThreeTwoOneOptions, erase_tree, erasure_object,
};
use wst::retention::{Planner, Policy, time_zone};

fn template() -> ErasureTemplate {
    ErasureTemplate {
        sql: vec!["DELETE FROM app.users WHERE id = $1".into()],
        objects: vec![ObjectErasure {
            bucket: "proofs".into(),
            root: "buckets/proofs/".into(),
            prefix: "uploads/{subject}/".into(),
        }],
        paths: vec!["wst/uploads/{subject}/**".into()],
    }
}

fn request(subject: &str) -> ErasureRequest {
    ErasureRequest {
        scope: ErasureScope::Subject,
        subject: subject.into(),
        requested_by: "dpo@example.com".into(),
        reason: "Art. 17 #1".into(),
        template: template(),
    }
}

#[tokio::test]
async fn register_is_recorded_everywhere_united_by_id_and_refuses_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let clock = Clock::manual("2026-11-30T12:00:00Z".parse().unwrap());
    let c = local_sink("local-c", &root.join("c")).await;
    let d = local_sink("mirror-d", &root.join("d")).await;
    let repo = Repository::builder(
        cipher(),
        AuditLog::new(root.join("audit.jsonl"), "tester").with_clock(clock.clone()),
    )
    .sink(Arc::clone(&c))
    .sink(Arc::clone(&d))
    .build()
    .unwrap();
    repo.init().await.unwrap();

    let first = repo.record_erasure(&request("u-1")).await.unwrap();
    assert_eq!(first.written, ["local-c", "mirror-d"]);
    assert_eq!(first.entry.seq, 1);
    assert_eq!(first.entry.recorded, clock.now());
    assert_eq!(first.entry.paths, ["wst/uploads/u-1/**"]);
    assert_eq!(first.entry.objects[0].prefix, "uploads/u-1/");
    clock.advance(SignedDuration::from_mins(5));
    let second = repo.record_erasure(&request("u-2")).await.unwrap();
    assert_eq!(second.entry.seq, 2);
    assert_ne!(first.entry.id, second.entry.id);
    let reg = repo.list_erasures().await.unwrap();
    let subjects: Vec<&str> = reg.entries.iter().map(|e| e.subject.as_str()).collect();
    assert_eq!(subjects, ["u-1", "u-2"]);
    assert!(reg.anomalies.is_empty(), "{:?}", reg.anomalies);
    assert_eq!(reg.holders[&first.entry.id], ["local-c", "mirror-d"]);

    // Encrypted on the sink; no subject id on the sink nor in the audit log.
    let obj = first.entry.object();
    let stored = c.get_bytes(&obj, 1 << 20).await.unwrap();
    assert!(!stored.windows(3).any(|w| w == b"u-1"));
    let log = fs::read_to_string(root.join("audit.jsonl")).unwrap();
    assert!(!log.contains("u-1") && !log.contains("u-2"), "{log}");
    assert!(log.contains("\"erasure_recorded\"") && log.contains("\"erasure_listed\""));

    // Without the key nothing can forge an entry; a flipped byte is named, not used, and the
    // mirror's copy covers it.
    let mut bad = stored.to_vec();
    let n = bad.len() / 2;
    bad[n] ^= 1;
    c.put_bytes(&obj, Bytes::from(bad)).await.unwrap();
    let reg = repo.erasure_register().await.unwrap();
    assert_eq!(reg.entries.len(), 2);
    assert_eq!(reg.anomalies.len(), 1, "{:?}", reg.anomalies);
    assert_eq!(
        (
            reg.anomalies[0].sink.as_str(),
            reg.anomalies[0].object.as_str()
        ),
        ("local-c", obj.as_str())
    );
    assert!(reg.anomalies[0].covered);
    assert_eq!(reg.uncovered().count(), 0);

    // An authentic entry copied under another name (another sequence number) is refused.
    let second_obj = second.entry.object();
    let moved = erasure_object("wst-backup", 9, &second.entry.id);
    let bytes = d.get_bytes(&second_obj, 1 << 20).await.unwrap();
    d.put_bytes(&moved, bytes).await.unwrap();
    let reg = repo.erasure_register().await.unwrap();
    assert!(
        reg.anomalies
            .iter()
            .any(|a| a.object == moved && a.problem.contains("not the one its name says")),
        "{:?}",
        reg.anomalies
    );
    d.delete(&moved).await.unwrap();

    // A copy produced by another repository's key does not decrypt: not used.
    let other = Repository::builder(cipher(), AuditLog::new(root.join("other.jsonl"), "x"))
        .sink(local_sink("local-c", &root.join("other")).await)
        .build()
        .unwrap();
    other.init().await.unwrap();
    let foreign = other.record_erasure(&request("u-9")).await.unwrap();
    let foreign_bytes = fs::read(root.join("other").join(foreign.entry.object())).unwrap();
    let foreign_obj = erasure_object("wst-backup", 3, &foreign.entry.id);
    c.put_bytes(&foreign_obj, Bytes::from(foreign_bytes))
        .await
        .unwrap();
    let reg = repo.erasure_register().await.unwrap();
    assert_eq!(reg.entries.len(), 2, "a foreign entry is never used");
    assert!(
        reg.anomalies
            .iter()
            .any(|a| a.object == foreign_obj && !a.covered)
    );
    c.delete(&foreign_obj).await.unwrap();

    // Catch-up: a sink that lost an entry gets it back (and the tampered copy stays named).
    d.delete(&second_obj).await.unwrap();
    let up = repo.erasure_catch_up().await.unwrap();
    assert_eq!(up.copied, [("mirror-d".to_owned(), second_obj.clone())]);
    assert!(d.exists(&second_obj).await.unwrap());
    assert!(
        repo.audit()
            .records()
            .unwrap()
            .iter()
            .any(|r| matches!(r.event, AuditEvent::ErasureReplicated { .. }))
    );
}

/// A restored tree (from a real artifact) loses the subject's files and bucket objects; an
/// entry recorded before the artifact removes nothing (idempotent).
#[tokio::test]
async fn erase_tree_on_a_restored_artifact() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let src = root.join("src");
    for f in [
        "uploads/u-1/a.txt",
        "uploads/u-1/b/c.txt",
        "uploads/u-10/d.txt",
        "index.html",
    ] {
        fs::create_dir_all(src.join(f).parent().unwrap()).unwrap();
        fs::write(src.join(f), f).unwrap();
    }
    let clock = Clock::manual("2026-11-30T12:00:00Z".parse().unwrap());
    let cipher = cipher();
    let c = local_sink("local-c", &root.join("c")).await;
    let repo = Repository::builder(
        Arc::clone(&cipher),
        AuditLog::new(root.join("audit.jsonl"), "tester").with_clock(clock.clone()),
    )
    .sink(Arc::clone(&c))
    .build()
    .unwrap();
    repo.init().await.unwrap();
    let job = repo
        .job()
        .await
        .source(Arc::new(FileTreeSource::new(&src, "wst").unwrap()))
        .build()
        .unwrap();
    let run = repo.backup(&job).await.unwrap();
    assert_eq!(run.outcome, RunOutcome::Success);
    let entry = repo.record_erasure(&request("u-1")).await.unwrap().entry;
    let target = root.join("restored");
    // The repository re-applies its register to the staged tree before promotion.
    let report = repo
        .restore(&run.artifact, &RestoreOptions::isolated(&target), None)
        .await
        .unwrap();
    let done = &report.re_erasures;
    assert_eq!((done[0].files, done[0].objects), (2, 0));
    assert_eq!(done[0].id, entry.id);
    assert!(report.erasure_failures.is_empty());
    assert!(!target.join("wst/uploads/u-1").exists());
    assert!(target.join("wst/uploads/u-10/d.txt").exists());
    assert!(target.join("wst/index.html").exists());
    let again = erase_tree(&target, &[entry]).unwrap();
    assert_eq!((again[0].files, again[0].objects), (0, 0));
    // Audited, with the counts.
    let records = AuditLog::new(root.join("audit.jsonl"), "tester")
        .records()
        .unwrap();
    assert!(records.iter().any(|r| matches!(&r.event,
        AuditEvent::ErasureApplied { files: 2, entries: 1, failed, .. } if failed.is_empty())));

    // A caller that applies the register itself passes `Some(vec![])`: nothing is erased.
    let mine = root.join("mine");
    let mut options = RestoreOptions::isolated(&mine);
    options.erasures = Some(Vec::new());
    let r = repo.restore(&run.artifact, &options, None).await.unwrap();
    assert!(r.re_erasures.is_empty());
    assert!(mine.join("wst/uploads/u-1/a.txt").exists());

    // A register entry that may be missing (an unusable copy, known from no other sink)
    // fails the restore before promotion; break-glass lets it through, named in the report.
    let refused = root.join("refused");
    let mut options = RestoreOptions::isolated(&refused);
    options.erasures = Some(Vec::new());
    options.erasure_anomalies = vec!["local-c: erasure object 7: authentication failed".into()];
    let e = repo
        .restore(&run.artifact, &options, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, wst::core::Error::ErasureNotApplied { detail, .. } if detail.contains("object 7")),
        "{e}"
    );
    assert!(!refused.exists(), "nothing promoted");
    options.break_glass = Some(wst::core::BreakGlass {
        authorized_by: "cto".into(),
        reason: "outage #9".into(),
    });
    let r = repo.restore(&run.artifact, &options, None).await.unwrap();
    assert_eq!(r.erasure_failures.len(), 1, "{:?}", r.erasure_failures);
    assert!(refused.join("wst/index.html").exists());
}

/// Four backups 8 days apart on two sinks; `max_age` 20 days. Status fails on the over-age
/// copies before prune runs; prune deletes them; a sink whose only backup is over age keeps
/// it, and both the plan and status say why.
#[tokio::test]
async fn retention_ceiling_fails_status_before_prune_and_prune_enforces_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let src = root.join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.txt"), "a").unwrap();
    let clock = Clock::manual("2026-10-01T01:00:00Z".parse().unwrap());
    let cipher = cipher();
    let c = local_sink("local-c", &root.join("c")).await;
    let d = local_sink("mirror-d", &root.join("d")).await;
    let repo = Repository::builder(
        Arc::clone(&cipher),
        AuditLog::new(root.join("audit.jsonl"), "tester").with_clock(clock.clone()),
    )
    .sink(Arc::clone(&c))
    .sink(Arc::clone(&d))
    .build()
    .unwrap();
    repo.init().await.unwrap();
    let job = BackupJob::builder(Arc::clone(&cipher))
        .source(Arc::new(FileTreeSource::new(&src, "wst").unwrap()))
        .sink(Arc::clone(&c))
        .sink(Arc::clone(&d))
        .clock(clock.clone())
        .build()
        .unwrap();
    let mut names = Vec::new();
    for i in 0..4 {
        if i > 0 {
            clock.advance(SignedDuration::from_hours(24 * 8));
        }
        names.push(job.run().await.unwrap().artifact);
    }
    clock.advance(SignedDuration::from_hours(1));
    let now = clock.now();
    let tz = time_zone("Europe/Amsterdam").unwrap();
    let policy = Policy::default()
        .keep_last(10)
        .max_age(jiff::ToSpan::days(20));
    let cutoff = policy.cutoffs(now, &tz).unwrap().max_age.unwrap();
    let mut t = ThreeTwoOneOptions::default();
    t.min_copies = 2;
    t.min_media = 1;
    t.min_offsite = 0;
    let options = ComplianceOptions {
        three_two_one: t,
        retention_ceiling: Some(cutoff),
        ..ComplianceOptions::default()
    };
    let ceiling = |report: &wst::core::ComplianceReport| {
        report
            .rules
            .iter()
            .find(|r| r.rule == "retention ceiling")
            .cloned()
            .expect("the ceiling rule")
    };
    // Before prune: the oldest backup (24 days) is over the 20-day ceiling on both sinks.
    let before = ceiling(&repo.status(&options, now).await.unwrap());
    assert!(!before.passed, "{before:?}");
    assert_eq!(
        before.evidence,
        [
            format!("{} on `local-c`", names[0]),
            format!("{} on `mirror-d`", names[0])
        ]
    );
    let planner = Planner::new(policy.clone(), tz.clone()).unwrap();
    let reports = repo.prune(&planner, &PruneOptions::new(), now).await;
    for (sink, r) in &reports {
        let r = r.as_ref().unwrap();
        assert_eq!(
            r.deleted.iter().map(|e| e.name.clone()).collect::<Vec<_>>(),
            [names[0].to_string()],
            "{sink}: {r:#?}"
        );
        assert_eq!(
            r.deleted[0].reasons.first(),
            Some(&Reason::MaxAge),
            "{r:#?}"
        );
    }
    let after = ceiling(&repo.status(&options, now).await.unwrap());
    assert!(after.passed, "{after:?}");

    // Sixty days later without a new backup: every copy is over the ceiling, and prune keeps
    // only the single newest (never the last backup), saying so.
    clock.advance(SignedDuration::from_hours(24 * 60));
    let now = clock.now();
    let cutoff = policy.cutoffs(now, &tz).unwrap().max_age.unwrap();
    let options = ComplianceOptions {
        retention_ceiling: Some(cutoff),
        ..options
    };
    let planner = Planner::new(policy, tz).unwrap();
    let reports = repo.prune(&planner, &PruneOptions::new(), now).await;
    let c_report = reports[0].1.as_ref().unwrap();
    assert_eq!(c_report.deleted.len(), 2, "{c_report:#?}");
    let newest = c_report
        .kept
        .iter()
        .find(|e| e.name == names[3].to_string())
        .expect("the newest backup is kept");
    assert!(
        newest.reasons.contains(&Reason::LastBackup)
            && newest.reasons.contains(&Reason::MaxAgeConflict),
        "{:?}",
        newest.reasons
    );
    let last = ceiling(&repo.status(&options, now).await.unwrap());
    assert!(!last.passed);
    assert!(
        last.evidence
            .iter()
            .all(|e| e.contains("the sink's last backup")),
        "{:?}",
        last.evidence
    );
}
