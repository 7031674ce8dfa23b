//! `POST /webhooks/stripe`: Stripe's events, verified over the raw body before anything else.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::HttpState;
use crate::error::AppError;
use crate::payments::service::{self, Rejection};

pub async fn stripe(State(state): State<HttpState>, headers: HeaderMap, body: Bytes) -> Response {
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    let error = match service::webhook(&state.app, &body, signature).await {
        Ok(()) => return (StatusCode::OK, axum::Json(json!({ "received": true }))).into_response(),
        Err(Rejection::PaymentsOff) => {
            AppError::not_found("payments are not enabled on this server")
        }
        Err(Rejection::Refused(why)) => {
            tracing::warn!(reason = %why, "Stripe webhook refused");
            AppError::bad_request(why)
        }
        // A 5xx makes Stripe deliver the event again; the cause is logged by the service.
        Err(Rejection::Failed) => {
            AppError::logged_internal("the event could not be applied; it will be delivered again")
        }
    };
    error.into_response()
}
