//! `GET /metrics`: each instance has a registry of its own, so a fresh one gives exact figures
//! for what a test did to it.

use std::collections::HashMap;
use std::time::Duration;

use crate::common::stripe::{FakeStripe, ORIGIN, event, signed};
use crate::common::ws::{WsClient, accept_call, listen_for_signals, start_call};
use crate::common::*;
use serde_json::{Value, json};

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
const CALL_EVENTS: &str = "subscription CallEvents { callEvents { kind call { id } } }";
const SIGNALS: &str =
    "subscription Signals($id: ID!) { signals(callId: $id) { kind sdp audioEnabled } }";
const SEND_SIGNAL: &str =
    "mutation SendSignal($input: SendSignalInput!) { sendSignal(input: $input) }";
const SEND_MESSAGE: &str =
    "mutation SendMessage($input: SendMessageInput!) { sendMessage(input: $input) { id } }";

/// One scrape: its text and its samples by `name{labels}`.
struct Scrape {
    text: String,
    samples: HashMap<String, f64>,
}

impl Scrape {
    fn parse(text: String) -> Self {
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .map(|line| {
                let (series, value) = line.rsplit_once(' ').expect("`series value`");
                (series.to_owned(), value.parse().expect("a number"))
            })
            .collect();
        Self { text, samples }
    }

    fn value(&self, series: &str) -> Option<f64> {
        self.samples.get(series).copied()
    }

    fn get(&self, series: &str) -> f64 {
        self.value(series)
            .unwrap_or_else(|| panic!("no {series} in:\n{}", self.text))
    }
}

async fn scrape_at(app: &TestApp, url: String) -> Scrape {
    let response = app.client.get(url).send().await.expect("scraped");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], CONTENT_TYPE);
    Scrape::parse(response.text().await.expect("text"))
}

async fn scrape(app: &TestApp) -> Scrape {
    scrape_at(app, app.url("/metrics")).await
}

/// Waits (10 s at most) until `series` reads `value`: a closed socket is counted out by the
/// server after the client has gone.
async fn eventually(app: &TestApp, series: &str, value: f64) {
    for _ in 0..500 {
        if scrape(app).await.value(series) == Some(value) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{series} never became {value}:\n{}", scrape(app).await.text);
}

fn requests(operation: &str, outcome: &str) -> String {
    format!("medilink_graphql_requests_total{{operation=\"{operation}\",outcome=\"{outcome}\"}}")
}

fn latency(operation: &str, sample: &str) -> String {
    format!("medilink_graphql_request_duration_seconds_{sample}{{operation=\"{operation}\"}}")
}

async fn post(app: &TestApp, body: Value) -> Value {
    app.client
        .post(app.url("/graphql"))
        .json(&body)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("JSON")
}

const ME: &str = "query Me { me { id } }";

/// Ann asks `Me` twice over HTTP and once over her socket, and someone asks it signed out: 3 ok
/// and 1 UNAUTHENTICATED, all answered. Returns Ann's socket, still open.
async fn me_over_both_transports(app: &TestApp) -> WsClient {
    let ann = app.register_patient().await;
    for _ in 0..2 {
        app.ok(ME, json!({}), Some(&ann.access)).await;
    }
    let mut ws = app.ws_client(&ann.access).await;
    let over_socket = ws.execute("me", ME, json!({})).await;
    assert_eq!(over_socket["data"]["me"]["id"], ann.id.as_str());
    let anonymous = app.graphql(ME, json!({}), None).await;
    assert_eq!(error_code(&anonymous), Some("UNAUTHENTICATED"));
    ws
}

#[tokio::test]
async fn graphql_operations_are_counted_by_name_and_outcome_over_http_and_websocket() {
    let app = spawn_app().await;
    let mut ws = me_over_both_transports(&app).await;
    let bad = app
        .graphql(
            "query Doctor($id: ID!) { doctor(id: $id) { id } }",
            json!({ "id": "not-an-id" }),
            None,
        )
        .await;
    assert_eq!(error_code(&bad), Some("BAD_USER_INPUT"));
    // Parse and validation failures reach the client as BAD_USER_INPUT and count as invalid.
    let unknown_field = app
        .graphql("query Broken { nothing }", json!({}), None)
        .await;
    assert_eq!(error_code(&unknown_field), Some("BAD_USER_INPUT"));
    ws.subscribe("broken", "query Broken { nothing }", json!({}))
        .await;
    assert_eq!(ws.message_for("broken").await["type"], "error");
    let unparsable = app.graphql("query Broken {", json!({}), None).await;
    assert_eq!(error_code(&unparsable), Some("BAD_USER_INPUT"));
    // The operation picked by `operationName` is the one counted.
    let picked = post(
        &app,
        json!({ "query": "query A { __typename } query B { __typename }", "operationName": "B" }),
    )
    .await;
    assert_eq!(picked["data"]["__typename"], "Query");
    ws.close().await;

    let scrape = scrape(&app).await;
    for (operation, outcome, count) in [
        ("Me", "ok", 3.0),
        ("Me", "UNAUTHENTICATED", 1.0),
        ("Doctor", "BAD_USER_INPUT", 1.0),
        ("Broken", "invalid", 2.0),
        // register_patient's mutation has no name; a document that does not parse has none.
        ("anonymous", "ok", 1.0),
        ("anonymous", "invalid", 1.0),
        ("B", "ok", 1.0),
    ] {
        assert_eq!(
            scrape.get(&requests(operation, outcome)),
            count,
            "{operation} {outcome}"
        );
    }
    assert_eq!(scrape.value(&requests("A", "ok")), None);
    let total: f64 = scrape
        .samples
        .iter()
        .filter(|(series, _)| series.starts_with("medilink_graphql_requests_total{"))
        .map(|(_, value)| value)
        .sum();
    assert_eq!(total, 10.0, "no operation counted twice or missed");
}

#[tokio::test]
async fn every_answered_operation_is_timed_on_either_transport_by_its_own_instance() {
    let app = spawn_app().await;
    let other_app = spawn_app().await;
    me_over_both_transports(&app).await.close().await;

    let scrape = scrape(&app).await;
    assert_eq!(scrape.get(&latency("Me", "count")), 4.0);
    assert!(scrape.get(&latency("Me", "sum")) > 0.0);
    let me_buckets: Vec<f64> = scrape
        .samples
        .iter()
        .filter(|(series, _)| {
            series.starts_with("medilink_graphql_request_duration_seconds_bucket{")
                && series.contains("operation=\"Me\"")
        })
        .map(|(_, value)| *value)
        .collect();
    assert_eq!(me_buckets.len(), 15, "14 bounds and +Inf");
    assert_eq!(
        scrape
            .get("medilink_graphql_request_duration_seconds_bucket{operation=\"Me\",le=\"+Inf\"}"),
        4.0,
        "{}",
        scrape.text
    );
    // Another instance in the same process counts only its own.
    let elsewhere = self::scrape(&other_app).await;
    assert_eq!(elsewhere.value(&requests("Me", "ok")), None);
    assert_eq!(elsewhere.value(&latency("Me", "count")), None);
}

/// The text format, with HELP and TYPE for every series (webhook events appear with the first
/// delivery).
#[tokio::test]
async fn every_series_has_its_help_and_type() {
    let app = spawn_app().await;
    me_over_both_transports(&app).await.close().await;
    let scrape = scrape(&app).await;
    for (name, kind) in [
        ("medilink_graphql_requests_total", "counter"),
        ("medilink_graphql_request_duration_seconds", "histogram"),
        ("medilink_websocket_connections", "gauge"),
        ("medilink_subscriptions_active", "gauge"),
        ("medilink_calls_active", "gauge"),
        ("medilink_signals_relayed_total", "counter"),
        ("medilink_chat_messages_total", "counter"),
        ("medilink_db_pool_connections", "gauge"),
        ("medilink_db_pool_max_connections", "gauge"),
        ("medilink_db_calls_total", "counter"),
    ] {
        assert!(
            scrape.text.contains(&format!("\n# TYPE {name} {kind}\n")),
            "{name}: {}",
            scrape.text
        );
        assert!(scrape.text.contains(&format!("# HELP {name} ")), "{name}");
    }
}

#[tokio::test]
async fn client_chosen_operation_names_cannot_grow_the_series_without_bound() {
    let app = spawn_app().await;
    for i in 0..200 {
        app.ok(&format!("query Op{i} {{ __typename }}"), json!({}), None)
            .await;
    }
    app.ok("query OneTooMany { __typename }", json!({}), None)
        .await;
    app.ok("query Op7 { __typename }", json!({}), None).await;
    let long = "L".repeat(65);
    app.ok(&format!("query {long} {{ __typename }}"), json!({}), None)
        .await;
    let unmatched = post(
        &app,
        json!({ "query": "{ __typename }", "operationName": "not a name" }),
    )
    .await;
    assert_eq!(error_code(&unmatched), Some("BAD_USER_INPUT"));

    let scrape = scrape(&app).await;
    assert_eq!(scrape.get(&requests("Op0", "ok")), 1.0);
    assert_eq!(
        scrape.get(&requests("Op7", "ok")),
        2.0,
        "known names still count"
    );
    assert_eq!(scrape.get(&requests("Op199", "ok")), 1.0);
    assert_eq!(scrape.value(&requests("OneTooMany", "ok")), None);
    assert_eq!(
        scrape.get(&requests("other", "ok")),
        2.0,
        "the 201st name and a long one"
    );
    assert_eq!(scrape.get(&requests("other", "invalid")), 1.0);
    assert_eq!(scrape.get(&latency("other", "count")), 3.0);
}

/// An online doctor and a patient, each with a socket listening to `callEvents` as "events":
/// (doctor id, doctor's socket, patient's socket).
async fn two_listening_sockets(app: &TestApp, licence: &str) -> (String, WsClient, WsClient) {
    let admin = app.admin().await;
    let (_, doctor_id, mut doctor_ws) = app.online_doctor(&admin, licence).await;
    let patient = app.register_patient().await;
    let mut patient_ws = app.ws_client(&patient.access).await;
    for socket in [&mut doctor_ws, &mut patient_ws] {
        socket.subscribe("events", CALL_EVENTS, json!({})).await;
        socket.sync().await;
    }
    (doctor_id, doctor_ws, patient_ws)
}

/// A call between the two sockets of `two_listening_sockets`, answered, both listening to its
/// signals as "signals": (doctor's socket, patient's socket, call id).
async fn answered_call(app: &TestApp, licence: &str) -> (WsClient, WsClient, String) {
    let (doctor_id, mut doctor_ws, mut patient_ws) = two_listening_sockets(app, licence).await;
    let call_id = start_call(&mut patient_ws, &mut doctor_ws, &doctor_id).await;
    accept_call(&mut doctor_ws, &mut patient_ws, &call_id).await;
    listen_for_signals(&mut doctor_ws, &mut patient_ws, SIGNALS, &call_id).await;
    (doctor_ws, patient_ws, call_id)
}

#[tokio::test]
async fn sockets_and_subscriptions_are_gauged_and_a_ringing_call_counted() {
    let app = spawn_app().await;
    let (doctor_id, mut doctor_ws, mut patient_ws) = two_listening_sockets(&app, "METRICS-1").await;
    let before = scrape(&app).await;
    assert_eq!(before.get("medilink_websocket_connections"), 2.0);
    assert_eq!(before.get("medilink_subscriptions_active"), 2.0);
    assert_eq!(before.get("medilink_calls_active{state=\"ringing\"}"), 0.0);
    assert_eq!(before.get("medilink_calls_active{state=\"active\"}"), 0.0);
    for kind in [
        "offer",
        "answer",
        "ice_candidate",
        "renegotiate",
        "media_state",
    ] {
        let series = format!("medilink_signals_relayed_total{{kind=\"{kind}\"}}");
        assert_eq!(
            before.get(&series),
            0.0,
            "every kind is there from the start"
        );
    }
    assert_eq!(before.get("medilink_chat_messages_total"), 0.0);
    // A subscription is counted once its outcome is known: here, at its first event.
    assert_eq!(before.value(&requests("CallEvents", "ok")), None);

    start_call(&mut patient_ws, &mut doctor_ws, &doctor_id).await;
    let ringing = scrape(&app).await;
    assert_eq!(ringing.get("medilink_calls_active{state=\"ringing\"}"), 1.0);
    assert_eq!(ringing.get("medilink_calls_active{state=\"active\"}"), 0.0);
    assert_eq!(ringing.get(&requests("CallEvents", "ok")), 1.0);
}

/// Someone else's subscription to a call's signals is refused and never counts as running.
#[tokio::test]
async fn a_refused_signal_subscription_is_counted_but_never_running() {
    let app = spawn_app().await;
    let (_doctor_ws, _patient_ws, call_id) = answered_call(&app, "METRICS-1").await;
    let stranger = app.register_patient().await;
    let mut stranger_ws = app.ws_client(&stranger.access).await;
    stranger_ws
        .subscribe("signals", SIGNALS, json!({ "id": call_id }))
        .await;
    let refused = stranger_ws.message_for("signals").await;
    let code = if refused["type"] == "error" {
        refused["payload"][0]["extensions"]["code"].clone()
    } else {
        let complete = stranger_ws.message_for("signals").await;
        assert_eq!(complete["type"], "complete", "{complete}");
        refused["payload"]["errors"][0]["extensions"]["code"].clone()
    };
    assert_eq!(code, "FORBIDDEN", "{refused}");

    let scrape = scrape(&app).await;
    assert_eq!(scrape.get("medilink_websocket_connections"), 3.0);
    let subscriptions = scrape.get("medilink_subscriptions_active");
    assert_eq!(
        subscriptions, 4.0,
        "two call events, two signals: {}",
        scrape.text
    );
    assert_eq!(scrape.get(&requests("Signals", "FORBIDDEN")), 1.0);
}

#[tokio::test]
async fn signals_are_counted_by_kind_and_outcome() {
    let app = spawn_app().await;
    let (doctor_ws, patient_ws, call_id) = answered_call(&app, "METRICS-1").await;
    let (mut sockets, doctor, patient) = ([doctor_ws, patient_ws], 0, 1);
    let candidate = |n: u32| json!({ "kind": "ICE_CANDIDATE", "candidate": { "candidate": format!("candidate:{n}"), "sdpMid": "0", "sdpMLineIndex": 0 } });
    for (from, mut input) in [
        (patient, json!({ "kind": "OFFER", "sdp": "v=0 offer" })),
        (doctor, json!({ "kind": "ANSWER", "sdp": "v=0 answer" })),
        (patient, candidate(1)),
        (patient, candidate(2)),
        (
            doctor,
            json!({ "kind": "MEDIA_STATE", "audioEnabled": false }),
        ),
    ] {
        input["callId"] = json!(call_id);
        sockets[from].signal("signal", input).await;
    }
    let oversized =
        json!({ "input": { "callId": call_id, "kind": "OFFER", "sdp": "v".repeat(65 * 1024) } });
    let refused = sockets[patient].execute("oversized", SEND_SIGNAL, oversized);
    assert_eq!(error_code(&refused.await), Some("BAD_USER_INPUT"));
    for (to, received) in [(doctor, 3), (patient, 2)] {
        for _ in 0..received {
            sockets[to].next_data("signals").await;
        }
    }

    let during = scrape(&app).await;
    let subscriptions = during.get("medilink_subscriptions_active");
    assert_eq!(subscriptions, 4.0, "{}", during.text);
    assert_eq!(during.get("medilink_calls_active{state=\"ringing\"}"), 0.0);
    assert_eq!(during.get("medilink_calls_active{state=\"active\"}"), 1.0);
    for (kind, count) in [
        ("offer", 1.0),
        ("answer", 1.0),
        ("ice_candidate", 2.0),
        ("renegotiate", 0.0),
        ("media_state", 1.0),
    ] {
        let series = format!("medilink_signals_relayed_total{{kind=\"{kind}\"}}");
        assert_eq!(during.get(&series), count, "{kind}");
    }
    assert_eq!(during.get(&requests("SendSignal", "ok")), 5.0);
    assert_eq!(during.get(&requests("SendSignal", "BAD_USER_INPUT")), 1.0);
    assert_eq!(during.get(&latency("SendSignal", "count")), 6.0);
    assert_eq!(during.get(&requests("CallEvents", "ok")), 2.0);
    let subscription_latency = during.value(&latency("CallEvents", "count"));
    assert_eq!(
        subscription_latency, None,
        "a subscription's lifetime is not a latency"
    );
}

#[tokio::test]
async fn chat_messages_are_counted_over_http_and_websocket() {
    let app = spawn_app().await;
    let patient = app.register_patient().await;
    let mut patient_ws = app.ws_client(&patient.access).await;
    let lobby = json!({ "input": { "channel": { "lobby": true }, "body": "Hello" } });
    app.ok(SEND_MESSAGE, lobby.clone(), Some(&patient.access))
        .await;
    let over_socket = patient_ws.execute("chat", SEND_MESSAGE, lobby).await;
    assert!(over_socket.get("errors").is_none(), "{over_socket}");
    let empty = json!({ "input": { "channel": { "lobby": true }, "body": " " } });
    let refused = app
        .graphql(SEND_MESSAGE, empty, Some(&patient.access))
        .await;
    assert_eq!(error_code(&refused), Some("BAD_USER_INPUT"));

    let scrape = scrape(&app).await;
    assert_eq!(scrape.get("medilink_chat_messages_total"), 2.0);
    assert_eq!(scrape.get(&requests("SendMessage", "ok")), 2.0);
    assert_eq!(scrape.get(&requests("SendMessage", "BAD_USER_INPUT")), 1.0);
}

#[tokio::test]
async fn an_ended_call_and_closed_sockets_leave_the_gauges() {
    let app = spawn_app().await;
    let (mut doctor_ws, mut patient_ws, call_id) = answered_call(&app, "METRICS-1").await;
    let ended = patient_ws
        .execute(
            "end",
            "mutation($id: ID!) { endCall(callId: $id) { status } }",
            json!({ "id": call_id }),
        )
        .await;
    assert_eq!(ended["data"]["endCall"]["status"], "ENDED");
    for socket in [&mut doctor_ws, &mut patient_ws] {
        assert_eq!(socket.message_for("signals").await["type"], "complete");
    }
    let after_call = scrape(&app).await;
    assert_eq!(
        after_call.get("medilink_calls_active{state=\"active\"}"),
        0.0
    );
    assert_eq!(
        after_call.get("medilink_subscriptions_active"),
        2.0,
        "the signal streams ended with the call"
    );

    // Closing the sockets ends their subscriptions and takes them off the gauges.
    patient_ws.close().await;
    eventually(&app, "medilink_websocket_connections", 1.0).await;
    eventually(&app, "medilink_subscriptions_active", 1.0).await;
    doctor_ws.close().await;
    eventually(&app, "medilink_websocket_connections", 0.0).await;
    eventually(&app, "medilink_subscriptions_active", 0.0).await;
}

async fn webhook(app: &TestApp, body: Vec<u8>, signature: &str) -> reqwest::StatusCode {
    app.client
        .post(app.url("/webhooks/stripe"))
        .header("content-type", "application/json")
        .header("stripe-signature", signature)
        .body(body)
        .send()
        .await
        .expect("delivered")
        .status()
}

async fn deliver(app: &TestApp, event: &Value) -> reqwest::StatusCode {
    let (body, signature) = signed(event, None);
    webhook(app, body.into_bytes(), &signature).await
}

#[tokio::test]
async fn webhook_deliveries_are_counted_by_type_and_outcome() {
    let fake = FakeStripe::start().await;
    let app = spawn_app_with(|c| {
        fake.configure(c);
        c.public_origins = ORIGIN.into();
    })
    .await;
    let account = event(
        "evt_account_1",
        "account.updated",
        json!({ "id": "acct_nobody", "object": "account", "charges_enabled": true, "payouts_enabled": true }),
    );
    assert_eq!(deliver(&app, &account).await, 200);
    assert_eq!(deliver(&app, &account).await, 200);
    let unpaid = event(
        "evt_unpaid_1",
        "checkout.session.completed",
        json!({ "id": "cs_1", "object": "checkout.session", "payment_status": "unpaid" }),
    );
    assert_eq!(deliver(&app, &unpaid).await, 200);
    let unknown = event(
        "evt_customer_1",
        "customer.created",
        json!({ "id": "cus_1" }),
    );
    assert_eq!(deliver(&app, &unknown).await, 200);
    let (body, _) = signed(&account, None);
    assert_eq!(webhook(&app, body.into_bytes(), "t=1,v1=forged").await, 400);
    assert_eq!(webhook(&app, vec![0xff, 0xfe], "t=1,v1=forged").await, 400);

    let scrape = scrape(&app).await;
    let series = |kind: &str, outcome: &str| {
        format!("medilink_webhook_events_total{{type=\"{kind}\",outcome=\"{outcome}\"}}")
    };
    for (kind, outcome, count) in [
        ("account.updated", "applied", 1.0),
        ("account.updated", "duplicate", 1.0),
        ("checkout.session.completed", "ignored", 1.0),
        ("other", "ignored", 1.0),
        ("other", "rejected", 2.0),
    ] {
        assert_eq!(
            scrape.get(&series(kind, outcome)),
            count,
            "{kind} {outcome}"
        );
    }
    assert_eq!(scrape.value(&series("customer.created", "ignored")), None);
    assert!(
        scrape
            .text
            .contains("\n# TYPE medilink_webhook_events_total counter\n")
    );
}

#[tokio::test]
async fn the_pool_is_read_at_scrape_time_and_scrapes_make_no_database_calls() {
    let app = spawn_app_with(|c| c.database_max_connections = 3).await;
    app.register_patient().await;
    let first = scrape(&app).await;
    assert_eq!(first.get("medilink_db_pool_max_connections"), 3.0);
    let open = first.get("medilink_db_pool_connections{state=\"idle\"}")
        + first.get("medilink_db_pool_connections{state=\"in_use\"}");
    assert!((1.0..=3.0).contains(&open), "{}", first.text);
    let second = scrape(&app).await;
    assert_eq!(
        first.get("medilink_db_calls_total"),
        second.get("medilink_db_calls_total"),
        "counting live calls for a scrape is not a call of the application's"
    );
}

#[tokio::test]
async fn metrics_can_be_served_on_an_address_of_their_own() {
    let app = spawn_app_with(|c| c.metrics_bind = Some("127.0.0.1:0".parse().unwrap())).await;
    let private = app.metrics_addr.expect("a metrics address");
    assert_ne!(private, app.addr);
    app.ok("query Ping { __typename }", json!({}), None).await;

    let public = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(public.status(), 404, "not on the public port");
    let scrape = scrape_at(&app, format!("http://{private}/metrics")).await;
    assert_eq!(scrape.get(&requests("Ping", "ok")), 1.0);
    let graphql = app
        .client
        .post(format!("http://{private}/graphql"))
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        graphql.status(),
        404,
        "the metrics address serves nothing else"
    );
}

#[tokio::test]
#[ignore = "needs Redis"]
async fn two_instances_count_their_own_sockets_and_share_the_live_calls() {
    let (first, second) = spawn_instances(|_| {}).await;
    let admin = first.admin().await;
    let (_, doctor_id, _doctor_ws) = first.online_doctor(&admin, "METRICS-2").await;
    let patient = second.register_patient().await;
    second
        .ok(
            "mutation($doctor: ID!) { startCall(input: { doctorId: $doctor }) { id } }",
            json!({ "doctor": doctor_id }),
            Some(&patient.access),
        )
        .await;
    let (on_first, on_second) = (scrape(&first).await, scrape(&second).await);
    assert_eq!(on_first.get("medilink_websocket_connections"), 1.0);
    assert_eq!(on_second.get("medilink_websocket_connections"), 0.0);
    for scrape in [on_first, on_second] {
        assert_eq!(
            scrape.get("medilink_calls_active{state=\"ringing\"}"),
            1.0,
            "the deployment's calls, on every instance"
        );
    }
}
