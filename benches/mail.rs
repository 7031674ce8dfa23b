//! What mail costs a booking: one patient books distinct slots one after another, on a server
//! with mail off and on one that mails a real SMTP server (each booking queues one mail per
//! party in two statements; the worker sends them meanwhile). Prints latencies; asserts nothing.
//! `cargo bench --bench mail`, or with MEDILINK_TEST_DATABASE_URL.

// A benchmark uses only part of the test harness.
#[allow(dead_code)]
#[path = "../tests/api/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::smtp::spawn_app_with_mail;
use common::*;
use medilink::mail::{Outbox, templates};
use serde_json::json;

const BOOKINGS: usize = 300;
const WARM_UP: usize = 20;
const ROUNDS: usize = 2;

#[tokio::main]
async fn main() {
    for round in 1..=ROUNDS {
        for mail in [false, true] {
            let (p50, p99, backend) = measure(mail).await;
            println!(
                "round {round}, {backend}, mail {}: bookAppointment p50 {p50} µs, p99 {p99} µs \
                 ({BOOKINGS} bookings)",
                if mail { "on (SMTP)" } else { "off" },
            );
        }
    }
}

async fn measure(mail: bool) -> (u128, u128, &'static str) {
    let many = |config: &mut medilink::config::Config| {
        config.max_open_bookings_per_doctor = 100_000;
    };
    let (app, smtp) = if mail {
        let (app, smtp) = spawn_app_with_mail(many).await;
        (app, Some(smtp))
    } else {
        (spawn_app_with(many).await, None)
    };
    let admin = app.admin().await;
    let (doctor, doctor_id) = app
        .approved_doctor(&admin, "Dr Bench", profile_input("BENCH-MAIL"))
        .await;
    app.open_around_the_clock(&doctor, 1440).await;
    let today = app.clock.now().date_naive();
    let slots = app
        .ok(
            "query($d: ID!, $f: Date!, $t: Date!) { availableSlots(doctorId: $d, from: $f, to: $t) { startsAt } }",
            json!({ "d": doctor_id, "f": today.to_string(), "t": (today + chrono::Duration::days(20)).to_string() }),
            None,
        )
        .await;
    let slots = slots["availableSlots"].as_array().unwrap().clone();
    let patient = app.register_patient().await;
    let mut latencies = Vec::with_capacity(BOOKINGS);
    for (i, slot) in slots.iter().take(WARM_UP + BOOKINGS).enumerate() {
        let started = Instant::now();
        app.ok(
            "mutation($input: BookAppointmentInput!) { bookAppointment(input: $input) { id } }",
            json!({ "input": { "doctorId": doctor_id, "startsAt": slot["startsAt"] } }),
            Some(&patient.access),
        )
        .await;
        if i >= WARM_UP {
            latencies.push(started.elapsed());
        }
    }
    if let Some(smtp) = smtp {
        let started = Instant::now();
        while app.count_rows("outbox").await > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        println!(
            "  the worker sent the last mails {:.1?} after the last booking",
            started.elapsed()
        );
        let confirmations = smtp
            .received()
            .iter()
            .filter(|m| m.subject.contains("Appointment confirmed"))
            .count();
        assert_eq!(confirmations, 2 * (WARM_UP + BOOKINGS));
    }
    if !mail {
        enqueue_alone(&app, &patient.id, &doctor.id).await;
    }
    let (p50, p99) = percentiles(latencies);
    let backend = app.db.backend();
    app.shutdown().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    (p50, p99, backend)
}

/// The statements a booking adds when mail is on, timed alone: one confirmation queued to each
/// party (on the mail-off server, whose outbox nobody empties).
async fn enqueue_alone(app: &TestApp, patient: &str, doctor: &str) {
    let outbox = Outbox::new(true, app.clock.clone());
    let parties = [patient.parse().unwrap(), doctor.parse().unwrap()];
    let content = templates::appointment_confirmed(app.clock.now());
    let mut latencies = Vec::with_capacity(BOOKINGS);
    for _ in 0..BOOKINGS {
        let started = Instant::now();
        outbox.enqueue_to_users(&app.db, &parties, &content).await;
        latencies.push(started.elapsed());
    }
    let (p50, p99) = percentiles(latencies);
    println!("  queueing a booking's two mails alone: p50 {p50} µs, p99 {p99} µs");
}

fn percentiles(mut latencies: Vec<Duration>) -> (u128, u128) {
    latencies.sort();
    let at = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize].as_micros();
    (at(0.5), at(0.99))
}
