//! zegolog receives ZEGOCLOUD server callbacks, proves they come from ZEGOCLOUD, and stores every
//! room logout exactly once in PostgreSQL, where SQL views turn them into session durations and
//! disconnect reasons.
//!
//! # Layout
//! From the callback contract up to the command line: each module uses only modules listed
//! above it, so dependencies point one way (`tests/it/modules.rs` checks that
//! there is no cycle).
//! - [`signature`]: the SHA-1 signature, secrets per appid, the timestamp window; [`signature::Signed`], the proof only [`signature::Verifier::verify`] makes.
//! - [`callback`]: the callback contract: body → fields → envelope → signature check → typed event, through [`callback::receive`], the one way in. No HTTP, no SQL.
//! - [`outcome`]: what became of a callback ([`outcome::Outcome`]: its code, message and HTTP status), and the signature reuse policy.
//! - [`store`]: PostgreSQL: the [`store::Store`] (a pool), embedded migrations, the idempotent batch write and the signature ledger. No HTTP. Each other concern's SQL lives with it (`upkeep`, `quarantine`, `erase`: an `impl Store` in their `sql.rs`).
//! - [`spool`]: the durable local spool (redb) callbacks wait in during an outage; its entries are versioned records of their own (`spool::record`).
//! - [`metrics`]: Prometheus counters.
//! - [`embedded_pg`]: the private PostgreSQL zegolog runs when no database URL is given.
//! - [`time_zone`]: the deployment's reporting time zone: the check at start, the change that rebuilds the rollups.
//! - [`database`]: the one way to open, migrate and close a [`database::Database`] (a URL or the private PostgreSQL's data dir) for every command; bringing it up in the background for the server ([`database::bring_up`]), published in a [`database::LiveStore`].
//! - [`ingest`]: group commit, and the way to the spool while PostgreSQL is down.
//! - [`upkeep`]: the background loop while serving: rollup compaction, partitions ahead, ledger pruning, retention.
//! - [`views`]: the read side: every query the dashboard and the report run over the views, typed functions returning typed rows. No HTTP, no terminal.
//!   - [`views::days`]: days of the reporting time zone: the dashboard's charts of one app, the report's sections of one app or all.
//!   - [`views::incident`]: the incident view's figures (last hours, per-minute reasons and lift, worst rooms).
//! - [`notifier`]: the alert webhook (`--alert-webhook-url`): the incident view's spike rule every minute, one message when a spike starts and one when it ends, once across instances.
//! - [`http`]: the callback handler, health and metrics, the edge every route is served behind, the JSON error answers, the accept loop. Knows nothing of the dashboard.
//! - [`dashboard`]: `/dashboard`, the token-protected charts page and the JSON it reads from the views; built on [`http`]'s state and answers.
//! - [`server`]: the whole service: [`server::app`], the router of [`http`] and [`dashboard`], and [`server::run`], everything `zegolog serve` does, for the binary and the tests alike.
//! - [`report`]: `zegolog report`, an app's days, disconnect reasons and worst rooms and users as a table, CSV or JSON.
//! - [`import`]: `zegolog import`, a JSON-lines file of callbacks backfilled through the live write path.
//! - [`quarantine`]: `zegolog quarantine list|release`, quarantined callbacks, and releasing the genuine ones.
//! - [`grant`]: `zegolog grant-analyst`, a login role that reads the views and nothing else.
//! - [`erase`]: `zegolog erase`, a user's rows, archived bodies and sessions out of every table and rollup.
//! - [`tools`] (cargo feature `tools`, on by default): `loadtest`, `bench`, `seed`, `bench-queries`; dev and operator tools apart from the service.
//!
//! The command line is the binary's, in `src/bin/zegolog/`: every clap flag, their checks and
//! the environment variables they read, turned into the plain configuration each command's
//! engine here takes ([`server::ServerConfig`], [`report::ReportConfig`],
//! [`database::Location`], ...), and the commands. It uses this library's public API; nothing
//! here imports it, and nothing here knows clap.
//!
//! # Errors
//! Library modules return their own `thiserror` types ([`server::run`] too); `anyhow` is used
//! only for start-up and command-line glue: the binary's command line (the flags' checks among
//! it) and the commands' engines (`report`, `import`, `grant`, the [`tools`], ...), where an
//! error is printed and the process exits.

pub mod callback;
pub mod dashboard;
pub mod database;
pub mod embedded_pg;
pub mod erase;
pub mod grant;
pub mod http;
pub mod import;
pub mod ingest;
pub mod metrics;
pub mod notifier;
pub mod outcome;
pub mod quarantine;
pub mod report;
pub mod server;
pub mod signature;
pub mod spool;
pub mod store;
pub mod time_zone;
#[cfg(feature = "tools")]
pub mod tools;
pub mod upkeep;
pub mod views;

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
