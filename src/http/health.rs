use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::HttpState;

/// The process is up.
pub async fn healthz() -> &'static str {
    "ok"
}

/// The process can serve: its database answers, and with Redis, the event bus is connected.
pub async fn readyz(State(state): State<HttpState>) -> (StatusCode, Json<Value>) {
    let database = state.app.db.backend();
    let database_ok = match state.app.db.ping().await {
        Ok(()) => true,
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            false
        }
    };
    let mut body = json!({ "database": database });
    let mut ready = database_ok;
    if state.app.config.redis_url.is_some() {
        let bus_up = state.app.realtime.bus.is_up();
        body["redis"] = json!(if bus_up { "connected" } else { "disconnected" });
        ready &= bus_up;
    }
    body["status"] = json!(if ready { "ready" } else { "unavailable" });
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}
