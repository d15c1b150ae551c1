//! `zegolog quarantine list|release`: the callbacks kept out of the typed tables, and a way to
//! let in the ones an operator judged genuine.
//!
//! A quarantined callback is an archive row of `callback_events` with `refused_reason` set: a
//! body that could not be normalised, or one whose signed (timestamp, nonce, signature) came
//! first with another body (a signature reuse: a forged body on a captured signature, or two
//! genuine callbacks that shared a nonce by chance). Releasing one re-reads its stored fields
//! into a [`Received`] without a signed triple (the ledger is for what arrives over HTTP) and
//! writes it with the normal batch write, so its typed rows and rollups are made exactly as for
//! any callback, then clears `refused_reason`, all in one transaction per callback
//! ([`Store::release`]). Releasing again finds nothing quarantined under that id: stored once.
//!
//! Engines with plain arguments; the binary (`cli/quarantine.rs`) holds the clap glue. The SQL
//! is in `sql.rs` beside this file.

use std::fmt;

use crate::callback::{self, Encoding, Origin, Payload, ReceiveError, Received};
use crate::outcome::Outcome;
use crate::store::{Store, StoreError};

mod sql;

pub use sql::{QuarantinedBody, QuarantinedCallback};

/// The quarantined callbacks, newest first (at most `limit`).
pub async fn list(store: &Store, limit: i64) -> Result<Listing, StoreError> {
    Ok(Listing(store.quarantined(limit).await?))
}

/// `zegolog quarantine list`, as a table.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing(pub Vec<QuarantinedCallback>);

impl fmt::Display for Listing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return writeln!(f, "no quarantined callbacks");
        }
        writeln!(
            f,
            "{:>10}  {:<24}  {:<16}  {:>12}  reason",
            "id", "received_at", "event", "appid"
        )?;
        for q in &self.0 {
            writeln!(
                f,
                "{:>10}  {:<24}  {:<16}  {:>12}  {}",
                q.id,
                q.received_at.format("%Y-%m-%d %H:%M:%S%.3fZ"),
                printable(&q.event, 16),
                q.appid,
                printable(&q.reason, 200)
            )?;
        }
        Ok(())
    }
}

/// Free text for a terminal: control characters replaced, cut at `max` characters.
fn printable(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .take(max)
        .collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

/// What releasing one quarantined callback did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Released {
    /// Written through the normal path; `outcome` is the write's (`stored`: new typed rows).
    Released { outcome: Outcome, reason: String },
    /// No quarantined callback has this id (unknown, or released already).
    NotQuarantined,
    /// Its stored body still cannot be stored as a callback: it stays quarantined.
    Unusable(String),
}

/// `zegolog quarantine release`: one line per id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseReport(pub Vec<(i64, Released)>);

impl ReleaseReport {
    /// Whether every id was released now.
    pub fn all_released(&self) -> bool {
        self.0
            .iter()
            .all(|(_, r)| matches!(r, Released::Released { .. }))
    }
}

impl fmt::Display for ReleaseReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (id, released) in &self.0 {
            match released {
                Released::Released { outcome, reason } => writeln!(
                    f,
                    "{id}: released ({}; it was quarantined for: {})",
                    match outcome {
                        Outcome::Stored => "stored",
                        _ => "its rows were already there",
                    },
                    printable(reason, 200)
                )?,
                Released::NotQuarantined => writeln!(
                    f,
                    "{id}: not quarantined (no such id, or released already); nothing done"
                )?,
                Released::Unusable(why) => {
                    writeln!(f, "{id}: not released, it stays quarantined: {why}")?
                }
            }
        }
        Ok(())
    }
}

/// Releases the quarantined callbacks with these ids, one transaction each.
pub async fn release(store: &Store, ids: &[i64]) -> Result<ReleaseReport, StoreError> {
    let mut report = Vec::with_capacity(ids.len());
    for &id in ids {
        let released = match store.release(id, prepare).await? {
            None => Released::NotQuarantined,
            Some(Err(why)) => Released::Unusable(why),
            Some(Ok((row, outcome))) => {
                tracing::info!(id, reason = %row.reason, outcome = outcome.code(), "quarantined callback released");
                Released::Released {
                    outcome,
                    reason: row.reason,
                }
            }
        };
        report.push((id, released));
    }
    Ok(ReleaseReport(report))
}

/// The stored fields of a quarantined callback as a callback to write, from the operator:
/// without a signed triple. The archive keeps every body as JSON; the encoding it arrived in
/// is given back from its content type.
fn prepare(row: &QuarantinedBody) -> Result<Received, String> {
    let mut received = callback::receive(row.body.as_bytes(), Encoding::Json, Origin::Operator)
        .map_err(|e| match e {
            ReceiveError::Body(e) => format!("its stored body is not a callback's fields: {e}"),
            other => format!("its stored body is not a callback: {other}"),
        })?;
    received.encoding = Encoding::from_content_type(&row.content_type).unwrap_or(Encoding::Json);
    match &received.payload {
        Payload::Unusable(reason) => Err(format!("it is still not usable: {reason}")),
        _ => Ok(received),
    }
}
