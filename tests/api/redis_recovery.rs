//! The Redis bus recovers from lost connections, plain or TLS: subscriptions come back and later
//! signals are delivered. A test binary of its own, because `CLIENT KILL TYPE pubsub` cuts every pub/sub
//! connection on the server, those of tests running beside it too (cargo runs test binaries
//! one after another).

use std::time::Duration;

use crate::common::gate::{tcp_gate, wait_for_readiness};
use crate::common::tls::TlsRedis;
use crate::common::ws::WsClient;
use crate::common::*;
use serde_json::{Value, json};

const SIGNALS: &str = "subscription($id: ID!) { signals(callId: $id) { sdp } }";
const SEND_SIGNAL: &str = "mutation($input: SendSignalInput!) { sendSignal(input: $input) }";

/// A patient on `a` in an active call with a doctor on `b`, both listening for signals.
async fn call_across(a: &TestApp, b: &TestApp) -> (WsClient, WsClient, String) {
    let admin = a.admin().await;
    let (_, doctor_id, mut doctor_ws) = a.online_doctor_on(b, &admin, "RECOVER-1").await;
    let patient = a.register_patient().await;
    let mut patient_ws = a.ws_client(&patient.access).await;
    let call = patient_ws
        .execute(
            "call",
            "mutation($d: ID!) { startCall(input: { doctorId: $d }) { id } }",
            json!({ "d": doctor_id }),
        )
        .await;
    let call_id = call["data"]["startCall"]["id"]
        .as_str()
        .expect("call started")
        .to_owned();
    doctor_ws
        .execute(
            "answer",
            "mutation($id: ID!) { answerCall(callId: $id, accept: true) { id } }",
            json!({ "id": call_id }),
        )
        .await;
    doctor_ws
        .subscribe("signals", SIGNALS, json!({ "id": call_id }))
        .await;
    doctor_ws.sync().await;
    (patient_ws, doctor_ws, call_id)
}

/// Two instances whose connections to the tests' Redis pass through a gate the test cuts
/// (`false`) and restores (`true`).
async fn instances_behind_a_gate(
    configure: impl Fn(&mut medilink::config::Config),
) -> (TestApp, TestApp, tokio::sync::watch::Sender<bool>) {
    let upstream = test_redis_url()
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_owned();
    let (gate_addr, gate) = tcp_gate(upstream).await;
    let (a, b) = spawn_instances(|config| {
        config.redis_url = Some(format!("redis://{gate_addr}"));
        configure(config);
    })
    .await;
    (a, b, gate)
}

async fn send(patient_ws: &mut WsClient, call_id: &str, id: &str, sdp: &str) {
    let sent = patient_ws
        .execute(
            id,
            SEND_SIGNAL,
            json!({ "input": { "callId": call_id, "kind": "OFFER", "sdp": sdp } }),
        )
        .await;
    assert_eq!(sent["data"]["sendSignal"], true, "{sent}");
}

/// Sends probes until one crosses (the bus may still be reconnecting), then checks that ten
/// later signals all arrive, in order.
async fn signals_cross_again(patient_ws: &mut WsClient, doctor_ws: &mut WsClient, call_id: &str) {
    let mut crossed = false;
    for n in 0..100 {
        send(
            patient_ws,
            call_id,
            &format!("probe{n}"),
            &format!("probe {n}"),
        )
        .await;
        if tokio::time::timeout(Duration::from_millis(200), doctor_ws.next_data("signals"))
            .await
            .is_ok()
        {
            crossed = true;
            break;
        }
    }
    assert!(crossed, "no signal crossed after the bus reconnected");
    for n in 0..10 {
        send(
            patient_ws,
            call_id,
            &format!("after{n}"),
            &format!("after {n}"),
        )
        .await;
    }
    let mut received = Vec::new();
    while received.len() < 10 {
        let sdp = doctor_ws.next_data("signals").await["signals"]["sdp"].clone();
        if sdp.as_str().is_some_and(|s| s.starts_with("after")) {
            received.push(sdp);
        }
    }
    let expected: Vec<Value> = (0..10).map(|n| json!(format!("after {n}"))).collect();
    assert_eq!(received, expected);
}

#[tokio::test]
#[ignore = "needs Redis"]
async fn the_bus_recovers_when_redis_cuts_its_pubsub_connections() {
    let (a, b) = spawn_instances(|config| config.ring_timeout_secs = 600).await;
    let (mut patient_ws, mut doctor_ws, call_id) = call_across(&a, &b).await;
    send(&mut patient_ws, &call_id, "before", "before").await;
    assert_eq!(
        doctor_ws.next_data("signals").await["signals"]["sdp"],
        "before"
    );

    let client = redis::Client::open(test_redis_url()).expect("redis url");
    let mut admin = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis connects");
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut admin)
        .await
        .expect("CLIENT KILL");
    assert!(killed >= 2, "both instances had a pub/sub connection");

    signals_cross_again(&mut patient_ws, &mut doctor_ws, &call_id).await;
    for app in [&a, &b] {
        let body = wait_for_readiness(app, 200).await;
        assert_eq!(body["redis"], "connected");
    }
}

#[tokio::test]
#[ignore = "needs Redis"]
async fn readiness_follows_redis_and_subscriptions_come_back_after_an_outage() {
    let (a, b, gate) = instances_behind_a_gate(|config| config.ring_timeout_secs = 600).await;
    let (mut patient_ws, mut doctor_ws, call_id) = call_across(&a, &b).await;
    wait_for_readiness(&a, 200).await;

    gate.send_replace(false);
    let body = wait_for_readiness(&a, 503).await;
    assert_eq!(body["redis"], "disconnected");
    wait_for_readiness(&b, 503).await;
    // A socket that cannot be recorded in the shared presence is told to try again later, a
    // code the graphql-ws client retries (it gives up after 1011).
    let late = a.register_patient().await;
    let mut refused = a.ws_raw().await;
    refused
        .send(json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {}", late.access) } }))
        .await;
    assert_eq!(refused.closed().await, 1013);

    gate.send_replace(true);
    wait_for_readiness(&a, 200).await;
    wait_for_readiness(&b, 200).await;
    signals_cross_again(&mut patient_ws, &mut doctor_ws, &call_id).await;
}

/// The same over `rediss://`, with a Redis that speaks TLS only and whose certificate comes
/// from a CA of its own (MEDILINK_REDIS_CA_FILE): signals cross, `/readyz` follows the
/// encrypted connections through an outage, and they come back as plain ones do.
#[tokio::test]
#[ignore = "needs Redis"]
async fn over_tls_signals_cross_and_the_bus_comes_back_after_an_outage() {
    let redis = TlsRedis::start();
    let (gate_addr, gate) = tcp_gate(redis.addr.to_string()).await;
    let (a, b) = spawn_instances(|config| {
        config.ring_timeout_secs = 600;
        config.redis_url = Some(format!("rediss://{gate_addr}"));
        config.redis_ca_file = Some(redis.ca.cert.clone());
    })
    .await;
    let (mut patient_ws, mut doctor_ws, call_id) = call_across(&a, &b).await;
    send(&mut patient_ws, &call_id, "before", "before").await;
    assert_eq!(
        doctor_ws.next_data("signals").await["signals"]["sdp"],
        "before"
    );
    for app in [&a, &b] {
        let body = wait_for_readiness(app, 200).await;
        assert_eq!(body["redis"], "connected");
    }

    gate.send_replace(false);
    for app in [&a, &b] {
        let body = wait_for_readiness(app, 503).await;
        assert_eq!(body["redis"], "disconnected");
    }

    gate.send_replace(true);
    wait_for_readiness(&a, 200).await;
    wait_for_readiness(&b, 200).await;
    signals_cross_again(&mut patient_ws, &mut doctor_ws, &call_id).await;
}

/// Sessions ended while the bus is down are not missed: an instance that cannot hear the news
/// reads the account, and one that comes back forgets what it knew before.
#[tokio::test]
#[ignore = "needs Redis"]
async fn sessions_ended_during_an_outage_are_not_missed() {
    let (a, b, gate) = instances_behind_a_gate(|_| {}).await;
    let (ann, bob) = (a.register_patient().await, a.register_patient().await);
    drop((
        a.ws_client(&ann.access).await,
        a.ws_client(&bob.access).await,
    ));

    gate.send_replace(false);
    wait_for_readiness(&a, 503).await;
    wait_for_readiness(&b, 503).await;
    for user in [&ann, &bob] {
        b.ok("mutation { logout }", json!({}), Some(&user.access))
            .await;
    }
    let me = a
        .graphql("{ me { id } }", json!({}), Some(&ann.access))
        .await;
    assert_eq!(error_code(&me), Some("UNAUTHENTICATED"), "{me}");

    gate.send_replace(true);
    wait_for_readiness(&a, 200).await;
    assert_eq!(a.ws_refused(&bob.access).await, 4403);
}
