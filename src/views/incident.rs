//! The incident view's figures: the last hours of one app in 1- or 5-minute buckets, read from
//! the incident functions of `migrations/0103_views.sql`. SQL and plain values, no HTTP and no
//! terminal: `/dashboard/incident` ([`crate::dashboard`]) and `zegolog report --last`
//! ([`crate::report`]) both show what this module answers.
//!
//! - **Lift** of a reason in a bucket = its share of the bucket's logouts / its **usual share**.
//! - **Usual share** = the reason's share of the same app's logouts over the 7 whole UTC days
//!   before the UTC day the window starts (daily rollups; never the window itself). `None`
//!   (shown as "new") when the app had no such logout in those days.
//! - **Abnormal** disconnects: reasons 1-4 (heartbeat_timeout, connection_lost, kicked_out,
//!   token_expired).

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use sqlx::PgExecutor;

use super::{By, Query};

/// The longest window the incident view answers.
pub const MAX_LAST: Duration = Duration::from_secs(24 * 3600);

/// Whole UTC days before the window's first day that make its usual share.
pub const USUAL_DAYS: i32 = 7;

/// A reason counts as the spike only with at least this many logouts in its bucket ...
pub const SPIKE_MIN_LOGOUTS: i64 = 5;
/// ... and at least this lift.
pub const SPIKE_MIN_LIFT: f64 = 2.0;

/// The reasons counted as abnormal disconnects, in code order (1-4).
pub const ABNORMAL_REASONS: [&str; 4] = [
    "heartbeat_timeout",
    "connection_lost",
    "kicked_out",
    "token_expired",
];

/// Width of a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    OneMinute,
    FiveMinutes,
}

impl Bucket {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "1m" | "1" | "1min" => Ok(Self::OneMinute),
            "5m" | "5" | "5min" => Ok(Self::FiveMinutes),
            other => Err(format!("bucket must be 1m or 5m, not {other:?}")),
        }
    }

    pub fn seconds(self) -> i64 {
        match self {
            Self::OneMinute => 60,
            Self::FiveMinutes => 300,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OneMinute => "1m",
            Self::FiveMinutes => "5m",
        }
    }

    fn interval(self) -> &'static str {
        match self {
            Self::OneMinute => "1 minute",
            Self::FiveMinutes => "5 minutes",
        }
    }
}

/// `1h`, `6h`, `24h`, `90m`: a positive whole number of minutes, at most [`MAX_LAST`].
pub fn parse_last(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let minutes = match (number.parse::<u64>(), unit) {
        (Ok(n), "h") => n * 60,
        (Ok(n), "m") => n,
        _ => {
            return Err(format!(
                "last must be like 1h, 6h, 24h or 90m, not {text:?}"
            ))
        }
    };
    let last = Duration::from_secs(minutes * 60);
    if minutes == 0 || last > MAX_LAST {
        return Err(format!(
            "last must be between 1m and {}h",
            MAX_LAST.as_secs() / 3600
        ));
    }
    Ok(last)
}

/// One app, a half-open time window `[from, to)` and a bucket width. `to` is on a bucket
/// boundary, so every bucket is whole except, when the window ends now, the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Window {
    pub appid: i64,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    #[serde(serialize_with = "bucket_name")]
    pub bucket: Bucket,
}

fn bucket_name<S: serde::Serializer>(bucket: &Bucket, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(bucket.as_str())
}

impl Window {
    /// The `last` hours up to `until`: `to` is `until` rounded up to a bucket boundary (the
    /// bucket holding `until` is included), `from` is `last` before it.
    pub fn ending(appid: i64, last: Duration, bucket: Bucket, until: DateTime<Utc>) -> Self {
        let step = bucket.seconds() * 1000;
        let ms = until.timestamp_millis();
        let to_ms = ms + (step - ms.rem_euclid(step)) % step;
        let from_ms = to_ms - last.as_millis() as i64;
        let at = |ms: i64| Utc.timestamp_millis_opt(ms).single().unwrap_or(until);
        Self {
            appid,
            from: at(from_ms),
            to: at(to_ms),
            bucket,
        }
    }

    /// The appid, `from` and `to` as `$1`, `$2` and `$3`.
    fn bind<'q, O>(&self, q: Query<'q, O>) -> Query<'q, O> {
        q.bind(self.appid).bind(self.from).bind(self.to)
    }

    /// The start of every bucket of the window, in order.
    pub fn bucket_starts(&self) -> Vec<DateTime<Utc>> {
        let step = chrono::Duration::seconds(self.bucket.seconds());
        let mut starts = Vec::new();
        let mut at = self.from;
        while at < self.to {
            starts.push(at);
            at += step;
        }
        starts
    }
}

/// One reason in one bucket (a row of `incident_reasons`).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ReasonBucket {
    pub bucket_start: DateTime<Utc>,
    pub reason: String,
    pub logouts: i64,
    pub bucket_logouts: i64,
    pub share: f64,
    pub usual_share: Option<f64>,
    pub lift: Option<f64>,
}

/// A reason over the whole window, against its usual share.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReasonTotal {
    pub reason: String,
    pub logouts: i64,
    pub share: f64,
    pub usual_share: Option<f64>,
    pub lift: Option<f64>,
    /// The reason's highest lift in any bucket with at least [`SPIKE_MIN_LOGOUTS`] of it.
    pub peak_lift: Option<f64>,
}

/// A row of `reason_usual_shares`.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct UsualShare {
    pub reason: String,
    pub logouts: i64,
    pub usual_share: f64,
}

/// Logouts per bucket and reason, and the figures derived from them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reasons {
    pub rows: Vec<ReasonBucket>,
    pub totals: Vec<ReasonTotal>,
    pub usual: Vec<UsualShare>,
    /// Logouts of the usual days (0: no baseline, every lift is `None`).
    pub usual_logouts: i64,
    pub spike: Option<ReasonBucket>,
}

/// Logouts per bucket and reason, with shares and lifts: `incident_reasons(appid, from, to,
/// bucket)`.
pub async fn reason_buckets<'e>(
    db: impl PgExecutor<'e>,
    w: &Window,
) -> Result<Vec<ReasonBucket>, sqlx::Error> {
    w.bind(sqlx::query_as(&format!(
        "SELECT * FROM incident_reasons($1, $2, $3, interval '{}')",
        w.bucket.interval()
    )))
    .fetch_all(db)
    .await
}

/// Each reason's share of the app's logouts over the [`USUAL_DAYS`] UTC days before the window:
/// `reason_usual_shares(appid, from, days)`.
pub async fn usual_shares<'e>(
    db: impl PgExecutor<'e>,
    w: &Window,
) -> Result<Vec<UsualShare>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM reason_usual_shares($1, $2, $3)")
        .bind(w.appid)
        .bind(w.from)
        .bind(USUAL_DAYS)
        .fetch_all(db)
        .await
}

impl Reasons {
    /// Totals per reason (the most logouts first) and the spike, from the rows.
    pub fn new(rows: Vec<ReasonBucket>, usual: Vec<UsualShare>) -> Self {
        let all: i64 = rows.iter().map(|r| r.logouts).sum();
        let mut totals: Vec<ReasonTotal> = Vec::new();
        for row in &rows {
            let peak = (row.logouts >= SPIKE_MIN_LOGOUTS)
                .then_some(row.lift)
                .flatten();
            match totals.iter_mut().find(|t| t.reason == row.reason) {
                Some(total) => {
                    total.logouts += row.logouts;
                    total.peak_lift = max_option(total.peak_lift, peak);
                }
                None => totals.push(ReasonTotal {
                    reason: row.reason.clone(),
                    logouts: row.logouts,
                    share: 0.0,
                    usual_share: row.usual_share,
                    lift: None,
                    peak_lift: peak,
                }),
            }
        }
        for total in &mut totals {
            total.share = total.logouts as f64 / all as f64;
            total.lift = total
                .usual_share
                .filter(|u| *u > 0.0)
                .map(|u| total.share / u);
        }
        totals.sort_by(|a, b| b.logouts.cmp(&a.logouts).then(a.reason.cmp(&b.reason)));
        let spike = spike(&rows);
        Self {
            usual_logouts: usual.iter().map(|u| u.logouts).sum(),
            rows,
            totals,
            usual,
            spike,
        }
    }
}

fn max_option(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// The spike rule, for one reason in one bucket: an abnormal reason with at least
/// [`SPIKE_MIN_LOGOUTS`] logouts and a lift of at least [`SPIKE_MIN_LIFT`]. The incident view
/// and the alert webhook ([`crate::notifier`]) both decide with this function.
pub fn is_spike(row: &ReasonBucket) -> bool {
    ABNORMAL_REASONS.contains(&row.reason.as_str())
        && row.logouts >= SPIKE_MIN_LOGOUTS
        && row.lift.is_some_and(|l| l >= SPIKE_MIN_LIFT)
}

/// The abnormal reason-bucket with the most logouts above what its usual share expects, among
/// those that are a spike ([`is_spike`]): the excess, rather than the lift alone, so that 3
/// logouts out of 4 do not outrank an outage.
pub fn spike(rows: &[ReasonBucket]) -> Option<ReasonBucket> {
    let excess = |r: &ReasonBucket| {
        r.logouts as f64 - r.usual_share.unwrap_or(0.0) * r.bucket_logouts as f64
    };
    rows.iter()
        .filter(|r| is_spike(r))
        .max_by(|a, b| {
            excess(a)
                .total_cmp(&excess(b))
                .then(b.bucket_start.cmp(&a.bucket_start))
        })
        .cloned()
}

/// The [`spike`] of each abnormal reason that has one in `rows`, in reason order: what spikes
/// in a window, reason by reason.
pub fn spikes(rows: &[ReasonBucket]) -> Vec<ReasonBucket> {
    ABNORMAL_REASONS
        .iter()
        .filter_map(|reason| {
            let of_reason: Vec<ReasonBucket> = rows
                .iter()
                .filter(|r| r.reason == *reason)
                .cloned()
                .collect();
            spike(&of_reason)
        })
        .collect()
}

/// [`reason_buckets`] and [`usual_shares`] (`incident_reasons`, `reason_usual_shares`), and
/// the totals and spike derived from them.
pub async fn reasons(pool: &sqlx::PgPool, w: &Window) -> Result<Reasons, sqlx::Error> {
    let rows = reason_buckets(pool, w).await?;
    let usual = usual_shares(pool, w).await?;
    Ok(Reasons::new(rows, usual))
}

/// Users online in one bucket (a row of `incident_users_online`).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct OnlineBucket {
    pub bucket_start: DateTime<Utc>,
    /// The most sessions online in any minute of the bucket.
    pub users_online: i64,
    /// The fewest.
    pub fewest_online: i64,
}

/// The most and fewest users online in a minute of each bucket:
/// `incident_users_online(appid, from, to, bucket)`.
pub async fn online<'e>(
    db: impl PgExecutor<'e>,
    w: &Window,
) -> Result<Vec<OnlineBucket>, sqlx::Error> {
    w.bind(sqlx::query_as(&format!(
        "SELECT * FROM incident_users_online($1, $2, $3, interval '{}')",
        w.bucket.interval()
    )))
    .fetch_all(db)
    .await
}

/// A room (or user) with abnormal disconnects in the window.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Offender {
    /// The room id (or user account).
    pub key: String,
    pub abnormal: i64,
    pub heartbeat_timeout: i64,
    pub connection_lost: i64,
    pub kicked_out: i64,
    pub token_expired: i64,
    /// For a room, the users it lost abnormally; for a user, the rooms.
    pub others: i64,
    pub last_abnormal_at: DateTime<Utc>,
}

/// The `top` rooms (or users) with the most abnormal disconnects (reasons 1-4) in the window:
/// `abnormal_rooms_between` (or `abnormal_users_between`)`(appid, from, to, top)`.
pub async fn offenders<'e>(
    db: impl PgExecutor<'e>,
    w: &Window,
    by: By,
    top: u32,
) -> Result<Vec<Offender>, sqlx::Error> {
    let sql = match by {
        By::Room => {
            "SELECT room_id AS key, abnormal, heartbeat_timeout, connection_lost, kicked_out, \
             token_expired, users AS others, last_abnormal_at \
             FROM abnormal_rooms_between($1, $2, $3, $4)"
        }
        By::User => {
            "SELECT user_account AS key, abnormal, heartbeat_timeout, connection_lost, kicked_out, \
             token_expired, rooms AS others, last_abnormal_at \
             FROM abnormal_users_between($1, $2, $3, $4)"
        }
    };
    w.bind(sqlx::query_as(sql))
        .bind(i32::try_from(top).unwrap_or(i32::MAX))
        .fetch_all(db)
        .await
}

/// The SQL of each query the incident view runs, with literal values, for `bench-queries`.
pub fn bench_sql(w: &Window, top: u32) -> Vec<(String, String)> {
    let (app, from, to) = (w.appid, w.from.to_rfc3339(), w.to.to_rfc3339());
    let b = w.bucket.interval();
    let span = format!(
        "{}h/{}",
        (w.to - w.from).num_minutes() as f64 / 60.0,
        w.bucket.as_str()
    );
    vec![
        (
            format!("incident_reasons: appid {app}, {span}"),
            format!("SELECT * FROM incident_reasons({app}, '{from}', '{to}', interval '{b}')"),
        ),
        (
            format!("reason_usual_shares: appid {app}, 7 days"),
            format!("SELECT * FROM reason_usual_shares({app}, '{from}', {USUAL_DAYS})"),
        ),
        (
            format!("incident_users_online: appid {app}, {span}"),
            format!("SELECT * FROM incident_users_online({app}, '{from}', '{to}', interval '{b}')"),
        ),
        (
            format!("abnormal_rooms_between: appid {app}, {span}, top {top}"),
            format!("SELECT * FROM abnormal_rooms_between({app}, '{from}', '{to}', {top})"),
        ),
        (
            format!("abnormal_users_between: appid {app}, {span}, top {top}"),
            format!("SELECT * FROM abnormal_users_between({app}, '{from}', '{to}', {top})"),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn window_ends_on_the_bucket_boundary_after_until() {
        let w = Window::ending(
            1,
            parse_last("6h").unwrap(),
            Bucket::FiveMinutes,
            at("2024-05-01T10:03:10Z"),
        );
        assert_eq!(w.to, at("2024-05-01T10:05:00Z"));
        assert_eq!(w.from, at("2024-05-01T04:05:00Z"));
        assert_eq!(w.bucket_starts().len(), 72);
        let w = Window::ending(1, parse_last("1h").unwrap(), Bucket::OneMinute, w.to);
        assert_eq!(w.to, at("2024-05-01T10:05:00Z"), "a boundary stays");
        assert_eq!(w.bucket_starts().len(), 60);
    }

    #[test]
    fn last_and_bucket_are_checked() {
        assert_eq!(parse_last("24h").unwrap(), MAX_LAST);
        assert_eq!(parse_last("90m").unwrap(), Duration::from_secs(5400));
        for bad in ["", "0h", "25h", "6", "h", "-1h", "1d"] {
            assert!(parse_last(bad).is_err(), "{bad}");
        }
        assert_eq!(Bucket::parse("5m").unwrap(), Bucket::FiveMinutes);
        assert!(Bucket::parse("10m").is_err());
    }

    fn row(bucket: &str, reason: &str, logouts: i64, of: i64, usual: Option<f64>) -> ReasonBucket {
        let share = logouts as f64 / of as f64;
        ReasonBucket {
            bucket_start: at(bucket),
            reason: reason.into(),
            logouts,
            bucket_logouts: of,
            share,
            usual_share: usual,
            lift: usual.map(|u| share / u),
        }
    }

    #[test]
    fn the_spike_is_the_largest_excess_of_an_abnormal_reason() {
        let rows = vec![
            row("2024-05-01T10:00:00Z", "normal", 90, 100, Some(0.9)),
            row(
                "2024-05-01T10:00:00Z",
                "connection_lost",
                10,
                100,
                Some(0.1),
            ),
            row("2024-05-01T10:05:00Z", "connection_lost", 60, 80, Some(0.1)),
            row("2024-05-01T10:05:00Z", "normal", 20, 80, Some(0.9)),
            // A higher lift on few logouts is not the spike.
            row("2024-05-01T10:10:00Z", "kicked_out", 4, 5, Some(0.01)),
        ];
        let reasons = Reasons::new(rows, vec![]);
        let spike = reasons.spike.unwrap();
        assert_eq!(spike.reason, "connection_lost");
        assert_eq!(spike.bucket_start, at("2024-05-01T10:05:00Z"));
        let lost = &reasons.totals[0];
        assert_eq!((lost.reason.as_str(), lost.logouts), ("normal", 110));
        let lost = reasons
            .totals
            .iter()
            .find(|t| t.reason == "connection_lost")
            .unwrap();
        assert_eq!(lost.logouts, 70);
        assert!((lost.share - 70.0 / 184.0).abs() < 1e-12);
        assert!((lost.peak_lift.unwrap() - 7.5).abs() < 1e-9);
    }
}
