use std::sync::Arc;

use async_graphql::{Context, Object, Subscription};
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};

use super::{Notification, NotificationKind};
use crate::appointments;
use crate::appointments::model::Appointment;
use crate::error::AppResult;
use crate::events::Event;
use crate::graphql::context::user_events;
use crate::graphql::context::{state, viewer};

#[derive(Default)]
pub struct NotificationsSubscription;

#[Subscription]
impl NotificationsSubscription {
    /// Your notifications as they happen.
    async fn notifications(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<impl Stream<Item = Notification>> {
        let viewer = viewer(ctx).await?;
        Ok(user_events(ctx, state(ctx), viewer.id).filter_map(|event| {
            std::future::ready(match event {
                Event::Notification(notification) => Some(Arc::unwrap_or_clone(notification)),
                _ => None,
            })
        }))
    }
}

#[Object]
impl Notification {
    async fn kind(&self) -> NotificationKind {
        self.kind
    }

    async fn message(&self) -> &str {
        &self.message
    }

    /// The appointment it is about, if any.
    async fn appointment(&self, ctx: &Context<'_>) -> AppResult<Option<Appointment>> {
        match self.appointment_id {
            Some(id) => Ok(Some(
                appointments::service::get(state(ctx), viewer(ctx).await?, id).await?,
            )),
            None => Ok(None),
        }
    }

    async fn at(&self) -> DateTime<Utc> {
        self.at
    }
}
