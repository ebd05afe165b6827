//! `erasure record` / `erasure list`: the erasure register (issue 18, `docs/ERASURE.md`), and
//! how restores re-apply it.

use wst::core::{AuditEvent, BreakGlass, ErasureEntry, ErasureRequest, ErasureScope, ReErasure};

use super::Ops;
use crate::output::{say, warn_line};
use crate::{Out, failed, usage};

impl Ops {
    /// `erasure record`: records an erasure request for `subject` (or a tenant) in the
    /// register on every identified sink, with the configuration's `[erasure]` templates
    /// resolved for it. Takes the repository lock. Exit 3 when a sink did not take it.
    pub(crate) async fn erasure_record(
        &self,
        subject: &str,
        tenant: bool,
        requested_by: &str,
        reason: &str,
    ) -> Out<u8> {
        let template = self
            .config
            .erasure_template()
            .map_err(|e| usage(e.to_string()))?
            .ok_or_else(|| {
                usage("the configuration has no [erasure] section: say what erasing means (sql, bucket_prefixes, paths; docs/ERASURE.md)")
            })?;
        let _lock = self.repo.lock("erasure").map_err(|e| crate::locked(&e))?;
        let report = self
            .repo
            .record_erasure(&ErasureRequest {
                scope: if tenant {
                    ErasureScope::Tenant
                } else {
                    ErasureScope::Subject
                },
                subject: subject.to_owned(),
                requested_by: requested_by.to_owned(),
                reason: reason.to_owned(),
                template,
            })
            .await?;
        let code = if report.failed.is_empty() { 0 } else { 3 };
        self.print(&report, || {
            let e = &report.entry;
            say!(
                "erasure #{} {} recorded at {} on {}",
                e.seq,
                e.id,
                e.recorded,
                report.written.join(", ")
            );
            say!(
                "  {} SQL statements, {} object prefixes, {} path globs; re-applied by every restore and drill",
                e.sql.len(),
                e.objects.len(),
                e.paths.len()
            );
            for f in &report.failed {
                warn_line!("erasure: not written on {f}");
            }
        });
        Ok(code)
    }

    /// `erasure list`: every authentic entry (union over the sinks) and every anomaly (a copy
    /// that is not used). Exit 1 when an anomaly may hide an entry.
    pub(crate) async fn erasure_list(&self) -> Out<u8> {
        let reg = self.repo.list_erasures().await?;
        let code = u8::from(reg.uncovered().next().is_some());
        self.print(&reg, || {
            say!("{} erasure entries", reg.entries.len());
            for e in &reg.entries {
                say!(
                    "#{} {} {} {:?} {} requested by {} ({}) on {}: {} sql, {} prefixes, {} paths",
                    e.seq,
                    e.id,
                    e.recorded,
                    e.scope,
                    e.subject,
                    e.requested_by,
                    e.reason,
                    reg.holders
                        .get(&e.id)
                        .map(|h| h.join(", "))
                        .unwrap_or_default(),
                    e.sql.len(),
                    e.objects.len(),
                    e.paths.len()
                );
            }
            for a in &reg.anomalies {
                warn_line!("erasure register: {a}");
            }
        });
        Ok(code)
    }

    /// The register's entries for a restore, and its uncovered anomalies (each a reason the
    /// restore may miss an erasure).
    pub(crate) async fn erasures_for_restore(&self) -> Out<(Vec<ErasureEntry>, Vec<String>)> {
        let reg = self
            .repo
            .erasure_register()
            .await
            .map_err(|e| failed(format!("cannot read the erasure register: {e}")))?;
        for a in &reg.anomalies {
            warn_line!("erasure register: {a}");
        }
        let anomalies = reg.uncovered().map(ToString::to_string).collect();
        Ok((reg.entries, anomalies))
    }

    /// Audits the re-application of `entries` to `target` (`erasure_applied`) and says
    /// whether the restore may go on: yes when everything applied, or when break-glass was
    /// given (then what failed is in the record).
    pub(crate) fn settle_erasures(
        &self,
        artifact: &str,
        target: &str,
        entries: usize,
        done: &[ReErasure],
        anomalies: &[String],
        break_glass: Option<&BreakGlass>,
    ) -> Out<bool> {
        let failures: Vec<String> = done
            .iter()
            .filter_map(|r| {
                r.error
                    .as_ref()
                    .map(|e| format!("#{} {}: {e}", r.seq, r.id))
            })
            .chain(anomalies.iter().cloned())
            .collect();
        if entries == 0 && failures.is_empty() {
            return Ok(true);
        }
        self.audit.append(AuditEvent::ErasureApplied {
            artifact: artifact.to_owned(),
            target: target.to_owned(),
            entries: entries as u64,
            rows: done.iter().map(|r| r.rows).sum(),
            objects: done.iter().map(|r| r.objects).sum(),
            files: done.iter().map(|r| r.files).sum(),
            failed: failures.clone(),
            break_glass: break_glass.cloned(),
        })?;
        for f in &failures {
            warn_line!("erasure not applied to {target}: {f}");
        }
        Ok(failures.is_empty() || break_glass.is_some())
    }
}

/// The human lines of re-erasures.
pub(crate) fn say_erasures(done: &[ReErasure]) {
    for r in done {
        say!(
            "  re-erased #{} {} on {}: {} rows, {} objects, {} files{}",
            r.seq,
            r.id,
            r.target,
            r.rows,
            r.objects,
            r.files,
            r.error
                .as_ref()
                .map_or_else(String::new, |e| format!(" — NOT APPLIED: {e}"))
        );
        for s in &r.statements {
            say!("    {} rows: {}", s.rows, s.statement);
        }
    }
}
