//! The command line: one typed configuration from flags and environment variables of the same
//! meaning, validated at start-up, and the commands that run it.
//!
//! Here: the commands, the log format, and [`run`], which hands each command its flags. Beside
//! it, one file per command: its flags (clap), their checks into the library's plain
//! configuration, and a thin `run` over the library.

use std::io::IsTerminal;

use clap::{Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;

#[cfg(feature = "tools")]
mod bench;
#[cfg(feature = "tools")]
mod bench_queries;
mod database;
mod erase;
mod grant;
mod import;
#[cfg(feature = "tools")]
mod loadtest;
mod migrate;
mod quarantine;
mod report;
mod retain;
#[cfg(feature = "tools")]
mod seed;
mod serve;
mod time_zone;

#[derive(Debug, Parser)]
#[command(
    name = "zegolog",
    version,
    about = "Receive ZEGOCLOUD server callbacks and store every room logout exactly once in PostgreSQL",
    long_about = "zegolog receives ZEGOCLOUD server callbacks (room_logout, room_login, room_create, \
                  room_close and any other event) on POST /zego/callback, verifies their SHA-1 \
                  signature, and stores every logout exactly once in PostgreSQL, where SQL views \
                  give session durations and disconnect reasons.\n\n\
                  Every flag can also be set by the environment variable shown with it."
)]
pub struct Cli {
    /// Log format on standard error.
    #[arg(long, env = "ZEGOLOG_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Receive callbacks over HTTP and store them. Answers at once: the database is brought up
    /// (private PostgreSQL started, pending migrations applied) in the background, and
    /// callbacks are spooled until it is ready.
    Serve(Box<serve::ServeArgs>),
    /// Apply pending database migrations, then exit.
    Migrate(migrate::MigrateArgs),
    /// Show the deployment's reporting time zone (in which every daily view, rollup, report and
    /// the dashboard cut their days), or change it, which rebuilds the rollups from the raw rows.
    TimeZone(time_zone::TimeZoneCommandArgs),
    /// Delete what is older than --retain-days from every table that grows with traffic (whole
    /// partitions or short batches, never a long DELETE); numbers after the cutoff stay right.
    Retain(retain::RetainArgs),
    /// Send realistic signed callbacks to a zegolog deployment and report throughput and latency.
    #[cfg(feature = "tools")]
    Loadtest(loadtest::LoadtestArgs),
    /// Benchmark ingest on this machine: PostgreSQL's own ceiling (pgbench), then zegolog under
    /// load, side by side.
    #[cfg(feature = "tools")]
    Bench(bench::BenchArgs),
    /// Fill a database with realistic synthetic traffic (logouts, logins, room lifecycles) by
    /// COPY, with the rollups, for trials and benchmarks.
    #[cfg(feature = "tools")]
    Seed(seed::SeedArgs),
    /// Seed N logouts into a fresh database and time each view's standard query (median of
    /// several runs), then every query in sql/.
    #[cfg(feature = "tools")]
    BenchQueries(bench_queries::BenchQueriesArgs),
    /// Print an app's daily sessions and duration percentiles, disconnect reasons and the rooms
    /// and users with the most abnormal disconnects, as a table, CSV or JSON.
    Report(report::ReportArgs),
    /// Backfill callbacks from a JSON-lines file (one callback per line, as ZEGOCLOUD sent it),
    /// idempotently. Signatures are not verified: import only files you trust.
    Import(import::ImportArgs),
    /// Create or update a PostgreSQL role that can log in and read the analytics views, and
    /// nothing else (no raw tables, no writes).
    GrantAnalyst(grant::GrantAnalystArgs),
    /// Erase one user of one app (a deletion request): their logins and logouts, every archived
    /// callback body that names them and its signature ledger entries; rooms they created lose
    /// their creator; their sessions are taken out of every rollup. One transaction, safe while
    /// `serve` runs; a second run removes nothing. Prints what it removed per table.
    Erase(erase::EraseArgs),
    /// List quarantined callbacks, or release the ones an operator judged genuine through the
    /// normal write path (typed rows and rollups as for any callback, stored once).
    Quarantine(quarantine::QuarantineArgs),
}

/// Runs the command the user asked for.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    init_tracing(cli.log_format);
    match cli.command {
        Command::Serve(args) => serve::run(*args).await,
        Command::Migrate(args) => migrate::run(args).await,
        Command::TimeZone(args) => time_zone::run(args).await,
        Command::Retain(args) => retain::run(args).await,
        #[cfg(feature = "tools")]
        Command::Loadtest(args) => loadtest::run(args).await,
        #[cfg(feature = "tools")]
        Command::Bench(args) => bench::run(args).await,
        #[cfg(feature = "tools")]
        Command::Seed(args) => seed::run(args).await,
        #[cfg(feature = "tools")]
        Command::BenchQueries(args) => bench_queries::run(args).await,
        Command::Report(args) => report::run(args).await,
        Command::Import(args) => import::run(args).await,
        Command::Quarantine(args) => quarantine::run(args).await,
        Command::Erase(args) => erase::run(args).await,
        Command::GrantAnalyst(args) => grant::run(args).await,
    }
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_env("ZEGOLOG_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
