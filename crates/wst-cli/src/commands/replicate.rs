//! `replicate`: copy artifacts missing (or only demoted) on one sink from a good copy on another.

use wst::core::ReplicateOptions;

use super::Ops;
use crate::Out;

impl Ops {
    /// Runs [`Repository::replicate`](wst::core::Repository::replicate): every identified sink
    /// catches up from every other; a sink without this repository's marker (an unmounted
    /// disk's mount point) takes no part and is named. Exit 3 when a sink was skipped or an
    /// artifact could not be copied.
    pub(crate) async fn replicate(&self) -> Out<u8> {
        let mut code = 0;
        let identities = self.repo.check_sinks().await;
        for id in identities.iter().filter(|i| !i.ok) {
            crate::output::warn_line!(
                "replicate: sink `{}` skipped: {}",
                id.sink,
                id.problem.as_deref().unwrap_or_default()
            );
            code = 3;
        }
        let mut reports = Vec::new();
        for (from, to, result) in self.repo.replicate(&ReplicateOptions::default()).await {
            match result {
                Ok(report) => {
                    if !report.is_complete() {
                        code = 3;
                    }
                    reports.push(report);
                }
                Err(e) => {
                    crate::output::warn_line!("replicate {from} → {to}: {e}");
                    code = 3;
                }
            }
        }
        // The erasure register too: every sink holds every entry (issue 18).
        match self.repo.erasure_catch_up().await {
            Ok(up) => {
                for f in &up.failed {
                    crate::output::warn_line!("replicate erasure register: {f}");
                    code = 3;
                }
            }
            Err(e) => {
                crate::output::warn_line!("replicate erasure register: {e}");
                code = 3;
            }
        }
        self.print(&reports, || {
            for r in &reports {
                if !r.copied.is_empty() || !r.failed.is_empty() {
                    crate::output::say!(
                        "replicate {} → {}: {} copied, {} failed",
                        r.from,
                        r.to,
                        r.copied.len(),
                        r.failed.len()
                    );
                }
                for f in &r.failed {
                    crate::output::say!("  FAILED {}: {}", f.name, f.detail);
                }
                if !r.not_good_on_source.is_empty() {
                    crate::output::say!(
                        "  {} copies on {} are not good (failed verification or unauthenticated) and were not copied",
                        r.not_good_on_source.len(),
                        r.from
                    );
                }
            }
        });
        Ok(code)
    }
}
