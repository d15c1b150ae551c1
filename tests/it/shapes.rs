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
                SELECT appid, room_id, minute, delta FROM concurrency_pending
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
        let callback = resign(callback);
        let fields = zegolog::callback::Fields::parse(
            callback.to_string().as_bytes(),
            zegolog::callback::Encoding::Json,
        )
        .unwrap();
        let envelope = zegolog::callback::Envelope::from_fields(&fields).unwrap();
        verifier
            .verify(&envelope, chrono::Utc::now().timestamp())
            .unwrap();
        zegolog::callback::Received::new(&envelope, &fields, zegolog::callback::Encoding::Json)
            .signed_by(&envelope)
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
        let mut t = now - 3 * 86_400_000 + user * 7 * MINUTE_MS;
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

#[tokio::test]
async fn login_term_type_and_callback_data_are_typed_and_durations_break_down_by_platform() {
    let app = TestApp::spawn().await;
    let now = chrono::Utc::now().timestamp_millis();
    for (user, term_type, minutes) in [("a", "3", 2), ("b", "3", 4), ("c", "7", 10), ("d", "32", 1)]
    {
        let login_ms = now - 30 * MINUTE_MS;
        post_ok(&app, &login("r", user, login_ms, Some(term_type))).await;
        let mut logout = common::vendor_sample();
        for (k, v) in [
            ("room_id", json!("r")),
            ("user_account", json!(user)),
            ("session_id", json!("0")),
            ("login_time", json!(login_ms.to_string())),
            (
                "logout_time",
                json!((login_ms + minutes * MINUTE_MS).to_string()),
            ),
            ("reason", json!(if user == "c" { "2" } else { "0" })),
        ] {
            logout[k] = v;
        }
        post_ok(&app, &logout).await;
    }
    // A logout of the old docs takes its platform from the login it is paired with.
    post_ok(&app, &login("r", "e", now - 20 * MINUTE_MS, Some("6"))).await;
    post_ok(&app, &old_docs_logout("r", "e", now - 10 * MINUTE_MS, 1)).await;

    let (term_type, callback_data, role): (Option<i32>, Option<String>, Option<i32>) =
        sqlx::query_as(
            "SELECT term_type, callback_data, user_role FROM room_logins WHERE user_account = 'c'",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(
        (term_type, callback_data.as_deref(), role),
        (Some(7), Some("{\"from\":\"lobby\"}"), Some(2))
    );
    let platforms: Vec<(String, Option<i32>, String)> = sqlx::query_as(
        "SELECT user_account, platform_code, platform FROM session_durations ORDER BY user_account",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        platforms,
        [
            ("a".into(), Some(3), "android".into()),
            ("b".into(), Some(3), "android".into()),
            ("c".into(), Some(7), "mini_program".into()),
            ("d".into(), Some(32), "unknown".into()),
            ("e".into(), Some(6), "web".into()),
        ]
    );
    let rows: Vec<(String, i64, f64, f64, i64, i64, i64)> = sqlx::query_as(
        "SELECT platform, sessions, p50_s, p90_s, normal, connection_lost, heartbeat_timeout
         FROM platform_daily ORDER BY platform",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        rows,
        [
            ("android".into(), 2, 120.0, 240.0, 2, 0, 0),
            ("mini_program".into(), 1, 600.0, 600.0, 0, 1, 0),
            ("unknown".into(), 1, 60.0, 60.0, 1, 0, 0),
            ("web".into(), 1, 600.0, 600.0, 0, 0, 1),
        ]
    );
    for code in [0, 1, 2, 3, 4, 5, 6, 7, 32, 99] {
        let name: String = sqlx::query_scalar("SELECT zegolog_platform_name($1)")
            .bind(code)
            .fetch_one(&app.pool)
            .await
            .unwrap();
        assert!(!name.is_empty());
    }
}

fn url_encoded(callback: &Value) -> String {
    percent_encoding::utf8_percent_encode(&callback.to_string(), percent_encoding::NON_ALPHANUMERIC)
        .to_string()
}

#[tokio::test]
async fn url_encoded_json_body_is_decoded_once_with_any_content_type() {
    let app = TestApp::spawn().await;
    for (i, content_type) in [
        Some("application/json"),
        Some("application/x-www-form-urlencoded"),
        None,
    ]
    .into_iter()
    .enumerate()
    {
        let mut callback = common::vendor_sample();
        callback["session_id"] = json!(i.to_string());
        // A nickname that is itself percent-encoded text stays as sent: decoded once only.
        callback["user_nickname"] = json!("100%25 %E5%BC%A0");
        let body = url_encoded(&resign(callback));
        assert!(body.starts_with("%7B%22"), "{body}");
        let (status, answer) = app.post(content_type, body).await;
        assert_eq!(status, StatusCode::OK, "{content_type:?}: {answer}");
        assert_eq!(answer["code"], "stored");
    }
    let nicknames: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT user_nickname FROM room_logouts")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(nicknames, ["100%25 %E5%BC%A0"]);
    assert_eq!(app.count("room_logouts").await, 3);
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

async fn post_encoded(app: &TestApp, encoding: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let response = app
        .client
        .post(app.url("/zego/callback"))
        .header("content-type", "application/json")
        .header("content-encoding", encoding)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn gzip_body_is_inflated_and_other_encodings_get_415() {
    let app = TestApp::spawn().await;
    let callback = resign(common::vendor_sample());
    let (status, answer) = post_encoded(&app, "gzip", gzip(callback.to_string().as_bytes())).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["code"], "stored");
    assert_eq!(app.count("room_logouts").await, 1);

    let (status, answer) = post_encoded(&app, "br", callback.to_string().into_bytes()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{answer}");
    assert_eq!(answer["code"], "unsupported_content_encoding");

    let (status, answer) = post_encoded(&app, "gzip", b"not gzip at all".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["code"], "invalid_content_encoding");
}

#[tokio::test]
async fn gzip_bomb_is_refused_without_inflating_it_whole() {
    let app = TestApp::spawn().await;
    // 60 MiB of zeros after a valid start, under 64 KiB compressed (so within the body limit as
    // sent), a thousand times the limit once inflated.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder
        .write_all(b"{\"event\":\"room_logout\",\"pad\":\"")
        .unwrap();
    let zeros = vec![b'0'; 1 << 20];
    for _ in 0..60 {
        encoder.write_all(&zeros).unwrap();
    }
    let bomb = encoder.finish().unwrap();
    assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
    let started = std::time::Instant::now();
    let (status, answer) = post_encoded(&app, "gzip", bomb).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_eq!(answer["code"], "payload_too_large");
    // Inflating it whole takes far longer (and 60 MiB); stopping past 64 KiB takes milliseconds.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

/// Signs a callback of another product: PascalCase (or given) field names, a timestamp in
/// seconds or milliseconds as text, the signature over that text.
fn sign_product(
    mut callback: Value,
    names: (&str, &str, &str),
    timestamp: String,
    secret: &str,
) -> Value {
    let nonce = rand::random::<u64>().to_string();
    callback[names.2] = json!(sign(secret, &timestamp, &nonce));
    callback[names.0] = if callback.get(names.0).is_some_and(Value::is_number) {
        json!(timestamp.parse::<i64>().unwrap())
    } else {
        json!(timestamp)
    };
    callback[names.1] = json!(nonce);
    callback
}

#[tokio::test]
async fn other_products_are_verified_archived_and_ledgered() {
    let app = TestApp::spawn().await;
    let now = chrono::Utc::now();
    let secs = now.timestamp().to_string();
    let millis = now.timestamp_millis().to_string();
    let pascal = ("Timestamp", "Nonce", "Signature");
    let cases = [
        // Stream transcoding / whiteboard style: PascalCase, appid spelt three ways.
        (
            json!({"Event":"stream_mix_start","Appid":1,"TaskId":"t-1"}),
            pascal,
            secs.clone(),
            "stream_mix_start",
        ),
        (
            json!({"Event":"file_converted","AppId":"1","FileId":"f"}),
            pascal,
            secs.clone(),
            "file_converted",
        ),
        (
            json!({"Event":"player_stop","AppID":1,"Timestamp":0}),
            pascal,
            secs.clone(),
            "player_stop",
        ),
        // Cloud recording: app_id and a numeric event_type, no event.
        (
            json!({"app_id":1,"event_type":3,"task_id":"rec-1","sequence":7}),
            ("timestamp", "nonce", "signature"),
            secs.clone(),
            "cloud_recording:3",
        ),
        // AI agent / speech recognition: Timestamp in milliseconds.
        (
            json!({"Event":"Exception","AppId":1,"AgentInstanceId":"ai-1","Timestamp":0}),
            pascal,
            millis.clone(),
            "Exception",
        ),
        (
            json!({"Event":"asr_result","AppId":1,"Text":"你好"}),
            pascal,
            millis.clone(),
            "asr_result",
        ),
    ];
    for (body, names, timestamp, event) in cases {
        let good = sign_product(body.clone(), names, timestamp.clone(), SECRET);
        let (status, answer) = app.post_json(&good).await;
        assert_eq!(status, StatusCode::OK, "{event}: {answer}");
        assert_eq!(answer["code"], "stored", "{event}");
        let (stored_event, appid, refused): (String, i64, Option<String>) = sqlx::query_as(
            "SELECT event, appid, refused_reason FROM callback_events WHERE event = $1",
        )
        .bind(event)
        .fetch_one(&app.pool)
        .await
        .unwrap();
        assert_eq!((stored_event.as_str(), appid, refused), (event, 1, None));
        // The ledger holds its triple, signed_at in seconds.
        let signature = good[names.2].as_str().unwrap().to_owned();
        let signed_at: i64 = sqlx::query_scalar(
            "SELECT extract(EPOCH FROM signed_at)::bigint FROM signature_ledger WHERE signature = $1 AND nonce = $2",
        )
        .bind(&signature)
        .bind(good[names.1].as_str().unwrap())
        .fetch_one(&app.pool)
        .await
        .unwrap();
        assert_eq!(signed_at, now.timestamp(), "{event}");

        let mut forged = sign_product(body, names, timestamp, "not-the-secret");
        forged[names.2] = json!(forged[names.2].as_str().unwrap().replace('a', "b"));
        let (status, answer) = app.post_json(&forged).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{event}: {answer}");
        assert_eq!(answer["code"], "bad_signature");
    }
    // A millisecond Timestamp an hour old is stale, compared in seconds.
    let old = (now.timestamp_millis() - 3_600_000).to_string();
    let stale = sign_product(json!({"Event":"asr_result","AppId":1}), pascal, old, SECRET);
    let (status, answer) = app.post_json(&stale).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("stale_timestamp"))
    );
}

#[tokio::test]
async fn in_app_chat_room_create_is_archived_as_its_own_kind() {
    let app = TestApp::spawn().await;
    let chat = json!({"appid":"1","event":"room_create","room_id":"chat-1","room_name":"Lobby",
                      "operator_account":"userA","nonce":"350176","signature":"signature",
                      "timestamp":1499676978});
    let (status, answer) = app.post_json(&resign(chat)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["code"], "stored");
    let (event, operator, refused): (String, String, Option<String>) = sqlx::query_as(
        "SELECT event, body->>'operator_account', refused_reason FROM callback_events",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        (event.as_str(), operator.as_str(), refused),
        ("room_create", "userA", None)
    );
    assert_eq!(app.count("room_lifecycle_events").await, 0);
    // An RTC room_create without room_session_id is still a broken lifecycle: quarantined.
    let broken =
        json!({"appid":"1","event":"room_create","room_id":"r","room_create_time":"1499676978027"});
    let (status, answer) = app.post_json(&resign(broken)).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::OK, Some("quarantined"))
    );
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
