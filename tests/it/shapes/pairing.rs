//! The room_logout without login_time (the 2022–2023 shape) paired with its login in either order,
//! in one batch, and by the compaction sweep; the rollups equal the raw rows whatever the order.

use super::*;

#[tokio::test]
async fn old_docs_logout_is_stored_and_paired_with_a_login_that_arrives_later() {
    let app = TestApp::spawn().await;
    let now = chrono::Utc::now().timestamp_millis();
    let logout_ms = now - 5 * MINUTE_MS;

    post_ok(
        &app,
        &old_docs_logout("rid_1242649", "888120154", logout_ms, 2),
    )
    .await;

    let (login_time, session_id, logout_time, reason, role, update_seq): (
        Option<i64>,
        String,
        i64,
        i32,
        i32,
        Option<i64>,
    ) = sqlx::query_as(
        "SELECT (extract(EPOCH FROM login_time) * 1000)::bigint, session_id::text,
                (extract(EPOCH FROM logout_time) * 1000)::bigint, reason, user_role, user_update_seq
         FROM room_logouts",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        (
            login_time,
            session_id.as_str(),
            logout_time,
            reason,
            role,
            update_seq
        ),
        (None, "0", logout_ms, 2, 1, None)
    );
    assert_eq!(
        app.count("callback_events WHERE refused_reason IS NOT NULL")
            .await,
        0
    );
    // Unpaired: in the reason counts at once, in no duration statistic.
    assert_eq!(session_of(&app, "888120154").await, (None, None, None));
    let (logouts, share, median): (i64, f64, Option<f64>) = sqlx::query_as(
        "SELECT logouts, share, median_duration_s FROM logout_reasons_daily WHERE reason = 'connection_lost'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((logouts, share, median), (1, 1.0, None));
    let (sessions, timed, p50): (i64, i64, Option<f64>) = sqlx::query_as(
        "SELECT sessions, sessions_with_duration, p50_s FROM session_duration_daily",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((sessions, timed, p50), (1, 0, None));
    assert_eq!(data_quality(&app).await, (1, 1, 1));
    assert_eq!(durations_elsewhere(&app).await, (1, None, None, 0, 0));
    common::assert_rollups_equal_raw_rows(&app.pool).await;
    compact(&app).await;
    common::assert_rollups_equal_raw_rows(&app.pool).await;

    // The login arrives after its logout (and again: the sender's retry).
    let login_ms = logout_ms - 4326;
    post_ok(&app, &login("rid_1242649", "888120154", login_ms, None)).await;
    post_ok(&app, &login("rid_1242649", "888120154", login_ms, None)).await;

    assert_eq!(
        session_of(&app, "888120154").await,
        (Some(login_ms), Some(4326), Some("login".into()))
    );
    let (logouts, timed, p50): (i64, i64, f64) = sqlx::query_as(
        "SELECT sessions, sessions_with_duration, p50_s FROM session_duration_daily",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((logouts, timed), (1, 1));
    assert!((p50 - 4.326).abs() < 0.05, "{p50}");
    assert_eq!(data_quality(&app).await, (1, 1, 0));
    // The views over raw rows take the paired login too, and the ad-hoc function counts the
    // session as the rollups do.
    let (sessions, user_ms, lifecycle_ms, timed, peak) = durations_elsewhere(&app).await;
    assert_eq!((sessions, timed, peak), (1, 1, 1));
    assert_eq!(user_ms, Some(4326));
    assert_eq!(lifecycle_ms, Some(4326));
    common::assert_rollups_equal_raw_rows(&app.pool).await;
    assert_concurrency_equals_raw_rows(&app).await;
    compact(&app).await;
    common::assert_rollups_equal_raw_rows(&app.pool).await;
    assert_concurrency_equals_raw_rows(&app).await;
    let reasons: i64 = sqlx::query_scalar("SELECT sum(logouts)::bigint FROM logout_reasons_daily")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(reasons, 1, "the reason is counted once");
}

#[tokio::test]
async fn old_docs_logout_is_paired_with_a_login_sent_before_it() {
    let app = TestApp::spawn().await;
    let now = chrono::Utc::now().timestamp_millis();
    let logout_ms = now - 3 * MINUTE_MS;
    // An older session of the same user and session_id "0", then the one this logout ends.
    post_ok(&app, &login("r", "u", logout_ms - 50 * MINUTE_MS, None)).await;
    post_ok(&app, &login("r", "u", logout_ms - 90_000, None)).await;
    // A login after the logout is another session's.
    post_ok(&app, &login("r", "u", logout_ms + 1, None)).await;

    post_ok(&app, &old_docs_logout("r", "u", logout_ms, 0)).await;

    assert_eq!(
        session_of(&app, "u").await,
        (Some(logout_ms - 90_000), Some(90_000), Some("login".into()))
    );
    assert_eq!(data_quality(&app).await, (1, 1, 0));
    common::assert_rollups_equal_raw_rows(&app.pool).await;
    assert_concurrency_equals_raw_rows(&app).await;
}

#[tokio::test]
async fn old_docs_logout_and_its_login_in_one_batch_pair_once() {
    let app = TestApp::spawn().await;
    let now = chrono::Utc::now().timestamp_millis();
    let store = zegolog::store::Store::from_pool(app.pool.clone());
    let verifier = common::test_verifier(600);
    let receive = |callback: Value| {
        let origin = zegolog::callback::Origin::Network {
            verifier: &verifier,
            now: chrono::Utc::now().timestamp(),
        };
        let body = resign(callback).to_string();
        zegolog::callback::receive(body.as_bytes(), zegolog::callback::Encoding::Json, origin)
            .unwrap()
    };
    let batch = vec![
        receive(old_docs_logout("r", "u", now - MINUTE_MS, 1)),
        receive(login("r", "u", now - 3 * MINUTE_MS, None)),
        receive(old_docs_logout("r", "u", now - MINUTE_MS, 1)),
    ];
    store.write(&batch).await.unwrap();
    assert_eq!(
        session_of(&app, "u").await,
        (
            Some(now - 3 * MINUTE_MS),
            Some(2 * MINUTE_MS),
            Some("login".into())
        )
    );
    common::assert_rollups_equal_raw_rows(&app.pool).await;
    assert_concurrency_equals_raw_rows(&app).await;
}

/// Many sessions of session_id "0", their logins and logouts sent in a shuffled order with
/// retries, re-logins and compactions in between: the rollups equal the raw rows throughout.
#[tokio::test]
async fn rollups_equal_raw_rows_whatever_the_order_of_logouts_and_logins() {
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};
    let app = TestApp::spawn().await;
    let now = chrono::Utc::now().timestamp_millis();
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let mut sent = Vec::new();
    for user in 0..12 {
        // Each user: three sessions in one room, one after another, all with session_id "0".
        let mut t = now - 3 * common::DAY_MS + user * 7 * MINUTE_MS;
        for session in 0..3 {
            let login_ms = t;
            let logout_ms = login_ms + rng.gen_range(1_000..40 * MINUTE_MS);
            let name = format!("user-{user}");
            sent.push(login(
                "room",
                &name,
                login_ms,
                Some(["2", "3", "6"][session % 3]),
            ));
            sent.push(old_docs_logout(
                "room",
                &name,
                logout_ms,
                (user + session as i64) % 5,
            ));
            if session == 1 {
                // A re-login within the session (reconnect): the logout pairs with the latest.
                sent.push(login("room", &name, login_ms + 500, None));
            }
            t = logout_ms + rng.gen_range(1..5 * MINUTE_MS);
        }
    }
    // One session's login never arrives (the last user's last login).
    sent.remove(sent.len() - 2);
    let mut order: Vec<Value> = sent.clone();
    order.extend(sent.iter().step_by(4).cloned()); // retries
    order.shuffle(&mut rng);
    for (i, callback) in order.iter().enumerate() {
        post_ok(&app, callback).await;
        if i % 17 == 0 {
            compact(&app).await;
        }
        if i % 23 == 0 {
            common::assert_rollups_equal_raw_rows(&app.pool).await;
            assert_concurrency_equals_raw_rows(&app).await;
        }
    }
    common::assert_rollups_equal_raw_rows(&app.pool).await;
    assert_concurrency_equals_raw_rows(&app).await;
    compact(&app).await;
    common::assert_rollups_equal_raw_rows(&app.pool).await;
    assert_concurrency_equals_raw_rows(&app).await;

    // Every logout is paired with the latest login at or before it.
    let wrong: Vec<(String, Option<i64>)> = sqlx::query_as(
        "SELECT s.user_account, (extract(EPOCH FROM s.login_at) * 1000)::bigint FROM session_durations AS s
         WHERE s.login_at IS DISTINCT FROM (
             SELECT max(i.login_time) FROM room_logins AS i
             WHERE i.appid = s.appid AND i.room_id = s.room_id AND i.user_account = s.user_account
               AND i.session_id = s.session_id AND i.login_time <= s.logout_at)",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert!(wrong.is_empty(), "{wrong:?}");
    let (logouts, unpaired): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE login_at IS NULL) FROM session_durations",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(logouts, 36);
    assert_eq!(data_quality(&app).await, (36, 36, unpaired));
}

/// A login written by a transaction that did not see the logout (simulated by inserting it
/// behind the write path) is paired by the sweep that runs with each rollup compaction.
#[tokio::test]
async fn a_login_that_raced_its_logout_is_paired_by_the_compaction_sweep() {
    let app = TestApp::spawn().await;
    let now = chrono::Utc::now().timestamp_millis();
    post_ok(&app, &old_docs_logout("r", "u", now - MINUTE_MS, 0)).await;
    sqlx::query(
        "INSERT INTO room_logins (appid, room_id, user_account, session_id, login_time)
         VALUES (1, 'r', 'u', 0, to_timestamp($1 / 1000.0))",
    )
    .bind((now - 3 * MINUTE_MS) as f64)
    .execute(&app.pool)
    .await
    .unwrap();
    assert_eq!(session_of(&app, "u").await.2, None);

    compact(&app).await;

    assert_eq!(
        session_of(&app, "u").await,
        (
            Some(now - 3 * MINUTE_MS),
            Some(2 * MINUTE_MS),
            Some("login".into())
        )
    );
    common::assert_rollups_equal_raw_rows(&app.pool).await;
    assert_concurrency_equals_raw_rows(&app).await;
    // Run again: nothing more to pair, nothing added twice.
    compact(&app).await;
    common::assert_rollups_equal_raw_rows(&app.pool).await;
    assert_concurrency_equals_raw_rows(&app).await;
}
