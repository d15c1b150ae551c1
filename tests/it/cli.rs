//! The `zegolog` binary as an operator runs it: refusing to start unsafely, and `serve` with no
//! database URL running its own PostgreSQL that keeps data across restarts and stops with it.

use crate::common;

use common::{blocking_http, serve, signed, temp_data_dir, vendor_sample, zegolog, SECRET};

#[test]
fn serve_refuses_to_start_without_a_secret() {
    let output = zegolog()
        .args(["serve", "--database-url", "postgres://nowhere/db"])
        .output()
        .unwrap();

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ZEGOLOG_SECRET"), "{stderr}");
    assert!(stderr.contains("--insecure-skip-verify"), "{stderr}");
}

#[test]
fn help_lists_the_commands() {
    let output = zegolog().arg("--help").output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    assert!(
        stdout.contains("serve") && stdout.contains("migrate"),
        "{stdout}"
    );
}

#[test]
fn serve_without_database_url_runs_a_private_postgres_that_keeps_data() {
    let data_dir = temp_data_dir("zegolog-cli-");
    let env = [("ZEGOLOG_SECRET", SECRET)];

    let first = serve(&data_dir, &env);
    let url = format!("http://127.0.0.1:{}/zego/callback", first.port);
    let (status, body) = blocking_http::post_json(&url, &signed(vendor_sample()));
    assert_eq!(
        (status, body["code"].as_str()),
        (200, Some("stored")),
        "{body}"
    );
    let (exit, log) = first.terminate();
    assert!(exit.success(), "{exit}\n{log}");
    assert!(
        log.contains("psql -h 127.0.0.1"),
        "prints the psql command:\n{log}"
    );
    assert!(!log.contains(SECRET), "the secret never appears in logs");
    assert!(
        !data_dir.join("postgres/postmaster.pid").exists(),
        "its PostgreSQL stops with it"
    );

    let second = serve(&data_dir, &env);
    let url = format!("http://127.0.0.1:{}/zego/callback", second.port);
    let (status, body) = blocking_http::post_json(&url, &signed(vendor_sample()));
    let (exit, log) = second.terminate();
    assert_eq!(
        (status, body["code"].as_str()),
        (200, Some("duplicate")),
        "data kept:\n{log}"
    );
    assert!(exit.success());
    std::fs::remove_dir_all(data_dir).unwrap();
}

#[test]
fn insecure_mode_warns_at_start_and_on_every_request() {
    let data_dir = temp_data_dir("zegolog-insecure-");
    let served = serve(&data_dir, &[("ZEGOLOG_INSECURE_SKIP_VERIFY", "true")]);
    let url = format!("http://127.0.0.1:{}/zego/callback", served.port);
    let mut unsigned = vendor_sample();
    unsigned["signature"] = serde_json::json!("anything");
    for _ in 0..2 {
        let (status, _) = blocking_http::post_json(&url, &unsigned);
        assert_eq!(status, 200);
    }

    let (exit, log) = served.terminate();

    assert!(exit.success());
    assert!(
        log.contains("--insecure-skip-verify: callback signatures are NOT checked"),
        "{log}"
    );
    assert_eq!(log.matches("signature NOT verified").count(), 2, "{log}");
    std::fs::remove_dir_all(data_dir).unwrap();
}

#[test]
fn json_logs_are_one_object_per_line_with_the_request_id() {
    let data_dir = temp_data_dir("zegolog-jsonlog-");
    let served = serve(
        &data_dir,
        &[("ZEGOLOG_SECRET", SECRET), ("ZEGOLOG_LOG_FORMAT", "json")],
    );
    let url = format!("http://127.0.0.1:{}/zego/callback", served.port);
    let mut forged = vendor_sample();
    forged["signature"] = serde_json::json!("0".repeat(40));
    let (status, _) = blocking_http::post_json(&url, &forged);

    let (exit, log) = served.terminate();

    assert_eq!(status, 401);
    assert!(exit.success());
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let refused = lines
        .iter()
        .find(|l| l["fields"]["code"] == "bad_signature")
        .unwrap_or_else(|| panic!("no log line for the refused callback:\n{log}"));
    let request_id = refused["span"]["request_id"].as_str().unwrap_or_default();
    assert_eq!(request_id.len(), 36, "a UUID request id: {refused}");
    std::fs::remove_dir_all(data_dir).unwrap();
}

#[test]
fn migrate_fails_fast_with_the_cause_when_the_database_is_down() {
    let port = common::free_port();
    let started = std::time::Instant::now();
    let output = zegolog()
        .args(["migrate", "--database-url"])
        .arg(format!("postgres://zegolog:x@127.0.0.1:{port}/zegolog"))
        .output()
        .unwrap();

    assert!(!output.status.success());
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("reading the applied migrations"),
        "{stderr}"
    );
}

/// `zegolog ARGS` with no database or secret in its environment: exit code and standard error.
fn run(args: &[&str]) -> (Option<i32>, String) {
    let output = zegolog().args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code(), stderr)
}

#[test]
fn loadtest_refuses_nonsense_flags_before_sending() {
    for bad in [
        &["loadtest", "--count", "5", "--duration-secs", "1"][..],
        &["loadtest", "--duplicates", "1.5"],
        &["loadtest", "--connections", "0"],
        &["loadtest", "--encoding", "xml"],
    ] {
        let (code, stderr) = run(bad);
        assert_eq!(code, Some(2), "{bad:?}: {stderr}");
    }

    // Flags it takes, then the checks of what they add up to.
    let (code, stderr) = run(&["loadtest", "--encoding", "form", "--duplicates", "0.25"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("no callback secret"), "{stderr}");
    let (code, stderr) = run(&["loadtest", "--secret", SECRET, "--count", "1", "--verify"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("--verify needs the database") && stderr.contains("DATABASE_URL"),
        "{stderr}"
    );
}

#[test]
fn serve_refuses_a_short_dashboard_token_as_a_flag_error() {
    for token in ["short", ""] {
        let (code, stderr) = run(&[
            "serve",
            "--insecure-skip-verify",
            "--dashboard-token",
            token,
        ]);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains("at least 16"), "{stderr}");
    }
}
