//! `verify`: deep-verify an artifact on every sink.

use wst::core::{AuditEvent, Verifier};

use super::Ops;
use crate::Out;

impl Ops {
    pub(crate) async fn verify(&self, artifact: Option<&str>) -> Out<u8> {
        let mut all_passed = true;
        let mut reports = Vec::new();
        for sink in &self.sinks {
            let name = self.artifact(&**sink, artifact).await?;
            let report = self
                .verifier()
                .verify(&**sink, &name, &*self.cipher)
                .await?;
            self.audit.append(AuditEvent::Verification {
                artifact: name.to_string(),
                sink: sink.info().name.clone(),
                passed: report.passed(),
                checks: report.checks.clone(),
            })?;
            all_passed &= report.passed();
            reports.push(report);
        }
        self.print(&reports, || {
            for r in &reports {
                println!(
                    "{} on {}: {}",
                    r.artifact,
                    r.sink,
                    if r.passed() { "PASS" } else { "FAIL" }
                );
                for c in &r.checks {
                    println!(
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
