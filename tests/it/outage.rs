//! PostgreSQL going away and coming back while zegolog serves, or down when it starts: without a
//! spool the sender gets a quick 503 and its retry succeeds once the database is back; with one,
//! every callback is acknowledged through an outage longer than the sender's retry window, and
//! stored exactly once afterwards, without a restart.
//!
//! These tests stop and start PostgreSQL, so each runs its own private server, never a shared
//! one. The in-process app serves the first; the others run `zegolog serve` as a process.

use crate::common;

use std::time::{Duration, Instant};

use common::served::{
    client, load, logout, logouts_of_run, pool, post, readyz, serve_env, wait_drained, Rig,
};
use common::{
    assert_nothing_lost, lazy_pool, serve_answering, signed, test_verifier, vendor_sample,
    OwnPostgres, TestApp,
};
use reqwest::StatusCode;
use zegolog::store::{PoolConfig, Store};
use zegolog::tools::loadtest;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_longer_than_the_retry_window_under_load_loses_nothing() {
    let mut rig = Rig::new("zegolog-outage-load-").await;
    let served = rig.serve();
    let args = load(&served, &rig, 8, 80);

    let run = tokio::spawn(async move { loadtest::run(&args).await.unwrap() });
    tokio::time::sleep(Duration::from_secs(5)).await;
    rig.stop_db().await;
    // ZEGOCLOUD gives up on a callback after about 62 s of failures: stay down longer.
    tokio::time::sleep(Duration::from_secs(66)).await;
    rig.start_db().await;
    let report = run.await.unwrap();

    assert_nothing_lost(&report);
    let non_2xx: u64 = report.requests - report.successes();
    assert_eq!(
        non_2xx, 0,
        "the spool answers 2xx through the outage: {report}"
    );
    served.terminate_having_spooled("the outage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_started_during_an_outage_spools_past_the_retry_window_then_stores_each_once() {
    // A new cluster, never migrated, and down when zegolog starts.
    let mut pg = OwnPostgres::start("zegolog-faults-start-").await;
    pg.stop().await;
    let data_dir = pg.dir.join("zegolog");
    std::fs::create_dir_all(&data_dir).unwrap();
    let url = pg.url();
    let served = serve_answering(&data_dir, &pg.dir, &serve_env(&url, &[]));
    let client = client();

    let (status, ready) = readyz(&client, &served).await;
    assert_eq!(status, 200, "{ready}");
    assert_ne!(ready["database_state"], "ready", "{ready}");
    assert_eq!(ready["spool"], "ok", "{ready}");

    // Longer than ZEGOCLOUD's ~62 s of retries: every callback must be acknowledged.
    let started = Instant::now();
    let mut unique = 0u64;
    let mut answers = std::collections::BTreeMap::<(u16, String), u64>::new();
    while started.elapsed() < Duration::from_secs(65) {
        let answer = post(&client, &served, &logout("start", unique)).await;
        *answers.entry(answer).or_default() += 1;
        if unique.is_multiple_of(4) {
            // The sender's retry of an earlier callback: a new signature, the same business fields.
            let answer = post(&client, &served, &logout("start", unique / 2)).await;
            *answers.entry(answer).or_default() += 1;
        }
        unique += 1;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        answers.keys().collect::<Vec<_>>(),
        [&(200, "spooled".to_owned())],
        "{answers:?}\n{}",
        served.log_text()
    );

    pg.restart().await;
    wait_drained(&client, &served, Duration::from_secs(60)).await;
    let db = pool(&url).await;
    assert_eq!(logouts_of_run(&db, "start").await, unique as i64);
    assert_eq!(
        post(&client, &served, &logout("start", unique)).await,
        (200, "stored".to_owned())
    );
    let log = served.kill9();
    assert!(
        log.contains("the database is ready"),
        "logs the change of state:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_spool_serve_answers_503_until_the_database_is_ready() {
    let mut pg = OwnPostgres::start("zegolog-faults-nospool-").await;
    pg.stop().await;
    let data_dir = pg.dir.join("zegolog");
    std::fs::create_dir_all(&data_dir).unwrap();
    let url = pg.url();
    let served = serve_answering(
        &data_dir,
        &pg.dir,
        &serve_env(&url, &[("ZEGOLOG_SPOOL_MAX_MB", "0")]),
    );
    let client = client();

    assert_eq!(
        post(&client, &served, &logout("nospool", 1)).await,
        (503, "database_unavailable".to_owned())
    );
    let (status, ready) = readyz(&client, &served).await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["spool"], "off", "{ready}");

    pg.restart().await;
    tokio::task::block_in_place(|| served.wait_for_database());
    assert_eq!(
        post(&client, &served, &logout("nospool", 1)).await,
        (200, "stored".to_owned())
    );
    served.kill9();
}
