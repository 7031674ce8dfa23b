//! The socket serves `sendSignal` and `signals` in their plainest form without async-graphql's
//! executor (the fast path, `calls::socket`). Whatever the input and the selection, both paths
//! must write the same bytes: generated inputs (valid and not) and selections, each sent through
//! both, compared frame by frame.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use proptest::prelude::*;
use proptest::test_runner::{Config as Cases, TestRunner};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::common::ws::{WsClient, accept_call, start_call};
use crate::common::*;

const SEND_PLAIN: &str = "mutation($input: SendSignalInput!) { sendSignal(input: $input) }";
/// A directive, which only the executor serves.
const SEND_EXECUTED: &str =
    "mutation($input: SendSignalInput!) { sendSignal(input: $input) @include(if: true) }";
const CALL_EVENTS: &str = "subscription { callEvents { kind } }";
const FAST_PATH: &str = "medilink_websocket_fast_path_operations_total";

/// A frame of the protocol with its payload as the server wrote it.
#[derive(Deserialize)]
struct Frame<'a> {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(borrow)]
    payload: Option<&'a RawValue>,
}

fn frame(text: &str) -> (String, String, String) {
    let frame: Frame = serde_json::from_str(text).expect("a protocol message");
    let payload = frame
        .payload
        .map(|p| p.get().to_owned())
        .unwrap_or_default();
    (frame.id, frame.kind, payload)
}

fn aliased(fields: Vec<(&'static str, Option<&'static str>)>) -> String {
    let fields = fields.into_iter().map(|(field, alias)| match alias {
        Some(alias) => format!("{alias}: {field}"),
        None => field.to_owned(),
    });
    fields.collect::<Vec<_>>().join(" ")
}

fn alias() -> impl Strategy<Value = Option<&'static str>> {
    prop::option::weighted(0.3, prop::sample::select(vec!["a", "b", "kind", "sdp"]))
}

/// A selection of `Signal`, aliases and repeats included; the repeats the fast path leaves to
/// the executor.
fn signal_selection() -> impl Strategy<Value = String> {
    let candidate = prop::sample::subsequence(
        vec![
            "__typename",
            "candidate",
            "sdpMid",
            "sdpMLineIndex",
            "usernameFragment",
        ],
        1..=5,
    )
    .prop_shuffle()
    .prop_flat_map(|fields| {
        let n = fields.len();
        (Just(fields), prop::collection::vec(alias(), n))
    })
    .prop_map(|(fields, aliases)| {
        format!(
            "candidate {{ {} }}",
            aliased(fields.into_iter().zip(aliases).collect())
        )
    });
    let leaves = prop::sample::subsequence(
        vec![
            "__typename",
            "callId",
            "from",
            "kind",
            "sdp",
            "audioEnabled",
            "videoEnabled",
            "at",
        ],
        0..=8,
    );
    (leaves, prop::option::of(candidate), any::<bool>())
        .prop_flat_map(|(leaves, candidate, candidate_first)| {
            let n = leaves.len();
            (
                Just((leaves, candidate, candidate_first)),
                prop::collection::vec(alias(), n),
            )
        })
        .prop_filter("a selection is not empty", |((leaves, candidate, _), _)| {
            !leaves.is_empty() || candidate.is_some()
        })
        .prop_map(|((leaves, candidate, candidate_first), aliases)| {
            let leaves = aliased(leaves.into_iter().zip(aliases).collect());
            match candidate {
                Some(c) if candidate_first => format!("{c} {leaves}"),
                Some(c) => format!("{leaves} {c}"),
                None => leaves,
            }
        })
}

/// Present with one of `values`, or absent (`None`).
fn field(values: impl Strategy<Value = Value>) -> impl Strategy<Value = Option<Value>> {
    prop::option::weighted(0.6, values)
}

fn text() -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => "(?s)[a-z0-9 =:\"\\\\/\\x00-\\x1f\u{e9}\u{2028}\u{1F600}]{0,24}".prop_map(Value::from),
        1 => Just(Value::from("x".repeat(70 * 1024))),
        1 => Just(Value::Null),
        1 => any::<i32>().prop_map(Value::from),
    ]
}

fn candidate() -> impl Strategy<Value = Value> {
    let index = prop_oneof![
        any::<i16>().prop_map(Value::from),
        Just(json!(4_294_967_296_u64)),
        Just(json!(1.5)),
        Just(json!("1")),
        Just(Value::Null),
    ];
    let extra = prop::option::weighted(0.05, Just(json!(1)));
    (
        field(text()),
        field(text()),
        field(index),
        field(text()),
        extra,
    )
        .prop_map(|(candidate, sdp_mid, index, fragment, extra)| {
            let mut object = serde_json::Map::new();
            for (key, value) in [
                ("candidate", candidate),
                ("sdpMid", sdp_mid),
                ("sdpMLineIndex", index),
                ("usernameFragment", fragment),
                ("port", extra),
            ] {
                if let Some(value) = value {
                    object.insert(key.into(), value);
                }
            }
            Value::Object(object)
        })
}

/// `SendSignalInput` as a client might send it: mostly what a browser sends, often not.
fn signal_input(call_id: String) -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => well_formed(call_id.clone()),
        2 => anything(call_id),
    ]
}

/// An input of the right shape for its kind, values drawn widely (texts with escapes, NUL,
/// 70 KiB), so that the service still refuses some.
fn well_formed(call_id: String) -> impl Strategy<Value = Value> {
    let text = "(?s)[a-z0-9 =:\"\\\\/\\x00-\\x1f\u{e9}\u{2028}\u{1F600}]{0,24}";
    let candidate = (text, prop::option::of(text), prop::option::of(any::<u16>()), prop::option::of(text))
        .prop_map(|(candidate, sdp_mid, index, fragment)| {
            json!({ "candidate": candidate, "sdpMid": sdp_mid, "sdpMLineIndex": index, "usernameFragment": fragment })
        });
    let sdp_kind = prop::sample::select(vec!["OFFER", "ANSWER", "RENEGOTIATE"]);
    prop_oneof![
        (sdp_kind, text).prop_map(|(kind, sdp)| json!({ "kind": kind, "sdp": sdp })),
        candidate.prop_map(|c| json!({ "kind": "ICE_CANDIDATE", "candidate": c })),
        (
            prop::option::of(any::<bool>()),
            prop::option::of(any::<bool>())
        )
            .prop_map(
                |(a, v)| json!({ "kind": "MEDIA_STATE", "audioEnabled": a, "videoEnabled": v })
            ),
    ]
    .prop_map(move |mut input| {
        input["callId"] = Value::from(call_id.as_str());
        input
    })
}

/// Any mix of fields, types and values.
fn anything(call_id: String) -> impl Strategy<Value = Value> {
    let call = prop_oneof![
        8 => Just(Value::from(call_id)),
        1 => Just(json!("nope")),
        1 => Just(json!(uuid::Uuid::now_v7().to_string())),
        1 => Just(json!(7)),
        1 => Just(Value::Null),
    ];
    let kind = prop_oneof![
        8 => prop::sample::select(vec!["OFFER", "ANSWER", "ICE_CANDIDATE", "RENEGOTIATE", "MEDIA_STATE"]).prop_map(Value::from),
        1 => prop::sample::select(vec!["SHOUT", "offer", ""]).prop_map(Value::from),
        1 => Just(json!(3)),
    ];
    let flag = prop_oneof![
        any::<bool>().prop_map(Value::from),
        Just(Value::Null),
        Just(json!("yes"))
    ];
    (
        field(call),
        field(kind),
        field(text()),
        field(prop_oneof![4 => candidate(), 1 => Just(Value::Null), 1 => Just(json!("c"))]),
        field(flag.clone()),
        field(flag),
        prop::option::weighted(0.05, Just(json!(1))),
    )
        .prop_map(|(call, kind, sdp, candidate, audio, video, extra)| {
            let mut object = serde_json::Map::new();
            for (key, value) in [
                ("callId", call),
                ("kind", kind),
                ("sdp", sdp),
                ("candidate", candidate),
                ("audioEnabled", audio),
                ("videoEnabled", video),
                ("extra", extra),
            ] {
                if let Some(value) = value {
                    object.insert(key.into(), value);
                }
            }
            Value::Object(object)
        })
}

/// Sends `input` as operation `id` and returns the type and raw payload of its answer: `next`
/// (then `complete`) or `error`.
async fn send(socket: &mut WsClient, id: &str, query: &str, input: &Value) -> (String, String) {
    socket.subscribe(id, query, json!({ "input": input })).await;
    let (answered, kind, payload) = frame(&socket.next_text().await);
    assert_eq!(answered, id, "{payload}");
    if kind == "next" {
        let (completed, done, _) = frame(&socket.next_text().await);
        assert_eq!((completed.as_str(), done.as_str()), (id, "complete"));
    }
    (kind, payload)
}

/// Makes sure the operations sent so far on `socket` have started, as `WsClient::sync` does,
/// and returns what they answered meanwhile (a subscription refused at its start), raw.
async fn started(socket: &mut WsClient, id: &str) -> HashMap<String, (String, String)> {
    socket.subscribe(id, "{ __typename }", json!({})).await;
    let mut answered = HashMap::new();
    loop {
        let (from, kind, payload) = frame(&socket.next_text().await);
        if from == id {
            if kind == "complete" {
                return answered;
            }
        } else {
            // The first answer; a refused subscription's `complete` follows it.
            answered.entry(from).or_insert((kind, payload));
        }
    }
}

/// The first answer of each of `ids`, raw (a refused subscription's `complete` follows it).
async fn first_answers(socket: &mut WsClient, ids: &[&str]) -> HashMap<String, (String, String)> {
    let mut answered = HashMap::new();
    while ids.iter().any(|id| !answered.contains_key(*id)) {
        let (from, kind, payload) = frame(&socket.next_text().await);
        answered.entry(from).or_insert((kind, payload));
    }
    answered
}

/// The next `count` frames, payloads grouped by operation, in order.
async fn frames(socket: &mut WsClient, count: usize) -> HashMap<String, Vec<String>> {
    let mut by_operation: HashMap<String, Vec<String>> = HashMap::new();
    for _ in 0..count {
        let (id, kind, payload) = frame(&socket.next_text().await);
        assert_eq!(kind, "next", "{id}: {payload}");
        by_operation.entry(id).or_default().push(payload);
    }
    by_operation
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_paths_write_the_same_bytes_for_any_signal_and_selection() {
    let app = spawn_app_with(|c| {
        c.ring_timeout_secs = 600;
        c.limit_signals_per_user = "100000/s".parse().unwrap();
    })
    .await;
    let admin = app.admin().await;
    let (_, doctor_id, mut doctor_ws) = app.online_doctor(&admin, "PATHS-1").await;
    let patient = app.register_patient().await;
    let mut patient_ws = app.ws_client(&patient.access).await;
    for socket in [&mut doctor_ws, &mut patient_ws] {
        socket.subscribe("events", CALL_EVENTS, json!({})).await;
        socket.sync().await;
    }
    let call_id = start_call(&mut patient_ws, &mut doctor_ws, &doctor_id).await;
    accept_call(&mut doctor_ws, &mut patient_ws, &call_id).await;
    let fast_before = app.metric(FAST_PATH).await;

    let runtime = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(Cases {
        cases: 96,
        failure_persistence: None,
        ..Cases::default()
    });
    let cases = (signal_selection(), signal_input(call_id.clone()));
    let sockets = RefCell::new((doctor_ws, patient_ws));
    let (runs, relayed) = (Cell::new(0), Cell::new(0_u64));
    tokio::task::block_in_place(|| {
        runner
            .run(&cases, |(selection, input)| {
                let n = runs.get() + 1;
                runs.set(n);
                let (plain, executed) = (format!("p{n}"), format!("e{n}"));
                // Padded so that every token sits at the same column in both: errors give positions.
                let subscription = format!("subscription($id: ID!) {{ signals(callId: $id) {{                 {selection}   }} }}");
                let through_fragment = format!("subscription($id: ID!) {{ signals(callId: $id) {{ ... on Signal {{ {selection} }} }} }}");
                let (doctor_ws, patient_ws) = &mut *sockets.borrow_mut();
                runtime.block_on(async {
                    doctor_ws.subscribe(&plain, &subscription, json!({ "id": call_id })).await;
                    doctor_ws.subscribe(&executed, &through_fragment, json!({ "id": call_id })).await;
                    let refused = started(doctor_ws, &format!("s{n}")).await;
                    // Only a selection the executor refuses (repeated response keys) is refused;
                    // the executor words that alone, and reports it twice through a fragment.
                    prop_assert_eq!(refused.contains_key(&plain), refused.contains_key(&executed), "{}", selection);

                    let fast = send(patient_ws, &format!("sp{n}"), SEND_PLAIN, &input).await;
                    let slow = send(patient_ws, &format!("se{n}"), SEND_EXECUTED, &input).await;
                    prop_assert_eq!(&fast, &slow, "sendSignal({})", input);
                    if fast.1 == r#"{"data":{"sendSignal":true}}"# {
                        relayed.set(relayed.get() + 1);
                        if refused.is_empty() {
                            let delivered = frames(doctor_ws, 4).await;
                            prop_assert_eq!(&delivered[&plain], &delivered[&executed], "{}", selection);
                            prop_assert_eq!(delivered[&plain].len(), 2);
                        }
                    }
                    for id in [&plain, &executed] {
                        doctor_ws.send(json!({ "id": id, "type": "complete" })).await;
                    }
                    Ok(())
                })
            })
            .expect("both paths answer alike");
    });
    let (runs, relayed) = (runs.get(), relayed.get());
    // Not a comparison of the executor with itself: the plain forms took the fast path.
    assert!(relayed > 20, "only {relayed} of {runs} inputs were relayed");
    let fast = app.metric(FAST_PATH).await - fast_before;
    assert!(
        fast >= relayed,
        "{fast} fast-path operations for {relayed} relayed signals"
    );
}

/// A `signals` subscription refused at its start, and one ended by the call's end, read the
/// same on both paths.
#[tokio::test]
async fn both_paths_refuse_and_end_a_subscription_alike() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (_, doctor_id, mut doctor_ws) = app.online_doctor(&admin, "PATHS-2").await;
    let patient = app.register_patient().await;
    let mut patient_ws = app.ws_client(&patient.access).await;
    for socket in [&mut doctor_ws, &mut patient_ws] {
        socket.subscribe("events", CALL_EVENTS, json!({})).await;
        socket.sync().await;
    }
    let call_id = start_call(&mut patient_ws, &mut doctor_ws, &doctor_id).await;
    accept_call(&mut doctor_ws, &mut patient_ws, &call_id).await;
    let stranger = app.register_patient().await;
    let mut stranger_ws = app.ws_client(&stranger.access).await;
    let plain = "subscription($id: ID!) { signals(callId: $id) {                 kind   } }";
    let executed = "subscription($id: ID!) { signals(callId: $id) { ... on Signal { kind } } }";

    let unknown = uuid::Uuid::now_v7().to_string();
    for (n, (by_stranger, id)) in [(false, "nope"), (false, &unknown), (true, &call_id)]
        .into_iter()
        .enumerate()
    {
        let socket = if by_stranger {
            &mut stranger_ws
        } else {
            &mut patient_ws
        };
        socket
            .subscribe(&format!("p{n}"), plain, json!({ "id": id }))
            .await;
        socket
            .subscribe(&format!("e{n}"), executed, json!({ "id": id }))
            .await;
        // Refusing may wait for the database, so read until both have answered.
        let refused = first_answers(socket, &[&format!("p{n}"), &format!("e{n}")]).await;
        let (kind, payload) = &refused[&format!("p{n}")];
        assert_eq!(kind, "next", "{payload}");
        assert!(payload.contains(r#""errors""#), "{payload}");
        assert_eq!(refused[&format!("p{n}")], refused[&format!("e{n}")]);
    }

    doctor_ws
        .subscribe("plain", plain, json!({ "id": call_id }))
        .await;
    doctor_ws
        .subscribe("executed", executed, json!({ "id": call_id }))
        .await;
    doctor_ws.sync().await;
    patient_ws
        .execute(
            "end",
            "mutation($id: ID!) { endCall(callId: $id) { status } }",
            json!({ "id": call_id }),
        )
        .await;
    for id in ["plain", "executed"] {
        assert_eq!(doctor_ws.message_for(id).await["type"], "complete");
    }
}
