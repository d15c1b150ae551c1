//! Users online over time and the daily peaks, against a recount from the raw session intervals;
//! open sessions.

use super::*;

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
    let pending: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pending_contributions AS p, unnest(p.deltas)")
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
pub(crate) async fn peak_mismatches(pool: &PgPool) -> Vec<(String, String, i64, i64)> {
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
