//! GraphQL over HTTP, as its specification has it: `POST /graphql` (JSON, a JSON batch, or
//! multipart uploads) and `GET /graphql?query=...` for queries; a browser's `GET /graphql`
//! without a query gets GraphiQL. Answers are `application/json` unless the client asks for
//! `application/graphql-response+json`, which also turns a request that never ran (a parse or
//! validation error) into a 400. Requests that are not GraphQL requests at all get a 4xx whose
//! JSON body holds one error with a code.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_graphql::http::{GraphiQLSource, MultipartOptions, receive_batch_body};
use async_graphql::parser::types::{DocumentOperations, OperationType};
use async_graphql::{BatchRequest, Request, ServerError, Value};
use axum::body::{Body, to_bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use futures_util::future::join_all;
use futures_util::io::Cursor;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::{self, JSON};
use super::extract::bearer_token;
use super::{HttpState, REQUEST_ID};
use crate::error::AppError;
use crate::graphql::context::Session;
use crate::limits::ClientIp;
use crate::schema::documents::{Prepared, is_request_error};
use crate::schema::{complete_errors, execution, with_request_data};

/// Where GraphiQL's page loads its scripts and styles from.
const CDN: &str = "https://unpkg.com/";
const FAVICON: &str = "<link rel=\"icon\" href=\"https://graphql.org/favicon.ico\">";
/// Where `MEDILINK_GRAPHIQL_ASSETS` is served (see the router).
pub const LOCAL_ASSETS: &str = "/graphql/assets";

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json; charset=utf-8";

fn graphiql(state: &HttpState) -> Html<String> {
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

/// The parameters of `GET /graphql`; `variables` and `extensions` are JSON text.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetParams {
    query: Option<String>,
    operation_name: Option<String>,
    variables: Option<String>,
    extensions: Option<String>,
}

pub async fn get(
    State(state): State<HttpState>,
    client: ClientIp,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let params = match Query::<GetParams>::try_from_uri(&uri) {
        Ok(Query(params)) => params,
        Err(error) => return bad_request(&format!("the query string is not valid: {error}")),
    };
    if params.query.is_none() && state.app.config.graphiql && accepts(&headers, "text/html") {
        return graphiql(&state).into_response();
    }
    let request = match get_request(params) {
        Ok(request) => request,
        Err(message) => return bad_request(&message),
    };
    let run = Run::new(&state, client, &headers);
    let mut operation = run.prepare(request);
    if operation.kind() == Some(OperationType::Mutation) {
        let mut response = transport_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "mutations are only accepted over POST",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    answer(media_type(&headers), run.execute(operation).await)
}

/// The request `GET /graphql` asks for, read as strictly as a POSTed JSON body.
fn get_request(params: GetParams) -> Result<Request, String> {
    let json = |name: &str, text: Option<String>| match text {
        Some(text) => serde_json::from_str::<serde_json::Value>(&text)
            .map_err(|error| format!("`{name}` is not valid JSON: {error}")),
        None => Ok(serde_json::Value::Null),
    };
    let body = json!({
        "query": params.query.unwrap_or_default(),
        "operationName": params.operation_name,
        "variables": json("variables", params.variables)?,
        "extensions": json("extensions", params.extensions)?,
    });
    let request = serde_json::from_value(body)
        .map_err(|error| format!("the request is not a valid GraphQL request: {error}"))?;
    has_query(request)
}

pub async fn post(
    State(state): State<HttpState>,
    client: ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let multipart = match content_type.as_deref().map(essence).as_deref() {
        Some("application/json") => false,
        Some("multipart/form-data") => true,
        _ => {
            return transport_error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the request's Content-Type must be application/json or multipart/form-data",
            );
        }
    };
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
            return bad_request(&format!(
                "the request is not a valid GraphQL request: {error}"
            ));
        }
    };
    let media_type = media_type(&headers);
    let run = Run::new(&state, client, &headers);
    match batch {
        BatchRequest::Single(request) => match has_query(request) {
            Ok(request) => answer(media_type, run.execute(run.prepare(request)).await),
            Err(message) => bad_request(&message),
        },
        BatchRequest::Batch(requests) => {
            if let Some(refusal) = state.budget.refuse_size(requests.len()) {
                return bad_request(&refusal);
            }
            let requests = match requests
                .into_iter()
                .map(has_query)
                .collect::<Result<Vec<_>, _>>()
            {
                Ok(requests) => requests,
                Err(message) => return bad_request(&message),
            };
            let mut operations: Vec<_> = requests.into_iter().map(|r| run.prepare(r)).collect();
            // A refused document is never parsed, so never measured: it answers on its own.
            let requests: Vec<_> = operations
                .iter_mut()
                .filter(|o| !matches!(o.prepared, Prepared::Refused(_)))
                .map(|o| &mut o.request)
                .collect();
            if let Some(refusal) = state.budget.refuse_complexity(requests).await {
                return bad_request(&refusal);
            }
            let responses = join_all(operations.into_iter().map(|o| run.execute(o))).await;
            let bodies: Vec<_> = responses.iter().map(ResponseBody::from).collect();
            respond(StatusCode::OK, media_type.content_type(), &bodies)
        }
    }
}

/// A request without a query is not a GraphQL request (async-graphql reads a missing `query`
/// as an empty one).
fn has_query(request: Request) -> Result<Request, String> {
    if request.query.trim().is_empty() {
        return Err("the request has no `query`".into());
    }
    Ok(request)
}

/// What every operation of one HTTP request shares.
struct Run<'a> {
    state: &'a HttpState,
    session: Arc<Session>,
    client: ClientIp,
    request_id: &'a str,
}

/// A request whose document the cache has given it (see [`crate::schema::documents`]).
struct Operation {
    request: Request,
    prepared: Prepared,
}

impl Operation {
    /// The type of the operation the request selects, if it selects one.
    fn kind(&mut self) -> Option<OperationType> {
        match &self.prepared {
            Prepared::Refused(_) => None,
            Prepared::Direct(direct) => Some(direct.kind),
            Prepared::Dormant(..) => Some(OperationType::Subscription),
            Prepared::Execute(_) => {
                let name = self.request.operation_name.clone();
                let document = self.request.parsed_query().ok()?;
                match (&document.operations, name.as_deref()) {
                    (DocumentOperations::Single(operation), None) => Some(operation.node.ty),
                    (DocumentOperations::Multiple(operations), Some(name)) => {
                        operations.get(name).map(|o| o.node.ty)
                    }
                    (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => {
                        operations.values().next().map(|o| o.node.ty)
                    }
                    _ => None,
                }
            }
        }
    }
}

impl<'a> Run<'a> {
    fn new(state: &'a HttpState, client: ClientIp, headers: &'a HeaderMap) -> Self {
        Self {
            state,
            session: Arc::new(Session::new(bearer_token(headers))),
            client,
            request_id: headers
                .get(&REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default(),
        }
    }

    fn prepare(&self, mut request: Request) -> Operation {
        // Front ends send the same few documents over and over: parsed once, shared after.
        let prepared = self.state.documents.prepare(&mut request);
        Operation { request, prepared }
    }

    async fn execute(&self, operation: Operation) -> async_graphql::Response {
        let state = &self.state;
        let candidate = match operation.prepared {
            Prepared::Refused(refused) => return refused,
            Prepared::Execute(candidate) | Prepared::Dormant(_, candidate) => candidate,
            Prepared::Direct(_) => None,
        };
        let request = with_request_data(operation.request, &state.app, self.session.clone())
            .data(self.client);
        let metrics = &state.app.metrics;
        let mut response = execution::execute(&state.schema, metrics, request, candidate).await;
        complete_errors(&mut response, self.request_id);
        response
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum MediaType {
    Json,
    GraphqlResponse,
}

impl MediaType {
    fn content_type(self) -> &'static str {
        match self {
            Self::Json => JSON,
            Self::GraphqlResponse => GRAPHQL_RESPONSE,
        }
    }
}

/// The media type the client prefers of the two; `application/json` when it names neither (a
/// missing `Accept`, `*/*`, or only types this endpoint does not produce).
fn media_type(headers: &HeaderMap) -> MediaType {
    let mut best: Option<(f32, MediaType)> = None;
    for (range, quality) in accepted(headers) {
        let media = match range.as_str() {
            "application/graphql-response+json" => MediaType::GraphqlResponse,
            "application/json" | "application/*" | "*/*" => MediaType::Json,
            _ => continue,
        };
        if best.is_none_or(|(q, _)| quality > q) {
            best = Some((quality, media));
        }
    }
    best.map_or(MediaType::Json, |(_, media)| media)
}

/// Whether `Accept` names `media` itself (not through a wildcard).
fn accepts(headers: &HeaderMap, media: &str) -> bool {
    accepted(headers).any(|(range, _)| range == media)
}

/// The media ranges of `Accept` in lower case, with their quality; those refused (`q=0`) left
/// out.
fn accepted(headers: &HeaderMap) -> impl Iterator<Item = (String, f32)> + '_ {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|range| {
            let mut parts = range.split(';');
            let media = parts.next()?.trim().to_ascii_lowercase();
            let quality = parts
                .filter_map(|p| p.trim().split_once('='))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("q"))
                .map_or(Some(1.0), |(_, q)| q.trim().parse::<f32>().ok())?;
            (quality > 0.0).then_some((media, quality))
        })
}

/// `text/html; charset=utf-8` as `text/html`.
fn essence(content_type: &str) -> String {
    let media = content_type.split(';').next().unwrap_or_default();
    media.trim().to_ascii_lowercase()
}

/// A single response. With `application/graphql-response+json` a request that never ran is a
/// 400, as the specification asks; with `application/json` every GraphQL response is a 200, as
/// clients written before it expect.
fn answer(media_type: MediaType, response: async_graphql::Response) -> Response {
    let body = ResponseBody::from(&response);
    let status = if media_type == MediaType::GraphqlResponse && body.data.is_none() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    respond(status, media_type.content_type(), &body)
}

/// A GraphQL response as it is sent: without `data` when the request never ran (an error
/// without a path and no data: parsing, validation, operation selection, a refusal), as the
/// GraphQL specification has it.
#[derive(Serialize)]
struct ResponseBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a Value>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: &'a [ServerError],
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    extensions: &'a BTreeMap<String, Value>,
}

impl<'a> From<&'a async_graphql::Response> for ResponseBody<'a> {
    fn from(response: &'a async_graphql::Response) -> Self {
        let never_ran = is_request_error(response);
        Self {
            data: (!never_ran).then_some(&response.data),
            errors: &response.errors,
            extensions: &response.extensions,
        }
    }
}

fn respond(status: StatusCode, content_type: &'static str, body: &impl Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            status,
            [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
            bytes,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "a GraphQL response did not serialise");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// `/graphql` with any other method.
pub async fn method_not_allowed() -> Response {
    let mut response = transport_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "/graphql takes GET and POST requests",
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
    response
}

fn bad_request(message: &str) -> Response {
    transport_error(StatusCode::BAD_REQUEST, message)
}

fn transport_error(status: StatusCode, message: &str) -> Response {
    error::with_status(status, &AppError::bad_request(message))
}
