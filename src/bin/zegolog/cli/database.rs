//! The flags of every command that uses a database: where it is ([`DatabaseArgs`], checked
//! into a [`Location`]) and the reporting time zone an instance expects ([`TimeZoneArgs`]).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use zegolog::database::{Database, Location};

/// The database of a command, as flags and environment variables name it.
#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// PostgreSQL connection URL. Without one, zegolog runs its own private PostgreSQL under
    /// the data directory, using the PostgreSQL server binaries installed on this machine.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Where zegolog keeps its files (the private PostgreSQL among them).
    #[arg(long, env = "ZEGOLOG_DATA_DIR", default_value = "./zegolog-data")]
    pub data_dir: PathBuf,
}

impl DatabaseArgs {
    /// Where the database is. A URL is checked here, so that a typo fails at start.
    pub fn location(&self) -> anyhow::Result<Location> {
        match &self.database_url {
            Some(url) => {
                url.parse::<sqlx::postgres::PgConnectOptions>()
                    .context("the database URL is not valid")?;
                Ok(Location::Url(url.clone()))
            }
            None => Ok(Location::Private(self.data_dir.clone())),
        }
    }

    /// Opens the database these arguments name ([`Database::open`]).
    pub async fn open(&self) -> anyhow::Result<Database> {
        Ok(Database::open(&self.location()?).await?)
    }

    /// Opens the database, runs `command` on it, then closes it (stopping the private
    /// PostgreSQL) whatever `command` returned: how every command but `serve` uses a database.
    pub async fn with<T>(
        &self,
        command: impl AsyncFnOnce(&Database) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let database = self.open().await?;
        let result = command(&database).await;
        database.close().await;
        result
    }
}

/// The reporting time zone an instance expects the database to cut its days in.
#[derive(Debug, Clone, Args)]
pub struct TimeZoneArgs {
    /// The deployment's reporting time zone, an IANA name (Asia/Shanghai, America/New_York):
    /// days of every daily view, rollup, report and the dashboard are its days. It is kept in
    /// the database; an instance started with another one than the database's refuses to start
    /// (change it with `zegolog time-zone set NAME`). A new, empty database takes it.
    #[arg(long, env = "ZEGOLOG_TIME_ZONE", default_value = zegolog::time_zone::DEFAULT)]
    pub time_zone: String,
}
