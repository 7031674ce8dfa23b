//! What browsers are told about this server: which origins may call it (CORS, from
//! `MEDILINK_PUBLIC_ORIGINS`) and the standard hardening headers on every response.

use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::config::Config;

/// Cross-origin access for the configured origins only, never with credentials: clients send
/// bearer tokens, not cookies. Without origins, browsers get same-origin access alone.
pub fn cors(config: &Config, request_id: HeaderName) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> = config
        .public_origins()
        .filter_map(|origin| HeaderValue::from_str(origin).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                request_id.clone(),
            ])
            .expose_headers([request_id])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

/// Adds the hardening headers a response does not set itself.
pub fn harden<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    let headers = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ];
    headers.into_iter().fold(router, |router, (name, value)| {
        router.layer(SetResponseHeaderLayer::if_not_present(
            name,
            HeaderValue::from_static(value),
        ))
    })
}
