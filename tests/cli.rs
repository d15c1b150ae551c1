//! The `zegolog` binary as an operator runs it: refusing to start unsafely, and `serve` with no
//! database URL running its own PostgreSQL that keeps data across restarts and stops with it.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{signed, temp_data_dir, vendor_sample, SECRET};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

fn zegolog() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_zegolog"));
    for var in [
        "DATABASE_URL",
        "ZEGOLOG_SECRET",
        "ZEGOLOG_SECRETS",
        "ZEGOLOG_LISTEN",
        "ZEGOLOG_DATA_DIR",
    ] {
        command.env_remove(var);
    }
    command
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

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

struct Served {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

fn serve(data_dir: &Path, extra_env: &[(&str, &str)]) -> Served {
    let port = free_port();
    let log = data_dir.join(format!("zegolog-{port}.log"));
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
        if blocking_http::get_ok(&format!("http://127.0.0.1:{port}/healthz")) {
            return served;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("zegolog did not start:\n{}", served.log_text());
}

impl Served {
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then the exit status.
    fn terminate(mut self) -> (std::process::ExitStatus, String) {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM).unwrap();
        let status = self.child.wait().unwrap();
        (status, self.log_text())
    }
}

/// A tiny blocking HTTP helper, so that these tests need no runtime of their own.
mod blocking_http {
    pub fn get_ok(url: &str) -> bool {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            ::reqwest::get(url)
                .await
                .is_ok_and(|r| r.status().is_success())
        })
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
