//! One-way latency of the signaling relay: a patient sends signals over their socket, the
//! doctor's socket receives them. Prints p50/p99; asserts nothing.
//! `cargo bench --bench relay`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

const SAMPLES: usize = 300;
/// Below the per-user signal rate limit (50 a second), so every signal is relayed.
const PACING: Duration = Duration::from_millis(21);

#[tokio::main]
async fn main() {
    let app = spawn_app_with(|config| config.ring_timeout_secs = 600).await;
    let admin = app.admin().await;
    let (doctor, doctor_id) = app
        .approved_doctor(&admin, "Dr Relay", profile_input("RELAY-1"))
        .await;
    let mut doctor_ws = app.ws_client(&doctor.access).await;
    doctor_ws
        .execute(
            "on",
            "mutation { setDoctorStatus(status: ONLINE) }",
            json!({}),
        )
        .await;
    let patient = app.register_patient().await;
    let mut patient_ws = app.ws_client(&patient.access).await;
    let call = patient_ws
        .execute(
            "call",
            "mutation($d: ID!) { startCall(input: { doctorId: $d }) { id } }",
            json!({ "d": doctor_id }),
        )
        .await;
    let call_id = call["data"]["startCall"]["id"]
        .as_str()
        .expect("call")
        .to_owned();
    doctor_ws
        .execute(
            "answer",
            "mutation($c: ID!) { answerCall(callId: $c, accept: true) { id } }",
            json!({ "c": call_id }),
        )
        .await;
    doctor_ws
        .subscribe(
            "signals",
            "subscription($c: ID!) { signals(callId: $c) { sdp } }",
            json!({ "c": call_id }),
        )
        .await;
    doctor_ws.sync().await;

    let mut latencies = Vec::with_capacity(SAMPLES);
    for n in 0..SAMPLES {
        let start = Instant::now();
        patient_ws
            .subscribe(
                &format!("s{n}"),
                "mutation($input: SendSignalInput!) { sendSignal(input: $input) }",
                json!({ "input": { "callId": call_id, "kind": "ICE_CANDIDATE", "candidate": { "candidate": format!("candidate:{n} 1 udp 1 10.0.0.1 5000 typ host"), "sdpMid": "0", "sdpMLineIndex": 0 } } }),
            )
            .await;
        doctor_ws.next_data("signals").await;
        latencies.push(start.elapsed());
        tokio::time::sleep(PACING.saturating_sub(start.elapsed())).await;
    }
    latencies.sort();
    let percentile = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize].as_micros();
    println!(
        "signal relay, patient socket to doctor socket, {SAMPLES} ICE candidates: p50 {} µs, p99 {} µs",
        percentile(0.5),
        percentile(0.99)
    );
}
