use std::sync::Arc;

use async_graphql::{Context, ID, Object, Subscription};
use chrono::{DateTime, Utc};
use futures_util::Stream;

use super::model::{ChatChannelInput, ChatMessage, SendMessageInput};
use super::service;
use crate::error::{AppError, AppResult};
use crate::graphql::connection::{Connection, connection};
use crate::graphql::context::{state, viewer};
use crate::graphql::loaders::{UserLoader, loader, prefetch};
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
        let (key, page) =
            service::history(state, viewer(ctx).await?, &channel, last, before).await?;
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
        service::send(state(ctx), viewer(ctx).await?, &input.channel, &input.body).await
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
        Ok(service::added(state(ctx), viewer(ctx).await?, &channel).await?)
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
