//! A Rust service embedding wst's `Repository`: the doctrine cycle without the CLI.
//!
//! `cargo run --example service` backs up this repository's `crates/` tree to two local disks
//! (C: and a D: mirror, in a temporary directory), then does what a daemon does after every
//! run: verify the new artifact on each sink (results recorded on each copy), prune with a
//! GFS policy (deleting only on proof), and evaluate the compliance status. Every step is
//! audited by the repository itself.

use std::path::Path;
use std::sync::Arc;

use wst::core::{
    AuditLog, BackupJob, Clock, ComplianceOptions, FileTreeSource, PruneOptions, Repository,
    ThreeTwoOneOptions,
};
use wst::crypto::{AeadCipher, Key};
use wst::objstore::LocalDiskSink;
use wst::retention::{Planner, Policy, time_zone};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let work = tempfile::tempdir()?;
    // Keys apart from backups (doctrine): their own directory.
    std::fs::create_dir_all(work.path().join("keys"))?;
    let key_file = work.path().join("keys/backup.key");
    Key::generate()?.write_to(&key_file)?;
    let cipher = Arc::new(AeadCipher::from_key_file(&key_file)?);
    let clock = Clock::system();

    // The sinks exist before `init` marks them; afterwards a missing marker means "not mounted".
    let mut sinks = Vec::new();
    for (name, dir) in [("local-c", "c"), ("mirror-d", "d")] {
        let sink = LocalDiskSink::builder(name, work.path().join(dir))
            .create_dir(true)
            .open()
            .await?;
        sinks.push(Arc::new(sink) as Arc<dyn wst::core::Sink>);
    }
    let audit = AuditLog::new(work.path().join("audit.jsonl"), "service").with_clock(clock.clone());
    let mut builder = Repository::builder(cipher.clone(), audit);
    for s in &sinks {
        builder = builder.sink(Arc::clone(s));
    }
    let repo = builder.build()?;
    for id in repo.init().await? {
        println!(
            "sink {:<9} repository {}",
            id.sink,
            id.repository_id.unwrap_or_default()
        );
    }

    // One backup run and its prune, holding the repository lock (one writer at a time).
    let lock = repo.lock("backup")?;
    let tree = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates");
    let mut job = BackupJob::builder(cipher)
        .source(Arc::new(FileTreeSource::new(&tree, "wst")?))
        .clock(clock.clone());
    for s in &sinks {
        job = job.sink(Arc::clone(s));
    }
    let run = job.build()?.run().await?;
    println!(
        "backup {} {:?}, {} bytes stored",
        run.artifact, run.outcome, run.sinks[0].bytes
    );

    // Verify every copy; the result is sealed into each copy's sidecar.
    for s in repo.sinks() {
        let v = repo.verify(&**s, &run.artifact).await?;
        println!(
            "verify on {:<9} {}",
            s.info().name,
            if v.passed() { "PASS" } else { "FAIL" }
        );
    }

    // Prune: GFS in the operator's time zone; deletes only after proving the newer backup.
    let planner = Planner::new(
        Policy::default().keep_daily(7).keep_weekly(4),
        time_zone("UTC")?,
    )?;
    for (sink, report) in repo
        .prune(&planner, &PruneOptions::new(), clock.now())
        .await
    {
        let r = report?;
        println!(
            "prune on {sink:<9} kept {}, deleted {}",
            r.kept.len(),
            r.deleted.len()
        );
    }

    drop(lock);

    // Compliance: two local disks here, so 2 copies on one medium and no offsite.
    let mut three_two_one = ThreeTwoOneOptions::default();
    three_two_one.min_copies = 2;
    three_two_one.min_media = 1;
    three_two_one.min_offsite = 0;
    let options = ComplianceOptions {
        three_two_one,
        ..ComplianceOptions::default()
    };
    for rule in repo.status(&options, clock.now()).await?.rules {
        println!(
            "[{}] {:<26} {}",
            if rule.passed { "PASS" } else { "FAIL" },
            rule.rule,
            rule.detail
        );
    }
    Ok(())
}
