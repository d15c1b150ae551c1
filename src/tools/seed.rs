//! `zegolog seed`: fills a database with realistic synthetic traffic, fast.
//!
//! For `--events N` over the last `--days` days and `--apps` apps it writes:
//! - `room_logouts`: N user sessions. Apps get 1, 1/2, 1/3, ... of the traffic (appid 1 the
//!   busiest); rooms have skewed popularity (a few big ones, a long tail, Zipf-like) and users
//!   too (a few very active, most occasional). Logout times follow a daily cycle (busiest around
//!   20:00 UTC, quietest around 08:00 UTC, weekends busier) and one incident hour six hours
//!   before the end, when logouts triple and most are `connection_lost`. Otherwise reasons are
//!   mostly `normal`, some `connection_lost` / `heartbeat_timeout`, a few `kicked_out` /
//!   `token_expired`; roles mostly audience, some hosts, a few admin bots; durations log-normal
//!   from seconds to hours (median a few minutes, tokens expire about an hour in, bots stay
//!   long). One session in 2,500 has a zero or negative duration, as a bad sender clock gives.
//! - `room_logins`: the login of 96% of those sessions (the others' login callback was lost),
//!   plus logins without a logout: users online now, and a few stale ones whose logout never came.
//! - `room_lifecycle_events`: `room_create` and `room_close` of every room lifecycle
//!   (`room_seq`), a lifecycle being a room's sessions within a six-hour slot; the slot still
//!   running at the end has no close yet, and 1% of the events are missing.
//! - the rollups behind the daily views: `zegolog_add_to_rollups` over the new rows, then
//!   `zegolog_compact_rollups()`, then `ANALYZE`.
//!
//! How it is fast: a thread generates the rows in PostgreSQL's COPY text format, in chunks,
//! while two connections stream them in with `COPY ... FROM STDIN`: logouts (then their rollups)
//! on one, logins and lifecycle events on the other, so that the two CPU-bound backends work in
//! parallel. Logouts are generated in time order, so the time-ordered indexes grow at their ends.
//!
//! Safe next to a running `zegolog serve`: the logouts' ids are reserved as one block first
//! (under a short table lock), so the rollups are fed exactly the seeded rows; each table's rows
//! arrive in one transaction, committed only when everything was written.
//!
//! Errors are `anyhow`: this is command-line glue, like the binary's command line (`src/bin/zegolog`).

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use tokio::sync::mpsc;

use super::loadtest::{mix, normal, skewed};
use crate::database::DatabaseArgs;
use crate::embedded_pg::EmbeddedPostgres;
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct SeedArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// Logouts (user sessions) to write. Logins, open sessions and room lifecycle events come
    /// on top.
    #[arg(long, default_value_t = 1_000_000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    pub events: u64,

    /// Apps, with appids 1, 2, ...; app k gets 1/k of the traffic of app 1.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub apps: u32,

    /// Days of traffic, ending now.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub days: u32,

    /// Seed of the random generator, for the same rooms, users and mix. Session ids are new on
    /// every run (so that a second seed adds to the first), and times end at the current minute.
    #[arg(long)]
    pub seed: Option<u64>,

    /// Rows per chunk streamed to PostgreSQL.
    #[arg(long, default_value_t = 100_000,
          value_parser = clap::value_parser!(u64).range(1_000..=10_000_000))]
    pub chunk_rows: u64,
}

/// What to seed; [`SeedOptions::new`] gives the command's defaults.
#[derive(Debug, Clone)]
pub struct SeedOptions {
    pub events: u64,
    pub apps: u32,
    pub days: u32,
    pub seed: u64,
    pub chunk_rows: usize,
    /// The traffic ends here (exclusive); the command uses the current minute.
    pub end: DateTime<Utc>,
    /// Progress bars on standard error (drawn only when it is a terminal).
    pub progress: bool,
}

impl SeedOptions {
    pub fn new(events: u64) -> Self {
        let now = Utc::now().timestamp_millis();
        Self {
            events,
            apps: 3,
            days: 30,
            seed: rand::random(),
            chunk_rows: 100_000,
            end: Utc
                .timestamp_millis_opt(now - now.rem_euclid(MINUTE_MS))
                .single()
                .expect("the current minute is a valid time"),
            progress: true,
        }
    }
}

/// What a seed wrote, and how long each step took.
#[derive(Debug, Clone)]
pub struct SeedReport {
    pub logouts: u64,
    /// Logins of seeded logouts plus open sessions.
    pub logins: u64,
    /// Logins without a logout: online at the end, or whose logout was lost.
    pub open_sessions: u64,
    pub logouts_without_login: u64,
    pub lifecycle_events: u64,
    pub room_lifecycles: u64,
    pub appids: Vec<i64>,
    pub rooms: u64,
    pub users: u64,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The start of the incident hour (a `connection_lost` spike), if it fell in the window.
    pub incident: Option<DateTime<Utc>>,
    /// `room_logouts.id` of the seeded rows: `first..=last`.
    pub first_id: i64,
    pub last_id: i64,
    pub partitions: Vec<String>,
    /// Generating and copying every row.
    pub copy: Duration,
    /// Appending the logouts' rollup contributions (overlaps the end of the copy).
    pub rollups: Duration,
    pub compact: Duration,
    pub analyze: Duration,
    pub total: Duration,
}

impl SeedReport {
    /// Logouts per second over the whole seed, rollups and ANALYZE included.
    pub fn logouts_per_sec(&self) -> f64 {
        self.logouts as f64 / self.total.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for SeedReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let appids: Vec<String> = self.appids.iter().map(i64::to_string).collect();
        writeln!(
            f,
            "seeded {} logouts ({:.0}/s overall) from {} to {}, apps {}",
            self.logouts,
            self.logouts_per_sec(),
            self.start.format("%Y-%m-%d %H:%M UTC"),
            self.end.format("%Y-%m-%d %H:%M UTC"),
            appids.join(", ")
        )?;
        writeln!(
            f,
            "  rooms {}, users about {}, room lifecycles {} ({} create/close events)",
            self.rooms, self.users, self.room_lifecycles, self.lifecycle_events
        )?;
        writeln!(
            f,
            "  logins {} ({} open sessions), logouts without a login {}",
            self.logins, self.open_sessions, self.logouts_without_login
        )?;
        if let Some(incident) = self.incident {
            writeln!(
                f,
                "  incident: connection_lost spike {} to {}",
                incident.format("%Y-%m-%d %H:%M"),
                (incident + chrono::Duration::hours(1)).format("%H:%M UTC")
            )?;
        }
        writeln!(
            f,
            "  room_logouts ids {}..={}, partitions {}",
            self.first_id,
            self.last_id,
            self.partitions.join(", ")
        )?;
        write!(
            f,
            "  time: copy {:.1} s, rollups {:.1} s, compaction {:.1} s, analyze {:.1} s, total {:.1} s",
            self.copy.as_secs_f64(),
            self.rollups.as_secs_f64(),
            self.compact.as_secs_f64(),
            self.analyze.as_secs_f64(),
            self.total.as_secs_f64()
        )
    }
}

/// `zegolog seed`: the database of `args` (migrated first), seeded, and a summary on stdout.
pub async fn run(args: &SeedArgs) -> anyhow::Result<()> {
    let (url, embedded) = match &args.database.database_url {
        Some(url) => (url.clone(), None),
        None => {
            let data_dir = args.database.data_dir.clone();
            let pg = tokio::task::spawn_blocking(move || EmbeddedPostgres::start(&data_dir))
                .await?
                .context(
                    "starting the private PostgreSQL (set DATABASE_URL to use another database)",
                )?;
            (pg.url(), Some(pg))
        }
    };
    let result = async {
        let store = Store::connect_lazy(&url, &crate::store::PoolConfig::default())
            .context("the database URL is not valid")?;
        store
            .migrate()
            .await
            .context("applying database migrations")?;
        store.pool().close().await;
        let mut options = SeedOptions::new(args.events);
        options.apps = args.apps;
        options.days = args.days;
        options.chunk_rows = args.chunk_rows as usize;
        if let Some(seed) = args.seed {
            options.seed = seed;
        }
        seed(&url, &options).await
    }
    .await;
    if let Some(pg) = embedded {
        if let Ok(report) = &result {
            println!("{report}");
            println!("connect with: {}", pg.psql_command());
        }
        tokio::task::spawn_blocking(move || pg.stop()).await??;
    } else if let Ok(report) = &result {
        println!("{report}");
    }
    result.map(drop)
}

/// Seeds the (migrated) database at `url`.
pub async fn seed(url: &str, options: &SeedOptions) -> anyhow::Result<SeedReport> {
    let started = Instant::now();
    let plan = Plan::new(options);
    let connect: PgConnectOptions = url.parse().context("not a PostgreSQL URL")?;
    let connect = connect.application_name("zegolog seed");
    let mut logouts_conn = PgConnection::connect_with(&connect)
        .await
        .context("connecting to PostgreSQL")?;
    let mut logins_conn = PgConnection::connect_with(&connect).await?;
    // The rollup aggregation groups millions of rows: let it hash in memory.
    sqlx::raw_sql("SET work_mem = '256MB'")
        .execute(&mut logouts_conn)
        .await?;

    let mut partitions = Vec::new();
    for month in plan.months() {
        let name: String = sqlx::query_scalar("SELECT zegolog_ensure_partition($1)")
            .bind(month)
            .fetch_one(&mut logouts_conn)
            .await
            .context("creating the monthly partitions of room_logouts (is the schema migrated?)")?;
        partitions.push(name);
    }
    let first_id = reserve_logout_ids(&mut logouts_conn, options.events).await?;
    let last_id = first_id + options.events as i64 - 1;

    let bars = Bars::new(options);
    let logouts_bar = bars.rows("logouts", options.events);
    let logins_bar = bars.rows("logins", plan.expected_logins());

    let (logouts_tx, logouts_rx) = mpsc::channel::<Chunk>(2);
    let (logins_tx, logins_rx) = mpsc::channel::<Chunk>(2);
    let (lifecycle_tx, lifecycle_rx) = mpsc::channel::<Chunk>(2);
    let generator = Generator::new(plan.clone(), first_id);
    let generated = tokio::task::spawn_blocking(move || {
        generator.run(Senders {
            logouts: logouts_tx,
            logins: logins_tx,
            lifecycle: lifecycle_tx,
        })
    });

    let logouts = async {
        let mut tx = logouts_conn.begin().await?;
        let copied = copy_in(&mut tx, LOGOUTS_COPY, logouts_rx, &logouts_bar)
            .await
            .context("copying room_logouts")?;
        logouts_bar.finish();
        let copy_done = started.elapsed();
        let rollup_started = Instant::now();
        add_to_rollups(&mut tx, first_id, last_id, &bars).await?;
        anyhow::Ok((tx, copied, copy_done, rollup_started.elapsed()))
    };
    let logins = async {
        let mut tx = logins_conn.begin().await?;
        let logins = copy_in(&mut tx, LOGINS_COPY, logins_rx, &logins_bar)
            .await
            .context("copying room_logins")?;
        logins_bar.set_length(logins);
        logins_bar.finish();
        let events = copy_in(
            &mut tx,
            LIFECYCLE_COPY,
            lifecycle_rx,
            &ProgressBar::hidden(),
        )
        .await
        .context("copying room_lifecycle_events")?;
        anyhow::Ok((tx, logins, events, started.elapsed()))
    };
    let (logouts, logins) = tokio::join!(logouts, logins);
    // A database error stops the generator too (its channel closes): report the database's
    // error first. A generator that failed on its own closed its channels early, so the copies
    // look complete: its error must still keep everything from being committed.
    let (logouts_tx, copied, logouts_copy, rollups) = logouts?;
    let (logins_tx, logins, lifecycle_events, logins_copy) = logins?;
    let stats = generated.await.context("the row generator panicked")??;
    if copied != options.events {
        bail!("copied {copied} logouts instead of {}", options.events);
    }
    logouts_tx.commit().await?;
    logins_tx.commit().await?;

    let spinner = bars.spinner("compacting the rollups (zegolog_compact_rollups)");
    let compact_started = Instant::now();
    sqlx::raw_sql("SELECT zegolog_compact_rollups()")
        .execute(&mut logouts_conn)
        .await
        .context("compacting the rollups")?;
    let compact = compact_started.elapsed();
    spinner.finish();

    let spinner = bars.spinner("analyzing the seeded tables");
    let analyze_started = Instant::now();
    sqlx::raw_sql(ANALYZE)
        .execute(&mut logouts_conn)
        .await
        .context("analyzing the seeded tables")?;
    let analyze = analyze_started.elapsed();
    spinner.finish();
    bars.clear();

    Ok(SeedReport {
        logouts: copied,
        logins,
        open_sessions: stats.open_sessions,
        logouts_without_login: stats.logouts_without_login,
        lifecycle_events,
        room_lifecycles: stats.room_lifecycles,
        appids: plan.apps.iter().map(|a| a.appid).collect(),
        rooms: plan.apps.iter().map(|a| u64::from(a.rooms)).sum(),
        users: plan.apps.iter().map(|a| a.users).sum(),
        start: utc(plan.start_ms),
        end: utc(plan.end_ms),
        incident: plan.incident.map(|(from, _)| utc(from)),
        first_id,
        last_id,
        partitions,
        copy: logouts_copy.max(logins_copy),
        rollups,
        compact,
        analyze,
        total: started.elapsed(),
    })
}

const LOGOUTS_COPY: &str = "COPY room_logouts (id, appid, room_id, room_seq, user_account, \
    user_nickname, session_id, login_time, logout_time, reason, user_role, user_update_seq, \
    received_at) FROM STDIN";
const LOGINS_COPY: &str = "COPY room_logins (appid, room_id, room_name, room_seq, user_account, \
    user_nickname, session_id, login_time, user_role, auth_level, relogin, user_update_seq, \
    received_at) FROM STDIN";
const LIFECYCLE_COPY: &str = "COPY room_lifecycle_events (appid, room_id, room_session_id, \
    event, at, creator, close_reason, received_at) FROM STDIN";
// Autovacuum never analyzes a partitioned table itself, only its partitions: the planner's
// estimates for queries on room_logouts need this.
// The pending tables are empty after the compaction: their statistics should say so.
const ANALYZE: &str = "ANALYZE room_logouts, room_logins, room_lifecycle_events, logout_rollup, \
    logout_rollup_pending, concurrency_pending, app_concurrency_minute, room_concurrency_minute, \
    app_concurrency_day, room_concurrency_day";

/// Takes a block of `n` ids from room_logouts' identity sequence. The table lock waits for the
/// inserts in flight and keeps new ones out for the two statements, so no other writer draws
/// an id inside the block: `zegolog_add_to_rollups` over it then counts only seeded rows.
async fn reserve_logout_ids(conn: &mut PgConnection, n: u64) -> anyhow::Result<i64> {
    let mut tx = conn.begin().await?;
    sqlx::raw_sql("LOCK TABLE room_logouts IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    let first: i64 =
        sqlx::query_scalar("SELECT nextval(pg_get_serial_sequence('room_logouts', 'id'))")
            .fetch_one(&mut *tx)
            .await
            .context("reserving room_logouts ids")?;
    sqlx::query("SELECT setval(pg_get_serial_sequence('room_logouts', 'id'), $1)")
        .bind(first + n as i64 - 1)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(first)
}

/// Appends the rollup contributions of ids `first..=last`. Each call of the function reads the
/// rows by id: in chunks (with progress) when an index leads with `id`, in one pass otherwise,
/// since each chunk would scan the whole table.
async fn add_to_rollups(
    conn: &mut PgConnection,
    first: i64,
    last: i64,
    bars: &Bars,
) -> anyhow::Result<()> {
    let indexed: bool = sqlx::query_scalar(
        "SELECT EXISTS (
             SELECT 1 FROM pg_index AS i
             JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
             WHERE i.indrelid = 'room_logouts'::regclass AND a.attname = 'id')",
    )
    .fetch_one(&mut *conn)
    .await?;
    let chunk = if indexed { 1_000_000 } else { last - first + 1 };
    let bar = if indexed {
        bars.rows("rollups", (last - first + 1) as u64)
    } else {
        bars.spinner("adding the logouts to the rollups (zegolog_add_to_rollups)")
    };
    let mut from = first;
    while from <= last {
        let to = (from + chunk - 1).min(last);
        sqlx::query("SELECT zegolog_add_to_rollups($1, $2)")
            .bind(from)
            .bind(to)
            .execute(&mut *conn)
            .await
            .context("adding the seeded logouts to the rollups")?;
        bar.inc((to - from + 1) as u64);
        from = to + 1;
    }
    bar.finish();
    Ok(())
}

/// Streams the chunks of `rx` into one COPY; returns the rows PostgreSQL took.
async fn copy_in(
    conn: &mut PgConnection,
    statement: &str,
    mut rx: mpsc::Receiver<Chunk>,
    bar: &ProgressBar,
) -> anyhow::Result<u64> {
    let mut copy = conn.copy_in_raw(statement).await?;
    while let Some(chunk) = rx.recv().await {
        copy.send(chunk.data).await?;
        bar.inc(chunk.rows);
    }
    Ok(copy.finish().await?)
}

fn utc(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .expect("seed times are valid")
}

/// The progress bars, on standard error; hidden when asked (tests) or when it is no terminal.
struct Bars {
    multi: MultiProgress,
}

impl Bars {
    fn new(options: &SeedOptions) -> Self {
        let target = if options.progress {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Self {
            multi: MultiProgress::with_draw_target(target),
        }
    }

    fn rows(&self, what: &str, len: u64) -> ProgressBar {
        let style = ProgressStyle::with_template(
            "{prefix:>8} [{bar:30}] {human_pos}/{human_len} {rate} ETA {eta} ({elapsed})",
        )
        .expect("a valid template")
        .with_key(
            "rate",
            |state: &indicatif::ProgressState, w: &mut dyn fmt::Write| {
                let _ = write!(w, "{:.0} rows/s", state.per_sec());
            },
        )
        .progress_chars("=> ");
        let bar = self.multi.add(ProgressBar::new(len).with_style(style));
        bar.set_prefix(what.to_owned());
        bar
    }

    fn spinner(&self, what: &str) -> ProgressBar {
        let style =
            ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("a valid template");
        let bar = self.multi.add(ProgressBar::new_spinner().with_style(style));
        bar.set_message(what.to_owned());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }

    fn clear(&self) {
        let _ = self.multi.clear();
    }
}

// ---------------------------------------------------------------------------------------------
// The traffic model
// ---------------------------------------------------------------------------------------------

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;
/// Room lifecycles: a room's sessions within one slot of this length (offset per room).
const LIFECYCLE_MS: i64 = 6 * HOUR_MS;
/// Share of logouts whose login was stored too.
const LOGIN_SHARE: f64 = 0.96;

/// Nickname stems: many scripts, emoji, and characters that need escaping somewhere.
const NICKNAMES: &[&str] = &[
    "Alice",
    "bob",
    "张伟",
    "李娜",
    "Мария",
    "José",
    "さくら",
    "김민준",
    "محمد",
    "Zoë",
    "Nguyễn Văn An",
    "🎮 gamer",
    "Tom & Jerry",
    "100% fan+1",
    "the \"quiet\" one",
    "O'Brien",
    "¯\\_(ツ)_/¯",
    "player_",
];

/// One app's rooms and users.
#[derive(Debug, Clone)]
struct App {
    appid: i64,
    /// Cumulative share of the traffic, up to and including this app.
    share_to: f64,
    rooms: u32,
    users: u64,
    room_salt: u64,
    user_salt: u64,
}

/// Everything random about a seed that is fixed before the first row: apps, rooms, users, and
/// how many logouts each minute of the window gets.
#[derive(Debug, Clone)]
struct Plan {
    events: u64,
    seed: u64,
    chunk_rows: usize,
    start_ms: i64,
    end_ms: i64,
    /// `[start, end)` of the incident hour.
    incident: Option<(i64, i64)>,
    apps: Vec<App>,
    /// Cumulative traffic weight at the end of each minute of the window.
    weight_to: Vec<f64>,
    /// Escaped nickname stems.
    nicknames: Vec<String>,
}

impl Plan {
    fn new(options: &SeedOptions) -> Self {
        let end_ms = options.end.timestamp_millis();
        let end_ms = end_ms - end_ms.rem_euclid(MINUTE_MS);
        let start_ms = end_ms - i64::from(options.days) * DAY_MS;
        let incident_ms = end_ms - end_ms.rem_euclid(HOUR_MS) - 6 * HOUR_MS;
        let incident = (incident_ms >= start_ms).then_some((incident_ms, incident_ms + HOUR_MS));

        let mut rng = StdRng::seed_from_u64(options.seed);
        let total: f64 = (1..=options.apps).map(|k| 1.0 / f64::from(k)).sum();
        let mut share_to = 0.0;
        let apps = (1..=options.apps)
            .map(|k| {
                let share = 1.0 / f64::from(k) / total;
                share_to += share;
                let sessions = options.events as f64 * share;
                App {
                    appid: i64::from(k),
                    share_to: if k == options.apps { 1.0 } else { share_to },
                    rooms: (sessions / 1_000.0).clamp(10.0, 100_000.0) as u32,
                    users: (sessions / 25.0).clamp(20.0, 5_000_000.0) as u64,
                    room_salt: rng.gen(),
                    user_salt: rng.gen(),
                }
            })
            .collect();

        let minutes = (end_ms - start_ms) / MINUTE_MS;
        let mut sum = 0.0;
        let weight_to = (0..minutes)
            .map(|m| {
                let at = start_ms + m * MINUTE_MS;
                sum += minute_weight(at, incident);
                sum
            })
            .collect();
        Self {
            events: options.events,
            seed: options.seed,
            chunk_rows: options.chunk_rows.max(1),
            start_ms,
            end_ms,
            incident,
            apps,
            weight_to,
            nicknames: NICKNAMES.iter().map(|s| copy_escape(s)).collect(),
        }
    }

    /// Logouts in minute `m`: the rounded cumulative target of minute m minus that of m - 1,
    /// so the minutes sum to exactly `events`.
    fn logouts_in_minute(&self, m: usize) -> u64 {
        let total = *self.weight_to.last().expect("at least one day");
        let upto = |m: usize| (self.events as f64 * self.weight_to[m] / total).round() as u64;
        let to = if m + 1 == self.weight_to.len() {
            self.events
        } else {
            upto(m)
        };
        let from = if m == 0 { 0 } else { upto(m - 1) };
        to.saturating_sub(from)
    }

    /// The first day of each UTC month the logouts fall in.
    fn months(&self) -> Vec<NaiveDate> {
        let month = |ms: i64| {
            let day = utc(ms).date_naive();
            NaiveDate::from_ymd_opt(day.year(), day.month(), 1).expect("a valid month")
        };
        let last = month(self.end_ms - 1);
        let mut months = vec![month(self.start_ms)];
        while let Some(next) = months
            .last()
            .and_then(|m| m.checked_add_months(chrono::Months::new(1)))
            .filter(|next| *next <= last)
        {
            months.push(next);
        }
        months
    }

    fn open_now(&self) -> u64 {
        (self.events / 2_000).max(1)
    }

    fn open_stale(&self) -> u64 {
        self.events / 5_000
    }

    fn expected_logins(&self) -> u64 {
        (self.events as f64 * LOGIN_SHARE) as u64 + self.open_now() + self.open_stale()
    }
}

/// Relative traffic in the minute starting at `at_ms`: a daily cycle peaking at 20:00 UTC
/// (a quarter of the peak at 08:00), a quarter more on weekends, three times more in the
/// incident hour.
fn minute_weight(at_ms: i64, incident: Option<(i64, i64)>) -> f64 {
    let hour = (at_ms.rem_euclid(DAY_MS)) as f64 / HOUR_MS as f64;
    let daily = 0.25 + 0.75 * (0.5 + 0.5 * (std::f64::consts::TAU * (hour - 20.0) / 24.0).cos());
    // 1970-01-01 was a Thursday: (days + 4) % 7 is 0 on Sundays, 6 on Saturdays.
    let weekday = (at_ms.div_euclid(DAY_MS) + 4).rem_euclid(7);
    let weekend = if weekday == 0 || weekday == 6 {
        1.25
    } else {
        1.0
    };
    let spike = match incident {
        Some((from, to)) if (from..to).contains(&at_ms) => 3.0,
        _ => 1.0,
    };
    daily * weekend * spike
}

/// Rows in COPY text format, ready to send.
struct Chunk {
    data: Vec<u8>,
    rows: u64,
}

struct Senders {
    logouts: mpsc::Sender<Chunk>,
    logins: mpsc::Sender<Chunk>,
    lifecycle: mpsc::Sender<Chunk>,
}

/// A chunk being filled; sent when it holds `chunk_rows` rows.
struct Buffer {
    data: Vec<u8>,
    rows: u64,
    limit: u64,
}

impl Buffer {
    fn new(limit: usize) -> Self {
        Self {
            data: Vec::with_capacity(limit * 220),
            rows: 0,
            limit: limit as u64,
        }
    }

    /// Counts the row just written; sends the chunk when full.
    fn row_done(&mut self, tx: &mpsc::Sender<Chunk>) -> anyhow::Result<()> {
        self.rows += 1;
        if self.rows >= self.limit {
            self.flush(tx)?;
        }
        Ok(())
    }

    fn flush(&mut self, tx: &mpsc::Sender<Chunk>) -> anyhow::Result<()> {
        if self.rows == 0 {
            return Ok(());
        }
        let chunk = Chunk {
            data: std::mem::replace(
                &mut self.data,
                Vec::with_capacity(self.limit as usize * 220),
            ),
            rows: std::mem::take(&mut self.rows),
        };
        tx.blocking_send(chunk)
            .map_err(|_| anyhow::anyhow!("the database side stopped taking rows"))
    }
}

/// A room lifecycle, as its sessions show it.
#[derive(Debug, Clone, Copy)]
struct Lifecycle {
    room_seq: u64,
    first_login_ms: i64,
    /// Account of the first user in (the creator); `None` for a bot.
    creator: Option<u64>,
    /// `i64::MIN` while nobody has logged out.
    last_logout_ms: i64,
    last_reason: u8,
}

/// Who logged in: room, user and role.
#[derive(Debug, Clone, Copy)]
struct Who {
    app: usize,
    room: u32,
    role: u8,
    /// User index in the app; for a bot, the room's bot.
    user: u64,
    /// `user_account` digits; `None` for a bot (`bot_rec_<room>`).
    account: Option<u64>,
}

#[derive(Debug, Default)]
struct Stats {
    open_sessions: u64,
    logouts_without_login: u64,
    room_lifecycles: u64,
}

struct Generator {
    plan: Plan,
    rng: StdRng,
    first_id: i64,
    /// Session ids are `session_base + k`: fresh on every run, some above 2^63.
    session_base: u64,
    update_seq: Vec<Vec<u64>>,
    lifecycles: HashMap<(u32, u32, u32), Lifecycle>,
    logouts: Buffer,
    logins: Buffer,
    stats: Stats,
}

impl Generator {
    fn new(plan: Plan, first_id: i64) -> Self {
        let rng = StdRng::seed_from_u64(plan.seed ^ 0x5eed);
        let session_base = rand::thread_rng().gen_range(1u64 << 62..u64::MAX - (1 << 40));
        Self {
            update_seq: plan
                .apps
                .iter()
                .map(|a| vec![0; a.rooms as usize])
                .collect(),
            logouts: Buffer::new(plan.chunk_rows),
            logins: Buffer::new(plan.chunk_rows),
            plan,
            rng,
            first_id,
            session_base,
            lifecycles: HashMap::new(),
            stats: Stats::default(),
        }
    }

    /// Generates every row. Each table's sender is dropped as soon as its last row is sent: the
    /// copy reading it can then finish, and the connection move on (to the rollups, or to the
    /// lifecycle events).
    fn run(mut self, tx: Senders) -> anyhow::Result<Stats> {
        let mut k: u64 = 0;
        for m in 0..self.plan.weight_to.len() {
            let minute_ms = self.plan.start_ms + m as i64 * MINUTE_MS;
            let incident = self
                .plan
                .incident
                .is_some_and(|(from, to)| (from..to).contains(&minute_ms));
            for _ in 0..self.plan.logouts_in_minute(m) {
                let logout_ms = minute_ms + self.rng.gen_range(0..MINUTE_MS);
                self.session(k, logout_ms, incident, &tx.logouts, &tx.logins)?;
                k += 1;
            }
        }
        debug_assert_eq!(k, self.plan.events);
        self.logouts.flush(&tx.logouts)?;
        drop(tx.logouts);
        self.open_sessions(k, &tx.logins)?;
        self.logins.flush(&tx.logins)?;
        drop(tx.logins);
        self.lifecycle_events(&tx.lifecycle)?;
        Ok(self.stats)
    }

    fn who(&mut self) -> Who {
        let rng = &mut self.rng;
        let u: f64 = rng.gen();
        let app = self
            .plan
            .apps
            .iter()
            .position(|a| u < a.share_to)
            .unwrap_or(self.plan.apps.len() - 1);
        let shape = &self.plan.apps[app];
        let room = skewed(rng, u64::from(shape.rooms)) as u32;
        let role: u8 = match rng.gen_range(0..100) {
            0..=84 => 2,
            85..=96 => 1,
            _ => 4,
        };
        // Activity per user falls off like a power law, milder than rooms: the busiest user
        // has about users^(-2/3) of the app's sessions.
        let user = ((shape.users as f64 * rng.gen::<f64>().powf(1.5)) as u64).min(shape.users - 1);
        let account = (role != 4).then(|| 100_000_000 + mix(shape.user_salt ^ user) % 900_000_000);
        Who {
            app,
            room,
            role,
            user,
            account,
        }
    }

    /// Logout `k` at `logout_ms`, and (mostly) its login.
    fn session(
        &mut self,
        k: u64,
        logout_ms: i64,
        incident: bool,
        logouts: &mpsc::Sender<Chunk>,
        logins: &mpsc::Sender<Chunk>,
    ) -> anyhow::Result<()> {
        let who = self.who();
        let rng = &mut self.rng;
        let reason: u8 = if incident {
            match rng.gen_range(0..100) {
                0..=59 => 2,
                60..=69 => 1,
                _ => 0,
            }
        } else {
            match rng.gen_range(0..100) {
                0..=81 => 0,
                82..=90 => 2,
                91..=95 => 1,
                96..=97 => 3,
                _ => 4,
            }
        };
        // Log-normal session lengths: (median seconds, sigma).
        let (median_s, sigma) = match (reason, who.role) {
            (4, _) => (3_600.0, 0.3), // tokens expire about an hour in
            (3, _) => (120.0, 1.2),
            (_, 4) => (1_800.0, 1.0), // recording and moderation bots stay long
            (2, _) | (1, _) => (180.0, 1.6),
            _ => (240.0, 1.5),
        };
        let mut duration_ms = (median_s * 1000.0 * (sigma * normal(rng)).exp())
            .clamp(1_000.0, 12.0 * HOUR_MS as f64) as i64;
        match rng.gen_range(0..5_000) {
            0 => duration_ms = 0,
            1 => duration_ms = -rng.gen_range(1..5_000), // the sender's clock went backwards
            _ => {}
        }
        let login_ms = logout_ms - duration_ms;
        let session_id = self.session_base + k;
        let lifecycle = self.lifecycle(&who, login_ms, Some((logout_ms, reason)));
        let seq = &mut self.update_seq[who.app][who.room as usize];
        *seq += 2;
        let update_seq = *seq;
        let received_ms = logout_ms + self.rng.gen_range(200..3_000);

        let shape = &self.plan.apps[who.app];
        let out = &mut self.logouts.data;
        push_i64(out, self.first_id + k as i64);
        out.push(b'\t');
        push_i64(out, shape.appid);
        out.extend_from_slice(b"\trid_");
        push_u64(out, u64::from(who.room));
        out.push(b'\t');
        push_u64(out, lifecycle);
        out.push(b'\t');
        self.plan.push_user(out, &who);
        out.push(b'\t');
        push_u64(out, session_id);
        out.push(b'\t');
        push_ts(out, login_ms);
        out.push(b'\t');
        push_ts(out, logout_ms);
        out.push(b'\t');
        push_u64(out, u64::from(reason));
        out.push(b'\t');
        push_u64(out, u64::from(who.role));
        out.push(b'\t');
        push_u64(out, update_seq);
        out.push(b'\t');
        push_ts(out, received_ms);
        out.push(b'\n');
        self.logouts.row_done(logouts)?;

        if self.rng.gen_bool(LOGIN_SHARE) {
            self.login(
                &who,
                session_id,
                login_ms,
                lifecycle,
                update_seq - 1,
                logins,
            )?;
        } else {
            self.stats.logouts_without_login += 1;
        }
        Ok(())
    }

    fn login(
        &mut self,
        who: &Who,
        session_id: u64,
        login_ms: i64,
        room_seq: u64,
        update_seq: u64,
        logins: &mpsc::Sender<Chunk>,
    ) -> anyhow::Result<()> {
        let relogin = u64::from(self.rng.gen_bool(0.03));
        let received_ms = login_ms + self.rng.gen_range(200..3_000);
        let shape = &self.plan.apps[who.app];
        let out = &mut self.logins.data;
        push_i64(out, shape.appid);
        out.extend_from_slice(b"\trid_");
        push_u64(out, u64::from(who.room));
        out.push(b'\t');
        // The room's name: its host's nickname stem.
        let stem = mix(shape.room_salt ^ u64::from(who.room)) as usize % self.plan.nicknames.len();
        out.extend_from_slice(self.plan.nicknames[stem].as_bytes());
        out.extend_from_slice(b"'s room ");
        push_u64(out, u64::from(who.room));
        out.push(b'\t');
        push_u64(out, room_seq);
        out.push(b'\t');
        self.plan.push_user(out, who);
        out.push(b'\t');
        push_u64(out, session_id);
        out.push(b'\t');
        push_ts(out, login_ms);
        out.push(b'\t');
        push_u64(out, u64::from(who.role));
        out.extend_from_slice(if who.role == 2 { b"\t0\t" } else { b"\t1\t" });
        push_u64(out, relogin);
        out.push(b'\t');
        push_u64(out, update_seq);
        out.push(b'\t');
        push_ts(out, received_ms);
        out.push(b'\n');
        self.logins.row_done(logins)
    }

    /// Logins without a logout: users online at the end (logged in during the last hours), and
    /// a few older ones whose logout callback never came.
    fn open_sessions(&mut self, first_k: u64, logins: &mpsc::Sender<Chunk>) -> anyhow::Result<()> {
        let (now, stale) = (self.plan.open_now(), self.plan.open_stale());
        for j in 0..now + stale {
            let who = self.who();
            let login_ms = if j < now {
                let age = (1_200_000.0 * normal(&mut self.rng).exp())
                    .clamp(1_000.0, 6.0 * HOUR_MS as f64);
                self.plan.end_ms - age as i64
            } else {
                self.rng
                    .gen_range(self.plan.start_ms..self.plan.end_ms - 12 * HOUR_MS)
            };
            let room_seq = self.lifecycle(&who, login_ms, None);
            let seq = &mut self.update_seq[who.app][who.room as usize];
            *seq += 1;
            let update_seq = *seq;
            self.login(
                &who,
                self.session_base + first_k + j,
                login_ms,
                room_seq,
                update_seq,
                logins,
            )?;
            self.stats.open_sessions += 1;
        }
        Ok(())
    }

    /// The `room_seq` of the room's lifecycle at `at_ms` (the logout, else the login), after
    /// counting this session in it.
    fn lifecycle(&mut self, who: &Who, login_ms: i64, logout: Option<(i64, u8)>) -> u64 {
        let shape = &self.plan.apps[who.app];
        let at_ms = logout.map_or(login_ms, |(ms, _)| ms);
        let offset = (mix(shape.room_salt ^ u64::from(who.room)) % LIFECYCLE_MS as u64) as i64;
        let slot = (at_ms + offset).div_euclid(LIFECYCLE_MS) as u32;
        let room_seq = mix(shape.room_salt ^ (u64::from(who.room) << 32) ^ u64::from(slot));
        let entry = self
            .lifecycles
            .entry((who.app as u32, who.room, slot))
            .or_insert(Lifecycle {
                room_seq,
                first_login_ms: i64::MAX,
                creator: None,
                last_logout_ms: i64::MIN,
                last_reason: 0,
            });
        if login_ms < entry.first_login_ms {
            entry.first_login_ms = login_ms;
            entry.creator = who.account;
        }
        if let Some((logout_ms, reason)) = logout {
            if logout_ms > entry.last_logout_ms {
                entry.last_logout_ms = logout_ms;
                entry.last_reason = reason;
            }
        }
        entry.room_seq
    }

    /// `room_create` and `room_close` of every lifecycle; a lifecycle whose slot is still
    /// running at the end is open; 1% of the events were lost on the way.
    fn lifecycle_events(&mut self, tx: &mpsc::Sender<Chunk>) -> anyhow::Result<()> {
        let mut lifecycles: Vec<_> = std::mem::take(&mut self.lifecycles).into_iter().collect();
        lifecycles.sort_unstable_by_key(|(key, _)| *key);
        self.stats.room_lifecycles = lifecycles.len() as u64;
        let mut buffer = Buffer::new(self.plan.chunk_rows);
        for ((app, room, slot), life) in lifecycles {
            let shape = &self.plan.apps[app as usize];
            let offset = (mix(shape.room_salt ^ u64::from(room)) % LIFECYCLE_MS as u64) as i64;
            let slot_end = (i64::from(slot) + 1) * LIFECYCLE_MS - offset;
            if self.rng.gen_bool(0.99) {
                let at = life.first_login_ms - self.rng.gen_range(0..3_000);
                let out = &mut buffer.data;
                lifecycle_head(out, shape.appid, room, life.room_seq, "room_create");
                push_ts(out, at);
                out.push(b'\t');
                match life.creator {
                    Some(account) => push_u64(out, account),
                    None => {
                        out.extend_from_slice(b"bot_rec_");
                        push_u64(out, u64::from(room));
                    }
                }
                out.extend_from_slice(b"\t\\N\t");
                push_ts(out, at + self.rng.gen_range(200..3_000));
                out.push(b'\n');
                buffer.row_done(tx)?;
            }
            let closed = slot_end <= self.plan.end_ms && life.last_logout_ms != i64::MIN;
            if closed && self.rng.gen_bool(0.99) {
                let at =
                    (life.last_logout_ms + self.rng.gen_range(0..5_000)).min(self.plan.end_ms - 1);
                // The last user's logout decides: normal, heartbeat timeout, went offline, kicked.
                let close_reason = match life.last_reason {
                    1 => 1,
                    2 => 2,
                    3 => 3,
                    _ => 0,
                };
                let out = &mut buffer.data;
                lifecycle_head(out, shape.appid, room, life.room_seq, "room_close");
                push_ts(out, at);
                out.extend_from_slice(b"\t\\N\t");
                push_u64(out, close_reason);
                out.push(b'\t');
                push_ts(out, at + self.rng.gen_range(200..3_000));
                out.push(b'\n');
                buffer.row_done(tx)?;
            }
        }
        buffer.flush(tx)
    }
}

fn lifecycle_head(out: &mut Vec<u8>, appid: i64, room: u32, room_seq: u64, event: &str) {
    push_i64(out, appid);
    out.extend_from_slice(b"\trid_");
    push_u64(out, u64::from(room));
    out.push(b'\t');
    push_u64(out, room_seq);
    out.push(b'\t');
    out.extend_from_slice(event.as_bytes());
    out.push(b'\t');
}

impl Plan {
    /// `user_account \t user_nickname`.
    fn push_user(&self, out: &mut Vec<u8>, who: &Who) {
        match who.account {
            Some(account) => {
                push_u64(out, account);
                out.push(b'\t');
                let salt = self.apps[who.app].user_salt;
                let stem = (mix(salt ^ who.user) >> 40) as usize % self.nicknames.len();
                out.extend_from_slice(self.nicknames[stem].as_bytes());
                push_u64(out, who.user % 1000);
            }
            None => {
                out.extend_from_slice(b"bot_rec_");
                push_u64(out, u64::from(who.room));
                out.extend_from_slice("\t录制机器人 recorder".as_bytes());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// COPY text format
// ---------------------------------------------------------------------------------------------

/// Escapes text for COPY's text format: backslash, tab, newline and carriage return.
fn copy_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

fn push_i64(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    push_u64(out, n.unsigned_abs());
}

fn push_digits(out: &mut Vec<u8>, n: u32, width: u32) {
    for place in (0..width).rev() {
        out.push(b'0' + (n / 10u32.pow(place) % 10) as u8);
    }
}

/// Writes unix milliseconds as `YYYY-MM-DD HH:MM:SS.mmm+00` (years 0 to 9999), much faster
/// than going through chrono's formatter for tens of millions of timestamps.
fn push_ts(out: &mut Vec<u8>, unix_ms: i64) {
    let (year, month, day) = civil_from_days(unix_ms.div_euclid(DAY_MS));
    let ms_of_day = unix_ms.rem_euclid(DAY_MS) as u32;
    push_digits(out, year as u32, 4);
    out.push(b'-');
    push_digits(out, month, 2);
    out.push(b'-');
    push_digits(out, day, 2);
    out.push(b' ');
    push_digits(out, ms_of_day / 3_600_000, 2);
    out.push(b':');
    push_digits(out, ms_of_day / 60_000 % 60, 2);
    out.push(b':');
    push_digits(out, ms_of_day / 1_000 % 60, 2);
    out.push(b'.');
    push_digits(out, ms_of_day % 1_000, 3);
    out.extend_from_slice(b"+00");
}

/// Year, month, day of a count of days since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_match_chrono() {
        let mut rng = StdRng::seed_from_u64(7);
        for ms in [
            0,
            1,
            -1,
            951_782_400_000,
            1_663_740_627_986,
            4_102_444_799_999,
        ]
        .into_iter()
        .chain((0..10_000).map(|_| rng.gen_range(-2_000_000_000_000i64..4_000_000_000_000)))
        {
            let mut out = Vec::new();
            push_ts(&mut out, ms);
            let expected = utc(ms).format("%Y-%m-%d %H:%M:%S%.3f+00").to_string();
            assert_eq!(String::from_utf8(out).unwrap(), expected, "{ms}");
        }
    }

    #[test]
    fn integers_and_text_are_copy_text() {
        let mut out = Vec::new();
        push_u64(&mut out, u64::MAX);
        out.push(b' ');
        push_i64(&mut out, i64::MIN);
        out.push(b' ');
        push_u64(&mut out, 0);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "18446744073709551615 -9223372036854775808 0"
        );
        assert_eq!(copy_escape("a\\b\tc\nd\re é"), "a\\\\b\\tc\\nd\\re é");
    }

    #[test]
    fn minutes_share_out_exactly_the_events_with_a_daily_cycle() {
        let mut options = SeedOptions::new(123_457);
        options.days = 3;
        let plan = Plan::new(&options);
        let counts: Vec<u64> = (0..plan.weight_to.len())
            .map(|m| plan.logouts_in_minute(m))
            .collect();
        assert_eq!(counts.len(), 3 * 1440);
        assert_eq!(counts.iter().sum::<u64>(), 123_457);
        let at_hour = |h: i64| {
            let m = (0..counts.len())
                .find(|&m| (plan.start_ms + m as i64 * MINUTE_MS).rem_euclid(DAY_MS) == h * HOUR_MS)
                .unwrap();
            counts[m..m + 60].iter().sum::<u64>()
        };
        assert!(at_hour(20) > 2 * at_hour(8), "evenings are busier");
        assert!(plan.incident.is_some());
        assert_eq!(plan.months().first().unwrap().day(), 1);
        let shares: Vec<f64> = plan.apps.iter().map(|a| a.share_to).collect();
        assert_eq!(shares.len(), 3);
        assert_eq!(*shares.last().unwrap(), 1.0);
    }
}
