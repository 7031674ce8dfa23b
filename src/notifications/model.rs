use async_graphql::Enum;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Enum, sqlx::Type, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[sqlx(type_name = "TEXT", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NotificationKind {
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentRescheduled,
    /// Sent by payments, once they are configured.
    AppointmentPaid,
    /// Before a confirmed appointment, at each of `MEDILINK_REMINDER_OFFSETS`.
    AppointmentReminder,
    DoctorApproved,
    DoctorRejected,
}

/// A notification as stored in its user's inbox and delivered live.
#[derive(Clone, Debug, Serialize, Deserialize, sqlx::FromRow)]
pub struct Notification {
    pub id: Uuid,
    pub kind: NotificationKind,
    pub message: String,
    pub appointment_id: Option<Uuid>,
    #[sqlx(rename = "created_at")]
    pub at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
}

impl Notification {
    /// A new, unread notification.
    pub fn new(
        kind: NotificationKind,
        message: String,
        appointment_id: Option<Uuid>,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            id: Uuid::now_v7(),
            kind,
            message,
            appointment_id,
            at,
            read_at: None,
        }
    }
}
