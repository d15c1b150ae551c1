//! `zegolog quarantine list|release`, through [`zegolog::quarantine`].

use anyhow::bail;
use clap::{Args, Subcommand};

use super::database::DatabaseArgs;

#[derive(Debug, Args)]
pub struct QuarantineArgs {
    #[command(subcommand)]
    pub command: QuarantineCommand,
}

#[derive(Debug, Subcommand)]
pub enum QuarantineCommand {
    /// Quarantined callbacks, newest first: id, received_at, event, appid, reason.
    List {
        #[command(flatten)]
        database: DatabaseArgs,
        /// At most this many.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..))]
        limit: i64,
    },
    /// Store these quarantined callbacks (by id, from `quarantine list`) as if they had just
    /// arrived unsigned, and clear their quarantine, in one transaction each. Releasing one
    /// twice stores it once.
    Release {
        #[command(flatten)]
        database: DatabaseArgs,
        #[arg(value_name = "ID", required = true)]
        ids: Vec<i64>,
    },
}

impl QuarantineCommand {
    fn database(&self) -> &DatabaseArgs {
        match self {
            Self::List { database, .. } | Self::Release { database, .. } => database,
        }
    }
}

/// `zegolog quarantine list|release`; a release that leaves any callback quarantined fails.
pub async fn run(args: QuarantineArgs) -> anyhow::Result<()> {
    args.command
        .database()
        .with(async |database| {
            let store = database.migrated().await?;
            match &args.command {
                QuarantineCommand::List { limit, .. } => {
                    let listed = zegolog::quarantine::list(&store, *limit).await?;
                    print!("{listed}");
                    Ok(())
                }
                QuarantineCommand::Release { ids, .. } => {
                    let released = zegolog::quarantine::release(&store, ids).await?;
                    print!("{released}");
                    if released.all_released() {
                        Ok(())
                    } else {
                        bail!("some callbacks were not released (see above)")
                    }
                }
            }
        })
        .await
}
