use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    match zegolog::cli::run(zegolog::cli::Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("zegolog: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
