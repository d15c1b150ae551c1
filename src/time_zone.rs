//! The reporting time zone: one per deployment, kept in the database (`zegolog_settings`,
//! `migrations/0100_rules.sql`), in which every daily view, rollup, report and the dashboard
//! cut their days.
//!
//! Every instance says which zone it expects (`--time-zone`, default `UTC`) and refuses to run
//! against a database that cuts its days in another one ([`check`]); [`change`] moves a
//! deployment to another zone, rebuilding the rollups from the raw rows day by day, in one
//! transaction, with a progress bar.

use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool};

/// The zone of a database that never chose one, and of an instance started without one.
pub const DEFAULT: &str = "UTC";

#[derive(Debug, thiserror::Error)]
pub enum ZoneError {
    #[error(
        "this database cuts its days in the time zone {database}, but zegolog was started with \
         --time-zone {wanted}: every instance must agree. Start it with --time-zone {database} \
         (or ZEGOLOG_TIME_ZONE={database}), or change the deployment's zone, which rebuilds the \
         rollups, with: zegolog time-zone set {wanted}"
    )]
    Mismatch { database: String, wanted: String },
    #[error("unknown time zone {0:?}: use an IANA name such as Asia/Shanghai or America/New_York (see pg_timezone_names)")]
    Unknown(String),
    #[error("reading the reporting time zone")]
    Database(#[from] sqlx::Error),
}

/// The zone the database cuts its days in: `zegolog_time_zone()`.
pub(crate) async fn database_zone<'e>(
    db: impl sqlx::PgExecutor<'e>,
) -> Result<String, sqlx::Error> {
    sqlx::query_scalar("SELECT zegolog_time_zone()")
        .fetch_one(db)
        .await
}

/// Checks that the database's zone is `wanted`. A database whose zone nobody chose yet and that
/// holds no logouts simply takes `wanted` (nothing to rebuild), so that a new deployment starts
/// in its zone.
pub async fn check(pool: &PgPool, wanted: &str) -> Result<(), ZoneError> {
    let database = database_zone(pool).await?;
    if database == wanted {
        return Ok(());
    }
    let known: bool = sqlx::query_scalar("SELECT zegolog_is_time_zone($1)")
        .bind(wanted)
        .fetch_one(pool)
        .await?;
    if !known {
        return Err(ZoneError::Unknown(wanted.to_owned()));
    }
    let empty: bool = sqlx::query_scalar(
        "SELECT NOT (SELECT chosen FROM zegolog_settings)
            AND NOT EXISTS (SELECT 1 FROM room_logouts)
            AND NOT EXISTS (SELECT 1 FROM room_concurrency_minute)
            AND NOT EXISTS (SELECT 1 FROM pending_contributions)",
    )
    .fetch_one(pool)
    .await?;
    if empty {
        let mut conn = pool.acquire().await?;
        let changed = change_on(&mut conn, wanted, &indicatif::ProgressBar::hidden()).await;
        match changed {
            Ok(_) => {
                tracing::info!(
                    time_zone = wanted,
                    "the new database cuts its days in this time zone"
                );
                return Ok(());
            }
            Err(ZoneError::Database(e)) => return Err(e.into()),
            Err(other) => return Err(other),
        }
    }
    Err(ZoneError::Mismatch {
        database,
        wanted: wanted.to_owned(),
    })
}

/// What [`change`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    pub from: String,
    pub to: String,
    /// Days (in the new zone) rebuilt.
    pub days: u64,
    pub logouts: i64,
    pub took: Duration,
}

impl std::fmt::Display for Changed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "time zone {} -> {}: rollups rebuilt for {} days ({} logouts) in {:.1} s",
            self.from,
            self.to,
            self.days,
            self.logouts,
            self.took.as_secs_f64()
        )
    }
}

/// Moves the deployment at `url` to `zone` and rebuilds every rollup from the raw rows, one day
/// (of the new zone) at a time, with a progress bar on standard error when `progress`. One
/// transaction: the views show the old days until it commits. Safe while `serve` runs: it holds
/// the compaction lock, and writers wait for the commit (their callbacks go to the spool).
pub async fn change(url: &str, zone: &str, progress: bool) -> Result<Changed, ZoneError> {
    let options: PgConnectOptions = url.parse()?;
    let mut conn =
        PgConnection::connect_with(&options.application_name("zegolog time-zone set")).await?;
    let bar = if progress {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:40}] {pos}/{len} days, {elapsed} (eta {eta})",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar.set_message(format!("rebuilding the rollups in {zone}"));
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let result = change_on(&mut conn, zone, &bar).await;
    bar.finish_and_clear();
    let _ = conn.close().await;
    result
}

async fn change_on(
    conn: &mut PgConnection,
    zone: &str,
    bar: &indicatif::ProgressBar,
) -> Result<Changed, ZoneError> {
    let started = Instant::now();
    let known: bool = sqlx::query_scalar("SELECT zegolog_is_time_zone($1)")
        .bind(zone)
        .fetch_one(&mut *conn)
        .await?;
    if !known {
        return Err(ZoneError::Unknown(zone.to_owned()));
    }
    let mut tx = conn.begin().await?;
    sqlx::query("SET LOCAL work_mem = '256MB'")
        .execute(&mut *tx)
        .await?;
    let from: String = sqlx::query_scalar("SELECT zegolog_time_zone()")
        .fetch_one(&mut *tx)
        .await?;
    let (first, last): (Option<chrono::NaiveDate>, Option<chrono::NaiveDate>) =
        sqlx::query_as("SELECT first_day, last_day FROM zegolog_begin_time_zone_change($1)")
            .bind(zone)
            .fetch_one(&mut *tx)
            .await?;
    let mut days = 0;
    let mut logouts = 0;
    if let (Some(first), Some(last)) = (first, last) {
        bar.set_length((last - first).num_days() as u64 + 1);
        for day in first.iter_days().take_while(|d| *d <= last) {
            let n: i64 = sqlx::query_scalar("SELECT zegolog_rebuild_rollups_day($1)")
                .bind(day)
                .fetch_one(&mut *tx)
                .await?;
            logouts += n;
            days += 1;
            bar.inc(1);
        }
    }
    tx.commit().await?;
    Ok(Changed {
        from,
        to: zone.to_owned(),
        days,
        logouts,
        took: started.elapsed(),
    })
}
