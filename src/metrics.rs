//! Counters and histograms for `/metrics`, in the Prometheus text format.
//!
//! One registry per running app (not a global), so tests that run several apps in one process
//! each read their own figures.
//!
//! The alert rules in `deploy/prometheus/zegolog-rules.yml` read these series (their unit tests
//! in `deploy/prometheus/tests/`); renaming one breaks them.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use std::collections::HashMap;
use std::sync::Mutex;

use crate::callback::RoomLogout;
use crate::spool::SpoolStatus;

/// Appids with a label of their own in `zegolog_logouts_total` unless configured otherwise.
pub const DEFAULT_MAX_APPIDS: usize = 50;

/// The `appid` label of logouts of the apps beyond the bound.
pub const OTHER_APPS: &str = "other";

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

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LogoutLabels {
    /// The appid, or `other` beyond the first `max_appids` apps seen.
    pub appid: String,
    /// The decoded reason: normal, heartbeat_timeout, connection_lost, kicked_out,
    /// token_expired or unknown.
    pub reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteErrorLabels {
    /// `live` (a batch of requests) or `drain` (a batch from the spool).
    pub path: String,
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
    logouts: Family<LogoutLabels, Counter>,
    /// The reason series of each appid labelled on its own so far (at most `max_appids`), and
    /// of the `other` apps (`None`), in the order of [`RoomLogout::REASONS`] then unknown: made
    /// once per app, so that counting a logout takes no allocation.
    logout_series: Mutex<HashMap<Option<i64>, Vec<Counter>>>,
    max_appids: usize,
    write_errors: Family<WriteErrorLabels, Counter>,
    database_ready: Gauge,
    spool_max_bytes: Gauge,
}

/// Events with a label of their own; any other event is counted as `other`, so that a sender
/// cannot grow the label set without bound.
const KNOWN_EVENTS: [&str; 4] = ["room_logout", "room_login", "room_create", "room_close"];

impl Default for Metrics {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_APPIDS)
    }
}

impl Metrics {
    /// The registry, with at most `max_appids` appids labelled on their own in
    /// `zegolog_logouts_total` (the first seen since start; the rest are `other`).
    pub fn new(max_appids: usize) -> Self {
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
        let logouts = Family::<LogoutLabels, Counter>::default();
        registry.register(
            "logouts",
            "Logouts stored (not duplicates), by appid and decoded reason; appids beyond the configured bound are `other`",
            logouts.clone(),
        );
        let write_errors = Family::<WriteErrorLabels, Counter>::default();
        registry.register(
            "write_errors",
            "Batches the database failed to write (then spooled, or answered 503), by path",
            write_errors.clone(),
        );
        let database_ready = Gauge::default();
        registry.register(
            "database_ready",
            "1 while the database is migrated and answers, 0 while callbacks wait in the spool or are refused",
            database_ready.clone(),
        );
        let spool_max_bytes = Gauge::default();
        registry.register(
            "spool_max_bytes",
            "The spool's size bound in bytes (0: no spool)",
            spool_max_bytes.clone(),
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
            logouts,
            logout_series: Mutex::new(HashMap::new()),
            max_appids,
            write_errors,
            database_ready,
            spool_max_bytes,
        }
    }

    /// Counts a logout that was stored (call it for `Stored` outcomes only, never duplicates).
    /// An app's first logout creates its six reason series at zero, so that a reason's rate
    /// and share exist (as 0) before it first occurs.
    pub fn logout_stored(&self, logout: &RoomLogout) {
        let reasons = || {
            RoomLogout::REASONS
                .iter()
                .chain([&RoomLogout::UNKNOWN_REASON])
        };
        let mut series = self.logout_series.lock().unwrap();
        let labelled = series.len() - usize::from(series.contains_key(&None));
        let app = Some(logout.appid)
            .filter(|appid| series.contains_key(&Some(*appid)) || labelled < self.max_appids);
        let counters = series.entry(app).or_insert_with(|| {
            let appid = app.map_or_else(|| OTHER_APPS.to_owned(), |appid| appid.to_string());
            reasons()
                .map(|reason| {
                    self.logouts
                        .get_or_create(&LogoutLabels {
                            appid: appid.clone(),
                            reason: (*reason).to_owned(),
                        })
                        .clone()
                })
                .collect()
        });
        let reason = logout.reason_name();
        if let Some(i) = reasons().position(|name| *name == reason) {
            counters[i].inc();
        }
    }

    /// A batch the database did not take; `path` is `live` or `drain`.
    pub fn write_error(&self, path: &'static str) {
        self.write_errors
            .get_or_create(&WriteErrorLabels {
                path: path.to_owned(),
            })
            .inc();
    }

    /// Whether the database is migrated and answers now (set at each scrape).
    pub fn database_ready(&self, ready: bool) {
        self.database_ready.set(i64::from(ready));
    }

    /// The spool's size bound, once at start.
    pub fn spool_max_bytes(&self, max_bytes: u64) {
        self.spool_max_bytes
            .set(max_bytes.try_into().unwrap_or(i64::MAX));
    }

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
