//! Latency and throughput of the account operations, against a real server in this process.
//! Prints numbers; asserts nothing. `cargo bench --bench accounts` (SQLite), or with
//! MEDILINK_TEST_DATABASE_URL set for PostgreSQL.

// A benchmark uses only part of the test harness.
#[allow(dead_code)]
#[path = "../tests/api/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::future::join_all;
use serde_json::{Value, json};

const SEQUENTIAL: usize = 2_000;
const CONCURRENT_CLIENTS: usize = 16;
const THROUGHPUT_WINDOW: Duration = Duration::from_secs(3);

#[tokio::main]
async fn main() {
    let app = spawn_app().await;
    let ann = app.register_patient().await;
    println!("backend: {}", app.db.backend());
    println!(
        "{:<28} {:>9} {:>9} {:>9} {:>10}",
        "operation", "p50 µs", "p99 µs", "mean µs", "req/s"
    );

    let typename = json!({ "query": "{ __typename }" });
    let me = json!({ "query": "{ me { id email name role } }" });
    report(&app, "{ __typename }", &typename, None, SEQUENTIAL).await;
    report(&app, "me", &me, Some(&ann.access), SEQUENTIAL).await;
    let login = json!({ "query": LOGIN, "variables": { "input": { "email": ann.email, "password": PASSWORD } } });
    report(&app, "login (argon2id)", &login, None, 50).await;
}

async fn report(app: &TestApp, name: &str, body: &Value, token: Option<&str>, samples: usize) {
    for _ in 0..samples.min(50) {
        send(app, body, token).await;
    }
    let mut latencies = Vec::with_capacity(samples);
    for _ in 0..samples {
        let start = Instant::now();
        send(app, body, token).await;
        latencies.push(start.elapsed());
    }
    latencies.sort();
    let percentile = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize].as_micros();
    let mean = latencies.iter().sum::<Duration>().as_micros() / latencies.len() as u128;

    let deadline = Instant::now() + THROUGHPUT_WINDOW;
    let clients = (0..CONCURRENT_CLIENTS).map(|_| async {
        let mut done = 0u64;
        while Instant::now() < deadline {
            send(app, body, token).await;
            done += 1;
        }
        done
    });
    let total: u64 = join_all(clients).await.into_iter().sum();
    let rps = total as f64 / THROUGHPUT_WINDOW.as_secs_f64();
    println!(
        "{name:<28} {:>9} {:>9} {:>9} {:>10.0}",
        percentile(0.5),
        percentile(0.99),
        mean,
        rps
    );
}

async fn send(app: &TestApp, body: &Value, token: Option<&str>) {
    let mut request = app.client.post(app.url("/graphql")).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response: Value = request
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("JSON");
    assert!(response.get("errors").is_none(), "{response}");
}
