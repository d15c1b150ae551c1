//! `zegolog loadtest`: sends signed `room_logout` callbacks to a zegolog deployment as fast as
//! it takes them, the way ZEGOCLOUD would (retries included), and checks afterwards that the
//! database holds every acknowledged logout exactly once.
//!
//! The traffic looks like a real app's: rooms of skewed popularity (a few big ones, a long tail
//! of small ones), mostly audience with some hosts and a few admin bots, mostly normal logouts,
//! sessions from seconds to hours (log-normal, median a few minutes), nicknames in many scripts,
//! `room_seq` values above 2^63, every value a JSON string as in the current vendor docs.
//!
//! Every logout of a run gets a `session_id` in a range of 2^32 ids picked at random for the run,
//! so `--verify` finds this run's rows (and only them) in a shared database.
//!
//! The loader shares the machine with zegolog and PostgreSQL in benchmarks, so the hot loop is
//! kept light: each worker owns its random generator, its traffic generator and its tallies
//! (merged once at the end); the only shared state is one atomic request counter with `--count`.
//!
//! Errors are `anyhow`: this is command-line glue, like the binary's command line (`src/bin/zegolog`).

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::header::{HeaderValue, CONTENT_TYPE};

use crate::signature::sign;

/// How many session ids a run owns: `[base, base + SESSION_SPAN)`.
pub const SESSION_SPAN: u64 = 1 << 32;

/// Earlier callbacks each worker remembers, to send retries of.
const RECENT: usize = 256;

#[derive(Debug, Clone, clap::Args)]
pub struct LoadtestArgs {
    /// The callback URL of the zegolog deployment to load.
    #[arg(
        long,
        env = "ZEGOLOG_LOADTEST_URL",
        default_value = "http://127.0.0.1:8080/zego/callback"
    )]
    pub url: String,

    /// The callback secret zegolog verifies this appid with: every request is signed with it,
    /// as ZEGOCLOUD does. Prefer the environment variable: flags show in the process list.
    #[arg(long, env = "ZEGOLOG_SECRET", hide_env_values = true)]
    pub secret: Option<String>,

    /// The appid the callbacks name.
    #[arg(long, env = "ZEGOLOG_LOADTEST_APPID", default_value_t = 1,
          value_parser = clap::value_parser!(i64).range(0..))]
    pub appid: i64,

    /// Concurrent connections; each sends one request after another.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub connections: u32,

    /// Stop sending after this many seconds [default: 10, unless --count is given].
    #[arg(long, conflicts_with = "count", value_parser = positive_secs)]
    pub duration_secs: Option<f64>,

    /// Stop after this many requests in all, instead of after a duration.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,

    /// Share of requests (0 to 1) that are retries of an earlier callback: the same logout with
    /// a new timestamp, nonce and signature, as ZEGOCLOUD sends when it did not get a 2xx.
    #[arg(long, default_value_t = 0.0, value_parser = fraction)]
    pub duplicates: f64,

    /// Body encoding: JSON, or an URL-encoded form (ZEGOCLOUD's "POST/FORM" mode).
    #[arg(long, value_enum, default_value_t = BodyEncoding::Json)]
    pub encoding: BodyEncoding,

    /// After the load, check that the database holds every acknowledged (2xx) logout exactly
    /// once and no logout this run never sent. Needs --database-url (or DATABASE_URL).
    #[arg(long)]
    pub verify: bool,

    /// The PostgreSQL zegolog writes to, for --verify.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// How long --verify waits for acknowledged logouts to appear (zegolog may still be
    /// draining its spool), in seconds.
    #[arg(long, default_value_t = 120)]
    pub verify_timeout_secs: u64,

    /// Give up on a request after this many seconds (counted as a transport error).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout_secs: u64,

    /// Seed for reproducible traffic: the same rooms, users, mix and order. Session ids still
    /// get a fresh range every run, so that two runs never collide in the database.
    #[arg(long)]
    pub seed: Option<u64>,
}

impl LoadtestArgs {
    /// The flags `zegolog bench` runs the load with: unique JSON logouts (no retries) for
    /// `duration` over `connections`, then `--verify` against `database_url`.
    pub fn for_bench(
        url: String,
        secret: String,
        connections: usize,
        duration: Duration,
        database_url: String,
    ) -> Self {
        Self {
            url,
            secret: Some(secret),
            appid: 1,
            connections: u32::try_from(connections).unwrap_or(u32::MAX).max(1),
            duration_secs: Some(duration.as_secs_f64()),
            count: None,
            duplicates: 0.0,
            encoding: BodyEncoding::Json,
            verify: true,
            database_url: Some(database_url),
            verify_timeout_secs: 120,
            request_timeout_secs: 30,
            seed: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BodyEncoding {
    /// `application/json`, every value a JSON string.
    Json,
    /// `application/x-www-form-urlencoded`, values percent-encoded.
    Form,
}

impl BodyEncoding {
    fn mime(self) -> &'static str {
        match self {
            BodyEncoding::Json => "application/json",
            BodyEncoding::Form => "application/x-www-form-urlencoded",
        }
    }
}

fn fraction(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(format!("`{s}` is not a number from 0 to 1")),
    }
}

fn positive_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if f > 0.0 && f.is_finite() => Ok(f),
        _ => Err(format!("`{s}` is not a positive number of seconds")),
    }
}

/// What a run did and, with `--verify`, what the database holds.
#[derive(Debug, Clone)]
pub struct Report {
    pub url: String,
    pub connections: u32,
    /// Requests sent (answered or not).
    pub requests: u64,
    /// Distinct logouts sent (first deliveries).
    pub unique_sent: u64,
    /// Requests that were retries of an earlier logout.
    pub retries_sent: u64,
    /// Distinct logouts with at least one 2xx answer.
    pub acknowledged_unique: u64,
    /// From the first request to the last answer.
    pub elapsed: Duration,
    /// Answers by HTTP status.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests with no HTTP answer (connection refused or reset, timeout).
    pub transport_errors: u64,
    /// A few transport errors, for the human reading the report.
    pub error_samples: Vec<String>,
    /// Latency of answered requests, up to the end of the answer's body.
    pub latency_p50: Duration,
    pub latency_p99: Duration,
    pub latency_max: Duration,
    /// What was sent and acknowledged, by session id: what `--verify` checks.
    pub ledger: Ledger,
    /// `Some` when `--verify` was asked.
    pub verification: Option<Verification>,
}

impl Report {
    /// True when `--verify` was not asked, or when it found exactly the acknowledged logouts.
    pub fn verified_ok(&self) -> bool {
        self.verification.as_ref().is_none_or(Verification::ok)
    }

    /// Requests answered 2xx.
    pub fn successes(&self) -> u64 {
        self.statuses
            .iter()
            .filter(|(status, _)| (200..300).contains(*status))
            .map(|(_, n)| n)
            .sum()
    }

    pub fn requests_per_sec(&self) -> f64 {
        per_sec(self.requests, self.elapsed)
    }

    pub fn acknowledged_unique_per_sec(&self) -> f64 {
        per_sec(self.acknowledged_unique, self.elapsed)
    }
}

fn per_sec(n: u64, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64().max(1e-9)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} requests to {} in {:.2} s over {} connections: {:.0} requests/s",
            self.requests,
            self.url,
            self.elapsed.as_secs_f64(),
            self.connections,
            self.requests_per_sec()
        )?;
        writeln!(
            f,
            "  logouts: {} distinct sent, {} retries; {} distinct acknowledged (2xx), {:.0}/s",
            self.unique_sent,
            self.retries_sent,
            self.acknowledged_unique,
            self.acknowledged_unique_per_sec()
        )?;
        writeln!(
            f,
            "  latency: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            ms(self.latency_p50),
            ms(self.latency_p99),
            ms(self.latency_max)
        )?;
        let statuses: Vec<String> = self
            .statuses
            .iter()
            .map(|(status, n)| format!("{status}: {n}"))
            .collect();
        writeln!(
            f,
            "  answers: {}; transport errors: {}",
            if statuses.is_empty() {
                "none".to_string()
            } else {
                statuses.join(", ")
            },
            self.transport_errors
        )?;
        for sample in &self.error_samples {
            writeln!(f, "    e.g. {sample}")?;
        }
        if let Some(v) = &self.verification {
            write!(f, "{v}")?;
        }
        Ok(())
    }
}

/// What `--verify` found in `room_logouts` for this run's session ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Distinct logouts acknowledged (2xx): each must be present exactly once.
    pub acknowledged_unique: u64,
    /// Acknowledged logouts present.
    pub found: u64,
    /// Acknowledged logouts absent when verification gave up.
    pub missing: u64,
    /// Rows of this run's session range for logouts never sent.
    pub unexpected: u64,
    /// Logouts present more than once.
    pub duplicated: u64,
    /// Logouts stored though never acknowledged (their answer was lost or not 2xx): allowed,
    /// the sender would have retried them.
    pub stored_unacknowledged: u64,
    /// How long the database took to hold every acknowledged logout (or until giving up).
    pub waited: Duration,
}

impl Verification {
    pub fn ok(&self) -> bool {
        self.missing == 0 && self.unexpected == 0 && self.duplicated == 0
    }
}

impl fmt::Display for Verification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "verify: {} acknowledged distinct logouts, {} found, {} missing, {} unexpected, \
             {} duplicated, {} stored but unacknowledged (after {:.1} s): {}",
            self.acknowledged_unique,
            self.found,
            self.missing,
            self.unexpected,
            self.duplicated,
            self.stored_unacknowledged,
            self.waited.as_secs_f64(),
            if self.ok() { "OK" } else { "FAILED" }
        )
    }
}

/// Which session ids a run sent and which were acknowledged.
///
/// Worker `w` of `n` sends its `k`-th distinct logout with session id `base + k * n + w`, so
/// workers never share an id and need no lock.
#[derive(Debug, Clone)]
pub struct Ledger {
    pub base: u64,
    lanes: Vec<Lane>,
}

#[derive(Debug, Clone, Default)]
struct Lane {
    /// Distinct logouts generated: `k` in `0..generated` were sent.
    generated: u64,
    /// Bit `k`: logout `k` got a 2xx.
    acked: Vec<u64>,
}

impl Lane {
    fn ack(&mut self, k: u64) {
        let (word, bit) = ((k / 64) as usize, k % 64);
        if word >= self.acked.len() {
            self.acked.resize(word + 1, 0);
        }
        self.acked[word] |= 1 << bit;
    }

    fn is_acked(&self, k: u64) -> bool {
        self.acked
            .get((k / 64) as usize)
            .is_some_and(|w| w & (1 << (k % 64)) != 0)
    }
}

impl Ledger {
    /// The session id of worker `lane`'s `k`-th logout.
    pub fn session_id(&self, lane: usize, k: u64) -> u64 {
        self.base + k * self.lanes.len() as u64 + lane as u64
    }

    /// Lane and index of a session id of this run's range, if it is one.
    fn locate(&self, session_id: u64) -> Option<(usize, u64)> {
        let offset = session_id.checked_sub(self.base)?;
        (offset < SESSION_SPAN).then(|| {
            let n = self.lanes.len() as u64;
            ((offset % n) as usize, offset / n)
        })
    }

    pub fn was_sent(&self, session_id: u64) -> bool {
        self.locate(session_id)
            .is_some_and(|(lane, k)| k < self.lanes[lane].generated)
    }

    pub fn was_acknowledged(&self, session_id: u64) -> bool {
        self.locate(session_id)
            .is_some_and(|(lane, k)| self.lanes[lane].is_acked(k))
    }

    pub fn unique_sent(&self) -> u64 {
        self.lanes.iter().map(|l| l.generated).sum()
    }

    pub fn acknowledged_unique(&self) -> u64 {
        self.lanes
            .iter()
            .flat_map(|l| &l.acked)
            .map(|w| u64::from(w.count_ones()))
            .sum()
    }

    /// Session ids of every acknowledged logout.
    pub fn acknowledged(&self) -> impl Iterator<Item = u64> + '_ {
        self.lanes.iter().enumerate().flat_map(move |(lane, l)| {
            (0..l.generated)
                .filter(|&k| l.is_acked(k))
                .map(move |k| self.session_id(lane, k))
        })
    }
}

/// Sends the load, then (with `--verify`) checks the database.
pub async fn run(args: &LoadtestArgs) -> anyhow::Result<Report> {
    let Some(secret) = args.secret.as_deref().filter(|s| !s.is_empty()) else {
        bail!(
            "no callback secret: set ZEGOLOG_SECRET (or --secret) to the secret zegolog \
             verifies appid {} with",
            args.appid
        );
    };
    let database_url = match (args.verify, args.database_url.as_deref()) {
        (true, None) => bail!(
            "--verify needs the database zegolog writes to: set DATABASE_URL or --database-url"
        ),
        (true, Some(url)) => Some(url),
        (false, _) => None,
    };
    let url: reqwest::Url = args
        .url
        .parse()
        .with_context(|| format!("--url `{}` is not a URL", args.url))?;

    let mut report = send(args, secret, url).await?;
    if let Some(database_url) = database_url {
        let timeout = Duration::from_secs(args.verify_timeout_secs);
        report.verification =
            Some(verify(database_url, args.appid, &report.ledger, timeout).await?);
    }
    Ok(report)
}

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

async fn send(args: &LoadtestArgs, secret: &str, url: reqwest::Url) -> anyhow::Result<Report> {
    let connections = args.connections as usize;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(args.request_timeout_secs))
        .build()
        .context("building the HTTP client")?;
    let content_type = HeaderValue::from_static(args.encoding.mime());
    let mut seeds = match args.seed {
        Some(seed) => StdRng::seed_from_u64(seed),
        None => StdRng::from_entropy(),
    };
    // Not from the seed: a rerun with the same seed must not collide with the first run.
    let base = u64::from(rand::random::<u32>()) << 32;
    let shape = Shape::new(&mut seeds, args.appid, args.encoding);
    let secret: Arc<str> = secret.into();

    let started = Instant::now();
    let budget = match (args.count, args.duration_secs) {
        (Some(limit), _) => Budget::Count {
            sent: Arc::new(AtomicU64::new(0)),
            limit,
        },
        (None, secs) => Budget::Until(started + Duration::from_secs_f64(secs.unwrap_or(10.0))),
    };
    tracing::info!(url = %url, connections, encoding = ?args.encoding, duplicates = args.duplicates,
        "loadtest: sending signed room_logout callbacks");
    let mut workers = tokio::task::JoinSet::new();
    for lane in 0..connections {
        let traffic = Traffic::new(
            shape.clone(),
            StdRng::seed_from_u64(seeds.gen()),
            base,
            connections as u64,
            lane as u64,
            args.duplicates,
            secret.clone(),
        );
        let worker = Worker {
            client: client.clone(),
            url: url.clone(),
            content_type: content_type.clone(),
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
    let ledger = Ledger { base, lanes };
    let requests = statuses.values().sum::<u64>() + transport_errors;
    Ok(Report {
        url: url.to_string(),
        connections: args.connections,
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

/// Nearest-rank percentile of sorted microseconds.
fn percentile(sorted_us: &[u32], q: f64) -> Duration {
    if sorted_us.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted_us.len() as f64).ceil() as usize).clamp(1, sorted_us.len());
    Duration::from_micros(u64::from(sorted_us[rank - 1]))
}

struct Worker {
    client: reqwest::Client,
    url: reqwest::Url,
    content_type: HeaderValue,
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
        while self.budget.take() {
            let mut body = Vec::with_capacity(self.traffic.body_capacity());
            let pick = self.traffic.next(Clock::now(), &mut body);
            tally.retries += u64::from(pick.retry);
            let started = Instant::now();
            let answer = self
                .client
                .post(self.url.clone())
                .header(CONTENT_TYPE, self.content_type.clone())
                .body(body)
                .send()
                .await;
            // Read the answer to its end: the connection goes back to the pool only then.
            let status = match answer {
                Ok(response) => {
                    let status = response.status().as_u16();
                    response.bytes().await.map(|_| status)
                }
                Err(e) => Err(e),
            };
            match status {
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
                        tally.first_error = Some(crate::error_chain(&e));
                    }
                }
            }
        }
        tally.lane.generated = self.traffic.generated();
        tally
    }
}

/// The wall clock a callback is made at.
#[derive(Debug, Clone, Copy)]
struct Clock {
    unix_ms: u64,
}

impl Clock {
    fn now() -> Self {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            unix_ms: since.as_millis() as u64,
        }
    }
}

/// What a run's traffic looks like, shared by every worker: the same rooms and users.
#[derive(Clone)]
struct Shape {
    /// `{"event":"room_logout","appid":"1","timestamp":"` or `event=room_logout&appid=1&timestamp=`.
    head: Arc<str>,
    encoding: BodyEncoding,
    room_salt: u64,
    user_salt: u64,
}

/// Rooms: rank 0 is the busiest; popularity falls off like 1/rank.
const ROOMS: u64 = 5_000;
/// Users: some much more active than others, like rooms.
const USERS: u64 = 200_000;

/// Nickname stems: many scripts, emoji, and characters that need escaping in JSON or forms.
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
    "ゲスト",
    "player_",
];

impl Shape {
    fn new(rng: &mut StdRng, appid: i64, encoding: BodyEncoding) -> Self {
        let head = match encoding {
            BodyEncoding::Json => {
                format!(r#"{{"event":"room_logout","appid":"{appid}","timestamp":""#)
            }
            BodyEncoding::Form => format!("event=room_logout&appid={appid}&timestamp="),
        };
        Self {
            head: head.into(),
            encoding,
            room_salt: rng.gen(),
            user_salt: rng.gen(),
        }
    }
}

/// Which logout a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pick {
    /// The logout's index in its worker's lane (see [`Ledger`]).
    k: u64,
    /// A retry of a logout sent before.
    retry: bool,
}

/// One worker's stream of callbacks.
struct Traffic {
    shape: Shape,
    rng: StdRng,
    base: u64,
    lanes: u64,
    lane: u64,
    duplicates: f64,
    secret: Arc<str>,
    /// Distinct logouts made so far.
    next_k: u64,
    /// Business fields of recent logouts, encoded, ready to be sent again; ring by `k`.
    recent: Vec<(u64, Vec<u8>)>,
}

impl Traffic {
    fn new(
        shape: Shape,
        rng: StdRng,
        base: u64,
        lanes: u64,
        lane: u64,
        duplicates: f64,
        secret: Arc<str>,
    ) -> Self {
        Self {
            shape,
            rng,
            base,
            lanes,
            lane,
            duplicates,
            secret,
            next_k: 0,
            recent: Vec::with_capacity(RECENT),
        }
    }

    /// A generator on its own, for tests of the traffic: lane `lane` of `lanes`.
    #[cfg(test)]
    fn for_test(
        seed: u64,
        encoding: BodyEncoding,
        secret: &str,
        base: u64,
        lanes: u64,
        lane: u64,
        duplicates: f64,
    ) -> Self {
        let mut seeds = StdRng::seed_from_u64(seed);
        let shape = Shape::new(&mut seeds, 1, encoding);
        let rng = StdRng::seed_from_u64(seeds.gen::<u64>() ^ lane);
        Self::new(shape, rng, base, lanes, lane, duplicates, secret.into())
    }

    fn generated(&self) -> u64 {
        self.next_k
    }

    fn session_id(&self, k: u64) -> u64 {
        self.base + k * self.lanes + self.lane
    }

    fn body_capacity(&self) -> usize {
        // Envelope (~120 bytes) plus fields (~300 bytes, more with percent-encoded nicknames).
        match self.shape.encoding {
            BodyEncoding::Json => 512,
            BodyEncoding::Form => 768,
        }
    }

    /// Writes the next callback's body into `out`: a retry of a recent logout with probability
    /// `duplicates`, else a new logout. Either way with a fresh timestamp, nonce and signature.
    fn next(&mut self, now: Clock, out: &mut Vec<u8>) -> Pick {
        let retry = !self.recent.is_empty() && self.rng.gen_bool(self.duplicates);
        let slot = if retry {
            self.rng.gen_range(0..self.recent.len())
        } else {
            let k = self.next_k;
            self.next_k += 1;
            let mut fields = Vec::with_capacity(self.body_capacity());
            self.logout_fields(k, now, &mut fields);
            if self.recent.len() < RECENT {
                self.recent.push((k, fields));
                self.recent.len() - 1
            } else {
                let slot = (k % RECENT as u64) as usize;
                self.recent[slot] = (k, fields);
                slot
            }
        };
        self.envelope(now, out);
        let (k, fields) = &self.recent[slot];
        out.extend_from_slice(fields);
        Pick { k: *k, retry }
    }

    /// Event, appid, timestamp, nonce and signature; no separator after the last.
    fn envelope(&mut self, now: Clock, out: &mut Vec<u8>) {
        let timestamp = (now.unix_ms / 1000).to_string();
        // 19 digits, as ZEGOCLOUD's stream callbacks show. With 6 to 9 digits, two logouts of
        // the same second at thousands per second share a (timestamp, nonce) by chance now and
        // then, and the signature ledger quarantines the second (as it must for a real sender).
        let nonce = self
            .rng
            .gen_range(1_000_000_000_000_000_000u64..10_000_000_000_000_000_000)
            .to_string();
        let signature = sign(&self.secret, &timestamp, &nonce);
        out.extend_from_slice(self.shape.head.as_bytes());
        // Digits and lower-case hex: the same bytes in JSON and in a form.
        let _ = match self.shape.encoding {
            BodyEncoding::Json => write!(
                out,
                r#"{timestamp}","nonce":"{nonce}","signature":"{signature}""#
            ),
            BodyEncoding::Form => write!(out, "{timestamp}&nonce={nonce}&signature={signature}"),
        };
    }

    /// The business fields of logout `k`, each preceded by its separator; JSON closes the object.
    fn logout_fields(&mut self, k: u64, now: Clock, out: &mut Vec<u8>) {
        let rng = &mut self.rng;
        let room = skewed(rng, ROOMS);
        let user = skewed(rng, USERS);
        let role: u8 = match rng.gen_range(0..100) {
            0..=84 => 2,
            85..=96 => 1,
            _ => 4,
        };
        let reason: u8 = match rng.gen_range(0..100) {
            0..=69 => 0,
            70..=84 => 2,
            85..=92 => 1,
            93..=96 => 3,
            _ => 4,
        };
        // Log-normal session lengths: (median seconds, sigma).
        let (median_s, sigma) = match (reason, role) {
            (4, _) => (3_600.0, 0.4), // tokens expire about an hour in
            (3, _) => (120.0, 1.2),
            (_, 4) => (1_800.0, 1.0), // recording and moderation bots stay long
            _ => (240.0, 1.5),
        };
        let duration_ms =
            (median_s * 1000.0 * (sigma * normal(rng)).exp()).clamp(1_000.0, 12.0 * 3_600_000.0);
        // Callbacks leave ZEGOCLOUD a moment after the logout.
        let logout_ms = now.unix_ms.saturating_sub(rng.gen_range(0..3_000));
        let login_ms = logout_ms.saturating_sub(duration_ms as u64);
        let room_seq = mix(self.shape.room_salt ^ room);
        let update_seq = rng.gen_range(1..=2 + 100_000 / (room + 1));
        let user_hash = mix(self.shape.user_salt ^ user);
        let session_id = self.session_id(k);

        let mut w = FieldWriter {
            out,
            encoding: self.shape.encoding,
            scratch: String::new(),
        };
        w.text("room_id", format_args!("rid_{room}"));
        w.number("room_seq", room_seq);
        if role == 4 {
            w.text("user_account", format_args!("bot_rec_{room}"));
            w.text("user_nickname", format_args!("录制机器人 recorder"));
        } else {
            w.number("user_account", 100_000_000 + user_hash % 900_000_000);
            let stem = NICKNAMES[(user_hash >> 40) as usize % NICKNAMES.len()];
            w.text("user_nickname", format_args!("{stem}{}", user % 1000));
        }
        w.number("session_id", session_id);
        w.number("login_time", login_ms);
        w.number("logout_time", logout_ms);
        w.number("reason", reason.into());
        w.number("user_role", role.into());
        w.number("user_update_seq", update_seq);
        if self.shape.encoding == BodyEncoding::Json {
            w.out.push(b'}');
        }
    }
}

/// Writes `name: value` pairs as JSON string members or form pairs, each after its separator.
struct FieldWriter<'a> {
    out: &'a mut Vec<u8>,
    encoding: BodyEncoding,
    scratch: String,
}

impl FieldWriter<'_> {
    /// Free text: escaped for JSON, percent-encoded for a form.
    fn text(&mut self, name: &str, value: fmt::Arguments<'_>) {
        self.scratch.clear();
        let _ = fmt::write(&mut self.scratch, value);
        let value = self.scratch.as_str();
        match self.encoding {
            BodyEncoding::Json => {
                let _ = write!(self.out, r#","{name}":"#);
                // Serialising a &str into a Vec cannot fail.
                let _ = serde_json::to_writer(&mut *self.out, value);
            }
            BodyEncoding::Form => {
                let value = utf8_percent_encode(value, NON_ALPHANUMERIC);
                let _ = write!(self.out, "&{name}={value}");
            }
        }
    }

    /// A number as a string, as the current vendor docs send it: digits need no escaping.
    fn number(&mut self, name: &str, value: u64) {
        let _ = match self.encoding {
            BodyEncoding::Json => write!(self.out, r#","{name}":"{value}""#),
            BodyEncoding::Form => write!(self.out, "&{name}={value}"),
        };
    }
}

/// A rank in `0..n`, rank `r` about `1/(r+1)` as likely as rank 0 (Zipf-like, exponent 1).
/// Shared with `seed`, whose synthetic traffic is shaped the same way.
pub(crate) fn skewed(rng: &mut StdRng, n: u64) -> u64 {
    let u: f64 = rng.gen();
    (((n as f64 + 1.0).powf(u) - 1.0) as u64).min(n - 1)
}

/// A standard normal variate (Box-Muller).
pub(crate) fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = 1.0 - rng.gen::<f64>(); // (0, 1]: ln is finite
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// SplitMix64's finaliser: a bijection of u64 that spreads its input well (room_seq per room,
/// account per user).
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Polls `room_logouts` until every acknowledged logout of `ledger` is there or `timeout` passes,
/// then says what it found for this run's session ids.
pub async fn verify(
    database_url: &str,
    appid: i64,
    ledger: &Ledger,
    timeout: Duration,
) -> anyhow::Result<Verification> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect(database_url)
        .await
        .context("connecting to the database for --verify")?;
    let started = Instant::now();
    let deadline = started + timeout;
    let (lo, hi) = (ledger.base, ledger.base + (SESSION_SPAN - 1));
    let result = loop {
        // Bound as text and cast: session_id is numeric(20,0), beyond bigint.
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT session_id::text, count(*) FROM room_logouts
             WHERE appid = $1 AND session_id BETWEEN $2::numeric AND $3::numeric
             GROUP BY session_id",
        )
        .bind(appid)
        .bind(lo.to_string())
        .bind(hi.to_string())
        .fetch_all(&pool)
        .await
        .context("reading this run's rows of room_logouts")?;
        let mut v = Verification {
            acknowledged_unique: ledger.acknowledged_unique(),
            found: 0,
            missing: 0,
            unexpected: 0,
            duplicated: 0,
            stored_unacknowledged: 0,
            waited: started.elapsed(),
        };
        for (session_id, copies) in &rows {
            let session_id: u64 = session_id
                .parse()
                .with_context(|| format!("session_id {session_id} is not a u64"))?;
            if copies > &1 {
                v.duplicated += 1;
            }
            if ledger.was_acknowledged(session_id) {
                v.found += 1;
            } else if ledger.was_sent(session_id) {
                v.stored_unacknowledged += 1;
            } else {
                v.unexpected += 1;
            }
        }
        v.missing = v.acknowledged_unique - v.found;
        if v.missing == 0 || Instant::now() >= deadline {
            break v;
        }
        tracing::info!(
            missing = v.missing,
            found = v.found,
            "verify: waiting for acknowledged logouts to reach the database"
        );
        tokio::time::sleep(Duration::from_millis(500).min(deadline - Instant::now())).await;
    };
    pool.close().await;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use clap::{CommandFactory, Parser};

    use super::*;
    use crate::callback::{Encoding, Envelope, Fields, RoomLogout};
    use crate::signature::{Secrets, Verifier};

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: LoadtestArgs,
    }

    #[test]
    fn flags_parse_with_defaults_and_refuse_nonsense() {
        Cli::command().debug_assert();
        let args = Cli::try_parse_from(["loadtest", "--secret", "s"])
            .unwrap()
            .args;
        assert_eq!(args.connections, 64);
        assert_eq!((args.count, args.duration_secs), (None, None));
        assert_eq!(args.encoding, BodyEncoding::Json);
        assert_eq!(args.duplicates, 0.0);
        assert!(Cli::try_parse_from(["loadtest", "--count", "5", "--duration-secs", "1"]).is_err());
        assert!(Cli::try_parse_from(["loadtest", "--duplicates", "1.5"]).is_err());
        assert!(Cli::try_parse_from(["loadtest", "--connections", "0"]).is_err());
        let args = Cli::try_parse_from(["loadtest", "--encoding", "form", "--duplicates", "0.25"])
            .unwrap()
            .args;
        assert_eq!((args.encoding, args.duplicates), (BodyEncoding::Form, 0.25));
    }

    /// Bodies as zegolog reads them: parsed, authentic, normalised.
    fn receive(body: &[u8], encoding: BodyEncoding, now: Clock) -> (Fields, RoomLogout) {
        let encoding = match encoding {
            BodyEncoding::Json => Encoding::Json,
            BodyEncoding::Form => Encoding::Form,
        };
        let fields = Fields::parse(body, encoding).unwrap_or_else(|e| {
            panic!("{e}: {}", String::from_utf8_lossy(body));
        });
        let envelope = Envelope::from_fields(&fields).unwrap();
        let verifier = Verifier::new(Secrets::new(Some("s".into()), None).unwrap(), 600);
        verifier
            .verify(&envelope, (now.unix_ms / 1000) as i64)
            .unwrap();
        assert_eq!(
            (envelope.event.as_str(), envelope.appid),
            ("room_logout", 1)
        );
        let logout = RoomLogout::from_fields(1, &fields).unwrap();
        (fields, logout)
    }

    #[test]
    fn traffic_is_valid_signed_and_mixed_like_real_apps() {
        let now = Clock {
            unix_ms: 1_700_000_000_123,
        };
        for encoding in [BodyEncoding::Json, BodyEncoding::Form] {
            let (lanes, base) = (4, 7u64 << 32);
            let mut by_session: HashMap<u64, RoomLogout> = HashMap::new();
            let (mut requests, mut retries) = (0, 0);
            let mut reasons = HashMap::new();
            let mut roles = HashMap::new();
            let mut rooms = HashMap::new();
            let mut durations = Vec::new();
            let (mut high_seq, mut non_ascii) = (0, 0);
            for lane in 0..lanes {
                let mut traffic = Traffic::for_test(42, encoding, "s", base, lanes, lane, 0.2);
                for _ in 0..5_000 {
                    let mut body = Vec::new();
                    let pick = traffic.next(now, &mut body);
                    let (fields, logout) = receive(&body, encoding, now);
                    assert!(fields.get("session_id").unwrap().is_string());
                    assert_eq!(logout.session_id, traffic.session_id(pick.k));
                    requests += 1;
                    if pick.retry {
                        retries += 1;
                        // Same business fields as the first delivery.
                        assert_eq!(by_session[&logout.session_id], logout);
                        continue;
                    }
                    assert!(by_session
                        .insert(logout.session_id, logout.clone())
                        .is_none());
                    *reasons.entry(logout.reason.unwrap()).or_insert(0) += 1;
                    *roles.entry(logout.user_role.unwrap()).or_insert(0) += 1;
                    *rooms.entry(logout.room_id.clone()).or_insert(0) += 1;
                    durations
                        .push((logout.logout_time - logout.login_time.unwrap()).num_milliseconds());
                    high_seq += usize::from(logout.room_seq.unwrap() > 1 << 63);
                    non_ascii += usize::from(!logout.user_nickname.unwrap().is_ascii());
                    assert!(logout.logout_time.timestamp_millis() <= now.unix_ms as i64);
                }
            }
            let unique = by_session.len();
            let share = f64::from(retries) / f64::from(requests);
            assert!((0.18..0.22).contains(&share), "retry share {share}");
            assert_eq!(unique, requests as usize - retries as usize);
            // Session ids: distinct (checked on insert) and inside the run's range.
            assert!(by_session
                .keys()
                .all(|&id| (base..base + SESSION_SPAN).contains(&id)));

            let count = |m: &HashMap<i32, i32>, k| *m.get(&k).unwrap_or(&0) as f64 / unique as f64;
            for code in 0..=4 {
                assert!(count(&reasons, code) > 0.01, "reason {code}: {reasons:?}");
            }
            assert!(count(&reasons, 0) > 0.6, "{reasons:?}");
            assert_eq!(roles.len(), 3, "{roles:?}");
            assert!(
                count(&roles, 2) > 0.8 && count(&roles, 4) < 0.06,
                "{roles:?}"
            );
            // Skewed rooms: the busiest room has many logouts, most rooms a few.
            let busiest = *rooms.values().max().unwrap();
            assert!(busiest as f64 > 0.05 * unique as f64, "busiest {busiest}");
            assert!(rooms.len() > 1_000, "{} rooms", rooms.len());
            durations.sort_unstable();
            let median = durations[durations.len() / 2];
            assert!((60_000..900_000).contains(&median), "median {median} ms");
            assert!(durations[0] >= 1_000 && *durations.last().unwrap() > 3_600_000);
            assert!(high_seq > unique / 4 && non_ascii > unique / 10);
        }
    }

    #[test]
    fn same_seed_and_clock_give_the_same_bytes() {
        let now = Clock {
            unix_ms: 1_700_000_000_000,
        };
        let bodies = |seed| {
            let mut traffic = Traffic::for_test(seed, BodyEncoding::Form, "s", 0, 1, 0, 0.3);
            (0..100)
                .map(|_| {
                    let mut body = Vec::new();
                    traffic.next(now, &mut body);
                    body
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(bodies(1), bodies(1));
        assert_ne!(bodies(1), bodies(2));
        let distinct: HashSet<_> = bodies(1).into_iter().collect();
        assert_eq!(
            distinct.len(),
            100,
            "retries carry a new nonce and signature"
        );
    }

    #[test]
    fn ledger_maps_session_ids_to_lanes() {
        let mut lanes = vec![Lane::default(), Lane::default(), Lane::default()];
        lanes[1].generated = 3;
        lanes[1].ack(0);
        lanes[1].ack(2);
        lanes[2].generated = 70;
        lanes[2].ack(69);
        let ledger = Ledger { base: 100, lanes };
        assert_eq!(ledger.session_id(1, 2), 107);
        assert!(ledger.was_acknowledged(101) && ledger.was_acknowledged(107));
        assert!(ledger.was_sent(104) && !ledger.was_acknowledged(104));
        assert!(!ledger.was_sent(100) && !ledger.was_sent(99) && !ledger.was_sent(110));
        assert_eq!(ledger.acknowledged_unique(), 3);
        assert_eq!(ledger.unique_sent(), 73);
        let acked: Vec<u64> = ledger.acknowledged().collect();
        assert_eq!(acked, vec![101, 107, 100 + 69 * 3 + 2]);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let us: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&us, 0.5), Duration::from_micros(50));
        assert_eq!(percentile(&us, 0.99), Duration::from_micros(99));
        assert_eq!(percentile(&us, 1.0), Duration::from_micros(100));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }
}
