//! One way in for identity, one way out for errors: a token that does not hold is refused
//! wherever it is read (never taken for anonymous), and every HTTP error outside GraphQL
//! responses has the shape of a GraphQL error.

use crate::common::stripe::{FakeStripe, signed};
use crate::common::*;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const DOCTORS: &str = "{ doctors(first: 100) { edges { node { id } } } }";
const DOCTOR: &str = "query($id: ID!) { doctor(id: $id) { id user { name } } }";

/// A signed access token for `user` that expired a minute ago.
fn expired_token(app: &TestApp, user: &Account) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = json!({ "sub": user.id, "role": "PATIENT", "tv": 0, "iat": now - 3600,
        "exp": now - 60, "iss": "medilink" });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(app.jwt_secret.as_bytes()),
    )
    .expect("token")
}

/// Tokens that are present but do not hold, with what each is: garbage, expired (signed with the
/// server's secret), and revoked (its user logged out).
async fn bad_tokens(app: &TestApp) -> Vec<(&'static str, String)> {
    let expired = expired_token(app, &app.register_patient().await);
    let revoked = app.register_patient().await;
    app.ok("mutation { logout }", json!({}), Some(&revoked.access))
        .await;
    vec![
        ("garbage", "not.a.jwt".to_owned()),
        ("expired", expired),
        ("revoked", revoked.access),
    ]
}

/// Asserts that `body` is exactly `{"errors":[{"message","extensions":{"code", ..}}]}` with
/// `code`, and that `extensions` holds nothing but the code and `more`.
fn assert_error_shape(body: &Value, code: &str, more: &[&str]) {
    let top: Vec<_> = body.as_object().expect("an object").keys().collect();
    assert_eq!(top, ["errors"], "{body}");
    let errors = body["errors"].as_array().expect("an array");
    assert_eq!(errors.len(), 1, "{body}");
    let mut keys: Vec<_> = errors[0].as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["extensions", "message"], "{body}");
    assert!(
        !errors[0]["message"].as_str().expect("a message").is_empty(),
        "{body}"
    );
    let mut extensions: Vec<_> = errors[0]["extensions"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    extensions.sort_unstable();
    let mut expected = vec!["code"];
    expected.extend(more);
    expected.sort_unstable();
    assert_eq!(extensions, expected, "{body}");
    assert_eq!(error_code(body), Some(code), "{body}");
}

/// The status and JSON body of an HTTP error, checking it says it is JSON.
async fn error_body(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("application/json"),
        "{status}: {content_type}"
    );
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn a_token_that_does_not_hold_is_unauthenticated_on_public_queries_too() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (_, id) = app
        .approved_doctor(&admin, "Dr Public", profile_input("ID-1"))
        .await;
    let patient = app.register_patient().await;

    for token in [None, Some(patient.access.as_str())] {
        let listed = app.ok(DOCTORS, json!({}), token).await;
        assert_eq!(listed["doctors"]["edges"][0]["node"]["id"], id.as_str());
        let one = app.ok(DOCTOR, json!({ "id": id }), token).await;
        assert_eq!(one["doctor"]["user"]["name"], "Dr Public");
    }

    for (what, token) in bad_tokens(&app).await {
        for (query, variables) in [(DOCTORS, json!({})), (DOCTOR, json!({ "id": id }))] {
            let body = app.graphql(query, variables, Some(&token)).await;
            assert_eq!(error_code(&body), Some("UNAUTHENTICATED"), "{what}: {body}");
            assert_eq!(body["data"], Value::Null, "{what}: nothing shown: {body}");
        }
    }
}

#[tokio::test]
async fn the_error_says_why_the_token_does_not_hold() {
    let app = spawn_app().await;
    for (what, token) in bad_tokens(&app).await {
        let body = app.graphql(DOCTORS, json!({}), Some(&token)).await;
        let expected = match what {
            "garbage" => "invalid",
            "expired" => "expired",
            _ => "session has ended",
        };
        assert!(error_message(&body).contains(expected), "{what}: {body}");
    }
}

#[tokio::test]
async fn licence_downloads_refuse_in_the_shared_error_shape() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let doctor = app.register_doctor().await;
    let patient = app.register_patient().await;
    let submitted = app
        .submit_profile(&doctor.access, profile_input("ID-2"), pdf("mine"))
        .await;
    let id = submitted["data"]["submitDoctorProfile"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = app.url(&format!("/files/licences/{id}"));

    let (status, body) = error_body(app.client.get(&url).send().await.unwrap()).await;
    assert_eq!(status, 401);
    assert_error_shape(&body, "UNAUTHENTICATED", &[]);
    for (what, token) in bad_tokens(&app).await {
        let response = app.client.get(&url).bearer_auth(&token).send().await;
        let (status, body) = error_body(response.unwrap()).await;
        assert_eq!(status, 401, "{what}");
        assert_error_shape(&body, "UNAUTHENTICATED", &[]);
    }
    let response = app.client.get(&url).bearer_auth(&patient.access).send();
    let (status, body) = error_body(response.await.unwrap()).await;
    assert_eq!(status, 403);
    assert_error_shape(&body, "FORBIDDEN", &[]);
    let unknown = app.url(&format!("/files/licences/{}", uuid::Uuid::now_v7()));
    let response = app.client.get(&unknown).bearer_auth(&admin.access).send();
    let (status, body) = error_body(response.await.unwrap()).await;
    assert_eq!(status, 404);
    assert_error_shape(&body, "NOT_FOUND", &[]);
    let malformed = app.url("/files/licences/not-an-id");
    let response = app.client.get(&malformed).bearer_auth(&admin.access).send();
    let (status, body) = error_body(response.await.unwrap()).await;
    assert_eq!(status, 404);
    assert_error_shape(&body, "NOT_FOUND", &[]);

    app.db.close().await;
    let response = app
        .client
        .get(&url)
        .bearer_auth(&admin.access)
        .header("x-request-id", "licence-42")
        .send();
    let (status, body) = error_body(response.await.unwrap()).await;
    assert_eq!(status, 500);
    assert_error_shape(&body, "INTERNAL", &["requestId"]);
    assert_eq!(body["errors"][0]["extensions"]["requestId"], "licence-42");
    assert_eq!(error_message(&body), "internal server error");
}

#[tokio::test]
async fn webhook_refusals_have_the_shared_error_shape() {
    let off = spawn_app().await;
    let response = off
        .client
        .post(off.url("/webhooks/stripe"))
        .header("content-type", "application/json")
        .body("{}")
        .send();
    let (status, body) = error_body(response.await.unwrap()).await;
    assert_eq!(status, 404);
    assert_error_shape(&body, "NOT_FOUND", &[]);

    let fake = FakeStripe::start().await;
    let app = spawn_app_with(|c| fake.configure(c)).await;
    let response = app
        .client
        .post(app.url("/webhooks/stripe"))
        .header("content-type", "application/json")
        .header("stripe-signature", "t=1,v1=forged")
        .body("{}")
        .send();
    let (status, body) = error_body(response.await.unwrap()).await;
    assert_eq!(status, 400);
    assert_error_shape(&body, "BAD_USER_INPUT", &[]);

    // A verified event that cannot be applied is a 500, for Stripe to deliver it again.
    let event = crate::common::stripe::event(
        "evt_down",
        "checkout.session.expired",
        json!({ "id": "cs_test_down", "object": "checkout.session",
            "metadata": { "appointment_id": uuid::Uuid::now_v7() } }),
    );
    let (payload, signature) = signed(&event, None);
    app.db.close().await;
    let response = app
        .client
        .post(app.url("/webhooks/stripe"))
        .header("content-type", "application/json")
        .header("stripe-signature", signature)
        .header("x-request-id", "webhook-42")
        .body(payload)
        .send();
    let (status, body) = error_body(response.await.unwrap()).await;
    assert_eq!(status, 500);
    assert_error_shape(&body, "INTERNAL", &["requestId"]);
    assert_eq!(body["errors"][0]["extensions"]["requestId"], "webhook-42");
}

#[tokio::test]
async fn a_refused_socket_upgrade_has_the_shared_error_shape() {
    let app = spawn_app_with(|c| c.ws_max_connections_per_ip = 1).await;
    let _open = app.ws_raw().await;
    let mut request = format!("ws://{}/graphql/ws", app.addr)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let response = match tokio_tungstenite::connect_async(request).await {
        Err(tungstenite::Error::Http(response)) => response,
        other => panic!("the second socket was not refused: {:?}", other.map(|_| ())),
    };
    assert_eq!(response.status(), 429);
    let header: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body: Value = serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
    assert_error_shape(&body, "RATE_LIMITED", &["retryAfter"]);
    assert_eq!(body["errors"][0]["extensions"]["retryAfter"], header);
}

#[tokio::test]
async fn graphql_transport_errors_have_the_shared_error_shape() {
    let app = spawn_app_with(|c| c.max_body_bytes = 1024).await;
    let url = app.url("/graphql");
    let query = json!({ "query": "{ __typename }" }).to_string();

    let response = app.client.post(&url).header("content-type", "text/plain");
    let (status, body) = error_body(response.body(query.clone()).send().await.unwrap()).await;
    assert_eq!(status, 415);
    assert_error_shape(&body, "BAD_USER_INPUT", &[]);

    let huge = json!({ "query": format!("{{ __typename }} #{}", "x".repeat(2048)) });
    let (status, body) = error_body(app.client.post(&url).json(&huge).send().await.unwrap()).await;
    assert_eq!(status, 413);
    assert_error_shape(&body, "BAD_USER_INPUT", &[]);

    let response = app.client.put(&url).body(query).send().await.unwrap();
    assert_eq!(response.headers()["allow"], "GET, POST");
    let (status, body) = error_body(response).await;
    assert_eq!(status, 405);
    assert_error_shape(&body, "BAD_USER_INPUT", &[]);

    let response = app.client.post(&url).json(&json!({ "variables": {} }));
    let (status, body) = error_body(response.send().await.unwrap()).await;
    assert_eq!(status, 400);
    assert_error_shape(&body, "BAD_USER_INPUT", &[]);
}

/// A token this instance has checked opens further sockets without reading the account again,
/// until its sessions end: then it is refused at once, on a socket and over HTTP.
#[tokio::test]
async fn a_checked_token_is_remembered_until_its_sessions_end() {
    let app = spawn_app_with(|config| {
        // No background sweep may read the database while the test counts its calls.
        config.reminder_sweep_secs = 3600;
        config.payment_sweep_secs = 3600;
    })
    .await;
    let (ann, bob) = (app.register_patient().await, app.register_patient().await);
    app.ws_client(&ann.access).await;
    let before = app.metric("medilink_db_calls_total").await;
    for _ in 0..5 {
        app.ws_client(&ann.access).await;
    }
    assert_eq!(app.metric("medilink_db_calls_total").await, before);

    app.ok("mutation { logout }", json!({}), Some(&ann.access))
        .await;
    assert_eq!(app.ws_refused(&ann.access).await, 4403);
    let me = app
        .graphql("{ me { id } }", json!({}), Some(&ann.access))
        .await;
    assert_eq!(error_code(&me), Some("UNAUTHENTICATED"), "{me}");

    app.ws_client(&bob.access).await;
    let admin = app.admin().await;
    let block = "mutation($id: ID!) { blockUser(id: $id) { id } }";
    app.ok(block, json!({ "id": bob.id }), Some(&admin.access))
        .await;
    assert_eq!(app.ws_refused(&bob.access).await, 4403);
}
