//! PostgreSQL: the schema (embedded from `migrations/`) and the idempotent writes.
//!
//! Idempotency lives in the database, not in memory: `callback_events` is unique on the business
//! digest and `room_logouts` on the logout's natural key, and every write is
//! `INSERT ... ON CONFLICT DO NOTHING`. Whatever retries or races happen, a callback is one row.
//! This module knows SQL and nothing of HTTP.

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
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stored => "stored",
            Self::Duplicate => "duplicate",
            Self::Quarantined => "quarantined",
        }
    }
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
        }
    }

    pub fn pool(&self) -> &PgPool {
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
        tokio::time::timeout(self.write_deadline, self.write_retrying(batch))
            .await
            .map_err(|_| StoreError::Timeout(self.write_deadline))?
    }

    /// A deadlock or serialization failure is a race with another writer, not an outage: the
    /// batch is retried in place a few times (with a short random pause) before it counts as a
    /// failed write. The statement's key order makes deadlocks between batches impossible;
    /// this covers what else may take row locks (an operator's session, say).
    async fn write_retrying(&self, batch: &[Received]) -> Result<Vec<Outcome>, StoreError> {
        const ATTEMPTS: u32 = 4;
        let mut attempt = 1;
        loop {
            match self.write_isolating(batch).await {
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
    async fn write_isolating(&self, batch: &[Received]) -> Result<Vec<Outcome>, StoreError> {
        match self.write_unbounded(batch).await {
            Err(StoreError::Database(e)) if is_data_error(&e) => {
                tracing::warn!(error = %e, size = batch.len(), "the database refused a batch; writing it one by one");
                let mut outcomes = Vec::with_capacity(batch.len());
                for received in batch {
                    match self.write_unbounded(std::slice::from_ref(received)).await {
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

    async fn write_unbounded(&self, batch: &[Received]) -> Result<Vec<Outcome>, StoreError> {
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
            .fetch_all(&self.pool)
            .await?;

        // What was new: the first callback of the batch with a new key gets `Stored`, any later
        // one with the same key (and every earlier delivery's retry) `Duplicate`. A logout is
        // new when its row is; any other event when its archive row is.
        let mut new_events = HashSet::new();
        let mut new_logouts = HashSet::new();
        for row in rows {
            match row {
                Written {
                    appid: None,
                    key: Some(digest),
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
                } => {
                    new_logouts.insert((appid, session_id, logout_time, room_id, user_account));
                }
                other => tracing::error!(?other, "the write statement returned an unexpected row"),
            }
        }
        Ok(batch
            .iter()
            .map(|received| {
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
                if new {
                    Outcome::Stored
                } else {
                    Outcome::Duplicate
                }
            })
            .collect())
    }

    /// Folds the rollup rows appended by recent writes into the rollup tables and recomputes the
    /// daily concurrency they touch (`zegolog_compact_rollups()`, idempotent).
    pub async fn compact_rollups(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT zegolog_compact_rollups()")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Creates the monthly partitions of `room_logouts` from last month to three months ahead.
    pub async fn ensure_partitions(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT zegolog_ensure_partitions()")
            .execute(&self.pool)
            .await?;
        Ok(())
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

/// One statement, hence one transaction and one round trip, for a whole batch: data-modifying
/// CTEs insert the archive rows and the typed rows, and append the rollup contributions of the
/// logouts that are new (from `RETURNING`, so a retried logout is never counted twice).
/// Each INSERT takes its rows in the order of that table's unique key: two batches holding the
/// same callbacks (a retry storm, several instances) then wait for each other's keys in one
/// order and never deadlock.
/// Arrays are bound whole and UNNESTed, so a batch of any size is one statement; u64 ids
/// travel as text and are cast to numeric: no float, no i64.
const WRITE_BATCH: &str = r#"
WITH events AS (
    INSERT INTO callback_events (digest, event, appid, body, content_type, refused_reason)
    SELECT digest, event, appid, body::jsonb, content_type, refused_reason
    FROM unnest($1::bytea[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[])
        AS t(digest, event, appid, body, content_type, refused_reason)
    ORDER BY digest
    ON CONFLICT (digest) DO NOTHING
    RETURNING encode(digest, 'hex') AS digest
), logouts AS (
    INSERT INTO room_logouts (appid, room_id, room_seq, user_account, user_nickname, session_id,
                              login_time, logout_time, reason, user_role, user_update_seq)
    SELECT appid, room_id, room_seq::numeric, user_account, user_nickname, session_id::numeric,
           login_time, logout_time, reason, user_role, user_update_seq
    FROM unnest($7::bigint[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
                $13::timestamptz[], $14::timestamptz[], $15::int[], $16::int[], $17::bigint[])
        AS t(appid, room_id, room_seq, user_account, user_nickname, session_id,
             login_time, logout_time, reason, user_role, user_update_seq)
    ORDER BY appid, session_id::numeric, logout_time, room_id, user_account
    ON CONFLICT ON CONSTRAINT room_logouts_natural_key DO NOTHING
    RETURNING appid, session_id::text AS session_id, login_time, logout_time, room_id,
              user_account, reason
), logins AS (
    INSERT INTO room_logins (appid, room_id, room_name, room_seq, user_account, user_nickname,
                             session_id, login_time, user_role, auth_level, relogin, user_update_seq)
    SELECT appid, room_id, room_name, room_seq::numeric, user_account, user_nickname,
           session_id::numeric, login_time, user_role, auth_level, relogin, user_update_seq
    FROM unnest($18::bigint[], $19::text[], $20::text[], $21::text[], $22::text[], $23::text[],
                $24::text[], $25::timestamptz[], $26::int[], $27::int[], $28::int[], $29::bigint[])
        AS t(appid, room_id, room_name, room_seq, user_account, user_nickname,
             session_id, login_time, user_role, auth_level, relogin, user_update_seq)
    ORDER BY appid, room_id, user_account, session_id::numeric, login_time
    ON CONFLICT ON CONSTRAINT room_logins_natural_key DO NOTHING
), rooms AS (
    INSERT INTO room_lifecycle_events (appid, room_id, room_session_id, event, at, creator, close_reason)
    SELECT appid, room_id, room_session_id::numeric, event, at, creator, close_reason
    FROM unnest($30::bigint[], $31::text[], $32::text[], $33::text[], $34::timestamptz[],
                $35::text[], $36::int[])
        AS t(appid, room_id, room_session_id, event, at, creator, close_reason)
    ORDER BY appid, room_id, room_session_id::numeric, event
    ON CONFLICT ON CONSTRAINT room_lifecycle_events_key DO NOTHING
), durations AS (
    INSERT INTO logout_rollup_pending (day, appid, reason, bucket, sessions, total_ms, max_ms)
    SELECT (logout_time AT TIME ZONE 'UTC')::date, appid, zegolog_reason_name(reason),
           zegolog_duration_bucket(ms), count(*), sum(ms), max(ms)
    FROM (SELECT *, (extract(EPOCH FROM logout_time - login_time) * 1000)::bigint AS ms
          FROM logouts) AS l
    GROUP BY 1, 2, 3, 4
), concurrency AS (
    INSERT INTO concurrency_pending (appid, room_id, minute, delta)
    SELECT appid, room_id, minute, sum(delta)
    FROM (
        SELECT appid, room_id, date_trunc('minute', login_time, 'UTC') AS minute, 1 AS delta
        FROM logouts WHERE logout_time >= login_time
        UNION ALL
        SELECT appid, room_id, date_trunc('minute', logout_time, 'UTC') + interval '1 minute', -1
        FROM logouts WHERE logout_time >= login_time
    ) AS d
    GROUP BY 1, 2, 3
)
SELECT NULL::bigint AS appid, digest AS key, NULL::timestamptz AS logout_time,
       NULL AS room_id, NULL AS user_account
FROM events
UNION ALL
SELECT appid, session_id, logout_time, room_id, user_account FROM logouts
"#;

/// One row of the write statement: an archived digest, or a new logout's natural key.
#[derive(Debug, sqlx::FromRow)]
struct Written {
    appid: Option<i64>,
    key: Option<String>,
    logout_time: Option<DateTime<Utc>>,
    room_id: Option<String>,
    user_account: Option<String>,
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
    logout: LogoutColumns,
    login: LoginColumns,
    room: RoomColumns,
}

#[derive(Default)]
struct LoginColumns {
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
}

#[derive(Default)]
struct RoomColumns {
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
    appid: Vec<i64>,
    room_id: Vec<String>,
    room_seq: Vec<Option<String>>,
    user_account: Vec<String>,
    user_nickname: Vec<Option<String>>,
    session_id: Vec<String>,
    login_time: Vec<DateTime<Utc>>,
    logout_time: Vec<DateTime<Utc>>,
    reason: Vec<Option<i32>>,
    user_role: Vec<Option<i32>>,
    user_update_seq: Vec<Option<i64>>,
}

impl Columns {
    fn new(batch: &[Received]) -> Self {
        let mut c = Self::default();
        for received in batch {
            c.digest.push(received.digest.to_vec());
            c.event.push(received.event.clone());
            c.appid.push(received.appid);
            c.body.push(received.body.to_string());
            c.content_type.push(received.encoding.mime());
            c.refused_reason.push(match &received.payload {
                Payload::Refused(reason) => Some(reason.clone()),
                _ => None,
            });
            match &received.payload {
                Payload::Logout(l) => c.logout.push(l),
                Payload::Login(l) => c.login.push(l),
                Payload::Room(r) => c.room.push(r),
                Payload::Other | Payload::Refused(_) => {}
            }
        }
        c
    }
}

impl LogoutColumns {
    fn push(&mut self, l: &RoomLogout) {
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
    fn push(&mut self, l: &RoomLogin) {
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
    }
}

impl RoomColumns {
    fn push(&mut self, r: &RoomLifecycle) {
        self.appid.push(r.appid);
        self.room_id.push(r.room_id.clone());
        self.room_session_id.push(r.room_session_id.to_string());
        self.event.push(r.event.clone());
        self.at.push(r.at);
        self.creator.push(r.creator.clone());
        self.close_reason.push(r.close_reason);
    }
}
