//! The cost of the distributed path, measured on the local cluster next to one PostgreSQL of
//! the same machine: the write statement (zegolog's batches of 100, one writer and four), and
//! the daily views on what it stored. Ignored by default (it runs minutes and asserts only that
//! both sides hold the same rows); run it with
//! `cargo test --test it citus::bench -- --ignored --nocapture` (the cost measured is the
//! database's: a debug build of the test binary is enough).

use super::common;

use std::time::{Duration, Instant};

use common::citus::citus_database;
use common::{migrated_database_url, signed};
use serde_json::json;
use sqlx::PgPool;
use zegolog::callback::{receive, Encoding, Origin, Received};
use zegolog::store::{Store, StoreError};

const BATCH: usize = 100;

/// Batches of `BATCH` distinct signed logouts (rooms spread, login_time given), numbered from
/// `first`.
fn batches(first: usize, count: usize) -> Vec<Vec<Received>> {
    let verifier = common::test_verifier(600);
    let now = chrono::Utc::now().timestamp_millis();
    (0..count)
        .map(|b| {
            (0..BATCH)
                .map(|i| {
                    let n = first + b * BATCH + i;
                    let callback = signed(json!({"event": "room_logout", "appid": "1",
                        "room_id": format!("room-{}", n % 997), "room_seq": "1",
                        "user_account": format!("user-{n}"), "user_nickname": "n",
                        "session_id": n.to_string(), "login_time": (now - 600_000).to_string(),
                        "logout_time": (now - (n % 600) as i64 * 1000).to_string(),
                        "reason": (n % 5).to_string(), "user_role": "2", "user_update_seq": "2"}));
                    let origin = Origin::Network {
                        verifier: &verifier,
                        now: chrono::Utc::now().timestamp(),
                    };
                    receive(callback.to_string().as_bytes(), Encoding::Json, origin).unwrap()
                })
                .collect()
        })
        .collect()
}

/// Writes `count` batches with `writers` concurrent writers; the logouts per second, and how
/// many writes exceeded the write deadline (zegolog would have spooled them; the benchmark
/// writes them again, which the write path allows: it is idempotent).
async fn ingest(pool: &PgPool, writers: usize, count: usize, first: usize) -> (f64, usize) {
    let store = Store::from_pool(pool.clone());
    let work = batches(first, count);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for share in work.chunks(count.div_ceil(writers)) {
        let (store, share) = (store.clone(), share.to_vec());
        tasks.push(tokio::spawn(async move {
            let mut late = 0;
            for batch in &share {
                while let Err(e) = store.write(batch).await {
                    assert!(matches!(e, StoreError::Timeout(_)), "{e}");
                    late += 1;
                }
            }
            late
        }));
    }
    let mut late = 0;
    for task in tasks {
        late += task.await.unwrap();
    }
    (
        (count * BATCH) as f64 / started.elapsed().as_secs_f64(),
        late,
    )
}

/// The median of `runs` timings of `query`.
async fn median(pool: &PgPool, query: &str, runs: usize) -> Duration {
    let mut times = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        sqlx::query(query).fetch_all(pool).await.unwrap();
        times.push(started.elapsed());
    }
    times.sort();
    times[runs / 2]
}

const VIEWS: [&str; 4] = [
    "SELECT * FROM session_duration_daily WHERE appid = 1 AND day >= current_date - 7",
    "SELECT * FROM logout_reasons_daily WHERE appid = 1 AND day >= current_date - 7",
    "SELECT * FROM user_daily_between(1, now() - interval '7 days', now())",
    "SELECT zegolog_local_day(logout_time), count(*) FROM room_logouts
     WHERE appid = 1 AND logout_time >= now() - interval '7 days' GROUP BY 1",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a benchmark: minutes; run with --ignored --nocapture"]
async fn write_path_and_daily_views_on_the_cluster_next_to_one_postgresql() {
    let (_plain_url, plain) = migrated_database_url().await;
    let (_cluster_url, cluster) = citus_database().await;
    let mut report = Vec::new();
    for (name, pool) in [("PostgreSQL", &plain), ("Citus", &cluster)] {
        ingest(pool, 1, 5, 0).await; // warm-up
        let (one, late_one) = ingest(pool, 1, 40, 10_000).await;
        let (four, late_four) = ingest(pool, 4, 80, 20_000).await;
        report.push(format!(
            "{name}: write path, batches of {BATCH}: {one:.0} logouts/s with 1 writer \
             ({late_one} writes past the deadline), {four:.0} with 4 ({late_four} past it)"
        ));
    }
    // `zegolog seed` cannot fill a Citus database (docs/citus.md, limits): the views are timed
    // on what the write path stored, 32,500 logouts, folded into the rollups.
    for (name, pool) in [("PostgreSQL", &plain), ("Citus", &cluster)] {
        let (rate, late) = ingest(pool, 4, 200, 40_000).await;
        report.push(format!(
            "{name}: 20,000 more logouts at {rate:.0}/s with 4 writers ({late} past the deadline)"
        ));
        let started = Instant::now();
        Store::from_pool(pool.clone())
            .compact_rollups()
            .await
            .unwrap();
        report.push(format!(
            "{name}: compaction of the pending rollups: {:.2?}",
            started.elapsed()
        ));
        for query in VIEWS {
            let took = median(pool, query, 7).await;
            report.push(format!(
                "{name}: {took:>10.2?}  {}",
                query.split_whitespace().collect::<Vec<_>>().join(" ")
            ));
        }
    }
    println!("{}", report.join("\n"));

    let count = |pool: &PgPool| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM room_logouts")
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(count(&plain).await, count(&cluster).await);
}
