//! Output for people and machines: with `--json` a report is printed as pretty JSON on standard
//! output, otherwise as text. Errors go to standard error (`main`).
//!
//! Every human-readable line goes through [`escape`] (issue 15): names come from artifacts,
//! sinks and configurations that an attacker may have shaped, and a file named with ESC, CR or
//! LF must not clear the screen or print a forged `RESULT: PASS` line. JSON needs no escaping
//! here (serde escapes control characters in strings).

use std::borrow::Cow;
use std::fmt::Write as _;

use serde::Serialize;

use crate::Out;

/// Prints one human-readable line, its control characters escaped ([`escape`]).
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::output::out(&format!("{}\n", $crate::output::escape(&format!($($arg)*))))
    };
}

/// Prints one human-readable line on standard error, its control characters escaped.
macro_rules! warn_line {
    ($($arg:tt)*) => {
        $crate::output::err(&format!("{}\n", $crate::output::escape(&format!($($arg)*))))
    };
}

pub(crate) use {say, warn_line};

/// Writes `text` to standard output. A closed or broken standard output (`wst backup |
/// head`, a cron mailer that went away) is ignored: what a run prints is a report of what it
/// did, and losing it must not stop the run half-way (its outcome is in the exit status, the
/// audit log and the metrics). `println!` would panic there.
pub(crate) fn out(text: &str) {
    use std::io::Write as _;
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_bytes()).and_then(|()| o.flush());
}

/// Writes `text` to standard error, ignoring a closed standard error as [`out`] does.
pub(crate) fn err(text: &str) {
    use std::io::Write as _;
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// Whether `c` must not reach a terminal raw: C0 controls (ESC, CR, LF, TAB, …), DEL, C1
/// controls, and the invisible format characters that reorder or hide text (bidirectional
/// overrides and isolates, zero-width characters, the byte-order mark).
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// `text` with every unsafe character ([`is_unsafe`]: C0 and C1 controls, DEL, bidi and
/// zero-width format characters) written as `\u{…}`, so one call prints one visible line whose
/// content cannot move the cursor, clear the screen or start a new line (issue 15). The
/// backslash is left alone: `\u{1b}` in a name shows as itself, which is what an operator
/// needs to recognise the file.
pub(crate) fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_unsafe(c) {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Multi-line text (a report rendered as Markdown) with each line escaped by [`escape`]; the
/// line breaks themselves are kept (a trailing `\r` of a CRLF line is escaped too).
pub(crate) fn escape_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&escape(line));
    }
    out
}

/// Prints `value` as pretty JSON when `json`, otherwise runs `human`, which prints the text.
pub(crate) fn print<T: Serialize>(json: bool, value: &T, human: impl FnOnce()) {
    if json {
        out(&format!(
            "{}\n",
            serde_json::to_string_pretty(value).unwrap_or_default()
        ));
    } else {
        human();
    }
}

/// Prints `value` as pretty JSON on standard output.
pub(crate) fn print_json<T: Serialize + ?Sized>(value: &T) -> Out {
    out(&format!("{}\n", serde_json::to_string_pretty(value)?));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape("wst/a b.txt"), "wst/a b.txt");
        assert!(matches!(escape("plain"), Cow::Borrowed(_)));
        assert_eq!(
            escape("x\x1b[2J\rRESULT: PASS\n## RESULT: PASS\x7f\u{85}\u{202e}"),
            "x\\u{1b}[2J\\u{d}RESULT: PASS\\u{a}## RESULT: PASS\\u{7f}\\u{85}\\u{202e}"
        );
        assert_eq!(escape_lines("a\x1b\nb\r\n"), "a\\u{1b}\nb\\u{d}\n");
    }
}
