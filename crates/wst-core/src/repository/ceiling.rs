//! The retention ceiling's status rule (issue 18; seeds/003 GDPR mode: "Personal data must not
//! be retained indefinitely"; seeds/002 anti-pattern 8: "Am I keeping backups longer than
//! retention policy? (check GDPR — data minimization)").

use jiff::Timestamp;

use crate::catalog::Catalog;
use crate::compliance::RuleStatus;

/// The rule `retention ceiling`: fails when any artifact copy on any sink (complete or not,
/// verified or not) was taken strictly before `cutoff` (`now - max_age` of the retention
/// policy, computed by the caller in the policy's time zone). Status reports it before prune
/// runs, so an over-age copy is visible whether or not prune is scheduled; prune deletes it
/// unless the never-delete-the-last-backup rule keeps it (the detail then says to take a new
/// backup). Sinks that could not be catalogued are named by the other rules.
pub(crate) fn ceiling_rule(catalogs: &[Option<Catalog>], cutoff: Timestamp) -> RuleStatus {
    let mut over = Vec::new();
    for c in catalogs.iter().flatten() {
        let newest = c.copies.last().map(|n| n.name.clone());
        for copy in c.copies.iter().filter(|copy| copy.name.time() < cutoff) {
            let last = newest.as_ref() == Some(&copy.name);
            over.push(format!(
                "{} on `{}`{}",
                copy.name,
                c.sink,
                if last {
                    " (the sink's last backup: prune keeps it until a newer one exists)"
                } else {
                    ""
                }
            ));
        }
    }
    RuleStatus {
        rule: "retention ceiling".into(),
        passed: over.is_empty(),
        detail: if over.is_empty() {
            format!("no copy on any sink was taken before {cutoff} (the policy's max_age)")
        } else {
            format!(
                "{} copies were taken before {cutoff}, beyond the policy's max_age (GDPR data \
                 minimisation, seeds/003): run `wst prune`; a sink's last backup is kept until a \
                 newer one exists, so back up first if it is the only one",
                over.len()
            )
        },
        evidence: over,
    }
}
