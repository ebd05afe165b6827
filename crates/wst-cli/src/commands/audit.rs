//! `audit verify`: the audit log's keyed chain and its anchors on the sinks.

use wst::config::Config;
use wst::core::AuditLog;

use super::Ops;
use crate::Out;
use crate::output::print_json;

/// Verifies the configured audit log: its hash chain, every record's MAC under the repository
/// key, and the anchors on the sinks (the head objects and the newest sidecars), so a log that
/// was truncated, replaced or rewritten is named (issue 14). Without a usable key or sinks
/// only the hash chain is checked, and the output says so. Exit 1 when anything disagrees.
pub(crate) async fn verify(config: Config, json: bool) -> Out<u8> {
    let path = config.audit_log.clone();
    let ops = match Ops::new(config, json, false).await {
        Ok(ops) => ops,
        Err(e) => {
            crate::output::warn_line!(
                "wst: audit verify: the repository cannot be opened ({}); checking the hash chain only, without the key and the sinks' anchors",
                e.message
            );
            let log = AuditLog::new(&path, "wst");
            let report = log.verify()?;
            if json {
                print_json(&report)?;
            } else if let (Some(n), Some(p)) = (report.first_broken, &report.problem) {
                crate::output::say!("audit log {}: BROKEN at record {n}: {p}", path.display());
            } else {
                crate::output::say!(
                    "audit log {}: {} records, hash chain intact (MACs and anchors not checked)",
                    path.display(),
                    report.records
                );
            }
            return Ok(u8::from(!report.intact()));
        }
    };
    let check = ops.repo.check_audit().await?;
    if json {
        print_json(&check)?;
    } else {
        let chain = &check.chain;
        match (chain.first_broken, &chain.problem) {
            (Some(n), Some(p)) => {
                crate::output::say!("audit log {}: BROKEN at record {n}: {p}", path.display());
            }
            _ => crate::output::say!(
                "audit log {}: {} records, chain intact ({} authenticated by the repository key{})",
                path.display(),
                chain.records,
                chain.authenticated,
                if chain.unkeyed > 0 {
                    format!(", {} older records without a MAC", chain.unkeyed)
                } else {
                    String::new()
                }
            ),
        }
        if check.problems.is_empty() {
            crate::output::say!(
                "anchors: the log holds every anchor on the sinks ({} checked)",
                check.anchors_checked
            );
        } else {
            for p in &check.problems {
                crate::output::say!("anchor: FAIL {p}");
            }
        }
    }
    Ok(u8::from(!check.trustworthy()))
}
