//! `restore`: files (all or selected) into an isolated directory and the database into a
//! scratch one, or a `[[bucket]]`'s objects into a scratch bucket.

use std::path::PathBuf;

use wst::core::{AuditEvent, BreakGlass, RestoreOptions};
use wst::objstore::{ObjectRestoreOptions, restore_objects};

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
    pub(crate) sink: Option<String>,
    pub(crate) break_glass: Option<BreakGlass>,
    pub(crate) artifact: Option<String>,
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
            sink,
            break_glass,
            artifact,
        } = req;
        let target = target.as_path();
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
        let mut drop_dump = false;
        if database.is_some() {
            let e = db_entry()?;
            if selection(&[], &exclude)?.is_some_and(|s| !s.matches(&e)) {
                return Err(usage(format!(
                    "--exclude leaves out `{e}`, the dump --database restores"
                )));
            }
            if no_files || !include.is_empty() {
                let selected =
                    !no_files && selection(&include, &[])?.is_some_and(|s| s.matches(&e));
                if !selected {
                    patterns.push(e);
                    drop_dump = true;
                }
            }
        }
        let mut options = RestoreOptions::isolated(target)
            .protect(self.protected())
            .include(patterns)
            .exclude(exclude.clone());
        options.allow_non_empty = break_glass.is_some();
        options.break_glass.clone_from(&break_glass);
        // The repository restores from the chosen sink (`--sink`), or from the first sink whose
        // copy passes, rejecting a copy whose content is not the artifact named (its sidecar's
        // size and SHA-256, its manifest's name) before anything is promoted; it audits the
        // file restore itself.
        let from = sink_name.as_deref();
        let report = match self.repo.restore(&name, &options, from).await {
            Ok(r) => r,
            Err(e) => return Err(failed(format!("restore failed, target untouched: {e}"))),
        };
        for r in &report.rejected_copies {
            warn_line!("restore: rejected copy {r}");
        }
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
        let mut code = 0;
        let mut dump_bytes = 0;
        if let Some(db_name) = database.as_deref() {
            let db = self
                .config
                .database
                .as_ref()
                .ok_or_else(|| usage("--database needs a [database] section"))?;
            let url = db
                .restore_url
                .as_deref()
                .ok_or_else(|| usage("[database] restore_url is not set"))?;
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
                opts = opts.with_break_glass(bg.clone());
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
            let proof = proof?;
            audit_restore(
                proof.passed(),
                proof.total_seconds,
                format!("database {db_name}"),
                None,
            )?;
            code = u8::from(!proof.passed());
            proof_json = serde_json::to_value(&proof).unwrap_or_default();
        }
        let out = serde_json::json!({ "files": report, "database": proof_json });
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
            if !proof_json.is_null() {
                say!(
                    "database proof: {}",
                    if code == 0 { "PASS" } else { "FAIL" }
                );
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
        self.print(&report, || {
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
        });
        Ok(u8::from(!passed))
    }
}
