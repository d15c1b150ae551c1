//! `zegolog import`: backfills callbacks from a JSON-lines file, one callback per line as
//! ZEGOCLOUD sent it (a JSON object), through the same normalisation and the same idempotent
//! writes as live ingest.
//!
//! Each line goes through [`callback::receive`] as the operator's ([`Origin::Operator`]), as
//! a request goes through it, and then, in batches, [`Store::write`]: the same digest and natural
//! keys as a callback received over HTTP, so importing a file twice, or a file that overlaps
//! what `serve` received, stores nothing twice. Signatures are not verified (the file is
//! trusted), but a line without the envelope fields (`event`, `appid`, `timestamp`, `nonce`,
//! `signature`, under any spelling) is refused, like a request.
//!
//! [`callback::receive`]: crate::callback::receive
//! [`Origin::Operator`]: crate::callback::Origin::Operator
//!
//! A thread reads and parses (bounded lines, so a file without line breaks cannot exhaust
//! memory) while a few batches are written concurrently. A bad line never stops the import: it
//! is counted and reported by number. Only the database failing stops it, after what was
//! written is committed; running the same import again resumes it.
//!
//!
//! Here: the command ([`run`]; its flags are the binary's) and its options, [`import`] (the
//! reader thread, the writers, the progress bar) and its [`ImportSummary`]. Beside it: `read.rs`, the input's lines into
//! callbacks; `write.rs`, batches into the store and their outcomes into the summary.
//!
//! Errors are `anyhow`: this is command-line glue, like the binary's command line (`src/bin/zegolog`).

use std::fmt;
use std::io::BufReader;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::callback::Received;
use crate::store::{PoolConfig, Store};

mod read;
mod write;

use read::read_batches;
pub use read::Input;
use write::{tally, write_splitting, Months, Written};

/// How an import runs.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub batch_size: usize,
    pub writers: usize,
    /// A progress bar on standard error (drawn only when it is a terminal).
    pub progress: bool,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            batch_size: 500,
            writers: 4,
            progress: true,
        }
    }
}

/// The longest line taken, as the HTTP endpoint's body limit.
pub const MAX_LINE_BYTES: usize = crate::http::MAX_BODY_BYTES;

/// How many refused (and quarantined) lines the summary lists by number.
const LISTED_LINES: usize = 10;

/// `zegolog import` of `file` (`-`: standard input) on the database at `database_url`
/// (migrated first); the summary on stdout.
pub async fn run(file: &Path, options: &ImportOptions, database_url: &str) -> anyhow::Result<()> {
    let input = Input::open(file)?;
    let store = Store::connect_lazy(
        database_url,
        &PoolConfig {
            max_connections: u32::try_from(options.writers)
                .unwrap_or(u32::MAX)
                .saturating_add(1),
            acquire_timeout: Duration::from_secs(10),
        },
    )
    .context("the database URL is not valid")?;
    store
        .migrate()
        .await
        .context("applying database migrations")?;
    let summary = import(&store, input, options).await?;
    println!("{summary}");
    if let Some(reason) = &summary.stopped {
        bail!(
            "the import stopped early: {reason}. What was written before is committed; run the \
             same import again to finish it (callbacks already stored then count as duplicates)"
        );
    }
    Ok(())
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// What was read: a file name or `standard input`.
    pub source: String,
    pub lines: u64,
    pub bytes: u64,
    /// Empty (or white-space only) lines, skipped.
    pub blank: u64,
    pub stored: u64,
    pub duplicate: u64,
    /// Authentic-looking but unusable callbacks (say `logout_time` is `"abc"`): kept in
    /// `callback_events` with the reason, as live ingest does.
    pub quarantined: u64,
    /// Lines that are not a callback: not a JSON object, or without the envelope fields.
    pub refused: u64,
    /// The first refused lines: line number and why.
    pub refused_lines: Vec<(u64, String)>,
    /// The first quarantined lines' numbers.
    pub quarantined_lines: Vec<u64>,
    /// Callbacks written again after a write timed out: the first attempt may have committed
    /// them, so a few of those counted duplicate may have been stored by this import.
    pub retried: u64,
    /// Why the import stopped before the end of the input (the database failed, the input
    /// could not be read); `None` when it read everything.
    pub stopped: Option<String>,
}

impl fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "imported {}: {} lines ({} bytes) read{}",
            self.source,
            self.lines,
            self.bytes,
            if self.stopped.is_some() {
                ", stopped early"
            } else {
                ""
            }
        )?;
        write!(
            f,
            "  stored {}, duplicate {}, quarantined {}, refused {}",
            self.stored, self.duplicate, self.quarantined, self.refused
        )?;
        if self.blank > 0 {
            write!(f, ", blank lines skipped {}", self.blank)?;
        }
        if !self.refused_lines.is_empty() {
            write!(
                f,
                "\n  refused lines (first {} of {}):",
                self.refused_lines.len(),
                self.refused
            )?;
            for (line, reason) in &self.refused_lines {
                write!(f, "\n    line {line}: {reason}")?;
            }
        }
        if !self.quarantined_lines.is_empty() {
            let numbers: Vec<String> = self.quarantined_lines.iter().map(u64::to_string).collect();
            write!(
                f,
                "\n  quarantined lines (first {} of {}; reasons in callback_events.refused_reason): {}",
                numbers.len(),
                self.quarantined,
                numbers.join(", ")
            )?;
        }
        if self.retried > 0 {
            write!(
                f,
                "\n  {} callbacks were written again after a timeout: some counted duplicate may \
                 have been stored by the first attempt",
                self.retried
            )?;
        }
        if let Some(reason) = &self.stopped {
            write!(f, "\n  stopped: {reason}")?;
        }
        Ok(())
    }
}

/// Imports every line of `input` into `store` (migrated). A bad line is counted, never fatal;
/// a database failure stops the import with [`ImportSummary::stopped`] set.
pub async fn import(
    store: &Store,
    input: Input,
    options: &ImportOptions,
) -> anyhow::Result<ImportSummary> {
    let batch_size = options.batch_size.max(1);
    let writers = options.writers.max(1);
    let bar = progress_bar(input.len, options.progress);
    let source = input.name.clone();

    let (batches, mut rx) = mpsc::channel::<Batch>(writers * 2);
    let reader_bar = bar.clone();
    let reader = tokio::task::spawn_blocking(move || {
        let reader = BufReader::with_capacity(256 * 1024, input.reader);
        read_batches(reader, batch_size, &batches, &reader_bar)
    });

    let mut summary = ImportSummary {
        source,
        ..ImportSummary::default()
    };
    let mut months = Months::default();
    let mut in_flight: JoinSet<Written> = JoinSet::new();
    while let Some(batch) = rx.recv().await {
        if let Err(e) = months
            .ensure(store, &batch, &mut in_flight, &mut summary)
            .await
        {
            summary.stopped.get_or_insert(e);
        }
        if summary.stopped.is_some() {
            break;
        }
        while in_flight.len() >= writers {
            if let Some(written) = in_flight.join_next().await {
                tally(&mut summary, written);
            }
        }
        if summary.stopped.is_some() {
            break;
        }
        let store = store.clone();
        in_flight.spawn(async move {
            let mut retried = 0;
            let outcomes = write_splitting(&store, &batch.callbacks, &mut retried).await;
            Written {
                batch,
                outcomes,
                retried,
            }
        });
    }
    // Stop the reader (its sends fail once the receiver is gone), then wait for the writes.
    drop(rx);
    while let Some(written) = in_flight.join_next().await {
        tally(&mut summary, written);
    }
    let read = reader.await.context("the reader thread panicked")?;
    summary.lines = read.lines;
    summary.bytes = read.bytes;
    summary.blank = read.blank;
    summary.refused = read.refused;
    summary.refused_lines = read.refused_lines;
    if let Some(error) = read.error {
        summary.stopped.get_or_insert(error);
    }
    bar.finish_and_clear();

    if summary.stored > 0 {
        // The daily duration views read pending rollup rows too; the concurrency views need
        // a compaction (`serve` runs one every few seconds).
        let spinner = spinner(options.progress, "compacting the rollups");
        if let Err(e) = store.compact_rollups().await {
            tracing::warn!(error = %crate::error_chain(&e), "compacting the rollups failed; zegolog serve does it every few seconds");
        }
        spinner.finish_and_clear();
    }
    Ok(summary)
}

/// Parsed callbacks of consecutive lines.
struct Batch {
    callbacks: Vec<Received>,
    /// The line number of each callback.
    lines: Vec<u64>,
}

impl Batch {
    fn line_range(&self) -> String {
        match (self.lines.first(), self.lines.last()) {
            (Some(first), Some(last)) => format!("lines {first} to {last}"),
            _ => "an empty batch".into(),
        }
    }
}

fn progress_bar(len: Option<u64>, visible: bool) -> ProgressBar {
    let target = if visible {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = match len {
        Some(len) => ProgressBar::with_draw_target(Some(len), target).with_style(
            ProgressStyle::with_template(
                "importing [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} ({elapsed})",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        ),
        None => ProgressBar::with_draw_target(None, target).with_style(
            ProgressStyle::with_template(
                "{spinner} importing: {bytes} read, {bytes_per_sec} ({elapsed})",
            )
            .expect("a valid template"),
        ),
    };
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn spinner(visible: bool, what: &str) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("a valid template"),
    );
    bar.set_message(what.to_owned());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
