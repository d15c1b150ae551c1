//! The whole service: [`app`], the router, and [`run`], everything `zegolog serve` does. The
//! binary and the tests call the very same functions.
//!
//! It sits above the parts it wires: [`crate::http`] (callbacks, health, metrics, and the edge
//! every route is served behind), [`crate::dashboard`] (the read side, built on http's state and
//! answers; neither knows the other is mounted beside it), the database brought up in the
//! background ([`crate::database::bring_up`]), group commit and the spool ([`crate::ingest`]),
//! the [`crate::upkeep`] loop, and the alert webhook ([`crate::notifier`]) when configured.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

use crate::dashboard::{self, DashboardToken};
use crate::database::{self, Backoff, BringUpConfig, DatabaseError, LiveStore, Location};
use crate::error_chain;
use crate::http::{self, AppState, ClientLimits};
use crate::ingest::{BatchConfig, Ingest};
use crate::metrics::Metrics;
use crate::notifier::{Notifier, NotifierConfig};
use crate::outcome::ReusePolicy;
use crate::signature::Verifier;
use crate::spool::{Spool, SpoolLimits};
use crate::store::PoolConfig;
use crate::upkeep::{self, UpkeepConfig};

/// How long the spool may drain at shutdown, once every request has been answered.
const DRAIN_AT_SHUTDOWN: Duration = Duration::from_secs(10);

/// The whole router: callbacks, health and metrics, and the dashboard when `dashboard` holds
/// its token. The binary serves this router and the tests drive the very same one.
pub fn app(state: AppState, dashboard: Option<DashboardToken>) -> Router {
    let mut routes = http::routes();
    if let Some(token) = dashboard {
        // Off unless a token is configured: then its routes do not exist at all (404).
        routes = routes.merge(dashboard::routes(token));
    }
    http::edge(routes, state)
}

/// Everything [`run`] needs, validated already (the command line builds it from its flags).
#[derive(Debug)]
pub struct ServerConfig {
    /// Where the database is; [`run`] brings it up in the background.
    pub database: Location,
    /// The reporting time zone the database must cut its days in (a new database takes it).
    pub time_zone: String,
    /// How callbacks are authenticated.
    pub verifier: Verifier,
    /// The connections to PostgreSQL.
    pub pool: PoolConfig,
    /// What to do with a signature that came first with another body.
    pub reuse_policy: ReusePolicy,
    /// Group commit.
    pub batching: BatchConfig,
    /// The durable spool callbacks wait in while PostgreSQL is unreachable; `None`: no spool,
    /// an outage is answered 503.
    pub spool: Option<SpoolConfig>,
    /// Client timeouts and the bound on client connections.
    pub clients: ClientLimits,
    /// The background upkeep.
    pub upkeep: UpkeepConfig,
    /// The dashboard's token; `None` turns the dashboard off.
    pub dashboard: Option<DashboardToken>,
    /// Most appids labelled on their own in `zegolog_logouts_total`.
    pub metrics_max_appids: usize,
    /// The alert webhook; `None`: off.
    pub alerts: Option<NotifierConfig>,
}

/// Where the spool is, and its bounds.
#[derive(Debug, Clone)]
pub struct SpoolConfig {
    pub path: PathBuf,
    pub limits: SpoolLimits,
}

/// Why [`run`] stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The database cannot be used by this instance as configured (it cuts its days in another
    /// time zone): no retry helps, so the server stopped.
    #[error(transparent)]
    Database(DatabaseError),
    #[error("serving HTTP")]
    Http(#[source] std::io::Error),
}

/// Serves zegolog on `listener` until `shutdown` resolves: answers at once, brings the database
/// up in the background (callbacks are spooled, or refused without a spool, until it is
/// migrated and ready), writes callbacks by group commit, and runs the upkeep. At shutdown it
/// stops accepting, answers the requests in flight, lets the writers finish and the spool
/// drain for a while, and closes the database (stopping the private PostgreSQL, if any).
///
/// Stops by itself, with [`ServerError::Database`], when the database turns out to be one this
/// instance must not use (another reporting time zone).
pub async fn run(
    config: ServerConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let ServerConfig {
        database,
        time_zone,
        verifier,
        pool,
        reuse_policy,
        batching,
        spool,
        clients,
        upkeep,
        dashboard,
        metrics_max_appids,
        alerts,
    } = config;
    let listen: SocketAddr = listener.local_addr().map_err(ServerError::Http)?;
    if verifier.is_insecure() {
        tracing::warn!("--insecure-skip-verify: callback signatures are NOT checked; anyone who can reach this port can write into the database");
    }

    // The database comes up in the background: callbacks are spooled (or refused without a
    // spool) until it is migrated and ready.
    let live = LiveStore::pending();
    tracing::info!(policy = reuse_policy.as_str(), "signature reuse policy");
    // A database this instance must not use (another reporting time zone) stops the server.
    let (bring_up, fatal_rx) = database::bring_up(
        BringUpConfig {
            location: database,
            pool,
            reuse_policy,
            time_zone,
            backoff: Backoff::default(),
        },
        live.clone(),
    );
    let fatal = Arc::new(Mutex::new(None::<DatabaseError>));
    let shutdown = {
        let fatal = fatal.clone();
        async move {
            tokio::select! {
                _ = shutdown => {}
                Ok(error) = fatal_rx => {
                    tracing::error!(error = %error_chain(&error), "stopping: the database cannot be used by this instance");
                    *fatal.lock().unwrap() = Some(error);
                }
            }
        }
    };

    let spool = spool.map(|SpoolConfig { path, limits }| {
        let spool = Spool::new(&path, limits);
        if spool.depth() > 0 {
            tracing::info!(
                depth = spool.depth(),
                "callbacks wait in the spool from an earlier run; draining them"
            );
        }
        Arc::new(spool)
    });
    let metrics = Arc::new(Metrics::new(metrics_max_appids));
    let (ingest, tasks) = Ingest::start(live.clone(), spool, batching, metrics.clone());
    let notifier = alerts.map(|config| {
        let live = live.clone();
        tokio::spawn(async move {
            let store = live.wait_ready().await.clone();
            Notifier::new(store, config).run().await
        })
    });
    let upkeep = tokio::spawn(async move {
        let store = live.wait_ready().await.clone();
        upkeep::run(store, upkeep).await
    });
    let state = AppState::with_ingest(verifier, ingest, metrics.clone());
    if dashboard.is_some() {
        tracing::info!("dashboard on at /dashboard (token required)");
    }
    tracing::info!(%listen, "zegolog is receiving callbacks on POST /zego/callback");
    let served = http::serve(listener, app(state, dashboard), clients, metrics, shutdown)
        .await
        .map_err(ServerError::Http);
    // Every request has been answered; let the writers finish and the spool drain.
    tasks.finish(DRAIN_AT_SHUTDOWN).await;
    upkeep.abort();
    if let Some(notifier) = notifier {
        notifier.abort();
    }
    bring_up.close().await;
    if let Some(error) = fatal.lock().unwrap().take() {
        return Err(ServerError::Database(error));
    }
    served
}
