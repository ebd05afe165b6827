//! `replicate`: copy artifacts missing on one sink from another.

use wst::core::{AuditEvent, ReplicateOptions, replicate};

use super::Ops;
use crate::Out;

impl Ops {
    pub(crate) async fn replicate(&self) -> Out<u8> {
        let mut reports = Vec::new();
        let mut code = 0;
        let mut options = ReplicateOptions::default();
        if let Some(p) = &self.config.prefix {
            options.prefix.clone_from(p);
        }
        // Only sinks that carry this repository's marker take part: copying onto an unmounted
        // disk's mount point would fill the root filesystem and count as nothing.
        let identities = self.repo.check_sinks().await;
        for id in identities.iter().filter(|i| !i.ok) {
            eprintln!(
                "replicate: sink `{}` skipped: {}",
                id.sink,
                id.problem.as_deref().unwrap_or_default()
            );
            code = 3;
        }
        // Every sink catches up from every other: primary → others first, then others → primary.
        for (i, from) in self.sinks.iter().enumerate() {
            for (j, to) in self.sinks.iter().enumerate() {
                if i == j || (i != 0 && j != 0) || !identities[i].ok || !identities[j].ok {
                    continue;
                }
                let report = match replicate(&**from, &**to, &options).await {
                    Ok(r) => r,
                    Err(e) => {
                        eprintln!("replicate {} → {}: {e}", from.info().name, to.info().name);
                        code = 3;
                        continue;
                    }
                };
                if !report.copied.is_empty() || !report.failed.is_empty() {
                    self.audit.append(AuditEvent::Replicate {
                        from: report.from.clone(),
                        to: report.to.clone(),
                        copied: report.copied.iter().map(|c| c.name.to_string()).collect(),
                        failed: report.failed.iter().map(|f| format!("{f:?}")).collect(),
                    })?;
                }
                if !report.is_complete() {
                    code = 3;
                }
                reports.push(report);
            }
        }
        self.print(&reports, || {
            for r in &reports {
                if !r.copied.is_empty() || !r.failed.is_empty() {
                    println!(
                        "replicate {} → {}: {} copied, {} failed",
                        r.from,
                        r.to,
                        r.copied.len(),
                        r.failed.len()
                    );
                }
            }
        });
        Ok(code)
    }
}
