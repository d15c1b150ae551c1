//! URL-encoded and gzipped bodies: decoded once with any content type, other encodings refused, a
//! gzip bomb refused without inflating it.

use super::*;

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
