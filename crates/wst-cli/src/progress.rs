//! A progress bar for `wst backup` and the quickstart example (indicatif), drawn only on a
//! terminal.

use wst::core::{Progress, Stage};

/// Draws the archive progress: the stage, bytes archived and throughput.
#[derive(Debug)]
pub(crate) struct Bar(indicatif::ProgressBar);

impl Bar {
    /// A bar for `total` content bytes (0: unknown, a spinner).
    pub(crate) fn new(total: u64) -> Self {
        let (bar, template) = if total == 0 {
            (
                indicatif::ProgressBar::new_spinner(),
                "{spinner} {msg} {bytes} {bytes_per_sec}",
            )
        } else {
            (
                indicatif::ProgressBar::new(total),
                "{msg:>10} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec}",
            )
        };
        if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        Self(bar)
    }
}

impl Progress for Bar {
    fn stage(&self, stage: Stage) {
        self.0.set_message(format!("{stage:?}").to_lowercase());
        if stage == Stage::Done {
            self.0.finish_and_clear();
        }
    }
    fn bytes(&self, n: u64) {
        self.0.inc(n);
    }
}
