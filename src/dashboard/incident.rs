//! `/dashboard/incident`: the last hours of one app for ops during an incident, and the JSON
//! under `/dashboard/api/incident/` it reads. Behind the dashboard's token like every dashboard
//! route (the routes are merged under [`super::routes`]'s authorisation layer). The figures come
//! from [`crate::views::incident`].
//!
//! Every API takes `appid` (required), `last` (`1h`, `6h`, `24h`, or minutes such as `90m`;
//! default `6h`), `bucket` (`1m` or `5m`; default `1m`) and `until` (an RFC 3339 time; default
//! now): the window is `last` up to `until` rounded up to a bucket boundary.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::pool;
use crate::http::ApiError;
use crate::http::AppState;
use crate::views::incident::{self, Bucket, Window};
use crate::views::By;

const INCIDENT_HTML: &str = include_str!("incident.html");
const INCIDENT_JS: &str = include_str!("incident.js");

/// Rooms and users listed at most.
const MAX_TOP: u32 = 100;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/dashboard/incident", get(page))
        .route("/dashboard/assets/incident.js", get(script))
        .route("/dashboard/api/incident/reasons", get(api_reasons))
        .route("/dashboard/api/incident/online", get(api_online))
        .route("/dashboard/api/incident/offenders", get(api_offenders))
}

async fn page() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        INCIDENT_HTML,
    )
}

async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        INCIDENT_JS,
    )
}

/// The query string of the incident API. Empty values count as absent.
#[derive(Debug, Deserialize)]
struct WindowParams {
    appid: Option<String>,
    last: Option<String>,
    bucket: Option<String>,
    until: Option<String>,
    top: Option<String>,
}

fn present(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl WindowParams {
    fn window(&self, now: DateTime<Utc>) -> Result<Window, ApiError> {
        let invalid = ApiError::InvalidQuery;
        let appid = present(&self.appid)
            .ok_or_else(|| {
                invalid("appid is required: one of the appids of /dashboard/api/apps".into())
            })?
            .parse::<i64>()
            .map_err(|_| invalid("appid must be an integer".into()))?;
        let last = incident::parse_last(present(&self.last).unwrap_or("6h")).map_err(invalid)?;
        let bucket = Bucket::parse(present(&self.bucket).unwrap_or("1m")).map_err(invalid)?;
        let until = match present(&self.until) {
            Some(v) => DateTime::parse_from_rfc3339(v)
                .map_err(|_| {
                    invalid("until must be an RFC 3339 time such as 2024-05-01T10:00:00Z".into())
                })?
                .with_timezone(&Utc),
            None => now,
        };
        Ok(Window::ending(appid, last, bucket, until))
    }

    fn top(&self) -> Result<u32, ApiError> {
        match present(&self.top) {
            None => Ok(10),
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_TOP).contains(n))
                .ok_or_else(|| {
                    ApiError::InvalidQuery(format!("top must be between 1 and {MAX_TOP}"))
                }),
        }
    }
}

type Params = Result<Query<WindowParams>, QueryRejection>;

fn answer(w: &Window, mut body: Value) -> Json<Value> {
    body["appid"] = json!(w.appid);
    body["from"] = json!(w.from);
    body["to"] = json!(w.to);
    body["bucket"] = json!(w.bucket.as_str());
    body["bucket_s"] = json!(w.bucket.seconds());
    body["generated_at"] = json!(Utc::now());
    Json(body)
}

/// `GET /dashboard/api/incident/reasons`: `{"appid", "from", "to", "bucket", "bucket_s",
/// "generated_at", "rows": [{"bucket_start", "reason", "logouts", "bucket_logouts", "share",
/// "usual_share", "lift"}], "totals": [{"reason", "logouts", "share", "usual_share", "lift",
/// "peak_lift"}], "usual": {"days", "from_day", "to_day", "logouts", "reasons": [{"reason",
/// "logouts", "usual_share"}]}, "spike": a row or null}`.
async fn api_reasons(
    State(state): State<AppState>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    let w = params?.0.window(Utc::now())?;
    let reasons = incident::reasons(pool(&state)?, &w).await?;
    let first_day = w.from.date_naive();
    Ok(answer(
        &w,
        json!({
            "rows": reasons.rows,
            "totals": reasons.totals,
            "usual": {
                "days": incident::USUAL_DAYS,
                "from_day": first_day - chrono::Days::new(incident::USUAL_DAYS as u64),
                "to_day": first_day - chrono::Days::new(1),
                "logouts": reasons.usual_logouts,
                "reasons": reasons.usual,
            },
            "spike": reasons.spike,
        }),
    ))
}

/// `GET /dashboard/api/incident/online`: `{..., "buckets": [{"bucket_start", "users_online",
/// "fewest_online"}]}`: the most and fewest sessions online in any minute of each bucket.
async fn api_online(
    State(state): State<AppState>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    let w = params?.0.window(Utc::now())?;
    let buckets = incident::online(pool(&state)?, &w).await?;
    Ok(answer(&w, json!({ "buckets": buckets })))
}

/// `GET /dashboard/api/incident/offenders`: `{..., "rooms": [{"key", "abnormal",
/// "heartbeat_timeout", "connection_lost", "kicked_out", "token_expired", "others",
/// "last_abnormal_at"}], "users": [...]}`, the most abnormal disconnects first (`top`, default
/// 10). `others` is the users a room lost, the rooms a user was dropped from.
async fn api_offenders(
    State(state): State<AppState>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    let params = params?.0;
    let w = params.window(Utc::now())?;
    let top = params.top()?;
    let pool = pool(&state)?;
    let (rooms, users) = tokio::try_join!(
        incident::offenders(pool, &w, By::Room, top),
        incident::offenders(pool, &w, By::User, top),
    )?;
    Ok(answer(&w, json!({ "rooms": rooms, "users": users })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(appid: &str, last: &str, bucket: &str, until: &str) -> WindowParams {
        WindowParams {
            appid: Some(appid.into()),
            last: Some(last.into()),
            bucket: Some(bucket.into()),
            until: Some(until.into()),
            top: None,
        }
    }

    #[test]
    fn defaults_are_six_hours_in_minutes_up_to_now() {
        let now: DateTime<Utc> = "2024-05-01T10:00:30Z".parse().unwrap();
        let w = params("7", "", "", "").window(now).unwrap();
        assert_eq!(w.appid, 7);
        assert_eq!(w.bucket, Bucket::OneMinute);
        assert_eq!(
            w.to,
            "2024-05-01T10:01:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!((w.to - w.from).num_hours(), 6);
        let w = params("7", "1h", "5m", "2024-04-01T00:00:00+08:00")
            .window(now)
            .unwrap();
        assert_eq!(
            w.to,
            "2024-03-31T16:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        for bad in [
            params("", "", "", ""),
            params("x", "", "", ""),
            params("1", "48h", "", ""),
            params("1", "", "2m", ""),
            params("1", "", "", "yesterday"),
        ] {
            assert!(bad.window(now).is_err(), "{bad:?}");
        }
    }
}
