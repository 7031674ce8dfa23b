//! The one shape of every HTTP error outside GraphQL responses: that of a GraphQL error
//! (`{"errors":[{"message","extensions":{"code"}}]}`), so that a client reads both alike.

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, json};

use super::REQUEST_ID;
use crate::error::{AppError, ErrorCode};

/// The media type of every JSON body the HTTP surface sends.
pub(super) const JSON: &str = "application/json; charset=utf-8";

tokio::task_local! {
    /// The id of the request being answered: an INTERNAL error's body gives it, as in GraphQL.
    static CURRENT_REQUEST_ID: String;
}

/// Runs the rest of the request with its id at hand for the errors it may answer with.
pub(super) async fn with_request_id(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    CURRENT_REQUEST_ID.scope(id, next.run(request)).await
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = match self.code() {
            ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::BadUserInput => StatusCode::BAD_REQUEST,
            ErrorCode::Conflict => StatusCode::CONFLICT,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::PaymentRequired => StatusCode::PAYMENT_REQUIRED,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        with_status(status, &self)
    }
}

/// `error` answered with `status` rather than its code's: GraphQL-over-HTTP transport errors
/// are all BAD_USER_INPUT, but 405, 413 or 415 as HTTP has them.
pub(super) fn with_status(status: StatusCode, error: &AppError) -> Response {
    let mut extensions = Map::new();
    extensions.insert("code".into(), error.code().as_str().into());
    if let Some(field) = error.field() {
        extensions.insert("field".into(), field.into());
    }
    if let Some(seconds) = error.retry_after() {
        extensions.insert("retryAfter".into(), seconds.into());
    }
    if error.code() == ErrorCode::Internal {
        let id = CURRENT_REQUEST_ID
            .try_with(Clone::clone)
            .unwrap_or_default();
        extensions.insert("requestId".into(), id.into());
    }
    let body = json!({ "errors": [{ "message": error.message(), "extensions": extensions }] });
    let mut response = (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(JSON))],
        body.to_string(),
    )
        .into_response();
    if let Some(seconds) = error.retry_after() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}
