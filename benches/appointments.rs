//! Free-slot queries and booking throughput: `availableSlots` over 31 days for a doctor with
//! 500 booked appointments, and 50 concurrent patients booking distinct slots. Prints numbers;
//! asserts nothing. `cargo bench --bench appointments`, or with MEDILINK_TEST_DATABASE_URL.

// A benchmark uses only part of the test harness.
#[allow(dead_code)]
#[path = "../tests/api/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::*;
use futures_util::future::join_all;
use serde_json::{Value, json};

const BOOKED: usize = 500;
const CLIENTS: usize = 50;
const BOOKINGS_PER_CLIENT: usize = 20;
const SAMPLES: usize = 300;

#[tokio::main]
async fn main() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let busy = open_doctor(&app, &admin, "BENCH-BUSY").await;
    let today = app.clock.now().date_naive();
    let slots_query = json!({
        "query": "query($d: ID!, $from: Date!, $to: Date!) { availableSlots(doctorId: $d, from: $from, to: $to) { startsAt endsAt } }",
        "variables": { "d": busy, "from": today.to_string(), "to": (today + chrono::Duration::days(30)).to_string() }
    });
    let slots = slot_starts(&send(&app, &slots_query, None).await);
    let patient = app.register_patient().await;
    for starts_at in slots.iter().step_by(2).take(BOOKED) {
        book(&app, &patient, &busy, *starts_at).await;
    }
    println!(
        "backend: {}; {BOOKED} appointments booked",
        app.db.backend()
    );

    let mut latencies = Vec::with_capacity(SAMPLES);
    let mut free = 0;
    for _ in 0..SAMPLES {
        let start = Instant::now();
        free = slot_starts(&send(&app, &slots_query, None).await).len();
        latencies.push(start.elapsed());
    }
    latencies.sort();
    let percentile = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize].as_micros();
    println!(
        "availableSlots, 31 days, {free} free of {} slots: p50 {} µs, p99 {} µs",
        slots.len(),
        percentile(0.5),
        percentile(0.99)
    );

    // Throughput: every client books its own slots of one shared doctor.
    let shared = open_doctor(&app, &admin, "BENCH-SHARED").await;
    let mut free = slot_starts(&send(&app, &json!({
        "query": "query($d: ID!, $from: Date!, $to: Date!) { availableSlots(doctorId: $d, from: $from, to: $to) { startsAt endsAt } }",
        "variables": { "d": shared, "from": today.to_string(), "to": (today + chrono::Duration::days(30)).to_string() }
    }), None).await);
    free.truncate(CLIENTS * BOOKINGS_PER_CLIENT);
    let mut patients = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        patients.push(app.register_patient().await);
    }
    let started = Instant::now();
    let clients = patients.iter().enumerate().map(|(k, patient)| {
        let mine: Vec<DateTime<Utc>> = free.iter().skip(k).step_by(CLIENTS).copied().collect();
        let shared = shared.clone();
        let app = &app;
        async move {
            for starts_at in mine {
                book(app, patient, &shared, starts_at).await;
            }
        }
    });
    join_all(clients).await;
    let elapsed = started.elapsed();
    let total = free.len();
    println!(
        "booking, {CLIENTS} concurrent patients, {total} distinct slots: {:.0} bookings/s ({:.1?} in all)",
        total as f64 / elapsed.as_secs_f64(),
        elapsed
    );
}

/// An approved doctor open every day around the clock in 30-minute slots.
async fn open_doctor(app: &TestApp, admin: &Account, licence: &str) -> String {
    let (doctor, id) = app
        .approved_doctor(admin, &format!("Dr {licence}"), profile_input(licence))
        .await;
    app.open_around_the_clock(&doctor, 1440).await;
    id
}

async fn book(app: &TestApp, patient: &Account, doctor: &str, starts_at: DateTime<Utc>) {
    let body = json!({
        "query": "mutation($input: BookAppointmentInput!) { bookAppointment(input: $input) { id } }",
        "variables": { "input": { "doctorId": doctor, "startsAt": starts_at.to_rfc3339() } }
    });
    send(app, &body, Some(&patient.access)).await;
}

fn slot_starts(data: &Value) -> Vec<DateTime<Utc>> {
    data["data"]["availableSlots"]
        .as_array()
        .expect("slots")
        .iter()
        .map(|s| s["startsAt"].as_str().unwrap().parse().unwrap())
        .collect()
}

async fn send(app: &TestApp, body: &Value, token: Option<&str>) -> Value {
    let mut request = app
        .client
        .post(app.url("/graphql"))
        .json(body)
        .timeout(Duration::from_secs(60));
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
    response
}
