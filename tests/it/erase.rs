//! `zegolog erase`: after it, no text in any table names the user, the rollups equal a
//! recomputation from the rows that remain, other users' rows are untouched, and a second run
//! removes nothing and changes nothing. Callbacks go through real HTTP with real signatures.

use crate::common;

use common::{TestApp, ARCHIVE, DAY_MS};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::analytics::{compact, online_mismatches, peak_mismatches, post_ok};

/// The user to erase, and their nickname: strings no other row holds.
pub const ERASED: &str = "erase-me-4711";
pub const NICKNAME: &str = "Zoë Erase-4711";

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;

/// 2026-03-10T00:00:00Z.
const T0_MS: i64 = 1_773_100_800_000;

fn nickname(user: &str) -> String {
    if user == ERASED {
        NICKNAME.to_owned()
    } else {
        format!("nick {user}")
    }
}

fn login(appid: &str, room: &str, user: &str, session: u64, login_ms: i64) -> Value {
    json!({"event": "room_login", "appid": appid, "room_id": room, "room_name": format!("name of {room}"),
           "room_seq": "7", "user_account": user, "user_nickname": nickname(user),
           "session_id": session.to_string(), "login_time": login_ms.to_string(), "user_role": "2",
           "auth_level": "1", "relogin": "0", "user_update_seq": "1", "callback_data": "{\"from\":\"lobby\"}"})
}

fn logout(
    appid: &str,
    room: &str,
    user: &str,
    session: u64,
    login_ms: Option<i64>,
    logout_ms: i64,
    reason: i32,
) -> Value {
    let mut logout = json!({"event": "room_logout", "appid": appid, "room_id": room, "room_seq": "7",
           "user_account": user, "user_nickname": nickname(user), "session_id": session.to_string(),
           "logout_time": logout_ms.to_string(), "reason": reason.to_string(), "user_role": "2",
           "user_update_seq": "2"});
    if let Some(login_ms) = login_ms {
        logout["login_time"] = json!(login_ms.to_string());
    }
    logout
}

/// Three rooms over four days from `t0` in app 1, and one session in app 2. The erased user's
/// sessions: one across midnight beside another user's, one whose logout has no login_time
/// (paired with its login, which comes after it), one that is the longest of its duration
/// bucket on its day with another user's session in the same bucket (its maximum must be
/// recomputed), one in a room they created, one alone on the last day (that day's peak must
/// go; it comes first, so that it is compacted before an erasure that leaves half pending). Their callbacks also include a room_create (id_name), a stream event (user_id), an
/// in-app chat room_create (operator_account) and a quarantined logout. Logins carry nicknames.
pub fn traffic(t0: i64) -> Vec<Value> {
    let mut callbacks = vec![
        json!({"event": "room_create", "appid": "1", "room_id": "room-c", "room_session_id": "7",
               "room_create_time": t0.to_string(), "id_name": ERASED}),
        json!({"event": "room_create", "appid": "1", "room_id": "room-a", "room_session_id": "7",
               "room_create_time": t0.to_string(), "id_name": "other-ann"}),
        json!({"event": "stream_create", "appid": "1", "stream_id": "s-1", "user_id": ERASED,
               "user_name": NICKNAME, "room_id": "room-a"}),
        json!({"event": "room_create", "appid": "1", "room_name": "chat", "operator_account": ERASED}),
        // Quarantined: its login_time is no time.
        json!({"event": "room_logout", "appid": "1", "room_id": "room-a", "user_account": ERASED,
               "user_nickname": NICKNAME, "session_id": "99", "login_time": "not a time",
               "logout_time": (t0 + HOUR_MS).to_string()}),
    ];
    // (room, user, session, login, logout, reason, logout sent with its login_time)
    let sessions: [(&str, &str, u64, i64, i64, i32, bool); 9] = [
        (
            "room-a",
            ERASED,
            9,
            t0 + 74 * HOUR_MS,
            t0 + 75 * HOUR_MS,
            4,
            true,
        ),
        (
            "room-a",
            ERASED,
            1,
            t0 + 22 * HOUR_MS,
            t0 + 27 * HOUR_MS,
            0,
            true,
        ),
        (
            "room-a",
            "other-ann",
            2,
            t0 + 23 * HOUR_MS,
            t0 + 26 * HOUR_MS,
            0,
            true,
        ),
        (
            "room-b",
            ERASED,
            3,
            t0 + 30 * HOUR_MS,
            t0 + 31 * HOUR_MS,
            1,
            false,
        ),
        (
            "room-b",
            "other-bob",
            4,
            t0 + 30 * HOUR_MS + 30 * MINUTE_MS,
            t0 + 32 * HOUR_MS,
            2,
            true,
        ),
        (
            "room-a",
            ERASED,
            5,
            t0 + 50 * HOUR_MS,
            t0 + 50 * HOUR_MS + 3_600_000,
            0,
            true,
        ),
        (
            "room-a",
            "other-ann",
            6,
            t0 + 49 * HOUR_MS,
            t0 + 49 * HOUR_MS + 3_590_000,
            0,
            true,
        ),
        ("room-c", ERASED, 7, t0 + HOUR_MS, t0 + 4 * HOUR_MS, 3, true),
        (
            "room-c",
            "other-bob",
            8,
            t0 + 2 * HOUR_MS,
            t0 + 3 * HOUR_MS,
            0,
            true,
        ),
    ];
    for (room, user, session, login_ms, logout_ms, reason, with_login_time) in sessions {
        let login = login("1", room, user, session, login_ms);
        let logout = logout(
            "1",
            room,
            user,
            session,
            with_login_time.then_some(login_ms),
            logout_ms,
            reason,
        );
        if with_login_time {
            callbacks.extend([login, logout]);
        } else {
            callbacks.extend([logout, login]);
        }
    }
    // The same account in another app: not this erasure's.
    callbacks.push(login("2", "room-a", ERASED, 10, t0 + HOUR_MS));
    callbacks.push(logout(
        "2",
        "room-a",
        ERASED,
        10,
        Some(t0 + HOUR_MS),
        t0 + 2 * HOUR_MS,
        0,
    ));
    callbacks
}

/// Every text, varchar, json and jsonb column of every table of the schema (from the catalog,
/// so that a table added later is searched too) whose rows contain one of `needles`, with the
/// number of such rows; rows of app `except_appid` are left out where a table has an appid.
pub async fn traces(pool: &PgPool, needles: &[&str], except_appid: i64) -> Vec<(String, i64)> {
    let columns: Vec<(String, String, bool)> = sqlx::query_as(
        "SELECT c.relname::text, a.attname::text,
                EXISTS (SELECT 1 FROM pg_attribute AS x
                        WHERE x.attrelid = c.oid AND x.attname = 'appid' AND NOT x.attisdropped)
         FROM pg_class AS c
         JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
         WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
           AND NOT c.relispartition
           AND a.atttypid IN ('text'::regtype, 'varchar'::regtype, 'bpchar'::regtype,
                              'json'::regtype, 'jsonb'::regtype, 'name'::regtype)
         ORDER BY 1, 2",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(
        columns.len() >= 20,
        "the catalog lists the text columns: {columns:?}"
    );
    let mut found = Vec::new();
    for (table, column, has_appid) in columns {
        let other_apps = if has_appid {
            format!("appid IS DISTINCT FROM {except_appid} AND ")
        } else {
            String::new()
        };
        for needle in needles {
            let hits: i64 = sqlx::query_scalar(&format!(
                "SELECT count(*) FROM {table:?} WHERE {other_apps}strpos({column:?}::text, $1) > 0"
            ))
            .bind(needle)
            .fetch_one(pool)
            .await
            .unwrap();
            if hits > 0 {
                found.push((format!("{table}.{column} {needle:?}"), hits));
            }
        }
    }
    found
}

/// Every row of every table of the schema, as text, sorted per table.
async fn snapshot(pool: &PgPool) -> Vec<(String, Vec<String>)> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT relname::text FROM pg_class
         WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p') AND NOT relispartition
         ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut all = Vec::new();
    for table in tables {
        let rows: Vec<String> =
            sqlx::query_scalar(&format!("SELECT t::text FROM {table:?} AS t ORDER BY 1"))
                .fetch_all(pool)
                .await
                .unwrap();
        all.push((table, rows));
    }
    all
}

/// The rows of the raw tables that do not name the erased user (ledger entries with the body
/// of their digest), and the room lifecycles without their creator.
async fn others(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(&format!(
        "SELECT x FROM (
             SELECT 'logout ' || t::text AS x FROM room_logouts AS t
             UNION ALL SELECT 'login ' || t::text FROM room_logins AS t
             UNION ALL SELECT 'body ' || t::text FROM callback_events AS t
             UNION ALL SELECT 'ledger ' || t::text || ' of '
                              || coalesce((SELECT archive.body FROM {ARCHIVE}
                                           WHERE archive.digest = t.digest), '')
                       FROM signature_ledger AS t
             UNION ALL SELECT format('room %s %s %s %s %s', appid, room_id, event, at, close_reason)
                       FROM room_lifecycle_events) AS r
         WHERE strpos(x, $1) = 0
         ORDER BY 1",
    ))
    .bind(ERASED)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// `zegolog erase --appid 1 --user-account ERASED` against `url`, with `extra` arguments.
fn erase_command(url: &str, extra: &[&str]) -> String {
    let output = common::zegolog()
        .args(["erase", "--appid", "1", "--user-account", ERASED])
        .args(extra)
        .env("DATABASE_URL", url)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The rollups (durations, reasons, users online, daily peaks) equal a recount of the raw rows
/// of app 1 over the traffic's days; the daily peaks once compacted.
pub async fn assert_rollups_equal_raw_rows(pool: &PgPool) {
    common::assert_rollups_equal_raw_rows(pool).await;
    let wrong = peak_mismatches(pool).await;
    assert!(wrong.is_empty(), "(what, day, recount, view): {wrong:?}");
    let (from, to) = (T0_MS - HOUR_MS, T0_MS + 4 * DAY_MS);
    for room in [None, Some("room-a"), Some("room-b"), Some("room-c")] {
        let wrong = online_mismatches(pool, 1, room, from, to).await;
        assert!(wrong.is_empty(), "{room:?}: {wrong:?}");
    }
}

#[tokio::test]
async fn erase_leaves_no_trace_of_the_user_and_rollups_equal_the_remaining_rows() {
    let (url, app) = TestApp::spawn_with_url().await;
    let pool = app.pool.clone();
    let callbacks = traffic(T0_MS);
    let (first, rest) = callbacks.split_at(callbacks.len() / 2);
    for callback in first {
        post_ok(&app, callback).await;
    }
    compact(&pool).await;
    // The rest stays pending; every fourth callback is retried (signed anew: another ledger
    // entry for the same body).
    for (i, callback) in rest.iter().enumerate() {
        post_ok(&app, callback).await;
        if i % 4 == 0 {
            post_ok(&app, callback).await;
        }
    }
    let same_bucket: bool = sqlx::query_scalar(
        "SELECT zegolog_duration_bucket(3600000) = zegolog_duration_bucket(3590000)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        same_bucket,
        "the erased user's longest session of day 2 shares its bucket"
    );
    let (bodies, in_events, ledger): (i64, i64, i64) = sqlx::query_as(&format!(
        "SELECT (SELECT count(*) FROM {ARCHIVE} WHERE appid = 1 AND strpos(body, $1) > 0),
                (SELECT count(*) FROM callback_events WHERE appid = 1 AND strpos(body, $1) > 0),
                (SELECT count(*) FROM signature_ledger WHERE digest IN
                    (SELECT digest FROM {ARCHIVE} WHERE appid = 1 AND strpos(body, $1) > 0))",
    ))
    .bind(ERASED)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        bodies, 14,
        "10 logins and logouts, 2 room_create, a stream, a quarantined logout"
    );
    assert!(ledger >= bodies, "every body signed: {ledger}");
    let others_before = others(&pool).await;
    assert!(!traces(&pool, &[ERASED, NICKNAME], 2).await.is_empty());

    let erased: Value = serde_json::from_str(&erase_command(&url, &["--json"])).unwrap();

    assert_eq!(
        erased,
        json!({"appid": 1, "user_account": ERASED, "removed": {
            "callback_events": in_events, "signature_ledger": ledger, "room_logins": 5,
            "room_logouts": 5, "room_lifecycle_events": 1, "logout_rollup": 5, "concurrency": 5}})
    );
    assert_eq!(traces(&pool, &[ERASED, NICKNAME], 2).await, []);
    assert_eq!(
        others(&pool).await,
        others_before,
        "other users' rows are untouched"
    );
    let creator: Option<String> =
        sqlx::query_scalar("SELECT creator FROM room_lifecycle_events WHERE room_id = 'room-c'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        creator, None,
        "the room they created is kept, without its creator"
    );
    let in_app_2: i64 = sqlx::query_scalar(&format!(
        "SELECT (SELECT count(*) FROM room_logouts WHERE appid = 2 AND user_account = $1)
              + (SELECT count(*) FROM room_logins WHERE appid = 2 AND user_account = $1)
              + (SELECT count(*) FROM {ARCHIVE} WHERE appid = 2 AND strpos(body, $1) > 0)",
    ))
    .bind(ERASED)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(in_app_2, 4, "the same account in another app is not erased");

    // The rollups, with rows left pending and compacted.
    assert_rollups_equal_raw_rows(&pool).await;
    compact(&pool).await;
    assert_rollups_equal_raw_rows(&pool).await;
    let (max_ms, last_day): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT max(max_ms) FROM logout_rollup WHERE day = '2026-03-12' AND reason = 'normal'),
                (SELECT count(*) FROM peak_concurrency_daily WHERE appid = 1 AND day = '2026-03-13')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(max_ms, 3_590_000, "the maximum is the remaining session's");
    assert_eq!(
        last_day, 0,
        "a day only the erased user was online has no peak left"
    );

    // Twice: nothing removed, nothing changed.
    let before = snapshot(&pool).await;
    let again = erase_command(&url, &[]);
    assert!(again.contains("nothing left to remove"), "{again}");
    assert_eq!(
        again
            .lines()
            .skip(1)
            .filter(|l| !l.split_whitespace().any(|w| w == "0"))
            .count(),
        0,
        "{again}"
    );
    assert_eq!(snapshot(&pool).await, before);
}

#[tokio::test]
async fn erase_while_callbacks_arrive_keeps_the_rollups_exact() {
    let app = TestApp::spawn().await;
    let store = zegolog::store::Store::from_pool(app.pool.clone());
    for callback in traffic(T0_MS) {
        post_ok(&app, &callback).await;
    }
    // Other users' sessions on the same days and rooms arrive while the user is erased, and
    // compaction runs meanwhile, as serve's upkeep does.
    let writer = {
        let app = app.clone();
        tokio::spawn(async move {
            for i in 0..120u64 {
                let login_ms = T0_MS + (i as i64 % 80) * HOUR_MS + i as i64 * 7_000;
                let user = format!("late-{}", i % 9);
                let room = ["room-a", "room-b", "room-c"][i as usize % 3];
                post_ok(&app, &login("1", room, &user, 1000 + i, login_ms)).await;
                post_ok(
                    &app,
                    &logout(
                        "1",
                        room,
                        &user,
                        1000 + i,
                        Some(login_ms),
                        login_ms + (i as i64 % 13) * 9 * MINUTE_MS + 61_000,
                        (i % 5) as i32,
                    ),
                )
                .await;
            }
        })
    };
    let compactor = {
        let store = store.clone();
        tokio::spawn(async move {
            for _ in 0..30 {
                store.compact_rollups().await.unwrap();
            }
        })
    };
    let mut removed = 0;
    for _ in 0..3 {
        let erased = zegolog::erase::erase(&store, 1, ERASED).await.unwrap();
        removed += erased
            .removed
            .iter()
            .find(|r| r.name == "room_logouts")
            .unwrap()
            .removed;
    }
    writer.await.unwrap();
    compactor.await.unwrap();

    assert_eq!(removed, 5);
    assert_eq!(traces(&app.pool, &[ERASED, NICKNAME], 2).await, []);
    // The duration and reason views include the pending rows; the daily peaks, compacted.
    common::assert_rollups_equal_raw_rows(&app.pool).await;
    compact(&app.pool).await;
    assert_rollups_equal_raw_rows(&app.pool).await;
}

#[tokio::test]
async fn erase_cuts_the_days_it_corrects_in_the_reporting_time_zone() {
    let (url, app) = TestApp::spawn_with_url().await;
    zegolog::time_zone::change(&url, "Asia/Shanghai", false)
        .await
        .unwrap();
    for callback in traffic(T0_MS) {
        post_ok(&app, &callback).await;
    }
    compact(&app.pool).await;
    let store = zegolog::store::Store::from_pool(app.pool.clone());

    zegolog::erase::erase(&store, 1, ERASED).await.unwrap();

    assert_eq!(traces(&app.pool, &[ERASED, NICKNAME], 2).await, []);
    common::assert_rollups_equal_raw_rows_in(&app.pool, "Asia/Shanghai").await;
    let (from, to) = (T0_MS - HOUR_MS, T0_MS + 4 * DAY_MS);
    for room in [None, Some("room-a"), Some("room-b"), Some("room-c")] {
        let wrong = online_mismatches(&app.pool, 1, room, from, to).await;
        assert!(wrong.is_empty(), "{room:?}: {wrong:?}");
    }
    // The daily peaks, in the zone: the same as computed from the minutes afresh.
    let wrong: Vec<String> = sqlx::query_scalar(
        "SELECT format('%s %s %s', coalesce(a.day, b.day), a.peak_users, b.peak_users)
         FROM peak_concurrency_daily AS a
         FULL JOIN (SELECT * FROM peak_concurrency_daily_in('Asia/Shanghai', '2026-03-09', '2026-03-15', 1)
                    WHERE peak_users > 0) AS b USING (day, appid)
         WHERE a.appid IS DISTINCT FROM 2
           AND a.peak_users IS DISTINCT FROM b.peak_users",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert!(wrong.is_empty(), "{wrong:?}");
}
