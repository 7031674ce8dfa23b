//! Every GraphQL operation, over HTTP and WebSocket alike, runs through [`execute`] or
//! [`execute_stream`] here: a document nested too deep is refused before anything parses it
//! (whatever path it came by), a request holding the NUL character before it runs, and
//! each operation is counted by name and outcome, with the latency of queries and mutations and
//! the count of running subscriptions.
//!
//! This is not a schema extension on purpose: with any extension installed, async-graphql sends
//! every resolved field through the extension chain (a boxed future per field), which even a
//! no-op extension makes markedly slower (docs/performance.md).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationType};
use async_graphql::{Request, Response, Value, Variables};
use futures_util::stream::{self, BoxStream};
use futures_util::{Stream, StreamExt};
use serde_json::value::RawValue;

use super::AppSchema;
use super::documents::Candidate;
use crate::auth::AuthUser;
use crate::calls::socket::{Direct, Served};
use crate::error::ErrorCode;
use crate::events::Event;
use crate::graphql::context::Given;
use crate::graphql::{guard, nul};
use crate::metrics::{self, Held, Metrics};
use crate::state::AppState;

/// Runs a query or mutation that came over HTTP, and records it; `candidate` is its document
/// if it was parsed for it, kept if it validates.
pub async fn execute(
    schema: &AppSchema,
    metrics: &Metrics,
    mut request: Request,
    candidate: Option<Candidate>,
) -> Response {
    if let Some(refused) = too_deep(&request) {
        let operation = metrics.operation(request.operation_name.as_deref());
        metrics.graphql_request(operation, outcome(&refused), None);
        return refused;
    }
    let (operation, _) = inspect(metrics, &mut request);
    let started = Instant::now();
    let response = match nul::refusal(&mut request) {
        Some(refused) => refused,
        None => schema.execute(request).await,
    };
    metrics.graphql_request(operation, outcome(&response), Some(started.elapsed()));
    if let Some(candidate) = candidate {
        candidate.keep_if_valid(&response);
    }
    response
}

/// The refusal of a document the parser must not see (see [`guard`]). Documents normally come
/// through [`super::documents::Documents::prepare`], which measures them; this holds for any
/// other way in.
fn too_deep(request: &Request) -> Option<Response> {
    guard::check_nesting(&request.query)
        .err()
        .map(guard::Refusal::response)
}

/// The type of the operation that came over a WebSocket (`None` if it does not parse: it fails
/// at once), and its responses, recorded at the first of them (or when the stream ends without
/// one); a subscription counts as running while it lasts.
pub fn execute_stream(
    schema: &AppSchema,
    metrics: &Arc<Metrics>,
    mut request: Request,
    candidate: Option<Candidate>,
) -> (
    Option<OperationType>,
    impl Stream<Item = Response> + Send + 'static,
) {
    if let Some(refused) = too_deep(&request) {
        let operation = metrics.operation(request.operation_name.as_deref());
        let inner = stream::once(async { refused }).boxed();
        return (None, Tracked::new(metrics, operation, false, inner));
    }
    let (operation, kind) = inspect(metrics, &mut request);
    let subscription = kind == Some(OperationType::Subscription);
    let inner = match nul::refusal(&mut request) {
        Some(refused) => stream::once(async { refused }).boxed(),
        None => schema.execute_stream(request),
    };
    let mut tracked = Tracked::new(metrics, operation, subscription, inner);
    tracked.candidate = candidate;
    (kind, tracked)
}

/// A subscription the socket keeps dormant (see [`super::dormant`]), recorded as one running
/// subscription: `request` makes the operation's request with what it is given. Checked first
/// by executing it with nothing; what that yields (a refusal or an error) ends it. Otherwise it
/// executes once for each of `events`, which the caller subscribed to before this returns.
pub fn execute_dormant(
    schema: &AppSchema,
    metrics: &Arc<Metrics>,
    events: BoxStream<'static, Event>,
    request: impl Fn(Given) -> Request + Send + 'static,
    candidate: Option<Candidate>,
) -> impl Stream<Item = Response> + Send + 'static {
    let mut check = request(Given(None));
    if let Some(refused) = too_deep(&check) {
        let operation = metrics.operation(check.operation_name.as_deref());
        let inner = stream::once(async { refused }).boxed();
        return Tracked::new(metrics, operation, true, inner);
    }
    let (operation, _) = inspect(metrics, &mut check);
    let inner = match nul::refusal(&mut check) {
        Some(refused) => stream::once(async { refused }).boxed(),
        None => {
            let checked = schema.execute_stream(check).collect::<Vec<_>>();
            let mut waiting = Some((schema.clone(), events, request, candidate));
            stream::once(checked)
                .flat_map(move |refusals| match waiting.take() {
                    Some((schema, events, request, candidate)) if refusals.is_empty() => {
                        if let Some(candidate) = candidate {
                            candidate.keep();
                        }
                        events
                            .flat_map(move |event| {
                                schema.execute_stream(request(Given(Some(event))))
                            })
                            .boxed()
                    }
                    _ => stream::iter(refusals).boxed(),
                })
                .boxed()
        }
    };
    Tracked::new(metrics, operation, true, inner)
}

/// An operation the socket serves itself (see [`crate::calls::socket`]), refused and recorded as the
/// executor's are; `None` when its variables do not coerce, for the executor to report why.
pub fn execute_direct(
    direct: Arc<Direct>,
    state: &AppState,
    viewer: AuthUser,
    variables: &Variables,
) -> Option<impl Stream<Item = Response> + Send + 'static> {
    let inner = if nul::variables_have_nul(variables) {
        stream::once(async { nul::refused() }).boxed()
    } else {
        direct.clone().start(state.clone(), viewer, variables)?
    };
    Some(track_direct(&direct, state, inner))
}

/// [`execute_direct`] with variables that are still JSON; `None` when they must go through
/// async-graphql's coercion instead (see [`Direct::start_from_json`]).
pub fn execute_direct_from_json(
    direct: Arc<Direct>,
    state: &AppState,
    viewer: AuthUser,
    variables: &RawValue,
) -> Option<impl Stream<Item = Response> + Send + 'static> {
    let inner = direct
        .clone()
        .start_from_json(state.clone(), viewer, variables)?;
    Some(track_direct(&direct, state, inner))
}

/// A direct operation served in the socket's own wake-up (see [`Direct::serve_now`]),
/// recorded as [`execute_direct`]'s are; a `signals` operation that watches comes with its
/// place among the running subscriptions. `None`: run it with [`execute_direct`].
pub fn serve_now(
    direct: &Arc<Direct>,
    state: &AppState,
    viewer: AuthUser,
    variables: Option<&RawValue>,
) -> Option<(Served, Option<Held>)> {
    let started = Instant::now();
    let served = direct.serve_now(state, viewer, variables)?;
    let metrics = &state.metrics;
    metrics.fast_path_operation();
    let operation = || metrics.operation(direct.operation.as_deref());
    let subscription = direct.kind == OperationType::Subscription;
    let took = || (!subscription).then(|| started.elapsed());
    Some(match served {
        Served::Sent(payload) => {
            metrics.graphql_request(operation(), metrics::OK, took());
            (Served::Sent(payload), None)
        }
        Served::Failed(response) => {
            metrics.graphql_request(operation(), outcome(&response), took());
            (Served::Failed(response), None)
        }
        Served::Pending(inner) => {
            let tracked = Tracked::new(metrics, operation(), subscription, inner);
            (Served::Pending(tracked.boxed()), None)
        }
        Served::Watching(watch) => {
            metrics.graphql_request(operation(), metrics::OK, None);
            (
                Served::Watching(watch),
                Some(metrics.subscription_started()),
            )
        }
    })
}

fn track_direct(direct: &Direct, state: &AppState, inner: BoxStream<'static, Response>) -> Tracked {
    state.metrics.fast_path_operation();
    let operation = state.metrics.operation(direct.operation.as_deref());
    let subscription = direct.kind == OperationType::Subscription;
    Tracked::new(&state.metrics, operation, subscription, inner)
}

/// The `operation` label of the request and the type of the operation it will run, from its
/// document. The parsed document stays in the request, so it is not parsed twice.
fn inspect(metrics: &Metrics, request: &mut Request) -> (Arc<str>, Option<OperationType>) {
    let name = request.operation_name.take();
    let found = match request.parsed_query() {
        Ok(document) => select(metrics, document, name.as_deref()),
        Err(_) => (metrics.operation(name.as_deref()), None),
    };
    request.operation_name = name;
    found
}

/// The name and type of the operation async-graphql will pick from `document`.
fn select(
    metrics: &Metrics,
    document: &ExecutableDocument,
    name: Option<&str>,
) -> (Arc<str>, Option<OperationType>) {
    match (&document.operations, name) {
        (DocumentOperations::Single(operation), None) => {
            (metrics.operation(None), Some(operation.node.ty))
        }
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => {
            let (name, kind) = operations
                .iter()
                .next()
                .map(|(name, operation)| (name, operation.node.ty))
                .unzip();
            (metrics.operation(name.map(|n| n.as_str())), kind)
        }
        (DocumentOperations::Multiple(operations), Some(name)) => (
            metrics.operation(Some(name)),
            operations.get(name).map(|o| o.node.ty),
        ),
        (_, name) => (metrics.operation(name), None),
    }
}

/// "ok", the first error's code, or "invalid" for a request that never ran: errors of parsing,
/// validation and operation selection are the ones without a code and without a path. An error
/// without a code at a path (an argument that does not coerce) reaches the client as
/// BAD_USER_INPUT, and counts as such.
fn outcome(response: &Response) -> &'static str {
    let Some(error) = response.errors.first() else {
        return metrics::OK;
    };
    match error.extensions.as_ref().and_then(|e| e.get("code")) {
        Some(Value::String(code)) => metrics::error_outcome(code),
        _ if error.path.is_empty() => metrics::INVALID,
        _ => ErrorCode::BadUserInput.as_str(),
    }
}

struct Tracked {
    inner: BoxStream<'static, Response>,
    metrics: Arc<Metrics>,
    /// Taken when the operation is recorded.
    operation: Option<Arc<str>>,
    subscription: bool,
    started: Instant,
    running: Option<Held>,
    ended: bool,
    /// The operation's document, kept by the cache if its first answer shows it validates.
    candidate: Option<Candidate>,
}

impl Tracked {
    fn new(
        metrics: &Arc<Metrics>,
        operation: Arc<str>,
        subscription: bool,
        inner: BoxStream<'static, Response>,
    ) -> Self {
        Self {
            started: Instant::now(),
            inner,
            running: subscription.then(|| metrics.subscription_started()),
            metrics: metrics.clone(),
            operation: Some(operation),
            subscription,
            ended: false,
            candidate: None,
        }
    }

    /// Records the operation once; queries and mutations that answered give their latency.
    fn record(&mut self, response: Option<&Response>) {
        let Some(operation) = self.operation.take() else {
            return;
        };
        let outcome = response.map_or(metrics::OK, outcome);
        let duration = (response.is_some() && !self.subscription).then(|| self.started.elapsed());
        self.metrics.graphql_request(operation, outcome, duration);
    }
}

impl Stream for Tracked {
    type Item = Response;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Response>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let polled = self.inner.poll_next_unpin(cx);
        match &polled {
            Poll::Ready(Some(response)) => {
                if let Some(candidate) = self.candidate.take() {
                    candidate.keep_if_valid(response);
                }
                self.record(Some(response));
            }
            Poll::Ready(None) => {
                self.ended = true;
                self.running = None;
                self.record(None);
            }
            Poll::Pending => {}
        }
        polled
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.record(None);
    }
}
