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

use crate::callback::{Payload, Received};

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
        tokio::time::timeout(self.write_deadline, self.write_unbounded(batch))
            .await
            .map_err(|_| StoreError::Timeout(self.write_deadline))?
    }

    async fn write_unbounded(&self, batch: &[Received]) -> Result<Vec<Outcome>, StoreError> {
        let columns = Columns::new(batch);
        // One statement with two data-modifying CTEs: PostgreSQL runs it as one transaction in
        // one round trip. Arrays are bound whole and UNNESTed, so a batch of any size is still
        // one statement. u64 ids travel as text and are cast to numeric: no float, no i64.
        let rows: Vec<Written> = sqlx::query_as(
            r#"
WITH events AS (
    INSERT INTO callback_events (digest, event, appid, body, content_type, refused_reason)
    SELECT digest, event, appid, body::jsonb, content_type, refused_reason
    FROM unnest($1::bytea[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[])
        AS t(digest, event, appid, body, content_type, refused_reason)
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
    ON CONFLICT ON CONSTRAINT room_logouts_natural_key DO NOTHING
    RETURNING appid, session_id::text, logout_time, room_id, user_account
)
SELECT NULL::bigint AS appid, digest AS key, NULL::timestamptz AS logout_time,
       NULL AS room_id, NULL AS user_account
FROM events
UNION ALL
SELECT appid, session_id, logout_time, room_id, user_account FROM logouts
"#,
        )
        .bind(columns.digest)
        .bind(columns.event)
        .bind(columns.appid)
        .bind(columns.body)
        .bind(columns.content_type)
        .bind(columns.refused_reason)
        .bind(columns.logout.appid)
        .bind(columns.logout.room_id)
        .bind(columns.logout.room_seq)
        .bind(columns.logout.user_account)
        .bind(columns.logout.user_nickname)
        .bind(columns.logout.session_id)
        .bind(columns.logout.login_time)
        .bind(columns.logout.logout_time)
        .bind(columns.logout.reason)
        .bind(columns.logout.user_role)
        .bind(columns.logout.user_update_seq)
        .fetch_all(&self.pool)
        .await?;

        // What was new: the first callback of the batch with a new key gets `Stored`, any later
        // one with the same key (and every earlier delivery's retry) `Duplicate`.
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
                    Payload::Other => new_events.remove(&hex::encode(received.digest)),
                };
                if new {
                    Outcome::Stored
                } else {
                    Outcome::Duplicate
                }
            })
            .collect())
    }
}

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
            if let Payload::Logout(l) = &received.payload {
                let lc = &mut c.logout;
                lc.appid.push(l.appid);
                lc.room_id.push(l.room_id.clone());
                lc.room_seq.push(l.room_seq.map(|s| s.to_string()));
                lc.user_account.push(l.user_account.clone());
                lc.user_nickname.push(l.user_nickname.clone());
                lc.session_id.push(l.session_id.to_string());
                lc.login_time.push(l.login_time);
                lc.logout_time.push(l.logout_time);
                lc.reason.push(l.reason);
                lc.user_role.push(l.user_role);
                lc.user_update_seq.push(l.user_update_seq);
            }
        }
        c
    }
}
