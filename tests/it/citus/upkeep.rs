//! Upkeep on the cluster, as `serve`'s background loop and `retain` run it: partitions created
//! ahead are distributed like their parent, an old month's rows move out of the default
//! partition, retention drops the month whole, the signature ledger is pruned; and
//! `grant-analyst`'s role reads the analyst functions through the coordinator and no table
//! (the views are refused to it: a limit of Citus, docs/citus.md).

use super::common;

use common::citus::{citus_database, shared_cluster};
use common::{test_verifier, vendor_sample, TestApp, DAY_MS};

use super::deliver;
use serde_json::json;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use zegolog::store::Store;

fn logout(session: i64, logout_ms: i64) -> serde_json::Value {
    let mut callback = vendor_sample();
    callback["session_id"] = json!(session.to_string());
    callback["room_id"] = json!(format!("room-{session}"));
    callback["login_time"] = json!((logout_ms - 60_000).to_string());
    callback["logout_time"] = json!(logout_ms.to_string());
    callback
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_are_distributed_and_retention_drops_an_old_month_whole() {
    let (_url, pool) = citus_database().await;
    let store = Store::from_pool(pool.clone());
    let app = TestApp::serve(test_verifier(600), store.clone(), pool.clone()).await;
    let now = chrono::Utc::now().timestamp_millis();
    let old = now - 400 * DAY_MS;
    deliver(&app, &logout(1, old)).await;
    deliver(&app, &logout(2, now)).await;

    store.ensure_partitions().await.unwrap();
    let month: String = sqlx::query_scalar(
        "SELECT zegolog_ensure_partition((to_timestamp($1 / 1000.0) AT TIME ZONE 'UTC')::date)",
    )
    .bind(old)
    .fetch_one(&pool)
    .await
    .unwrap();
    let (in_month, in_default): (i64, i64) = sqlx::query_as(&format!(
        "SELECT (SELECT count(*) FROM {month}), (SELECT count(*) FROM room_logouts_default)"
    ))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((in_month, in_default), (1, 0), "the old month's row moved");
    // Every partition, the ones created ahead among them, is distributed with its parent.
    let undistributed: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid
         WHERE i.inhparent IN ('room_logouts'::regclass, 'signature_ledger'::regclass)
           AND NOT EXISTS (SELECT 1 FROM pg_dist_partition AS p WHERE p.logicalrelid = c.oid)",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(undistributed.is_empty(), "{undistributed:?}");
    let ahead: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_inherits
         WHERE inhparent = 'room_logouts'::regclass AND inhrelid::regclass::text > $1",
    )
    .bind(format!(
        "room_logouts_{}",
        chrono::Utc::now().format("%Y_%m")
    ))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(ahead >= 3, "{ahead} months ahead");

    let report = zegolog::upkeep::retain(
        &store,
        zegolog::upkeep::Retention {
            days: 365,
            raw_days: None,
        },
    )
    .await
    .unwrap();

    assert!(report.partitions.contains(&month), "{report}");
    let left: Vec<i64> = sqlx::query_scalar("SELECT session_id::bigint FROM room_logouts")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(left, [2]);
    let old_days: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM session_duration_daily WHERE day < current_date - 365",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(old_days, 0);
}

/// Issue 19's retention scenario on the cluster: every count from the cutoff's day on is what
/// it was before retention.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_every_count_after_its_cutoff_on_the_cluster() {
    let (_url, pool) = citus_database().await;
    let app = TestApp::serve(test_verifier(600), Store::from_pool(pool.clone()), pool).await;
    crate::retention::retention_keeps_concurrency_after_the_cutoff(&app, "UTC").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_analyst_reads_the_views_and_functions_through_the_coordinator_and_no_table() {
    const PASSWORD: &str = "correct horse battery staple";
    let (url, pool) = citus_database().await;
    let app = TestApp::serve(
        test_verifier(600),
        Store::from_pool(pool.clone()),
        pool.clone(),
    )
    .await;
    deliver(&app, &logout(7, chrono::Utc::now().timestamp_millis())).await;
    let role = format!("analyst_citus_{}", std::process::id());

    let summary = {
        let mut conn = pool.acquire().await.unwrap();
        zegolog::grant::grant_analyst(&mut conn, &role, Some(PASSWORD))
            .await
            .unwrap()
    };
    shared_cluster()
        .await
        .add_role_password(&role, PASSWORD)
        .unwrap();
    let options: PgConnectOptions = url.parse().unwrap();
    let mut analyst = PgConnection::connect_with(&options.username(&role).password(PASSWORD))
        .await
        .unwrap();

    assert!(summary.views.contains(&"session_durations".to_owned()));
    // The analyst functions (SECURITY DEFINER: their queries run as the owner on the
    // workers too) give the analyst the owner's rows.
    for function in [
        "user_daily_between(1, now() - interval '2 days', now())",
        "abnormal_rooms_between(1, now() - interval '2 days', now())",
        "data_quality_daily_between(1, now() - interval '2 days', now())",
        "logout_reasons_between(1, now() - interval '2 days', now())",
        "users_online(1, now() - interval '2 days', now())",
    ] {
        let query = format!("SELECT count(*) FROM {function}");
        let theirs: i64 = sqlx::query_scalar(&query)
            .fetch_one(&mut analyst)
            .await
            .unwrap_or_else(|e| panic!("{function}: {e}"));
        let owners: i64 = sqlx::query_scalar(&query).fetch_one(&pool).await.unwrap();
        assert_eq!(theirs, owners, "{function}");
    }
    // Every view it reads on one PostgreSQL, with the owner's rows: on Citus through
    // zegolog_analyst, first in its search_path (schema/citus.sql), since the queries Citus makes
    // of a view run on the shards as the querying role.
    assert_eq!(summary.analyst_schema.as_deref(), Some("zegolog_analyst"));
    assert_eq!(summary.unreadable_views, Some(vec![]));
    let views: Vec<&String> = summary
        .views
        .iter()
        .filter(|v| !v.starts_with("citus_"))
        .collect();
    assert_eq!(views.len(), 12, "{views:?}");
    for view in views {
        let query = format!("SELECT count(*) FROM {view}");
        let theirs: i64 = sqlx::query_scalar(&query)
            .fetch_one(&mut analyst)
            .await
            .unwrap_or_else(|e| panic!("{view}: {e}"));
        let owners: i64 = sqlx::query_scalar(&query).fetch_one(&pool).await.unwrap();
        assert_eq!(theirs, owners, "{view}");
    }
    let logouts: i64 = sqlx::query_scalar("SELECT count(*) FROM session_durations")
        .fetch_one(&mut analyst)
        .await
        .unwrap();
    assert_eq!(logouts, 1, "the analyst sees the logout");
    for table in ["room_logouts", "callback_events", "logout_rollup"] {
        match sqlx::query(&format!("SELECT 1 FROM {table} LIMIT 1"))
            .execute(&mut analyst)
            .await
        {
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42501") => {}
            other => panic!("{table}: expected permission denied, got {other:?}"),
        }
    }
}
