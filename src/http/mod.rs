//! The HTTP adapter: the callback handler, health and metrics, the edge every route is served
//! behind, and the JSON answers.
//!
//! A thin layer between the contract (`callback`, `signature`) and the store: it reads the body,
//! asks the contract what it holds and whether it is authentic, asks the store to keep it, and
//! turns each answer into a status and a JSON body. [`serve`] is the accept loop that serves it
//! with client timeouts and a connection bound.
//!
//! It knows nothing of the dashboard: the dashboard builds on [`AppState`] and [`Answer`], and
//! [`crate::server::app`] mounts both behind [`edge`].

mod error;
pub mod serve;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;

pub use error::{Answer, ApiError};
pub use serve::{serve, ClientLimits};

use crate::callback::{self, Encoding, Origin};
use crate::database::{LiveStore, StoreState};
use crate::ingest::{BatchConfig, Ingest};
use crate::metrics::Metrics;
use crate::outcome::Outcome;
use crate::signature::Verifier;
use crate::store::Store;

/// Bodies above this size are refused with 413: real callbacks are well under 2 KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Everything a request handler needs. One `Arc`: axum clones the state for every request.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    verifier: Verifier,
    ingest: Ingest,
    metrics: Arc<Metrics>,
}

impl AppState {
    /// State with default group commit and no spool: an outage answers 503. The writer tasks
    /// run until the state is dropped.
    pub fn new(verifier: Verifier, store: Store) -> Self {
        let metrics = Arc::new(Metrics::default());
        let (ingest, _tasks) = Ingest::start(store, None, BatchConfig::default(), metrics.clone());
        Self::with_ingest(verifier, ingest, metrics)
    }

    /// State over running ingest tasks; the database is the one `ingest` writes to (which
    /// may not be ready yet).
    pub fn with_ingest(verifier: Verifier, ingest: Ingest, metrics: Arc<Metrics>) -> Self {
        Self(Arc::new(Shared {
            verifier,
            ingest,
            metrics,
        }))
    }

    /// The database, once it is ready, and the state of the way there.
    pub fn live(&self) -> &LiveStore {
        self.0.ingest.live()
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.0.metrics
    }
}

/// The callback side's routes: `POST /zego/callback`, `/healthz`, `/readyz` and `/metrics`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/zego/callback", post(receive_callback))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// `routes` behind the edge every route of zegolog is served behind: an unknown path answers
/// our JSON 404, bodies are bounded by [`MAX_BODY_BYTES`], a panic is answered 500, and every
/// request gets a request id (kept from the client or made) and a trace span.
pub fn edge(routes: Router<AppState>, state: AppState) -> Router {
    let x_request_id = header::HeaderName::from_static("x-request-id");
    routes
        .fallback(|| async { ApiError::NotFound })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
        .layer(CatchPanicLayer::custom(|_| ApiError::Internal.into_response()))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                let request_id = request
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(x_request_id.clone()))
        .layer(SetRequestIdLayer::new(x_request_id, RandomRequestId))
}

/// A random (version 4) UUID for each request without one, from the thread's random number
/// generator: `tower_http`'s `MakeRequestUuid` asks the kernel for every one (a `getrandom`
/// system call per request).
#[derive(Debug, Clone, Copy)]
struct RandomRequestId;

impl MakeRequestId for RandomRequestId {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        let mut text = uuid::Uuid::encode_buffer();
        HeaderValue::from_str(id.hyphenated().encode_lower(&mut text))
            .ok()
            .map(RequestId::new)
    }
}

/// `POST /zego/callback`: every event type arrives here. What became of the callback is
/// answered by its [`Outcome`] (its code, message and status); a request that is not taken, by
/// its [`ApiError`].
async fn receive_callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (status, code, message) = match handle_callback(&state, &headers, body).await {
        Ok(outcome) => (outcome.status(), outcome.code(), outcome.message()),
        Err(error) => {
            state.metrics().rejected(error.code());
            if error.status().is_client_error() {
                tracing::info!(code = error.code(), %error, "callback refused");
            }
            return error.into_response();
        }
    };
    if status.is_client_error() {
        state.metrics().rejected(code);
        tracing::info!(code, message, "callback refused");
    }
    let answer = Answer {
        code,
        message: message.to_owned(),
    };
    (status, Json(answer)).into_response()
}

/// The body, undone of its transfer encoding, through [`callback::receive`], then to the
/// ingest path.
async fn handle_callback(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Outcome, ApiError> {
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        },
        _ => ApiError::UnreadableBody,
    })?;
    let body = decode_content_encoding(headers, body)?;
    let encoding = match headers.get(header::CONTENT_TYPE) {
        None => Encoding::sniff(&body),
        Some(value) => {
            let text = String::from_utf8_lossy(value.as_bytes());
            Encoding::from_content_type(&text)
                .ok_or_else(|| ApiError::UnsupportedContentType(text.into_owned()))?
        }
    };
    let origin = Origin::Network {
        verifier: &state.0.verifier,
        now: chrono::Utc::now().timestamp(),
    };
    let received = callback::receive(&body, encoding, origin)?;
    state
        .0
        .ingest
        .submit(received)
        .await
        .map_err(ApiError::Unavailable)
}

/// Undoes a `Content-Encoding` (none, `identity`, `gzip` or `x-gzip`; anything else is 415).
/// A gzip body is inflated up to [`MAX_BODY_BYTES`] and no further: a body that inflates
/// beyond is refused with 413 as soon as the limit is passed, without inflating the rest.
fn decode_content_encoding(headers: &HeaderMap, body: Bytes) -> Result<Bytes, ApiError> {
    use std::io::Read;
    let Some(value) = headers.get(header::CONTENT_ENCODING) else {
        return Ok(body);
    };
    let text = String::from_utf8_lossy(value.as_bytes()).trim().to_owned();
    if text.is_empty() || text.eq_ignore_ascii_case("identity") {
        return Ok(body);
    }
    if !(text.eq_ignore_ascii_case("gzip") || text.eq_ignore_ascii_case("x-gzip")) {
        return Err(ApiError::UnsupportedContentEncoding(text));
    }
    let mut inflated = Vec::with_capacity(body.len().saturating_mul(4).min(MAX_BODY_BYTES));
    flate2::read::MultiGzDecoder::new(&body[..])
        .take(MAX_BODY_BYTES as u64 + 1)
        .read_to_end(&mut inflated)
        .map_err(|e| ApiError::InvalidContentEncoding(e.to_string()))?;
    if inflated.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    Ok(Bytes::from(inflated))
}

/// `GET /healthz`: the process is up and serving.
async fn healthz() -> Json<Answer> {
    Json(Answer {
        code: "ok",
        message: "zegolog is up".into(),
    })
}

/// `GET /readyz`: 200 while callbacks can be acknowledged now (written to the database, or
/// else spooled), 503 when they cannot; the body says which state each part is in.
async fn readyz(State(state): State<AppState>) -> Response {
    let live = state.live().state();
    let database = match state.live().store() {
        Some(store) => store.ping().await,
        None => false,
    };
    let spool = state.0.ingest.spool();
    let spool_status = spool.map(|s| s.status());
    let spool_has_room = spool.is_some_and(|s| s.has_room());
    let status = if database || spool_has_room {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let spool_state = match (&spool_status, spool_has_room) {
        (None, _) => "off",
        (Some(s), _) if s.fault.is_some() => "degraded",
        (Some(s), false) if s.recovering => "recovering",
        (Some(_), true) => "ok",
        (Some(_), false) => "full",
    };
    let database_state = match (&live, database) {
        (StoreState::Ready, true) => "ready",
        (StoreState::Ready, false) => "unreachable",
        (other, _) => other.name(),
    };
    let message = match (database, spool_has_room) {
        (true, _) if spool_state == "degraded" => {
            "the database takes writes; the spool is degraded (its file failed) and written around"
        }
        (true, _) => "the database takes writes",
        (false, true) if live != StoreState::Ready => {
            "the database is not ready yet (connecting, migrating); callbacks go to the spool"
        }
        (false, true) => "the database does not answer; callbacks go to the spool",
        (false, false) => "the database does not answer and the spool cannot take callbacks",
    };
    let body = serde_json::json!({
        "code": if status.is_success() { "ready" } else { "not_ready" },
        "message": message,
        "database": database,
        "database_state": database_state,
        "database_error": match &live {
            StoreState::Retrying { error } => Some(error.as_str()),
            _ => None,
        },
        "spool": spool_state,
        "spool_error": spool_status.as_ref().and_then(|s| s.fault.as_deref()),
        "spool_depth": spool_status.as_ref().map(|s| s.entries),
        "spool_bytes": spool_status.as_ref().map(|s| s.bytes),
        "spool_max_bytes": spool.map(|s| s.max_bytes()),
    });
    (status, Json(body)).into_response()
}

/// `GET /metrics`: Prometheus text format. `zegolog_database_ready` is measured now, as
/// `/readyz` measures it.
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let ready = match state.live().store() {
        Some(store) => store.ping().await,
        None => false,
    };
    state.metrics().database_ready(ready);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics().render(),
    )
}
