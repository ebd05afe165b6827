//! `verify`: deep-verify an artifact on every sink; each copy's result is recorded (sealed) in
//! that copy's sidecar and the audit log by the repository, so a failure demotes the copy.

use super::Ops;
use crate::Out;
use crate::output::say;

impl Ops {
    pub(crate) async fn verify(&self, artifact: Option<&str>) -> Out<u8> {
        let mut all_passed = true;
        let mut reports = Vec::new();
        for sink in &self.sinks {
            let name = self.artifact(&**sink, artifact).await?;
            let report = self.repo.verify(&**sink, &name).await?;
            all_passed &= report.passed();
            reports.push(report);
        }
        self.print(&reports, || {
            for r in &reports {
                say!(
                    "{} on {}: {}",
                    r.artifact,
                    r.sink,
                    if r.passed() { "PASS" } else { "FAIL" }
                );
                for c in &r.checks {
                    say!(
                        "  [{}] {}: {}",
                        if c.passed { "PASS" } else { "FAIL" },
                        c.name,
                        c.detail
                    );
                }
            }
        });
        Ok(u8::from(!all_passed))
    }
}
