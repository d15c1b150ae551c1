//! `/dashboard`: a page of charts for ops and analysts, and the JSON under `/dashboard/api/` it
//! reads.
//!
//! The page is a few files embedded in the binary (`src/dashboard/`: HTML, CSS and plain
//! JavaScript that draws inline SVG): no front-end build step, nothing fetched from outside, so
//! it works on a machine without internet. `/dashboard/incident` is the incident page (the
//! last hours in minutes), in `src/dashboard/incident.rs`. The figures come from the views
//! through [`crate::views`] ([`views::days`], [`views::incident`]), which holds the SQL and knows
//! nothing of HTTP; this module only answers their rows as JSON.
//!
//! # Access
//! - Off unless a token is configured (`--dashboard-token` / `ZEGOLOG_DASHBOARD_TOKEN`): then
//!   the routes do not exist and answer 404 like any unknown path. A token shorter than
//!   [`MIN_TOKEN_CHARS`] is refused at start-up ([`DashboardToken::parse`]).
//! - Every dashboard route, the page, its assets and the API alike, needs the token:
//!   `Authorization: Bearer <token>`, or the cookie set by opening any dashboard URL once with
//!   `?token=<token>`: that answer is a 303 to the same URL without the token, setting an
//!   HttpOnly, SameSite=Strict cookie scoped to `/dashboard` (`Secure` when the request came
//!   over https, as told by `X-Forwarded-Proto` or `Forwarded` from a TLS proxy). The cookie holds
//!   a digest of the token, not the token; changing the token signs every browser out.
//! - Tokens are compared in constant time (SHA-256 digests compared with `subtle`).
//! - A missing or wrong token: 401 with `{"code": "missing_token" | "bad_token", "message"}`;
//!   the page itself answers a small HTML 401 with a token form instead when the client accepts
//!   `text/html` (a browser).
//! - Every answer carries `Cache-Control: no-store`, `Referrer-Policy: no-referrer` and a strict
//!   `Content-Security-Policy` (only this origin's script, style and data).

mod incident;

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{Days, NaiveDate};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error_chain;
use crate::http::{Answer, AppState};
use crate::views::{self, days, days::Range};

/// Tokens shorter than this are refused at start-up.
pub const MIN_TOKEN_CHARS: usize = 16;

/// The name of the cookie that keeps a browser signed in.
pub const COOKIE_NAME: &str = "zegolog_dashboard";

/// How long the cookie lasts (7 days); changing the token ends it sooner.
pub const COOKIE_MAX_AGE_SECS: u64 = 7 * 24 * 3600;

/// The widest date range the API answers, in days.
pub const MAX_RANGE_DAYS: u64 = 731;

/// The range the page shows when none is asked for, in days.
pub const DEFAULT_RANGE_DAYS: u64 = 30;

const INDEX_HTML: &str = include_str!("dashboard/index.html");
const DASHBOARD_JS: &str = include_str!("dashboard/dashboard.js");
const DASHBOARD_CSS: &str = include_str!("dashboard/dashboard.css");
const UNAUTHORIZED_HTML: &str = include_str!("dashboard/unauthorized.html");

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
    /// no spaces. Usable as a clap `value_parser`.
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

/// The dashboard's errors, answered as `{"code", "message"}` like the rest of the API.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
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
}

/// The database the dashboard reads, once it is ready.
fn pool(state: &AppState) -> Result<&sqlx::PgPool, DashboardError> {
    state
        .backend()
        .store()
        .map(|store| store.pool())
        .ok_or(DashboardError::NotReady)
}

impl DashboardError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::BadToken => "bad_token",
            Self::InvalidQuery(_) => "invalid_query",
            Self::Database(_) | Self::NotReady => "database_unavailable",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingToken | Self::BadToken => StatusCode::UNAUTHORIZED,
            Self::InvalidQuery(_) => StatusCode::BAD_REQUEST,
            Self::Database(_) | Self::NotReady => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl From<sqlx::Error> for DashboardError {
    fn from(error: sqlx::Error) -> Self {
        Self::Database(error)
    }
}

impl From<QueryRejection> for DashboardError {
    fn from(rejection: QueryRejection) -> Self {
        Self::InvalidQuery(format!(
            "the query string is not valid: {}",
            rejection.body_text()
        ))
    }
}

impl IntoResponse for DashboardError {
    fn into_response(self) -> Response {
        if let Self::Database(cause) = &self {
            tracing::error!(error = %error_chain(cause), "dashboard query failed");
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
            Self::Database(_) | Self::NotReady => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
            }
            Self::InvalidQuery(_) => {}
        }
        response
    }
}

/// The dashboard's routes, all behind `token`. [`crate::server::app`] merges them when a token
/// is configured; without one they do not exist.
pub fn routes(token: DashboardToken) -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(page))
        .route("/dashboard/assets/dashboard.js", get(script))
        .route("/dashboard/assets/dashboard.css", get(stylesheet))
        .route("/dashboard/api/apps", get(api_apps))
        .route("/dashboard/api/histogram", get(api_histogram))
        .route("/dashboard/api/durations", get(api_durations))
        .route("/dashboard/api/reasons", get(api_reasons))
        .route("/dashboard/api/concurrency", get(api_concurrency))
        .merge(incident::routes())
        .route_layer(middleware::from_fn_with_state(Arc::new(token), authorize))
}

/// Lets a request through with the right token (header or cookie), trades `?token=` for the
/// cookie, refuses everything else; adds the security headers to every answer.
async fn authorize(
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

fn check(token: &DashboardToken, request: &Request) -> Result<Access, DashboardError> {
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
            Err(DashboardError::BadToken)
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
            _ => Err(DashboardError::BadToken),
        };
    }
    match cookie(request.headers(), COOKIE_NAME) {
        Some(given) if token.cookie_matches(given) => Ok(Access::Granted),
        Some(_) => Err(DashboardError::BadToken),
        None => Err(DashboardError::MissingToken),
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

/// `GET /dashboard`.
async fn page() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        INDEX_HTML,
    )
}

async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        DASHBOARD_JS,
    )
}

async fn stylesheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        DASHBOARD_CSS,
    )
}

/// The query string of the API: `appid` (required), `from` and `to` (UTC days `YYYY-MM-DD`,
/// inclusive; by default the last [`DEFAULT_RANGE_DAYS`] days up to today). Empty values count
/// as absent, as an HTML form sends them.
#[derive(Debug, Deserialize)]
struct FilterParams {
    appid: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

impl FilterParams {
    fn range(&self, today: NaiveDate) -> Result<Range, DashboardError> {
        fn present(value: &Option<String>) -> Option<&str> {
            value.as_deref().map(str::trim).filter(|v| !v.is_empty())
        }
        let appid = present(&self.appid)
            .ok_or_else(|| {
                DashboardError::InvalidQuery(
                    "appid is required: one of the appids of /dashboard/api/apps".into(),
                )
            })?
            .parse::<i64>()
            .map_err(|_| DashboardError::InvalidQuery("appid must be an integer".into()))?;
        let date = |name: &str, v: &str| {
            NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| {
                DashboardError::InvalidQuery(format!("{name} must be a date as YYYY-MM-DD"))
            })
        };
        let to = present(&self.to).map_or(Ok(today), |v| date("to", v))?;
        let from = match present(&self.from) {
            Some(v) => date("from", v)?,
            None => to
                .checked_sub_days(Days::new(DEFAULT_RANGE_DAYS - 1))
                .unwrap_or(NaiveDate::MIN),
        };
        if from > to {
            return Err(DashboardError::InvalidQuery(
                "from must not be after to".into(),
            ));
        }
        if (to - from).num_days() >= MAX_RANGE_DAYS as i64 {
            return Err(DashboardError::InvalidQuery(format!(
                "the range may span at most {MAX_RANGE_DAYS} days"
            )));
        }
        Ok(Range { appid, from, to })
    }
}

type Filter = Result<Query<FilterParams>, QueryRejection>;

/// The range asked for, with "today" and the answer's days in the deployment's reporting
/// time zone (kept in the database), and that zone's name.
async fn range_of(state: &AppState, filter: Filter) -> Result<Zoned, DashboardError> {
    let params = filter?.0;
    let (time_zone, today) = views::today(pool(state)?).await?;
    Ok(Zoned {
        range: params.range(today)?,
        time_zone,
    })
}

/// A range of days and the time zone they are days of.
struct Zoned {
    range: Range,
    time_zone: String,
}

fn answer(zoned: Zoned, key: &str, value: impl serde::Serialize) -> Json<serde_json::Value> {
    let range = zoned.range;
    let mut body = json!({
        "appid": range.appid,
        "from": range.from,
        "to": range.to,
        "time_zone": zoned.time_zone,
    });
    body[key] = json!(value);
    Json(body)
}

/// `GET /dashboard/api/apps`: `{"apps": [{"appid", "sessions", "first_day", "last_day"}]}`,
/// the busiest first.
async fn api_apps(
    State(state): State<AppState>,
) -> Result<Json<serde_json::Value>, DashboardError> {
    let apps = days::apps(pool(&state)?).await?;
    Ok(Json(json!({ "apps": apps })))
}

/// `GET /dashboard/api/histogram`: `{"appid", "from", "to", "histogram": {"sessions", "p50_s",
/// "p90_s", "bins": [{"label", "from_s", "to_s", "sessions"}]}}`.
async fn api_histogram(
    State(state): State<AppState>,
    filter: Filter,
) -> Result<Json<serde_json::Value>, DashboardError> {
    let zoned = range_of(&state, filter).await?;
    let histogram = days::histogram(pool(&state)?, zoned.range).await?;
    Ok(answer(zoned, "histogram", histogram))
}

/// `GET /dashboard/api/durations`: `{"appid", "from", "to", "days": [{"day", "sessions",
/// "avg_s", "p50_s", "p90_s", "p99_s", "max_s"}]}`, days without sessions left out.
async fn api_durations(
    State(state): State<AppState>,
    filter: Filter,
) -> Result<Json<serde_json::Value>, DashboardError> {
    let zoned = range_of(&state, filter).await?;
    let days = days::durations(pool(&state)?, zoned.range).await?;
    Ok(answer(zoned, "days", days))
}

/// `GET /dashboard/api/reasons`: `{"appid", "from", "to", "rows": [{"day", "reason",
/// "logouts", "share"}]}`.
async fn api_reasons(
    State(state): State<AppState>,
    filter: Filter,
) -> Result<Json<serde_json::Value>, DashboardError> {
    let zoned = range_of(&state, filter).await?;
    let rows = days::reasons(pool(&state)?, zoned.range).await?;
    Ok(answer(zoned, "rows", rows))
}

/// `GET /dashboard/api/concurrency`: `{"appid", "from", "to", "days": [{"day",
/// "peak_users"}]}`.
async fn api_concurrency(
    State(state): State<AppState>,
    filter: Filter,
) -> Result<Json<serde_json::Value>, DashboardError> {
    let zoned = range_of(&state, filter).await?;
    let days = days::concurrency(pool(&state)?, zoned.range).await?;
    Ok(answer(zoned, "days", days))
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
    fn parse_works_as_a_clap_value_parser() {
        use clap::Parser;
        #[derive(Debug, Parser)]
        struct Args {
            #[arg(long, value_parser = DashboardToken::parse)]
            dashboard_token: Option<DashboardToken>,
        }
        let args = Args::try_parse_from(["zegolog", "--dashboard-token", "0123456789abcdef"]);
        assert!(args.unwrap().dashboard_token.is_some());
        assert!(Args::try_parse_from(["zegolog"])
            .unwrap()
            .dashboard_token
            .is_none());
        let error = Args::try_parse_from(["zegolog", "--dashboard-token", "short"]).unwrap_err();
        assert!(error.to_string().contains("at least 16"), "{error}");
        let error = Args::try_parse_from(["zegolog", "--dashboard-token", ""]).unwrap_err();
        assert!(error.to_string().contains("at least 16"), "{error}");
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

    #[test]
    fn filter_defaults_to_the_last_30_days_and_checks_its_values() {
        let today = NaiveDate::from_ymd_opt(2024, 3, 31).unwrap();
        let params = |appid: &str, from: &str, to: &str| FilterParams {
            appid: Some(appid.into()),
            from: Some(from.into()),
            to: Some(to.into()),
        };
        let range = params("7", "", "").range(today).unwrap();
        assert_eq!(range.appid, 7);
        assert_eq!(range.to, today);
        assert_eq!(range.from, NaiveDate::from_ymd_opt(2024, 3, 2).unwrap());
        assert!(params("", "", "").range(today).is_err());
        assert!(params("x", "", "").range(today).is_err());
        assert!(params("1", "2024-02-30", "").range(today).is_err());
        assert!(params("1", "2024-03-02", "2024-03-01")
            .range(today)
            .is_err());
        assert!(params("1", "2020-01-01", "2024-01-01")
            .range(today)
            .is_err());
    }
}
