//! The writers' side: a batch of parsed callbacks into the store through the live write path
//! (halved while it misses the store's write deadline), the monthly partitions its logouts
//! fall in created first, and its outcomes tallied into the [`ImportSummary`] by line number.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use tokio::task::JoinSet;

use super::{Batch, ImportSummary, LISTED_LINES};
use crate::callback::{Payload, Received};
use crate::outcome::Outcome;
use crate::store::{Store, StoreError};

pub(super) struct Written {
    pub(super) batch: Batch,
    pub(super) outcomes: Result<Vec<Outcome>, StoreError>,
    pub(super) retried: u64,
}

pub(super) fn tally(summary: &mut ImportSummary, written: Result<Written, tokio::task::JoinError>) {
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
                    // Nor spooled: import writes to the database only.
                    Outcome::Quarantined | Outcome::SignatureReuse(_) | Outcome::Spooled => {
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
pub(super) async fn write_splitting(
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
pub(super) struct Months {
    seen: BTreeSet<NaiveDate>,
}

impl Months {
    pub(super) async fn ensure(
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
            // No partitions for absurd times (over ten years back or a year ahead): those
            // logouts stay in the default one.
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
