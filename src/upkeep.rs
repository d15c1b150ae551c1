//! The background upkeep while serving: rollup compaction (with the sweep that pairs logouts
//! whose login raced them) every few seconds; partitions ahead, signature ledger pruning and
//! retention hourly. [`retain`] is also `zegolog retain`.
//!
//! Failures are logged and retried at the next tick: the database may be down, and the spool
//! absorbs the writes meanwhile.

use std::time::Duration;

use chrono::Utc;

use crate::error_chain;
use crate::store::{Store, StoreError, LEDGER_KEEP};

/// How often the upkeep does what.
#[derive(Debug, Clone, Copy)]
pub struct UpkeepConfig {
    /// Between two compactions of the rollups behind the daily views.
    pub compact_every: Duration,
    /// Drop monthly partitions of logouts older than this many days, hourly; `None` keeps all.
    pub retain_days: Option<u32>,
}

/// Retention could not drop the old partitions.
#[derive(Debug, thiserror::Error)]
#[error("dropping old partitions")]
pub struct RetainError(#[source] StoreError);

/// Drops whole monthly partitions of logouts older than `days` days, with their rollups.
pub async fn retain(store: &Store, days: u32) -> Result<(), RetainError> {
    let cutoff = Utc::now() - chrono::Duration::days(i64::from(days));
    let dropped = store
        .drop_partitions_before(cutoff)
        .await
        .map_err(RetainError)?;
    tracing::info!(%cutoff, dropped = ?dropped, "retention applied");
    Ok(())
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
                match store.prune_signature_ledger(LEDGER_KEEP).await {
                    Ok(dropped) if !dropped.is_empty() => tracing::info!(?dropped, "old signature ledger partitions dropped"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %error_chain(&e), "pruning the signature ledger failed; retrying in an hour"),
                }
                if let Some(days) = config.retain_days {
                    if let Err(e) = retain(&store, days).await {
                        tracing::warn!(error = %error_chain(&e), "retention failed; retrying in an hour");
                    }
                }
            }
        }
    }
}
