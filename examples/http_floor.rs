//! The floor under zegolog's own CPU per callback: an HTTP server on the same stack (axum,
//! hyper, tokio, mimalloc, this crate's release profile) that does nothing but answer. Run it
//! under `zegolog loadtest` beside `zegolog serve` to see what a callback costs before zegolog
//! does anything of its own (`bench/http-floor` does both and prints the figures).
//!
//!     cargo run --release --example http_floor -- 127.0.0.1:18081 [parse] [DELAY_MS]
//!
//! - `parse`: also parse the JSON body (`serde_json`, as zegolog's features build it) and
//!   compute a SHA-1 over its timestamp and nonce, as the signature check does;
//! - `DELAY_MS`: answer after that long, as zegolog answers once its batch has committed, so
//!   that the same connections make the same request rate (the CPU per request of a server
//!   depends on its rate: at saturation the kernel and the runtime batch their wakeups).

use std::time::Duration;

use axum::{body::Bytes, extract::State, http::header, routing::post, Router};
use sha1::{Digest, Sha1};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone, Copy)]
struct Floor {
    parse: bool,
    delay: Duration,
}

async fn answer(
    State(floor): State<Floor>,
    body: Bytes,
) -> ([(header::HeaderName, &'static str); 1], &'static str) {
    if floor.parse {
        let fields: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let mut sha1 = Sha1::new();
        for name in ["timestamp", "nonce"] {
            sha1.update(
                fields
                    .get(name)
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            );
        }
        std::hint::black_box(hex::encode(sha1.finalize()));
    }
    if !floor.delay.is_zero() {
        tokio::time::sleep(floor.delay).await;
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"code":0,"message":"stored"}"#,
    )
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:18081".to_owned());
    let rest: Vec<String> = args.collect();
    let floor = Floor {
        parse: rest.iter().any(|a| a == "parse"),
        delay: Duration::from_millis(rest.iter().find_map(|a| a.parse().ok()).unwrap_or(0)),
    };
    let app = Router::new()
        .route("/zego/callback", post(answer))
        .with_state(floor);
    axum::serve(tokio::net::TcpListener::bind(listen).await?, app).await
}
