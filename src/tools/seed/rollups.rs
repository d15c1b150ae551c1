//! After the copy: reserving the logouts' ids first, then their rollups, and what to ANALYZE.

use anyhow::Context;
use sqlx::{Connection, PgConnection};

use super::progress::Bars;

// Autovacuum never analyzes a partitioned table itself, only its partitions: the planner's
// estimates for queries on room_logouts need this.
// The pending tables are empty after the compaction: their statistics should say so.
pub(super) const ANALYZE: &str =
    "ANALYZE room_logouts, room_logins, room_lifecycle_events, logout_rollup, \
    pending_contributions, app_concurrency_minute, room_concurrency_minute, \
    app_concurrency_day, room_concurrency_day";

/// Takes a block of `n` ids from room_logouts' identity sequence. The table lock waits for the
/// inserts in flight and keeps new ones out for the two statements, so no other writer draws
/// an id inside the block: `zegolog_add_to_rollups` over it then counts only seeded rows.
pub(super) async fn reserve_logout_ids(conn: &mut PgConnection, n: u64) -> anyhow::Result<i64> {
    let mut tx = conn.begin().await?;
    sqlx::raw_sql("LOCK TABLE room_logouts IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    let first: i64 =
        sqlx::query_scalar("SELECT nextval(pg_get_serial_sequence('room_logouts', 'id'))")
            .fetch_one(&mut *tx)
            .await
            .context("reserving room_logouts ids")?;
    sqlx::query("SELECT setval(pg_get_serial_sequence('room_logouts', 'id'), $1)")
        .bind(first + n as i64 - 1)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(first)
}

/// Appends the rollup contributions of ids `first..=last`. Each call of the function reads the
/// rows by id: in chunks (with progress) when an index leads with `id`, in one pass otherwise,
/// since each chunk would scan the whole table.
pub(super) async fn add_to_rollups(
    conn: &mut PgConnection,
    first: i64,
    last: i64,
    bars: &Bars,
) -> anyhow::Result<()> {
    let indexed: bool = sqlx::query_scalar(
        "SELECT EXISTS (
             SELECT 1 FROM pg_index AS i
             JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
             WHERE i.indrelid = 'room_logouts'::regclass AND a.attname = 'id')",
    )
    .fetch_one(&mut *conn)
    .await?;
    let chunk = if indexed { 1_000_000 } else { last - first + 1 };
    let bar = if indexed {
        bars.rows("rollups", (last - first + 1) as u64)
    } else {
        bars.spinner("adding the logouts to the rollups (zegolog_add_to_rollups)")
    };
    let mut from = first;
    while from <= last {
        let to = (from + chunk - 1).min(last);
        sqlx::query("SELECT zegolog_add_to_rollups($1, $2)")
            .bind(from)
            .bind(to)
            .execute(&mut *conn)
            .await
            .context("adding the seeded logouts to the rollups")?;
        bar.inc((to - from + 1) as u64);
        from = to + 1;
    }
    bar.finish();
    Ok(())
}
