//! A worker stopped under load: the batches whose shards live there cannot be written, so they
//! go to the spool (answered 2xx) or are answered 503, never lost, and the spool drains once the
//! worker is back. `zegolog serve` and `zegolog loadtest` run as an operator runs them, on a
//! cluster of this test's own.

use super::common;

use std::time::Duration;

use common::citus::{empty_database_on, OwnCluster};
use common::{assert_nothing_lost, serve, SECRET};
use zegolog::tools::loadtest::{self, LoadtestConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_worker_under_load_loses_nothing_and_the_spool_drains_when_it_is_back() {
    let mut cluster = OwnCluster::start("zegolog-citus-fault-").await;
    let url = empty_database_on(&cluster.0).await;
    let data_dir = cluster.0.dir().join("zegolog");
    std::fs::create_dir_all(&data_dir).unwrap();
    let served = serve(
        &data_dir,
        &[
            ("DATABASE_URL", &url),
            ("ZEGOLOG_SECRET", SECRET),
            ("ZEGOLOG_LOG", "info,zegolog::http=warn"),
        ],
    );
    let mut args = LoadtestConfig::for_bench(
        served.url("/zego/callback"),
        SECRET.into(),
        8,
        Duration::from_secs(25),
        url.clone(),
    );
    args.duplicates = 0.1;
    args.request_timeout_secs = 10;

    let run = tokio::spawn(async move { loadtest::run(&args).await.unwrap() });
    tokio::time::sleep(Duration::from_secs(5)).await;
    tokio::task::block_in_place(|| cluster.0.stop_worker(1)).unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    tokio::task::block_in_place(|| cluster.0.restart_worker(1)).unwrap();
    let report = run.await.unwrap();

    assert_nothing_lost(&report);
    served.terminate_having_spooled("the stopped worker's writes");
}
