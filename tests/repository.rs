//! The repository's evidence (issue 14, finding 1 and 6): a flipped byte, a forged sidecar or a
//! failed verification never counts as a good copy, and prune deletes only on proof. Real
//! local-disk sinks, the real cipher, a manual clock (the answers never depend on today's date).

mod common;

use std::fs;
use std::path::Path;
use std::sync::Arc;

use common::{cipher, local_sink};
use jiff::{SignedDuration, Timestamp};
use wst::core::{
    ArtifactName, AuditEvent, AuditLog, BackupJob, Clock, ComplianceOptions, FileTreeSource,
    PruneOptions, Reason, Repository, RunOutcome, Sink, SinkExt, ThreeTwoOneOptions,
};
use wst::retention::{Planner, Policy, time_zone};

struct Fixture {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    clock: Clock,
    repo: Repository,
    job: BackupJob,
}

/// Two local sinks (C: and the D: mirror), one tree, a clock standing at 2026-11-01T01:00Z.
async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let src = root.join("src");
    fs::create_dir_all(src.join("app")).unwrap();
    fs::write(src.join("app/index.html"), "<h1>wst</h1>\n".repeat(100)).unwrap();
    let clock = Clock::manual("2026-11-01T01:00:00Z".parse().unwrap());
    let c = local_sink("local-c", &root.join("c")).await;
    let d = local_sink("mirror-d", &root.join("d")).await;
    let cipher = cipher();
    let audit = AuditLog::new(root.join("audit.jsonl"), "test").with_clock(clock.clone());
    let repo = Repository::builder(Arc::clone(&cipher), audit)
        .sink(Arc::clone(&c))
        .sink(Arc::clone(&d))
        .build()
        .unwrap();
    let job = BackupJob::builder(cipher)
        .source(Arc::new(FileTreeSource::new(&src, "wst").unwrap()))
        .sink(c)
        .sink(d)
        .clock(clock.clone())
        .build()
        .unwrap();
    repo.init().await.unwrap();
    Fixture {
        _dir: dir,
        root,
        clock,
        repo,
        job,
    }
}

impl Fixture {
    /// `n` backups 8 days apart (so all but the newest are past the 7-day minimum age), then
    /// the clock moves one hour on.
    async fn backups(&self, n: usize) -> Vec<ArtifactName> {
        let mut names = Vec::new();
        for i in 0..n {
            if i > 0 {
                self.clock.advance(SignedDuration::from_hours(24 * 8));
            }
            let r = self.job.run().await.unwrap();
            assert_eq!(r.outcome, RunOutcome::Success, "{r:#?}");
            names.push(r.artifact);
        }
        self.clock.advance(SignedDuration::from_hours(1));
        names
    }

    fn sink(&self, name: &str) -> &dyn Sink {
        &**self.repo.sink(name).unwrap()
    }

    /// Flips one byte in the middle of the copy on local disk `dir` (`c` or `d`): same size.
    fn flip(&self, dir: &str, name: &ArtifactName) {
        let path = self.root.join(dir).join(name.artifact_object());
        let mut bytes = fs::read(&path).unwrap();
        let i = bytes.len() / 2;
        bytes[i] ^= 0x40;
        fs::write(&path, bytes).unwrap();
    }

    fn options() -> ComplianceOptions {
        // Two local disks: 2 copies on 1 medium, no offsite, for this test.
        let mut t = ThreeTwoOneOptions::default();
        t.min_copies = 2;
        t.min_media = 1;
        t.min_offsite = 0;
        ComplianceOptions {
            three_two_one: t,
            ..ComplianceOptions::default()
        }
    }

    fn drill(&self, name: &ArtifactName, passed: bool) {
        self.repo
            .audit()
            .append(AuditEvent::RestoreDrill {
                artifact: name.to_string(),
                passed,
                rto_seconds: 1.0,
                rpo_seconds: 1.0,
                authorized_by: "test".into(),
                report: "r.md".into(),
            })
            .unwrap();
    }
}

fn keep_last_3() -> Planner {
    Planner::new(
        Policy::default().keep_last(3),
        time_zone("Europe/Amsterdam").unwrap(),
    )
    .unwrap()
}

fn on_disk(root: &Path, dir: &str) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(root.join(dir))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".tar.zst.wst"))
        .collect();
    v.sort();
    v
}

/// Finding 1: one flipped byte in the newest verified artifact on C:. `verify` fails it and
/// records that on the copy; status is no longer compliant for that copy (R3, R5); prune keeps
/// the older intact artifacts the corrupt one would have let it delete.
#[tokio::test]
async fn a_failed_verification_demotes_the_copy_everywhere() {
    let f = fixture().await;
    let names = f.backups(10).await;
    let newest = names.last().unwrap();
    f.drill(newest, true);
    let now = f.clock.now();
    let status = f.repo.status(&Fixture::options(), now).await.unwrap();
    assert!(status.compliant(), "{status:#?}");

    f.flip("c", newest);
    let report = f.repo.verify(f.sink("local-c"), newest).await.unwrap();
    assert!(!report.passed(), "{report:#?}");

    let catalog = f.repo.catalog(f.sink("local-c")).await.unwrap();
    let copy = catalog.get(newest).unwrap();
    assert!(copy.complete && !copy.verified, "{copy:#?}");
    assert!(!copy.sidecar.as_ref().unwrap().is_verified());

    let status = f.repo.status(&Fixture::options(), now).await.unwrap();
    let failed: Vec<&str> = status.violations().map(|v| v.rule.as_str()).collect();
    assert!(failed.contains(&"R3 3-2-1 copies"), "{status:#?}");
    assert!(failed.contains(&"R5 artifacts verified"), "{status:#?}");
    let r3 = status
        .rules
        .iter()
        .find(|r| r.rule == "R3 3-2-1 copies")
        .unwrap();
    assert!(
        r3.detail.contains("local-c") && r3.detail.contains("FAILED"),
        "{r3:#?}"
    );

    // Prune keep-last 3 on C: the corrupt newest counts for no rule (it stays as the last
    // backup), so the three verified ones before it are kept too: four left, not three.
    let reports = f
        .repo
        .prune(&keep_last_3(), &PruneOptions::new(), now)
        .await;
    for (sink, r) in &reports {
        let r = r.as_ref().unwrap();
        assert!(r.unproven.is_none(), "{sink}: {r:#?}");
    }
    let left = on_disk(&f.root, "c");
    assert_eq!(left.len(), 4, "{left:?}");
    for n in &names[names.len() - 4..] {
        assert!(
            left.contains(&n.artifact_object()),
            "{n} deleted from C: {left:?}"
        );
    }
    // The mirror's copy of the newest is intact and verified: keep-last 3 there.
    assert_eq!(
        on_disk(&f.root, "d").len(),
        3,
        "{:?}",
        on_disk(&f.root, "d")
    );
}

/// Delete only on proof: the newest artifact on C: is corrupted and nobody ran `verify`. Prune
/// verifies it deeply before deleting anything there, finds it broken, records that, and
/// deletes nothing on C:; the mirror, whose copy proves, is pruned.
#[tokio::test]
async fn prune_deletes_nothing_when_the_newer_backup_fails_its_proof() {
    let f = fixture().await;
    let names = f.backups(10).await;
    let newest = names.last().unwrap();
    f.flip("c", newest);
    let now = f.clock.now();
    let reports = f
        .repo
        .prune(&keep_last_3(), &PruneOptions::new(), now)
        .await;
    let c = reports[0].1.as_ref().unwrap();
    assert_eq!(reports[0].0, "local-c");
    assert!(c.deleted.is_empty(), "{c:#?}");
    let why = c.unproven.as_deref().unwrap();
    assert!(why.contains(&newest.to_string()), "{why}");
    assert!(
        c.refusals
            .iter()
            .all(|r| r.protection == Reason::NewerBackupUnproven),
        "{c:#?}"
    );
    assert_eq!(on_disk(&f.root, "c").len(), 10);
    let d = reports[1].1.as_ref().unwrap();
    assert_eq!(d.deleted.len(), 7, "{d:#?}");
    assert_eq!(on_disk(&f.root, "d").len(), 3);

    // The failed proof was recorded on the copy: the next prune on C: relies on the artifact
    // before it (which proves) and keeps the newest three verified ones.
    let catalog = f.repo.catalog(f.sink("local-c")).await.unwrap();
    assert!(!catalog.get(newest).unwrap().verified);
    let audit = f.repo.audit().records().unwrap();
    assert!(audit.iter().any(|r| matches!(
        &r.event,
        AuditEvent::Verification { artifact, passed: false, sink, .. }
            if *artifact == newest.to_string() && sink == "local-c"
    )));
    let again = f
        .repo
        .prune(&keep_last_3(), &PruneOptions::new(), now)
        .await;
    let c = again[0].1.as_ref().unwrap();
    assert!(c.unproven.is_none(), "{c:#?}");
    let left = on_disk(&f.root, "c");
    assert_eq!(left.len(), 4, "{left:?}");
    assert!(
        left.contains(&newest.artifact_object()),
        "the last backup is never deleted"
    );
}

/// A sidecar edited by someone who can write the sink (verification flipped to passed, or
/// rewritten without its MAC) does not authenticate: the copy is unverified, the catalog
/// names the anomaly, and status does not count it.
#[tokio::test]
async fn forged_or_unsealed_sidecars_do_not_count() {
    let f = fixture().await;
    let names = f.backups(2).await;
    let newest = names.last().unwrap();
    f.drill(newest, true);
    let path = f.root.join("d").join(newest.sidecar_object());
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"mac\": \"hmac-sha256 "), "{text}");

    // Forge: claim a later verification time.
    let forged = text.replacen("\"checks_passed\": ", "\"checks_passed\": 1", 1);
    fs::write(&path, &forged).unwrap();
    let catalog = f.repo.catalog(f.sink("mirror-d")).await.unwrap();
    let copy = catalog.get(newest).unwrap();
    assert!(copy.complete && !copy.verified, "{copy:#?}");
    assert!(
        catalog
            .anomalies
            .iter()
            .any(|a| a.to_string().contains("not authentic")),
        "{:?}",
        catalog.anomalies
    );
    let status = f
        .repo
        .status(&Fixture::options(), f.clock.now())
        .await
        .unwrap();
    assert!(!status.compliant());
    let r3 = status
        .rules
        .iter()
        .find(|r| r.rule == "R3 3-2-1 copies")
        .unwrap();
    assert!(r3.detail.contains("mirror-d"), "{r3:#?}");

    // Strip the MAC altogether: unsealed, same verdict.
    let cut = text.rfind(",\n  \"mac\"").unwrap();
    fs::write(&path, format!("{}\n}}", &text[..cut])).unwrap();
    let catalog = f.repo.catalog(f.sink("mirror-d")).await.unwrap();
    assert!(!catalog.get(newest).unwrap().verified);

    // `verify` re-seals a good copy: compliant again.
    let r = f.repo.verify(f.sink("mirror-d"), newest).await.unwrap();
    assert!(r.passed(), "{r:#?}");
    let status = f
        .repo
        .status(&Fixture::options(), f.clock.now())
        .await
        .unwrap();
    assert!(status.compliant(), "{status:#?}");
}

/// Finding 6: a drill that FAILED after a passing one leaves R7 failed.
#[tokio::test]
async fn a_newer_failed_drill_fails_r7() {
    let f = fixture().await;
    let names = f.backups(1).await;
    let now: Timestamp = f.clock.now();
    f.drill(&names[0], true);
    let status = f.repo.status(&Fixture::options(), now).await.unwrap();
    assert!(status.compliant(), "{status:#?}");
    f.clock.advance(SignedDuration::from_secs(60));
    f.drill(&names[0], false);
    let status = f
        .repo
        .status(&Fixture::options(), f.clock.now())
        .await
        .unwrap();
    let r7 = status
        .rules
        .iter()
        .find(|r| r.rule == "R7 restore tested")
        .unwrap();
    assert!(!r7.passed && r7.detail.contains("FAILED"), "{r7:#?}");
}

/// Finding 2: the older artifact's object and sidecar copied over the newer one's names on C:
/// (a substitution, or a rollback). Verify fails it naming the other artifact; a restore of
/// the newer name rejects C:'s copy before promoting anything, falls back to the mirror's
/// good copy, and names the rejected copy; the rejected copy no longer counts as verified.
#[tokio::test]
async fn a_substituted_artifact_is_rejected_and_the_next_copy_restores() {
    let f = fixture().await;
    let names = f.backups(2).await;
    let (older, newer) = (&names[0], &names[1]);
    let c = f.root.join("c");
    fs::copy(
        c.join(older.artifact_object()),
        c.join(newer.artifact_object()),
    )
    .unwrap();
    let sidecar = fs::read_to_string(c.join(older.sidecar_object()))
        .unwrap()
        .replace(&older.to_string(), &newer.to_string());
    fs::write(c.join(newer.sidecar_object()), sidecar).unwrap();

    let report = f.repo.verify(f.sink("local-c"), newer).await.unwrap();
    assert!(!report.passed());
    let identity = report
        .checks
        .iter()
        .find(|c| c.name == "artifact_identity")
        .unwrap();
    assert!(
        !identity.passed && identity.detail.contains(&older.to_string()),
        "{identity:?}"
    );

    // `ls` reads the good copy as well; C:'s alone is refused.
    let listing = f.repo.list(newer, None).await.unwrap();
    assert_eq!(listing.sink, "mirror-d");
    assert_eq!(listing.manifest.artifact, newer.to_string());
    let err = f.repo.list(newer, Some("local-c")).await.unwrap_err();
    assert!(matches!(err, wst::core::Error::Substituted { .. }), "{err}");

    let target = f.root.join("restored");
    let restored = f
        .repo
        .restore(newer, &wst::core::RestoreOptions::isolated(&target), None)
        .await
        .unwrap();
    assert_eq!(restored.sink, "mirror-d");
    assert_eq!(restored.rejected_copies.len(), 1, "{restored:#?}");
    assert!(
        restored.rejected_copies[0].starts_with("local-c: "),
        "{restored:#?}"
    );
    assert!(target.join("wst/app/index.html").is_file());

    // Only C: asked for: the restore fails, naming the substitution, and writes nothing.
    let only_c = f.root.join("only-c");
    let err = f
        .repo
        .restore(
            newer,
            &wst::core::RestoreOptions::isolated(&only_c),
            Some("local-c"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, wst::core::Error::Substituted { .. }), "{err}");
    assert!(!only_c.join("wst").exists());
    let audit = f.repo.audit().records().unwrap();
    assert!(audit.iter().any(|r| matches!(
        &r.event,
        AuditEvent::Restore { passed: false, sink, .. } if sink == "local-c"
    )));
}

/// The sidecar MAC is specified precisely enough for an independent implementation
/// (`docs/EVIDENCE.md` §3): the reference script checks a sealed sidecar with the key file
/// alone, and calls an edited one forged; likewise the keyed audit chain (§5.1).
#[tokio::test]
async fn the_reference_script_checks_sidecar_macs() {
    let ready = std::process::Command::new("python3")
        .args(["-c", "import cryptography"])
        .status()
        .is_ok_and(|s| s.success());
    if !ready {
        assert!(
            std::env::var("CI").is_err(),
            "python3 with `cryptography` is required under CI=true"
        );
        eprintln!(
            "NOTICE: sidecar reference check NOT RUN: install python3 and `pip install cryptography`"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let key = wst::crypto::Key::generate().unwrap();
    let key_file = dir.path().join("backup.key");
    key.write_to(&key_file).unwrap();
    let cipher: Arc<dyn wst::core::Cipher> = Arc::new(
        wst::crypto::AeadCipher::builder()
            .recipient_key(key)
            .build()
            .unwrap(),
    );
    let src = dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.txt"), "a").unwrap();
    let sink = local_sink("local-c", &dir.path().join("c")).await;
    let repo = Repository::builder(
        Arc::clone(&cipher),
        AuditLog::new(dir.path().join("audit.jsonl"), "test"),
    )
    .sink(Arc::clone(&sink))
    .build()
    .unwrap();
    repo.init().await.unwrap();
    let job = repo
        .job()
        .await
        .source(Arc::new(FileTreeSource::new(&src, "wst").unwrap()))
        .build()
        .unwrap();
    let name = repo.backup(&job).await.unwrap().artifact;
    let sidecar = dir.path().join("c").join(name.sidecar_object());
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/wst-crypto/reference/wst_decrypt.py");
    let check = |path: &Path| {
        let out = std::process::Command::new("python3")
            .arg(&script)
            .args(["--check-sidecar", "--key-file"])
            .arg(&key_file)
            .arg(path)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        )
    };
    assert_eq!(check(&sidecar), (Some(0), "authentic".to_owned()));
    let edited = fs::read_to_string(&sidecar)
        .unwrap()
        .replace("\"passed\": true", "\"passed\": false");
    fs::write(&sidecar, edited).unwrap();
    assert_eq!(check(&sidecar), (Some(1), "forged".to_owned()));

    // The keyed audit chain (§5.1) is checked the same way.
    let audit = |path: &Path| {
        let out = std::process::Command::new("python3")
            .arg(&script)
            .args(["--check-audit", "--key-file"])
            .arg(&key_file)
            .arg(path)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        )
    };
    let log = repo.audit().path().to_path_buf();
    let records = repo.audit().records().unwrap().len();
    assert!(records >= 3);
    assert_eq!(audit(&log), (Some(0), format!("intact: {records} records")));
    let text = fs::read_to_string(&log).unwrap();
    fs::write(&log, text.replacen("\"test\"", "\"mallory\"", 1)).unwrap();
    let (code, out) = audit(&log);
    assert_eq!(code, Some(1));
    assert!(out.starts_with("broken: record 0"), "{out}");
}

/// Finding 3: sink identity. `init` marks both disks; the D: mirror "unmounted" (its path now
/// an empty directory on the root filesystem) is named as not a copy; two sinks configured on
/// one directory are refused at `init` and named by `check_sinks`.
#[tokio::test]
async fn sink_markers_catch_an_unmounted_mirror_and_two_sinks_on_one_directory() {
    let f = fixture().await;
    let ids = f.repo.check_sinks().await;
    assert!(ids.iter().all(|i| i.ok), "{ids:#?}");
    assert_eq!(ids[0].repository_id, ids[1].repository_id);
    assert_eq!(f.repo.init().await.unwrap(), ids, "init is idempotent");

    // Unmount D: (the mount point is an empty directory again).
    let d = f.root.join("d");
    fs::rename(&d, f.root.join("d-unmounted")).unwrap();
    fs::create_dir(&d).unwrap();
    let ids = f.repo.check_sinks().await;
    assert!(ids[0].ok);
    assert!(!ids[1].ok);
    assert!(
        ids[1]
            .problem
            .as_deref()
            .unwrap()
            .contains("not be mounted"),
        "{ids:#?}"
    );

    // Two sinks on one directory: init refuses and leaves nothing behind.
    let dir = tempfile::tempdir().unwrap();
    let same = dir.path().join("same");
    let key = cipher();
    let audit = AuditLog::new(dir.path().join("audit.jsonl"), "test");
    let repo = Repository::builder(Arc::clone(&key), audit.clone())
        .sink(local_sink("local-c", &same).await)
        .sink(local_sink("mirror-d", &same).await)
        .build()
        .unwrap();
    let err = repo.init().await.unwrap_err().to_string();
    assert!(err.contains("one directory or bucket prefix"), "{err}");
    assert!(!same.join(wst::core::MARKER_OBJECT).exists());
    // The directory was initialised as C: alone; configured twice, D: is named as C:'s place.
    Repository::builder(Arc::clone(&key), audit)
        .sink(local_sink("local-c", &same).await)
        .build()
        .unwrap()
        .init()
        .await
        .unwrap();
    let ids = repo.check_sinks().await;
    assert!(ids[0].ok && !ids[1].ok, "{ids:#?}");
    assert!(
        ids[1].problem.as_deref().unwrap().contains("`local-c`"),
        "{ids:#?}"
    );

    // A marker of another repository (another key) is refused.
    let other = Repository::builder(cipher(), AuditLog::new(dir.path().join("b.jsonl"), "t"))
        .sink(local_sink("local-c", &same).await)
        .build()
        .unwrap();
    let err = other.init().await.unwrap_err().to_string();
    assert!(err.contains("another repository"), "{err}");
}

/// Finding 6: status reflects a wrong key, leftovers of a killed run, and a run in progress.
#[tokio::test]
async fn status_names_a_wrong_key_and_leftovers_of_killed_runs() {
    let f = fixture().await;
    let names = f.backups(1).await;
    f.drill(&names[0], true);
    let now = f.clock.now();
    let rule = |r: &wst::core::ComplianceReport, name: &str| {
        r.rules.iter().find(|x| x.rule == name).unwrap().clone()
    };
    let status = f.repo.status(&Fixture::options(), now).await.unwrap();
    assert!(status.compliant(), "{status:#?}");

    // A killed run: an artifact without its sidecar and a backup_started without an end.
    let leftover = ArtifactName::new("wst-backup", now).unwrap();
    fs::write(
        f.root.join("c").join(leftover.artifact_object()),
        b"partial",
    )
    .unwrap();
    f.repo
        .audit()
        .append(AuditEvent::BackupStarted {
            sources: vec!["wst".into()],
            sinks: vec!["local-c".into()],
        })
        .unwrap();
    let status = f.repo.status(&Fixture::options(), now).await.unwrap();
    let runs = rule(&status, "runs finished");
    assert!(!runs.passed, "{runs:#?}");
    assert_eq!(runs.evidence.len(), 2, "{runs:#?}");
    assert!(
        runs.evidence[0].contains(&leftover.to_string()),
        "{runs:#?}"
    );
    // While a backup holds the lock, its files are not leftovers.
    let lock = f.repo.lock("backup").unwrap();
    let status = f.repo.status(&Fixture::options(), now).await.unwrap();
    let runs = rule(&status, "runs finished");
    assert!(
        runs.passed && runs.detail.contains("in progress"),
        "{runs:#?}"
    );
    let second = f.repo.lock("backup").unwrap_err().to_string();
    assert!(second.contains("`backup` by pid"), "{second}");
    drop(lock);

    // The same sinks opened with another key: nothing authenticates, nothing opens.
    let wrong = Repository::builder(cipher(), AuditLog::new(f.root.join("audit.jsonl"), "t"))
        .sink(Arc::clone(f.repo.sink("local-c").unwrap()))
        .sink(Arc::clone(f.repo.sink("mirror-d").unwrap()))
        .build()
        .unwrap();
    let status = wrong.status(&Fixture::options(), now).await.unwrap();
    let keys = rule(&status, "keys open the artifacts");
    assert!(
        !keys.passed && keys.detail.contains("key_file"),
        "{keys:#?}"
    );
    assert!(!rule(&status, "sinks identified").passed);
    assert!(!rule(&status, "R5 artifacts verified").passed);

    // Verifying with the wrong key records nothing in the repository's keyed log (it would
    // break the chain for the right key) ...
    let err = wrong
        .verify(f.sink("local-c"), &names[0])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not a configured key"), "{err}");
    assert!(f.repo.audit().verify().unwrap().intact());
    // ... and with a log of its own, its failed verification must not take the good copies'
    // evidence away: a failure is sealed only into a sidecar that authenticates.
    let wrong = Repository::builder(cipher(), AuditLog::new(f.root.join("other.jsonl"), "t"))
        .sink(Arc::clone(f.repo.sink("local-c").unwrap()))
        .sink(Arc::clone(f.repo.sink("mirror-d").unwrap()))
        .build()
        .unwrap();
    let r = wrong.verify(f.sink("local-c"), &names[0]).await.unwrap();
    assert!(!r.passed());
    let catalog = f.repo.catalog(f.sink("local-c")).await.unwrap();
    assert!(catalog.get(&names[0]).unwrap().verified, "{catalog:#?}");
}

/// The primary disk unplugged: status still answers, and R1, R3 and "sinks identified" name it.
#[tokio::test]
async fn status_answers_with_the_primary_unreachable() {
    let f = fixture().await;
    let names = f.backups(1).await;
    f.drill(&names[0], true);
    let c = f.repo.sink("local-c").unwrap();
    let gone: Arc<dyn Sink> = Arc::new(wst::core::UnavailableSink::new(
        c.info().clone(),
        "`/mnt/c` does not exist: the disk may not be mounted",
    ));
    let repo = Repository::builder(cipher(), AuditLog::new(f.root.join("audit.jsonl"), "test"))
        .sink(gone)
        .sink(Arc::clone(f.repo.sink("mirror-d").unwrap()))
        .build()
        .unwrap();
    let status = repo
        .status(&Fixture::options(), f.clock.now())
        .await
        .unwrap();
    let failed: Vec<&str> = status.violations().map(|v| v.rule.as_str()).collect();
    assert!(failed.contains(&"R1 backup frequency"), "{status:#?}");
    assert!(failed.contains(&"sinks identified"), "{status:#?}");
    let r1 = status
        .rules
        .iter()
        .find(|r| r.rule == "R1 backup frequency")
        .unwrap();
    assert!(r1.detail.contains("may not be mounted"), "{r1:#?}");
}

/// The rule named `rule` of a status report.
fn rule<'a>(report: &'a wst::core::ComplianceReport, rule: &str) -> &'a wst::core::RuleStatus {
    report
        .rules
        .iter()
        .find(|r| r.rule == rule)
        .unwrap_or_else(|| panic!("no rule `{rule}` in {report:#?}"))
}

/// Issue 14, "log truncated → detected": the chain's head is anchored in each artifact's
/// manifest and sidecar and in a sealed head object on every sink, so a log cut short (its
/// remaining chain intact) or replaced fails status, `check_audit` and the next verification.
#[tokio::test]
async fn a_truncated_or_replaced_audit_log_is_detected() {
    let f = fixture().await;
    f.repo.backup(&f.job).await.unwrap();
    f.clock.advance(SignedDuration::from_hours(24));
    let second = f.repo.backup(&f.job).await.unwrap();
    f.clock.advance(SignedDuration::from_hours(1));
    let check = f.repo.check_audit().await.unwrap();
    assert!(check.trustworthy(), "{check:#?}");
    // Two head objects and two newest sidecars.
    assert_eq!(check.anchors_checked, 4);
    assert!(check.chain.authenticated >= 6, "{check:#?}");
    let status = f
        .repo
        .status(&Fixture::options(), f.clock.now())
        .await
        .unwrap();
    assert!(rule(&status, "audit log anchored").passed, "{status:#?}");

    // Cut the log after the first run: what is left is a perfectly intact chain.
    let log = f.repo.audit().path().to_path_buf();
    let text = fs::read_to_string(&log).unwrap();
    let first_run: Vec<&str> = text.lines().take(3).collect();
    fs::write(&log, first_run.join("\n") + "\n").unwrap();
    assert!(f.repo.audit().verify().unwrap().intact());
    let check = f.repo.check_audit().await.unwrap();
    assert!(!check.trustworthy());
    assert!(
        check
            .problems
            .iter()
            .any(|p| p.contains("sink `local-c`") && p.contains("truncated")),
        "{check:#?}"
    );
    assert!(
        check
            .problems
            .iter()
            .any(|p| p.contains(&format!("the sidecar of `{}`", second.artifact))),
        "{check:#?}"
    );
    let status = f
        .repo
        .status(&Fixture::options(), f.clock.now())
        .await
        .unwrap();
    let anchored = rule(&status, "audit log anchored");
    assert!(!anchored.passed && !status.compliant(), "{anchored:#?}");
    assert!(anchored.detail.contains("truncated"), "{}", anchored.detail);

    // The newest artifact's manifest names the record its run started at: gone.
    let v = f
        .repo
        .verify(f.sink("mirror-d"), &second.artifact)
        .await
        .unwrap();
    let anchor = v.checks.iter().find(|c| c.name == "audit_anchor").unwrap();
    assert!(
        !anchor.passed && anchor.detail.contains("truncated"),
        "{anchor:?}"
    );

    // A log replaced by a fresh one (as long as the old one) is caught too.
    fs::remove_file(&log).unwrap();
    for _ in 0..12 {
        f.repo
            .audit()
            .append(AuditEvent::ComplianceCheck {
                passed: true,
                rules: Vec::new(),
            })
            .unwrap();
    }
    let check = f.repo.check_audit().await.unwrap();
    assert!(
        check
            .problems
            .iter()
            .any(|p| p.contains("rewritten or replaced")),
        "{check:#?}"
    );
}

/// Issue 14, finding 4: two runs that pick one name (one second, a second host) never write
/// one artifact: each claims its name create-if-absent on the sinks, the loser moves on.
#[tokio::test]
async fn two_runs_in_one_second_never_share_an_artifact() {
    let f = fixture().await;
    let (a, b) = tokio::join!(f.repo.backup(&f.job), f.repo.backup(&f.job));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_ne!(a.artifact, b.artifact);
    assert_eq!(a.outcome, RunOutcome::Success);
    assert_eq!(b.outcome, RunOutcome::Success);
    for sink in ["local-c", "mirror-d"] {
        let catalog = f.repo.catalog(f.sink(sink)).await.unwrap();
        assert_eq!(catalog.verified().count(), 2, "{catalog:#?}");
        assert!(catalog.claims.is_empty(), "claims outlived their runs");
        for r in [&a, &b] {
            let copy = catalog.get(&r.artifact).unwrap();
            assert_eq!(
                copy.sidecar.as_ref().unwrap().ciphertext_sha256,
                r.ciphertext_sha256
            );
        }
    }
    // Another host holds the claim of the next name: this run takes the one after it.
    let next = ArtifactName::new("wst-backup", f.clock.now()).unwrap();
    f.sink("mirror-d")
        .create(&format!("{next}.claim"), "{}".into())
        .await
        .unwrap();
    let c = f.repo.backup(&f.job).await.unwrap();
    assert!(c.artifact > next, "{} vs {next}", c.artifact);
    assert!(
        f.sink("mirror-d")
            .exists(&format!("{next}.claim"))
            .await
            .unwrap()
    );
    // The other host's claim is a leftover for status until it ends (or is removed).
    let status = f
        .repo
        .status(&Fixture::options(), f.clock.now())
        .await
        .unwrap();
    let runs = rule(&status, "runs finished");
    assert!(
        !runs.passed && runs.detail.contains("leftovers"),
        "{runs:#?}"
    );
    assert!(
        runs.evidence.iter().any(|e| e.contains(".claim")),
        "{runs:#?}"
    );
}

/// Issue 14, finding 2 (drill): a copy that fails verification is demoted and the drill
/// proves the next sink's copy, naming the rejected one.
#[tokio::test]
async fn the_drill_falls_back_to_the_next_good_copy() {
    let f = fixture().await;
    let run = f.repo.backup(&f.job).await.unwrap();
    f.clock.advance(SignedDuration::from_hours(1));
    f.flip("c", &run.artifact);
    let options = wst::core::DrillOptions::new("wst", "test", f.root.join("scratch"));
    let report = f.repo.drill(&[], &options, None).await.unwrap();
    assert!(report.passed, "{report:#?}");
    assert_eq!(report.sink, "mirror-d");
    assert_eq!(report.rejected_copies.len(), 1, "{report:#?}");
    assert!(report.rejected_copies[0].starts_with("local-c: "));
    assert!(report.to_markdown().contains("rejected copy: local-c"));
    // The bad copy is demoted for everything else.
    let catalog = f.repo.catalog(f.sink("local-c")).await.unwrap();
    assert!(!catalog.get(&run.artifact).unwrap().verified);
    let drills: Vec<_> = f
        .repo
        .audit()
        .records()
        .unwrap()
        .into_iter()
        .filter(|r| matches!(r.event, AuditEvent::RestoreDrill { passed: true, .. }))
        .collect();
    assert_eq!(drills.len(), 1);
}

/// Issue 14: replicate copies from a good copy only, and repairs a demoted copy.
#[tokio::test]
async fn replicate_repairs_a_demoted_copy_from_a_good_one() {
    let f = fixture().await;
    let run = f.repo.backup(&f.job).await.unwrap();
    f.clock.advance(SignedDuration::from_hours(1));
    f.flip("d", &run.artifact);
    let v = f
        .repo
        .verify(f.sink("mirror-d"), &run.artifact)
        .await
        .unwrap();
    assert!(!v.passed());
    let reports = f
        .repo
        .replicate(&wst::core::ReplicateOptions::default())
        .await;
    let to_d = reports
        .iter()
        .find(|(from, to, _)| from == "local-c" && to == "mirror-d")
        .unwrap();
    let r = to_d.2.as_ref().unwrap();
    assert_eq!(r.copied.len(), 1, "{r:#?}");
    let back = reports
        .iter()
        .find(|(from, _, _)| from == "mirror-d")
        .unwrap();
    let r = back.2.as_ref().unwrap();
    assert!(r.copied.is_empty(), "the demoted copy was a source: {r:#?}");
    let v = f
        .repo
        .verify(f.sink("mirror-d"), &run.artifact)
        .await
        .unwrap();
    assert!(v.passed(), "{v:#?}");
}
