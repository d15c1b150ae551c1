//! The write path on the cluster: two `zegolog serve` processes on one coordinator, each
//! callback delivered three times (the sender's retries, to either instance, concurrently),
//! stored exactly once, its rows spread over both workers.

use super::common;

use common::citus::{empty_database_on, pool_on, shared_cluster};
use common::{serve, signed, temp_data_dir, Served, SECRET};
use futures::StreamExt;
use serde_json::Value;

use super::{counts, traffic};

/// Posts `callback` freshly signed (a new timestamp, nonce and signature: a retry) to `served`.
async fn deliver_once(client: &reqwest::Client, served: &Served, callback: &Value) -> u16 {
    client
        .post(served.url("/zego/callback"))
        .header("content-type", "application/json")
        .body(signed(callback.clone()).to_string())
        .send()
        .await
        .expect("sending a callback")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_the_coordinator_store_every_retried_callback_once() {
    let url = empty_database_on(shared_cluster().await).await;
    let dir = temp_data_dir("zegolog-citus-serve-");
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("ZEGOLOG_SECRET", SECRET),
        ("ZEGOLOG_LOG", "info,zegolog::http=warn"),
    ];
    // Both start at once, so that both migrate (and distribute) the database concurrently.
    let (a, b) = std::thread::scope(|scope| {
        let start = |name: &str| {
            let data_dir = dir.join(name);
            std::fs::create_dir_all(&data_dir).unwrap();
            scope.spawn(move || serve(&data_dir, &env))
        };
        let (a, b) = (start("a"), start("b"));
        (a.join().unwrap(), b.join().unwrap())
    });
    let pool = pool_on(&url).await;
    let callbacks = traffic(12, 10);
    let client = reqwest::Client::new();

    // Every callback three times: to A, to B, to A again, all in flight together.
    let deliveries: Vec<(usize, &Served)> = (0..callbacks.len())
        .flat_map(|i| [(i, &a), (i, &b), (i, &a)])
        .collect();
    let statuses: Vec<u16> = futures::stream::iter(deliveries)
        .map(|(i, served)| deliver_once(&client, served, &callbacks[i]))
        .buffer_unordered(24)
        .collect()
        .await;

    assert!(
        statuses.iter().all(|&s| s == 200),
        "{:?}\nA:\n{}\nB:\n{}",
        statuses.iter().filter(|&&s| s != 200).collect::<Vec<_>>(),
        a.log_text(),
        b.log_text()
    );
    let (logouts, logins, lifecycle) = counts(&callbacks);
    let expected = (logouts, logins, lifecycle, callbacks.len() as i64);
    // A batch slower than the write deadline went to the spool (answered 200 all the same):
    // wait for the spool to drain.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    let stored = loop {
        let stored: (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM room_logouts), (SELECT count(*) FROM room_logins),
                    (SELECT count(*) FROM room_lifecycle_events),
                    (SELECT count(*) FROM callback_events)
                    + (SELECT count(*) FROM room_logouts WHERE body IS NOT NULL)",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if stored == expected || std::time::Instant::now() > deadline {
            break stored;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    assert_eq!(
        stored,
        expected,
        "logouts, logins, lifecycle events, archived callbacks\nA:\n{}\nB:\n{}",
        a.log_text(),
        b.log_text()
    );
    let distinct: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT DISTINCT appid, session_id, logout_time, room_id, user_account
                               FROM room_logouts) AS d",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(distinct, logouts);
    // Every logout without login_time found its login, whichever came first.
    let unpaired = unpaired_logouts(&pool).await;
    if unpaired > 0 {
        // A logout and its login in concurrent batches see neither the other: upkeep pairs them.
        zegolog::store::Store::from_pool(pool.clone())
            .compact_rollups()
            .await
            .unwrap();
    }
    let unpaired = unpaired_logouts(&pool).await;
    assert_eq!(unpaired, 0);
    // The rows are on both workers, by room.
    let rooms: Vec<(String, i64)> =
        sqlx::query_as("SELECT room_id, count(*) FROM room_logouts GROUP BY 1 ORDER BY 1")
            .fetch_all(&pool)
            .await
            .unwrap();
    let mut per_worker = std::collections::BTreeMap::<i32, i64>::new();
    for (room, n) in rooms {
        let port: i32 = sqlx::query_scalar(
            "SELECT nodeport FROM citus_shards
             WHERE shardid = get_shard_id_for_distribution_column('room_logouts', $1::text)",
        )
        .bind(&room)
        .fetch_one(&pool)
        .await
        .unwrap();
        *per_worker.entry(port).or_default() += n;
    }
    assert_eq!(per_worker.len(), 2, "{per_worker:?}");
    assert_eq!(per_worker.values().sum::<i64>(), logouts);
    drop((a, b));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Logouts without login_time that are not paired with a login yet.
async fn unpaired_logouts(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM room_logouts WHERE login_time IS NULL AND paired_login_time IS NULL",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}
