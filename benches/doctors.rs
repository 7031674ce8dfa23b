//! Doctor search over 10,000 approved doctors: p50/p99 latency and requests per second of a
//! filtered, sorted first page, beside a trivial `{ __typename }` on the same server in the
//! same run. Prints numbers; asserts nothing. Beside them, the search's database part alone
//! (`doctors::service::search`, what the resolver awaits: statement, rows, decoding), so that
//! the rest (HTTP, GraphQL execution, the JSON of the page) can be told apart from it.
//! `cargo bench --bench doctors` (SQLite), or with MEDILINK_TEST_DATABASE_URL for PostgreSQL.
//! BENCH_ONLY=search,trivial runs only those cases (names below, and `database`),
//! BENCH_SAMPLES=N takes N sequential samples per case (default 2,000). BENCH_SERVE=1 seeds
//! the same doctors, prints the server's address and serves until Ctrl-C, for an HTTP load
//! tool (benches/wrk/).

// A benchmark uses only part of the test harness.
#[allow(dead_code)]
#[path = "../tests/api/common/mod.rs"]
mod common;

use std::future::Future;
use std::time::{Duration, Instant};

use async_graphql::InputType;
use common::*;
use futures_util::future::join_all;
use medilink::Application;
use medilink::db::Pool;
use medilink::doctors::model::{DoctorFilter, DoctorSort};
use medilink::doctors::service;
use medilink::pagination::PageArgs;
use serde_json::{Value, json};
use sqlx::QueryBuilder;
use uuid::Uuid;

const DOCTORS: usize = 10_000;
const DEFAULT_SAMPLES: usize = 2_000;
const CONCURRENT_CLIENTS: usize = 16;
const WINDOW: Duration = Duration::from_secs(3);
const SPECIALIZATIONS: [&str; 8] = [
    "Cardiology",
    "Dermatology",
    "Pediatrics",
    "Neurology",
    "General Practice",
    "Oncology",
    "Psychiatry",
    "Orthopedics",
];
const SECOND_LANGUAGES: [&str; 5] = ["Spanish", "French", "German", "Hindi", "Arabic"];

#[tokio::main]
async fn main() {
    let app = spawn_app().await;
    let started = Instant::now();
    seed(&app).await;
    println!(
        "backend: {}; seeded {DOCTORS} doctors in {:.1?}",
        app.db.backend(),
        started.elapsed()
    );
    println!(
        "{:<44} {:>9} {:>9} {:>10}",
        "request", "p50 µs", "p99 µs", "req/s"
    );

    if std::env::var_os("BENCH_SERVE").is_some() {
        println!("serving {} until Ctrl-C", app.url("/graphql"));
        tokio::signal::ctrl_c().await.expect("wait for Ctrl-C");
        return;
    }
    let body = |text: &str| -> Value { serde_json::from_str(text).expect("JSON body") };
    let cases = [
        (
            "trivial",
            "{ __typename }",
            body(include_str!("wrk/trivial.json")),
        ),
        (
            "search",
            "doctors: 4 filters, by rating, first 20",
            body(include_str!("wrk/search.json")),
        ),
        (
            "unfiltered",
            "doctors: no filter, by fee, first 20",
            json!({ "query": "{ doctors(sort: { by: FEE, direction: ASC }, first: 20) { edges { node { id user { name } } } } }" }),
        ),
        (
            "ids",
            "doctors: ids only, first 20",
            json!({ "query": "{ doctors(sort: { by: FEE, direction: ASC }, first: 20) { edges { node { id } } } }" }),
        ),
        (
            "specializations",
            "specializations with their doctor counts",
            json!({ "query": "{ specializations { name doctorCount } }" }),
        ),
        (
            "one",
            "doctors: id only, first 1",
            json!({ "query": "{ doctors(sort: { by: FEE, direction: ASC }, first: 1) { edges { node { id } } } }" }),
        ),
    ];
    // The seed writes rows by hand: a page that came back short would be measured as faster.
    let search = send(&app, &cases[1].2).await;
    assert_eq!(
        search["data"]["doctors"]["edges"].as_array().map(Vec::len),
        Some(20),
        "the seeded doctors fill the search's first page"
    );
    let only = std::env::var("BENCH_ONLY").ok();
    let samples = std::env::var("BENCH_SAMPLES")
        .ok()
        .map(|n| n.parse().expect("BENCH_SAMPLES is a number"))
        .unwrap_or(DEFAULT_SAMPLES);
    let wanted = |key: &str| {
        only.as_deref()
            .is_none_or(|only| only.split(',').any(|k| k == key))
    };
    let mut p50 = std::collections::HashMap::new();
    for (key, name, body) in &cases {
        if wanted(key) {
            let request = || async { drop(send(&app, body).await) };
            p50.insert(*key, measure(name, samples, request).await);
        }
    }
    if wanted("database") {
        p50.insert(
            "database",
            measure_database(&app, &cases[1].2, samples).await,
        );
    }
    if let (Some(search), Some(trivial)) = (p50.get("search"), p50.get("trivial")) {
        println!(
            "filtered search / trivial (p50): {:.2}",
            *search as f64 / *trivial as f64
        );
        if let Some(database) = p50.get("database") {
            println!(
                "of the search's p50: trivial request {trivial} µs, database part {database} µs, \
                 the rest (GraphQL execution of the page, its JSON) {} µs",
                search.saturating_sub(*trivial + *database)
            );
        }
    }
}

/// The search's database part alone, with the same filter and sort as the HTTP search, on an
/// instance of its own over the same database (built, not serving).
async fn measure_database(app: &TestApp, search: &Value, samples: usize) -> u128 {
    let instance = Application::build(app.config.clone())
        .await
        .expect("a second instance builds");
    let state = instance.state().clone();
    let input = |name: &str| {
        async_graphql::Value::from_json(search["variables"][name].clone()).expect("a GraphQL value")
    };
    let filter = DoctorFilter::parse(Some(input("filter"))).expect("the search's filter");
    let sort = DoctorSort::parse(Some(input("sort"))).expect("the search's sort");
    let args = PageArgs::new(Some(20), None).expect("page arguments");
    let filter = service::search_filter(&state, Some(filter))
        .await
        .expect("a valid filter");
    let page = || async {
        let (page, _) = service::search(&state, &filter, sort, &args)
            .await
            .expect("a page");
        assert_eq!(page.edges.len(), 20, "the same full page as over HTTP");
    };
    measure("doctors: the search's database part alone", samples, page).await
}

/// Measures latency one request at a time, then throughput with concurrent clients; returns p50.
async fn measure<F, R>(name: &str, samples: usize, request: F) -> u128
where
    F: Fn() -> R,
    R: Future<Output = ()>,
{
    for _ in 0..100 {
        request().await;
    }
    let mut latencies = Vec::with_capacity(samples);
    for _ in 0..samples {
        let start = Instant::now();
        request().await;
        latencies.push(start.elapsed());
    }
    latencies.sort();
    let percentile = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize].as_micros();
    let deadline = Instant::now() + WINDOW;
    let clients = (0..CONCURRENT_CLIENTS).map(|_| async {
        let mut done = 0u64;
        while Instant::now() < deadline {
            request().await;
            done += 1;
        }
        done
    });
    let total: u64 = join_all(clients).await.into_iter().sum();
    let rps = total as f64 / WINDOW.as_secs_f64();
    println!(
        "{name:<44} {:>9} {:>9} {:>10.0}",
        percentile(0.5),
        percentile(0.99),
        rps
    );
    percentile(0.5)
}

async fn send(app: &TestApp, body: &Value) -> Value {
    let response: Value = app
        .client
        .post(app.url("/graphql"))
        .json(body)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("JSON");
    assert!(response.get("errors").is_none(), "{response}");
    response
}

/// Inserts the doctors straight into the database, in batches: the API path (argon2 per
/// account) would take minutes and is not what this measures.
async fn seed(app: &TestApp) {
    let now = medilink::db::now();
    let rows: Vec<(Uuid, Uuid, usize)> = (0..DOCTORS)
        .map(|i| (Uuid::now_v7(), Uuid::now_v7(), i))
        .collect();
    for chunk in rows.chunks(500) {
        macro_rules! insert_chunk {
            ($pool:expr) => {{
                let mut tx = $pool.begin().await.expect("begin");
                let mut users = QueryBuilder::new(
                    "INSERT INTO users (id, email, password_hash, name, role, created_at, updated_at) ",
                );
                users.push_values(chunk, |mut row, (user_id, _, i)| {
                    row.push_bind(*user_id)
                        .push_bind(format!("bench-doctor-{i}@example.com"))
                        .push_bind("x")
                        .push_bind(format!("Dr Bench {i}"))
                        .push_bind("DOCTOR")
                        .push_bind(now)
                        .push_bind(now);
                });
                users.build().execute(&mut *tx).await.expect("users");
                let mut doctors = QueryBuilder::new(
                    "INSERT INTO doctors (id, user_id, specialization, specialization_key, qualifications, \
                     experience_years, fee_amount, fee_currency, languages, language_keys, \
                     licence_number, bio, verification_status, rating_average, rating_count, submitted_at, approved_at, \
                     created_at, updated_at) ",
                );
                doctors.push_values(chunk, |mut row, (user_id, doctor_id, i)| {
                    let specialization = SPECIALIZATIONS[i % SPECIALIZATIONS.len()];
                    row.push_bind(*doctor_id)
                        .push_bind(*user_id)
                        .push_bind(specialization)
                        .push_bind(specialization.to_lowercase())
                        .push_bind("[\"MD\"]")
                        .push_bind((i * 13 % 41) as i64)
                        .push_bind((1000 + (i * 37 % 60) * 500) as i64)
                        .push_bind("USD")
                        .push_bind(format!("[\"English\", \"{}\"]", second_language(*i)))
                        .push_bind(format!("\nenglish\n{}\n", second_language(*i).to_lowercase()))
                        .push_bind(format!("BENCH-{i}"))
                        .push_bind("A doctor generated for the benchmark.")
                        .push_bind("APPROVED")
                        .push_bind(((i * 7919) % 51) as f64 / 10.0)
                        .push_bind((i % 30) as i64)
                        .push_bind(now)
                        .push_bind(now)
                        .push_bind(now)
                        .push_bind(now);
                });
                doctors.build().execute(&mut *tx).await.expect("doctors");
                tx.commit().await.expect("commit");
            }};
        }
        match app.db.pool() {
            Pool::Sqlite(pool) => insert_chunk!(pool),
            Pool::Postgres(pool) => insert_chunk!(pool),
        }
    }
    match app.db.pool() {
        Pool::Sqlite(pool) => sqlx::query("ANALYZE").execute(pool).await.map(drop),
        Pool::Postgres(pool) => sqlx::query("ANALYZE").execute(pool).await.map(drop),
    }
    .expect("analyze");
}

/// Every doctor speaks English and one other language, a fifth of them each.
fn second_language(i: usize) -> &'static str {
    SECOND_LANGUAGES[i % SECOND_LANGUAGES.len()]
}
