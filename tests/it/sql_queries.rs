//! Every documented query in `sql/` runs against the migrated schema with data in it, and the
//! daily views agree with the per-session view they summarise.

use crate::common;

use common::{signed, vendor_sample, TestApp};
use serde_json::json;
use zegolog::tools::bench_queries::{documented_queries, EMBEDDED_SQL};

/// Logouts spread over the last day: rooms, users, reasons and durations of all kinds.
async fn seed(app: &TestApp) {
    let now_ms = chrono::Utc::now().timestamp_millis();
    for i in 0..40i64 {
        let mut callback = vendor_sample();
        let logout = now_ms - i * 30 * 60 * 1000 / 2;
        let duration = [4_000, 9_000, 60_000, 600_000, 3_600_000][i as usize % 5];
        callback["room_id"] = json!(format!("room-{}", i % 3));
        callback["user_account"] = json!(format!("user-{}", i % 4));
        callback["session_id"] = json!(i.to_string());
        callback["reason"] = json!((i % 6).to_string());
        callback["user_role"] = json!(["1", "2", "4", "9"][i as usize % 4]);
        callback["login_time"] = json!((logout - duration).to_string());
        callback["logout_time"] = json!(logout.to_string());
        let (status, body) = app.post_json(&signed(callback)).await;
        assert!(status.is_success(), "{body}");
    }
    let mut broken = vendor_sample();
    broken["login_time"] = json!("not a time");
    app.post_json(&signed(broken)).await;

    // Logins still without a logout, a room lifecycle created and closed, and a compaction of
    // the rollups, for the queries on open sessions, room lifecycles and daily peaks.
    let seq = vendor_sample()["room_seq"].clone();
    for i in 0..3i64 {
        let login = json!({"event": "room_login", "appid": "1", "room_id": format!("room-{i}"),
            "room_seq": seq, "user_account": format!("user-{i}"), "session_id": (1000 + i).to_string(),
            "login_time": (now_ms - (i + 1) * 60_000).to_string(), "user_role": "2"});
        let (status, body) = app.post_json(&signed(login)).await;
        assert!(status.is_success(), "{body}");
    }
    for room_event in [
        json!({"event": "room_create", "appid": "1", "room_id": "room-0", "room_session_id": seq,
               "room_create_time": (now_ms - 11 * 3_600_000).to_string(), "id_name": "user-0"}),
        json!({"event": "room_close", "appid": "1", "room_id": "room-0", "room_session_id": seq,
               "room_close_time": now_ms.to_string(), "close_reason": "0"}),
    ] {
        let (status, body) = app.post_json(&signed(room_event)).await;
        assert!(status.is_success(), "{body}");
    }
    sqlx::query("SELECT zegolog_compact_rollups()")
        .execute(&app.pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn every_sql_file_runs_and_returns_rows() {
    let app = TestApp::spawn().await;
    seed(&app).await;

    let files = common::documented_sql_files();
    assert!(files.len() >= 4, "sql/ holds at least four queries");
    for file in files {
        let sql = std::fs::read_to_string(&file).unwrap();
        let rows = sqlx::query(&sql)
            .fetch_all(&app.pool)
            .await
            .unwrap_or_else(|e| panic!("{} failed: {e}", file.display()));
        assert!(
            !rows.is_empty(),
            "{} returned no rows on seeded data",
            file.display()
        );
    }
}

/// `zegolog bench-queries` times the `sql/` files built into the binary, so that an installed
/// binary has them: they are exactly the files of `sql/`, names and contents.
#[test]
fn the_binary_embeds_every_file_of_sql_dir() {
    let on_disk: Vec<(String, String)> = common::documented_sql_files()
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_str().unwrap().to_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();

    let on_disk_names: Vec<&str> = on_disk.iter().map(|(name, _)| name.as_str()).collect();
    let embedded_names: Vec<&str> = EMBEDDED_SQL.iter().map(|&(name, _)| name).collect();
    assert_eq!(embedded_names, on_disk_names);
    for ((name, text), &(_, embedded)) in on_disk.iter().zip(EMBEDDED_SQL) {
        assert!(
            embedded == text,
            "the embedded {name} is not sql/{name} (a stale build?)"
        );
    }
    let defaults = documented_queries(None).unwrap();
    assert_eq!(defaults, on_disk, "the default is the embedded files");
}

/// `--sql-dir` reads its directory's `.sql` files at run time, sorted by name, nothing else.
#[test]
fn sql_dir_is_read_at_run_time() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("b.sql"), "SELECT 2").unwrap();
    std::fs::write(dir.path().join("a.sql"), "SELECT 1").unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a query").unwrap();

    let queries = documented_queries(Some(dir.path())).unwrap();

    assert_eq!(
        queries,
        [
            ("a.sql".to_owned(), "SELECT 1".to_owned()),
            ("b.sql".to_owned(), "SELECT 2".to_owned())
        ]
    );
    let missing = documented_queries(Some(&dir.path().join("missing"))).unwrap_err();
    assert!(format!("{missing:#}").contains("--sql-dir"), "{missing:#}");
}

#[tokio::test]
async fn daily_views_agree_with_session_durations() {
    let app = TestApp::spawn().await;
    seed(&app).await;

    let shares_sum_to_one: bool = sqlx::query_scalar(
        "SELECT bool_and(abs(total - 1) < 1e-9) FROM (
             SELECT sum(share) AS total FROM logout_reasons_daily GROUP BY day, appid) t",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(shares_sum_to_one);
    let mismatches: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM session_duration_daily d
         JOIN (SELECT (logout_at AT TIME ZONE 'UTC')::date AS day, appid, count(*) AS sessions,
                      max(duration_ms) / 1000.0 AS max_s
               FROM session_durations GROUP BY 1, 2) s USING (day, appid)
         WHERE d.sessions <> s.sessions OR abs(d.max_s - s.max_s::float8) > 1e-6",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(mismatches, 0);
    let reasons: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT reason FROM session_durations ORDER BY 1")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        reasons,
        [
            "connection_lost",
            "heartbeat_timeout",
            "kicked_out",
            "normal",
            "token_expired",
            "unknown"
        ]
    );
    let roles: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT role FROM session_durations ORDER BY 1")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(roles, ["admin", "audience", "host", "unknown"]);
}
