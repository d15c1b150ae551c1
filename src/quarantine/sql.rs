//! Quarantined callbacks: authentic ones kept in `callback_events` with a `refused_reason`, in
//! no typed table and no rollup. Listing them (`zegolog quarantine list`), and releasing one
//! (`zegolog quarantine release`): written through the same batch statement as any callback, in
//! the transaction that clears its reason (or, for a logout now stored with its body in its
//! typed row, removes its archive row).

use chrono::{DateTime, Utc};

use crate::callback::{Payload, Received};
use crate::outcome::{Outcome, ReusePolicy};
use crate::store::write_statement;
use crate::store::{Store, StoreError};

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

impl Store {
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
        .fetch_all(self.pool())
        .await?)
    }

    /// Releases one quarantined callback in one transaction: locks its archive row, lets
    /// `prepare` turn the stored body into a callback (or say why it cannot be released), writes
    /// that through the normal batch write (typed rows and rollups exactly as for any callback;
    /// the archive row is already there) and clears `refused_reason`, or deletes the archive row
    /// of a logout whose room_logouts row now holds its body. `Ok(None)`: no quarantined
    /// callback has this id (never had, or already released: releasing twice stores once).
    pub async fn release<F>(
        &self,
        id: i64,
        prepare: F,
    ) -> Result<Option<Result<(QuarantinedBody, Outcome), String>>, StoreError>
    where
        F: FnOnce(&QuarantinedBody) -> Result<Received, String>,
    {
        let mut tx = self.pool().begin().await?;
        // The row is locked by its digest too: on Citus, where callback_events is distributed
        // by digest, FOR UPDATE is allowed on one shard only, and the digest names it.
        let digest: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT digest FROM callback_events WHERE id = $1 AND refused_reason IS NOT NULL",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(digest) = digest else {
            return Ok(None);
        };
        let row: Option<QuarantinedBody> = sqlx::query_as(
            "SELECT id, body, content_type, refused_reason AS reason
             FROM callback_events
             WHERE digest = $1 AND id = $2 AND refused_reason IS NOT NULL
             FOR UPDATE",
        )
        .bind(&digest)
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
        // A logout stored now keeps its body in its room_logouts row: the archive row goes.
        // Any other callback keeps its archive row, released.
        let kept_in_typed_row = match &received.payload {
            Payload::Logout(l) => sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM room_logouts
                                WHERE appid = $1 AND room_id = $2 AND logout_time = $3 AND digest = $4)",
            )
            .bind(l.appid)
            .bind(&l.room_id)
            .bind(l.logout_time)
            .bind(&digest)
            .fetch_one(&mut *tx)
            .await?,
            _ => false,
        };
        let release = if kept_in_typed_row {
            "DELETE FROM callback_events WHERE digest = $1 AND id = $2"
        } else {
            "UPDATE callback_events SET refused_reason = NULL WHERE digest = $1 AND id = $2"
        };
        sqlx::query(release)
            .bind(&digest)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(Ok((row, outcome))))
    }
}
