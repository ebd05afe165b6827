//! `drill`: the restore drill (doctrine 026 R7) with its `[[drill.check]]` post-restore checks
//! and the seeds/002 report.

use std::sync::Arc;

use wst::config::{CheckConfig, DrillConfig, Expect};
use wst::core::{DrillOptions, EntryRestorer, PostRestoreCheck, SmokeTest};
use wst::pg::{Expectation, ObjectKeyCrossCheck, PgDrillRestorer, SqlAssertion};

use super::{Ops, actor_of};
use crate::config::pg_connection;
use crate::{Out, usage};

impl Ops {
    /// The `[[drill.check]]` entries as post-restore checks, in configuration order.
    fn drill_checks(&self, cfg: &DrillConfig) -> Out<Vec<Arc<dyn PostRestoreCheck>>> {
        let mut seen = std::collections::BTreeSet::new();
        let mut checks: Vec<Arc<dyn PostRestoreCheck>> = Vec::new();
        for c in &cfg.checks {
            let name = c.name();
            if name.trim().is_empty() {
                return Err(usage("a [[drill.check]] has an empty name"));
            }
            if !seen.insert(name.to_owned()) {
                return Err(usage(format!(
                    "two [[drill.check]] entries are named `{name}`: names must be unique (the \
                     report tells checks apart by name)"
                )));
            }
            let needs_db = || -> Out<()> {
                if self.config.database.is_none() {
                    return Err(usage(format!(
                        "[[drill.check]] `{name}` queries the scratch database, but the \
                         configuration has no [database] section"
                    )));
                }
                Ok(())
            };
            match c {
                CheckConfig::Sql {
                    query,
                    expect,
                    source,
                    timeout_secs,
                    ..
                } => {
                    needs_db()?;
                    let expectation = match expect {
                        Expect::Text(t) if t == "no_rows" => Expectation::ReturnsNoRows,
                        Expect::Text(t) => Expectation::ScalarEquals(t.clone()),
                        Expect::Integer(i) => Expectation::ScalarEquals(i.to_string()),
                        Expect::Rows(rows) => Expectation::Equals(rows.clone()),
                    };
                    let mut check = SqlAssertion::new(name, query, expectation);
                    if let Some(s) = source {
                        check = check.for_source(s);
                    }
                    if let Some(t) = timeout_secs {
                        check = check.with_timeout_secs(*t);
                    }
                    checks.push(Arc::new(check));
                }
                CheckConfig::CrossCheck {
                    query,
                    root,
                    bucket,
                    strip_prefix,
                    source,
                    timeout_secs,
                    ..
                } => {
                    needs_db()?;
                    let root = match (root, bucket) {
                        (Some(r), None) => r.clone(),
                        (None, Some(b)) => self.bucket(b)?.root(),
                        _ => {
                            return Err(usage(format!(
                                "[[drill.check]] `{name}` (cross_check) needs exactly one of \
                                 `root` (an archive root, e.g. \"buckets/proofs\") or `bucket` \
                                 (a [[bucket]] name)"
                            )));
                        }
                    };
                    let mut check = ObjectKeyCrossCheck::in_restored_tree(name, query, &root);
                    if let Some(p) = strip_prefix {
                        check = check.strip_key_prefix(p);
                    }
                    if let Some(s) = source {
                        check = check.for_source(s);
                    }
                    if let Some(t) = timeout_secs {
                        check = check.with_timeout_secs(*t);
                    }
                    checks.push(Arc::new(check));
                }
                CheckConfig::Smoke {
                    program,
                    args,
                    timeout_secs,
                    env,
                    inherit,
                    source,
                    ..
                } => {
                    let mut check = SmokeTest::new(name, program, args);
                    if let Some(t) = timeout_secs {
                        check = check.with_timeout_secs(*t);
                    }
                    for (k, v) in env {
                        check = check.with_env(k, v);
                    }
                    for var in inherit {
                        check = check.inherit(var);
                    }
                    if let Some(s) = source {
                        check = check.for_source(s);
                    }
                    checks.push(Arc::new(check));
                }
            }
        }
        Ok(checks)
    }

    pub(crate) async fn drill(&self, sink: Option<&str>) -> Out<u8> {
        let cfg = self
            .config
            .drill
            .as_ref()
            .ok_or_else(|| usage("the configuration has no [drill] section"))?;
        if sink.is_some() {
            // An unknown name is a usage error naming the configured sinks.
            self.sink(sink)?;
        }
        let mut restorers: Vec<Arc<dyn EntryRestorer>> = Vec::new();
        if let Some(db) = &self.config.database {
            let url = db.restore_url.as_deref().ok_or_else(|| {
                usage("[database] restore_url is not set (the drill's scratch server)")
            })?;
            let mut restorer = PgDrillRestorer::new(
                wst::pg::RestoreOptions::new(pg_connection(db, url)?)
                    .with_jobs(db.jobs.unwrap_or(2))
                    .with_drop_after(cfg.cleanup),
            );
            if let Some(spec) = &db.freshness_column {
                let parts: Vec<&str> = spec.split('.').collect();
                let [schema, table, column] = parts[..] else {
                    return Err(usage(format!(
                        "[database] freshness_column `{spec}` must be `schema.table.column`"
                    )));
                };
                restorer = restorer.freshness_column(schema, table, column);
            }
            restorers.push(Arc::new(restorer));
        }
        let mut options = DrillOptions::new(
            &self.config.project,
            &actor_of(&self.audit),
            &cfg.scratch_dir,
        );
        options.protected_paths = self.protected();
        options.cleanup = cfg.cleanup;
        if let Some(m) = cfg.rto_target_minutes {
            options.rto_target_seconds = m * 60.0;
        }
        if let Some(h) = cfg.rpo_target_hours {
            options.rpo_target_seconds = h * 3600.0;
        }
        options.checks = self.drill_checks(cfg)?;
        // The repository picks the artifact among good copies, falls back to the next sink's
        // copy when one fails verification, and audits the drill.
        let report = self.repo.drill(&restorers, &options, sink).await?;
        std::fs::create_dir_all(&cfg.scratch_dir)?;
        let stem = cfg.scratch_dir.join(format!(
            "restore-test-{}",
            report.date.strftime("%Y%m%d-%H%M%S")
        ));
        std::fs::write(stem.with_extension("md"), report.to_markdown())?;
        std::fs::write(
            stem.with_extension("json"),
            serde_json::to_vec_pretty(&report)?,
        )?;
        self.print(&report, || {
            crate::output::out(&crate::output::escape_lines(&report.to_markdown()));
            crate::output::out(&format!(
                "report: {}\n",
                stem.with_extension("md").display()
            ));
        });
        Ok(u8::from(!report.passed))
    }
}
