//! Output for people and machines: with `--json` a report is printed as pretty JSON on standard
//! output, otherwise as text. Errors go to standard error (`main`).

use serde::Serialize;

use crate::Out;

/// Prints `value` as pretty JSON when `json`, otherwise runs `human`, which prints the text.
pub(crate) fn print<T: Serialize>(json: bool, value: &T, human: impl FnOnce()) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
    } else {
        human();
    }
}

/// Prints `value` as pretty JSON on standard output.
pub(crate) fn print_json<T: Serialize + ?Sized>(value: &T) -> Out {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
