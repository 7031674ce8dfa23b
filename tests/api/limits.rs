//! Abuse limits: sign-in, sign-up and refresh limits per address and per account, the failed
//! sign-in backoff, X-Forwarded-For from trusted proxies only, WebSocket connections per
//! address, and signal and chat floods. Waits are skipped with the server's clock.

use crate::common::ws::WsClient;
use crate::common::*;
use medilink::config::Config;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const SEND_SIGNAL: &str = "mutation($input: SendSignalInput!) { sendSignal(input: $input) }";
const SEND: &str = "mutation($input: SendMessageInput!) { sendMessage(input: $input) { id } }";
const REFRESH: &str = "mutation($token: String!) { refreshToken(token: $token) { accessToken \
    refreshToken user { id email role } } }";

/// A GraphQL request as if relayed for `forwarded_for` (sent as `X-Forwarded-For`).
async fn graphql_via(app: &TestApp, forwarded_for: &str, query: &str, variables: Value) -> Value {
    app.client
        .post(app.url("/graphql"))
        .header("x-forwarded-for", forwarded_for)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .expect("request sent")
        .json()
        .await
        .expect("JSON body")
}

async fn login_via(app: &TestApp, forwarded_for: &str, email: &str, password: &str) -> Value {
    graphql_via(
        app,
        forwarded_for,
        LOGIN,
        json!({ "input": { "email": email, "password": password } }),
    )
    .await
}

/// `extensions.retryAfter` of a RATE_LIMITED answer (panics on any other answer).
fn retry_after(body: &Value) -> u64 {
    assert_eq!(error_code(body), Some("RATE_LIMITED"), "{body}");
    body["errors"][0]["extensions"]["retryAfter"]
        .as_u64()
        .unwrap_or_else(|| panic!("retryAfter in {body}"))
}

fn seconds(n: u64) -> chrono::Duration {
    chrono::Duration::seconds(i64::try_from(n).unwrap())
}

fn trusting_this_host(config: &mut Config) {
    config.trusted_proxies = "127.0.0.1, 10.0.0.0/8".to_owned().try_into().unwrap();
}

#[tokio::test]
async fn logins_from_one_address_are_limited_before_any_password_check() {
    let app = spawn_app_with(|c| c.limit_login_per_ip = "3/min".parse().unwrap()).await;
    let ann = app.register_patient().await;
    let bob = app.register_patient().await;
    for _ in 0..3 {
        let wrong = app.login(&ann.email, "not the password").await;
        assert_eq!(error_code(&wrong), Some("UNAUTHENTICATED"), "{wrong}");
    }
    let calls = app.db_calls().await;
    let refused = app.login(&ann.email, PASSWORD).await;
    let wait = retry_after(&refused);
    assert!((1..=20).contains(&wait), "one attempt per 20 s: {wait}");
    retry_after(&app.login(&bob.email, PASSWORD).await);
    assert_eq!(
        app.db_calls().await,
        calls,
        "refused before the account was looked up, so before its hash was checked"
    );
    app.clock.shift(seconds(wait));
    let allowed = app.login(&ann.email, PASSWORD).await;
    assert!(allowed.get("errors").is_none(), "{allowed}");
}

#[tokio::test]
async fn failed_logins_back_off_per_account_from_any_address() {
    let app = spawn_app_with(|c| {
        trusting_this_host(c);
        c.login_free_failures = 3;
        c.login_backoff_max_secs = 16;
    })
    .await;
    let ann = app.register_patient().await;
    let unknown = unique_email("nobody");
    let address = std::cell::Cell::new(0);
    let next_address = || {
        address.set(address.get() + 1);
        format!("203.0.113.{}", address.get())
    };
    let fail = |email: String, from: String| {
        let app = &app;
        async move {
            let wrong = login_via(app, &from, &email, "not the password").await;
            assert_eq!(error_code(&wrong), Some("UNAUTHENTICATED"), "{wrong}");
        }
    };
    // Three failures are free; the fourth locks the account for a second.
    for email in [&ann.email, &unknown] {
        for _ in 0..4 {
            fail(email.clone(), next_address()).await;
        }
    }
    app.clock.shift(seconds(1));
    // Each further failure locks for twice as long, up to the cap.
    let mut lock = 2;
    for _ in 0..5 {
        fail(ann.email.clone(), next_address()).await;
        fail(unknown.clone(), next_address()).await;
        // Locked, whatever the address, the password or whether the account exists, and
        // refused before the account is looked up or any hash is checked.
        let calls = app.db_calls().await;
        let right = login_via(&app, &next_address(), &ann.email, PASSWORD).await;
        let wrong = login_via(&app, &next_address(), &ann.email, "not the password").await;
        let no_account = login_via(&app, &next_address(), &unknown, PASSWORD).await;
        assert_eq!(
            app.db_calls().await,
            calls,
            "no lookup, no hash while locked"
        );
        assert_eq!(right["errors"], wrong["errors"]);
        assert_eq!(
            right["errors"][0]["message"],
            no_account["errors"][0]["message"]
        );
        for locked in [&right, &no_account] {
            let wait = retry_after(locked);
            assert!(
                wait == lock || wait + 1 == lock,
                "{wait} s instead of {lock} s"
            );
        }
        app.clock.shift(seconds(lock));
        lock = (lock * 2).min(16);
    }
    assert_eq!(lock, 16, "the last locks were the cap's");

    // After the wait the right password works, and the failures are forgotten.
    let signed_in = login_via(&app, &next_address(), &ann.email, PASSWORD).await;
    assert!(signed_in.get("errors").is_none(), "{signed_in}");
    for _ in 0..3 {
        fail(ann.email.clone(), next_address()).await;
    }
    let again = login_via(&app, &next_address(), &ann.email, PASSWORD).await;
    assert!(again.get("errors").is_none(), "{again}");
}

#[tokio::test]
async fn logins_per_account_are_limited_across_addresses() {
    let app = spawn_app_with(|c| {
        trusting_this_host(c);
        c.limit_login_per_account = "2/min".parse().unwrap();
    })
    .await;
    let ann = app.register_patient().await;
    // The account's email as the users repository normalises it.
    let shouted = format!("  {}  ", ann.email.to_uppercase());
    for address in ["198.51.100.1", "198.51.100.2"] {
        let ok = login_via(&app, address, &shouted, PASSWORD).await;
        assert!(ok.get("errors").is_none(), "{ok}");
    }
    let refused = login_via(&app, "198.51.100.3", &ann.email, PASSWORD).await;
    assert!((1..=30).contains(&retry_after(&refused)));
    let bob = app.register_patient().await;
    let other = login_via(&app, "198.51.100.3", &bob.email, PASSWORD).await;
    assert!(other.get("errors").is_none(), "another account: {other}");
}

#[tokio::test]
async fn forwarded_for_counts_only_from_trusted_proxies() {
    let untrusting = spawn_app_with(|c| c.limit_login_per_ip = "2/min".parse().unwrap()).await;
    let email = unique_email("nobody");
    for address in ["198.51.100.1", "198.51.100.2"] {
        let wrong = login_via(&untrusting, address, &email, PASSWORD).await;
        assert_eq!(error_code(&wrong), Some("UNAUTHENTICATED"), "{wrong}");
    }
    let spoofed = login_via(&untrusting, "198.51.100.3", &email, PASSWORD).await;
    retry_after(&spoofed);

    let trusting = spawn_app_with(|c| {
        trusting_this_host(c);
        c.limit_login_per_ip = "2/min".parse().unwrap();
    })
    .await;
    for _ in 0..2 {
        let wrong = login_via(&trusting, "198.51.100.1", &email, PASSWORD).await;
        assert_eq!(error_code(&wrong), Some("UNAUTHENTICATED"), "{wrong}");
    }
    for same_client in [
        "198.51.100.1",
        // What a client writes itself stays left of what the proxy appended.
        "192.0.2.99, 198.51.100.1",
        // Behind a second trusted proxy.
        "198.51.100.1, 10.1.2.3",
        "198.51.100.1:50312",
    ] {
        let refused = login_via(&trusting, same_client, &email, PASSWORD).await;
        retry_after(&refused);
    }
    let other = login_via(&trusting, "198.51.100.2", &email, PASSWORD).await;
    assert_eq!(error_code(&other), Some("UNAUTHENTICATED"), "{other}");
}

#[tokio::test]
async fn sign_ups_per_address_are_limited() {
    let app = spawn_app_with(|c| {
        trusting_this_host(c);
        c.limit_register_per_ip = "2/h".parse().unwrap();
    })
    .await;
    let register = |email: String| json!({ "input": { "email": email, "password": PASSWORD, "name": "Ann", "role": "PATIENT" } });
    for _ in 0..2 {
        let ok = graphql_via(&app, "198.51.100.1", REGISTER, register(unique_email("p"))).await;
        assert!(ok.get("errors").is_none(), "{ok}");
    }
    let email = unique_email("p");
    let refused = graphql_via(&app, "198.51.100.1", REGISTER, register(email.clone())).await;
    let wait = retry_after(&refused);
    assert!((1..=1800).contains(&wait), "one per 30 min: {wait}");
    assert_eq!(
        error_code(&app.login(&email, PASSWORD).await),
        Some("UNAUTHENTICATED"),
        "no account was created"
    );
    let elsewhere = graphql_via(&app, "198.51.100.2", REGISTER, register(unique_email("p"))).await;
    assert!(elsewhere.get("errors").is_none(), "{elsewhere}");
    app.clock.shift(seconds(wait));
    let later = graphql_via(&app, "198.51.100.1", REGISTER, register(email)).await;
    assert!(later.get("errors").is_none(), "{later}");
}

#[tokio::test]
async fn refreshes_are_limited_per_account_and_per_address() {
    let app = spawn_app_with(|c| {
        trusting_this_host(c);
        c.limit_refresh_per_account = "2/min".parse().unwrap();
        c.limit_refresh_per_ip = "3/min".parse().unwrap();
    })
    .await;
    let ann = app.register_patient().await;
    let mut token = ann.refresh.clone();
    for address in ["198.51.100.1", "198.51.100.2"] {
        let refreshed = graphql_via(&app, address, REFRESH, json!({ "token": token })).await;
        assert!(refreshed.get("errors").is_none(), "{refreshed}");
        token = account(&refreshed["data"]["refreshToken"]).refresh;
    }
    let refused = graphql_via(&app, "198.51.100.3", REFRESH, json!({ "token": token })).await;
    let wait = retry_after(&refused);
    assert!((1..=30).contains(&wait), "{wait}");
    // The refused token was not used up.
    app.clock.shift(seconds(wait));
    let later = graphql_via(&app, "198.51.100.3", REFRESH, json!({ "token": token })).await;
    assert!(later.get("errors").is_none(), "{later}");

    // Guessing tokens from one address.
    for n in 0..3 {
        let guess = graphql_via(
            &app,
            "198.51.100.9",
            REFRESH,
            json!({ "token": format!("guess-{n}") }),
        )
        .await;
        assert_eq!(error_code(&guess), Some("UNAUTHENTICATED"), "{guess}");
    }
    let guess = graphql_via(&app, "198.51.100.9", REFRESH, json!({ "token": "guess" })).await;
    assert!((1..=20).contains(&retry_after(&guess)));
}

/// Opens `/graphql/ws`, as if relayed for `forwarded_for` when given.
async fn connect(
    app: &TestApp,
    forwarded_for: Option<&str>,
) -> Result<WsClient, tungstenite::http::Response<Option<Vec<u8>>>> {
    let mut request = format!("ws://{}/graphql/ws", app.addr)
        .into_client_request()
        .unwrap();
    let headers = request.headers_mut();
    headers.insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    if let Some(address) = forwarded_for {
        headers.insert("x-forwarded-for", address.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(WsClient::new(socket)),
        Err(tungstenite::Error::Http(response)) => Err(*response),
        Err(other) => panic!("cannot connect: {other}"),
    }
}

/// A refused upgrade: 429, `Retry-After` and the JSON error; returns the wait.
fn refused_upgrade(response: &tungstenite::http::Response<Option<Vec<u8>>>) -> u64 {
    assert_eq!(response.status(), 429);
    let header: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body: Value = serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
    assert_eq!(retry_after(&body), header);
    header
}

#[tokio::test]
async fn websocket_connections_per_address_are_capped() {
    let app = spawn_app_with(|c| {
        trusting_this_host(c);
        c.ws_max_connections_per_ip = 2;
    })
    .await;
    let ann = app.register_patient().await;
    let mut first = connect(&app, None).await.expect("first");
    first.init(&ann.access).await;
    let mut second = connect(&app, None).await.expect("second");
    second.init(&ann.access).await;
    let refused = connect(&app, None).await.err().expect("a third is refused");
    assert!(refused_upgrade(&refused) >= 1);
    connect(&app, Some("198.51.100.1"))
        .await
        .expect("another client behind the proxy has places of its own")
        .init(&ann.access)
        .await;

    // A closed socket frees its place once the server has let go of it.
    first.close().await;
    let mut attempts = 0;
    let mut third = loop {
        match connect(&app, None).await {
            Ok(socket) => break socket,
            Err(response) => refused_upgrade(&response),
        };
        attempts += 1;
        assert!(attempts < 200, "the closed socket's place never came back");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    };
    third.init(&ann.access).await;
    second.sync().await;
}

#[tokio::test]
async fn new_websocket_connections_per_address_are_limited() {
    let app = spawn_app_with(|c| c.limit_ws_connects_per_ip = "2/min".parse().unwrap()).await;
    let ann = app.register_patient().await;
    for _ in 0..2 {
        connect(&app, None)
            .await
            .expect("within the rate")
            .init(&ann.access)
            .await;
    }
    let refused = connect(&app, None).await.err().expect("a third is refused");
    let wait = refused_upgrade(&refused);
    assert!((1..=30).contains(&wait), "{wait}");
    app.clock.shift(seconds(wait));
    connect(&app, None)
        .await
        .expect("after the wait")
        .init(&ann.access)
        .await;
}

#[tokio::test]
async fn signal_and_chat_floods_are_told_how_long_to_wait() {
    let app = spawn_app_with(|c| {
        c.limit_signals_per_user = "3/min".parse().unwrap();
        c.limit_chat_per_user = "2/min".parse().unwrap();
        c.ring_timeout_secs = 600;
    })
    .await;
    let admin = app.admin().await;
    let (doctor, doctor_id) = app
        .approved_doctor(&admin, "Dr Flood", profile_input("FLOOD-2"))
        .await;
    let mut doctor_ws = app.ws_client(&doctor.access).await;
    doctor_ws.go_online().await;
    let patient = app.register_patient().await;
    let call = app
        .ok(
            "mutation($doctor: ID!) { startCall(input: { doctorId: $doctor }) { id } }",
            json!({ "doctor": doctor_id }),
            Some(&patient.access),
        )
        .await;
    let signal = json!({ "input": { "callId": call["startCall"]["id"], "kind": "ICE_CANDIDATE",
        "candidate": { "candidate": "candidate:1" } } });
    let mut socket = app.ws_client(&patient.access).await;
    for n in 0..3 {
        let sent = socket
            .execute(&format!("s{n}"), SEND_SIGNAL, signal.clone())
            .await;
        assert_eq!(sent["data"]["sendSignal"], true, "{sent}");
    }
    let flooded = socket.execute("s3", SEND_SIGNAL, signal.clone()).await;
    assert!((1..=20).contains(&retry_after(&flooded)));
    // The budget is the user's: another socket does not bring a fresh one.
    let mut another = app.ws_client(&patient.access).await;
    retry_after(&another.execute("s4", SEND_SIGNAL, signal).await);

    let message = json!({ "input": { "channel": { "lobby": true }, "body": "hello" } });
    for _ in 0..2 {
        app.ok(SEND, message.clone(), Some(&patient.access)).await;
    }
    let chatty = app.graphql(SEND, message, Some(&patient.access)).await;
    assert!((1..=30).contains(&retry_after(&chatty)));
}
