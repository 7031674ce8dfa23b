//! `POST /webhooks/stripe`: Stripe's events, verified over the raw body before anything else.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::HttpState;
use crate::payments::service::{self, Rejection};

pub async fn stripe(State(state): State<HttpState>, headers: HeaderMap, body: Bytes) -> Response {
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    match service::webhook(&state.app, &body, signature).await {
        Ok(()) => (StatusCode::OK, axum::Json(json!({ "received": true }))).into_response(),
        Err(Rejection::PaymentsOff) => refuse(
            StatusCode::NOT_FOUND,
            "payments are not enabled on this server",
        ),
        Err(Rejection::Refused(why)) => {
            tracing::warn!(reason = %why, "Stripe webhook refused");
            refuse(StatusCode::BAD_REQUEST, &why)
        }
        Err(Rejection::Failed) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the event could not be applied; it will be delivered again",
        ),
    }
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}
