//! Payments against the fake Stripe server of the tests: latency of createCheckoutSession (one
//! Stripe round trip on loopback), of a signed `checkout.session.completed` that confirms an
//! appointment, and the throughput of duplicate deliveries (verify + one INSERT that conflicts),
//! beside a trivial `{ __typename }` on the same server. Prints numbers; asserts nothing.
//! `cargo bench --bench payments` (SQLite), or with MEDILINK_TEST_DATABASE_URL for PostgreSQL.

// A benchmark uses only part of the test harness.
#[allow(dead_code)]
#[path = "../tests/api/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::stripe::{FakeStripe, ORIGIN, event, signed};
use common::{TestApp, profile_input, spawn_app_with};
use futures_util::future::join_all;
use serde_json::{Value, json};

const APPOINTMENTS: usize = 120;
const CONCURRENT_CLIENTS: usize = 16;
const WINDOW: Duration = Duration::from_secs(3);

#[tokio::main]
async fn main() {
    let fake = FakeStripe::start().await;
    let app = spawn_app_with(|c| fake.configure(c)).await;
    let admin = app.admin().await;
    let (doctor, doctor_id) = app
        .approved_doctor(&admin, "Dr Bench", profile_input("BENCH-PAY-1"))
        .await;
    app.open_around_the_clock(&doctor, 60).await;
    app.ok(
        "mutation($i: PayoutOnboardingInput!) { createPayoutOnboardingLink(input: $i) }",
        json!({ "i": { "returnUrl": format!("{ORIGIN}/a"), "refreshUrl": format!("{ORIGIN}/b") } }),
        Some(&doctor.access),
    )
    .await;
    let account = fake.requests("/v1/account_links")[0]
        .field("account")
        .expect("account")
        .to_owned();
    let enabled = event(
        "evt_bench_account",
        "account.updated",
        json!({ "id": account, "charges_enabled": true, "payouts_enabled": true }),
    );
    assert_eq!(deliver(&app, &enabled).await, 200);

    let patient = app.register_patient().await;
    let today = app.clock.now().date_naive();
    let slots = app
        .ok(
            "query($d: ID!, $f: Date!, $t: Date!) { availableSlots(doctorId: $d, from: $f, to: $t) { startsAt } }",
            json!({ "d": doctor_id, "f": today.to_string(), "t": (today + chrono::Duration::days(4)).to_string() }),
            None,
        )
        .await;
    let mut appointments = Vec::new();
    for slot in slots["availableSlots"]
        .as_array()
        .expect("slots")
        .iter()
        .skip(2)
        .take(APPOINTMENTS)
    {
        let booked = app
            .ok(
                "mutation($input: BookAppointmentInput!) { bookAppointment(input: $input) { id } }",
                json!({ "input": { "doctorId": doctor_id, "startsAt": slot["startsAt"] } }),
                Some(&patient.access),
            )
            .await;
        appointments.push(
            booked["bookAppointment"]["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    println!(
        "backend: {}; {} appointments waiting for payment",
        app.db.backend(),
        appointments.len()
    );
    println!(
        "{:<52} {:>9} {:>9} {:>10}",
        "request", "p50 µs", "p99 µs", "req/s"
    );

    let trivial = json!({ "query": "{ __typename }" });
    let mut times = Vec::new();
    for _ in 0..1000 {
        let start = Instant::now();
        app.ok(trivial["query"].as_str().unwrap(), json!({}), None)
            .await;
        times.push(start.elapsed());
    }
    report("{ __typename }", &mut times, None);

    let mut times = Vec::new();
    for id in &appointments {
        let start = Instant::now();
        app.ok(
            "mutation($i: CheckoutSessionInput!) { createCheckoutSession(input: $i) { url } }",
            json!({ "i": { "appointmentId": id, "successUrl": format!("{ORIGIN}/ok"), "cancelUrl": format!("{ORIGIN}/no") } }),
            Some(&patient.access),
        )
        .await;
        times.push(start.elapsed());
    }
    report(
        "createCheckoutSession (new session, fake Stripe)",
        &mut times,
        None,
    );

    let events: Vec<Value> = appointments
        .iter()
        .enumerate()
        .map(|(i, id)| {
            event(
                &format!("evt_bench_paid_{i}"),
                "checkout.session.completed",
                json!({ "id": format!("cs_{i}"), "payment_status": "paid",
                    "payment_intent": format!("pi_{i}"), "metadata": { "appointment_id": id } }),
            )
        })
        .collect();
    let mut times = Vec::new();
    for paid in &events {
        let start = Instant::now();
        assert_eq!(deliver(&app, paid).await, 200);
        times.push(start.elapsed());
    }
    report(
        "webhook: completed, confirms the appointment",
        &mut times,
        None,
    );

    let mut times = Vec::new();
    for paid in &events {
        let start = Instant::now();
        assert_eq!(deliver(&app, paid).await, 200);
        times.push(start.elapsed());
    }
    let deadline = Instant::now() + WINDOW;
    let clients = (0..CONCURRENT_CLIENTS).map(|c| {
        let (app, events) = (&app, &events);
        async move {
            let mut done = 0usize;
            while Instant::now() < deadline {
                deliver(app, &events[(c + done) % events.len()]).await;
                done += 1;
            }
            done
        }
    });
    let total: usize = join_all(clients).await.into_iter().sum();
    report(
        "webhook: duplicate delivery (acknowledged, no effect)",
        &mut times,
        Some(total as f64 / WINDOW.as_secs_f64()),
    );
}

async fn deliver(app: &TestApp, event: &Value) -> u16 {
    let (body, signature) = signed(event, None);
    app.client
        .post(app.url("/webhooks/stripe"))
        .header("stripe-signature", signature)
        .body(body)
        .send()
        .await
        .expect("sent")
        .status()
        .as_u16()
}

fn report(name: &str, times: &mut [Duration], rps: Option<f64>) {
    times.sort();
    let at = |p: f64| times[((times.len() - 1) as f64 * p) as usize].as_micros();
    let rps = rps.map_or_else(|| "-".to_owned(), |r| format!("{r:.0}"));
    println!("{name:<52} {:>9} {:>9} {rps:>10}", at(0.5), at(0.99));
}
