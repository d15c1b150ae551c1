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

async fn post_ok(app: &TestApp, callback: &Value) {
    let (status, body) = app.post_json(&signed(callback.clone())).await;
    assert_eq!(status, StatusCode::OK, "{callback}: {body}");
}

async fn compact(pool: &PgPool) {
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
async fn online_mismatches(
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

#[tokio::test]
async fn users_online_equals_a_recount_of_session_intervals_compacted_or_not() {
    let app = TestApp::spawn().await;
    let pool = &app.pool;

    // Two compactions, then rows left pending: users_online must add all three.
    insert_sessions(pool, &generated_sessions(1, 150)).await;
    compact(pool).await;
    insert_sessions(pool, &generated_sessions(151, 300)).await;
    compact(pool).await;
    insert_sessions(pool, &generated_sessions(301, 400)).await;
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM concurrency_pending")
        .fetch_one(pool)
        .await
        .unwrap();
    assert!(pending > 0, "some deltas are left uncompacted");

    // Windows that start mid-day (the base comes from the day nets and that day's minutes),
    // at midnight, before any session and after the last one.
    let windows = [
        (
            T0_MS + 25 * HOUR_MS + 17 * MINUTE_MS + 3_000,
            T0_MS + 31 * HOUR_MS,
        ),
        (T0_MS + 2 * DAY_MS, T0_MS + 2 * DAY_MS + 6 * HOUR_MS),
        (T0_MS - 2 * HOUR_MS, T0_MS + 2 * HOUR_MS),
        (
            T0_MS + 3 * DAY_MS + 20 * HOUR_MS,
            T0_MS + 4 * DAY_MS + 12 * HOUR_MS,
        ),
    ];
    for (from, to) in windows {
        for appid in [1, 2] {
            let wrong = online_mismatches(pool, appid, None, from, to).await;
            assert!(wrong.is_empty(), "app {appid} [{from}, {to}): {wrong:?}");
            for room in ["room-0", "room-1", "room-3"] {
                let wrong = online_mismatches(pool, appid, Some(room), from, to).await;
                assert!(
                    wrong.is_empty(),
                    "app {appid} {room} [{from}, {to}): {wrong:?}"
                );
            }
        }
    }

    // One row per minute, the first holding `from`, none at or after `to`.
    let (rows, first, last): (i64, String, String) = sqlx::query_as(
        "SELECT count(*), min(minute AT TIME ZONE 'UTC')::text, max(minute AT TIME ZONE 'UTC')::text
         FROM users_online(1, '2026-03-11 01:17:03Z', '2026-03-11 03:00:00Z')",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(
        (rows, first.as_str(), last.as_str()),
        (103, "2026-03-11 01:17:00", "2026-03-11 02:59:00")
    );
    let some_online: i64 = sqlx::query_scalar(
        "SELECT max(users_online) FROM users_online(1, '2026-03-10Z', '2026-03-13Z')",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert!(some_online >= 3, "the data has overlapping sessions");
}

/// Days where a daily peak view differs from the recount: the most sessions online in any
/// minute of the day. Rows with peak 0 may be absent.
async fn peak_mismatches(pool: &PgPool) -> Vec<(String, String, i64, i64)> {
    sqlx::query_as(
        "WITH minutes AS (
             SELECT s.appid, s.room_id, m.minute
             FROM room_logouts AS s,
                  generate_series(date_trunc('minute', s.login_time, 'UTC'),
                                  date_trunc('minute', s.logout_time, 'UTC'),
                                  interval '1 minute') AS m(minute)
             WHERE s.logout_time >= s.login_time
         ), app_raw AS (
             SELECT appid, day, max(online) AS peak FROM (
                 SELECT appid, (minute AT TIME ZONE 'UTC')::date AS day, count(*) AS online
                 FROM minutes GROUP BY appid, minute) AS t
             GROUP BY appid, day
         ), room_raw AS (
             SELECT appid, room_id, day, max(online) AS peak FROM (
                 SELECT appid, room_id, (minute AT TIME ZONE 'UTC')::date AS day, count(*) AS online
                 FROM minutes GROUP BY appid, room_id, minute) AS t
             GROUP BY appid, room_id, day
         )
         SELECT format('app %s', coalesce(r.appid, v.appid)), coalesce(r.day, v.day)::text,
                coalesce(r.peak, 0), coalesce(v.peak_users, 0)
         FROM app_raw AS r FULL JOIN peak_concurrency_daily AS v USING (appid, day)
         WHERE coalesce(r.peak, 0) <> coalesce(v.peak_users, 0)
         UNION ALL
         SELECT format('app %s room %s', coalesce(r.appid, v.appid), coalesce(r.room_id, v.room_id)),
                coalesce(r.day, v.day)::text, coalesce(r.peak, 0), coalesce(v.peak_users, 0)
         FROM room_raw AS r FULL JOIN room_peak_concurrency_daily AS v USING (appid, room_id, day)
         WHERE coalesce(r.peak, 0) <> coalesce(v.peak_users, 0)
         ORDER BY 1, 2 LIMIT 10",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn daily_peaks_equal_a_recount_of_session_intervals() {
    let app = TestApp::spawn().await;
    let pool = &app.pool;
    insert_sessions(pool, &generated_sessions(1, 200)).await;
    compact(pool).await;
    insert_sessions(pool, &generated_sessions(201, 400)).await;
    compact(pool).await;

    let wrong = peak_mismatches(pool).await;
    assert!(wrong.is_empty(), "(what, day, recount, view): {wrong:?}");
    let days: i64 = sqlx::query_scalar("SELECT count(*) FROM peak_concurrency_daily")
        .fetch_one(pool)
        .await
        .unwrap();
    assert!(days >= 6, "two apps over three days and more");
}

#[tokio::test]
async fn app_peak_counts_a_session_of_an_earlier_compaction_across_untouched_days() {
    let app = TestApp::spawn().await;
    let pool = &app.pool;
    // Compaction 1: room A, from day 3 to day 5.
    insert_sessions(
        pool,
        "SELECT 9::bigint AS appid, 'A' AS room_id, 1::numeric AS room_seq, 'ua' AS user_account,
                1::numeric AS session_id, timestamptz '2026-03-03 10:00Z' AS login_time,
                timestamptz '2026-03-05 10:00Z' AS logout_time, 0 AS reason",
    )
    .await;
    compact(pool).await;
    // Compaction 2: room B on day 1 and room C on day 5: days 2 to 4 are touched by neither.
    insert_sessions(
        pool,
        "SELECT 9::bigint AS appid, room_id, 1::numeric AS room_seq, user_account,
                session_id::numeric, login_time::timestamptz, logout_time::timestamptz, 0 AS reason
         FROM (VALUES ('B', 'ub', 2, '2026-03-01 10:00Z', '2026-03-01 11:00Z'),
                      ('C', 'uc', 3, '2026-03-05 09:00Z', '2026-03-05 11:00Z'))
              AS v(room_id, user_account, session_id, login_time, logout_time)",
    )
    .await;
    compact(pool).await;

    let peaks: Vec<(String, i64)> = sqlx::query_as(
        "SELECT day::text, peak_users FROM peak_concurrency_daily WHERE appid = 9 ORDER BY day",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(
        peaks,
        [
            ("2026-03-01".to_owned(), 1),
            ("2026-03-03".to_owned(), 1),
            ("2026-03-04".to_owned(), 1),
            ("2026-03-05".to_owned(), 2),
        ]
    );
    assert!(peak_mismatches(pool).await.is_empty());
}

#[tokio::test]
async fn open_sessions_are_logins_without_a_logout_at_or_after_them() {
    let app = TestApp::spawn().await;
    let now = chrono::Utc::now().timestamp_millis();

    // a: logged in ten minutes ago, still there (the login is delivered twice).
    post_ok(&app, &login("r1", 11, "a", 1, now - 10 * MINUTE_MS)).await;
    post_ok(&app, &login("r1", 11, "a", 1, now - 10 * MINUTE_MS)).await;
    // b: the logout arrives before the login: closed all the same.
    post_ok(
        &app,
        &logout("r1", 11, "b", 2, now - 9 * MINUTE_MS, now - MINUTE_MS, 0),
    )
    .await;
    post_ok(&app, &login("r1", 11, "b", 2, now - 9 * MINUTE_MS)).await;
    // c: logged in two days ago, the logout never came: stale.
    post_ok(&app, &login("r2", 12, "c", 3, now - 2 * DAY_MS)).await;
    // d: in a room lifecycle that was closed since.
    post_ok(&app, &login("r3", 13, "d", 4, now - 30 * MINUTE_MS)).await;
    post_ok(&app, &room_close("r3", 13, now - 5 * MINUTE_MS, 2)).await;
    // e: session id 0 reused (vendor samples): the first stay ended, the second is open.
    post_ok(&app, &login("r1", 11, "e", 0, now - 50 * MINUTE_MS)).await;
    post_ok(
        &app,
        &logout(
            "r1",
            11,
            "e",
            0,
            now - 50 * MINUTE_MS,
            now - 40 * MINUTE_MS,
            2,
        ),
    )
    .await;
    post_ok(&app, &login("r1", 11, "e", 0, now - 20 * MINUTE_MS)).await;
    // f: a logout of another room does not close a login.
    post_ok(&app, &login("r1", 11, "f", 6, now - 20 * MINUTE_MS)).await;
    post_ok(
        &app,
        &logout("r9", 19, "f", 6, now - 20 * MINUTE_MS, now - MINUTE_MS, 0),
    )
    .await;

    let open: Vec<(String, String, i64, bool, bool, String, String)> = sqlx::query_as(
        "SELECT user_account, room_id, round(age_s / 60)::bigint, stale, room_closed, role,
                room_seq::text
         FROM open_sessions ORDER BY user_account",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let expect = |user: &str, room: &str, minutes: i64, stale: bool, closed: bool, seq: &str| {
        (
            user.to_owned(),
            room.to_owned(),
            minutes,
            stale,
            closed,
            "audience".to_owned(),
            seq.to_owned(),
        )
    };
    assert_eq!(
        open,
        [
            expect("a", "r1", 10, false, false, "11"),
            expect("c", "r2", 2 * 24 * 60, true, false, "12"),
            expect("d", "r3", 30, false, true, "13"),
            expect("e", "r1", 20, false, false, "11"),
            expect("f", "r1", 20, false, false, "11"),
        ]
    );
    let probably_online: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM open_sessions
         WHERE NOT stale AND NOT room_closed AND login_at >= now() - interval '24 hours'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(probably_online, 3);
}

#[tokio::test]
async fn room_lifecycle_has_times_close_reason_users_minutes_and_peak() {
    let app = TestApp::spawn().await;
    let t0 = T0_MS + 9 * HOUR_MS;
    let seq: u64 = 18_000_000_000_000_000_001; // above 2^63
    post_ok(&app, &room_create("class", seq, t0, "teacher")).await;
    // teacher 0-31 min, s1 10-20 min and 40-50 min, s2 with a clock gone backwards; logouts
    // arrive in any order, one twice.
    let sessions = [
        logout(
            "class",
            seq,
            "s1",
            2,
            t0 + 40 * MINUTE_MS,
            t0 + 50 * MINUTE_MS,
            2,
        ),
        logout("class", seq, "teacher", 1, t0, t0 + 31 * MINUTE_MS, 0),
        logout(
            "class",
            seq,
            "s1",
            3,
            t0 + 10 * MINUTE_MS,
            t0 + 20 * MINUTE_MS,
            0,
        ),
        logout(
            "class",
            seq,
            "s1",
            3,
            t0 + 10 * MINUTE_MS,
            t0 + 20 * MINUTE_MS,
            0,
        ),
        logout(
            "class",
            seq,
            "s2",
            4,
            t0 + 5 * MINUTE_MS,
            t0 + 4 * MINUTE_MS,
            1,
        ),
    ];
    for callback in &sessions {
        post_ok(&app, callback).await;
    }
    post_ok(&app, &room_close("class", seq, t0 + 60 * MINUTE_MS, 1)).await;
    // Another lifecycle of the same room id: sessions but no create / close received.
    post_ok(
        &app,
        &logout("class", 7, "s3", 9, t0 + DAY_MS, t0 + DAY_MS + 90_000, 0),
    )
    .await;
    // A lifecycle created, nobody came yet.
    post_ok(&app, &room_create("empty", 8, t0 + 2 * HOUR_MS, "host")).await;

    type Row = (
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<i32>,
        Option<String>,
        Option<i64>,
        i64,
        i64,
        f64,
        i64,
    );
    let query = "SELECT room_id, room_seq::text,
                        to_char(created_at AT TIME ZONE 'UTC', 'HH24:MI'), creator,
                        to_char(closed_at AT TIME ZONE 'UTC', 'HH24:MI'), close_reason_code,
                        close_reason, extract(EPOCH FROM lifetime)::bigint,
                        sessions, users, user_minutes, peak_users
                 FROM room_lifecycle ORDER BY room_id, room_seq::text";
    let rows: Vec<Row> = sqlx::query_as(query).fetch_all(&app.pool).await.unwrap();
    assert_eq!(
        rows,
        [
            (
                "class".into(),
                seq.to_string(),
                Some("09:00".into()),
                Some("teacher".into()),
                Some("10:00".into()),
                Some(1),
                Some("last_user_heartbeat_timeout".into()),
                Some(3600),
                4,
                3,
                51.0,
                2
            ),
            (
                "class".into(),
                "7".into(),
                None,
                None,
                None,
                None,
                None,
                None,
                1,
                1,
                1.5,
                1
            ),
            (
                "empty".into(),
                "8".into(),
                Some("11:00".into()),
                Some("host".into()),
                None,
                None,
                None,
                None,
                0,
                0,
                0.0,
                0
            ),
        ]
    );

    // The window function finds the lifecycles by any of their events and gives the same rows.
    let in_window = |from: i64, to: i64| {
        let pool = app.pool.clone();
        async move {
            let seqs: Vec<String> = sqlx::query_scalar(
                "SELECT r.room_seq::text FROM room_lifecycle_between(
                     1, to_timestamp($1 / 1000.0), to_timestamp($2 / 1000.0)) AS r
                 JOIN room_lifecycle AS v USING (appid, room_id, room_seq)
                 WHERE (r.*)::text = (v.*)::text
                 ORDER BY 1",
            )
            .bind(from)
            .bind(to)
            .fetch_all(&pool)
            .await
            .unwrap();
            seqs
        }
    };
    // Only the close falls in this window.
    assert_eq!(
        in_window(t0 + 55 * MINUTE_MS, t0 + 61 * MINUTE_MS).await,
        [seq.to_string()]
    );
    assert_eq!(
        in_window(t0 - HOUR_MS, t0 + 2 * DAY_MS).await,
        [seq.to_string(), "7".into(), "8".into()]
    );
    assert!(in_window(t0 + 3 * DAY_MS, t0 + 4 * DAY_MS).await.is_empty());
}

#[tokio::test]
async fn user_daily_counts_sessions_time_and_each_reason() {
    let app = TestApp::spawn().await;
    let pool = &app.pool;
    // u1 on day 1: seven sessions of 10 minutes in two rooms, one per reason (NULL and 9 are
    // unknown); u1 on day 2: one, from midnight; u2 on day 1: one.
    insert_sessions(
        pool,
        "SELECT 1::bigint AS appid, room_id, 5::numeric AS room_seq, user_account,
                n::numeric AS session_id,
                timestamptz '2026-03-10 08:00Z' + n * interval '1 hour' AS login_time,
                timestamptz '2026-03-10 08:10Z' + n * interval '1 hour' AS logout_time,
                reason
         FROM (VALUES (0, 'r1', 'u1', 0), (1, 'r1', 'u1', 1), (2, 'r2', 'u1', 2),
                      (3, 'r2', 'u1', 3), (4, 'r1', 'u1', 4), (5, 'r1', 'u1', NULL),
                      (6, 'r1', 'u1', 9), (16, 'r1', 'u1', 2), (7, 'r1', 'u2', 2))
              AS v(n, room_id, user_account, reason)",
    )
    .await;

    type Row = (String, String, i64, i64, f64, i64, i64, i64, i64, i64, i64);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT day::text, user_account, sessions, rooms, total_minutes, normal, heartbeat_timeout,
                connection_lost, kicked_out, token_expired, unknown
         FROM user_daily WHERE appid = 1 ORDER BY day, user_account",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(
        rows,
        [
            (
                "2026-03-10".into(),
                "u1".into(),
                7,
                2,
                70.0,
                1,
                1,
                1,
                1,
                1,
                2
            ),
            (
                "2026-03-10".into(),
                "u2".into(),
                1,
                1,
                10.0,
                0,
                0,
                1,
                0,
                0,
                0
            ),
            (
                "2026-03-11".into(),
                "u1".into(),
                1,
                1,
                10.0,
                0,
                0,
                1,
                0,
                0,
                0
            ),
        ]
    );
    let differing: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (
             (SELECT * FROM user_daily EXCEPT ALL
              SELECT * FROM user_daily_between(NULL, '2026-03-01Z', '2026-04-01Z'))
             UNION ALL
             (SELECT * FROM user_daily_between(NULL, '2026-03-01Z', '2026-04-01Z') EXCEPT ALL
              SELECT * FROM user_daily)) AS d",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(differing, 0);
    let u2: (Option<String>, String, String, String) = sqlx::query_as(
        "SELECT last_nickname, total_time::text, to_char(first_login_at AT TIME ZONE 'UTC', 'HH24:MI'),
                to_char(last_logout_at AT TIME ZONE 'UTC', 'HH24:MI')
         FROM user_daily WHERE appid = 1 AND user_account = 'u2'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(
        u2,
        (None, "00:10:00".into(), "15:00".into(), "15:10".into())
    );
}

#[tokio::test]
async fn a_connection_lost_spike_stands_out_in_logout_reasons() {
    let app = TestApp::spawn().await;
    let pool = &app.pool;
    // An hour of ordinary traffic (per minute: 8 normal, 1 heartbeat_timeout, 1
    // connection_lost), then at 10:42 a network incident: 40 connection_lost more.
    insert_sessions(
        pool,
        "SELECT 1::bigint AS appid, 'room-' || (k % 5) AS room_id, 1::numeric AS room_seq,
                'user-' || m || '-' || k AS user_account, (m * 100 + k)::numeric AS session_id,
                timestamptz '2026-03-10 10:00Z' + m * interval '1 minute' - interval '20 minutes' AS login_time,
                timestamptz '2026-03-10 10:00Z' + m * interval '1 minute' + k * interval '1 second' AS logout_time,
                CASE WHEN k < 8 THEN 0 WHEN k = 8 THEN 1 ELSE 2 END AS reason
         FROM generate_series(0, 59) AS m,
              generate_series(0, 9 + CASE WHEN m = 42 THEN 40 ELSE 0 END) AS k",
    )
    .await;

    let rows: Vec<(String, String, i64, i64, f64, f64)> = sqlx::query_as(
        "SELECT to_char(bucket_start AT TIME ZONE 'UTC', 'HH24:MI'), reason, logouts,
                bucket_logouts, share, lift
         FROM logout_reasons_between(1, '2026-03-10 10:00Z', '2026-03-10 11:00Z', interval '1 minute')
         WHERE logouts >= 5
         ORDER BY lift DESC, bucket_start
         LIMIT 2",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let (minute, reason, logouts, bucket_logouts, share, lift) = rows[0].clone();
    assert_eq!(
        (minute.as_str(), reason.as_str(), logouts, bucket_logouts),
        ("10:42", "connection_lost", 41, 50)
    );
    assert!((share - 41.0 / 50.0).abs() < 1e-9, "{share}");
    // Usual share: 100 of 640 logouts were connection_lost.
    assert!(
        (lift - (41.0 / 50.0) / (100.0 / 640.0)).abs() < 1e-9,
        "{lift}"
    );
    assert!(rows[1].5 < 1.5, "nothing else stands out: {:?}", rows[1]);

    let shares_sum_to_one: bool = sqlx::query_scalar(
        "SELECT bool_and(abs(total - 1) < 1e-9) FROM (
             SELECT sum(share) AS total
             FROM logout_reasons_between(NULL, '2026-03-10Z', '2026-03-11Z', interval '5 minutes')
             GROUP BY appid, bucket_start) AS t",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert!(shares_sum_to_one);
    // The hourly view is the function over all time with one-hour buckets.
    let (view, function): (String, String) = sqlx::query_as(
        "SELECT (SELECT string_agg(t::text, ';' ORDER BY t::text) FROM logout_reasons_hourly AS t),
                (SELECT string_agg(t::text, ';' ORDER BY t::text)
                 FROM logout_reasons_between(NULL, '-infinity', 'infinity') AS t)",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(view, function);
    let hour: (i64, f64) = sqlx::query_as(
        "SELECT logouts, share FROM logout_reasons_hourly
         WHERE appid = 1 AND reason = 'connection_lost'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(hour.0, 100);
    assert!((hour.1 - 100.0 / 640.0).abs() < 1e-9);
}

#[tokio::test]
async fn data_quality_counts_each_kind_of_doubtful_row() {
    let app = TestApp::spawn().await;
    let now = chrono::Utc::now().timestamp_millis();
    let hour_ago = now - HOUR_MS;

    // s1: a normal session with its login.
    post_ok(&app, &login("r", 1, "u1", 1, hour_ago)).await;
    post_ok(&app, &logout("r", 1, "u1", 1, hour_ago, now - MINUTE_MS, 0)).await;
    // s2: no login event.
    post_ok(&app, &logout("r", 1, "u2", 2, hour_ago, now - MINUTE_MS, 0)).await;
    // s3: logout before login, no login event.
    post_ok(
        &app,
        &logout("r", 1, "u3", 3, hour_ago, hour_ago - 5_000, 1),
    )
    .await;
    // s4: zero duration, with its login.
    post_ok(&app, &login("r", 1, "u4", 4, hour_ago)).await;
    post_ok(&app, &logout("r", 1, "u4", 4, hour_ago, hour_ago, 0)).await;
    // s5: stamped three days ahead, no login event.
    post_ok(
        &app,
        &logout(
            "r",
            1,
            "u5",
            5,
            now + 3 * DAY_MS,
            now + 3 * DAY_MS + 60_000,
            0,
        ),
    )
    .await;
    // s6: stamped three days behind (a late delivery), with its login.
    post_ok(&app, &login("r", 1, "u6", 6, now - 3 * DAY_MS)).await;
    post_ok(
        &app,
        &logout(
            "r",
            1,
            "u6",
            6,
            now - 3 * DAY_MS,
            now - 3 * DAY_MS + 60_000,
            2,
        ),
    )
    .await;
    // s7: its login event says a login 30 s earlier than the logout does: still its login.
    post_ok(&app, &login("r", 1, "u7", 7, hour_ago - 30_000)).await;
    post_ok(&app, &logout("r", 1, "u7", 7, hour_ago, now - MINUTE_MS, 0)).await;
    // An authentic callback that cannot be normalised.
    let mut broken = logout("r", 1, "u8", 8, hour_ago, now, 0);
    broken["logout_time"] = json!("soon");
    let (status, body) = app.post_json(&signed(broken)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::OK, Some("quarantined"))
    );

    // Summed over the days (the test may straddle midnight UTC).
    let totals_sql = |source: &str| {
        format!(
            "SELECT sum(logouts)::bigint, sum(negative_durations)::bigint, sum(zero_durations)::bigint,
                    sum(logout_far_future)::bigint, sum(logout_far_past)::bigint,
                    sum(without_login)::bigint, sum(quarantined)::bigint
             FROM {source} WHERE appid = 1"
        )
    };
    type Totals = (i64, i64, i64, i64, i64, i64, i64);
    let view: Totals = sqlx::query_as(&totals_sql("data_quality_daily"))
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(view, (7, 1, 1, 1, 1, 3, 1));
    let window: Totals = sqlx::query_as(&totals_sql(
        "data_quality_daily_between(NULL, now() - interval '1 hour', now() + interval '1 hour')",
    ))
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(window, view);
    let same_rows: bool = sqlx::query_scalar(
        "SELECT (SELECT array_agg(t::text ORDER BY t::text) FROM data_quality_daily AS t)
              = (SELECT array_agg(t::text ORDER BY t::text)
                 FROM data_quality_daily_between(1, now() - interval '1 day', now() + interval '1 day') AS t)",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(same_rows);
    let nothing_before: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM data_quality_daily_between(1, now() - interval '2 days', now() - interval '1 day')",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        nothing_before, 0,
        "rows count on the day they were received"
    );
}
