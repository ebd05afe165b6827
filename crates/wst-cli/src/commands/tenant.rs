//! `restore --tenant ID` (issue 18, `docs/TENANTS.md`): one tenant's files, objects and rows,
//! selected by the `[tenant]` templates; with break-glass, its rows copied into production.
//! The restore itself is `restore`'s (`restore.rs`); this module holds the tenant steps.

use wst::config::TenantSelection;
use wst::core::{AuditEvent, BreakGlass};
use wst::pg::{ConnectionConfig, TenantRestore};

use super::Ops;
use crate::config::pg_connection;
use crate::output::{say, warn_line};
use crate::{Out, failed, usage};

/// The `[tenant]` templates resolved for `tenant`.
///
/// # Errors
/// Exit 2 without a `[tenant]` section, or for an id that breaks the subject-id rule (the id
/// is not repeated in the message: it may be personal).
fn selection_of(ops: &Ops, tenant: &str) -> Out<TenantSelection> {
    ops.config
        .tenant_selection(tenant)
        .map_err(|e| usage(e.to_string()))?
        .ok_or_else(|| {
            usage(
                "--tenant needs a [tenant] section in the configuration: say what a tenant owns \
                 (column, bucket_prefixes, paths; docs/TENANTS.md)",
            )
        })
}

/// `restore --tenant ID --bucket NAME --to-bucket URL`: the tenant's object prefixes of that
/// bucket (as `restore --bucket --prefix` takes them).
///
/// # Errors
/// Exit 2 as [`selection_of`], or when `[tenant]` gives no prefix for the bucket.
pub(crate) fn tenant_bucket_prefixes(ops: &Ops, tenant: &str, bucket: &str) -> Out<Vec<String>> {
    let sel = selection_of(ops, tenant)?;
    sel.bucket_prefixes.get(bucket).cloned().ok_or_else(|| {
        usage(format!(
            "[tenant] bucket_prefixes says nothing about bucket `{bucket}` (name it, or use \"*\")"
        ))
    })
}

impl Ops {
    /// The tenant selection of a `restore --tenant ID`, checked against the other flags:
    /// `--database` needs `[tenant] column` and must not name the source database (the
    /// scratch is reduced to one tenant); `--into-production` needs a `[database]` section.
    pub(super) fn tenant_plan(
        &self,
        tenant: Option<&str>,
        database: Option<&str>,
        into_production: bool,
    ) -> Out<Option<TenantSelection>> {
        let Some(tenant) = tenant else {
            return Ok(None);
        };
        let sel = selection_of(self, tenant)?;
        if database.is_some() && sel.column.is_none() {
            return Err(usage(
                "--tenant with --database needs [tenant] column (the column naming the tenant)",
            ));
        }
        // The scratch database is reduced to one tenant's rows: it is never the production
        // database, with or without --into-production.
        if let Some(db) = &self.config.database
            && database.is_some()
        {
            let source = ConnectionConfig::from_url(&db.url)
                .map_err(|e| usage(e.to_string()))?
                .database;
            if database == Some(source.as_str()) {
                return Err(usage(format!(
                    "--tenant: --database must be a scratch database, not the production \
                     database `{source}` (every other tenant's rows are deleted from it)"
                )));
            }
        } else if into_production {
            return Err(usage("--into-production needs a [database] section"));
        }
        Ok(Some(sel))
    }

    /// Reduces the restored scratch database to the tenant's rows and, with
    /// `into_production`, copies them into the production database (`[database] url`) under
    /// the break-glass already audited. Returns the report's `tenant` value and whether every
    /// step succeeded (a failure is printed, and the scratch database is then not usable).
    pub(super) async fn tenant_rows(
        &self,
        sel: &TenantSelection,
        scratch: &ConnectionConfig,
        into_production: bool,
        (artifact, sink): (&str, &str),
        break_glass: Option<&BreakGlass>,
    ) -> Out<(serde_json::Value, bool)> {
        let column = sel
            .column
            .as_deref()
            .ok_or_else(|| usage("--tenant with --database needs [tenant] column"))?;
        let mut out = serde_json::json!({ "tenant": sel.tenant, "column": column });
        let kept = match wst::pg::keep_tenant(scratch, column, &sel.tables, &sel.tenant).await {
            Ok(k) => k,
            Err(e) => {
                warn_line!("tenant restore: {e}");
                out["error"] = e.to_string().into();
                return Ok((out, false));
            }
        };
        out["scratch"] = serde_json::to_value(&kept).unwrap_or_default();
        if !into_production {
            return Ok((out, true));
        }
        let db = self
            .config
            .database
            .as_ref()
            .ok_or_else(|| usage("--into-production needs a [database] section"))?;
        let production = pg_connection(db, &db.url)?;
        let started = std::time::Instant::now();
        let copied = wst::pg::copy_tenant(scratch, &production, &kept, &sel.tenant).await;
        let target = format!(
            "production database {} (tenant restore)",
            production.database
        );
        self.audit.append(AuditEvent::Restore {
            artifact: artifact.to_owned(),
            sink: sink.to_owned(),
            target,
            passed: copied.is_ok(),
            duration_seconds: started.elapsed().as_secs_f64(),
            break_glass: break_glass.cloned(),
            error: copied.as_ref().err().map(ToString::to_string),
        })?;
        match copied {
            Ok(c) => {
                out["production"] = serde_json::to_value(&c).unwrap_or_default();
                Ok((out, true))
            }
            Err(e) => Err(failed(format!(
                "tenant rows NOT copied into production: {e}; the scratch database `{}` holds \
                 the restored rows",
                scratch.database
            ))),
        }
    }
}

/// The human lines of a tenant restore's report value.
pub(super) fn say_tenant(v: &serde_json::Value) {
    if v.is_null() {
        return;
    }
    let line = |label: &str, part: &serde_json::Value| {
        let Ok(r) = serde_json::from_value::<TenantRestore>(part.clone()) else {
            return;
        };
        say!(
            "tenant restore ({label}, database `{}`, column `{}`): {} tenant rows",
            r.database,
            r.column,
            r.tenant_rows()
        );
        for t in &r.tables {
            if t.shared {
                say!("  shared   {}: {} rows (kept whole)", t.table, t.kept);
            } else if label == "scratch" {
                say!(
                    "  tenant   {}: {} rows kept, {} rows of other tenants removed",
                    t.table,
                    t.kept,
                    t.removed
                );
            } else {
                say!(
                    "  tenant   {}: {} rows copied in, {} previous rows of the tenant replaced",
                    t.table,
                    t.kept,
                    t.removed
                );
            }
        }
    };
    line("scratch", &v["scratch"]);
    line("into production", &v["production"]);
    if let Some(e) = v["error"].as_str() {
        say!("tenant restore FAILED: {e}");
    }
}
