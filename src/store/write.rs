//! The batch write: one statement for a whole batch of callbacks (`write_batch.sql`, beside
//! this file, with the account of its shape), bound as one array per column and read back as one
//! [`Outcome`] per callback. A batch that loses a race with another transaction (deadlock,
//! serialization failure) is retried in place; one the database refuses for its data is written
//! one callback at a time, and a callback refused alone is quarantined with PostgreSQL's reason.

use std::collections::HashSet;
use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Store, StoreError};
use crate::callback::{Payload, Received, RoomLifecycle, RoomLogin, RoomLogout};
use crate::outcome::{Outcome, Reuse, ReusePolicy, QUARANTINE_PER_SIGNATURE};

impl Store {
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
             VALUES ($1, left($2, 1024), $3, $4, $5, $6)
             ON CONFLICT (digest) DO NOTHING",
        )
        .bind(received.digest.to_vec())
        .bind(&received.event)
        .bind(received.appid)
        .bind(&received.body)
        .bind(received.encoding.mime())
        .bind(format!("PostgreSQL refused it: {error}"))
        .execute(&self.pool)
        .await?;
        Ok(Outcome::Quarantined)
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

/// Runs the batch write statement ([`WriteStatement`]) for a batch on a pool or inside a transaction, and says for each
/// callback what happened.
pub(crate) async fn write_statement<'e, E: sqlx::PgExecutor<'e>>(
    executor: E,
    batch: &[Received],
    policy: ReusePolicy,
) -> Result<Vec<Outcome>, StoreError> {
    let c = Columns::new(batch);
    let rows: Vec<Written> = sqlx::query_as(WriteStatement::for_batch(batch).sql())
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
                verdict: Some(verdict),
                ..
            } => {
                reuses.insert(pos, verdict);
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
                verdict: None,
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
            let reuse = match reuses.get(&(i as i64 + 1)).map(String::as_str) {
                None => None,
                Some("quarantined") => return Outcome::SignatureReuse(Reuse::Quarantined),
                Some("over_bound") => return Outcome::SignatureReuse(Reuse::OverBound),
                Some("rejected") => return Outcome::SignatureReuse(Reuse::Rejected),
                Some(_accepted) => Some(()),
            };
            let new = match &received.payload {
                Payload::Unusable(_) => return Outcome::Quarantined,
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

/// The batch write statement, in `write_batch.sql` with the account of why it is shaped
/// so: one statement, hence one transaction and one round trip, for a whole batch, every
/// insert in its table's key order. The file holds both [`WriteStatement`] forms.
const WRITE_BATCH: &str = include_str!("write_batch.sql");

/// The two forms of the batch write statement, cut from the one text of `write_batch.sql`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteStatement {
    /// Any batch: it also stores logins and room events and pairs logouts with new logins.
    Full,
    /// A batch without a login or room event leaves their inserts and the pairing UPDATE out,
    /// whose setup PostgreSQL pays on every execution even with no rows.
    LogoutsOnly,
}

impl WriteStatement {
    /// The form a batch needs.
    pub fn for_batch(batch: &[Received]) -> Self {
        let needs_full = batch
            .iter()
            .any(|r| matches!(r.payload, Payload::Login(_) | Payload::Room(_)));
        if needs_full {
            Self::Full
        } else {
            Self::LogoutsOnly
        }
    }

    /// Its text. Public for benchmarks that run the very same text elsewhere (`zegolog bench`
    /// through pgbench); its parameters are listed at its top.
    pub fn sql(self) -> &'static str {
        static FULL: LazyLock<String> = LazyLock::new(|| cut(WRITE_BATCH, WriteStatement::Full));
        static LOGOUTS_ONLY: LazyLock<String> =
            LazyLock::new(|| cut(WRITE_BATCH, WriteStatement::LogoutsOnly));
        match self {
            Self::Full => &FULL,
            Self::LogoutsOnly => &LOGOUTS_ONLY,
        }
    }
}

/// One form of `text`: the lines outside the markers, and of each `-- [with logins or room
/// events]` / `-- [else]` / `-- [end]` block the first part for the full form, the second
/// for the logouts-only one.
fn cut(text: &str, form: WriteStatement) -> String {
    #[derive(PartialEq)]
    enum Part {
        Shared,
        Full,
        LogoutsOnly,
    }
    let mut part = Part::Shared;
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        match line.trim() {
            "-- [with logins or room events]" => part = Part::Full,
            "-- [else]" => part = Part::LogoutsOnly,
            "-- [end]" => part = Part::Shared,
            _ => {
                let keep = match part {
                    Part::Shared => true,
                    Part::Full => form == WriteStatement::Full,
                    Part::LogoutsOnly => form == WriteStatement::LogoutsOnly,
                };
                if keep {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
    }
    assert!(
        part == Part::Shared,
        "write_batch.sql: a block has no `-- [end]`"
    );
    out
}

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
    /// The reuse policy's verdict on a signature reuse: `quarantined`, `over_bound`,
    /// `rejected` or `accepted`.
    verdict: Option<String>,
}

/// A batch turned inside out: one array per column, as UNNEST wants them.
#[derive(Default)]
struct Columns<'a> {
    digest: Vec<Vec<u8>>,
    event: Vec<String>,
    appid: Vec<i64>,
    /// Borrowed: the archive's JSON text, bound as it is.
    body: Vec<&'a str>,
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

impl<'a> Columns<'a> {
    fn new(batch: &'a [Received]) -> Self {
        let mut c = Self::default();
        for (i, received) in batch.iter().enumerate() {
            let pos = i as i64 + 1;
            c.digest.push(received.digest.to_vec());
            let signed = received.signed.as_ref();
            c.signed_at.push(signed.map(|s| signed_at(s.timestamp())));
            c.nonce.push(signed.map(|s| s.nonce().to_owned()));
            c.signature.push(signed.map(|s| s.signature().to_owned()));
            c.event.push(received.event.clone());
            c.appid.push(received.appid);
            c.body.push(&received.body);
            c.content_type.push(received.encoding.mime());
            c.refused_reason.push(match &received.payload {
                Payload::Unusable(reason) => Some(reason.clone()),
                _ => None,
            });
            match &received.payload {
                Payload::Logout(l) => c.logout.push(pos, l),
                Payload::Login(l) => c.login.push(pos, l),
                Payload::Room(r) => c.room.push(pos, r),
                Payload::Other | Payload::Unusable(_) => {}
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_form_is_the_shared_text_and_its_own_part_of_every_block() {
        let full = WriteStatement::Full.sql();
        let logouts = WriteStatement::LogoutsOnly.sql();
        for form in [full, logouts] {
            assert!(!form.lines().any(|l| l.trim().starts_with("-- [")));
            assert!(form.contains("INSERT INTO room_logouts"));
            assert!(form.contains("INSERT INTO pending_contributions"));
            assert!(form.contains("), paired AS ("));
        }
        assert!(full.contains("INSERT INTO room_logins"));
        assert!(full.contains("INSERT INTO room_lifecycle_events"));
        assert!(!full.contains("WHERE false"));
        assert!(!logouts.contains("INSERT INTO room_logins"));
        assert!(!logouts.contains("INSERT INTO room_lifecycle_events"));
        assert!(!logouts.contains("UPDATE room_logouts"));
        assert!(logouts.len() < full.len());
    }

    #[test]
    #[should_panic(expected = "no `-- [end]`")]
    fn a_block_without_its_end_is_refused() {
        cut(
            "a\n-- [with logins or room events]\nb\n",
            WriteStatement::Full,
        );
    }
}
