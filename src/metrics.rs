//! Counters and histograms for `/metrics`, in the Prometheus text format.
//!
//! One registry per running app (not a global), so tests that run several apps in one process
//! each read their own figures.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::spool::SpoolStatus;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallbackLabels {
    pub event: String,
    /// stored, duplicate, quarantined, unavailable, or `rejected` with a reason.
    pub outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabels {
    /// The machine code of the error answered.
    pub reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TimeoutLabels {
    /// header, idle or request.
    pub kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReuseLabels {
    /// The configured `--on-signature-reuse` policy.
    pub policy: String,
    /// What was done: quarantined, over_bound (counted only), rejected, accepted.
    pub action: String,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub callbacks: Family<CallbackLabels, Counter>,
    pub rejected: Family<RejectLabels, Counter>,
    pub signature_reuse: Family<ReuseLabels, Counter>,
    batch_sizes: Histogram,
    commit_seconds: Histogram,
    spool_depth: Gauge,
    spool_bytes: Gauge,
    spool_degraded: Gauge,
    client_connections: Gauge,
    client_timeouts: Family<TimeoutLabels, Counter>,
}

/// Events with a label of their own; any other event is counted as `other`, so that a sender
/// cannot grow the label set without bound.
const KNOWN_EVENTS: [&str; 4] = ["room_logout", "room_login", "room_create", "room_close"];

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("zegolog");
        let callbacks = Family::<CallbackLabels, Counter>::default();
        registry.register(
            "callbacks",
            "Authenticated callbacks by event and outcome",
            callbacks.clone(),
        );
        let rejected = Family::<RejectLabels, Counter>::default();
        registry.register(
            "rejected_requests",
            "Requests answered with a client error, by reason",
            rejected.clone(),
        );
        let signature_reuse = Family::<ReuseLabels, Counter>::default();
        registry.register(
            "signature_reuse",
            "Callbacks whose (timestamp, nonce, signature) came first with another body, by policy and action",
            signature_reuse.clone(),
        );
        let batch_sizes = Histogram::new(exponential_buckets(1.0, 2.0, 12));
        registry.register(
            "batch_size",
            "Callbacks per database write (group commit)",
            batch_sizes.clone(),
        );
        let commit_seconds = Histogram::new(exponential_buckets(0.000_25, 2.0, 14));
        registry.register(
            "commit_seconds",
            "Time to write and commit one batch",
            commit_seconds.clone(),
        );
        let spool_depth = Gauge::default();
        registry.register(
            "spool_depth",
            "Callbacks waiting in the local spool for PostgreSQL",
            spool_depth.clone(),
        );
        let spool_bytes = Gauge::default();
        registry.register(
            "spool_bytes",
            "Bytes of callbacks waiting in the local spool",
            spool_bytes.clone(),
        );
        let spool_degraded = Gauge::default();
        registry.register(
            "spool_degraded",
            "1 while the spool's file failed and is not reopened yet (callbacks go around it)",
            spool_degraded.clone(),
        );
        let client_connections = Gauge::default();
        registry.register(
            "client_connections",
            "Open HTTP client connections",
            client_connections.clone(),
        );
        let client_timeouts = Family::<TimeoutLabels, Counter>::default();
        registry.register(
            "client_timeouts",
            "Client connections closed by the header or idle timeout, and requests answered 408 by the request timeout",
            client_timeouts.clone(),
        );
        Self {
            registry,
            callbacks,
            rejected,
            signature_reuse,
            batch_sizes,
            commit_seconds,
            spool_depth,
            spool_bytes,
            spool_degraded,
            client_connections,
            client_timeouts,
        }
    }
}

impl Metrics {
    pub fn callback(&self, event: &str, outcome: &str) {
        let event = if KNOWN_EVENTS.contains(&event) {
            event
        } else {
            "other"
        };
        self.callbacks
            .get_or_create(&CallbackLabels {
                event: event.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn rejected(&self, reason: &str) {
        self.rejected
            .get_or_create(&RejectLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub fn signature_reuse(&self, policy: &str, action: &str) {
        self.signature_reuse
            .get_or_create(&ReuseLabels {
                policy: policy.to_owned(),
                action: action.to_owned(),
            })
            .inc();
    }

    pub fn batch_size(&self, size: usize) {
        self.batch_sizes.observe(size as f64);
    }

    pub fn commit_seconds(&self, took: std::time::Duration) {
        self.commit_seconds.observe(took.as_secs_f64());
    }

    pub fn spool_status(&self, status: &SpoolStatus) {
        self.spool_depth
            .set(status.entries.try_into().unwrap_or(i64::MAX));
        self.spool_bytes
            .set(status.bytes.try_into().unwrap_or(i64::MAX));
        self.spool_degraded.set(i64::from(status.fault.is_some()));
    }

    pub fn client_connection_opened(&self) {
        self.client_connections.inc();
    }

    pub fn client_connection_closed(&self) {
        self.client_connections.dec();
    }

    /// `kind` is `header`, `idle` or `request`.
    pub fn client_timeout(&self, kind: &'static str) {
        self.client_timeouts
            .get_or_create(&TimeoutLabels {
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// The whole registry in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
