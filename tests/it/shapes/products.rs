//! The login's terminal type and callback data, typed and broken down by platform; other products'
//! envelopes verified, archived and ledgered; the in-app chat room_create.

use super::*;

#[tokio::test]
async fn login_term_type_and_callback_data_are_typed_and_durations_break_down_by_platform() {
    let app = TestApp::spawn().await;
    // platform_daily cuts the logouts' UTC days: all the sessions (the 30 minutes before `now`)
    // on one day, whenever the test runs.
    let now = common::now_ms_clear_of_midnight();
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
    // Exact percentiles in *_exact_s; p50_s and p90_s are their 1% buckets' values, as in
    // session_duration_daily (tests/it/percentiles.rs checks them exactly).
    let rows: Vec<(String, i64, f64, f64, i64, i64, i64)> = sqlx::query_as(
        "SELECT platform, sessions, p50_exact_s, p90_exact_s, normal, connection_lost, heartbeat_timeout
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
    let within_1_percent: bool = sqlx::query_scalar(
        "SELECT bool_and(abs(p50_s - p50_exact_s) <= 0.01 * p50_exact_s
                         AND abs(p90_s - p90_exact_s) <= 0.01 * p90_exact_s)
         FROM platform_daily",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(within_1_percent);
    for code in [0, 1, 2, 3, 4, 5, 6, 7, 32, 99] {
        let name: String = sqlx::query_scalar("SELECT zegolog_platform_name($1)")
            .bind(code)
            .fetch_one(&app.pool)
            .await
            .unwrap();
        assert!(!name.is_empty());
    }
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
        // Spellings no list named, read by the rule (case and `_` ignored): digital human's
        // numeric `EventType`, named after its spelling...
        (
            json!({"AppId":1,"EventType":3,"TaskId":"dh-1","EventTime":1}),
            pascal,
            secs.clone(),
            "EventType:3",
        ),
        // ... an `event_type` as text, camel case ...
        (
            json!({"appId":"1","eventType":"task_status","taskId":"t-2"}),
            ("timeStamp", "nonce", "signature"),
            secs.clone(),
            "task_status",
        ),
        // ... and upper case with underscores.
        (
            json!({"EVENT":"player_start","APP_ID":1}),
            ("TIME_STAMP", "NONCE", "SIGNATURE"),
            secs.clone(),
            "player_start",
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
        "SELECT event, body::jsonb->>'operator_account', refused_reason FROM callback_events",
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
