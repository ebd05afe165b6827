//! The backup pipeline: sources → tar → zstd → cipher → every sink, concurrently.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use futures::future::join_all;
use futures::stream::FuturesUnordered;
use tokio::sync::mpsc;

use crate::archive::{ArchiveWriter, FrameSink};
use crate::artifact::{
    ArtifactName, DEFAULT_PREFIX, SIDECAR_FORMAT, Sidecar, SidecarVerification, SourceCounts,
};
use crate::audit::AuditHead;
use crate::bridge::{Counting, FanOut, Msg, join_error};
use crate::cipher::{Cipher, SealWriter};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::evidence::seal_sidecar;
use crate::progress::{NoProgress, Progress, Stage};
use crate::report::{RunOutcome, RunReport, SinkOutcome, SourceOutcome};
use crate::sink::{Sink, SinkExt, SinkUpload};
use crate::source::{PreparedSource, Source, SourceDescription};
use crate::verify::{ArtifactVerifier, Check, VerificationReport};

/// Bytes per message from the archiving thread to the sinks.
const FANOUT_CHUNK: usize = 1024 * 1024;
/// Messages buffered per sink; memory ≈ sinks × depth × 1 MiB.
const FANOUT_DEPTH: usize = 8;

/// A configured backup: sources, sinks, cipher and verification. Build it with
/// [`BackupJob::builder`], run it with [`BackupJob::run`] as often as wanted.
///
/// One run reads every source once, compresses once, encrypts once, and writes the ciphertext
/// to every sink concurrently (back-pressured by the slowest live sink). Memory is bounded by
/// about `sinks × 8 MiB` plus zstd's window, whatever the data size; it also grows with the
/// number of entries (the manifest, about 200 bytes per entry).
#[derive(Debug, Clone)]
pub struct BackupJob {
    sources: Vec<Arc<dyn Source>>,
    sinks: Vec<Arc<dyn Sink>>,
    cipher: Arc<dyn Cipher>,
    verifier: ArtifactVerifier,
    prefix: String,
    zstd_level: i32,
    zstd_workers: u32,
    verify_on_run: bool,
    progress: Arc<dyn Progress>,
    clock: Clock,
    /// The audit head the repository recorded when this run started (its `backup_started`
    /// record); written into the manifest and the sidecar.
    pub(crate) audit_head: Option<AuditHead>,
}

/// Builds a [`BackupJob`].
#[derive(Debug)]
pub struct BackupJobBuilder {
    job: BackupJob,
}

impl BackupJob {
    /// Starts a job that seals artifacts with `cipher`. There is no way to build a job without a
    /// cipher: wst never writes a plaintext artifact (design invariant 1).
    pub fn builder(cipher: Arc<dyn Cipher>) -> BackupJobBuilder {
        BackupJobBuilder {
            job: BackupJob {
                sources: Vec::new(),
                sinks: Vec::new(),
                cipher,
                verifier: ArtifactVerifier::default(),
                prefix: DEFAULT_PREFIX.to_owned(),
                zstd_level: 3,
                zstd_workers: 0,
                verify_on_run: true,
                progress: Arc::new(NoProgress),
                clock: Clock::system(),
                audit_head: None,
            },
        }
    }

    /// The cipher.
    pub fn cipher(&self) -> &Arc<dyn Cipher> {
        &self.cipher
    }

    /// The sources, in configured order.
    pub fn sources(&self) -> &[Arc<dyn Source>] {
        &self.sources
    }

    /// The sinks, in configured order.
    pub fn sinks(&self) -> &[Arc<dyn Sink>] {
        &self.sinks
    }

    /// The verifier runs use.
    pub fn verifier(&self) -> &ArtifactVerifier {
        &self.verifier
    }
}

impl BackupJobBuilder {
    /// Adds a source. Sources are archived in the order added; each source's archive paths must
    /// be distinct from the others'.
    #[must_use]
    pub fn source(mut self, source: Arc<dyn Source>) -> Self {
        self.job.sources.push(source);
        self
    }

    /// Adds a sink. Every sink receives the same ciphertext.
    #[must_use]
    pub fn sink(mut self, sink: Arc<dyn Sink>) -> Self {
        self.job.sinks.push(sink);
        self
    }

    /// Sets the verifier run on every artifact (required entries, deep entry checks).
    #[must_use]
    pub fn verifier(mut self, verifier: ArtifactVerifier) -> Self {
        self.job.verifier = verifier;
        self
    }

    /// The artifact name prefix (default `wst-backup`).
    #[must_use]
    pub fn prefix(mut self, prefix: &str) -> Self {
        prefix.clone_into(&mut self.job.prefix);
        self
    }

    /// The zstd level, 1 to 19 (default 3).
    #[must_use]
    pub fn zstd_level(mut self, level: i32) -> Self {
        self.job.zstd_level = level;
        self
    }

    /// zstd worker threads (0: single-threaded, the default). Needs the `zstdmt` feature;
    /// without it any value other than 0 is a configuration error at [`BackupJobBuilder::build`].
    #[must_use]
    pub fn zstd_workers(mut self, workers: u32) -> Self {
        self.job.zstd_workers = workers;
        self
    }

    /// Whether each run reads the artifact back from the first sink and verifies it deeply
    /// (decrypt, decompress, every entry's SHA-256 against the manifest, required entries, entry
    /// checks) before writing the sidecars. Default: true (doctrine 026 R5: every run verifies).
    ///
    /// # Warning
    /// With `false` the sidecars carry no verification, so retention never counts these
    /// artifacts as verified until a later [`Verifier`](crate::Verifier) run records one. Meant
    /// for benchmarks and for setups that verify in a separate step.
    #[must_use]
    pub fn verify_on_run(mut self, verify: bool) -> Self {
        self.job.verify_on_run = verify;
        self
    }

    /// The clock that names artifacts and stamps sidecars, verification and run reports
    /// (default: [`Clock::system`]). The verifier set with [`BackupJobBuilder::verifier`] is
    /// given the same clock.
    #[must_use]
    pub fn clock(mut self, clock: Clock) -> Self {
        self.job.clock = clock;
        self
    }

    /// Progress hooks.
    #[must_use]
    pub fn progress(mut self, progress: Arc<dyn Progress>) -> Self {
        self.job.progress = progress;
        self
    }

    /// Checks the configuration.
    ///
    /// # Errors
    /// [`Error::Config`] when there is no source or no sink, the level is outside 1..=19, the
    /// cipher has no recipient, or workers are requested without the `zstdmt` feature;
    /// [`Error::InvalidName`] for a bad prefix.
    pub fn build(self) -> Result<BackupJob> {
        let job = self.job;
        if job.sources.is_empty() {
            return Err(Error::Config(
                "a backup job needs at least one source".into(),
            ));
        }
        if job.sinks.is_empty() {
            return Err(Error::Config("a backup job needs at least one sink".into()));
        }
        if !(1..=19).contains(&job.zstd_level) {
            return Err(Error::Config(format!(
                "zstd level {} is outside 1..=19",
                job.zstd_level
            )));
        }
        if job.cipher.recipients().is_empty() {
            return Err(Error::Config(
                "the cipher has no key to seal for: add an encryption key".into(),
            ));
        }
        if job.zstd_workers > 0 && !cfg!(feature = "zstdmt") {
            return Err(Error::Config(
                "zstd workers need wst-core's `zstdmt` feature".into(),
            ));
        }
        let mut names: Vec<&str> = job.sinks.iter().map(|s| s.info().name.as_str()).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Err(Error::Config("two sinks have the same name".into()));
        }
        let mut job = job;
        ArtifactName::new(&job.prefix, job.clock.now())?;
        job.verifier = job.verifier.clock(job.clock.clone());
        Ok(job)
    }
}

/// What the archiving thread produced.
struct Archived {
    tar_bytes: u64,
    ciphertext_bytes: u64,
    sha256: [u8; 32],
    entries: u64,
    bytes_read: u64,
    warnings: Vec<String>,
    /// Each source's outcome (name, kind, preparation seconds), in configured order.
    sources: Vec<SourceOutcome>,
}

/// A source's preparation result, sent to the archiving thread as soon as it is ready.
struct Prepared {
    /// Position in the configured order.
    index: usize,
    name: String,
    result: Result<Box<dyn PreparedSource>>,
    seconds: f64,
}

struct SinkRun {
    written: bool,
    /// The failure came from the sink itself (not from an aborted archive).
    sink_failed: bool,
    bytes: u64,
    seconds: f64,
    error: Option<String>,
}

impl BackupJob {
    /// Runs one backup.
    ///
    /// Returns `Ok` whenever the artifact was written to at least one sink; read
    /// [`RunReport::outcome`] for partial failures (a failed sink, failed verification) — they
    /// are never silent. On `Err` no sink holds a complete artifact.
    ///
    /// # Errors
    /// A source's error (doctrine F1/F2/F3), a cipher error, [`Error::AllSinksFailed`].
    pub async fn run(&self) -> Result<RunReport> {
        let started = self.clock.now();
        let clock = Instant::now();
        let (name, claimed) = self.claim_name(started).await?;
        let result = self.run_as(&name, started, clock).await;
        // The claims only guard the names while the run writes them.
        for sink in claimed {
            if let Err(e) = sink.delete(&claim_object(&name)).await {
                tracing::warn!(sink = %sink.info().name, error = %e, "the name claim was not removed");
            }
        }
        result
    }

    async fn run_as(
        &self,
        name: &ArtifactName,
        started: jiff::Timestamp,
        clock: Instant,
    ) -> Result<RunReport> {
        let name = name.clone();
        let _span = tracing::info_span!("backup", artifact = %name).entered();
        tracing::info!(artifact = %name, sinks = self.sinks.len(), "backup started");

        // 1. Open an upload on every sink.
        let object = name.artifact_object();
        let uploads = join_all(self.sinks.iter().map(|s| s.put(&object))).await;
        let mut tasks = Vec::new();
        let mut senders = Vec::new();
        let mut sink_runs: Vec<Option<SinkRun>> = Vec::new();
        for (sink, upload) in self.sinks.iter().zip(uploads) {
            match upload {
                Ok(up) => {
                    let (tx, rx) = mpsc::channel(FANOUT_DEPTH);
                    senders.push(tx);
                    tasks.push(Some(tokio::spawn(drive_upload(up, rx))));
                    sink_runs.push(None);
                }
                Err(e) => {
                    tracing::error!(sink = %sink.info().name, error = %e, "sink unavailable");
                    tasks.push(None);
                    sink_runs.push(Some(SinkRun {
                        written: false,
                        sink_failed: true,
                        bytes: 0,
                        seconds: 0.0,
                        error: Some(e.to_string()),
                    }));
                }
            }
        }
        if senders.is_empty() {
            return Err(all_failed(
                &name,
                &self.sinks,
                sink_runs.iter().map(Option::as_ref),
            ));
        }

        // 2. Prepare every source concurrently (database snapshot + dump) while a blocking
        //    thread archives each source as soon as it is ready (tar → zstd → cipher →
        //    fan-out): a database dump overlaps the file walk instead of preceding it.
        self.progress.stage(Stage::Preparing);
        let cipher = Arc::clone(&self.cipher);
        let progress = Arc::clone(&self.progress);
        let (level, workers) = (self.zstd_level, self.zstd_workers);
        let artifact = (name.to_string(), self.audit_head.clone());
        let count = self.sources.len();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Prepared>();
        let abort = Arc::new(AtomicBool::new(false));
        let archive_abort = Arc::clone(&abort);
        let archive_clock = Instant::now();
        let wall = self.clock.clone();
        let mut archive_task = tokio::task::spawn_blocking(move || {
            archive(
                &ready_rx,
                count,
                &archive_abort,
                cipher,
                progress,
                level,
                workers,
                senders,
                artifact,
                started,
                &wall,
            )
        });
        let sources = &self.sources;
        let prepare_all = async move {
            let mut pending: FuturesUnordered<_> = sources
                .iter()
                .enumerate()
                .map(|(index, s)| async move {
                    let t = Instant::now();
                    let result = s.prepare().await;
                    Prepared {
                        index,
                        name: s.name(),
                        result,
                        seconds: t.elapsed().as_secs_f64(),
                    }
                })
                .collect();
            while let Some(prepared) = pending.next().await {
                if prepared.result.is_err() {
                    // Stop archiving other sources now: the run fails with this error.
                    abort.store(true, Ordering::Relaxed);
                }
                // The archive thread stopped (an error): drop the other preparations.
                if ready_tx.send(prepared).is_err() {
                    break;
                }
            }
        };
        // If the archive ends first (it failed), the unfinished preparations are dropped, which
        // stops them (e.g. kills pg_dump).
        let archived = tokio::select! {
            a = &mut archive_task => a,
            () = prepare_all => archive_task.await,
        }
        .map_err(|e| join_error(&e));
        let archive_seconds = archive_clock.elapsed().as_secs_f64();

        // 4. Collect the sinks (they complete only after the end marker, abort otherwise).
        self.progress.stage(Stage::Publishing);
        for (slot, task) in sink_runs.iter_mut().zip(tasks) {
            if let Some(task) = task {
                *slot = Some(task.await.unwrap_or_else(|e| SinkRun {
                    written: false,
                    sink_failed: true,
                    bytes: 0,
                    seconds: 0.0,
                    error: Some(format!("sink task failed: {e}")),
                }));
            }
        }
        let archived = match archived.and_then(|r| r) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "backup failed; no artifact published");
                // When every sink failed on its own, say so with each sink's error.
                if sink_runs.iter().flatten().all(|r| r.sink_failed) {
                    return Err(all_failed(
                        &name,
                        &self.sinks,
                        sink_runs.iter().map(Option::as_ref),
                    ));
                }
                return Err(e);
            }
        };
        tracing::info!(
            bytes = archived.ciphertext_bytes,
            seconds = archive_seconds,
            "artifact written"
        );

        // 5. Verify the artifact read back from the first sink that holds it, and check every
        //    other copy's size.
        self.progress.stage(Stage::Verifying);
        let sha_hex = hex::encode(archived.sha256);
        let runs: Vec<SinkRun> = sink_runs
            .into_iter()
            .map(|r| r.expect("every sink ran"))
            .collect();
        let Some(first) = runs.iter().position(|r| r.written) else {
            return Err(all_failed(&name, &self.sinks, runs.iter().map(Some)));
        };
        let mut verification = if self.verify_on_run {
            self.verifier
                .verify_expecting(
                    &*self.sinks[first],
                    &name,
                    &*self.cipher,
                    Some((archived.ciphertext_bytes, sha_hex.clone())),
                )
                .await?
        } else {
            VerificationReport {
                artifact: name.clone(),
                sink: self.sinks[first].info().name.clone(),
                started: self.clock.now(),
                finished: self.clock.now(),
                checks: Vec::new(),
            }
        };
        let mut runs = runs;
        for (sink, run) in self.sinks.iter().zip(runs.iter_mut()) {
            if !run.written {
                continue;
            }
            match sink.head(&object).await {
                Ok(meta) if meta.size == archived.ciphertext_bytes => {
                    verification.checks.push(Check::pass(
                        format!("copy_size:{}", sink.info().name),
                        format!("{} bytes", meta.size),
                    ));
                }
                Ok(meta) => {
                    verification.checks.push(Check::fail(
                        format!("copy_size:{}", sink.info().name),
                        format!(
                            "{} bytes stored, {} written",
                            meta.size, archived.ciphertext_bytes
                        ),
                    ));
                    run.written = false;
                    run.error = Some("stored size differs from the bytes written".into());
                }
                Err(e) => {
                    verification.checks.push(Check::fail(
                        format!("copy_size:{}", sink.info().name),
                        e.to_string(),
                    ));
                    run.written = false;
                    run.error = Some(e.to_string());
                }
            }
        }
        verification.finished = self.clock.now();

        // 6. The sidecar marks the artifact complete on each sink (with the verification result).
        let sidecar = Sidecar {
            audit_head: self.audit_head.clone(),
            format: SIDECAR_FORMAT.to_owned(),
            name: name.clone(),
            object: object.clone(),
            created: started,
            completed: self.clock.now(),
            cipher_suite: self.cipher.suite(),
            key_fingerprints: self.cipher.recipients(),
            ciphertext_size: archived.ciphertext_bytes,
            ciphertext_sha256: sha_hex.clone(),
            tool_version: env!("CARGO_PKG_VERSION").to_owned(),
            // Each source's counts: the next run's `max_shrink` guards compare with them.
            sources: archived
                .sources
                .iter()
                .map(|s| SourceCounts {
                    name: s.name.clone(),
                    kind: s.kind.clone(),
                    entries: s.entries,
                    bytes: s.bytes,
                    listing: s.listing.clone(),
                    schema_fingerprint: s.schema_fingerprint.clone(),
                })
                .collect(),
            mac: None,
            verification: self.verify_on_run.then(|| summary(&verification)),
        };
        // Sealed with the evidence key of the operational key (design invariant 8).
        let evidence = self.cipher.evidence_keys();
        let sidecar_bytes = Bytes::from(seal_sidecar(&sidecar, evidence.first())?);
        for (sink, run) in self.sinks.iter().zip(runs.iter_mut()) {
            if !run.written {
                continue;
            }
            if let Err(e) = sink
                .put_bytes(&name.sidecar_object(), sidecar_bytes.clone())
                .await
            {
                tracing::error!(sink = %sink.info().name, error = %e, "sidecar write failed");
                run.written = false;
                run.error = Some(format!("artifact written but its sidecar failed: {e}"));
            }
        }

        // 7. Report.
        let finished = self.clock.now();
        let sinks: Vec<SinkOutcome> = self
            .sinks
            .iter()
            .zip(runs)
            .map(|(s, r)| SinkOutcome {
                sink: s.info().name.clone(),
                medium: s.info().medium,
                offsite: s.info().offsite,
                written: r.written,
                bytes: r.bytes,
                seconds: r.seconds,
                error: r.error,
            })
            .collect();
        let outcome = if self.verify_on_run && !verification.passed() {
            RunOutcome::Failed
        } else if sinks.iter().any(|s| !s.written) {
            RunOutcome::Degraded
        } else if archived.warnings.is_empty() {
            RunOutcome::Success
        } else {
            RunOutcome::SuccessWithWarnings
        };
        if sinks.iter().all(|s| !s.written) {
            return Err(Error::AllSinksFailed {
                artifact: name.to_string(),
                details: sinks
                    .iter()
                    .map(|s| format!("{}: {}", s.sink, s.error.as_deref().unwrap_or("?")))
                    .collect::<Vec<_>>()
                    .join("; "),
            });
        }
        self.progress.stage(Stage::Done);
        let report = RunReport {
            artifact: name,
            started,
            finished,
            duration_seconds: clock.elapsed().as_secs_f64(),
            entries: archived.entries,
            bytes_read: archived.bytes_read,
            tar_bytes: archived.tar_bytes,
            ciphertext_bytes: archived.ciphertext_bytes,
            compression_ratio: if archived.ciphertext_bytes == 0 {
                0.0
            } else {
                archived.tar_bytes as f64 / archived.ciphertext_bytes as f64
            },
            ciphertext_sha256: sha_hex,
            cipher_suite: self.cipher.suite(),
            key_fingerprints: self.cipher.recipients(),
            sinks,
            sources: archived.sources,
            verification: self.verify_on_run.then_some(verification),
            warnings: archived.warnings,
            outcome,
        };
        match report.outcome {
            RunOutcome::Success | RunOutcome::SuccessWithWarnings => {
                tracing::info!(artifact = %report.artifact, seconds = report.duration_seconds, "backup succeeded");
            }
            RunOutcome::Degraded | RunOutcome::Failed => {
                tracing::error!(artifact = %report.artifact, outcome = ?report.outcome, "backup incomplete");
            }
        }
        Ok(report)
    }

    /// Picks the artifact name for `started`; if that name is taken on a sink (two runs in the
    /// same second), waits for the next second.
    /// Chooses the artifact name for a run started at `started` and claims it on every sink
    /// that can be written, with a create-if-absent `{name}.claim` object ([`Sink::create`]):
    /// of two runs (on two hosts) that pick one name, one gets the claim and the other moves
    /// to the next second, so neither overwrites the other's artifact (issue 14). A name whose
    /// artifact object already exists on a sink is taken too. Returns the name and the sinks
    /// claimed on (the claims are removed when the run ends).
    async fn claim_name(
        &self,
        started: jiff::Timestamp,
    ) -> Result<(ArtifactName, Vec<Arc<dyn Sink>>)> {
        let mut t = started;
        for _ in 0..5 {
            let name = ArtifactName::new(&self.prefix, t)?;
            let claim = Bytes::from(
                serde_json::json!({
                    "artifact": name.to_string(),
                    "host": crate::lock::host_name(),
                    "pid": std::process::id(),
                    "since": started,
                })
                .to_string(),
            );
            let mut claimed: Vec<Arc<dyn Sink>> = Vec::new();
            let mut taken = false;
            for sink in &self.sinks {
                match sink.create(&claim_object(&name), claim.clone()).await {
                    Ok(_) => claimed.push(Arc::clone(sink)),
                    Err(Error::AlreadyExists { .. }) => {
                        taken = true;
                        break;
                    }
                    // An unusable sink fails the run's upload there, reported per sink.
                    Err(e) => {
                        tracing::debug!(sink = %sink.info().name, error = %e, "name not claimed");
                    }
                }
            }
            if !taken {
                for sink in &claimed {
                    if sink.exists(&name.artifact_object()).await.unwrap_or(false) {
                        taken = true;
                    }
                }
            }
            if !taken {
                return Ok((name, claimed));
            }
            for sink in &claimed {
                let _ = sink.delete(&claim_object(&name)).await;
            }
            if !self.clock.is_manual() {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            // The next second at least (a manual clock does not move by itself).
            t = self.clock.now().max(
                t.checked_add(jiff::SignedDuration::from_secs(1))
                    .unwrap_or(t),
            );
        }
        Err(Error::AlreadyExists {
            sink: self
                .sinks
                .first()
                .map(|s| s.info().name.clone())
                .unwrap_or_default(),
            name: format!(
                "artifact names from {started} on (claimed or written by another run: is another backup of this repository running on another host?)"
            ),
        })
    }
}

/// The claim object of a run writing `name`: `{name}.claim` (never listed as an artifact).
pub(crate) fn claim_object(name: &ArtifactName) -> String {
    format!("{name}{}", crate::catalog::CLAIM_EXTENSION)
}

pub(crate) fn summary(v: &VerificationReport) -> SidecarVerification {
    SidecarVerification {
        at: v.finished,
        passed: v.passed(),
        checks_passed: v.checks.iter().filter(|c| c.passed).count() as u32,
        checks_failed: v.checks.iter().filter(|c| !c.passed).count() as u32,
    }
}

/// [`Error::AllSinksFailed`] naming each sink's error (`runs` in sink order; `None` for a sink
/// that has not reported).
fn all_failed<'a>(
    name: &ArtifactName,
    sinks: &[Arc<dyn Sink>],
    runs: impl IntoIterator<Item = Option<&'a SinkRun>>,
) -> Error {
    Error::AllSinksFailed {
        artifact: name.to_string(),
        details: sinks
            .iter()
            .zip(runs)
            .map(|(s, r)| {
                format!(
                    "{}: {}",
                    s.info().name,
                    r.and_then(|r| r.error.as_deref()).unwrap_or("?")
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// Feeds one sink's upload from its channel; completes only after the end marker.
async fn drive_upload(mut up: Box<dyn SinkUpload>, mut rx: mpsc::Receiver<Msg>) -> SinkRun {
    let t = Instant::now();
    let mut bytes = 0u64;
    loop {
        match rx.recv().await {
            Some(Msg::Data(data)) => {
                let n = data.len() as u64;
                if let Err(e) = up.write(data).await {
                    drop(rx);
                    let _ = up.abort().await;
                    return SinkRun {
                        written: false,
                        sink_failed: true,
                        bytes,
                        seconds: t.elapsed().as_secs_f64(),
                        error: Some(e.to_string()),
                    };
                }
                bytes += n;
            }
            Some(Msg::End) => {
                drop(rx);
                return match up.complete().await {
                    Ok(_) => SinkRun {
                        written: true,
                        sink_failed: false,
                        bytes,
                        seconds: t.elapsed().as_secs_f64(),
                        error: None,
                    },
                    Err(e) => SinkRun {
                        written: false,
                        sink_failed: true,
                        bytes,
                        seconds: t.elapsed().as_secs_f64(),
                        error: Some(e.to_string()),
                    },
                };
            }
            None => {
                let _ = up.abort().await;
                return SinkRun {
                    written: false,
                    sink_failed: false,
                    bytes,
                    seconds: t.elapsed().as_secs_f64(),
                    error: Some(
                        "the backup failed before the artifact was complete; upload aborted".into(),
                    ),
                };
            }
        }
    }
}

/// Archives the sources as they become ready: the lowest configured index among the ready ones
/// first, so the archive follows the configured order whenever preparation allows.
#[allow(clippy::too_many_arguments, clippy::needless_pass_by_value)]
fn archive(
    ready_rx: &std::sync::mpsc::Receiver<Prepared>,
    count: usize,
    abort: &Arc<AtomicBool>,
    cipher: Arc<dyn Cipher>,
    progress: Arc<dyn Progress>,
    level: i32,
    workers: u32,
    senders: Vec<mpsc::Sender<Msg>>,
    (artifact, audit_head): (String, Option<AuditHead>),
    started: jiff::Timestamp,
    clock: &Clock,
) -> Result<Archived> {
    // Stage 2 on its own thread: seal (AES-256-GCM) and fan the ciphertext out to the sinks,
    // while this thread reads, hashes and feeds zstd. The stages overlap on separate cores.
    let (tx, rx) = std::sync::mpsc::sync_channel::<SealMsg>(4);
    let seal_cipher = Arc::clone(&cipher);
    let sealer = std::thread::Builder::new()
        .name("wst-seal".into())
        .spawn(move || seal_stage(&*seal_cipher, senders, &rx))
        .map_err(|e| Error::io("starting the sealing thread", e))?;
    let pipe = StagePipe {
        tx: Some(tx),
        buf: Vec::with_capacity(STAGE_CHUNK),
    };
    let encoder = FrameEncoder::new(pipe, level, workers)?;
    let mut writer = ArchiveWriter::new(
        Counting {
            inner: encoder,
            n: 0,
        },
        Arc::clone(&progress),
    );
    writer.abort_on(Arc::clone(abort));
    writer.audit_head(audit_head);
    let mut timings = BTreeMap::new();
    let mut descriptions: Vec<Option<SourceDescription>> = vec![None; count];
    let mut outcomes: Vec<Option<SourceOutcome>> = vec![None; count];
    let mut waiting: BTreeMap<usize, (String, Box<dyn PreparedSource>)> = BTreeMap::new();
    let t = Instant::now();
    let written = (|| {
        for _ in 0..count {
            // Take everything that is ready, then archive the lowest configured index.
            if waiting.is_empty() {
                let first = ready_rx.recv().map_err(|_| {
                    Error::Config("a source stopped without reporting its preparation".into())
                })?;
                accept(first, &mut waiting, &mut timings, &mut outcomes)?;
            }
            while let Ok(more) = ready_rx.try_recv() {
                accept(more, &mut waiting, &mut timings, &mut outcomes)?;
            }
            let Some((index, (name, mut ps))) = waiting.pop_first() else {
                break;
            };
            progress.stage(Stage::Archiving);
            let ts = Instant::now();
            let (entries_before, bytes_before) = (writer.entry_count(), writer.bytes_read());
            if let Err(e) = ps.write_entries(&mut writer) {
                if abort.load(Ordering::Relaxed) {
                    // Stopped because a source failed: that source's error is the cause (it is
                    // sent right after the flag is set).
                    return Err(ready_rx.iter().find_map(|p| p.result.err()).unwrap_or(e));
                }
                return Err(e);
            }
            let d = ps.description();
            timings.insert(format!("archive:{name}"), ts.elapsed().as_secs_f64());
            if let Some(Some(outcome)) = outcomes.get_mut(index) {
                outcome.kind.clone_from(&d.kind);
                outcome.entries = (writer.entry_count() - entries_before) as u64;
                outcome.bytes = writer.bytes_read() - bytes_before;
                outcome.listing = bounded_listing(&d, &mut writer);
                outcome.schema_fingerprint = schema_fingerprint_of(&d);
            }
            descriptions[index] = Some(d);
        }
        Ok::<_, Error>(())
    })();
    timings.insert("archive".into(), t.elapsed().as_secs_f64());
    let entries = writer.entry_count() as u64;
    let bytes_read = writer.bytes_read();
    let warnings = writer.warnings().to_vec();
    let descriptions: Vec<SourceDescription> = descriptions.into_iter().flatten().collect();
    let finished = written.and_then(|()| {
        writer
            .finish(artifact, (started, clock.now()), descriptions, timings)
            .and_then(|(counting, _manifest)| {
                let tar_bytes = counting.n;
                let pipe = counting
                    .inner
                    .finish()
                    .map_err(|e| Error::io("finishing zstd", e))?;
                pipe.end()?;
                Ok(tar_bytes)
            })
    });
    // Without the end marker (any error above) the sealing stage aborts: no final chunk is
    // ever sealed for a failed archive, so no sink can hold a complete-looking artifact.
    let sealed = sealer
        .join()
        .map_err(|_| Error::Config("the sealing thread panicked".into()))?;
    let (tar_bytes, (ciphertext_bytes, sha256)) = match (finished, sealed) {
        (Ok(t), Ok(SealEnd::Sealed(c))) => (t, c),
        // The sealing stage's own error (a cipher failure, every sink failed) is the cause of
        // whatever the archiving side saw; otherwise the archiving side's (a source's) error.
        (_, Err(e)) | (Err(e), Ok(_)) => return Err(e),
        (Ok(_), Ok(SealEnd::ArchiveStopped)) => {
            return Err(Error::Config(
                "the archive stopped before its end; nothing was sealed".into(),
            ));
        }
    };
    Ok(Archived {
        tar_bytes,
        ciphertext_bytes,
        sha256,
        entries,
        bytes_read,
        warnings,
        sources: outcomes.into_iter().flatten().collect(),
    })
}

/// The source's listing facts within the bounds of [`SourceDescription::listing`]; what is
/// dropped is named in a run warning.
fn bounded_listing(
    d: &SourceDescription,
    writer: &mut dyn crate::EntryWriter,
) -> BTreeMap<String, String> {
    use crate::contracts::source::{
        LISTING_MAX_ITEMS, LISTING_MAX_KEY_BYTES, LISTING_MAX_VALUE_BYTES,
    };
    let mut kept = BTreeMap::new();
    let mut dropped = 0usize;
    for (k, v) in &d.listing {
        if kept.len() < LISTING_MAX_ITEMS
            && k.len() <= LISTING_MAX_KEY_BYTES
            && v.len() <= LISTING_MAX_VALUE_BYTES
        {
            kept.insert(k.clone(), v.clone());
        } else {
            dropped += 1;
        }
    }
    if dropped > 0 {
        writer.warn(format!(
            "source `{}`: {dropped} listing fact(s) over the bounds were not recorded in the sidecar",
            crate::contracts::error::quote_name(d.name.as_bytes())
        ));
    }
    kept
}

/// The `schema_fingerprint` string member of a source description's `details` (a database
/// source's schema fingerprint; issue 17), at most 128 characters of hex, else `None`.
fn schema_fingerprint_of(d: &SourceDescription) -> Option<String> {
    d.details
        .get("schema_fingerprint")
        .and_then(serde_json::Value::as_str)
        .filter(|f| !f.is_empty() && f.len() <= 128 && f.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_owned)
}

/// Takes one preparation result: records its timing and outcome, queues the prepared source,
/// or returns the source's error (which fails the run).
fn accept(
    prepared: Prepared,
    waiting: &mut BTreeMap<usize, (String, Box<dyn PreparedSource>)>,
    timings: &mut BTreeMap<String, f64>,
    outcomes: &mut [Option<SourceOutcome>],
) -> Result<()> {
    let ps = prepared.result?;
    timings.insert(format!("prepare:{}", prepared.name), prepared.seconds);
    if let Some(slot) = outcomes.get_mut(prepared.index) {
        *slot = Some(SourceOutcome {
            name: prepared.name.clone(),
            kind: String::new(),
            prepare_seconds: prepared.seconds,
            entries: 0,
            bytes: 0,
            listing: BTreeMap::new(),
            schema_fingerprint: None,
        });
    }
    waiting.insert(prepared.index, (prepared.name, ps));
    Ok(())
}

/// The zstd stage: compresses the tar stream into the pipe to the sealing stage, and splices
/// entries that arrive already compressed ([`crate::EntryWriter::add_zstd`]) between its own
/// frames. The artifact's payload is then a sequence of zstd frames, which decodes as one
/// stream (RFC 8878 §3.1; `docs/FORMAT.md`).
struct FrameEncoder {
    encoder: Option<zstd::stream::write::Encoder<'static, StagePipe>>,
    level: i32,
    workers: u32,
}

impl FrameEncoder {
    fn new(pipe: StagePipe, level: i32, workers: u32) -> Result<Self> {
        Ok(Self {
            encoder: Some(
                Self::encoder(pipe, level, workers).map_err(|e| Error::io("starting zstd", e))?,
            ),
            level,
            workers,
        })
    }

    fn encoder(
        pipe: StagePipe,
        level: i32,
        workers: u32,
    ) -> std::io::Result<zstd::stream::write::Encoder<'static, StagePipe>> {
        #[allow(unused_mut)]
        let mut encoder = zstd::stream::write::Encoder::new(pipe, level)?;
        #[cfg(feature = "zstdmt")]
        if workers > 0 {
            encoder.multithread(workers)?;
        }
        let _ = workers;
        Ok(encoder)
    }

    fn current(
        &mut self,
    ) -> std::io::Result<&mut zstd::stream::write::Encoder<'static, StagePipe>> {
        self.encoder
            .as_mut()
            .ok_or_else(|| std::io::Error::other("zstd stage failed earlier"))
    }

    /// Ends the last frame; returns the pipe to the sealing stage.
    fn finish(mut self) -> std::io::Result<StagePipe> {
        self.encoder
            .take()
            .ok_or_else(|| std::io::Error::other("zstd stage failed earlier"))?
            .finish()
    }
}

impl std::io::Write for FrameEncoder {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.current()?.write(data)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.current()?.flush()
    }
}

impl FrameSink for FrameEncoder {
    fn can_splice(&self) -> bool {
        true
    }

    fn splice(&mut self, frames: &mut dyn std::io::Read, _plain: u64) -> std::io::Result<u64> {
        let encoder = self
            .encoder
            .take()
            .ok_or_else(|| std::io::Error::other("zstd stage failed earlier"))?;
        let mut pipe = encoder.finish()?;
        let copied = std::io::copy(frames, &mut pipe)?;
        self.encoder = Some(Self::encoder(pipe, self.level, self.workers)?);
        Ok(copied)
    }
}

/// Bytes per message from the archiving thread to the sealing thread.
const STAGE_CHUNK: usize = 1024 * 1024;

/// A message to the sealing stage.
enum SealMsg {
    Data(Vec<u8>),
    /// The compressed stream is complete: seal the final chunk.
    End,
}

/// The archiving thread's end of the channel to the sealing stage (zstd writes into it).
struct StagePipe {
    tx: Option<std::sync::mpsc::SyncSender<SealMsg>>,
    buf: Vec<u8>,
}

impl StagePipe {
    fn send(&mut self, msg: SealMsg) -> std::io::Result<()> {
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| std::io::Error::other("the sealing stage already ended"))?;
        tx.send(msg)
            .map_err(|_| std::io::Error::other("the sealing stage stopped; see its error"))
    }

    /// Sends what is buffered and the end marker.
    fn end(mut self) -> Result<()> {
        let rest = std::mem::take(&mut self.buf);
        let sent = (|| {
            if !rest.is_empty() {
                self.send(SealMsg::Data(rest))?;
            }
            self.send(SealMsg::End)
        })();
        sent.map_err(|e| Error::io("handing the archive to the sealing stage", e))
    }
}

impl std::io::Write for StagePipe {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= STAGE_CHUNK {
            let full = std::mem::replace(&mut self.buf, Vec::with_capacity(STAGE_CHUNK));
            self.send(SealMsg::Data(full))?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The sealing stage: encrypts the compressed stream and fans it out to the sinks. Seals the
/// final chunk (and sends the sinks their end marker) only after [`SealMsg::End`].
/// How the sealing stage ended without an error of its own.
enum SealEnd {
    /// Every byte sealed and handed to the sinks: ciphertext bytes and SHA-256.
    Sealed((u64, [u8; 32])),
    /// The archiving side stopped before the end marker (its error is the cause).
    ArchiveStopped,
}

fn seal_stage(
    cipher: &dyn Cipher,
    senders: Vec<mpsc::Sender<Msg>>,
    rx: &std::sync::mpsc::Receiver<SealMsg>,
) -> Result<SealEnd> {
    use std::io::Write as _;
    let fan = FanOut::new(senders, FANOUT_CHUNK);
    let mut seal = SealWriter::new(cipher, fan)?;
    let seal_err = |e: std::io::Error| match crate::cipher::cipher_error(&e) {
        Some(_) => Error::cipher(e),
        None => Error::io("writing the artifact to the sinks", e),
    };
    loop {
        match rx.recv() {
            Ok(SealMsg::Data(chunk)) => seal.write_all(&chunk).map_err(seal_err)?,
            Ok(SealMsg::End) => break,
            // The archive failed: drop the sealer unfinished; the sinks abort.
            Err(_) => return Ok(SealEnd::ArchiveStopped),
        }
    }
    let fan = seal.finish().map_err(seal_err)?;
    fan.close()
        .map(SealEnd::Sealed)
        .map_err(|e| Error::io("writing to the sinks", e))
}
