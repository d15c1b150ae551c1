//! `zegolog bench-queries`: how fast the views answer, on a database of N seeded logouts.
//!
//! 1. A database `zegolog_bench_queries`, dropped and created again: on the server of
//!    `DATABASE_URL`, or on a private PostgreSQL (in a temporary directory, or `--data-dir`).
//! 2. [`super::seed`] of N logouts with their logins, room lifecycles and rollups, then
//!    `VACUUM (ANALYZE)`, as autovacuum would leave the tables.
//! 3. Each view's standard query ([`standard_queries`]) once to warm the cache, then `--runs`
//!    times: the median and the fastest run, rows fetched included.
//!    The incident view's queries ([`crate::views::incident::bench_sql`]) come last, over windows
//!    pointed at the seed's incident hour and over the last 24 hours ([`incident_windows`]).
//! 4. Each documented query in `sql/`, once: the files built into the binary
//!    ([`EMBEDDED_SQL`]), so that an installed binary has them, or those of `--sql-dir`.
//!
//! `--no-seed` reuses the database of an earlier `--keep` run.
//!
//! Errors are `anyhow`: this is command-line glue, like the binary's command line (`src/bin/zegolog`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use std::io::IsTerminal as _;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

use chrono::{DateTime, Utc};

use super::scratch::{private_postgres, recreate_database};
use super::seed::{self, SeedOptions, SeedReport};
use crate::database::migrate_url;
use crate::embedded_pg::EmbeddedPostgres;
use crate::views::incident::{Bucket, Window};

/// The database the benchmark seeds (and drops at the end unless `--keep`).
pub const BENCH_DB: &str = "zegolog_bench_queries";

/// The response time the daily views must meet over 30 days.
const DAILY_TARGET: Duration = Duration::from_millis(100);

/// The response time each query of the incident view must meet, over 24 hours too.
const INCIDENT_TARGET: Duration = Duration::from_millis(100);

/// What `zegolog bench-queries` seeds and times, and where (its flags are the binary's).
#[derive(Debug, Clone)]
pub struct BenchQueriesConfig {
    /// Logouts, apps and days to seed, and the generator's seed (see [`SeedOptions::from_flags`]).
    pub events: u64,
    pub apps: u32,
    pub days: u32,
    pub seed: Option<u64>,
    /// Timed runs of each query (after one warm-up run).
    pub runs: u32,
    /// Leave the database (and a temporary private PostgreSQL's directory) in place.
    pub keep: bool,
    /// The reporting time zone to cut days in.
    pub time_zone: String,
    /// Time the database of an earlier `keep` run as it is: needs `database_url` or `data_dir`.
    pub no_seed: bool,
    /// The PostgreSQL server to benchmark on; without it a private PostgreSQL under `data_dir`,
    /// or in a temporary directory.
    pub database_url: Option<String>,
    pub data_dir: Option<PathBuf>,
    /// Documented queries to time instead of [`EMBEDDED_SQL`].
    pub sql_dir: Option<PathBuf>,
}

/// What the standard queries ask about: the busiest app, its busiest room, and one of its users.
#[derive(Debug, Clone)]
pub struct QueryParams {
    pub appid: i64,
    pub room_id: String,
    pub user_account: String,
    /// The app's latest logout: the incident queries' windows end here or are pointed at the
    /// seed's incident hour, which ends 5 to 6 hours before it.
    pub last_logout: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct BenchQuery {
    pub name: String,
    pub sql: String,
    /// The response time this query must meet, if it has one.
    pub target: Option<Duration>,
}

/// The query each view is there for: the three daily views over 30 days for one app (each
/// must answer in under 100 ms at 10 million logouts), the room peaks, and the ad-hoc
/// questions on `session_durations` that its indexes serve (an app and a time range, a room,
/// a user). Values are literals, as an analyst's tool sends them, so planning is timed too.
pub fn standard_queries(p: &QueryParams) -> Vec<BenchQuery> {
    let app = p.appid;
    let room = quote(&p.room_id);
    let user = quote(&p.user_account);
    // Days of the reporting time zone, as the dashboard and the report ask for them.
    let days = "day > zegolog_local_day(now()) - 30";
    let query =
        |name: String, sql: String, target: Option<Duration>| BenchQuery { name, sql, target };
    let mut queries = vec![
        query(
            format!("session_duration_daily: appid {app}, 30 days"),
            format!(
                "SELECT * FROM session_duration_daily WHERE appid = {app} AND {days} ORDER BY day"
            ),
            Some(DAILY_TARGET),
        ),
        query(
            format!("session_duration_daily_in(another zone): appid {app}, 30 days, from raw rows"),
            format!(
                "SELECT * FROM session_duration_daily_in( \
                 CASE WHEN zegolog_time_zone() = 'UTC' THEN 'Asia/Kolkata' ELSE 'UTC' END, \
                 zegolog_local_day(now()) - 29, zegolog_local_day(now()), {app})"
            ),
            None,
        ),
        query(
            format!("logout_reasons_daily: appid {app}, 30 days"),
            format!(
                "SELECT * FROM logout_reasons_daily WHERE appid = {app} AND {days} \
                 ORDER BY day, reason"
            ),
            Some(DAILY_TARGET),
        ),
        query(
            format!("peak_concurrency_daily: appid {app}, 30 days"),
            format!(
                "SELECT * FROM peak_concurrency_daily WHERE appid = {app} AND {days} ORDER BY day"
            ),
            Some(DAILY_TARGET),
        ),
        query(
            format!("room_peak_concurrency_daily: appid {app}, 30 days, top 20 rooms"),
            format!(
                "SELECT room_id, max(peak_users) AS peak_users FROM room_peak_concurrency_daily \
                 WHERE appid = {app} AND {days} \
                 GROUP BY room_id ORDER BY peak_users DESC, room_id LIMIT 20"
            ),
            None,
        ),
        query(
            format!("room_peak_concurrency_daily: room {}, 30 days", p.room_id),
            format!(
                "SELECT * FROM room_peak_concurrency_daily \
                 WHERE appid = {app} AND room_id = {room} AND {days} ORDER BY day"
            ),
            None,
        ),
        query(
            format!("session_durations: appid {app}, last hour, newest 100"),
            format!(
                "SELECT * FROM session_durations \
                 WHERE appid = {app} AND logout_at >= now() - interval '1 hour' \
                 ORDER BY logout_at DESC LIMIT 100"
            ),
            None,
        ),
        query(
            format!("session_durations: appid {app}, last 24 h, per reason"),
            format!(
                "SELECT reason, count(*) AS logouts, avg(duration_ms) AS avg_ms \
                 FROM session_durations \
                 WHERE appid = {app} AND logout_at >= now() - interval '24 hours' \
                 GROUP BY reason ORDER BY logouts DESC"
            ),
            None,
        ),
        query(
            format!(
                "session_durations: room {}, last 7 days, newest 100",
                p.room_id
            ),
            format!(
                "SELECT * FROM session_durations \
                 WHERE appid = {app} AND room_id = {room} \
                   AND logout_at >= now() - interval '7 days' \
                 ORDER BY logout_at DESC LIMIT 100"
            ),
            None,
        ),
        query(
            format!("session_durations: room {}, last 24 h, summary", p.room_id),
            format!(
                "SELECT count(*) AS sessions, count(DISTINCT user_account) AS users, \
                        percentile_disc(0.5) WITHIN GROUP (ORDER BY duration_ms) AS p50_ms, \
                        sum(duration_ms) / 3600000.0 AS hours \
                 FROM session_durations \
                 WHERE appid = {app} AND room_id = {room} \
                   AND logout_at >= now() - interval '24 hours'"
            ),
            None,
        ),
        query(
            format!("session_durations: user {}, last 30 days", p.user_account),
            format!(
                "SELECT * FROM session_durations \
                 WHERE appid = {app} AND user_account = {user} \
                   AND logout_at >= now() - interval '30 days' \
                 ORDER BY logout_at DESC LIMIT 100"
            ),
            None,
        ),
    ];
    queries.extend(
        incident_windows(p)
            .iter()
            .flat_map(|w| crate::views::incident::bench_sql(w, 10))
            .map(|(name, sql)| query(name, sql, Some(INCIDENT_TARGET))),
    );
    queries
}

/// The incident view's windows: the hour after the seed's incident hour began (1-minute
/// buckets), 6 hours holding it (5-minute buckets), and the 24 hours up to the latest logout
/// (1-minute buckets, the most rows).
pub fn incident_windows(p: &QueryParams) -> Vec<Window> {
    let hour = chrono::Duration::hours(1);
    let last = p.last_logout;
    let top_of_hour = last - chrono::Duration::seconds(last.timestamp().rem_euclid(3600));
    let incident_end = top_of_hour - hour * 5;
    let h = |n: u64| Duration::from_secs(n * 3600);
    vec![
        Window::ending(p.appid, h(1), Bucket::OneMinute, incident_end),
        Window::ending(p.appid, h(6), Bucket::FiveMinutes, incident_end + hour),
        Window::ending(p.appid, h(24), Bucket::OneMinute, last),
    ]
}

/// A SQL string literal.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The busiest app (most logouts), its room with the highest peak, and its latest user.
pub async fn pick_params(conn: &mut PgConnection) -> anyhow::Result<QueryParams> {
    let appid: Option<i64> = sqlx::query_scalar(
        "SELECT appid FROM logout_rollup_all GROUP BY appid ORDER BY sum(sessions) DESC, appid LIMIT 1",
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(appid) = appid else {
        bail!("the database holds no logouts: seed it first");
    };
    let room_id: Option<String> = sqlx::query_scalar(
        "SELECT room_id FROM room_peak_concurrency_daily WHERE appid = $1
         GROUP BY room_id ORDER BY max(peak_users) DESC, room_id LIMIT 1",
    )
    .bind(appid)
    .fetch_optional(&mut *conn)
    .await?;
    let user_account: Option<String> = sqlx::query_scalar(
        "SELECT user_account FROM room_logouts WHERE appid = $1 ORDER BY logout_time DESC LIMIT 1",
    )
    .bind(appid)
    .fetch_optional(&mut *conn)
    .await?;
    let last_logout: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT max(logout_time) FROM room_logouts WHERE appid = $1")
            .bind(appid)
            .fetch_one(&mut *conn)
            .await?;
    match (room_id, user_account, last_logout) {
        (Some(room_id), Some(user_account), Some(last_logout)) => Ok(QueryParams {
            appid,
            room_id,
            user_account,
            last_logout,
        }),
        _ => bail!("appid {appid} has rollups but no rooms or logouts: compact the rollups"),
    }
}

/// Timings of one query.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub rows: usize,
    pub median: Duration,
    pub min: Duration,
}

/// Runs `sql` once unmeasured (to warm caches), then `runs` times; rows are fetched every time.
pub async fn time_query(
    conn: &mut PgConnection,
    sql: &str,
    runs: u32,
) -> Result<Timing, sqlx::Error> {
    let mut rows = sqlx::raw_sql(sql).fetch_all(&mut *conn).await?.len();
    let mut times = Vec::with_capacity(runs as usize);
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        rows = sqlx::raw_sql(sql).fetch_all(&mut *conn).await?.len();
        times.push(started.elapsed());
    }
    times.sort_unstable();
    Ok(Timing {
        rows,
        median: times[times.len() / 2],
        min: times[0],
    })
}

/// The documented queries of the source tree's `sql/`, built into the binary (by `build.rs`):
/// `(file name, text)`, sorted by name.
pub const EMBEDDED_SQL: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/sql_files.rs"));

/// The documented queries to time, `(file name, text)` sorted by name: those of `dir`, read now,
/// else [`EMBEDDED_SQL`].
pub fn documented_queries(dir: Option<&Path>) -> anyhow::Result<Vec<(String, String)>> {
    let Some(dir) = dir else {
        return Ok(EMBEDDED_SQL
            .iter()
            .map(|&(name, sql)| (name.to_owned(), sql.to_owned()))
            .collect());
    };
    sql_files(dir)
        .with_context(|| format!("reading the --sql-dir {}", dir.display()))?
        .into_iter()
        .map(|file| {
            let name = file.file_name().unwrap_or_default().to_string_lossy();
            let sql = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            Ok((name.into_owned(), sql))
        })
        .collect()
}

/// The `.sql` files of `dir`, sorted.
pub fn sql_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    Ok(files)
}

/// `zegolog bench-queries`.
pub async fn run(args: &BenchQueriesConfig) -> anyhow::Result<()> {
    // Before seeding, which takes minutes: a --sql-dir that cannot be read fails at once.
    let queries = documented_queries(args.sql_dir.as_deref())?;
    let mut temp_dir = None;
    let (server_url, db_url, embedded) = match &args.database_url {
        Some(url) => {
            let mut db_url = reqwest::Url::parse(url).context("DATABASE_URL is not a URL")?;
            db_url.set_path(BENCH_DB);
            (url.clone(), db_url.to_string(), None)
        }
        None => {
            let pg = match &args.data_dir {
                Some(dir) => {
                    let dir = dir.clone();
                    tokio::task::spawn_blocking(move || EmbeddedPostgres::start(&dir))
                        .await?
                        .context(
                            "starting a private PostgreSQL (set DATABASE_URL to use another server)",
                        )?
                }
                None => {
                    let (dir, pg) = private_postgres("zegolog-bench-queries-").await?;
                    temp_dir = Some(dir);
                    pg
                }
            };
            (pg.url(), pg.url_for(BENCH_DB), Some(pg))
        }
    };
    let result = bench(args, &server_url, &db_url, queries).await;
    if let Some(pg) = embedded {
        tokio::task::spawn_blocking(move || pg.stop()).await??;
    }
    if let Some(dir) = temp_dir {
        if args.keep {
            let path = dir.keep();
            println!(
                "kept the private PostgreSQL in {0}: time the queries again with \
                 `zegolog bench-queries --data-dir {0} --no-seed`",
                path.display()
            );
        }
    }
    result
}

async fn bench(
    args: &BenchQueriesConfig,
    server_url: &str,
    db_url: &str,
    queries: Vec<(String, String)>,
) -> anyhow::Result<()> {
    let server: PgConnectOptions = server_url
        .parse()
        .context("DATABASE_URL is not a PostgreSQL URL")?;
    if !args.no_seed {
        recreate_database(&server, BENCH_DB).await?;
    }
    migrate_url(db_url)
        .await
        .with_context(|| format!("applying migrations to the database {BENCH_DB}"))?;
    set_time_zone(db_url, &args.time_zone).await?;
    let seeded = if args.no_seed {
        None
    } else {
        let options = SeedOptions::from_flags(args.events, args.apps, args.days, args.seed);
        eprintln!("seeding {} logouts ...", args.events);
        let report = seed::seed(db_url, &options).await?;
        println!("{report}");
        Some(report)
    };
    let result = measure(args, db_url, seeded.as_ref(), queries).await;
    if !args.keep && !args.no_seed {
        let mut admin = PgConnection::connect_with(&server).await?;
        sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)"))
            .execute(&mut admin)
            .await?;
    }
    result
}

/// Moves the benchmark database to `zone` if it is in another one (instant on a new database).
async fn set_time_zone(db_url: &str, zone: &str) -> anyhow::Result<()> {
    let options: PgConnectOptions = db_url.parse()?;
    let mut conn = PgConnection::connect_with(&options).await?;
    let current: String = sqlx::query_scalar("SELECT zegolog_time_zone()")
        .fetch_one(&mut conn)
        .await?;
    let _ = conn.close().await;
    if current != zone {
        let changed =
            crate::time_zone::change(db_url, zone, std::io::stderr().is_terminal()).await?;
        println!("{changed}");
    }
    println!("reporting time zone: {zone}");
    Ok(())
}

async fn measure(
    args: &BenchQueriesConfig,
    db_url: &str,
    seeded: Option<&SeedReport>,
    queries: Vec<(String, String)>,
) -> anyhow::Result<()> {
    let options: PgConnectOptions = db_url.parse()?;
    let mut conn =
        PgConnection::connect_with(&options.application_name("zegolog bench-queries")).await?;
    if seeded.is_some() {
        let started = Instant::now();
        sqlx::raw_sql(
            "VACUUM (ANALYZE) room_logouts, room_logins, room_lifecycle_events, logout_rollup, \
             pending_contributions, app_concurrency_minute, \
             room_concurrency_minute, app_concurrency_day, room_concurrency_day",
        )
        .execute(&mut conn)
        .await
        .context("VACUUM ANALYZE")?;
        println!("VACUUM (ANALYZE): {:.1} s", started.elapsed().as_secs_f64());
    }
    let logouts: i64 =
        sqlx::query_scalar("SELECT coalesce(sum(sessions), 0)::bigint FROM logout_rollup_all")
            .fetch_one(&mut conn)
            .await?;
    let params = pick_params(&mut conn).await?;
    let mut failed = Vec::new();

    println!();
    println!(
        "{logouts} logouts; appid {}, room {}, user {}; median and fastest of {} runs after a warm-up",
        params.appid, params.room_id, params.user_account, args.runs
    );
    println!(
        "{:<66} {:>7} {:>11} {:>9}  target",
        "view query", "rows", "median ms", "min ms"
    );
    for query in standard_queries(&params) {
        match time_query(&mut conn, &query.sql, args.runs).await {
            Ok(t) => {
                let mut line = format!(
                    "{:<66} {:>7} {:>11.2} {:>9.2}",
                    query.name,
                    t.rows,
                    ms(t.median),
                    ms(t.min)
                );
                if let Some(target) = query.target {
                    let verdict = if t.median < target { "ok" } else { "SLOW" };
                    let _ = write!(line, "  < {:.0} ms {verdict}", ms(target));
                }
                println!("{line}");
            }
            Err(e) => {
                println!("{:<66} failed: {e}", query.name);
                failed.push(query.name);
            }
        }
    }

    println!();
    if queries.is_empty() {
        println!("no documented queries (.sql files) to time: skipped them");
    } else {
        println!("{:<66} {:>7} {:>11}", "sql/ file, one run", "rows", "ms");
        for (name, sql) in queries {
            let started = Instant::now();
            match sqlx::raw_sql(&sql).fetch_all(&mut conn).await {
                Ok(rows) => println!(
                    "{name:<66} {:>7} {:>11.2}",
                    rows.len(),
                    ms(started.elapsed())
                ),
                Err(e) => {
                    println!("{name:<66} failed: {e}");
                    failed.push(name);
                }
            }
        }
    }
    if !failed.is_empty() {
        bail!("queries failed: {}", failed.join(", "));
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
