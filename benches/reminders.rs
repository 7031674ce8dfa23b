//! The reminder sweep over 100,000 confirmed appointments spread over the next 90 days (about
//! 1,100 start in any 24 hours): the catch-up sweep that sends every due reminder, a sweep that
//! finds nothing new, one a minute later, and several sweeps at once on the next day's batch
//! (each reminder sent exactly once: the one thing asserted). The sweeps are called directly
//! on an instance that is built but not served, beside the served one that made the accounts.
//! `cargo bench --bench reminders` (SQLite), or with MEDILINK_TEST_DATABASE_URL for PostgreSQL.

// A benchmark uses only part of the test harness.
#[allow(dead_code)]
#[path = "../tests/api/common/mod.rs"]
mod common;

use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};
use common::{profile_input, spawn_app_with};
use futures_util::future::join_all;
use medilink::Application;
use medilink::db::{Db, Pool};
use medilink::reminders::service::sweep;
use medilink::state::AppState;
use sqlx::QueryBuilder;
use uuid::Uuid;

const APPOINTMENTS: usize = 100_000;
const SPREAD_DAYS: i64 = 90;
const SAMPLES: usize = 20;
const CONCURRENT_SWEEPS: usize = 4;

#[tokio::main]
async fn main() {
    // The served instance sweeps once as it starts (before any appointment), then never.
    let app = spawn_app_with(|config| config.reminder_sweep_secs = 1_000_000_000).await;
    let admin = app.admin().await;
    let (_, doctor_id) = app
        .approved_doctor(&admin, "Dr Bench", profile_input("BENCH-REMIND"))
        .await;
    let patient = app.register_patient().await;
    let instance = Application::build(app.config.clone())
        .await
        .expect("instance");
    let state = instance.state().clone();
    let started = Instant::now();
    insert_appointments(
        &state,
        doctor_id.parse().unwrap(),
        patient.id.parse().unwrap(),
    )
    .await;
    println!(
        "backend: {}; {APPOINTMENTS} confirmed appointments over {SPREAD_DAYS} days inserted in {:.1?}; offsets {}",
        state.db.backend(),
        started.elapsed(),
        state.config.reminder_offsets
    );

    let (sent, took) = timed_sweep(&state).await;
    println!(
        "catch-up sweep: {sent} reminders sent (2 notifications each) in {took:.1?}: {:.0} reminders/s",
        sent as f64 / took.as_secs_f64()
    );
    let mut idle = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        idle.push(timed_sweep(&state).await.1);
    }
    println!("sweep with nothing due: p50 {:.1?}", median(idle));
    let mut minutes = Vec::with_capacity(SAMPLES);
    let mut sent_in_minutes = 0;
    for _ in 0..SAMPLES {
        state.clock.shift(Duration::minutes(1));
        let (sent, took) = timed_sweep(&state).await;
        sent_in_minutes += sent;
        minutes.push(took);
    }
    println!(
        "sweep a minute after the last ({sent_in_minutes} reminders over {SAMPLES} minutes): p50 {:.1?}",
        median(minutes)
    );

    // The next day's batch, claimed by several sweeps at once.
    state.clock.shift(Duration::hours(24));
    let before = reminder_notifications(&state.db).await;
    let started = Instant::now();
    let outcomes = join_all((0..CONCURRENT_SWEEPS).map(|_| sweep(&state))).await;
    let took = started.elapsed();
    let per_sweep: Vec<usize> = outcomes.into_iter().map(|o| o.expect("sweep")).collect();
    let sent: usize = per_sweep.iter().sum();
    let stored = reminder_notifications(&state.db).await - before;
    assert_eq!(
        stored,
        2 * sent as i64,
        "each reminder stored once for each party"
    );
    assert_eq!(timed_sweep(&state).await.0, 0, "nothing left to send");
    println!(
        "{CONCURRENT_SWEEPS} sweeps at once: {sent} reminders sent once each (by sweep: {per_sweep:?}) in {took:.1?}"
    );
}

async fn timed_sweep(state: &AppState) -> (usize, StdDuration) {
    let started = Instant::now();
    let sent = sweep(state).await.expect("sweep");
    (sent, started.elapsed())
}

fn median(mut samples: Vec<StdDuration>) -> StdDuration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Confirmed appointments from an hour from now over `SPREAD_DAYS`, booked a month ago.
async fn insert_appointments(state: &AppState, doctor: Uuid, patient: Uuid) {
    let now = state.clock.now();
    let booked_at = now - Duration::days(30);
    let step = Duration::days(SPREAD_DAYS) / i32::try_from(APPOINTMENTS).unwrap();
    let starts: Vec<DateTime<Utc>> = (0..APPOINTMENTS)
        .map(|k| now + Duration::hours(1) + step * i32::try_from(k).unwrap())
        .collect();
    for chunk in starts.chunks(1000) {
        macro_rules! insert {
            ($pool:expr) => {{
                let mut query = QueryBuilder::new(
                    "INSERT INTO appointments (id, doctor_id, patient_id, starts_at, ends_at, \
                     status, reason, fee_amount, fee_currency, created_at, confirmed_at, updated_at) ",
                );
                query.push_values(chunk, |mut row, starts_at| {
                    row.push_bind(Uuid::now_v7())
                        .push_bind(doctor)
                        .push_bind(patient)
                        .push_bind(*starts_at)
                        .push_bind(*starts_at + Duration::minutes(30))
                        .push("'CONFIRMED'")
                        .push("''")
                        .push("5000")
                        .push("'USD'")
                        .push_bind(booked_at)
                        .push_bind(booked_at)
                        .push_bind(booked_at);
                });
                query.build().execute($pool).await.expect("insert appointments");
            }};
        }
        match state.db.pool() {
            Pool::Sqlite(pool) => insert!(pool),
            Pool::Postgres(pool) => insert!(pool),
        }
    }
}

async fn reminder_notifications(db: &Db) -> i64 {
    const SQL: &str = "SELECT COUNT(*) FROM notifications WHERE kind = 'APPOINTMENT_REMINDER'";
    match db.pool() {
        Pool::Sqlite(pool) => sqlx::query_scalar(SQL).fetch_one(pool).await,
        Pool::Postgres(pool) => sqlx::query_scalar(SQL).fetch_one(pool).await,
    }
    .expect("count")
}
