//! Preview a retention policy before enabling it: what would be kept, what deleted, and why.
//!
//! Reads a JSON document from a file (or stdin with `-` or no argument):
//!
//! ```json
//! {
//!   "policy": { "keep_daily": 30, "keep_weekly": 12, "keep_monthly": 12, "keep_yearly": 7,
//!               "min_age": "7d", "max_age": "8y" },
//!   "now": "2026-11-21T02:00:00Z",
//!   "time_zone": "Europe/Amsterdam",
//!   "backups": [
//!     { "name": "wst-backup-20261120-010000", "time": "2026-11-20T01:00:00Z", "verified": true },
//!     { "name": "wst-backup-20261119-010000", "time": "2026-11-19T01:00:00Z", "verified": false }
//!   ]
//! }
//! ```
//!
//! Prints the plan as JSON on stdout (`[{"name", "keep", "reasons": [...]}]`, newest first) and
//! as a table on stderr, so `retention_preview plan.json | jq` still shows the operator the
//! table. Durations are jiff spans (`"7d"`, `"36h"`, `"1y"`, `"P7D"`); `complete` defaults to
//! true. Exit status 1 when the policy or input is refused, with the reason.
//!
//! ```text
//! cargo run --example retention_preview -- examples/retention_preview.json
//! cargo run --example retention_preview -- --format table < plan.json
//! ```

use std::io::{Read, Write};
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use wst::core::RetentionPlan;
use wst::retention::{PlanRequest, time_zone};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// JSON on stdout and the table on stderr.
    Both,
    /// Only the JSON, on stdout.
    Json,
    /// Only the table, on stdout.
    Table,
}

/// Preview a wst retention plan.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The request document; `-` or nothing reads stdin.
    input: Option<String>,
    /// What to print.
    #[arg(long, value_enum, default_value_t = Format::Both)]
    format: Format,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("retention_preview: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let text = match args.input.as_deref() {
        None | Some("-") => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s)?;
            s
        }
        Some(path) => {
            std::fs::read_to_string(path).map_err(|e| format!("cannot read `{path}`: {e}"))?
        }
    };
    let request: PlanRequest =
        serde_json::from_str(&text).map_err(|e| format!("invalid request document: {e}"))?;
    let plan = request.plan()?;

    let json = json(&plan)?;
    let table = table(&plan, &request)?;
    match args.format {
        Format::Both => {
            eprint!("{table}");
            print!("{json}");
        }
        Format::Json => print!("{json}"),
        Format::Table => std::io::stdout().write_all(table.as_bytes())?,
    }
    Ok(())
}

/// The plan as a JSON array, one decision per line, keys in the documented order:
/// `[{"name": …, "keep": …, "reasons": ["daily #1", …]}, …]`.
fn json(plan: &RetentionPlan) -> Result<String, Box<dyn std::error::Error>> {
    use std::fmt::Write as _;

    let mut out = String::from("[\n");
    for (i, d) in plan.decisions.iter().enumerate() {
        let reasons: Vec<String> = d.reasons.iter().map(ToString::to_string).collect();
        writeln!(
            out,
            "  {{\"name\": {}, \"keep\": {}, \"reasons\": {}}}{}",
            serde_json::to_string(&d.name)?,
            d.keep,
            serde_json::to_string(&reasons)?,
            if i + 1 < plan.decisions.len() {
                ","
            } else {
                ""
            }
        )?;
    }
    out.push_str("]\n");
    Ok(out)
}

/// The plan as an aligned table with times in the policy's time zone, then a summary and flags.
fn table(
    plan: &RetentionPlan,
    request: &PlanRequest,
) -> Result<String, Box<dyn std::error::Error>> {
    use std::fmt::Write as _;

    let tz = time_zone(&request.time_zone)?;
    let width = plan
        .decisions
        .iter()
        .map(|d| d.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = String::new();
    writeln!(
        out,
        "{:<6}  {:<width$}  {:<25}  REASONS",
        "ACTION",
        "NAME",
        format!("TIME ({})", request.time_zone)
    )?;
    for d in &plan.decisions {
        let local = d.time.to_zoned(tz.clone()).strftime("%Y-%m-%d %H:%M:%S %Z");
        let reasons: Vec<String> = d.reasons.iter().map(ToString::to_string).collect();
        writeln!(
            out,
            "{:<6}  {:<width$}  {:<25}  {}",
            if d.keep { "keep" } else { "DELETE" },
            d.name,
            local.to_string(),
            reasons.join(", ")
        )?;
    }
    writeln!(
        out,
        "\n{} backups: {} kept, {} deleted (now {}, time zone {})",
        plan.decisions.len(),
        plan.kept().count(),
        plan.deleted().count(),
        request.now,
        request.time_zone
    )?;
    for f in &plan.flags {
        writeln!(out, "FLAG: {f}")?;
    }
    Ok(out)
}
