//! Several instances on one database and one Redis: presence, calls, signals, chat and kicks
//! cross from one instance to the other, an instance that vanishes leaves no ghosts, and a
//! call goes on when its instance restarts and its two peers reconnect to another.

use std::time::Duration;

use crate::common::ws::{WsClient, accept_call, listen_for_signals, relay, start_call};
use crate::common::*;
use futures_util::future::join;
use serde_json::{Value, json};

const CALL_EVENTS: &str = "subscription { callEvents { kind call { id status endReason } } }";
const SIGNALS: &str = "subscription($id: ID!) { signals(callId: $id) { from kind sdp candidate { candidate } audioEnabled videoEnabled } }";
const SEND_SIGNAL: &str = "mutation($input: SendSignalInput!) { sendSignal(input: $input) }";
const START_CALL: &str =
    "mutation($doctor: ID!) { startCall(input: { doctorId: $doctor }) { id status } }";
const STATUS_CHANGES: &str = "subscription { doctorStatusChanged { doctor { id } status } }";
const DOCTOR_STATUS: &str = "query($id: ID!) { doctor(id: $id) { status } }";

/// An approved doctor (registered through `app`) with a socket on `on`, ONLINE.
async fn online_doctor(app: &TestApp, on: &TestApp, licence: &str) -> (Account, String, WsClient) {
    app.online_doctor_on(on, &app.admin().await, licence).await
}

async fn status_on(app: &TestApp, doctor_id: &str) -> Value {
    app.ok(DOCTOR_STATUS, json!({ "id": doctor_id }), None)
        .await["doctor"]["status"]
        .clone()
}

/// A socket on `app` of a new patient, listening to every doctor's status changes as "status".
async fn watching_statuses(app: &TestApp) -> WsClient {
    let watcher = app.register_patient().await;
    let mut watching = app.ws_client(&watcher.access).await;
    watching
        .subscribe("status", STATUS_CHANGES, json!({}))
        .await;
    watching.sync().await;
    watching
}

async fn next_status(watching: &mut WsClient) -> Value {
    watching.next_data("status").await["doctorStatusChanged"]["status"].clone()
}

#[tokio::test]
#[ignore = "needs Redis"]
async fn presence_and_a_ringing_call_cross_instances() {
    let (a, b) = spawn_instances(|config| config.ring_timeout_secs = 600).await;
    let mut watching = watching_statuses(&a).await;
    // The doctor is on B; A sees them ONLINE, in queries and in its status stream.
    let (_, doctor_id, mut doctor_ws) = online_doctor(&a, &b, "MULTI-1").await;
    assert_eq!(
        watching.next_data("status").await["doctorStatusChanged"],
        json!({ "doctor": { "id": doctor_id }, "status": "ONLINE" })
    );
    assert_eq!(status_on(&a, &doctor_id).await, "ONLINE");
    let online = a.ok("{ onlineDoctors { id } }", json!({}), None).await;
    assert_eq!(online["onlineDoctors"], json!([{ "id": doctor_id }]));

    // A patient on A calls: the doctor's socket on B rings, and both instances see them BUSY.
    let patient = a.register_patient().await;
    let mut patient_ws = a.ws_client(&patient.access).await;
    doctor_ws.subscribe("events", CALL_EVENTS, json!({})).await;
    doctor_ws.sync().await;
    start_call(&mut patient_ws, &mut doctor_ws, &doctor_id).await;
    assert_eq!(next_status(&mut watching).await, "BUSY");
    assert_eq!(status_on(&b, &doctor_id).await, "BUSY");
}

#[tokio::test]
#[ignore = "needs Redis"]
async fn signals_cross_instances_whole_and_in_order() {
    let (a, b) = spawn_instances(|config| config.ring_timeout_secs = 600).await;
    let (_, _, mut doctor_ws, patient, mut patient_ws, call_id) =
        active_call(&a, &b, "MULTI-1").await;
    listen_for_signals(&mut doctor_ws, &mut patient_ws, SIGNALS, &call_id).await;
    let offer = json!({ "callId": call_id, "kind": "OFFER", "sdp": "v=0 offer" });
    let offer = relay(&mut patient_ws, &mut doctor_ws, offer).await;
    assert_eq!(
        (
            offer["kind"].as_str(),
            offer["sdp"].as_str(),
            offer["from"].as_str()
        ),
        (Some("OFFER"), Some("v=0 offer"), Some(patient.id.as_str()))
    );
    let answer = json!({ "callId": call_id, "kind": "ANSWER", "sdp": "v=0 answer" });
    let answer = relay(&mut doctor_ws, &mut patient_ws, answer).await;
    assert_eq!(answer["sdp"], "v=0 answer");
    let candidate = json!({ "candidate": "candidate:1 1 udp 1 10.0.0.1 5000 typ host" });
    let ice = json!({ "callId": call_id, "kind": "ICE_CANDIDATE", "candidate": candidate });
    let ice = relay(&mut doctor_ws, &mut patient_ws, ice).await;
    assert_eq!(ice["candidate"], candidate);
    let mute = json!({ "callId": call_id, "kind": "MEDIA_STATE", "audioEnabled": false });
    let media = relay(&mut patient_ws, &mut doctor_ws, mute).await;
    assert_eq!(media["audioEnabled"], false);
    // One sender's signals keep their order across instances.
    for n in 0..20 {
        patient_ws
            .signal(
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
}

#[tokio::test]
#[ignore = "needs Redis"]
async fn a_lobby_message_sent_on_one_instance_is_read_on_the_other() {
    let (a, b) = spawn_instances(|_| {}).await;
    let reader = b.register_patient().await;
    let mut reader_ws = b.ws_client(&reader.access).await;
    reader_ws
        .subscribe(
            "chat",
            "subscription { messageAdded(channel: { lobby: true }) { body } }",
            json!({}),
        )
        .await;
    reader_ws.sync().await;
    let writer = a.register_patient().await;
    a.ok(
        "mutation($input: SendMessageInput!) { sendMessage(input: $input) { id } }",
        json!({ "input": { "channel": { "lobby": true }, "body": "Can you hear me?" } }),
        Some(&writer.access),
    )
    .await;
    assert_eq!(
        reader_ws.next_data("chat").await["messageAdded"]["body"],
        "Can you hear me?"
    );
}

#[tokio::test]
#[ignore = "needs Redis"]
async fn a_hang_up_on_one_instance_ends_the_call_on_the_other() {
    let (a, b) = spawn_instances(|config| config.ring_timeout_secs = 600).await;
    let mut watching = watching_statuses(&a).await;
    let (doctor, doctor_id, mut doctor_ws, _, mut patient_ws, call_id) =
        active_call(&a, &b, "MULTI-1").await;
    listen_for_signals(&mut doctor_ws, &mut patient_ws, SIGNALS, &call_id).await;
    for expected in ["ONLINE", "BUSY"] {
        assert_eq!(next_status(&mut watching).await, expected);
    }
    let ended = patient_ws
        .execute(
            "end",
            "mutation($id: ID!) { endCall(callId: $id) { endReason } }",
            json!({ "id": call_id }),
        )
        .await;
    assert_eq!(ended["data"]["endCall"]["endReason"], "HANGUP");
    for socket in [&mut doctor_ws, &mut patient_ws] {
        assert_eq!(
            socket.next_data("events").await["callEvents"]["kind"],
            "ENDED"
        );
        assert_eq!(socket.message_for("signals").await["type"], "complete");
    }
    assert_eq!(next_status(&mut watching).await, "ONLINE");
    assert_eq!(status_on(&b, &doctor_id).await, "ONLINE");
    // B cached the call when the doctor answered; A's hang-up reached that cache too.
    let late = doctor_ws
        .execute(
            "late",
            SEND_SIGNAL,
            json!({ "input": { "callId": call_id, "kind": "OFFER", "sdp": "v=0" } }),
        )
        .await;
    assert_eq!(error_code(&late), Some("CONFLICT"), "{late}");

    // The doctor leaves B: A sees them OFFLINE.
    doctor_ws.close().await;
    assert_eq!(next_status(&mut watching).await, "OFFLINE");
    let calls = b
        .ok(
            "{ myCalls { totalCount } }",
            json!({}),
            Some(&doctor.access),
        )
        .await;
    assert_eq!(calls["myCalls"]["totalCount"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Redis"]
async fn two_callers_on_two_instances_race_and_one_rings() {
    let (a, b) = spawn_instances(|_| {}).await;
    let (_, doctor_id, _doctor_ws) = online_doctor(&a, &b, "MULTI-RACE").await;
    for round in 0..5 {
        let first = a.register_patient().await;
        let second = b.register_patient().await;
        let (one, two) = join(
            a.graphql(
                START_CALL,
                json!({ "doctor": doctor_id }),
                Some(&first.access),
            ),
            b.graphql(
                START_CALL,
                json!({ "doctor": doctor_id }),
                Some(&second.access),
            ),
        )
        .await;
        let ringing: Vec<&Value> = [&one, &two]
            .into_iter()
            .filter(|r| r["data"]["startCall"]["status"] == "RINGING")
            .collect();
        let conflicts = [&one, &two]
            .into_iter()
            .filter(|r| error_code(r) == Some("CONFLICT"))
            .count();
        assert_eq!(
            (ringing.len(), conflicts),
            (1, 1),
            "round {round}: {one} {two}"
        );
        assert_eq!(status_on(&a, &doctor_id).await, "BUSY");
        // The winner hangs up on the instance it called through; the doctor is free again.
        let (app, caller) = if one["data"]["startCall"]["status"] == "RINGING" {
            (&a, &first)
        } else {
            (&b, &second)
        };
        let call_id = ringing[0]["data"]["startCall"]["id"].clone();
        app.ok(
            "mutation($id: ID!) { cancelCall(callId: $id) { status } }",
            json!({ "id": call_id }),
            Some(&caller.access),
        )
        .await;
        assert_eq!(status_on(&b, &doctor_id).await, "ONLINE");
    }
}

#[tokio::test]
#[ignore = "needs Redis"]
async fn blocking_closes_the_users_sockets_on_every_instance() {
    let (a, b) = spawn_instances(|_| {}).await;
    let admin = a.admin().await;
    let ann = a.register_patient().await;
    let mut on_a = a.ws_client(&ann.access).await;
    let mut on_b = b.ws_client(&ann.access).await;
    on_b.subscribe("events", CALL_EVENTS, json!({})).await;
    on_b.sync().await;
    a.ok(
        "mutation($id: ID!) { blockUser(id: $id) { id } }",
        json!({ "id": ann.id }),
        Some(&admin.access),
    )
    .await;
    let closed = tokio::time::timeout(Duration::from_secs(1), async {
        (on_a.closed().await, on_b.closed().await)
    })
    .await
    .expect("closed within a second");
    assert_eq!(closed, (4403, 4403));

    // Logging out on B closes the socket on A.
    let bob = a.register_patient().await;
    let mut bob_on_a = a.ws_client(&bob.access).await;
    b.ok("mutation { logout }", json!({}), Some(&bob.access))
        .await;
    assert_eq!(bob_on_a.closed().await, 4403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Redis"]
async fn a_vanished_instance_leaves_no_online_doctor_and_no_ringing_call() {
    // The users of a vanished instance get the call grace period to reconnect elsewhere, as
    // those of a stopped one do; a short one keeps the test short.
    let (a, _) = spawn_instances(|config| {
        config.instance_expiry_ms = 1500;
        config.ring_timeout_secs = 600;
        config.call_grace_secs = 1;
    })
    .await;
    // Instance C runs on a runtime of its own, so that it can vanish without cleaning up.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let c = a.another_instance(runtime.handle()).await;
    let mut watching = watching_statuses(&a).await;
    let (_, doctor_id, _doctor_ws) = online_doctor(&a, &c, "MULTI-GONE").await;
    assert_eq!(
        watching.next_data("status").await["doctorStatusChanged"]["status"],
        "ONLINE"
    );

    let patient = a.register_patient().await;
    let mut patient_ws = a.ws_client(&patient.access).await;
    patient_ws.subscribe("events", CALL_EVENTS, json!({})).await;
    patient_ws.sync().await;
    let call = patient_ws
        .execute("call", START_CALL, json!({ "doctor": doctor_id }))
        .await;
    assert_eq!(call["data"]["startCall"]["status"], "RINGING", "{call}");
    assert_eq!(
        watching.next_data("status").await["doctorStatusChanged"]["status"],
        "BUSY"
    );

    // C stops dead: no disconnect is recorded, its heartbeat just stops.
    runtime.shutdown_background();
    assert_eq!(
        watching.next_data("status").await["doctorStatusChanged"],
        json!({ "doctor": { "id": doctor_id }, "status": "OFFLINE" })
    );
    let missed = patient_ws.next_data("events").await["callEvents"].clone();
    assert_eq!(
        (
            missed["kind"].as_str(),
            missed["call"]["endReason"].as_str()
        ),
        (Some("MISSED"), Some("MISSED"))
    );
    assert_eq!(status_on(&a, &doctor_id).await, "OFFLINE");
    let online = a.ok("{ onlineDoctors { id } }", json!({}), None).await;
    assert_eq!(online["onlineDoctors"], json!([]));
}

const MY_CALLS: &str = "{ myCalls { edges { node { id status endReason } } } }";

/// An ACTIVE call between a new patient with a socket on `app` and an ONLINE doctor with a
/// socket on `doctor_on`, both subscribed to "events": (doctor, doctor id, doctor socket,
/// patient, patient socket, call id).
async fn active_call(
    app: &TestApp,
    doctor_on: &TestApp,
    licence: &str,
) -> (Account, String, WsClient, Account, WsClient, String) {
    let (doctor, doctor_id, mut doctor_ws) = online_doctor(app, doctor_on, licence).await;
    let patient = app.register_patient().await;
    let mut patient_ws = app.ws_client(&patient.access).await;
    doctor_ws.subscribe("events", CALL_EVENTS, json!({})).await;
    patient_ws.subscribe("events", CALL_EVENTS, json!({})).await;
    doctor_ws.sync().await;
    patient_ws.sync().await;
    let call_id = start_call(&mut patient_ws, &mut doctor_ws, &doctor_id).await;
    accept_call(&mut doctor_ws, &mut patient_ws, &call_id).await;
    (doctor, doctor_id, doctor_ws, patient, patient_ws, call_id)
}

/// The call as `app` reports it to `account`.
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

/// Stops `a` (SIGTERM in production) and checks that it sends both sockets away with 1001, on
/// which the graphql-ws client reconnects, through the load balancer, to another instance.
async fn stop_under(a: &TestApp, doctor_ws: &mut WsClient, patient_ws: &mut WsClient) {
    a.shutdown().await;
    let mut gone = Vec::new();
    for socket in [doctor_ws, patient_ws] {
        gone.push(socket.closed().await);
    }
    assert_eq!(gone, [1001, 1001]);
}

#[tokio::test]
#[ignore = "needs Redis"]
async fn a_stopping_instance_sends_its_sockets_away_and_leaves_nothing_in_redis() {
    let (a, _b) = spawn_instances(|config| {
        config.ring_timeout_secs = 600;
        config.call_grace_secs = 600;
    })
    .await;
    let (doctor, _, mut doctor_ws, patient, mut patient_ws, _) =
        active_call(&a, &a, "RESTART-1").await;
    stop_under(&a, &mut doctor_ws, &mut patient_ws).await;
    // A took its sockets and itself out of Redis on the way: nothing waits for its heartbeat
    // to expire.
    let mut redis = redis::Client::open(test_redis_url())
        .expect("Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("Redis answers");
    let prefix = &a.config.redis_prefix;
    for user in [&doctor.id, &patient.id] {
        let counted: usize = redis::cmd("HLEN")
            .arg(format!("{prefix}:conns:{user}"))
            .query_async(&mut redis)
            .await
            .expect("HLEN");
        assert_eq!(counted, 0, "no socket of {user} is counted");
    }
    let instances: usize = redis::cmd("SCARD")
        .arg(format!("{prefix}:instances"))
        .query_async(&mut redis)
        .await
        .expect("SCARD");
    assert_eq!(instances, 1, "only B is left");
}

#[tokio::test]
#[ignore = "needs Redis"]
async fn a_call_goes_on_when_its_instance_restarts_and_both_peers_reconnect_elsewhere() {
    let (a, b) = spawn_instances(|config| {
        config.ring_timeout_secs = 600;
        config.call_grace_secs = 600;
    })
    .await;
    let (doctor, doctor_id, mut doctor_ws, patient, mut patient_ws, call_id) =
        active_call(&a, &a, "RESTART-1").await;
    listen_for_signals(&mut doctor_ws, &mut patient_ws, SIGNALS, &call_id).await;
    let offer = json!({ "callId": call_id, "kind": "OFFER", "sdp": "v=0 offer" });
    let offer = relay(&mut patient_ws, &mut doctor_ws, offer).await;
    assert_eq!(offer["sdp"], "v=0 offer");

    stop_under(&a, &mut doctor_ws, &mut patient_ws).await;
    let mut doctor_ws = b.ws_client(&doctor.access).await;
    let mut patient_ws = b.ws_client(&patient.access).await;
    for socket in [&mut doctor_ws, &mut patient_ws] {
        socket.subscribe("events", CALL_EVENTS, json!({})).await;
    }
    listen_for_signals(&mut doctor_ws, &mut patient_ws, SIGNALS, &call_id).await;

    // The call never stopped: ACTIVE, the doctor BUSY, and the browsers renegotiate on B.
    assert_eq!(call_on(&b, &patient, &call_id).await["status"], "ACTIVE");
    assert_eq!(status_on(&b, &doctor_id).await, "BUSY");
    let renegotiate =
        json!({ "callId": call_id, "kind": "RENEGOTIATE", "sdp": "v=0 restart offer" });
    let offer = relay(&mut patient_ws, &mut doctor_ws, renegotiate).await;
    assert_eq!(
        (offer["kind"].as_str(), offer["sdp"].as_str()),
        (Some("RENEGOTIATE"), Some("v=0 restart offer"))
    );
    let answer = json!({ "callId": call_id, "kind": "ANSWER", "sdp": "v=0 restart answer" });
    let answer = relay(&mut doctor_ws, &mut patient_ws, answer).await;
    assert_eq!(answer["sdp"], "v=0 restart answer");

    let ended = doctor_ws
        .execute(
            "end",
            "mutation($id: ID!) { endCall(callId: $id) { endReason } }",
            json!({ "id": call_id }),
        )
        .await;
    assert_eq!(ended["data"]["endCall"]["endReason"], "HANGUP", "{ended}");
    for socket in [&mut doctor_ws, &mut patient_ws] {
        assert_eq!(
            socket.next_data("events").await["callEvents"]["kind"],
            "ENDED"
        );
    }
    // Back within the grace, the doctor is ONLINE again, as they chose before the restart.
    assert_eq!(status_on(&b, &doctor_id).await, "ONLINE");
}

#[tokio::test]
#[ignore = "needs Redis"]
async fn a_call_whose_peers_do_not_come_back_after_a_restart_ends_as_dropped() {
    let (a, b) = spawn_instances(|config| {
        config.ring_timeout_secs = 600;
        config.call_grace_secs = 1;
        config.instance_expiry_ms = 1500;
    })
    .await;
    let mut watching = watching_statuses(&b).await;
    let (doctor, doctor_id, mut doctor_ws, patient, mut patient_ws, call_id) =
        active_call(&a, &a, "RESTART-2").await;
    for expected in ["ONLINE", "BUSY"] {
        assert_eq!(
            watching.next_data("status").await["doctorStatusChanged"]["status"],
            expected
        );
    }

    a.shutdown().await;
    assert_eq!(doctor_ws.closed().await, 1001);
    assert_eq!(patient_ws.closed().await, 1001);
    // B hears that the doctor left: nobody sees them BUSY.
    assert_eq!(
        watching.next_data("status").await["doctorStatusChanged"],
        json!({ "doctor": { "id": doctor_id }, "status": "OFFLINE" })
    );
    // Nobody reconnects: B ends the call when the grace is over.
    let ended = eventually("the call ends", || async {
        let call = call_on(&b, &patient, &call_id).await;
        (call["status"] == "ENDED").then_some(call)
    })
    .await;
    assert_eq!(ended["endReason"], "DROPPED");
    assert_eq!(status_on(&b, &doctor_id).await, "OFFLINE");
    let online = b.ok("{ onlineDoctors { id } }", json!({}), None).await;
    assert_eq!(online["onlineDoctors"], json!([]));

    // Back after the grace, the doctor is neither BUSY nor ONLINE: they choose again.
    let _doctor_ws = b.ws_client(&doctor.access).await;
    assert_eq!(status_on(&b, &doctor_id).await, "OFFLINE");
}

/// An instance that checked a token, where the user has no socket left, refuses it once the
/// user logs out or is blocked on another instance.
#[tokio::test]
#[ignore = "needs Redis"]
async fn sessions_ended_on_one_instance_end_on_the_others_that_knew_them() {
    let (a, b) = spawn_instances(|_| {}).await;
    let (ann, bob) = (a.register_patient().await, a.register_patient().await);
    drop((
        b.ws_client(&ann.access).await,
        b.ws_client(&bob.access).await,
    ));

    a.ok("mutation { logout }", json!({}), Some(&ann.access))
        .await;
    let admin = a.admin().await;
    let block = "mutation($id: ID!) { blockUser(id: $id) { id } }";
    a.ok(block, json!({ "id": bob.id }), Some(&admin.access))
        .await;
    // The news crosses Redis after the mutations answer: a few milliseconds.
    for user in [&ann, &bob] {
        eventually("the old token is refused on B", || async {
            let me = b
                .graphql("{ me { id } }", json!({}), Some(&user.access))
                .await;
            error_code(&me).is_some().then_some(())
        })
        .await;
        assert_eq!(b.ws_refused(&user.access).await, 4403);
    }
}
