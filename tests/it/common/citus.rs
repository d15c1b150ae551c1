//! A real local Citus cluster (a coordinator and two workers: three PostgreSQL instances, the
//! private PostgreSQL's code with Citus preloaded), started once per test binary like the plain
//! test server, and a fresh migrated database on it per test.
//!
//! On a machine without Citus these tests fail, with the way to install it: they never pass
//! without having run.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use zegolog::store::Store;
use zegolog::tools::citus::LocalCitus;

use super::temp_data_dir;

static CLUSTER: OnceLock<Result<LocalCitus, String>> = OnceLock::new();

extern "C" fn stop_cluster_at_exit() {
    if let Some(Ok(cluster)) = CLUSTER.get() {
        cluster.stop();
        let _ = std::fs::remove_dir_all(cluster.dir());
    }
}

/// The cluster every Citus test of this binary shares (none stops its nodes).
pub fn cluster() -> &'static LocalCitus {
    let cluster = CLUSTER.get_or_init(|| {
        let dir = temp_data_dir("zegolog-test-citus-");
        let started = LocalCitus::start(&dir, 2).map_err(|e| format!("{e:#}"));
        match &started {
            // SAFETY: registers a plain function; it runs once, when the process exits.
            Ok(_) => unsafe {
                nix::libc::atexit(stop_cluster_at_exit);
            },
            Err(_) => {
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
        started
    });
    match cluster {
        Ok(cluster) => cluster,
        Err(e) => panic!("the Citus tests did not run: {e}"),
    }
}

/// A fresh database on `cluster`, with the citus extension on every node and the nodes
/// registered, but no zegolog table yet: the coordinator's URL (it holds the password).
pub async fn empty_database_on(cluster: &LocalCitus) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "zegolog_citus_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    );
    database_named_on(cluster, &name).await
}

/// [`empty_database_on`] with the name given (unique on `cluster`: the caller's business).
pub async fn database_named_on(cluster: &LocalCitus, name: &str) -> String {
    // One at a time: each registers the nodes, which copies Citus's metadata to them.
    static CREATING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one_at_a_time = CREATING.lock().await;
    cluster
        .create_database(name)
        .await
        .expect("creating a database on the Citus cluster")
}

/// A pool on the coordinator's database at `url`, with the session settings of zegolog's own.
pub async fn pool_on(url: &str) -> PgPool {
    let options = url.parse().expect("a PostgreSQL URL");
    PgPoolOptions::new()
        .max_connections(8)
        .connect_with(zegolog::store::session_settings(options))
        .await
        .expect("connecting to the Citus coordinator")
}

/// A fresh database on `cluster`, migrated by zegolog (which distributes its tables there), as
/// the coordinator's URL (it holds the password: do not print it) and a pool on it.
pub async fn migrated_database_on(cluster: &LocalCitus) -> (String, PgPool) {
    let url = empty_database_on(cluster).await;
    let pool = pool_on(&url).await;
    Store::from_pool(pool.clone()).migrate().await.unwrap();
    (url, pool)
}

/// The shared cluster, from async code.
pub async fn shared_cluster() -> &'static LocalCitus {
    tokio::task::spawn_blocking(cluster).await.unwrap()
}

/// A fresh migrated database on the shared cluster ([`migrated_database_on`]).
pub async fn citus_database() -> (String, PgPool) {
    migrated_database_on(shared_cluster().await).await
}

/// A cluster of one test's own, for tests that stop a node; stopped and removed when dropped.
pub struct OwnCluster(pub LocalCitus);

impl OwnCluster {
    /// Starts a coordinator and two workers in a new temporary directory; panics with the way
    /// to install Citus when it is missing.
    pub async fn start(prefix: &str) -> Self {
        let dir = temp_data_dir(prefix);
        let started = tokio::task::spawn_blocking(move || {
            LocalCitus::start(&dir, 2).map_err(|e| {
                let _ = std::fs::remove_dir_all(&dir);
                format!("{e:#}")
            })
        })
        .await
        .unwrap();
        match started {
            Ok(cluster) => Self(cluster),
            Err(e) => panic!("the Citus tests did not run: {e}"),
        }
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        self.0.stop();
        let _ = std::fs::remove_dir_all(self.0.dir());
    }
}
