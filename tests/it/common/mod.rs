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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

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

pub mod browser;
pub mod citus;
mod process;
pub mod served;

pub use process::*;

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

    /// [`TestApp::spawn`] over a database a `zegolog` process can reach too: its URL (which
    /// holds the password: do not print it) and the app.
    pub async fn spawn_with_url() -> (String, Self) {
        let (url, pool) = migrated_database_url().await;
        let app = Self::serve(test_verifier(600), Store::from_pool(pool.clone()), pool).await;
        (url, app)
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
        let metrics = state.metrics().clone();
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

    /// The JSON answer of `GET /readyz`.
    pub async fn readyz(&self) -> Value {
        let response = self.client.get(self.url("/readyz")).send().await.unwrap();
        response.json().await.unwrap()
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

    /// The archived callback bodies ([`ARCHIVE`]).
    pub async fn archived(&self) -> i64 {
        self.count(ARCHIVE).await
    }
}

/// Every archived callback body, as one relation: a stored logout's in its room_logouts row,
/// every other in callback_events.
pub const ARCHIVE: &str = "(SELECT digest, 'room_logout' AS event, appid, body, content_type, received_at,
                                   NULL::text AS refused_reason
                            FROM room_logouts WHERE body IS NOT NULL
                            UNION ALL
                            SELECT digest, event, appid, body, content_type, received_at, refused_reason
                            FROM callback_events) AS archive";

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

/// A day of Unix time, in milliseconds (a UTC day: Unix time has no leap seconds).
pub const DAY_MS: i64 = 86_400_000;

/// How far either side of [`now_ms_clear_of_midnight`] stays on its UTC day: one hour.
pub const MIDNIGHT_MARGIN_MS: i64 = 3_600_000;

/// The current time in Unix milliseconds, moved back when it lies within an hour of a UTC
/// midnight: the anchor for a test that places events relative to the clock and then reads a view
/// that cuts days (in UTC, the default reporting time zone), so that it passes at any time of day.
///
/// Every instant from [`MIDNIGHT_MARGIN_MS`] before the result to less than that after it falls
/// on the result's UTC day: before 01:00 UTC the result is 23:00 UTC of the previous day, from
/// 23:00 UTC it is 23:00 UTC of the same day, otherwise it is now. It is never later than now and
/// less than two hours before it, so events placed up to an hour before it lie within the last
/// three hours (any "last 24 hours" window). Only the event times move: a callback is still
/// signed with the real time ([`signed`]), which the server checks against its clock.
pub fn now_ms_clear_of_midnight() -> i64 {
    clear_of_midnight(chrono::Utc::now().timestamp_millis())
}

fn clear_of_midnight(now_ms: i64) -> i64 {
    let midnight = now_ms - now_ms.rem_euclid(DAY_MS);
    let into_day = now_ms - midnight;
    if into_day < MIDNIGHT_MARGIN_MS {
        midnight - MIDNIGHT_MARGIN_MS
    } else if into_day > DAY_MS - MIDNIGHT_MARGIN_MS {
        midnight + DAY_MS - MIDNIGHT_MARGIN_MS
    } else {
        now_ms
    }
}

#[test]
fn only_the_hour_either_side_of_a_utc_midnight_is_moved_back() {
    let ms = |t: &str| {
        chrono::DateTime::parse_from_rfc3339(t)
            .unwrap()
            .timestamp_millis()
    };
    for (now, anchor) in [
        ("2026-03-10T00:00:00Z", "2026-03-09T23:00:00Z"),
        ("2026-03-10T00:20:00Z", "2026-03-09T23:00:00Z"),
        ("2026-03-10T00:59:59.999Z", "2026-03-09T23:00:00Z"),
        ("2026-03-10T01:00:00Z", "2026-03-10T01:00:00Z"),
        ("2026-03-10T12:34:56.789Z", "2026-03-10T12:34:56.789Z"),
        ("2026-03-10T23:00:00Z", "2026-03-10T23:00:00Z"),
        ("2026-03-10T23:00:00.001Z", "2026-03-10T23:00:00Z"),
        ("2026-03-10T23:59:59.999Z", "2026-03-10T23:00:00Z"),
    ] {
        let got = clear_of_midnight(ms(now));
        assert_eq!(got, ms(anchor), "at {now}");
        assert!(
            got <= ms(now) && ms(now) - got < 2 * MIDNIGHT_MARGIN_MS,
            "at {now}"
        );
        let day = |t: i64| t.div_euclid(DAY_MS);
        assert_eq!(day(got - MIDNIGHT_MARGIN_MS), day(got), "at {now}");
        assert_eq!(day(got + MIDNIGHT_MARGIN_MS - 1), day(got), "at {now}");
    }
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
    let any_day = chrono::NaiveDate::from_ymd_opt(1, 1, 1).unwrap();
    assert_rollups_equal_raw_rows_from(pool, zone, any_day).await;
}

/// [`assert_rollups_equal_raw_rows`] for the days after `first_day` (retention keeps the rollups
/// of its cutoff's whole day, the raw rows from the cutoff on).
pub async fn assert_rollups_equal_raw_rows_after(pool: &PgPool, cutoff_day: chrono::NaiveDate) {
    let zone: String = sqlx::query_scalar("SELECT zegolog_time_zone()")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_rollups_equal_raw_rows_from(pool, &zone, cutoff_day.succ_opt().unwrap()).await;
}

async fn assert_rollups_equal_raw_rows_from(
    pool: &PgPool,
    zone: &str,
    first_day: chrono::NaiveDate,
) {
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
        WHERE day >= $2 AND (d.sessions IS DISTINCT FROM raw.sessions
           OR abs(d.total_minutes - raw.total_minutes) > 1e-9
           OR abs(d.max_s - raw.max_s) > 1e-9
           OR abs(d.p50_s - raw.p50_s) > 0.01 * abs(raw.p50_s)
           OR abs(d.p90_s - raw.p90_s) > 0.01 * abs(raw.p90_s)
           OR abs(d.p99_s - raw.p99_s) > 0.01 * abs(raw.p99_s))
        "#,
    )
    .bind(zone)
    .bind(first_day)
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
        WHERE day >= $2 AND (d.logouts IS DISTINCT FROM raw.logouts
           OR abs(d.share - raw.share) > 1e-12
           OR abs(d.median_duration_s - raw.median_s) > 0.01 * abs(raw.median_s))
        "#,
    )
    .bind(zone)
    .bind(first_day)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(reason_mismatches, 0);
}

/// The text of `sql/<file>` as of a pinned moment, as a subquery's body: every `now()` replaced
/// by `as_of` (the files' `as_of` parameter, and any other window that ends now), the final `;`
/// dropped, so that a test can read a window of days that does not depend on the real date.
pub fn sql_file_as_of(file: &str, as_of: chrono::DateTime<chrono::Utc>) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql").join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("now()"), "{file} has no now() to pin");
    text.replace("now()", &format!("'{}'::timestamptz", as_of.to_rfc3339()))
        .trim_end()
        .trim_end_matches(';')
        .to_owned()
}

/// The documented queries of the repository's `sql/` (its `*.sql` files, sorted; not
/// `sql/citus/`), as `bench-queries` reads a `--sql-dir`.
pub fn documented_sql_files() -> Vec<PathBuf> {
    zegolog::tools::bench_queries::sql_files(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/sql")))
        .expect("reading sql/")
}

/// Posts `callback` to `app` as ZEGOCLOUD delivers it: freshly signed, and again (a retry,
/// signed anew) while the answer is 503, which tells the sender to retry. Without a spool, the
/// in-process server answers 503 when a batch outlasts the write deadline (1.8 s), which a
/// loaded 2-core machine running the suite's PostgreSQL instances and browsers sometimes makes
/// a write do. Any other answer than 200 fails the test.
pub async fn deliver(app: &TestApp, callback: &Value) {
    for _ in 0..20 {
        let (status, body) = app.post_json(&signed(callback.clone())).await;
        match status.as_u16() {
            200 => return,
            503 => tokio::time::sleep(std::time::Duration::from_millis(500)).await,
            _ => panic!("{callback}: {status} {body}"),
        }
    }
    panic!("{callback}: still 503 after 20 deliveries");
}
