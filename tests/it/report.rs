//! `zegolog report` over logouts received through the real HTTP path: the range is a set of
//! whole UTC days, both ends included; every format shows the same figures.

use crate::common;

use chrono::{NaiveDate, Utc};
use common::{signed, vendor_sample, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use zegolog::report::{Format, Report, ReportQuery, SectionName};

/// A logout of `user` in `room`, ending at `logout` (UTC) after `secs` seconds.
fn logout(appid: i64, room: &str, user: &str, logout: &str, secs: i64, reason: i64) -> Value {
    static SESSION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let logout_ms = chrono::DateTime::parse_from_rfc3339(logout)
        .unwrap()
        .timestamp_millis();
    let mut callback = vendor_sample();
    callback["appid"] = json!(appid.to_string());
    callback["room_id"] = json!(room);
    callback["user_account"] = json!(user);
    let session = SESSION.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    callback["session_id"] = json!(session.to_string());
    callback["login_time"] = json!((logout_ms - secs * 1000).to_string());
    callback["logout_time"] = json!(logout_ms.to_string());
    callback["reason"] = json!(reason.to_string());
    callback
}

/// App 1 over 2024-05-01 .. 2024-05-04 (nothing on the 3rd), one logout just outside each end,
/// and app 2 with a room of the same name.
async fn seeded() -> TestApp {
    let app = TestApp::spawn().await;
    let callbacks = [
        logout(1, "r1", "u1", "2024-05-01T08:00:00Z", 10, 0),
        logout(1, "r1", "u1", "2024-05-01T09:00:00Z", 20, 1),
        logout(1, "r1", "u2", "2024-05-01T10:00:00Z", 30, 2),
        logout(1, "r1", "u3", "2024-05-01T11:00:00Z", 40, 0),
        logout(1, "r2", "u1", "2024-05-02T08:00:00Z", 60, 2),
        logout(1, "r2", "u1", "2024-05-02T09:00:00Z", 5, 2),
        logout(1, "r1", "u2", "2024-05-02T10:00:00Z", 7, 3),
        logout(1, "r2", "u5", "2024-05-02T11:00:00Z", 3, 9),
        logout(1, "r3", "u4", "2024-05-04T23:59:59.999Z", 1, 4),
        // Outside the range, one millisecond before and at its end.
        logout(1, "r9", "u9", "2024-04-30T23:59:59.999Z", 5, 2),
        logout(1, "r9", "u9", "2024-05-05T00:00:00Z", 5, 2),
        logout(2, "r1", "u1", "2024-05-02T12:00:00Z", 15, 1),
    ];
    for callback in callbacks {
        let (status, body) = app.post_json(&signed(callback)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    app
}

fn query(appid: Option<i64>) -> ReportQuery {
    ReportQuery::new(
        appid,
        Some(day("2024-05-01")),
        Some(day("2024-05-04")),
        10,
        day("2030-01-01"),
    )
    .unwrap()
}

fn day(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

async fn load(app: &TestApp, query: &ReportQuery) -> Report {
    let mut conn = app.pool.acquire().await.unwrap();
    Report::load(&mut conn, query).await.unwrap()
}

fn render(report: &Report, format: Format, section: Option<SectionName>) -> String {
    let mut out = Vec::new();
    report.render(format, section, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

fn json_report(report: &Report) -> Value {
    serde_json::from_str(&render(report, Format::Json, None)).unwrap()
}

#[tokio::test]
async fn daily_section_has_every_day_of_the_range_with_percentiles() {
    let app = seeded().await;
    let report = json_report(&load(&app, &query(Some(1))).await);

    let daily = report["daily"].as_array().unwrap();
    let days: Vec<(&str, i64)> = daily
        .iter()
        .map(|r| (r["day"].as_str().unwrap(), r["sessions"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        days,
        [
            ("2024-05-01", 4),
            ("2024-05-02", 4),
            ("2024-05-03", 0),
            ("2024-05-04", 1)
        ]
    );
    let first = &daily[0];
    assert_eq!(first["appid"], 1);
    assert_eq!(first["avg_s"], 25.0);
    assert_eq!(first["max_s"], 40.0);
    // Nearest rank: the 2nd of 10, 20, 30, 40 s; the rollups are within 1%.
    let p50 = first["p50_s"].as_f64().unwrap();
    assert!((p50 - 20.0).abs() <= 0.2, "p50 {p50}");
    let p90 = first["p90_s"].as_f64().unwrap();
    assert!((p90 - 40.0).abs() <= 0.4, "p90 {p90}");
    assert!((first["total_minutes"].as_f64().unwrap() - 100.0 / 60.0).abs() < 1e-9);
    // A quiet day: zero sessions, no percentiles.
    assert_eq!(daily[2]["p50_s"], Value::Null);
    assert_eq!(daily[2]["total_minutes"], 0.0);
    assert_eq!(report["from"], "2024-05-01");
    assert_eq!(report["to"], "2024-05-04");
    assert_eq!(report["appid"], 1);
}

#[tokio::test]
async fn reasons_are_summed_over_the_range_with_shares_per_app() {
    let app = seeded().await;
    let report = json_report(&load(&app, &query(None)).await);

    let reasons: Vec<(i64, &str, i64)> = report["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["appid"].as_i64().unwrap(),
                r["reason"].as_str().unwrap(),
                r["logouts"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        [
            (1, "connection_lost", 3),
            (1, "normal", 2),
            (1, "heartbeat_timeout", 1),
            (1, "kicked_out", 1),
            (1, "token_expired", 1),
            (1, "unknown", 1),
            (2, "heartbeat_timeout", 1),
        ]
    );
    let shares: Vec<f64> = report["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["share"].as_f64().unwrap())
        .collect();
    assert!((shares[0] - 3.0 / 9.0).abs() < 1e-9);
    assert!((shares[..6].iter().sum::<f64>() - 1.0).abs() < 1e-9);
    assert_eq!(shares[6], 1.0);
    // Every app has its days: 2 apps x 4 days.
    assert_eq!(report["daily"].as_array().unwrap().len(), 8);
}

#[tokio::test]
async fn rooms_and_users_are_ranked_by_abnormal_disconnects_within_the_range() {
    let app = seeded().await;
    let report = json_report(&load(&app, &query(None)).await);

    let rooms: Vec<(i64, &str, i64, i64)> = report["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["appid"].as_i64().unwrap(),
                r["room_id"].as_str().unwrap(),
                r["abnormal"].as_i64().unwrap(),
                r["logouts"].as_i64().unwrap(),
            )
        })
        .collect();
    // r9's logouts are just outside the range.
    assert_eq!(
        rooms,
        [
            (1, "r1", 3, 5),
            (1, "r2", 3, 3),
            (1, "r3", 1, 1),
            (2, "r1", 1, 1)
        ]
    );
    let r1 = &report["rooms"][0];
    assert_eq!(
        (
            &r1["heartbeat_timeout"],
            &r1["connection_lost"],
            &r1["kicked_out"],
            &r1["token_expired"],
            &r1["unknown"]
        ),
        (&json!(1), &json!(1), &json!(1), &json!(0), &json!(0))
    );
    assert!((r1["abnormal_share"].as_f64().unwrap() - 0.6).abs() < 1e-9);
    assert_eq!(r1["last_abnormal_at"], "2024-05-02T10:00:00.000Z");
    assert_eq!(report["rooms"][1]["unknown"], 1);

    let users: Vec<(&str, i64, i64)> = report["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["user_account"].as_str().unwrap(),
                r["abnormal"].as_i64().unwrap(),
                r["logouts"].as_i64().unwrap(),
            )
        })
        .collect();
    // u3 only logged out normally.
    assert_eq!(
        users,
        [
            ("u1", 3, 4),
            ("u2", 2, 2),
            ("u4", 1, 1),
            ("u5", 1, 1),
            ("u1", 1, 1)
        ]
    );
    assert_eq!(report["users"][4]["appid"], 2);

    // --top and --appid.
    let mut top = query(Some(1));
    top.top = 2;
    let report = json_report(&load(&app, &top).await);
    let users: Vec<&str> = report["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["user_account"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["u1", "u2"]);
    assert!(report["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["appid"] == 1));
}

#[tokio::test]
async fn csv_has_one_block_per_section_or_one_plain_table() {
    let app = seeded().await;
    let report = load(&app, &query(Some(1))).await;

    let all = render(&report, Format::Csv, None);
    let headers: Vec<&str> = all
        .lines()
        .filter(|l| l.starts_with("# section: "))
        .collect();
    assert_eq!(
        headers,
        [
            "# section: daily",
            "# section: reasons",
            "# section: rooms",
            "# section: users"
        ]
    );
    assert!(all.contains(
        "\r\n\r\n# section: reasons\r\nappid,reason,logouts,share\r\n1,connection_lost,3,0.3333333333333333\r\n"
    ));

    let rooms = render(&report, Format::Csv, Some(SectionName::Rooms));
    let mut lines = rooms.split("\r\n");
    assert_eq!(
        lines.next().unwrap(),
        "appid,room_id,abnormal,logouts,abnormal_share,heartbeat_timeout,connection_lost,\
         kicked_out,token_expired,unknown,last_abnormal_at"
    );
    assert_eq!(
        lines.next().unwrap(),
        "1,r1,3,5,0.6,1,1,1,0,0,2024-05-02T10:00:00.000Z"
    );
    assert!(!rooms.contains('#'));

    let daily = render(&report, Format::Csv, Some(SectionName::Daily));
    assert!(daily.contains("\r\n2024-05-03,1,0,,,,,,0\r\n"), "{daily}");
}

#[tokio::test]
async fn table_is_aligned_and_shows_free_text_safely() {
    let app = seeded().await;
    let evil_room = "evil\u{1b}[2J,\"room\"";
    let (status, _) = app
        .post_json(&signed(logout(
            1,
            evil_room,
            "u1",
            "2024-05-02T13:00:00Z",
            4,
            2,
        )))
        .await;
    assert_eq!(status, StatusCode::OK);
    let report = load(&app, &query(Some(1))).await;

    let table = render(&report, Format::Table, None);
    assert!(table.starts_with(
        "zegolog report: appid 1, 2024-05-01 to 2024-05-04 (UTC days, both included)\n"
    ));
    assert!(!table.contains('\u{1b}'), "{table}");
    assert!(table.contains("evil\\u{1b}[2J,\"room\""), "{table}");
    for title in [
        "Sessions per day",
        "Disconnect reasons",
        "Rooms with",
        "Users with",
    ] {
        assert!(table.contains(title), "{title} missing:\n{table}");
    }
    // Aligned: the heading, the rule and every row of a section end in the same column
    // for right-aligned numbers.
    let daily: Vec<&str> = table
        .lines()
        .skip_while(|l| !l.starts_with("Sessions per day"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(daily.len(), 2 + 4, "{table}");
    let width = daily[1].len();
    assert!(daily.iter().all(|l| l.len() == width), "{table}");
    assert!(
        daily[0].starts_with("day         appid  sessions"),
        "{table}"
    );
    assert!(
        daily[4].starts_with("2024-05-03      1         0"),
        "{table}"
    );
    assert!(daily[4].contains(" - "), "{table}");
    assert!(
        table.lines().any(|l| l
            .split_whitespace()
            .eq(["1", "connection_lost", "4", "40.0%"])),
        "{table}"
    );

    // CSV and JSON keep the room id as sent.
    let csv = render(&report, Format::Csv, Some(SectionName::Rooms));
    assert!(
        csv.contains("1,\"evil\u{1b}[2J,\"\"room\"\"\",1,1,"),
        "{csv}"
    );
    let json: Value = serde_json::from_str(&render(&report, Format::Json, None)).unwrap();
    assert!(json["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["room_id"] == evil_room));
}

#[tokio::test]
async fn an_empty_range_gives_empty_sections_not_an_error() {
    let app = TestApp::spawn().await;
    let report = load(&app, &query(None)).await;
    let json = json_report(&report);
    for section in ["daily", "reasons", "rooms", "users"] {
        assert_eq!(json[section], json!([]), "{section}");
    }
    assert!(render(&report, Format::Table, Some(SectionName::Rooms)).ends_with("(none)\n"));
    // With --appid, its days are listed, each without sessions.
    let json = json_report(&load(&app, &query(Some(7))).await);
    assert_eq!(json["daily"].as_array().unwrap().len(), 4);
    assert!(json["daily"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["sessions"] == 0 && d["appid"] == 7));
}

#[tokio::test]
async fn default_range_ends_today_in_utc() {
    let app = TestApp::spawn().await;
    let now = Utc::now();
    let (status, _) = app
        .post_json(&signed(logout(
            1,
            "today",
            "u1",
            &now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            1,
            2,
        )))
        .await;
    assert_eq!(status, StatusCode::OK);
    let query = ReportQuery::new(None, None, None, 10, now.date_naive()).unwrap();
    assert_eq!(
        (query.to - query.from).num_days(),
        6,
        "seven days, both ends included"
    );
    let json = json_report(&load(&app, &query).await);
    assert_eq!(json["rooms"][0]["room_id"], "today");
    assert_eq!(json["daily"].as_array().unwrap().len(), 7);
}

#[tokio::test]
async fn the_command_prints_one_section_as_csv() {
    let (url, pool) = common::migrated_database_url().await;
    let app = TestApp::serve(
        common::test_verifier(600),
        zegolog::store::Store::from_pool(pool.clone()),
        pool,
    )
    .await;
    for callback in [
        logout(1, "r1", "u1", "2024-05-01T08:00:00Z", 10, 2),
        logout(1, "r1", "u2", "2024-05-02T08:00:00Z", 10, 0),
    ] {
        let (status, _) = app.post_json(&signed(callback)).await;
        assert_eq!(status, StatusCode::OK);
    }

    let output = common::zegolog()
        .args([
            "report",
            "--appid",
            "1",
            "--from",
            "2024-05-01",
            "--to",
            "2024-05-02",
            "--format",
            "csv",
            "--section",
            "reasons",
        ])
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();

    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "appid,reason,logouts,share\r\n1,connection_lost,1,0.5\r\n1,normal,1,0.5\r\n"
    );

    let output = common::zegolog()
        .args(["report", "--from", "2024-05-03", "--to", "2024-05-01"])
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("is after --to"));
}

#[tokio::test]
async fn the_command_takes_the_incident_window_from_last_bucket_and_until() {
    let (url, _pool) = common::migrated_database_url().await;
    let report = |flags: &[&str]| {
        common::zegolog()
            .arg("report")
            .args(flags)
            .env("DATABASE_URL", &url)
            .output()
            .unwrap()
    };
    let json = |output: std::process::Output| -> Value {
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    };

    let until = [
        "--until",
        "2024-05-01T10:00:00Z",
        "--format",
        "json",
        "--appid",
        "1",
    ];
    let one_minute = json(report(
        &[&until[..], &["--last", "6h", "--bucket", "1m"]].concat(),
    ));
    assert_eq!(
        (&one_minute["from"], &one_minute["bucket"]),
        (&json!("2024-05-01T04:00:00.000Z"), &json!("1m"))
    );
    let default_bucket = json(report(&[&until[..], &["--last", "24h"]].concat()));
    assert_eq!(default_bucket["bucket"], "5m", "5m by default");

    for bad in [
        &["--last", "48h"][..],
        &["--last", "6h", "--bucket", "10m"],
        &["--bucket", "1m"],
        &["--last", "6h", "--from", "2024-01-01"],
    ] {
        let output = report(bad);
        assert_eq!(output.status.code(), Some(2), "{bad:?}");
    }
}
