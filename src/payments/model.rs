use async_graphql::{Enum, InputObject, SimpleObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::doctors::currency::Currency;

/// Where the money of an appointment stands.
#[derive(Enum, sqlx::Type, Clone, Copy, Debug, PartialEq, Eq)]
// NOT_REQUIRED is never stored (the table's CHECK refuses it): it is what an appointment
// without a payment row shows.
#[sqlx(type_name = "TEXT", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentStatus {
    /// Booked while payments were off, or free: nothing to pay.
    NotRequired,
    /// Waiting for the patient to pay through Checkout.
    Unpaid,
    Paid,
    /// A refund was asked of Stripe and has not completed yet.
    RefundPending,
    Refunded,
    /// The payment or its refund failed; see `note`.
    Failed,
}

/// A stored payment: one per appointment, created with its Checkout session.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct PaymentRow {
    pub id: Uuid,
    pub appointment_id: Uuid,
    pub status: PaymentStatus,
    pub amount: i64,
    pub currency: Currency,
    pub platform_fee: i64,
    pub destination_account: String,
    pub checkout_session_id: Option<String>,
    pub checkout_url: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub payment_intent_id: Option<String>,
    pub refund_id: Option<String>,
    pub note: Option<String>,
    pub created_at: DateTime<Utc>,
    pub paid_at: Option<DateTime<Utc>>,
    pub refunded_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// The payment of an appointment as clients see it.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct Payment {
    pub status: PaymentStatus,
    /// In minor units of `currency` (cents for USD).
    pub amount: i64,
    pub currency: Currency,
    /// The platform's share of `amount`, in minor units; the rest goes to the doctor.
    pub platform_fee: i64,
    pub paid_at: Option<DateTime<Utc>>,
    pub refunded_at: Option<DateTime<Utc>>,
    /// Why the payment stands as it does when that is not obvious, for example a payment
    /// kept because the patient cancelled inside the doctor's cancellation notice.
    pub note: Option<String>,
    #[graphql(skip)]
    pub appointment_id: Uuid,
    #[graphql(skip)]
    pub id: Option<Uuid>,
    #[graphql(skip)]
    pub created_at: Option<DateTime<Utc>>,
}

impl From<PaymentRow> for Payment {
    fn from(row: PaymentRow) -> Self {
        Self {
            status: row.status,
            amount: row.amount,
            currency: row.currency,
            platform_fee: row.platform_fee,
            paid_at: row.paid_at,
            refunded_at: row.refunded_at,
            note: row.note,
            appointment_id: row.appointment_id,
            id: Some(row.id),
            created_at: Some(row.created_at),
        }
    }
}

/// A patient's request for the Checkout page of their appointment, and where Stripe sends
/// them back.
pub struct NewCheckout {
    pub appointment_id: Uuid,
    pub success_url: String,
    pub cancel_url: String,
}

/// A hosted Stripe Checkout page for one appointment.
#[derive(SimpleObject, Clone, Debug)]
pub struct CheckoutSession {
    pub url: String,
    /// When the page stops taking payment and the appointment's slot is released.
    pub expires_at: DateTime<Utc>,
}

#[derive(InputObject)]
pub struct PayoutOnboardingInput {
    /// Where Stripe sends the doctor when onboarding is done; on a public origin.
    pub return_url: String,
    /// Where Stripe sends the doctor when the link has expired; on a public origin.
    pub refresh_url: String,
}

#[derive(InputObject, Clone, Debug, Default)]
pub struct PaymentFilter {
    pub status: Option<PaymentStatus>,
    /// Payments created on or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Payments created before this instant.
    pub to: Option<DateTime<Utc>>,
}

/// Money that moved in a period, in one currency.
#[derive(SimpleObject, Clone, Debug, PartialEq, Eq)]
pub struct PaymentTotals {
    pub currency: Currency,
    /// Everything patients paid in the period (by payment time).
    pub gross: i64,
    /// The platform's fees on the payments of the period that were not refunded.
    pub fees: i64,
    /// Everything refunded in the period (by refund time).
    pub refunded: i64,
    pub payment_count: i64,
}

/// A payment about to be stored, before its Checkout session exists.
pub struct NewPayment {
    pub id: Uuid,
    pub appointment_id: Uuid,
    pub amount: i64,
    pub currency: Currency,
    pub platform_fee: i64,
    pub destination_account: String,
    pub expires_at: DateTime<Utc>,
    pub now: DateTime<Utc>,
}
