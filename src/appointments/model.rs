use async_graphql::{Enum, InputObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::auth::Role;
use crate::doctors::currency::Currency;

#[derive(Enum, sqlx::Type, Clone, Copy, Debug, PartialEq, Eq)]
#[sqlx(type_name = "TEXT", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AppointmentStatus {
    /// Booked, waiting for payment; the slot is held.
    PendingPayment,
    Confirmed,
    InProgress,
    Completed,
    Cancelled,
    NoShow,
}

/// What can be done to an appointment, and from which statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Cancel,
    Start,
    Complete,
    MarkNoShow,
    Reschedule,
}

impl Action {
    pub fn allowed_from(self) -> &'static [AppointmentStatus] {
        use AppointmentStatus::*;
        match self {
            Self::Cancel | Self::Reschedule => &[PendingPayment, Confirmed],
            Self::Start | Self::MarkNoShow => &[Confirmed],
            Self::Complete => &[InProgress],
        }
    }

    pub fn verb(self) -> &'static str {
        match self {
            Self::Cancel => "cancelled",
            Self::Start => "started",
            Self::Complete => "completed",
            Self::MarkNoShow => "marked as a no-show",
            Self::Reschedule => "rescheduled",
        }
    }
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Appointment {
    pub id: Uuid,
    pub doctor_id: Uuid,
    pub patient_id: Uuid,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub status: AppointmentStatus,
    pub reason: String,
    pub fee_amount: i64,
    pub fee_currency: Currency,
    pub cancelled_by: Option<Role>,
    pub cancellation_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub no_show_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    /// Set when the booking had to be paid: until when it held its slot unpaid.
    pub payment_due_at: Option<DateTime<Utc>>,
}

/// A patient's request for one of a doctor's free slots.
pub struct BookingRequest {
    pub doctor_id: Uuid,
    pub starts_at: DateTime<Utc>,
    pub reason: String,
}

#[derive(InputObject, Clone, Debug, Default)]
pub struct AppointmentFilter {
    pub status: Option<AppointmentStatus>,
    /// Appointments starting on or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Appointments starting before this instant.
    pub to: Option<DateTime<Utc>>,
}

/// A validated booking about to be stored.
pub struct NewAppointment {
    pub id: Uuid,
    pub doctor_id: Uuid,
    pub patient_id: Uuid,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub status: AppointmentStatus,
    pub reason: String,
    pub fee_amount: i64,
    pub fee_currency: Currency,
    pub payment_due_at: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
}

/// What storing a booking or a move did.
pub enum Booking {
    Done(Box<Appointment>),
    /// Another live appointment holds the doctor's slot.
    SlotTaken,
    /// The patient has another live appointment at that time.
    PatientBusy,
    /// The patient already holds as many upcoming appointments with the doctor as allowed.
    TooManyWithDoctor,
}

/// Whose appointments a list shows.
#[derive(Clone, Copy, Debug)]
pub enum Party {
    Patient(Uuid),
    Doctor(Uuid),
}
