//! Shared test harness: a real PostgreSQL, a fresh migrated database per test, the real router
//! served over real HTTP, and correctly signed callbacks.
//!
//! Without `DATABASE_URL`, the first test starts one private PostgreSQL (the same code as
//! `zegolog serve` without a database URL) in a temporary directory; it is stopped and removed
//! when the test binary exits. All integration tests are one binary (`tests/it`), so that is one
//! server per `cargo test`. With `DATABASE_URL`, that server is used and each test creates its
//! own database on it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};
use zegolog::dashboard::DashboardToken;
use zegolog::embedded_pg::EmbeddedPostgres;
use zegolog::http::AppState;
use zegolog::server::app;
use zegolog::signature::{sign, Secrets, Verifier};
use zegolog::store::Store;

/// The secret the test apps verify appid 1 and appid 2 with; any other appid is unknown.
pub const SECRET: &str = "test-secret-one";
pub const SECRET_APP2: &str = "test-secret-two";

struct Server {
    options: PgConnectOptions,
    embedded: Option<(EmbeddedPostgres, PathBuf)>,
}

static SERVER: OnceLock<Server> = OnceLock::new();

extern "C" fn stop_server_at_exit() {
    if let Some(Server {
        embedded: Some((pg, dir)),
        ..
    }) = SERVER.get()
    {
        let _ = pg.stop();
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// A temporary directory that the unprivileged PostgreSQL user can enter.
pub fn temp_data_dir(prefix: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .expect("creating a temporary directory")
        .keep();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn server() -> &'static Server {
    SERVER.get_or_init(|| match std::env::var("DATABASE_URL") {
        Ok(url) => Server {
            options: url.parse().expect("DATABASE_URL is not a PostgreSQL URL"),
            embedded: None,
        },
        Err(_) => {
            let dir = temp_data_dir("zegolog-test-pg-");
            let pg = EmbeddedPostgres::start(&dir).expect("starting the test PostgreSQL");
            // SAFETY: registers a plain function; it runs once, when the process exits.
            unsafe { nix::libc::atexit(stop_server_at_exit) };
            Server {
                options: pg.url().parse().unwrap(),
                embedded: Some((pg, dir)),
            }
        }
    })
}

/// Creates an empty database with a unique name on the test server; returns its options.
pub async fn empty_database() -> PgConnectOptions {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let server = tokio::task::spawn_blocking(server).await.unwrap();
    let name = format!(
        "zegolog_test_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    );
    let mut admin = PgConnection::connect_with(&server.options)
        .await
        .expect("connecting to the test PostgreSQL");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("creating a test database");
    server.options.clone().database(&name)
}

/// A pool of the test's own on `url` that connects when first used, so that it can be made
/// while the server is down (the store under test keeps its pool to itself).
pub fn lazy_pool(url: &str) -> PgPool {
    PgPoolOptions::new()
        .max_connections(4)
        .connect_lazy(url)
        .expect("a PostgreSQL URL")
}

/// A fresh database with zegolog's migrations applied.
pub async fn migrated_pool() -> PgPool {
    let options = empty_database().await;
    let pool = PgPoolOptions::new()
        .max_connections(20)
        .connect_with(options)
        .await
        .unwrap();
    Store::from_pool(pool.clone()).migrate().await.unwrap();
    pool
}

pub fn test_verifier(max_skew_secs: u64) -> Verifier {
    let secrets = Secrets::new(
        None,
        Some(&format!("1={SECRET},2={SECRET_APP2},1234567890={SECRET}")),
    )
    .unwrap();
    Verifier::new(secrets, max_skew_secs)
}

/// The real router on a real socket, over a fresh database.
#[derive(Clone)]
pub struct TestApp {
    pub addr: SocketAddr,
    pub pool: PgPool,
    pub client: reqwest::Client,
}

impl TestApp {
    pub async fn spawn() -> Self {
        let pool = migrated_pool().await;
        Self::serve(test_verifier(600), Store::from_pool(pool.clone()), pool).await
    }

    pub async fn serve(verifier: Verifier, store: Store, pool: PgPool) -> Self {
        Self::serve_state(AppState::new(verifier, store), pool).await
    }

    pub async fn serve_state(state: AppState, pool: PgPool) -> Self {
        Self::serve_app(state, None, pool).await
    }

    /// [`TestApp::serve_state`] with the dashboard on, readable with `token`.
    pub async fn serve_with_dashboard(
        state: AppState,
        token: DashboardToken,
        pool: PgPool,
    ) -> Self {
        Self::serve_app(state, Some(token), pool).await
    }

    async fn serve_app(state: AppState, dashboard: Option<DashboardToken>, pool: PgPool) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = state.metrics.clone();
        let router = app(state, dashboard);
        // The binary's own accept loop, with its default client limits.
        tokio::spawn(async move {
            let limits = zegolog::http::ClientLimits::default();
            zegolog::http::serve(listener, router, limits, metrics, std::future::pending())
                .await
                .unwrap()
        });
        Self {
            addr,
            pool,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }

    /// The real router over `store`, with a durable spool of `max_spool_bytes` at `spool_path`
    /// and the default group commit.
    pub async fn serve_with_spool(
        store: Store,
        pool: PgPool,
        spool_path: &Path,
        max_spool_bytes: u64,
    ) -> Self {
        use std::sync::Arc;
        use zegolog::ingest::{BatchConfig, Ingest};
        use zegolog::metrics::Metrics;
        use zegolog::spool::Spool;
        let spool = Arc::new(Spool::open(spool_path, max_spool_bytes).unwrap());
        let metrics = Arc::new(Metrics::default());
        let (ingest, _tasks) =
            Ingest::start(store, Some(spool), BatchConfig::default(), metrics.clone());
        let state = AppState::with_ingest(test_verifier(600), ingest, metrics);
        Self::serve_state(state, pool).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Posts raw bytes with a content type; returns the status and the JSON answer.
    pub async fn post(
        &self,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.post(self.url("/zego/callback")).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.expect("sending the callback");
        let status = response.status();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("answer is not JSON ({e}): {text:?}"));
        (status, body)
    }

    pub async fn post_json(&self, callback: &Value) -> (StatusCode, Value) {
        self.post(Some("application/json"), callback.to_string())
            .await
    }

    pub async fn post_form(&self, callback: &Value) -> (StatusCode, Value) {
        self.post(
            Some("application/x-www-form-urlencoded"),
            form_encode(callback),
        )
        .await
    }

    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }
}

/// Encodes a flat JSON object as an URL-encoded form, as ZEGOCLOUD's POST/FORM mode sends it.
pub fn form_encode(callback: &Value) -> String {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    callback
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            format!(
                "{}={}",
                utf8_percent_encode(k, NON_ALPHANUMERIC),
                utf8_percent_encode(&text, NON_ALPHANUMERIC)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The vendor's room_logout sample (every value a string), with appid 1.
pub fn vendor_sample() -> Value {
    json!({"event":"room_logout","appid":"1","timestamp":"1499676978","nonce":"350176","signature":"signature",
     "room_id":"rid_1242649","room_seq":"6085791336856668982","user_account":"888120154",
     "user_nickname":"888120154","session_id":"792462300429684736","login_time":"1663740623660",
     "logout_time":"1663740627986","reason":"0","user_role":"1","user_update_seq":"13"})
}

/// Sets a fresh timestamp, a random nonce and the matching signature, as ZEGOCLOUD does on
/// every delivery (retries included).
pub fn signed(mut callback: Value) -> Value {
    let secret = match callback["appid"].to_string().trim_matches('"') {
        "2" => SECRET_APP2,
        _ => SECRET,
    };
    let timestamp = chrono::Utc::now().timestamp().to_string();
    sign_with(&mut callback, secret, &timestamp);
    callback
}

pub fn sign_with(callback: &mut Value, secret: &str, timestamp: &str) {
    let nonce = rand::random::<u64>().to_string();
    callback["timestamp"] = json!(timestamp);
    callback["signature"] = json!(sign(secret, timestamp, &nonce));
    callback["nonce"] = json!(nonce);
}

/// A fresh empty database (no migrations), as a URL: it holds the password, do not print it.
pub async fn empty_database_url() -> String {
    let options = empty_database().await;
    let name = options.get_database().expect("test databases are named");
    match &server().embedded {
        Some((pg, _)) => pg.url_for(name),
        None => {
            let mut url = reqwest::Url::parse(&std::env::var("DATABASE_URL").unwrap())
                .expect("DATABASE_URL is not a URL");
            url.set_path(name);
            url.to_string()
        }
    }
}

/// A fresh migrated database, as a URL (it holds the password: do not print it) and a pool,
/// for code that takes a database URL, such as `zegolog loadtest --verify`.
pub async fn migrated_database_url() -> (String, PgPool) {
    let url = empty_database_url().await;
    let pool = PgPoolOptions::new()
        .max_connections(20)
        .connect(&url)
        .await
        .expect("connecting to the test database by URL");
    Store::from_pool(pool.clone()).migrate().await.unwrap();
    (url, pool)
}

/// The `pg_dump` of the PostgreSQL installation the test server runs from (without
/// `DATABASE_URL`), else of the installation `zegolog serve` would use, else the one on `PATH`.
pub fn pg_dump() -> PathBuf {
    match &server().embedded {
        Some((pg, _)) => pg.bindir().join("pg_dump"),
        None => zegolog::embedded_pg::find_bindir()
            .map(|bindir| bindir.join("pg_dump"))
            .unwrap_or_else(|_| PathBuf::from("pg_dump")),
    }
}

pub fn zegolog() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_zegolog"));
    for var in [
        "DATABASE_URL",
        "ZEGOLOG_SECRET",
        "ZEGOLOG_SECRETS",
        "ZEGOLOG_LISTEN",
        "ZEGOLOG_DATA_DIR",
        "ZEGOLOG_TIME_ZONE",
    ] {
        command.env_remove(var);
    }
    command
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `zegolog serve` as a separate process, as an operator runs it.
pub struct Served {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
}

/// Starts `zegolog serve` on a free port with this data dir and environment; waits until its
/// database is ready (`/readyz` says `"database_state":"ready"`).
pub fn serve(data_dir: &Path, extra_env: &[(&str, &str)]) -> Served {
    let served = serve_answering(data_dir, data_dir, extra_env);
    served.wait_for_database();
    served
}

/// Starts `zegolog serve` on a free port with this data dir and environment, its log under
/// `log_dir`; waits only until it answers `/healthz` (its database may not be ready).
pub fn serve_answering(data_dir: &Path, log_dir: &Path, extra_env: &[(&str, &str)]) -> Served {
    let port = free_port();
    let log = log_dir.join(format!("zegolog-{port}.log"));
    let mut command = zegolog();
    command
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data_dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    for (k, v) in extra_env {
        command.env(k, v);
    }
    let child = command.spawn().unwrap();
    let served = Served { child, port, log };
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        if blocking_http::get_ok(port, "/healthz") {
            return served;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("zegolog did not start:\n{}", served.log_text());
}

impl Served {
    /// Waits until `/readyz` says the database is ready (migrated and answering).
    pub fn wait_for_database(&self) {
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            if blocking_http::get(self.port, "/readyz")
                .is_some_and(|(_, body)| body.contains(r#""database_state":"ready""#))
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "zegolog's database did not become ready:\n{}",
            self.log_text()
        );
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill9(mut self) -> String {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.log_text()
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(mut self) -> (std::process::ExitStatus, String) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let status = self.child.wait().unwrap();
        (status, self.log_text())
    }
}

/// A server still running when its test ends (a failed assertion, a panic) is killed, so that a
/// failing test leaves no `zegolog serve` behind holding its port and data directory.
impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A tiny blocking HTTP helper, so that these tests need no runtime of their own.
pub mod blocking_http {
    /// Whether `GET path` on 127.0.0.1:port answers 200. Plain std, so that it works inside
    /// or outside an async runtime.
    pub fn get_ok(port: u16, path: &str) -> bool {
        get(port, path).is_some_and(|(status, _)| status == 200)
    }

    /// `GET path` on 127.0.0.1:port: the status and the body, if it answered.
    pub fn get(port: u16, path: &str) -> Option<(u16, String)> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
        let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
        let mut answer = String::new();
        stream.write_all(request.as_bytes()).ok()?;
        stream.read_to_string(&mut answer).ok()?;
        let status = answer.split(' ').nth(1)?.parse().ok()?;
        let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
        Some((status, body))
    }

    pub fn post_json(url: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let response = ::reqwest::Client::new()
                .post(url)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            (response.status().as_u16(), response.json().await.unwrap())
        })
    }
}

/// A private PostgreSQL of one test's own, for tests that stop and start it.
pub struct OwnPostgres {
    pub dir: PathBuf,
    pg: Option<EmbeddedPostgres>,
}

impl OwnPostgres {
    pub async fn start(prefix: &str) -> Self {
        let dir = temp_data_dir(prefix);
        let pg_dir = dir.join("pg");
        let pg = tokio::task::spawn_blocking(move || EmbeddedPostgres::start(&pg_dir).unwrap())
            .await
            .unwrap();
        Self { dir, pg: Some(pg) }
    }

    pub fn url(&self) -> String {
        self.pg.as_ref().unwrap().url()
    }

    pub async fn stop(&mut self) {
        self.with_server(|pg| pg.stop().unwrap()).await;
    }

    pub async fn restart(&mut self) {
        self.with_server(|pg| pg.restart().unwrap()).await;
    }

    async fn with_server(&mut self, f: impl FnOnce(&mut EmbeddedPostgres) + Send + 'static) {
        let mut pg = self.pg.take().unwrap();
        self.pg = Some(
            tokio::task::spawn_blocking(move || {
                f(&mut pg);
                pg
            })
            .await
            .unwrap(),
        );
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        if let Some(pg) = &self.pg {
            let _ = pg.stop();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The daily duration and reason views, which read the rollups, equal a recomputation from the
/// raw rows (percentiles within the rollups' 1%), days cut in the database's reporting time zone
/// (UTC unless changed: then exactly the UTC days of before).
pub async fn assert_rollups_equal_raw_rows(pool: &PgPool) {
    let zone: String = sqlx::query_scalar("SELECT zegolog_time_zone()")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_rollups_equal_raw_rows_in(pool, &zone).await;
}

/// [`assert_rollups_equal_raw_rows`] with the raw rows' days cut in `zone`.
pub async fn assert_rollups_equal_raw_rows_in(pool: &PgPool, zone: &str) {
    let mismatches: Vec<(String, String)> = sqlx::query_as(
        r#"
        WITH raw AS (
            SELECT (logout_at AT TIME ZONE $1)::date AS day, appid, count(*) AS sessions,
                   sum(duration_ms) / 60000.0 AS total_minutes, max(duration_ms) / 1000.0 AS max_s,
                   percentile_disc(0.5) WITHIN GROUP (ORDER BY duration_ms) / 1000.0 AS p50_s,
                   percentile_disc(0.9) WITHIN GROUP (ORDER BY duration_ms) / 1000.0 AS p90_s,
                   percentile_disc(0.99) WITHIN GROUP (ORDER BY duration_ms) / 1000.0 AS p99_s
            FROM session_durations GROUP BY 1, 2
        )
        SELECT raw.day::text, format('%s vs %s', to_jsonb(raw), to_jsonb(d))
        FROM raw FULL JOIN session_duration_daily AS d USING (day, appid)
        WHERE d.sessions IS DISTINCT FROM raw.sessions
           OR abs(d.total_minutes - raw.total_minutes) > 1e-9
           OR abs(d.max_s - raw.max_s) > 1e-9
           OR abs(d.p50_s - raw.p50_s) > 0.01 * abs(raw.p50_s)
           OR abs(d.p90_s - raw.p90_s) > 0.01 * abs(raw.p90_s)
           OR abs(d.p99_s - raw.p99_s) > 0.01 * abs(raw.p99_s)
        "#,
    )
    .bind(zone)
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(mismatches.is_empty(), "{mismatches:#?}");

    let reason_mismatches: i64 = sqlx::query_scalar(
        r#"
        WITH raw AS (
            SELECT (logout_at AT TIME ZONE $1)::date AS day, appid, reason, count(*) AS logouts,
                   count(*)::float8 / sum(count(*)) OVER (PARTITION BY (logout_at AT TIME ZONE $1)::date, appid) AS share,
                   percentile_disc(0.5) WITHIN GROUP (ORDER BY duration_ms) / 1000.0 AS median_s
            FROM session_durations GROUP BY 1, 2, 3
        )
        SELECT count(*) FROM raw FULL JOIN logout_reasons_daily AS d USING (day, appid, reason)
        WHERE d.logouts IS DISTINCT FROM raw.logouts
           OR abs(d.share - raw.share) > 1e-12
           OR abs(d.median_duration_s - raw.median_s) > 0.01 * abs(raw.median_s)
        "#,
    )
    .bind(zone)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(reason_mismatches, 0);
}

/// Headless Chromium for the end-to-end tests of the dashboard pages.
pub mod browser {
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    const CHROMIUM: &str = "/usr/bin/chromium";

    /// Runs Debian's Chromium headless on `url` with `extra` arguments; returns its standard output.
    pub async fn chromium(url: &str, extra: &[&str]) -> String {
        assert!(
            Path::new(CHROMIUM).exists(),
            "{CHROMIUM} is missing: the end-to-end tests of the dashboard pages need Debian's Chromium. \
             Install it with `apt-get install chromium` (CI does)."
        );
        let profile = tempfile::tempdir().unwrap();
        let mut command = tokio::process::Command::new(CHROMIUM);
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-quic",
                "--no-first-run",
                "--hide-scrollbars",
                "--virtual-time-budget=10000",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(url)
            .kill_on_drop(true);
        let output = tokio::time::timeout(Duration::from_secs(120), command.output())
            .await
            .expect("chromium did not finish within 120 s")
            .expect("starting chromium");
        assert!(
            output.status.success(),
            "chromium failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// The value of `attribute` on the element with `id` in serialized HTML.
    pub fn attribute_of(html: &str, id: &str, attribute: &str) -> Option<String> {
        let start = html.find(&format!(r#"id="{id}""#))?;
        let tag_start = html[..start].rfind('<')?;
        let tag = &html[tag_start..tag_start + html[tag_start..].find('>')?];
        let key = format!(r#"{attribute}=""#);
        let at = tag.find(&key)? + key.len();
        Some(tag[at..at + tag[at..].find('"')?].replace("&amp;", "&"))
    }

    pub fn screenshot_path(name: &str) -> PathBuf {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
        target.join(name)
    }

    /// The value of `attribute` on the page's `<body>` in serialized HTML.
    pub fn body_attribute(html: &str, attribute: &str) -> Option<String> {
        let tag_start = html.find("<body")?;
        let tag = &html[tag_start..tag_start + html[tag_start..].find('>')?];
        let key = format!(r#"{attribute}=""#);
        let at = tag.find(&key)? + key.len();
        Some(tag[at..at + tag[at..].find('"')?].replace("&amp;", "&"))
    }
}
