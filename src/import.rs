//! `zegolog import`: backfills callbacks from a JSON-lines file, one callback per line as
//! ZEGOCLOUD sent it (a JSON object), through the same normalisation and the same idempotent
//! writes as live ingest.
//!
//! Each line goes [`Fields::parse`] → [`Envelope::from_fields`] → [`Received::new`] and then, in
//! batches, [`Store::write`]: the same digest and natural keys as a callback received over HTTP,
//! so importing a file twice, or a file that overlaps what `serve` received, stores nothing
//! twice. Signatures are not verified (the file is trusted), but a line without the envelope
//! fields (`event`, `appid`, `timestamp`, `nonce`, `signature`) is refused, like a request.
//!
//! A thread reads and parses (bounded lines, so a file without line breaks cannot exhaust
//! memory) while a few batches are written concurrently. A bad line never stops the import: it
//! is counted and reported by number. Only the database failing stops it, after what was
//! written is committed; running the same import again resumes it.
//!
//! Errors are `anyhow`: this is command-line glue, like the binary's command line (`src/bin/zegolog`).

use std::collections::BTreeSet;
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::callback::{Encoding, Envelope, Fields, Payload, Received};
use crate::database::DatabaseArgs;
use crate::store::{Outcome, PoolConfig, Store, StoreError};

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// The JSON-lines file: one callback per line, the JSON object ZEGOCLOUD sent. `-` reads
    /// standard input. Signatures are NOT verified: import only files you trust. Lines without
    /// the envelope fields (event, appid, timestamp, nonce, signature) are refused.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Callbacks written in one statement and transaction.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch_size: u32,

    /// Batches written concurrently (each holds one database connection).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub writers: u32,
}

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

/// `zegolog import` on the database at `database_url` (migrated first); the summary on stdout.
pub async fn run(args: &ImportArgs, database_url: &str) -> anyhow::Result<()> {
    let input = Input::open(&args.file)?;
    let options = ImportOptions {
        batch_size: args.batch_size as usize,
        writers: args.writers as usize,
        progress: true,
    };
    let store = Store::connect_lazy(
        database_url,
        &PoolConfig {
            max_connections: args.writers + 1,
            acquire_timeout: Duration::from_secs(10),
        },
    )
    .context("the database URL is not valid")?;
    store
        .migrate()
        .await
        .context("applying database migrations")?;
    let summary = import(&store, input, &options).await?;
    println!("{summary}");
    if let Some(reason) = &summary.stopped {
        bail!(
            "the import stopped early: {reason}. What was written before is committed; run the \
             same import again to finish it (callbacks already stored then count as duplicates)"
        );
    }
    Ok(())
}

/// Where the callbacks come from.
pub struct Input {
    name: String,
    reader: Box<dyn Read + Send>,
    /// Its size in bytes, when known (a regular file), for the progress bar.
    len: Option<u64>,
}

impl Input {
    /// `-` is standard input; anything else a file.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        if path.as_os_str() == "-" {
            return Ok(Self::from_reader("standard input", std::io::stdin(), None));
        }
        let file =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let len = file
            .metadata()
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len());
        Ok(Self::from_reader(path.display().to_string(), file, len))
    }

    pub fn from_reader(
        name: impl Into<String>,
        reader: impl Read + Send + 'static,
        len: Option<u64>,
    ) -> Self {
        Self {
            name: name.into(),
            reader: Box::new(reader),
            len,
        }
    }
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

struct Written {
    batch: Batch,
    outcomes: Result<Vec<Outcome>, StoreError>,
    retried: u64,
}

fn tally(summary: &mut ImportSummary, written: Result<Written, tokio::task::JoinError>) {
    let written = match written {
        Ok(written) => written,
        Err(e) => {
            summary
                .stopped
                .get_or_insert(format!("a write task failed: {e}"));
            return;
        }
    };
    summary.retried += written.retried;
    match written.outcomes {
        Ok(outcomes) => {
            for (outcome, line) in outcomes.into_iter().zip(&written.batch.lines) {
                match outcome {
                    Outcome::Stored => summary.stored += 1,
                    Outcome::Duplicate => summary.duplicate += 1,
                    // Imported callbacks carry no signed triple: never a signature reuse.
                    Outcome::Quarantined | Outcome::SignatureReuse(_) => {
                        summary.quarantined += 1;
                        if summary.quarantined_lines.len() < LISTED_LINES {
                            summary.quarantined_lines.push(*line);
                        }
                    }
                }
            }
        }
        Err(e) => {
            summary.stopped.get_or_insert(format!(
                "writing {} failed: {}",
                written.batch.line_range(),
                crate::error_chain(&e)
            ));
        }
    }
}

/// [`Store::write`], halving a batch that misses the store's write deadline (the deadline is
/// made for live requests; a big batch on a busy server may need longer). Writes are
/// idempotent, so a half written again is safe.
async fn write_splitting(
    store: &Store,
    batch: &[Received],
    retried: &mut u64,
) -> Result<Vec<Outcome>, StoreError> {
    match store.write(batch).await {
        Err(StoreError::Timeout(deadline)) if batch.len() > 1 => {
            tracing::warn!(
                size = batch.len(),
                ?deadline,
                "a batch took too long; writing it in halves"
            );
            *retried += batch.len() as u64;
            let (first, second) = batch.split_at(batch.len() / 2);
            let mut outcomes = Box::pin(write_splitting(store, first, retried)).await?;
            outcomes.extend(Box::pin(write_splitting(store, second, retried)).await?);
            Ok(outcomes)
        }
        other => other,
    }
}

/// The monthly partitions of `room_logouts` the imported logouts fall in, created before the
/// first write of a month, so a backfill of past months does not pile up in the default
/// partition. Created while none of this import's writes is in flight (creating a partition
/// moves rows out of the default partition and locks it).
#[derive(Default)]
struct Months {
    seen: BTreeSet<NaiveDate>,
}

impl Months {
    async fn ensure(
        &mut self,
        store: &Store,
        batch: &Batch,
        in_flight: &mut JoinSet<Written>,
        summary: &mut ImportSummary,
    ) -> Result<(), String> {
        let now = Utc::now();
        let new: BTreeSet<NaiveDate> = batch
            .callbacks
            .iter()
            .filter_map(|r| match &r.payload {
                Payload::Logout(l) => Some(l.logout_time),
                _ => None,
            })
            // As migration 0003: no partitions for absurd times, they stay in the default one.
            .filter(|t| *t > now - chrono::Days::new(3653) && *t < now + chrono::Days::new(366))
            .map(month_of)
            .filter(|m| !self.seen.contains(m))
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        while let Some(written) = in_flight.join_next().await {
            tally(summary, written);
        }
        for month in new {
            sqlx::query("SELECT zegolog_ensure_partition($1)")
                .bind(month)
                .execute(store.pool())
                .await
                .map_err(|e| {
                    format!(
                        "creating the partition of {} for {}: {}",
                        month.format("%Y-%m"),
                        batch.line_range(),
                        crate::error_chain(&e)
                    )
                })?;
            self.seen.insert(month);
        }
        Ok(())
    }
}

fn month_of(at: DateTime<Utc>) -> NaiveDate {
    let day = at.date_naive();
    NaiveDate::from_ymd_opt(day.year(), day.month(), 1).expect("the first of a month exists")
}

/// What the reader thread saw.
#[derive(Default)]
struct ReadTally {
    lines: u64,
    bytes: u64,
    blank: u64,
    refused: u64,
    refused_lines: Vec<(u64, String)>,
    /// Reading the input failed: the import stops there.
    error: Option<String>,
}

/// Reads lines, parses them into callbacks and sends them in batches; stops at the end of the
/// input, on a read error, or when the receiver is gone.
fn read_batches(
    mut reader: impl BufRead,
    batch_size: usize,
    batches: &mpsc::Sender<Batch>,
    bar: &ProgressBar,
) -> ReadTally {
    let mut read = ReadTally::default();
    let mut line = Vec::new();
    let mut batch = Batch {
        callbacks: Vec::with_capacity(batch_size),
        lines: Vec::with_capacity(batch_size),
    };
    loop {
        let (consumed, too_long) = match next_line(&mut reader, &mut line) {
            Ok(Some(next)) => next,
            Ok(None) => break,
            Err(e) => {
                read.error = Some(format!("reading line {} failed: {e}", read.lines + 1));
                break;
            }
        };
        read.lines += 1;
        read.bytes += consumed as u64;
        bar.inc(consumed as u64);
        let number = read.lines;
        let text = trim(&line, number == 1);
        let parsed = if too_long {
            Err(format!(
                "longer than {} KiB, the most zegolog accepts for one callback",
                MAX_LINE_BYTES / 1024
            ))
        } else if text.is_empty() {
            read.blank += 1;
            continue;
        } else {
            parse_line(text)
        };
        match parsed {
            Ok(received) => {
                batch.callbacks.push(received);
                batch.lines.push(number);
            }
            Err(reason) => {
                read.refused += 1;
                if read.refused_lines.len() < LISTED_LINES {
                    read.refused_lines.push((number, reason));
                }
            }
        }
        if batch.callbacks.len() >= batch_size {
            let full = std::mem::replace(
                &mut batch,
                Batch {
                    callbacks: Vec::with_capacity(batch_size),
                    lines: Vec::with_capacity(batch_size),
                },
            );
            if batches.blocking_send(full).is_err() {
                return read;
            }
        }
    }
    if !batch.callbacks.is_empty() {
        let _ = batches.blocking_send(batch);
    }
    read
}

/// One line as live ingest takes a JSON body, without the signature check.
fn parse_line(line: &[u8]) -> Result<Received, String> {
    let fields = Fields::parse(line, Encoding::Json).map_err(|e| shorten(e.to_string()))?;
    let envelope = Envelope::from_fields(&fields)
        .map_err(|e| shorten(format!("not a callback envelope: {e}")))?;
    Ok(Received::new(&envelope, &fields, Encoding::Json))
}

/// A reason short enough for one line of the summary (a refused value may be long).
fn shorten(mut reason: String) -> String {
    const MAX: usize = 200;
    if reason.len() > MAX {
        reason.truncate(reason.floor_char_boundary(MAX));
        reason.push('…');
    }
    reason
}

/// The line without surrounding white space (a CRLF file's `\r` included) and, on the first
/// line, without a UTF-8 byte order mark.
fn trim(line: &[u8], first: bool) -> &[u8] {
    let line = match line.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) if first => rest,
        _ => line,
    };
    line.trim_ascii()
}

/// Reads up to and including the next `\n` (or the end of the input) into `buf`, without the
/// `\n`. Returns the bytes consumed and whether the line was longer than [`MAX_LINE_BYTES`]
/// (then `buf` is left empty and the rest of the line is skipped without being kept);
/// `None` at the end of the input.
fn next_line(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<(usize, bool)>> {
    buf.clear();
    let mut consumed = 0;
    let mut too_long = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok((consumed > 0).then_some((consumed, too_long)));
        }
        let (used, end) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, Some(i)),
            None => (available.len(), None),
        };
        if !too_long {
            let part = &available[..end.unwrap_or(used)];
            if buf.len() + part.len() > MAX_LINE_BYTES {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(part);
            }
        }
        reader.consume(used);
        consumed += used;
        if end.is_some() {
            return Ok(Some((consumed, too_long)));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Vec<(Vec<u8>, usize, bool)> {
        let mut reader = BufReader::with_capacity(16, input);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while let Some((consumed, too_long)) = next_line(&mut reader, &mut buf).unwrap() {
            out.push((buf.clone(), consumed, too_long));
        }
        out
    }

    #[test]
    fn lines_are_split_and_counted_in_bytes() {
        let got = lines(b"a\r\n\nbc\nlast");
        let texts: Vec<&[u8]> = got.iter().map(|(l, _, _)| l.as_slice()).collect();
        assert_eq!(texts, [&b"a\r"[..], b"", b"bc", b"last"]);
        assert_eq!(got.iter().map(|(_, n, _)| n).sum::<usize>(), 11);
    }

    #[test]
    fn an_overlong_line_is_skipped_without_being_kept() {
        let mut input = vec![b'x'; MAX_LINE_BYTES + 10];
        input.extend_from_slice(b"\n{}\n");
        let got = lines(&input);
        assert_eq!(got.len(), 2);
        assert!(got[0].2 && got[0].0.is_empty());
        assert_eq!(got[0].1, MAX_LINE_BYTES + 11);
        assert_eq!((got[1].0.as_slice(), got[1].2), (&b"{}"[..], false));
    }

    #[test]
    fn byte_order_mark_is_dropped_on_the_first_line_only() {
        assert_eq!(trim(b"\xEF\xBB\xBF{} \r", true), b"{}");
        assert_eq!(trim(b"\xEF\xBB\xBF{}", false), b"\xEF\xBB\xBF{}");
    }
}
