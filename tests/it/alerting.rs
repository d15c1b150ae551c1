//! Alerting (issue 21): the logout counter behind the Prometheus rules of
//! `deploy/prometheus/`, those rules against a real Prometheus and Alertmanager, the Grafana
//! dashboards' queries, and zegolog's own webhook notifier.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::json;
use zegolog::http::AppState;
use zegolog::ingest::{BatchConfig, Ingest};
use zegolog::metrics::Metrics;
use zegolog::store::Store;

use crate::common::{self, signed, vendor_sample, TestApp};

/// A room_logout of `appid` with reason `reason` (a distinct session per `n`).
fn logout(appid: &str, reason: i32, n: u64) -> serde_json::Value {
    let mut callback = vendor_sample();
    callback["appid"] = json!(appid);
    callback["reason"] = json!(reason.to_string());
    callback["session_id"] = json!((792_462_300_429_684_736u64 + n).to_string());
    callback
}

async fn metrics_text(app: &TestApp) -> String {
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.unwrap()
}

#[tokio::test]
async fn stored_logouts_are_counted_by_app_and_reason_and_duplicates_are_not() {
    let pool = common::migrated_pool().await;
    // One appid labelled on its own: the second app seen is `other`.
    let metrics = Arc::new(Metrics::new(1));
    let (ingest, _tasks) = Ingest::start(
        Store::from_pool(pool.clone()),
        None,
        BatchConfig::default(),
        metrics.clone(),
    );
    let state = AppState::with_ingest(common::test_verifier(600), ingest, metrics);
    let app = TestApp::serve_state(state, pool).await;

    for (appid, reason, n) in [
        ("1", 2, 1),
        ("1", 2, 2),
        ("1", 0, 3),
        ("2", 1, 4),
        ("1", 9, 5),
    ] {
        let (status, body) = app.post_json(&signed(logout(appid, reason, n))).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::OK, Some("stored"))
        );
    }
    // A retried delivery (new signature, same logout) is a duplicate: not counted again.
    let (status, body) = app.post_json(&signed(logout("1", 2, 1))).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::OK, Some("duplicate"))
    );

    let text = metrics_text(&app).await;
    for (line, what) in [
        (
            r#"zegolog_logouts_total{appid="1",reason="connection_lost"} 2"#,
            "two stored, one duplicate",
        ),
        (
            r#"zegolog_logouts_total{appid="1",reason="normal"} 1"#,
            "reason 0",
        ),
        (
            r#"zegolog_logouts_total{appid="1",reason="unknown"} 1"#,
            "a code beyond 4",
        ),
        (
            r#"zegolog_logouts_total{appid="1",reason="kicked_out"} 0"#,
            "every reason of a seen app exists at 0",
        ),
        (
            r#"zegolog_logouts_total{appid="other",reason="heartbeat_timeout"} 1"#,
            "the app beyond the bound",
        ),
        ("zegolog_database_ready 1", "measured at the scrape"),
    ] {
        assert!(text.contains(line), "{what}: no {line} in\n{text}");
    }
    assert!(!text.contains(r#"appid="2""#), "{text}");
    assert_eq!(
        text.matches("zegolog_logouts_total{").count(),
        12,
        "six reasons for app 1 and for other:\n{text}"
    );
    assert_eq!(app.count("room_logouts").await, 5);
}
