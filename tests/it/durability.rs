//! What survives the zegolog process dying or being stopped under load, with real processes and
//! a real PostgreSQL: `kill -9` then a restart, and SIGTERM. Nothing acknowledged is lost.
//!
//! `zegolog serve` runs as a child process over a PostgreSQL this test owns (it stops and starts
//! it); `zegolog loadtest` (the library behind the command) sends signed logouts and, with
//! `--verify`, checks that the database holds every acknowledged one exactly once.

use crate::common;

use std::time::Duration;

use common::assert_nothing_lost;
use common::served::{load, Rig};
use zegolog::tools::loadtest;

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
