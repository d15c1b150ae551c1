//! The read side: every query the dashboard and `zegolog report` run over the analysts' views
//! and functions, as typed functions returning typed rows. SQL and plain values, no HTTP and no
//! terminal: [`crate::dashboard`] turns the rows into JSON, [`crate::report`] into tables, CSV
//! and JSON, and neither runs SQL of its own.
//!
//! - [`days`]: days of the reporting time zone, from the rollup-backed views of
//!   `migrations/0103_views.sql` and from `session_durations`: the dashboard's charts of one
//!   app, the report's sections of one app or all.
//! - [`incident`]: the last hours in 1- or 5-minute buckets, from the incident functions of
//!   `migrations/0103_views.sql`: `/dashboard/incident` and `zegolog report --last`.
//!
//! Every function takes any executor (`&PgPool`, `&mut PgConnection`, a transaction), so that a
//! report can read all its sections in one [`snapshot`]. Each one's doc names the view or
//! function it reads.

pub mod days;
pub mod incident;

use chrono::NaiveDate;
use sqlx::{Connection, PgConnection, PgExecutor, Postgres, Transaction};

/// A query whose rows are `O`, for the helpers that bind a range's or a window's parameters.
type Query<'q, O> = sqlx::query::QueryAs<'q, Postgres, O, sqlx::postgres::PgArguments>;

/// What abnormal disconnects are counted by: the room or the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    Room,
    User,
}

/// The reporting time zone and today's date there: `zegolog_time_zone()` and
/// `zegolog_local_day(now())`.
pub async fn today<'e>(db: impl PgExecutor<'e>) -> Result<(String, NaiveDate), sqlx::Error> {
    sqlx::query_as("SELECT zegolog_time_zone(), zegolog_local_day(now())")
        .fetch_one(db)
        .await
}

/// Every app with data, from `zegolog_appids()`.
pub async fn appids<'e>(db: impl PgExecutor<'e>) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT unnest(zegolog_appids())")
        .fetch_all(db)
        .await
}

/// A read-only, repeatable-read transaction on `conn`: the queries run in it see one snapshot,
/// so that the sections of a report agree.
pub async fn snapshot(conn: &mut PgConnection) -> Result<Transaction<'_, Postgres>, sqlx::Error> {
    let mut tx = conn.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}
