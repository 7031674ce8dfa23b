//! `/graphql/ws`: the graphql-transport-ws protocol, written out so that every close code is
//! the protocol's, the server pings, a revoked user's sockets can be closed from outside, and a
//! stopping instance sends its sockets away once their queries and mutations have answered.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_graphql::parser::types::OperationType;
use async_graphql::{ErrorExtensionValues, Request, Response, ServerError};
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response as HttpResponse};
use futures_util::stream::{self, BoxStream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio_stream::StreamMap;
use tokio_util::task::task_tracker::TaskTrackerToken;
use tracing::Instrument;

use super::{HttpState, REQUEST_ID};
use crate::auth::AuthUser;
use crate::auth::tokens::Claims;
use crate::calls;
use crate::calls::socket::{Delivery, Served, SignalWatches};
use crate::enum_name::EnumName;
use crate::error::{AppError, ErrorCode};
use crate::events::Event;
use crate::graphql::context::Given;
use crate::graphql::context::{Session, log_as};
use crate::limits::{ClientIp, ConnectionPermit};
use crate::metrics::Held;
use crate::realtime::bus::Topic;
use crate::realtime::presence::Connection;
use crate::realtime::protocol::{
    ClientMessage, SUBPROTOCOL, ServerMessage, SubscribePayload, close, complete_frame, init_token,
    next_frame,
};
use crate::schema::documents::{Prepared, is_request_error};
use crate::schema::{complete_errors, execution, with_request_data};
use crate::users;

/// tungstenite reads in chunks of this size, allocated per socket up front (128 KiB by
/// default) and held while the socket idles. A relayed ICE candidate, the message that repeats,
/// is 300 to 600 bytes; an SDP offer of several KiB grows the buffer to its size and is read
/// in a few chunks.
const READ_BUFFER_BYTES: usize = 1024;
/// Frames fed (not sent) wait in the write buffer until it holds this many bytes.
const WRITE_BUFFER_BYTES: usize = 8 * 1024;
/// Frames queued for a peer that does not read before the socket is dropped.
const MAX_WRITE_BUFFER_BYTES: usize = 4 * 1024 * 1024;
/// The largest message a client may send before `connection_init` has been answered: an init
/// payload holds a token and little else. Larger frames are still read up to the socket's
/// limit (`MEDILINK_MAX_BODY_BYTES`), which is fixed when the socket opens.
const MAX_MESSAGE_BYTES_BEFORE_INIT: usize = 4 * 1024;
/// The reason of the 1001 close a stopping instance sends; clients reconnect after it.
const RESTARTING: &str = "Server restarting";

/// What a client refused for having too many sockets open is told to wait: no telling when one
/// of them closes, and a few seconds keep its retries cheap.
const CONNECTION_CAP_RETRY: Duration = Duration::from_secs(5);

/// Refuses the upgrade with 429 before anything is allocated for the socket when the client's
/// address has too many connections open or opens them too fast.
pub async fn upgrade(
    ws: WebSocketUpgrade,
    client: ClientIp,
    State(state): State<HttpState>,
    headers: HeaderMap,
) -> HttpResponse {
    // A stopping instance takes no new socket: the client retries, and the load balancer sends
    // it to another instance.
    let Some(open) = state.app.shutdown.socket() else {
        return AppError::unavailable("the server is restarting; connect again").into_response();
    };
    let limits = &state.app.limits;
    let Some(permit) = limits.ws_connections_per_ip.acquire(client.limit_key()) else {
        return too_many_connections(CONNECTION_CAP_RETRY);
    };
    if let Err(wait) = limits.ws_connects_per_ip.check(client.limit_key()) {
        return too_many_connections(wait);
    }
    let request_id = headers
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    // The socket lives in a task of its own: it keeps the upgrade request's span (its id, and
    // the user once signed in) so that every line the connection causes carries them.
    let span = tracing::Span::current();
    // tungstenite refuses a frame by its header, before reading it, past max_frame_size.
    let max_message = state.app.config.max_body_bytes;
    ws.protocols([SUBPROTOCOL])
        .max_message_size(max_message)
        .max_frame_size(max_message)
        .read_buffer_size(READ_BUFFER_BYTES)
        // Frames fed without a send wait for it up to this size; every send flushes them.
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(MAX_WRITE_BUFFER_BYTES)
        .on_upgrade(move |socket| {
            serve(socket, state, client, (permit, open), request_id).instrument(span)
        })
}

fn too_many_connections(wait: Duration) -> HttpResponse {
    AppError::rate_limited(
        "too many connections from your address; try again later",
        wait,
    )
    .into_response()
}

/// How a socket ended, for its last log line.
#[derive(Clone, Copy)]
enum Ended {
    /// We closed it with this code.
    Server(u16),
    /// The client closed it with this code (1005: none given).
    Client(u16),
    /// It broke without a close handshake.
    Dropped,
}

/// What one operation yields on the socket.
enum Outgoing {
    /// A result, and whether its operation is a subscription (which stays open after it).
    Response(Box<Response>, bool),
    Done,
}

enum Incoming {
    Message(ClientMessage),
    Invalid(&'static str),
    /// A frame or message over the socket's size limit.
    TooBig,
    /// The client closed with this code; the close handshake still needs our reply.
    Closing(u16),
    Closed,
    Ignored,
}

fn read(message: Option<Result<Message, axum::Error>>, max_bytes: usize) -> Incoming {
    match message {
        Some(Ok(Message::Close(frame))) => Incoming::Closing(frame.map_or(1005, |f| f.code)),
        Some(Err(error)) if is_capacity(&error) => Incoming::TooBig,
        None | Some(Err(_)) => Incoming::Closed,
        Some(Ok(Message::Text(text))) if text.len() > max_bytes => Incoming::TooBig,
        Some(Ok(Message::Text(text))) => match ClientMessage::from_json(text.as_str()) {
            Ok(message) => Incoming::Message(message),
            Err(_) => Incoming::Invalid("Invalid message received"),
        },
        Some(Ok(Message::Binary(_))) => Incoming::Invalid("Binary messages are not supported"),
        Some(Ok(Message::Ping(_) | Message::Pong(_))) => Incoming::Ignored,
    }
}

fn is_capacity(error: &axum::Error) -> bool {
    std::error::Error::source(error)
        .and_then(|e| e.downcast_ref::<tungstenite::Error>())
        .is_some_and(|e| matches!(e, tungstenite::Error::Capacity(_)))
}

/// Closes a socket that sent a message over its limit, with the protocol's "Message Too Big".
async fn too_big(socket: &mut WebSocket) -> Ended {
    close_with(socket, close::MESSAGE_TOO_BIG, "Message too big").await
}

/// Sends `message` and everything fed before it.
async fn send(socket: &mut WebSocket, message: &ServerMessage<'_>) -> bool {
    match serde_json::to_string(message) {
        Ok(text) => socket.send(Message::Text(text.into())).await.is_ok(),
        Err(_) => false,
    }
}

/// Closes with `code`; the reason is cut to the 123 bytes a close frame allows.
async fn close_with(socket: &mut WebSocket, code: u16, reason: &str) -> Ended {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from(&reason[..end]),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
    Ended::Server(code)
}

/// Answers the client's close.
async fn closing(socket: &mut WebSocket, code: u16) -> Ended {
    let _ = socket.send(Message::Close(None)).await;
    Ended::Client(code)
}

/// Serves one socket; `held` (its place among its address's connections, and among the
/// instance's open sockets) is released when it ends.
///
/// A socket's future stays allocated for as long as the socket is open, so its size counts:
/// this is a plain function returning an `async move` block because an `async fn` keeps its
/// arguments twice (captured, and moved into its body), and the futures of `connection` and
/// `run` are boxed: nested inline, they would set the size of every socket's task.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would keep its arguments twice"
)]
fn serve(
    mut socket: WebSocket,
    state: HttpState,
    client: ClientIp,
    held: (ConnectionPermit, TaskTrackerToken),
    request_id: String,
) -> impl Future<Output = ()> {
    async move {
        let _held = held;
        let _connected = state.app.metrics.websocket_connected();
        let opened = Instant::now();
        let ended = Box::pin(connection(&mut socket, &state, client, &request_id)).await;
        let (code, closed_by) = match ended {
            Ended::Server(code) => (Some(code), "server"),
            Ended::Client(code) => (Some(code), "client"),
            Ended::Dropped => (None, "network"),
        };
        tracing::info!(
            code,
            closed_by,
            duration_ms = u64::try_from(opened.elapsed().as_millis()).unwrap_or(u64::MAX),
            "socket closed"
        );
    }
}

async fn connection(
    socket: &mut WebSocket,
    state: &HttpState,
    client: ClientIp,
    request_id: &str,
) -> Ended {
    // The futures awaited only while the socket opens and closes are boxed: inline, the largest
    // of them would set the size of every socket's future for its whole life.
    let config = state.app.config.clone();
    let init_timeout = Duration::from_secs(config.ws_init_timeout_secs);
    let claims = match Box::pin(handshake(socket, state, init_timeout)).await {
        Ok(claims) => claims,
        Err(ended) => return ended,
    };
    let user_id = claims.sub;
    let realtime = &state.app.realtime;
    let presence = realtime.presence.clone();
    // The socket is registered for forced closes before its token is checked against the
    // account: a logout or block that lands in between is then either seen by the check or
    // closes the socket, never neither.
    let Connection { id, mut kicked } = match Box::pin(presence.connect(user_id)).await {
        Ok(connection) => connection,
        Err(error) => {
            tracing::warn!(error = %error.0, "cannot record a connection in presence");
            return close_with(socket, close::TRY_AGAIN_LATER, "Presence unavailable").await;
        }
    };
    // Before the check and the ack, this instance is listening to the user's events (kicks
    // from other instances included) and to doctor statuses wherever they are published.
    let holds = futures_util::future::join(
        realtime.bus.hold(Topic::User(user_id)),
        realtime.bus.hold(Topic::DoctorStatus),
    )
    .await;
    let checked = Box::pin(users::service::check(&state.app, &claims)).await;
    let ended = if let Ok(user) = checked {
        log_as(&user);
        Box::pin(acknowledged(
            socket,
            state,
            user,
            client,
            request_id,
            &mut kicked,
        ))
        .await
    } else {
        close_with(socket, close::FORBIDDEN, "Forbidden").await
    };
    drop(holds);
    match Box::pin(presence.disconnect(user_id, id)).await {
        Ok(true) => calls::service::connection_lost(&state.app),
        Ok(false) => {}
        Err(error) => {
            tracing::warn!(error = %error.0, "cannot record a closed connection in presence")
        }
    }
    ended
}

/// Acknowledges the checked connection and serves it.
async fn acknowledged(
    socket: &mut WebSocket,
    state: &HttpState,
    user: AuthUser,
    client: ClientIp,
    request_id: &str,
    kicked: &mut (impl Future + Unpin),
) -> Ended {
    let config = &state.app.config;
    if send(socket, &ServerMessage::ConnectionAck).await {
        tracing::info!(role = user.role.as_str(), "socket opened");
        Box::pin(run(
            socket,
            state,
            user,
            client,
            request_id,
            kicked,
            Duration::from_secs(config.ws_ping_interval_secs),
        ))
        .await
    } else {
        Ended::Dropped
    }
}

/// Waits for `connection_init` and reads its token's claims (signed, unexpired; the account is
/// checked after the socket is registered); how the socket ended if it did.
async fn handshake(
    socket: &mut WebSocket,
    state: &HttpState,
    timeout: Duration,
) -> Result<Claims, Ended> {
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let going_away = state.app.shutdown.going_away();
    tokio::pin!(going_away);
    loop {
        tokio::select! {
            () = &mut going_away => {
                return Err(close_with(socket, close::GOING_AWAY, RESTARTING).await);
            }
            () = &mut deadline => {
                return Err(close_with(socket, close::INIT_TIMEOUT, "Connection initialisation timeout").await);
            }
            message = socket.recv() => match read(message, MAX_MESSAGE_BYTES_BEFORE_INIT) {
                Incoming::Closed => return Err(Ended::Dropped),
                Incoming::TooBig => return Err(too_big(socket).await),
                Incoming::Closing(code) => return Err(closing(socket, code).await),
                Incoming::Ignored => {}
                Incoming::Invalid(reason) => {
                    return Err(close_with(socket, close::BAD_MESSAGE, reason).await);
                }
                Incoming::Message(ClientMessage::ConnectionInit { payload }) => {
                    let claims = init_token(payload.as_ref())
                        .and_then(|token| users::service::decode(&state.app, &token).ok());
                    return match claims {
                        Some(claims) => Ok(claims),
                        None => Err(close_with(socket, close::FORBIDDEN, "Forbidden").await),
                    };
                }
                Incoming::Message(ClientMessage::Ping { .. }) => {
                    send(socket, &ServerMessage::Pong).await;
                }
                Incoming::Message(ClientMessage::Pong { .. }) => {}
                Incoming::Message(ClientMessage::Subscribe { .. } | ClientMessage::Complete { .. }) => {
                    return Err(close_with(socket, close::UNAUTHORIZED, "Unauthorized").await);
                }
            }
        }
    }
}

async fn run(
    socket: &mut WebSocket,
    state: &HttpState,
    user: AuthUser,
    client: ClientIp,
    request_id: &str,
    kicked: &mut (impl Future + Unpin),
    ping_every: Duration,
) -> Ended {
    let max_message_bytes = state.app.config.max_body_bytes;
    let mut socket_operations = Operations::new(state, user, client, request_id);
    let ops = &mut socket_operations;
    let going_away = state.app.shutdown.going_away();
    tokio::pin!(going_away);
    let mut ping = tokio::time::interval(ping_every);
    ping.tick().await;
    // Ping intervals since the client last said anything: counted at each ping rather than
    // read from the clock at each message.
    let mut silent_intervals = 0u32;
    loop {
        if ops.leaving && ops.streams.is_empty() {
            return Box::pin(close_with(socket, close::GOING_AWAY, RESTARTING)).await;
        }
        // Each turn writes its frames into `ops.frames` without waiting; they leave in one
        // write at its end. Biased: operations are driven until they are all pending before
        // the next client message is read, so a subscription is listening before anything
        // sent after it runs.
        let turn = tokio::select! {
            biased;
            _ = &mut *kicked => Turn::Close(close::FORBIDDEN, "Forbidden".into()),
            () = &mut going_away, if !ops.leaving => {
                ops.leave();
                Turn::Continue
            }
            Some((id, outgoing)) = ops.streams.next(), if !ops.streams.is_empty() => {
                ops.answer(id, outgoing);
                Turn::Continue
            }
            Some(event) = ops.watches.next_event() => {
                ops.deliver(event);
                Turn::Continue
            }
            _ = ping.tick() => {
                if silent_intervals >= 3 {
                    Turn::Close(close::GOING_AWAY, "No answer to pings".into())
                } else {
                    silent_intervals += 1;
                    ops.write(&ServerMessage::Ping);
                    Turn::Continue
                }
            }
            message = socket.recv() => {
                silent_intervals = 0;
                ops.receive(read(message, max_message_bytes))
            }
        };
        if !ops.frames.is_empty() && !send_frames(socket, &mut ops.frames).await {
            return Ended::Dropped;
        }
        match turn {
            Turn::Continue => {}
            Turn::Close(code, reason) => {
                return Box::pin(close_with(socket, code, &reason)).await;
            }
            Turn::Closing(code) => return Box::pin(closing(socket, code)).await,
            Turn::TooBig => return Box::pin(too_big(socket)).await,
            Turn::Dropped => return Ended::Dropped,
        }
    }
}

/// What a turn of the socket's loop came to, beside the frames it wrote.
enum Turn {
    Continue,
    /// Close with this code and reason.
    Close(u16, Cow<'static, str>),
    /// The client closed with this code; our reply completes the handshake.
    Closing(u16),
    TooBig,
    Dropped,
}

/// A signed-in socket's operations, and the frames written for it during the current turn.
struct Operations<'a> {
    state: &'a HttpState,
    user: AuthUser,
    client: ClientIp,
    request_id: &'a str,
    max_operations: usize,
    /// Operations that run as streams: through the executor, dormant, or direct but waiting.
    streams: StreamMap<String, BoxStream<'static, Outgoing>>,
    /// Which streams are subscriptions: when the instance stops, those end without
    /// `complete`, so that the client starts them again on its next socket.
    subscriptions: HashSet<String>,
    /// `signals` operations served from one queue of the user's events, without a stream each.
    watches: SignalWatches<Option<Held>>,
    frames: Vec<String>,
    /// The instance is stopping: nothing new starts.
    leaving: bool,
}

impl<'a> Operations<'a> {
    fn new(state: &'a HttpState, user: AuthUser, client: ClientIp, request_id: &'a str) -> Self {
        Self {
            state,
            user,
            client,
            request_id,
            max_operations: state.app.config.ws_max_subscriptions,
            streams: StreamMap::new(),
            subscriptions: HashSet::new(),
            watches: SignalWatches::default(),
            frames: Vec::new(),
            leaving: false,
        }
    }

    fn write(&mut self, message: &ServerMessage<'_>) {
        // Nothing the server sends fails to serialize; the frame would only be left out.
        if let Ok(text) = serde_json::to_string(message) {
            self.frames.push(text);
        }
    }

    /// The instance is stopping: subscriptions end without `complete`, queries and mutations
    /// finish.
    fn leave(&mut self) {
        self.leaving = true;
        for id in self.subscriptions.drain() {
            self.streams.remove(&id);
        }
        self.watches.clear();
    }

    fn answer(&mut self, id: String, outgoing: Outgoing) {
        match outgoing {
            Outgoing::Response(mut response, subscription) => {
                complete_errors(&mut response, self.request_id);
                if is_request_error(&response) {
                    self.end(&id);
                    self.write(&ServerMessage::Error {
                        id: &id,
                        payload: &response.errors,
                    });
                } else {
                    self.write(&ServerMessage::Next {
                        id: &id,
                        payload: &response,
                    });
                    if !subscription {
                        // A query or mutation has one result: its `complete` leaves in the
                        // same write (a signal costs its sender one write, not two).
                        self.end(&id);
                        self.write(&ServerMessage::Complete { id: &id });
                    }
                }
            }
            Outgoing::Done => {
                self.end(&id);
                self.write(&ServerMessage::Complete { id: &id });
            }
        }
    }

    fn end(&mut self, id: &str) {
        self.streams.remove(id);
        self.subscriptions.remove(id);
    }

    /// Writes what `event` means for the watching operations, and for every event already
    /// queued behind it.
    fn deliver(&mut self, event: Event) {
        let mut next = Some(event);
        while let Some(event) = next {
            let frames = &mut self.frames;
            self.watches.deliver(&event, |id, delivery| {
                frames.push(match delivery {
                    Delivery::Next(payload) => next_frame(id, &payload),
                    Delivery::Ended => complete_frame(id),
                });
            });
            next = self.watches.next_event().now_or_never().flatten();
        }
    }

    fn receive(&mut self, incoming: Incoming) -> Turn {
        match incoming {
            Incoming::Closed => Turn::Dropped,
            Incoming::TooBig => Turn::TooBig,
            Incoming::Closing(code) => Turn::Closing(code),
            Incoming::Ignored | Incoming::Message(ClientMessage::Pong { .. }) => Turn::Continue,
            Incoming::Invalid(reason) => Turn::Close(close::BAD_MESSAGE, reason.into()),
            Incoming::Message(ClientMessage::ConnectionInit { .. }) => Turn::Close(
                close::TOO_MANY_INITS,
                "Too many initialisation requests".into(),
            ),
            Incoming::Message(ClientMessage::Ping { .. }) => {
                self.write(&ServerMessage::Pong);
                Turn::Continue
            }
            // Going away, nothing new starts: the client sends it again on its next socket.
            Incoming::Message(ClientMessage::Subscribe { .. }) if self.leaving => Turn::Continue,
            Incoming::Message(ClientMessage::Subscribe { id, payload }) => {
                self.subscribe(id, *payload)
            }
            Incoming::Message(ClientMessage::Complete { id }) => {
                self.end(&id);
                self.watches.remove(&id);
                Turn::Continue
            }
        }
    }

    fn subscribe(&mut self, id: String, payload: SubscribePayload) -> Turn {
        if self.streams.contains_key(&id) || self.watches.contains(&id) {
            let reason = format!("Subscriber for {id} already exists");
            return Turn::Close(close::DUPLICATE_ID, reason.into());
        }
        if self.streams.len() + self.watches.len() >= self.max_operations {
            let refused = too_many_operations(self.max_operations);
            self.write(&ServerMessage::Error {
                id: &id,
                payload: &refused,
            });
            return Turn::Continue;
        }
        let (state, user) = (self.state, self.user);
        let served = state
            .documents
            .cached_direct(&payload.query, payload.operation_name.as_deref())
            .and_then(|direct| {
                let variables = payload.variables.as_deref();
                execution::serve_now(&direct, &state.app, user, variables)
            });
        match served {
            Some((Served::Sent(payload), _)) => {
                self.frames.push(next_frame(&id, &payload));
                self.frames.push(complete_frame(&id));
            }
            // Its one response ends it, as the last of a stream's would; a refused
            // subscription is answered as a query is.
            Some((Served::Failed(response), _)) => {
                self.answer(id, Outgoing::Response(Box::new(response), false));
            }
            // Only `sendSignal` waits: a mutation, one response.
            Some((Served::Pending(responses), _)) => self.run_stream(id, responses, false),
            Some((Served::Watching(watch), held)) => {
                self.watches.insert(&state.app, user, id, watch, held);
            }
            None => {
                let Some((kind, responses)) = start(state, user, self.client, payload) else {
                    return Turn::Close(close::BAD_MESSAGE, "Invalid message received".into());
                };
                self.run_stream(id, responses, kind == Some(OperationType::Subscription));
            }
        }
        Turn::Continue
    }

    /// Runs operation `id` as a stream of `responses`, ended by `complete`.
    fn run_stream(
        &mut self,
        id: String,
        responses: BoxStream<'static, Response>,
        subscription: bool,
    ) {
        if subscription {
            self.subscriptions.insert(id.clone());
        }
        let responses = responses
            .map(move |r| Outgoing::Response(Box::new(r), subscription))
            .chain(stream::once(async { Outgoing::Done }));
        self.streams.insert(id, responses.boxed());
    }
}

/// Sends the frames written during a turn in one write, and empties `frames`.
async fn send_frames(socket: &mut WebSocket, frames: &mut Vec<String>) -> bool {
    let last = frames.len().saturating_sub(1);
    for (i, frame) in frames.drain(..).enumerate() {
        let message = Message::Text(frame.into());
        let sent = if i == last {
            socket.send(message).await
        } else {
            socket.feed(message).await
        };
        if sent.is_err() {
            return false;
        }
    }
    true
}

/// The `error` message's payload for a `subscribe` past the socket's limit of operations at
/// once; the socket and its other operations go on.
fn too_many_operations(limit: usize) -> Vec<ServerError> {
    let mut error = ServerError::new(
        format!("this socket already runs {limit} operations; complete one first"),
        None,
    );
    let mut extensions = ErrorExtensionValues::default();
    extensions.set("code", ErrorCode::RateLimited.as_str());
    error.extensions = Some(extensions);
    vec![error]
}

/// Starts the operation of a `subscribe` payload for the socket's `user`: the type of its
/// operation (`None` if it does not parse: it fails at once) and its responses; `None` if the
/// payload's variables are not JSON the executor takes.
///
/// Each operation has a session of its own: `login`, `register` and `refreshToken` sent over
/// the socket answer with their tokens, but the socket stays the user who opened it, whom
/// forced closes are keyed on.
fn start(
    state: &HttpState,
    user: AuthUser,
    client: ClientIp,
    payload: SubscribePayload,
) -> Option<(Option<OperationType>, BoxStream<'static, Response>)> {
    if let Some(variables) = &payload.variables
        && let Some(direct) = state
            .documents
            .cached_direct(&payload.query, payload.operation_name.as_deref())
    {
        let kind = direct.kind;
        if let Some(responses) =
            execution::execute_direct_from_json(direct, &state.app, user, variables)
        {
            return Some((Some(kind), responses.boxed()));
        }
    }
    let mut request = payload.into_request().ok()?;
    // Made only for the executor: the direct path, which relays signals, needs none.
    let session = Arc::new(Session::authenticated(user));
    let candidate = match state.documents.prepare(&mut request) {
        Prepared::Refused(refused) => {
            return Some((None, stream::once(async { refused }).boxed()));
        }
        Prepared::Direct(direct) => {
            let kind = direct.kind;
            if let Some(responses) =
                execution::execute_direct(direct, &state.app, user, &request.variables)
            {
                return Some((Some(kind), responses.boxed()));
            }
            None
        }
        Prepared::Dormant(wake, candidate) => {
            // Listening from now on, before anything the client sends next runs.
            let events = wake.events(&state.app, user.id);
            let (app, documents, session) =
                (state.app.clone(), state.documents.clone(), session.clone());
            let query = std::mem::take(&mut request.query);
            let operation_name = request.operation_name.take();
            let variables = std::mem::take(&mut request.variables);
            let request = move |given: Given| {
                let mut request = Request::new(query.clone()).variables(variables.clone());
                request.operation_name.clone_from(&operation_name);
                documents.prepare(&mut request);
                with_request_data(request, &app, session.clone())
                    .data(client)
                    .data(given)
            };
            let metrics = &state.app.metrics;
            let responses =
                execution::execute_dormant(&state.schema, metrics, events, request, candidate);
            return Some((Some(OperationType::Subscription), responses.boxed()));
        }
        Prepared::Execute(candidate) => candidate,
    };
    let request = with_request_data(request, &state.app, session).data(client);
    let metrics = &state.app.metrics;
    let (kind, responses) = execution::execute_stream(&state.schema, metrics, request, candidate);
    Some((kind, responses.boxed()))
}
