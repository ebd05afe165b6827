//! Reports for people (issue 17; seeds/002 `BCP_TEMPLATE` and `ISO_27001_MAPPING`): the
//! business continuity plan ([`render_bcp`], `wst report bcp`) and an auditor's evidence
//! bundle ([`write_evidence`], `wst report evidence`), both built from a `wst.toml`
//! ([`Config`](crate::config::Config)), the repository's keyed audit log and its sinks. The
//! bundle's layout is specified in `docs/REPORTS.md`.
//!
//! Nothing here reads the wall clock: the caller passes `now` (the `wst` binary passes the
//! repository's clock), so a report for a past `now` says what was on record then.
//!
//! ```no_run
//! # async fn demo(config: wst::config::Config, repo: wst::core::Repository)
//! #     -> Result<(), wst::core::Error> {
//! let now = repo.clock().now();
//! let since = wst::report::parse_since("90d", now)?;
//! let bcp = wst::report::render_bcp(&config, &repo.audit().records()?, now);
//! let bundle = wst::report::write_evidence(
//!     &repo,
//!     &config,
//!     &wst::report::EvidenceOptions::new(since, now, "/srv/audit/2026-q4"),
//! )
//! .await?;
//! println!("{bcp}\n{} files in the bundle", bundle.files.len());
//! # Ok(()) }
//! ```

mod bcp;
mod evidence;

pub use bcp::{DrillRow, TO_FILL, drill_history, render_bcp};
pub use evidence::{EvidenceBundle, EvidenceOptions, write_evidence};

use std::fmt::Write as _;

use jiff::{SignedDuration, Timestamp};
use wst_core::{Error, Result};

/// The start of a report period: `now` minus `90d` (days), `12w` (weeks) or `48h` (hours),
/// or an RFC 3339 date (`2026-09-01`, midnight UTC) or timestamp (`2026-09-01T06:00:00Z`).
/// The result is UTC; a period that starts after `now` is refused.
///
/// # Errors
/// [`Error::Config`] naming the accepted forms when `text` is none of them, is zero or
/// negative, or lies after `now` (a usage error: exit 2 in the `wst` binary).
pub fn parse_since(text: &str, now: Timestamp) -> Result<Timestamp> {
    let t = text.trim();
    let bad = |why: &str| {
        Error::Config(format!(
            "--since `{text}`: {why}; write a length such as `90d`, `12w` or `48h`, or an RFC \
             3339 date (`2026-09-01`) or time (`2026-09-01T06:00:00Z`)"
        ))
    };
    let relative = t
        .strip_suffix('d')
        .map(|n| (n, 86_400))
        .or_else(|| t.strip_suffix('w').map(|n| (n, 7 * 86_400)))
        .or_else(|| t.strip_suffix('h').map(|n| (n, 3_600)))
        .and_then(|(n, unit)| n.parse::<i64>().ok().map(|n| (n, unit)));
    let since = if let Some((n, unit)) = relative {
        if n <= 0 || n > 100 * 366 {
            return Err(bad("the length must be positive and at most 100 years"));
        }
        now.checked_sub(SignedDuration::from_secs(n * unit))
            .map_err(|_| bad("the period starts before the earliest time representable"))?
    } else if let Ok(ts) = t.parse::<Timestamp>() {
        ts
    } else if let Ok(date) = t.parse::<jiff::civil::Date>() {
        date.to_zoned(jiff::tz::TimeZone::UTC)
            .map_err(|_| bad("not a date"))?
            .timestamp()
    } else {
        return Err(bad("not understood"));
    };
    if since > now {
        return Err(bad(&format!("the period would start after now ({now})")));
    }
    Ok(since)
}

/// Escapes a value for one Markdown table cell: `|` and line breaks cannot end the cell or
/// the row, and control characters are written as `\u{..}`.
pub(crate) fn cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '|' => out.push_str("\\|"),
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// Seconds as hours with two decimals, e.g. `0.02h`.
pub(crate) fn hours(seconds: f64) -> String {
    format!("{:.2}h", seconds / 3600.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_relative_to_the_given_now() {
        let now: Timestamp = "2026-11-30T15:00:00Z".parse().unwrap();
        let day = SignedDuration::from_hours(24);
        assert_eq!(parse_since("90d", now).unwrap(), now - day * 90);
        assert_eq!(parse_since("12w", now).unwrap(), now - day * 84);
        assert_eq!(parse_since(" 48h ", now).unwrap(), now - day * 2);
        assert_eq!(
            parse_since("2026-09-01", now).unwrap(),
            "2026-09-01T00:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(
            parse_since("2026-09-01T06:00:00+02:00", now).unwrap(),
            "2026-09-01T04:00:00Z".parse::<Timestamp>().unwrap()
        );
        // The same text at another `now` moves with it.
        let later = now + day * 400;
        assert_eq!(parse_since("90d", later).unwrap(), later - day * 90);
        for bad in ["", "0d", "-3d", "90", "ninety days", "2027-01-01", "3m"] {
            let e = parse_since(bad, now).unwrap_err().to_string();
            assert!(e.contains("write a length such as `90d`"), "{bad}: {e}");
        }
    }

    #[test]
    fn cells_cannot_break_a_table() {
        assert_eq!(cell("a|b\nc\u{1b}[2J"), "a\\|b c\\u{1b}[2J");
    }
}
