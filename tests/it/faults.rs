//! Faults production brings, with real `zegolog serve` processes and a real PostgreSQL: a start
//! (or restart) while the database is down, a full disk under the spool during an outage, and a
//! storm of duplicates reaching several instances at once.
//!
//! Each test that stops PostgreSQL runs its own private server, never a shared one.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    migrated_database_url, serve, serve_answering, signed, temp_data_dir, vendor_sample,
    OwnPostgres, Served, SECRET,
};
use serde_json::{json, Value};
use sqlx::PgPool;

/// A logout of its own: session `n` of user `user-(n % 50)` in one of ten rooms. The same `n`
/// gives the same business fields (a retry).
fn logout(run: &str, n: u64) -> Value {
    static START_MS: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let start_ms = *START_MS.get_or_init(|| chrono::Utc::now().timestamp_millis() - 60_000);
    let mut callback = vendor_sample();
    let logout_ms = start_ms + n as i64;
    callback["room_id"] = json!(format!("{run}-room-{}", n % 10));
    callback["user_account"] = json!(format!("user-{}", n % 50));
    callback["session_id"] = json!((1_000_000 + n).to_string());
    callback["login_time"] = json!((logout_ms - 1_000 - (n as i64 % 97) * 7_919).to_string());
    callback["logout_time"] = json!(logout_ms.to_string());
    callback["reason"] = json!((n % 5).to_string());
    callback
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Posts a freshly signed copy of `callback`; the status and the answer's code.
async fn post(client: &reqwest::Client, served: &Served, callback: &Value) -> (u16, String) {
    match client
        .post(served.url("/zego/callback"))
        .header("content-type", "application/json")
        .body(signed(callback.clone()).to_string())
        .send()
        .await
    {
        Ok(response) => {
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, body["code"].as_str().unwrap_or("").to_owned())
        }
        Err(error) => (0, error.to_string()),
    }
}

async fn readyz(client: &reqwest::Client, served: &Served) -> (u16, Value) {
    let response = client.get(served.url("/readyz")).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Waits until `/readyz` says the database is ready and the spool is empty.
async fn wait_drained(client: &reqwest::Client, served: &Served, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let (_, ready) = readyz(client, served).await;
        if ready["database_state"] == "ready" && ready["spool_depth"] == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not drained within {within:?}: {ready}\n{}",
            served.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn logouts_of_run(pool: &PgPool, run: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM room_logouts WHERE room_id LIKE $1 || '-%'")
        .bind(run)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn pool(url: &str) -> PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(url)
        .await
        .unwrap()
}

fn serve_env<'a>(url: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("DATABASE_URL", url),
        ("ZEGOLOG_SECRET", SECRET),
        ("ZEGOLOG_LOG", "info,zegolog::http=warn,tower_http=warn"),
    ];
    env.extend_from_slice(extra);
    env
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

/// A tmpfs of `size` mounted on `dir` for as long as it lives (CI runs as root).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .expect("running mount");
        assert!(
            status.success(),
            "mounting a {size} tmpfs on {} failed ({status}): this test needs root",
            dir.display()
        );
        Self(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Stops PostgreSQL under a spool on a 2 MiB filesystem and sends callbacks until the spool
/// refuses them, starts PostgreSQL again and measures how long until callbacks get 2xx again.
/// Returns the acknowledged callbacks' count and that time.
async fn fill_the_disk_then_recover(run: &str, min_free_mb: &str) -> (u64, Duration) {
    let mut pg = OwnPostgres::start(&format!("zegolog-faults-{run}-")).await;
    let data_dir = pg.dir.join("tiny");
    let _tmpfs = Tmpfs::mount(&data_dir, "2m");
    let url = pg.url();
    // The log goes elsewhere: the spool is to be alone on the tiny disk.
    let served = serve_answering(
        &data_dir,
        &pg.dir,
        &serve_env(
            &url,
            &[
                ("ZEGOLOG_SPOOL_MIN_FREE_MB", min_free_mb),
                ("ZEGOLOG_LOG", "info,zegolog::spool=debug,tower_http=warn"),
            ],
        ),
    );
    tokio::task::block_in_place(|| served.wait_for_database());
    let client = client();
    pg.stop().await;

    let mut acknowledged = Vec::new();
    let mut refused_in_a_row = 0;
    let mut refusals = std::collections::BTreeSet::new();
    let mut n = 0;
    while refused_in_a_row < 8 && n < 50_000 {
        let callback = logout(run, n);
        match post(&client, &served, &callback).await {
            (200, code) if code == "spooled" => {
                acknowledged.push(n);
                refused_in_a_row = 0;
            }
            (status, code) => {
                assert_eq!(status, 503, "{code}\n{}", served.log_text());
                refusals.insert(code);
                refused_in_a_row += 1;
            }
        }
        n += 1;
    }
    assert!(acknowledged.len() > 100, "spooled {}", acknowledged.len());
    assert_eq!(refused_in_a_row, 8, "the spool never refused");
    let (status, ready) = readyz(&client, &served).await;
    assert_eq!(status, 503, "{ready}");
    assert_ne!(ready["spool"], "ok", "{ready}");
    println!(
        "{run}: spooled {}, then refused with {refusals:?}: {ready}",
        acknowledged.len()
    );

    pg.restart().await;
    let back = Instant::now();
    loop {
        if post(&client, &served, &logout(run, n)).await.0 == 200 {
            acknowledged.push(n);
            break;
        }
        n += 1;
        assert!(
            back.elapsed() < Duration::from_secs(20),
            "callbacks are still refused {:?} after PostgreSQL is back",
            back.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let recovered = back.elapsed();
    wait_drained(&client, &served, Duration::from_secs(60)).await;
    let db = pool(&url).await;
    assert_eq!(logouts_of_run(&db, run).await, acknowledged.len() as i64);
    // A spool that failed waits a few seconds before it takes callbacks again.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, ready) = readyz(&client, &served).await;
        if (status, &ready["spool"]) == (200, &json!("ok")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the spool stays unusable: {ready}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    served.kill9();
    (acknowledged.len() as u64, recovered)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spool_refuses_before_its_disk_is_full_and_callbacks_flow_again_once_postgres_is_back() {
    let (acknowledged, recovered) = fill_the_disk_then_recover("floor", "1").await;
    println!(
        "floor: {acknowledged} acknowledged, 2xx again {recovered:?} after PostgreSQL was back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spool_recovers_from_a_full_disk_without_a_restart() {
    let (acknowledged, recovered) = fill_the_disk_then_recover("nofloor", "0").await;
    println!(
        "no floor: {acknowledged} acknowledged, 2xx again {recovered:?} after PostgreSQL was back"
    );
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_receiving_the_same_callbacks_never_deadlock() {
    let (url, db) = migrated_database_url().await;
    let dirs: Vec<PathBuf> = (0..3)
        .map(|_| temp_data_dir("zegolog-faults-storm-"))
        .collect();
    let instances: Vec<Served> = dirs
        .iter()
        .map(|dir| {
            serve(
                dir,
                &serve_env(&url, &[("ZEGOLOG_COMPACT_EVERY_SECS", "1")]),
            )
        })
        .collect();
    let deadlocks = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()",
        )
        .fetch_one(&db)
        .await
        .unwrap()
    };
    let deadlocks_before = deadlocks().await;

    // Every callback reaches all three instances at once, each copy signed anew: a retry storm.
    let instances = std::sync::Arc::new(instances);
    let started = Instant::now();
    let senders: Vec<_> = (0..16u64)
        .map(|lane| {
            let instances = instances.clone();
            tokio::spawn(async move {
                let client = client();
                let mut latencies = Vec::new();
                let mut failures = Vec::new();
                let mut n = lane;
                while started.elapsed() < Duration::from_secs(12) {
                    let callback = logout("storm", n);
                    let copies = instances.iter().map(|served| {
                        let (client, callback) = (&client, &callback);
                        async move {
                            let sent = Instant::now();
                            let answer = post(client, served, callback).await;
                            (answer, sent.elapsed())
                        }
                    });
                    for (answer, took) in futures::future::join_all(copies).await {
                        latencies.push(took);
                        if answer.0 != 200 {
                            failures.push(answer);
                        }
                    }
                    n += 16;
                }
                (latencies, failures, n / 16)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut failures = Vec::new();
    let mut unique = 0;
    for sender in senders {
        let (l, f, count) = sender.await.unwrap();
        latencies.extend(l);
        failures.extend(f);
        unique += count;
    }
    latencies.sort();
    let p50 = percentile(&latencies, 0.5);
    let p99 = percentile(&latencies, 0.99);
    println!(
        "storm: {} requests ({unique} unique callbacks, each to 3 instances), p50 {p50:?}, p99 {p99:?}, max {:?}",
        latencies.len(),
        latencies.last().unwrap()
    );

    assert!(
        failures.is_empty(),
        "{:?}",
        &failures[..failures.len().min(10)]
    );
    assert_eq!(
        deadlocks().await - deadlocks_before,
        0,
        "PostgreSQL detected deadlocks"
    );
    // No latency bound here: a deadlock costs PostgreSQL's deadlock_timeout (1 s) and is counted
    // above; the storm's latency is a benchmark figure (README), not a test's pass mark, and on
    // two shared cores it moves with whatever else runs.
    assert_eq!(logouts_of_run(&db, "storm").await, unique as i64);
    for served in std::sync::Arc::into_inner(instances).unwrap() {
        let (status, log) = served.terminate();
        assert!(status.success(), "{log}");
        assert!(!log.contains("deadlock"), "{log}");
    }
    sqlx::query("SELECT zegolog_compact_rollups()")
        .execute(&db)
        .await
        .unwrap();
    common::assert_rollups_equal_raw_rows(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upkeep_run_by_several_instances_at_once_neither_fails_nor_deadlocks() {
    use zegolog::store::{Store, LEDGER_KEEP};
    let (_url, db) = migrated_database_url().await;
    let store = Store::from_pool(db.clone());
    // Rows for the compaction to fold, some in the default partition (far past) for retention
    // and partition creation to move or delete.
    let app = common::TestApp::serve(common::test_verifier(600), store.clone(), db.clone()).await;
    for n in 0..200 {
        let mut callback = logout("upkeep", n);
        if n % 4 == 0 {
            let old_ms = chrono::Utc::now().timestamp_millis() - 400 * 86_400_000 + n as i64;
            callback["login_time"] = json!((old_ms - 5_000).to_string());
            callback["logout_time"] = json!(old_ms.to_string());
        }
        assert_eq!(app.post_json(&signed(callback)).await.0, 200);
    }
    let deadlocks_before: i64 = sqlx::query_scalar(
        "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(&db)
    .await
    .unwrap();

    // Four "instances" each run every upkeep step, five times, all at once.
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let chain = |e: &dyn std::error::Error| zegolog::error_chain(e);
                for _ in 0..5 {
                    store.compact_rollups().await.map_err(|e| chain(&e))?;
                    store.ensure_partitions().await.map_err(|e| chain(&e))?;
                    store
                        .prune_signature_ledger(LEDGER_KEEP)
                        .await
                        .map_err(|e| chain(&e))?;
                    let retention = zegolog::upkeep::Retention {
                        days: 300,
                        raw_days: None,
                    };
                    zegolog::upkeep::retain(&store, retention)
                        .await
                        .map_err(|e| chain(&e))?;
                }
                Ok::<_, String>(())
            })
        })
        .collect();
    for run in runs {
        let result = run.await.unwrap();
        assert!(result.is_ok(), "{:?}", result.err());
    }

    let deadlocks_after: i64 = sqlx::query_scalar(
        "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(deadlocks_after, deadlocks_before);
    // Retention took the far-past logouts, and kept the recent ones.
    assert_eq!(logouts_of_run(&db, "upkeep").await, 150);
    store.compact_rollups().await.unwrap();
    common::assert_rollups_equal_raw_rows(&db).await;
}
