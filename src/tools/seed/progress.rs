//! The progress bars on standard error.

use std::fmt;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::options::SeedOptions;

/// The progress bars, on standard error; hidden when asked (tests) or when it is no terminal.
pub(super) struct Bars {
    multi: MultiProgress,
}

impl Bars {
    pub(super) fn new(options: &SeedOptions) -> Self {
        let target = if options.progress {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Self {
            multi: MultiProgress::with_draw_target(target),
        }
    }

    pub(super) fn rows(&self, what: &str, len: u64) -> ProgressBar {
        let style = ProgressStyle::with_template(
            "{prefix:>8} [{bar:30}] {human_pos}/{human_len} {rate} ETA {eta} ({elapsed})",
        )
        .expect("a valid template")
        .with_key(
            "rate",
            |state: &indicatif::ProgressState, w: &mut dyn fmt::Write| {
                let _ = write!(w, "{:.0} rows/s", state.per_sec());
            },
        )
        .progress_chars("=> ");
        let bar = self.multi.add(ProgressBar::new(len).with_style(style));
        bar.set_prefix(what.to_owned());
        bar
    }

    pub(super) fn spinner(&self, what: &str) -> ProgressBar {
        let style =
            ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("a valid template");
        let bar = self.multi.add(ProgressBar::new_spinner().with_style(style));
        bar.set_message(what.to_owned());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }

    pub(super) fn clear(&self) {
        let _ = self.multi.clear();
    }
}
