//! What `zegolog loadtest` sends, where, and what it checks afterwards ([`LoadtestConfig`]; its
//! flags are the binary's).

use std::time::Duration;

/// How a load runs.
#[derive(Debug, Clone)]
pub struct LoadtestConfig {
    /// The callback URL of the zegolog deployment to load.
    pub url: String,
    /// The callback secret zegolog verifies `appid` with: every request is signed with it.
    pub secret: String,
    /// The appid the callbacks name.
    pub appid: i64,
    /// Concurrent connections; each sends one request after another.
    pub connections: u32,
    /// Stop sending after this many seconds (10 when neither this nor `count` is given).
    pub duration_secs: Option<f64>,
    /// Stop after this many requests in all, instead of after a duration.
    pub count: Option<u64>,
    /// Share of requests (0 to 1) that are retries of an earlier callback.
    pub duplicates: f64,
    pub encoding: BodyEncoding,
    /// After the load, check that the database at this URL (the one zegolog writes to) holds
    /// every acknowledged logout exactly once and no logout this run never sent.
    pub verify_database_url: Option<String>,
    /// How long that check waits for acknowledged logouts to appear, in seconds.
    pub verify_timeout_secs: u64,
    /// Give up on a request after this many seconds (counted as a transport error).
    pub request_timeout_secs: u64,
    /// Seed for reproducible traffic (session ids still get a fresh range every run).
    pub seed: Option<u64>,
}

impl LoadtestConfig {
    /// How `zegolog bench` runs the load: unique JSON logouts (no retries) for `duration` over
    /// `connections`, then the check against `database_url`.
    pub fn for_bench(
        url: String,
        secret: String,
        connections: usize,
        duration: Duration,
        database_url: String,
    ) -> Self {
        Self {
            url,
            secret,
            appid: 1,
            connections: u32::try_from(connections).unwrap_or(u32::MAX).max(1),
            duration_secs: Some(duration.as_secs_f64()),
            count: None,
            duplicates: 0.0,
            encoding: BodyEncoding::Json,
            verify_database_url: Some(database_url),
            verify_timeout_secs: 120,
            request_timeout_secs: 30,
            seed: None,
        }
    }
}

/// How callback bodies are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEncoding {
    /// `application/json`, every value a JSON string.
    Json,
    /// `application/x-www-form-urlencoded`, values percent-encoded.
    Form,
}

impl BodyEncoding {
    pub(super) fn mime(self) -> &'static str {
        match self {
            BodyEncoding::Json => "application/json",
            BodyEncoding::Form => "application/x-www-form-urlencoded",
        }
    }
}
