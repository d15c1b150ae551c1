//! The dashboard: off without a token, closed to a missing or wrong one, the `?token=` to
//! cookie exchange, the JSON it reads on seeded data, and the page itself rendered by a real
//! headless Chromium (which also leaves a screenshot under `target/`).

use crate::common;

use std::time::Duration;

use chrono::{Days, NaiveDate, Utc};
use common::browser::{attribute_of, chromium, screenshot_path};
use common::{test_verifier, vendor_sample, TestApp};
use reqwest::header;
use reqwest::StatusCode;
use serde_json::{json, Value};
use zegolog::dashboard::{DashboardToken, DashboardTokenError, COOKIE_NAME};
use zegolog::http::AppState;
use zegolog::store::Store;

const TOKEN: &str = "dashboard-test-token-0123456789";

/// Session durations (s) of app 1, by index within a day: one per readable histogram bin from
/// 1–5 s to 1–2 h, each far (> 1%) from a bin edge.
const DURATIONS_S: [i64; 10] = [3, 12, 45, 100, 200, 420, 900, 1_500, 3_000, 5_400];
/// Logout reason codes, by the same index.
const REASONS: [i64; 10] = [0, 1, 0, 2, 0, 3, 0, 4, 1, 0];
const REASON_NAMES: [&str; 5] = [
    "normal",
    "heartbeat_timeout",
    "connection_lost",
    "kicked_out",
    "token_expired",
];

/// One seeded logout.
#[derive(Debug, Clone)]
struct Session {
    appid: i64,
    day: NaiveDate,
    duration_s: i64,
    reason: i64,
}

/// App 1: seven days ending yesterday, 4 sessions on the first day up to 10 on the last, all
/// logging in within the minute 10:00 UTC (so the day's peak is its session count). App 2: two
/// days of three sessions, one of them with its logout before its login (a bad clock).
fn plan(today: NaiveDate) -> Vec<Session> {
    let mut sessions = Vec::new();
    for i in 0..7u64 {
        let day = today - Days::new(7 - i);
        for j in 0..(4 + i as usize) {
            sessions.push(Session {
                appid: 1,
                day,
                duration_s: DURATIONS_S[j],
                reason: REASONS[j],
            });
        }
    }
    for back in [3, 2] {
        for duration_s in [60, 600, -5] {
            sessions.push(Session {
                appid: 2,
                day: today - Days::new(back),
                duration_s,
                reason: 2,
            });
        }
    }
    sessions
}

fn callback(index: usize, within_day: i64, session: &Session) -> Value {
    let login_ms = session
        .day
        .and_hms_opt(10, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_millis()
        + within_day * 1_000;
    let mut callback = vendor_sample();
    callback["appid"] = json!(session.appid.to_string());
    callback["session_id"] = json!(index.to_string());
    callback["user_account"] = json!(format!("user-{index}"));
    callback["room_id"] = json!(["room-a", "room-b", "room-c"][index % 3]);
    callback["login_time"] = json!(login_ms.to_string());
    callback["logout_time"] = json!((login_ms + session.duration_s * 1_000).to_string());
    callback["reason"] = json!(session.reason.to_string());
    callback
}

/// A server with the dashboard on, over a database seeded by signed callbacks, rollups compacted.
async fn seeded_app() -> (TestApp, Vec<Session>, NaiveDate) {
    let pool = common::migrated_pool().await;
    let state = AppState::new(test_verifier(600), Store::from_pool(pool.clone()));
    let app =
        TestApp::serve_with_dashboard(state, DashboardToken::parse(TOKEN).unwrap(), pool).await;
    let today = Utc::now().date_naive();
    let sessions = plan(today);
    let mut within_day = std::collections::HashMap::new();
    for (index, session) in sessions.iter().enumerate() {
        let seq = within_day.entry((session.appid, session.day)).or_insert(0);
        common::deliver(&app, &callback(index, *seq, session)).await;
        *seq += 1;
    }
    sqlx::query("SELECT zegolog_compact_rollups()")
        .execute(&app.pool)
        .await
        .unwrap();
    (app, sessions, today)
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn get_json(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.expect("sending the request");
    let status = response.status();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("answer is not JSON ({e}): {text:?}"));
    (status, body)
}

async fn api(app: &TestApp, path_and_query: &str) -> Value {
    let (status, body) = get_json(app.client.get(app.url(path_and_query)).bearer_auth(TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{path_and_query}: {body}");
    body
}

fn range_query(appid: i64, from: NaiveDate, to: NaiveDate) -> String {
    format!("appid={appid}&from={from}&to={to}")
}

#[tokio::test]
async fn dashboard_is_off_without_a_configured_token() {
    let app = TestApp::spawn().await;
    for path in [
        "/dashboard",
        "/dashboard?token=dashboard-test-token-0123456789",
        "/dashboard/api/apps",
        "/dashboard/assets/dashboard.js",
    ] {
        let (status, body) = get_json(app.client.get(app.url(path)).bearer_auth(TOKEN)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body["code"], "not_found", "{path}");
    }
}

#[test]
fn tokens_too_short_to_be_safe_are_refused_at_configuration() {
    let error = DashboardToken::parse("short-token").unwrap_err();
    assert_eq!(error, DashboardTokenError::TooShort(11));
    assert!(
        error.to_string().contains("at least 16 characters"),
        "{error}"
    );
    assert!(DashboardToken::parse("").is_err());
    assert!(DashboardToken::parse("has a space in the middle").is_err());
    assert!(DashboardToken::parse(TOKEN).is_ok());
}

#[tokio::test]
async fn missing_or_wrong_token_is_refused_with_401_and_no_data() {
    let (app, _, _) = seeded_app().await;
    let client = no_redirects();
    let paths = [
        "/dashboard",
        "/dashboard/api/apps",
        "/dashboard/api/histogram?appid=1",
        "/dashboard/assets/dashboard.js",
    ];
    for path in paths {
        let (status, body) = get_json(client.get(app.url(path))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(body["code"], "missing_token", "{path}");
        assert!(body["message"].as_str().unwrap().contains("Bearer"));

        let wrong = [
            client
                .get(app.url(path))
                .bearer_auth("dashboard-test-token-012345678X"),
            client.get(app.url(path)).bearer_auth(""),
            client
                .get(app.url(path))
                .header(header::AUTHORIZATION, format!("Basic {TOKEN}")),
            client
                .get(app.url(path))
                .header(header::COOKIE, format!("{COOKIE_NAME}={TOKEN}")),
            client.get(app.url(&format!(
                "{path}{}token=dashboard-test-token-0123456788",
                if path.contains('?') { "&" } else { "?" }
            ))),
        ];
        for request in wrong {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
            assert!(response.headers().get(header::SET_COOKIE).is_none());
            assert!(response.headers()[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Bearer"));
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["code"], "bad_token", "{path}");
            assert_eq!(body.as_object().unwrap().len(), 2, "only code and message");
        }
    }

    // A browser asking for the page gets a small HTML page with a token form instead.
    let response = client
        .get(app.url("/dashboard"))
        .header(header::ACCEPT, "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = response.text().await.unwrap();
    assert!(html.contains(r#"name="token""#), "{html}");
    assert!(!html.contains("chart-histogram"));
}

#[tokio::test]
async fn token_in_the_url_is_traded_for_a_cookie_and_removed_from_the_url() {
    let (app, _, _) = seeded_app().await;
    let client = no_redirects();

    let response = client
        .get(app.url(&format!("/dashboard?appid=1&token={TOKEN}&from=2024-01-01")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        response.headers()[header::LOCATION],
        "dashboard?appid=1&from=2024-01-01"
    );
    let set_cookie = response.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/dashboard", "Max-Age="] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "plain http: {set_cookie}");
    assert!(
        !set_cookie.contains(TOKEN),
        "the cookie holds a digest, not the token"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    assert!(cookie.starts_with(&format!("{COOKIE_NAME}=")));

    // The cookie opens the page, its assets and the API.
    let page = client
        .get(app.url("/dashboard"))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .contains("default-src 'none'"));
    assert_eq!(page.headers()[header::CACHE_CONTROL], "no-store");
    assert!(page.text().await.unwrap().contains("chart-histogram"));
    let script = client
        .get(app.url("/dashboard/assets/dashboard.js"))
        .header(header::COOKIE, format!("other=1; {cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    assert!(script.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    let (status, body) = get_json(
        client
            .get(app.url("/dashboard/api/apps"))
            .header(header::COOKIE, &cookie),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["apps"][0]["appid"], 1);

    // Behind a TLS proxy the cookie is Secure too.
    let response = client
        .get(app.url(&format!("/dashboard?token={TOKEN}")))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[header::LOCATION], "dashboard");
    let set_cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(set_cookie.contains("; Secure"), "{set_cookie}");
}

#[tokio::test]
async fn api_answers_the_seeded_figures() {
    let (app, sessions, today) = seeded_app().await;
    let from = today - Days::new(7);
    let to = today - Days::new(1);
    let app1: Vec<&Session> = sessions.iter().filter(|s| s.appid == 1).collect();
    let query = range_query(1, from, to);

    // Apps, the busiest first, with the days they have data for.
    let apps = api(&app, "/dashboard/api/apps").await;
    assert_eq!(
        apps,
        json!({"apps": [
            {"appid": 1, "sessions": 49, "first_day": from, "last_day": to},
            {"appid": 2, "sessions": 6, "first_day": today - Days::new(3), "last_day": today - Days::new(2)},
        ]})
    );

    // Histogram: each duration in its bin, counted over the range.
    let body = api(&app, &format!("/dashboard/api/histogram?{query}")).await;
    assert_eq!(body["appid"], 1);
    assert_eq!(body["from"], json!(from));
    assert_eq!(body["to"], json!(to));
    let histogram = &body["histogram"];
    assert_eq!(histogram["sessions"], app1.len());
    let bins = histogram["bins"].as_array().unwrap();
    assert_eq!(bins.len(), 14, "no negative bin for app 1: {bins:?}");
    for bin in bins {
        let lo = bin["from_s"].as_f64().unwrap();
        let hi = bin["to_s"].as_f64().unwrap_or(f64::INFINITY);
        let expected = app1
            .iter()
            .filter(|s| (s.duration_s as f64) >= lo && (s.duration_s as f64) < hi)
            .count();
        assert_eq!(bin["sessions"], expected, "bin {}", bin["label"]);
    }
    assert_eq!(bins[1]["label"], "1–5 s");
    assert_eq!(bins[1]["sessions"], 7, "3 s sessions, one a day");
    let mut durations: Vec<i64> = app1.iter().map(|s| s.duration_s).collect();
    durations.sort();
    let nearest_rank =
        |q: f64| durations[((q * durations.len() as f64).ceil() as usize) - 1] as f64;
    assert_within_1_percent(histogram["p50_s"].as_f64().unwrap(), nearest_rank(0.5));
    assert_within_1_percent(histogram["p90_s"].as_f64().unwrap(), nearest_rank(0.9));

    // App 2's bad clock (a logout before its login) has no duration: implausible times stay
    // out of the histogram (issue 19), and its filter keeps app 1 out.
    let body = api(
        &app,
        &format!("/dashboard/api/histogram?{}", range_query(2, from, to)),
    )
    .await;
    assert_eq!(body["histogram"]["sessions"], 4);
    assert_eq!(body["histogram"]["bins"][0]["label"], "0–1 s");

    // Daily percentiles: one row per day with sessions, nearest rank within 1%.
    let body = api(&app, &format!("/dashboard/api/durations?{query}")).await;
    let days = body["days"].as_array().unwrap();
    assert_eq!(days.len(), 7);
    for (i, row) in days.iter().enumerate() {
        let n = 4 + i;
        assert_eq!(row["day"], json!(from + Days::new(i as u64)));
        assert_eq!(row["sessions"], n);
        let day: Vec<i64> = DURATIONS_S[..n].to_vec();
        let rank = |q: f64| day[((q * n as f64).ceil() as usize) - 1] as f64;
        assert_within_1_percent(row["p50_s"].as_f64().unwrap(), rank(0.5));
        assert_within_1_percent(row["p90_s"].as_f64().unwrap(), rank(0.9));
        assert_eq!(row["max_s"].as_f64().unwrap(), day[n - 1] as f64);
    }

    // Logouts per day and reason, exact.
    let body = api(&app, &format!("/dashboard/api/reasons?{query}")).await;
    let rows = body["rows"].as_array().unwrap();
    let mut expected = std::collections::BTreeMap::new();
    for s in &app1 {
        *expected
            .entry((
                s.day.to_string(),
                REASON_NAMES[s.reason as usize].to_owned(),
            ))
            .or_insert(0i64) += 1;
    }
    let got: std::collections::BTreeMap<(String, String), i64> = rows
        .iter()
        .map(|r| {
            (
                (
                    r["day"].as_str().unwrap().to_owned(),
                    r["reason"].as_str().unwrap().to_owned(),
                ),
                r["logouts"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, expected);
    for row in rows {
        let share = row["share"].as_f64().unwrap();
        assert!(share > 0.0 && share <= 1.0, "{row}");
    }

    // Peak concurrency: every session of a day is online at 10:00.
    let body = api(&app, &format!("/dashboard/api/concurrency?{query}")).await;
    let peaks: Vec<(Value, i64)> = body["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["day"].clone(), r["peak_users"].as_i64().unwrap()))
        .collect();
    let expected: Vec<(Value, i64)> = (0..7u64)
        .map(|i| (json!(from + Days::new(i)), 4 + i as i64))
        .collect();
    assert_eq!(peaks, expected);

    // A range without data is empty, not an error.
    let body = api(
        &app,
        "/dashboard/api/histogram?appid=1&from=2001-01-01&to=2001-01-31",
    )
    .await;
    assert_eq!(body["histogram"]["sessions"], 0);
    assert_eq!(body["histogram"]["p50_s"], Value::Null);
}

#[tokio::test]
async fn bad_filters_are_answered_400_in_our_format() {
    let (app, _, _) = seeded_app().await;
    for query in [
        "",
        "appid=abc",
        "appid=1&from=2024-13-01",
        "appid=1&from=2024-03-02&to=2024-03-01",
        "appid=1&from=2000-01-01&to=2024-01-01",
    ] {
        let (status, body) = get_json(
            app.client
                .get(app.url(&format!("/dashboard/api/durations?{query}")))
                .bearer_auth(TOKEN),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["code"], "invalid_query", "{query}");
    }
}

fn assert_within_1_percent(got: f64, exact: f64) {
    assert!(
        (got - exact).abs() <= 0.01 * exact.abs() + 1e-9,
        "{got} is not within 1% of {exact}"
    );
}

// ---- end to end, in a real browser ------------------------------------------------------------

#[tokio::test]
async fn page_renders_the_charts_with_data_in_headless_chromium() {
    let (app, sessions, today) = seeded_app().await;
    let from = today - Days::new(7);
    let to = today - Days::new(1);
    // Opened once with the token, as a person would from a link: the server trades it for the
    // cookie and redirects; the page then fetches its data with that cookie.
    let url = app.url(&format!(
        "/dashboard?token={TOKEN}&{}",
        range_query(1, from, to)
    ));

    let dom = chromium(&url, &["--dump-dom"]).await;
    let body_tag = dom
        .find("<body")
        .map(|at| &dom[at..at + dom[at..].find('>').unwrap()]);
    assert!(
        body_tag.is_some_and(|tag| tag.contains(r#"data-state="ready""#)),
        "the page did not finish loading its data:\n{dom}"
    );
    let app1: Vec<&Session> = sessions.iter().filter(|s| s.appid == 1).collect();
    let points = |chart: &str| -> usize {
        attribute_of(&dom, chart, "data-points")
            .unwrap_or_else(|| panic!("{chart} has no data-points:\n{dom}"))
            .parse()
            .unwrap()
    };
    // One bar per non-empty bin (10 durations, 10 bins), two points a day, one segment per
    // day and reason present, one bar a day.
    assert_eq!(points("chart-histogram"), DURATIONS_S.len());
    assert_eq!(points("chart-durations"), 14);
    let mut day_reasons: Vec<_> = app1.iter().map(|s| (s.day, s.reason)).collect();
    day_reasons.sort();
    day_reasons.dedup();
    assert_eq!(points("chart-reasons"), day_reasons.len());
    assert_eq!(points("chart-concurrency"), 7);
    for card in [
        "card-histogram",
        "card-durations",
        "card-reasons",
        "card-concurrency",
    ] {
        assert_eq!(
            attribute_of(&dom, card, "data-state").as_deref(),
            Some("ready"),
            "{card}"
        );
    }
    assert!(
        dom.contains(&format!(r#"id="tile-sessions">{}<"#, app1.len())),
        "the sessions tile does not show {}",
        app1.len()
    );
    assert!(!dom.contains(TOKEN), "the token stays out of the page");

    let path = screenshot_path("dashboard-screenshot.png");
    let _ = std::fs::remove_file(&path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    chromium(
        &url,
        &[
            &format!("--screenshot={}", path.display()),
            "--window-size=1280,1600",
        ],
    )
    .await;
    let png = std::fs::read(&path).expect("chromium wrote no screenshot");
    assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
    assert!(png.len() > 20_000, "the screenshot is suspiciously small");
    println!("dashboard screenshot: {}", path.display());
}
