//! `report bcp` and `report evidence` (issue 17): the business continuity plan and the
//! auditor's evidence bundle, from the configuration, the audit log, the drill history and
//! the sinks (`wst::report`; the bundle's layout is in `docs/REPORTS.md`).

use std::path::Path;

use wst::core::AuditEvent;
use wst::report::{EvidenceOptions, parse_since, render_bcp, write_evidence};

use super::Ops;
use crate::output::say;
use crate::{Out, usage};

impl Ops {
    /// `report bcp [--out FILE]`: the seeds/002 BCP as Markdown on standard output, or into
    /// `FILE` (never over an existing file). Dated by the repository's clock; audited.
    pub(crate) async fn report_bcp(&self, out: Option<&Path>) -> Out<u8> {
        let now = self.repo.clock().now();
        let records = self.audit.records()?;
        let text = render_bcp(&self.config, &records, now);
        let destination = match out {
            Some(path) => {
                use std::io::Write as _;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(path)
                    .map_err(|e| {
                        if e.kind() == std::io::ErrorKind::AlreadyExists {
                            usage(format!(
                                "--out `{}` exists: give a new file (nothing was written)",
                                path.display()
                            ))
                        } else {
                            crate::failed(format!("--out `{}`: {e}", path.display()))
                        }
                    })?;
                f.write_all(text.as_bytes())?;
                f.sync_all()?;
                path.display().to_string()
            }
            None => "stdout".to_owned(),
        };
        self.repo
            .record(AuditEvent::ReportWritten {
                report: "bcp".into(),
                since: None,
                until: now,
                destination: destination.clone(),
                files: out
                    .and_then(|p| p.file_name())
                    .map(|n| vec![n.to_string_lossy().into_owned()])
                    .unwrap_or_default(),
            })
            .await?;
        if out.is_none() {
            // The plan quotes names from the configuration: escaped line by line.
            crate::output::out(&crate::output::escape_lines(&text));
        } else if self.json {
            crate::output::print_json(&serde_json::json!({ "report": "bcp", "out": destination }))?;
        } else {
            say!("business continuity plan written to {destination}");
        }
        Ok(0)
    }

    /// `report evidence --since PERIOD --out DIR`: the auditor's bundle (a new or empty
    /// directory), the period relative to the repository's clock. Exit 0 when written,
    /// whatever it shows (the index says whether the chain verified and status held).
    pub(crate) async fn report_evidence(&self, since: &str, out: &Path) -> Out<u8> {
        let now = self.repo.clock().now();
        let since = parse_since(since, now)?;
        let bundle = write_evidence(
            &self.repo,
            &self.config,
            &EvidenceOptions::new(since, now, out),
        )
        .await
        .map_err(|e| crate::context("report evidence", e))?;
        self.print(&bundle, || {
            say!(
                "evidence bundle {} ({} — {}): {} files",
                bundle.dir.display(),
                bundle.since,
                bundle.until,
                bundle.files.len()
            );
            say!(
                "  audit chain {}; {} records; backups {} (+{} failed); verifications {} ({} failed); deletions {}; drills {} ({} passed); drill reports {}; status {}",
                if bundle.audit_trustworthy { "VERIFIED" } else { "NOT TRUSTWORTHY" },
                bundle.records,
                bundle.backups,
                bundle.backups_failed,
                bundle.verifications.0,
                bundle.verifications.1,
                bundle.deletions,
                bundle.drills.0,
                bundle.drills.1,
                bundle.drill_reports,
                if bundle.compliant { "COMPLIANT" } else { "NOT COMPLIANT" }
            );
            say!("  index: {}", bundle.dir.join("INDEX.md").display());
        });
        Ok(0)
    }
}
