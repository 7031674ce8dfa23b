//! What booking and cancelling need from payments, as a narrow trait that payments implements:
//! payments depends on appointments (it reads and settles them), and appointments reach
//! payments only through this, handed in by the caller.

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;

use super::model::Appointment;
use crate::doctors::model::Doctor;
use crate::error::AppResult;
use crate::state::AppState;

pub trait PaymentPolicy: Sync {
    /// Until when a new booking with `doctor` holds its slot unpaid; `None` when it needs no
    /// payment (payments off, or a free consultation). An error when the doctor cannot be paid.
    fn payment_due(
        &self,
        state: &AppState,
        doctor: &Doctor,
        now: DateTime<Utc>,
    ) -> AppResult<Option<DateTime<Utc>>>;

    /// Settles a cancelled appointment's payment: refunded in full, or kept for the reason
    /// `kept_because`.
    fn cancelled<'a>(
        &'a self,
        state: &'a AppState,
        appointment: &'a Appointment,
        refund: bool,
        kept_because: &'a str,
    ) -> BoxFuture<'a, AppResult<()>>;
}
