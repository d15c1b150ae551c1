//! `zegolog bench`: the ingest benchmark, all on this machine, in one command.
//!
//! 1. A database: `DATABASE_URL` or a private PostgreSQL in a temporary directory.
//! 2. PostgreSQL's own ceiling: pgbench inserting the same rows into the same tables in
//!    batches of 100 (one statement per batch, as zegolog writes them), durable commits.
//! 3. zegolog itself: `zegolog serve` as a separate process over a freshly migrated database,
//!    and `zegolog loadtest` against it (signed, unique logouts over N connections), with
//!    `--verify` that every acknowledged logout is in the database exactly once.
//! 4. The figures, side by side.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

use super::loadtest::{self, LoadtestArgs};
use crate::embedded_pg::{find_bindir, EmbeddedPostgres};

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Concurrent HTTP connections of the load generator.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,

    /// How long the load runs, in seconds.
    #[arg(long, default_value_t = 20)]
    pub duration_secs: u64,

    /// How long pgbench measures PostgreSQL's own ceiling, in seconds.
    #[arg(long, default_value_t = 10)]
    pub pgbench_secs: u64,

    /// pgbench clients (each inserting batches of 100 rows).
    #[arg(long, default_value_t = 8)]
    pub pgbench_clients: usize,

    /// A PostgreSQL server to benchmark on (a database `zegolog_bench` is created and dropped).
    /// Without one, a private PostgreSQL is started in a temporary directory.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

/// The pgbench script: one statement, one transaction, 100 logouts and their archive rows.
const PGBENCH_SCRIPT: &str = r#"\set base random(1, 9000000000000)
WITH events AS (
    INSERT INTO callback_events (digest, event, appid, body, content_type)
    SELECT sha256(convert_to(:base::text || '/' || g, 'UTF8')), 'room_logout', 1,
           jsonb_build_object('event', 'room_logout', 'appid', '1', 'room_id', 'room-' || g % 50,
                              'room_seq', (:base::bigint * 1000 + g)::text, 'user_account', 'user-' || g,
                              'user_nickname', 'nick ' || g, 'session_id', (:base::bigint * 1000 + g)::text,
                              'login_time', '1663740623660', 'logout_time', '1663740627986',
                              'reason', '0', 'user_role', '2', 'user_update_seq', '13'),
           'application/json'
    FROM generate_series(1, 100) AS g
    ON CONFLICT (digest) DO NOTHING
), logouts AS (
    INSERT INTO room_logouts (appid, room_id, room_seq, user_account, user_nickname, session_id,
                              login_time, logout_time, reason, user_role, user_update_seq)
    SELECT 1, 'room-' || g % 50, (:base::bigint * 1000 + g)::numeric, 'user-' || g, 'nick ' || g,
           (:base::bigint * 1000 + g)::numeric, now() - interval '5 minutes', now(), g % 5, 2, g
    FROM generate_series(1, 100) AS g
    ON CONFLICT ON CONSTRAINT room_logouts_natural_key DO NOTHING
)
SELECT 1;
"#;

const BENCH_DB: &str = "zegolog_bench";

pub async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let temp_dir;
    let (server, embedded): (String, Option<EmbeddedPostgres>) = match &args.database_url {
        Some(url) => (url.clone(), None),
        None => {
            temp_dir = tempfile::Builder::new()
                .prefix("zegolog-bench-")
                .tempdir()?;
            let dir = temp_dir.path().to_path_buf();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
            let pg = tokio::task::spawn_blocking(move || EmbeddedPostgres::start(&dir)).await??;
            (pg.url(), Some(pg))
        }
    };
    let result = bench(args, &server).await;
    if let Some(pg) = embedded {
        tokio::task::spawn_blocking(move || pg.stop()).await??;
    }
    result
}

async fn bench(args: &BenchArgs, server_url: &str) -> anyhow::Result<()> {
    let server: PgConnectOptions = server_url
        .parse()
        .context("DATABASE_URL is not a PostgreSQL URL")?;
    let server = &server;
    // The same server, database `zegolog_bench`: a plain URL that pgbench understands too.
    let mut db_url = reqwest::Url::parse(server_url).context("DATABASE_URL is not a URL")?;
    db_url.set_path(BENCH_DB);
    let db_url = db_url.to_string();

    recreate_database(server).await?;
    println!(
        "PostgreSQL ceiling: pgbench, {} clients, batches of 100 rows, {} s ...",
        args.pgbench_clients, args.pgbench_secs
    );
    let ceiling = pgbench(args, &db_url)?;

    recreate_database(server).await?;
    println!(
        "zegolog: serve + loadtest, {} connections, {} s ...",
        args.connections, args.duration_secs
    );
    let secret = hex::encode(rand::random::<[u8; 16]>());
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let data_dir = tempfile::Builder::new()
        .prefix("zegolog-bench-serve-")
        .tempdir()?;
    let mut serve = Command::new(std::env::current_exe()?)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(data_dir.path())
        .env("DATABASE_URL", &db_url)
        .env("ZEGOLOG_SECRET", &secret)
        .env("ZEGOLOG_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .context("starting zegolog serve")?;
    let url = format!("http://127.0.0.1:{port}");
    let ready = wait_ready(&format!("{url}/readyz")).await;
    let report = if ready {
        let load = LoadtestArgs::for_bench(
            format!("{url}/zego/callback"),
            secret,
            args.connections,
            Duration::from_secs(args.duration_secs),
            db_url.clone(),
        );
        Some(loadtest::run(&load).await)
    } else {
        None
    };
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(serve.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = serve.wait();
    let Some(report) = report else {
        bail!("zegolog serve did not become ready");
    };
    let report = report?;

    println!();
    println!("{report}");
    println!();
    println!("PostgreSQL ceiling (pgbench, batches of 100): {ceiling:.0} logouts/s");
    let ours = report.acknowledged_unique_per_sec();
    println!(
        "zegolog: {ours:.0} acknowledged unique logouts/s = {:.0}% of the ceiling",
        100.0 * ours / ceiling
    );
    if !report.verified_ok() {
        bail!("verification failed: the database does not hold exactly the acknowledged callbacks");
    }
    Ok(())
}

async fn recreate_database(server: &PgConnectOptions) -> anyhow::Result<()> {
    let mut admin = PgConnection::connect_with(server)
        .await
        .context("connecting to PostgreSQL")?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)"))
        .execute(&mut admin)
        .await?;
    sqlx::query(&format!("CREATE DATABASE {BENCH_DB}"))
        .execute(&mut admin)
        .await?;
    let pool = sqlx::PgPool::connect_with(server.clone().database(BENCH_DB)).await?;
    crate::store::Store::from_pool(pool.clone())
        .migrate()
        .await?;
    pool.close().await;
    Ok(())
}

/// Runs pgbench with [`PGBENCH_SCRIPT`]; returns rows (logouts) per second.
fn pgbench(args: &BenchArgs, db_url: &str) -> anyhow::Result<f64> {
    let bindir = find_bindir().ok();
    let program: PathBuf = bindir
        .map(|d| d.join("pgbench"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| "pgbench".into());
    let script = tempfile::NamedTempFile::new()?;
    std::fs::write(script.path(), PGBENCH_SCRIPT)?;
    let started = Instant::now();
    let output = Command::new(&program)
        .args([
            "-n",
            "-c",
            &args.pgbench_clients.to_string(),
            "-j",
            "2",
            "-T",
            &args.pgbench_secs.to_string(),
            "-f",
        ])
        .arg(script.path())
        .arg(db_url)
        .output()
        .with_context(|| format!("running {}", program.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "pgbench failed after {:?}: {}{}",
            started.elapsed(),
            stdout,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let tps: f64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no tps in pgbench output:\n{stdout}"))?;
    Ok(tps * 100.0)
}

async fn wait_ready(url: &str) -> bool {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if client
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}
