//! The read side on the cluster: the same callbacks through the same write path on the cluster
//! and on one PostgreSQL give every view and analyst function the same rows, and the rollups on
//! the cluster equal a recount from its raw rows.

use super::common;

use common::citus::citus_database;
use common::{assert_rollups_equal_raw_rows, test_verifier, TestApp};
use sqlx::PgPool;
use zegolog::store::Store;

use super::{deliver, traffic};

/// Delivers `callbacks` to `app` in order, every fourth one twice (a retry), and compacts.
pub(super) async fn ingest(app: &TestApp, callbacks: &[serde_json::Value]) {
    for (i, callback) in callbacks.iter().enumerate() {
        for _ in 0..if i % 4 == 0 { 2 } else { 1 } {
            deliver(app, callback).await;
        }
    }
    Store::from_pool(app.pool.clone())
        .compact_rollups()
        .await
        .unwrap();
}

/// The rows of `query`, each as JSON text without the columns that differ by when and where a
/// row was written (ids, arrival times, ages), sorted. The query runs as it is (a MATERIALIZED
/// CTE), and its rows become JSON after: Citus would push a whole-row `to_jsonb(v)` of a query
/// it runs on the shards whole (a view that only selects from a distributed table) down to the
/// shards, where the row's columns lose their names (`f1`, `f2`, ...; docs/citus.md, limits).
pub(super) async fn rows(pool: &PgPool, query: &str) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(&format!(
        "WITH v AS MATERIALIZED (\n{query}\n)
         SELECT (to_jsonb(v) - 'id' - 'received_at' - 'age' - 'age_s')::text AS row
         FROM v ORDER BY 1"
    ))
    .fetch_all(pool)
    .await
}

/// Every view of the schema, and each analyst function over the traffic's days.
async fn read_side(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT format('SELECT * FROM %I', table_name) FROM information_schema.views
         WHERE table_schema = 'public' ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .chain(
        [
            "session_duration_daily_in('Asia/Shanghai', current_date - 5, current_date)",
            "logout_reasons_daily_in('Asia/Shanghai', current_date - 5, current_date, 1)",
            "peak_concurrency_daily_in('America/New_York', current_date - 5, current_date)",
            "room_peak_concurrency_daily_in('UTC', current_date - 5, current_date, 1)",
            "users_online(1, now() - interval '4 days', now())",
            "room_users_online(1, 'room-1', now() - interval '4 days', now())",
            "room_lifecycle_between(1, now() - interval '4 days', now())",
            "user_daily_between(1, now() - interval '4 days', now())",
            "logout_reasons_between(1, now() - interval '4 days', now(), interval '6 hours')",
            "data_quality_daily_between(1, now() - interval '4 days', now())",
            "abnormal_rooms_between(1, now() - interval '4 days', now(), 5)",
            "abnormal_users_between(1, now() - interval '4 days', now(), 5)",
            "incident_reasons(1, now() - interval '4 days', now(), interval '1 hour')",
            "incident_users_online(1, now() - interval '4 days', now(), interval '1 hour')",
            "reason_usual_shares(1, now(), 7)",
            // Every app (p_appid NULL): the app list, computed before the query on Citus.
            "logout_reasons_daily_in('Asia/Shanghai', current_date - 5, current_date)",
            "room_lifecycle_between(NULL, now() - interval '4 days', now())",
            "user_daily_between(NULL, now() - interval '4 days', now())",
            "logout_reasons_between(NULL, now() - interval '4 days', now(), interval '6 hours')",
            "data_quality_daily_between(NULL, now() - interval '4 days', now())",
        ]
        .map(|f| format!("SELECT * FROM {f}")),
    )
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_and_functions_on_the_cluster_equal_one_postgresql_row_for_row() {
    let plain = TestApp::spawn().await;
    let (_url, pool) = citus_database().await;
    let cluster = TestApp::serve(test_verifier(600), Store::from_pool(pool.clone()), pool).await;
    let callbacks = traffic(8, 9);
    ingest(&plain, &callbacks).await;
    ingest(&cluster, &callbacks).await;

    let queries = read_side(&plain.pool).await;
    let mut failed = Vec::new();
    let mut compared = 0;
    for query in &queries {
        let expected = rows(&plain.pool, query).await.unwrap();
        let got = rows(&cluster.pool, query).await;
        match got {
            // An empty answer could hide a query that read the coordinator's empty shells of
            // the distributed tables (schema/citus.sql): every query but open_sessions (each
            // login of the traffic has its logout) has rows.
            Ok(got) if got == expected && (!got.is_empty() || query.contains("open_sessions")) => {
                compared += expected.len()
            }
            Ok(got) => failed.push(format!(
                "{query}: {} rows on the cluster, {} on PostgreSQL; first difference: {:?}",
                got.len(),
                expected.len(),
                got.iter()
                    .zip(&expected)
                    .find(|(g, e)| g != e)
                    .or(got.first().zip(expected.first()))
            )),
            Err(e) => failed.push(format!("{query}: {e}")),
        }
    }

    assert!(failed.is_empty(), "{failed:#?}");
    assert!(compared > 500, "only {compared} rows compared");
    assert_eq!(queries.len(), 12 + 20, "{queries:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollups_on_the_cluster_equal_its_raw_rows_after_compaction() {
    let (_url, pool) = citus_database().await;
    let app = TestApp::serve(test_verifier(600), Store::from_pool(pool.clone()), pool).await;

    ingest(&app, &traffic(6, 8)).await;

    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM pending_contributions")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(pending, 0, "compaction folded the pending rows");
    assert_rollups_equal_raw_rows(&app.pool).await;
}
