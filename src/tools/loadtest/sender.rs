//! The sender: one worker per connection, each posting its stream of callbacks one after the
//! other until the budget (`--count` or `--duration-secs`) is spent; their tallies merged into
//! the [`Report`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::body::{Clock, Shape, Traffic};
use super::config::LoadtestConfig;
use super::connection::{Connection, Target};
use super::ledger::{Lane, LaneIds, Ledger};
use super::report::{percentile, Report};

/// When workers stop.
#[derive(Clone)]
enum Budget {
    Count { sent: Arc<AtomicU64>, limit: u64 },
    Until(Instant),
}

impl Budget {
    /// Takes one request from the budget; false when it is spent.
    fn take(&self) -> bool {
        match self {
            Budget::Count { sent, limit } => sent.fetch_add(1, Ordering::Relaxed) < *limit,
            Budget::Until(deadline) => Instant::now() < *deadline,
        }
    }
}

/// One worker's tallies, merged into the report at the end.
struct Tally {
    lane: Lane,
    retries: u64,
    /// Microseconds, answered requests only.
    latencies_us: Vec<u32>,
    /// Index: HTTP status (100..=999).
    statuses: Box<[u64; 1000]>,
    transport_errors: u64,
    first_error: Option<String>,
}

pub(super) async fn send(config: &LoadtestConfig, target: Target) -> anyhow::Result<Report> {
    let connections = config.connections as usize;
    let timeout = Duration::from_secs(config.request_timeout_secs);
    let content_type = config.encoding.mime();
    let mut seeds = match config.seed {
        Some(seed) => StdRng::seed_from_u64(seed),
        None => StdRng::from_entropy(),
    };
    // Not from the seed: a rerun with the same seed must not collide with the first run.
    let base = u64::from(rand::random::<u32>()) << 32;
    let shape = Shape::new(&mut seeds, config.appid, config.encoding);
    let secret: Arc<str> = config.secret.as_str().into();

    let started = Instant::now();
    let budget = match (config.count, config.duration_secs) {
        (Some(limit), _) => Budget::Count {
            sent: Arc::new(AtomicU64::new(0)),
            limit,
        },
        (None, secs) => Budget::Until(started + Duration::from_secs_f64(secs.unwrap_or(10.0))),
    };
    tracing::info!(url = %config.url, connections, encoding = ?config.encoding, duplicates = config.duplicates,
        "loadtest: sending signed room_logout callbacks");
    let mut workers = tokio::task::JoinSet::new();
    for lane in 0..connections {
        let traffic = Traffic::new(
            shape.clone(),
            StdRng::seed_from_u64(seeds.gen()),
            LaneIds {
                base,
                lanes: connections as u64,
                lane: lane as u64,
            },
            config.duplicates,
            secret.clone(),
        );
        let worker = Worker {
            connection: Connection::new(target.clone()),
            timeout,
            content_type,
            budget: budget.clone(),
            traffic,
        };
        workers.spawn(async move { (lane, worker.run().await) });
    }
    let mut tallies: Vec<Option<Tally>> = (0..connections).map(|_| None).collect();
    while let Some(joined) = workers.join_next().await {
        let (lane, tally) = joined.context("a loadtest worker panicked")?;
        tallies[lane] = Some(tally);
    }
    let elapsed = started.elapsed();

    let mut statuses = BTreeMap::new();
    let mut latencies = Vec::new();
    let mut lanes = Vec::with_capacity(connections);
    let (mut retries, mut transport_errors, mut error_samples) = (0, 0, Vec::new());
    for tally in tallies.into_iter().flatten() {
        for (status, &n) in tally.statuses.iter().enumerate() {
            if n > 0 {
                *statuses.entry(status as u16).or_insert(0) += n;
            }
        }
        latencies.extend_from_slice(&tally.latencies_us);
        retries += tally.retries;
        transport_errors += tally.transport_errors;
        if error_samples.len() < 5 {
            error_samples.extend(tally.first_error);
        }
        lanes.push(tally.lane);
    }
    latencies.sort_unstable();
    let ledger = Ledger::new(base, lanes);
    let requests = statuses.values().sum::<u64>() + transport_errors;
    Ok(Report {
        url: config.url.clone(),
        connections: config.connections,
        requests,
        unique_sent: ledger.unique_sent(),
        retries_sent: retries,
        acknowledged_unique: ledger.acknowledged_unique(),
        elapsed,
        statuses,
        transport_errors,
        error_samples,
        latency_p50: percentile(&latencies, 0.50),
        latency_p99: percentile(&latencies, 0.99),
        latency_max: percentile(&latencies, 1.0),
        ledger,
        verification: None,
    })
}

struct Worker {
    connection: Connection,
    timeout: Duration,
    content_type: &'static str,
    budget: Budget,
    traffic: Traffic,
}

impl Worker {
    async fn run(mut self) -> Tally {
        let mut tally = Tally {
            lane: Lane::default(),
            retries: 0,
            latencies_us: Vec::with_capacity(4096),
            statuses: Box::new([0; 1000]),
            transport_errors: 0,
            first_error: None,
        };
        let mut body = Vec::with_capacity(self.traffic.body_capacity());
        while self.budget.take() {
            body.clear();
            let pick = self.traffic.next(Clock::now(), &mut body);
            tally.retries += u64::from(pick.retry);
            let started = Instant::now();
            match self
                .connection
                .post(self.content_type, &body, self.timeout)
                .await
            {
                Ok(status) => {
                    let us = started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                    tally.latencies_us.push(us);
                    tally.statuses[usize::from(status).min(999)] += 1;
                    if (200..300).contains(&status) {
                        tally.lane.ack(pick.k);
                    }
                }
                Err(e) => {
                    tally.transport_errors += 1;
                    if tally.first_error.is_none() {
                        tally.first_error = Some(e.to_string());
                    }
                }
            }
        }
        tally.lane.generated = self.traffic.generated();
        tally
    }
}
