//! graphql-transport-ws: close codes, revocation, presence, calls, the signaling relay and
//! notifications, through raw WebSockets.

use std::time::Duration;

use crate::common::ws::{Received, WsClient, accept_call, listen_for_signals};
use crate::common::*;
use futures_util::future::join_all;
use serde_json::{Value, json};

const CALL_EVENTS: &str =
    "subscription { callEvents { kind call { id status endReason durationSeconds } } }";
const SIGNALS: &str = "subscription($id: ID!) { signals(callId: $id) { callId from kind sdp candidate { candidate sdpMid sdpMLineIndex } audioEnabled videoEnabled } }";
const SEND_SIGNAL: &str = "mutation($input: SendSignalInput!) { sendSignal(input: $input) }";
const START_CALL: &str =
    "mutation($doctor: ID!) { startCall(input: { doctorId: $doctor }) { id status } }";
const DOCTOR_STATUS: &str = "query($id: ID!) { doctor(id: $id) { status } }";

async fn fast_app() -> TestApp {
    spawn_app_with(|config| {
        config.ws_init_timeout_secs = 1;
        config.ring_timeout_secs = 2;
        config.call_grace_secs = 1;
    })
    .await
}

#[tokio::test]
async fn protocol_violations_get_the_protocols_close_codes() {
    let app = fast_app().await;
    let ann = app.register_patient().await;

    let mut silent = app.ws_raw().await;
    assert_eq!(silent.closed().await, 4408, "no connection_init in time");

    let mut eager = app.ws_raw().await;
    eager.subscribe("1", "{ __typename }", json!({})).await;
    assert_eq!(
        eager.closed().await,
        4401,
        "subscribe before connection_ack"
    );

    for payload in [
        json!({ "authorization": "Bearer nonsense" }),
        json!({}),
        json!({ "token": ann.refresh }),
    ] {
        let mut forged = app.ws_raw().await;
        forged
            .send(json!({ "type": "connection_init", "payload": payload }))
            .await;
        assert_eq!(forged.closed().await, 4403, "{payload}");
    }

    let mut twice = app.ws_client(&ann.access).await;
    twice
        .send(json!({ "type": "connection_init", "payload": { "token": ann.access } }))
        .await;
    assert_eq!(twice.closed().await, 4429);

    let mut duplicate = app.ws_client(&ann.access).await;
    duplicate.subscribe("same", CALL_EVENTS, json!({})).await;
    duplicate.subscribe("same", CALL_EVENTS, json!({})).await;
    assert_eq!(duplicate.closed().await, 4409);

    for garbage in [
        "not json",
        "{\"type\":\"teleport\"}",
        "{\"type\":\"subscribe\",\"id\":\"1\"}",
        "{\"type\":\"subscribe\",\"id\":\"1\",\"payload\":5}",
        "{\"type\":\"subscribe\",\"id\":\"1\",\"payload\":{\"query\":\"{ __typename }\",\"variables\":[1]}}",
    ] {
        let mut confused = app.ws_client(&ann.access).await;
        confused.send_raw(garbage).await;
        assert_eq!(confused.closed().await, 4400, "{garbage}");
    }

    // The token may also come as `token`, and pings are answered.
    let mut polite = app.ws_raw().await;
    polite
        .send(json!({ "type": "connection_init", "payload": { "token": ann.access } }))
        .await;
    assert_eq!(polite.next_message().await["type"], "connection_ack");
    polite.send(json!({ "type": "ping" })).await;
    assert_eq!(polite.next_message().await["type"], "pong");
    let me = polite.execute("q", "{ me { id } }", json!({})).await;
    assert_eq!(
        me["data"]["me"]["id"],
        ann.id.as_str(),
        "queries work over the socket"
    );
    let invalid = {
        polite.subscribe("bad", "{ nothing }", json!({})).await;
        polite.message_for("bad").await
    };
    assert_eq!(invalid["type"], "error", "{invalid}");
    assert_eq!(
        invalid["payload"][0]["extensions"]["code"],
        "BAD_USER_INPUT"
    );
}

#[tokio::test]
async fn blocking_and_logout_close_open_sockets_with_4403() {
    let app = fast_app().await;
    let admin = app.admin().await;
    let ann = app.register_patient().await;
    let mut first_tab = app.ws_client(&ann.access).await;
    let mut second_tab = app.ws_client(&ann.access).await;
    first_tab.subscribe("events", CALL_EVENTS, json!({})).await;
    app.ok(
        "mutation($id: ID!) { blockUser(id: $id) { id } }",
        json!({ "id": ann.id }),
        Some(&admin.access),
    )
    .await;
    let closed = tokio::time::timeout(Duration::from_secs(1), async {
        (first_tab.closed().await, second_tab.closed().await)
    })
    .await
    .expect("closed within a second");
    assert_eq!(closed, (4403, 4403));
    let mut refused = app.ws_raw().await;
    refused
        .send(json!({ "type": "connection_init", "payload": { "token": ann.access } }))
        .await;
    assert_eq!(
        refused.closed().await,
        4403,
        "a blocked user cannot reconnect"
    );

    let bob = app.register_patient().await;
    let mut socket = app.ws_client(&bob.access).await;
    app.ok("mutation { logout }", json!({}), Some(&bob.access))
        .await;
    assert_eq!(socket.closed().await, 4403);
}

#[tokio::test]
async fn a_socket_outlives_its_access_token() {
    let app = spawn_app_with(|config| config.access_token_ttl_secs = 1).await;
    let ann = app.register_patient().await;
    let mut socket = app.ws_client(&ann.access).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let over_http = app
        .graphql("{ me { id } }", json!({}), Some(&ann.access))
        .await;
    assert_eq!(
        error_code(&over_http),
        Some("UNAUTHENTICATED"),
        "the token itself has expired"
    );
    let over_socket = socket.execute("me", "{ me { id } }", json!({})).await;
    assert_eq!(over_socket["data"]["me"]["id"], ann.id.as_str());
}

async fn status_of(app: &TestApp, doctor_id: &str) -> Value {
    app.ok(DOCTOR_STATUS, json!({ "id": doctor_id }), None)
        .await["doctor"]["status"]
        .clone()
}

async fn signal(socket: &mut WsClient, id: &str, input: Value) -> Value {
    socket
        .execute(id, SEND_SIGNAL, json!({ "input": input }))
        .await
}

#[tokio::test]
async fn a_whole_call_from_ring_to_hang_up() {
    let app = fast_app().await;
    let admin = app.admin().await;
    let watcher = app.register_patient().await;
    let mut watching = app.ws_client(&watcher.access).await;
    watching
        .subscribe(
            "status",
            "subscription { doctorStatusChanged { doctor { id } status } }",
            json!({}),
        )
        .await;
    watching.sync().await;
    let (doctor, doctor_id, mut doctor_ws) = app.online_doctor(&admin, "CALL-1").await;
    let change = watching.next_data("status").await;
    assert_eq!(
        change["doctorStatusChanged"],
        json!({ "doctor": { "id": doctor_id }, "status": "ONLINE" })
    );
    let online = app
        .ok("{ onlineDoctors { id status } }", json!({}), None)
        .await;
    assert_eq!(
        online["onlineDoctors"],
        json!([{ "id": doctor_id, "status": "ONLINE" }])
    );

    let patient = app.register_patient().await;
    let mut patient_ws = app.ws_client(&patient.access).await;
    doctor_ws.subscribe("events", CALL_EVENTS, json!({})).await;
    patient_ws.subscribe("events", CALL_EVENTS, json!({})).await;
    doctor_ws.sync().await;
    let call = patient_ws
        .execute("call", START_CALL, json!({ "doctor": doctor_id }))
        .await;
    let call_id = call["data"]["startCall"]["id"]
        .as_str()
        .expect("call started")
        .to_owned();
    assert_eq!(call["data"]["startCall"]["status"], "RINGING");
    let incoming = doctor_ws.next_data("events").await;
    assert_eq!(incoming["callEvents"]["kind"], "INCOMING");
    assert_eq!(incoming["callEvents"]["call"]["id"], call_id.as_str());
    assert_eq!(status_of(&app, &doctor_id).await, "BUSY");
    assert_eq!(
        watching.next_data("status").await["doctorStatusChanged"]["status"],
        "BUSY"
    );

    accept_call(&mut doctor_ws, &mut patient_ws, &call_id).await;
    listen_for_signals(&mut doctor_ws, &mut patient_ws, SIGNALS, &call_id).await;

    let offer = signal(
        &mut patient_ws,
        "offer",
        json!({ "callId": call_id, "kind": "OFFER", "sdp": "v=0 offer" }),
    )
    .await;
    assert_eq!(offer["data"]["sendSignal"], true, "{offer}");
    let got = doctor_ws.next_data("signals").await["signals"].clone();
    assert_eq!(
        (
            got["kind"].as_str(),
            got["sdp"].as_str(),
            got["from"].as_str()
        ),
        (Some("OFFER"), Some("v=0 offer"), Some(patient.id.as_str()))
    );

    signal(
        &mut doctor_ws,
        "answer",
        json!({ "callId": call_id, "kind": "ANSWER", "sdp": "v=0 answer" }),
    )
    .await;
    assert_eq!(
        patient_ws.next_data("signals").await["signals"]["sdp"],
        "v=0 answer"
    );

    for (i, (from, to)) in [(0, 1), (1, 0), (0, 1)].into_iter().enumerate() {
        let candidate = json!({ "candidate": format!("candidate:{i} 1 udp 2122260223 10.0.0.{i} 5000{i} typ host"), "sdpMid": "0", "sdpMLineIndex": 0 });
        let input = json!({ "callId": call_id, "kind": "ICE_CANDIDATE", "candidate": candidate });
        let sockets: [&mut WsClient; 2] = [&mut patient_ws, &mut doctor_ws];
        let [patient_side, doctor_side] = sockets;
        let (sender, receiver) = if from == 0 {
            (patient_side, doctor_side)
        } else {
            (doctor_side, patient_side)
        };
        let _ = to;
        signal(sender, &format!("ice{i}"), input).await;
        let received = receiver.next_data("signals").await["signals"].clone();
        assert_eq!(received["kind"], "ICE_CANDIDATE");
        assert_eq!(received["candidate"], candidate);
    }
    signal(&mut doctor_ws, "mute", json!({ "callId": call_id, "kind": "MEDIA_STATE", "audioEnabled": false, "videoEnabled": true })).await;
    let media = patient_ws.next_data("signals").await["signals"].clone();
    assert_eq!(
        (media["audioEnabled"].clone(), media["videoEnabled"].clone()),
        (json!(false), json!(true))
    );

    // Signals from one sender arrive in the order sent.
    for n in 0..20 {
        signal(
            &mut patient_ws,
            &format!("seq{n}"),
            json!({ "callId": call_id, "kind": "RENEGOTIATE", "sdp": format!("v=0 #{n}") }),
        )
        .await;
    }
    for n in 0..20 {
        assert_eq!(
            doctor_ws.next_data("signals").await["signals"]["sdp"],
            format!("v=0 #{n}")
        );
    }

    let ended = patient_ws
        .execute(
            "end",
            "mutation($id: ID!) { endCall(callId: $id) { status endReason } }",
            json!({ "id": call_id }),
        )
        .await;
    assert_eq!(
        ended["data"]["endCall"],
        json!({ "status": "ENDED", "endReason": "HANGUP" })
    );
    for socket in [&mut doctor_ws, &mut patient_ws] {
        assert_eq!(
            socket.next_data("events").await["callEvents"]["kind"],
            "ENDED"
        );
        assert_eq!(
            socket.message_for("signals").await["type"],
            "complete",
            "the signal stream ends with the call"
        );
    }
    assert_eq!(status_of(&app, &doctor_id).await, "ONLINE");
    let late = signal(
        &mut patient_ws,
        "late",
        json!({ "callId": call_id, "kind": "OFFER", "sdp": "v=0" }),
    )
    .await;
    assert_eq!(
        late["errors"][0]["extensions"]["code"], "CONFLICT",
        "{late}"
    );

    let calls = app
        .ok("{ myCalls { totalCount edges { node { id status endReason durationSeconds caller { id } callee { id } doctor { id } } } } }", json!({}), Some(&doctor.access))
        .await;
    let node = &calls["myCalls"]["edges"][0]["node"];
    assert_eq!(calls["myCalls"]["totalCount"], 1);
    assert_eq!(node["caller"]["id"], patient.id.as_str());
    assert_eq!(node["callee"]["id"], doctor.id.as_str());
    assert!(node["durationSeconds"].as_i64().is_some(), "{node}");
}

#[tokio::test]
async fn an_unanswered_call_is_missed_and_frees_the_doctor() {
    let app = fast_app().await;
    let admin = app.admin().await;
    let (_, doctor_id, mut doctor_ws) = app.online_doctor(&admin, "MISS-1").await;
    let patient = app.register_patient().await;
    let mut patient_ws = app.ws_client(&patient.access).await;
    patient_ws.subscribe("events", CALL_EVENTS, json!({})).await;
    doctor_ws.subscribe("events", CALL_EVENTS, json!({})).await;
    patient_ws.sync().await;
    doctor_ws.sync().await;
    let call = app
        .ok(
            START_CALL,
            json!({ "doctor": doctor_id }),
            Some(&patient.access),
        )
        .await;
    assert_eq!(call["startCall"]["status"], "RINGING");
    assert_eq!(
        doctor_ws.next_data("events").await["callEvents"]["kind"],
        "INCOMING"
    );
    for socket in [&mut doctor_ws, &mut patient_ws] {
        let missed = socket.next_data("events").await;
        assert_eq!(missed["callEvents"]["kind"], "MISSED");
        assert_eq!(missed["callEvents"]["call"]["endReason"], "MISSED");
    }
    assert_eq!(status_of(&app, &doctor_id).await, "ONLINE");
}

#[tokio::test]
async fn a_dropped_patient_frees_the_doctor_after_the_grace_period() {
    let app = fast_app().await;
    let admin = app.admin().await;
    let (_, doctor_id, mut doctor_ws) = app.online_doctor(&admin, "DROP-1").await;
    doctor_ws.subscribe("events", CALL_EVENTS, json!({})).await;
    doctor_ws.sync().await;
    let patient = app.register_patient().await;
    let patient_ws = app.ws_client(&patient.access).await;
    let call = app
        .ok(
            START_CALL,
            json!({ "doctor": doctor_id }),
            Some(&patient.access),
        )
        .await;
    let call_id = call["startCall"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        doctor_ws.next_data("events").await["callEvents"]["kind"],
        "INCOMING"
    );
    doctor_ws
        .execute(
            "answer",
            "mutation($id: ID!) { answerCall(callId: $id, accept: true) { status } }",
            json!({ "id": call_id }),
        )
        .await;
    assert_eq!(
        doctor_ws.next_data("events").await["callEvents"]["kind"],
        "ACCEPTED"
    );
    patient_ws.close().await;
    let ended = doctor_ws.next_data("events").await;
    assert_eq!(ended["callEvents"]["kind"], "ENDED");
    assert_eq!(ended["callEvents"]["call"]["endReason"], "DROPPED");
    assert_eq!(status_of(&app, &doctor_id).await, "ONLINE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_callers_race_for_one_doctor_and_one_rings() {
    let app = fast_app().await;
    let admin = app.admin().await;
    let (_, doctor_id, _doctor_ws) = app.online_doctor(&admin, "RACE-C").await;
    let mut patients = Vec::new();
    for _ in 0..6 {
        patients.push(app.register_patient().await);
    }
    let results = join_all(
        patients
            .iter()
            .map(|p| app.graphql(START_CALL, json!({ "doctor": doctor_id }), Some(&p.access))),
    )
    .await;
    let ringing = results
        .iter()
        .filter(|b| b["data"]["startCall"]["status"] == "RINGING")
        .count();
    let conflicts = results
        .iter()
        .filter(|b| error_code(b) == Some("CONFLICT"))
        .count();
    assert_eq!((ringing, conflicts), (1, 5), "{results:?}");
}

#[tokio::test]
async fn a_third_user_is_refused_on_every_call_operation() {
    let app = fast_app().await;
    let admin = app.admin().await;
    let (_, doctor_id, _doctor_ws) = app.online_doctor(&admin, "THIRD-1").await;
    let patient = app.register_patient().await;
    let call = app
        .ok(
            START_CALL,
            json!({ "doctor": doctor_id }),
            Some(&patient.access),
        )
        .await;
    let call_id = call["startCall"]["id"].as_str().unwrap().to_owned();
    let stranger = app.register_patient().await;
    for (name, query, variables) in [
        (
            "answer",
            "mutation($id: ID!) { answerCall(callId: $id, accept: true) { id } }",
            json!({ "id": call_id }),
        ),
        (
            "cancel",
            "mutation($id: ID!) { cancelCall(callId: $id) { id } }",
            json!({ "id": call_id }),
        ),
        (
            "cancel",
            "mutation($id: ID!) { cancelCall(callId: $id) { id } }",
            json!({ "id": call_id }),
        ),
        (
            "signal",
            SEND_SIGNAL,
            json!({ "input": { "callId": call_id, "kind": "OFFER", "sdp": "v=0" } }),
        ),
    ] {
        let body = app.graphql(query, variables, Some(&stranger.access)).await;
        assert_eq!(error_code(&body), Some("FORBIDDEN"), "{name}: {body}");
    }
    let mut socket = app.ws_client(&stranger.access).await;
    socket
        .subscribe("spy", SIGNALS, json!({ "id": call_id }))
        .await;
    let refused = socket.message_for("spy").await;
    let code = if refused["type"] == "error" {
        refused["payload"][0]["extensions"]["code"].clone()
    } else {
        refused["payload"]["errors"][0]["extensions"]["code"].clone()
    };
    assert_eq!(code, "FORBIDDEN", "{refused}");
    // The callee may not cancel (they decline); the caller may.
    let cancelled = app
        .ok(
            "mutation($id: ID!) { cancelCall(callId: $id) { endReason } }",
            json!({ "id": call_id }),
            Some(&patient.access),
        )
        .await;
    assert_eq!(cancelled["cancelCall"]["endReason"], "CANCELLED");
}

#[tokio::test]
async fn oversized_and_flooding_signals_are_refused() {
    let app = spawn_app_with(|config| config.ring_timeout_secs = 60).await;
    let admin = app.admin().await;
    let (_, doctor_id, _doctor_ws) = app.online_doctor(&admin, "FLOOD-1").await;
    let patient = app.register_patient().await;
    let call = app
        .ok(
            START_CALL,
            json!({ "doctor": doctor_id }),
            Some(&patient.access),
        )
        .await;
    let call_id = call["startCall"]["id"].as_str().unwrap().to_owned();
    let mut socket = app.ws_client(&patient.access).await;
    let huge = signal(
        &mut socket,
        "huge",
        // Over the 64 KiB an SDP may have, under the message limit (1 MiB closes the socket).
        json!({ "callId": call_id, "kind": "OFFER", "sdp": "v".repeat(64 * 1024 + 1) }),
    )
    .await;
    assert_eq!(
        huge["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{}",
        huge["errors"]
    );
    let missing = signal(
        &mut socket,
        "nosdp",
        json!({ "callId": call_id, "kind": "OFFER" }),
    )
    .await;
    assert_eq!(missing["errors"][0]["extensions"]["field"], "sdp");

    // 500 signals sent at once, answers read afterwards.
    let candidate = json!({ "callId": call_id, "kind": "ICE_CANDIDATE", "candidate": { "candidate": "candidate:1" } });
    for n in 0..500 {
        socket
            .subscribe(&format!("f{n}"), SEND_SIGNAL, json!({ "input": candidate }))
            .await;
    }
    let (mut relayed, mut limited) = (0, 0);
    while relayed + limited < 500 {
        let message = socket.next_message().await;
        if message["type"] != "next" {
            continue;
        }
        match message["payload"]["errors"][0]["extensions"]["code"].as_str() {
            None => relayed += 1,
            Some("RATE_LIMITED") => limited += 1,
            Some(other) => panic!("unexpected {other}: {message}"),
        }
    }
    assert!(
        limited >= 250,
        "most of the flood is refused ({limited} of 500)"
    );
    assert!(relayed >= 200, "a burst goes through ({relayed} of 500)");
    socket.sync().await;
}

#[tokio::test]
async fn doctors_choose_online_only_when_approved_and_connected() {
    let app = fast_app().await;
    let admin = app.admin().await;
    let pending = app.register_doctor().await;
    app.submit_profile(&pending.access, profile_input("PEND-1"), pdf("p"))
        .await;
    let mut socket = app.ws_client(&pending.access).await;
    let refused = socket
        .execute(
            "on",
            "mutation { setDoctorStatus(status: ONLINE) }",
            json!({}),
        )
        .await;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{refused}"
    );

    let (doctor, doctor_id) = app
        .approved_doctor(&admin, "Dr Tabs", profile_input("TABS-1"))
        .await;
    let no_socket = app
        .graphql(
            "mutation { setDoctorStatus(status: ONLINE) }",
            json!({}),
            Some(&doctor.access),
        )
        .await;
    assert_eq!(error_code(&no_socket), Some("CONFLICT"));
    let busy = app
        .graphql(
            "mutation { setDoctorStatus(status: BUSY) }",
            json!({}),
            Some(&doctor.access),
        )
        .await;
    assert_eq!(error_code(&busy), Some("BAD_USER_INPUT"));

    // Two tabs: closing one keeps the doctor online; closing the last takes them offline.
    let mut first = app.ws_client(&doctor.access).await;
    let second = app.ws_client(&doctor.access).await;
    first
        .execute(
            "on",
            "mutation { setDoctorStatus(status: ONLINE) }",
            json!({}),
        )
        .await;
    second.close().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(status_of(&app, &doctor_id).await, "ONLINE");
    let online = app
        .ok(
            "{ doctors(filter: { status: ONLINE }) { totalCount } }",
            json!({}),
            None,
        )
        .await;
    assert_eq!(online["doctors"]["totalCount"], 1);
    first.close().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(status_of(&app, &doctor_id).await, "OFFLINE");
    let offline = app
        .ok(
            "{ doctors(filter: { status: OFFLINE }) { totalCount } }",
            json!({}),
            None,
        )
        .await;
    assert_eq!(offline["doctors"]["totalCount"], 1);
}

/// `callEvents` waits outside the executor and is executed once per event: any selection still
/// renders as the executor renders it, and a bad operation is refused at once, not at the first
/// event.
#[tokio::test]
async fn call_events_take_any_selection_and_bad_ones_are_refused_at_once() {
    let app = fast_app().await;
    let admin = app.admin().await;
    let (_, doctor_id, mut doctor_ws) = app.online_doctor(&admin, "DORMANT-1").await;

    doctor_ws
        .subscribe(
            "unknown",
            "subscription { callEvents { kind nope } }",
            json!({}),
        )
        .await;
    let refused = doctor_ws.message_for("unknown").await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert!(
        refused["payload"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("nope")),
        "{refused}"
    );
    doctor_ws
        .subscribe(
            "unused",
            "subscription($x: Boolean!) { callEvents { kind } }",
            json!({ "x": true }),
        )
        .await;
    assert_eq!(
        doctor_ws.message_for("unused").await["type"],
        "error",
        "a declared variable that is never used"
    );

    let rich = "subscription Watch($withDoctor: Boolean!, $withCallee: Boolean!) { \
        ev: callEvents { what: kind ...Caller call { doctor @include(if: $withDoctor) { id specialization } \
        callee @include(if: $withCallee) { name } } } } \
        fragment Caller on CallEvent { call { id status caller { name role } } }";
    doctor_ws
        .subscribe(
            "rich",
            rich,
            json!({ "withDoctor": true, "withCallee": false }),
        )
        .await;
    doctor_ws.sync().await;
    let patient = app.register_patient().await;
    let patient_name = app
        .ok("{ me { name } }", json!({}), Some(&patient.access))
        .await["me"]["name"]
        .clone();
    let mut patient_ws = app.ws_client(&patient.access).await;
    let started = patient_ws
        .execute("call", START_CALL, json!({ "doctor": doctor_id }))
        .await;
    let call_id = started["data"]["startCall"]["id"].clone();
    assert_eq!(
        doctor_ws.next_data("rich").await,
        json!({ "ev": {
            "what": "INCOMING",
            "call": {
                "id": call_id,
                "status": "RINGING",
                "caller": { "name": patient_name, "role": "PATIENT" },
                "doctor": { "id": doctor_id, "specialization": "Cardiology" },
            },
        } })
    );
    patient_ws
        .execute(
            "cancel",
            "mutation($id: ID!) { cancelCall(callId: $id) { id } }",
            json!({ "id": call_id }),
        )
        .await;
    let cancelled = doctor_ws.next_data("rich").await;
    assert_eq!(cancelled["ev"]["what"], "CANCELLED", "{cancelled}");
    assert_eq!(cancelled["ev"]["call"]["status"], "ENDED", "{cancelled}");
}

#[tokio::test]
async fn bookings_and_approvals_notify_the_people_concerned() {
    let app = fast_app().await;
    let admin = app.admin().await;
    let doctor = app.register_doctor().await;
    let mut doctor_ws = app.ws_client(&doctor.access).await;
    doctor_ws
        .subscribe(
            "n",
            "subscription { notifications { kind message appointment { id } } }",
            json!({}),
        )
        .await;
    doctor_ws.sync().await;
    let submitted = app
        .submit_profile(&doctor.access, profile_input("NOTE-1"), pdf("n"))
        .await;
    let doctor_id = submitted["data"]["submitDoctorProfile"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.ok(
        "mutation($id: ID!) { approveDoctor(id: $id) { id } }",
        json!({ "id": doctor_id }),
        Some(&admin.access),
    )
    .await;
    let approved = doctor_ws.next_data("n").await;
    assert_eq!(approved["notifications"]["kind"], "DOCTOR_APPROVED");

    app.open_around_the_clock(&doctor, 0).await;
    let today = chrono::Utc::now().date_naive();
    let slots = app
        .ok("query($d: ID!, $f: Date!, $t: Date!) { availableSlots(doctorId: $d, from: $f, to: $t) { startsAt } }",
            json!({ "d": doctor_id, "f": today.to_string(), "t": (today + chrono::Duration::days(1)).to_string() }), None)
        .await;
    let patient = app.register_patient().await;
    let booked = app
        .ok("mutation($input: BookAppointmentInput!) { bookAppointment(input: $input) { id } }",
            json!({ "input": { "doctorId": doctor_id, "startsAt": slots["availableSlots"][0]["startsAt"] } }), Some(&patient.access))
        .await;
    let appointment_id = booked["bookAppointment"]["id"].clone();
    let note = doctor_ws.next_data("n").await;
    assert_eq!(note["notifications"]["kind"], "APPOINTMENT_BOOKED");
    assert_eq!(note["notifications"]["appointment"]["id"], appointment_id);
    app.ok(
        "mutation($id: ID!) { cancelAppointment(id: $id) { id } }",
        json!({ "id": appointment_id }),
        Some(&patient.access),
    )
    .await;
    assert_eq!(
        doctor_ws.next_data("n").await["notifications"]["kind"],
        "APPOINTMENT_CANCELLED"
    );
}

#[tokio::test]
async fn the_server_pings_and_drops_peers_that_stop_answering() {
    let app = spawn_app_with(|config| config.ws_ping_interval_secs = 1).await;
    let ann = app.register_patient().await;
    let mut socket = app.ws_client(&ann.access).await;
    match socket.receive_raw().await {
        Received::Message(message) => assert_eq!(message["type"], "ping", "{message}"),
        Received::Closed(code, reason) => panic!("closed with {code} {reason}"),
    }
    // Never answer again: after three silent intervals the server gives up on the peer.
    let code = loop {
        match socket.receive_raw().await {
            Received::Message(message) => assert_eq!(message["type"], "ping", "{message}"),
            Received::Closed(code, _) => break code,
        }
    };
    assert_eq!(code, 1001);
}

#[tokio::test]
async fn an_appointment_call_rings_in_its_window_and_starts_the_appointment() {
    let app = fast_app().await;
    let admin = app.admin().await;
    let (doctor, _, patient, appointment) = app.booked_pair(&admin, "APPT-CALL").await;
    const CALL: &str =
        "mutation($a: ID!) { startCall(input: { appointmentId: $a }) { id status callee { id } } }";
    const STATUS: &str = "query($a: ID!) { appointment(id: $a) { status startsAt } }";
    let starts_at: chrono::DateTime<chrono::Utc> = app
        .ok(STATUS, json!({ "a": appointment }), Some(&patient.access))
        .await["appointment"]["startsAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    app.clock
        .shift(starts_at - chrono::Duration::minutes(11) - app.clock.now());
    let early = app
        .graphql(CALL, json!({ "a": appointment }), Some(&patient.access))
        .await;
    assert_eq!(
        error_code(&early),
        Some("CONFLICT"),
        "more than 10 minutes before: {early}"
    );
    let stranger = app.register_patient().await;
    let intruder = app
        .graphql(CALL, json!({ "a": appointment }), Some(&stranger.access))
        .await;
    assert_eq!(error_code(&intruder), Some("NOT_FOUND"));

    app.clock.shift(chrono::Duration::minutes(2));
    let mut doctor_ws = app.ws_client(&doctor.access).await;
    doctor_ws.subscribe("events", CALL_EVENTS, json!({})).await;
    doctor_ws.sync().await;
    let call = app
        .ok(CALL, json!({ "a": appointment }), Some(&patient.access))
        .await;
    assert_eq!(call["startCall"]["callee"]["id"], doctor.id.as_str());
    let call_id = call["startCall"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        doctor_ws.next_data("events").await["callEvents"]["kind"],
        "INCOMING"
    );
    doctor_ws
        .execute(
            "answer",
            "mutation($id: ID!) { answerCall(callId: $id, accept: true) { status } }",
            json!({ "id": call_id }),
        )
        .await;
    let status = app
        .ok(STATUS, json!({ "a": appointment }), Some(&doctor.access))
        .await;
    assert_eq!(status["appointment"]["status"], "IN_PROGRESS");

    // During the call the two chat on the appointment's channel.
    let channel = json!({ "appointmentId": appointment });
    doctor_ws
        .subscribe(
            "chat",
            "subscription($c: ChatChannelInput!) { messageAdded(channel: $c) { body } }",
            json!({ "c": channel }),
        )
        .await;
    doctor_ws.sync().await;
    app.ok(
        "mutation($input: SendMessageInput!) { sendMessage(input: $input) { id } }",
        json!({ "input": { "channel": channel, "body": "Can you hear me?" } }),
        Some(&patient.access),
    )
    .await;
    assert_eq!(
        doctor_ws.next_data("chat").await["messageAdded"]["body"],
        "Can you hear me?"
    );
}

/// A call from `patient` that the doctor answers with `accept`; its id.
async fn answered_call(
    app: &TestApp,
    doctor_ws: &mut WsClient,
    doctor_id: &str,
    patient: &Account,
    accept: bool,
) -> String {
    let call = app
        .ok(
            START_CALL,
            json!({ "doctor": doctor_id }),
            Some(&patient.access),
        )
        .await;
    let id = call["startCall"]["id"]
        .as_str()
        .expect("call id")
        .to_owned();
    let answered = doctor_ws
        .execute(
            "answer",
            "mutation($id: ID!, $accept: Boolean!) { answerCall(callId: $id, accept: $accept) { status } }",
            json!({ "id": id, "accept": accept }),
        )
        .await;
    assert!(answered.get("errors").is_none(), "{answered}");
    id
}

#[tokio::test]
async fn an_answered_call_lets_its_two_people_message_each_other() {
    const SEND: &str =
        "mutation($input: SendMessageInput!) { sendMessage(input: $input) { body } }";
    let app = fast_app().await;
    let admin = app.admin().await;
    let (doctor, doctor_id, mut doctor_ws) = app.online_doctor(&admin, "DM-CALL-1").await;
    let patient = app.register_patient().await;
    let to_doctor =
        json!({ "input": { "channel": { "userId": doctor.id }, "body": "Can you see me?" } });

    answered_call(&app, &mut doctor_ws, &doctor_id, &patient, false).await;
    let declined = app
        .graphql(SEND, to_doctor.clone(), Some(&patient.access))
        .await;
    assert_eq!(
        error_code(&declined),
        Some("FORBIDDEN"),
        "a declined call: {declined}"
    );

    let id = answered_call(&app, &mut doctor_ws, &doctor_id, &patient, true).await;
    let sent = app.ok(SEND, to_doctor, Some(&patient.access)).await;
    assert_eq!(sent["sendMessage"]["body"], "Can you see me?");
    app.ok(
        "mutation($id: ID!) { endCall(callId: $id) { status } }",
        json!({ "id": id }),
        Some(&doctor.access),
    )
    .await;
    let reply = json!({ "input": { "channel": { "userId": patient.id }, "body": "Follow-up" } });
    let after = app.ok(SEND, reply, Some(&doctor.access)).await;
    assert_eq!(after["sendMessage"]["body"], "Follow-up");
}

#[tokio::test]
async fn a_status_subscription_naming_doctors_hears_only_about_them() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (watched, watched_id) = app
        .approved_doctor(&admin, "Dr Watched", profile_input("WATCH-1"))
        .await;
    let (other, _) = app
        .approved_doctor(&admin, "Dr Other", profile_input("WATCH-2"))
        .await;
    let patient = app.register_patient().await;
    let mut watching = app.ws_client(&patient.access).await;
    let query = "subscription($ids: [ID!]) { doctorStatusChanged(doctorIds: $ids) { doctor { id } status } }";
    watching
        .subscribe("status", query, json!({ "ids": [watched_id] }))
        .await;
    watching.sync().await;

    let mut other_ws = app.ws_client(&other.access).await;
    other_ws.go_online().await;
    let mut watched_ws = app.ws_client(&watched.access).await;
    watched_ws.go_online().await;
    assert_eq!(
        watching.next_data("status").await["doctorStatusChanged"],
        json!({ "doctor": { "id": watched_id }, "status": "ONLINE" }),
        "the other doctor's change, sent first, never arrives"
    );

    let too_many: Vec<String> = (0..101).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    for (n, ids) in [json!(too_many), json!(["nope"])].into_iter().enumerate() {
        let id = format!("bad{n}");
        watching.subscribe(&id, query, json!({ "ids": ids })).await;
        let refused = watching.message_for(&id).await;
        let error = &refused["payload"]["errors"][0]["extensions"];
        assert_eq!(
            (&error["code"], &error["field"]),
            (&json!("BAD_USER_INPUT"), &json!("doctorIds")),
            "{refused}"
        );
    }
}
