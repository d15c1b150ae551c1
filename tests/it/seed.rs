//! `zegolog seed` writes realistic traffic with unique keys, its rollups agree with the raw
//! rows they summarise, and the queries `zegolog bench-queries` times run on it.

use crate::common;

use std::collections::BTreeMap;

use chrono::NaiveDate;
use sqlx::{Connection, PgConnection, PgPool};
use zegolog::tools::bench_queries::{pick_params, standard_queries, time_query};
use zegolog::tools::seed::{seed, SeedOptions, SeedReport};

fn options(events: u64, seed: u64) -> SeedOptions {
    let mut options = SeedOptions::new(events);
    options.days = 7;
    options.seed = seed;
    // Several chunks per table, lifecycle events included: each copy must end when its
    // table is done, while the others still run.
    options.chunk_rows = 500;
    options.progress = false;
    options
}

async fn seeded(events: u64) -> (String, PgPool, SeedReport) {
    let (url, pool) = common::migrated_database_url().await;
    let report = seed(&url, &options(events, 42)).await.expect("seeding");
    (url, pool, report)
}

async fn scalar(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[tokio::test]
async fn seed_writes_the_asked_logouts_with_unique_keys_and_their_logins_and_rooms() {
    let (_, pool, report) = seeded(20_000).await;

    assert_eq!(report.logouts, 20_000);
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM room_logouts").await,
        20_000
    );
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM room_logouts_default").await,
        0,
        "every logout lands in a monthly partition"
    );
    assert_eq!(
        scalar(
            &pool,
            "SELECT count(DISTINCT (appid, session_id, logout_time, room_id, user_account))
             FROM room_logouts"
        )
        .await,
        20_000
    );
    assert_eq!(
        scalar(&pool, "SELECT count(DISTINCT session_id) FROM room_logouts").await,
        20_000
    );
    assert_eq!(
        scalar(&pool, "SELECT max(id) - min(id) + 1 FROM room_logouts").await,
        20_000
    );
    assert_eq!(
        scalar(&pool, "SELECT min(id) FROM room_logouts").await,
        report.first_id
    );
    let outside: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM room_logouts WHERE logout_time < $1 OR logout_time >= $2",
    )
    .bind(report.start)
    .bind(report.end)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(outside, 0, "logouts fall in the last --days days");

    // Logins: most sessions have one, some do not, and some logins have no logout yet.
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM room_logins").await as u64,
        report.logins
    );
    assert_eq!(
        scalar(
            &pool,
            "SELECT count(DISTINCT (appid, room_id, user_account, session_id, login_time))
             FROM room_logins"
        )
        .await as u64,
        report.logins
    );
    let without_login = scalar(
        &pool,
        "SELECT count(*) FROM room_logouts AS o WHERE NOT EXISTS (
             SELECT 1 FROM room_logins AS i
             WHERE (i.appid, i.room_id, i.user_account, i.session_id, i.login_time, i.room_seq)
                 = (o.appid, o.room_id, o.user_account, o.session_id, o.login_time, o.room_seq))",
    )
    .await as u64;
    assert_eq!(without_login, report.logouts_without_login);
    assert!((400..1_200).contains(&without_login), "{without_login}");
    let open = scalar(
        &pool,
        "SELECT count(*) FROM room_logins AS i WHERE NOT EXISTS (
             SELECT 1 FROM room_logouts AS o
             WHERE (o.appid, o.session_id) = (i.appid, i.session_id))",
    )
    .await as u64;
    assert_eq!(open, report.open_sessions);
    assert!(open >= 10, "{open}");

    // Room lifecycles: the logouts' room_seq are lifecycles with a create (1% lost), closes
    // come after creates, and the lifecycles still running have no close.
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM room_lifecycle_events").await as u64,
        report.lifecycle_events
    );
    let seqs = scalar(
        &pool,
        "SELECT count(DISTINCT (appid, room_id, room_seq)) FROM room_logouts",
    )
    .await;
    let created = scalar(
        &pool,
        "SELECT count(*) FROM (SELECT DISTINCT appid, room_id, room_seq FROM room_logouts) AS l
         WHERE EXISTS (SELECT 1 FROM room_lifecycle_events AS e
                       WHERE (e.appid, e.room_id, e.room_session_id, e.event)
                           = (l.appid, l.room_id, l.room_seq, 'room_create'))",
    )
    .await;
    assert!(created as f64 >= 0.97 * seqs as f64, "{created} of {seqs}");
    assert_eq!(
        scalar(
            &pool,
            "SELECT count(*) FROM room_lifecycle_events AS c
             JOIN room_lifecycle_events AS o USING (appid, room_id, room_session_id)
             WHERE c.event = 'room_close' AND o.event = 'room_create' AND c.at < o.at"
        )
        .await,
        0
    );
    let closes = scalar(
        &pool,
        "SELECT count(*) FROM room_lifecycle_events WHERE event = 'room_close'",
    )
    .await;
    assert!(closes > 0 && (closes as f64) < 0.99 * created as f64);

    // The mix: three apps, the first the busiest; every reason and role; durations from
    // seconds to hours; evenings busier than mornings; an incident of lost connections.
    let apps: Vec<(i64, i64)> =
        sqlx::query_as("SELECT appid, count(*) FROM room_logouts GROUP BY 1 ORDER BY 1")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(apps.iter().map(|a| a.0).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(apps[0].1 > apps[1].1 && apps[1].1 > apps[2].1, "{apps:?}");
    let reasons: BTreeMap<String, i64> =
        sqlx::query_as("SELECT reason, count(*) FROM session_durations GROUP BY 1")
            .fetch_all(&pool)
            .await
            .unwrap()
            .into_iter()
            .collect();
    assert_eq!(
        reasons.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "connection_lost",
            "heartbeat_timeout",
            "kicked_out",
            "normal",
            "token_expired"
        ]
    );
    assert!(reasons["normal"] > 14_000, "{reasons:?}");
    let roles = scalar(&pool, "SELECT count(DISTINCT role) FROM session_durations").await;
    assert_eq!(roles, 3);
    let (p10, p50, p99): (i64, i64, i64) = sqlx::query_as(
        "SELECT percentile_disc(0.1) WITHIN GROUP (ORDER BY duration_ms),
                percentile_disc(0.5) WITHIN GROUP (ORDER BY duration_ms),
                percentile_disc(0.99) WITHIN GROUP (ORDER BY duration_ms)
         FROM session_durations",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(p10 < 60_000 && (60_000..900_000).contains(&p50) && p99 > 3_600_000);
    let by_hour = |hour: i32| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM room_logouts
                 WHERE extract(hour FROM logout_time AT TIME ZONE 'UTC') = $1",
            )
            .bind(hour)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    assert!(by_hour(20).await > 2 * by_hour(8).await);
    let incident = report.incident.expect("the incident is in a 7-day window");
    let (incident_share, usual_share): (f64, f64) = sqlx::query_as(
        "SELECT avg((reason = 2)::int::float8)
                    FILTER (WHERE logout_time >= $1 AND logout_time < $1 + interval '1 hour'),
                avg((reason = 2)::int::float8)
                    FILTER (WHERE logout_time < $1 OR logout_time >= $1 + interval '1 hour')
         FROM room_logouts",
    )
    .bind(incident)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        incident_share > 0.4 && usual_share < 0.15,
        "{incident_share} {usual_share}"
    );
}

/// Per UTC day and app: sessions, total and maximum exact; percentiles within 1% of the exact
/// nearest-rank percentile; logouts per reason exact, their median within 1%.
async fn assert_duration_rollups_match_raw_rows(pool: &PgPool) {
    type Day = (NaiveDate, i64, i64, bool, f64, f64, f64, f64, i64, i64, i64);
    let days: Vec<Day> = sqlx::query_as(
        "WITH raw AS (
             SELECT (logout_at AT TIME ZONE 'UTC')::date AS day, appid, count(*) AS sessions,
                    sum(duration_ms) AS total_ms, max(duration_ms) AS max_ms,
                    percentile_disc(0.5) WITHIN GROUP (ORDER BY duration_ms) AS p50,
                    percentile_disc(0.9) WITHIN GROUP (ORDER BY duration_ms) AS p90,
                    percentile_disc(0.99) WITHIN GROUP (ORDER BY duration_ms) AS p99
             FROM session_durations GROUP BY 1, 2
         ), rollup AS (
             SELECT day, appid, sum(total_ms) AS total_ms FROM logout_rollup_all GROUP BY 1, 2
         )
         SELECT r.day, r.appid, r.sessions,
                (r.total_ms = u.total_ms AND abs(v.total_minutes - r.total_ms / 60000.0) < 1e-6),
                v.max_s * 1000, v.p50_s * 1000, v.p90_s * 1000, v.p99_s * 1000,
                r.p50, r.p90, r.p99
         FROM raw AS r
         JOIN session_duration_daily AS v USING (day, appid)
         JOIN rollup AS u USING (day, appid)
         WHERE v.sessions = r.sessions AND round(v.max_s * 1000) = r.max_ms
         ORDER BY 1, 2",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let raw_days = scalar(
        pool,
        "SELECT count(DISTINCT ((logout_at AT TIME ZONE 'UTC')::date, appid)) FROM session_durations",
    )
    .await;
    let view_days = scalar(pool, "SELECT count(*) FROM session_duration_daily").await;
    assert_eq!(raw_days, view_days, "one row per day and app with logouts");
    assert_eq!(
        days.len() as i64,
        raw_days,
        "every day and app has the same session count and maximum as the raw rows"
    );
    let within_1pct =
        |got: f64, exact: i64| (got - exact as f64).abs() <= 0.01 * (exact as f64).abs() + 1e-6;
    for (day, appid, _, totals_equal, _, p50, p90, p99, e50, e90, e99) in &days {
        assert!(totals_equal, "{day} app {appid}: total duration differs");
        for (got, exact, q) in [(p50, e50, "p50"), (p90, e90, "p90"), (p99, e99, "p99")] {
            assert!(
                within_1pct(*got, *exact),
                "{day} app {appid}: {q} {got} ms, exactly {exact} ms"
            );
        }
    }

    type ReasonDay = (NaiveDate, i64, String, Option<i64>, Option<f64>, i64);
    let reasons: Vec<ReasonDay> = sqlx::query_as(
        "WITH raw AS (
             SELECT (logout_at AT TIME ZONE 'UTC')::date AS day, appid, reason, count(*) AS logouts,
                    percentile_disc(0.5) WITHIN GROUP (ORDER BY duration_ms) AS median
             FROM session_durations GROUP BY 1, 2, 3
         )
         SELECT r.day, r.appid, r.reason, v.logouts - r.logouts, v.median_duration_s * 1000, r.median
         FROM raw AS r LEFT JOIN logout_reasons_daily AS v USING (day, appid, reason)",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(
        reasons.len() as i64,
        scalar(pool, "SELECT count(*) FROM logout_reasons_daily").await
    );
    for (day, appid, reason, difference, median, exact) in reasons {
        assert_eq!(difference, Some(0), "{day} app {appid} {reason}: logouts");
        assert!(
            median.is_some_and(|median| within_1pct(median, exact)),
            "{day} app {appid} {reason}: median {median:?} ms, exactly {exact} ms"
        );
    }
}

/// Peak concurrency per day, per app and per room, recomputed from the raw session intervals
/// with 0003's definition: a session is online in every UTC minute from its login minute to its
/// logout minute, both included (sessions that end before they start are left out); the peak
/// of a day is the most sessions online in any of its minutes; a day is listed from the first
/// to the last day a session of the app (room) starts or ends on.
async fn assert_peaks_match_raw_intervals(pool: &PgPool) {
    let recompute = |keys: &str, view: &str| {
        format!(
            "WITH deltas AS (
                 SELECT {keys}, minute, sum(delta) AS delta FROM (
                     SELECT {keys}, date_trunc('minute', login_time, 'UTC') AS minute, 1 AS delta
                     FROM room_logouts WHERE logout_time >= login_time
                     UNION ALL
                     SELECT {keys}, date_trunc('minute', logout_time, 'UTC') + interval '1 minute', -1
                     FROM room_logouts WHERE logout_time >= login_time
                 ) AS d GROUP BY {keys}, minute
             ), online AS (
                 -- online from this minute until the next one with a delta
                 SELECT {keys}, minute, (minute AT TIME ZONE 'UTC')::date AS day,
                        sum(delta) OVER (PARTITION BY {keys} ORDER BY minute) AS users
                 FROM deltas
             ), days AS (
                 SELECT {keys}, generate_series(min(day)::timestamp, max(day)::timestamp, interval '1 day')::date AS day
                 FROM online GROUP BY {keys}
             ), peaks AS (
                 SELECT d.*, greatest(
                     -- online at midnight, unless a delta falls on that very minute
                     CASE WHEN NOT EXISTS (
                         SELECT 1 FROM online AS o
                         WHERE ({keys_o}) = ({keys_d}) AND o.minute = d.day::timestamp AT TIME ZONE 'UTC')
                     THEN coalesce((SELECT o.users FROM online AS o
                                    WHERE ({keys_o}) = ({keys_d}) AND o.day < d.day
                                    ORDER BY o.minute DESC LIMIT 1), 0)
                     END,
                     (SELECT max(o.users) FROM online AS o WHERE ({keys_o}) = ({keys_d}) AND o.day = d.day)
                 ) AS peak
                 FROM days AS d
             )
             SELECT count(*) FILTER (WHERE v.peak_users IS DISTINCT FROM p.peak),
                    count(*) FILTER (WHERE v.peak_users IS NOT DISTINCT FROM p.peak)
             FROM peaks AS p FULL JOIN {view} AS v USING ({keys}, day)",
            keys_o = keys
                .split(", ")
                .map(|k| format!("o.{k}"))
                .collect::<Vec<_>>()
                .join(", "),
            keys_d = keys
                .split(", ")
                .map(|k| format!("d.{k}"))
                .collect::<Vec<_>>()
                .join(", "),
        )
    };
    for (keys, view) in [
        ("appid", "peak_concurrency_daily"),
        ("appid, room_id", "room_peak_concurrency_daily"),
    ] {
        let (wrong, right): (i64, i64) = sqlx::query_as(&recompute(keys, view))
            .fetch_one(pool)
            .await
            .unwrap();
        assert!(right > 0, "{view} is empty");
        assert_eq!(
            wrong, 0,
            "{view}: {wrong} days differ from the raw intervals, {right} agree"
        );
    }
}

#[tokio::test]
async fn rollups_equal_a_recomputation_from_the_raw_rows() {
    let (_, pool, _) = seeded(20_000).await;

    assert_duration_rollups_match_raw_rows(&pool).await;
    assert_peaks_match_raw_intervals(&pool).await;
}

#[tokio::test]
async fn a_second_seed_adds_to_the_first_and_the_rollups_stay_exact() {
    let (url, pool, first) = seeded(8_000).await;

    let second = seed(&url, &options(6_000, 7)).await.expect("seeding again");

    assert_eq!(second.first_id, first.last_id + 1);
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM room_logouts").await,
        14_000
    );
    assert_eq!(
        scalar(
            &pool,
            "SELECT sum(sessions)::bigint FROM session_duration_daily"
        )
        .await,
        14_000
    );
    assert_duration_rollups_match_raw_rows(&pool).await;
    assert_peaks_match_raw_intervals(&pool).await;
}

#[tokio::test]
async fn bench_queries_run_on_seeded_data() {
    let (url, _pool, _) = seeded(20_000).await;
    let mut conn = PgConnection::connect(&url).await.unwrap();

    let params = pick_params(&mut conn).await.unwrap();
    assert_eq!(params.appid, 1, "the busiest app");
    for query in standard_queries(&params) {
        let timing = time_query(&mut conn, &query.sql, 1)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", query.name, query.sql));
        assert!(timing.rows > 0, "{} returned no rows", query.name);
        assert!(timing.min <= timing.median);
    }
    let files = common::documented_sql_files();
    assert!(!files.is_empty());
    for file in files {
        let sql = std::fs::read_to_string(&file).unwrap();
        sqlx::raw_sql(&sql)
            .fetch_all(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    }
}
