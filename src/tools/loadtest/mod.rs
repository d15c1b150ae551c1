//! `zegolog loadtest`: sends signed `room_logout` callbacks to a zegolog deployment as fast as
//! it takes them, the way ZEGOCLOUD would (retries included), and checks afterwards that the
//! database holds every acknowledged logout exactly once.
//!
//! The traffic looks like a real app's: rooms of skewed popularity (a few big ones, a long tail
//! of small ones), mostly audience with some hosts and a few admin bots, mostly normal logouts,
//! sessions from seconds to hours (log-normal, median a few minutes), nicknames in many scripts,
//! `room_seq` values above 2^63, every value a JSON string as in the current vendor docs.
//!
//! Every logout of a run gets a `session_id` in a range of 2^32 ids picked at random for the run,
//! so `--verify` finds this run's rows (and only them) in a shared database.
//!
//! The loader shares the machine with zegolog and PostgreSQL in benchmarks, so the hot loop is
//! kept light: each worker owns its random generator, its traffic generator and its tallies
//! (merged once at the end); the only shared state is one atomic request counter with `--count`.
//!
//! Errors are `anyhow`: this is command-line glue, like the binary's command line (`src/bin/zegolog`).
//!
//! # Layout
//! - `config.rs`: what to send, where, and what to check ([`LoadtestConfig`]; the flags are the
//!   binary's).
//! - `body.rs`: the body generator, each worker's stream of signed callbacks, new and retried;
//!   `fields.rs` writes their fields as JSON or a form. The traffic model itself (rooms, users,
//!   roles, session lengths, nicknames) is `tools/traffic.rs`, shared with `seed`.
//! - `sender.rs`: the workers, one per connection, and their tallies merged into the [`Report`];
//!   `connection.rs` is the minimal kept-alive HTTP/1.1 client each worker posts through.
//! - `ledger.rs`: which session ids were sent and acknowledged ([`Ledger`]).
//! - `report.rs`: the [`Report`] and its latency percentiles.
//! - `verify.rs`: the `--verify` check of the database ([`verify()`], [`Verification`]).

use std::time::Duration;

mod body;
mod config;
mod connection;
mod fields;
mod ledger;
mod report;
mod sender;
mod verify;

pub use config::{BodyEncoding, LoadtestConfig};
pub use ledger::{Ledger, SESSION_SPAN};
pub use report::Report;
pub use verify::{verify, Verification};

/// Sends the load, then (with [`LoadtestConfig::verify_database_url`]) checks the database.
pub async fn run(config: &LoadtestConfig) -> anyhow::Result<Report> {
    let target = connection::Target::parse(&config.url)?;

    let mut report = sender::send(config, target).await?;
    if let Some(database_url) = &config.verify_database_url {
        let timeout = Duration::from_secs(config.verify_timeout_secs);
        report.verification =
            Some(verify(database_url, config.appid, &report.ledger, timeout).await?);
    }
    Ok(report)
}
