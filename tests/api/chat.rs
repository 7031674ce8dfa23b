//! Chat: appointment channels, direct messages, the lobby, paging, limits and live delivery.

use crate::common::*;
use serde_json::{Value, json};

const SEND: &str = "mutation($input: SendMessageInput!) { sendMessage(input: $input) { id body channel sender { id } } }";
const HISTORY: &str = "query($channel: ChatChannelInput!, $last: Int, $before: String) { messages(channel: $channel, last: $last, before: $before) { \
    totalCount edges { node { body sender { id name } } } pageInfo { hasPreviousPage startCursor } } }";

fn bodies(data: &Value) -> Vec<String> {
    data["messages"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["body"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn an_appointments_chat_is_for_its_doctor_and_patient() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (doctor, _, patient, appointment) = app.booked_pair(&admin, "CHAT-1").await;
    let channel = json!({ "appointmentId": appointment });

    let mut doctor_ws = app.ws_client(&doctor.access).await;
    doctor_ws
        .subscribe("chat", "subscription($c: ChatChannelInput!) { messageAdded(channel: $c) { body sender { id } } }", json!({ "c": channel }))
        .await;
    doctor_ws.sync().await;

    let sent = app
        .ok(
            SEND,
            json!({ "input": { "channel": channel, "body": "  Hello, doctor  " } }),
            Some(&patient.access),
        )
        .await;
    assert_eq!(sent["sendMessage"]["body"], "Hello, doctor");
    let live = doctor_ws.next_data("chat").await;
    assert_eq!(
        live["messageAdded"],
        json!({ "body": "Hello, doctor", "sender": { "id": patient.id } })
    );
    app.ok(
        SEND,
        json!({ "input": { "channel": channel, "body": "Hello, patient" } }),
        Some(&doctor.access),
    )
    .await;

    let history = app
        .ok(HISTORY, json!({ "channel": channel }), Some(&doctor.access))
        .await;
    assert_eq!(
        bodies(&history),
        ["Hello, doctor", "Hello, patient"],
        "oldest first"
    );
    assert_eq!(history["messages"]["totalCount"], 2);

    let stranger = app.register_patient().await;
    for (query, variables) in [
        (
            SEND,
            json!({ "input": { "channel": channel, "body": "hi" } }),
        ),
        (HISTORY, json!({ "channel": channel })),
    ] {
        let body = app.graphql(query, variables, Some(&stranger.access)).await;
        assert!(
            matches!(error_code(&body), Some("NOT_FOUND" | "FORBIDDEN")),
            "{body}"
        );
        assert!(body["data"].is_null());
    }
    let mut spy = app.ws_client(&stranger.access).await;
    spy.subscribe(
        "spy",
        "subscription($c: ChatChannelInput!) { messageAdded(channel: $c) { body } }",
        json!({ "c": channel }),
    )
    .await;
    let refused = spy.message_for("spy").await;
    assert_ne!(refused["type"], "complete");
    assert!(
        refused.to_string().contains("NOT_FOUND") || refused.to_string().contains("FORBIDDEN"),
        "{refused}"
    );
}

#[tokio::test]
async fn direct_messages_need_a_shared_appointment_or_an_admin() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (doctor, _, patient, _) = app.booked_pair(&admin, "DM-1").await;
    let stranger = app.register_patient().await;

    let to_doctor = json!({ "input": { "channel": { "userId": doctor.id }, "body": "Question" } });
    let sent = app.ok(SEND, to_doctor.clone(), Some(&patient.access)).await;
    let key = sent["sendMessage"]["channel"].as_str().unwrap().to_owned();
    let reply = app
        .ok(
            SEND,
            json!({ "input": { "channel": { "userId": patient.id }, "body": "Answer" } }),
            Some(&doctor.access),
        )
        .await;
    assert_eq!(
        reply["sendMessage"]["channel"],
        key.as_str(),
        "one channel for both directions"
    );

    let refused = app.graphql(SEND, to_doctor, Some(&stranger.access)).await;
    assert_eq!(error_code(&refused), Some("FORBIDDEN"));
    let from_admin = app
        .ok(
            SEND,
            json!({ "input": { "channel": { "userId": stranger.id }, "body": "Welcome" } }),
            Some(&admin.access),
        )
        .await;
    assert_eq!(from_admin["sendMessage"]["body"], "Welcome");
    let back_to_admin = app
        .ok(
            SEND,
            json!({ "input": { "channel": { "userId": admin.id }, "body": "Thanks" } }),
            Some(&stranger.access),
        )
        .await;
    assert_eq!(back_to_admin["sendMessage"]["body"], "Thanks");
    let history = app
        .ok(
            HISTORY,
            json!({ "channel": { "userId": admin.id } }),
            Some(&stranger.access),
        )
        .await;
    assert_eq!(bodies(&history), ["Welcome", "Thanks"]);
    let nobody = app
        .graphql(SEND, json!({ "input": { "channel": { "userId": uuid::Uuid::now_v7().to_string() }, "body": "?" } }), Some(&patient.access))
        .await;
    assert_eq!(error_code(&nobody), Some("NOT_FOUND"));
}

#[tokio::test]
async fn the_lobby_pages_backwards_and_keeps_only_the_newest() {
    let app = spawn_app_with(|config| config.lobby_retained_messages = 5).await;
    let users = [
        app.register_patient().await,
        app.register_patient().await,
        app.register_doctor().await,
    ];
    for n in 0..8 {
        let author = &users[n % 3];
        app.ok(
            SEND,
            json!({ "input": { "channel": { "lobby": true }, "body": format!("m{n}") } }),
            Some(&author.access),
        )
        .await;
    }
    let newest = app
        .ok(
            HISTORY,
            json!({ "channel": { "lobby": true }, "last": 2 }),
            Some(&users[0].access),
        )
        .await;
    assert_eq!(bodies(&newest), ["m6", "m7"]);
    assert_eq!(
        newest["messages"]["totalCount"], 5,
        "only the newest five are kept"
    );
    assert_eq!(newest["messages"]["pageInfo"]["hasPreviousPage"], true);
    let mut seen = bodies(&newest);
    let mut before = newest["messages"]["pageInfo"]["startCursor"].clone();
    loop {
        let page = app
            .ok(
                HISTORY,
                json!({ "channel": { "lobby": true }, "last": 2, "before": before }),
                Some(&users[1].access),
            )
            .await;
        let mut older = bodies(&page);
        older.extend(seen);
        seen = older;
        if page["messages"]["pageInfo"]["hasPreviousPage"] == false {
            break;
        }
        before = page["messages"]["pageInfo"]["startCursor"].clone();
    }
    assert_eq!(seen, ["m3", "m4", "m5", "m6", "m7"]);
}

#[tokio::test]
async fn bodies_and_rates_are_limited() {
    let app = spawn_app().await;
    let ann = app.register_patient().await;
    let lobby = json!({ "lobby": true });
    for (body, field) in [("   ", "body"), (&*"x".repeat(4001), "body")] {
        let refused = app
            .graphql(
                SEND,
                json!({ "input": { "channel": lobby, "body": body } }),
                Some(&ann.access),
            )
            .await;
        assert_eq!(error_code(&refused), Some("BAD_USER_INPUT"));
        assert_eq!(error_field(&refused), Some(field));
    }
    let not_lobby = app
        .graphql(
            SEND,
            json!({ "input": { "channel": { "lobby": false }, "body": "x" } }),
            Some(&ann.access),
        )
        .await;
    assert_eq!(error_code(&not_lobby), Some("BAD_USER_INPUT"));
    let two_channels = app
        .graphql(
            SEND,
            json!({ "input": { "channel": { "lobby": true, "userId": ann.id }, "body": "x" } }),
            Some(&ann.access),
        )
        .await;
    assert_eq!(
        error_code(&two_channels),
        Some("BAD_USER_INPUT"),
        "one channel at a time"
    );
    let mut limited = 0;
    for n in 0..30 {
        let body = app
            .graphql(
                SEND,
                json!({ "input": { "channel": lobby, "body": format!("spam {n}") } }),
                Some(&ann.access),
            )
            .await;
        if error_code(&body) == Some("RATE_LIMITED") {
            limited += 1;
        }
    }
    assert!(
        limited >= 10,
        "a burst is cut short ({limited} of 30 refused)"
    );
    let anonymous = app
        .graphql(
            SEND,
            json!({ "input": { "channel": lobby, "body": "hi" } }),
            None,
        )
        .await;
    assert_eq!(error_code(&anonymous), Some("UNAUTHENTICATED"));
}
