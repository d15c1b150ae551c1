//! The rows' way into PostgreSQL: chunks of COPY text from the generator thread, streamed
//! into `COPY ... FROM STDIN`.

use indicatif::ProgressBar;
use sqlx::PgConnection;
use tokio::sync::mpsc;

pub(super) const LOGOUTS_COPY: &str =
    "COPY room_logouts (id, appid, room_id, room_seq, user_account, \
    user_nickname, session_id, login_time, logout_time, reason, user_role, user_update_seq, \
    received_at) FROM STDIN";
pub(super) const LOGINS_COPY: &str =
    "COPY room_logins (appid, room_id, room_name, room_seq, user_account, \
    user_nickname, session_id, login_time, user_role, auth_level, relogin, user_update_seq, \
    received_at) FROM STDIN";
pub(super) const LIFECYCLE_COPY: &str =
    "COPY room_lifecycle_events (appid, room_id, room_session_id, \
    event, at, creator, close_reason, received_at) FROM STDIN";

/// Streams the chunks of `rx` into one COPY; returns the rows PostgreSQL took.
pub(super) async fn copy_in(
    conn: &mut PgConnection,
    statement: &str,
    mut rx: mpsc::Receiver<Chunk>,
    bar: &ProgressBar,
) -> anyhow::Result<u64> {
    let mut copy = conn.copy_in_raw(statement).await?;
    while let Some(chunk) = rx.recv().await {
        copy.send(chunk.data).await?;
        bar.inc(chunk.rows);
    }
    Ok(copy.finish().await?)
}

/// Rows in COPY text format, ready to send.
pub(super) struct Chunk {
    data: Vec<u8>,
    rows: u64,
}

/// A chunk being filled; sent when it holds `chunk_rows` rows.
pub(super) struct Buffer {
    pub(super) data: Vec<u8>,
    rows: u64,
    limit: u64,
}

impl Buffer {
    pub(super) fn new(limit: usize) -> Self {
        Self {
            data: Vec::with_capacity(limit * 220),
            rows: 0,
            limit: limit as u64,
        }
    }

    /// Counts the row just written; sends the chunk when full.
    pub(super) fn row_done(&mut self, tx: &mpsc::Sender<Chunk>) -> anyhow::Result<()> {
        self.rows += 1;
        if self.rows >= self.limit {
            self.flush(tx)?;
        }
        Ok(())
    }

    pub(super) fn flush(&mut self, tx: &mpsc::Sender<Chunk>) -> anyhow::Result<()> {
        if self.rows == 0 {
            return Ok(());
        }
        let chunk = Chunk {
            data: std::mem::replace(
                &mut self.data,
                Vec::with_capacity(self.limit as usize * 220),
            ),
            rows: std::mem::take(&mut self.rows),
        };
        tx.blocking_send(chunk)
            .map_err(|_| anyhow::anyhow!("the database side stopped taking rows"))
    }
}
