//! `GET /metrics` in the Prometheus text format (version 0.0.4).

use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::calls;
use crate::state::AppState;

/// How long a scrape waits for the count of live calls: with the pool exhausted it would
/// otherwise wait as long as a request does, and the pool figures are wanted most then.
const CALLS_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn metrics(State(state): State<AppState>) -> Response {
    let pool = state.db.pool_stats();
    let calls = match tokio::time::timeout(CALLS_TIMEOUT, calls::service::live_calls(&state)).await
    {
        Ok(Ok(calls)) => Some(calls),
        Ok(Err(error)) => {
            tracing::warn!(
                error = error.message(),
                "cannot count live calls for /metrics"
            );
            None
        }
        Err(_) => {
            tracing::warn!("counting live calls for /metrics timed out");
            None
        }
    };
    match state.metrics.render(pool, calls) {
        Ok(text) => ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
