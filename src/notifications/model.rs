use async_graphql::Enum;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

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
