//! `audit verify`: verify the audit log's hash chain; names the first broken record.

use wst::config::Config;
use wst::core::AuditLog;

use crate::Out;
use crate::output::print_json;

/// Verifies the hash chain of the configured audit log: exit 1 when it is broken.
pub(crate) fn verify(config: &Config, json: bool) -> Out<u8> {
    let log = AuditLog::new(&config.audit_log, "wst");
    let report = log.verify()?;
    if json {
        print_json(&report)?;
    } else if let (Some(n), Some(p)) = (report.first_broken, &report.problem) {
        crate::output::say!(
            "audit log {}: BROKEN at record {n}: {p}",
            log.path().display()
        );
    } else {
        crate::output::say!(
            "audit log {}: {} records, chain intact",
            log.path().display(),
            report.records
        );
    }
    Ok(u8::from(!report.intact()))
}
