//! `zegolog time-zone show|set`: the deployment's reporting time zone, read or changed
//! through [`zegolog::time_zone::change`].

use std::io::IsTerminal;

use clap::{Args, Subcommand};

use super::database::DatabaseArgs;

#[derive(Debug, Args)]
pub struct TimeZoneCommandArgs {
    #[command(subcommand)]
    pub command: TimeZoneCommand,
}

#[derive(Debug, Subcommand)]
pub enum TimeZoneCommand {
    /// Print the database's reporting time zone.
    Show {
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Make NAME the reporting time zone and rebuild every rollup from the raw rows in it, day
    /// by day with a progress bar, in one transaction. Safe while `serve` runs: compaction and
    /// the writers' rollup step wait for it (callbacks go to the spool meanwhile); the views
    /// show the old days until it commits. Restart the instances with --time-zone NAME after.
    Set {
        #[command(flatten)]
        database: DatabaseArgs,
        /// An IANA time zone name, as in pg_timezone_names.
        #[arg(value_name = "NAME")]
        name: String,
    },
}

/// `zegolog time-zone show|set`.
pub async fn run(args: TimeZoneCommandArgs) -> anyhow::Result<()> {
    match args.command {
        TimeZoneCommand::Show { database } => {
            database
                .with(async |database| {
                    let store = database.migrated().await?;
                    let zone = zegolog::database::reporting_time_zone(&store).await?;
                    println!("{zone}");
                    Ok(())
                })
                .await
        }
        TimeZoneCommand::Set { database, name } => {
            database
                .with(async |database| {
                    database.migrated().await?;
                    let changed = zegolog::time_zone::change(
                        &database.url,
                        &name,
                        std::io::stderr().is_terminal(),
                    )
                    .await?;
                    println!("{changed}");
                    println!(
                        "start every instance with --time-zone {name} (or ZEGOLOG_TIME_ZONE={name})"
                    );
                    Ok(())
                })
                .await
        }
    }
}
