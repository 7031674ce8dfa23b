//! Schedules, free slots across time zones and daylight saving, race-proof booking, the
//! appointment lifecycle, and reviews.

use crate::common::*;
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use futures_util::future::join_all;
use serde_json::{Value, json};

const SET_SCHEDULE: &str = "mutation($input: ScheduleInput!) { setSchedule(input: $input) { \
    timeZone slotMinutes minNoticeMinutes bookingHorizonDays cancellationNoticeMinutes \
    weekly { weekday start end } exceptions { date available windows { start end } } } }";
const SLOTS: &str = "query($doctorId: ID!, $from: Date!, $to: Date!, $timeZone: String) { \
    availableSlots(doctorId: $doctorId, from: $from, to: $to, timeZone: $timeZone) { startsAt endsAt } }";
const BOOK: &str = "mutation($input: BookAppointmentInput!) { bookAppointment(input: $input) { \
    id status startsAt endsAt reason fee { amount currency } doctor { id } patient { id } } }";
const APPOINTMENT: &str = "query($id: ID!) { appointment(id: $id) { id status cancelledBy cancellationReason startsAt } }";
const ALL_DAYS: [&str; 7] = [
    "MONDAY",
    "TUESDAY",
    "WEDNESDAY",
    "THURSDAY",
    "FRIDAY",
    "SATURDAY",
    "SUNDAY",
];

/// Every day 00:00-23:59 UTC in 30-minute slots, bookable at once.
fn always_open(extra: Value) -> Value {
    let mut input = json!({
        "timeZone": "UTC",
        "slotMinutes": 30,
        "minNoticeMinutes": 0,
        "weekly": ALL_DAYS.iter().map(|d| json!({ "weekday": d, "start": "00:00", "end": "23:59" })).collect::<Vec<_>>(),
    });
    for (key, value) in extra.as_object().unwrap() {
        input[key] = value.clone();
    }
    input
}

async fn doctor_with_schedule(
    app: &TestApp,
    admin: &Account,
    licence: &str,
    schedule: Value,
) -> (Account, String) {
    let (doctor, id) = app
        .approved_doctor(admin, &format!("Dr {licence}"), profile_input(licence))
        .await;
    app.ok(
        SET_SCHEDULE,
        json!({ "input": schedule }),
        Some(&doctor.access),
    )
    .await;
    (doctor, id)
}

async fn free_slots(
    app: &TestApp,
    doctor_id: &str,
    from: NaiveDate,
    to: NaiveDate,
    zone: Option<&str>,
) -> Vec<DateTime<Utc>> {
    let data = app
        .ok(SLOTS, json!({ "doctorId": doctor_id, "from": from.to_string(), "to": to.to_string(), "timeZone": zone }), None)
        .await;
    data["availableSlots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["startsAt"].as_str().unwrap().parse().unwrap())
        .collect()
}

/// The free slots of the next two days, by the server's clock.
async fn upcoming(app: &TestApp, doctor_id: &str) -> Vec<DateTime<Utc>> {
    let today = app.clock.now().date_naive();
    free_slots(
        app,
        doctor_id,
        today,
        today + Duration::days(2),
        Some("UTC"),
    )
    .await
}

async fn book(
    app: &TestApp,
    patient: &Account,
    doctor_id: &str,
    starts_at: DateTime<Utc>,
) -> Value {
    app.graphql(
        BOOK,
        json!({ "input": { "doctorId": doctor_id, "startsAt": starts_at.to_rfc3339(), "reason": "Check-up" } }),
        Some(&patient.access),
    )
    .await
}

/// Sets the server's clock to `at`.
fn travel_to(app: &TestApp, at: DateTime<Utc>) {
    app.clock.shift(at - app.clock.now());
}

fn utc(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// A week of Monday and Friday hours in Berlin, in 20-minute slots, closed on Christmas Day.
fn berlin_week() -> Value {
    json!({
        "timeZone": "Europe/Berlin",
        "slotMinutes": 20,
        "weekly": [
            { "weekday": "MONDAY", "start": "09:00", "end": "12:00" },
            { "weekday": "MONDAY", "start": "13:00", "end": "17:00" },
            { "weekday": "FRIDAY", "start": "08:30", "end": "11:00" }
        ],
        "exceptions": [{ "date": "2026-12-25", "available": false }]
    })
}

#[tokio::test]
async fn a_doctor_sets_a_schedule_that_anyone_can_read() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (doctor, id) = app
        .approved_doctor(&admin, "Dr Schedule", profile_input("SCH-1"))
        .await;
    let set = app
        .ok(
            SET_SCHEDULE,
            json!({ "input": berlin_week() }),
            Some(&doctor.access),
        )
        .await;
    assert_eq!(set["setSchedule"]["timeZone"], "Europe/Berlin");
    assert_eq!(set["setSchedule"]["minNoticeMinutes"], 60, "default notice");
    assert_eq!(
        set["setSchedule"]["bookingHorizonDays"], 60,
        "default horizon"
    );
    let public = app
        .ok("query($id: ID!) { doctor(id: $id) { schedule { timeZone slotMinutes weekly { weekday start end } exceptions { date available } } } }", json!({ "id": id }), None)
        .await;
    assert_eq!(
        public["doctor"]["schedule"]["weekly"],
        set["setSchedule"]["weekly"]
    );
    assert_eq!(
        public["doctor"]["schedule"]["exceptions"][0]["date"],
        "2026-12-25"
    );
}

#[tokio::test]
async fn bad_schedules_are_refused_with_their_field_and_change_nothing() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (doctor, id) = doctor_with_schedule(&app, &admin, "SCH-1", berlin_week()).await;
    let with = |key: &str, value: Value| {
        let mut bad = berlin_week();
        bad[key] = value;
        json!({ "input": bad })
    };
    // What is wrong, the field at fault (it holds the wrong value), the wrong value.
    let cases = json!([
        ["unknown zone", "timeZone", "Mars/Olympus_Mons"],
        ["slot too short", "slotMinutes", 5],
        ["slot too long", "slotMinutes", 121],
        ["overlapping windows", "weekly", [
            { "weekday": "MONDAY", "start": "09:00", "end": "12:00" },
            { "weekday": "MONDAY", "start": "11:00", "end": "13:00" }]],
        ["end before start", "weekly", [{ "weekday": "MONDAY", "start": "12:00", "end": "09:00" }]],
        ["not a time", "weekly", [{ "weekday": "MONDAY", "start": "25:00", "end": "26:00" }]],
        ["day off with hours", "exceptions", [{ "date": "2026-12-24", "available": false,
            "windows": [{ "start": "09:00", "end": "10:00" }] }]],
        ["negative notice", "minNoticeMinutes", -1]
    ]);
    for case in cases.as_array().unwrap() {
        let (name, field) = (&case[0], case[1].as_str().unwrap());
        let body = app
            .graphql(
                SET_SCHEDULE,
                with(field, case[2].clone()),
                Some(&doctor.access),
            )
            .await;
        assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{name}: {body}");
        assert_eq!(error_field(&body), Some(field), "{name}: {body}");
    }
    let funday = json!([{ "weekday": "FUNDAY", "start": "09:00", "end": "10:00" }]);
    let bad_weekday = app
        .graphql(SET_SCHEDULE, with("weekly", funday), Some(&doctor.access))
        .await;
    assert_eq!(error_code(&bad_weekday), Some("BAD_USER_INPUT"));
    let unchanged = app
        .ok(
            "query($id: ID!) { doctor(id: $id) { schedule { slotMinutes } } }",
            json!({ "id": id }),
            None,
        )
        .await;
    assert_eq!(
        unchanged["doctor"]["schedule"]["slotMinutes"], 20,
        "refused inputs change nothing"
    );
}

#[tokio::test]
async fn only_an_approved_doctor_sets_a_schedule() {
    let app = spawn_app().await;
    let patient = app.register_patient().await;
    let schedule = json!({ "input": berlin_week() });
    let by_patient = app
        .graphql(SET_SCHEDULE, schedule.clone(), Some(&patient.access))
        .await;
    assert_eq!(error_code(&by_patient), Some("FORBIDDEN"));
    let newcomer = app.register_doctor().await;
    let no_profile = app
        .graphql(SET_SCHEDULE, schedule, Some(&newcomer.access))
        .await;
    assert_eq!(error_code(&no_profile), Some("NOT_FOUND"));
}

/// Sunday hours in `zone`, bookable at once.
fn sundays(start: &str, end: &str, zone: &str, minutes: i64) -> Value {
    json!({ "timeZone": zone, "slotMinutes": minutes, "minNoticeMinutes": 0,
            "weekly": [{ "weekday": "SUNDAY", "start": start, "end": end }] })
}

/// The free slots of one day, in the doctor's zone.
async fn slots_on(app: &TestApp, doctor_id: &str, day: &str) -> Vec<DateTime<Utc>> {
    free_slots(app, doctor_id, date(day), date(day), None).await
}

#[tokio::test]
async fn new_york_springing_forward_has_no_slot_in_the_missing_hour() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    travel_to(&app, utc("2026-03-01T12:00:00Z"));
    let schedule = sundays("01:00", "04:00", "America/New_York", 30);
    let (_, new_york) = doctor_with_schedule(&app, &admin, "NY-1", schedule).await;
    // 2026-03-08: 02:00-03:00 does not exist in New York.
    assert_eq!(
        slots_on(&app, &new_york, "2026-03-08").await,
        [
            "2026-03-08T06:00:00Z",
            "2026-03-08T06:30:00Z",
            "2026-03-08T07:00:00Z",
            "2026-03-08T07:30:00Z"
        ]
        .map(utc)
    );
    let week_before = slots_on(&app, &new_york, "2026-03-01").await;
    assert!(
        week_before.is_empty(),
        "Sunday 1 March is past its hours by the clock: {week_before:?}"
    );
}

#[tokio::test]
async fn new_york_falling_back_offers_the_repeated_hour_once() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    travel_to(&app, utc("2026-10-25T12:00:00Z"));
    let schedule = sundays("00:00", "03:00", "America/New_York", 30);
    let (_, night_owl) = doctor_with_schedule(&app, &admin, "NY-2", schedule).await;
    // 2026-11-01: 01:00-02:00 happens twice in New York; it is offered once.
    assert_eq!(
        slots_on(&app, &night_owl, "2026-11-01").await,
        [
            "2026-11-01T04:00:00Z",
            "2026-11-01T04:30:00Z",
            "2026-11-01T05:00:00Z",
            "2026-11-01T05:30:00Z",
            "2026-11-01T07:00:00Z",
            "2026-11-01T07:30:00Z"
        ]
        .map(utc)
    );
}

#[tokio::test]
async fn berlin_springing_forward_keeps_the_slots_either_side_and_books_them() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    travel_to(&app, utc("2026-03-20T12:00:00Z"));
    let schedule = sundays("01:00", "04:00", "Europe/Berlin", 60);
    let (_, berlin) = doctor_with_schedule(&app, &admin, "BER-1", schedule).await;
    // 2026-03-29: Berlin jumps from 02:00 CET to 03:00 CEST; 01:00 and 03:00 remain.
    assert_eq!(
        slots_on(&app, &berlin, "2026-03-29").await,
        ["2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z"].map(utc)
    );
    let patient = app.register_patient().await;
    let booked = book(&app, &patient, &berlin, utc("2026-03-29T01:00:00Z")).await;
    assert_eq!(
        utc(booked["data"]["bookAppointment"]["endsAt"]
            .as_str()
            .unwrap()),
        utc("2026-03-29T02:00:00Z"),
        "{booked}"
    );
    let patient = app.register_patient().await;
    let off_the_clock = book(&app, &patient, &berlin, utc("2026-03-29T00:30:00Z")).await;
    assert_eq!(
        error_code(&off_the_clock),
        Some("BAD_USER_INPUT"),
        "a time between slots is refused"
    );
    assert_eq!(
        slots_on(&app, &berlin, "2026-03-29").await,
        ["2026-03-29T00:00:00Z"].map(utc),
        "the booked slot is gone"
    );
}

#[tokio::test]
async fn weekdays_are_the_doctors_whatever_the_patients_zone() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    travel_to(&app, utc("2026-06-01T00:00:00Z"));
    // Monday 08:00-10:00 in Tokyo is Sunday 23:00-01:00 UTC and Sunday afternoon in Los Angeles.
    let schedule = json!({ "timeZone": "Asia/Tokyo", "slotMinutes": 60, "minNoticeMinutes": 0,
        "weekly": [{ "weekday": "MONDAY", "start": "08:00", "end": "10:00" }] });
    let (_, tokyo) = doctor_with_schedule(&app, &admin, "TYO-1", schedule).await;
    let expected = ["2026-06-07T23:00:00Z", "2026-06-08T00:00:00Z"].map(utc);
    let doctors_monday =
        free_slots(&app, &tokyo, date("2026-06-08"), date("2026-06-08"), None).await;
    assert_eq!(doctors_monday, expected);
    let la_sunday = free_slots(
        &app,
        &tokyo,
        date("2026-06-07"),
        date("2026-06-07"),
        Some("America/Los_Angeles"),
    )
    .await;
    assert_eq!(
        la_sunday, expected,
        "on Sunday for a patient in Los Angeles"
    );
    let la_monday = free_slots(
        &app,
        &tokyo,
        date("2026-06-08"),
        date("2026-06-08"),
        Some("America/Los_Angeles"),
    )
    .await;
    assert!(
        la_monday.is_empty(),
        "nothing on Monday in Los Angeles: {la_monday:?}"
    );
    let la = chrono_tz::America::Los_Angeles;
    assert_eq!(
        la.from_utc_datetime(&expected[0].naive_utc())
            .format("%A %H:%M")
            .to_string(),
        "Sunday 16:00"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_patients_racing_for_one_slot_leave_one_booking() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (_, doctor_id) = doctor_with_schedule(&app, &admin, "RACE-1", always_open(json!({}))).await;
    let slot = upcoming(&app, &doctor_id).await[0];
    let mut patients = Vec::new();
    for _ in 0..20 {
        patients.push(app.register_patient().await);
    }
    let results = join_all(patients.iter().map(|p| book(&app, p, &doctor_id, slot))).await;
    let confirmed = results
        .iter()
        .filter(|b| b["data"]["bookAppointment"]["status"] == "CONFIRMED")
        .count();
    let conflicts = results
        .iter()
        .filter(|b| error_code(b) == Some("CONFLICT"))
        .count();
    assert_eq!((confirmed, conflicts), (1, 19), "{results:?}");
    assert_eq!(app.count_rows("appointments").await, 1);
    assert!(!upcoming(&app, &doctor_id).await.contains(&slot));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_patient_booking_several_doctors_at_once_gets_one() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let mut doctors = Vec::new();
    for i in 0..5 {
        doctors.push(
            doctor_with_schedule(&app, &admin, &format!("TWO-{i}"), always_open(json!({})))
                .await
                .1,
        );
    }
    let slot = upcoming(&app, &doctors[0]).await[1];
    let patient = app.register_patient().await;
    let results = join_all(doctors.iter().map(|d| book(&app, &patient, d, slot))).await;
    let confirmed = results.iter().filter(|b| b.get("errors").is_none()).count();
    let conflicts = results
        .iter()
        .filter(|b| error_code(b) == Some("CONFLICT"))
        .count();
    assert_eq!((confirmed, conflicts), (1, 4), "{results:?}");
    assert_eq!(app.count_rows("appointments").await, 1);
}

/// A confirmed booking and the people around it.
struct Booked {
    doctor: Account,
    doctor_id: String,
    patient: Account,
    /// The appointment's id.
    id: String,
    slot: DateTime<Utc>,
    /// `bookAppointment` as the patient received it.
    booking: Value,
}

/// A patient's booking of the third upcoming slot of a doctor open around the clock, with the
/// default 24 h cancellation notice.
async fn a_booking(app: &TestApp, licence: &str) -> Booked {
    let admin = app.admin().await;
    let (doctor, doctor_id) =
        doctor_with_schedule(app, &admin, licence, always_open(json!({}))).await;
    let patient = app.register_patient().await;
    let slot = upcoming(app, &doctor_id).await[2];
    let booked = book(app, &patient, &doctor_id, slot).await;
    let booking = booked["data"]["bookAppointment"].clone();
    assert_eq!(booking["status"], "CONFIRMED", "{booked}");
    let id = booking["id"].as_str().unwrap().to_owned();
    Booked {
        doctor,
        doctor_id,
        patient,
        id,
        slot,
        booking,
    }
}

/// `a_booking`, started by the doctor at its time and completed.
async fn a_completed_appointment(app: &TestApp, licence: &str) -> Booked {
    let booked = a_booking(app, licence).await;
    travel_to(app, booked.slot - Duration::minutes(5));
    for step in ["startAppointment", "completeAppointment"] {
        let done = act(app, step, &booked.id, &booked.doctor).await;
        assert!(done.get("errors").is_none(), "{step}: {done}");
    }
    booked
}

/// Runs the lifecycle mutation `name` on appointment `id` as `by`.
async fn act(app: &TestApp, name: &str, id: &str, by: &Account) -> Value {
    let mutation = format!("mutation($id: ID!) {{ {name}(id: $id) {{ status }} }}");
    app.graphql(&mutation, json!({ "id": id }), Some(&by.access))
        .await
}

/// Reviews appointment `id` as `by` with `review`'s fields.
async fn review(app: &TestApp, id: &str, by: &Account, mut review: Value) -> Value {
    review["appointmentId"] = json!(id);
    app.graphql(REVIEW, json!({ "input": review }), Some(&by.access))
        .await
}

#[tokio::test]
async fn a_booking_copies_the_fee_and_names_both_sides() {
    let app = spawn_app().await;
    let booked = a_booking(&app, "LIFE-1").await;
    assert_eq!(
        booked.booking["fee"],
        json!({ "amount": 5000, "currency": "USD" }),
        "the fee is copied"
    );
    assert_eq!(booked.booking["doctor"]["id"], booked.doctor_id.as_str());
    assert_eq!(booked.booking["patient"]["id"], booked.patient.id.as_str());
}

#[tokio::test]
async fn a_confirmed_appointment_is_not_cancelled_late_nor_started_early_nor_by_its_patient() {
    let app = spawn_app().await;
    let Booked {
        doctor,
        patient,
        id,
        ..
    } = a_booking(&app, "LIFE-1").await;
    let late_cancel = act(&app, "cancelAppointment", &id, &patient).await;
    assert_eq!(
        error_code(&late_cancel),
        Some("CONFLICT"),
        "inside the 24 h notice: {late_cancel}"
    );
    let too_early = act(&app, "startAppointment", &id, &doctor).await;
    assert_eq!(error_code(&too_early), Some("CONFLICT"));
    let by_patient = act(&app, "startAppointment", &id, &patient).await;
    assert_eq!(error_code(&by_patient), Some("FORBIDDEN"));
    let complete_early = act(&app, "completeAppointment", &id, &doctor).await;
    assert_eq!(
        error_code(&complete_early),
        Some("CONFLICT"),
        "not started yet"
    );
}

#[tokio::test]
async fn a_started_appointment_completes_and_then_nothing_more_happens_to_it() {
    let app = spawn_app().await;
    let Booked {
        doctor,
        patient,
        id,
        slot,
        ..
    } = a_booking(&app, "LIFE-1").await;
    travel_to(&app, slot - Duration::minutes(5));
    let started = act(&app, "startAppointment", &id, &doctor).await;
    assert_eq!(started["data"]["startAppointment"]["status"], "IN_PROGRESS");
    let review_early = review(&app, &id, &patient, json!({ "rating": 5 })).await;
    assert_eq!(
        error_code(&review_early),
        Some("CONFLICT"),
        "not completed yet"
    );
    let completed = act(&app, "completeAppointment", &id, &doctor).await;
    assert_eq!(
        completed["data"]["completeAppointment"]["status"],
        "COMPLETED"
    );
    for illegal in [
        "completeAppointment",
        "startAppointment",
        "markNoShow",
        "cancelAppointment",
    ] {
        let body = act(&app, illegal, &id, &doctor).await;
        assert_eq!(
            error_code(&body),
            Some("CONFLICT"),
            "{illegal} after completion: {body}"
        );
    }
}

#[tokio::test]
async fn a_completed_appointment_gets_one_review_from_its_patient_and_the_doctor_is_rated() {
    let app = spawn_app().await;
    let Booked {
        doctor,
        doctor_id,
        patient,
        id,
        ..
    } = a_completed_appointment(&app, "LIFE-1").await;
    let bad_rating = review(&app, &id, &patient, json!({ "rating": 6 })).await;
    assert_eq!(error_field(&bad_rating), Some("rating"));
    let by_doctor = review(&app, &id, &doctor, json!({ "rating": 5 })).await;
    assert_eq!(error_code(&by_doctor), Some("FORBIDDEN"));
    let thorough = json!({ "rating": 4, "comment": "Thorough." });
    let reviewed = review(&app, &id, &patient, thorough).await;
    assert_eq!(
        reviewed["data"]["reviewAppointment"]["rating"], 4,
        "{reviewed}"
    );
    let again = review(&app, &id, &patient, json!({ "rating": 1 })).await;
    assert_eq!(
        error_code(&again),
        Some("CONFLICT"),
        "one review per appointment"
    );

    let rated = app
        .ok("query($id: ID!) { doctor(id: $id) { ratingAverage ratingCount reviews { totalCount edges { node { rating comment author { name } } } } } }", json!({ "id": doctor_id }), None)
        .await;
    assert_eq!(rated["doctor"]["ratingAverage"], 4.0);
    assert_eq!(rated["doctor"]["ratingCount"], 1);
    assert_eq!(
        rated["doctor"]["reviews"]["edges"][0]["node"]["comment"],
        "Thorough."
    );
    let found = app
        .ok(
            "{ doctors(filter: { minRating: 3.5 }) { totalCount } }",
            json!({}),
            None,
        )
        .await;
    assert_eq!(
        found["doctors"]["totalCount"], 1,
        "search sees the new rating"
    );
    let mine = app
        .ok(
            "{ myAppointments { edges { node { id status review { rating } } } } }",
            json!({}),
            Some(&patient.access),
        )
        .await;
    assert_eq!(
        mine["myAppointments"]["edges"][0]["node"]["review"]["rating"],
        4
    );
}

const REVIEW: &str =
    "mutation($input: ReviewInput!) { reviewAppointment(input: $input) { id rating comment } }";

/// A doctor open around the clock who takes cancellations until the start.
async fn a_doctor_without_notice(app: &TestApp) -> (Account, String) {
    let admin = app.admin().await;
    let schedule = always_open(json!({ "cancellationNoticeMinutes": 0 }));
    doctor_with_schedule(app, &admin, "RULE-1", schedule).await
}

fn booking_id(booked: &Value) -> String {
    booked["data"]["bookAppointment"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("not booked: {booked}"))
        .to_owned()
}

/// Cancelled slots are free again at once, for anyone; the appointment says who cancelled.
#[tokio::test]
async fn a_cancellation_says_who_and_why_and_frees_the_slot() {
    let app = spawn_app().await;
    let (doctor, doctor_id) = a_doctor_without_notice(&app).await;
    let patient = app.register_patient().await;
    let other = app.register_patient().await;
    let slots = upcoming(&app, &doctor_id).await;
    let first_id = booking_id(&book(&app, &patient, &doctor_id, slots[3]).await);
    let cancelled = app
        .ok("mutation($id: ID!) { cancelAppointment(id: $id, reason: \"Feeling better\") { status cancelledBy cancellationReason } }", json!({ "id": first_id }), Some(&patient.access))
        .await;
    assert_eq!(
        cancelled["cancelAppointment"],
        json!({ "status": "CANCELLED", "cancelledBy": "PATIENT", "cancellationReason": "Feeling better" })
    );
    assert!(upcoming(&app, &doctor_id).await.contains(&slots[3]));
    let rebooked = book(&app, &other, &doctor_id, slots[3]).await;
    assert_eq!(
        rebooked["data"]["bookAppointment"]["status"], "CONFIRMED",
        "{rebooked}"
    );

    let third_id = booking_id(&book(&app, &patient, &doctor_id, slots[0]).await);
    let by_doctor = app
        .ok(
            "mutation($id: ID!) { cancelAppointment(id: $id) { status cancelledBy } }",
            json!({ "id": third_id }),
            Some(&doctor.access),
        )
        .await;
    assert_eq!(
        by_doctor["cancelAppointment"],
        json!({ "status": "CANCELLED", "cancelledBy": "DOCTOR" })
    );
}

/// The old slot is freed and the new one taken; a taken or off-grid slot changes nothing.
#[tokio::test]
async fn a_reschedule_moves_to_a_free_slot_only() {
    let app = spawn_app().await;
    let (_, doctor_id) = a_doctor_without_notice(&app).await;
    let patient = app.register_patient().await;
    let other = app.register_patient().await;
    let slots = upcoming(&app, &doctor_id).await;
    let (a, b, c) = (slots[3], slots[4], slots[5]);
    booking_id(&book(&app, &other, &doctor_id, a).await);
    let second_id = booking_id(&book(&app, &patient, &doctor_id, b).await);
    const MOVE: &str = "mutation($id: ID!, $at: DateTime!) { rescheduleAppointment(id: $id, startsAt: $at) { startsAt status } }";
    let move_to = |at: DateTime<Utc>| json!({ "id": second_id, "at": at.to_rfc3339() });
    let onto_taken = app.graphql(MOVE, move_to(a), Some(&patient.access)).await;
    assert_eq!(error_code(&onto_taken), Some("CONFLICT"), "{onto_taken}");
    let moved = app.ok(MOVE, move_to(c), Some(&patient.access)).await;
    assert_eq!(moved["rescheduleAppointment"]["status"], "CONFIRMED");
    assert_eq!(
        utc(moved["rescheduleAppointment"]["startsAt"].as_str().unwrap()),
        c
    );
    let free = upcoming(&app, &doctor_id).await;
    assert!(free.contains(&b) && !free.contains(&c) && !free.contains(&a));
    let off_grid = move_to(b + Duration::minutes(7));
    let off_grid = app.graphql(MOVE, off_grid, Some(&patient.access)).await;
    assert_eq!(error_code(&off_grid), Some("BAD_USER_INPUT"));
}

#[tokio::test]
async fn only_the_doctor_marks_a_no_show_and_only_once_the_start_has_passed() {
    let app = spawn_app().await;
    let (doctor, doctor_id) = a_doctor_without_notice(&app).await;
    let patient = app.register_patient().await;
    let slot = upcoming(&app, &doctor_id).await[5];
    let id = booking_id(&book(&app, &patient, &doctor_id, slot).await);
    let early = act(&app, "markNoShow", &id, &doctor).await;
    assert_eq!(error_code(&early), Some("CONFLICT"));
    travel_to(&app, slot + Duration::minutes(3));
    let by_patient = act(&app, "markNoShow", &id, &patient).await;
    assert_eq!(error_code(&by_patient), Some("FORBIDDEN"));
    let no_show = act(&app, "markNoShow", &id, &doctor).await;
    assert_eq!(
        no_show["data"]["markNoShow"]["status"], "NO_SHOW",
        "{no_show}"
    );
}

#[tokio::test]
async fn strangers_see_and_change_nothing() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (_, doctor_id) = doctor_with_schedule(
        &app,
        &admin,
        "PRIV-1",
        always_open(json!({ "cancellationNoticeMinutes": 0 })),
    )
    .await;
    let (other_doctor, _) =
        doctor_with_schedule(&app, &admin, "PRIV-2", always_open(json!({}))).await;
    let patient = app.register_patient().await;
    let stranger = app.register_patient().await;
    let slot = upcoming(&app, &doctor_id).await[0];
    let booked = book(&app, &patient, &doctor_id, slot).await;
    let id = booked["data"]["bookAppointment"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    for token in [&stranger.access, &other_doctor.access] {
        let read = app
            .graphql(APPOINTMENT, json!({ "id": id }), Some(token))
            .await;
        assert_eq!(error_code(&read), Some("NOT_FOUND"));
        assert!(read["data"].is_null(), "no data: {read}");
        let cancel = app
            .graphql(
                "mutation($id: ID!) { cancelAppointment(id: $id) { id } }",
                json!({ "id": id }),
                Some(token),
            )
            .await;
        assert_eq!(error_code(&cancel), Some("NOT_FOUND"));
        let review = app
            .graphql(
                REVIEW,
                json!({ "input": { "appointmentId": id, "rating": 1 } }),
                Some(token),
            )
            .await;
        assert!(
            matches!(error_code(&review), Some("NOT_FOUND" | "FORBIDDEN")),
            "{review}"
        );
    }
    let anonymous = app.graphql(APPOINTMENT, json!({ "id": id }), None).await;
    assert_eq!(error_code(&anonymous), Some("UNAUTHENTICATED"));
    let by_admin = app
        .ok(APPOINTMENT, json!({ "id": id }), Some(&admin.access))
        .await;
    assert_eq!(by_admin["appointment"]["status"], "CONFIRMED");
    let still = app
        .ok(APPOINTMENT, json!({ "id": id }), Some(&patient.access))
        .await;
    assert_eq!(
        still["appointment"]["status"], "CONFIRMED",
        "nothing changed"
    );
}

/// A doctor open around the clock, bookable from two hours ahead up to three days ahead.
async fn a_doctor_with_limits(app: &TestApp, admin: &Account) -> String {
    let schedule = always_open(json!({ "minNoticeMinutes": 120, "bookingHorizonDays": 3 }));
    doctor_with_schedule(app, admin, "BAD-B", schedule).await.1
}

#[tokio::test]
async fn a_booking_off_the_grid_or_outside_the_bookable_window_is_refused() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let doctor_id = a_doctor_with_limits(&app, &admin).await;
    let patient = app.register_patient().await;
    let now = app.clock.now();
    let next_grid = |after: DateTime<Utc>| {
        let minutes = after.timestamp() / 60;
        Utc.timestamp_opt((minutes / 30 + 1) * 30 * 60, 0).unwrap()
    };
    let ok_slot = upcoming(&app, &doctor_id).await[0];
    for (name, starts_at) in [
        ("off the grid", ok_slot + Duration::minutes(10)),
        ("in the past", next_grid(now - Duration::hours(5))),
        ("inside the notice", next_grid(now)),
        ("beyond the horizon", next_grid(now + Duration::days(4))),
    ] {
        let body = book(&app, &patient, &doctor_id, starts_at).await;
        assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{name}: {body}");
        assert_eq!(error_field(&body), Some("startsAt"), "{name}: {body}");
    }
    let long_reason = app
        .graphql(BOOK, json!({ "input": { "doctorId": doctor_id, "startsAt": ok_slot.to_rfc3339(), "reason": "r".repeat(1001) } }), Some(&patient.access))
        .await;
    assert_eq!(error_field(&long_reason), Some("reason"));
    let too_wide = app
        .graphql(
            SLOTS,
            json!({ "doctorId": doctor_id, "from": "2026-01-01", "to": "2026-02-01" }),
            None,
        )
        .await;
    assert_eq!(error_field(&too_wide), Some("to"));
    assert_eq!(app.count_rows("appointments").await, 0);
    let fine = book(&app, &patient, &doctor_id, ok_slot).await;
    assert_eq!(
        fine["data"]["bookAppointment"]["status"], "CONFIRMED",
        "{fine}"
    );
}

#[tokio::test]
async fn a_booking_with_a_doctor_who_cannot_take_it_or_by_a_doctor_is_refused() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let doctor_id = a_doctor_with_limits(&app, &admin).await;
    let ok_slot = upcoming(&app, &doctor_id).await[0];
    let unscheduled = app
        .approved_doctor(&admin, "Dr Nohours", profile_input("BAD-C"))
        .await
        .1;
    let pending = app.register_doctor().await;
    let pending_id = app
        .submit_profile(&pending.access, profile_input("BAD-D"), pdf("p"))
        .await["data"]["submitDoctorProfile"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let patient = app.register_patient().await;
    for (name, doctor, code, field) in [
        ("no schedule", unscheduled, "BAD_USER_INPUT", "doctorId"),
        ("unapproved doctor", pending_id, "NOT_FOUND", "id"),
        (
            "malformed id",
            "doctor-1".into(),
            "BAD_USER_INPUT",
            "doctorId",
        ),
    ] {
        let body = book(&app, &patient, &doctor, ok_slot).await;
        assert_eq!(error_code(&body), Some(code), "{name}: {body}");
        assert_eq!(error_field(&body), Some(field), "{name}: {body}");
    }
    let by_doctor = app
        .graphql(
            BOOK,
            json!({ "input": { "doctorId": doctor_id, "startsAt": ok_slot.to_rfc3339() } }),
            Some(&pending.access),
        )
        .await;
    assert_eq!(error_code(&by_doctor), Some("FORBIDDEN"));
    assert_eq!(app.count_rows("appointments").await, 0);
}

#[tokio::test]
async fn my_appointments_pages_soonest_first_for_both_sides() {
    let app = spawn_app_with(|c| c.max_open_bookings_per_doctor = 10).await;
    let admin = app.admin().await;
    let (doctor, doctor_id) = doctor_with_schedule(
        &app,
        &admin,
        "MINE-1",
        always_open(json!({ "cancellationNoticeMinutes": 0 })),
    )
    .await;
    let patient = app.register_patient().await;
    let slots = upcoming(&app, &doctor_id).await;
    let mut ids = Vec::new();
    for slot in [slots[6], slots[2], slots[9], slots[4]] {
        let booked = book(&app, &patient, &doctor_id, slot).await;
        ids.push((
            slot,
            booked["data"]["bookAppointment"]["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        ));
    }
    ids.sort();
    app.ok(
        "mutation($id: ID!) { cancelAppointment(id: $id) { id } }",
        json!({ "id": ids[1].1 }),
        Some(&patient.access),
    )
    .await;
    const MINE: &str = "query($filter: AppointmentFilter, $after: String) { myAppointments(filter: $filter, first: 2, after: $after) { \
        totalCount edges { node { id status doctor { id } patient { id } } } pageInfo { hasNextPage endCursor } } }";
    for token in [&patient.access, &doctor.access] {
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let data = app.ok(MINE, json!({ "after": after }), Some(token)).await;
            let page = &data["myAppointments"];
            assert_eq!(page["totalCount"], 4);
            for edge in page["edges"].as_array().unwrap() {
                seen.push(edge["node"]["id"].as_str().unwrap().to_owned());
                assert_eq!(edge["node"]["doctor"]["id"], doctor_id.as_str());
                assert_eq!(edge["node"]["patient"]["id"], patient.id.as_str());
            }
            if page["pageInfo"]["hasNextPage"] == false {
                break;
            }
            after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
        }
        assert_eq!(
            seen,
            ids.iter().map(|(_, id)| id.clone()).collect::<Vec<_>>()
        );
    }
    let confirmed = app
        .ok(
            MINE,
            json!({ "filter": { "status": "CONFIRMED" } }),
            Some(&patient.access),
        )
        .await;
    assert_eq!(confirmed["myAppointments"]["totalCount"], 3);
    let window = app
        .ok(
            MINE,
            json!({ "filter": { "from": ids[2].0.to_rfc3339() } }),
            Some(&patient.access),
        )
        .await;
    assert_eq!(window["myAppointments"]["totalCount"], 2);
    let by_admin = app.graphql(MINE, json!({}), Some(&admin.access)).await;
    assert_eq!(error_code(&by_admin), Some("FORBIDDEN"));
}
