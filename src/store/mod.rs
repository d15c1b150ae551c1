//! PostgreSQL: the schema (embedded from `migrations/`) and the idempotent writes.
//!
//! Idempotency lives in the database, not in memory: `room_logouts` is unique on the logout's
//! natural key (and keeps its body), `callback_events` on the business digest of every other
//! body, and every write is `INSERT ... ON CONFLICT`. Whatever retries or races happen, a
//! callback is one row.
//! This module knows SQL and nothing of HTTP.
//!
//! Here: the [`Store`] (connecting, migrating, the health ping); beside it, `write.rs`, the
//! batch write (its statement in `write_batch.sql`, with its comments), which answers an
//! [`crate::outcome::Outcome`] per callback. The SQL of each other concern lives with it, as
//! `impl Store` blocks in its own `sql.rs`: `crate::upkeep` (compaction, partitions,
//! retention), `crate::quarantine` (listing and releasing), `crate::erase` (one user).

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

mod write;

use crate::outcome::ReusePolicy;

pub(crate) use write::write_statement;
pub use write::WriteStatement;

/// The version of the first migration of the 0.1 baseline (`migrations/0100_*.sql`).
pub const FIRST_BASELINE_VERSION: i64 = 100;

/// What differs on Citus (the layout, and the functions Citus cannot plan as the migrations
/// write them), applied after the migrations when the citus extension is present.
pub const CITUS_SQL: &str = include_str!("../../schema/citus.sql");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "this database was built by zegolog's migrations from before the 0.1 baseline \
         (versions {0} in _sqlx_migrations), whose schema this version does not upgrade in \
         place: export its callbacks and import them into a new database (README, \
         \"Upgrading a database from before 0.1\")"
    )]
    PreBaseline(String),
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("the database did not answer within {0:?}")]
    Timeout(Duration),
    #[error("migrations failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// Whether PostgreSQL gave up waiting for a lock (`lock_timeout`, SQLSTATE 55P03): the
    /// upkeep's partition DDL, which would otherwise queue every writer behind a long query.
    pub fn is_lock_timeout(&self) -> bool {
        matches!(self, Self::Database(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55P03"))
    }
}

/// Connection settings for the pool.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub max_connections: u32,
    /// How long a write may wait for a connection before the caller is told to come back later.
    pub acquire_timeout: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(1),
        }
    }
}

/// `options` with the settings every zegolog connection runs with: no JIT. The write statement
/// is short, but on Citus its cost estimate (over intermediate results) passes
/// `jit_above_cost`, and compiling its expressions took 250 ms of a 35 ms write (the
/// plausibility rule made them longer). Compaction turns JIT off for itself too.
pub fn session_settings(options: PgConnectOptions) -> PgConnectOptions {
    options.options([("jit", "off")])
}

/// The database, and the deadline every write must meet.
#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
    write_deadline: Duration,
    reuse_policy: ReusePolicy,
}

impl Store {
    /// A pool that connects lazily: start-up does not fail while PostgreSQL is down, and the pool
    /// reconnects by itself when it is back.
    pub fn connect_lazy(url: &str, config: &PoolConfig) -> Result<Self, StoreError> {
        let options: PgConnectOptions = url.parse()?;
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.acquire_timeout)
            .connect_lazy_with(session_settings(options).application_name("zegolog"));
        Ok(Self::from_pool(pool))
    }

    pub fn from_pool(pool: PgPool) -> Self {
        Self {
            pool,
            write_deadline: Duration::from_millis(1800),
            reuse_policy: ReusePolicy::default(),
        }
    }

    /// The same store, applying this policy to signature reuses.
    pub fn with_reuse_policy(mut self, policy: ReusePolicy) -> Self {
        self.reuse_policy = policy;
        self
    }

    pub fn reuse_policy(&self) -> ReusePolicy {
        self.reuse_policy
    }

    /// Closes the store's connections, waiting for the ones in use to be given back.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// For the library's own read side (the dashboard's views); commands and tools open their
    /// own connections.
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The migrations recorded in the database, with whether each succeeded; none in a new
    /// database (no migration table yet).
    async fn recorded_migrations(&self) -> Result<Vec<(i64, bool)>, StoreError> {
        match sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&self.pool)
            .await
        {
            Ok(recorded) => Ok(recorded),
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }

    /// The embedded migrations the database has not applied yet, as `version description`.
    pub async fn pending_migrations(&self) -> Result<Vec<String>, StoreError> {
        let applied: Vec<i64> = self
            .recorded_migrations()
            .await?
            .into_iter()
            .filter_map(|(version, success)| success.then_some(version))
            .collect();
        Ok(sqlx::migrate!("./migrations")
            .iter()
            .filter(|m| !applied.contains(&m.version))
            .map(|m| format!("{} {}", m.version, m.description))
            .collect())
    }

    /// Applies the migrations this binary embeds that the database lacks, then, on a Citus
    /// coordinator, what differs there ([`CITUS_SQL`]). Refuses a database that the migrations
    /// before the 0.1 baseline built ([`StoreError::PreBaseline`]).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.refuse_pre_baseline().await?;
        sqlx::migrate!("./migrations").run(&self.pool).await?;
        self.apply_citus().await?;
        Ok(())
    }

    /// The migrations before the 0.1 baseline were numbered 1 to 24; the baseline starts at
    /// [`FIRST_BASELINE_VERSION`]. Their schema cannot become the baseline's in place.
    async fn refuse_pre_baseline(&self) -> Result<(), StoreError> {
        let old: Vec<String> = self
            .recorded_migrations()
            .await?
            .into_iter()
            .filter(|(version, _)| *version < FIRST_BASELINE_VERSION)
            .map(|(version, _)| version.to_string())
            .collect();
        if old.is_empty() {
            Ok(())
        } else {
            Err(StoreError::PreBaseline(old.join(", ")))
        }
    }

    /// On a database with the citus extension, applies [`CITUS_SQL`] in one transaction (every
    /// statement of it is idempotent, so it runs at every start); elsewhere, nothing.
    async fn apply_citus(&self) -> Result<(), StoreError> {
        let citus: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')",
        )
        .fetch_one(&self.pool)
        .await?;
        if !citus {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        // A &str runs unprepared, through the simple query protocol: several statements.
        sqlx::Executor::execute(&mut *tx, CITUS_SQL).await?;
        tx.commit().await?;
        tracing::info!("Citus layout applied (schema/citus.sql)");
        Ok(())
    }

    /// Whether the database answers a trivial query now.
    pub async fn ping(&self) -> bool {
        tokio::time::timeout(
            self.write_deadline,
            sqlx::query("SELECT 1").execute(&self.pool),
        )
        .await
        .is_ok_and(|r| r.is_ok())
    }
}
