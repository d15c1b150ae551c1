//! The one error type of the HTTP edge, for every route (the callback, health, the dashboard and
//! its API), and its JSON answer `{"code": "...", "message": "..."}`.
//!
//! Client errors carry a stable machine code and a sentence a person can act on. Internal errors
//! log their whole cause chain and answer an opaque 503 with `Retry-After`, so the sender
//! retries; a database error's text never reaches a client. What became of a callback that was
//! taken is not an error: it is an [`crate::outcome::Outcome`], with its own code and status.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::callback::{FieldError, ParseError, ReceiveError};
use crate::error_chain;
use crate::ingest::IngestError;
use crate::signature::AuthError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the body is larger than the {limit} bytes allowed")]
    PayloadTooLarge { limit: usize },
    #[error("the body could not be read")]
    UnreadableBody,
    #[error(
        "the request body did not arrive within {secs} s of its headers; the connection is closed"
    )]
    RequestTimeout { secs: u64 },
    #[error(
        "content type {0:?} is neither application/json nor application/x-www-form-urlencoded"
    )]
    UnsupportedContentType(String),
    #[error("content encoding {0:?} is not supported: send the body as is, or gzip it")]
    UnsupportedContentEncoding(String),
    #[error("the body does not decode as its Content-Encoding says: {0}")]
    InvalidContentEncoding(String),
    /// The body is not a callback zegolog takes (400), or not an authentic one (401).
    #[error(transparent)]
    Callback(#[from] ReceiveError),
    #[error("{0}; the callback was not stored, retry later")]
    Unavailable(Arc<IngestError>),
    #[error(
        "the dashboard needs its token: send `Authorization: Bearer <token>`, or open \
         /dashboard?token=<token> once in a browser"
    )]
    MissingToken,
    #[error("this is not the dashboard token")]
    BadToken,
    #[error("{0}")]
    InvalidQuery(String),
    #[error("the database did not answer; try again shortly")]
    Database(#[source] sqlx::Error),
    #[error("the database is not ready yet; try again shortly")]
    NotReady,
    #[error("no route for this method and path")]
    NotFound,
    #[error("zegolog failed while handling this request; it was not stored, retry later")]
    Internal,
}

impl ApiError {
    /// The stable machine code clients and metrics see.
    pub fn code(&self) -> &'static str {
        match self {
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::UnreadableBody => "unreadable_body",
            Self::RequestTimeout { .. } => "request_timeout",
            Self::UnsupportedContentType(_) => "unsupported_content_type",
            Self::UnsupportedContentEncoding(_) => "unsupported_content_encoding",
            Self::InvalidContentEncoding(_) => "invalid_content_encoding",
            Self::Callback(ReceiveError::Body(ParseError::Empty)) => "empty_body",
            Self::Callback(ReceiveError::Body(_)) => "malformed_body",
            Self::Callback(ReceiveError::Envelope(FieldError::Missing(_))) => "missing_field",
            Self::Callback(ReceiveError::Envelope(_)) => "invalid_field",
            Self::Callback(ReceiveError::Auth(AuthError::UnknownAppid(_))) => "unknown_appid",
            Self::Callback(ReceiveError::Auth(AuthError::BadSignature)) => "bad_signature",
            Self::Callback(ReceiveError::Auth(AuthError::StaleTimestamp { .. })) => {
                "stale_timestamp"
            }
            Self::Unavailable(e) => match **e {
                IngestError::SpoolFull => "spool_full",
                IngestError::ShuttingDown => "shutting_down",
                _ => "database_unavailable",
            },
            Self::NotFound => "not_found",
            Self::Internal => "internal_error",
            Self::MissingToken => "missing_token",
            Self::BadToken => "bad_token",
            Self::InvalidQuery(_) => "invalid_query",
            Self::Database(_) | Self::NotReady => "database_unavailable",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RequestTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::UnsupportedContentEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::UnreadableBody
            | Self::InvalidContentEncoding(_)
            | Self::UnsupportedContentType(_)
            | Self::InvalidQuery(_)
            | Self::Callback(ReceiveError::Body(_) | ReceiveError::Envelope(_)) => {
                StatusCode::BAD_REQUEST
            }
            Self::Callback(ReceiveError::Auth(_)) | Self::MissingToken | Self::BadToken => {
                StatusCode::UNAUTHORIZED
            }
            Self::Unavailable(_) | Self::Internal | Self::Database(_) | Self::NotReady => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::NotFound => StatusCode::NOT_FOUND,
        }
    }
}

/// The JSON body of every answer, success or not.
#[derive(Debug, Serialize)]
pub struct Answer {
    pub code: &'static str,
    pub message: String,
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::InvalidQuery(format!(
            "the query string is not valid: {}",
            rejection.body_text()
        ))
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        Self::Database(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            Self::Unavailable(cause) => {
                tracing::error!(error = %error_chain(&**cause), "callback not stored")
            }
            Self::Database(cause) => {
                tracing::error!(error = %error_chain(cause), "dashboard query failed")
            }
            _ => {}
        }
        let status = self.status();
        let mut response = (
            status,
            Json(Answer {
                code: self.code(),
                message: self.to_string(),
            }),
        )
            .into_response();
        let headers = response.headers_mut();
        if status == StatusCode::PAYLOAD_TOO_LARGE || status == StatusCode::REQUEST_TIMEOUT {
            // The rest of the body is not read: the connection cannot carry another request.
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
        }
        match self {
            Self::MissingToken => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer realm="zegolog dashboard""#),
                );
            }
            Self::BadToken => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(
                        r#"Bearer realm="zegolog dashboard", error="invalid_token""#,
                    ),
                );
            }
            _ => {}
        }
        response
    }
}
