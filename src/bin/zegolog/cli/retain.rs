//! `zegolog retain`: what is older than `--retain-days` deleted once, through
//! [`zegolog::upkeep::retain`] (what `serve` does hourly with the same flags).

use clap::Args;

use zegolog::upkeep::Retention;

use super::database::{DatabaseArgs, TimeZoneArgs};

#[derive(Debug, Args)]
pub struct RetainArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    pub zone: TimeZoneArgs,

    /// Keep the last this many days of every table that grows with traffic (raw rows,
    /// archive, rollups); older monthly partitions of logouts are dropped whole, the rest goes
    /// in short batches. Every number from the cutoff on stays what it was.
    #[arg(long, env = "ZEGOLOG_RETAIN_DAYS")]
    pub retain_days: u32,

    /// Keep the raw callback bodies (callback_events, and each logout's body) only this many
    /// days, when shorter than --retain-days.
    #[arg(long, env = "ZEGOLOG_RETAIN_RAW_DAYS")]
    pub retain_raw_days: Option<u32>,
}

/// `zegolog retain`: what it deleted, per table.
pub async fn run(args: RetainArgs) -> anyhow::Result<()> {
    args.database
        .with(async |database| {
            let store = database.migrated_in(&args.zone.time_zone).await?;
            let retention = Retention {
                days: args.retain_days,
                raw_days: args.retain_raw_days,
            };
            print!("{}", zegolog::upkeep::retain(&store, retention).await?);
            Ok(())
        })
        .await
}
