//! Figures per day of the deployment's reporting time zone: SQL and plain values, no HTTP and
//! no terminal.
//!
//! - The dashboard's charts of one app over a [`Range`]: the rollup-backed views
//!   (`logout_rollup_all` in `migrations/0102_rollups.sql`; `session_duration_daily`,
//!   `logout_reasons_daily`, `peak_concurrency_daily` in `migrations/0103_views.sql`), filtered
//!   on one app and a range of days, so a query costs the same at ten million logouts as at
//!   ten thousand. Durations are therefore known to within 1% (the rollups' log-scale
//!   buckets).
//! - `zegolog report`'s sections over a [`Span`] (one app or all): [`app_days`] and
//!   [`app_reasons`] from the same views, [`offenders`] from `session_durations`.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::PgExecutor;

use super::{By, Query};

/// One app and an inclusive range of days (of the reporting time zone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub appid: i64,
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl Range {
    /// The appid, `from` and `to` as `$1`, `$2` and `$3`.
    fn bind<'q, O>(&self, q: Query<'q, O>) -> Query<'q, O> {
        q.bind(self.appid).bind(self.from).bind(self.to)
    }
}

/// An app that has logouts, for the app picker.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AppSummary {
    pub appid: i64,
    pub sessions: i64,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
}

/// Every app with at least one logout, the busiest first, from `logout_rollup_all`.
pub async fn apps<'e>(db: impl PgExecutor<'e>) -> Result<Vec<AppSummary>, sqlx::Error> {
    sqlx::query_as(
        "SELECT appid, sum(sessions)::bigint AS sessions, min(day) AS first_day, max(day) AS last_day \
         FROM logout_rollup_all GROUP BY appid ORDER BY sessions DESC, appid",
    )
    .fetch_all(db)
    .await
}

/// The readable bins of the duration histogram: label and lower bound in seconds; a bin ends
/// where the next begins, the last one is open.
const BINS: &[(&str, f64)] = &[
    ("0–1 s", 0.0),
    ("1–5 s", 1.0),
    ("5–10 s", 5.0),
    ("10–30 s", 10.0),
    ("30 s–1 min", 30.0),
    ("1–2 min", 60.0),
    ("2–5 min", 120.0),
    ("5–10 min", 300.0),
    ("10–20 min", 600.0),
    ("20–30 min", 1_200.0),
    ("30 min–1 h", 1_800.0),
    ("1–2 h", 3_600.0),
    ("2–4 h", 7_200.0),
    ("4 h+", 14_400.0),
];

/// Session durations over a range, grouped into readable bins, with the range's percentiles.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Histogram {
    pub sessions: i64,
    /// Nearest-rank percentiles over the whole range, within 1%; `None` without sessions.
    pub p50_s: Option<f64>,
    pub p90_s: Option<f64>,
    pub bins: Vec<Bin>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Bin {
    pub label: &'static str,
    /// Bounds in seconds, `from_s` included, `to_s` excluded; `to_s` is `None` for the last,
    /// open bin.
    pub from_s: f64,
    pub to_s: Option<f64>,
    pub sessions: i64,
}

impl Histogram {
    /// Groups rollup buckets, given as (representative duration in ms, sessions) sorted by
    /// duration, into the readable bins, with the range's percentiles (which the database
    /// computes: `zegolog_nearest_rank`, the one definition of every view). A bucket goes whole
    /// into the bin of its representative value, so a session within 1% of a bin's edge may be
    /// counted in the neighbouring bin.
    pub fn from_buckets(buckets: &[(f64, i64)], p50_s: Option<f64>, p90_s: Option<f64>) -> Self {
        let mut bins: Vec<Bin> = BINS
            .iter()
            .enumerate()
            .map(|(i, &(label, from))| Bin {
                label,
                from_s: from,
                to_s: BINS.get(i + 1).map(|&(_, to)| to),
                sessions: 0,
            })
            .collect();
        // No bucket is negative: a logout before its login has no duration (zegolog_time_fault).
        for &(ms, sessions) in buckets {
            let s = ms / 1000.0;
            let index = BINS.iter().rposition(|&(_, from)| s >= from).unwrap_or(0);
            bins[index].sessions += sessions;
        }
        let sessions = buckets.iter().map(|&(_, n)| n).sum();
        Self {
            sessions,
            p50_s,
            p90_s,
            bins,
        }
    }
}

/// The duration histogram of one app over a range, from `logout_rollup_all`'s buckets; its
/// percentiles are `zegolog_nearest_rank` over the same buckets.
pub async fn histogram<'e>(
    db: impl PgExecutor<'e>,
    range: Range,
) -> Result<Histogram, sqlx::Error> {
    let rows: Vec<(f64, i64, Option<f64>, Option<f64>)> = range
        .bind(sqlx::query_as(
            "WITH b AS ( \
                 SELECT bucket, sum(sessions)::bigint AS sessions \
                 FROM logout_rollup_all WHERE appid = $1 AND day BETWEEN $2 AND $3 \
                   AND bucket <> zegolog_no_duration_bucket() \
                 GROUP BY bucket \
             ) \
             SELECT zegolog_bucket_ms(b.bucket) AS ms, b.sessions, q.p50_s, q.p90_s \
             FROM b, ( \
                 SELECT zegolog_bucket_ms(zegolog_nearest_rank(0.5, array_agg(bucket), array_agg(sessions))) / 1000 AS p50_s, \
                        zegolog_bucket_ms(zegolog_nearest_rank(0.9, array_agg(bucket), array_agg(sessions))) / 1000 AS p90_s \
                 FROM b \
             ) AS q \
             ORDER BY b.bucket",
        ))
        .fetch_all(db)
        .await?;
    let buckets: Vec<(f64, i64)> = rows.iter().map(|&(ms, n, _, _)| (ms, n)).collect();
    let (p50_s, p90_s) = rows
        .first()
        .map_or((None, None), |&(_, _, p50, p90)| (p50, p90));
    Ok(Histogram::from_buckets(&buckets, p50_s, p90_s))
}

/// One row of `session_duration_daily`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DurationDay {
    pub day: NaiveDate,
    pub sessions: i64,
    pub avg_s: Option<f64>,
    pub p50_s: Option<f64>,
    pub p90_s: Option<f64>,
    pub p99_s: Option<f64>,
    pub max_s: Option<f64>,
}

/// Daily session counts and duration percentiles, from `session_duration_daily`; days without
/// sessions are absent.
pub async fn durations<'e>(
    db: impl PgExecutor<'e>,
    range: Range,
) -> Result<Vec<DurationDay>, sqlx::Error> {
    range
        .bind(sqlx::query_as(
            "SELECT day, sessions, avg_s, p50_s, p90_s, p99_s, max_s FROM session_duration_daily \
             WHERE appid = $1 AND day BETWEEN $2 AND $3 ORDER BY day",
        ))
        .fetch_all(db)
        .await
}

/// One row of `logout_reasons_daily`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ReasonDay {
    pub day: NaiveDate,
    pub reason: String,
    pub logouts: i64,
    pub share: f64,
}

/// Logouts per day and decoded reason, from `logout_reasons_daily`; (day, reason) pairs without
/// logouts are absent.
pub async fn reasons<'e>(
    db: impl PgExecutor<'e>,
    range: Range,
) -> Result<Vec<ReasonDay>, sqlx::Error> {
    range
        .bind(sqlx::query_as(
            "SELECT day, reason, logouts, share FROM logout_reasons_daily \
             WHERE appid = $1 AND day BETWEEN $2 AND $3 ORDER BY day, reason",
        ))
        .fetch_all(db)
        .await
}

/// One row of `peak_concurrency_daily`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct PeakDay {
    pub day: NaiveDate,
    pub peak_users: i64,
}

/// The most users online in any minute, per day (as of the last rollup compaction), from
/// `peak_concurrency_daily`.
pub async fn concurrency<'e>(
    db: impl PgExecutor<'e>,
    range: Range,
) -> Result<Vec<PeakDay>, sqlx::Error> {
    range
        .bind(sqlx::query_as(
            "SELECT day, peak_users FROM peak_concurrency_daily \
             WHERE appid = $1 AND day BETWEEN $2 AND $3 ORDER BY day",
        ))
        .fetch_all(db)
        .await
}

// ---------------------------------------------------------------------------------------------
// One app or all: the sections of `zegolog report`
// ---------------------------------------------------------------------------------------------

/// One app or every app, and an inclusive range of days (of the reporting time zone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// One app; `None`: every app, each on its own rows.
    pub appid: Option<i64>,
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl Span {
    /// ` AND appid = $3` when the span is one app. The filters stay plain comparisons on the
    /// views' grouping columns, so PostgreSQL pushes them down to the rollups' and the logouts'
    /// indexes (and prunes partitions).
    fn app_filter(&self) -> &'static str {
        match self.appid {
            Some(_) => " AND appid = $3",
            None => "",
        }
    }

    /// `from` and `to` as `$1` and `$2`, then the appid that [`Self::app_filter`] put in the
    /// SQL, if it put one.
    fn bind<'q, O>(&self, q: Query<'q, O>) -> Query<'q, O> {
        let q = q.bind(self.from).bind(self.to);
        match self.appid {
            Some(appid) => q.bind(appid),
            None => q,
        }
    }
}

/// One app's day of `session_duration_daily`; a day without sessions has 0 sessions and no
/// durations.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AppDay {
    pub day: NaiveDate,
    pub appid: i64,
    pub sessions: i64,
    pub avg_s: Option<f64>,
    pub p50_s: Option<f64>,
    pub p90_s: Option<f64>,
    pub p99_s: Option<f64>,
    pub max_s: Option<f64>,
    pub total_minutes: f64,
}

/// Every day of the span for each app that had sessions in it (or the one app asked for), days
/// without sessions included (a quiet day is news during an incident), from
/// `session_duration_daily`; by app, then day.
pub async fn app_days<'e>(db: impl PgExecutor<'e>, span: Span) -> Result<Vec<AppDay>, sqlx::Error> {
    let apps = match span.appid {
        Some(_) => "SELECT $3::bigint AS appid",
        None => "SELECT DISTINCT appid FROM s",
    };
    let sql = format!(
        "WITH s AS (
            SELECT * FROM session_duration_daily WHERE day BETWEEN $1 AND $2{filter}
         ), apps AS ({apps}),
         days AS (SELECT d::date AS day FROM generate_series($1::date, $2::date, interval '1 day') AS d)
         SELECT days.day, apps.appid, coalesce(s.sessions, 0)::bigint AS sessions,
                s.avg_s, s.p50_s, s.p90_s, s.p99_s, s.max_s,
                coalesce(s.total_minutes, 0)::double precision AS total_minutes
         FROM apps CROSS JOIN days
         LEFT JOIN s ON s.appid = apps.appid AND s.day = days.day
         ORDER BY apps.appid, days.day",
        filter = span.app_filter(),
    );
    span.bind(sqlx::query_as(&sql)).fetch_all(db).await
}

/// One app's logouts of one reason over a span, and their share of the app's logouts in it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AppReason {
    pub appid: i64,
    pub reason: String,
    pub logouts: i64,
    pub share: f64,
}

/// The daily counts of `logout_reasons_daily` summed over the span, with shares of each app's
/// logouts; by app, then the most logouts first.
pub async fn app_reasons<'e>(
    db: impl PgExecutor<'e>,
    span: Span,
) -> Result<Vec<AppReason>, sqlx::Error> {
    let sql = format!(
        "SELECT appid, reason, sum(logouts)::bigint AS logouts,
                (sum(logouts) / sum(sum(logouts)) OVER (PARTITION BY appid))::double precision AS share
         FROM logout_reasons_daily
         WHERE day BETWEEN $1 AND $2{filter}
         GROUP BY appid, reason
         ORDER BY appid, logouts DESC, reason",
        filter = span.app_filter(),
    );
    span.bind(sqlx::query_as(&sql)).fetch_all(db).await
}

/// A room (or user) with logouts whose reason is not `normal` in a span.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Offender {
    pub appid: i64,
    /// The room id (or user account).
    pub key: String,
    /// Logouts of any reason but `normal`.
    pub abnormal: i64,
    /// Logouts of every reason, for scale.
    pub logouts: i64,
    pub heartbeat_timeout: i64,
    pub connection_lost: i64,
    pub kicked_out: i64,
    pub token_expired: i64,
    /// Logouts of a reason zegolog does not know.
    pub unknown: i64,
    pub last_abnormal_at: Option<DateTime<Utc>>,
}

/// The SQL of [`offenders`], with `{column}`, `{filter}` and `{limit}` to fill in.
const OFFENDERS: &str = include_str!("days/offenders.sql");

/// The `top` rooms (or users) with the most logouts whose reason is not `normal` in the span,
/// from `session_durations`, filtered on appid and logout time only, which the index
/// `(appid, logout_time)` and the monthly partitions serve.
pub async fn offenders<'e>(
    db: impl PgExecutor<'e>,
    span: Span,
    by: By,
    top: u32,
) -> Result<Vec<Offender>, sqlx::Error> {
    let column = match by {
        By::Room => "room_id",
        By::User => "user_account",
    };
    let limit = if span.appid.is_some() { "$4" } else { "$3" };
    let sql = OFFENDERS
        .replace("{column}", column)
        .replace("{filter}", span.app_filter())
        .replace("{limit}", limit);
    span.bind(sqlx::query_as(&sql))
        .bind(i64::from(top))
        .fetch_all(db)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_go_to_the_bin_of_their_representative_duration() {
        let histogram =
            Histogram::from_buckets(&[(0.0, 2), (3_000.0, 3), (5_400_000.0, 4)], None, None);
        let count = |label: &str| {
            histogram
                .bins
                .iter()
                .find(|b| b.label == label)
                .map(|b| b.sessions)
        };
        assert_eq!(histogram.sessions, 9);
        assert_eq!(count("0–1 s"), Some(2));
        assert_eq!(count("1–5 s"), Some(3));
        assert_eq!(count("1–2 h"), Some(4));
        assert_eq!(histogram.bins.len(), BINS.len());
        assert_eq!(histogram.bins.last().unwrap().to_s, None);
    }
}
