//! `config check`: the whole configuration checked (`wst::config::Config::problems`, issue 15)
//! and summarised in one line; nothing is opened, read or written. A configuration with
//! problems never reaches this module: loading it already failed with every problem listed
//! (exit 2).

use std::path::Path;

use wst::config::Config;

use crate::Out;
use crate::output::say;

/// Prints the one-line summary of a valid configuration (or, with `--json`, its parts).
pub(crate) fn config_check(path: &Path, config: &Config, json: bool) -> Out<u8> {
    let offsite = config.sinks.iter().filter(|s| s.offsite).count();
    let checks = config.drill.as_ref().map_or(0, |d| d.checks.len());
    let database = config.database.as_ref().map(|d| {
        wst::pg::ConnectionConfig::from_url(&d.url)
            .map_or_else(|_| "?".to_owned(), |c| c.display_target())
    });
    let retention = config.retention.as_ref().map(|r| {
        let p = &r.policy;
        let rules: Vec<String> = [
            ("last", p.keep_last),
            ("hourly", p.keep_hourly),
            ("daily", p.keep_daily),
            ("weekly", p.keep_weekly),
            ("monthly", p.keep_monthly),
            ("yearly", p.keep_yearly),
        ]
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .chain(p.keep_within.map(|w| format!("within {w}")))
        .collect();
        format!("{} in {}", rules.join("/"), r.time_zone)
    });
    if json {
        crate::output::print_json(&serde_json::json!({
            "config": path.display().to_string(),
            "valid": true,
            "files": config.files.len(),
            "database": database,
            "buckets": config.buckets.len(),
            "sinks": config.sinks.len(),
            "offsite_sinks": offsite,
            "retention": retention,
            "drill_checks": config.drill.as_ref().map(|_| checks),
        }))?;
        return Ok(0);
    }
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    say!(
        "configuration `{}` is valid: {}, {}, {}, {} ({} offsite), retention {}, {}",
        path.display(),
        plural(config.files.len(), "file tree", "file trees"),
        database.map_or_else(|| "no database".to_owned(), |d| format!("database {d}")),
        plural(config.buckets.len(), "bucket", "buckets"),
        plural(config.sinks.len(), "sink", "sinks"),
        offsite,
        retention.as_deref().unwrap_or("off (nothing is pruned)"),
        config.drill.as_ref().map_or_else(
            || "no drill".to_owned(),
            |_| format!("drill with {}", plural(checks, "check", "checks"))
        ),
    );
    Ok(0)
}
