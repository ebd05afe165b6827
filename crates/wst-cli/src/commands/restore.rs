//! `restore`: files (all or selected) into an isolated directory and the database into a
//! scratch one, or a `[[bucket]]`'s objects into a scratch bucket.

use std::path::PathBuf;

use wst::core::{AuditEvent, BreakGlass, ReErasure, RestoreOptions};
use wst::objstore::{ObjectRestoreOptions, erase_objects, restore_objects};

use super::{Ops, selection};
use crate::config::{bucket_target, pg_connection};
use crate::output::{say, warn_line};
use crate::{Out, failed, usage};

/// The `restore` command's arguments.
pub(crate) struct RestoreRequest {
    pub(crate) target: PathBuf,
    pub(crate) include: Vec<String>,
    pub(crate) exclude: Vec<String>,
    pub(crate) no_database: bool,
    pub(crate) database: Option<String>,
    pub(crate) tables: Vec<String>,
    pub(crate) schemas: Vec<String>,
    pub(crate) no_files: bool,
    /// `--clean`: replace a non-empty database's objects (with break-glass).
    pub(crate) clean: bool,
    /// `--server URL`: the server `--database` goes to (with break-glass).
    pub(crate) server: Option<String>,
    pub(crate) sink: Option<String>,
    pub(crate) break_glass: Option<BreakGlass>,
    pub(crate) artifact: Option<String>,
    /// `--tenant ID`: only that tenant's files, objects and rows (issue 18).
    pub(crate) tenant: Option<String>,
    /// `--into-production`: the tenant's rows copied into production (with break-glass).
    pub(crate) into_production: bool,
}

impl Ops {
    /// `restore`: files (all, or the `--include` selection) into an isolated directory, and
    /// with `--database` the dump (all, or `--table`/`--schema`) into a scratch database.
    pub(crate) async fn restore(&self, req: RestoreRequest) -> Out<u8> {
        let RestoreRequest {
            target,
            include,
            mut exclude,
            no_database,
            database,
            tables,
            schemas,
            no_files,
            clean,
            server,
            sink,
            break_glass,
            artifact,
            tenant,
            into_production,
        } = req;
        let target = target.as_path();
        // A tenant restore selects by the [tenant] templates (issue 18), checked first.
        let tenant = self.tenant_plan(tenant.as_deref(), database.as_deref(), into_production)?;
        let sink_name = sink;
        let sink = self.sink(sink_name.as_deref())?;
        let name = self.artifact(&*sink, artifact.as_deref()).await?;
        let entry = self.entry();
        let db_entry = || -> Out<String> {
            entry
                .clone()
                .ok_or_else(|| usage("--database needs a [database] section"))
        };
        if no_database && let Some(e) = &entry {
            exclude.push(e.clone());
        }
        // The database restore reads the dump from the restored files: add its entry to a file
        // selection (and remove it afterwards when the operator did not select it).
        let mut patterns = include.clone();
        if let Some(t) = &tenant {
            if t.include.is_empty() && (database.is_none() || no_files) {
                return Err(usage(
                    "--tenant: [tenant] names no paths or bucket_prefixes, so only rows can be restored: give --database SCRATCH",
                ));
            }
            patterns.clone_from(&t.include);
        }
        let mut drop_dump = false;
        if database.is_some() {
            let e = db_entry()?;
            if selection(&[], &exclude)?.is_some_and(|s| !s.matches(&e)) {
                return Err(usage(format!(
                    "--exclude leaves out `{e}`, the dump --database restores"
                )));
            }
            if no_files || !patterns.is_empty() || tenant.is_some() {
                let selected = !no_files
                    && !patterns.is_empty()
                    && selection(&patterns, &[])?.is_some_and(|s| s.matches(&e));
                if !selected {
                    patterns.push(e);
                    drop_dump = true;
                }
            }
        }
        // Break-glass is recorded in the audit log (actor, reason, targets) before anything is
        // written (doctrine 026 L6, issue 15); the outcome follows as a Restore record.
        if let Some(bg) = &break_glass {
            let mut targets = vec![format!("directory {}", target.display())];
            let mut operation = "restore".to_owned();
            if let Some(d) = &database {
                targets.push(format!("database {d}"));
                operation = format!(
                    "restore database {d}{}{}",
                    if clean { " --clean" } else { "" },
                    if server.is_some() { " --server" } else { "" }
                );
            }
            if tenant.is_some() {
                operation.push_str(" --tenant");
                if into_production && let Some(db) = &self.config.database {
                    let prod = wst::pg::ConnectionConfig::from_url(&db.url)
                        .map(|c| c.database)
                        .unwrap_or_default();
                    operation.push_str(" --into-production");
                    targets.push(format!("production database {prod} (one tenant's rows)"));
                }
            }
            self.repo
                .record(AuditEvent::BreakGlassAuthorized {
                    operation,
                    artifact: name.to_string(),
                    targets,
                    break_glass: bg.clone(),
                })
                .await
                .map_err(|e| {
                    failed(format!(
                        "cannot audit the break-glass authorization, nothing restored: {e}"
                    ))
                })?;
        }
        let mut options = RestoreOptions::isolated(target)
            .protect(self.protected())
            .include(patterns)
            .exclude(exclude.clone());
        options.allow_non_empty = break_glass.is_some();
        // A tenant without files under one template is no error (its rows may be all it has).
        options.allow_unmatched = tenant.is_some();
        options.break_glass.clone_from(&break_glass);
        // The repository restores from the chosen sink (`--sink`), or from the first sink whose
        // copy passes, rejecting a copy whose content is not the artifact named (its sidecar's
        // size and SHA-256, its manifest's name) before anything is promoted; it audits the
        // file restore itself.
        let from = sink_name.as_deref();
        // The erasure register (issue 18; seeds/003 "Erased data must not be restored
        // unintentionally"): the repository re-applies its paths and objects to the staged
        // files before promotion, and audits it; its SQL goes to the scratch database below.
        let (erasures, anomalies) = self.erasures_for_restore().await?;
        options.erasures = Some(erasures.clone());
        options.erasure_anomalies = anomalies;
        let report = match self.repo.restore(&name, &options, from).await {
            Ok(r) => r,
            Err(e) => return Err(failed(format!("restore failed, target untouched: {e}"))),
        };
        for r in &report.rejected_copies {
            warn_line!("restore: rejected copy {r}");
        }
        if tenant.is_some() && database.is_none() && report.entries == 0 {
            if break_glass.is_none() {
                std::fs::remove_dir_all(target).ok();
            }
            return Err(failed(
                "restore --tenant: the artifact holds no file or object of this tenant under the [tenant] paths and bucket_prefixes; nothing restored",
            ));
        }
        let mut re_erasures = report.re_erasures.clone();
        for f in &report.erasure_failures {
            warn_line!(
                "erasure not applied to files {} (break-glass): {f}",
                target.display()
            );
        }
        let mut database_usable = true;
        let audit_restore = |passed: bool, seconds: f64, target: String, error: Option<String>| {
            self.audit.append(AuditEvent::Restore {
                artifact: name.to_string(),
                sink: report.sink.clone(),
                target,
                passed,
                duration_seconds: seconds,
                break_glass: break_glass.clone(),
                error,
            })
        };
        let mut proof_json = serde_json::Value::Null;
        let mut tenant_json = serde_json::Value::Null;
        let mut code = 0;
        let mut dump_bytes = 0;
        if let Some(db_name) = database.as_deref() {
            let db = self
                .config
                .database
                .as_ref()
                .ok_or_else(|| usage("--database needs a [database] section"))?;
            let url = match server.as_deref() {
                Some(u) => {
                    if let Some(c) = wst::config::url_credential(u) {
                        return Err(usage(format!(
                            "--server carries {c}: no password belongs in a URL (doctrine 026 R6); use [database] password_file or password_env"
                        )));
                    }
                    u
                }
                None => db.restore_url.as_deref().ok_or_else(|| {
                    usage(
                        "[database] restore_url is not set (or give --server URL with break-glass)",
                    )
                })?,
            };
            let desc = report
                .sources
                .iter()
                .find(|s| s.kind == wst::pg::SOURCE_KIND)
                .ok_or_else(|| failed("the artifact holds no database dump"))?;
            let facts = wst::pg::DatabaseFacts::from_description(desc)?;
            let mut opts = wst::pg::RestoreOptions::new(pg_connection(db, url)?)
                .with_database(db_name)
                .with_jobs(db.jobs.unwrap_or(2))
                .with_tables(tables)
                .with_schemas(schemas);
            if let Some(bg) = &break_glass {
                opts = opts.with_break_glass(bg.clone()).with_clean(clean);
            }
            let dump = target.join(desc.root.trim_end_matches('/'));
            let proof = wst::pg::restore_dump(&dump, &facts, &opts).await;
            if drop_dump {
                dump_bytes = std::fs::metadata(&dump).map_or(0, |m| m.len());
                std::fs::remove_file(&dump).ok();
                if no_files {
                    // Only removed when empty: the target held nothing but the dump.
                    std::fs::remove_dir(target).ok();
                }
            }
            let proof = match proof {
                Ok(p) => p,
                Err(e) => {
                    audit_restore(
                        false,
                        0.0,
                        format!("database {db_name}"),
                        Some(e.to_string()),
                    )?;
                    return Err(e.into());
                }
            };
            audit_restore(
                proof.passed(),
                proof.total_seconds,
                format!(
                    "database {db_name}{}",
                    if tenant.is_some() {
                        " (tenant restore)"
                    } else {
                        ""
                    }
                ),
                None,
            )?;
            code = u8::from(!proof.passed());
            // The register's SQL in the restored database, before anyone uses it.
            let conn = pg_connection(db, url)?.with_database(proof.database.clone());
            let db_target = format!("database {}", proof.database);
            let db_done = match wst::pg::erase_database(&conn, &erasures).await {
                Ok(done) => done,
                Err(e) => vec![ReErasure {
                    target: db_target.clone(),
                    error: Some(e.to_string()),
                    ..ReErasure::default()
                }],
            };
            let sql_entries = erasures.iter().filter(|e| !e.sql.is_empty()).count();
            if !self.settle_erasures(
                &name.to_string(),
                &db_target,
                sql_entries,
                &db_done,
                &[],
                break_glass.as_ref(),
            )? {
                database_usable = false;
                code = 1;
            }
            re_erasures.extend(db_done);
            proof_json = serde_json::to_value(&proof).unwrap_or_default();
            // Tenant restore: the scratch database reduced to the tenant's rows (after the
            // proof against the manifest and the erasure register), then, with break-glass,
            // those rows copied into production (issue 18).
            // Only a scratch database that passed its proof is reduced or copied.
            if let Some(t) = &tenant
                && database_usable
                && proof.passed()
            {
                let (value, ok) = self
                    .tenant_rows(
                        t,
                        &conn,
                        into_production,
                        (name.to_string().as_str(), report.sink.as_str()),
                        break_glass.as_ref(),
                    )
                    .await?;
                tenant_json = value;
                if !ok {
                    database_usable = false;
                    code = 1;
                }
            }
        }
        let out = serde_json::json!({
            "files": report,
            "database": proof_json,
            "erasures": re_erasures,
            "database_usable": database.is_some() && database_usable,
            "tenant": tenant_json,
        });
        self.print(&out, || {
            if no_files {
                say!(
                    "read the dump of {} ({} bytes) in {:.1} s; no files restored",
                    report.artifact,
                    report.bytes,
                    report.duration_seconds
                );
            } else {
                say!(
                    "restored {} ({} entries, {} bytes) into {} in {:.1} s",
                    report.artifact,
                    report.entries - u64::from(drop_dump),
                    report.bytes - dump_bytes,
                    target.display(),
                    report.duration_seconds
                );
            }
            if !include.is_empty() || !exclude.is_empty() {
                say!(
                    "  selection: {}{}{} ({} other entries authenticated, not written)",
                    if include.is_empty() {
                        "everything".to_owned()
                    } else {
                        include.join(", ")
                    },
                    if exclude.is_empty() {
                        ""
                    } else {
                        " excluding "
                    },
                    exclude.join(", "),
                    report.skipped
                );
            }
            super::erasure::say_erasures(&re_erasures);
            super::tenant::say_tenant(&tenant_json);
            if !database_usable {
                say!(
                    "database NOT USABLE: the erasure register could not be applied to it (see above); drop it, or restore with --break-glass-by WHO --reason WHY"
                );
            }
            if !proof_json.is_null() {
                say!(
                    "database proof: {}",
                    if proof_json["checks"].as_array().is_some_and(|c| c.iter().all(|c| c["passed"] == true)) { "PASS" } else { "FAIL" }
                );
                if proof_json["into_source"] == true {
                    say!(
                        "  disaster restore into the source database `{}` ({}), break-glass by {} ({})",
                        proof_json["database"].as_str().unwrap_or_default(),
                        if proof_json["cleaned"] == true { "objects replaced: --clean" } else if proof_json["created_database"] == true { "created" } else { "was empty" },
                        proof_json["break_glass"]["authorized_by"].as_str().unwrap_or_default(),
                        proof_json["break_glass"]["reason"].as_str().unwrap_or_default()
                    );
                }
                if let Some(t) = proof_json["selection"]["restored_tables"].as_array() {
                    let t: Vec<&str> = t.iter().filter_map(|v| v.as_str()).collect();
                    say!("  tables restored: {}", t.join(", "));
                }
                for c in proof_json["checks"].as_array().into_iter().flatten() {
                    if c["passed"] == false {
                        say!("  FAILED {}: {}", c["name"], c["detail"]);
                    }
                }
            }
        });
        Ok(code)
    }

    /// `restore --bucket`: the objects of one `[[bucket]]` (all, or under `--prefix`) into the
    /// bucket at `to`, each checked against the manifest and read back.
    pub(crate) async fn restore_bucket(
        &self,
        bucket: &str,
        to: &str,
        prefixes: Vec<String>,
        sink: Option<&str>,
        break_glass: Option<BreakGlass>,
        artifact: Option<&str>,
    ) -> Out<u8> {
        let bucket = self.bucket(bucket)?;
        let target = bucket_target(bucket, to)?;
        let sink = self.sink(sink)?;
        let name = self.artifact(&*sink, artifact).await?;
        let mut options = ObjectRestoreOptions::new(bucket.root());
        options.prefixes = prefixes;
        options.break_glass.clone_from(&break_glass);
        if let Some(c) = bucket.max_concurrency {
            options.max_concurrency = c;
        }
        let result = restore_objects(&*sink, &name, &*self.cipher, &target, &options).await;
        let audit = |passed: bool, seconds: f64, error: Option<String>| {
            self.audit.append(AuditEvent::Restore {
                artifact: name.to_string(),
                sink: sink.info().name.clone(),
                target: format!("bucket {}", target.url()),
                passed,
                duration_seconds: seconds,
                break_glass: break_glass.clone(),
                error,
            })
        };
        let report = match result {
            Ok(r) => r,
            Err(e) => {
                audit(false, 0.0, Some(e.to_string()))?;
                let hint = if matches!(e, wst::core::Error::RestoreTarget { .. }) {
                    " (operator: choose an empty --to-bucket prefix, or authorize with \
                     --break-glass-by WHO --reason WHY)"
                } else {
                    ""
                };
                return Err(failed(format!("bucket restore failed: {e}{hint}")));
            }
        };
        let passed = report.checks.iter().all(|c| c.passed);
        audit(passed, report.duration_seconds, None)?;
        // The erasure register's prefixes of this bucket, deleted from the target before it
        // is handed over (issue 18).
        let (erasures, anomalies) = self.erasures_for_restore().await?;
        let done = erase_objects(&target, &bucket.name, &erasures).await;
        let applies = erasures
            .iter()
            .filter(|e| e.objects.iter().any(|o| o.bucket == bucket.name))
            .count();
        let erasures_ok = self.settle_erasures(
            &name.to_string(),
            &format!("bucket {}", target.url()),
            applies,
            &done,
            &anomalies,
            break_glass.as_ref(),
        )?;
        let mut out = serde_json::to_value(&report).unwrap_or_default();
        if let Some(o) = out.as_object_mut() {
            o.insert(
                "erasures".into(),
                serde_json::to_value(&done).unwrap_or_default(),
            );
            o.insert("target_usable".into(), erasures_ok.into());
        }
        self.print(&out, || {
            say!(
                "restored {} objects ({} bytes) of bucket `{}` from {} into {} in {:.1} s",
                report.objects,
                report.bytes,
                report.source,
                report.artifact,
                report.target,
                report.duration_seconds
            );
            say!(
                "  source {} (prefix `{}`), target prefix `{}`",
                report.source_url,
                report.source_prefix,
                report.target_prefix
            );
            if !report.selection.is_empty() {
                say!("  selection: {}", report.selection.join(", "));
            }
            if let Some(bg) = &report.break_glass {
                say!(
                    "  break-glass: authorized by {} ({})",
                    bg.authorized_by,
                    bg.reason
                );
            }
            for c in &report.checks {
                say!(
                    "  [{}] {}: {}",
                    if c.passed { "PASS" } else { "FAIL" },
                    c.name,
                    c.detail
                );
            }
            super::erasure::say_erasures(&done);
            if !erasures_ok {
                say!(
                    "target NOT USABLE: the erasure register could not be applied to it (see above)"
                );
            }
        });
        Ok(u8::from(!passed || !erasures_ok))
    }
}

/// One `[[files]]` tree put back in place by [`Ops::restore_in_place`].
#[derive(Debug, serde::Serialize)]
struct InPlaceTree {
    /// The configured `path`, now holding the backup's tree.
    path: PathBuf,
    /// The archive root the entries came from.
    root: String,
    /// Entries restored (the root directory included).
    entries: u64,
    /// Content bytes restored.
    bytes: u64,
    /// Where the tree that was at `path` was moved (same parent directory), if one was there.
    previous: Option<PathBuf>,
}

impl Ops {
    /// `restore --in-place`: disaster restore of every configured `[[files]]` tree into its
    /// original `path` under break-glass (doctrine 026 L6, issue 15; seeds/002 §4a).
    ///
    /// Per tree: the archive's `root/` entries are restored into a new staging directory
    /// beside `path` (same parent, so the same file system) by the repository's checked
    /// restore (authenticated, compared with the manifest, symlink-safe, promoted only whole);
    /// only when every check passed is the tree at `path` renamed aside to
    /// `.NAME.wst-replaced-YYYYMMDDTHHMMSSZ` (kept for the operator; never deleted) and the
    /// staged tree renamed to `path`. Nothing is written outside the configured paths' parent
    /// directories. The authorization is audited before the first write, each tree's outcome
    /// after.
    ///
    /// # Errors
    /// A usage error (exit 2) without break-glass or without `[[files]]`; a failure (exit 1)
    /// when a `path` is a symlink or not a directory, a restore fails or a check fails (that
    /// tree's `path` is then untouched), or a rename fails (the previous tree is moved back).
    pub(crate) async fn restore_in_place(
        &self,
        sink: Option<&str>,
        break_glass: Option<BreakGlass>,
        artifact: Option<&str>,
    ) -> Out<u8> {
        let Some(bg) = break_glass else {
            return Err(usage(
                "restore --in-place writes into the configured [[files]] paths (production): it needs a break-glass authorization, --break-glass-by WHO --reason WHY (doctrine 026 L6); without it restore only into an isolated --target DIR",
            ));
        };
        if self.config.files.is_empty() {
            return Err(usage(
                "restore --in-place: the configuration has no [[files]] tree",
            ));
        }
        let sink_handle = self.sink(sink)?;
        let name = self.artifact(&*sink_handle, artifact).await?;
        for f in &self.config.files {
            if let Ok(m) = std::fs::symlink_metadata(&f.path)
                && !m.is_dir()
            {
                return Err(failed(format!(
                    "restore --in-place: `{}` is {}, not a directory; nothing restored",
                    f.path.display(),
                    if m.file_type().is_symlink() {
                        "a symlink"
                    } else {
                        "a file"
                    }
                )));
            }
        }
        self.repo
            .record(AuditEvent::BreakGlassAuthorized {
                operation: "restore --in-place".to_owned(),
                artifact: name.to_string(),
                targets: self
                    .config
                    .files
                    .iter()
                    .map(|f| format!("directory {}", f.path.display()))
                    .collect(),
                break_glass: bg.clone(),
            })
            .await
            .map_err(|e| {
                failed(format!(
                    "cannot audit the break-glass authorization, nothing restored: {e}"
                ))
            })?;
        let stamp = self
            .repo
            .clock()
            .now()
            .strftime("%Y%m%dT%H%M%SZ")
            .to_string();
        let (erasures, anomalies) = self.erasures_for_restore().await?;
        let mut trees = Vec::new();
        for f in &self.config.files {
            let tree = self
                .put_back(f, &name, sink, &bg, &stamp, (&erasures, &anomalies))
                .await;
            let (passed, error) = match &tree {
                Ok(_) => (true, None),
                Err(e) => (false, Some(e.message.clone())),
            };
            self.repo
                .record(AuditEvent::Restore {
                    artifact: name.to_string(),
                    sink: sink_handle.info().name.clone(),
                    target: format!("in place {}", f.path.display()),
                    passed,
                    duration_seconds: 0.0,
                    break_glass: Some(bg.clone()),
                    error,
                })
                .await?;
            trees.push(tree?);
        }
        let out = serde_json::json!({ "artifact": name.to_string(), "in_place": trees, "break_glass": bg });
        self.print(&out, || {
            say!(
                "restored {} in place (break-glass by {}: {})",
                name,
                bg.authorized_by,
                bg.reason
            );
            for t in &trees {
                say!(
                    "  {} ← {}/ ({} entries, {} bytes){}",
                    t.path.display(),
                    t.root,
                    t.entries,
                    t.bytes,
                    t.previous.as_ref().map_or_else(String::new, |p| format!(
                        "; the previous tree is kept at {}",
                        p.display()
                    ))
                );
            }
        });
        Ok(0)
    }

    /// Restores one tree into staging beside its path, checks it, and swaps it into place.
    async fn put_back(
        &self,
        f: &wst::config::FilesConfig,
        name: &wst::core::ArtifactName,
        sink: Option<&str>,
        bg: &BreakGlass,
        stamp: &str,
        (erasures, anomalies): (&[wst::core::ErasureEntry], &[String]),
    ) -> Out<InPlaceTree> {
        let path = f.path.as_path();
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .ok_or_else(|| {
                usage(format!(
                    "[[files]] path `{}` has no parent directory",
                    path.display()
                ))
            })?;
        let base = path
            .file_name()
            .ok_or_else(|| {
                usage(format!(
                    "[[files]] path `{}` has no final component",
                    path.display()
                ))
            })?
            .to_string_lossy()
            .into_owned();
        std::fs::create_dir_all(parent)
            .map_err(|e| failed(format!("creating `{}`: {e}", parent.display())))?;
        let staging = parent.join(format!(
            ".{base}.wst-staging-{stamp}-{}",
            std::process::id()
        ));
        let root = f.root.trim_end_matches('/');
        let mut options = RestoreOptions::isolated(&staging).include([format!("{root}/")]);
        options.break_glass = Some(bg.clone());
        // The erasure register, applied by the repository in its staging before the tree
        // reaches ours (issue 18); audited there, with the break-glass that lets a failure go.
        options.erasures = Some(erasures.to_vec());
        options.erasure_anomalies = anomalies.to_vec();
        let report = match self.repo.restore(name, &options, sink).await {
            Ok(r) => r,
            Err(e) => {
                std::fs::remove_dir_all(&staging).ok();
                return Err(failed(format!(
                    "restore of `{root}/` failed, `{}` untouched: {e}",
                    path.display()
                )));
            }
        };
        let cleanup = || {
            std::fs::remove_dir_all(&staging).ok();
        };
        if let Some(c) = report.checks.iter().find(|c| !c.passed) {
            cleanup();
            return Err(failed(format!(
                "restore of `{root}/` failed its check {}: {}; `{}` untouched",
                c.name,
                c.detail,
                path.display()
            )));
        }
        for f in &report.erasure_failures {
            warn_line!(
                "erasure not applied to `{}` (break-glass): {f}",
                path.display()
            );
        }
        let staged = staging.join(root);
        match std::fs::symlink_metadata(&staged) {
            Ok(m) if m.is_dir() => {}
            _ => {
                cleanup();
                return Err(failed(format!(
                    "the artifact holds no directory `{root}/`; `{}` untouched",
                    path.display()
                )));
            }
        }
        let previous = if std::fs::symlink_metadata(path).is_ok() {
            let aside = parent.join(format!(".{base}.wst-replaced-{stamp}"));
            std::fs::rename(path, &aside).map_err(|e| {
                cleanup();
                failed(format!(
                    "moving `{}` aside to `{}`: {e}; nothing replaced",
                    path.display(),
                    aside.display()
                ))
            })?;
            Some(aside)
        } else {
            None
        };
        if let Err(e) = std::fs::rename(&staged, path) {
            if let Some(aside) = &previous {
                std::fs::rename(aside, path).ok();
            }
            cleanup();
            return Err(failed(format!(
                "moving the restored tree into `{}`: {e}; the previous tree was put back",
                path.display()
            )));
        }
        cleanup();
        Ok(InPlaceTree {
            path: path.to_path_buf(),
            root: root.to_owned(),
            entries: report.entries,
            bytes: report.bytes,
            previous,
        })
    }
}
