//! PostgreSQL: the schema (embedded from `migrations/`) and the idempotent writes.
//!
//! Idempotency lives in the database, not in memory: `callback_events` is unique on the business
//! digest and `room_logouts` on the logout's natural key, and every write is
//! `INSERT ... ON CONFLICT DO NOTHING`. Whatever retries or races happen, a callback is one row.
//! The batch write statement lives beside this file, in `store/write_batch.sql`, with its
//! comments. This module knows SQL and nothing of HTTP.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use crate::callback::{Payload, Received, RoomLifecycle, RoomLogin, RoomLogout};

/// What storing one callback did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// New: its rows were written.
    Stored,
    /// Already stored by an earlier delivery (or an earlier callback of the same batch).
    Duplicate,
    /// Authentic but unusable: archived with the reason in `callback_events.refused_reason`.
    Quarantined,
    /// Its (timestamp, nonce, signature) came first with another body: see [`Reuse`].
    SignatureReuse(Reuse),
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stored | Self::SignatureReuse(Reuse::Accepted { stored: true }) => "stored",
            Self::Duplicate | Self::SignatureReuse(Reuse::Accepted { stored: false }) => {
                "duplicate"
            }
            Self::Quarantined | Self::SignatureReuse(Reuse::Quarantined | Reuse::OverBound) => {
                "quarantined"
            }
            Self::SignatureReuse(Reuse::Rejected) => "replayed_signature",
        }
    }
}

/// What was done with a callback whose signed triple the ledger holds with another body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// Kept in `callback_events` with the reuse and the first digest in `refused_reason`, in no
    /// typed table and no rollup (policy `quarantine`, and every policy when draining the spool
    /// would otherwise reject).
    Quarantined,
    /// Beyond [`QUARANTINE_PER_SIGNATURE`] bodies of its triple: counted only, nothing written.
    OverBound,
    /// Nothing written; the sender is answered 401 (policy `reject`).
    Rejected,
    /// Stored as usual (policy `accept`); `stored` tells new from duplicate.
    Accepted { stored: bool },
}

impl Reuse {
    /// The metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Quarantined => "quarantined",
            Self::OverBound => "over_bound",
            Self::Rejected => "rejected",
            Self::Accepted { .. } => "accepted",
        }
    }
}

/// What to do with another body under a signed triple already in the ledger (`zegolog serve
/// --on-signature-reuse`). The same triple with the same body is a retry under every policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReusePolicy {
    /// Keep it out of the typed tables, in `callback_events` with the reason; answer 2xx.
    #[default]
    Quarantine,
    /// Write nothing; answer 401 `replayed_signature`.
    Reject,
    /// Store it as usual; only count it.
    Accept,
}

impl ReusePolicy {
    pub const NAMES: [&'static str; 3] = ["quarantine", "reject", "accept"];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Quarantine => "quarantine",
            Self::Reject => "reject",
            Self::Accept => "accept",
        }
    }

    /// The policy for a callback whose sender was already answered 2xx (drained from the
    /// spool): it can no longer be refused, so `reject` quarantines.
    pub fn acknowledged(self) -> Self {
        match self {
            Self::Reject => Self::Quarantine,
            other => other,
        }
    }
}

impl std::str::FromStr for ReusePolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "quarantine" => Ok(Self::Quarantine),
            "reject" => Ok(Self::Reject),
            "accept" => Ok(Self::Accept),
            other => Err(format!(
                "`{other}` is not one of quarantine, reject, accept"
            )),
        }
    }
}

/// Most bodies one signed triple can put in quarantine; later reuses of it are only counted
/// (answered 2xx all the same), so that one captured triple cannot fill the disk.
pub const QUARANTINE_PER_SIGNATURE: i32 = 10;

/// How long the signature ledger remembers a triple, at least: far beyond the default skew
/// window (600 s) plus the sender's retries (~62 s). Daily partitions older go whole.
pub const LEDGER_KEEP: Duration = Duration::from_secs(2 * 24 * 3600);

/// One quarantined callback, as `zegolog quarantine list` shows it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct QuarantinedCallback {
    pub id: i64,
    pub received_at: DateTime<Utc>,
    pub event: String,
    pub appid: i64,
    pub reason: String,
}

/// A quarantined callback's archive row, locked for release.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct QuarantinedBody {
    pub id: i64,
    /// The stored fields as JSON text.
    pub body: String,
    pub content_type: String,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("the database did not answer within {0:?}")]
    Timeout(Duration),
    #[error("migrations failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
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
            .connect_lazy_with(options.application_name("zegolog"));
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

    /// For the library's own read side (the dashboard's views); commands and tools open their
    /// own connections.
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The embedded migrations the database has not applied yet, as `version description`.
    pub async fn pending_migrations(&self) -> Result<Vec<String>, StoreError> {
        let applied: Vec<i64> =
            match sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(&self.pool)
                .await
            {
                Ok(versions) => versions,
                // A new database: no migration table yet.
                Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => Vec::new(),
                Err(e) => return Err(e.into()),
            };
        Ok(sqlx::migrate!("./migrations")
            .iter()
            .filter(|m| !applied.contains(&m.version))
            .map(|m| format!("{} {}", m.version, m.description))
            .collect())
    }

    /// Applies the migrations this binary embeds that the database lacks.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("./migrations").run(&self.pool).await?;
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

    /// Stores a batch of authenticated callbacks in one statement, hence one transaction, and
    /// says for each what happened. Nothing is written unless everything is.
    pub async fn write(&self, batch: &[Received]) -> Result<Vec<Outcome>, StoreError> {
        self.write_with(batch, self.reuse_policy).await
    }

    /// [`Store::write`] for callbacks whose senders were already answered 2xx (drained from
    /// the spool): a signature reuse is quarantined rather than rejected.
    pub async fn write_acknowledged(&self, batch: &[Received]) -> Result<Vec<Outcome>, StoreError> {
        self.write_with(batch, self.reuse_policy.acknowledged())
            .await
    }

    async fn write_with(
        &self,
        batch: &[Received],
        policy: ReusePolicy,
    ) -> Result<Vec<Outcome>, StoreError> {
        tokio::time::timeout(self.write_deadline, self.write_retrying(batch, policy))
            .await
            .map_err(|_| StoreError::Timeout(self.write_deadline))?
    }

    /// A deadlock or serialization failure is a race with another writer, not an outage: the
    /// batch is retried in place a few times (with a short random pause) before it counts as a
    /// failed write. The statement's key order makes deadlocks between batches impossible;
    /// this covers what else may take row locks (an operator's session, say).
    async fn write_retrying(
        &self,
        batch: &[Received],
        policy: ReusePolicy,
    ) -> Result<Vec<Outcome>, StoreError> {
        const ATTEMPTS: u32 = 4;
        let mut attempt = 1;
        loop {
            match self.write_isolating(batch, policy).await {
                Err(StoreError::Database(e)) if is_transient_conflict(&e) && attempt < ATTEMPTS => {
                    tracing::warn!(error = %e, attempt, "the batch lost a race with another transaction; retrying it");
                    let pause = rand::random::<u64>() % (20 * u64::from(attempt)) + 1;
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// One callback the database refuses must neither fail the others of its batch nor come
    /// back forever: on a data error the batch is written one callback at a time, and a
    /// callback refused alone is quarantined with PostgreSQL's reason, its body kept as text.
    async fn write_isolating(
        &self,
        batch: &[Received],
        policy: ReusePolicy,
    ) -> Result<Vec<Outcome>, StoreError> {
        match write_statement(&self.pool, batch, policy).await {
            Err(StoreError::Database(e)) if is_data_error(&e) => {
                tracing::warn!(error = %e, size = batch.len(), "the database refused a batch; writing it one by one");
                let mut outcomes = Vec::with_capacity(batch.len());
                for received in batch {
                    match write_statement(&self.pool, std::slice::from_ref(received), policy).await
                    {
                        Ok(outcome) => outcomes.extend(outcome),
                        Err(StoreError::Database(e)) if is_data_error(&e) => {
                            outcomes.push(self.quarantine(received, &e).await?);
                        }
                        Err(e) => return Err(e),
                    }
                }
                Ok(outcomes)
            }
            other => other,
        }
    }

    async fn quarantine(
        &self,
        received: &Received,
        error: &sqlx::Error,
    ) -> Result<Outcome, StoreError> {
        tracing::warn!(event = %received.event, appid = received.appid, %error, "authentic callback quarantined: the database refused it");
        sqlx::query(
            "INSERT INTO callback_events (digest, event, appid, body, content_type, refused_reason)
             VALUES ($1, left($2, 1024), $3, to_jsonb($4::text), $5, $6)
             ON CONFLICT (digest) DO NOTHING",
        )
        .bind(received.digest.to_vec())
        .bind(&received.event)
        .bind(received.appid)
        .bind(received.body.to_string())
        .bind(received.encoding.mime())
        .bind(format!(
            "PostgreSQL refused it: {error} (body kept as JSON text)"
        ))
        .execute(&self.pool)
        .await?;
        Ok(Outcome::Quarantined)
    }

    /// Folds the rollup rows appended by recent writes into the rollup tables and recomputes the
    /// daily concurrency they touch (`zegolog_compact_rollups()`, idempotent). First, pairs the
    /// logouts without login_time received in the last ten minutes whose login was written by a
    /// concurrent transaction (`zegolog_pair_recent_logouts()`, see migration 0009).
    pub async fn compact_rollups(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT zegolog_pair_recent_logouts()")
            .execute(&self.pool)
            .await?;
        sqlx::query("SELECT zegolog_compact_rollups()")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Creates the monthly partitions of `room_logouts` from last month to three months ahead,
    /// and the daily partitions of the signature ledger from yesterday to two days ahead.
    pub async fn ensure_partitions(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT zegolog_ensure_partitions()")
            .execute(&self.pool)
            .await?;
        sqlx::query("SELECT zegolog_ensure_ledger_partitions()")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Drops the daily partitions of the signature ledger that ended more than `keep` ago, and
    /// the rows of its default partition first seen before then; returns the partitions dropped.
    pub async fn prune_signature_ledger(&self, keep: Duration) -> Result<Vec<String>, StoreError> {
        let keep_secs = i64::try_from(keep.as_secs()).unwrap_or(i64::MAX);
        Ok(sqlx::query_scalar(
            "SELECT zegolog_prune_signature_ledger(make_interval(secs => $1::double precision))",
        )
        .bind(keep_secs as f64)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The quarantined callbacks (`refused_reason` set), newest first.
    pub async fn quarantined(&self, limit: i64) -> Result<Vec<QuarantinedCallback>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, received_at, event, appid, refused_reason AS reason
             FROM callback_events
             WHERE refused_reason IS NOT NULL
             ORDER BY received_at DESC, id DESC
             LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Releases one quarantined callback in one transaction: locks its archive row, lets
    /// `prepare` turn the stored body into a callback (or say why it cannot be released), writes
    /// that through the normal batch write (typed rows and rollups exactly as for any callback;
    /// the archive row is already there) and clears `refused_reason`. `Ok(None)`: no quarantined
    /// callback has this id (never had, or already released: releasing twice stores once).
    pub async fn release<F>(
        &self,
        id: i64,
        prepare: F,
    ) -> Result<Option<Result<(QuarantinedBody, Outcome), String>>, StoreError>
    where
        F: FnOnce(&QuarantinedBody) -> Result<Received, String>,
    {
        let mut tx = self.pool.begin().await?;
        let row: Option<QuarantinedBody> = sqlx::query_as(
            "SELECT id, body::text AS body, content_type, refused_reason AS reason
             FROM callback_events
             WHERE id = $1 AND refused_reason IS NOT NULL
             FOR UPDATE",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let received = match prepare(&row) {
            Ok(received) => received,
            Err(why) => return Ok(Some(Err(why))),
        };
        let outcome = write_statement(
            &mut *tx,
            std::slice::from_ref(&received),
            ReusePolicy::Accept,
        )
        .await?
        .pop()
        .unwrap_or(Outcome::Duplicate);
        sqlx::query("UPDATE callback_events SET refused_reason = NULL WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(Ok((row, outcome))))
    }

    /// Drops the monthly partitions of `room_logouts` that end before `cutoff` (and older rows
    /// of the default partition and of the rollups); returns the partitions dropped.
    pub async fn drop_partitions_before(
        &self,
        cutoff: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT zegolog_drop_partitions_before($1)")
                .bind(cutoff)
                .fetch_all(&self.pool)
                .await?,
        )
    }
}

/// Deadlock detected (40P01) or serialization failure (40001): the transaction was rolled back
/// for a race, and running it again is the remedy.
fn is_transient_conflict(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(e) => matches!(e.code().as_deref(), Some("40P01" | "40001")),
        _ => false,
    }
}

/// Runs [`WRITE_BATCH`] for a batch on a pool or inside a transaction, and says for each
/// callback what happened.
async fn write_statement<'e, E: sqlx::PgExecutor<'e>>(
    executor: E,
    batch: &[Received],
    policy: ReusePolicy,
) -> Result<Vec<Outcome>, StoreError> {
    let c = Columns::new(batch);
    let rows: Vec<Written> = sqlx::query_as(WRITE_BATCH)
        .bind(c.digest)
        .bind(c.event)
        .bind(c.appid)
        .bind(c.body)
        .bind(c.content_type)
        .bind(c.refused_reason)
        .bind(c.logout.appid)
        .bind(c.logout.room_id)
        .bind(c.logout.room_seq)
        .bind(c.logout.user_account)
        .bind(c.logout.user_nickname)
        .bind(c.logout.session_id)
        .bind(c.logout.login_time)
        .bind(c.logout.logout_time)
        .bind(c.logout.reason)
        .bind(c.logout.user_role)
        .bind(c.logout.user_update_seq)
        .bind(c.login.appid)
        .bind(c.login.room_id)
        .bind(c.login.room_name)
        .bind(c.login.room_seq)
        .bind(c.login.user_account)
        .bind(c.login.user_nickname)
        .bind(c.login.session_id)
        .bind(c.login.login_time)
        .bind(c.login.user_role)
        .bind(c.login.auth_level)
        .bind(c.login.relogin)
        .bind(c.login.user_update_seq)
        .bind(c.room.appid)
        .bind(c.room.room_id)
        .bind(c.room.room_session_id)
        .bind(c.room.event)
        .bind(c.room.at)
        .bind(c.room.creator)
        .bind(c.room.close_reason)
        .bind(c.signed_at)
        .bind(c.nonce)
        .bind(c.signature)
        .bind(policy.as_str())
        .bind(QUARANTINE_PER_SIGNATURE)
        .bind(c.logout.pos)
        .bind(c.login.pos)
        .bind(c.room.pos)
        .bind(c.login.term_type)
        .bind(c.login.callback_data)
        .fetch_all(executor)
        .await?;

    // What was new: the first callback of the batch with a new key gets `Stored`, any later
    // one with the same key (and every earlier delivery's retry) `Duplicate`. A logout is
    // new when its row is; any other event when its archive row is. A callback whose triple
    // the ledger holds with another body is a reuse, whatever else.
    let mut new_events = HashSet::new();
    let mut new_logouts = HashSet::new();
    let mut reuses = std::collections::HashMap::new();
    for row in rows {
        match row {
            Written {
                pos: Some(pos),
                quarantined: Some(quarantined),
                ..
            } => {
                reuses.insert(pos, quarantined);
            }
            Written {
                appid: None,
                key: Some(digest),
                pos: None,
                ..
            } => {
                new_events.insert(digest);
            }
            Written {
                appid: Some(appid),
                key: Some(session_id),
                logout_time: Some(logout_time),
                room_id: Some(room_id),
                user_account: Some(user_account),
                pos: None,
                quarantined: None,
            } => {
                new_logouts.insert((appid, session_id, logout_time, room_id, user_account));
            }
            other => tracing::error!(?other, "the write statement returned an unexpected row"),
        }
    }
    Ok(batch
        .iter()
        .enumerate()
        .map(|(i, received)| {
            let reuse = reuses.get(&(i as i64 + 1)).copied();
            let reuse = match (policy, reuse) {
                (_, None) => None,
                (ReusePolicy::Quarantine, Some(true)) => {
                    return Outcome::SignatureReuse(Reuse::Quarantined)
                }
                (ReusePolicy::Quarantine, Some(false)) => {
                    return Outcome::SignatureReuse(Reuse::OverBound)
                }
                (ReusePolicy::Reject, Some(_)) => return Outcome::SignatureReuse(Reuse::Rejected),
                (ReusePolicy::Accept, Some(_)) => Some(()),
            };
            let new = match &received.payload {
                Payload::Refused(_) => return Outcome::Quarantined,
                Payload::Logout(l) => new_logouts.remove(&(
                    l.appid,
                    l.session_id.to_string(),
                    l.logout_time,
                    l.room_id.clone(),
                    l.user_account.clone(),
                )),
                Payload::Login(_) | Payload::Room(_) | Payload::Other => {
                    new_events.remove(&hex::encode(received.digest))
                }
            };
            match (reuse, new) {
                (Some(()), stored) => Outcome::SignatureReuse(Reuse::Accepted { stored }),
                (None, true) => Outcome::Stored,
                (None, false) => Outcome::Duplicate,
            }
        })
        .collect())
}

/// Errors about the data of a statement (SQLSTATE classes 22 data exception, 23 integrity
/// constraint, 54 program limit exceeded), as opposed to an unreachable or failing server.
fn is_data_error(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(e) => e.code().is_some_and(|code| {
            ["22", "23", "54"]
                .iter()
                .any(|class| code.starts_with(class))
        }),
        _ => false,
    }
}

/// The batch write statement, in `store/write_batch.sql` with the account of why it is shaped
/// so: one statement, hence one transaction and one round trip, for a whole batch, every
/// insert in its table's key order.
const WRITE_BATCH: &str = include_str!("store/write_batch.sql");

/// One row of the write statement: an archived digest, a new logout's natural key, or a
/// signature reuse (its position, the first body's digest, whether it was quarantined).
#[derive(Debug, sqlx::FromRow)]
struct Written {
    appid: Option<i64>,
    key: Option<String>,
    logout_time: Option<DateTime<Utc>>,
    room_id: Option<String>,
    user_account: Option<String>,
    pos: Option<i64>,
    quarantined: Option<bool>,
}

/// A batch turned inside out: one array per column, as UNNEST wants them.
#[derive(Default)]
struct Columns {
    digest: Vec<Vec<u8>>,
    event: Vec<String>,
    appid: Vec<i64>,
    body: Vec<String>,
    content_type: Vec<&'static str>,
    refused_reason: Vec<Option<String>>,
    signed_at: Vec<Option<DateTime<Utc>>>,
    nonce: Vec<Option<String>>,
    signature: Vec<Option<String>>,
    logout: LogoutColumns,
    login: LoginColumns,
    room: RoomColumns,
}

#[derive(Default)]
struct LoginColumns {
    /// Position of the callback in the batch, 1-based.
    pos: Vec<i64>,
    appid: Vec<i64>,
    room_id: Vec<String>,
    room_name: Vec<Option<String>>,
    room_seq: Vec<Option<String>>,
    user_account: Vec<String>,
    user_nickname: Vec<Option<String>>,
    session_id: Vec<String>,
    login_time: Vec<DateTime<Utc>>,
    user_role: Vec<Option<i32>>,
    auth_level: Vec<Option<i32>>,
    relogin: Vec<Option<i32>>,
    user_update_seq: Vec<Option<i64>>,
    term_type: Vec<Option<i32>>,
    callback_data: Vec<Option<String>>,
}

#[derive(Default)]
struct RoomColumns {
    /// Position of the callback in the batch, 1-based.
    pos: Vec<i64>,
    appid: Vec<i64>,
    room_id: Vec<String>,
    room_session_id: Vec<String>,
    event: Vec<String>,
    at: Vec<DateTime<Utc>>,
    creator: Vec<Option<String>>,
    close_reason: Vec<Option<i32>>,
}

#[derive(Default)]
struct LogoutColumns {
    /// Position of the callback in the batch, 1-based.
    pos: Vec<i64>,
    appid: Vec<i64>,
    room_id: Vec<String>,
    room_seq: Vec<Option<String>>,
    user_account: Vec<String>,
    user_nickname: Vec<Option<String>>,
    session_id: Vec<String>,
    login_time: Vec<Option<DateTime<Utc>>>,
    logout_time: Vec<DateTime<Utc>>,
    reason: Vec<Option<i32>>,
    user_role: Vec<Option<i32>>,
    user_update_seq: Vec<Option<i64>>,
}

impl Columns {
    fn new(batch: &[Received]) -> Self {
        let mut c = Self::default();
        for (i, received) in batch.iter().enumerate() {
            let pos = i as i64 + 1;
            c.digest.push(received.digest.to_vec());
            let signed = received.signed.as_ref();
            c.signed_at.push(signed.map(|s| signed_at(s.timestamp)));
            c.nonce.push(signed.map(|s| s.nonce.clone()));
            c.signature.push(signed.map(|s| s.signature.clone()));
            c.event.push(received.event.clone());
            c.appid.push(received.appid);
            c.body.push(received.body.to_string());
            c.content_type.push(received.encoding.mime());
            c.refused_reason.push(match &received.payload {
                Payload::Refused(reason) => Some(reason.clone()),
                _ => None,
            });
            match &received.payload {
                Payload::Logout(l) => c.logout.push(pos, l),
                Payload::Login(l) => c.login.push(pos, l),
                Payload::Room(r) => c.room.push(pos, r),
                Payload::Other | Payload::Refused(_) => {}
            }
        }
        c
    }
}

/// The signed timestamp as a time, within what PostgreSQL and chrono both hold (1970 to 9999):
/// with the skew check off a sender may sign any number, and the ledger must not refuse it.
fn signed_at(unix_secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(unix_secs.clamp(0, 253_402_300_799), 0).unwrap_or_default()
}

impl LogoutColumns {
    fn push(&mut self, pos: i64, l: &RoomLogout) {
        self.pos.push(pos);
        self.appid.push(l.appid);
        self.room_id.push(l.room_id.clone());
        self.room_seq.push(l.room_seq.map(|s| s.to_string()));
        self.user_account.push(l.user_account.clone());
        self.user_nickname.push(l.user_nickname.clone());
        self.session_id.push(l.session_id.to_string());
        self.login_time.push(l.login_time);
        self.logout_time.push(l.logout_time);
        self.reason.push(l.reason);
        self.user_role.push(l.user_role);
        self.user_update_seq.push(l.user_update_seq);
    }
}

impl LoginColumns {
    fn push(&mut self, pos: i64, l: &RoomLogin) {
        self.pos.push(pos);
        self.appid.push(l.appid);
        self.room_id.push(l.room_id.clone());
        self.room_name.push(l.room_name.clone());
        self.room_seq.push(l.room_seq.map(|s| s.to_string()));
        self.user_account.push(l.user_account.clone());
        self.user_nickname.push(l.user_nickname.clone());
        self.session_id.push(l.session_id.to_string());
        self.login_time.push(l.login_time);
        self.user_role.push(l.user_role);
        self.auth_level.push(l.auth_level);
        self.relogin.push(l.relogin);
        self.user_update_seq.push(l.user_update_seq);
        self.term_type.push(l.term_type);
        self.callback_data.push(l.callback_data.clone());
    }
}

impl RoomColumns {
    fn push(&mut self, pos: i64, r: &RoomLifecycle) {
        self.pos.push(pos);
        self.appid.push(r.appid);
        self.room_id.push(r.room_id.clone());
        self.room_session_id.push(r.room_session_id.to_string());
        self.event.push(r.event.clone());
        self.at.push(r.at);
        self.creator.push(r.creator.clone());
        self.close_reason.push(r.close_reason);
    }
}
