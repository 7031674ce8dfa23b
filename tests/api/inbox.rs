//! The notification inbox: every notification is kept for its user, paged newest first,
//! counted and marked read by its user alone, delivered live with its stored id, and deleted
//! after the retention period.

use crate::common::*;
use crate::reminders::{book, doctor_with_slots};
use chrono::Duration;
use serde_json::{Value, json};

const INBOX: &str = "query($first: Int, $after: String, $unreadOnly: Boolean) { \
    myNotifications(first: $first, after: $after, unreadOnly: $unreadOnly) { \
    totalCount pageInfo { hasNextPage endCursor } \
    edges { cursor node { id kind message at readAt appointment { id } } } } \
    unreadNotificationCount }";
const MARK: &str =
    "mutation($ids: [ID!], $all: Boolean) { markNotificationsRead(ids: $ids, all: $all) }";

/// The first page of `token`'s inbox (`first` items, unread only if asked) and the unread count.
async fn inbox(app: &TestApp, token: &str, variables: Value) -> (Vec<Value>, i64) {
    let data = app.ok(INBOX, variables, Some(token)).await;
    let nodes = data["myNotifications"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|edge| edge["node"].clone())
        .collect();
    (
        nodes,
        data["unreadNotificationCount"].as_i64().expect("count"),
    )
}

fn kinds(nodes: &[Value]) -> Vec<&str> {
    nodes.iter().map(|n| n["kind"].as_str().unwrap()).collect()
}

async fn mark(app: &TestApp, token: &str, variables: Value) -> Value {
    app.graphql(MARK, variables, Some(token)).await
}

#[tokio::test]
async fn a_doctor_offline_when_booked_finds_the_booking_in_the_inbox() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    // Nobody holds a socket: the doctor is offline throughout.
    let (doctor, _, patient, appointment) = app.booked_pair(&admin, "INBOX-1").await;

    let (nodes, unread) = inbox(&app, &doctor.access, json!({})).await;
    assert_eq!(
        kinds(&nodes),
        ["APPOINTMENT_BOOKED", "DOCTOR_APPROVED"],
        "newest first"
    );
    assert_eq!(unread, 2);
    let booked = &nodes[0];
    assert_eq!(booked["appointment"]["id"], appointment.as_str());
    assert!(
        booked["message"]
            .as_str()
            .unwrap()
            .starts_with("New appointment on")
    );
    assert!(booked["readAt"].is_null());
    assert!(booked["id"].as_str().is_some_and(|id| !id.is_empty()));

    // The booking notifies the doctor, not the patient who made it.
    let (mine, unread) = inbox(&app, &patient.access, json!({})).await;
    assert!(mine.is_empty(), "{mine:?}");
    assert_eq!(unread, 0);

    let anonymous = app.graphql(INBOX, json!({}), None).await;
    assert_eq!(
        error_code(&anonymous),
        Some("UNAUTHENTICATED"),
        "{anonymous}"
    );
}

#[tokio::test]
async fn marking_read_counts_only_what_changed() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (doctor, _, _, _) = app.booked_pair(&admin, "INBOX-2").await;
    let (nodes, _) = inbox(&app, &doctor.access, json!({})).await;
    let (booked, approved) = (nodes[0]["id"].clone(), nodes[1]["id"].clone());

    let once = mark(&app, &doctor.access, json!({ "ids": [booked, booked] })).await;
    assert_eq!(once["data"]["markNotificationsRead"], 1, "{once}");
    let again = mark(&app, &doctor.access, json!({ "ids": [booked] })).await;
    assert_eq!(
        again["data"]["markNotificationsRead"], 0,
        "already read: {again}"
    );

    let (unread_nodes, unread) = inbox(&app, &doctor.access, json!({ "unreadOnly": true })).await;
    assert_eq!(unread, 1);
    assert_eq!(unread_nodes.len(), 1);
    assert_eq!(unread_nodes[0]["id"], approved);
    let (nodes, _) = inbox(&app, &doctor.access, json!({})).await;
    assert!(nodes[0]["readAt"].is_string(), "{:?}", nodes[0]);
    assert!(nodes[1]["readAt"].is_null());

    let all = mark(&app, &doctor.access, json!({ "all": true })).await;
    assert_eq!(all["data"]["markNotificationsRead"], 1, "{all}");
    let all_again = mark(&app, &doctor.access, json!({ "all": true })).await;
    assert_eq!(all_again["data"]["markNotificationsRead"], 0, "{all_again}");
    assert_eq!(inbox(&app, &doctor.access, json!({})).await.1, 0);
    let none_unread = inbox(&app, &doctor.access, json!({ "unreadOnly": true })).await;
    assert!(none_unread.0.is_empty());

    // One of the two, and a bounded list.
    for bad in [
        json!({}),
        json!({ "ids": [booked], "all": true }),
        json!({ "all": false }),
        json!({ "ids": vec![booked.clone(); 101] }),
        json!({ "ids": ["not-an-id"] }),
    ] {
        let refused = mark(&app, &doctor.access, bad.clone()).await;
        assert_eq!(
            error_code(&refused),
            Some("BAD_USER_INPUT"),
            "{bad}: {refused}"
        );
        assert_eq!(error_field(&refused), Some("ids"), "{bad}: {refused}");
    }
}

#[tokio::test]
async fn nobody_sees_or_marks_another_users_notifications() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (doctor, _, patient, appointment) = app.booked_pair(&admin, "INBOX-3").await;
    app.ok(
        "mutation($id: ID!) { cancelAppointment(id: $id, reason: \"ill\") { id } }",
        json!({ "id": appointment }),
        Some(&doctor.access),
    )
    .await;
    let (theirs, _) = inbox(&app, &doctor.access, json!({})).await;
    let (mine, unread) = inbox(&app, &patient.access, json!({})).await;
    assert_eq!(
        kinds(&mine),
        ["APPOINTMENT_CANCELLED"],
        "only the patient's own"
    );
    assert_eq!(unread, 1);
    let their_ids: Vec<&Value> = theirs.iter().map(|n| &n["id"]).collect();
    assert!(!their_ids.contains(&&mine[0]["id"]));

    // Someone else's id, alone or beside one's own, and an id nobody has: NOT_FOUND, no change.
    let unknown = uuid::Uuid::now_v7().to_string();
    for ids in [
        json!([theirs[0]["id"]]),
        json!([mine[0]["id"], theirs[0]["id"]]),
        json!([unknown]),
    ] {
        let refused = mark(&app, &patient.access, json!({ "ids": ids })).await;
        assert_eq!(error_code(&refused), Some("NOT_FOUND"), "{refused}");
        assert_eq!(error_field(&refused), Some("ids"), "{refused}");
    }
    assert_eq!(inbox(&app, &patient.access, json!({})).await.1, 1);
    assert_eq!(inbox(&app, &doctor.access, json!({})).await.1, 2);

    // Marking all of one's own leaves the other user's unread.
    let all = mark(&app, &patient.access, json!({ "all": true })).await;
    assert_eq!(all["data"]["markNotificationsRead"], 1, "{all}");
    assert_eq!(inbox(&app, &doctor.access, json!({})).await.1, 2);
}

#[tokio::test]
async fn the_inbox_pages_newest_first_and_counts_toward_complexity() {
    let app = spawn_app_with(|config| {
        config.max_open_bookings_per_doctor = 10;
        config.query_complexity_limit = 300;
    })
    .await;
    let admin = app.admin().await;
    let (doctor, doctor_id, patient, _) = app.booked_pair(&admin, "INBOX-4").await;
    let tomorrow = (app.clock.now() + Duration::days(1))
        .date_naive()
        .to_string();
    let slots = app
        .ok(
            "query($d: ID!, $f: Date!) { availableSlots(doctorId: $d, from: $f, to: $f) { startsAt } }",
            json!({ "d": doctor_id, "f": tomorrow }),
            None,
        )
        .await;
    for slot in &slots["availableSlots"].as_array().unwrap()[..4] {
        app.ok(
            "mutation($input: BookAppointmentInput!) { bookAppointment(input: $input) { id } }",
            json!({ "input": { "doctorId": doctor_id, "startsAt": slot["startsAt"] } }),
            Some(&patient.access),
        )
        .await;
    }
    // 1 approval and 5 bookings, in pages of 2.
    let mut seen: Vec<Value> = Vec::new();
    let mut after = Value::Null;
    for page in 0..3 {
        let data = app
            .ok(
                INBOX,
                json!({ "first": 2, "after": after }),
                Some(&doctor.access),
            )
            .await;
        let connection = &data["myNotifications"];
        assert_eq!(connection["totalCount"], 6);
        assert_eq!(
            connection["pageInfo"]["hasNextPage"],
            page < 2,
            "page {page}"
        );
        after = connection["pageInfo"]["endCursor"].clone();
        seen.extend(
            connection["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"].clone()),
        );
    }
    assert_eq!(seen.len(), 6);
    let times: Vec<&str> = seen.iter().map(|n| n["at"].as_str().unwrap()).collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );
    assert_eq!(seen[5]["kind"], "DOCTOR_APPROVED");
    let ids: std::collections::HashSet<&str> =
        seen.iter().map(|n| n["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 6, "no item twice across pages");

    let too_big = app
        .graphql(
            "{ myNotifications(first: 101) { totalCount } }",
            json!({}),
            Some(&doctor.access),
        )
        .await;
    assert_eq!(error_code(&too_big), Some("BAD_USER_INPUT"), "{too_big}");
    assert_eq!(error_field(&too_big), Some("first"));
    let bad_cursor = app
        .graphql(INBOX, json!({ "after": "x" }), Some(&doctor.access))
        .await;
    assert_eq!(error_field(&bad_cursor), Some("after"), "{bad_cursor}");
    // A page's cost is its size times its selection: 100 of these exceed 300, 10 do not.
    let costly = app
        .graphql(INBOX, json!({ "first": 100 }), Some(&doctor.access))
        .await;
    assert_eq!(error_code(&costly), Some("BAD_USER_INPUT"), "{costly}");
    assert!(error_message(&costly).contains("complex"), "{costly}");
    app.ok(INBOX, json!({ "first": 10 }), Some(&doctor.access))
        .await;
}

#[tokio::test]
async fn the_live_subscription_carries_the_stored_id() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (doctor, doctor_id, _, _) = app.booked_pair(&admin, "INBOX-5").await;
    let mut socket = app.ws_client(&doctor.access).await;
    socket
        .subscribe(
            "n",
            "subscription { notifications { id kind readAt appointment { id } } }",
            json!({}),
        )
        .await;
    socket.sync().await;
    let day = (app.clock.now() + Duration::days(1))
        .date_naive()
        .to_string();
    let slots = app
        .ok(
            "query($d: ID!, $f: Date!) { availableSlots(doctorId: $d, from: $f, to: $f) { startsAt } }",
            json!({ "d": doctor_id, "f": day }),
            None,
        )
        .await;
    let other = app.register_patient().await;
    let booked = app
        .ok(
            "mutation($input: BookAppointmentInput!) { bookAppointment(input: $input) { id } }",
            json!({ "input": { "doctorId": doctor_id, "startsAt": slots["availableSlots"][0]["startsAt"] } }),
            Some(&other.access),
        )
        .await;
    let live = socket.next_data("n").await["notifications"].clone();
    assert_eq!(live["kind"], "APPOINTMENT_BOOKED");
    assert!(live["readAt"].is_null());
    assert_eq!(live["appointment"]["id"], booked["bookAppointment"]["id"]);

    let (stored, _) = inbox(&app, &doctor.access, json!({ "first": 1 })).await;
    assert_eq!(
        stored[0]["id"], live["id"],
        "the live one is the stored one"
    );
    let marked = mark(&app, &doctor.access, json!({ "ids": [live["id"]] })).await;
    assert_eq!(marked["data"]["markNotificationsRead"], 1, "{marked}");
}

#[tokio::test]
async fn notifications_past_retention_are_swept() {
    let app = spawn_app_with(|config| {
        config.notification_retention_days = 30;
        config.notification_sweep_secs = 1;
    })
    .await;
    let admin = app.admin().await;
    let (doctor, doctor_id, _, _) = app.booked_pair(&admin, "INBOX-6").await;
    assert_eq!(inbox(&app, &doctor.access, json!({})).await.0.len(), 2);

    app.clock.shift(Duration::days(29));
    app.ok(
        "mutation($id: ID!) { rejectDoctor(id: $id, reason: \"licence expired\") { id } }",
        json!({ "id": doctor_id }),
        Some(&admin.access),
    )
    .await;
    app.clock.shift(Duration::days(2));
    // The first two are 31 days old now, the rejection 2 days.
    let left = eventually("the old notifications swept", || async {
        let (nodes, _) = inbox(&app, &doctor.access, json!({})).await;
        (nodes.len() == 1).then_some(nodes)
    })
    .await;
    assert_eq!(kinds(&left), ["DOCTOR_REJECTED"]);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let (after_more_sweeps, unread) = inbox(&app, &doctor.access, json!({})).await;
    assert_eq!(kinds(&after_more_sweeps), ["DOCTOR_REJECTED"]);
    assert_eq!(unread, 1);
}

/// A page of notifications with their appointments costs the same database calls however many
/// appointments it names: they load in one batch, with their doctors in another.
#[tokio::test]
async fn a_page_loads_its_appointments_in_one_batch() {
    let app = spawn_app().await;
    let (doctor, doctor_id, slots) = doctor_with_slots(&app, "INBOX-BATCH").await;
    let page = "{ myNotifications(first: 50) { nodes { kind appointment { id } } } }";
    let mut booked = 0;
    let mut costs = Vec::new();
    for wanted in [2, 6] {
        while booked < wanted {
            let patient = app.register_patient().await;
            book(&app, &patient, &doctor_id, slots[booked]).await;
            booked += 1;
        }
        let before = app.db_calls().await;
        let listed = app.ok(page, json!({}), Some(&doctor.access)).await;
        costs.push(app.db_calls().await - before);
        let nodes = listed["myNotifications"]["nodes"].as_array().unwrap();
        let with_appointment = nodes.iter().filter(|n| n["appointment"]["id"].is_string());
        assert_eq!(with_appointment.count(), wanted, "{listed}");
    }
    assert_eq!(
        costs[0], costs[1],
        "database calls for 2 and for 6: {costs:?}"
    );
}
