//! `POST /graphql` (JSON or multipart) and GraphiQL on `GET /graphql`.

use std::sync::Arc;

use async_graphql::http::{GraphiQLSource, MultipartOptions, receive_batch_body};
use async_graphql::{BatchRequest, BatchResponse};
use async_graphql_axum::GraphQLResponse;
use axum::body::{Body, to_bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use futures_util::future::join_all;
use futures_util::io::Cursor;
use serde_json::json;

use super::{HttpState, REQUEST_ID};
use crate::error::ErrorCode;
use crate::graphql::context::Session;
use crate::graphql::documents::Prepared;
use crate::graphql::{complete_errors, execution, with_request_data};
use crate::limits::ClientIp;

/// Where GraphiQL's page loads its scripts and styles from.
const CDN: &str = "https://unpkg.com/";
const FAVICON: &str = "<link rel=\"icon\" href=\"https://graphql.org/favicon.ico\">";
/// Where `MEDILINK_GRAPHIQL_ASSETS` is served (see the router).
pub const LOCAL_ASSETS: &str = "/graphql/assets";

pub async fn graphiql(State(state): State<HttpState>) -> Html<String> {
    let page = GraphiQLSource::build()
        .endpoint("/graphql")
        .subscription_endpoint("/graphql/ws")
        .title("MediLink GraphiQL")
        .finish();
    if state.app.config.graphiql_assets.is_none() {
        return Html(page);
    }
    // On a closed network every asset comes from the configured folder, laid out as on the CDN.
    Html(
        page.replace(FAVICON, "")
            .replace(CDN, &format!("{LOCAL_ASSETS}/")),
    )
}

pub async fn execute(
    State(state): State<HttpState>,
    client: ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let multipart = content_type
        .as_deref()
        .is_some_and(|t| t.starts_with("multipart/form-data"));
    let config = &state.app.config;
    let limit = if multipart {
        config.max_upload_bytes
    } else {
        config.max_body_bytes
    };
    let bytes = match to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return transport_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("the request body is larger than {limit} bytes"),
            );
        }
    };
    let options = MultipartOptions::default()
        .max_file_size(limit)
        .max_num_files(4);
    let batch = match receive_batch_body(content_type, Cursor::new(bytes), options).await {
        Ok(batch) => batch,
        Err(error) => {
            return transport_error(
                StatusCode::BAD_REQUEST,
                &format!("the request is not a valid GraphQL request: {error}"),
            );
        }
    };
    let session = Arc::new(Session::new(bearer_token(&headers)));
    let run = |mut request| async {
        // Front ends send the same few documents over and over: parsed once, shared after.
        let candidate = match state.documents.prepare(&mut request) {
            Prepared::Refused(refused) => return refused,
            Prepared::Execute(candidate) | Prepared::Dormant(_, candidate) => candidate,
            Prepared::Direct(_) => None,
        };
        let request = with_request_data(request, &state.app, session.clone()).data(client);
        execution::execute(&state.schema, &state.app.metrics, request, candidate).await
    };
    let mut response = match batch {
        BatchRequest::Single(request) => BatchResponse::Single(run(request).await),
        BatchRequest::Batch(requests) => {
            BatchResponse::Batch(join_all(requests.into_iter().map(run)).await)
        }
    };
    let request_id = headers
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    match &mut response {
        BatchResponse::Single(single) => complete_errors(single, request_id),
        BatchResponse::Batch(all) => all.iter_mut().for_each(|r| complete_errors(r, request_id)),
    }
    GraphQLResponse::from(response).into_response()
}

fn transport_error(status: StatusCode, message: &str) -> Response {
    let body = json!({
        "errors": [{ "message": message, "extensions": { "code": ErrorCode::BadUserInput.as_str() } }]
    });
    (status, axum::Json(body)).into_response()
}

/// The token of `Authorization: Bearer <token>`. Any other `Authorization` value is passed on
/// as it is, so that it fails as an invalid token instead of passing for "not signed in".
pub(super) fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?;
    let value = String::from_utf8_lossy(value.as_bytes());
    let value = value.trim();
    Some(match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim().to_owned(),
        _ => value.to_owned(),
    })
}
