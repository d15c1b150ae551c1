//! Driving `zegolog serve` processes ([`Served`]) in the tests of outages, faults, durability and
//! several instances: a PostgreSQL of the test's own to serve over ([`Rig`]) and a load test
//! against it, the serve environment, logouts of a named run posted over HTTP, `/readyz`,
//! waiting for the spool to drain, and counting a run's logouts.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::PgPool;
use zegolog::tools::loadtest::LoadtestConfig;

use super::{serve, signed, vendor_sample, OwnPostgres, Served, SECRET};

/// A PostgreSQL and a data dir for zegolog, both this test's own.
pub struct Rig {
    pg: OwnPostgres,
}

impl Rig {
    pub async fn new(prefix: &str) -> Self {
        Self {
            pg: OwnPostgres::start(prefix).await,
        }
    }

    pub fn url(&self) -> String {
        self.pg.url()
    }

    pub fn serve(&self) -> Served {
        let data_dir = self.pg.dir.join("zegolog");
        std::fs::create_dir_all(&data_dir).unwrap();
        serve(
            &data_dir,
            &[
                ("DATABASE_URL", &self.url()),
                ("ZEGOLOG_SECRET", SECRET),
                ("ZEGOLOG_LOG", "info,zegolog::http=warn"),
            ],
        )
    }

    pub async fn stop_db(&mut self) {
        self.pg.stop().await;
    }

    pub async fn start_db(&mut self) {
        self.pg.restart().await;
    }
}

pub fn load(served: &Served, rig: &Rig, connections: usize, secs: u64) -> LoadtestConfig {
    let mut args = LoadtestConfig::for_bench(
        served.url("/zego/callback"),
        SECRET.into(),
        connections,
        Duration::from_secs(secs),
        rig.url(),
    );
    args.duplicates = 0.1;
    args.request_timeout_secs = 10;
    args
}

/// A logout of its own: session `n` of user `user-(n % 50)` in one of ten rooms. The same `n`
/// gives the same business fields (a retry).
pub fn logout(run: &str, n: u64) -> Value {
    static START_MS: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let start_ms = *START_MS.get_or_init(|| chrono::Utc::now().timestamp_millis() - 60_000);
    let mut callback = vendor_sample();
    let logout_ms = start_ms + n as i64;
    callback["room_id"] = json!(format!("{run}-room-{}", n % 10));
    callback["user_account"] = json!(format!("user-{}", n % 50));
    callback["session_id"] = json!((1_000_000 + n).to_string());
    callback["login_time"] = json!((logout_ms - 1_000 - (n as i64 % 97) * 7_919).to_string());
    callback["logout_time"] = json!(logout_ms.to_string());
    callback["reason"] = json!((n % 5).to_string());
    callback
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Posts a freshly signed copy of `callback`; the status and the answer's code.
pub async fn post(client: &reqwest::Client, served: &Served, callback: &Value) -> (u16, String) {
    match client
        .post(served.url("/zego/callback"))
        .header("content-type", "application/json")
        .body(signed(callback.clone()).to_string())
        .send()
        .await
    {
        Ok(response) => {
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, body["code"].as_str().unwrap_or("").to_owned())
        }
        Err(error) => (0, error.to_string()),
    }
}

pub async fn readyz(client: &reqwest::Client, served: &Served) -> (u16, Value) {
    let response = client.get(served.url("/readyz")).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Waits until `/readyz` says the database is ready and the spool is empty.
pub async fn wait_drained(client: &reqwest::Client, served: &Served, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let (_, ready) = readyz(client, served).await;
        if ready["database_state"] == "ready" && ready["spool_depth"] == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not drained within {within:?}: {ready}\n{}",
            served.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn logouts_of_run(pool: &PgPool, run: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM room_logouts WHERE room_id LIKE $1 || '-%'")
        .bind(run)
        .fetch_one(pool)
        .await
        .unwrap()
}

pub async fn pool(url: &str) -> PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(url)
        .await
        .unwrap()
}

pub fn serve_env<'a>(url: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("DATABASE_URL", url),
        ("ZEGOLOG_SECRET", SECRET),
        ("ZEGOLOG_LOG", "info,zegolog::http=warn,tower_http=warn"),
    ];
    env.extend_from_slice(extra);
    env
}
