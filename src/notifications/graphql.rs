use std::sync::Arc;

use async_graphql::{Context, ID, Object, Subscription};
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};
use uuid::Uuid;

use super::service;
use super::{Notification, NotificationKind};

use crate::appointments;
use crate::appointments::loaders::AppointmentLoader;
use crate::appointments::model::Appointment;
use crate::doctors::loaders::DoctorLoader;
use crate::error::{AppError, AppResult};
use crate::events::Event;
use crate::graphql::connection::{Connection, connection};
use crate::graphql::context::user_events;
use crate::graphql::context::{state, viewer};
use crate::graphql::ids::parse_id;
use crate::graphql::loaders::{loader, prefetch, selects};
use crate::pagination::{Page, PageArgs, page_complexity};

#[derive(Default)]
pub struct NotificationsQuery;

#[Object]
impl NotificationsQuery {
    /// Your notifications, newest first (only the unread ones with `unreadOnly: true`).
    #[graphql(complexity = "page_complexity(first, child_complexity)")]
    async fn my_notifications(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0 to 100 (default 20).")] first: Option<i32>,
        after: Option<String>,
        unread_only: Option<bool>,
    ) -> AppResult<Connection<Notification>> {
        let viewer = viewer(ctx).await?;
        let args = PageArgs::new(first, after)?;
        let unread_only = unread_only.unwrap_or(false);
        let state = state(ctx);
        let page = service::list_mine(state, viewer, unread_only, &args).await?;
        prefetch_appointments(ctx, &page).await?;
        let state = state.clone();
        Ok(connection(
            page,
            Arc::new(move || {
                let state = state.clone();
                Box::pin(async move { service::count(&state, viewer, unread_only).await })
            }),
        ))
    }

    /// How many of your notifications are unread.
    async fn unread_notification_count(&self, ctx: &Context<'_>) -> AppResult<i64> {
        service::unread_count(state(ctx), viewer(ctx).await?).await
    }
}

/// The appointments a page's notifications name, and their doctors, in one batch each, when the
/// selection asks for them.
async fn prefetch_appointments(ctx: &Context<'_>, page: &Page<Notification>) -> AppResult<()> {
    if !selects(ctx, "appointment") {
        return Ok(());
    }
    let ids: Vec<Uuid> = page
        .edges
        .iter()
        .filter_map(|(_, n)| n.appointment_id)
        .collect();
    prefetch::<AppointmentLoader>(ctx, "appointment", ids.iter().copied()).await?;
    let found = loader::<AppointmentLoader>(ctx).load_many(ids).await?;
    let doctors = found.values().map(|a| a.doctor_id);
    prefetch::<DoctorLoader>(ctx, "appointment", doctors).await
}

#[derive(Default)]
pub struct NotificationsMutation;

#[Object]
impl NotificationsMutation {
    /// Marks your notifications `ids` (at most 100) read, or all of them with `all: true`.
    /// Returns how many were unread. An id that is not one of your notifications is NOT_FOUND,
    /// and then nothing changes.
    async fn mark_notifications_read(
        &self,
        ctx: &Context<'_>,
        ids: Option<Vec<ID>>,
        all: Option<bool>,
    ) -> AppResult<u64> {
        let viewer = viewer(ctx).await?;
        let ids = ids
            .map(|ids| ids.iter().map(|id| parse_id(id, "ids")).collect())
            .transpose()?;
        service::mark_read(state(ctx), viewer, ids, all.unwrap_or(false)).await
    }
}

#[derive(Default)]
pub struct NotificationsSubscription;

#[Subscription]
impl NotificationsSubscription {
    /// Your notifications as they happen, each already in your inbox under its `id`.
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
    async fn id(&self) -> ID {
        ID(self.id.to_string())
    }

    async fn kind(&self) -> NotificationKind {
        self.kind
    }

    async fn message(&self) -> &str {
        &self.message
    }

    /// The appointment it is about, if any.
    async fn appointment(&self, ctx: &Context<'_>) -> AppResult<Option<Appointment>> {
        let Some(id) = self.appointment_id else {
            return Ok(None);
        };
        let viewer = viewer(ctx).await?;
        let gone = || AppError::not_found("the appointment no longer exists");
        let appointment = loader::<AppointmentLoader>(ctx)
            .load_one(id)
            .await?
            .ok_or_else(gone)?;
        let doctor = loader::<DoctorLoader>(ctx)
            .load_one(appointment.doctor_id)
            .await?
            .ok_or_else(gone)?;
        appointments::service::visible_to(appointment, doctor.user_id, viewer).map(Some)
    }

    async fn at(&self) -> DateTime<Utc> {
        self.at
    }

    /// When you marked it read; null while it is unread.
    async fn read_at(&self) -> Option<DateTime<Utc>> {
        self.read_at
    }
}
