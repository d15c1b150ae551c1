//! The one error type of the HTTP edge, and its JSON answer `{"code": "...", "message": "..."}`.
//!
//! Client errors carry a stable machine code and a sentence a person can act on. Internal errors
//! log their whole cause chain and answer an opaque 503, so the sender retries; a database
//! error's text never reaches a client.

use std::sync::Arc;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::callback::{FieldError, ParseError};
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
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error(transparent)]
    Field(#[from] FieldError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("this (timestamp, nonce, signature) was already used by a callback with another body; nothing was stored")]
    ReplayedSignature,
    #[error("{0}; the callback was not stored, retry later")]
    Unavailable(Arc<IngestError>),
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
            Self::Parse(ParseError::Empty) => "empty_body",
            Self::Parse(_) => "malformed_body",
            Self::Field(FieldError::Missing(_)) => "missing_field",
            Self::Field(_) => "invalid_field",
            Self::Auth(AuthError::UnknownAppid(_)) => "unknown_appid",
            Self::Auth(AuthError::BadSignature) => "bad_signature",
            Self::Auth(AuthError::StaleTimestamp { .. }) => "stale_timestamp",
            Self::ReplayedSignature => "replayed_signature",
            Self::Unavailable(e) => match **e {
                IngestError::SpoolFull => "spool_full",
                IngestError::ShuttingDown => "shutting_down",
                _ => "database_unavailable",
            },
            Self::NotFound => "not_found",
            Self::Internal => "internal_error",
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
            | Self::Parse(_)
            | Self::Field(_) => StatusCode::BAD_REQUEST,
            Self::Auth(_) | Self::ReplayedSignature => StatusCode::UNAUTHORIZED,
            Self::Unavailable(_) | Self::Internal => StatusCode::SERVICE_UNAVAILABLE,
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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Unavailable(cause) = &self {
            tracing::error!(error = %error_chain(&**cause), "callback not stored");
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
        if status == StatusCode::PAYLOAD_TOO_LARGE || status == StatusCode::REQUEST_TIMEOUT {
            // The rest of the body is not read: the connection cannot carry another request.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
        }
        response
    }
}
