//! Regressions: each test reproduces a bug that the property tests of the callback parser
//! (`src/callback/proptests/`) or the HTTP fuzz (`fuzz/`) found, and that was fixed: unstorable
//! numbers and over-long keys answered 503 forever, one such callback failing its whole batch or
//! wedging the spool, deep nesting that the spool could not read back, and a 413 that closed the
//! connection without saying so.

use crate::common;
use crate::fuzz::{raw_number, BODY_LIMIT};

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{migrated_pool, signed, temp_data_dir, test_verifier, vendor_sample, TestApp};
use rand::distributions::Alphanumeric;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use zegolog::callback::{self, Encoding, Origin};
use zegolog::http::AppState;
use zegolog::ingest::{BatchConfig, Ingest};
use zegolog::metrics::Metrics;
use zegolog::server::app;
use zegolog::spool::Spool;
use zegolog::store::Store;

/// The real router over a fresh database, with the ingest configured by the test.
async fn serve_with_ingest(batch: BatchConfig, spool: Option<Arc<Spool>>) -> TestApp {
    let pool = migrated_pool().await;
    let store = Store::from_pool(pool.clone());
    let metrics = Arc::new(Metrics::default());
    let (ingest, _tasks) = Ingest::start(store.clone(), spool, batch, metrics.clone());
    let state = AppState::with_ingest(test_verifier(600), ingest, metrics);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app(state, None)).await.unwrap() });
    TestApp {
        addr,
        pool,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
    }
}

/// A validly signed callback whose body PostgreSQL's jsonb cannot hold: numeric allows at most
/// 131072 digits before the point and 16383 after it.
fn unstorable_callback(number: &str) -> Value {
    let mut callback = json!({"event": "stream_create", "appid": "1", "stream_id": "s1"});
    callback["extra"] = raw_number(number);
    signed(callback)
}

fn logout_with_session(session_id: u64) -> Value {
    let mut callback = vendor_sample();
    callback["session_id"] = json!(session_id.to_string());
    signed(callback)
}

#[tokio::test]
async fn signed_callback_with_a_number_beyond_postgres_numeric_is_not_answered_5xx() {
    let app = TestApp::spawn().await;
    for number in ["1e131072", "1e-16384", "1e1000000", "-1.5e-20000"] {
        let (status, body) = app.post_json(&unstorable_callback(number)).await;
        assert!(status.is_success(), "{number}: {status} {body}");
    }
}

#[tokio::test]
async fn signed_callback_with_long_indexed_text_is_not_answered_5xx() {
    let app = TestApp::spawn().await;
    let mut rng = StdRng::seed_from_u64(3000);
    // Incompressible text beyond btree's 2704-byte index entry limit (the index compresses).
    let long: String = (&mut rng)
        .sample_iter(Alphanumeric)
        .take(3000)
        .map(char::from)
        .collect();
    for field in ["event", "room_id", "user_account"] {
        let mut callback = vendor_sample();
        callback[field] = json!(long);
        let (status, body) = app.post_json(&signed(callback)).await;
        assert!(status.is_success(), "{field}: {status} {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_unstorable_callback_does_not_fail_the_others_in_its_batch() {
    // A long batch window puts the concurrent requests into one batch, as load does.
    let batch = BatchConfig {
        batch_size: 500,
        max_wait: Duration::from_millis(300),
        writers: 1,
    };
    let app = serve_with_ingest(batch, None).await;
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..20u64 {
        let app = app.clone();
        requests.spawn(async move {
            let callback = if i == 0 {
                unstorable_callback("1e1000000")
            } else {
                logout_with_session(1000 + i)
            };
            (i, app.post_json(&callback).await)
        });
    }
    let answers = requests.join_all().await;

    let failed: Vec<_> = answers
        .iter()
        .filter(|(i, (status, _))| *i > 0 && !status.is_success())
        .map(|(i, (status, body))| format!("#{i} {status} {}", body["code"]))
        .collect();
    assert!(failed.is_empty(), "innocent callbacks refused: {failed:?}");
    assert_eq!(app.count("room_logouts").await, 19);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_unstorable_callback_does_not_wedge_the_spool() {
    let dir = temp_data_dir("zegolog-robustness-spool-");
    let spool = Arc::new(Spool::open(&dir.join("spool.redb"), 1 << 30).unwrap());
    let app = serve_with_ingest(BatchConfig::default(), Some(spool)).await;

    let (poison_status, _) = app.post_json(&unstorable_callback("1e1000000")).await;
    let (status, body) = app.post_json(&logout_with_session(1)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.count("room_logouts").await == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let stored = app.count("room_logouts").await;
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        poison_status.is_success() && status.is_success(),
        "{status} {body}"
    );
    assert_eq!(stored, 1, "the later logout never reached PostgreSQL");
}

#[tokio::test]
async fn a_callback_nested_127_deep_survives_the_spool() {
    // The deepest body serde_json accepts: the object, then 126 arrays. The spool wraps it in
    // `Received` (two more levels) and reads it back with the same 128-level limit.
    let depth = 126;
    let body = format!(
        r#"{{"event":"stream_create","appid":"1","timestamp":"1","nonce":"n","signature":"s","deep":{}1{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let received = callback::receive(body.as_bytes(), Encoding::Json, Origin::Operator)
        .expect("the parser accepts it");
    let dir = temp_data_dir("zegolog-robustness-spool-");
    let spool = Spool::open(&dir.join("spool.redb"), 1 << 20).unwrap();

    spool.append(std::slice::from_ref(&received)).unwrap();
    let read = spool.oldest(10);

    let _ = std::fs::remove_dir_all(&dir);
    let entries = read.expect("the drainer cannot read the spool");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].1, received);
}

#[tokio::test]
async fn an_oversize_body_closes_the_connection_only_after_saying_so() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn().await;
    let size = 4 * BODY_LIMIT;
    let mut socket = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /zego/callback HTTP/1.1\r\nhost: zegolog\r\ncontent-type: application/json\r\n\
         content-length: {size}\r\n\r\n"
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(&vec![b'a'; size]).await.unwrap();

    let mut answer = vec![0; 4096];
    let n = socket.read(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]).to_ascii_lowercase();
    let closed = matches!(
        tokio::time::timeout(Duration::from_secs(2), socket.read(&mut [0; 64])).await,
        Ok(Ok(0) | Err(_))
    );

    assert!(answer.starts_with("http/1.1 413"), "{answer}");
    assert!(
        !closed || answer.contains("connection: close"),
        "the connection was closed, but the answer did not say so: {answer}"
    );
}
