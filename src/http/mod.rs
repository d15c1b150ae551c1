//! The HTTP adapter: routes, the callback handler, health and metrics.
//!
//! A thin layer between the contract (`callback`, `signature`) and the store: it reads the body,
//! asks the contract what it holds and whether it is authentic, asks the store to keep it, and
//! turns each answer into a status and a JSON body.

mod error;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use error::{error_chain, Answer, ApiError};

use crate::callback::{Encoding, Envelope, Fields, Received};
use crate::metrics::Metrics;
use crate::signature::Verifier;
use crate::store::Store;

/// Bodies above this size are refused with 413: real callbacks are well under 2 KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Events with a metrics label of their own; any other is counted as `other`.
const KNOWN_EVENTS: [&str; 4] = ["room_logout", "room_login", "room_create", "room_close"];

/// Everything a request handler needs, cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub verifier: Arc<Verifier>,
    pub store: Store,
    pub metrics: Arc<Metrics>,
}

impl AppState {
    pub fn new(verifier: Verifier, store: Store) -> Self {
        Self {
            verifier: Arc::new(verifier),
            store,
            metrics: Arc::new(Metrics::default()),
        }
    }
}

/// The whole service: the binary serves this router and the tests drive the very same one.
pub fn app(state: AppState) -> Router {
    let x_request_id = header::HeaderName::from_static("x-request-id");
    Router::new()
        .route("/zego/callback", post(receive_callback))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
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
        .layer(SetRequestIdLayer::new(x_request_id, MakeRequestUuid))
}

/// `POST /zego/callback`: every event type arrives here.
async fn receive_callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match handle_callback(&state, &headers, body).await {
        Ok((event, answer)) => {
            state.metrics.callback(event_label(&event), answer.code);
            (StatusCode::OK, Json(answer)).into_response()
        }
        Err(error) => {
            state.metrics.rejected(error.code());
            if error.status().is_client_error() {
                tracing::info!(code = error.code(), %error, "callback refused");
            }
            error.into_response()
        }
    }
}

async fn handle_callback(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(String, Answer), ApiError> {
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        },
        _ => ApiError::UnreadableBody,
    })?;
    let encoding = match headers.get(header::CONTENT_TYPE) {
        None => Encoding::sniff(&body),
        Some(value) => {
            let text = String::from_utf8_lossy(value.as_bytes());
            Encoding::from_content_type(&text)
                .ok_or_else(|| ApiError::UnsupportedContentType(text.into_owned()))?
        }
    };
    let fields = Fields::parse(&body, encoding)?;
    let envelope = Envelope::from_fields(&fields)?;
    state
        .verifier
        .verify(&envelope, chrono::Utc::now().timestamp())?;
    if state.verifier.is_insecure() {
        tracing::warn!(
            event = %envelope.event,
            appid = envelope.appid,
            "signature NOT verified (--insecure-skip-verify): this callback may be forged"
        );
    }

    let received = Received::new(&envelope, &fields, encoding);
    if let crate::callback::Payload::Refused(reason) = &received.payload {
        tracing::warn!(event = %envelope.event, appid = envelope.appid, %reason, "authentic callback quarantined");
    }
    let outcome = state
        .store
        .write(std::slice::from_ref(&received))
        .await
        .map_err(ApiError::Unavailable)?[0];
    let message = match outcome {
        crate::store::Outcome::Stored => "stored".to_owned(),
        crate::store::Outcome::Duplicate => "already stored by an earlier delivery".to_owned(),
        crate::store::Outcome::Quarantined => {
            "authentic but not usable; kept for investigation, do not retry".to_owned()
        }
    };
    Ok((
        envelope.event,
        Answer {
            code: outcome.as_str(),
            message,
        },
    ))
}

fn event_label(event: &str) -> &str {
    if KNOWN_EVENTS.contains(&event) {
        event
    } else {
        "other"
    }
}

/// `GET /healthz`: the process is up and serving.
async fn healthz() -> Json<Answer> {
    Json(Answer {
        code: "ok",
        message: "zegolog is up".into(),
    })
}

/// `GET /readyz`: the database takes writes now.
async fn readyz(State(state): State<AppState>) -> Response {
    if state.store.ping().await {
        Json(Answer {
            code: "ready",
            message: "the database answers".into(),
        })
        .into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Answer {
                code: "not_ready",
                message: "the database does not answer".into(),
            }),
        )
            .into_response()
    }
}

/// `GET /metrics`: Prometheus text format.
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
