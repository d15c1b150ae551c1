//! The dev tools on the cluster: `zegolog seed` fills a distributed database, with rollups
//! equal to its raw rows, and `zegolog bench-queries --no-seed` times every view query and
//! `sql/` file on it (a file's Citus form from `sql/citus/` where it has one).

use super::common;

use common::citus::{database_named_on, pool_on, shared_cluster};
use zegolog::store::Store;
use zegolog::tools::bench_queries::BENCH_DB;

use super::{citus_form, zegolog};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_and_bench_queries_run_on_the_cluster() {
    // bench-queries --no-seed times the database of this name on the server it is given: the
    // cluster is this test binary's own, so the name is free on it.
    let url = database_named_on(shared_cluster().await, BENCH_DB).await;
    let pool = pool_on(&url).await;
    Store::from_pool(pool.clone()).migrate().await.unwrap();

    let seeded = zegolog(
        &url,
        &["seed", "--events", "3000", "--apps", "2", "--days", "3"],
    )
    .await;
    let logouts: i64 = sqlx::query_scalar("SELECT count(*) FROM room_logouts")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(logouts, 3000, "{seeded}");
    let rolled_up: i64 =
        sqlx::query_scalar("SELECT coalesce(sum(sessions), 0)::bigint FROM logout_rollup_all")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(rolled_up, 3000, "{seeded}");
    common::assert_rollups_equal_raw_rows(&pool).await;

    // The sql/ files as run on Citus: each one's Citus form (sql/citus/) where it has one.
    let sql_dir = common::temp_data_dir("zegolog-citus-sql-");
    let documented = common::documented_sql_files();
    for file in &documented {
        let citus_form = citus_form(file);
        let source = if citus_form.exists() {
            &citus_form
        } else {
            file
        };
        std::fs::copy(source, sql_dir.join(file.file_name().unwrap())).unwrap();
    }
    let timed = zegolog(
        &url,
        &[
            "bench-queries",
            "--no-seed",
            "--runs",
            "1",
            "--sql-dir",
            sql_dir.to_str().unwrap(),
        ],
    )
    .await;
    let _ = std::fs::remove_dir_all(&sql_dir);
    assert!(timed.contains("3000 logouts"), "{timed}");
    assert!(!timed.contains("failed"), "{timed}");
    for file in documented {
        let name = file.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(timed.contains(&name), "{name} not timed: {timed}");
    }
}
