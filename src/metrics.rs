//! What `GET /metrics` reports. Each [`crate::Application`] has a registry of its own, so that
//! several instances in one process (the tests start many) count only their own work.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, prometheus_text};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::calls::model::{LiveCalls, SignalKind};
use crate::db::{Db, PoolStats};
use crate::error::ErrorCode;

/// The Prometheus text format, version 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Operation names are chosen by clients: past this many distinct ones, new names count as
/// "other", so that no client can grow the series without bound.
const MAX_OPERATION_NAMES: usize = 200;
const MAX_OPERATION_NAME_BYTES: usize = 64;
/// The `operation` of requests without an operation name.
pub const ANONYMOUS: &str = "anonymous";
/// The `operation` of names that are too long, not GraphQL names, or over the limit.
pub const OTHER: &str = "other";

/// Upper bounds of the GraphQL latency buckets, in seconds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The `outcome` of a GraphQL operation that answered without errors.
pub const OK: &str = "ok";
/// The `outcome` of one that did not parse or validate.
pub const INVALID: &str = "invalid";
const ERROR_CODES: [ErrorCode; 8] = [
    ErrorCode::Unauthenticated,
    ErrorCode::Forbidden,
    ErrorCode::NotFound,
    ErrorCode::BadUserInput,
    ErrorCode::Conflict,
    ErrorCode::RateLimited,
    ErrorCode::PaymentRequired,
    ErrorCode::Internal,
];

/// The Stripe event types the webhook acts on; any other counts as "other".
const WEBHOOK_TYPES: [&str; 8] = [
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
    "charge.refunded",
    "refund.updated",
    "refund.failed",
    "account.updated",
];

/// What became of one webhook delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// A new event that changed something.
    Applied,
    /// An event handled before.
    Duplicate,
    /// An event with nothing to do here.
    Ignored,
    /// A bad signature or body (answered 400), or payments are off (404).
    Rejected,
    /// Our side failed (answered 500; Stripe delivers it again).
    Error,
}

impl WebhookOutcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Duplicate => "duplicate",
            Self::Ignored => "ignored",
            Self::Rejected => "rejected",
            Self::Error => "error",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    operation: Arc<str>,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    r#type: &'static str,
    outcome: &'static str,
}

type Latency = Family<OperationLabels, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    operations: OperationNames,
    requests: Family<RequestLabels, Counter>,
    latency: Latency,
    websocket_connections: Gauge,
    subscriptions: Gauge,
    calls: Family<StateLabels, Gauge>,
    /// One counter per [`SignalKind`], made up front: relaying a signal looks nothing up.
    signals: [Counter; 5],
    chat_messages: Counter,
    webhook_events: Family<WebhookLabels, Counter>,
    pool: Family<StateLabels, Gauge>,
    pool_max: Gauge,
    cached_documents: Gauge,
    cached_document_bytes: Gauge,
    fast_path_operations: Counter,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Metrics(..)")
    }
}

impl Metrics {
    /// A registry of its own, with `db`'s count of database calls in it.
    pub fn new(db: &Db) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "medilink_graphql_requests",
            "GraphQL operations (HTTP and WebSocket) by operation name and outcome: ok, \
             invalid (did not parse or validate) or the first error's code",
            requests.clone(),
        );
        let latency: Latency =
            Family::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS.iter().copied()));
        registry.register(
            "medilink_graphql_request_duration_seconds",
            "Time from receiving a GraphQL query or mutation to its response",
            latency.clone(),
        );
        let websocket_connections = Gauge::default();
        registry.register(
            "medilink_websocket_connections",
            "Open WebSocket connections",
            websocket_connections.clone(),
        );
        let subscriptions = Gauge::default();
        registry.register(
            "medilink_subscriptions_active",
            "GraphQL subscriptions running on this instance",
            subscriptions.clone(),
        );
        let calls = Family::<StateLabels, Gauge>::default();
        registry.register(
            "medilink_calls_active",
            "Live calls by state, read from the database at scrape time: the same figure on \
             every instance of a deployment",
            calls.clone(),
        );
        let signal_family = Family::<KindLabels, Counter>::default();
        registry.register(
            "medilink_signals_relayed",
            "WebRTC signals relayed to the other participant of a call, by kind",
            signal_family.clone(),
        );
        let signals = [
            SignalKind::Offer,
            SignalKind::Answer,
            SignalKind::IceCandidate,
            SignalKind::Renegotiate,
            SignalKind::MediaState,
        ]
        .map(|kind| {
            signal_family.get_or_create_owned(&KindLabels {
                kind: signal_label(kind),
            })
        });
        let chat_messages = Counter::default();
        registry.register(
            "medilink_chat_messages",
            "Chat messages sent",
            chat_messages.clone(),
        );
        let webhook_events = Family::<WebhookLabels, Counter>::default();
        registry.register(
            "medilink_webhook_events",
            "Stripe webhook deliveries by event type and outcome",
            webhook_events.clone(),
        );
        let pool = Family::<StateLabels, Gauge>::default();
        registry.register(
            "medilink_db_pool_connections",
            "Open database connections, idle or in use",
            pool.clone(),
        );
        let pool_max = Gauge::default();
        registry.register(
            "medilink_db_pool_max_connections",
            "The most connections the database pool opens",
            pool_max.clone(),
        );
        registry.register(
            "medilink_db_calls",
            "Database calls (a statement or a transaction) since start; the reads of /metrics \
             itself are not counted",
            db.calls_counter(),
        );
        let cached_documents = Gauge::default();
        registry.register(
            "medilink_graphql_cached_documents",
            "Parsed GraphQL documents kept for reuse (only documents that validated)",
            cached_documents.clone(),
        );
        let cached_document_bytes = Gauge::default();
        registry.register(
            "medilink_graphql_cached_document_bytes",
            "The text of the parsed GraphQL documents kept, in bytes (bounded)",
            cached_document_bytes.clone(),
        );
        let fast_path_operations = Counter::default();
        registry.register(
            "medilink_websocket_fast_path_operations",
            "sendSignal and signals operations the socket served without the GraphQL executor",
            fast_path_operations.clone(),
        );
        Self {
            registry,
            operations: OperationNames::default(),
            requests,
            latency,
            websocket_connections,
            subscriptions,
            calls,
            signals,
            chat_messages,
            webhook_events,
            pool,
            pool_max,
            cached_documents,
            cached_document_bytes,
            fast_path_operations,
        }
    }

    /// An operation started on the socket's fast path.
    pub fn fast_path_operation(&self) {
        self.fast_path_operations.inc();
    }

    /// The size of the parsed-document cache, each time it changes.
    pub fn document_cache(&self, documents: usize, text_bytes: usize) {
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.cached_documents.set(gauge(documents));
        self.cached_document_bytes.set(gauge(text_bytes));
    }

    /// The `operation` label for an operation name (`None`: anonymous).
    pub fn operation(&self, name: Option<&str>) -> Arc<str> {
        self.operations.label(name)
    }

    /// One GraphQL operation; `duration` for queries and mutations, not subscriptions.
    pub fn graphql_request(
        &self,
        operation: Arc<str>,
        outcome: &'static str,
        duration: Option<Duration>,
    ) {
        if let Some(duration) = duration {
            self.latency
                .get_or_create(&OperationLabels {
                    operation: operation.clone(),
                })
                .observe(duration.as_secs_f64());
        }
        self.requests
            .get_or_create(&RequestLabels { operation, outcome })
            .inc();
    }

    /// Counts an open WebSocket until the returned guard is dropped.
    pub fn websocket_connected(&self) -> Held {
        Held::new(&self.websocket_connections)
    }

    /// Counts a running subscription until the returned guard is dropped.
    pub fn subscription_started(&self) -> Held {
        Held::new(&self.subscriptions)
    }

    pub fn signal_relayed(&self, kind: SignalKind) {
        let index = match kind {
            SignalKind::Offer => 0,
            SignalKind::Answer => 1,
            SignalKind::IceCandidate => 2,
            SignalKind::Renegotiate => 3,
            SignalKind::MediaState => 4,
        };
        self.signals[index].inc();
    }

    pub fn chat_message_sent(&self) {
        self.chat_messages.inc();
    }

    /// One webhook delivery; `event_type` is `None` when the body was not a verified event.
    pub fn webhook_event(&self, event_type: Option<&str>, outcome: WebhookOutcome) {
        let r#type = event_type
            .and_then(|t| WEBHOOK_TYPES.iter().find(|known| **known == t))
            .copied()
            .unwrap_or(OTHER);
        self.webhook_events
            .get_or_create(&WebhookLabels {
                r#type,
                outcome: outcome.as_str(),
            })
            .inc();
    }

    /// The text of a scrape, with the figures read at scrape time: the pool, and the live
    /// calls (`None` when they could not be read: their series are left out).
    pub fn render(&self, pool: PoolStats, calls: Option<LiveCalls>) -> Result<String, fmt::Error> {
        let gauge = |family: &Family<StateLabels, Gauge>, state, value: u64| {
            family
                .get_or_create(&StateLabels { state })
                .set(i64::try_from(value).unwrap_or(i64::MAX));
        };
        gauge(&self.pool, "idle", pool.idle);
        gauge(&self.pool, "in_use", pool.in_use);
        self.pool_max
            .set(i64::try_from(pool.max).unwrap_or(i64::MAX));
        match calls {
            Some(calls) => {
                gauge(&self.calls, "ringing", calls.ringing);
                gauge(&self.calls, "active", calls.active);
            }
            None => self.calls.clear(),
        }
        let mut text = String::new();
        prometheus_text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// The `outcome` for an error's `extensions.code`: the code itself when it is one of the
/// closed set, "other" otherwise.
pub fn error_outcome(code: &str) -> &'static str {
    ERROR_CODES
        .iter()
        .map(|c| c.as_str())
        .find(|c| *c == code)
        .unwrap_or(OTHER)
}

fn signal_label(kind: SignalKind) -> &'static str {
    match kind {
        SignalKind::Offer => "offer",
        SignalKind::Answer => "answer",
        SignalKind::IceCandidate => "ice_candidate",
        SignalKind::Renegotiate => "renegotiate",
        SignalKind::MediaState => "media_state",
    }
}

/// One unit of a gauge, given back when dropped.
#[must_use]
pub struct Held(Gauge);

impl Held {
    fn new(gauge: &Gauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The operation names seen so far, each kept once and shared by every series that uses it.
struct OperationNames {
    anonymous: Arc<str>,
    other: Arc<str>,
    seen: RwLock<HashSet<Arc<str>>>,
}

impl Default for OperationNames {
    fn default() -> Self {
        Self {
            anonymous: Arc::from(ANONYMOUS),
            other: Arc::from(OTHER),
            seen: RwLock::default(),
        }
    }
}

impl OperationNames {
    fn label(&self, name: Option<&str>) -> Arc<str> {
        let Some(name) = name else {
            return self.anonymous.clone();
        };
        if !is_plain_name(name) {
            return self.other.clone();
        }
        if let Some(known) = self
            .seen
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
        {
            return known.clone();
        }
        let mut seen = self.seen.write().unwrap_or_else(|p| p.into_inner());
        if let Some(known) = seen.get(name) {
            return known.clone();
        }
        if seen.len() >= MAX_OPERATION_NAMES {
            return self.other.clone();
        }
        let label: Arc<str> = Arc::from(name);
        seen.insert(label.clone());
        label
    }
}

/// A GraphQL name (`/[_A-Za-z][_0-9A-Za-z]*/`) of at most 64 bytes.
fn is_plain_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    name.len() <= MAX_OPERATION_NAME_BYTES
        && bytes
            .next()
            .is_some_and(|b| b == b'_' || b.is_ascii_alphabetic())
        && bytes.all(|b| b == b'_' || b.is_ascii_alphanumeric())
}
