//! The incident view: `/dashboard/api/incident/*` on known signed callbacks (counts per bucket
//! and reason, lift against the usual share, users online, worst rooms and users), the page in
//! a real headless Chromium (the spike, its reason and lift, the worst room; the URL state
//! round-trip; a screenshot under `target/`), and `zegolog report --last --bucket`.

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Days, NaiveDate, Utc};
use common::browser::{attribute_of, body_attribute, chromium, screenshot_path};
use common::{signed, test_verifier, vendor_sample, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use zegolog::dashboard::DashboardToken;
use zegolog::http::AppState;
use zegolog::report::{Format, IncidentQuery, IncidentReport, SectionName};
use zegolog::store::Store;
use zegolog::views::incident::{Bucket, Window};

const TOKEN: &str = "incident-test-token-0123456789";

/// One logout: room, user, logout minute:second of the incident day (or a baseline day), reason.
struct Logout {
    room: &'static str,
    user: String,
    at: DateTime<Utc>,
    reason: i64,
}

/// Sessions last 10 minutes.
const SESSION_S: i64 = 600;

/// The incident day: yesterday (UTC), taken once for the whole run, so that the seeded times,
/// the window and the expected answers agree even when a test runs across midnight.
fn day() -> NaiveDate {
    static DAY: std::sync::OnceLock<NaiveDate> = std::sync::OnceLock::new();
    *DAY.get_or_init(|| Utc::now().date_naive() - Days::new(1))
}

fn at(day: NaiveDate, h: u32, m: u32, s: u32) -> DateTime<Utc> {
    day.and_hms_opt(h, m, s).unwrap().and_utc()
}

/// The window of the tests: 11:00 to 12:00 UTC yesterday, in 5-minute buckets.
fn until() -> DateTime<Utc> {
    at(day(), 12, 0, 0)
}

/// Baseline two days before: 16 normal, 2 connection_lost, 2 heartbeat_timeout (usual shares
/// 0.8, 0.1, 0.1; no kicked_out). The window: at 11:02 8 normal and 1 heartbeat_timeout
/// (room-y); at 11:30-11:34 the spike: 8 connection_lost (5 in room-x, 3 in room-y) and
/// 2 normal; at 11:47 one kicked_out of user x0 (room-z), who also lost her connection.
fn plan() -> Vec<Logout> {
    let d = day();
    let base = d - Days::new(2);
    let mut logouts = Vec::new();
    let mut add = |room, user: String, at, reason| {
        logouts.push(Logout {
            room,
            user,
            at,
            reason,
        })
    };
    for i in 0..20u32 {
        let reason = match i {
            0..=15 => 0,
            16 | 17 => 2,
            _ => 1,
        };
        add("room-b", format!("b{i}"), at(base, 9, i, 0), reason);
    }
    for i in 0..8 {
        add("room-n", format!("n{i}"), at(d, 11, 2, i * 5), 0);
    }
    add("room-y", "h1".into(), at(d, 11, 2, 50), 1);
    for i in 0..5 {
        add("room-x", format!("x{i}"), at(d, 11, 30 + i, 10), 2);
    }
    for i in 0..3 {
        add("room-y", format!("y{i}"), at(d, 11, 32, 10 + i * 10), 2);
    }
    add("room-n", "n8".into(), at(d, 11, 33, 0), 0);
    add("room-n", "n9".into(), at(d, 11, 34, 0), 0);
    add("room-z", "x0".into(), at(d, 11, 47, 0), 3);
    logouts
}

fn callback(index: usize, logout: &Logout) -> Value {
    let logout_ms = logout.at.timestamp_millis();
    let mut callback = vendor_sample();
    callback["appid"] = json!("1");
    callback["session_id"] = json!((1000 + index).to_string());
    callback["room_id"] = json!(logout.room);
    callback["user_account"] = json!(logout.user);
    callback["login_time"] = json!((logout_ms - SESSION_S * 1000).to_string());
    callback["logout_time"] = json!(logout_ms.to_string());
    callback["reason"] = json!(logout.reason.to_string());
    callback
}

async fn seeded_app() -> TestApp {
    let pool = common::migrated_pool().await;
    let state = AppState::new(test_verifier(600), Store::from_pool(pool.clone()));
    let app =
        TestApp::serve_with_dashboard(state, DashboardToken::parse(TOKEN).unwrap(), pool).await;
    for (index, logout) in plan().iter().enumerate() {
        let (status, body) = app.post_json(&signed(callback(index, logout))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    app
}

fn window_query() -> String {
    format!(
        "appid=1&last=1h&bucket=5m&until={}",
        until().format("%Y-%m-%dT%H:%M:%SZ")
    )
}

async fn api(app: &TestApp, path: &str) -> Value {
    let response = app
        .client
        .get(app.url(&format!(
            "/dashboard/api/incident/{path}?{}",
            window_query()
        )))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    body
}

fn close(got: &Value, want: f64) -> bool {
    got.as_f64().is_some_and(|g| (g - want).abs() < 1e-9)
}

#[tokio::test]
async fn incident_api_answers_counts_lift_online_and_worst_rooms() {
    let app = seeded_app().await;
    let d = day();

    let body = api(&app, "reasons").await;
    assert_eq!(body["from"], json!(at(d, 11, 0, 0)));
    assert_eq!(body["to"], json!(at(d, 12, 0, 0)));
    assert_eq!(body["bucket_s"], 300);
    // Counts per bucket and reason, exact.
    let counts: BTreeMap<(String, String), i64> = body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let start: DateTime<Utc> = r["bucket_start"].as_str().unwrap().parse().unwrap();
            (
                (
                    start.format("%H:%M").to_string(),
                    r["reason"].as_str().unwrap().to_owned(),
                ),
                r["logouts"].as_i64().unwrap(),
            )
        })
        .collect();
    let want: BTreeMap<(String, String), i64> = [
        (("11:00", "normal"), 8),
        (("11:00", "heartbeat_timeout"), 1),
        (("11:30", "connection_lost"), 8),
        (("11:30", "normal"), 2),
        (("11:45", "kicked_out"), 1),
    ]
    .into_iter()
    .map(|((b, r), n)| ((b.to_owned(), r.to_owned()), n))
    .collect();
    assert_eq!(counts, want);

    // The usual share: two days before, 2 connection_lost of 20.
    assert_eq!(body["usual"]["logouts"], 20);
    assert_eq!(body["usual"]["from_day"], json!(d - Days::new(7)));
    assert_eq!(body["usual"]["to_day"], json!(d - Days::new(1)));
    let spike = &body["spike"];
    assert_eq!(spike["bucket_start"], json!(at(d, 11, 30, 0)));
    assert_eq!(spike["reason"], "connection_lost");
    assert_eq!(spike["logouts"], 8);
    assert_eq!(spike["bucket_logouts"], 10);
    assert!(close(&spike["share"], 0.8), "{spike}");
    assert!(close(&spike["usual_share"], 0.1), "{spike}");
    assert!(close(&spike["lift"], 8.0), "{spike}");

    // Over the window: 8 of 20 lost connections, four times the usual 10%; kicked_out is new.
    let totals = body["totals"].as_array().unwrap();
    let total = |reason: &str| totals.iter().find(|t| t["reason"] == reason).unwrap();
    assert_eq!(total("normal")["logouts"], 10);
    assert!(close(&total("normal")["lift"], 0.5 / 0.8));
    assert_eq!(total("connection_lost")["logouts"], 8);
    assert!(close(&total("connection_lost")["lift"], 4.0));
    assert!(close(&total("connection_lost")["peak_lift"], 8.0));
    assert_eq!(total("kicked_out")["usual_share"], Value::Null);
    assert_eq!(total("kicked_out")["lift"], Value::Null);

    // Users online: each session is online from its login minute to its logout minute.
    let body = api(&app, "online").await;
    let sessions: Vec<(i64, i64)> = plan()
        .iter()
        .filter(|l| l.at.date_naive() == d)
        .map(|l| {
            let out = l.at.timestamp() / 60;
            ((l.at.timestamp() - SESSION_S) / 60, out)
        })
        .collect();
    let online_at = |minute: i64| {
        sessions
            .iter()
            .filter(|(i, o)| *i <= minute && minute <= *o)
            .count() as i64
    };
    let buckets = body["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 12, "{body}");
    for b in buckets {
        let start: DateTime<Utc> = b["bucket_start"].as_str().unwrap().parse().unwrap();
        let minutes: Vec<i64> = (0..5).map(|k| start.timestamp() / 60 + k).collect();
        let most = minutes.iter().map(|m| online_at(*m)).max().unwrap();
        let fewest = minutes.iter().map(|m| online_at(*m)).min().unwrap();
        assert_eq!(b["users_online"], most, "{b}");
        assert_eq!(b["fewest_online"], fewest, "{b}");
    }
    let at_1130 = buckets
        .iter()
        .find(|b| b["bucket_start"] == json!(at(d, 11, 30, 0)))
        .unwrap();
    assert_eq!(
        at_1130["users_online"], 10,
        "the spike's sessions, all online"
    );

    // The worst rooms and users, with their counts by reason.
    let body = api(&app, "offenders").await;
    let rooms: Vec<(&str, i64, i64, i64, i64)> = body["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap(),
                r["abnormal"].as_i64().unwrap(),
                r["connection_lost"].as_i64().unwrap(),
                r["heartbeat_timeout"].as_i64().unwrap(),
                r["others"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rooms,
        [
            ("room-x", 5, 5, 0, 5),
            ("room-y", 4, 3, 1, 4),
            ("room-z", 1, 0, 0, 1)
        ]
    );
    let users = body["users"].as_array().unwrap();
    assert_eq!(users[0]["key"], "x0");
    assert_eq!(users[0]["abnormal"], 2);
    assert_eq!(users[0]["kicked_out"], 1);
    assert_eq!(users[0]["others"], 2, "two rooms");
    assert_eq!(users.len(), 9, "every user with an abnormal disconnect");
    assert_eq!(users[1]["key"], "h1");
}

#[tokio::test]
async fn incident_api_checks_its_window_and_needs_the_token() {
    let app = seeded_app().await;
    for query in [
        "last=1h",
        "appid=1&last=48h",
        "appid=1&bucket=10m",
        "appid=1&until=noon",
        "appid=1&top=0",
    ] {
        let response = app
            .client
            .get(app.url(&format!("/dashboard/api/incident/offenders?{query}")))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "invalid_query", "{query}");
    }
    for path in [
        "/dashboard/incident",
        "/dashboard/assets/incident.js",
        "/dashboard/api/incident/reasons?appid=1",
    ] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    // A window of one bucket of the spike, ending now by default, is allowed.
    let response = app
        .client
        .get(app.url("/dashboard/api/incident/reasons?appid=1&last=5m&bucket=1m"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn report_last_shows_buckets_lift_online_and_worst_rooms() {
    let app = seeded_app().await;
    let d = day();
    let query = IncidentQuery {
        appid: Some(1),
        last: Duration::from_secs(3600),
        bucket: Bucket::FiveMinutes,
        until: until() - chrono::Duration::seconds(1),
        top: 10,
    };
    let mut conn = app.pool.acquire().await.unwrap();
    let report = IncidentReport::load(&mut conn, &query).await.unwrap();
    assert_eq!(
        report.window,
        Window::ending(1, query.last, Bucket::FiveMinutes, until())
    );
    let render = |format, section| {
        let mut out = Vec::new();
        report.render(format, section, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    };

    let json: Value = serde_json::from_str(&render(Format::Json, None)).unwrap();
    assert_eq!(json["from"], format!("{d}T11:00:00.000Z"));
    assert_eq!(json["bucket"], "5m");
    let spike_row = json["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["reason"] == "connection_lost")
        .unwrap();
    assert_eq!(spike_row["bucket_start"], format!("{d}T11:30:00.000Z"));
    assert_eq!(spike_row["logouts"], 8);
    assert_eq!(spike_row["bucket_logouts"], 10);
    assert!(close(&spike_row["lift"], 8.0), "{spike_row}");
    let lift = &json["lift"][1];
    assert_eq!(lift["reason"], "connection_lost");
    assert!(close(&lift["lift"], 4.0), "{lift}");
    assert_eq!(json["rooms"][0]["room_id"], "room-x");
    assert_eq!(json["rooms"][0]["abnormal"], 5);
    assert_eq!(json["users"][0]["user_account"], "x0");
    assert_eq!(json["online"].as_array().unwrap().len(), 12);

    let table = render(Format::Table, None);
    assert!(
        table.contains(&format!(
            "incident view {d} 11:00 to {d} 12:00 UTC, 5m buckets"
        )),
        "{table}"
    );
    let spike_line = table
        .lines()
        .find(|l| l.contains("11:30:00") && l.contains("connection_lost"))
        .unwrap_or_else(|| panic!("{table}"));
    for text in ["8", "10", "80.0%", "10.0%", "×8.00"] {
        assert!(spike_line.contains(text), "{text} in {spike_line:?}");
    }
    assert!(
        table
            .lines()
            .any(|l| l.contains("kicked_out") && l.contains("new")),
        "{table}"
    );

    let csv = render(Format::Csv, Some(SectionName::Rooms));
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("appid,room_id,abnormal,heartbeat_timeout,connection_lost,kicked_out,token_expired,users,last_abnormal_at")
    );
    assert!(lines.next().unwrap().starts_with("1,room-x,5,0,5,0,0,5,"));
    let all = render(Format::Csv, None);
    for section in ["buckets", "lift", "online", "rooms", "users"] {
        assert!(all.contains(&format!("# section: {section}\r\n")), "{all}");
    }
}

// ---- in a real browser --------------------------------------------------------------------

#[tokio::test]
async fn incident_page_shows_the_spike_its_lift_and_the_worst_rooms_in_chromium() {
    let app = seeded_app().await;
    let d = day();
    // As pasted from an incident channel: the token once, the state in the query string.
    let until = until().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let url = app.url(&format!(
        "/dashboard/incident?token={TOKEN}&bucket=5m&appid=1&until={until}&last=1h"
    ));
    let dom = chromium(&url, &["--dump-dom"]).await;
    assert_eq!(
        body_attribute(&dom, "data-state").as_deref(),
        Some("ready"),
        "the page did not finish loading:\n{dom}"
    );

    // The spike: its bucket, its reason and its lift, written out and marked on the chart.
    assert_eq!(
        attribute_of(&dom, "spike", "data-bucket"),
        Some(format!("{d}T11:30:00.000Z"))
    );
    assert_eq!(
        attribute_of(&dom, "spike", "data-reason").as_deref(),
        Some("connection_lost")
    );
    assert_eq!(
        attribute_of(&dom, "spike", "data-lift").map(|l| l.parse::<f64>().unwrap().round()),
        Some(8.0)
    );
    assert!(
        dom.contains("Spike: connection_lost at 11:30–11:35 UTC, 8 of 10 logouts (80%, usually 10%): lift ×8.00"),
        "{dom}"
    );
    assert!(dom.contains(r#"class="spike-mark""#));
    // One segment per bucket and reason with logouts, one point per bucket of users online.
    assert_eq!(
        attribute_of(&dom, "chart-buckets", "data-points").as_deref(),
        Some("5")
    );
    assert_eq!(
        attribute_of(&dom, "chart-online", "data-points").as_deref(),
        Some("12")
    );
    // The worst rooms, in order, with their counts; the window's lift of connection_lost.
    assert_eq!(
        attribute_of(&dom, "table-rooms", "data-rows").as_deref(),
        Some("3")
    );
    let rooms = &dom[dom.find(r#"id="table-rooms""#).unwrap()..];
    let x = rooms.find("<td>room-x</td>").expect("room-x is listed");
    let y = rooms.find("<td>room-y</td>").expect("room-y is listed");
    assert!(x < y, "room-x (5) before room-y (4)");
    assert!(rooms[x..].starts_with(r#"<td>room-x</td><td class="high">5</td>"#));
    let lift = &dom[dom.find(r#"id="table-lift""#).unwrap()..];
    assert!(
        lift.contains(r#"<td>connection_lost</td><td>8</td><td>40%</td><td>10%</td><td class="high">×4.00</td><td>×8.00</td>"#),
        "{lift}"
    );
    assert!(dom.contains(r#"id="refreshed-at""#) && !dom.contains(r#"id="refreshed-at">–<"#));
    assert!(!dom.contains(TOKEN), "the token stays out of the page");

    // The URL state round-trip: the page put its state back in the URL (token gone, order
    // canonical), and that URL opens the same view.
    let state = body_attribute(&dom, "data-url").expect("the page writes its URL");
    assert_eq!(
        state,
        format!(
            "incident?appid=1&last=1h&bucket=5m&until={}",
            until.replace(':', "%3A")
        )
    );
    assert_eq!(
        attribute_of(&dom, "to-dashboard", "href").as_deref(),
        Some("../dashboard?appid=1")
    );
    let again = chromium(
        &app.url(&format!("/dashboard/{state}&token={TOKEN}")),
        &["--dump-dom"],
    )
    .await;
    assert_eq!(body_attribute(&again, "data-url"), Some(state));
    assert_eq!(
        attribute_of(&again, "spike", "data-bucket"),
        Some(format!("{d}T11:30:00.000Z"))
    );

    let path = screenshot_path("incident-screenshot.png");
    let _ = std::fs::remove_file(&path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    chromium(
        &url,
        &[
            &format!("--screenshot={}", path.display()),
            "--window-size=1280,1500",
        ],
    )
    .await;
    let png = std::fs::read(&path).expect("chromium wrote no screenshot");
    assert!(png.starts_with(b"\x89PNG"));
    assert!(png.len() > 20_000, "the screenshot is suspiciously small");
    println!("incident screenshot: {}", path.display());
}
