//! The HTTP surface: GraphQL, GraphiQL, the /demo page and the probes operators need.

mod batch;
mod client_ip;
mod demo;
mod error;
mod extract;
mod files;
mod graphql;
mod health;
mod metrics;
mod policy;
mod webhooks;
mod ws;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use axum::http::{HeaderName, Request};
use axum::routing::{get, post};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::services::ServeDir;
use tower_http::trace::TraceLayer;

use crate::schema::AppSchema;
use crate::schema::documents::Documents;
use crate::state::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

#[derive(Clone)]
pub struct HttpState {
    pub app: AppState,
    pub schema: AppSchema,
    pub documents: Arc<Documents>,
    pub budget: Arc<batch::Budget>,
}

impl FromRef<HttpState> for AppState {
    fn from_ref(state: &HttpState) -> Self {
        state.app.clone()
    }
}

/// The public router; `/metrics` is on it unless `MEDILINK_METRICS_BIND` gives it an address
/// of its own.
pub fn router(app: AppState, schema: AppSchema) -> Router {
    let trace = TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
        let request_id = request
            .headers()
            .get(&REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        // `user` is filled in once the request (or the WebSocket it opens) is signed in. At
        // ERROR level so that it is on whatever the filter: a warning still names its request.
        tracing::error_span!("request", id = %request_id, method = %request.method(), path = %request.uri().path(), user = tracing::field::Empty)
    });
    let mut router = Router::new();
    if let Some(folder) = &app.config.graphiql_assets {
        router = router.nest_service(graphql::LOCAL_ASSETS, ServeDir::new(folder));
    }
    let cors = policy::cors(&app.config, REQUEST_ID);
    if app.config.metrics_bind.is_none() {
        tracing::warn!(
            "/metrics is served on the public port; set MEDILINK_METRICS_BIND to serve it on an \
             address of its own"
        );
        router = router.route("/metrics", get(metrics::metrics));
    }
    let router = router
        .route(
            "/graphql",
            get(graphql::get)
                .post(graphql::post)
                .fallback(graphql::method_not_allowed),
        )
        .route("/graphql/ws", get(ws::upgrade))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/demo", get(demo::page))
        .route("/files/licences/{doctor_id}", get(files::licence))
        .route("/webhooks/stripe", post(webhooks::stripe))
        .with_state(HttpState {
            documents: Arc::new(Documents::new(
                app.config.max_document_bytes,
                app.config.introspection,
                app.metrics.clone(),
            )),
            budget: Arc::new(batch::Budget::new(&app.config)),
            app,
            schema,
        })
        .layer(axum::middleware::from_fn(error::with_request_id))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID));
    let router = match cors {
        Some(cors) => router.layer(cors),
        None => router,
    };
    policy::harden(router)
        .layer(trace)
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// The router of `MEDILINK_METRICS_BIND`: `/metrics` alone.
pub fn metrics_router(app: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics::metrics))
        .with_state(app)
}
