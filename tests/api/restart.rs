//! Stopping one instance (SIGTERM in production, `TestApp::shutdown` here): in-flight requests
//! finish, new connections are refused, sockets are sent away with 1001, and alone (without
//! Redis) the instance ends its calls. The two-instance hand-over is in tests/api/instances.rs.

use crate::common::ws::{WsClient, accept_call, start_call};
use crate::common::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CALL_EVENTS: &str = "subscription { callEvents { kind call { id status endReason } } }";
const START_CALL: &str =
    "mutation($doctor: ID!) { startCall(input: { doctorId: $doctor }) { id status } }";
const MY_CALLS: &str = "{ myCalls { edges { node { id status endReason } } } }";
const DOCTOR_STATUS: &str = "query($id: ID!) { doctor(id: $id) { status } }";

async fn status_of(app: &TestApp, doctor_id: &str) -> Value {
    app.ok(DOCTOR_STATUS, json!({ "id": doctor_id }), None)
        .await["doctor"]["status"]
        .clone()
}

/// An approved doctor with a socket subscribed to "events", ONLINE.
async fn online_doctor(
    app: &TestApp,
    admin: &Account,
    licence: &str,
) -> (Account, String, WsClient) {
    let (doctor, id, mut socket) = app.online_doctor(admin, licence).await;
    socket.subscribe("events", CALL_EVENTS, json!({})).await;
    socket.sync().await;
    (doctor, id, socket)
}

/// A new patient with a socket subscribed to "events" calls the doctor; the doctor's socket
/// hears it ring. Returns the patient, their socket and the call id.
async fn ring(
    app: &TestApp,
    doctor_id: &str,
    doctor_ws: &mut WsClient,
) -> (Account, WsClient, String) {
    let patient = app.register_patient().await;
    let mut patient_ws = app.ws_client(&patient.access).await;
    patient_ws.subscribe("events", CALL_EVENTS, json!({})).await;
    patient_ws.sync().await;
    let call_id = start_call(&mut patient_ws, doctor_ws, doctor_id).await;
    (patient, patient_ws, call_id)
}

async fn call_on(app: &TestApp, account: &Account, call_id: &str) -> Value {
    let calls = app.ok(MY_CALLS, json!({}), Some(&account.access)).await;
    calls["myCalls"]["edges"]
        .as_array()
        .expect("calls")
        .iter()
        .map(|edge| edge["node"].clone())
        .find(|call| call["id"] == call_id)
        .expect("the call is listed")
}

#[tokio::test]
async fn in_flight_requests_finish_and_new_connections_are_refused() {
    let app = spawn_app().await;
    let patient = app.register_patient().await;
    let mut socket = app.ws_client(&patient.access).await;

    // A registration (argon2 hashing) whose body is still on its way when the stop comes: the
    // server's interim 100 Continue says the handler is already reading it.
    let body = json!({
        "query": REGISTER,
        "variables": { "input": { "email": unique_email("late"), "password": PASSWORD, "name": "Late", "role": "PATIENT" } },
    })
    .to_string();
    let mut request = request_in_flight(app.addr, body.len()).await;

    app.begin_shutdown();
    // The listener closes at once: the next connection is refused.
    eventually("new connections are refused", || async {
        match TcpStream::connect(app.addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Some(()),
            // Accepted by the kernel as the listener closed: reset, not served.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => None,
            Err(e) => panic!("unexpected error: {e}"),
            Ok(_) => None,
        }
    })
    .await;
    assert_eq!(socket.closed().await, 1001, "the socket is sent away");

    request.write_all(body.as_bytes()).await.expect("body sent");
    let mut response = String::new();
    request
        .read_to_string(&mut response)
        .await
        .expect("the response, then the connection closes");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let (_, payload) = response.split_once("\r\n\r\n").expect("a body");
    let payload: Value = serde_json::from_str(payload).expect("JSON");
    assert_eq!(
        payload["data"]["register"]["user"]["role"], "PATIENT",
        "{payload}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_lone_instance_ends_its_calls_when_it_stops() {
    let app = spawn_app_with(|config| {
        config.ring_timeout_secs = 600;
        config.call_grace_secs = 600;
    })
    .await;
    let admin = app.admin().await;
    let (doctor, doctor_id, mut doctor_ws) = online_doctor(&app, &admin, "STOP-1").await;
    let (patient, mut patient_ws, active) = ring(&app, &doctor_id, &mut doctor_ws).await;
    accept_call(&mut doctor_ws, &mut patient_ws, &active).await;
    let (_, other, mut other_ws) = online_doctor(&app, &admin, "STOP-2").await;
    let (caller, mut caller_ws, ringing) = ring(&app, &other, &mut other_ws).await;

    app.shutdown().await;
    for socket in [
        &mut doctor_ws,
        &mut patient_ws,
        &mut other_ws,
        &mut caller_ws,
    ] {
        assert_eq!(socket.closed().await, 1001);
    }

    // Nobody can reconnect to a stopped instance without Redis, so it ended the calls itself:
    // after the restart, the doctor is free for the next one.
    let restarted = app
        .another_instance(&tokio::runtime::Handle::current())
        .await;
    let dropped = call_on(&restarted, &patient, &active).await;
    assert_eq!(
        (dropped["status"].as_str(), dropped["endReason"].as_str()),
        (Some("ENDED"), Some("DROPPED"))
    );
    let missed = call_on(&restarted, &caller, &ringing).await;
    assert_eq!(missed["endReason"], "MISSED");
    let mut doctor_ws = restarted.ws_client(&doctor.access).await;
    doctor_ws.go_online().await;
    let again = restarted
        .graphql(
            START_CALL,
            json!({ "doctor": doctor_id }),
            Some(&patient.access),
        )
        .await;
    assert_eq!(again["data"]["startCall"]["status"], "RINGING", "{again}");
}

#[tokio::test]
async fn a_lone_instance_ends_the_calls_a_crashed_predecessor_left_live() {
    // The first instance runs on a runtime of its own, so that it can stop dead.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let first = spawn_app_with(|config| config.call_grace_secs = 600).await;
    let crashing = first.another_instance(runtime.handle()).await;
    // `first` only lends its database and settings: one instance at a time, as without Redis.
    first.shutdown().await;
    let admin = crashing.admin().await;
    let (_, doctor_id, mut doctor_ws) = online_doctor(&crashing, &admin, "CRASH-1").await;
    let (patient, mut patient_ws, call_id) = ring(&crashing, &doctor_id, &mut doctor_ws).await;
    accept_call(&mut doctor_ws, &mut patient_ws, &call_id).await;
    runtime.shutdown_background();

    let restarted = first
        .another_instance(&tokio::runtime::Handle::current())
        .await;
    let call = call_on(&restarted, &patient, &call_id).await;
    assert_eq!(
        (call["status"].as_str(), call["endReason"].as_str()),
        (Some("ENDED"), Some("DROPPED"))
    );
}

#[tokio::test]
async fn a_doctor_back_within_the_grace_is_online_again_and_one_back_later_is_not() {
    let app = spawn_app_with(|config| config.call_grace_secs = 600).await;
    let admin = app.admin().await;
    let (doctor, doctor_id, doctor_ws) = online_doctor(&app, &admin, "BLIP-1").await;
    doctor_ws.close().await;
    eventually("the doctor is OFFLINE while away", || async {
        (status_of(&app, &doctor_id).await == "OFFLINE").then_some(())
    })
    .await;
    let _back = app.ws_client(&doctor.access).await;
    assert_eq!(status_of(&app, &doctor_id).await, "ONLINE");

    // With a grace of one second, the doctor's call ends while they are away (an event to wait
    // for); coming back after that, they choose again.
    let app = spawn_app_with(|config| config.call_grace_secs = 1).await;
    let admin = app.admin().await;
    let (doctor, doctor_id, mut doctor_ws) = online_doctor(&app, &admin, "BLIP-2").await;
    let (_, mut patient_ws, call_id) = ring(&app, &doctor_id, &mut doctor_ws).await;
    accept_call(&mut doctor_ws, &mut patient_ws, &call_id).await;
    doctor_ws.close().await;
    let ended = patient_ws.next_data("events").await["callEvents"].clone();
    assert_eq!(ended["call"]["endReason"], "DROPPED");
    let _late = app.ws_client(&doctor.access).await;
    assert_eq!(status_of(&app, &doctor_id).await, "OFFLINE");
}
