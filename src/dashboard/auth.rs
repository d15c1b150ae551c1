//! Access to the dashboard: the configured [`DashboardToken`] (kept only as digests, compared in
//! constant time) and the layer every dashboard route is behind. It lets a request through with
//! the token in `Authorization: Bearer` or in the cookie, trades `?token=` for that cookie with
//! a 303 to the same URL without it, refuses everything else (a small HTML form for a browser
//! opening a page), and adds the security headers to every answer.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::http::ApiError;

/// Tokens shorter than this are refused at start-up.
pub const MIN_TOKEN_CHARS: usize = 16;

/// The name of the cookie that keeps a browser signed in.
pub const COOKIE_NAME: &str = "zegolog_dashboard";

/// How long the cookie lasts (7 days); changing the token ends it sooner.
pub const COOKIE_MAX_AGE_SECS: u64 = 7 * 24 * 3600;

const UNAUTHORIZED_HTML: &str = include_str!("unauthorized.html");

const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
     frame-ancestors 'none'";

/// The configured dashboard token, kept only as digests: what a client presents is hashed and
/// compared in constant time. Its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct DashboardToken {
    digest: [u8; 32],
    cookie: String,
}

/// Why a dashboard token was refused at start-up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DashboardTokenError {
    #[error(
        "the dashboard token must have at least {MIN_TOKEN_CHARS} characters (it has {0}); \
         generate one with `openssl rand -hex 32`"
    )]
    TooShort(usize),
    #[error(
        "the dashboard token may only hold printable ASCII characters without spaces \
         (it travels in a header and a URL); generate one with `openssl rand -hex 32`"
    )]
    InvalidCharacter,
}

impl DashboardToken {
    /// Validates a configured token: at least [`MIN_TOKEN_CHARS`] printable ASCII characters,
    /// no spaces. The binary's `--dashboard-token` parses with it.
    pub fn parse(token: &str) -> Result<Self, DashboardTokenError> {
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(DashboardTokenError::InvalidCharacter);
        }
        if token.len() < MIN_TOKEN_CHARS {
            return Err(DashboardTokenError::TooShort(token.len()));
        }
        let cookie = hex::encode(Sha256::digest(
            [b"zegolog dashboard cookie\0".as_slice(), token.as_bytes()].concat(),
        ));
        Ok(Self {
            digest: Sha256::digest(token.as_bytes()).into(),
            cookie,
        })
    }

    /// Whether `given` is the token, in time independent of where they differ.
    fn matches(&self, given: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        digest.ct_eq(&self.digest).into()
    }

    /// Whether `given` is the value of the cookie this token sets.
    fn cookie_matches(&self, given: &str) -> bool {
        given.as_bytes().ct_eq(self.cookie.as_bytes()).into()
    }
}

impl std::fmt::Debug for DashboardToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DashboardToken(<redacted>)")
    }
}

impl std::str::FromStr for DashboardToken {
    type Err = DashboardTokenError;

    fn from_str(token: &str) -> Result<Self, Self::Err> {
        Self::parse(token)
    }
}

/// Lets a request through with the right token (header or cookie), trades `?token=` for the
/// cookie, refuses everything else; adds the security headers to every answer.
pub(super) async fn authorize(
    State(token): State<Arc<DashboardToken>>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = match check(&token, &request) {
        Ok(Access::Granted) => next.run(request).await,
        Ok(Access::SetCookie(cookie)) => redirect_without_token(request.uri(), &cookie),
        Err(error) => {
            let page = matches!(request.uri().path(), "/dashboard" | "/dashboard/incident");
            if page && accepts_html(request.headers()) {
                let mut response = (
                    error.status(),
                    [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                    UNAUTHORIZED_HTML,
                )
                    .into_response();
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer realm="zegolog dashboard""#),
                );
                response
            } else {
                error.into_response()
            }
        }
    };
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

enum Access {
    Granted,
    /// The right `?token=`: answer with this `Set-Cookie` and a redirect.
    SetCookie(String),
}

fn check(token: &DashboardToken, request: &Request) -> Result<Access, ApiError> {
    if let Some(given) = query_token(request.uri()) {
        return if token.matches(&given) {
            let secure = if came_over_https(request) {
                "; Secure"
            } else {
                ""
            };
            Ok(Access::SetCookie(format!(
                "{COOKIE_NAME}={}; Path=/dashboard; Max-Age={COOKIE_MAX_AGE_SECS}; HttpOnly; SameSite=Strict{secure}",
                token.cookie
            )))
        } else {
            Err(ApiError::BadToken)
        };
    }
    if let Some(value) = request.headers().get(header::AUTHORIZATION) {
        let given = value
            .to_str()
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        return match given {
            Some(given) if token.matches(given) => Ok(Access::Granted),
            _ => Err(ApiError::BadToken),
        };
    }
    match cookie(request.headers(), COOKIE_NAME) {
        Some(given) if token.cookie_matches(given) => Ok(Access::Granted),
        Some(_) => Err(ApiError::BadToken),
        None => Err(ApiError::MissingToken),
    }
}

/// The first `token` parameter of the query string, decoded.
fn query_token(uri: &Uri) -> Option<String> {
    uri.query()?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (decode_query_component(key) == "token").then(|| decode_query_component(value))
    })
}

fn decode_query_component(text: &str) -> String {
    percent_encoding::percent_decode_str(&text.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// 303 to the same resource without `token` in the query (relative, so that it also works
/// behind a proxy), setting the cookie.
fn redirect_without_token(uri: &Uri, set_cookie: &str) -> Response {
    let rest: Vec<&str> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|pair| {
            let key = pair.split_once('=').map_or(*pair, |(key, _)| key);
            !pair.is_empty() && decode_query_component(key) != "token"
        })
        .collect();
    let last_segment = uri.path().rsplit('/').next().unwrap_or("dashboard");
    let mut location = last_segment.to_owned();
    if !rest.is_empty() {
        location.push('?');
        location.push_str(&rest.join("&"));
    }
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    // Both values come from validated ASCII (a URI's path and query, a hex digest).
    if let (Ok(location), Ok(cookie)) = (
        HeaderValue::from_str(&location),
        HeaderValue::from_str(set_cookie),
    ) {
        headers.insert(header::LOCATION, location);
        headers.insert(header::SET_COOKIE, cookie);
    }
    response
}

/// Whether the client reached us over https: the TLS proxy in front says so.
fn came_over_https(request: &Request) -> bool {
    let headers = request.headers();
    let forwarded_proto = headers
        .get(HeaderName::from_static("x-forwarded-proto"))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"));
    let forwarded = headers
        .get(header::FORWARDED)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("proto=https"));
    forwarded_proto || forwarded || request.uri().scheme_str() == Some("https")
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim_matches('"'))
}

fn accepts_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_or_spaced_tokens_are_refused() {
        assert_eq!(
            DashboardToken::parse("too-short").unwrap_err(),
            DashboardTokenError::TooShort(9)
        );
        assert_eq!(
            DashboardToken::parse("").unwrap_err(),
            DashboardTokenError::TooShort(0)
        );
        assert_eq!(
            DashboardToken::parse("sixteen chars ok!").unwrap_err(),
            DashboardTokenError::InvalidCharacter
        );
        assert!(DashboardToken::parse("0123456789abcdef").is_ok());
    }

    #[test]
    fn token_matches_itself_only_and_debug_hides_it() {
        let token = DashboardToken::parse("0123456789abcdef").unwrap();
        assert!(token.matches("0123456789abcdef"));
        assert!(!token.matches("0123456789abcdeF"));
        assert!(!token.matches("0123456789abcdef0"));
        assert!(token.cookie_matches(&token.cookie.clone()));
        assert!(!token.cookie_matches("0123456789abcdef"));
        assert!(!format!("{token:?}").contains("0123"));
    }

    #[test]
    fn redirect_drops_the_token_and_keeps_the_rest() {
        let uri: Uri = "/dashboard?appid=1&token=abc%20d&from=2024-01-01"
            .parse()
            .unwrap();
        assert_eq!(query_token(&uri).as_deref(), Some("abc d"));
        let response = redirect_without_token(&uri, "c=1");
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            response.headers()[header::LOCATION],
            "dashboard?appid=1&from=2024-01-01"
        );
        let uri: Uri = "/dashboard/api/apps?token=x".parse().unwrap();
        assert_eq!(
            redirect_without_token(&uri, "c=1").headers()[header::LOCATION],
            "apps"
        );
    }
}
