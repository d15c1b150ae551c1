//! zegolog receives ZEGOCLOUD server callbacks, proves they come from ZEGOCLOUD, and stores every
//! room logout exactly once in PostgreSQL, where SQL views turn them into session durations and
//! disconnect reasons.
//!
//! # Layout
//! - [`callback`]: the callback contract: body → fields → envelope → typed event. No HTTP, no SQL.
//! - [`signature`]: the SHA-1 signature, secrets per appid, the timestamp window.
//! - [`store`]: PostgreSQL: embedded migrations, idempotent batch writes, the signature ledger. No HTTP.
//! - [`ingest`]: group commit, and the way to the spool while PostgreSQL is down.
//! - [`spool`]: the durable local spool (redb) callbacks wait in during an outage.
//! - [`dashboard`]: `/dashboard`, the token-protected charts page and the JSON it reads from the views.
//! - [`incident`]: the incident view's figures (last hours, per-minute reasons and lift, worst rooms), no HTTP.
//! - [`http`]: the axum router, the callback handler and the JSON error answers.
//! - [`metrics`]: Prometheus counters.
//! - [`time_zone`]: the deployment's reporting time zone: the check at start, the change that rebuilds the rollups.
//! - [`database`]: opening a database for a command; bringing it up in the background for `serve`.
//! - [`embedded_pg`]: the private PostgreSQL zegolog runs when no database URL is given.
//! - [`loadtest`]: `zegolog loadtest`: realistic signed callback traffic, and a check of what got stored.
//! - [`bench`]: `zegolog bench`, PostgreSQL's ceiling and zegolog under load side by side.
//! - [`seed`]: `zegolog seed`, realistic synthetic traffic COPYed into a database, rollups included.
//! - [`bench_queries`]: `zegolog bench-queries`, the views' standard queries timed on N seeded logouts.
//! - [`report`]: `zegolog report`, an app's days, disconnect reasons and worst rooms and users as a table, CSV or JSON.
//! - [`import`]: `zegolog import`, a JSON-lines file of callbacks backfilled through the live write path.
//! - [`quarantine`]: `zegolog quarantine list|release`, quarantined callbacks, and releasing the genuine ones.
//! - [`grant`]: `zegolog grant-analyst`, a login role that reads the views and nothing else.
//! - [`cli`]: command-line and environment configuration, and the commands.
//!
//! # Errors
//! Library modules return their own `thiserror` types; `anyhow` is used only for start-up and
//! command-line glue in [`cli`], where an error is printed and the process exits.

pub mod bench;
pub mod bench_queries;
pub mod callback;
pub mod cli;
pub mod dashboard;
pub mod database;
pub mod embedded_pg;
pub mod grant;
pub mod http;
pub mod import;
pub mod incident;
pub mod ingest;
pub mod loadtest;
pub mod metrics;
pub mod quarantine;
pub mod report;
pub mod seed;
pub mod server;
pub mod signature;
pub mod spool;
pub mod store;
pub mod time_zone;
pub mod upkeep;

/// `error: cause: cause`, for logs.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
