//! Receiving callbacks over real HTTP with real signatures, checked against a real PostgreSQL.
//! Most tests drive the router; the last runs the whole server as the binary does
//! (`zegolog::server::run`), in-process.

use crate::common;

use common::{sign_with, signed, vendor_sample, TestApp, ARCHIVE, SECRET};
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn stored_logouts(app: &TestApp) -> i64 {
    app.count("room_logouts").await
}

#[tokio::test]
async fn vendor_sample_is_stored_with_its_duration() {
    let app = TestApp::spawn().await;

    let (status, body) = app.post_json(&signed(vendor_sample())).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["code"], "stored");
    let row: (i64, String, String, String, i64, String, String, String) = sqlx::query_as(
        "SELECT appid, room_seq::text, session_id::text, user_nickname, duration_ms, reason, role, user_account
         FROM session_durations",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        row,
        (
            1,
            "6085791336856668982".into(),
            "792462300429684736".into(),
            "888120154".into(),
            4326,
            "normal".into(),
            "host".into(),
            "888120154".into()
        )
    );
    let (event, content_type, body_appid): (String, String, String) = sqlx::query_as(&format!(
        "SELECT event, content_type, body::jsonb->>'appid' FROM {ARCHIVE}"
    ))
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        (event.as_str(), content_type.as_str(), body_appid.as_str()),
        ("room_logout", "application/json", "1")
    );
}

#[tokio::test]
async fn form_body_is_url_decoded_and_stored_like_json() {
    let app = TestApp::spawn().await;
    let mut callback = vendor_sample();
    callback["user_nickname"] = json!("张三 & co+ 100%");

    let (status, body) = app.post_form(&signed(callback)).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    let (nickname, duration, content_type): (String, i64, String) = sqlx::query_as(
        "SELECT user_nickname, duration_ms, (SELECT content_type FROM room_logouts)
         FROM session_durations",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(nickname, "张三 & co+ 100%");
    assert_eq!(duration, 4326);
    assert_eq!(content_type, "application/x-www-form-urlencoded");
}

#[tokio::test]
async fn number_typed_fields_are_accepted() {
    let app = TestApp::spawn().await;
    let callback = json!({"event":"room_logout","appid":1,"room_id":"r1","room_seq":6085791336856668982u64,
        "user_account":"u1","user_nickname":"n","session_id":792462300429684736u64,
        "login_time":1663740623660u64,"logout_time":1663740627986u64,"reason":2,"user_role":2,"user_update_seq":13});
    let mut callback = callback;
    let timestamp = chrono::Utc::now().timestamp();
    sign_with(&mut callback, SECRET, &timestamp.to_string());
    callback["timestamp"] = json!(timestamp);

    let (status, body) = app.post_json(&callback).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    let (duration, reason, role, seq): (i64, String, String, String) =
        sqlx::query_as("SELECT duration_ms, reason, role, room_seq::text FROM session_durations")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        (duration, reason.as_str(), role.as_str()),
        (4326, "connection_lost", "audience")
    );
    assert_eq!(seq, "6085791336856668982");
}

#[tokio::test]
async fn max_u64_ids_are_stored_exactly() {
    let app = TestApp::spawn().await;
    // Sent as raw JSON numbers: above 2^63, and far above 2^53 where a float loses digits.
    let body = signed(vendor_sample())
        .to_string()
        .replace("\"6085791336856668982\"", "18446744073709551615")
        .replace("\"792462300429684736\"", "18446744073709551614");

    let (status, answer) = app.post(Some("application/json"), body).await;

    assert_eq!(status, StatusCode::OK, "{answer}");
    let (room_seq, session_id): (String, String) =
        sqlx::query_as("SELECT room_seq::text, session_id::text FROM room_logouts")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(room_seq, "18446744073709551615");
    assert_eq!(session_id, "18446744073709551614");
}

#[tokio::test]
async fn session_id_zero_for_two_users_in_the_same_ms_gives_two_rows() {
    let app = TestApp::spawn().await;
    for user in ["alice", "bob"] {
        let mut callback = vendor_sample();
        callback["session_id"] = json!("0");
        callback["user_account"] = json!(user);
        let (status, body) = app.post_json(&signed(callback)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["code"], "stored");
    }

    assert_eq!(stored_logouts(&app).await, 2);
}

/// A logout is kept once, with its body, in its typed row; a variant (its natural key sent
/// again with another content) leaves the typed row and the rollups as they were and is kept in
/// the archive, once however often it comes (in one batch: `import::a_variant_in_the_same_batch_*`).
#[tokio::test]
async fn a_variant_of_a_stored_logout_is_archived_beside_it() {
    let app = TestApp::spawn().await;
    let mut variant = vendor_sample();
    variant["user_nickname"] = json!("renamed");

    let first = app.post_json(&signed(vendor_sample())).await;
    let (bodies, in_events): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM room_logouts WHERE body IS NOT NULL),
                (SELECT count(*) FROM callback_events)",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        (bodies, in_events),
        (1, 0),
        "the logout's body is in its row only"
    );
    let again = app.post_json(&signed(variant.clone())).await;
    let retried = app.post_json(&signed(variant)).await;

    assert_eq!(
        [&first, &again, &retried].map(|(status, body)| (*status, body["code"].clone())),
        [
            (StatusCode::OK, json!("stored")),
            (StatusCode::OK, json!("duplicate")),
            (StatusCode::OK, json!("duplicate"))
        ]
    );
    let nickname: String = sqlx::query_scalar("SELECT user_nickname FROM room_logouts")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(
        nickname, "888120154",
        "the typed row is the first content's"
    );
    let archived: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT body::jsonb->>'user_nickname' FROM {ARCHIVE} ORDER BY 1"
    ))
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(archived, ["888120154", "renamed"]);
    let sessions: i64 = sqlx::query_scalar("SELECT sum(sessions)::bigint FROM logout_rollup_all")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(sessions, 1, "counted once");
}

#[tokio::test]
async fn retried_callback_is_stored_once() {
    let app = TestApp::spawn().await;
    let first = signed(vendor_sample());
    let retry = signed(vendor_sample());
    assert_ne!(first["signature"], retry["signature"]);

    let (first_status, first_body) = app.post_json(&first).await;
    let (retry_status, retry_body) = app.post_json(&retry).await;
    // The same delivery again, byte for byte, and the retry in the other encoding.
    let (again_status, _) = app.post_json(&first).await;
    let (form_status, _) = app.post_form(&signed(vendor_sample())).await;

    assert_eq!(
        (first_status, first_body["code"].clone()),
        (StatusCode::OK, json!("stored"))
    );
    assert_eq!(
        (retry_status, retry_body["code"].clone()),
        (StatusCode::OK, json!("duplicate"))
    );
    assert_eq!(
        (again_status, form_status),
        (StatusCode::OK, StatusCode::OK)
    );
    assert_eq!(stored_logouts(&app).await, 1);
    assert_eq!(app.archived().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_duplicates_give_one_row_and_fifty_2xx() {
    let app = TestApp::spawn().await;
    let deliveries: Vec<Value> = (0..50).map(|_| signed(vendor_sample())).collect();

    let mut tasks = tokio::task::JoinSet::new();
    for delivery in deliveries {
        let app = app.clone();
        tasks.spawn(async move { app.post_json(&delivery).await });
    }
    let answers = tasks.join_all().await;

    let statuses: Vec<_> = answers.iter().map(|(status, _)| *status).collect();
    assert!(statuses.iter().all(|s| s.is_success()), "{statuses:?}");
    let stored = answers
        .iter()
        .filter(|(_, b)| b["code"] == "stored")
        .count();
    assert_eq!(stored, 1, "exactly one delivery stores the row");
    assert_eq!(stored_logouts(&app).await, 1);
    assert_eq!(app.archived().await, 1);
}

/// Each refused request: its status, its code, and nothing stored.
async fn assert_refused(
    app: &TestApp,
    answer: (StatusCode, Value),
    status: StatusCode,
    code: &str,
) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["code"], code, "{}", answer.1);
    assert!(answer.1["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(stored_logouts(app).await, 0);
    assert_eq!(app.archived().await, 0);
}

#[tokio::test]
async fn bad_signature_is_refused_and_nothing_stored() {
    let app = TestApp::spawn().await;
    let mut callback = signed(vendor_sample());
    callback["signature"] = json!("5bd59fd62953a8059fb7eaba95720f66d19e4517");

    let answer = app.post_json(&callback).await;

    assert_refused(&app, answer, StatusCode::UNAUTHORIZED, "bad_signature").await;
}

#[tokio::test]
async fn signature_of_another_app_is_refused() {
    let app = TestApp::spawn().await;
    let mut callback = vendor_sample();
    callback["appid"] = json!("2");
    sign_with(
        &mut callback,
        SECRET,
        &chrono::Utc::now().timestamp().to_string(),
    );

    let answer = app.post_json(&callback).await;

    assert_refused(&app, answer, StatusCode::UNAUTHORIZED, "bad_signature").await;
}

#[tokio::test]
async fn stale_timestamp_is_refused_and_nothing_stored() {
    let app = TestApp::spawn().await;
    let mut callback = vendor_sample();
    let an_hour_ago = chrono::Utc::now().timestamp() - 3600;
    sign_with(&mut callback, SECRET, &an_hour_ago.to_string());

    let answer = app.post_json(&callback).await;

    assert_refused(&app, answer, StatusCode::UNAUTHORIZED, "stale_timestamp").await;
}

#[tokio::test]
async fn unknown_appid_is_refused_and_nothing_stored() {
    let app = TestApp::spawn().await;
    let mut callback = vendor_sample();
    callback["appid"] = json!("999");
    let callback = signed(callback);

    let answer = app.post_json(&callback).await;

    assert_refused(&app, answer, StatusCode::UNAUTHORIZED, "unknown_appid").await;
}

#[tokio::test]
async fn oversize_body_is_refused_with_413() {
    let app = TestApp::spawn().await;
    let mut callback = signed(vendor_sample());
    callback["user_nickname"] = json!("x".repeat(70 * 1024));

    let answer = app.post_json(&callback).await;

    assert_refused(
        &app,
        answer,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
}

#[tokio::test]
async fn malformed_bodies_are_refused_with_400() {
    let app = TestApp::spawn().await;
    let cases: [(Option<&str>, &[u8], &str); 9] = [
        (
            Some("application/json"),
            b"{\"event\": \"room_logout\",",
            "malformed_body",
        ),
        (Some("application/json"), b"[1, 2, 3]", "malformed_body"),
        (
            Some("application/json"),
            b"{\"appid\": 1, \"appid\": 2}",
            "malformed_body",
        ),
        (Some("application/json"), b"\xff\xfe{}", "malformed_body"),
        (
            Some("application/x-www-form-urlencoded"),
            b"a=%ff%fe",
            "malformed_body",
        ),
        (Some("text/plain"), b"hello", "unsupported_content_type"),
        (Some("application/json"), b"", "empty_body"),
        (Some("application/x-www-form-urlencoded"), b"", "empty_body"),
        (None, b"", "empty_body"),
    ];
    for (content_type, body, code) in cases {
        let answer = app.post(content_type, body.to_vec()).await;
        assert_refused(&app, answer, StatusCode::BAD_REQUEST, code).await;
    }
}

#[tokio::test]
async fn missing_or_invalid_signature_fields_are_refused_with_400() {
    let app = TestApp::spawn().await;
    for (field, value, code) in [
        ("signature", Value::Null, "missing_field"),
        ("nonce", Value::Null, "missing_field"),
        ("timestamp", Value::Null, "missing_field"),
        ("appid", Value::Null, "missing_field"),
        ("event", Value::Null, "missing_field"),
        ("timestamp", json!("yesterday"), "invalid_field"),
        ("appid", json!("-1"), "invalid_field"),
        ("signature", json!({"nested": true}), "invalid_field"),
    ] {
        let mut callback = signed(vendor_sample());
        match value {
            Value::Null => {
                callback.as_object_mut().unwrap().remove(field);
            }
            value => callback[field] = value,
        }
        let answer = app.post_json(&callback).await;
        assert_refused(&app, answer, StatusCode::BAD_REQUEST, code).await;
    }
}

#[tokio::test]
async fn unknown_event_is_kept_and_answered_2xx() {
    let app = TestApp::spawn().await;
    let callback = signed(json!({"event": "stream_create", "appid": "1",
        "stream_id": "s1", "extra": {"nested": [1, 2, 18446744073709551615u64]}}));

    let (status, body) = app.post_json(&callback).await;
    let (retry_status, retry_body) = app.post_json(&signed(callback.clone())).await;

    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::OK, json!("stored"))
    );
    assert_eq!(
        (retry_status, retry_body["code"].clone()),
        (StatusCode::OK, json!("duplicate"))
    );
    let (event, stream_id, big): (String, String, String) = sqlx::query_as(
        "SELECT event, body::jsonb->>'stream_id', body::jsonb#>>'{extra,nested,2}' FROM callback_events",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        (event.as_str(), stream_id.as_str(), big.as_str()),
        ("stream_create", "s1", "18446744073709551615")
    );
    assert_eq!(stored_logouts(&app).await, 0);
}

#[tokio::test]
async fn unusable_authentic_logout_is_quarantined_and_answered_2xx() {
    let app = TestApp::spawn().await;
    let mut callback = vendor_sample();
    callback["logout_time"] = json!("abc");

    let (status, body) = app.post_json(&signed(callback)).await;

    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::OK, json!("quarantined"))
    );
    assert_eq!(stored_logouts(&app).await, 0);
    let (reason, logout_time): (String, String) = sqlx::query_as(
        "SELECT refused_reason, body::jsonb->>'logout_time' FROM callback_events WHERE refused_reason IS NOT NULL",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(reason.contains("logout_time"), "{reason}");
    assert_eq!(logout_time, "abc");
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"zegolog_callbacks_total{event="room_logout",outcome="quarantined"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn nul_characters_are_archived_not_lost() {
    let app = TestApp::spawn().await;
    let mut callback = vendor_sample();
    callback["user_nickname"] = json!("a\u{0}b");

    let (status, body) = app.post_json(&signed(callback)).await;

    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::OK, json!("quarantined"))
    );
    let nickname: String =
        sqlx::query_scalar("SELECT body::jsonb->>'user_nickname' FROM callback_events")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(nickname, "a\u{FFFD}b");
}

#[tokio::test]
async fn health_and_unknown_routes_answer_json() {
    let app = TestApp::spawn().await;
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let missing = app.client.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["code"], "not_found");
    let wrong_method = app
        .client
        .get(app.url("/zego/callback"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
}

/// The server the binary runs, in-process: `zegolog::server::run` (as `zegolog serve` calls it)
/// on a 127.0.0.1:0 listener over a fresh, unmigrated database, with the spool, the upkeep and
/// the dashboard on. It brings the database up itself, stores a signed callback sent over real
/// HTTP once (its retry is a duplicate), compacts the rollups in the background, serves the
/// dashboard, and returns Ok once the shutdown future resolves, leaving nothing listening.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_run_stores_a_signed_callback_once_and_returns_ok_on_shutdown() {
    use std::time::{Duration, Instant};
    use zegolog::dashboard::DashboardToken;
    use zegolog::database::Location;
    use zegolog::http::ClientLimits;
    use zegolog::ingest::BatchConfig;
    use zegolog::outcome::ReusePolicy;
    use zegolog::server::{ServerConfig, SpoolConfig};
    use zegolog::spool::SpoolLimits;
    use zegolog::store::PoolConfig;
    use zegolog::upkeep::UpkeepConfig;

    const TOKEN: &str = "server-run-dashboard-token";
    let url = common::empty_database_url().await;
    let data_dir = common::temp_data_dir("zegolog-server-run-");
    let config = ServerConfig {
        database: Location::Url(url.clone()),
        time_zone: zegolog::time_zone::DEFAULT.into(),
        verifier: common::test_verifier(600),
        pool: PoolConfig::default(),
        reuse_policy: ReusePolicy::default(),
        batching: BatchConfig::default(),
        spool: Some(SpoolConfig {
            path: data_dir.join("spool.redb"),
            limits: SpoolLimits {
                max_bytes: 64 * 1024 * 1024,
                min_free_bytes: 0,
            },
        }),
        clients: ClientLimits::default(),
        upkeep: UpkeepConfig {
            compact_every: Duration::from_secs(1),
            retention: None,
        },
        dashboard: Some(DashboardToken::parse(TOKEN).unwrap()),
        metrics_max_appids: 50,
        alerts: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(zegolog::server::run(config, listener, async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let at = |path: &str| format!("http://{addr}{path}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready: Value = client
            .get(at("/readyz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if ready["database_state"] == "ready" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the database never became ready: {ready}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut answers = Vec::new();
    for _delivery in 0..2 {
        // The sender signs every delivery anew, retries included.
        let response = client
            .post(at("/zego/callback"))
            .header("content-type", "application/json")
            .body(signed(vendor_sample()).to_string())
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        answers.push((status, body["code"].as_str().unwrap().to_owned()));
    }

    assert_eq!(
        answers,
        [
            (StatusCode::OK, "stored".to_owned()),
            (StatusCode::OK, "duplicate".to_owned())
        ]
    );
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let logouts: i64 = sqlx::query_scalar("SELECT count(*) FROM room_logouts")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(logouts, 1);
    // The upkeep folds the logout's pending rollup row into the rollups.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (pending, compacted): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM pending_contributions), (SELECT count(*) FROM logout_rollup)",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if pending == 0 && compacted > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the upkeep never compacted the rollups"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let apps = client
        .get(at("/dashboard/api/apps"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(apps.status(), StatusCode::OK);
    let apps: Value = apps.json().await.unwrap();
    assert_eq!(apps["apps"][0]["appid"], 1, "{apps}");

    stop.send(()).unwrap();
    let stopped = tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .expect("server::run did not return within 30 s of the shutdown");
    assert!(matches!(stopped, Ok(Ok(()))), "{stopped:?}");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    pool.close().await;
    let _ = std::fs::remove_dir_all(&data_dir);
}
