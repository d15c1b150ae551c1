//! Numbers that stay right (issue 19): retention keeps every count after its cutoff what it
//! was and leaves nothing older behind in any table; implausible times stay out of the
//! durations and the concurrency, and cannot stall compaction; partition DDL gives up on a lock
//! rather than queue the writers.

use crate::common;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use common::{signed, test_verifier, vendor_sample, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;
use zegolog::store::Store;
use zegolog::upkeep;

/// A database whose reporting zone is `zone` (changed as an operator does), served in-process.
async fn app_in(zone: &str) -> TestApp {
    let (url, pool) = common::migrated_database_url().await;
    if zone != "UTC" {
        zegolog::time_zone::change(&url, zone, false).await.unwrap();
    }
    TestApp::serve(test_verifier(600), Store::from_pool(pool.clone()), pool).await
}

fn logout(session: i64, room: &str, login: DateTime<Utc>, logout: DateTime<Utc>) -> Value {
    let mut callback = vendor_sample();
    callback["session_id"] = json!(session.to_string());
    callback["room_id"] = json!(room);
    callback["user_account"] = json!(format!("user-{session}"));
    callback["login_time"] = json!(login.timestamp_millis().to_string());
    callback["logout_time"] = json!(logout.timestamp_millis().to_string());
    callback["reason"] = json!((session % 5).to_string());
    callback
}

async fn compact(pool: &PgPool) {
    sqlx::query("SELECT zegolog_compact_rollups()")
        .execute(pool)
        .await
        .unwrap();
}

/// The start of the day holding `t` in `zone`, and that day.
async fn day_start(pool: &PgPool, t: DateTime<Utc>, zone: &str) -> (DateTime<Utc>, NaiveDate) {
    sqlx::query_as(
        "SELECT zegolog_local_day($1, $2)::timestamp AT TIME ZONE $2, zegolog_local_day($1, $2)",
    )
    .bind(t)
    .bind(zone)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Everything concurrency answers from `from` (a day's start) on, as text rows: users online
/// per minute for the app and each room, the daily peaks, and the peaks cut in another zone.
async fn concurrency_from(
    pool: &PgPool,
    from: DateTime<Utc>,
    from_day: NaiveDate,
    until: DateTime<Utc>,
) -> Vec<String> {
    let mut rows: Vec<String> = sqlx::query_scalar(
        r#"
        SELECT format('app %s %s', minute, users_online) FROM users_online(1, $1, $3)
        UNION ALL
        SELECT format('room %s %s %s', r.room_id, u.minute, u.users_online)
        FROM (VALUES ('room-a'), ('room-b'), ('room-c')) AS r(room_id),
             room_users_online(1, r.room_id, $1, $3) AS u
        UNION ALL
        SELECT format('peak %s %s', day, peak_users) FROM peak_concurrency_daily WHERE day >= $2
        UNION ALL
        SELECT format('room peak %s %s %s', day, room_id, peak_users)
        FROM room_peak_concurrency_daily WHERE day >= $2
        UNION ALL
        SELECT format('peak in %s %s', day, peak_users)
        FROM peak_concurrency_daily_in('America/Los_Angeles', $2 + 1, ($3 AT TIME ZONE 'America/Los_Angeles')::date)
        UNION ALL
        SELECT format('room peak in %s %s %s', day, room_id, peak_users)
        FROM room_peak_concurrency_daily_in('America/Los_Angeles', $2 + 1, ($3 AT TIME ZONE 'America/Los_Angeles')::date)
        UNION ALL
        SELECT format('durations %s', to_jsonb(d)) FROM session_duration_daily AS d WHERE day >= $2
        "#,
    )
    .bind(from)
    .bind(from_day)
    .bind(until)
    .fetch_all(pool)
    .await
    .unwrap();
    rows.sort();
    rows
}

/// Issue 19's scenario: 50 sessions across the midnight at the start of the cutoff's day, 10 in
/// the last three hours, others long before (pruned) and across the cutoff itself. Retention
/// must leave every minute and day from the cutoff's day on as it was.
pub async fn retention_keeps_concurrency_after_the_cutoff(app: &TestApp, zone: &str) {
    let now = Utc::now();
    let mut cutoff = now - Duration::days(40);
    let (mut midnight, mut cutoff_day) = day_start(&app.pool, cutoff, zone).await;
    // The sessions across the cutoff instant log in two hours before it: within three hours
    // of its day's start they would also be online at that midnight. Whatever the time of
    // day the test runs at, the cutoff is then moved to 23:00 the day before.
    if cutoff - midnight < Duration::hours(3) {
        cutoff = midnight - Duration::hours(1);
        (midnight, cutoff_day) = day_start(&app.pool, cutoff, zone).await;
    }
    let rooms = ["room-a", "room-b", "room-c"];
    for i in 0..50 {
        let login = midnight - Duration::minutes(30 + i);
        let logout_at = midnight + Duration::minutes(20 + 3 * i);
        common::deliver(app, &logout(i, rooms[i as usize % 3], login, logout_at)).await;
    }
    for i in 50..60 {
        let logout_at = now - Duration::minutes(5 * (i - 50));
        common::deliver(
            app,
            &logout(
                i,
                rooms[i as usize % 3],
                logout_at - Duration::minutes(90),
                logout_at,
            ),
        )
        .await;
    }
    for i in 60..65 {
        // Long before the cutoff, and across the cutoff instant.
        let old = now - Duration::days(100) + Duration::minutes(i);
        common::deliver(
            app,
            &logout(i, rooms[i as usize % 3], old - Duration::hours(1), old),
        )
        .await;
        common::deliver(
            app,
            &logout(
                i + 10,
                rooms[i as usize % 3],
                cutoff - Duration::hours(2),
                cutoff + Duration::hours(i - 59),
            ),
        )
        .await;
    }
    compact(&app.pool).await;
    let until = now + Duration::minutes(1);
    let before = concurrency_from(&app.pool, midnight, cutoff_day, until).await;
    let at_midnight: i64 = sqlx::query_scalar(
        "SELECT users_online FROM users_online(1, $1, $1 + interval '1 minute')",
    )
    .bind(midnight)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        at_midnight, 50,
        "the scenario has 50 sessions across the cutoff day's midnight"
    );

    let report = upkeep::retain_before(&Store::from_pool(app.pool.clone()), cutoff, cutoff)
        .await
        .unwrap();
    assert!(report.rows["room_logouts"] >= 55, "{report}");
    assert!(report.rows["app_concurrency_minute"] > 0, "{report}");

    let after = concurrency_from(&app.pool, midnight, cutoff_day, until).await;
    assert_eq!(before.len(), after.len());
    let changed: Vec<_> = before
        .iter()
        .zip(&after)
        .filter(|(b, a)| b != a)
        .take(5)
        .collect();
    assert!(
        changed.is_empty(),
        "retention changed counts after its cutoff: {changed:#?}"
    );

    // And the counts go on right: a late session across the cutoff's midnight, one now.
    common::deliver(
        app,
        &logout(
            100,
            "room-a",
            midnight - Duration::hours(1),
            midnight + Duration::hours(1),
        ),
    )
    .await;
    common::deliver(app, &logout(101, "room-a", now - Duration::minutes(2), now)).await;
    compact(&app.pool).await;
    let online: Vec<i64> = sqlx::query_scalar(
        "SELECT users_online FROM users_online(1, $1, $1 + interval '1 minute')
         UNION ALL SELECT users_online FROM room_users_online(1, 'room-a', $1, $1 + interval '1 minute')",
    )
    .bind(midnight)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let room_a_before: i64 = (0..50).filter(|i| i % 3 == 0).count() as i64;
    assert_eq!(online, [51, room_a_before + 1]);
    common::assert_rollups_equal_raw_rows_after(&app.pool, cutoff_day).await;
}

#[tokio::test]
async fn retention_keeps_every_count_after_its_cutoff_in_utc() {
    retention_keeps_concurrency_after_the_cutoff(&app_in("UTC").await, "UTC").await;
}

#[tokio::test]
async fn retention_keeps_every_count_after_its_cutoff_in_another_zone() {
    let zone = "Asia/Shanghai";
    retention_keeps_concurrency_after_the_cutoff(&app_in(zone).await, zone).await;
}

/// The tables whose rows are settings or history of the schema, not traffic.
const NOT_TRAFFIC: [&str; 2] = ["_sqlx_migrations", "zegolog_settings"];

/// Every (table, time column) of the schema, partitions included, from the catalog: a new table
/// cannot be forgotten.
async fn time_columns(pool: &PgPool) -> Vec<(String, String, String)> {
    sqlx::query_as(
        r#"
        SELECT c.relname::text, a.attname::text, format_type(a.atttypid, NULL)
        FROM pg_class AS c
        JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
          AND a.atttypid IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype)
          -- A generated column (room_logouts.login_at) follows the columns it is made of.
          AND a.attgenerated = ''
          AND c.relname <> ALL ($1)
        ORDER BY 1, 2
        "#,
    )
    .bind(&NOT_TRAFFIC[..])
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Callbacks of every kind the archive and the typed tables take, sent now.
async fn traffic_of_every_kind(app: &TestApp, first_session: i64) {
    let now = Utc::now();
    let room = format!("room-{first_session}");
    for i in 0..3 {
        let logout_at = now - Duration::minutes(10 * i);
        common::deliver(
            app,
            &logout(
                first_session + i,
                &room,
                logout_at - Duration::hours(1),
                logout_at,
            ),
        )
        .await;
    }
    let login_ms = (now - Duration::hours(1)).timestamp_millis();
    let session_id = first_session.to_string();
    let room_seq = (first_session + 7).to_string();
    for callback in [
        json!({"event": "room_login", "appid": "1", "room_id": room, "room_name": "Room",
               "room_seq": room_seq, "user_account": "user-0", "user_nickname": "n",
               "session_id": session_id, "login_time": login_ms.to_string(), "user_role": "2"}),
        json!({"event": "room_create", "appid": "1", "room_id": room, "room_session_id": room_seq,
               "room_create_time": login_ms.to_string(), "id_name": "user-0"}),
        json!({"event": "room_close", "appid": "1", "room_id": room, "room_session_id": room_seq,
               "close_reason": "1", "room_close_time": (login_ms + 60_000).to_string()}),
        json!({"event": "stream_create", "appid": "1", "room_id": room, "stream_alias": session_id}),
    ] {
        common::deliver(app, &callback).await;
    }
    let mut unusable = vendor_sample();
    unusable["session_id"] = json!(session_id);
    unusable["logout_time"] = json!("abc");
    let (status, body) = app.post_json(&signed(unusable)).await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::OK, json!("quarantined"))
    );
    compact(&app.pool).await;
}

#[tokio::test]
async fn retention_prunes_every_table_that_grows_with_traffic() {
    let app = &TestApp::spawn().await;
    traffic_of_every_kind(app, 1_000).await;

    // Make all of it 400 days old, as if the database had run for over a year (triggers off:
    // the summaries move with their rollups).
    let columns = time_columns(&app.pool).await;
    let mut tx = app.pool.begin().await.unwrap();
    sqlx::query("SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await
        .unwrap();
    for (table, column, _) in &columns {
        let parent: bool = sqlx::query_scalar(
            "SELECT NOT c.relispartition FROM pg_class AS c WHERE c.relname = $1 AND c.relnamespace = 'public'::regnamespace",
        )
        .bind(table)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        if parent {
            sqlx::query(&format!(
                r#"UPDATE "{table}" SET "{column}" = "{column}" - interval '400 days'"#
            ))
            .execute(&mut *tx)
            .await
            .unwrap();
        }
    }
    tx.commit().await.unwrap();
    let old = Utc::now() - Duration::days(300);
    for table in [
        "callback_events",
        "room_logouts",
        "room_logins",
        "room_lifecycle_events",
        "signature_ledger",
        "app_concurrency_minute",
        "room_concurrency_minute",
        "app_concurrency_day",
        "room_concurrency_day",
        "logout_rollup",
    ] {
        let column = columns
            .iter()
            .find(|(t, _, _)| t == table)
            .map(|(_, c, _)| c.clone())
            .unwrap();
        let n: i64 = sqlx::query_scalar(&format!(
            r#"SELECT count(*) FROM "{table}" WHERE "{column}" < $1::timestamptz"#
        ))
        .bind(old)
        .fetch_one(&app.pool)
        .await
        .unwrap();
        assert!(
            n > 0,
            "no old rows in {table}.{column}: the test would prove nothing"
        );
    }

    traffic_of_every_kind(app, 2_000).await;
    let cutoff = Utc::now() - Duration::days(30);
    let report = upkeep::retain_before(&Store::from_pool(app.pool.clone()), cutoff, cutoff)
        .await
        .unwrap();

    let (cutoff_day_start, cutoff_day) = day_start(&app.pool, cutoff, "UTC").await;
    let mut left = Vec::new();
    for (table, column, kind) in time_columns(&app.pool).await {
        let n: i64 = if kind == "date" {
            sqlx::query_scalar(&format!(
                r#"SELECT count(*) FROM "{table}" WHERE "{column}" < $1::date"#
            ))
            .bind(cutoff_day)
            .fetch_one(&app.pool)
            .await
            .unwrap_or_else(|e| panic!("{table}.{column} ({kind}): {e}"))
        } else {
            sqlx::query_scalar(&format!(
                r#"SELECT count(*) FROM "{table}" WHERE "{column}" < $1::timestamptz"#
            ))
            .bind(cutoff_day_start)
            .fetch_one(&app.pool)
            .await
            .unwrap()
        };
        if n > 0 {
            left.push(format!("{table}.{column}: {n} rows"));
        }
    }
    assert!(
        left.is_empty(),
        "older than the cutoff after retention: {left:?}\n{report}"
    );
    for table in [
        "room_logouts",
        "room_logins",
        "callback_events",
        "room_lifecycle_events",
    ] {
        assert!(
            app.count(table).await > 0,
            "retention took the recent {table} too"
        );
    }
    common::assert_rollups_equal_raw_rows(&app.pool).await;
}

#[tokio::test]
async fn raw_bodies_can_be_kept_shorter_than_the_rest() {
    let app = &TestApp::spawn().await;
    traffic_of_every_kind(app, 1_000).await;
    sqlx::raw_sql(
        "UPDATE callback_events SET received_at = received_at - interval '10 days';
         UPDATE room_logouts SET received_at = received_at - interval '10 days',
                                 logout_time = logout_time - interval '10 days';",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let now = Utc::now();
    let report = upkeep::retain_before(
        &Store::from_pool(app.pool.clone()),
        now - Duration::days(30),
        now - Duration::days(7),
    )
    .await
    .unwrap();
    assert_eq!(app.count("callback_events").await, 0, "{report}");
    assert_eq!(app.count("room_logouts").await, 3, "{report}");
    assert_eq!(
        app.archived().await,
        0,
        "the logouts keep their rows, not their bodies: {report}"
    );
}

/// Sessions an implausible clock produced: stored and archived as sent, counted in data
/// quality with their reason, absent from durations and concurrency.
#[tokio::test]
async fn implausible_times_are_stored_but_stay_out_of_the_rollups() {
    let app = &TestApp::spawn().await;
    let now = Utc::now();
    let year_9999 = Utc.with_ymd_and_hms(9999, 6, 1, 0, 0, 0).unwrap();
    let cases = [
        // login_time 0
        logout(1, "room-a", DateTime::<Utc>::UNIX_EPOCH, now),
        // a logout in the year 9999
        logout(2, "room-a", now, year_9999),
        // a logout before its login
        logout(3, "room-a", now, now - Duration::hours(1)),
        // a 30-day session
        logout(4, "room-a", now - Duration::days(30), now),
    ];
    for callback in &cases {
        common::deliver(app, callback).await;
    }
    assert_eq!(app.count("room_logouts").await, 4, "each stored as sent");
    assert_eq!(app.archived().await, 4, "each archived");

    // Compaction finishes at once (the year 9999 used to walk 2.9 million days).
    sqlx::query("SET statement_timeout = '20s'")
        .execute(&app.pool)
        .await
        .unwrap();
    compact(&app.pool).await;

    let quality: (i64, i64, i64, i64, i64) = sqlx::query_as(
        "SELECT sum(implausible_times)::bigint, sum(before_2010)::bigint, sum(sessions_too_long)::bigint,
                sum(negative_durations)::bigint, sum(logout_far_future)::bigint
         FROM data_quality_daily WHERE appid = 1",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(quality, (4, 1, 1, 1, 1));
    let faults: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT time_fault FROM session_durations WHERE duration_ms IS NULL ORDER BY session_id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        faults,
        [
            Some("login_before_2010".to_string()),
            Some("logout_after_receipt".to_string()),
            Some("logout_before_login".to_string()),
            Some("session_too_long".to_string()),
        ]
    );
    let timed: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(sessions_with_duration), 0)::bigint FROM session_duration_daily",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(timed, 0, "no duration from an implausible session");
    let concurrency: (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM app_concurrency_minute), (SELECT count(*) FROM room_concurrency_day),
                (SELECT count(*) FROM peak_concurrency_daily)",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        concurrency,
        (0, 0, 0),
        "no concurrency from an implausible session"
    );

    // A normal logout right after reaches the peaks.
    common::deliver(app, &logout(5, "room-a", now - Duration::minutes(5), now)).await;
    compact(&app.pool).await;
    let peaks: Vec<i64> = sqlx::query_scalar("SELECT peak_users FROM peak_concurrency_daily")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(peaks, [1]);
    let timed_users: Vec<String> = sqlx::query_scalar(
        "SELECT user_account FROM user_daily WHERE total_minutes IS NOT NULL
         UNION ALL
         SELECT user_account FROM user_daily_between(1, now() - interval '40 days', 'infinity')
         WHERE total_time IS NOT NULL",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        timed_users,
        ["user-5", "user-5"],
        "no time from an implausible session"
    );
    common::assert_rollups_equal_raw_rows(&app.pool).await;
}

/// One callback from 2011 and one from now in the same compaction: the days recomputed are
/// theirs, not the fifteen years between.
#[tokio::test]
async fn compaction_work_does_not_grow_with_the_span_of_timestamps() {
    let app = &TestApp::spawn().await;
    let now = Utc::now();
    let old = Utc.with_ymd_and_hms(2011, 3, 1, 12, 0, 0).unwrap();
    common::deliver(app, &logout(1, "room-a", old - Duration::hours(1), old)).await;
    common::deliver(app, &logout(2, "room-a", now - Duration::hours(1), now)).await;
    compact(&app.pool).await;
    let days: i64 = sqlx::query_scalar("SELECT count(*) FROM room_concurrency_day")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(
        days <= 4,
        "{days} room-days recomputed for two one-hour sessions"
    );
}

/// A partition drop waits at most a second for a lock a long query holds (rather than queue
/// every writer behind it), and goes through once the query is over.
#[tokio::test]
async fn partition_ddl_gives_up_on_a_held_lock_and_goes_through_after() {
    let app = &TestApp::spawn().await;
    let store = Store::from_pool(app.pool.clone());
    let old = Utc::now() - Duration::days(400);
    let month: String = sqlx::query_scalar("SELECT zegolog_ensure_partition($1::date)")
        .bind(old.date_naive())
        .fetch_one(&app.pool)
        .await
        .unwrap();

    let mut analyst = app.pool.begin().await.unwrap();
    sqlx::query("SELECT count(*) FROM room_logouts")
        .execute(&mut *analyst)
        .await
        .unwrap();
    let err = store
        .drop_partitions_before(Utc::now() - Duration::days(365))
        .await
        .unwrap_err();
    assert!(err.is_lock_timeout(), "{err:?}");
    analyst.rollback().await.unwrap();

    let report = upkeep::retain_before(
        &store,
        Utc::now() - Duration::days(365),
        Utc::now() - Duration::days(365),
    )
    .await
    .unwrap();
    assert!(report.partitions.contains(&month), "{report}");
}

/// The longest plausible session is a setting: raised, a 30-day session stored since gets its
/// duration from the write path, and one stored before gets it once the duration rollups are
/// recomputed as the docs say (`time-zone set` with the current zone).
#[tokio::test]
async fn the_longest_plausible_session_is_a_setting_writes_and_the_rebuild_apply() {
    let (url, pool) = common::migrated_database_url().await;
    let app = &TestApp::serve(test_verifier(600), Store::from_pool(pool.clone()), pool).await;
    let now = Utc::now();
    common::deliver(app, &logout(1, "room-a", now - Duration::days(30), now)).await;
    compact(&app.pool).await;
    let timed = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT coalesce(sum(sessions_with_duration), 0)::bigint FROM session_duration_daily",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap()
    };
    assert_eq!(timed().await, 0);

    sqlx::query("UPDATE zegolog_settings SET max_session = interval '40 days'")
        .execute(&app.pool)
        .await
        .unwrap();
    zegolog::time_zone::change(&url, "UTC", false)
        .await
        .unwrap();

    assert_eq!(timed().await, 1);
    // And a 30-day session sent now is timed by the write path itself, under the new bound.
    common::deliver(app, &logout(2, "room-a", now - Duration::days(30), now)).await;
    compact(&app.pool).await;
    assert_eq!(timed().await, 2);
    common::assert_rollups_equal_raw_rows(&app.pool).await;
}
