//! `zegolog erase` on the cluster: the same callbacks on the cluster and on one PostgreSQL, the
//! real binary erases the same user on both: the same counts, no trace of the user anywhere on
//! the cluster, the views equal one PostgreSQL's and a recount of the cluster's raw rows, and a
//! second run removes nothing.

use super::common;

use common::citus::citus_database;
use common::{test_verifier, TestApp};
use serde_json::Value;
use zegolog::store::Store;

use super::commands::{same_rows, COMPARED};
use super::views::ingest;
use super::{traffic, zegolog};
use crate::erase::{self as plain_erase, ERASED, NICKNAME};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erase_on_the_cluster_equals_one_postgresql_and_leaves_no_trace() {
    let (plain_url, plain_pool) = common::migrated_database_url().await;
    let (cluster_url, cluster_pool) = citus_database().await;
    let plain = TestApp::serve(
        test_verifier(600),
        Store::from_pool(plain_pool.clone()),
        plain_pool,
    )
    .await;
    let cluster = TestApp::serve(
        test_verifier(600),
        Store::from_pool(cluster_pool.clone()),
        cluster_pool,
    )
    .await;
    let now = chrono::Utc::now().timestamp_millis();
    let t0 = now - now % common::DAY_MS - 4 * common::DAY_MS;
    let callbacks: Vec<Value> = plain_erase::traffic(t0)
        .into_iter()
        .chain(traffic(4, 6))
        .collect();
    ingest(&plain, &callbacks).await;
    ingest(&cluster, &callbacks).await;

    let mut removed = Vec::new();
    for url in [&plain_url, &cluster_url] {
        let out = zegolog(
            url,
            &["erase", "--appid", "1", "--user-account", ERASED, "--json"],
        )
        .await;
        let mut erased: Value = serde_json::from_str(&out).unwrap();
        // Deliveries retried after a 503 add ledger entries: only the count may differ.
        let ledger = erased["removed"]
            .as_object_mut()
            .unwrap()
            .remove("signature_ledger")
            .unwrap();
        assert!(ledger.as_i64().unwrap() >= 14, "{out}");
        removed.push(erased);
    }
    assert_eq!(removed[0], removed[1], "one PostgreSQL, then the cluster");
    // 14 bodies: the 5 logouts' went with their rows, the 9 others from callback_events.
    assert_eq!(
        removed[1]["removed"]["callback_events"], 9,
        "{}",
        removed[1]
    );
    assert_eq!(removed[1]["removed"]["room_logouts"], 5, "{}", removed[1]);

    assert_eq!(
        plain_erase::traces(&cluster.pool, &[ERASED, NICKNAME], 2).await,
        []
    );
    for query in COMPARED.into_iter().chain([
        "SELECT * FROM user_daily",
        "SELECT * FROM users_online(1, now() - interval '5 days', now())",
    ]) {
        assert!(
            same_rows(&plain.pool, &cluster.pool, query).await > 0,
            "{query}"
        );
    }
    common::assert_rollups_equal_raw_rows(&cluster.pool).await;

    let again = zegolog(
        &cluster_url,
        &["erase", "--appid", "1", "--user-account", ERASED],
    )
    .await;
    assert!(again.contains("nothing left to remove"), "{again}");
}
