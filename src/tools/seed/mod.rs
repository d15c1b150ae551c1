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
//!
//! # Layout
//! - `options.rs`: what to seed ([`SeedOptions`]; the flags are the binary's) and what was
//!   written ([`SeedReport`]).
//! - `plan.rs`: what is fixed before the first row: apps, rooms, users, logouts per minute
//!   (the daily cycle, the incident hour). The traffic model itself (popularity, roles, session
//!   lengths, accounts, nicknames) is `tools/traffic.rs`, shared with `loadtest`.
//! - `generator.rs`: the row generator, on its own thread: sessions, logins, open sessions;
//!   `lifecycles.rs`: the room lifecycles they make, and their create and close events.
//! - `copy_text.rs`: COPY's text format; `copy.rs`: chunks of it streamed into `COPY ... FROM STDIN`.
//! - `rollups.rs`: the logouts' id block, their rollups, what is analyzed at the end.
//! - `progress.rs`: the progress bars.

use std::time::Instant;

use anyhow::{bail, Context};
use indicatif::ProgressBar;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use tokio::sync::mpsc;

use copy::{copy_in, Chunk, LIFECYCLE_COPY, LOGINS_COPY, LOGOUTS_COPY};
use generator::{Generator, Senders};
use plan::{utc, Plan};
use progress::Bars;
use rollups::{add_to_rollups, reserve_logout_ids, ANALYZE};

mod copy;
mod copy_text;
mod generator;
mod lifecycles;
mod options;
mod plan;
mod progress;
mod rollups;

pub use options::{
    SeedOptions, SeedReport, APPS_RANGE, DAYS_RANGE, DEFAULT_APPS, DEFAULT_CHUNK_ROWS,
    DEFAULT_DAYS, DEFAULT_EVENTS, EVENTS_RANGE,
};

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
