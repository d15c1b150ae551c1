//! A database outage: zegolog answers 503 quickly so the sender retries, and recovers by itself.
//!
//! This test stops and starts PostgreSQL, so it runs its own private server, never a shared one.

use crate::common;

use std::time::{Duration, Instant};

use common::{lazy_pool, signed, test_verifier, vendor_sample, OwnPostgres, TestApp};
use reqwest::StatusCode;
use zegolog::store::{PoolConfig, Store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_database_gives_503_and_the_retry_succeeds_once_it_is_back() {
    let mut pg = OwnPostgres::start("zegolog-outage-").await;
    let store = Store::connect_lazy(&pg.url(), &PoolConfig::default()).unwrap();
    store.migrate().await.unwrap();
    let app = TestApp::serve(test_verifier(600), store.clone(), lazy_pool(&pg.url())).await;
    let mut first = vendor_sample();
    first["session_id"] = serde_json::json!("1");
    assert_eq!(app.post_json(&signed(first)).await.0, StatusCode::OK);

    pg.stop().await;
    let started = Instant::now();
    let (status, body) = app.post_json(&signed(vendor_sample())).await;
    let took = started.elapsed();
    let ready = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .status();

    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["code"], "database_unavailable");
    assert!(took < Duration::from_secs(2), "answered after {took:?}");
    assert_eq!(ready, StatusCode::SERVICE_UNAVAILABLE);

    pg.restart().await;
    // The sender's retry: same business fields, new timestamp, nonce and signature.
    let (status, body) = app.post_json(&signed(vendor_sample())).await;

    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::OK, Some("stored")),
        "{body}"
    );
    assert_eq!(app.count("room_logouts").await, 2);
}
