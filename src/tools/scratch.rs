//! The throwaway PostgreSQL the benchmarks run on: a private server in a temporary directory,
//! and a database on it dropped and created again, migrated, for each measurement.

use anyhow::Context;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

use crate::embedded_pg::EmbeddedPostgres;

/// A private PostgreSQL in a new temporary directory (`prefix`...), which the unprivileged
/// PostgreSQL user can enter. The directory goes when the returned `TempDir` is dropped.
pub(crate) async fn private_postgres(
    prefix: &str,
) -> anyhow::Result<(tempfile::TempDir, EmbeddedPostgres)> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new().prefix(prefix).tempdir()?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    let path = dir.path().to_path_buf();
    let pg = tokio::task::spawn_blocking(move || EmbeddedPostgres::start(&path))
        .await?
        .context("starting a private PostgreSQL (set DATABASE_URL to use another server)")?;
    Ok((dir, pg))
}

/// Drops the database `name` on `server` (closing its connections) and creates it again, empty.
pub(crate) async fn recreate_database(server: &PgConnectOptions, name: &str) -> anyhow::Result<()> {
    let mut admin = PgConnection::connect_with(server)
        .await
        .context("connecting to PostgreSQL")?;
    sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await?;
    sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await?;
    admin.close().await?;
    Ok(())
}
