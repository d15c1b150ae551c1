//! Nothing acknowledged is lost, with real processes and a real PostgreSQL: an outage longer
//! than the sender's retry window under load, `kill -9` under load, and SIGTERM under load.
//!
//! `zegolog serve` runs as a child process over a PostgreSQL this test owns (it stops and starts
//! it); `zegolog loadtest` (the library behind the command) sends signed logouts and, with
//! `--verify`, checks that the database holds every acknowledged one exactly once.

use crate::common;

use std::time::Duration;

use common::{assert_nothing_lost, serve, OwnPostgres, Served, SECRET};
use zegolog::tools::loadtest::{self, LoadtestConfig};

/// A PostgreSQL and a data dir for zegolog, both this test's own.
struct Rig {
    pg: OwnPostgres,
}

impl Rig {
    async fn new(prefix: &str) -> Self {
        Self {
            pg: OwnPostgres::start(prefix).await,
        }
    }

    fn url(&self) -> String {
        self.pg.url()
    }

    fn serve(&self) -> Served {
        let data_dir = self.pg.dir.join("zegolog");
        std::fs::create_dir_all(&data_dir).unwrap();
        serve(
            &data_dir,
            &[
                ("DATABASE_URL", &self.url()),
                ("ZEGOLOG_SECRET", SECRET),
                ("ZEGOLOG_LOG", "info,zegolog::http=warn"),
            ],
        )
    }

    async fn stop_db(&mut self) {
        self.pg.stop().await;
    }

    async fn start_db(&mut self) {
        self.pg.restart().await;
    }
}

fn load(served: &Served, rig: &Rig, connections: usize, secs: u64) -> LoadtestConfig {
    let mut args = LoadtestConfig::for_bench(
        served.url("/zego/callback"),
        SECRET.into(),
        connections,
        Duration::from_secs(secs),
        rig.url(),
    );
    args.duplicates = 0.1;
    args.request_timeout_secs = 10;
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_longer_than_the_retry_window_under_load_loses_nothing() {
    let mut rig = Rig::new("zegolog-outage-load-").await;
    let served = rig.serve();
    let args = load(&served, &rig, 8, 80);

    let run = tokio::spawn(async move { loadtest::run(&args).await.unwrap() });
    tokio::time::sleep(Duration::from_secs(5)).await;
    rig.stop_db().await;
    // ZEGOCLOUD gives up on a callback after about 62 s of failures: stay down longer.
    tokio::time::sleep(Duration::from_secs(66)).await;
    rig.start_db().await;
    let report = run.await.unwrap();

    assert_nothing_lost(&report);
    let non_2xx: u64 = report.requests - report.successes();
    assert_eq!(
        non_2xx, 0,
        "the spool answers 2xx through the outage: {report}"
    );
    served.terminate_having_spooled("the outage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_then_restart_keeps_every_acknowledged_callback() {
    let mut rig = Rig::new("zegolog-kill9-").await;
    let first = rig.serve();
    let args = load(&first, &rig, 8, 6);

    let run = tokio::spawn(async move { loadtest::run(&args).await });
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Some callbacks are committed, the next ones only spooled, then the process dies.
    rig.stop_db().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    first.kill9();
    tokio::time::sleep(Duration::from_secs(2)).await;
    rig.start_db().await;
    let second = rig.serve();
    let report = run.await.unwrap().unwrap();

    assert_nothing_lost(&report);
    assert!(
        report.transport_errors > 0,
        "the load went on past the kill: {report}"
    );
    let (exit, log) = second.terminate();
    assert!(exit.success(), "{log}");
    assert!(
        log.contains("wait in the spool from an earlier run"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_finishes_what_it_acknowledged_and_exits_0() {
    let rig = Rig::new("zegolog-sigterm-").await;
    let served = rig.serve();
    let args = load(&served, &rig, 16, 5);

    let run = tokio::spawn(async move { loadtest::run(&args).await });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (exit, log) = served.terminate();
    let report = run.await.unwrap().unwrap();

    assert!(exit.success(), "exit {exit}:\n{log}");
    assert!(log.contains("shutting down"), "{log}");
    assert_nothing_lost(&report);
}
