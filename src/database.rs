//! The database zegolog writes to, and the way `serve` reaches it.
//!
//! [`Database`] opens the [`Location`] the configuration names (the binary makes it of the same
//! flags on every command): a PostgreSQL URL, or else the private PostgreSQL under the data dir.
//! Commands open it, run, and close it, and fail fast with a clear message when it cannot be
//! reached.
//!
//! `serve` must not wait for it: a restart during a database outage would refuse every callback
//! until PostgreSQL is back, although the spool exists for exactly that. So `serve` starts with a
//! [`LiveStore`] that is not ready yet, and [`bring_up`] runs in the background: it starts the
//! private PostgreSQL (if any), connects, applies the pending migrations and then publishes the
//! [`Store`], retrying with backoff and logging one line per change of state ([`StoreState`]).
//! Until then the writers spool (or answer 503 without a spool), and `/readyz` says which state
//! it is in.
//!
//! Three names, three things: a [`Database`] is the PostgreSQL a command opened (a URL, or the
//! private server it started and must stop); a [`Store`] is zegolog's SQL over a connection pool
//! to it; a [`LiveStore`] is `serve`'s shared handle on the store that is not there yet.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::watch;

use crate::embedded_pg::{EmbeddedError, EmbeddedPostgres};
use crate::error_chain;
use crate::outcome::ReusePolicy;
use crate::store::{PoolConfig, Store, StoreError};
use crate::time_zone::{self, ZoneError};

/// Where the database is: a URL, or the private PostgreSQL under a data dir.
#[derive(Debug, Clone)]
pub enum Location {
    Url(String),
    Private(PathBuf),
}

#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error("the database URL is not valid")]
    InvalidUrl(#[source] StoreError),
    #[error("starting the private PostgreSQL (set DATABASE_URL to use another database)")]
    Private(#[source] EmbeddedError),
    #[error("reading the applied migrations")]
    ReadMigrations(#[source] StoreError),
    #[error("applying database migrations")]
    Migrate(#[source] StoreError),
    #[error("checking the reporting time zone")]
    TimeZone(#[source] ZoneError),
}

impl DatabaseError {
    /// An error that no retry can fix: the instance must stop (a time zone mismatch, a
    /// database from before the 0.1 baseline).
    pub(crate) fn is_fatal(&self) -> bool {
        matches!(
            self,
            Self::TimeZone(ZoneError::Mismatch { .. } | ZoneError::Unknown(_))
                | Self::Migrate(StoreError::PreBaseline(_))
        )
    }
}

/// An open database: its URL, and the private PostgreSQL to stop at the end, if it is one.
#[derive(Debug)]
pub struct Database {
    pub url: String,
    embedded: Option<EmbeddedPostgres>,
}

impl Database {
    /// Opens the database at `location`, starting the private PostgreSQL if that is where it is.
    pub async fn open(location: &Location) -> Result<Self, DatabaseError> {
        match location {
            Location::Url(url) => Ok(Self {
                url: url.clone(),
                embedded: None,
            }),
            Location::Private(data_dir) => {
                let data_dir = data_dir.clone();
                let embedded =
                    tokio::task::spawn_blocking(move || EmbeddedPostgres::start(&data_dir))
                        .await
                        .expect("the private PostgreSQL start task does not panic")
                        .map_err(DatabaseError::Private)?;
                tracing::info!(
                    psql = %embedded.psql_command(),
                    "no DATABASE_URL: using the private PostgreSQL under the data directory; analysts connect with the psql command"
                );
                Ok(Self {
                    url: embedded.url(),
                    embedded: Some(embedded),
                })
            }
        }
    }

    /// A command's store on this database (not `serve`'s, which [`bring_up`] migrates in the
    /// background), with its migrations applied: a spinner and the elapsed time show on a
    /// terminal meanwhile, since a migration can rewrite a large table.
    pub async fn migrated(&self) -> Result<Store, DatabaseError> {
        let spinner = indicatif::ProgressBar::new_spinner();
        if std::io::stderr().is_terminal() {
            spinner.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                    .expect("a valid template"),
            );
            spinner.set_message("bringing the database schema up to date");
            spinner.enable_steady_tick(Duration::from_millis(200));
        }
        let result = async {
            let store = Store::connect_lazy(&self.url, &PoolConfig::default())
                .map_err(DatabaseError::InvalidUrl)?;
            migrate(&store).await?;
            Ok(store)
        }
        .await;
        spinner.finish_and_clear();
        result
    }

    /// [`Database::migrated`], then the check that the database cuts its days in `time_zone`.
    pub async fn migrated_in(&self, time_zone: &str) -> Result<Store, DatabaseError> {
        let store = self.migrated().await?;
        check_time_zone(&store, time_zone).await?;
        Ok(store)
    }

    /// The `psql` command that connects to it, when it is the private PostgreSQL.
    pub fn psql_command(&self) -> Option<String> {
        self.embedded.as_ref().map(EmbeddedPostgres::psql_command)
    }

    /// Stops the private PostgreSQL, if this database is one.
    pub async fn close(self) {
        if let Some(embedded) = self.embedded {
            match tokio::task::spawn_blocking(move || embedded.stop()).await {
                Ok(Ok(())) => tracing::info!("private PostgreSQL stopped"),
                Ok(Err(e)) => tracing::error!(error = %e, "stopping the private PostgreSQL failed"),
                Err(e) => tracing::error!(error = %e, "stopping the private PostgreSQL failed"),
            }
        }
    }
}

/// Applies the migrations the database at `url` lacks ([`Database::migrated`]) and closes the
/// connection again: for the tools that make databases of their own.
#[cfg(feature = "tools")]
pub(crate) async fn migrate_url(url: &str) -> Result<(), DatabaseError> {
    let database = Database::open(&Location::Url(url.to_owned())).await?;
    database.migrated().await?.close().await;
    Ok(())
}

/// Applies the migrations the database lacks, saying which run and how long they took.
pub async fn migrate(store: &Store) -> Result<(), DatabaseError> {
    let pending = store
        .pending_migrations()
        .await
        .map_err(DatabaseError::ReadMigrations)?;
    if !pending.is_empty() {
        tracing::info!(migrations = ?pending, "applying database migrations");
    }
    let started = std::time::Instant::now();
    store.migrate().await.map_err(DatabaseError::Migrate)?;
    if !pending.is_empty() {
        tracing::info!(took = ?started.elapsed(), "migrations applied");
    }
    tracing::info!("database schema is up to date");
    Ok(())
}

/// The reporting time zone the database cuts its days in.
pub async fn reporting_time_zone(store: &Store) -> Result<String, DatabaseError> {
    time_zone::database_zone(store.pool())
        .await
        .map_err(|e| DatabaseError::TimeZone(e.into()))
}

/// Checks that the database cuts its days in `time_zone` (a new database takes it).
pub(crate) async fn check_time_zone(store: &Store, time_zone: &str) -> Result<(), DatabaseError> {
    time_zone::check(store.pool(), time_zone)
        .await
        .map_err(DatabaseError::TimeZone)
}

/// Where [`bring_up`] is on its way to a usable database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreState {
    /// Starting the private PostgreSQL.
    Starting,
    /// Connecting and applying migrations.
    Connecting,
    /// Waiting to try again after `error`.
    Retrying { error: String },
    /// Migrated and taking writes (a later outage is the writers' business: they spool).
    Ready,
    /// Given up: the database cannot be used by this instance as configured (`serve` stops).
    Failed { error: String },
}

impl StoreState {
    /// A stable name for `/readyz` and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Starting => "starting_database",
            Self::Connecting => "connecting",
            Self::Retrying { .. } => "database_unreachable",
            Self::Ready => "ready",
            Self::Failed { .. } => "failed",
        }
    }
}

/// The store, once it is migrated, and the state of the way there; cheap to clone.
#[derive(Debug, Clone)]
pub struct LiveStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: OnceLock<Store>,
    state: watch::Sender<StoreState>,
}

impl LiveStore {
    /// A live store that is not there yet: [`bring_up`] provides it.
    pub fn pending() -> Self {
        Self {
            inner: Arc::new(Inner {
                store: OnceLock::new(),
                state: watch::Sender::new(StoreState::Connecting),
            }),
        }
    }

    /// A live store that is ready with this (migrated) store.
    pub fn ready(store: Store) -> Self {
        let live = Self::pending();
        live.publish(store);
        live
    }

    /// The store, once the database is migrated.
    pub fn store(&self) -> Option<&Store> {
        self.inner.store.get()
    }

    pub fn state(&self) -> StoreState {
        self.inner.state.borrow().clone()
    }

    /// Resolves once the store is there.
    pub async fn wait_ready(&self) -> &Store {
        let mut state = self.inner.state.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = state.wait_for(|s| *s == StoreState::Ready).await;
        self.store()
            .expect("the store is published before the Ready state")
    }

    fn publish(&self, store: Store) {
        let _ = self.inner.store.set(store);
        self.set_state(StoreState::Ready);
    }

    /// Moves to `state`; says so in the log when it is a change.
    fn set_state(&self, state: StoreState) {
        let changed = self.inner.state.send_if_modified(|current| {
            if *current == state {
                return false;
            }
            *current = state.clone();
            true
        });
        if !changed {
            return;
        }
        match &state {
            StoreState::Starting => tracing::info!("starting the private PostgreSQL"),
            StoreState::Connecting => {
                tracing::info!("connecting to PostgreSQL and applying pending migrations")
            }
            StoreState::Retrying { error } => tracing::warn!(
                %error,
                "the database cannot be used yet; callbacks go to the spool (or get 503 without one) while zegolog keeps trying"
            ),
            StoreState::Ready => {
                tracing::info!("the database is ready: writing callbacks to PostgreSQL")
            }
            StoreState::Failed { error } => {
                tracing::error!(%error, "the database cannot be used as configured; stopping")
            }
        }
    }
}

impl From<Store> for LiveStore {
    fn from(store: Store) -> Self {
        Self::ready(store)
    }
}

/// Backoff between attempts of [`bring_up`]: from `first`, doubling, at most `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            first: Duration::from_millis(250),
            max: Duration::from_secs(10),
        }
    }
}

/// What [`bring_up`] needs to reach the database.
#[derive(Debug, Clone)]
pub struct BringUpConfig {
    pub location: Location,
    pub pool: PoolConfig,
    /// What the store does with a signature reuse.
    pub reuse_policy: ReusePolicy,
    /// The reporting time zone the database must cut its days in.
    pub time_zone: String,
    pub backoff: Backoff,
}

/// The background task of [`bring_up`], and the database it opened (which must be closed, to
/// stop the private PostgreSQL, however far the task got).
#[derive(Debug)]
pub struct BringUp {
    task: tokio::task::JoinHandle<()>,
    opened: Arc<Mutex<Option<Database>>>,
}

impl BringUp {
    /// Stops trying (if it still is) and closes the database it opened, if any.
    pub async fn close(self) {
        self.task.abort();
        let _ = self.task.await;
        let database = self.opened.lock().unwrap().take();
        if let Some(database) = database {
            database.close().await;
        }
    }
}

/// Brings the database up in a background task and publishes the store in `live`: starts the
/// private PostgreSQL if that is the location, connects, applies pending migrations and checks
/// the reporting time zone, retrying with backoff until it works.
///
/// Returns the task, and a receiver that gets the error when no retry can help (the database
/// cuts its days in another time zone than the configured one): then the caller must stop,
/// since every instance has to agree.
pub fn bring_up(
    config: BringUpConfig,
    live: LiveStore,
) -> (BringUp, tokio::sync::oneshot::Receiver<DatabaseError>) {
    let opened = Arc::new(Mutex::new(None));
    let (fatal_tx, fatal) = tokio::sync::oneshot::channel();
    let task = tokio::spawn({
        let opened = opened.clone();
        async move {
            if let Err(error) = keep_trying(config, &live, &opened).await {
                let _ = fatal_tx.send(error);
            }
        }
    });
    (BringUp { task, opened }, fatal)
}

/// [`bring_up`]'s loop: one attempt after another until the store is published, or an error
/// no retry can help. The database is put in `opened` as soon as it is open.
async fn keep_trying(
    config: BringUpConfig,
    live: &LiveStore,
    opened: &Mutex<Option<Database>>,
) -> Result<(), DatabaseError> {
    let BringUpConfig {
        location,
        pool,
        reuse_policy,
        time_zone,
        backoff,
    } = config;
    let mut wait = backoff.first;
    let mut store: Option<Store> = None;
    loop {
        let attempt = async {
            if store.is_none() {
                if matches!(location, Location::Private(_)) {
                    live.set_state(StoreState::Starting);
                }
                let database = Database::open(&location).await?;
                let connected = Store::connect_lazy(&database.url, &pool)
                    .map(|store| store.with_reuse_policy(reuse_policy))
                    .map_err(DatabaseError::InvalidUrl);
                *opened.lock().unwrap() = Some(database);
                store = Some(connected?);
            }
            live.set_state(StoreState::Connecting);
            let connected = store.as_ref().expect("connected above");
            migrate(connected).await?;
            check_time_zone(connected, &time_zone).await
        };
        match attempt.await {
            Ok(()) => {
                live.publish(store.take().expect("connected above"));
                return Ok(());
            }
            Err(error) if error.is_fatal() => {
                live.set_state(StoreState::Failed {
                    error: error_chain(&error),
                });
                return Err(error);
            }
            Err(error) => {
                live.set_state(StoreState::Retrying {
                    error: error_chain(&error),
                });
                tracing::debug!(error = %error_chain(&error), retry_in = ?wait, "database not ready");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(backoff.max);
            }
        }
    }
}
