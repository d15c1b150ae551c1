//! Erasing one user: `zegolog_erase_user()` (`migrations/0104_upkeep.sql`), where the work is
//! done, in one transaction.

use crate::store::{Store, StoreError};

/// One line of what an erasure removed: a table (or the concurrency rollups), how many, and
/// what that number counts.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct Removed {
    pub name: String,
    pub removed: i64,
    pub what: String,
}

impl Store {
    /// Erases user `user_account` of app `appid` (see `migrations/0104_upkeep.sql`): their rows
    /// (their logouts with their bodies), every body in `callback_events` naming them, the
    /// ledger entries of those bodies and logouts, their sessions in the rollups.
    pub async fn erase_user(
        &self,
        appid: i64,
        user_account: &str,
    ) -> Result<Vec<Removed>, StoreError> {
        Ok(
            sqlx::query_as("SELECT name, removed, what FROM zegolog_erase_user($1, $2)")
                .bind(appid)
                .bind(user_account)
                .fetch_all(self.pool())
                .await?,
        )
    }
}
