//! `base-backup`, `restore --pitr` and `drill --pitr`: point-in-time recovery from base backups
//! and the WAL archive of the same repository (issue 16; seeds/002 "PITR").
//!
//! Base backups are artifacts of the repository's sinks and key under the prefix
//! `{prefix}-base` (`wst-backup-base-YYYYMMDD-HHMMSS`): verified, replicated and audited like
//! every artifact, and kept out of the logical backups' catalog, retention and R-rules.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use wst::core::{
    ArtifactName, ArtifactVerifier, AuditEvent, BreakGlass, Repository, RestoreOptions, RunOutcome,
    Sink,
};
use wst::pg::wal::{Continuity, WalFileName, check_continuity, wal_object_prefix};
use wst::pg::{
    BASE_ROOT, BASE_SOURCE_KIND, BaseBackupRange, BaseBackupSource, PgTools, RecoveryConfig,
    RecoveryOutcome, RecoveryTarget, TargetAction, base_prefix, choose_base_backup,
    configure_recovery, run_recovery, wal_fetch_command,
};

use super::Ops;
use crate::config::pg_connection;
use crate::output::{say, warn_line};
use crate::{Out, context, failed, locked, usage};

/// Entries every base-backup artifact must hold (verified on every run and every `verify`).
const BASE_REQUIRED: [&str; 3] = [
    "pgdata/backup_label",
    "pgdata/backup_manifest",
    "pgdata/global/pg_control",
];

/// A base backup as found in a sink's catalog: its name and WAL range (from its authenticated,
/// verified sidecar).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct BaseBackupEntry {
    pub(crate) name: ArtifactName,
    pub(crate) range: BaseBackupRange,
}

/// `restore --pitr` arguments.
pub(crate) struct PitrRequest {
    pub(crate) pgdata: PathBuf,
    pub(crate) target: RecoveryTarget,
    pub(crate) action: TargetAction,
    pub(crate) base_backup: Option<String>,
    pub(crate) start_port: Option<u16>,
    pub(crate) sink: Option<String>,
    pub(crate) break_glass: Option<BreakGlass>,
    pub(crate) config_path: PathBuf,
}

/// What `restore --pitr` did, for `--json` and the audit record.
#[derive(Debug, Serialize)]
struct PitrReport {
    base_backup: String,
    sink: String,
    pgdata: PathBuf,
    target: RecoveryTarget,
    continuity: Continuity,
    restore_seconds: f64,
    recovery: Option<RecoveryOutcome>,
    /// The erasure register re-applied to the recovered database (issue 18).
    erasures: Vec<wst::core::ReErasure>,
    /// Whether the recovered database may be used: the register applied, or break-glass.
    database_usable: bool,
}

impl Ops {
    /// The repository of base backups: the same sinks, key, audit log and clock, prefix
    /// `{prefix}-base`, verified for [`BASE_REQUIRED`].
    pub(crate) fn base_repository(&self) -> Out<Repository> {
        let mut verifier = ArtifactVerifier::new();
        for r in BASE_REQUIRED {
            verifier = verifier.require(r);
        }
        let mut b = Repository::builder(Arc::clone(&self.cipher), self.audit.clone())
            .verifier(verifier)
            .prefix(&base_prefix(self.repo.prefix()))
            .clock(self.repo.clock().clone());
        for s in &self.sinks {
            b = b.sink(Arc::clone(s));
        }
        b.build().map_err(|e| usage(e.to_string()))
    }

    /// `base-backup`: `pg_basebackup` of the `[database]` cluster streamed into a base-backup
    /// artifact on every identified sink, verified, then the other sinks caught up. Exit 0,
    /// 3 when degraded (a sink missed it), 1 when it failed.
    pub(crate) async fn base_backup(&self) -> Out<u8> {
        let db = self.config.database.as_ref().ok_or_else(|| {
            usage("base-backup needs a [database] section: the cluster to back up")
        })?;
        let repo = self.base_repository()?;
        let _lock = repo.lock("base-backup").map_err(|e| locked(&e))?;
        let source = BaseBackupSource::new(pg_connection(db, &db.url)?);
        let job = repo
            .job()
            .await
            .zstd_level(self.config.zstd_level)
            .source(Arc::new(source))
            .build()
            .map_err(|e| usage(e.to_string()))?;
        let report = repo
            .backup(&job)
            .await
            .map_err(|e| context("base backup failed", e))?;
        let facts = report
            .sources
            .iter()
            .find(|s| s.kind == BASE_SOURCE_KIND)
            .and_then(|s| BaseBackupRange::from_listing(&s.listing));
        self.print(&report, || {
            say!(
                "base backup {} {:?} in {:.1} s: {} entries, {} bytes read, {} bytes per copy",
                report.artifact,
                report.outcome,
                report.duration_seconds,
                report.entries,
                report.bytes_read,
                report.ciphertext_bytes
            );
            if let Some(f) = &facts {
                say!(
                    "  timeline {}, WAL {} .. {} (LSN {} .. {}), consistent at {}",
                    f.timeline,
                    f.start_wal,
                    f.stop_wal,
                    f.start_lsn,
                    f.stop_lsn,
                    f.stop_time
                );
            }
            for s in &report.sinks {
                say!("  {:<12} {}", s.sink, s.error.as_deref().unwrap_or("ok"));
            }
            for w in &report.warnings {
                say!("  warning: {w}");
            }
        });
        let mut code = match report.outcome {
            RunOutcome::Success | RunOutcome::SuccessWithWarnings => 0,
            RunOutcome::Degraded => 3,
            RunOutcome::Failed => return Ok(1),
        };
        if self.sinks.len() > 1 {
            for (from, to, result) in repo
                .replicate(&wst::core::ReplicateOptions::default())
                .await
            {
                match result {
                    Ok(r) if r.is_complete() => {}
                    Ok(r) => {
                        warn_line!(
                            "replicate base backups {from} → {to}: {} failed",
                            r.failed.len()
                        );
                        code = 3;
                    }
                    Err(e) => {
                        warn_line!("replicate base backups {from} → {to}: {e}");
                        code = 3;
                    }
                }
            }
        }
        Ok(code)
    }

    /// The verified base backups on `sink`, oldest first, with their WAL ranges.
    pub(crate) async fn base_backups(
        &self,
        repo: &Repository,
        sink: &dyn Sink,
    ) -> Out<Vec<BaseBackupEntry>> {
        let catalog = repo.catalog(sink).await?;
        Ok(catalog
            .verified()
            .filter_map(|c| {
                let s = c.sidecar.as_ref()?;
                let facts = s.sources.iter().find(|x| x.kind == BASE_SOURCE_KIND)?;
                Some(BaseBackupEntry {
                    name: c.name.clone(),
                    range: BaseBackupRange::from_listing(&facts.listing)?,
                })
            })
            .collect())
    }

    /// Every WAL file name archived on `sink` (a listing; nothing is read).
    pub(crate) async fn archived_wal(
        &self,
        sink: &dyn Sink,
    ) -> Out<Vec<(WalFileName, jiff::Timestamp)>> {
        let prefix = self.repo.prefix();
        let objects = sink.list(&wal_object_prefix(prefix)).await?;
        Ok(objects
            .into_iter()
            .filter_map(|o| {
                WalFileName::from_object_name(&o.name, prefix).map(|n| (n, o.last_modified))
            })
            .collect())
    }

    /// The archived WAL over every reachable sink (a segment counts when any sink has it:
    /// `wal-fetch` falls back from sink to sink).
    async fn archived_wal_union(&self) -> Vec<WalFileName> {
        let mut all = std::collections::BTreeSet::new();
        for s in &self.sinks {
            match self.archived_wal(&**s).await {
                Ok(list) => all.extend(list.into_iter().map(|(n, _)| n)),
                Err(e) => warn_line!("listing WAL on `{}`: {}", s.info().name, e.message),
            }
        }
        all.into_iter().collect()
    }

    /// `restore --pitr`: the base backup for the target (chosen from the first sink's verified
    /// base backups, or `--base-backup NAME`) restored into `--pgdata` (new or empty),
    /// configured for recovery through `wst wal-fetch`, and, with `--port`, started, recovered
    /// and checked. Refuses, before writing anything, a target the archive cannot reach: a gap
    /// in the WAL after the base backup is named.
    pub(crate) async fn restore_pitr(&self, req: PitrRequest) -> Out<u8> {
        let repo = self.base_repository()?;
        let sink = self.sink(req.sink.as_deref())?;
        let bases = self.base_backups(&repo, &*sink).await?;
        let chosen = if let Some(n) = &req.base_backup {
            let name = ArtifactName::parse(n).map_err(|e| usage(e.to_string()))?;
            bases
                .iter()
                .find(|b| b.name == name)
                .cloned()
                .ok_or_else(|| {
                    failed(format!(
                        "sink `{}` holds no verified base backup `{name}`",
                        sink.info().name
                    ))
                })?
        } else {
            let pairs: Vec<(ArtifactName, BaseBackupRange)> = bases
                .iter()
                .map(|b| (b.name.clone(), b.range.clone()))
                .collect();
            let (name, range) = choose_base_backup(&pairs, &req.target).ok_or_else(|| {
                    failed(format!(
                        "no verified base backup on `{}` can reach {} ({} base backups; the oldest is consistent at {}): take `wst base-backup` before the point you need",
                        sink.info().name,
                        req.target,
                        bases.len(),
                        bases.first().map_or_else(|| "-".to_owned(), |b| b.range.stop_time.to_string())
                    ))
                })?;
            BaseBackupEntry {
                name: name.clone(),
                range: range.clone(),
            }
        };
        // Continuity first: a gap found now costs nothing; found by the server it costs a
        // restore (seeds/002: "gaps in the archive discovered only at restore time").
        let continuity = check_continuity(&self.archived_wal_union().await, &chosen.range);
        if let Some(gap) = continuity.first_gap() {
            // For a target before the gap the restore is still possible; the server proves
            // it. For the end of the archive it is not: recovery would stop at the gap and
            // promote silently, losing everything after it.
            if req.target == RecoveryTarget::Latest {
                return Err(failed(format!(
                    "the WAL archive has a gap after base backup {}: segment {gap} is missing on every sink; recovery to the latest point would stop before it. Recover to a target before it (--target-time/--target-lsn), or find the segment",
                    chosen.name
                )));
            }
            warn_line!(
                "restore --pitr: the WAL archive has a gap after {}: {gap}; a target after it cannot be reached",
                chosen.name
            );
        }
        for h in &continuity.missing_history {
            warn_line!("restore --pitr: timeline history file {h} is not archived");
        }
        let pgdata = &req.pgdata;
        if pgdata.exists() {
            let empty = std::fs::read_dir(pgdata)
                .map_err(|e| failed(format!("reading `{}`: {e}", pgdata.display())))?
                .next()
                .is_none();
            if !empty {
                return Err(usage(format!(
                    "--pgdata `{}` is not empty: point-in-time recovery needs a new or empty directory",
                    pgdata.display()
                )));
            }
        }
        // Production: a server that will archive into this repository on a new timeline.
        // Only under break-glass, audited before anything is written.
        let keep_archiving = req.break_glass.is_some();
        if let Some(bg) = &req.break_glass {
            self.repo
                .record(AuditEvent::BreakGlassAuthorized {
                    operation: format!("restore --pitr to {}", req.target),
                    artifact: chosen.name.to_string(),
                    targets: vec![format!("data directory {}", pgdata.display())],
                    break_glass: bg.clone(),
                })
                .await
                .map_err(|e| {
                    failed(format!(
                        "cannot audit the break-glass authorization, nothing restored: {e}"
                    ))
                })?;
        }
        // The artifact is restored into a private staging directory beside --pgdata and its
        // `pgdata/` renamed into place only after the whole stream authenticated.
        let parent = pgdata
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| Path::new("."));
        std::fs::create_dir_all(parent)
            .map_err(|e| failed(format!("creating `{}`: {e}", parent.display())))?;
        let staging = tempfile::Builder::new()
            .prefix(".wst-pitr-")
            .tempdir_in(parent)
            .map_err(|e| {
                failed(format!(
                    "creating a staging directory in `{}`: {e}",
                    parent.display()
                ))
            })?;
        let target_dir = staging.path().join("restore");
        let options = RestoreOptions::isolated(&target_dir).include([format!("{BASE_ROOT}/")]);
        let report = repo
            .restore(&chosen.name, &options, req.sink.as_deref())
            .await
            .map_err(|e| {
                failed(format!(
                    "restore of base backup {} failed, --pgdata untouched: {e}",
                    chosen.name
                ))
            })?;
        for r in &report.rejected_copies {
            warn_line!("restore --pitr: rejected copy {r}");
        }
        if pgdata.exists() {
            std::fs::remove_dir(pgdata)
                .map_err(|e| failed(format!("replacing empty `{}`: {e}", pgdata.display())))?;
        }
        std::fs::rename(target_dir.join(BASE_ROOT), pgdata).map_err(|e| {
            failed(format!(
                "moving the restored data directory to `{}`: {e}",
                pgdata.display()
            ))
        })?;
        drop(staging);
        let config_path =
            std::fs::canonicalize(&req.config_path).unwrap_or(req.config_path.clone());
        let exe = std::env::current_exe().map_err(|e| {
            failed(format!(
                "cannot name the running wst binary for restore_command: {e}"
            ))
        })?;
        let mut rc = RecoveryConfig::new(
            wal_fetch_command(&exe, &config_path, self.config.job_name.as_deref()),
            req.target.clone(),
        )
        .action(req.action)
        .keep_archiving(keep_archiving);
        let socket_dir = pgdata.parent().map(Path::to_path_buf);
        if let Some(port) = req.start_port {
            rc = rc.port(port);
            if cfg!(unix)
                && let Some(d) = &socket_dir
            {
                rc = rc.socket_dir(d);
            }
        }
        configure_recovery(pgdata, &rc).map_err(|e| failed(e.to_string()))?;
        let mut pitr = PitrReport {
            base_backup: chosen.name.to_string(),
            sink: report.sink.clone(),
            pgdata: pgdata.clone(),
            target: req.target.clone(),
            continuity,
            restore_seconds: report.duration_seconds,
            recovery: None,
            erasures: Vec::new(),
            database_usable: false,
        };
        let mut code = 0;
        // The erasure register (issue 18, seeds/003 "erased data must not be restored
        // unintentionally"): its SQL runs in the recovered, promoted database before anyone
        // uses it; a server not started here cannot take it, so that restore is not usable
        // unless break-glass says otherwise.
        let (erasures, anomalies) = self.erasures_for_restore().await?;
        let sql_entries = erasures.iter().filter(|e| !e.sql.is_empty()).count();
        if let Some(port) = req.start_port {
            let host = socket_dir
                .as_ref()
                .filter(|_| cfg!(unix))
                .map_or_else(|| "127.0.0.1".to_owned(), |d| d.display().to_string());
            // A role of the backed-up cluster ([database] url's user, its password source):
            // the recovered data directory is a physical copy with production's roles.
            let db = self.config.database.as_ref().ok_or_else(|| {
                usage("--port needs a [database] section (the role to check the recovered server with)")
            })?;
            let mut conn = pg_connection(db, &db.url)?
                .with_port(port)
                .with_database("postgres");
            conn.host = host;
            let tools = PgTools::discover();
            match run_recovery(pgdata, &tools, &conn, Duration::from_secs(3600)).await {
                Ok((server, outcome)) => {
                    server.keep_running();
                    let db_target = format!("database {} recovered on port {port}", conn.database);
                    let done = if outcome.promoted {
                        let mut c = conn.clone();
                        c.database = pg_connection(db, &db.url)?.database;
                        match wst::pg::erase_database(&c, &erasures).await {
                            Ok(done) => done,
                            Err(e) => vec![wst::core::ReErasure {
                                target: db_target.clone(),
                                error: Some(e.to_string()),
                                ..wst::core::ReErasure::default()
                            }],
                        }
                    } else if sql_entries > 0 {
                        vec![wst::core::ReErasure {
                            target: db_target.clone(),
                            error: Some("the server is not promoted (read-only): promote it, then restore again or apply the register's statements".into()),
                            ..wst::core::ReErasure::default()
                        }]
                    } else {
                        Vec::new()
                    };
                    pitr.database_usable = self.settle_erasures(
                        &chosen.name.to_string(),
                        &db_target,
                        sql_entries,
                        &done,
                        &anomalies,
                        req.break_glass.as_ref(),
                    )?;
                    if !pitr.database_usable {
                        code = 1;
                        warn_line!(
                            "restore --pitr: the erasure register could not be applied to the recovered database: it is NOT USABLE (see the erasure lines; or go on with --break-glass-by WHO --reason WHY)"
                        );
                    }
                    pitr.erasures = done;
                    pitr.recovery = Some(outcome);
                }
                Err(e) => {
                    code = 1;
                    warn_line!("restore --pitr: {e}");
                }
            }
        }
        if req.start_port.is_none() {
            // Not started here: the register cannot be applied by wst.
            pitr.database_usable = sql_entries == 0 && anomalies.is_empty();
            if !pitr.database_usable {
                if req.break_glass.is_some() {
                    warn_line!(
                        "restore --pitr: the erasure register ({sql_entries} entries with SQL) is not applied without --port; apply it before the database is used (break-glass given)"
                    );
                } else {
                    code = 1;
                    warn_line!(
                        "restore --pitr: the erasure register has {sql_entries} entries with SQL that wst applies only to a server it starts: give --port (or --break-glass-by WHO --reason WHY)"
                    );
                }
            }
        }
        self.audit
            .append(AuditEvent::Restore {
                artifact: chosen.name.to_string(),
                sink: pitr.sink.clone(),
                target: format!(
                    "data directory {} recovered to {}",
                    pgdata.display(),
                    req.target
                ),
                passed: code == 0,
                duration_seconds: pitr.restore_seconds
                    + pitr.recovery.as_ref().map_or(0.0, |r| r.recovery_seconds),
                break_glass: req.break_glass.clone(),
                error: (code != 0).then(|| "recovery did not reach its target".to_owned()),
            })
            .map_err(|e| failed(format!("cannot audit the restore: {e}")))?;
        self.print(&pitr, || {
            say!(
                "restore --pitr: base backup {} from {} into {} in {:.1} s, recovery to {}",
                pitr.base_backup,
                pitr.sink,
                pitr.pgdata.display(),
                pitr.restore_seconds,
                pitr.target
            );
            for t in &pitr.continuity.timelines {
                say!(
                    "  WAL timeline {}: {} segments archived from {} to {}{}",
                    t.timeline,
                    t.archived,
                    t.from,
                    t.newest.as_deref().unwrap_or("-"),
                    if t.gaps.is_empty() { String::new() } else {
                        format!(", gaps: {}", t.gaps.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
                    }
                );
            }
            if !pitr.erasures.is_empty() {
                super::erasure::say_erasures(&pitr.erasures);
            }
            match &pitr.recovery {
                Some(r) => {
                    say!(
                        "  recovered in {:.1} s: timeline {}, {}, last replayed commit {}, LSN {}",
                        r.recovery_seconds,
                        r.timeline,
                        if r.promoted { "promoted" } else { "not promoted" },
                        r.last_replayed_commit.map_or_else(|| "-".into(), |t| t.to_string()),
                        r.replayed_lsn.map_or_else(|| "-".into(), |l| l.to_string())
                    );
                    say!("  the server runs on port {}; stop it with pg_ctl stop -D {}", req.start_port.unwrap_or_default(), pitr.pgdata.display());
                }
                None if code == 0 || req.start_port.is_none() => say!(
                    "  configured for recovery (recovery.signal, postgresql.auto.conf); start it with pg_ctl start -D {}",
                    pitr.pgdata.display()
                ),
                None => {}
            }
        });
        Ok(code)
    }
}

/// The default of `[wal] rpo_target_minutes` (seeds/004: RPO ≤ 15 minutes).
const DEFAULT_WAL_RPO_MINUTES: f64 = 15.0;

impl Ops {
    /// The point-in-time recovery rules of `status` when `[wal]` is configured (issue 16),
    /// from listings only (cheap enough to run every minute):
    /// - **WAL continuity**: from the newest verified base backup to the newest archived
    ///   segment, every timeline, over all sinks; gaps named by segment.
    /// - **WAL archive lag**: how far each identified sink's newest segment is behind the
    ///   newest archived anywhere (seconds by the objects' times), and the `wal-drain`
    ///   backlog; fails beyond the RPO target.
    /// - **RPO (WAL)**: the newest archived WAL file is at most `rpo_target_minutes` old.
    pub(crate) async fn wal_rules(&self, now: jiff::Timestamp) -> Vec<wst::core::RuleStatus> {
        use wst::core::RuleStatus;
        let Some(wal) = &self.config.wal else {
            return Vec::new();
        };
        let rpo_minutes = wal.rpo_target_minutes.unwrap_or(DEFAULT_WAL_RPO_MINUTES);
        let rpo = jiff::SignedDuration::from_secs_f64(rpo_minutes * 60.0);
        let mut rules = Vec::new();
        let mut per_sink = Vec::new();
        let mut union = std::collections::BTreeMap::<WalFileName, jiff::Timestamp>::new();
        for s in &self.sinks {
            match self.archived_wal(&**s).await {
                Ok(list) => {
                    let newest = list
                        .iter()
                        .filter(|(n, _)| n.log_and_segment().is_some())
                        .max_by(|a, b| a.0.cmp(&b.0))
                        .cloned();
                    for (n, at) in list {
                        let e = union.entry(n).or_insert(at);
                        *e = (*e).min(at);
                    }
                    per_sink.push((s.info().name.clone(), Some(newest)));
                }
                Err(e) => per_sink.push((
                    format!("{} (unreachable: {})", s.info().name, e.message),
                    None,
                )),
            }
        }
        // Continuity from the newest verified base backup found on any sink.
        let mut base = None;
        if let Ok(repo) = self.base_repository() {
            for s in &self.sinks {
                if let Ok(list) = self.base_backups(&repo, &**s).await
                    && let Some(b) = list.into_iter().next_back()
                {
                    base = Some(b);
                    break;
                }
            }
        }
        let names: Vec<WalFileName> = union.keys().cloned().collect();
        rules.push(match &base {
            None => RuleStatus {
                rule: "WAL continuity".into(),
                passed: false,
                detail: "no verified base backup on any sink: point-in-time recovery has no starting point; run `wst base-backup`".into(),
                evidence: Vec::new(),
            },
            Some(b) => {
                let c = check_continuity(&names, &b.range);
                let gaps: Vec<String> = c
                    .timelines
                    .iter()
                    .flat_map(|t| t.gaps.iter().map(ToString::to_string))
                    .chain(c.missing_history.iter().map(|h| format!("{h} (history file)")))
                    .collect();
                let span = c
                    .timelines
                    .iter()
                    .map(|t| format!("timeline {}: {} to {}", t.timeline, t.from, t.newest.as_deref().unwrap_or("nothing archived yet")))
                    .collect::<Vec<_>>()
                    .join("; ");
                RuleStatus {
                    rule: "WAL continuity".into(),
                    passed: gaps.is_empty(),
                    detail: if gaps.is_empty() {
                        format!("continuous from base backup {} ({span})", b.name)
                    } else {
                        format!(
                            "missing on every sink after base backup {}: {}; recovery cannot pass them (find the files, or take a new base backup)",
                            b.name,
                            gaps.join(", ")
                        )
                    },
                    evidence: vec![b.name.to_string()],
                }
            }
        });
        // Lag per sink, against the newest segment archived anywhere.
        let newest_any = union
            .iter()
            .filter(|(n, _)| n.log_and_segment().is_some())
            .max_by(|a, b| a.0.cmp(b.0))
            .map(|(n, at)| (n.clone(), *at));
        let backlog = self
            .wal_archive()
            .ok()
            .and_then(|a| a.queue_status().ok())
            .unwrap_or_default();
        let mut lag_ok = true;
        let mut lag_detail = Vec::new();
        for (sink, newest) in &per_sink {
            let queued = backlog
                .iter()
                .find(|q| &q.sink == sink)
                .map(|q| format!(", {} queued for wal-drain", q.objects))
                .unwrap_or_default();
            match (newest, &newest_any) {
                (None, _) => {
                    lag_ok = false;
                    lag_detail.push(sink.clone());
                }
                (Some(_), None) => lag_detail.push(format!("{sink}: nothing archived{queued}")),
                (Some(None), Some((n, _))) => {
                    lag_ok = false;
                    lag_detail.push(format!("{sink}: holds no segment (newest is {n}){queued}"));
                }
                (Some(Some((mine, mine_at))), Some((n, at))) => {
                    let behind = at.duration_since(*mine_at).max(jiff::SignedDuration::ZERO);
                    if mine == n {
                        lag_detail.push(format!("{sink}: up to date at {n}{queued}"));
                    } else {
                        if behind > rpo {
                            lag_ok = false;
                        }
                        lag_detail.push(format!(
                            "{sink}: newest {mine}, behind {n} by {} s{queued}",
                            behind.as_secs()
                        ));
                    }
                }
            }
        }
        rules.push(RuleStatus {
            rule: "WAL archive lag".into(),
            passed: lag_ok,
            detail: lag_detail.join("; "),
            evidence: Vec::new(),
        });
        rules.push(match &newest_any {
            None => RuleStatus {
                rule: "RPO (WAL)".into(),
                passed: false,
                detail: "no WAL archived: set archive_command = 'wst --config … wal-push %p'".into(),
                evidence: Vec::new(),
            },
            Some((n, at)) => {
                let age = now.duration_since(*at);
                RuleStatus {
                    rule: "RPO (WAL)".into(),
                    passed: age <= rpo,
                    detail: format!(
                        "newest archived WAL {n} is {} s old (target {rpo_minutes} min){}",
                        age.as_secs().max(0),
                        if age <= rpo { "" } else { "; check archive_command and pg_stat_archiver, and archive_timeout on a quiet server" }
                    ),
                    evidence: vec![n.as_str().to_owned()],
                }
            }
        });
        rules
    }
}

/// What WAL retention did on one sink.
#[derive(Debug, Serialize)]
pub(crate) struct WalPruneReport {
    pub(crate) sink: String,
    pub(crate) dry_run: bool,
    /// The oldest retained base backup, whose start segment bounds what is kept.
    pub(crate) oldest_base_backup: Option<String>,
    /// Its first WAL segment: everything older on its timeline or an earlier one goes.
    pub(crate) keep_from: Option<String>,
    /// WAL files deleted (or, in a dry run, that would be).
    pub(crate) deleted: Vec<String>,
    /// Why nothing was deleted, when that is the case for a reason.
    pub(crate) note: Option<String>,
}

impl Ops {
    /// Retention of base backups and WAL (issue 16), on every sink, after the logical prune:
    /// base backups under the same `[retention]` policy (GFS on base backups, through the
    /// repository: only verified copies count, the newer backup is proven before an older
    /// one goes); then WAL older than the oldest *retained* base backup's start segment (on
    /// its timeline or an earlier one) and older than the retention floor `min_age` is
    /// deleted. A retained base backup never loses the WAL it needs; a sink with no
    /// verified base backup keeps all of its WAL (no deletion on doubt). History files are
    /// always kept (they are small and every later timeline needs them).
    pub(crate) async fn prune_pitr(
        &self,
        planner: &wst::retention::Planner,
        min_age: jiff::SignedDuration,
        dry_run: bool,
        now: jiff::Timestamp,
    ) -> Out<(u8, Vec<wst::core::PruneReport>, Vec<WalPruneReport>)> {
        let repo = self.base_repository()?;
        let mut code = 0;
        let mut base_reports = Vec::new();
        let mut wal_reports = Vec::new();
        for sink in &self.sinks {
            let options = wst::core::PruneOptions::new()
                .dry_run(dry_run)
                .min_age(min_age)
                .prefix(repo.prefix());
            let deleted_bases: Vec<String> =
                match repo.prune_sink(&**sink, planner, &options, now).await {
                    Ok(report) => {
                        if !report.is_clean() {
                            code = 3;
                        }
                        let d = report.deleted.iter().map(|e| e.name.clone()).collect();
                        base_reports.push(report);
                        d
                    }
                    Err(e) => {
                        warn_line!(
                            "prune of base backups on `{}` failed: {e}; no WAL deleted there",
                            sink.info().name
                        );
                        code = 3;
                        continue;
                    }
                };
            let mut report = WalPruneReport {
                sink: sink.info().name.clone(),
                dry_run,
                oldest_base_backup: None,
                keep_from: None,
                deleted: Vec::new(),
                note: None,
            };
            let retained: Vec<BaseBackupEntry> = self
                .base_backups(&repo, &**sink)
                .await?
                .into_iter()
                .filter(|b| !deleted_bases.contains(&b.name.to_string()))
                .collect();
            let Some(oldest) = retained.first() else {
                report.note = Some("no verified base backup on this sink: all WAL kept".into());
                wal_reports.push(report);
                continue;
            };
            let Some((log, seg)) = WalFileName::parse(&oldest.range.start_wal)
                .ok()
                .and_then(|n| n.log_and_segment())
            else {
                report.note = Some(
                    "the oldest base backup's start segment does not parse: all WAL kept".into(),
                );
                wal_reports.push(report);
                continue;
            };
            let seg_bytes = oldest.range.wal_segment_bytes;
            let keep_from = wst::pg::segment_number(log, seg, seg_bytes);
            report.oldest_base_backup = Some(oldest.name.to_string());
            report.keep_from = Some(oldest.range.start_wal.clone());
            let floor = now - min_age;
            let mut victims: Vec<WalFileName> = self
                .archived_wal(&**sink)
                .await?
                .into_iter()
                .filter(|(n, at)| {
                    *at < floor
                        && n.timeline() <= oldest.range.timeline
                        && n.log_and_segment().is_some_and(|(l, s)| {
                            wst::pg::segment_number(l, s, seg_bytes) < keep_from
                        })
                })
                .map(|(n, _)| n)
                .collect();
            victims.sort();
            if victims.is_empty() {
                wal_reports.push(report);
                continue;
            }
            let prefix = self.repo.prefix();
            let mut failed_deletes = 0usize;
            for v in &victims {
                if dry_run {
                    report.deleted.push(v.as_str().to_owned());
                    continue;
                }
                match sink.delete(&v.object_name(prefix)).await {
                    Ok(()) => report.deleted.push(v.as_str().to_owned()),
                    Err(e) => {
                        failed_deletes += 1;
                        warn_line!("prune WAL {} on `{}`: {e}", v.as_str(), sink.info().name);
                    }
                }
            }
            if failed_deletes > 0 {
                code = 3;
            }
            if let (Some(first), Some(last)) = (report.deleted.first(), report.deleted.last()) {
                self.audit
                    .append(AuditEvent::PruneDeletion {
                        sink: report.sink.clone(),
                        artifact: format!("WAL {first}..{last} ({} files)", report.deleted.len()),
                        reasons: vec![format!(
                            "before {}, the first segment of the oldest retained base backup {}",
                            oldest.range.start_wal, oldest.name
                        )],
                        dry_run,
                    })
                    .map_err(|e| failed(format!("cannot audit the WAL deletion: {e}")))?;
            }
            wal_reports.push(report);
        }
        Ok((code, base_reports, wal_reports))
    }
}

/// The point-in-time recovery drill's report (seeds/002 "Restore test report", for PITR).
#[derive(Debug, Serialize)]
struct PitrDrillReport {
    project: String,
    date: jiff::Timestamp,
    performed_by: String,
    base_backup: String,
    sink: String,
    /// The random recovery target (UTC), between the base backup's consistency point and the
    /// newest archived WAL.
    target: jiff::Timestamp,
    /// How the target was reached: `target time` or, when no transaction committed after the
    /// target exists in the archive, `end of archive (no commit after the target)`.
    reached_by: String,
    recovery: Option<RecoveryOutcome>,
    /// Row counts of `[database] expected_tables` in the recovered cluster.
    row_counts: std::collections::BTreeMap<String, i64>,
    /// The newest value of `[database] freshness_column` in the recovered cluster.
    freshness: Option<jiff::Timestamp>,
    /// Seconds from the drill's start to a recovered server: restore plus replay.
    rto_seconds: f64,
    rto_target_seconds: f64,
    /// Seconds of writes a disaster at the target would have lost: the target minus the time
    /// the newest WAL file archived at or before it reached the archive.
    rpo_seconds: f64,
    rpo_target_seconds: f64,
    /// The production server's `archive_timeout`, seconds (0 = off); `None` when it could not
    /// be read.
    archive_timeout_seconds: Option<u64>,
    /// The last successful `wal-push`'s duration, seconds (the signals state file), as the
    /// push latency; `None` when no push was recorded.
    push_latency_seconds: Option<f64>,
    /// `archive_timeout + push latency`, seconds: the most a quiet server can lose when
    /// `archive_timeout` is on (issue 16); `None` when `archive_timeout` is off or unknown.
    rpo_bound_seconds: Option<f64>,
    checks: Vec<(String, bool, String)>,
    passed: bool,
}

impl PitrDrillReport {
    fn to_markdown(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(s, "# Point-in-time recovery drill — {}\n", self.project);
        let _ = writeln!(s, "- Date: {}", self.date);
        let _ = writeln!(s, "- Performed by: {}", self.performed_by);
        let _ = writeln!(
            s,
            "- Base backup: {} (sink {})",
            self.base_backup, self.sink
        );
        let _ = writeln!(
            s,
            "- Recovery target: {} (reached by {})",
            self.target, self.reached_by
        );
        let _ = writeln!(
            s,
            "- Result: **{}**\n",
            if self.passed { "PASS" } else { "FAIL" }
        );
        let _ = writeln!(
            s,
            "| measure | measured | target | met |\n|---|---:|---:|---|"
        );
        let _ = writeln!(
            s,
            "| RTO (s) | {:.1} | {:.0} | {} |",
            self.rto_seconds,
            self.rto_target_seconds,
            if self.rto_seconds <= self.rto_target_seconds {
                "yes"
            } else {
                "no"
            }
        );
        let _ = writeln!(
            s,
            "| RPO (s) | {:.1} | {:.0} | {} |\n",
            self.rpo_seconds,
            self.rpo_target_seconds,
            if self.rpo_seconds <= self.rpo_target_seconds {
                "yes"
            } else {
                "no"
            }
        );
        if let Some(bound) = self.rpo_bound_seconds {
            let _ = writeln!(
                s,
                "RPO bound: archive_timeout {} s + push latency {:.2} s = {:.1} s; the measured \
                 RPO is {} it.\n",
                self.archive_timeout_seconds.unwrap_or(0),
                self.push_latency_seconds.unwrap_or(0.0),
                bound,
                if self.rpo_seconds <= bound {
                    "within"
                } else {
                    "above (the server wrote no WAL to switch, or archiving lagged)"
                }
            );
        }
        let _ = writeln!(s, "## Checks\n\n| check | result | detail |\n|---|---|---|");
        for (name, ok, detail) in &self.checks {
            let _ = writeln!(
                s,
                "| {name} | {} | {detail} |",
                if *ok { "PASS" } else { "FAIL" }
            );
        }
        if !self.row_counts.is_empty() {
            let _ = writeln!(
                s,
                "\n## Row counts at the target\n\n| table | rows |\n|---|---:|"
            );
            for (t, n) in &self.row_counts {
                let _ = writeln!(s, "| {t} | {n} |");
            }
        }
        if let Some(r) = &self.recovery {
            let _ = writeln!(s, "\n## Server log (recovery)\n");
            for l in &r.log {
                let _ = writeln!(s, "    {l}");
            }
        }
        s
    }
}

impl Ops {
    /// `drill --pitr`: point-in-time recovery to a random moment between the newest verified
    /// base backup's consistency point and the newest archived WAL, into a scratch data
    /// directory under `[drill] scratch_dir` on a scratch loopback port (`--port`, default a
    /// free one), with archiving off. Proof: the server recovered and was promoted; no
    /// transaction after the target was replayed (`pg_last_xact_replay_timestamp()` and the
    /// `[database] freshness_column` at or before it); every `[database] expected_tables` table
    /// is there, with its row count in the report. RTO = restore + replay; RPO = what a
    /// disaster at the target would have lost (target − arrival of the newest WAL archived by
    /// then), against `[drill] rto_target_minutes` and `[wal] rpo_target_minutes`. Check
    /// "`archive_timeout` bounds the RPO": the production server's `archive_timeout` (0 = off
    /// fails it) plus the last successful `wal-push`'s duration is within the RPO target —
    /// the most a quiet server can lose (issue 16); skipped with a warning when the server
    /// cannot be asked. The report
    /// (`pitr-drill-YYYYMMDD-HHMMSS.md`/`.json` in the scratch directory) is audited as a
    /// restore drill. Exit 1 on FAIL.
    pub(crate) async fn drill_pitr(&self, sink: Option<&str>, port: Option<u16>) -> Out<u8> {
        use rand::Rng as _;
        let cfg = self
            .config
            .drill
            .as_ref()
            .ok_or_else(|| usage("the configuration has no [drill] section"))?;
        let db = self
            .config
            .database
            .as_ref()
            .ok_or_else(|| usage("drill --pitr needs a [database] section"))?;
        let started = std::time::Instant::now();
        let now = self.repo.clock().now();
        let repo = self.base_repository()?;
        let from = self.sink(sink)?;
        let base = self
            .base_backups(&repo, &*from)
            .await?
            .into_iter()
            .next_back()
            .ok_or_else(|| {
                failed(format!(
                    "sink `{}` holds no verified base backup: run `wst base-backup`",
                    from.info().name
                ))
            })?;
        let mut wal: Vec<(WalFileName, jiff::Timestamp)> = Vec::new();
        for s in &self.sinks {
            if let Ok(list) = self.archived_wal(&**s).await {
                wal.extend(list);
            }
        }
        let newest_at = wal
            .iter()
            .filter(|(n, _)| n.log_and_segment().is_some())
            .map(|(_, at)| *at)
            .max()
            .unwrap_or(base.range.stop_time)
            .min(now);
        let lo = base.range.stop_time.as_millisecond();
        let hi = newest_at.as_millisecond().max(lo);
        let target = jiff::Timestamp::from_millisecond(rand::thread_rng().gen_range(lo..=hi))
            .map_err(|e| failed(e.to_string()))?;
        // The exposure at the target: the newest WAL that had reached the archive by then.
        let archived_by_target = wal
            .iter()
            .filter(|(n, at)| n.log_and_segment().is_some() && *at <= target)
            .map(|(_, at)| *at)
            .max()
            .unwrap_or(base.range.stop_time);
        let rpo_seconds = target
            .duration_since(archived_by_target)
            .as_secs_f64()
            .max(0.0);
        let scratch = cfg
            .scratch_dir
            .join(format!("pitr-{}", now.strftime("%Y%m%d-%H%M%S")));
        std::fs::create_dir_all(&scratch)?;
        let pgdata = scratch.join("pgdata");
        let port = match port {
            Some(p) => p,
            None => std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .map_err(|e| failed(format!("no free loopback port: {e}")))?,
        };
        let mut checks = Vec::new();
        let mut row_counts = std::collections::BTreeMap::new();
        let mut freshness = None;
        let mut recovery = None;
        let mut reached_by = "target time".to_owned();
        let outcome = self
            .drill_recover(&repo, &base, &pgdata, target, port, sink)
            .await;
        let mut server = None;
        match outcome {
            Ok((srv, out, by)) => {
                reached_by = by;
                checks.push((
                    "server recovered and promoted".to_owned(),
                    out.promoted,
                    format!(
                        "timeline {}, replayed to {}",
                        out.timeline,
                        out.replayed_lsn
                            .map_or_else(|| "-".into(), |l| l.to_string())
                    ),
                ));
                let after = out.last_replayed_commit.is_some_and(|c| c > target);
                checks.push((
                    "no transaction after the target".to_owned(),
                    !after,
                    format!(
                        "last replayed commit {}",
                        out.last_replayed_commit
                            .map_or_else(|| "none".into(), |c| c.to_string())
                    ),
                ));
                recovery = Some(out);
                server = Some(srv);
            }
            Err(e) => checks.push((
                "server recovered and promoted".to_owned(),
                false,
                e.message.clone(),
            )),
        }
        if server.is_some() {
            let conn = {
                let mut c = pg_connection(db, &db.url)?
                    .with_port(port)
                    .with_database(pg_connection(db, &db.url)?.database.clone());
                c.host = if cfg!(unix) {
                    scratch.display().to_string()
                } else {
                    "127.0.0.1".into()
                };
                c
            };
            // The erasure register first (issue 18): the drill proves what a restore hands over.
            match self.erasures_for_restore().await {
                Ok((erasures, anomalies)) => {
                    let sql_entries = erasures.iter().filter(|e| !e.sql.is_empty()).count();
                    let done = match wst::pg::erase_database(&conn, &erasures).await {
                        Ok(d) => d,
                        Err(e) => vec![wst::core::ReErasure {
                            target: format!("database {}", conn.database),
                            error: Some(e.to_string()),
                            ..wst::core::ReErasure::default()
                        }],
                    };
                    let failures: Vec<String> = done
                        .iter()
                        .filter_map(|r| r.error.clone())
                        .chain(anomalies)
                        .collect();
                    checks.push((
                        "erasure register re-applied".to_owned(),
                        failures.is_empty(),
                        if failures.is_empty() {
                            format!(
                                "{sql_entries} entries with SQL, {} rows erased",
                                done.iter().map(|r| r.rows).sum::<u64>()
                            )
                        } else {
                            failures.join("; ")
                        },
                    ));
                }
                Err(e) => checks.push(("erasure register re-applied".to_owned(), false, e.message)),
            }
            let probe =
                wst::pg::probe_tables(&conn, &db.expected_tables, db.freshness_column.as_deref())
                    .await;
            match probe {
                Ok((counts, fresh)) => {
                    for t in &db.expected_tables {
                        let found = counts.get(t).copied();
                        checks.push((
                            format!("table {t} present"),
                            found.is_some(),
                            found.map_or_else(|| "missing".into(), |n| format!("{n} rows")),
                        ));
                    }
                    row_counts = counts;
                    if let Some(col) = &db.freshness_column {
                        let ok = fresh.is_none_or(|f| f <= target);
                        checks.push((
                            format!("freshness {col} at or before the target"),
                            ok,
                            fresh.map_or_else(|| "no rows".into(), |f| f.to_string()),
                        ));
                        freshness = fresh;
                    }
                }
                Err(e) => checks.push(("recovered data readable".to_owned(), false, e.to_string())),
            }
        }
        drop(server);
        let rto_seconds = started.elapsed().as_secs_f64();
        let rto_target_seconds = cfg.rto_target_minutes.unwrap_or(240.0) * 60.0;
        let rpo_target_seconds = self
            .config
            .wal
            .as_ref()
            .and_then(|w| w.rpo_target_minutes)
            .unwrap_or(DEFAULT_WAL_RPO_MINUTES)
            * 60.0;
        // The RPO bound (issue 16): archive_timeout + push latency, and whether it keeps a
        // quiet server within the RPO target.
        let archive_timeout_seconds =
            match wst::pg::archive_timeout_seconds(&pg_connection(db, &db.url)?).await {
                Ok(t) => Some(t),
                Err(e) => {
                    warn_line!("drill --pitr: cannot read archive_timeout on the server: {e}");
                    None
                }
            };
        let push_latency_seconds =
            wst::signals::SignalState::load(crate::signals::Signals::of(&self.config).state_path())
                .ok()
                .and_then(|st| {
                    st.operations
                        .get("wal-push")
                        .filter(|o| o.last_success.is_some())
                        .map(|o| o.last_duration_seconds)
                });
        let rpo_bound_seconds = archive_timeout_seconds
            .filter(|t| *t > 0)
            .map(|t| t as f64 + push_latency_seconds.unwrap_or(0.0));
        if let Some(t) = archive_timeout_seconds {
            let (ok, detail) = match rpo_bound_seconds {
                Some(b) => (
                    b <= rpo_target_seconds,
                    format!(
                        "archive_timeout {t} s + push latency {:.2} s = {b:.1} s, RPO target \
                         {rpo_target_seconds:.0} s",
                        push_latency_seconds.unwrap_or(0.0)
                    ),
                ),
                None => (
                    false,
                    "archive_timeout is off: a segment with a few writes stays open until it \
                     fills, however long that takes; set archive_timeout below the RPO target"
                        .to_owned(),
                ),
            };
            checks.push(("archive_timeout bounds the RPO".to_owned(), ok, detail));
        }
        let passed = checks.iter().all(|c| c.1)
            && rto_seconds <= rto_target_seconds
            && rpo_seconds <= rpo_target_seconds;
        let report = PitrDrillReport {
            project: self.config.project.clone(),
            date: now,
            performed_by: super::actor_of(&self.audit),
            base_backup: base.name.to_string(),
            sink: from.info().name.clone(),
            target,
            reached_by,
            recovery,
            row_counts,
            freshness,
            rto_seconds,
            rto_target_seconds,
            rpo_seconds,
            rpo_target_seconds,
            archive_timeout_seconds,
            push_latency_seconds,
            rpo_bound_seconds,
            checks,
            passed,
        };
        let stem = cfg
            .scratch_dir
            .join(format!("pitr-drill-{}", now.strftime("%Y%m%d-%H%M%S")));
        std::fs::write(stem.with_extension("md"), report.to_markdown())?;
        std::fs::write(
            stem.with_extension("json"),
            serde_json::to_vec_pretty(&report)?,
        )?;
        if cfg.cleanup {
            std::fs::remove_dir_all(&scratch).ok();
        }
        self.audit
            .append(AuditEvent::RestoreDrill {
                artifact: report.base_backup.clone(),
                passed,
                rto_seconds,
                rpo_seconds,
                authorized_by: report.performed_by.clone(),
                report: stem.with_extension("md").display().to_string(),
            })
            .map_err(|e| failed(format!("cannot audit the drill: {e}")))?;
        self.print(&report, || {
            crate::output::out(&crate::output::escape_lines(&report.to_markdown()));
            crate::output::out(&format!(
                "report: {}\n",
                stem.with_extension("md").display()
            ));
        });
        Ok(u8::from(!passed))
    }

    /// Restores `base` into `pgdata` and recovers it to `target` on `port`; when the archive
    /// holds no commit after the target (a quiet database), `PostgreSQL` stops with "recovery
    /// ended before configured recovery target was reached" — the state at the target is then
    /// the end of the archive, and recovery continues to it.
    async fn drill_recover(
        &self,
        repo: &Repository,
        base: &BaseBackupEntry,
        pgdata: &Path,
        target: jiff::Timestamp,
        port: u16,
        sink: Option<&str>,
    ) -> Out<(wst::pg::RecoveredServer, RecoveryOutcome, String)> {
        let db = self
            .config
            .database
            .as_ref()
            .ok_or_else(|| usage("no [database]"))?;
        let parent = pgdata.parent().unwrap_or(pgdata);
        let staging = parent.join("restore");
        let options = RestoreOptions::isolated(&staging).include([format!("{BASE_ROOT}/")]);
        repo.restore(&base.name, &options, sink)
            .await
            .map_err(|e| failed(format!("restore of base backup {} failed: {e}", base.name)))?;
        std::fs::rename(staging.join(BASE_ROOT), pgdata)?;
        std::fs::remove_dir_all(&staging).ok();
        let exe = std::env::current_exe()?;
        let config_path = self.config_path.clone();
        let rc = RecoveryConfig::new(
            wal_fetch_command(&exe, &config_path, self.config.job_name.as_deref()),
            RecoveryTarget::Time(target),
        )
        .port(port)
        .socket_dir(parent);
        configure_recovery(pgdata, &rc).map_err(|e| failed(e.to_string()))?;
        let mut conn = pg_connection(db, &db.url)?
            .with_port(port)
            .with_database("postgres");
        conn.host = if cfg!(unix) {
            parent.display().to_string()
        } else {
            "127.0.0.1".into()
        };
        let tools = PgTools::discover();
        let limit = Duration::from_secs(3600);
        match run_recovery(pgdata, &tools, &conn, limit).await {
            Ok((srv, out)) => Ok((srv, out, "target time".into())),
            Err(e)
                if e.to_string()
                    .contains("before configured recovery target was reached") =>
            {
                let auto = pgdata.join("postgresql.auto.conf");
                let mut text = std::fs::read_to_string(&auto)?;
                text.push_str("recovery_target_time = ''\n");
                std::fs::write(&auto, text)?;
                let (srv, out) = run_recovery(pgdata, &tools, &conn, limit)
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                Ok((
                    srv,
                    out,
                    "end of archive (no commit after the target)".into(),
                ))
            }
            Err(e) => Err(failed(e.to_string())),
        }
    }
}
