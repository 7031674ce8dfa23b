//! Notifications: short messages to one user about what happened to their appointments,
//! profile or account, delivered live over the event bus.

pub mod graphql;

use std::sync::Arc;

use async_graphql::Enum;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::realtime::bus::{Event, Topic};
use crate::state::AppState;

#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NotificationKind {
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentRescheduled,
    /// Sent by payments, once they are configured.
    AppointmentPaid,
    DoctorApproved,
    DoctorRejected,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Notification {
    pub kind: NotificationKind,
    pub message: String,
    pub appointment_id: Option<Uuid>,
    pub at: DateTime<Utc>,
}

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
