//! The real server against ten thousand random and mutated requests (valid ones, retries,
//! forgeries, wrong types, truncations, byte flips, bad UTF-8, deep nesting, bodies over the limit,
//! wrong content types, soups): none is answered 5xx, every answer is a JSON code and message,
//! and the database holds exactly the authentic callbacks, each once.
//!
//! The run is seeded: it prints its seed, every failure names it, and
//! `ZEGOLOG_FUZZ_SEED=<seed> cargo test --test it fuzz::` replays the same requests.
//!
//! The requests are built in `generator.rs` (plausible callbacks, signing, forging) and
//! `cases.rs` (one request per kind of mutation); `request.rs` renders a callback as JSON or as a
//! form. The bugs this run found are regression tests in `robustness.rs`.

// The sender's encoders, shared with the parser's property tests in the library.
#[path = "../../../src/callback/proptests/sender.rs"]
mod sender;

mod cases;
mod generator;
mod request;

use crate::common::TestApp;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::CONTENT_TYPE;
use reqwest::StatusCode;
use serde_json::Value;

use generator::Generator;
use request::{Case, Expect};

const REQUESTS: usize = 10_000;
const CLIENTS: usize = 16;
pub(crate) const BODY_LIMIT: usize = zegolog::http::MAX_BODY_BYTES;

/// A JSON number that keeps the digits it was written with (`arbitrary_precision`).
pub(crate) fn raw_number(text: &str) -> Value {
    let value: Value = serde_json::from_str(text).unwrap();
    assert!(value.is_number(), "{text} is not a JSON number");
    value
}

/// The text the server reads from a scalar: a string as is, anything else as its JSON text.
fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn fuzz_seed() -> u64 {
    match std::env::var("ZEGOLOG_FUZZ_SEED") {
        Ok(seed) => seed.parse().expect("ZEGOLOG_FUZZ_SEED must be a u64"),
        Err(_) => rand::random(),
    }
}

type Answer = Result<(StatusCode, String), String>;

async fn send(client: &reqwest::Client, url: &str, case: &Case) -> Answer {
    let mut request = client.post(url).body(case.body.clone());
    if let Some(content_type) = &case.content_type {
        request = request.header(CONTENT_TYPE, content_type.clone());
    }
    let response = request.send().await.map_err(|e| format!("{e:?}"))?;
    let status = response.status();
    let text = response.text().await.map_err(|e| format!("{e:?}"))?;
    Ok((status, text))
}

/// Checks one answer; returns the answer's code.
fn check_answer(case: &Case, answer: &Answer) -> Result<String, String> {
    let (status, text) = answer.as_ref().map_err(|e| format!("no answer: {e}"))?;
    let problem = |what: &str| format!("{what}: answered {status} {text:?}");
    if status.is_server_error() {
        return Err(problem("5xx"));
    }
    let body: Value = serde_json::from_str(text).map_err(|_| problem("answer is not JSON"))?;
    let code = body["code"].as_str().filter(|c| !c.is_empty());
    let message = body["message"].as_str().filter(|m| !m.is_empty());
    let (Some(code), Some(_)) = (code, message) else {
        return Err(problem("answer lacks a code or a message"));
    };
    match case.expect {
        Expect::Refused if !status.is_client_error() => Err(problem("expected a 4xx refusal")),
        Expect::Authentic { .. }
            if *status != StatusCode::OK
                || !["stored", "duplicate", "quarantined"].contains(&code) =>
        {
            Err(problem("expected 200 stored, duplicate or quarantined"))
        }
        _ => Ok(code.to_owned()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_random_and_mutated_requests_never_5xx_and_store_only_authentic_ones() {
    let seed = fuzz_seed();
    println!("fuzz seed {seed} (replay: ZEGOLOG_FUZZ_SEED={seed})");
    let app = TestApp::spawn().await;
    let cases = Arc::new(Generator::new(seed).cases(REQUESTS));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    // Bodies over the limit go on connections of their own: after such a 413 the server closes
    // the connection (and says so, see `an_oversize_body_closes_the_connection_...` in
    // robustness.rs), and a pooled client would then fail an unrelated request.
    let unpooled = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let url = app.url("/zego/callback");

    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let (cases, next, url) = (cases.clone(), next.clone(), url.clone());
        let (client, unpooled) = (client.clone(), unpooled.clone());
        clients.spawn(async move {
            let mut answers = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(case) = cases.get(i) else {
                    return answers;
                };
                let client = if case.body.len() > BODY_LIMIT {
                    &unpooled
                } else {
                    &client
                };
                answers.push((i, send(client, &url, case).await));
            }
        });
    }
    let mut answers: Vec<(usize, Answer)> =
        clients.join_all().await.into_iter().flatten().collect();
    answers.sort_by_key(|(i, _)| *i);
    let took = started.elapsed();
    println!(
        "{} requests in {took:?} ({:.0}/s)",
        answers.len(),
        answers.len() as f64 / took.as_secs_f64()
    );
    assert_eq!(answers.len(), REQUESTS);

    // Every answer on its own.
    let mut failures = Vec::new();
    let mut codes: HashMap<usize, Vec<String>> = HashMap::new();
    let mut tally: BTreeMap<String, usize> = BTreeMap::new();
    for (i, answer) in &answers {
        let case = &cases[*i];
        match check_answer(case, answer) {
            Ok(code) => {
                *tally.entry(code.clone()).or_default() += 1;
                if let Expect::Authentic { group, .. } = case.expect {
                    codes.entry(group).or_default().push(code);
                }
            }
            Err(problem) => failures.push(format!("{}: {problem}", case.describe(*i))),
        }
    }
    println!("answers by code: {tally:?}");
    assert!(
        failures.is_empty(),
        "seed {seed}: {} of {REQUESTS} requests were answered wrongly; first ones:\n{}",
        failures.len(),
        failures[..failures.len().min(10)].join("\n")
    );

    // Each authentic callback, however often delivered: quarantined every time, or stored once.
    let mut stored_logouts = 0;
    for (group, group_codes) in &codes {
        let describe = || format!("seed {seed}: group {group} answered {group_codes:?}");
        if group_codes.iter().any(|c| c == "quarantined") {
            assert!(
                group_codes.iter().all(|c| c == "quarantined"),
                "{}",
                describe()
            );
        } else {
            let stored = group_codes.iter().filter(|c| *c == "stored").count();
            assert_eq!(stored, 1, "{}", describe());
            if let Expect::Authentic { logout: true, .. } = cases[*group].expect {
                stored_logouts += 1;
            }
        }
    }
    assert!(codes.len() > REQUESTS / 10, "too few authentic callbacks");

    // The database holds exactly the authentic callbacks, nothing from a refused request.
    let rows: Vec<(Option<String>, bool)> = sqlx::query_as(&format!(
        "SELECT body::jsonb->>'zz_case', refused_reason IS NOT NULL FROM {}",
        crate::common::ARCHIVE
    ))
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let mut archived = HashSet::new();
    for (case, quarantined) in rows {
        let group: usize = case
            .as_deref()
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("seed {seed}: archived a callback without its marker"));
        let describe = cases
            .get(group)
            .map_or_else(|| format!("case #{group}"), |c| c.describe(group));
        let Some(group_codes) = codes.get(&group) else {
            panic!("seed {seed}: stored a refused request: {describe}");
        };
        assert_eq!(
            quarantined,
            group_codes[0] == "quarantined",
            "seed {seed}: {describe}"
        );
        assert!(
            archived.insert(group),
            "seed {seed}: archived twice: {describe}"
        );
    }
    let missing: Vec<_> = codes.keys().filter(|g| !archived.contains(g)).collect();
    assert!(
        missing.is_empty(),
        "seed {seed}: answered 2xx but not archived: {missing:?}"
    );
    assert_eq!(
        app.count("room_logouts").await,
        stored_logouts,
        "seed {seed}: room_logouts rows"
    );

    let health = client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}
