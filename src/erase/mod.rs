//! `zegolog erase --appid A --user-account U`: a user's deletion request (GDPR, PIPL). Their
//! logins and logouts, every archived body that names them and its signature ledger entries go;
//! rooms they created keep their lifecycle without a creator; their sessions are taken out of
//! every rollup, so that the views equal a recomputation from the rows that remain.
//!
//! The work is one SQL function, `zegolog_erase_user()` (`migrations/0104_upkeep.sql`, which says what each
//! table holds of a user and how the rollups are corrected), in one transaction: all or
//! nothing, safe while `serve` runs, idempotent (a second run removes nothing and reports
//! zeros). This module runs it and presents what it removed; the binary (`cli/erase.rs`) holds
//! the clap glue.
//!
//! The account is never logged: logs outlive an erasure.

use std::fmt;

use crate::store::{Store, StoreError};

mod sql;

pub use sql::Removed;

/// What erasing one user removed, per table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Erasure {
    pub appid: i64,
    pub user_account: String,
    pub removed: Vec<Removed>,
}

impl Erasure {
    /// Whether nothing was left to remove (a second run, or an unknown user).
    pub(crate) fn nothing_removed(&self) -> bool {
        self.removed.iter().all(|r| r.removed == 0)
    }

    /// `{"appid": .., "user_account": .., "removed": {"callback_events": 3, ...}}`.
    pub fn to_json(&self) -> serde_json::Value {
        let removed: serde_json::Map<String, serde_json::Value> = self
            .removed
            .iter()
            .map(|r| (r.name.clone(), r.removed.into()))
            .collect();
        serde_json::json!({
            "appid": self.appid,
            "user_account": self.user_account,
            "removed": removed,
        })
    }
}

impl fmt::Display for Erasure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "erased user {:?} of app {}{}",
            self.user_account,
            self.appid,
            if self.nothing_removed() {
                ": nothing left to remove"
            } else {
                ""
            }
        )?;
        for r in &self.removed {
            writeln!(f, "{:<22} {:>10}  {}", r.name, r.removed, r.what)?;
        }
        Ok(())
    }
}

/// Erases user `user_account` of app `appid`, in one transaction.
pub async fn erase(store: &Store, appid: i64, user_account: &str) -> Result<Erasure, StoreError> {
    let removed = store.erase_user(appid, user_account).await?;
    let rows: i64 = removed.iter().map(|r| r.removed).sum();
    tracing::info!(appid, rows, "user erased");
    Ok(Erasure {
        appid,
        user_account: user_account.to_owned(),
        removed,
    })
}
