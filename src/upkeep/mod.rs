//! The background upkeep while serving: rollup compaction (with the sweep that pairs logouts
//! whose login raced them) every few seconds; partitions ahead, signature ledger pruning and
//! retention hourly. [`retain`] is also `zegolog retain`.
//!
//! Retention keeps every number from the cutoff on what it was: the sessions online at the
//! start of the cutoff's day are kept in that day's row (`zegolog_retain_rollups`) before older rows go.
//!
//! Failures are logged and retried at the next tick: the database may be down, and the spool
//! absorbs the writes meanwhile.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::error_chain;
use crate::store::{Store, StoreError};

mod sql;

pub use sql::LEDGER_KEEP;

/// How often the upkeep does what.
#[derive(Debug, Clone, Copy)]
pub struct UpkeepConfig {
    /// Between two compactions of the rollups behind the daily views.
    pub compact_every: Duration,
    /// What to keep, applied hourly; `None` keeps everything.
    pub retention: Option<Retention>,
}

/// How much history to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Every table keeps the last this many days: raw rows, rollups, the archive.
    pub days: u32,
    /// The raw callback bodies (`callback_events`, and the logouts' `body`, set to NULL) are
    /// kept only this many days, when shorter than `days`.
    pub raw_days: Option<u32>,
}

impl Retention {
    /// The instants before which rows go: everything's, and the raw archive's.
    fn cutoffs(self, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let cutoff = now - chrono::Duration::days(i64::from(self.days));
        let raw_days = self.raw_days.map_or(self.days, |raw| raw.min(self.days));
        (cutoff, now - chrono::Duration::days(i64::from(raw_days)))
    }
}

/// Rows deleted per table in one batch of retention: short transactions that writers never
/// wait long behind.
const PRUNE_BATCH: i32 = 10_000;

/// How often retention tries to take a table's lock for a partition drop (each try gives up
/// after a second, so as not to hold writers behind a long query), and how long it waits
/// between tries.
const LOCK_TRIES: u32 = 5;
const LOCK_RETRY_AFTER: Duration = Duration::from_secs(2);

/// What one run of retention removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RetainReport {
    /// Before this instant, every table's rows are gone (the archive: `raw_cutoff`).
    pub cutoff: DateTime<Utc>,
    pub raw_cutoff: DateTime<Utc>,
    /// Whole partitions dropped.
    pub partitions: Vec<String>,
    /// Rows deleted, per table, in name order (partitions dropped not counted).
    pub rows: BTreeMap<String, i64>,
}

impl fmt::Display for RetainReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "kept everything from {} (raw bodies from {})",
            self.cutoff, self.raw_cutoff
        )?;
        if self.partitions.is_empty() {
            writeln!(f, "partitions dropped: none")?;
        } else {
            writeln!(f, "partitions dropped: {}", self.partitions.join(", "))?;
        }
        for (table, n) in &self.rows {
            writeln!(f, "{table}: {n} rows deleted")?;
        }
        Ok(())
    }
}

/// Retention could not finish; what it did before stays done, and a next run goes on.
#[derive(Debug, thiserror::Error)]
#[error("applying retention")]
pub struct RetainError(#[source] StoreError);

/// Keeps the last `retention.days` days of every table that grows with traffic: the day
/// rollups first (keeping the sessions online at the cutoff, so that every later count stays
/// what it was), then the old partitions of logouts and of the signature ledger whole, then
/// the other tables in batches.
pub async fn retain(store: &Store, retention: Retention) -> Result<RetainReport, RetainError> {
    let (cutoff, raw_cutoff) = retention.cutoffs(Utc::now());
    retain_before(store, cutoff, raw_cutoff).await
}

/// [`retain`] with its cutoffs given: every row older than `cutoff` goes (the raw archive's:
/// older than `raw_cutoff`), the per-day rollups before `cutoff`'s day in the reporting zone.
pub async fn retain_before(
    store: &Store,
    cutoff: DateTime<Utc>,
    raw_cutoff: DateTime<Utc>,
) -> Result<RetainReport, RetainError> {
    let mut report = RetainReport {
        cutoff,
        raw_cutoff,
        ..RetainReport::default()
    };
    let mut add = |rows: Vec<(String, i64)>| {
        for (table, n) in rows {
            *report.rows.entry(table).or_default() += n;
        }
    };
    add(store.retain_rollups(cutoff).await.map_err(RetainError)?);
    loop {
        let rows = store
            .prune_batch(cutoff, raw_cutoff, PRUNE_BATCH)
            .await
            .map_err(RetainError)?;
        let done = rows.iter().all(|(_, n)| *n == 0);
        add(rows);
        if done {
            break;
        }
    }
    report.partitions = with_lock_retries(|| store.drop_partitions_before(cutoff))
        .await
        .map_err(RetainError)?;
    report.partitions.extend(
        with_lock_retries(|| store.prune_signature_ledger(LEDGER_KEEP))
            .await
            .map_err(RetainError)?,
    );
    tracing::info!(%cutoff, %raw_cutoff, partitions = ?report.partitions, rows = ?report.rows, "retention applied");
    Ok(report)
}

/// Runs `op` again while it gives up on a lock ([`StoreError::is_lock_timeout`]), a few times.
async fn with_lock_retries<T, F, Fut>(mut op: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut tries = 1;
    loop {
        match op().await {
            Err(e) if e.is_lock_timeout() && tries < LOCK_TRIES => {
                tracing::info!(
                    tries,
                    "partition DDL gave up on a lock held by a long query; retrying"
                );
                tries += 1;
                tokio::time::sleep(LOCK_RETRY_AFTER).await;
            }
            result => return result,
        }
    }
}

/// Runs the upkeep on `store` until the task is dropped or aborted.
pub async fn run(store: Store, config: UpkeepConfig) {
    let mut compact = tokio::time::interval(config.compact_every);
    compact.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut hourly = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = compact.tick() => {
                if let Err(e) = store.compact_rollups().await {
                    tracing::debug!(error = %error_chain(&e), "rollup compaction failed; retrying later");
                }
            }
            _ = hourly.tick() => {
                if let Err(e) = store.ensure_partitions().await {
                    tracing::warn!(error = %error_chain(&e), "creating partitions ahead failed; retrying in an hour");
                }
                // Retention prunes the signature ledger too; without it, the ledger alone.
                match config.retention {
                    Some(retention) => {
                        if let Err(e) = retain(&store, retention).await {
                            tracing::warn!(error = %error_chain(&e), "retention failed; retrying in an hour");
                        }
                    }
                    None => match store.prune_signature_ledger(LEDGER_KEEP).await {
                        Ok(dropped) if !dropped.is_empty() => tracing::info!(?dropped, "old signature ledger partitions dropped"),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %error_chain(&e), "pruning the signature ledger failed; retrying in an hour"),
                    },
                }
            }
        }
    }
}
