//! Room lifecycles, user days, a disconnect spike in the reasons, and data quality.

use super::*;

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
