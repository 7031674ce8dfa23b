//! A fake Stripe API on port 0: it records every request (path, idempotency key, form fields),
//! replays the stored answer for a repeated idempotency key as Stripe does, and answers with
//! objects complete enough for the Stripe crates' strict parsing.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use medilink::config::{Config, Secret};
use serde_json::{Value, json};

pub const SECRET_KEY: &str = "sk_test_medilink";
pub const WEBHOOK_SECRET: &str = "whsec_medilink_test";
pub const ORIGIN: &str = "https://app.example.com";

#[derive(Clone, Debug)]
pub struct Recorded {
    pub path: String,
    pub idempotency_key: Option<String>,
    pub authorization: Option<String>,
    pub form: Vec<(String, String)>,
}

impl Recorded {
    /// The value of a form field, by its bracketed name (`payment_intent_data[application_fee_amount]`).
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Inner {
    requests: Vec<Recorded>,
    replies: HashMap<String, Value>,
    next_id: u64,
    refund_status: Option<String>,
    refunds_down: bool,
}

#[derive(Clone, Default)]
pub struct FakeStripe {
    inner: Arc<Mutex<Inner>>,
    pub addr: Option<SocketAddr>,
}

impl FakeStripe {
    pub async fn start() -> Self {
        let mut fake = FakeStripe::default();
        let app = Router::new()
            .route("/v1/{*path}", post(handle))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        fake.addr = Some(listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        fake
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr.expect("started"))
    }

    /// Turns payments on in `config`, against this fake, with `ORIGIN` as the public origin.
    pub fn configure(&self, config: &mut Config) {
        config.stripe_secret_key = Some(Secret::new(SECRET_KEY));
        config.stripe_webhook_secret = Some(Secret::new(WEBHOOK_SECRET));
        config.stripe_api_base = Some(self.base_url());
        config.public_origins = ORIGIN.into();
    }

    /// Requests received on `path` (such as `/v1/refunds`), oldest first.
    pub fn requests(&self, path: &str) -> Vec<Recorded> {
        let inner = self.inner.lock().unwrap();
        inner
            .requests
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Makes refund requests fail with 500 (`true`) or work again (`false`).
    pub fn set_refunds_down(&self, down: bool) {
        self.inner.lock().unwrap().refunds_down = down;
    }

    /// What refunds report as their status when created (Stripe: usually `pending` for cards).
    pub fn set_refund_status(&self, status: &str) {
        self.inner.lock().unwrap().refund_status = Some(status.to_owned());
    }
}

async fn handle(
    State(fake): State<FakeStripe>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let recorded = Recorded {
        path: format!("/v1/{path}"),
        idempotency_key: header("idempotency-key"),
        authorization: header("authorization"),
        form,
    };
    let mut inner = fake.inner.lock().unwrap();
    inner.requests.push(recorded.clone());
    if path == "refunds" && inner.refunds_down {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({ "error": { "type": "api_error", "message": "down" } })),
        )
            .into_response();
    }
    if let Some(key) = &recorded.idempotency_key
        && let Some(reply) = inner.replies.get(key)
    {
        return (StatusCode::OK, axum::Json(reply.clone())).into_response();
    }
    inner.next_id += 1;
    let n = inner.next_id;
    let now = chrono::Utc::now().timestamp();
    let reply = match path.as_str() {
        "accounts" => json!({ "id": format!("acct_fake{n}"), "object": "account",
            "charges_enabled": false, "payouts_enabled": false }),
        "account_links" => json!({ "object": "account_link", "created": now,
            "expires_at": now + 300, "url": format!("https://connect.stripe.test/setup/{n}") }),
        "checkout/sessions" => {
            let expires_at: i64 = recorded
                .field("expires_at")
                .and_then(|v| v.parse().ok())
                .unwrap_or(now + 1800);
            json!({
                "id": format!("cs_test_{n}"), "object": "checkout.session",
                "automatic_tax": { "enabled": false }, "created": now, "custom_fields": [],
                "custom_text": {}, "expires_at": expires_at, "livemode": false,
                "mode": "payment", "payment_method_types": ["card"], "payment_status": "unpaid",
                "shipping_options": [], "status": "open",
                "url": format!("https://checkout.stripe.test/c/pay/cs_test_{n}"),
            })
        }
        "refunds" => json!({ "id": format!("re_fake{n}"), "object": "refund",
            "amount": 5000, "created": now, "currency": "usd",
            "status": inner.refund_status.clone().unwrap_or_else(|| "pending".into()),
            "payment_intent": recorded.field("payment_intent") }),
        _ => {
            return (
                StatusCode::NOT_FOUND,
                axum::Json(json!({ "error": { "type": "invalid_request_error",
                "message": "Unrecognized request URL" } })),
            )
                .into_response();
        }
    };
    if let Some(key) = recorded.idempotency_key {
        inner.replies.insert(key, reply.clone());
    }
    (StatusCode::OK, axum::Json(reply)).into_response()
}

/// A signed delivery: the body and its `Stripe-Signature`, signed at `timestamp` (now if `None`).
pub fn signed(event: &Value, timestamp: Option<i64>) -> (String, String) {
    let body = event.to_string();
    let signature = stripe_webhook::Webhook::generate_test_header(&body, WEBHOOK_SECRET, timestamp);
    (body, signature)
}

/// An event envelope as Stripe sends it.
pub fn event(id: &str, kind: &str, object: Value) -> Value {
    json!({
        "id": id, "object": "event", "api_version": "2025-11-17.clover",
        "created": chrono::Utc::now().timestamp(), "livemode": false, "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "type": kind, "data": { "object": object }
    })
}
