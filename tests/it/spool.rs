//! The durable spool itself, in the running app: what an outage sends to it drains in arrival
//! order once PostgreSQL is back, its bound in bytes answers 503, and a spool file left by an
//! earlier version drains. A disk filling under it is in `faults`, the process dying with
//! callbacks in it in `durability`, outages as the sender sees them in `outage`.
//!
//! The tests that stop and start PostgreSQL each run their own private server.

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
        self.app.readyz().await
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spool_left_by_the_unversioned_spool_drains_into_postgres() {
    // A spool file as zegolog wrote it before spool records had a version: one entry per
    // fixture, keyed from 0 in arrival order.
    let fixtures: [&[u8]; 5] = [
        include_bytes!("../fixtures/spool-v0/logout-signed.json"),
        include_bytes!("../fixtures/spool-v0/login-signed-form.json"),
        include_bytes!("../fixtures/spool-v0/other-unsigned.json"),
        include_bytes!("../fixtures/spool-v0/refused-signed.json"),
        include_bytes!("../fixtures/spool-v0/room-create-signed.json"),
    ];
    let dir = common::temp_data_dir("zegolog-spool-v0-");
    let spool_path = dir.join("spool.redb");
    {
        let callbacks: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("callbacks");
        let db = redb::Database::create(&spool_path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut table = txn.open_table(callbacks).unwrap();
            for (key, entry) in fixtures.iter().enumerate() {
                table.insert(key as u64, *entry).unwrap();
            }
        }
        txn.commit().unwrap();
    }
    let pool = common::migrated_pool().await;

    let app =
        TestApp::serve_with_spool(Store::from_pool(pool.clone()), pool, &spool_path, 1 << 20).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = app.readyz().await;
        if ready["spool_depth"] == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the spool did not drain: {ready}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let logout: (String, String, bool) =
        sqlx::query_as("SELECT session_id::text, user_account, body IS NOT NULL FROM room_logouts")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        logout,
        ("792462300429684736".into(), "888120154".into(), true)
    );
    let login: (String, Option<i32>, Option<String>) =
        sqlx::query_as("SELECT user_nickname, term_type, callback_data FROM room_logins")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(login, ("张 san".into(), Some(3), Some("hello".into())));
    let room: (String, Option<String>) =
        sqlx::query_as("SELECT event, creator FROM room_lifecycle_events")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(room, ("room_create".into(), Some("host".into())));
    // The five drain as one batch, which the store writes grouped by kind: compare by event.
    let archived: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT event, content_type, refused_reason FROM callback_events ORDER BY event",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        archived,
        [
            ("room_create".into(), "application/json".into(), None),
            (
                "room_login".into(),
                "application/x-www-form-urlencoded".into(),
                None
            ),
            (
                "room_logout".into(),
                "application/json".into(),
                Some("field `logout_time` is missing".into())
            ),
            ("stream_create".into(), "application/json".into(), None),
        ]
    );
    // The four signed ones kept their triple.
    assert_eq!(app.count("signature_ledger").await, 4);
    assert_eq!(app.archived().await, 5);
}
