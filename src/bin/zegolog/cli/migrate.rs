//! `zegolog migrate`: the pending migrations applied, and the reporting time zone checked.

use clap::Args;

use super::database::{DatabaseArgs, TimeZoneArgs};

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub zone: TimeZoneArgs,
}

/// `zegolog migrate`.
pub async fn run(args: MigrateArgs) -> anyhow::Result<()> {
    args.database
        .with(async |database| {
            database.migrated_in(&args.zone.time_zone).await?;
            Ok(())
        })
        .await
}
