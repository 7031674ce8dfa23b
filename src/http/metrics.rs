//! `GET /metrics` in the Prometheus text format.

use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::HttpState;

pub async fn metrics(State(state): State<HttpState>) -> impl IntoResponse {
    let mut body = String::new();
    let _ = writeln!(
        body,
        "# HELP medilink_db_calls_total Database calls (a statement or a transaction) since start.\n\
         # TYPE medilink_db_calls_total counter\n\
         medilink_db_calls_total {}",
        state.app.db.calls()
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
