//! `zegolog seed`: its flags, into the [`SeedOptions`] of [`zegolog::tools::seed::seed`].

use clap::Args;

use zegolog::tools::seed::{
    self, SeedOptions, APPS_RANGE, DAYS_RANGE, DEFAULT_APPS, DEFAULT_CHUNK_ROWS, DEFAULT_DAYS,
    DEFAULT_EVENTS, EVENTS_RANGE,
};

use super::database::DatabaseArgs;

#[derive(Debug, Args)]
pub struct SeedArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// Logouts (user sessions) to write. Logins, open sessions and room lifecycle events come
    /// on top.
    #[arg(long, default_value_t = DEFAULT_EVENTS,
          value_parser = clap::value_parser!(u64).range(EVENTS_RANGE))]
    pub events: u64,

    /// Apps, with appids 1, 2, ...; app k gets 1/k of the traffic of app 1.
    #[arg(long, default_value_t = DEFAULT_APPS, value_parser = clap::value_parser!(u32).range(APPS_RANGE))]
    pub apps: u32,

    /// Days of traffic, ending now.
    #[arg(long, default_value_t = DEFAULT_DAYS, value_parser = clap::value_parser!(u32).range(DAYS_RANGE))]
    pub days: u32,

    /// Seed of the random generator, for the same rooms, users and mix. Session ids are new on
    /// every run (so that a second seed adds to the first), and times end at the current minute.
    #[arg(long)]
    pub seed: Option<u64>,

    /// Rows per chunk streamed to PostgreSQL.
    #[arg(long, default_value_t = DEFAULT_CHUNK_ROWS,
          value_parser = clap::value_parser!(u64).range(1_000..=10_000_000))]
    pub chunk_rows: u64,
}

/// `zegolog seed`: the database (migrated first) seeded, and a summary on stdout. The traffic
/// ends at the minute the migrations are done.
pub async fn run(args: SeedArgs) -> anyhow::Result<()> {
    args.database
        .with(async |database| {
            database.migrated().await?.close().await;
            let mut options = SeedOptions::from_flags(args.events, args.apps, args.days, args.seed);
            options.chunk_rows = args.chunk_rows as usize;
            let report = seed::seed(&database.url, &options).await?;
            println!("{report}");
            if let Some(psql) = database.psql_command() {
                println!("connect with: {psql}");
            }
            Ok(())
        })
        .await
}
