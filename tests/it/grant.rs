//! `zegolog grant-analyst`: the role logs in with its password over TCP, reads every view,
//! and can do nothing else: no raw table, no write, no new object.

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::{signed, vendor_sample, TestApp};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool};
use zegolog::grant::grant_analyst;
use zegolog::report::{Report, ReportQuery};

const PASSWORD: &str = "correct horse battery staple";

/// A role name of this test process; roles belong to the whole server, databases do not.
fn role_name(prefix: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

async fn grant(pool: &PgPool, role: &str, password: Option<&str>) -> zegolog::grant::GrantSummary {
    let mut conn = pool.acquire().await.unwrap();
    grant_analyst(&mut conn, role, password).await.unwrap()
}

/// Logs in as `role` with a password, over TCP, to the database of `url`.
async fn login(url: &str, role: &str, password: &str) -> Result<PgConnection, sqlx::Error> {
    let options: PgConnectOptions = url.parse().unwrap();
    PgConnection::connect_with(&options.username(role).password(password)).await
}

async fn names(pool: &PgPool, relkinds: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind::text = ANY(string_to_array($1, ',')) ORDER BY 1",
    )
    .bind(relkinds)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// The statement fails for lack of privileges (SQLSTATE 42501).
async fn denied(conn: &mut PgConnection, sql: &str) {
    match sqlx::raw_sql(sql).execute(&mut *conn).await {
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42501") => {}
        other => panic!("{sql}: expected permission denied, got {other:?}"),
    }
}

async fn drop_role(pool: &PgPool, role: &str) {
    let quoted: String = sqlx::query_scalar("SELECT quote_ident($1)")
        .bind(role)
        .fetch_one(pool)
        .await
        .unwrap();
    let _ = sqlx::raw_sql(&format!("DROP OWNED BY {quoted}; DROP ROLE {quoted}"))
        .execute(pool)
        .await;
}

#[tokio::test]
async fn analyst_logs_in_reads_every_view_and_nothing_else() {
    let (url, app) = TestApp::spawn_with_url().await;
    let pool = app.pool.clone();
    let (status, _) = app.post_json(&signed(vendor_sample())).await;
    assert!(status.is_success());
    let role = role_name("analyst");

    let summary = grant(&pool, &role, Some(PASSWORD)).await;

    assert!(summary.created && summary.password_set);
    let views = names(&pool, "v,m").await;
    assert_eq!(summary.views, views);
    for view in [
        "session_durations",
        "session_duration_daily",
        "logout_reasons_daily",
        "peak_concurrency_daily",
        "room_peak_concurrency_daily",
    ] {
        assert!(views.iter().any(|v| v == view), "{view} not granted");
    }
    assert!(login(&url, &role, "wrong password").await.is_err());
    let mut analyst = login(&url, &role, PASSWORD)
        .await
        .expect("the analyst logs in");

    let mut unreadable = Vec::new();
    for view in &views {
        if let Err(e) = sqlx::raw_sql(&format!("SELECT * FROM public.{view} LIMIT 1"))
            .execute(&mut analyst)
            .await
        {
            unreadable.push(format!("{view}: {e}"));
        }
    }
    // grant-analyst found the same ones without reading a row.
    let predicted: Vec<&str> = summary
        .unreadable_views
        .as_ref()
        .expect("the test server's user can take the role")
        .iter()
        .map(|(view, _)| view.as_str())
        .collect();
    let seen: Vec<&str> = unreadable
        .iter()
        .map(|u| u.split(':').next().unwrap())
        .collect();
    assert_eq!(predicted, seen);
    assert!(
        unreadable.is_empty(),
        "views an analyst cannot read:\n{}",
        unreadable.join("\n")
    );
    let duration: i64 = sqlx::query_scalar("SELECT duration_ms FROM session_durations")
        .fetch_one(&mut analyst)
        .await
        .unwrap();
    assert_eq!(duration, 4326);

    let tables = names(&pool, "r,p").await;
    assert!(tables.iter().any(|t| t == "callback_events"));
    assert!(tables.iter().any(|t| t == "room_logouts"));
    for table in &tables {
        denied(
            &mut analyst,
            &format!("SELECT * FROM public.{table} LIMIT 1"),
        )
        .await;
        denied(&mut analyst, &format!("DELETE FROM public.{table}")).await;
        denied(&mut analyst, &format!("TRUNCATE public.{table}")).await;
    }
    denied(
        &mut analyst,
        "INSERT INTO room_logouts (appid, room_id, user_account, session_id, login_time, logout_time)
         VALUES (1, 'r', 'u', 1, now(), now())",
    )
    .await;
    denied(&mut analyst, "UPDATE room_logouts SET reason = 1").await;
    denied(
        &mut analyst,
        "UPDATE callback_events SET refused_reason = 'x'",
    )
    .await;
    // room_peak_concurrency_daily is a simple view, so PostgreSQL could write through it: not for
    // this role.
    denied(&mut analyst, "DELETE FROM room_peak_concurrency_daily").await;
    denied(
        &mut analyst,
        "UPDATE room_peak_concurrency_daily SET room_id = 'x'",
    )
    .await;
    denied(&mut analyst, "CREATE TABLE public.mine (x int)").await;
    denied(&mut analyst, "CREATE VIEW public.mine AS SELECT 1").await;
    denied(&mut analyst, "CREATE SCHEMA mine").await;
    // The rollup compaction writes, as whoever calls it.
    denied(&mut analyst, "SELECT zegolog_compact_rollups()").await;
    assert_eq!(app.count("room_logouts").await, 1);

    // zegolog report needs nothing more than the views.
    let query = ReportQuery::new(
        Some(1),
        Some("2022-09-21".parse().unwrap()),
        Some("2022-09-21".parse().unwrap()),
        10,
        "2022-09-21".parse().unwrap(),
    )
    .unwrap();
    let report = Report::load(&mut analyst, &query).await.unwrap();
    assert_eq!(report.daily.rows.len(), 1);

    // So do the documented queries, some of which call the views' windowed functions; the one
    // over quarantined payloads (callback_events) is for on-call engineers, not analysts.
    for file in common::documented_sql_files() {
        let sql = std::fs::read_to_string(&file).unwrap();
        if sql.contains("callback_events") {
            denied(&mut analyst, &sql).await;
        } else if let Err(e) = sqlx::query(&sql).fetch_all(&mut analyst).await {
            panic!("the analyst cannot run {}: {e}", file.display());
        }
    }

    analyst.close().await.unwrap();
    drop_role(&pool, &role).await;
}

#[tokio::test]
async fn granting_again_takes_away_rights_added_since_and_adds_new_views() {
    let (url, pool) = common::migrated_database_url().await;
    // A role name that needs quoting, with a quote and a statement in it.
    let role = role_name("Analyst \"ops\"; DROP TABLE room_logouts; --");
    let first = grant(&pool, &role, Some(PASSWORD)).await;
    assert!(first.created);
    let quoted: String = sqlx::query_scalar("SELECT quote_ident($1)")
        .bind(&role)
        .fetch_one(&pool)
        .await
        .unwrap();
    // Someone widened it by hand, and a later migration added a view.
    for statement in [
        format!("GRANT SELECT, INSERT ON callback_events TO {quoted}"),
        format!("GRANT CREATE ON SCHEMA public TO {quoted}"),
        format!("GRANT pg_read_all_data TO {quoted}"),
        format!("ALTER ROLE {quoted} CREATEDB"),
        "CREATE VIEW rooms_per_app AS SELECT appid, count(DISTINCT room_id) AS rooms FROM room_logouts GROUP BY appid".to_owned(),
        "GRANT SELECT ON room_logins TO PUBLIC".to_owned(),
    ] {
        sqlx::raw_sql(&statement).execute(&pool).await.unwrap();
    }

    let second = grant(&pool, &role, None).await;

    assert!(!second.created && !second.password_set);
    assert_eq!(second.left_roles, ["pg_read_all_data"]);
    assert!(second.views.iter().any(|v| v == "rooms_per_app"));
    let mut analyst = login(&url, &role, PASSWORD)
        .await
        .expect("the password is kept");
    sqlx::raw_sql("SELECT * FROM rooms_per_app")
        .execute(&mut analyst)
        .await
        .unwrap();
    denied(&mut analyst, "SELECT * FROM callback_events").await;
    denied(&mut analyst, "SELECT * FROM room_logins").await;
    denied(&mut analyst, "INSERT INTO callback_events (digest, event, appid, body, content_type) VALUES ('\\x00', 'e', 1, '{}', 'x')").await;
    denied(&mut analyst, "CREATE TABLE public.mine (x int)").await;
    let createdb: bool = sqlx::query_scalar("SELECT rolcreatedb FROM pg_roles WHERE rolname = $1")
        .bind(&role)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(!createdb);
    assert_eq!(
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM room_logouts")
            .fetch_one(&pool)
            .await
            .unwrap(),
        0,
        "the table is still there"
    );
    analyst.close().await.unwrap();
    drop_role(&pool, &role).await;
}

#[tokio::test]
async fn roles_that_cannot_be_made_read_only_are_refused() {
    let (_url, pool) = common::migrated_database_url().await;
    let me: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&pool)
        .await
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let error = grant_analyst(&mut conn, &me, None).await.unwrap_err();
    assert!(
        error.to_string().contains("running this command"),
        "{error}"
    );

    let owner = role_name("owner");
    sqlx::raw_sql(&format!(
        "CREATE ROLE {owner}; CREATE TABLE owned_elsewhere (x int); ALTER TABLE owned_elsewhere OWNER TO {owner}"
    ))
    .execute(&pool)
    .await
    .unwrap();
    let error = grant_analyst(&mut conn, &owner, None).await.unwrap_err();
    assert!(error.to_string().contains("owns"), "{error}");

    let error = grant_analyst(&mut conn, "new_role", Some("naïve"))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("ASCII"), "{error}");
    drop(conn);
    drop_role(&pool, &owner).await;
}

#[tokio::test]
async fn the_command_takes_the_password_from_the_named_variable() {
    let (url, pool) = common::migrated_database_url().await;
    let role = role_name("cli_analyst");

    let output = common::zegolog()
        .args(["grant-analyst", &role, "--password-env", "ANALYST_PASSWORD"])
        .env("DATABASE_URL", &url)
        .env("ANALYST_PASSWORD", PASSWORD)
        .output()
        .unwrap();

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("created"), "{stdout}");
    assert!(stdout.contains("password: set"), "{stdout}");
    assert!(!stdout.contains(PASSWORD));
    let mut analyst = login(&url, &role, PASSWORD)
        .await
        .expect("the analyst logs in");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM session_duration_daily")
        .fetch_one(&mut analyst)
        .await
        .unwrap();
    assert_eq!(n, 0);
    denied(&mut analyst, "SELECT * FROM callback_events").await;
    analyst.close().await.unwrap();

    let output = common::zegolog()
        .args(["grant-analyst", &role, "--password-env", "NOT_SET_ANYWHERE"])
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("NOT_SET_ANYWHERE is not set"));
    drop_role(&pool, &role).await;
}
