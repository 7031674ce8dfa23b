//! Counts every GraphQL operation, over HTTP and WebSocket alike, by operation name and outcome,
//! with the latency of queries and mutations, and keeps the count of running subscriptions.
//!
//! HTTP requests pass through the `request` hook; every operation on a WebSocket is a stream
//! and passes through `subscribe`. Either way an operation is recorded once, at its first
//! response (or when its stream ends without one).

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Instant;

use async_graphql::async_trait::async_trait;
use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextPrepareRequest, NextRequest,
    NextSubscribe, NextValidation,
};
use async_graphql::futures_util::stream::BoxStream;
use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationType};
use async_graphql::{Request, Response, ServerError, ServerResult, ValidationResult, Value};
use futures_util::{Stream, StreamExt};

use crate::error::ErrorCode;
use crate::metrics::{self, Held, Metrics};

/// The schema extension; one recorder per operation.
pub struct Recording(pub Arc<Metrics>);

impl ExtensionFactory for Recording {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Recorder(Arc::new(Operation {
            metrics: self.0.clone(),
            started: Instant::now(),
            state: Mutex::default(),
        })))
    }
}

struct Recorder(Arc<Operation>);

struct Operation {
    metrics: Arc<Metrics>,
    started: Instant,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    operation: Option<Arc<str>>,
    /// The type of the operation to run, when the document names one.
    kind: Option<OperationType>,
    valid: bool,
    executed: bool,
    recorded: bool,
}

impl Operation {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Finds the operation's name and type in its document. The parsed document stays in the
    /// request, so it is not parsed twice.
    fn inspect(&self, request: &mut Request) {
        let name = request.operation_name.take();
        let (operation, kind) = match request.parsed_query() {
            Ok(document) => select(&self.metrics, document, name.as_deref()),
            Err(_) => (self.metrics.operation(name.as_deref()), None),
        };
        request.operation_name = name;
        let mut state = self.state();
        state.operation = Some(operation);
        state.kind = kind;
    }

    fn is_subscription(&self) -> bool {
        let state = self.state();
        state.valid && state.kind == Some(OperationType::Subscription)
    }

    /// Records the operation, once: at its first response, or `None` when it ended without
    /// one (a subscription closed before any event). Queries and mutations that answered
    /// also give their latency.
    fn record(&self, response: Option<&Response>) {
        let mut state = self.state();
        if std::mem::replace(&mut state.recorded, true) {
            return;
        }
        let outcome = response.map_or(metrics::OK, |r| outcome(r, state.executed));
        let timed = response.is_some() && state.kind != Some(OperationType::Subscription);
        let operation = state
            .operation
            .take()
            .unwrap_or_else(|| self.metrics.operation(None));
        drop(state);
        let duration = timed.then(|| self.started.elapsed());
        self.metrics.graphql_request(operation, outcome, duration);
    }
}

/// The name and type of the operation `prepare_request` will pick from `document`.
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
            let (name, operation) = operations
                .iter()
                .next()
                .map(|(n, o)| (n, o.node.ty))
                .unzip();
            (metrics.operation(name.map(|n| n.as_str())), operation)
        }
        (DocumentOperations::Multiple(operations), Some(name)) => (
            metrics.operation(Some(name)),
            operations.get(name).map(|o| o.node.ty),
        ),
        (_, name) => (metrics.operation(name), None),
    }
}

/// "ok", the first error's code, or "invalid" when the operation never ran because its
/// document did not parse or validate. An error without a code from a running operation (an
/// argument that does not coerce) reaches the client as BAD_USER_INPUT, and counts as such.
fn outcome(response: &Response, executed: bool) -> &'static str {
    let Some(error) = response.errors.first() else {
        return metrics::OK;
    };
    match error.extensions.as_ref().and_then(|e| e.get("code")) {
        Some(Value::String(code)) => metrics::error_outcome(code),
        _ if executed => ErrorCode::BadUserInput.as_str(),
        _ => metrics::INVALID,
    }
}

#[async_trait]
impl Extension for Recorder {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let response = next.run(ctx).await;
        self.0.record(Some(&response));
        response
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        Tracked {
            inner: next.run(ctx, stream),
            operation: self.0.clone(),
            running: None,
            ended: false,
        }
        .boxed()
    }

    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        self.0.inspect(&mut request);
        next.run(ctx, request).await
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await;
        self.0.state().valid = result.is_ok();
        result
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        self.0.state().executed = true;
        next.run(ctx, operation_name).await
    }
}

/// An operation's response stream on a WebSocket: it records the operation and, for a
/// subscription, holds one unit of the running-subscriptions gauge until it ends or is dropped.
struct Tracked<'s> {
    inner: BoxStream<'s, Response>,
    operation: Arc<Operation>,
    running: Option<Held>,
    ended: bool,
}

impl Stream for Tracked<'_> {
    type Item = Response;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Response>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let polled = self.inner.poll_next_unpin(cx);
        if self.running.is_none() && self.operation.is_subscription() {
            self.running = Some(self.operation.metrics.subscription_started());
        }
        match &polled {
            Poll::Ready(Some(response)) => self.operation.record(Some(response)),
            Poll::Ready(None) => {
                self.ended = true;
                self.running = None;
                self.operation.record(None);
            }
            Poll::Pending => {}
        }
        polled
    }
}

impl Drop for Tracked<'_> {
    fn drop(&mut self) {
        self.operation.record(None);
    }
}
