//! What a run did: the requests and answers, the latencies, and what `--verify` found.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::ledger::Ledger;
use super::verify::Verification;

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

    pub(crate) fn requests_per_sec(&self) -> f64 {
        per_sec(self.requests, self.elapsed)
    }

    pub(crate) fn acknowledged_unique_per_sec(&self) -> f64 {
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

/// Nearest-rank percentile of sorted microseconds.
pub(super) fn percentile(sorted_us: &[u32], q: f64) -> Duration {
    if sorted_us.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted_us.len() as f64).ceil() as usize).clamp(1, sorted_us.len());
    Duration::from_micros(u64::from(sorted_us[rank - 1]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let us: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&us, 0.5), Duration::from_micros(50));
        assert_eq!(percentile(&us, 0.99), Duration::from_micros(99));
        assert_eq!(percentile(&us, 1.0), Duration::from_micros(100));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }
}
