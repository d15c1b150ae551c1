//! `zegolog import`: its flags, into the file and [`ImportOptions`] of
//! [`zegolog::import::run`].

use std::path::PathBuf;

use clap::Args;

use zegolog::import::ImportOptions;

use super::database::DatabaseArgs;

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// The JSON-lines file: one callback per line, the JSON object ZEGOCLOUD sent. `-` reads
    /// standard input. Signatures are NOT verified: import only files you trust. Lines without
    /// the envelope fields (event, appid, timestamp, nonce, signature) are refused.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Callbacks written in one statement and transaction.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch_size: u32,

    /// Batches written concurrently (each holds one database connection).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub writers: u32,
}

/// `zegolog import`, with a progress bar.
pub async fn run(args: ImportArgs) -> anyhow::Result<()> {
    let options = ImportOptions {
        batch_size: args.batch_size as usize,
        writers: args.writers as usize,
        progress: true,
    };
    args.database
        .with(async |database| zegolog::import::run(&args.file, &options, &database.url).await)
        .await
}
