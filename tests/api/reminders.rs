//! Appointment reminders with the clock shifted: each goes out once per appointment, offset
//! and start time, on any number of instances and across restarts; a cancelled appointment is
//! never reminded and a moved one is reminded at its new start.

use crate::common::smtp::{outbox_drained, spawn_app_with_mail};
use crate::common::*;
use chrono::{DateTime, Duration, Utc};
use futures_util::future::join_all;
use serde_json::{Value, json};

const REMINDERS: &str =
    "{ myNotifications(first: 100) { edges { node { id kind message appointment { id } } } } }";
const BOOK: &str =
    "mutation($input: BookAppointmentInput!) { bookAppointment(input: $input) { id startsAt } }";

/// Reminders at 24 hours and 15 minutes, looked for every second.
async fn reminding_app(configure: impl FnOnce(&mut medilink::config::Config)) -> TestApp {
    spawn_app_with(|config| {
        config.reminder_offsets = "24h,15m".into();
        config.reminder_sweep_secs = 1;
        configure(config);
    })
    .await
}

/// An approved doctor open around the clock, and their free slots three days from now.
pub(crate) async fn doctor_with_slots(
    app: &TestApp,
    licence: &str,
) -> (Account, String, Vec<DateTime<Utc>>) {
    let admin = app.admin().await;
    let (doctor, doctor_id) = app
        .approved_doctor(&admin, &format!("Dr {licence}"), profile_input(licence))
        .await;
    app.open_around_the_clock(&doctor, 0).await;
    let day = (app.clock.now() + Duration::days(3))
        .date_naive()
        .to_string();
    let slots = app
        .ok(
            "query($d: ID!, $f: Date!) { availableSlots(doctorId: $d, from: $f, to: $f) { startsAt } }",
            json!({ "d": doctor_id, "f": day }),
            None,
        )
        .await;
    let starts = slots["availableSlots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["startsAt"].as_str().unwrap().parse().unwrap())
        .collect();
    (doctor, doctor_id, starts)
}

/// Books `starts_at` for `patient`; the appointment's id.
pub(crate) async fn book(
    app: &TestApp,
    patient: &Account,
    doctor_id: &str,
    starts_at: DateTime<Utc>,
) -> String {
    let booked = app
        .ok(
            BOOK,
            json!({ "input": { "doctorId": doctor_id, "startsAt": starts_at } }),
            Some(&patient.access),
        )
        .await;
    booked["bookAppointment"]["id"].as_str().unwrap().to_owned()
}

/// `token`'s APPOINTMENT_REMINDER notifications, newest first.
async fn reminders(app: &TestApp, token: &str) -> Vec<Value> {
    let data = app.ok(REMINDERS, json!({}), Some(token)).await;
    data["myNotifications"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .filter(|n| n["kind"] == "APPOINTMENT_REMINDER")
        .collect()
}

/// Waits until `token` has `count` reminders; returns them.
async fn until_reminded(app: &TestApp, token: &str, count: usize) -> Vec<Value> {
    eventually(&format!("{count} reminders"), || async {
        let found = reminders(app, token).await;
        assert!(
            found.len() <= count,
            "more reminders than expected: {found:?}"
        );
        (found.len() == count).then_some(found)
    })
    .await
}

/// Long enough for several sweeps (one a second) to have run.
async fn a_few_sweeps() {
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
}

fn travel_to(app: &TestApp, at: DateTime<Utc>) {
    app.clock.shift(at - app.clock.now());
}

#[tokio::test]
async fn each_party_is_reminded_once_at_each_offset() {
    let app = reminding_app(|_| {}).await;
    let (doctor, doctor_id, slots) = doctor_with_slots(&app, "REMIND-1").await;
    let patient = app.register_patient().await;
    let starts_at = slots[20];
    let appointment = book(&app, &patient, &doctor_id, starts_at).await;
    a_few_sweeps().await;
    assert!(
        reminders(&app, &patient.access).await.is_empty(),
        "not due yet"
    );

    travel_to(&app, starts_at - Duration::hours(23));
    let day_before = until_reminded(&app, &patient.access, 1).await;
    assert_eq!(day_before[0]["appointment"]["id"], appointment.as_str());
    let when = starts_at.format("%Y-%m-%d %H:%M UTC").to_string();
    let message = day_before[0]["message"].as_str().unwrap();
    assert!(
        message.contains(&when) && message.contains("24 hours"),
        "{message}"
    );
    assert_eq!(
        until_reminded(&app, &doctor.access, 1).await[0]["message"],
        message
    );

    travel_to(&app, starts_at - Duration::minutes(10));
    let soon = until_reminded(&app, &patient.access, 2).await;
    assert!(
        soon[0]["message"].as_str().unwrap().contains("15 minutes"),
        "{soon:?}"
    );
    until_reminded(&app, &doctor.access, 2).await;

    a_few_sweeps().await;
    assert_eq!(
        reminders(&app, &patient.access).await.len(),
        2,
        "none sent twice"
    );
    assert_eq!(reminders(&app, &doctor.access).await.len(), 2);
}

/// The reminder's mail goes to both parties with it, once, however many sweeps follow.
#[tokio::test]
async fn each_reminder_is_mailed_to_both_parties_once() {
    let (app, smtp) = spawn_app_with_mail(|config| {
        config.reminder_offsets = "24h".into();
        config.reminder_sweep_secs = 1;
    })
    .await;
    let (doctor, doctor_id, slots) = doctor_with_slots(&app, "REMIND-MAIL").await;
    let patient = app.register_patient().await;
    let starts_at = slots[20];
    book(&app, &patient, &doctor_id, starts_at).await;
    travel_to(&app, starts_at - Duration::hours(23));
    until_reminded(&app, &patient.access, 1).await;

    let subject = "Reminder: your appointment starts in 24 hours";
    let when = starts_at.format("%Y-%m-%d %H:%M").to_string();
    for party in [&patient, &doctor] {
        let mail = smtp.mail_to(&party.email, subject).await;
        let text = mail.text.as_deref().expect("a text body");
        assert!(text.contains(&when), "{text}");
    }
    a_few_sweeps().await;
    outbox_drained(&app).await;
    for party in [&patient, &doctor] {
        let reminders = smtp.received_by(&party.email);
        let reminders = reminders.iter().filter(|m| m.subject.contains(subject));
        assert_eq!(
            reminders.count(),
            1,
            "one mail per reminder to {}",
            party.email
        );
    }
}

#[tokio::test]
async fn a_cancelled_appointment_is_never_reminded_and_a_moved_one_at_its_new_start() {
    let app = reminding_app(|_| {}).await;
    let (_, doctor_id, slots) = doctor_with_slots(&app, "REMIND-2").await;
    let (ann, bob) = (app.register_patient().await, app.register_patient().await);
    let cancelled = book(&app, &ann, &doctor_id, slots[10]).await;
    let moved = book(&app, &bob, &doctor_id, slots[11]).await;
    app.ok(
        "mutation($id: ID!) { cancelAppointment(id: $id) { id } }",
        json!({ "id": cancelled }),
        Some(&ann.access),
    )
    .await;

    // Both reminders at 24 hours are due; only the live appointment's goes out.
    travel_to(&app, slots[11] - Duration::hours(23));
    let first = until_reminded(&app, &bob.access, 1).await;
    let old_time = slots[11].format("%Y-%m-%d %H:%M UTC").to_string();
    assert!(first[0]["message"].as_str().unwrap().contains(&old_time));

    // The cancelled one's reminder at 15 minutes is due too: it never goes out.
    travel_to(&app, slots[10] - Duration::minutes(10));
    a_few_sweeps().await;
    assert!(
        reminders(&app, &ann.access).await.is_empty(),
        "cancelled: never reminded"
    );
    assert_eq!(reminders(&app, &bob.access).await.len(), 1);

    // Moved a day later, after its first reminder: reminded again, for the new start.
    let new_start = slots[11] + Duration::days(1);
    app.ok(
        "mutation($id: ID!, $s: DateTime!) { rescheduleAppointment(id: $id, startsAt: $s) { id } }",
        json!({ "id": moved, "s": new_start }),
        Some(&bob.access),
    )
    .await;
    travel_to(&app, slots[11] - Duration::minutes(10));
    a_few_sweeps().await;
    assert_eq!(
        reminders(&app, &bob.access).await.len(),
        1,
        "nothing at the old start"
    );
    travel_to(&app, new_start - Duration::hours(23));
    let again = until_reminded(&app, &bob.access, 2).await;
    let new_time = new_start.format("%Y-%m-%d %H:%M UTC").to_string();
    assert!(
        again[0]["message"].as_str().unwrap().contains(&new_time),
        "{again:?}"
    );
    assert_eq!(again[0]["appointment"]["id"], moved.as_str());
}

#[tokio::test]
async fn a_reminder_whose_moment_passed_before_booking_is_skipped() {
    let app = reminding_app(|_| {}).await;
    let (_, doctor_id, slots) = doctor_with_slots(&app, "REMIND-3").await;
    let patient = app.register_patient().await;
    // Booked 20 hours ahead: its parties have just seen the time, the next reminder is at 15m.
    travel_to(&app, slots[4] - Duration::hours(20));
    book(&app, &patient, &doctor_id, slots[4]).await;
    a_few_sweeps().await;
    assert!(reminders(&app, &patient.access).await.is_empty());
    travel_to(&app, slots[4] - Duration::minutes(5));
    let soon = until_reminded(&app, &patient.access, 1).await;
    assert!(soon[0]["message"].as_str().unwrap().contains("15 minutes"));
}

#[tokio::test]
async fn a_restart_does_not_send_a_reminder_again() {
    let first = reminding_app(|_| {}).await;
    let (_, doctor_id, slots) = doctor_with_slots(&first, "REMIND-4").await;
    let patient = first.register_patient().await;
    let starts_at = slots[6];
    book(&first, &patient, &doctor_id, starts_at).await;
    travel_to(&first, starts_at - Duration::hours(23));
    until_reminded(&first, &patient.access, 1).await;
    first.shutdown().await;

    let second = first
        .another_instance(&tokio::runtime::Handle::current())
        .await;
    travel_to(&second, starts_at - Duration::hours(23));
    a_few_sweeps().await;
    assert_eq!(
        reminders(&second, &patient.access).await.len(),
        1,
        "not sent again"
    );
    // The new instance sweeps: the next reminder does come.
    travel_to(&second, starts_at - Duration::minutes(10));
    until_reminded(&second, &patient.access, 2).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn two_instances_send_each_reminder_exactly_once() {
    const APPOINTMENTS: usize = 12;
    let a = reminding_app(|config| config.max_open_bookings_per_doctor = 20).await;
    let b = a.another_instance(&tokio::runtime::Handle::current()).await;
    let (doctor, doctor_id, slots) = doctor_with_slots(&a, "REMIND-5").await;
    let patient = a.register_patient().await;
    let slots = &slots[..APPOINTMENTS];
    let booked = join_all(slots.iter().map(|s| book(&a, &patient, &doctor_id, *s))).await;

    // Every reminder at 24 hours is due at once, on both instances.
    let at = slots[APPOINTMENTS - 1] - Duration::hours(24) + Duration::minutes(1);
    travel_to(&a, at);
    travel_to(&b, at);
    until_reminded(&a, &doctor.access, APPOINTMENTS).await;
    let sent = until_reminded(&b, &patient.access, APPOINTMENTS).await;
    a_few_sweeps().await;
    let sent_later = reminders(&a, &patient.access).await;
    assert_eq!(sent_later.len(), APPOINTMENTS, "none twice");
    let mut reminded: Vec<&str> = sent
        .iter()
        .map(|n| n["appointment"]["id"].as_str().unwrap())
        .collect();
    reminded.sort_unstable();
    let mut expected: Vec<&str> = booked.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(reminded, expected, "each appointment once");
    assert_eq!(reminders(&b, &doctor.access).await.len(), APPOINTMENTS);
}
