//! Who is asking: the bearer token of a request, checked against the database at most once per
//! request and only when a resolver needs it (public operations never pay for it).

use std::sync::Arc;

use async_graphql::Context;
use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::error::{AppError, AppResult};
use crate::events::Event;
use crate::limits::ClientIp;
use crate::realtime::bus::Topic;
use crate::state::AppState;
use crate::users;

pub struct Session {
    bearer: Option<String>,
    /// The checked viewer; the lock also makes concurrent resolvers share one check.
    viewer: Mutex<Option<AppResult<AuthUser>>>,
}

impl Session {
    pub fn new(bearer: Option<String>) -> Self {
        Self {
            bearer,
            viewer: Mutex::new(None),
        }
    }

    /// A session whose user was checked when its WebSocket opened. It outlives the access
    /// token; revoking the user closes the socket instead.
    pub fn authenticated(user: AuthUser) -> Self {
        Self {
            bearer: None,
            viewer: Mutex::new(Some(Ok(user))),
        }
    }
}

pub fn state<'a>(ctx: &Context<'a>) -> &'a AppState {
    ctx.data_unchecked::<AppState>()
}

/// The address the request came from (through trusted proxies); both transports set it.
pub fn client_ip(ctx: &Context<'_>) -> ClientIp {
    *ctx.data_unchecked::<ClientIp>()
}

/// The signed-in user, or UNAUTHENTICATED / FORBIDDEN saying why not.
pub async fn viewer(ctx: &Context<'_>) -> AppResult<AuthUser> {
    checked(ctx).await?.ok_or_else(not_signed_in)
}

/// The signed-in user, or `None` for a request without a token; for deciding what to show. A
/// token that does not hold (invalid, expired, revoked) fails as in [`viewer`] rather than
/// passing for anonymous: the client would otherwise see less than it asked for and not know why.
pub async fn optional_viewer(ctx: &Context<'_>) -> AppResult<Option<AuthUser>> {
    checked(ctx).await
}

/// The session's user, checked once; `None` without a session or a token.
async fn checked(ctx: &Context<'_>) -> AppResult<Option<AuthUser>> {
    let Some(session) = ctx.data_opt::<Arc<Session>>() else {
        return Ok(None);
    };
    let mut slot = session.viewer.lock().await;
    if let Some(known) = slot.as_ref() {
        return known.clone().map(Some);
    }
    let Some(token) = session.bearer.as_deref() else {
        return Ok(None);
    };
    let checked = users::service::authenticate(state(ctx), token).await;
    if let Ok(user) = &checked {
        log_as(user);
    }
    *slot = Some(checked.clone());
    checked.map(Some)
}

/// Puts `user` on the current request's (or connection's) span: the log lines it causes from
/// now on say who it was.
pub fn log_as(user: &AuthUser) {
    tracing::Span::current().record("user", tracing::field::display(user.id));
}

/// Makes `user` the viewer for the rest of this request, after it signed in with it.
pub async fn signed_in(ctx: &Context<'_>, user: AuthUser) {
    log_as(&user);
    if let Some(session) = ctx.data_opt::<Arc<Session>>() {
        *session.viewer.lock().await = Some(Ok(user));
    }
}

fn not_signed_in() -> AppError {
    AppError::unauthenticated("sign in first: send `Authorization: Bearer <access token>`")
}

/// The event a dormant subscription's execution renders (see [`super::dormant`]); `None` when
/// it is only checked.
pub struct Given(pub Option<Event>);

/// What the resolver of a subscription to a user's events streams: the given event when the
/// socket runs the subscription per event, else the user's events from the bus. Resolvers call
/// this and need not know which.
pub fn user_events(ctx: &Context<'_>, state: &AppState, user: Uuid) -> BoxStream<'static, Event> {
    match ctx.data_opt::<Given>() {
        Some(Given(event)) => stream::iter(event.clone()).boxed(),
        None => state.realtime.bus.subscribe(Topic::User(user)),
    }
}
