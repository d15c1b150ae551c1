//! The disk under the spool filling up during an outage, with real `zegolog serve` processes and
//! a real PostgreSQL: the data dir on a 2 MiB tmpfs, with and without the free-space floor. The
//! spool refuses (503) rather than lose an acknowledged callback, and takes callbacks again
//! without a restart once PostgreSQL is back.
//!
//! These tests stop PostgreSQL, so each runs its own private server, and mount a tmpfs (root).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::served::{client, logout, logouts_of_run, pool, post, readyz, serve_env, wait_drained};
use common::{serve_answering, OwnPostgres};
use serde_json::json;

/// A tmpfs of `size` mounted on `dir` for as long as it lives (CI runs as root).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .expect("running mount");
        assert!(
            status.success(),
            "mounting a {size} tmpfs on {} failed ({status}): this test needs root",
            dir.display()
        );
        Self(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Stops PostgreSQL under a spool on a 2 MiB filesystem and sends callbacks until the spool
/// refuses them, starts PostgreSQL again and measures how long until callbacks get 2xx again.
/// Returns the acknowledged callbacks' count and that time.
async fn fill_the_disk_then_recover(run: &str, min_free_mb: &str) -> (u64, Duration) {
    let mut pg = OwnPostgres::start(&format!("zegolog-faults-{run}-")).await;
    let data_dir = pg.dir.join("tiny");
    let _tmpfs = Tmpfs::mount(&data_dir, "2m");
    let url = pg.url();
    // The log goes elsewhere: the spool is to be alone on the tiny disk.
    let served = serve_answering(
        &data_dir,
        &pg.dir,
        &serve_env(
            &url,
            &[
                ("ZEGOLOG_SPOOL_MIN_FREE_MB", min_free_mb),
                ("ZEGOLOG_LOG", "info,zegolog::spool=debug,tower_http=warn"),
            ],
        ),
    );
    tokio::task::block_in_place(|| served.wait_for_database());
    let client = client();
    pg.stop().await;

    let mut acknowledged = Vec::new();
    let mut refused_in_a_row = 0;
    let mut refusals = std::collections::BTreeSet::new();
    let mut n = 0;
    while refused_in_a_row < 8 && n < 50_000 {
        let callback = logout(run, n);
        match post(&client, &served, &callback).await {
            (200, code) if code == "spooled" => {
                acknowledged.push(n);
                refused_in_a_row = 0;
            }
            (status, code) => {
                assert_eq!(status, 503, "{code}\n{}", served.log_text());
                refusals.insert(code);
                refused_in_a_row += 1;
            }
        }
        n += 1;
    }
    assert!(acknowledged.len() > 100, "spooled {}", acknowledged.len());
    assert_eq!(refused_in_a_row, 8, "the spool never refused");
    let (status, ready) = readyz(&client, &served).await;
    assert_eq!(status, 503, "{ready}");
    assert_ne!(ready["spool"], "ok", "{ready}");
    println!(
        "{run}: spooled {}, then refused with {refusals:?}: {ready}",
        acknowledged.len()
    );

    pg.restart().await;
    let back = Instant::now();
    loop {
        if post(&client, &served, &logout(run, n)).await.0 == 200 {
            acknowledged.push(n);
            break;
        }
        n += 1;
        assert!(
            back.elapsed() < Duration::from_secs(20),
            "callbacks are still refused {:?} after PostgreSQL is back",
            back.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let recovered = back.elapsed();
    wait_drained(&client, &served, Duration::from_secs(60)).await;
    let db = pool(&url).await;
    assert_eq!(logouts_of_run(&db, run).await, acknowledged.len() as i64);
    // A spool that failed waits a few seconds before it takes callbacks again.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, ready) = readyz(&client, &served).await;
        if (status, &ready["spool"]) == (200, &json!("ok")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the spool stays unusable: {ready}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    served.kill9();
    (acknowledged.len() as u64, recovered)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spool_refuses_before_its_disk_is_full_and_callbacks_flow_again_once_postgres_is_back() {
    let (acknowledged, recovered) = fill_the_disk_then_recover("floor", "1").await;
    println!(
        "floor: {acknowledged} acknowledged, 2xx again {recovered:?} after PostgreSQL was back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spool_recovers_from_a_full_disk_without_a_restart() {
    let (acknowledged, recovered) = fill_the_disk_then_recover("nofloor", "0").await;
    println!(
        "no floor: {acknowledged} acknowledged, 2xx again {recovered:?} after PostgreSQL was back"
    );
}
