//! The parts of Stripe events that MediLink acts on, read from the verified raw body.
//!
//! Stripe renders each event in the API version of the account, which need not be the one the
//! Stripe crates were generated from; reading only the fields used here keeps a version change
//! from turning every delivery into a parse failure (and an endless retry).

use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

#[derive(Deserialize)]
struct Envelope {
    id: String,
    #[serde(rename = "type")]
    type_: String,
    data: Data,
}

#[derive(Deserialize)]
struct Data {
    object: Value,
}

pub struct StripeEvent {
    pub id: String,
    pub type_: String,
    pub effect: Effect,
}

/// What an event asks of MediLink.
#[derive(Debug, PartialEq, Eq)]
pub enum Effect {
    /// The Checkout session of an appointment was paid.
    CheckoutPaid {
        appointment_id: Uuid,
        payment_intent: Option<String>,
    },
    /// The session ended without payment: release the slot.
    CheckoutClosed {
        appointment_id: Uuid,
    },
    /// A refund completed (or the charge was refunded in full).
    Refunded {
        payment_intent: String,
    },
    RefundFailed {
        payment_intent: String,
    },
    AccountUpdated {
        account: String,
        charges_enabled: bool,
        payouts_enabled: bool,
    },
    /// Anything else, including a completed session still waiting for a delayed payment.
    Ignored,
}

/// Reads an event body; `None` when it is not a Stripe event at all.
pub fn parse(body: &str) -> Option<StripeEvent> {
    let envelope: Envelope = serde_json::from_str(body).ok()?;
    let object = &envelope.data.object;
    let text = |key: &str| object.get(key).and_then(Value::as_str).map(str::to_owned);
    let appointment = || {
        object
            .get("metadata")
            .and_then(|m| m.get("appointment_id"))
            .and_then(Value::as_str)
            .and_then(|id| id.parse::<Uuid>().ok())
    };
    let effect = match envelope.type_.as_str() {
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            match (appointment(), text("payment_status").as_deref()) {
                (Some(appointment_id), Some("paid" | "no_payment_required")) => {
                    Effect::CheckoutPaid {
                        appointment_id,
                        payment_intent: text("payment_intent"),
                    }
                }
                _ => Effect::Ignored,
            }
        }
        "checkout.session.expired" | "checkout.session.async_payment_failed" => {
            match appointment() {
                Some(appointment_id) => Effect::CheckoutClosed { appointment_id },
                None => Effect::Ignored,
            }
        }
        "charge.refunded" => match (text("payment_intent"), object.get("refunded")) {
            (Some(payment_intent), Some(Value::Bool(true))) => Effect::Refunded { payment_intent },
            _ => Effect::Ignored,
        },
        "refund.updated" | "refund.failed" => {
            match (text("payment_intent"), text("status").as_deref()) {
                (Some(payment_intent), Some("succeeded")) => Effect::Refunded { payment_intent },
                (Some(payment_intent), Some("failed" | "canceled")) => {
                    Effect::RefundFailed { payment_intent }
                }
                _ => Effect::Ignored,
            }
        }
        "account.updated" => match text("id") {
            Some(account) => Effect::AccountUpdated {
                account,
                charges_enabled: object.get("charges_enabled") == Some(&Value::Bool(true)),
                payouts_enabled: object.get("payouts_enabled") == Some(&Value::Bool(true)),
            },
            None => Effect::Ignored,
        },
        _ => Effect::Ignored,
    };
    Some(StripeEvent {
        id: envelope.id,
        type_: envelope.type_,
        effect,
    })
}
