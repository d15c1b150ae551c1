//! Every shape ZEGOCLOUD has published (spec, "Published variants"), over real HTTP with real
//! signatures: the room_logout without login_time paired with its login in either order, the
//! login's terminal type, URL-encoded and gzipped bodies, other products' envelopes, and the
//! in-app chat room_create.

use crate::common;

use std::io::Write;

use common::{TestApp, SECRET};
use reqwest::StatusCode;
use serde_json::{json, Value};
use zegolog::signature::sign;

mod encodings;
mod pairing;
mod products;

const MINUTE_MS: i64 = 60_000;

/// The room_logout of the 2022-2023 docs: no login_time, no user_update_seq; user_role,
/// logout_time, reason and timestamp JSON numbers; session_id "0".
fn old_docs_logout(room: &str, user: &str, logout_ms: i64, reason: i64) -> Value {
    json!({"event":"room_logout","appid":"1","timestamp":1499676978,"nonce":"350176",
           "signature":"signature","room_id":room,"room_seq":"6085791336856668982",
           "user_account":user,"user_nickname":user,"session_id":"0",
           "logout_time":logout_ms,"reason":reason,"user_role":1})
}

/// The room_login of the 2023 docs (numbers, session_id "0", no role), or with the current
/// docs' callback_data and term_type when `term_type` is given.
fn login(room: &str, user: &str, login_ms: i64, term_type: Option<&str>) -> Value {
    let mut login = json!({"event":"room_login","appid":"1","timestamp":1499676978,
        "nonce":"350176","signature":"signature","room_id":room,"room_name":"room#123",
        "room_seq":"6085791336856668982","user_account":user,"user_nickname":user,
        "session_id":"0","login_time":login_ms});
    if let Some(term_type) = term_type {
        for (k, v) in [
            ("login_time", json!(login_ms.to_string())),
            ("user_role", json!("2")),
            ("auth_level", json!("1")),
            ("relogin", json!("0")),
            ("user_update_seq", json!("12")),
            ("callback_data", json!("{\"from\":\"lobby\"}")),
            ("term_type", json!(term_type)),
        ] {
            login[k] = v;
        }
    }
    login
}

/// A fresh timestamp, nonce and signature (`common::signed`), the timestamp kept a JSON number
/// when the sample has it so.
fn resign(callback: Value) -> Value {
    let was_number = callback["timestamp"].is_number();
    let mut callback = common::signed(callback);
    if was_number {
        let secs: i64 = callback["timestamp"].as_str().unwrap().parse().unwrap();
        callback["timestamp"] = json!(secs);
    }
    callback
}

async fn post_ok(app: &TestApp, callback: &Value) {
    let (status, body) = app.post_json(&resign(callback.clone())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn compact(app: &TestApp) {
    zegolog::store::Store::from_pool(app.pool.clone())
        .compact_rollups()
        .await
        .unwrap();
}

/// (login_at ms, duration_ms, login_source) of the one session of this user.
async fn session_of(app: &TestApp, user: &str) -> (Option<i64>, Option<i64>, Option<String>) {
    sqlx::query_as(
        "SELECT (extract(EPOCH FROM login_at) * 1000)::bigint, duration_ms, login_source
         FROM session_durations WHERE user_account = $1",
    )
    .bind(user)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

/// The concurrency rollups (compacted and pending) equal the deltas recomputed from the raw rows.
async fn assert_concurrency_equals_raw_rows(app: &TestApp) {
    let mismatches: Vec<(String,)> = sqlx::query_as(
        r#"
        WITH raw AS (
            SELECT appid, room_id, minute, sum(delta) AS delta FROM (
                SELECT appid, room_id, date_trunc('minute', login_at, 'UTC') AS minute, 1 AS delta
                FROM session_durations WHERE logout_at >= login_at
                UNION ALL
                SELECT appid, room_id, date_trunc('minute', logout_at, 'UTC') + interval '1 minute', -1
                FROM session_durations WHERE logout_at >= login_at
            ) AS d GROUP BY 1, 2, 3
        ), rolled AS (
            SELECT appid, room_id, minute, sum(delta) AS delta FROM (
                SELECT appid, room_id, minute, delta FROM room_concurrency_minute
                UNION ALL
                SELECT c.appid, c.room_id, c.minute, c.delta FROM pending_contributions AS p, unnest(p.deltas) AS c
            ) AS r GROUP BY 1, 2, 3
        )
        SELECT format('%s vs %s', to_jsonb(raw), to_jsonb(rolled))
        FROM raw FULL JOIN rolled USING (appid, room_id, minute)
        WHERE coalesce(raw.delta, 0) <> coalesce(rolled.delta, 0)
        "#,
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

/// What the other views say of app 1's sessions: user_daily's sessions and total time (ms),
/// room_lifecycle's user time (ms), session_duration_daily_in's sessions with a duration (around
/// today, UTC, app 1) and room_lifecycle's peak.
async fn durations_elsewhere(app: &TestApp) -> (i64, Option<i64>, Option<i64>, i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT sum(sessions)::bigint FROM user_daily WHERE appid = 1),
                (SELECT (sum(total_minutes) * 60000)::bigint FROM user_daily WHERE appid = 1),
                (SELECT nullif((sum(user_minutes) * 60000)::bigint, 0) FROM room_lifecycle WHERE appid = 1),
                (SELECT coalesce(sum(sessions_with_duration), 0)::bigint
                 FROM session_duration_daily_in('UTC', (now() AT TIME ZONE 'UTC')::date - 1,
                                                (now() AT TIME ZONE 'UTC')::date + 1, 1)),
                (SELECT coalesce(max(peak_users), 0)::bigint FROM room_lifecycle WHERE appid = 1)",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

async fn data_quality(app: &TestApp) -> (i64, i64, i64) {
    sqlx::query_as(
        "SELECT sum(logouts)::bigint, sum(without_login_time)::bigint, sum(unpaired)::bigint
         FROM data_quality_daily",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap()
}
