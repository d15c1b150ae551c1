//! `zegolog import`: a JSON-lines backfill goes through the live write path, so it is
//! idempotent against itself and against what `serve` received; bad lines are counted and
//! named, never fatal.

use crate::common;

use std::io::Write;

use chrono::{Datelike, Utc};
use common::{signed, vendor_sample, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use zegolog::import::{import, ImportOptions, ImportSummary, Input, MAX_LINE_BYTES};
use zegolog::store::{PoolConfig, Store};

fn options(batch_size: usize) -> ImportOptions {
    ImportOptions {
        batch_size,
        writers: 3,
        progress: false,
    }
}

async fn import_text(app: &TestApp, text: impl Into<Vec<u8>>, batch_size: usize) -> ImportSummary {
    let bytes: Vec<u8> = text.into();
    let len = bytes.len() as u64;
    let store = Store::from_pool(app.pool.clone());
    let input = Input::from_reader("test.jsonl", std::io::Cursor::new(bytes), Some(len));
    import(&store, input, &options(batch_size)).await.unwrap()
}

fn logout(session: u64, logout_ms: i64, reason: &str) -> Value {
    let mut callback = vendor_sample();
    callback["session_id"] = json!(session.to_string());
    callback["login_time"] = json!((logout_ms - 60_000).to_string());
    callback["logout_time"] = json!(logout_ms.to_string());
    callback["reason"] = json!(reason);
    callback
}

fn lines(callbacks: &[Value]) -> String {
    callbacks.iter().map(|c| format!("{c}\n")).collect()
}

async fn scalar(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&app.pool).await.unwrap()
}

#[tokio::test]
async fn a_file_of_every_kind_of_line_is_imported_and_summarised() {
    let app = TestApp::spawn().await;
    let now = Utc::now().timestamp_millis();
    let first = logout(1, now - 5_000, "2");
    let mut retried = first.clone();
    retried["timestamp"] = json!("1700000000");
    retried["nonce"] = json!("another");
    retried["signature"] = json!("another");
    let mut quarantined = logout(2, now, "0");
    quarantined["logout_time"] = json!("abc");
    let mut no_nonce = logout(3, now, "0");
    no_nonce.as_object_mut().unwrap().remove("nonce");
    let login = json!({"event":"room_login","appid":1,"timestamp":1499676978,"nonce":"1",
        "signature":"s","room_id":"r","room_name":"R","room_seq":"5","user_account":"u",
        "session_id":"0","login_time":now - 70_000,"user_role":"2"});
    let stream = json!({"event":"stream_create","appid":"1","timestamp":"1","nonce":"2",
        "signature":"s","stream_id":"abc"});
    let text = format!(
        "{first}\n\
         {retried}\r\n\
         \n\
         not json at all\n\
         {quarantined}\n\
         [1, 2]\n\
         {no_nonce}\n\
         {login}\n   \n\
         {stream}\n\
         {{\"event\":\"room_logout\",\"appid\":\"1\",\"appid\":\"2\"}}\n\
         {}",
        logout(4, now, "0")
    );

    let summary = import_text(&app, text.clone(), 500).await;

    assert_eq!(summary.lines, 12);
    assert_eq!(summary.bytes, text.len() as u64);
    assert_eq!(summary.blank, 2);
    assert_eq!(
        (
            summary.stored,
            summary.duplicate,
            summary.quarantined,
            summary.refused
        ),
        (4, 1, 1, 4),
        "{summary}"
    );
    let refused: Vec<u64> = summary.refused_lines.iter().map(|(n, _)| *n).collect();
    assert_eq!(refused, [4, 6, 7, 11]);
    assert!(summary.refused_lines[2].1.contains("nonce"), "{summary}");
    assert!(
        summary.refused_lines[3].1.contains("more than once"),
        "{summary}"
    );
    assert_eq!(summary.quarantined_lines, [5]);
    assert_eq!(summary.stopped, None);
    assert_eq!(app.count("room_logouts").await, 2);
    assert_eq!(app.count("room_logins").await, 1);
    assert_eq!(app.archived().await, 5);
    assert_eq!(
        scalar(
            &app,
            "SELECT count(*) FROM callback_events WHERE refused_reason LIKE '%logout_time%'"
        )
        .await,
        1
    );
    let text = summary.to_string();
    assert!(
        text.contains("stored 4, duplicate 1, quarantined 1, refused 4"),
        "{text}"
    );
    assert!(text.contains("line 4: "), "{text}");
}

#[tokio::test]
async fn importing_twice_or_what_serve_received_stores_nothing_twice() {
    let app = TestApp::spawn().await;
    let now = Utc::now().timestamp_millis();
    let callbacks: Vec<Value> = (0..50)
        .map(|i| logout(100 + i, now - i as i64 * 1000, "1"))
        .collect();
    // Two of them were received live first, signed as ZEGOCLOUD sends them.
    for callback in &callbacks[..2] {
        let (status, body) = app.post_json(&signed(callback.clone())).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    let first = import_text(&app, lines(&callbacks), 7).await;
    let again = import_text(&app, lines(&callbacks), 500).await;

    assert_eq!((first.stored, first.duplicate), (48, 2), "{first}");
    assert_eq!((again.stored, again.duplicate), (0, 50), "{again}");
    assert_eq!(app.count("room_logouts").await, 50);
    assert_eq!(app.archived().await, 50);
    // The rollups counted each logout once.
    assert_eq!(
        scalar(
            &app,
            "SELECT sum(sessions)::bigint FROM session_duration_daily"
        )
        .await,
        50
    );
}

#[tokio::test]
async fn a_large_backfill_lands_in_monthly_partitions_with_rollups_compacted() {
    let app = TestApp::spawn().await;
    // Six and seven months ago: before the partitions `serve` keeps ahead.
    let now = Utc::now();
    let months_ago = |n: u32| {
        let first = now.date_naive().with_day(1).unwrap() - chrono::Months::new(n);
        first.and_hms_opt(12, 0, 0).unwrap().and_utc()
    };
    let (old, older) = (months_ago(6), months_ago(7));
    let callbacks: Vec<Value> = (0..2_345u64)
        .map(|i| {
            let at = if i % 2 == 0 { old } else { older };
            let mut callback = logout(i, at.timestamp_millis() + i as i64, "0");
            callback["room_id"] = json!(format!("room-{}", i % 13));
            callback["user_account"] = json!(format!("user-{i}"));
            callback
        })
        .collect();

    let summary = import_text(&app, lines(&callbacks), 100).await;

    assert_eq!(summary.stored, 2_345, "{summary}");
    assert_eq!(app.count("room_logouts").await, 2_345);
    assert_eq!(app.count("room_logouts_default").await, 0);
    for month in [old, older] {
        let partition = format!("room_logouts_{}", month.format("%Y_%m"));
        assert!(app.count(&partition).await > 1_000, "{partition}");
    }
    // The import compacted the rollups: the concurrency views are current.
    assert_eq!(app.count("pending_contributions").await, 0);
    // Every session of a day overlaps the others (all end at noon, within 2.3 s).
    let peaks: Vec<(chrono::NaiveDate, i64)> = sqlx::query_as(
        "SELECT day, peak_users::bigint FROM peak_concurrency_daily WHERE peak_users > 0 ORDER BY day",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        peaks,
        [(older.date_naive(), 1_172), (old.date_naive(), 1_173)]
    );
}

#[tokio::test]
async fn overlong_lines_byte_order_marks_and_a_missing_final_newline_are_handled() {
    let app = TestApp::spawn().await;
    let now = Utc::now().timestamp_millis();
    let mut text = b"\xEF\xBB\xBF".to_vec();
    text.extend(format!("{}\n", logout(1, now, "0")).bytes());
    let mut huge = logout(2, now, "0");
    huge["user_nickname"] = json!("x".repeat(MAX_LINE_BYTES));
    text.extend(format!("{huge}\n").bytes());
    text.extend(b"\xFF\xFE not UTF-8\n");
    text.extend(logout(3, now, "0").to_string().bytes());

    let summary = import_text(&app, text, 500).await;

    assert_eq!((summary.lines, summary.stored, summary.refused), (4, 2, 2));
    assert_eq!(summary.refused_lines[0].0, 2);
    assert!(summary.refused_lines[0].1.contains("64 KiB"), "{summary}");
    assert_eq!(summary.refused_lines[1].0, 3);
}

#[tokio::test]
async fn an_unreachable_database_stops_the_import_with_a_summary() {
    let port = common::free_port();
    let store = Store::connect_lazy(
        &format!("postgres://nobody:nothing@127.0.0.1:{port}/none"),
        &PoolConfig::default(),
    )
    .unwrap();
    let text = lines(&[logout(1, 1_700_000_000_000, "0")]);
    let input = Input::from_reader("gone.jsonl", std::io::Cursor::new(text), None);

    let summary = import(&store, input, &options(500)).await.unwrap();

    let stopped = summary.stopped.clone().expect("the import stopped");
    assert!(stopped.contains("line"), "{stopped}");
    assert_eq!(summary.stored, 0);
    assert!(summary.to_string().contains("stopped"));
}

#[tokio::test]
async fn a_file_path_is_read_as_the_command_reads_it() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("callbacks.jsonl");
    let mut file = std::fs::File::create(&path).unwrap();
    let now = Utc::now().timestamp_millis();
    for i in 0..3 {
        writeln!(file, "{}", logout(i, now - i as i64, "3")).unwrap();
    }
    drop(file);

    let input = Input::open(&path).unwrap();
    let store = Store::from_pool(app.pool.clone());
    let summary = import(&store, input, &options(2)).await.unwrap();

    assert_eq!(summary.stored, 3);
    assert_eq!(summary.source, path.display().to_string());
    assert!(Input::open(&dir.path().join("missing.jsonl")).is_err());
}

#[tokio::test]
async fn the_command_reads_standard_input_and_prints_the_summary() {
    let (url, pool) = common::migrated_database_url().await;
    let now = Utc::now().timestamp_millis();
    let text = format!(
        "{}\nnot a callback\n{}\n",
        logout(1, now, "2"),
        logout(2, now, "0")
    );

    let mut child = common::zegolog()
        .args(["import", "-", "--batch-size", "1"])
        .env("DATABASE_URL", &url)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("imported standard input: 3 lines"),
        "{stdout}"
    );
    assert!(
        stdout.contains("stored 2, duplicate 0, quarantined 0, refused 1"),
        "{stdout}"
    );
    assert!(stdout.contains("line 2: "), "{stdout}");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM room_logouts")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, 2);

    let help = common::zegolog()
        .args(["import", "--help"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("Signatures are NOT verified"));
}

/// A logout and a variant of it (its natural key, another content) in one batch: the first is
/// stored with its body, the variant is archived beside it; the same line twice in one batch is
/// one row and one body.
#[tokio::test]
async fn a_variant_in_the_same_batch_is_archived_and_a_copy_is_not() {
    let app = TestApp::spawn().await;
    let now = Utc::now().timestamp_millis();
    let original = logout(7, now - 5_000, "0");
    let mut variant = original.clone();
    variant["reason"] = json!("2");
    // Sent on its own: a triple of its own (the same triple with another body is a reuse).
    variant["nonce"] = json!("variant-nonce");

    let summary = import_text(&app, lines(&[original.clone(), variant, original]), 10).await;

    assert_eq!((summary.stored, summary.duplicate), (1, 2), "{summary}");
    assert_eq!(app.count("room_logouts").await, 1);
    assert_eq!(
        scalar(
            &app,
            "SELECT count(*) FROM callback_events WHERE body::jsonb->>'reason' = '2'"
        )
        .await,
        1,
        "the variant, archived"
    );
    assert_eq!(app.archived().await, 2);
    assert_eq!(
        scalar(&app, "SELECT sum(sessions)::bigint FROM logout_rollup_all").await,
        1
    );
}
