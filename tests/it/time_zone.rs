//! The reporting time zone: days of every daily view cut in the deployment's zone, DST days
//! included; an instance started with another zone refuses to run; changing the zone rebuilds
//! the rollups; the ad-hoc `*_in(zone, from, to)` functions; report and dashboard in the zone.

use crate::common;

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use common::{signed, test_verifier, vendor_sample, TestApp};
use reqwest::StatusCode;
use serde_json::json;
use zegolog::dashboard::DashboardToken;
use zegolog::http::AppState;
use zegolog::store::Store;

const TOKEN: &str = "time-zone-test-token-0123456789";
const NEW_YORK: &str = "America/New_York";
const SHANGHAI: &str = "Asia/Shanghai";

fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339).unwrap().into()
}

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// A 10-minute session of its own room, ending at `logout`.
fn logout(session: i64, logout: DateTime<Utc>, reason: i64) -> serde_json::Value {
    let logout_ms = logout.timestamp_millis();
    let mut callback = vendor_sample();
    callback["session_id"] = json!(session.to_string());
    callback["room_id"] = json!(format!("room-{}", session % 3));
    callback["user_account"] = json!(format!("user-{session}"));
    callback["login_time"] = json!((logout_ms - 600_000 - session * 1_000).to_string());
    callback["logout_time"] = json!(logout_ms.to_string());
    callback["reason"] = json!(reason.to_string());
    callback
}

async fn post_ok(app: &TestApp, callback: &serde_json::Value) {
    let (status, body) = app.post_json(&signed(callback.clone())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// A logout every hour from `from` (included) to `to` (excluded); returns how many.
async fn hourly_logouts(app: &TestApp, first_session: i64, from: &str, to: &str) -> i64 {
    let (mut t, end) = (at(from), at(to));
    let mut n = 0;
    while t < end {
        post_ok(app, &logout(first_session + n, t, n % 4)).await;
        t += chrono::Duration::hours(1);
        n += 1;
    }
    n
}

async fn compact(pool: &sqlx::PgPool) {
    sqlx::query("SELECT zegolog_compact_rollups()")
        .execute(pool)
        .await
        .unwrap();
}

async fn sessions_on(pool: &sqlx::PgPool, d: &str) -> Option<i64> {
    sqlx::query_scalar("SELECT sessions FROM session_duration_daily WHERE appid = 1 AND day = $1")
        .bind(day(d))
        .fetch_optional(pool)
        .await
        .unwrap()
}

/// A database in `zone` (set as an operator does, through the change), served in-process with
/// the dashboard on.
async fn app_in(zone: &str) -> (TestApp, String) {
    let (url, pool) = common::migrated_database_url().await;
    zegolog::time_zone::change(&url, zone, false).await.unwrap();
    let state = AppState::new(test_verifier(600), Store::from_pool(pool.clone()));
    (
        TestApp::serve_with_dashboard(state, DashboardToken::parse(TOKEN).unwrap(), pool).await,
        url,
    )
}

/// New York's two DST days of 2026, with a logout every hour from the day before to the day after.
async fn new_york_dst_traffic() -> (TestApp, String) {
    let (app, url) = app_in(NEW_YORK).await;
    hourly_logouts(&app, 0, "2026-03-07T12:00:00Z", "2026-03-09T12:00:00Z").await;
    hourly_logouts(&app, 1_000, "2026-10-31T12:00:00Z", "2026-11-02T12:00:00Z").await;
    (app, url)
}

#[tokio::test]
async fn dst_days_are_one_day_each_with_every_logout_in_it() {
    let (app, _url) = new_york_dst_traffic().await;
    for compacted in [false, true] {
        if compacted {
            compact(&app.pool).await;
        }
        // 2026-03-08 in New York is 05:00Z to 04:00Z the next day: 23 hours, 23 hourly logouts.
        assert_eq!(sessions_on(&app.pool, "2026-03-08").await, Some(23));
        // 2026-11-01 is 04:00Z to 05:00Z the next day: 25 hours.
        assert_eq!(sessions_on(&app.pool, "2026-11-01").await, Some(25));
        common::assert_rollups_equal_raw_rows_in(&app.pool, NEW_YORK).await;
        common::assert_rollups_equal_raw_rows(&app.pool).await;
    }
    let reasons: i64 = sqlx::query_scalar(
        "SELECT sum(logouts)::bigint FROM logout_reasons_daily WHERE appid = 1 AND day = '2026-03-08'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(reasons, 23);
    // The daily peaks are New York days too: the first session of 2026-03-08 (logout 05:00Z,
    // login ten minutes before) counts on 2026-03-08, not on the 7th.
    let peak_days: Vec<NaiveDate> = sqlx::query_scalar(
        "SELECT day FROM peak_concurrency_daily WHERE appid = 1 AND peak_users > 0
           AND day BETWEEN '2026-03-06' AND '2026-03-10' ORDER BY day",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        peak_days,
        vec![day("2026-03-07"), day("2026-03-08"), day("2026-03-09")]
    );
}

#[tokio::test]
async fn ad_hoc_functions_equal_the_views_in_the_deployment_zone_and_refuse_long_windows() {
    let (app, _url) = new_york_dst_traffic().await;
    compact(&app.pool).await;
    // A few pending (uncompacted) rows too, one of them without a login yet (the shape of the
    // 2022-2023 docs): in sessions, in no duration statistic.
    post_ok(&app, &logout(5_000, at("2026-03-08T06:30:00Z"), 2)).await;
    let mut no_login = logout(5_001, at("2026-03-08T07:30:00Z"), 1);
    no_login.as_object_mut().unwrap().remove("login_time");
    post_ok(&app, &no_login).await;

    let durations: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT * FROM session_duration_daily WHERE day BETWEEN '2026-03-01' AND '2026-03-31') AS v
         FULL JOIN session_duration_daily_in('America/New_York', '2026-03-01', '2026-03-31') AS f USING (day, appid)
         WHERE v.sessions IS DISTINCT FROM f.sessions
            OR abs(v.total_minutes - f.total_minutes) > 1e-9 OR abs(v.avg_s - f.avg_s) > 1e-9
            OR v.p50_s IS DISTINCT FROM f.p50_s OR v.p90_s IS DISTINCT FROM f.p90_s
            OR v.p99_s IS DISTINCT FROM f.p99_s OR v.max_s IS DISTINCT FROM f.max_s
            OR v.sessions_with_duration IS DISTINCT FROM f.sessions_with_duration",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(durations, 0);
    let reasons: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT * FROM logout_reasons_daily WHERE day BETWEEN '2026-03-01' AND '2026-03-31') AS v
         FULL JOIN logout_reasons_daily_in('America/New_York', '2026-03-01', '2026-03-31') AS f USING (day, appid, reason)
         WHERE v.logouts IS DISTINCT FROM f.logouts OR abs(v.share - f.share) > 1e-12
            OR v.median_duration_s IS DISTINCT FROM f.median_duration_s",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(reasons, 0);
    compact(&app.pool).await;
    for (view, function, key) in [
        (
            "peak_concurrency_daily",
            "peak_concurrency_daily_in",
            "day, appid",
        ),
        (
            "room_peak_concurrency_daily",
            "room_peak_concurrency_daily_in",
            "day, appid, room_id",
        ),
    ] {
        let mismatches: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM (SELECT * FROM {view} WHERE peak_users > 0 AND day BETWEEN '2026-10-01' AND '2026-11-30') AS v
             FULL JOIN (SELECT * FROM {function}('America/New_York', '2026-10-01', '2026-11-30') WHERE peak_users > 0) AS f
             USING ({key})
             WHERE v.peak_users IS DISTINCT FROM f.peak_users"
        ))
        .fetch_one(&app.pool)
        .await
        .unwrap();
        assert_eq!(mismatches, 0, "{function} differs from {view}");
    }

    // One app: the same rows as every app's, filtered.
    for function in [
        "session_duration_daily_in",
        "logout_reasons_daily_in",
        "peak_concurrency_daily_in",
        "room_peak_concurrency_daily_in",
    ] {
        let (differ, all, one): (i64, i64, i64) = sqlx::query_as(&format!(
            "SELECT (SELECT count(*) FROM (SELECT * FROM {function}('Asia/Shanghai', '2026-03-01', '2026-03-31') WHERE appid = 1
                                          EXCEPT ALL
                                          SELECT * FROM {function}('Asia/Shanghai', '2026-03-01', '2026-03-31', 1)) AS d),
                    (SELECT count(*) FROM {function}('Asia/Shanghai', '2026-03-01', '2026-03-31') WHERE appid = 1),
                    (SELECT count(*) FROM {function}('Asia/Shanghai', '2026-03-01', '2026-03-31', 1))"
        ))
        .fetch_one(&app.pool)
        .await
        .unwrap();
        assert_eq!((differ, all), (0, one), "{function}");
        assert!(one > 0, "{function}");
    }
    let none: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM session_duration_daily_in('Asia/Shanghai', '2026-03-01', '2026-03-31', 2)",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(none, 0);

    // Another zone: the same logouts, other days (Shanghai is 13 hours ahead of New York in March).
    let shanghai: i64 = sqlx::query_scalar(
        "SELECT sum(sessions)::bigint FROM session_duration_daily_in('Asia/Shanghai', '2026-03-01', '2026-03-31')",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(shanghai, 50);

    for (call, needle) in [
        (
            "SELECT * FROM session_duration_daily_in('UTC', '2026-01-01', '2026-06-30')",
            "at most 93 days",
        ),
        (
            "SELECT * FROM logout_reasons_daily_in('UTC', '2026-01-01', '2026-04-04')",
            "at most 93 days",
        ),
        (
            "SELECT * FROM peak_concurrency_daily_in('Mars/Olympus_Mons', '2026-01-01', '2026-01-02')",
            "unknown time zone",
        ),
    ] {
        let error = sqlx::query(call).fetch_all(&app.pool).await.unwrap_err();
        assert!(error.to_string().contains(needle), "{call}: {error}");
    }
    // 93 days is allowed.
    sqlx::query("SELECT * FROM logout_reasons_daily_in('UTC', '2026-01-01', '2026-04-03')")
        .fetch_all(&app.pool)
        .await
        .unwrap();
}

/// The views and functions that read raw rows cut their days, hours and buckets in the zone too.
#[tokio::test]
async fn raw_row_views_and_the_incident_functions_cut_days_and_buckets_in_the_zone() {
    let (app, _url) = new_york_dst_traffic().await;
    let scalar = |sql: &'static str, d: NaiveDate| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, Option<i64>>(sql)
                .bind(d)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    // A logout every hour: 23 on New York's 2026-03-08, 25 on its 2026-11-01, in every view.
    for (d, hours) in [("2026-03-08", 23), ("2026-11-01", 25)] {
        for sql in [
            "SELECT sum(sessions)::bigint FROM user_daily WHERE appid = 1 AND day = $1",
            "SELECT sum(sessions)::bigint FROM user_daily_between(1, $1::date - 3, $1::date + 3) WHERE day = $1",
            "SELECT sum(sessions)::bigint FROM platform_daily WHERE appid = 1 AND day = $1",
            "SELECT sum(logouts)::bigint FROM logout_reasons_between(1, $1::date - 3, $1::date + 3, '1 day')
             WHERE bucket_start = $1::timestamp AT TIME ZONE 'America/New_York'
               AND bucket_end = ($1 + 1)::timestamp AT TIME ZONE 'America/New_York'",
        ] {
            assert_eq!(scalar(sql, day(d)).await, Some(hours), "{d}: {sql}");
        }
    }
    // Days of receipt are New York days.
    let mismatches: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT zegolog_local_day(received_at, 'America/New_York') AS day, appid,
                                      count(*) AS n FROM room_logouts GROUP BY 1, 2) AS r
         FULL JOIN data_quality_daily AS v USING (day, appid)
         WHERE r.n IS DISTINCT FROM v.logouts",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(mismatches, 0);
    // The usual shares of a window starting at 00:30 on New York's 2026-03-09 are those of the
    // seven New York days before: 17 logouts on the 7th (from 07:00 EST), 23 on the 8th. (UTC
    // days would give 12 + 24.)
    let usual: Option<i64> = sqlx::query_scalar(
        "SELECT sum(logouts)::bigint FROM reason_usual_shares(1, '2026-03-09T04:30:00Z')",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(usual, Some(40));

    // A zone 5:30 ahead of UTC: its hours start at :30 UTC, in the hourly view, the windowed
    // function and the incident buckets.
    let (india, _url) = app_in("Asia/Kolkata").await;
    post_ok(&india, &logout(1, at("2026-03-08T10:10:00Z"), 2)).await;
    for sql in [
        "SELECT bucket_start FROM logout_reasons_hourly WHERE appid = 1",
        "SELECT bucket_start FROM logout_reasons_between(1, '2026-03-08T00:00:00Z', '2026-03-09T00:00:00Z')",
        "SELECT bucket_start FROM incident_reasons(1, '2026-03-08T09:00:00Z', '2026-03-08T11:00:00Z', '1 hour')",
    ] {
        let start: DateTime<Utc> = sqlx::query_scalar(sql)
            .fetch_one(&india.pool)
            .await
            .unwrap();
        assert_eq!(start, at("2026-03-08T09:30:00Z"), "{sql}");
    }
    let error = sqlx::query(
        "SELECT * FROM logout_reasons_between(1, now() - interval '1 hour', now(), interval '0')",
    )
    .fetch_all(&india.pool)
    .await
    .unwrap_err();
    assert!(error.to_string().contains("positive interval"), "{error}");
}

fn run_with_timeout(mut command: std::process::Command, timeout: Duration) -> Output {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let deadline = Instant::now() + timeout;
    let waiter = std::thread::spawn(move || child.wait_with_output().unwrap());
    while !waiter.is_finished() {
        if Instant::now() > deadline {
            let _ = std::process::Command::new("kill")
                .arg(pid.to_string())
                .status();
            panic!("the process did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    waiter.join().unwrap()
}

#[tokio::test]
async fn serve_and_migrate_refuse_another_time_zone_than_the_databases() {
    let (url, pool) = common::migrated_database_url().await;
    zegolog::time_zone::change(&url, SHANGHAI, false)
        .await
        .unwrap();
    let data_dir = common::temp_data_dir("time-zone-refusal");

    let mut migrate = common::zegolog();
    migrate
        .args(["migrate", "--time-zone", "UTC"])
        .env("DATABASE_URL", &url);
    let out = run_with_timeout(migrate, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("zegolog time-zone set UTC") && stderr.contains(SHANGHAI),
        "{stderr}"
    );

    // serve brings the database up in the background: the mismatch found there stops it.
    let mut serve = common::zegolog();
    serve
        .args(["serve", "--listen"])
        .arg(format!("127.0.0.1:{}", common::free_port()))
        .arg("--data-dir")
        .arg(&data_dir)
        .env("DATABASE_URL", &url)
        .env("ZEGOLOG_SECRET", common::SECRET)
        .env("ZEGOLOG_TIME_ZONE", NEW_YORK);
    let out = run_with_timeout(serve, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("zegolog time-zone set America/New_York"),
        "{stderr}"
    );

    // With the database's zone it runs.
    let served = common::serve(
        &data_dir,
        &[
            ("DATABASE_URL", url.as_str()),
            ("ZEGOLOG_SECRET", common::SECRET),
            ("ZEGOLOG_TIME_ZONE", SHANGHAI),
        ],
    );
    let (status, _) = served.terminate();
    assert!(status.success());
    let zone: String = sqlx::query_scalar("SELECT zegolog_time_zone()")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(zone, SHANGHAI);
}

#[tokio::test]
async fn changing_the_zone_rebuilds_the_rollups_from_the_raw_rows() {
    let (app, url) = app_in("UTC").await;
    // 20:00Z to 23:00Z on 2026-03-08: one UTC day; in Shanghai (UTC+8) 04:00 to 07:00 on the 9th.
    hourly_logouts(&app, 0, "2026-03-08T20:00:00Z", "2026-03-09T00:00:00Z").await;
    compact(&app.pool).await;
    post_ok(&app, &logout(100, at("2026-03-08T23:30:00Z"), 1)).await; // pending
    assert_eq!(sessions_on(&app.pool, "2026-03-08").await, Some(5));
    common::assert_rollups_equal_raw_rows(&app.pool).await;

    let mut set = common::zegolog();
    set.args(["time-zone", "set", SHANGHAI])
        .env("DATABASE_URL", &url);
    let out = run_with_timeout(set, Duration::from_secs(120));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("UTC -> Asia/Shanghai"));

    let zone: String = sqlx::query_scalar("SELECT zegolog_time_zone()")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(zone, SHANGHAI);
    // The old day is gone from every daily view, the new one holds every logout.
    assert_eq!(sessions_on(&app.pool, "2026-03-08").await, None);
    assert_eq!(sessions_on(&app.pool, "2026-03-09").await, Some(5));
    for view in [
        "logout_reasons_daily",
        "peak_concurrency_daily",
        "room_peak_concurrency_daily",
    ] {
        let old: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {view} WHERE day = '2026-03-08'"
        ))
        .fetch_one(&app.pool)
        .await
        .unwrap();
        assert_eq!(old, 0, "{view} still has the UTC day");
    }
    let peak: Option<i64> = sqlx::query_scalar(
        "SELECT peak_users FROM peak_concurrency_daily WHERE appid = 1 AND day = '2026-03-09'",
    )
    .fetch_optional(&app.pool)
    .await
    .unwrap();
    assert!(peak.is_some_and(|p| p >= 1), "{peak:?}");
    common::assert_rollups_equal_raw_rows_in(&app.pool, SHANGHAI).await;

    // Writes after the change cut their days in the new zone.
    post_ok(&app, &logout(200, at("2026-03-09T17:00:00Z"), 0)).await; // Shanghai: the 10th, 01:00
    assert_eq!(sessions_on(&app.pool, "2026-03-10").await, Some(1));
    compact(&app.pool).await;
    common::assert_rollups_equal_raw_rows(&app.pool).await;
}

#[tokio::test]
async fn report_and_dashboard_use_the_zone() {
    let (app, url) = new_york_dst_traffic().await;
    compact(&app.pool).await;

    let mut report = common::zegolog();
    report
        .args([
            "report",
            "--format",
            "json",
            "--from",
            "2026-11-01",
            "--to",
            "2026-11-01",
            "--time-zone",
            NEW_YORK,
        ])
        .env("DATABASE_URL", &url);
    let out = run_with_timeout(report, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["time_zone"], NEW_YORK);
    assert_eq!(json["daily"][0]["day"], "2026-11-01");
    assert_eq!(json["daily"][0]["sessions"], 25);
    let offenders: i64 = json["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["logouts"].as_i64().unwrap())
        .sum();
    assert!(offenders <= 25, "{json}");

    let mut other = common::zegolog();
    other
        .args(["report", "--time-zone", "UTC"])
        .env("DATABASE_URL", &url);
    let out = run_with_timeout(other, Duration::from_secs(60));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("zegolog time-zone set UTC"));

    let body: serde_json::Value = app
        .client
        .get(app.url("/dashboard/api/durations?appid=1&from=2026-03-07&to=2026-03-09"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["time_zone"], NEW_YORK);
    let days: Vec<(String, i64)> = body["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["day"].as_str().unwrap().to_owned(),
                d["sessions"].as_i64().unwrap(),
            )
        })
        .collect();
    assert!(days.contains(&("2026-03-08".to_owned(), 23)), "{days:?}");
    // "Today" is today in New York, as read just before or just after the request (which may
    // straddle New York's midnight).
    let today_in_new_york = || async {
        sqlx::query_scalar::<_, NaiveDate>("SELECT (now() AT TIME ZONE 'America/New_York')::date")
            .fetch_one(&app.pool)
            .await
            .unwrap()
            .to_string()
    };
    let before = today_in_new_york().await;
    let body: serde_json::Value = app
        .client
        .get(app.url("/dashboard/api/durations?appid=1"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let after = today_in_new_york().await;
    assert!(
        body["to"] == before || body["to"] == after,
        "{} is neither {before} nor {after}",
        body["to"]
    );
}

/// A write that waited for a change of zone cuts its days in the new zone: the write statement
/// reads the zone from a fresh snapshot once it gets past the change's lock on
/// zegolog_settings, not from the snapshot it started with.
#[tokio::test]
async fn a_write_that_waited_for_a_change_of_zone_cuts_its_day_in_the_new_zone() {
    let app = TestApp::spawn().await;
    // 03:00 UTC on 2026-03-10 is 23:00 on 2026-03-09 in New York.
    let callback = signed(logout(1, at("2026-03-10T03:00:00Z"), 0));
    let mut change = app.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE zegolog_settings IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *change)
        .await
        .unwrap();
    sqlx::query("UPDATE zegolog_settings SET time_zone = $1, chosen = true")
        .bind(NEW_YORK)
        .execute(&mut *change)
        .await
        .unwrap();
    let held = Duration::from_millis(700);
    let started = Instant::now();
    let ((status, body), ()) = tokio::join!(app.post_json(&callback), async {
        tokio::time::sleep(held).await;
        change.commit().await.unwrap();
    });
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        started.elapsed() >= held,
        "the write did not wait for the change of zone ({:?})",
        started.elapsed()
    );
    let days: Vec<NaiveDate> = sqlx::query_scalar(
        "SELECT DISTINCT d.day FROM pending_contributions AS p, unnest(p.durations) AS d",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(days, [day("2026-03-09")], "the day in New York, not in UTC");
}

/// A `sql/` file with a window of days, run as of a pinned moment on `conn`: its first day and
/// sessions.
async fn first_day_and_sessions(
    conn: &mut sqlx::PgConnection,
    file: &str,
    sessions: &str,
    as_of: DateTime<Utc>,
) -> (Option<NaiveDate>, Option<i64>) {
    let query = format!(
        "SELECT min(day), sum({sessions})::bigint FROM ({}) AS f",
        common::sql_file_as_of(file, as_of)
    );
    sqlx::query_as(&query)
        .fetch_one(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// Issue 19: the `sql/` files' windows of days start at midnight of their first day in the
/// reporting zone, also when a DST change lies between that day and today. Day arithmetic on a
/// timestamptz (`date_trunc('day', now(), zone) - interval 'N days'`, computed in the session's
/// TimeZone, here UTC) started them an hour early after New York's 2026-03-08 (a day before the
/// window) and an hour late after 2026-11-01 (half an hour of the first day left out).
#[tokio::test]
async fn sql_day_windows_start_at_local_midnight_across_dst() {
    let (app, _url) = app_in(NEW_YORK).await;
    // The files with a day window: default lookback in days, the column that counts sessions.
    let files = [
        ("04_short_sessions_share_by_app_day.sql", 30, "sessions"),
        ("11_user_days_today_and_yesterday.sql", 1, "sessions"),
        ("13_data_quality_last_7_days.sql", 7, "logouts"),
        (
            "14_durations_and_disconnects_by_platform_last_7_days.sql",
            7,
            "sessions",
        ),
    ];
    // Today in New York, after each change, at 12:00 there: the day after it (the 1-day window
    // of sql/11 then reaches back over it) and a day later (the others do too).
    let cases = [
        (at("2026-03-09T16:00:00Z"), day("2026-03-09")),
        (at("2026-03-10T16:00:00Z"), day("2026-03-10")),
        (at("2026-11-02T17:00:00Z"), day("2026-11-02")),
        (at("2026-11-03T17:00:00Z"), day("2026-11-03")),
    ];
    // Midnight in New York: EDT (UTC-4) from 2026-03-09 to 2026-11-01, EST (UTC-5) otherwise
    // (the changes are at 02:00, so the midnights of 03-08 and 11-02 are standard time).
    let midnight = |d: NaiveDate| {
        let edt = (day("2026-03-09")..=day("2026-11-01")).contains(&d);
        let utc = d.and_hms_opt(if edt { 4 } else { 5 }, 0, 0).unwrap();
        DateTime::<Utc>::from_naive_utc_and_offset(utc, Utc)
    };
    // Logouts half an hour on each side of every window's first midnight, received then.
    let mut logouts: Vec<DateTime<Utc>> = Vec::new();
    for &(_, today) in &cases {
        for &(_, lookback, _) in &files {
            let start = midnight(today - chrono::Days::new(lookback));
            for t in [
                start - chrono::Duration::minutes(30),
                start + chrono::Duration::minutes(30),
            ] {
                if !logouts.contains(&t) {
                    logouts.push(t);
                }
            }
        }
    }
    for (i, &t) in logouts.iter().enumerate() {
        post_ok(&app, &logout(i as i64, t, 0)).await;
    }
    sqlx::query("UPDATE room_logouts SET received_at = logout_time")
        .execute(&app.pool)
        .await
        .unwrap();

    let mut conn = app.pool.acquire().await.unwrap();
    sqlx::query("SET TimeZone = 'UTC'")
        .execute(&mut *conn)
        .await
        .unwrap();
    let mut wrong = Vec::new();
    for &(as_of, today) in &cases {
        for &(file, lookback, sessions) in &files {
            let first = today - chrono::Days::new(lookback);
            let start = midnight(first);
            let expected = logouts
                .iter()
                .filter(|&&t| t >= start && t <= as_of)
                .count() as i64;
            let got = first_day_and_sessions(&mut conn, file, sessions, as_of).await;
            if got != (Some(first), Some(expected)) {
                wrong.push(format!(
                    "{file} as of {as_of}: first day and sessions {got:?}, not {first} and {expected} from {start}"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}
