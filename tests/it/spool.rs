//! The durable spool in the running app: an outage is absorbed, drained in order once
//! PostgreSQL is back, and bounded.
//!
//! These tests stop and start PostgreSQL, so each runs its own private server.

use crate::common;

use std::time::{Duration, Instant};

use common::{lazy_pool, signed, vendor_sample, OwnPostgres, TestApp};
use reqwest::StatusCode;
use serde_json::json;
use zegolog::store::{PoolConfig, Store};

struct Outage {
    pg: OwnPostgres,
    app: TestApp,
}

async fn app_with_spool(max_spool_bytes: u64) -> Outage {
    let pg = OwnPostgres::start("zegolog-spool-").await;
    let store = Store::connect_lazy(&pg.url(), &PoolConfig::default()).unwrap();
    store.migrate().await.unwrap();
    let app = TestApp::serve_with_spool(
        store,
        lazy_pool(&pg.url()),
        &pg.dir.join("spool.redb"),
        max_spool_bytes,
    )
    .await;
    Outage { pg, app }
}

impl Outage {
    async fn stop_db(&mut self) {
        self.pg.stop().await;
    }

    async fn start_db(&mut self) {
        self.pg.restart().await;
    }

    async fn readyz(&self) -> serde_json::Value {
        let response = self
            .app
            .client
            .get(self.app.url("/readyz"))
            .send()
            .await
            .unwrap();
        response.json().await.unwrap()
    }
}

fn logout(n: u32) -> serde_json::Value {
    let mut callback = vendor_sample();
    callback["session_id"] = json!(n.to_string());
    signed(callback)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outage_is_spooled_and_drained_in_order_without_restart() {
    let mut outage = app_with_spool(64 * 1024 * 1024).await;
    outage.stop_db().await;

    let mut answers = Vec::new();
    for n in 0..100 {
        answers.push(outage.app.post_json(&logout(n)).await);
    }
    // A retry of a spooled callback is spooled again and stored once.
    answers.push(outage.app.post_json(&logout(7)).await);
    let during = outage.readyz().await;

    for (status, body) in &answers {
        assert_eq!(
            (*status, body["code"].as_str()),
            (StatusCode::OK, Some("spooled")),
            "{body}"
        );
    }
    assert_eq!(during["code"], "ready", "{during}");
    assert_eq!(during["database"], false);
    assert_eq!(during["spool_depth"], 101);

    outage.start_db().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while outage.readyz().await["spool_depth"] != 0 {
        assert!(Instant::now() < deadline, "the spool did not drain");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let ids: Vec<i64> =
        sqlx::query_scalar("SELECT session_id::bigint FROM room_logouts ORDER BY id")
            .fetch_all(&outage.app.pool)
            .await
            .unwrap();
    assert_eq!(
        ids,
        (0..100).collect::<Vec<i64>>(),
        "every callback once, in arrival order"
    );
    let (status, body) = outage.app.post_json(&logout(100)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::OK, Some("stored"))
    );
    let metrics = outage
        .app
        .client
        .get(outage.app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("zegolog_spool_depth 0"), "{metrics}");
    assert!(
        metrics.contains(r#"zegolog_callbacks_total{event="room_logout",outcome="spooled"} 101"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_spool_answers_503_so_the_sender_retries() {
    let one = 1500;
    let mut outage = app_with_spool(3 * one).await;
    outage.stop_db().await;

    let mut codes = Vec::new();
    for n in 0..6 {
        let (status, body) = outage.app.post_json(&logout(n)).await;
        codes.push((status.as_u16(), body["code"].as_str().unwrap().to_owned()));
    }

    assert!(
        codes.iter().any(|(s, c)| *s == 200 && c == "spooled"),
        "{codes:?}"
    );
    assert_eq!(
        codes.last().unwrap(),
        &(503, "spool_full".to_owned()),
        "{codes:?}"
    );
    let spooled = codes.iter().filter(|(s, _)| *s == 200).count() as u64;
    assert_eq!(outage.readyz().await["spool_depth"], spooled);
}
