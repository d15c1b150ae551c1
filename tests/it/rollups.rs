//! The write path keeps the rollups behind the daily views exact (each logout counted once,
//! whatever the retries), partitions are created and retained by month, and logins and room
//! lifecycle events are stored once.

use crate::common;

use common::{signed, vendor_sample, TestApp, DAY_MS};
use reqwest::StatusCode;
use serde_json::json;
use zegolog::store::Store;

fn logout(
    session: i64,
    room: &str,
    login_ms: i64,
    logout_ms: i64,
    reason: i64,
) -> serde_json::Value {
    let mut callback = vendor_sample();
    callback["session_id"] = json!(session.to_string());
    callback["room_id"] = json!(room);
    callback["user_account"] = json!(format!("user-{}", session % 7));
    callback["login_time"] = json!(login_ms.to_string());
    callback["logout_time"] = json!(logout_ms.to_string());
    callback["reason"] = json!(reason.to_string());
    callback
}

async fn post_ok(app: &TestApp, callback: &serde_json::Value) {
    let (status, body) = app.post_json(&signed(callback.clone())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn rollups_equal_a_recomputation_from_raw_rows_despite_retries() {
    let app = TestApp::spawn().await;
    let now = chrono::Utc::now().timestamp_millis();
    let mut sent = Vec::new();
    for i in 0..240i64 {
        // Three days, two rooms, durations from 0 ms to hours, a few negative (bad clocks).
        let logout_ms = now - (i % 3) * DAY_MS - i * 97_000;
        let duration = match i % 9 {
            0 => 0,
            1 => -1500,
            k => (k * k * k) * 3_331 + i,
        };
        let callback = logout(
            i,
            ["room-a", "room-b"][(i % 2) as usize],
            logout_ms - duration,
            logout_ms,
            i % 6,
        );
        post_ok(&app, &callback).await;
        sent.push(callback);
    }
    for callback in sent.iter().step_by(5) {
        post_ok(&app, callback).await; // the sender's retries
    }
    sqlx::query("SELECT zegolog_compact_rollups()")
        .execute(&app.pool)
        .await
        .unwrap();
    // Later logouts stay in the pending rows until the next compaction: the views include them.
    post_ok(&app, &logout(10_000, "room-a", now - 60_000, now, 0)).await;

    common::assert_rollups_equal_raw_rows(&app.pool).await;

    sqlx::query("SELECT zegolog_compact_rollups()")
        .execute(&app.pool)
        .await
        .unwrap();
    let peak_mismatches: Vec<(String, i64, i64)> = sqlx::query_as(
        r#"
        WITH sessions AS (
            SELECT appid, date_trunc('minute', login_at, 'UTC') AS first_minute,
                   date_trunc('minute', logout_at, 'UTC') AS last_minute
            FROM session_durations WHERE logout_at >= login_at
        ), minutes AS (
            SELECT appid, m AS minute, count(*) AS online
            FROM sessions, generate_series(first_minute, last_minute, interval '1 minute') AS m
            GROUP BY 1, 2
        ), raw AS (
            SELECT appid, (minute AT TIME ZONE 'UTC')::date AS day, max(online) AS peak
            FROM minutes GROUP BY 1, 2
        )
        SELECT raw.day::text, raw.peak, p.peak_users
        FROM raw JOIN peak_concurrency_daily AS p USING (appid, day)
        WHERE p.peak_users <> raw.peak
        "#,
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert!(peak_mismatches.is_empty(), "{peak_mismatches:?}");
    let days: i64 =
        sqlx::query_scalar("SELECT count(*) FROM peak_concurrency_daily WHERE peak_users > 0")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(days >= 3);
}

#[tokio::test]
async fn old_months_live_in_their_partitions_and_retention_drops_them_whole() {
    let app = TestApp::spawn().await;
    let store = Store::from_pool(app.pool.clone());
    let now = chrono::Utc::now().timestamp_millis();
    let old = now - 400 * DAY_MS;
    post_ok(&app, &logout(1, "room-a", old - 60_000, old, 0)).await;
    post_ok(&app, &logout(2, "room-a", now - 60_000, now, 0)).await;
    let in_default: i64 = sqlx::query_scalar("SELECT count(*) FROM room_logouts_default")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(
        in_default, 1,
        "a month without its partition waits in the default partition"
    );

    let month: String = sqlx::query_scalar(
        "SELECT zegolog_ensure_partition((to_timestamp($1 / 1000.0) AT TIME ZONE 'UTC')::date)",
    )
    .bind(old)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let (in_month, in_default): (i64, i64) = sqlx::query_as(&format!(
        "SELECT (SELECT count(*) FROM {month}), (SELECT count(*) FROM room_logouts_default)"
    ))
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        (in_month, in_default),
        (1, 0),
        "creating the partition moved its rows"
    );

    let report = zegolog::upkeep::retain(
        &store,
        zegolog::upkeep::Retention {
            days: 365,
            raw_days: None,
        },
    )
    .await
    .unwrap();

    assert!(report.partitions.contains(&month), "{report}");
    let left: Vec<i64> = sqlx::query_scalar("SELECT session_id::bigint FROM room_logouts")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(left, [2]);
    let old_rollups: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM session_duration_daily WHERE day < current_date - 365",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(old_rollups, 0);
}

#[tokio::test]
async fn logins_and_room_lifecycle_events_are_stored_once() {
    let app = TestApp::spawn().await;
    let login = json!({"event": "room_login", "appid": 1, "room_id": "r1", "room_name": "Room 1",
        "room_seq": "18446744073709551615", "user_account": "u1", "user_nickname": "n", "session_id": "0",
        "login_time": 1499676978027u64, "user_role": "2", "auth_level": "1", "relogin": "1",
        "user_update_seq": "12"});
    let create = json!({"event": "room_create", "appid": "1", "room_id": "r1",
        "room_session_id": 858012925204410400u64, "room_create_time": "1499676978000", "id_name": "u1"});
    let close = json!({"event": "room_close", "appid": "1", "room_id": "r1",
        "room_session_id": "858012925204410400", "close_reason": "1", "room_close_time": "1499676999000"});

    for callback in [&login, &login, &create, &close, &create, &close] {
        post_ok(&app, callback).await;
    }

    let login_row: (String, String, i32, String) = sqlx::query_as(
        "SELECT room_name, room_seq::text, relogin, (extract(epoch FROM login_time) * 1000)::bigint::text FROM room_logins",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        login_row,
        (
            "Room 1".into(),
            "18446744073709551615".into(),
            1,
            "1499676978027".into()
        )
    );
    let events: Vec<(String, String, Option<String>, Option<i32>)> = sqlx::query_as(
        "SELECT event, room_session_id::text, creator, close_reason FROM room_lifecycle_events ORDER BY event DESC",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        events,
        [
            (
                "room_create".into(),
                "858012925204410400".into(),
                Some("u1".into()),
                None
            ),
            (
                "room_close".into(),
                "858012925204410400".into(),
                None,
                Some(1)
            ),
        ]
    );
    assert_eq!(app.count("callback_events").await, 3);
}

/// Compaction never runs PostgreSQL's JIT compiler (0018): its planner cannot see how few days
/// a refresh covers, so its cost estimates passed JIT's thresholds and each run compiled
/// itself again (50 to 700 ms, growing with the history). Here JIT is forced on for every
/// statement of the session, and auto_explain logs every plan, nested ones too: a plain query
/// shows JIT (so the check can see it), no statement inside compaction does.
#[tokio::test]
async fn compaction_never_compiles_itself_with_jit() {
    let app = TestApp::spawn().await;
    let now = chrono::Utc::now().timestamp_millis();
    for i in 0..40i64 {
        let logout_ms = now - (i % 3) * DAY_MS - i * 61_000;
        let room = ["room-a", "room-b", "room-c"][(i % 3) as usize];
        post_ok(
            &app,
            &logout(i, room, logout_ms - 3_600_000, logout_ms, i % 5),
        )
        .await;
    }
    let mut conn = app.pool.acquire().await.unwrap();
    let available: bool = sqlx::query_scalar("SELECT pg_jit_available()")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert!(
        available,
        "this PostgreSQL cannot JIT (no llvmjit): the test cannot see what it guards against"
    );
    for setting in [
        "LOAD 'auto_explain'",
        "SET jit = on",
        "SET jit_above_cost = 0",
        "SET jit_inline_above_cost = 0",
        "SET jit_optimize_above_cost = 0",
        "SET auto_explain.log_min_duration = 0",
        "SET auto_explain.log_nested_statements = on",
        "SET auto_explain.log_level = log",
    ] {
        sqlx::query(setting).execute(&mut *conn).await.unwrap();
    }

    let plain = logged_plans(&mut conn, "SELECT count(*) FROM room_logouts").await;
    assert!(
        plain.iter().any(|plan| plan.contains("JIT:")),
        "a plain query with JIT forced on shows no JIT in its plan: {plain:?}"
    );

    let call = "SELECT zegolog_compact_rollups()";
    let plans = logged_plans(&mut conn, call).await;
    let nested: Vec<&String> = plans
        .iter()
        .filter(|plan| !plan.contains(&format!("Query Text: {call}\n")))
        .collect();
    assert!(
        nested.len() >= 10,
        "auto_explain logged {} of compaction's statements: {plans:?}",
        nested.len()
    );
    let compiled: Vec<&&String> = nested.iter().filter(|p| p.contains("JIT:")).collect();
    assert!(
        compiled.is_empty(),
        "compaction compiled with JIT: {compiled:?}"
    );
    common::assert_rollups_equal_raw_rows(&app.pool).await;
}

/// Runs `statement` and returns the plans auto_explain wrote for it (one per statement run,
/// nested ones included) into the test server's log, which only this session writes plans to
/// (without those of the queries that find the log's end).
async fn logged_plans(conn: &mut sqlx::PgConnection, statement: &str) -> Vec<String> {
    let size = "SELECT size FROM pg_stat_file('server.log')";
    let before: i64 = sqlx::query_scalar(size)
        .fetch_one(&mut *conn)
        .await
        .expect("reading the test server's log (server.log: the private test PostgreSQL's)");
    sqlx::query(statement).execute(&mut *conn).await.unwrap();
    let after: i64 = sqlx::query_scalar(size)
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    let log: String = sqlx::query_scalar("SELECT pg_read_file('server.log', $1, $2)")
        .bind(before)
        .bind(after - before)
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    log.split("LOG:  duration: ")
        .skip(1)
        .filter(|plan| !plan.contains("pg_stat_file('server.log')"))
        .map(str::to_owned)
        .collect()
}
