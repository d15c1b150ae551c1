//! Alerting (issue 21): the logout counter behind the Prometheus rules of
//! `deploy/prometheus/`, those rules against a real Prometheus and Alertmanager, the Grafana
//! dashboards' queries, and zegolog's own webhook notifier.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::json;
use zegolog::http::AppState;
use zegolog::ingest::{BatchConfig, Ingest};
use zegolog::metrics::Metrics;
use zegolog::store::Store;

use crate::common::{self, signed, vendor_sample, TestApp};

/// A room_logout of `appid` with reason `reason` (a distinct session per `n`).
fn logout(appid: &str, reason: i32, n: u64) -> serde_json::Value {
    let mut callback = vendor_sample();
    callback["appid"] = json!(appid);
    callback["reason"] = json!(reason.to_string());
    callback["session_id"] = json!((792_462_300_429_684_736u64 + n).to_string());
    callback
}

async fn metrics_text(app: &TestApp) -> String {
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.unwrap()
}

#[tokio::test]
async fn stored_logouts_are_counted_by_app_and_reason_and_duplicates_are_not() {
    let pool = common::migrated_pool().await;
    // One appid labelled on its own: the second app seen is `other`.
    let metrics = Arc::new(Metrics::new(1));
    let (ingest, _tasks) = Ingest::start(
        Store::from_pool(pool.clone()),
        None,
        BatchConfig::default(),
        metrics.clone(),
    );
    let state = AppState::with_ingest(common::test_verifier(600), ingest, metrics);
    let app = TestApp::serve_state(state, pool).await;

    for (appid, reason, n) in [
        ("1", 2, 1),
        ("1", 2, 2),
        ("1", 0, 3),
        ("2", 1, 4),
        ("1", 9, 5),
    ] {
        let (status, body) = app.post_json(&signed(logout(appid, reason, n))).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::OK, Some("stored"))
        );
    }
    // A retried delivery (new signature, same logout) is a duplicate: not counted again.
    let (status, body) = app.post_json(&signed(logout("1", 2, 1))).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::OK, Some("duplicate"))
    );

    let text = metrics_text(&app).await;
    for (line, what) in [
        (
            r#"zegolog_logouts_total{appid="1",reason="connection_lost"} 2"#,
            "two stored, one duplicate",
        ),
        (
            r#"zegolog_logouts_total{appid="1",reason="normal"} 1"#,
            "reason 0",
        ),
        (
            r#"zegolog_logouts_total{appid="1",reason="unknown"} 1"#,
            "a code beyond 4",
        ),
        (
            r#"zegolog_logouts_total{appid="1",reason="kicked_out"} 0"#,
            "every reason of a seen app exists at 0",
        ),
        (
            r#"zegolog_logouts_total{appid="other",reason="heartbeat_timeout"} 1"#,
            "the app beyond the bound",
        ),
        ("zegolog_database_ready 1", "measured at the scrape"),
    ] {
        assert!(text.contains(line), "{what}: no {line} in\n{text}");
    }
    assert!(!text.contains(r#"appid="2""#), "{text}");
    assert_eq!(
        text.matches("zegolog_logouts_total{").count(),
        12,
        "six reasons for app 1 and for other:\n{text}"
    );
    assert_eq!(app.count("room_logouts").await, 5);
}

// ---------------------------------------------------------------------------------------------
// A local HTTP receiver: what Alertmanager's webhook and zegolog's notifier post to.
// ---------------------------------------------------------------------------------------------

/// Collects the JSON bodies POSTed to it; answers 500 to the first `failures` of them.
#[derive(Clone)]
pub struct Receiver {
    pub addr: std::net::SocketAddr,
    bodies: Arc<std::sync::Mutex<Vec<(String, serde_json::Value)>>>,
}

impl Receiver {
    pub async fn start(failures: usize) -> Self {
        use axum::extract::State;
        use axum::http::{StatusCode, Uri};
        use std::sync::atomic::{AtomicUsize, Ordering};
        type Shared = (
            Arc<std::sync::Mutex<Vec<(String, serde_json::Value)>>>,
            Arc<AtomicUsize>,
        );
        async fn receive(
            State((bodies, failures)): State<Shared>,
            uri: Uri,
            body: axum::body::Bytes,
        ) -> StatusCode {
            let left = failures.load(Ordering::SeqCst);
            if left > 0 {
                failures.store(left - 1, Ordering::SeqCst);
                return StatusCode::INTERNAL_SERVER_ERROR;
            }
            let value = serde_json::from_slice(&body).unwrap_or_else(
                |e| json!({"not_json": e.to_string(), "body": String::from_utf8_lossy(&body)}),
            );
            bodies.lock().unwrap().push((uri.to_string(), value));
            StatusCode::OK
        }
        let bodies = Arc::new(std::sync::Mutex::new(Vec::new()));
        let shared: Shared = (bodies.clone(), Arc::new(AtomicUsize::new(failures)));
        let router = axum::Router::new()
            .fallback(axum::routing::post(receive))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self { addr, bodies }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every (path and query, body) received so far.
    pub fn received(&self) -> Vec<(String, serde_json::Value)> {
        self.bodies.lock().unwrap().clone()
    }

    /// Waits up to `within` until some body satisfies `matches`; returns it.
    pub async fn wait_for(
        &self,
        within: std::time::Duration,
        what: &str,
        matches: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some((_, body)) = self.received().into_iter().find(|(_, b)| matches(b)) {
                return body;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the receiver got no {what} within {within:?}; it got: {:#?}",
                self.received()
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Debian's Prometheus and Alertmanager, scraping a real `zegolog serve`.
// ---------------------------------------------------------------------------------------------

const PROMETHEUS: &str = "/usr/bin/prometheus";
const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";
const PROMTOOL: &str = "/usr/bin/promtool";

fn require_prometheus() {
    for binary in [PROMETHEUS, ALERTMANAGER, PROMTOOL] {
        assert!(
            std::path::Path::new(binary).exists(),
            "{binary} is missing: the alerting end-to-end test needs Debian's Prometheus and \
             Alertmanager. Install them with `apt-get install prometheus prometheus-alertmanager` \
             (CI does)."
        );
    }
}

/// A process of the test's own, killed when dropped; its output goes to `log`.
struct Daemon {
    name: &'static str,
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl Daemon {
    fn start(name: &'static str, binary: &str, args: &[String], dir: &std::path::Path) -> Self {
        let log = dir.join(format!("{name}.log"));
        let child = std::process::Command::new(binary)
            .args(args)
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {binary}: {e}"));
        Self { name, child, log }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `GET http://127.0.0.1:port/-/ready` answers 200.
    fn wait_ready(&mut self, port: u16) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            if common::blocking_http::get_ok(port, "/-/ready") {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited ({status}):\n{}", self.name, self.log_text());
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("{} did not get ready:\n{}", self.name, self.log_text());
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The logout mix of the day before the test: per minute, `normal` normal logouts and `lost`
/// connection_lost ones, for each app, from 3 hours to 20 minutes ago, written as Prometheus
/// blocks with promtool (a day of history in a test that lasts two minutes). Its series have
/// their own `instance`: the rules sum over instances, as over a load-balanced fleet.
fn backfill_the_day_before(
    dir: &std::path::Path,
    tsdb: &std::path::Path,
    apps: &[&str],
    normal: u64,
    lost: u64,
) {
    let now = chrono::Utc::now().timestamp();
    let (from, to) = (now - 3 * 3600, now - 20 * 60);
    let mut text =
        String::from("# HELP zegolog_logouts Logouts stored.\n# TYPE zegolog_logouts counter\n");
    for app in apps {
        for (reason, per_minute) in [
            ("normal", normal),
            ("heartbeat_timeout", 0),
            ("connection_lost", lost),
            ("kicked_out", 0),
            ("token_expired", 0),
            ("unknown", 0),
        ] {
            let mut at = from;
            let mut total = 0;
            while at <= to {
                text.push_str(&format!(
                    "zegolog_logouts_total{{job=\"zegolog\",instance=\"backfill\",appid=\"{app}\",reason=\"{reason}\"}} {total} {at}\n"
                ));
                total += per_minute;
                at += 60;
            }
        }
    }
    text.push_str("# EOF\n");
    let file = dir.join("day-before.om");
    std::fs::write(&file, text).unwrap();
    let out = std::process::Command::new(PROMTOOL)
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&file)
        .arg(tsdb)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool tsdb create-blocks-from openmetrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A dashboard of `deploy/grafana/`.
fn grafana_dashboard(file: &str) -> serde_json::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/grafana")
        .join(file);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Prometheus's answer to an instant query: `data.result`.
async fn prometheus_query(port: u16, query: &str) -> Vec<serde_json::Value> {
    let response: serde_json::Value = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/api/v1/query"))
        .query(&[("query", query)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(response["status"], "success", "{query}: {response}");
    response["data"]["result"].as_array().unwrap().clone()
}

/// Posts signed room_logouts of `appid` to zegolog: `normal` with reason 0, `lost` with
/// reason 2, each with a session of its own.
async fn send_logouts(
    client: &reqwest::Client,
    url: &str,
    appid: &str,
    normal: u64,
    lost: u64,
    next: &std::sync::atomic::AtomicU64,
) {
    use std::sync::atomic::Ordering;
    let callbacks = (0..normal)
        .map(|_| (0, next.fetch_add(1, Ordering::SeqCst)))
        .chain((0..lost).map(|_| (2, next.fetch_add(1, Ordering::SeqCst))));
    let sends = callbacks.map(|(reason, n)| {
        let mut callback = logout(appid, reason, n);
        callback["logout_time"] = json!(chrono::Utc::now().timestamp_millis().to_string());
        let body = signed(callback).to_string();
        async move {
            let response = client
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
        }
    });
    futures::future::join_all(sends).await;
}

/// Grafana's variables in a PromQL expression, as the test's dashboard selection sets them.
fn expand_promql(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__interval", "15s")
        .replace("$job", "zegolog")
        .replace("$appid", "1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prometheus_and_alertmanager_page_on_a_disconnect_spike_of_one_app() {
    use std::sync::atomic::AtomicU64;
    use std::time::{Duration, Instant};
    require_prometheus();
    let started = Instant::now();
    let dir = common::temp_data_dir("zegolog-alerting-");
    let url = common::empty_database_url().await;
    let secrets = format!("1={},2={}", common::SECRET, common::SECRET_APP2);
    let served = common::serve(
        &dir,
        &[
            ("DATABASE_URL", url.as_str()),
            ("ZEGOLOG_SECRETS", &secrets),
        ],
    );

    // The day before: both apps at 20 normal logouts a minute for each connection_lost.
    let tsdb = dir.join("prometheus");
    backfill_the_day_before(&dir, &tsdb, &["1", "2"], 100, 5);

    let receiver = Receiver::start(0).await;
    let alertmanager_port = common::free_port();
    std::fs::write(
        dir.join("alertmanager.yml"),
        format!(
            "route:\n  receiver: test\n  group_by: [alertname, appid, reason]\n  group_wait: 1s\n  \
             group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: test\n    webhook_configs:\n      \
             - url: {}\n        send_resolved: true\n",
            receiver.url("/alertmanager")
        ),
    )
    .unwrap();
    let mut alertmanager = Daemon::start(
        "alertmanager",
        ALERTMANAGER,
        &[
            "--config.file=alertmanager.yml".into(),
            format!("--storage.path={}", dir.join("alertmanager").display()),
            format!("--web.listen-address=127.0.0.1:{alertmanager_port}"),
            "--cluster.listen-address=".into(),
        ],
        &dir,
    );
    alertmanager.wait_ready(alertmanager_port);

    // Short scrape and evaluation intervals: the rules file is the one shipped, unchanged.
    let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/prometheus/zegolog-rules.yml");
    let prometheus_port = common::free_port();
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{alertmanager_port}']\n\
             scrape_configs:\n  - job_name: zegolog\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
            rules.display(),
            served.port
        ),
    )
    .unwrap();
    let mut prometheus = Daemon::start(
        "prometheus",
        PROMETHEUS,
        &[
            "--config.file=prometheus.yml".into(),
            format!("--storage.tsdb.path={}", tsdb.display()),
            format!("--web.listen-address=127.0.0.1:{prometheus_port}"),
        ],
        &dir,
    );
    prometheus.wait_ready(prometheus_port);
    let deadline = Instant::now() + Duration::from_secs(30);
    while prometheus_query(prometheus_port, r#"up{job="zegolog"} == 1"#)
        .await
        .is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "Prometheus never scraped zegolog:\n{}",
            prometheus.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A baseline with the usual mix for both apps (and one refused callback), then a burst of
    // connection_lost in app 1 while app 2 triples its traffic with the same mix.
    let client = reqwest::Client::new();
    let callback_url = served.url("/zego/callback");
    let next = AtomicU64::new(1);
    let mut forged = logout("1", 0, 0);
    forged["signature"] = json!("0".repeat(40));
    forged["timestamp"] = json!(chrono::Utc::now().timestamp().to_string());
    let response = client
        .post(&callback_url)
        .json(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    for _ in 0..10 {
        send_logouts(&client, &callback_url, "1", 20, 1, &next).await;
        send_logouts(&client, &callback_url, "2", 20, 1, &next).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let burst = Instant::now();
    send_logouts(&client, &callback_url, "1", 0, 150, &next).await;
    for _ in 0..6 {
        send_logouts(&client, &callback_url, "2", 60, 3, &next).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let alert = receiver
        .wait_for(
            Duration::from_secs(100),
            "ZegologDisconnectSpike for app 1",
            |body| {
                body["alerts"].as_array().is_some_and(|alerts| {
                    alerts.iter().any(|a| {
                        a["labels"]["alertname"] == "ZegologDisconnectSpike"
                            && a["labels"]["appid"] == "1"
                            && a["status"] == "firing"
                    })
                })
            },
        )
        .await;
    let fired_after = burst.elapsed();
    let spike = alert["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["alertname"] == "ZegologDisconnectSpike")
        .unwrap();
    assert_eq!(spike["labels"]["reason"], "connection_lost", "{alert:#}");
    assert_eq!(spike["labels"]["severity"], "page", "{alert:#}");
    let description = spike["annotations"]["description"].as_str().unwrap();
    assert!(
        description.contains("usual share of 4.762%"),
        "{description}"
    );
    assert_eq!(
        spike["annotations"]["runbook_url"],
        "docs/operations.md#zegologdisconnectspike"
    );
    // App 2 grew with the same mix: nothing for it, and nothing else fired.
    for (_, body) in receiver.received() {
        for alert in body["alerts"].as_array().unwrap() {
            assert_eq!(
                alert["labels"]["alertname"], "ZegologDisconnectSpike",
                "{body:#}"
            );
            assert_eq!(alert["labels"]["appid"], "1", "{body:#}");
        }
    }

    // The operations dashboard: every PromQL expression evaluates, and shows data, against
    // this Prometheus.
    let dashboard = grafana_dashboard("zegolog-operations.json");
    let mut evaluated = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = expand_promql(target["expr"].as_str().unwrap());
            assert!(
                !expr.contains('$'),
                "a Grafana variable the test does not set: {expr}"
            );
            let result = prometheus_query(prometheus_port, &expr).await;
            assert!(
                !result.is_empty(),
                "panel {:?}: {expr} has no data",
                panel["title"]
            );
            evaluated += 1;
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        let Some(definition) = variable["definition"].as_str() else {
            continue;
        };
        // label_values(metric, label): the label's values among the metric's series.
        let (metric, label) = definition
            .strip_prefix("label_values(")
            .and_then(|rest| rest.strip_suffix(')'))
            .and_then(|rest| rest.split_once(", "))
            .unwrap_or_else(|| panic!("unexpected variable query {definition}"));
        let values =
            prometheus_query(prometheus_port, &format!("count by ({label}) ({metric})")).await;
        assert!(!values.is_empty(), "{definition}");
        evaluated += 1;
    }
    assert!(evaluated >= 18, "{evaluated}");
    println!(
        "ZegologDisconnectSpike reached the receiver {fired_after:?} after the burst, {:?} after the test began; {evaluated} dashboard queries evaluated",
        started.elapsed()
    );
    drop(prometheus);
    drop(alertmanager);
    let _ = served.terminate();
}

// ---------------------------------------------------------------------------------------------
// The analysts' dashboard: Grafana's PostgreSQL data source, as the analyst role.
// ---------------------------------------------------------------------------------------------

/// Grafana's PostgreSQL macros and the dashboard's `$appid`, expanded as Grafana does for the
/// time range [from, to].
fn expand_grafana_sql(sql: &str, from: &str, to: &str, appid: i64) -> String {
    let mut out = sql
        .replace("$__timeFrom()", &format!("'{from}'"))
        .replace("$__timeTo()", &format!("'{to}'"))
        .replace("$appid", &appid.to_string());
    // $__timeFilter(column) → column BETWEEN 'from' AND 'to'
    while let Some(start) = out.find("$__timeFilter(") {
        let rest = &out[start + "$__timeFilter(".len()..];
        let end = rest.find(')').expect("a closed $__timeFilter(");
        let column = rest[..end].trim().to_owned();
        out = format!(
            "{}{column} BETWEEN '{from}' AND '{to}'{}",
            &out[..start],
            &rest[end + 1..]
        );
    }
    out
}

#[tokio::test]
async fn every_query_of_the_analytics_dashboard_runs_as_the_analyst() {
    use sqlx::{Connection, Row};
    let (url, pool) = common::migrated_database_url().await;
    let app = TestApp::serve(
        common::test_verifier(600),
        Store::from_pool(pool.clone()),
        pool.clone(),
    )
    .await;
    // Two days ago the usual mix; ten minutes before the anchor a burst of connection_lost.
    let anchor = common::now_ms_clear_of_midnight();
    let mut n = 0;
    for (at, reason, count) in [
        (anchor - 2 * common::DAY_MS, 0, 20),
        (anchor - 2 * common::DAY_MS, 2, 1),
        (anchor - 10 * 60_000, 0, 5),
        (anchor - 10 * 60_000, 2, 10),
    ] {
        for _ in 0..count {
            n += 1;
            let mut callback = logout("1", reason, n);
            callback["room_id"] = json!(format!("room-{}", n % 3));
            callback["login_time"] = json!((at - 60_000).to_string());
            callback["logout_time"] = json!(at.to_string());
            let (status, _) = app.post_json(&signed(callback)).await;
            assert_eq!(status, StatusCode::OK);
        }
    }
    Store::from_pool(pool.clone())
        .compact_rollups()
        .await
        .unwrap();
    let role = format!("grafana_{}", std::process::id());
    let password = "grafana reads the views";
    let mut admin = pool.acquire().await.unwrap();
    zegolog::grant::grant_analyst(&mut admin, &role, Some(password))
        .await
        .unwrap();
    let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    let mut analyst = sqlx::PgConnection::connect_with(&options.username(&role).password(password))
        .await
        .unwrap();

    let dashboard = grafana_dashboard("zegolog-analytics.json");
    let to = chrono::Utc::now();
    let from = chrono::DateTime::from_timestamp_millis(anchor - 3_600_000).unwrap();
    let (from, to) = (
        from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    );
    let mut queries: Vec<(String, String)> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|panel| {
            panel["targets"].as_array().unwrap().iter().map(|t| {
                (
                    panel["title"].as_str().unwrap().to_owned(),
                    t["rawSql"].as_str().unwrap().to_owned(),
                )
            })
        })
        .collect();
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if variable["type"] == "query" {
            queries.push((
                format!("variable {}", variable["name"]),
                variable["query"].as_str().unwrap().to_owned(),
            ));
        }
    }
    assert!(queries.len() >= 9, "{queries:?}");
    for (title, sql) in &queries {
        let sql = expand_grafana_sql(sql, &from, &to, 1);
        assert!(
            !sql.contains('$'),
            "{title}: a macro the test does not expand: {sql}"
        );
        let rows = sqlx::raw_sql(&sql)
            .fetch_all(&mut analyst)
            .await
            .unwrap_or_else(|e| panic!("{title}: {e}\n{sql}"));
        assert!(!rows.is_empty(), "{title}: no rows\n{sql}");
        if sql.contains("AS \"time\"") {
            // Grafana's time series need a time column named "time".
            let _: chrono::DateTime<chrono::Utc> = rows[0].try_get("time").unwrap();
        }
    }
    drop(analyst);
    let _ = sqlx::raw_sql(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .execute(&pool)
        .await;
}

// ---------------------------------------------------------------------------------------------
// zegolog's own alert webhook (src/notifier.rs).
// ---------------------------------------------------------------------------------------------

/// The secret part of the test's webhook URL: it must never show in a log or an error.
const WEBHOOK_SECRET: &str = "T0001/B0001/s3cr3tW3bh00kT0k3n";

/// Posts signed room_logouts of `appid` at `at_ms`: `normal` with reason 0 and `lost` with
/// reason 2, the lost ones in `rooms` in turn.
async fn post_logouts_at(
    app: &TestApp,
    appid: &str,
    at_ms: i64,
    normal: u64,
    lost: u64,
    rooms: &[&str],
    next: &mut u64,
) {
    for (reason, count) in [(0, normal), (2, lost)] {
        for i in 0..count {
            *next += 1;
            let mut callback = logout(appid, reason, *next);
            let room = if reason == 2 {
                rooms[i as usize % rooms.len()]
            } else {
                "lobby"
            };
            callback["room_id"] = json!(room);
            callback["login_time"] = json!((at_ms - 60_000).to_string());
            callback["logout_time"] = json!(at_ms.to_string());
            let (status, _) = app.post_json(&signed(callback)).await;
            assert_eq!(status, StatusCode::OK);
        }
    }
}

/// A database where apps 1 and 2 had 40 normal logouts for 2 connection_lost two days before
/// `anchor`, and two minutes before it app 1 lost 20 connections (15 in room-a, 5 in room-b)
/// for 5 normal logouts, while app 2 kept its mix.
async fn a_spike_in_app_1(anchor: i64) -> TestApp {
    let app = TestApp::spawn().await;
    let mut next = 0;
    for appid in ["1", "2"] {
        post_logouts_at(
            &app,
            appid,
            anchor - 2 * common::DAY_MS,
            40,
            2,
            &["lobby"],
            &mut next,
        )
        .await;
    }
    post_logouts_at(
        &app,
        "1",
        anchor - 120_000,
        5,
        20,
        &["room-a", "room-a", "room-a", "room-b"],
        &mut next,
    )
    .await;
    post_logouts_at(&app, "2", anchor - 120_000, 20, 1, &["lobby"], &mut next).await;
    Store::from_pool(app.pool.clone())
        .compact_rollups()
        .await
        .unwrap();
    app
}

fn notifier_config(receiver: &Receiver) -> zegolog::notifier::NotifierConfig {
    use zegolog::notifier::{NotifierConfig, WebhookUrl};
    let webhook = WebhookUrl::parse(&receiver.url(&format!("/services/{WEBHOOK_SECRET}"))).unwrap();
    NotifierConfig {
        attempts: 3,
        retry_pause: std::time::Duration::from_millis(10),
        ..NotifierConfig::new(
            webhook,
            Some("https://zegolog.example.com/".trim_end_matches('/').into()),
        )
    }
}

fn events(receiver: &Receiver, event: &str) -> Vec<serde_json::Value> {
    receiver
        .received()
        .into_iter()
        .filter(|(_, body)| body["event"] == event)
        .map(|(_, body)| body)
        .collect()
}

#[tokio::test]
async fn the_webhook_gets_one_message_when_a_spike_starts_and_one_when_it_ends_from_two_instances()
{
    use zegolog::notifier::Notifier;
    use zegolog::views::incident::{self, Bucket, Window};
    let anchor = common::now_ms_clear_of_midnight();
    let now = chrono::DateTime::from_timestamp_millis(anchor).unwrap();
    let app = a_spike_in_app_1(anchor).await;
    // The first two deliveries fail: the message is retried, and delivered once.
    let receiver = Receiver::start(2).await;
    let config = notifier_config(&receiver);
    let store = Store::from_pool(app.pool.clone());
    let (a, b) = (
        Notifier::new(store.clone(), config.clone()),
        Notifier::new(store, config.clone()),
    );

    // Two instances look at the same minute.
    let (tick_a, tick_b) = tokio::join!(a.tick(now), b.tick(now));
    let (tick_a, tick_b) = (tick_a.unwrap(), tick_b.unwrap());
    let mut started = [tick_a.started.clone(), tick_b.started.clone()].concat();
    started.sort();
    assert_eq!(
        started,
        vec![(1, "connection_lost".to_owned())],
        "{tick_a:?} {tick_b:?}"
    );
    let starts = events(&receiver, "spike_started");
    assert_eq!(starts.len(), 1, "{:#?}", receiver.received());
    let (path, _) = &receiver.received()[0];
    assert_eq!(path, &format!("/services/{WEBHOOK_SECRET}"));

    // The message: the incident view's spike (the same function), its figures and its rooms.
    let start = &starts[0];
    let window = Window::ending(1, config.window, Bucket::OneMinute, now);
    let rows = incident::reason_buckets(&app.pool, &window).await.unwrap();
    let spike = incident::spike(&rows).unwrap();
    assert_eq!(start["appid"], 1);
    assert_eq!(start["reason"], "connection_lost");
    assert_eq!(start["logouts"], 20);
    assert_eq!(start["bucket_logouts"], 25);
    assert_eq!(start["share"], json!(spike.share));
    assert_eq!(start["lift"], json!(spike.lift));
    let usual = start["usual_share"].as_f64().unwrap();
    assert!((usual - 2.0 / 42.0).abs() < 1e-9, "{usual}");
    assert_eq!(start["worst_rooms"][0]["room_id"], "room-a");
    assert_eq!(start["worst_rooms"][0]["abnormal"], 15);
    assert_eq!(start["worst_rooms"][1]["room_id"], "room-b");
    assert_eq!(
        start["link"],
        "https://zegolog.example.com/dashboard/incident?appid=1&last=1h&bucket=1m"
    );
    assert_eq!(start["window"]["bucket"], "1m");
    let text = start["text"].as_str().unwrap();
    for part in [
        "app 1",
        "connection_lost",
        "80.0%",
        "usually 4.8%",
        "16.8 times",
        "room-a (15)",
        "https://zegolog.example.com/dashboard/incident?appid=1",
    ] {
        assert!(text.contains(part), "{part:?} not in {text:?}");
    }

    // A minute later it goes on: no new message.
    let later = now + chrono::Duration::minutes(1);
    let (tick_a, tick_b) = tokio::join!(a.tick(later), b.tick(later));
    assert!(tick_a.unwrap().started.is_empty() && tick_b.unwrap().started.is_empty());
    assert_eq!(receiver.received().len(), 1);

    // Once the window no longer holds the burst it ends: one message, from one instance.
    let over = now + chrono::Duration::minutes(6);
    let (tick_a, tick_b) = tokio::join!(a.tick(over), b.tick(over));
    let mut ended = [tick_a.unwrap().ended, tick_b.unwrap().ended].concat();
    ended.sort();
    assert_eq!(ended, vec![(1, "connection_lost".to_owned())]);
    let ends = events(&receiver, "spike_ended");
    assert_eq!(ends.len(), 1, "{:#?}", receiver.received());
    assert_eq!(ends[0]["appid"], 1);
    assert_eq!(ends[0]["peak_share"], json!(spike.share));
    assert!(ends[0]["text"]
        .as_str()
        .unwrap()
        .contains("Disconnect spike over in app 1"));
    let (tick_a, tick_b) = tokio::join!(
        a.tick(over + chrono::Duration::minutes(1)),
        b.tick(over + chrono::Duration::minutes(1))
    );
    assert_eq!(
        (tick_a.unwrap().delivered, tick_b.unwrap().delivered),
        (0, 0)
    );
    assert_eq!(receiver.received().len(), 2, "{:#?}", receiver.received());
    let (open, sent): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE ended_at IS NULL), count(*) FILTER (WHERE end_sent_at IS NOT NULL) FROM alert_spikes",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((open, sent), (0, 1));
}

#[tokio::test]
async fn an_undelivered_message_waits_in_its_row_for_the_next_tick_and_is_given_up_after_an_hour() {
    use zegolog::notifier::Notifier;
    let anchor = common::now_ms_clear_of_midnight();
    let now = chrono::DateTime::from_timestamp_millis(anchor).unwrap();
    let app = a_spike_in_app_1(anchor).await;
    // Three attempts per tick: the first tick's all fail.
    let receiver = Receiver::start(3).await;
    let notifier = Notifier::new(
        Store::from_pool(app.pool.clone()),
        notifier_config(&receiver),
    );

    let first = notifier.tick(now).await.unwrap();

    assert_eq!(
        (first.started.len(), first.delivered, first.undelivered),
        (1, 0, 1)
    );
    let (attempts, error): (i32, String) =
        sqlx::query_as("SELECT attempts, last_error FROM alert_spikes WHERE start_sent_at IS NULL")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(attempts, 1);
    assert!(error.contains("500"), "{error}");
    assert!(!error.contains(WEBHOOK_SECRET), "{error}");
    let second = notifier
        .tick(now + chrono::Duration::seconds(60))
        .await
        .unwrap();
    assert_eq!((second.started.len(), second.delivered), (0, 1));
    assert_eq!(events(&receiver, "spike_started").len(), 1);

    // A webhook that stays down: the message is given up after an hour, its error kept.
    let app = a_spike_in_app_1(anchor).await;
    let down = Receiver::start(0).await;
    let mut config = notifier_config(&down);
    config.webhook = zegolog::notifier::WebhookUrl::parse(&format!(
        "http://127.0.0.1:{}/services/{WEBHOOK_SECRET}",
        common::free_port()
    ))
    .unwrap();
    let notifier = Notifier::new(Store::from_pool(app.pool.clone()), config);
    assert_eq!(notifier.tick(now).await.unwrap().undelivered, 1);
    let hour_later = now + chrono::Duration::minutes(61);
    assert!(
        notifier.tick(hour_later).await.unwrap().evaluated,
        "the tick right after another holds the lock"
    );
    let (sent, error): (Option<chrono::DateTime<chrono::Utc>>, String) =
        sqlx::query_as("SELECT start_sent_at, last_error FROM alert_spikes")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(sent, Some(hour_later), "given up: it counts as sent");
    assert!(
        !error.contains(WEBHOOK_SECRET) && !error.is_empty(),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_posts_a_spike_to_the_webhook_once_from_two_instances_and_never_logs_its_secret() {
    let url = common::empty_database_url().await;
    let receiver = Receiver::start(0).await;
    let webhook = receiver.url(&format!("/services/{WEBHOOK_SECRET}"));
    let secrets = format!("1={},2={}", common::SECRET, common::SECRET_APP2);
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("ZEGOLOG_SECRETS", secrets.as_str()),
        ("ZEGOLOG_ALERT_WEBHOOK_URL", webhook.as_str()),
        ("ZEGOLOG_ALERT_EVERY_SECS", "1"),
        ("ZEGOLOG_PUBLIC_URL", "https://zegolog.example.com"),
        ("ZEGOLOG_COMPACT_EVERY_SECS", "1"),
        ("ZEGOLOG_LOG", "debug,sqlx=warn"),
    ];
    let first = common::serve(&common::temp_data_dir("zegolog-webhook-a-"), &env);
    let second = common::serve(&common::temp_data_dir("zegolog-webhook-b-"), &env);
    // The callbacks go to the first instance; both look for spikes.
    let app = TestApp {
        addr: ([127, 0, 0, 1], first.port).into(),
        pool: common::lazy_pool(&url),
        client: reqwest::Client::new(),
    };
    let now = chrono::Utc::now().timestamp_millis();
    let mut next = 0;
    post_logouts_at(
        &app,
        "1",
        now - 2 * common::DAY_MS,
        40,
        2,
        &["lobby"],
        &mut next,
    )
    .await;
    // The usual share reads the daily rollups: wait for a compaction to hold the day before.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while sqlx::query_scalar::<_, i64>("SELECT count(*) FROM logout_reasons_daily WHERE appid = 1")
        .fetch_one(&app.pool)
        .await
        .unwrap()
        == 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the rollups were never compacted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    post_logouts_at(
        &app,
        "1",
        chrono::Utc::now().timestamp_millis(),
        2,
        20,
        &["room-a"],
        &mut next,
    )
    .await;

    let start = receiver
        .wait_for(std::time::Duration::from_secs(60), "spike_started", |b| {
            b["event"] == "spike_started"
        })
        .await;
    assert_eq!(
        (start["appid"].clone(), start["reason"].clone()),
        (json!(1), json!("connection_lost"))
    );
    // A few more ticks of both instances: still one message.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(
        events(&receiver, "spike_started").len(),
        1,
        "{:#?}",
        receiver.received()
    );

    for served in [first, second] {
        let (_, log) = served.terminate();
        assert!(
            log.contains(&format!("http://{}/…", receiver.addr)),
            "the log names the webhook by its host:\n{log}"
        );
        assert!(
            !log.contains(WEBHOOK_SECRET),
            "the webhook's secret is in the log:\n{log}"
        );
    }
}

#[test]
fn every_alert_has_a_summary_a_description_and_a_runbook_section_in_the_operations_docs() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules = std::fs::read_to_string(root.join("deploy/prometheus/zegolog-rules.yml")).unwrap();
    let docs = std::fs::read_to_string(root.join("docs/operations.md")).unwrap();
    let alerts: Vec<&str> = rules.split("- alert: ").skip(1).collect();
    assert!(alerts.len() >= 10, "{}", alerts.len());
    let mut names = Vec::new();
    for alert in alerts {
        let name = alert.lines().next().unwrap().trim();
        // The alert's own text runs up to the next rule.
        let body = alert.split("\n      - ").next().unwrap();
        for key in ["summary:", "description:", "severity:"] {
            assert!(body.contains(key), "{name} has no {key}");
        }
        let anchor = format!("runbook_url: docs/operations.md#{}", name.to_lowercase());
        assert!(body.contains(&anchor), "{name}: no {anchor}");
        assert!(
            docs.contains(&format!("\n#### {name}\n")),
            "docs/operations.md has no section #### {name}"
        );
        names.push(name.to_owned());
    }
    for required in [
        "ZegologDisconnectSpike",
        "ZegologNotReady",
        "ZegologSpoolFilling",
        "ZegologSignatureFailures",
        "ZegologSignatureReuse",
        "ZegologWriteErrors",
    ] {
        assert!(
            names.iter().any(|n| n == required),
            "{required} is missing: {names:?}"
        );
    }
    // Each alert has a promtool unit test.
    let tests: String = std::fs::read_dir(root.join("deploy/prometheus/tests"))
        .unwrap()
        .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap())
        .collect();
    for name in &names {
        assert!(
            tests.contains(&format!("alertname: {name}")),
            "no promtool test for {name}"
        );
    }
}
