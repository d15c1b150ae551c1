//! Real processes: the `zegolog` binary (`serve` as an operator runs it), a blocking HTTP client
//! for tests outside a runtime, and a private PostgreSQL of a test's own that it may stop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use zegolog::embedded_pg::EmbeddedPostgres;

use super::temp_data_dir;

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

    /// [`terminate`](Self::terminate) after a run whose writes went through the spool (`what`
    /// sent them there): the server exits cleanly, and its log says it spooled and drained.
    pub fn terminate_having_spooled(self, what: &str) {
        let (exit, log) = self.terminate();
        assert!(exit.success(), "{log}");
        assert!(
            log.contains("spooling"),
            "{what} went through the spool:\n{log}"
        );
        assert!(log.contains("spool drained into PostgreSQL"), "{log}");
    }
}

/// A load test's report says every acknowledged callback is stored exactly once, and some were.
pub fn assert_nothing_lost(report: &zegolog::tools::loadtest::Report) {
    println!("{report}");
    assert!(report.verified_ok(), "{report}");
    assert!(report.acknowledged_unique > 0, "{report}");
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
