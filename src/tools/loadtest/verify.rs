//! `--verify`: after the load, whether the database holds every acknowledged logout exactly once.

use std::fmt;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::ledger::{Ledger, SESSION_SPAN};

/// What `--verify` found in `room_logouts` for this run's session ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Distinct logouts acknowledged (2xx): each must be present exactly once.
    pub acknowledged_unique: u64,
    /// Acknowledged logouts present.
    pub found: u64,
    /// Acknowledged logouts absent when verification gave up.
    pub missing: u64,
    /// Rows of this run's session range for logouts never sent.
    pub unexpected: u64,
    /// Logouts present more than once.
    pub duplicated: u64,
    /// Logouts stored though never acknowledged (their answer was lost or not 2xx): allowed,
    /// the sender would have retried them.
    pub stored_unacknowledged: u64,
    /// How long the database took to hold every acknowledged logout (or until giving up).
    pub waited: Duration,
}

impl Verification {
    pub fn ok(&self) -> bool {
        self.missing == 0 && self.unexpected == 0 && self.duplicated == 0
    }
}

impl fmt::Display for Verification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "verify: {} acknowledged distinct logouts, {} found, {} missing, {} unexpected, \
             {} duplicated, {} stored but unacknowledged (after {:.1} s): {}",
            self.acknowledged_unique,
            self.found,
            self.missing,
            self.unexpected,
            self.duplicated,
            self.stored_unacknowledged,
            self.waited.as_secs_f64(),
            if self.ok() { "OK" } else { "FAILED" }
        )
    }
}

/// Polls `room_logouts` until every acknowledged logout of `ledger` is there or `timeout` passes,
/// then says what it found for this run's session ids.
pub async fn verify(
    database_url: &str,
    appid: i64,
    ledger: &Ledger,
    timeout: Duration,
) -> anyhow::Result<Verification> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect(database_url)
        .await
        .context("connecting to the database for --verify")?;
    let started = Instant::now();
    let deadline = started + timeout;
    let (lo, hi) = (ledger.base, ledger.base + (SESSION_SPAN - 1));
    let result = loop {
        // Bound as text and cast: session_id is numeric(20,0), beyond bigint.
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT session_id::text, count(*) FROM room_logouts
             WHERE appid = $1 AND session_id BETWEEN $2::numeric AND $3::numeric
             GROUP BY session_id",
        )
        .bind(appid)
        .bind(lo.to_string())
        .bind(hi.to_string())
        .fetch_all(&pool)
        .await
        .context("reading this run's rows of room_logouts")?;
        let mut v = Verification {
            acknowledged_unique: ledger.acknowledged_unique(),
            found: 0,
            missing: 0,
            unexpected: 0,
            duplicated: 0,
            stored_unacknowledged: 0,
            waited: started.elapsed(),
        };
        for (session_id, copies) in &rows {
            let session_id: u64 = session_id
                .parse()
                .with_context(|| format!("session_id {session_id} is not a u64"))?;
            if copies > &1 {
                v.duplicated += 1;
            }
            if ledger.was_acknowledged(session_id) {
                v.found += 1;
            } else if ledger.was_sent(session_id) {
                v.stored_unacknowledged += 1;
            } else {
                v.unexpected += 1;
            }
        }
        v.missing = v.acknowledged_unique - v.found;
        if v.missing == 0 || Instant::now() >= deadline {
            break v;
        }
        tracing::info!(
            missing = v.missing,
            found = v.found,
            "verify: waiting for acknowledged logouts to reach the database"
        );
        tokio::time::sleep(Duration::from_millis(500).min(deadline - Instant::now())).await;
    };
    pool.close().await;
    Ok(result)
}
