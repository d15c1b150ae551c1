//! One percentile definition (issue 19): `zegolog_nearest_rank` on small known inputs, and every
//! view, function, `sql/` file and the dashboard's histogram reporting exactly what it gives.

use crate::common;

use chrono::{DateTime, NaiveDate, Utc};
use common::{signed, vendor_sample, TestApp};
use serde_json::json;
use zegolog::views::days::{histogram, Range};

/// One scalar (`NULL` as `None`) from `sql` on `pool`.
async fn scalar(pool: &sqlx::PgPool, sql: &str) -> Option<i64> {
    sqlx::query_scalar::<_, Option<i64>>(sql)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[tokio::test]
async fn nearest_rank_on_small_known_inputs() {
    let pool = common::migrated_pool().await;
    for (sql, expected) in [
        // 1, 2, 3, 4: the median is the 2nd (2 of 4 values <= 2), the 90th percentile the 4th.
        ("zegolog_nearest_rank(0.5, ARRAY[1, 2, 3, 4])", Some(2)),
        ("zegolog_nearest_rank(0.9, ARRAY[1, 2, 3, 4])", Some(4)),
        ("zegolog_nearest_rank(0.25, ARRAY[1, 2, 3, 4])", Some(1)),
        ("zegolog_nearest_rank(0.26, ARRAY[1, 2, 3, 4])", Some(2)),
        ("zegolog_nearest_rank(0, ARRAY[1, 2, 3, 4])", Some(1)),
        ("zegolog_nearest_rank(1, ARRAY[1, 2, 3, 4])", Some(4)),
        // Order of the input does not matter; duplicates count each time.
        ("zegolog_nearest_rank(0.5, ARRAY[4, 1, 3, 2])", Some(2)),
        ("zegolog_nearest_rank(0.5, ARRAY[7, 7, 7, 1])", Some(7)),
        // A value never interpolated: the median of 1 and 100 is 1 (percentile_cont: 50.5).
        ("zegolog_nearest_rank(0.5, ARRAY[100, 1])", Some(1)),
        // Counts: 10 once, 20 once, 30 eight times.
        (
            "zegolog_nearest_rank(0.1, ARRAY[10, 20, 30], ARRAY[1, 1, 8])",
            Some(10),
        ),
        (
            "zegolog_nearest_rank(0.2, ARRAY[10, 20, 30], ARRAY[1, 1, 8])",
            Some(20),
        ),
        (
            "zegolog_nearest_rank(0.21, ARRAY[10, 20, 30], ARRAY[1, 1, 8])",
            Some(30),
        ),
        // Negative values (a sender's clock) order as numbers.
        ("zegolog_nearest_rank(0.5, ARRAY[-5, 3, -1])", Some(-1)),
        // NULL values and counts <= 0 are left out; nothing left: NULL.
        ("zegolog_nearest_rank(0.5, ARRAY[NULL, 5, 1])", Some(1)),
        ("zegolog_nearest_rank(0, ARRAY[1, 2], ARRAY[0, 3])", Some(2)),
        (
            "zegolog_nearest_rank(0.5, ARRAY[1, 2], ARRAY[-1, 1])",
            Some(2),
        ),
        ("zegolog_nearest_rank(0.5, ARRAY[]::bigint[])", None),
        ("zegolog_nearest_rank(0.5, ARRAY[NULL]::bigint[])", None),
    ] {
        assert_eq!(
            scalar(&pool, &format!("SELECT {sql}::bigint")).await,
            expected,
            "{sql}"
        );
    }
    for fraction in ["-0.1", "1.5", "NULL"] {
        let error = sqlx::query(&format!(
            "SELECT zegolog_nearest_rank({fraction}, ARRAY[1, 2])"
        ))
        .fetch_one(&pool)
        .await
        .unwrap_err();
        assert!(
            error.to_string().contains("is not between 0 and 1"),
            "{fraction}: {error}"
        );
    }

    // On exact values it is percentile_disc, for every percentile of 997 values in any order
    // (997 is prime: no fraction k/100 of it lies on a float's rounding edge).
    let disagreements = scalar(
        &pool,
        "WITH v AS (SELECT (i * 7919 % 10007 - 3000)::bigint AS x FROM generate_series(1, 997) AS i),
              f AS (SELECT k / 100.0 AS q FROM generate_series(0, 100) AS k)
         SELECT count(*) FROM f
         WHERE (SELECT zegolog_nearest_rank(f.q, array_agg(x)) FROM v)
               <> (SELECT percentile_disc(f.q::float8) WITHIN GROUP (ORDER BY x) FROM v)",
    )
    .await;
    assert_eq!(disagreements, Some(0));

    // Over the rollups' 1% duration buckets, with their counts, it is the bucket of the exact
    // nearest rank: what every view reports.
    let disagreements = scalar(
        &pool,
        "WITH v AS (SELECT (i * 7919 % 10007 * (i % 7) * 97 - 250000)::bigint AS ms
                    FROM generate_series(1, 997) AS i),
              b AS (SELECT zegolog_duration_bucket(ms) AS bucket, count(*) AS n FROM v GROUP BY 1),
              f AS (SELECT k / 100.0 AS q FROM generate_series(0, 100) AS k)
         SELECT count(*) FROM f
         WHERE (SELECT zegolog_nearest_rank(f.q, array_agg(bucket), array_agg(n)) FROM b)
               <> (SELECT zegolog_duration_bucket(zegolog_nearest_rank(f.q, array_agg(ms))) FROM v)",
    )
    .await;
    assert_eq!(disagreements, Some(0));
}

fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339).unwrap().into()
}

const DAY_1: &str = "2026-06-10";
const DAY_2: &str = "2026-06-11";

/// Logouts `first..first + n` on 2026-06-10 and 11 (UTC noon and after), of apps 1 and 2, rooms,
/// reasons and durations of all kinds: negative, zero, seconds to hours, and some without a
/// login (no duration).
async fn post_logouts(app: &TestApp, first: i64, n: i64) {
    for i in first..first + n {
        let mut callback = vendor_sample();
        let day = if i % 2 == 0 { DAY_1 } else { DAY_2 };
        let logout = at(&format!("{day}T12:00:00Z")).timestamp_millis() + i * 61_000;
        let duration = match i % 11 {
            0 => -3_000,
            1 => 0,
            _ => (i * 7_919 % 997) * 1_237 + i,
        };
        callback["appid"] = json!(if i % 5 == 0 { "2" } else { "1" });
        callback["room_id"] = json!(format!("room-{}", i % 4));
        callback["user_account"] = json!(format!("user-{i}"));
        callback["session_id"] = json!(i.to_string());
        callback["reason"] = json!((i % 3).to_string());
        callback["logout_time"] = json!(logout.to_string());
        if i % 13 == 5 {
            callback.as_object_mut().unwrap().remove("login_time");
        } else {
            callback["login_time"] = json!((logout - duration).to_string());
        }
        let (status, body) = app.post_json(&signed(callback)).await;
        assert!(status.is_success(), "{body}");
    }
}

/// Rows of a check that differ from the definition (empty: all agree), with what differed.
async fn differences(pool: &sqlx::PgPool, what: &str, sql: &str) -> Vec<String> {
    sqlx::query_scalar::<_, String>(sql)
        .fetch_all(pool)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"))
        .into_iter()
        .map(|row| format!("{what}: {row}"))
        .collect()
}

/// The exact nearest rank (ms) of the raw durations, per `group`, and its bucket's value (s):
/// the definition every check below compares with.
fn expected(group: &str) -> String {
    format!(
        "SELECT {group},
                e.p50 / 1000.0 AS p50_exact_s, e.p90 / 1000.0 AS p90_exact_s, e.p99 / 1000.0 AS p99_exact_s,
                zegolog_bucket_ms(zegolog_duration_bucket(e.p50)) / 1000 AS p50_s,
                zegolog_bucket_ms(zegolog_duration_bucket(e.p90)) / 1000 AS p90_s,
                zegolog_bucket_ms(zegolog_duration_bucket(e.p99)) / 1000 AS p99_s
         FROM (SELECT {group},
                      zegolog_nearest_rank(0.5, array_agg(duration_ms)) AS p50,
                      zegolog_nearest_rank(0.9, array_agg(duration_ms)) AS p90,
                      zegolog_nearest_rank(0.99, array_agg(duration_ms)) AS p99
               FROM (SELECT zegolog_local_day(logout_at) AS day, zegolog_local_day(logout_at, 'Asia/Shanghai') AS shanghai_day, *
                     FROM session_durations) AS s
               GROUP BY {group}) AS e"
    )
}

/// Every view, function and `sql/` file that reports a percentile, and the dashboard's
/// histogram, against the definition, exactly.
async fn assert_every_percentile_is_the_definition(pool: &sqlx::PgPool) {
    // Each check: a name, the definition's rows, the rows checked, how they join, and the
    // columns that must be equal (the definition's own names, the checked side's aliased).
    let bucketed = "(v.p50_s, v.p90_s, v.p99_s) IS DISTINCT FROM (e.p50_s, e.p90_s, e.p99_s)";
    let median = "v.median_duration_s IS DISTINCT FROM e.p50_s";
    let all = "(v.p50_s, v.p90_s, v.p99_s, v.p50_exact_s, v.p90_exact_s, v.p99_exact_s)
               IS DISTINCT FROM (e.p50_s, e.p90_s, e.p99_s, e.p50_exact_s, e.p90_exact_s, e.p99_exact_s)";
    let two = "(v.p50_s, v.p90_s, v.p50_exact_s, v.p90_exact_s)
               IS DISTINCT FROM (e.p50_s, e.p90_s, e.p50_exact_s, e.p90_exact_s)";
    // The sql/ files, pinned to the end of the second day (their windows hold both days).
    let as_of = at(&format!("{DAY_2}T23:59:00Z"));
    let checks = [
        (
            "session_duration_daily",
            expected("day, appid"),
            "session_duration_daily".to_owned(),
            "USING (day, appid)",
            bucketed,
        ),
        (
            "session_duration_daily_in",
            expected("shanghai_day, appid"),
            format!("session_duration_daily_in('Asia/Shanghai', '{DAY_1}', '{DAY_2}')"),
            "ON v.day = e.shanghai_day AND v.appid = e.appid",
            bucketed,
        ),
        (
            "logout_reasons_daily",
            expected("day, appid, reason"),
            "logout_reasons_daily".to_owned(),
            "USING (day, appid, reason)",
            median,
        ),
        (
            "logout_reasons_daily_in",
            expected("day, appid, reason"),
            format!("logout_reasons_daily_in('UTC', '{DAY_1}', '{DAY_2}')"),
            "USING (day, appid, reason)",
            median,
        ),
        (
            "platform_daily",
            expected("day, appid, platform"),
            "platform_daily".to_owned(),
            "USING (day, appid, platform)",
            all,
        ),
        (
            "sql/01",
            expected("appid, room_id"),
            format!(
                "({})",
                common::sql_file_as_of("01_durations_by_room_last_7_days.sql", as_of)
            ),
            "USING (appid, room_id)",
            two,
        ),
        (
            "sql/14",
            expected("day, appid, platform"),
            format!(
                "({})",
                common::sql_file_as_of(
                    "14_durations_and_disconnects_by_platform_last_7_days.sql",
                    as_of
                )
            ),
            "USING (day, appid, platform)",
            two,
        ),
    ];
    // The definition itself is percentile_disc on the raw rows.
    let mut wrong = differences(
        pool,
        "definition",
        "SELECT format('%s %s', day, appid) FROM (
             SELECT zegolog_local_day(logout_at) AS day, appid,
                    zegolog_nearest_rank(0.5, array_agg(duration_ms)) AS mine,
                    percentile_disc(0.5) WITHIN GROUP (ORDER BY duration_ms) AS disc
             FROM session_durations GROUP BY 1, 2) AS t
         WHERE mine IS DISTINCT FROM disc",
    )
    .await;
    for (what, definition, checked, join, differ) in checks {
        let sql = format!(
            "SELECT format('%s vs %s', to_jsonb(e), to_jsonb(v))
             FROM ({definition}) AS e FULL JOIN {checked} AS v {join}
             WHERE {differ}"
        );
        wrong.extend(differences(pool, what, &sql).await);
    }
    assert!(wrong.is_empty(), "{wrong:#?}");

    // The dashboard's histogram (and its API) over both days of app 1.
    let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    let range = Range {
        appid: 1,
        from: day(DAY_1),
        to: day(DAY_2),
    };
    let h = histogram(pool, range).await.unwrap();
    let (p50, p90): (Option<f64>, Option<f64>) = sqlx::query_as(&format!(
        "SELECT p50_s, p90_s FROM ({}) AS e WHERE appid = 1",
        expected("appid")
    ))
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!((h.p50_s, h.p90_s), (p50, p90));
    assert!(p50.is_some() && p90 > p50, "{p50:?} {p90:?}");
}

#[tokio::test]
async fn every_view_function_and_sql_file_reports_the_one_definition() {
    let app = TestApp::spawn().await;
    // Before compaction: every day's percentiles from the pending rollups.
    post_logouts(&app, 0, 60).await;
    let pending = scalar(&app.pool, "SELECT count(*) FROM pending_contributions").await;
    assert!(pending > Some(0));
    assert_every_percentile_is_the_definition(&app.pool).await;

    // Compacted: from the per-day summaries the triggers keep.
    sqlx::query("SELECT zegolog_compact_rollups()")
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(
        scalar(&app.pool, "SELECT count(*) FROM pending_contributions").await,
        Some(0)
    );
    assert_every_percentile_is_the_definition(&app.pool).await;

    // Both days pending again over their compacted rollups: the two merged.
    post_logouts(&app, 60, 10).await;
    assert_every_percentile_is_the_definition(&app.pool).await;
}
