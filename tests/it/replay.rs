//! Replay protection: a captured (timestamp, nonce, signature) with a forged body never reaches
//! the typed tables or the rollups, under each `--on-signature-reuse` policy, across instances,
//! restarts and the spool; quarantined callbacks can be released, once; the ledger stays bounded.
//!
//! Real PostgreSQL, real HTTP, real signatures.

use crate::common;

use std::time::{Duration, Instant};

use common::{
    lazy_pool, migrated_database_url, migrated_pool, signed, test_verifier, vendor_sample,
    OwnPostgres, TestApp,
};
use reqwest::StatusCode;
use serde_json::{json, Value};
use zegolog::outcome::{ReusePolicy, QUARANTINE_PER_SIGNATURE};
use zegolog::store::{PoolConfig, Store};
use zegolog::upkeep::LEDGER_KEEP;

/// A genuine, signed logout of session `n`.
fn logout(n: u64) -> Value {
    let mut callback = vendor_sample();
    callback["session_id"] = json!(n.to_string());
    signed(callback)
}

/// What an attacker sends with a captured callback's triple: the same timestamp, nonce and
/// signature, another user and reason.
fn forged(captured: &Value, user: &str) -> Value {
    let mut body = captured.clone();
    body["user_account"] = json!(user);
    body["user_nickname"] = json!(user);
    body["reason"] = json!("3");
    body
}

async fn app_with(policy: ReusePolicy) -> TestApp {
    let pool = migrated_pool().await;
    let store = Store::from_pool(pool.clone()).with_reuse_policy(policy);
    TestApp::serve(test_verifier(600), store, pool).await
}

async fn metrics(app: &TestApp) -> String {
    app.client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn logout_users(pool: &sqlx::PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT user_account FROM room_logouts ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// Sessions counted by the rollups (compacted and pending).
async fn rollup_sessions(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT coalesce(sum(sessions), 0)::bigint FROM logout_rollup_all")
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn reuse_reasons(pool: &sqlx::PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT refused_reason FROM callback_events
         WHERE refused_reason LIKE 'signature reuse:%' ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn first_digest_hex(pool: &sqlx::PgPool) -> String {
    // The first callback of these tests is a logout: its body is in its typed row.
    sqlx::query_scalar("SELECT encode(digest, 'hex') FROM room_logouts ORDER BY id LIMIT 1")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn forged_body_on_a_captured_signature_is_quarantined_by_default() {
    let app = TestApp::spawn().await;
    let genuine = logout(1);
    let (status, body) = app.post_json(&genuine).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::OK, Some("stored"))
    );
    let first = first_digest_hex(&app.pool).await;

    let (forged_status, forged_answer) = app.post_json(&forged(&genuine, "mallory")).await;
    // The verifier takes any case; the ledger too.
    let mut upper = forged(&genuine, "trudy");
    upper["signature"] = json!(genuine["signature"].as_str().unwrap().to_uppercase());
    let (upper_status, upper_answer) = app.post_json(&upper).await;
    // A forged login under the same triple does not reach room_logins either.
    let mut login = genuine.clone();
    login["event"] = json!("room_login");
    let (login_status, login_answer) = app.post_json(&login).await;
    let (retry_status, retry_answer) = app.post_json(&genuine).await;

    for (status, answer) in [
        (forged_status, &forged_answer),
        (upper_status, &upper_answer),
        (login_status, &login_answer),
    ] {
        assert_eq!(
            (status, answer["code"].as_str()),
            (StatusCode::OK, Some("quarantined")),
            "{answer}"
        );
    }
    assert_eq!(
        (retry_status, retry_answer["code"].as_str()),
        (StatusCode::OK, Some("duplicate")),
        "the genuine retry with the same triple and body: {retry_answer}"
    );
    assert_eq!(logout_users(&app.pool).await, ["888120154"]);
    assert_eq!(app.count("room_logins").await, 0);
    assert_eq!(rollup_sessions(&app.pool).await, 1);
    let reasons = reuse_reasons(&app.pool).await;
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    for reason in &reasons {
        assert!(
            reason.contains(&first),
            "names the first digest {first}: {reason}"
        );
    }
    let (quarantined, reuses): (i64, i64) = sqlx::query_as(
        "SELECT sum(quarantined)::bigint, sum(signature_reuses)::bigint FROM data_quality_daily",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((quarantined, reuses), (3, 3));
    let (between,): (i64,) = sqlx::query_as(
        "SELECT sum(signature_reuses)::bigint
         FROM data_quality_daily_between(NULL, now() - interval '1 hour', now() + interval '1 hour')",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(between, 3);
    let metrics = metrics(&app).await;
    assert!(
        metrics.contains(
            r#"zegolog_signature_reuse_total{policy="quarantine",action="quarantined"} 3"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn forged_body_is_refused_with_401_under_reject() {
    let app = app_with(ReusePolicy::Reject).await;
    let genuine = logout(1);
    assert_eq!(app.post_json(&genuine).await.0, StatusCode::OK);

    let (status, answer) = app.post_json(&forged(&genuine, "mallory")).await;
    let (retry_status, retry_answer) = app.post_json(&genuine).await;

    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    assert_eq!(answer["code"], "replayed_signature");
    assert!(answer["message"].as_str().unwrap().contains("another body"));
    assert_eq!(
        (retry_status, retry_answer["code"].as_str()),
        (StatusCode::OK, Some("duplicate"))
    );
    assert_eq!(logout_users(&app.pool).await, ["888120154"]);
    assert_eq!(rollup_sessions(&app.pool).await, 1);
    assert_eq!(app.archived().await, 1, "nothing of the forged body");
    let metrics = metrics(&app).await;
    assert!(
        metrics.contains(r#"zegolog_signature_reuse_total{policy="reject",action="rejected"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"zegolog_rejected_requests_total{reason="replayed_signature"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn forged_body_is_stored_and_counted_under_accept() {
    let app = app_with(ReusePolicy::Accept).await;
    let genuine = logout(1);
    assert_eq!(app.post_json(&genuine).await.0, StatusCode::OK);

    let (status, answer) = app.post_json(&forged(&genuine, "mallory")).await;
    let (retry_status, retry_answer) = app.post_json(&genuine).await;

    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::OK, Some("stored")),
        "{answer}"
    );
    assert_eq!(
        (retry_status, retry_answer["code"].as_str()),
        (StatusCode::OK, Some("duplicate"))
    );
    assert_eq!(logout_users(&app.pool).await, ["888120154", "mallory"]);
    assert_eq!(rollup_sessions(&app.pool).await, 2);
    assert!(reuse_reasons(&app.pool).await.is_empty());
    let metrics = metrics(&app).await;
    assert!(
        metrics.contains(r#"zegolog_signature_reuse_total{policy="accept",action="accepted"} 1"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_bodies_on_one_triple_in_two_instances_store_one() {
    // Two apps, each with its own writers, on one database: the race the snapshot would lose.
    let pool = migrated_pool().await;
    let a = TestApp::serve(
        test_verifier(600),
        Store::from_pool(pool.clone()),
        pool.clone(),
    )
    .await;
    let b = TestApp::serve(
        test_verifier(600),
        Store::from_pool(pool.clone()),
        pool.clone(),
    )
    .await;

    let rounds = 40;
    let mut tasks = Vec::new();
    for n in 0..rounds {
        let genuine = logout(n);
        let fake = forged(&genuine, &format!("mallory{n}"));
        let (a, b) = (a.clone(), b.clone());
        tasks.push(tokio::spawn(async move {
            let (one, two) = tokio::join!(a.post_json(&genuine), b.post_json(&fake));
            (one, two)
        }));
    }
    let mut codes = Vec::new();
    for task in tasks {
        let ((s1, b1), (s2, b2)) = task.await.unwrap();
        assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK), "{b1} {b2}");
        let mut pair = [
            b1["code"].as_str().unwrap().to_owned(),
            b2["code"].as_str().unwrap().to_owned(),
        ];
        pair.sort();
        codes.push(pair);
    }

    for pair in &codes {
        assert_eq!(pair, &["quarantined", "stored"], "{codes:?}");
    }
    let per_session: Vec<i64> = sqlx::query_scalar(
        "SELECT count(*) FROM room_logouts GROUP BY session_id ORDER BY session_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(per_session, vec![1; rounds as usize], "one body per triple");
    assert_eq!(reuse_reasons(&pool).await.len(), rounds as usize);
    assert_eq!(rollup_sessions(&pool).await, rounds as i64);
}

/// `zegolog serve` processes on one shared database, each with its own data dir (and spool).
fn serve_on(url: &str) -> common::Served {
    let dir = common::temp_data_dir("zegolog-replay-");
    common::serve(
        &dir,
        &[
            ("DATABASE_URL", url),
            ("ZEGOLOG_SECRETS", &format!("1={}", common::SECRET)),
        ],
    )
}

async fn post_to(served: &common::Served, callback: &Value) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(served.url("/zego/callback"))
        .json(callback)
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

#[tokio::test]
async fn ledger_holds_across_two_serve_processes_and_a_restart() {
    let (url, pool) = migrated_database_url().await;
    let one = serve_on(&url);
    let two = serve_on(&url);
    let genuine = logout(1);

    let first = post_to(&one, &genuine).await;
    let on_the_other = post_to(&two, &forged(&genuine, "mallory")).await;
    let (status, log) = one.terminate();
    assert!(status.success(), "{log}");
    let (status, log) = two.terminate();
    assert!(status.success(), "{log}");
    let restarted = serve_on(&url);
    let after_restart = post_to(&restarted, &forged(&genuine, "trudy")).await;
    let retry = post_to(&restarted, &genuine).await;
    let _ = restarted.terminate();

    assert_eq!(first.1["code"], "stored", "{}", first.1);
    assert_eq!(
        (on_the_other.0, on_the_other.1["code"].as_str()),
        (StatusCode::OK, Some("quarantined")),
        "{}",
        on_the_other.1
    );
    assert_eq!(
        (after_restart.0, after_restart.1["code"].as_str()),
        (StatusCode::OK, Some("quarantined")),
        "{}",
        after_restart.1
    );
    assert_eq!(retry.1["code"], "duplicate", "{}", retry.1);
    assert_eq!(logout_users(&pool).await, ["888120154"]);
    assert_eq!(reuse_reasons(&pool).await.len(), 2);
}

struct Outage {
    pg: OwnPostgres,
    app: TestApp,
}

async fn app_with_spool(policy: ReusePolicy) -> Outage {
    let pg = OwnPostgres::start("zegolog-replay-spool-").await;
    let store = Store::connect_lazy(&pg.url(), &PoolConfig::default())
        .unwrap()
        .with_reuse_policy(policy);
    store.migrate().await.unwrap();
    let app = TestApp::serve_with_spool(
        store,
        lazy_pool(&pg.url()),
        &pg.dir.join("spool.redb"),
        64 << 20,
    )
    .await;
    Outage { pg, app }
}

async fn spool_depth(app: &TestApp) -> Value {
    app.readyz().await["spool_depth"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reuse_spooled_during_an_outage_is_caught_when_drained() {
    // Under `reject`: what was spooled was answered 2xx already, so it is quarantined.
    let mut outage = app_with_spool(ReusePolicy::Reject).await;
    let before = logout(1);
    assert_eq!(outage.app.post_json(&before).await.1["code"], "stored");
    outage.pg.stop().await;

    // A reuse of a triple stored before the outage, and two bodies on one new triple, all
    // spooled: the drainer writes them in one batch.
    let during = logout(2);
    let answers = [
        outage.app.post_json(&forged(&before, "mallory")).await,
        outage.app.post_json(&during).await,
        outage.app.post_json(&forged(&during, "trudy")).await,
    ];
    for (status, answer) in &answers {
        assert_eq!(
            (*status, answer["code"].as_str()),
            (StatusCode::OK, Some("spooled")),
            "{answer}"
        );
    }
    outage.pg.restart().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while spool_depth(&outage.app).await != 0 {
        assert!(Instant::now() < deadline, "the spool did not drain");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let pool = &outage.app.pool;
    assert_eq!(logout_users(pool).await, ["888120154", "888120154"]);
    let sessions: Vec<i64> =
        sqlx::query_scalar("SELECT session_id::bigint FROM room_logouts ORDER BY id")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(sessions, [1, 2]);
    assert_eq!(rollup_sessions(pool).await, 2);
    assert_eq!(reuse_reasons(pool).await.len(), 2);
    let metrics = metrics(&outage.app).await;
    assert!(
        metrics
            .contains(r#"zegolog_signature_reuse_total{policy="reject",action="quarantined"} 2"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn released_callback_is_stored_once() {
    let (url, pool) = migrated_database_url().await;
    let app = TestApp::serve(
        test_verifier(600),
        Store::from_pool(pool.clone()),
        pool.clone(),
    )
    .await;
    let genuine = logout(1);
    app.post_json(&genuine).await;
    // Two genuine callbacks that shared a nonce by chance: the second is quarantined.
    let unlucky = forged(&genuine, "unlucky");
    assert_eq!(app.post_json(&unlucky).await.1["code"], "quarantined");
    let id: i64 = sqlx::query_scalar(
        "SELECT id FROM callback_events WHERE refused_reason LIKE 'signature reuse:%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();

    let quarantine = |args: &[&str]| {
        let output = common::zegolog()
            .arg("quarantine")
            .args(args)
            .args(["--database-url", &url])
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (listed_ok, listed, _) = quarantine(&["list", "--limit", "5"]);
    let (first_ok, first, first_err) = quarantine(&["release", &id.to_string()]);
    let after_first = (logout_users(&pool).await, rollup_sessions(&pool).await);
    let (second_ok, second, _) = quarantine(&["release", &id.to_string()]);
    let (_, listed_after, _) = quarantine(&["list"]);

    assert!(listed_ok);
    assert!(
        listed.contains(&id.to_string()) && listed.contains("signature reuse"),
        "{listed}"
    );
    assert!(first_ok, "{first}{first_err}");
    assert!(first.contains("released (stored"), "{first}");
    assert_eq!(
        after_first,
        (vec!["888120154".to_owned(), "unlucky".to_owned()], 2)
    );
    assert!(!second_ok, "releasing again is reported: {second}");
    assert!(second.contains("not quarantined"), "{second}");
    assert_eq!(
        (logout_users(&pool).await, rollup_sessions(&pool).await),
        after_first,
        "releasing twice stores once"
    );
    assert!(
        listed_after.contains("no quarantined callbacks"),
        "{listed_after}"
    );
    let quarantined: i64 = sqlx::query_scalar("SELECT count(*) FROM callback_events WHERE id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        quarantined, 0,
        "the released logout's body is in its typed row, its archive row gone"
    );
    assert_eq!(app.archived().await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_triple_puts_at_most_the_bound_in_quarantine() {
    let app = TestApp::spawn().await;
    let genuine = logout(1);
    app.post_json(&genuine).await;

    // Some one by one, the rest at once (so that several share a batch).
    let mut answers = Vec::new();
    for n in 0..6 {
        answers.push(app.post_json(&forged(&genuine, &format!("m{n}"))).await);
    }
    let at_once: Vec<_> = (6..25)
        .map(|n| {
            let app = app.clone();
            let body = forged(&genuine, &format!("m{n}"));
            tokio::spawn(async move { app.post_json(&body).await })
        })
        .collect();
    for task in at_once {
        answers.push(task.await.unwrap());
    }

    for (status, answer) in &answers {
        assert_eq!(
            (*status, answer["code"].as_str()),
            (StatusCode::OK, Some("quarantined")),
            "{answer}"
        );
    }
    assert_eq!(
        reuse_reasons(&app.pool).await.len(),
        QUARANTINE_PER_SIGNATURE as usize
    );
    assert_eq!(logout_users(&app.pool).await, ["888120154"]);
    let metrics = metrics(&app).await;
    let over = 25 - QUARANTINE_PER_SIGNATURE;
    assert!(
        metrics.contains(&format!(
            r#"zegolog_signature_reuse_total{{policy="quarantine",action="over_bound"}} {over}"#
        )),
        "{metrics}"
    );
}

async fn ledger_partitions(pool: &sqlx::PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'signature_ledger'::regclass ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ledger_partitions_are_made_ahead_and_old_ones_dropped() {
    let pool = migrated_pool().await;
    let store = Store::from_pool(pool.clone());
    let day = |offset: i64| {
        (chrono::Utc::now().date_naive() + chrono::Duration::days(offset))
            .format("signature_ledger_%Y_%m_%d")
            .to_string()
    };

    // Several instances run the upkeep at once.
    let (a, b, c) = tokio::join!(
        store.ensure_partitions(),
        store.ensure_partitions(),
        store.ensure_partitions()
    );
    a.unwrap();
    b.unwrap();
    c.unwrap();
    let made = ledger_partitions(&pool).await;
    for offset in -1..=2 {
        assert!(made.contains(&day(offset)), "{} in {made:?}", day(offset));
    }
    // A row of five days ago waited in the default partition; its day's partition takes it.
    sqlx::query(
        "INSERT INTO signature_ledger (signed_at, nonce, signature, appid, digest, first_seen)
         VALUES (now() - interval '5 days', 'old', 's', 1, '\\x00', now() - interval '5 days'),
                ('3000-01-01', 'far', 's', 1, '\\x00', now() - interval '3 days'),
                ('3000-01-01', 'far-new', 's', 1, '\\x00', now())",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("SELECT zegolog_ensure_ledger_partition((now() AT TIME ZONE 'UTC')::date - 5)")
        .execute(&pool)
        .await
        .unwrap();
    let in_old: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {}", day(-5)))
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(in_old, 1, "moved out of the default partition");

    let (dropped, again) = tokio::join!(
        store.prune_signature_ledger(LEDGER_KEEP),
        store.prune_signature_ledger(LEDGER_KEEP)
    );
    let mut dropped = dropped.unwrap();
    dropped.extend(again.unwrap());

    assert_eq!(dropped, [day(-5)]);
    let left = ledger_partitions(&pool).await;
    assert!(!left.contains(&day(-5)), "{left:?}");
    for offset in -1..=2 {
        assert!(left.contains(&day(offset)), "{} in {left:?}", day(offset));
    }
    let nonces: Vec<String> = sqlx::query_scalar("SELECT nonce FROM signature_ledger ORDER BY 1")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(
        nonces,
        ["far-new"],
        "the default partition is pruned by first_seen"
    );
}
