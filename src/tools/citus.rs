//! A local Citus cluster for the tests and the benchmark: a coordinator and workers, each a
//! private PostgreSQL ([`EmbeddedPostgres`], the same code as `zegolog serve`'s own) with
//! `shared_preload_libraries = 'citus'`, on ports of their own, under one directory.
//!
//! Citus keeps its metadata (which nodes, which shards) per database, so a database of the
//! cluster is made on every node, with the extension in each, and the nodes are then registered
//! on the coordinator's copy ([`LocalCitus::create_database`]). The nodes share one generated
//! password, which each also reads from a `pgpass` file of its own to reach the others.
//!
//! Citus is not in the package registries; `../shared/vendor/citus/build.sh` builds and installs
//! it for the local PostgreSQL ([`not_installed_hint`] says so when it is missing).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use rand::Rng;
use sqlx::{Connection, PgConnection};

use crate::embedded_pg::{find_bindir, EmbeddedPostgres, ServerSettings};

/// The settings every node starts with. Few shards, since the whole cluster shares one small
/// machine in tests (production keeps Citus's default of 32); prepared transactions, which
/// Citus's two-phase commit of a multi-node write needs on every node.
const NODE_CONF: &str = "\
# zegolog: a node of a local Citus cluster.
shared_preload_libraries = 'citus'
max_prepared_transactions = 100
max_connections = 200
citus.shard_count = 8
citus.enable_statistics_collection = off
";

/// A running local cluster: `nodes[0]` is the coordinator, the others are workers.
#[derive(Debug)]
pub struct LocalCitus {
    dir: PathBuf,
    nodes: Vec<EmbeddedPostgres>,
}

/// What to tell whoever runs zegolog's Citus tests or benchmark on a machine without Citus.
pub fn not_installed_hint(libdir: &Path) -> String {
    format!(
        "Citus is not installed for the PostgreSQL server in use (no citus.so in {}). \
         Install it with `sudo bash ../shared/vendor/citus/build.sh` from the repository (it \
         builds Citus 13.2.2 from source for the PostgreSQL that pg_config names, about 3 \
         minutes), or from your distribution's Citus package; see docs/citus.md",
        libdir.display()
    )
}

/// The directory PostgreSQL loads extensions from, for the server binaries zegolog uses.
fn pkglibdir(bindir: &Path) -> PathBuf {
    Command::new(bindir.join("pg_config"))
        .arg("--pkglibdir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .unwrap_or_else(|| bindir.with_file_name("lib"))
}

/// Fails with [`not_installed_hint`] when Citus is not installed for the local PostgreSQL.
pub(crate) fn check_installed() -> anyhow::Result<()> {
    let bindir = find_bindir()?;
    let libdir = pkglibdir(&bindir);
    if !libdir.join("citus.so").is_file() {
        bail!("{}", not_installed_hint(&libdir));
    }
    Ok(())
}

impl LocalCitus {
    /// Creates (or starts again) a cluster of a coordinator and `workers` workers under `dir`,
    /// which the unprivileged PostgreSQL user must be able to enter. Blocking.
    pub fn start(dir: &Path, workers: usize) -> anyhow::Result<Self> {
        check_installed()?;
        let password_path = dir.join("cluster-password");
        let password = match std::fs::read_to_string(&password_path) {
            Ok(password) => password.trim().to_owned(),
            Err(_) => {
                let password = hex::encode(rand::thread_rng().gen::<[u8; 24]>());
                std::fs::write(&password_path, &password)?;
                password
            }
        };
        let settings = ServerSettings {
            conf: NODE_CONF.to_owned(),
            password: Some(password),
        };
        let nodes = (0..=workers)
            .map(|i| {
                let name = if i == 0 {
                    "coordinator".to_owned()
                } else {
                    format!("worker{i}")
                };
                EmbeddedPostgres::start_with(&dir.join(&name), &settings)
                    .with_context(|| format!("starting the Citus {name}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            dir: dir.to_path_buf(),
            nodes,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The coordinator's URL for `database` (it holds the password: do not log it).
    pub fn url_for(&self, database: &str) -> String {
        self.nodes[0].url_for(database)
    }

    /// The URL of worker `i` (1-based) for `database`.
    pub fn worker_url_for(&self, i: usize, database: &str) -> String {
        self.nodes[i].url_for(database)
    }

    pub fn workers(&self) -> usize {
        self.nodes.len() - 1
    }

    pub fn worker_port(&self, i: usize) -> u16 {
        self.nodes[i].port()
    }

    /// Creates `database` on every node with the citus extension, and registers the nodes in
    /// the coordinator's copy; returns the coordinator's URL for it.
    pub async fn create_database(&self, database: &str) -> anyhow::Result<String> {
        for node in &self.nodes {
            let mut admin = PgConnection::connect(&node.url()).await?;
            sqlx::raw_sql(&format!("CREATE DATABASE {database}"))
                .execute(&mut admin)
                .await
                .with_context(|| format!("creating {database} on port {}", node.port()))?;
            admin.close().await?;
            let mut db = PgConnection::connect(&node.url_for(database)).await?;
            sqlx::raw_sql("CREATE EXTENSION citus")
                .execute(&mut db)
                .await
                .with_context(|| format!("CREATE EXTENSION citus on port {}", node.port()))?;
            db.close().await?;
        }
        let mut coordinator = PgConnection::connect(&self.url_for(database)).await?;
        sqlx::query("SELECT citus_set_coordinator_host('127.0.0.1', $1)")
            .bind(i32::from(self.nodes[0].port()))
            .execute(&mut coordinator)
            .await
            .context("citus_set_coordinator_host")?;
        for worker in &self.nodes[1..] {
            // Adding a node connects to it to copy the metadata over; on a busy machine that
            // connection can fail once. citus_add_node of a node already added returns its id.
            let mut attempt = 0;
            loop {
                let added = sqlx::query("SELECT citus_add_node('127.0.0.1', $1)")
                    .bind(i32::from(worker.port()))
                    .execute(&mut coordinator)
                    .await;
                match added {
                    Ok(_) => break,
                    Err(_) if attempt < 3 => {
                        attempt += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(500 * attempt)).await;
                    }
                    Err(e) => {
                        return Err(e)
                            .with_context(|| format!("citus_add_node for port {}", worker.port()))
                    }
                }
            }
        }
        coordinator.close().await?;
        Ok(self.url_for(database))
    }

    /// Lets the coordinator reach the workers as `role`: Citus runs a query's shard queries as
    /// the user who sent it, so every role that reads distributed tables (through views too)
    /// must be able to log in to the workers from the coordinator.
    pub fn add_role_password(&self, role: &str, password: &str) -> anyhow::Result<()> {
        Ok(self.nodes[0].add_peer_password(role, password)?)
    }

    /// Stops worker `i` (1-based; fast shutdown). Blocking.
    pub fn stop_worker(&self, i: usize) -> anyhow::Result<()> {
        self.nodes[i].stop().context("stopping a Citus worker")
    }

    /// Starts worker `i` again on its port (its address is in the cluster's metadata). Blocking.
    pub fn restart_worker(&mut self, i: usize) -> anyhow::Result<()> {
        let port = self.nodes[i].port();
        self.nodes[i]
            .restart()
            .context("starting a Citus worker again")?;
        if self.nodes[i].port() != port {
            bail!(
                "worker {i} came back on port {} instead of {port}",
                self.nodes[i].port()
            );
        }
        Ok(())
    }

    /// Stops every node. Blocking.
    pub fn stop(&self) {
        for node in &self.nodes {
            let _ = node.stop();
        }
    }
}
