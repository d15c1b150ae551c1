//! The dev tools on the cluster: `zegolog seed` fills a distributed database, with rollups
//! equal to its raw rows, and `zegolog bench-queries --no-seed` times every view query and
//! `sql/` file on it (a file's Citus form from `sql/citus/` where it has one).

use super::common;

use common::citus::{database_named_on, pool_on, shared_cluster};
use zegolog::store::Store;
use zegolog::tools::bench_queries::BENCH_DB;

/// `zegolog ARGS`, which must succeed; its standard output.
async fn zegolog(args: &[&str]) -> String {
    let mut command = common::zegolog();
    command.args(args);
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "zegolog {args:?}: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_and_bench_queries_run_on_the_cluster() {
    // bench-queries --no-seed times the database of this name on the server it is given: the
    // cluster is this test binary's own, so the name is free on it.
    let url = database_named_on(shared_cluster().await, BENCH_DB).await;
    let pool = pool_on(&url).await;
    Store::from_pool(pool.clone()).migrate().await.unwrap();

    let seeded = zegolog(&[
        "seed",
        "--events",
        "3000",
        "--apps",
        "2",
        "--days",
        "3",
        "--database-url",
        &url,
    ])
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
    let documented = zegolog::tools::bench_queries::sql_files(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/sql"
    )))
    .unwrap();
    for file in &documented {
        let citus_form = super::commands::citus_form(file);
        let source = if citus_form.exists() {
            &citus_form
        } else {
            file
        };
        std::fs::copy(source, sql_dir.join(file.file_name().unwrap())).unwrap();
    }
    let timed = zegolog(&[
        "bench-queries",
        "--no-seed",
        "--runs",
        "1",
        "--database-url",
        &url,
        "--sql-dir",
        sql_dir.to_str().unwrap(),
    ])
    .await;
    let _ = std::fs::remove_dir_all(&sql_dir);
    assert!(timed.contains("3000 logouts"), "{timed}");
    assert!(!timed.contains("failed"), "{timed}");
    for file in documented {
        let name = file.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(timed.contains(&name), "{name} not timed: {timed}");
    }
}
