//! The analytics views and functions of migration 0004 on known data: concurrency over time and
//! its daily peaks against a recount from the raw session intervals, open sessions, room
//! lifecycles, user days, disconnect spikes and data quality. Callbacks go through real HTTP
//! with real signatures where the point is what the sender does (order, retries, missing
//! events); rows are inserted with SQL where the point is the arithmetic.

use crate::common;

use common::{signed, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;

mod concurrency;
mod days;

pub(crate) use concurrency::peak_mismatches;

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

/// 2026-03-10T00:00:00Z, a fixed instant for the tests that insert known rows.
const T0_MS: i64 = 1_773_100_800_000;

fn login(room: &str, seq: u64, user: &str, session: u64, login_ms: i64) -> Value {
    json!({"event": "room_login", "appid": "1", "room_id": room, "room_name": format!("name of {room}"),
           "room_seq": seq.to_string(), "user_account": user, "user_nickname": format!("nick {user}"),
           "session_id": session.to_string(), "login_time": login_ms.to_string(), "user_role": "2",
           "auth_level": "1", "relogin": "0", "user_update_seq": "1"})
}

fn logout(
    room: &str,
    seq: u64,
    user: &str,
    session: u64,
    login_ms: i64,
    logout_ms: i64,
    reason: i32,
) -> Value {
    json!({"event": "room_logout", "appid": "1", "room_id": room, "room_seq": seq.to_string(),
           "user_account": user, "user_nickname": format!("nick {user}"), "session_id": session.to_string(),
           "login_time": login_ms.to_string(), "logout_time": logout_ms.to_string(),
           "reason": reason.to_string(), "user_role": "2", "user_update_seq": "2"})
}

fn room_create(room: &str, seq: u64, at_ms: i64, creator: &str) -> Value {
    json!({"event": "room_create", "appid": "1", "room_id": room, "room_session_id": seq.to_string(),
           "room_create_time": at_ms.to_string(), "id_name": creator})
}

fn room_close(room: &str, seq: u64, at_ms: i64, reason: i32) -> Value {
    json!({"event": "room_close", "appid": "1", "room_id": room, "room_session_id": seq.to_string(),
           "room_close_time": at_ms.to_string(), "close_reason": reason.to_string()})
}

pub(crate) async fn post_ok(app: &TestApp, callback: &Value) {
    let (status, body) = app.post_json(&signed(callback.clone())).await;
    assert_eq!(status, StatusCode::OK, "{callback}: {body}");
}

pub(crate) async fn compact(pool: &PgPool) {
    sqlx::query("SELECT zegolog_compact_rollups()")
        .execute(pool)
        .await
        .unwrap();
}

/// Inserts sessions (appid, room_id, user_account, login, logout, reason) with SQL, as a bulk
/// load does, and appends their rollup contributions to the pending tables.
async fn insert_sessions(pool: &PgPool, rows_sql: &str) {
    let (from, to): (Option<i64>, Option<i64>) = sqlx::query_as(&format!(
        "WITH new AS (
             INSERT INTO room_logouts (appid, room_id, room_seq, user_account, session_id,
                                       login_time, logout_time, reason)
             SELECT appid, room_id, room_seq, user_account, session_id, login_time, logout_time, reason
             FROM ({rows_sql}) AS r
             RETURNING id)
         SELECT min(id), max(id) FROM new"
    ))
    .fetch_one(pool)
    .await
    .unwrap();
    sqlx::query("SELECT zegolog_add_to_rollups($1, $2)")
        .bind(from.unwrap())
        .bind(to.unwrap())
        .execute(pool)
        .await
        .unwrap();
}

/// 400 sessions over three days from T0 in two apps and four rooms: short and long ones, some
/// across midnight, some longer than a day, a few with the logout before the login.
fn generated_sessions(first: i32, last: i32) -> String {
    format!(
        "SELECT 1 + (i % 2)::bigint AS appid,
                'room-' || (i % 4) AS room_id,
                (i % 4)::numeric AS room_seq,
                'user-' || (i % 37) AS user_account,
                i::numeric AS session_id,
                login_time,
                login_time + CASE WHEN i % 41 = 0 THEN interval '-5 minutes'
                                  WHEN i % 53 = 0 THEN interval '30 hours'
                                  ELSE ((hashint4(i) & 1023) * interval '20 seconds') END AS logout_time,
                (i % 5) AS reason
         FROM (SELECT i, to_timestamp({T0_MS} / 1000.0)
                         + ((hashint4(i * 7) & 2147483647) % (3 * 86400)) * interval '1 second'
                         + (i % 1000) * interval '1 millisecond' AS login_time
               FROM generate_series({first}, {last}) AS i) AS s"
    )
}

/// Minutes of [from, to) where users_online (or room_users_online) differs from a recount of
/// the raw sessions: a session counts in every UTC minute from its login minute to its logout
/// minute, both included, unless it ends before it starts.
pub(crate) async fn online_mismatches(
    pool: &PgPool,
    appid: i64,
    room: Option<&str>,
    from_ms: i64,
    to_ms: i64,
) -> Vec<(String, Option<i64>, Option<i64>)> {
    let function = match room {
        None => "users_online($1, to_timestamp($3 / 1000.0), to_timestamp($4 / 1000.0))",
        Some(_) => {
            "room_users_online($1, $2, to_timestamp($3 / 1000.0), to_timestamp($4 / 1000.0))"
        }
    };
    sqlx::query_as(&format!(
        "WITH raw AS (
             SELECT g.minute, count(s.appid) AS online
             FROM generate_series(date_trunc('minute', to_timestamp($3 / 1000.0), 'UTC'),
                                  to_timestamp($4 / 1000.0) - interval '1 microsecond',
                                  interval '1 minute') AS g(minute)
             LEFT JOIN room_logouts AS s
               ON s.appid = $1 AND ($2::text IS NULL OR s.room_id = $2)
              AND s.logout_time >= s.login_time
              AND date_trunc('minute', s.login_time, 'UTC') <= g.minute
              AND g.minute <= date_trunc('minute', s.logout_time, 'UTC')
             GROUP BY g.minute)
         SELECT coalesce(raw.minute, f.minute)::text, raw.online, f.users_online
         FROM raw FULL JOIN {function} AS f ON f.minute = raw.minute
         WHERE raw.online IS DISTINCT FROM f.users_online
         ORDER BY 1 LIMIT 10"
    ))
    .bind(appid)
    .bind(room)
    .bind(from_ms)
    .bind(to_ms)
    .fetch_all(pool)
    .await
    .unwrap()
}
