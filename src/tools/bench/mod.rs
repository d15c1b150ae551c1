//! `zegolog bench`: the ingest benchmark, all on this machine, in one command.
//!
//! 1. A database: `DATABASE_URL` or a private PostgreSQL in a temporary directory.
//! 2. PostgreSQL's ceilings with pgbench ([`pgbench`]): a plain batched insert, then zegolog's
//!    own write statement with the same kind of rows.
//! 3. zegolog itself at each `--connections` (64 and 256 by default): `zegolog serve` as a
//!    separate process over a freshly migrated database, and the load test in this process
//!    (signed, unique logouts), then a check that every acknowledged logout is in the database
//!    exactly once.
//! 4. The figures side by side, with the CPU each process used per callback ([`cpu`]): zegolog,
//!    PostgreSQL (the postmaster and its backends) and the loader. On a shared machine these
//!    say where the time goes; throughput alone does not.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

use super::loadtest::{self, LoadtestConfig, Report};
use super::scratch::{self, private_postgres};
use crate::database::migrate_url;

mod cpu;
mod pgbench;

use cpu::{Processes, Times};
pub use pgbench::Ceiling;

/// What `zegolog bench` measures, and where (its flags are the binary's).
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Concurrent HTTP connections of the load generator: one run per value.
    pub connections: Vec<usize>,
    /// How long each load runs, in seconds.
    pub duration_secs: u64,
    /// How long pgbench measures each of PostgreSQL's ceilings, in seconds.
    pub pgbench_secs: u64,
    /// pgbench clients (each running batches of 100 rows).
    pub pgbench_clients: usize,
    /// The PostgreSQL server to benchmark on (a database `zegolog_bench` is created and
    /// dropped); without it a private PostgreSQL in a temporary directory.
    pub database_url: Option<String>,
    /// Only print this ceiling's pgbench script.
    pub print_script: Option<Ceiling>,
}

const BENCH_DB: &str = "zegolog_bench";

/// `zegolog bench`: the figures on stdout.
pub async fn run(args: &BenchConfig) -> anyhow::Result<()> {
    if let Some(ceiling) = args.print_script {
        print!("{}", ceiling.script());
        return Ok(());
    }
    let (server, private) = match &args.database_url {
        Some(url) => (url.clone(), None),
        None => {
            let (dir, pg) = private_postgres("zegolog-bench-").await?;
            (pg.url(), Some((dir, pg)))
        }
    };
    let result = bench(args, &server).await;
    if let Some((_dir, pg)) = private {
        tokio::task::spawn_blocking(move || pg.stop()).await??;
    }
    result
}

/// One pgbench ceiling's figures.
struct CeilingRun {
    ceiling: Ceiling,
    rows_per_sec: f64,
    rows: f64,
    used: Times,
}

/// One zegolog run's figures.
struct LoadRun {
    connections: usize,
    report: Report,
    used: Times,
    /// Acknowledged through the spool (not a database commit): the run did not measure the
    /// database's path for those.
    spooled: Option<u64>,
}

async fn bench(args: &BenchConfig, server_url: &str) -> anyhow::Result<()> {
    let server: PgConnectOptions = server_url
        .parse()
        .context("DATABASE_URL is not a PostgreSQL URL")?;
    let server = &server;
    // The same server, database `zegolog_bench`: a plain URL that pgbench understands too.
    let mut db_url = reqwest::Url::parse(server_url).context("DATABASE_URL is not a URL")?;
    db_url.set_path(BENCH_DB);
    let db_url = db_url.to_string();
    let postmaster = postmaster(server).await;
    if postmaster.is_none() {
        println!("PostgreSQL's data directory is not readable here: its CPU is not measured");
    }

    let mut ceilings = Vec::new();
    for ceiling in [Ceiling::Plain, Ceiling::WriteBatch] {
        recreate_database(server, &db_url).await?;
        let mut conn = PgConnection::connect_with(&server.clone().database(BENCH_DB)).await?;
        sqlx::raw_sql(ceiling.setup()).execute(&mut conn).await?;
        conn.close().await?;
        println!(
            "PostgreSQL ceiling, {}: pgbench, {} clients, batches of {}, {} s ...",
            ceiling.label(),
            args.pgbench_clients,
            pgbench::BATCH,
            args.pgbench_secs
        );
        let processes = Processes {
            postmaster,
            ..Processes::default()
        };
        let before = processes.sample();
        let script = ceiling.script();
        let (rows_per_sec, elapsed) = pgbench::run(
            &script,
            &db_url,
            args.pgbench_clients,
            Duration::from_secs(args.pgbench_secs),
        )?;
        ceilings.push(CeilingRun {
            ceiling,
            rows_per_sec,
            rows: rows_per_sec * elapsed.as_secs_f64(),
            used: before.until(processes.sample()),
        });
    }

    let mut loads = Vec::new();
    for &connections in &args.connections {
        recreate_database(server, &db_url).await?;
        println!(
            "zegolog: serve + loadtest, {connections} connections, {} s ...",
            args.duration_secs
        );
        loads.push(load(args, &db_url, connections, postmaster).await?);
    }

    println!();
    for run in &loads {
        println!("{}", run.report);
    }
    print_summary(args, &ceilings, &loads);
    if let Some(run) = loads.iter().find(|run| !run.report.verified_ok()) {
        bail!(
            "verification failed at {} connections: the database does not hold exactly the \
             acknowledged callbacks",
            run.connections
        );
    }
    Ok(())
}

/// `zegolog serve` over the bench database and the load test against it, with the CPU each
/// process used while the load ran; then the check of what was stored.
async fn load(
    args: &BenchConfig,
    db_url: &str,
    connections: usize,
    postmaster: Option<u32>,
) -> anyhow::Result<LoadRun> {
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
        .env("DATABASE_URL", db_url)
        .env("ZEGOLOG_SECRET", &secret)
        .env("ZEGOLOG_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .context("starting zegolog serve")?;
    let url = format!("http://127.0.0.1:{port}");
    let result = async {
        if !wait_ready(&format!("{url}/readyz")).await {
            bail!("zegolog serve did not become ready");
        }
        let mut load = LoadtestConfig::for_bench(
            format!("{url}/zego/callback"),
            secret.clone(),
            connections,
            Duration::from_secs(args.duration_secs),
            db_url.to_owned(),
        );
        load.verify_database_url = None;
        let processes = Processes {
            zegolog: Some(serve.id()),
            postmaster,
            loader: true,
        };
        let before = processes.sample();
        let mut report = loadtest::run(&load).await?;
        let used = before.until(processes.sample());
        let spooled = spooled_callbacks(&format!("{url}/metrics")).await;
        report.verification = Some(
            loadtest::verify(db_url, load.appid, &report.ledger, Duration::from_secs(120)).await?,
        );
        Ok(LoadRun {
            connections,
            report,
            used,
            spooled,
        })
    }
    .await;
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(serve.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = serve.wait();
    result
}

fn print_summary(args: &BenchConfig, ceilings: &[CeilingRun], loads: &[LoadRun]) {
    let us = |used: Option<Duration>, n: f64| match used {
        Some(d) if n > 0.0 => format!("{:.1}", d.as_secs_f64() * 1e6 / n),
        _ => "-".to_owned(),
    };
    println!(
        "PostgreSQL's ceilings (pgbench, {} clients, batches of {}, {} s each, durable commits):",
        args.pgbench_clients,
        pgbench::BATCH,
        args.pgbench_secs
    );
    println!(
        "  {:<32} {:>10} {:>22}",
        "statement", "rows/s", "PostgreSQL µs CPU/row"
    );
    for run in ceilings {
        println!(
            "  {:<32} {:>10.0} {:>22}",
            run.ceiling.label(),
            run.rows_per_sec,
            us(run.used.postgres, run.rows)
        );
    }
    println!();
    println!(
        "zegolog (serve + loadtest, {} s each, unique signed logouts, durable commits), CPU in µs per acknowledged callback:",
        args.duration_secs
    );
    println!(
        "  {:>11} {:>13} {:>8} {:>8} {:>8} {:>11} {:>7} {:>11}",
        "connections",
        "ack unique/s",
        "p50 ms",
        "p99 ms",
        "zegolog",
        "PostgreSQL",
        "loader",
        "cores busy"
    );
    for run in loads {
        let acknowledged = run.report.successes() as f64;
        let elapsed = run.report.elapsed.as_secs_f64().max(1e-9);
        let busy: f64 = [run.used.zegolog, run.used.postgres, run.used.loader]
            .iter()
            .flatten()
            .map(Duration::as_secs_f64)
            .sum::<f64>()
            / elapsed;
        println!(
            "  {:>11} {:>13.0} {:>8.2} {:>8.2} {:>8} {:>11} {:>7} {:>11.2}",
            run.connections,
            run.report.acknowledged_unique_per_sec(),
            run.report.latency_p50.as_secs_f64() * 1e3,
            run.report.latency_p99.as_secs_f64() * 1e3,
            us(run.used.zegolog, acknowledged),
            us(run.used.postgres, acknowledged),
            us(run.used.loader, acknowledged),
            busy
        );
    }
    for run in loads {
        match run.spooled {
            Some(0) => {}
            Some(n) => println!(
                "  at {} connections {n} callbacks were acknowledged through the spool, not by a \
                 database commit: that run measured the spool's path for them",
                run.connections
            ),
            None => println!(
                "  at {} connections zegolog's /metrics could not be read: whether callbacks went \
                 through the spool is unknown",
                run.connections
            ),
        }
    }
    if let (Some(best), Some(ceiling)) = (
        loads
            .iter()
            .map(|run| run.report.acknowledged_unique_per_sec())
            .reduce(f64::max),
        ceilings
            .iter()
            .find(|run| run.ceiling == Ceiling::WriteBatch),
    ) {
        println!(
            "  best: {best:.0}/s = {:.0}% of PostgreSQL's ceiling for zegolog's statement",
            100.0 * best / ceiling.rows_per_sec
        );
    }
}

/// The postmaster's pid, when the server's data directory is on this machine.
async fn postmaster(server: &PgConnectOptions) -> Option<u32> {
    let mut conn = PgConnection::connect_with(server).await.ok()?;
    let dir: String = sqlx::query_scalar("SELECT current_setting('data_directory')")
        .fetch_one(&mut conn)
        .await
        .ok()?;
    conn.close().await.ok()?;
    cpu::postmaster_of(std::path::Path::new(&dir))
}

/// The bench database, new and migrated.
async fn recreate_database(server: &PgConnectOptions, db_url: &str) -> anyhow::Result<()> {
    scratch::recreate_database(server, BENCH_DB).await?;
    Ok(migrate_url(db_url).await?)
}

/// Waits until `serve` writes to the database itself. `/readyz` answers 200 as soon as callbacks
/// can be acknowledged, which is earlier (into the spool while the database is still being
/// connected to or migrated); a load started then runs through the spool for as long as the
/// spool does not empty, and measures the spool's path instead of the database's.
async fn wait_ready(url: &str) -> bool {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(response) = client.get(url).send().await {
            let ready = response.status().is_success();
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            if ready && body["database"] == true {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// How many callbacks `serve` acknowledged through its spool rather than by a database commit,
/// from its `/metrics`; `None` when they cannot be read.
async fn spooled_callbacks(metrics_url: &str) -> Option<u64> {
    let text = reqwest::get(metrics_url).await.ok()?.text().await.ok()?;
    Some(count_spooled(&text))
}

/// The sum of `zegolog_callbacks_total{..., outcome="spooled"}` in a Prometheus text exposition.
fn count_spooled(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|line| {
            line.starts_with("zegolog_callbacks_total{") && line.contains("outcome=\"spooled\"")
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[cfg(test)]
mod tests {
    #[test]
    fn spooled_callbacks_are_summed_over_events_and_nothing_else() {
        let metrics = "# TYPE zegolog_callbacks_total counter
zegolog_callbacks_total{event=\"room_logout\",outcome=\"spooled\"} 120
zegolog_callbacks_total{event=\"room_login\",outcome=\"spooled\"} 3
zegolog_callbacks_total{event=\"room_logout\",outcome=\"drained_stored\"} 120
zegolog_callbacks_total{event=\"room_logout\",outcome=\"stored\"} 5000
";
        assert_eq!(super::count_spooled(metrics), 123);
        assert_eq!(super::count_spooled(""), 0);
    }
}
