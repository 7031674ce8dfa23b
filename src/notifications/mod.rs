//! Notifications: short messages to one user about what happened to their appointments,
//! profile or account, delivered live over the event bus.

pub mod graphql;
pub mod model;

use std::sync::Arc;

use chrono::Utc;
use uuid::Uuid;

pub use model::{Notification, NotificationKind};

use crate::events::Event;
use crate::realtime::bus::Topic;
use crate::state::AppState;

/// Sends `message` to `user_id`'s open connections.
pub fn notify(
    state: &AppState,
    user_id: Uuid,
    kind: NotificationKind,
    message: impl Into<String>,
    appointment_id: Option<Uuid>,
) {
    state.realtime.bus.publish(
        Topic::User(user_id),
        Event::Notification(Arc::new(Notification {
            kind,
            message: message.into(),
            appointment_id,
            at: Utc::now(),
        })),
    );
}
