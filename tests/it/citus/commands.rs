//! The operator commands and the dashboard on the cluster, each run as on one PostgreSQL (the
//! real binary where the plain tests run it) on the same callbacks, with the same answer:
//! `report`, the dashboard's API, the `sql/` files, `time-zone set`, `import` and
//! `quarantine release`.

use super::common;

use std::io::Write;

use common::citus::citus_database;
use common::{signed, test_verifier, vendor_sample, TestApp};
use serde_json::{json, Value};
use sqlx::PgPool;
use zegolog::dashboard::DashboardToken;
use zegolog::http::AppState;
use zegolog::store::Store;

use super::views::{ingest, rows};
use super::{citus_form, read_query, traffic, zegolog};

const TOKEN: &str = "dashboard-test-token-0123456789";

/// The views an operator command changes, compared between the cluster and one PostgreSQL
/// after it.
pub(super) const COMPARED: [&str; 6] = [
    "SELECT * FROM session_durations",
    "SELECT * FROM session_duration_daily",
    "SELECT * FROM logout_reasons_daily",
    "SELECT * FROM peak_concurrency_daily",
    "SELECT * FROM room_peak_concurrency_daily",
    "SELECT * FROM room_lifecycle",
];

/// A server with the dashboard on, over `pool`.
async fn serve(pool: PgPool) -> TestApp {
    let state = AppState::new(test_verifier(600), Store::from_pool(pool.clone()));
    TestApp::serve_with_dashboard(state, DashboardToken::parse(TOKEN).unwrap(), pool).await
}

/// One PostgreSQL and the cluster, each with its URL and a server with the dashboard on.
async fn plain_and_cluster() -> ((String, TestApp), (String, TestApp)) {
    let (plain_url, plain_pool) = common::migrated_database_url().await;
    let (cluster_url, cluster_pool) = citus_database().await;
    (
        (plain_url, serve(plain_pool).await),
        (cluster_url, serve(cluster_pool).await),
    )
}

/// The answer of the dashboard's `path_and_query`, without the time it was made.
async fn api(app: &TestApp, path_and_query: &str) -> Value {
    let response = app
        .client
        .get(app.url(path_and_query))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let mut body: Value = response.json().await.unwrap();
    assert_eq!(status.as_u16(), 200, "{path_and_query}: {body}");
    if let Some(answer) = body.as_object_mut() {
        answer.remove("generated_at");
    }
    body
}

/// The rows of `query` on both, compared; a query over windows ending now() may straddle a
/// minute between the two runs, so an unequal answer is asked again, twice at most.
pub(super) async fn same_rows(plain: &PgPool, cluster: &PgPool, query: &str) -> usize {
    same_rows_as(plain, query, cluster, query).await
}

/// [`same_rows`], with the cluster asked `cluster_query` (a query's Citus form).
async fn same_rows_as(plain: &PgPool, query: &str, cluster: &PgPool, cluster_query: &str) -> usize {
    let mut last = None;
    for _ in 0..3 {
        let expected = rows(plain, query)
            .await
            .unwrap_or_else(|e| panic!("{query}: {e}"));
        let got = rows(cluster, cluster_query)
            .await
            .unwrap_or_else(|e| panic!("on the cluster, {cluster_query}: {e}"));
        if got == expected {
            return got.len();
        }
        last = Some((got, expected));
    }
    let (got, expected) = last.unwrap();
    panic!("{query}: the cluster answered {got:#?}, one PostgreSQL {expected:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_dashboard_and_sql_files_on_the_cluster_equal_one_postgresql() {
    let ((plain_url, plain), (cluster_url, cluster)) = plain_and_cluster().await;
    let callbacks = traffic(8, 9);
    ingest(&plain, &callbacks).await;
    ingest(&cluster, &callbacks).await;
    let today = chrono::Utc::now().date_naive();
    let (from, to) = (
        (today - chrono::Days::new(4)).to_string(),
        today.to_string(),
    );

    // `zegolog report`, every section, for every app and for app 1, in JSON and as a table.
    for args in [
        vec!["report", "--format", "json", "--from", &from, "--to", &to],
        vec![
            "report", "--appid", "1", "--format", "table", "--from", &from, "--to", &to,
        ],
    ] {
        let expected = zegolog(&plain_url, &args).await;
        let got = zegolog(&cluster_url, &args).await;
        assert_eq!(got, expected, "zegolog {args:?}");
        assert!(expected.contains("heartbeat_timeout"), "{expected}");
    }

    // The dashboard's data: every route of its API, and the incident view's.
    let range = format!("appid=1&from={from}&to={to}");
    let until = (chrono::Utc::now() - chrono::Duration::days(1)).format("%Y-%m-%dT%H:%M:%SZ");
    let incident = format!("appid=1&last=24h&bucket=5m&until={until}");
    for path in [
        "/dashboard/api/apps".to_owned(),
        format!("/dashboard/api/histogram?{range}"),
        format!("/dashboard/api/durations?{range}"),
        format!("/dashboard/api/reasons?{range}"),
        format!("/dashboard/api/concurrency?{range}"),
        format!("/dashboard/api/incident/reasons?{incident}"),
        format!("/dashboard/api/incident/online?{incident}"),
        format!("/dashboard/api/incident/offenders?{incident}"),
    ] {
        let expected = api(&plain, &path).await;
        assert_eq!(api(&cluster, &path).await, expected, "{path}");
        assert_ne!(expected.to_string().len(), 0);
    }

    // Every documented query of sql/, as an analyst runs it. The one with a Citus form in
    // sql/citus/ (an index top-1 per day on one PostgreSQL, which Citus cannot run against the
    // distributed room rollups) must be refused as written, never answered wrong, and its
    // Citus form must give one PostgreSQL's rows.
    let mut answered = 0;
    for file in common::documented_sql_files() {
        let query = read_query(&file);
        let citus_form = citus_form(&file);
        let rows_seen = if citus_form.exists() {
            let refused = rows(&cluster.pool, &query).await.unwrap_err().to_string();
            assert!(refused.contains("lateral"), "{refused}");
            same_rows_as(&plain.pool, &query, &cluster.pool, &read_query(&citus_form)).await
        } else {
            same_rows(&plain.pool, &cluster.pool, &query).await
        };
        if rows_seen > 0 {
            answered += 1;
        }
    }
    assert!(answered >= 8, "only {answered} sql/ files had rows");
}

/// `zegolog import PATH` run to the end: again, as its summary says to, when it stopped early
/// because one callback missed the write deadline (1.8 s, which a loaded 2-core machine
/// running the three nodes and the rest of the suite sometimes makes a single write miss on
/// the cluster); the summary of the run that read the whole file.
async fn import_until_done(url: &str, path: &str) -> String {
    for _ in 0..5 {
        let mut command = common::zegolog();
        command
            .args(["import", path, "--batch-size", "20"])
            .env("DATABASE_URL", url);
        let output = tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap();
        let stdout = String::from_utf8(output.stdout).unwrap();
        if output.status.success() {
            return stdout;
        }
        assert!(
            stdout.contains("stopped early") && stdout.contains("did not answer within"),
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    panic!("zegolog import {path}: stopped early five times");
}

/// A quarantined callback: a genuine logout's signature triple on another body (as in
/// `replay::released_callback_is_stored_once`).
fn genuine_and_unlucky() -> (Value, Value) {
    let mut callback = vendor_sample();
    callback["session_id"] = json!("1");
    let genuine = signed(callback);
    let mut unlucky = genuine.clone();
    unlucky["user_account"] = json!("unlucky");
    unlucky["user_nickname"] = json!("unlucky");
    unlucky["reason"] = json!("3");
    (genuine, unlucky)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_time_zone_set_and_quarantine_release_on_the_cluster_equal_one_postgresql() {
    let ((plain_url, plain), (cluster_url, cluster)) = plain_and_cluster().await;
    // `zegolog import`, twice: the second stores nothing.
    let callbacks = traffic(6, 8);
    let mut file = tempfile::NamedTempFile::new().unwrap();
    for callback in &callbacks {
        writeln!(file, "{}", signed(callback.clone())).unwrap();
    }
    let path = file.path().to_str().unwrap().to_owned();
    for (url, app) in [(&plain_url, &plain), (&cluster_url, &cluster)] {
        let first = import_until_done(url, &path).await;
        let again = import_until_done(url, &path).await;
        // A batch past the write deadline is written again and its callbacks then count as
        // duplicates (the summary says so); what is stored is each callback once.
        assert!(first.contains("quarantined 0, refused 0"), "{first}");
        assert!(again.contains("stored 0, duplicate 108"), "{again}");
        let stored: (i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM room_logouts), (SELECT count(*) FROM room_logins),
                    (SELECT count(*) FROM room_lifecycle_events)",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap();
        assert_eq!(stored, super::counts(&callbacks), "{first}");
        Store::from_pool(app.pool.clone())
            .compact_rollups()
            .await
            .unwrap();
    }
    let compared = COMPARED;
    for query in compared {
        assert!(
            same_rows(&plain.pool, &cluster.pool, query).await > 0,
            "{query}"
        );
    }

    // `zegolog time-zone set`: the rollups rebuilt in the new zone from the raw rows.
    for url in [&plain_url, &cluster_url] {
        let out = zegolog(url, &["time-zone", "set", "Asia/Shanghai"]).await;
        assert!(out.contains("UTC -> Asia/Shanghai"), "{out}");
    }
    for query in compared {
        assert!(
            same_rows(&plain.pool, &cluster.pool, query).await > 0,
            "{query}"
        );
    }
    common::assert_rollups_equal_raw_rows_in(&cluster.pool, "Asia/Shanghai").await;

    // `zegolog quarantine release`: stored once, the second release refused.
    let (genuine, unlucky) = genuine_and_unlucky();
    for (url, app) in [(&plain_url, &plain), (&cluster_url, &cluster)] {
        assert_eq!(app.post_json(&genuine).await.1["code"], "stored");
        assert_eq!(app.post_json(&unlucky).await.1["code"], "quarantined");
        let id: i64 = sqlx::query_scalar(
            "SELECT id FROM callback_events WHERE refused_reason LIKE 'signature reuse:%'",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap();
        let listed = zegolog(url, &["quarantine", "list"]).await;
        assert!(listed.contains(&id.to_string()), "{listed}");
        let released = zegolog(url, &["quarantine", "release", &id.to_string()]).await;
        assert!(released.contains("released (stored"), "{released}");
        let mut again = common::zegolog();
        again
            .args(["quarantine", "release", &id.to_string()])
            .env("DATABASE_URL", url);
        let again = tokio::task::spawn_blocking(move || again.output().unwrap())
            .await
            .unwrap();
        assert!(!again.status.success());
        assert!(String::from_utf8_lossy(&again.stdout).contains("not quarantined"));
        Store::from_pool(app.pool.clone())
            .compact_rollups()
            .await
            .unwrap();
    }
    let unlucky_rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM room_logouts WHERE user_account = 'unlucky'")
            .fetch_one(&cluster.pool)
            .await
            .unwrap();
    assert_eq!(unlucky_rows, 1, "released once, stored once");
    for query in compared {
        same_rows(&plain.pool, &cluster.pool, query).await;
    }
    common::assert_rollups_equal_raw_rows_in(&cluster.pool, "Asia/Shanghai").await;
}
