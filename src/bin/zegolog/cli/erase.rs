//! `zegolog erase`: one user's deletion request, through [`zegolog::erase`].

use clap::Args;

use super::database::DatabaseArgs;

#[derive(Debug, Args)]
pub struct EraseArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// The user's app.
    #[arg(long)]
    pub appid: i64,

    /// The user's account (user_account of their callbacks; id_name of the rooms they created).
    #[arg(long, value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub user_account: String,

    /// Print what was removed as one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `zegolog erase`: what was removed, as a table or one JSON object.
pub async fn run(args: EraseArgs) -> anyhow::Result<()> {
    args.database
        .with(async |database| {
            let store = database.migrated().await?;
            let erased = zegolog::erase::erase(&store, args.appid, &args.user_account).await?;
            if args.json {
                println!("{}", erased.to_json());
            } else {
                print!("{erased}");
            }
            Ok(())
        })
        .await
}
