//! The upkeep queries the background loop of `zegolog serve` runs: folding the rollup rows
//! recent writes appended, creating partitions ahead, pruning the signature ledger, dropping
//! what is past retention. Each calls a function of the migrations (`zegolog_*`), where the
//! work is done.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::store::{Store, StoreError};

/// How long the signature ledger remembers a triple, at least: far beyond the default skew
/// window (600 s) plus the sender's retries (~62 s). Daily partitions older go whole.
pub const LEDGER_KEEP: Duration = Duration::from_secs(2 * 24 * 3600);

impl Store {
    /// Folds the rollup rows appended by recent writes into the rollup tables and recomputes the
    /// daily concurrency they touch (`zegolog_compact_rollups()`, idempotent). First, pairs the
    /// logouts without login_time received in the last ten minutes whose login was written by a
    /// concurrent transaction (`zegolog_pair_recent_logouts()`, in
    /// `migrations/0102_rollups.sql`).
    pub async fn compact_rollups(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT zegolog_pair_recent_logouts()")
            .execute(self.pool())
            .await?;
        sqlx::query("SELECT zegolog_compact_rollups()")
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Creates the monthly partitions of `room_logouts` from last month to three months ahead,
    /// and the daily partitions of the signature ledger from yesterday to two days ahead.
    pub async fn ensure_partitions(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT zegolog_ensure_partitions()")
            .execute(self.pool())
            .await?;
        sqlx::query("SELECT zegolog_ensure_ledger_partitions()")
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Drops the daily partitions of the signature ledger that ended more than `keep` ago, and
    /// the rows of its default partition first seen before then; returns the partitions dropped.
    pub async fn prune_signature_ledger(&self, keep: Duration) -> Result<Vec<String>, StoreError> {
        let keep_secs = i64::try_from(keep.as_secs()).unwrap_or(i64::MAX);
        Ok(sqlx::query_scalar(
            "SELECT zegolog_prune_signature_ledger(make_interval(secs => $1::double precision))",
        )
        .bind(keep_secs as f64)
        .fetch_all(self.pool())
        .await?)
    }

    /// Drops the monthly partitions of `room_logouts` that end before `cutoff`; returns the
    /// partitions dropped. Gives up after a second of waiting for the table's lock
    /// ([`StoreError::is_lock_timeout`]): the caller retries.
    pub async fn drop_partitions_before(
        &self,
        cutoff: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT zegolog_drop_partitions_before($1)")
                .bind(cutoff)
                .fetch_all(self.pool())
                .await?,
        )
    }

    /// Retention's first step, in one transaction (`zegolog_retain_rollups()`): folds the
    /// pending rollups, keeps the sessions online at the start of `cutoff`'s day, and deletes
    /// the per-day rollups of earlier days. Returns the rows deleted per table.
    pub async fn retain_rollups(
        &self,
        cutoff: DateTime<Utc>,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(
            sqlx::query_as("SELECT tbl, deleted FROM zegolog_retain_rollups($1)")
                .bind(cutoff)
                .fetch_all(self.pool())
                .await?,
        )
    }

    /// Retention's second step, one batch (`zegolog_prune_batch()`): deletes at most `batch`
    /// rows older than `cutoff` (the raw archive: `raw_cutoff`, before which the logouts' bodies
    /// are also set to NULL in their rows) from each table that is not dropped by whole
    /// partitions. Returns the rows deleted per table; all zero when done.
    pub async fn prune_batch(
        &self,
        cutoff: DateTime<Utc>,
        raw_cutoff: DateTime<Utc>,
        batch: i32,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(
            sqlx::query_as("SELECT tbl, deleted FROM zegolog_prune_batch($1, $2, $3)")
                .bind(cutoff)
                .bind(raw_cutoff)
                .bind(batch)
                .fetch_all(self.pool())
                .await?,
        )
    }
}
