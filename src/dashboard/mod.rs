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
//!
//! Here: the routes, the page and its assets, and the API's handlers, which answer errors as
//! every route does, with [`crate::http::ApiError`]. Beside
//! it: `auth.rs`, the token and the access layer every route is behind (header or cookie, the
//! `?token=` exchange, the security headers); `incident.rs`, the incident page and its API.

mod auth;
mod incident;

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{Days, NaiveDate};
use serde::Deserialize;
use serde_json::json;

use crate::http::{ApiError, AppState};
use crate::views::{self, days, days::Range};

use auth::authorize;
pub use auth::{
    DashboardToken, DashboardTokenError, COOKIE_MAX_AGE_SECS, COOKIE_NAME, MIN_TOKEN_CHARS,
};

/// The widest date range the API answers, in days.
pub const MAX_RANGE_DAYS: u64 = 731;

/// The range the page shows when none is asked for, in days.
pub const DEFAULT_RANGE_DAYS: u64 = 30;

const INDEX_HTML: &str = include_str!("index.html");
const DASHBOARD_JS: &str = include_str!("dashboard.js");
const DASHBOARD_CSS: &str = include_str!("dashboard.css");

/// The database the dashboard reads, once it is ready.
fn pool(state: &AppState) -> Result<&sqlx::PgPool, ApiError> {
    state
        .live()
        .store()
        .map(|store| store.pool())
        .ok_or(ApiError::NotReady)
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
    fn range(&self, today: NaiveDate) -> Result<Range, ApiError> {
        fn present(value: &Option<String>) -> Option<&str> {
            value.as_deref().map(str::trim).filter(|v| !v.is_empty())
        }
        let appid = present(&self.appid)
            .ok_or_else(|| {
                ApiError::InvalidQuery(
                    "appid is required: one of the appids of /dashboard/api/apps".into(),
                )
            })?
            .parse::<i64>()
            .map_err(|_| ApiError::InvalidQuery("appid must be an integer".into()))?;
        let date = |name: &str, v: &str| {
            NaiveDate::parse_from_str(v, "%Y-%m-%d")
                .map_err(|_| ApiError::InvalidQuery(format!("{name} must be a date as YYYY-MM-DD")))
        };
        let to = present(&self.to).map_or(Ok(today), |v| date("to", v))?;
        let from = match present(&self.from) {
            Some(v) => date("from", v)?,
            None => to
                .checked_sub_days(Days::new(DEFAULT_RANGE_DAYS - 1))
                .unwrap_or(NaiveDate::MIN),
        };
        if from > to {
            return Err(ApiError::InvalidQuery("from must not be after to".into()));
        }
        if (to - from).num_days() >= MAX_RANGE_DAYS as i64 {
            return Err(ApiError::InvalidQuery(format!(
                "the range may span at most {MAX_RANGE_DAYS} days"
            )));
        }
        Ok(Range { appid, from, to })
    }
}

type Filter = Result<Query<FilterParams>, QueryRejection>;

/// The range asked for, with "today" and the answer's days in the deployment's reporting
/// time zone (kept in the database), and that zone's name.
async fn range_of(state: &AppState, filter: Filter) -> Result<Zoned, ApiError> {
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
async fn api_apps(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let apps = days::apps(pool(&state)?).await?;
    Ok(Json(json!({ "apps": apps })))
}

/// `GET /dashboard/api/histogram`: `{"appid", "from", "to", "histogram": {"sessions", "p50_s",
/// "p90_s", "bins": [{"label", "from_s", "to_s", "sessions"}]}}`.
async fn api_histogram(
    State(state): State<AppState>,
    filter: Filter,
) -> Result<Json<serde_json::Value>, ApiError> {
    let zoned = range_of(&state, filter).await?;
    let histogram = days::histogram(pool(&state)?, zoned.range).await?;
    Ok(answer(zoned, "histogram", histogram))
}

/// `GET /dashboard/api/durations`: `{"appid", "from", "to", "days": [{"day", "sessions",
/// "avg_s", "p50_s", "p90_s", "p99_s", "max_s"}]}`, days without sessions left out.
async fn api_durations(
    State(state): State<AppState>,
    filter: Filter,
) -> Result<Json<serde_json::Value>, ApiError> {
    let zoned = range_of(&state, filter).await?;
    let days = days::durations(pool(&state)?, zoned.range).await?;
    Ok(answer(zoned, "days", days))
}

/// `GET /dashboard/api/reasons`: `{"appid", "from", "to", "rows": [{"day", "reason",
/// "logouts", "share"}]}`.
async fn api_reasons(
    State(state): State<AppState>,
    filter: Filter,
) -> Result<Json<serde_json::Value>, ApiError> {
    let zoned = range_of(&state, filter).await?;
    let rows = days::reasons(pool(&state)?, zoned.range).await?;
    Ok(answer(zoned, "rows", rows))
}

/// `GET /dashboard/api/concurrency`: `{"appid", "from", "to", "days": [{"day",
/// "peak_users"}]}`.
async fn api_concurrency(
    State(state): State<AppState>,
    filter: Filter,
) -> Result<Json<serde_json::Value>, ApiError> {
    let zoned = range_of(&state, filter).await?;
    let days = days::concurrency(pool(&state)?, zoned.range).await?;
    Ok(answer(zoned, "days", days))
}

#[cfg(test)]
mod tests {
    use super::*;

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
