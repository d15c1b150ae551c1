//! `zegolog loadtest` against the real server over a real socket and a real PostgreSQL: the
//! loader's figures, and its `--verify`, must agree with what the database holds.

use crate::common;

use std::time::Duration;

use common::{migrated_database_url, test_verifier, TestApp, SECRET};
use zegolog::store::Store;
use zegolog::tools::loadtest::{self, BodyEncoding, LoadtestConfig, Report};

/// `count` JSON logouts to `url` over `connections`, signed with `secret`, without retries or
/// a check of the database; the rest as `zegolog loadtest`'s defaults.
fn config(url: &str, secret: &str, count: u64, connections: u32) -> LoadtestConfig {
    LoadtestConfig {
        url: url.to_owned(),
        secret: secret.to_owned(),
        appid: 1,
        connections,
        duration_secs: None,
        count: Some(count),
        duplicates: 0.0,
        encoding: BodyEncoding::Json,
        verify_database_url: None,
        verify_timeout_secs: 120,
        request_timeout_secs: 30,
        seed: None,
    }
}

/// A server over a fresh database, and that database's URL for `--verify`.
async fn app_with_database_url() -> (TestApp, String) {
    let (url, pool) = migrated_database_url().await;
    let app = TestApp::serve(test_verifier(600), Store::from_pool(pool.clone()), pool).await;
    (app, url)
}

async fn rows_of_run(app: &TestApp, report: &Report) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM room_logouts
         WHERE appid = 1 AND session_id BETWEEN $1::numeric AND $2::numeric",
    )
    .bind(report.ledger.base.to_string())
    .bind((report.ledger.base + (loadtest::SESSION_SPAN - 1)).to_string())
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

async fn load_with_retries_is_stored_exactly_once(encoding: BodyEncoding) {
    let (app, database_url) = app_with_database_url().await;
    let url = app.url("/zego/callback");
    let args = LoadtestConfig {
        duplicates: 0.2,
        encoding,
        verify_database_url: Some(database_url),
        verify_timeout_secs: 30,
        ..config(&url, SECRET, 2000, 8)
    };

    let report = loadtest::run(&args).await.unwrap();

    assert_eq!(report.requests, 2000, "{report}");
    assert_eq!(report.successes(), 2000, "{report}");
    assert_eq!(report.transport_errors, 0, "{report}");
    assert!(report.verified_ok(), "{report}");
    assert_eq!(report.unique_sent + report.retries_sent, 2000);
    let retry_share = report.retries_sent as f64 / 2000.0;
    assert!((0.15..0.25).contains(&retry_share), "{report}");
    assert_eq!(report.acknowledged_unique, report.unique_sent, "{report}");
    let verification = report.verification.as_ref().unwrap();
    assert_eq!(verification.found, report.unique_sent, "{report}");
    assert_eq!(
        rows_of_run(&app, &report).await,
        report.unique_sent as i64,
        "{report}"
    );
    assert_eq!(app.count("room_logouts").await, report.unique_sent as i64);
    assert_eq!(app.archived().await, report.unique_sent as i64);
    assert!(report.latency_p50 <= report.latency_p99 && report.latency_p99 <= report.latency_max);
    let summary = report.to_string();
    assert!(
        summary.contains("200: 2000") && summary.contains("OK"),
        "{summary}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_load_with_retries_is_stored_exactly_once() {
    load_with_retries_is_stored_exactly_once(BodyEncoding::Json).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn form_load_with_retries_is_stored_exactly_once() {
    load_with_retries_is_stored_exactly_once(BodyEncoding::Form).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reports_missing_and_unexpected_rows() {
    let (app, database_url) = app_with_database_url().await;
    let url = app.url("/zego/callback");
    let report = loadtest::run(&config(&url, SECRET, 300, 4)).await.unwrap();
    assert!(report.verification.is_none() && report.verified_ok());
    assert_eq!(report.acknowledged_unique, 300, "{report}");

    // Lose three acknowledged logouts, and slip in one this run never sent.
    let lost: Vec<String> = report
        .ledger
        .acknowledged()
        .take(3)
        .map(|id| id.to_string())
        .collect();
    let deleted =
        sqlx::query("DELETE FROM room_logouts WHERE session_id = ANY($1::text[]::numeric[])")
            .bind(&lost)
            .execute(&app.pool)
            .await
            .unwrap();
    assert_eq!(deleted.rows_affected(), 3);
    let never_sent = report.ledger.base + loadtest::SESSION_SPAN - 1;
    sqlx::query(
        "INSERT INTO room_logouts (appid, room_id, user_account, session_id, login_time, logout_time)
         VALUES (1, 'r', 'u', $1::numeric, now(), now())",
    )
    .bind(never_sent.to_string())
    .execute(&app.pool)
    .await
    .unwrap();

    let verification =
        loadtest::verify(&database_url, 1, &report.ledger, Duration::from_millis(600))
            .await
            .unwrap();

    assert_eq!(
        (
            verification.found,
            verification.missing,
            verification.unexpected,
            verification.duplicated
        ),
        (297, 3, 1, 0),
        "{verification}"
    );
    assert!(!verification.ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_are_counted_not_acknowledged() {
    let app = TestApp::spawn().await;
    let url = app.url("/zego/callback");

    let report = loadtest::run(&config(&url, "not-the-secret", 50, 2))
        .await
        .unwrap();

    assert_eq!(report.statuses.get(&401), Some(&50), "{report}");
    assert_eq!(report.acknowledged_unique, 0);
    assert_eq!(app.count("room_logouts").await, 0);
}

#[tokio::test]
async fn unreachable_server_gives_transport_errors() {
    // A port nobody listens on: bind one, then close it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/zego/callback", listener.local_addr().unwrap());
    drop(listener);

    let report = loadtest::run(&config(&url, SECRET, 5, 1)).await.unwrap();

    assert_eq!(
        (report.requests, report.transport_errors),
        (5, 5),
        "{report}"
    );
    assert!(!report.error_samples.is_empty(), "{report}");
}
