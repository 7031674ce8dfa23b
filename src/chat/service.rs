//! Chat rules: who may read and write which channel, body limits, rate limits, retention.

use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use uuid::Uuid;

use super::model::{Channel, ChatMessage};
use super::repo;
use crate::appointments;
use crate::auth::{AuthUser, Role};
use crate::calls;
use crate::doctors;
use crate::error::{AppError, AppResult};
use crate::events::Event;
use crate::pagination::{Page, decode_time_id, encode_cursor, time_id};
use crate::realtime::bus::Topic;
use crate::state::AppState;
use crate::users;

const BODY_MAX_CHARS: usize = 4000;
const MAX_PAGE: usize = 100;

/// The key of a channel the viewer may use; FORBIDDEN (or NOT_FOUND) otherwise.
pub async fn channel(state: &AppState, viewer: AuthUser, channel: Channel) -> AppResult<String> {
    match channel {
        Channel::Lobby => Ok(channel_name(viewer, &Channel::Lobby)),
        Channel::Appointment(id) => {
            let appointment = appointments::service::get(state, viewer, id).await?;
            let doctor_user = doctor_user(state, appointment.doctor_id).await?;
            if viewer.id != appointment.patient_id && viewer.id != doctor_user {
                return Err(AppError::forbidden(
                    "only the appointment's doctor and patient can use its chat",
                ));
            }
            Ok(channel_name(viewer, &Channel::Appointment(appointment.id)))
        }
        Channel::Direct(other) => {
            if other == viewer.id {
                return Err(AppError::bad_input("userId", "that is you"));
            }
            let other_user = users::service::find_many(state, &[other])
                .await?
                .remove(&other)
                .ok_or_else(|| AppError::not_found("no user has this id").with_field("userId"))?;
            // A call answered on demand has no appointment; its two people may chat too.
            let allowed = viewer.is_admin()
                || other_user.role == Role::Admin
                || appointments::service::share_an_appointment(state, viewer.id, other).await?
                || calls::service::shared_a_call(state, viewer.id, other).await?;
            if !allowed {
                return Err(AppError::forbidden(
                    "you can message people you share an appointment or a call with",
                ));
            }
            Ok(channel_name(viewer, &Channel::Direct(other)))
        }
    }
}

/// The name of `channel` as `viewer` reaches it, before any check: the same for both people of
/// a direct channel.
fn channel_name(viewer: AuthUser, channel: &Channel) -> String {
    match *channel {
        Channel::Lobby => "lobby".into(),
        Channel::Appointment(id) => format!("appointment:{id}"),
        Channel::Direct(other) => {
            let (a, b) = if viewer.id < other {
                (viewer.id, other)
            } else {
                (other, viewer.id)
            };
            format!("direct:{a}:{b}")
        }
    }
}

async fn doctor_user(state: &AppState, doctor_id: Uuid) -> AppResult<Uuid> {
    doctors::service::find_many(state, &[doctor_id])
        .await?
        .remove(&doctor_id)
        .map(|d| d.user_id)
        .ok_or_else(|| AppError::not_found("the doctor no longer exists"))
}

pub async fn send(
    state: &AppState,
    viewer: AuthUser,
    channel_input: Channel,
    body: &str,
) -> AppResult<ChatMessage> {
    let body = body.trim();
    let chars = body.chars().count();
    if chars == 0 || chars > BODY_MAX_CHARS {
        return Err(AppError::bad_input(
            "body",
            format!("a message has 1 to {BODY_MAX_CHARS} characters"),
        ));
    }
    let channel = channel(state, viewer, channel_input).await?;
    state
        .limits
        .chat_per_user
        .check(viewer.id)
        .map_err(|wait| AppError::rate_limited("too many messages; wait a moment", wait))?;
    let message = ChatMessage {
        id: Uuid::now_v7(),
        channel,
        sender_id: viewer.id,
        body: body.to_owned(),
        created_at: state.clock.now(),
    };
    let keep =
        (message.channel == "lobby").then_some(i64::from(state.config.lobby_retained_messages));
    repo::insert(&state.db, &message, keep).await?;
    // Never the body.
    tracing::debug!(message_id = %message.id, channel = %message.channel, "chat message sent");
    state.realtime.bus.publish(
        Topic::Chat(message.channel.clone()),
        Event::Chat(Arc::new(message.clone())),
    );
    state.metrics.chat_message_sent();
    Ok(message)
}

/// The `last` messages before the cursor `before`, oldest first.
pub async fn history(
    state: &AppState,
    viewer: AuthUser,
    channel_input: Channel,
    last: Option<i32>,
    before: Option<String>,
) -> AppResult<(String, Page<ChatMessage>)> {
    let channel = channel(state, viewer, channel_input).await?;
    let last = match last {
        None => 20,
        Some(n) => usize::try_from(n)
            .ok()
            .filter(|n| *n <= MAX_PAGE)
            .ok_or_else(|| {
                AppError::bad_input("last", format!("last must be between 0 and {MAX_PAGE}"))
            })?,
    };
    let before_key = before
        .as_deref()
        .map(decode_time_id)
        .transpose()
        .map_err(|e| e.with_field("before"))?;
    let mut rows = repo::before(&state.db, &channel, before_key.as_ref(), last + 1).await?;
    let has_previous_page = rows.len() > last;
    rows.truncate(last);
    rows.reverse();
    let edges = rows
        .into_iter()
        .map(|m| (encode_cursor(&time_id(m.created_at, m.id)), m))
        .collect();
    Ok((
        channel,
        Page {
            edges,
            has_previous_page,
            has_next_page: before.is_some(),
        },
    ))
}

pub async fn count(state: &AppState, channel: &str) -> AppResult<i64> {
    Ok(repo::count(&state.db, channel).await?)
}

/// New messages on a channel the viewer may read.
pub async fn added(
    state: &AppState,
    viewer: AuthUser,
    channel_input: Channel,
) -> AppResult<BoxStream<'static, ChatMessage>> {
    // Listening starts before the check, which waits for the database: a client that
    // subscribed and then made a round trip must not miss the message sent next.
    let bus = &state.realtime.bus;
    let events = bus.subscribe(Topic::Chat(channel_name(viewer, &channel_input)));
    let channel = channel(state, viewer, channel_input).await?;
    // With several instances, messages sent elsewhere reach this one once the hold is in.
    let hold = bus.hold(Topic::Chat(channel)).await;
    Ok(events
        .filter_map(move |event| {
            let _holding = &hold;
            std::future::ready(match event {
                Event::Chat(message) => Some(Arc::unwrap_or_clone(message)),
                _ => None,
            })
        })
        .boxed())
}
