use std::sync::Arc;

use async_graphql::{Context, ID, InputObject, Object, OneofObject, Subscription};
use chrono::{DateTime, Utc};
use futures_util::Stream;

use super::model::{Channel, ChatMessage};
use super::service;
use crate::error::{AppError, AppResult};
use crate::graphql::connection::{Connection, connection};
use crate::graphql::context::{state, viewer};
use crate::graphql::ids::parse_id;
use crate::graphql::loaders::{loader, prefetch};
use crate::users::loaders::UserLoader;
use crate::users::model::User;

#[derive(Default)]
pub struct ChatQuery;

#[Object]
impl ChatQuery {
    /// A channel's messages, oldest first: the `last` (default 20, at most 100) before the
    /// cursor `before` (the newest when omitted). Page back with `pageInfo.startCursor`.
    async fn messages(
        &self,
        ctx: &Context<'_>,
        channel: ChatChannelInput,
        last: Option<i32>,
        before: Option<String>,
    ) -> AppResult<Connection<ChatMessage>> {
        let state = state(ctx);
        let viewer = viewer(ctx).await?;
        let (key, page) = service::history(state, viewer, channel.parse()?, last, before).await?;
        prefetch::<UserLoader>(ctx, "sender", page.edges.iter().map(|(_, m)| m.sender_id)).await?;
        let (state, key) = (state.clone(), Arc::new(key));
        Ok(connection(
            page,
            Arc::new(move || {
                let (state, key) = (state.clone(), key.clone());
                Box::pin(async move { service::count(&state, &key).await })
            }),
        ))
    }
}

#[derive(Default)]
pub struct ChatMutation;

#[Object]
impl ChatMutation {
    async fn send_message(
        &self,
        ctx: &Context<'_>,
        input: SendMessageInput,
    ) -> AppResult<ChatMessage> {
        let viewer = viewer(ctx).await?;
        service::send(state(ctx), viewer, input.channel.parse()?, &input.body).await
    }
}

#[derive(Default)]
pub struct ChatSubscription;

#[Subscription]
impl ChatSubscription {
    /// Messages as they are sent to a channel you may read.
    async fn message_added(
        &self,
        ctx: &Context<'_>,
        channel: ChatChannelInput,
    ) -> async_graphql::Result<impl Stream<Item = ChatMessage>> {
        let viewer = viewer(ctx).await?;
        Ok(service::added(state(ctx), viewer, channel.parse()?).await?)
    }
}

#[Object]
impl ChatMessage {
    async fn id(&self) -> ID {
        ID(self.id.to_string())
    }

    /// `appointment:<id>`, `direct:<id>:<id>` or `lobby`.
    async fn channel(&self) -> &str {
        &self.channel
    }

    async fn sender(&self, ctx: &Context<'_>) -> AppResult<User> {
        loader::<UserLoader>(ctx)
            .load_one(self.sender_id)
            .await?
            .ok_or_else(|| AppError::not_found("the sender no longer exists"))
    }

    async fn body(&self) -> &str {
        &self.body
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }
}

#[derive(OneofObject, Clone)]
pub enum ChatChannelInput {
    /// The chat of one appointment, for its doctor and patient.
    AppointmentId(ID),
    /// Direct messages with this user.
    UserId(ID),
    /// The lobby, open to everyone signed in (pass `true`).
    Lobby(bool),
}

impl ChatChannelInput {
    fn parse(&self) -> AppResult<Channel> {
        Ok(match self {
            Self::AppointmentId(id) => Channel::Appointment(parse_id(id, "appointmentId")?),
            Self::UserId(id) => Channel::Direct(parse_id(id, "userId")?),
            Self::Lobby(true) => Channel::Lobby,
            Self::Lobby(false) => {
                return Err(AppError::bad_input(
                    "channel",
                    "pass lobby: true for the lobby",
                ));
            }
        })
    }
}

#[derive(InputObject)]
pub struct SendMessageInput {
    pub channel: ChatChannelInput,
    /// 1 to 4000 characters.
    pub body: String,
}
