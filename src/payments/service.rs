//! Payment rules: who pays for what and when, what a Stripe event changes, when money goes back.

use std::collections::HashMap;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use futures_util::future::BoxFuture;
use uuid::Uuid;

use super::events::{self, Effect};
use super::gateway::{CheckoutRequest, Gateway};
use super::model::{
    CheckoutSession, NewCheckout, NewPayment, Payment, PaymentFilter, PaymentRow, PaymentStatus,
    PaymentTotals, PayoutOnboardingInput,
};
use super::repo::{self, Settlement};
use crate::appointments::model::{Appointment, AppointmentStatus};
use crate::appointments::payment::PaymentPolicy;
use crate::auth::{AuthUser, Role};
use crate::doctors::model::Doctor;
use crate::error::{AppError, AppResult};
use crate::mail::templates;
use crate::metrics::WebhookOutcome;
use crate::notifications::{NotificationKind, notify};
use crate::pagination::{Page, PageArgs, time_id};
use crate::state::AppState;
use crate::{appointments, doctors, users};

fn gateway(state: &AppState) -> AppResult<&Gateway> {
    state
        .payments
        .as_deref()
        .ok_or_else(|| AppError::state_conflict("payments are not enabled on this server"))
}

fn provider_failed(error: super::gateway::GatewayError) -> AppError {
    AppError::upstream("the payment provider did not answer; try again", error)
}

/// Payments as booking and cancelling see them (see [`PaymentPolicy`]).
pub struct Payments;

impl PaymentPolicy for Payments {
    fn payment_due(
        &self,
        state: &AppState,
        doctor: &Doctor,
        now: DateTime<Utc>,
    ) -> AppResult<Option<DateTime<Utc>>> {
        payment_due(state, doctor, now)
    }

    fn cancelled<'a>(
        &'a self,
        state: &'a AppState,
        appointment: &'a Appointment,
        refund: bool,
        kept_because: &'a str,
    ) -> BoxFuture<'a, AppResult<()>> {
        Box::pin(cancelled(state, appointment, refund, kept_because))
    }
}

/// Until when a new booking with `doctor` holds its slot unpaid; `None` when it needs no
/// payment (payments off, or a free consultation).
fn payment_due(
    state: &AppState,
    doctor: &Doctor,
    now: DateTime<Utc>,
) -> AppResult<Option<DateTime<Utc>>> {
    if state.payments.is_none() || doctor.fee_amount == 0 {
        return Ok(None);
    }
    if doctor.stripe_account_id.is_none() || !doctor.charges_enabled {
        return Err(AppError::conflict(
            "doctorId",
            "this doctor cannot take payments yet, so they cannot be booked; choose another doctor",
        ));
    }
    Ok(Some(now + hold(state)))
}

fn hold(state: &AppState) -> Duration {
    Duration::minutes(i64::try_from(state.config.payment_hold_minutes).unwrap_or(30))
}

/// Whether `url` is on one of the configured public origins (the exact origin, then a path,
/// query or fragment), so Stripe never sends a patient to a stranger's site.
fn check_redirect(state: &AppState, field: &'static str, url: &str) -> AppResult<()> {
    let allowed = state.config.public_origins().any(|origin| {
        url.strip_prefix(origin)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '?', '#']))
    });
    if allowed {
        Ok(())
    } else {
        Err(AppError::bad_input(
            field,
            "the URL must be on one of the server's public origins (MEDILINK_PUBLIC_ORIGINS)",
        ))
    }
}

/// A doctor's link to Stripe's onboarding, creating their Connect account on first use.
pub async fn payout_onboarding_link(
    state: &AppState,
    viewer: AuthUser,
    input: &PayoutOnboardingInput,
) -> AppResult<String> {
    viewer.require(Role::Doctor)?;
    let gateway = gateway(state)?;
    check_redirect(state, "returnUrl", &input.return_url)?;
    check_redirect(state, "refreshUrl", &input.refresh_url)?;
    let doctor = doctors::service::own_profile(state, viewer)
        .await?
        .ok_or_else(|| AppError::not_found("submit your doctor profile first"))?;
    let account = match doctor.stripe_account_id {
        Some(account) => account,
        None => {
            let email = users::service::find_many(state, &[viewer.id])
                .await?
                .remove(&viewer.id)
                .map(|u| u.email)
                .unwrap_or_default();
            let created = gateway
                .create_account(doctor.id, &email)
                .await
                .map_err(provider_failed)?;
            doctors::service::set_payout_account(state, doctor.id, &created).await?
        }
    };
    gateway
        .account_link(&account, &input.return_url, &input.refresh_url)
        .await
        .map_err(provider_failed)
}

/// The Checkout page for an appointment that waits for payment, created once: later calls
/// return the same open session.
pub async fn checkout_session(
    state: &AppState,
    viewer: AuthUser,
    input: &NewCheckout,
) -> AppResult<CheckoutSession> {
    let gateway = gateway(state)?;
    let appointment_id = input.appointment_id;
    check_redirect(state, "successUrl", &input.success_url)?;
    check_redirect(state, "cancelUrl", &input.cancel_url)?;
    let appointment = appointments::service::get(state, viewer, appointment_id).await?;
    if appointment.patient_id != viewer.id {
        return Err(AppError::forbidden(
            "only the appointment's patient can pay for it",
        ));
    }
    if appointment.status != AppointmentStatus::PendingPayment {
        return Err(AppError::state_conflict(
            "this appointment is not waiting for payment",
        ));
    }
    let now = state.clock.now();
    let existing = repo::find(&state.db, appointment.id).await?;
    if let Some(PaymentRow {
        checkout_url: Some(url),
        expires_at,
        status: PaymentStatus::Unpaid,
        ..
    }) = &existing
        && *expires_at > now
    {
        return Ok(CheckoutSession {
            url: url.clone(),
            expires_at: *expires_at,
        });
    }
    let window_closed = match &existing {
        Some(payment) => payment.expires_at <= now,
        None => appointment.payment_due_at.is_none_or(|due| due <= now),
    };
    if window_closed {
        return Err(AppError::state_conflict(
            "the time to pay for this booking is over; book the slot again",
        ));
    }
    let doctor = doctors::service::find_many(state, &[appointment.doctor_id])
        .await?
        .remove(&appointment.doctor_id)
        .ok_or_else(|| AppError::not_found("the appointment's doctor is gone"))?;
    let destination = match (&doctor.stripe_account_id, doctor.charges_enabled) {
        (Some(account), true) => account.clone(),
        _ => {
            return Err(AppError::state_conflict(
                "this doctor cannot take payments at the moment",
            ));
        }
    };
    // Stripe's minimum Checkout lifetime; the session, once created, is the hold.
    let new = NewPayment {
        id: Uuid::now_v7(),
        appointment_id: appointment.id,
        amount: appointment.fee_amount,
        currency: appointment.fee_currency,
        platform_fee: gateway.platform_fee(appointment.fee_amount),
        destination_account: destination,
        expires_at: now + hold(state),
        now,
    };
    let payment = repo::open(&state.db, &new).await?;
    let when = appointment.starts_at.format("%Y-%m-%d %H:%M UTC");
    let description = format!("Consultation on {when}");
    let session = gateway
        .checkout_session(&CheckoutRequest {
            appointment_id: appointment.id,
            description: &description,
            amount: payment.amount,
            currency: payment.currency,
            platform_fee: payment.platform_fee,
            destination_account: &payment.destination_account,
            expires_at: payment.expires_at,
            success_url: &input.success_url,
            cancel_url: &input.cancel_url,
        })
        .await
        .map_err(provider_failed)?;
    repo::attach_session(&state.db, payment.id, &session.id, &session.url, now).await?;
    Ok(CheckoutSession {
        url: session.url,
        expires_at: payment.expires_at,
    })
}

/// Why a webhook delivery did not take effect.
#[derive(Debug)]
pub enum Rejection {
    /// No Stripe settings: this server takes no webhooks.
    PaymentsOff,
    /// A missing, bad or stale signature, or a body that is not an event: answered 400.
    Refused(String),
    /// Our side failed (the database): answered 500 so that Stripe delivers it again.
    Failed,
}

/// Verifies and applies one webhook delivery. Each event id takes effect once.
pub async fn webhook(
    state: &AppState,
    payload: &[u8],
    signature: Option<&str>,
) -> Result<(), Rejection> {
    let event = match verified(state, payload, signature) {
        Ok(event) => event,
        Err(rejection) => {
            state.metrics.webhook_event(None, WebhookOutcome::Rejected);
            return Err(rejection);
        }
    };
    let applied = apply(state, &event.id, &event.type_, event.effect).await;
    let outcome = applied.as_ref().map_or(WebhookOutcome::Error, |o| *o);
    state.metrics.webhook_event(Some(&event.type_), outcome);
    applied.map_err(|error| {
        tracing::error!(event = %event.id, kind = %event.type_, error = error.message(), "webhook not applied");
        Rejection::Failed
    })?;
    tracing::info!(event = %event.id, kind = %event.type_, "webhook handled");
    Ok(())
}

fn verified(
    state: &AppState,
    payload: &[u8],
    signature: Option<&str>,
) -> Result<events::StripeEvent, Rejection> {
    let gateway = state.payments.as_deref().ok_or(Rejection::PaymentsOff)?;
    let payload = std::str::from_utf8(payload)
        .map_err(|_| Rejection::Refused("the body is not UTF-8".into()))?;
    let signature =
        signature.ok_or_else(|| Rejection::Refused("no Stripe-Signature header".into()))?;
    gateway
        .verify(payload, signature)
        .map_err(|e| Rejection::Refused(format!("signature check failed: {e}")))?;
    events::parse(payload)
        .ok_or_else(|| Rejection::Refused("the body is not a Stripe event".into()))
}

/// Applies a verified event once; says whether it was new and changed anything.
async fn apply(
    state: &AppState,
    id: &str,
    kind: &str,
    effect: Effect,
) -> AppResult<WebhookOutcome> {
    let now = state.clock.now();
    match effect {
        Effect::CheckoutPaid {
            appointment_id,
            payment_intent,
        } => {
            let settled = repo::settle_paid(
                &state.db,
                id,
                kind,
                appointment_id,
                payment_intent.as_deref(),
                now,
            )
            .await?;
            match settled {
                Settlement::Confirmed(payment) => paid(state, &payment).await?,
                Settlement::RefundDue(payment) => send_refund(state, &payment).await,
                Settlement::Duplicate => return Ok(WebhookOutcome::Duplicate),
                Settlement::Unchanged => return Ok(WebhookOutcome::Ignored),
            }
            Ok(WebhookOutcome::Applied)
        }
        Effect::CheckoutClosed { appointment_id } => Ok(fresh(
            repo::close_checkout(&state.db, id, kind, appointment_id, now).await?,
        )),
        Effect::Refunded { payment_intent } => {
            let to = PaymentStatus::Refunded;
            Ok(fresh(
                repo::refund_event(&state.db, id, kind, &payment_intent, to, now).await?,
            ))
        }
        Effect::RefundFailed { payment_intent } => {
            let to = PaymentStatus::Failed;
            Ok(fresh(
                repo::refund_event(&state.db, id, kind, &payment_intent, to, now).await?,
            ))
        }
        Effect::AccountUpdated {
            account,
            charges_enabled,
            payouts_enabled,
        } => {
            // Setting the same state twice is harmless, so it need not share a transaction
            // with the record of the event.
            doctors::service::set_payout_state(state, &account, charges_enabled, payouts_enabled)
                .await?;
            Ok(fresh(repo::record_event(&state.db, id, kind, now).await?))
        }
        Effect::Ignored => Ok(WebhookOutcome::Ignored),
    }
}

/// Applied when the event was recorded now, a duplicate when it had been before.
fn fresh(recorded: bool) -> WebhookOutcome {
    if recorded {
        WebhookOutcome::Applied
    } else {
        WebhookOutcome::Duplicate
    }
}

/// Tells both sides that the appointment is paid and confirmed.
async fn paid(state: &AppState, payment: &PaymentRow) -> AppResult<()> {
    let appointment = appointments::service::find(state, payment.appointment_id).await?;
    let doctor_user = doctors::service::find_many(state, &[appointment.doctor_id])
        .await?
        .remove(&appointment.doctor_id)
        .map(|d| d.user_id);
    let when = appointment.starts_at.format("%Y-%m-%d %H:%M UTC");
    for user in [Some(appointment.patient_id), doctor_user]
        .into_iter()
        .flatten()
    {
        notify(
            state,
            user,
            NotificationKind::AppointmentPaid,
            format!("The appointment on {when} is paid and confirmed"),
            Some(appointment.id),
        )
        .await;
    }
    let parties: Vec<Uuid> = [Some(appointment.patient_id), doctor_user]
        .into_iter()
        .flatten()
        .collect();
    let mail = templates::appointment_confirmed(appointment.starts_at);
    state
        .mail
        .enqueue_to_users(&state.db, &parties, &mail)
        .await;
    Ok(())
}

/// Asks Stripe for the refund of a payment marked REFUND_PENDING. A failure leaves it pending
/// for the sweep to retry; the idempotency key makes the retry safe.
async fn send_refund(state: &AppState, payment: &PaymentRow) {
    let (Some(gateway), Some(intent)) = (state.payments.as_deref(), &payment.payment_intent_id)
    else {
        tracing::warn!(payment = %payment.id, "refund due but payments are off or the charge is unknown");
        return;
    };
    match gateway.refund(payment.id, intent).await {
        Ok(refund) => {
            let outcome = if refund.succeeded {
                Some(PaymentStatus::Refunded)
            } else if refund.failed {
                Some(PaymentStatus::Failed)
            } else {
                None
            };
            let now = state.clock.now();
            if let Err(error) =
                repo::refund_created(&state.db, payment.id, &refund.id, outcome, now).await
            {
                tracing::error!(payment = %payment.id, %error, "refund made but not recorded");
            }
        }
        Err(error) => tracing::warn!(payment = %payment.id, %error, "refund not sent; will retry"),
    }
}

/// Settles the money of an appointment that was just cancelled: refunded in full when
/// `refund`, otherwise kept with `kept_because` as its note.
async fn cancelled(
    state: &AppState,
    appointment: &Appointment,
    refund: bool,
    kept_because: &str,
) -> AppResult<()> {
    let now = state.clock.now();
    if refund {
        if let Some(payment) = repo::begin_refund(
            &state.db,
            appointment.id,
            "refunded: cancelled in time",
            now,
        )
        .await?
        {
            send_refund(state, &payment).await;
        }
    } else {
        repo::keep(&state.db, appointment.id, kept_because, now).await?;
    }
    Ok(())
}

/// Releases expired holds and retries refunds that never reached Stripe, every
/// `payment_sweep_secs`, for as long as the server runs.
pub async fn sweep_forever(state: AppState) {
    let period = StdDuration::from_secs(state.config.payment_sweep_secs);
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match repo::release_expired(&state.db, state.clock.now()).await {
            Ok(0) => {}
            Ok(released) => tracing::info!(released, "released unpaid bookings"),
            Err(error) => tracing::warn!(%error, "payment sweep failed"),
        }
        match repo::unsent_refunds(&state.db).await {
            Ok(payments) => {
                for payment in payments {
                    send_refund(&state, &payment).await;
                }
            }
            Err(error) => tracing::warn!(%error, "refund retry failed"),
        }
    }
}

/// The payments of these appointments, by appointment id (those without a row have none).
pub async fn for_appointments(
    state: &AppState,
    appointment_ids: &[Uuid],
) -> AppResult<HashMap<Uuid, PaymentRow>> {
    let rows = repo::find_many(&state.db, appointment_ids).await?;
    Ok(rows.into_iter().map(|p| (p.appointment_id, p)).collect())
}

/// The payment of an appointment, also when no Checkout session was ever opened for it.
pub fn of_appointment(
    state: &AppState,
    appointment: &Appointment,
    row: Option<PaymentRow>,
) -> Payment {
    if let Some(row) = row {
        return row.into();
    }
    let required = appointment.payment_due_at.is_some();
    Payment {
        status: if required {
            PaymentStatus::Unpaid
        } else {
            PaymentStatus::NotRequired
        },
        amount: appointment.fee_amount,
        currency: appointment.fee_currency,
        platform_fee: match (&state.payments, required) {
            (Some(gateway), true) => gateway.platform_fee(appointment.fee_amount),
            _ => 0,
        },
        paid_at: None,
        refunded_at: None,
        note: None,
        appointment_id: appointment.id,
        id: None,
        created_at: None,
    }
}

fn require_admin(viewer: AuthUser) -> AppResult<()> {
    if viewer.is_admin() {
        Ok(())
    } else {
        Err(AppError::forbidden("only admins can see payments"))
    }
}

pub async fn list(
    state: &AppState,
    viewer: AuthUser,
    filter: &PaymentFilter,
    args: &PageArgs,
) -> AppResult<Page<Payment>> {
    require_admin(viewer)?;
    check_period(filter.from, filter.to)?;
    let after = args.after_time_id()?;
    let rows = repo::list(&state.db, filter, after.as_ref(), args.fetch_limit()).await?;
    let page = Page::from_rows(rows, args, |p| time_id(p.created_at, p.id));
    Ok(page.map(Payment::from))
}

pub async fn count(state: &AppState, filter: &PaymentFilter) -> AppResult<i64> {
    Ok(repo::count(&state.db, filter).await?)
}

pub async fn totals(
    state: &AppState,
    viewer: AuthUser,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> AppResult<Vec<PaymentTotals>> {
    require_admin(viewer)?;
    check_period(Some(from), Some(to))?;
    Ok(repo::totals(&state.db, from, to).await?)
}

fn check_period(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> AppResult<()> {
    match (from, to) {
        (Some(from), Some(to)) if to < from => {
            Err(AppError::bad_input("to", "`to` must not be before `from`"))
        }
        _ => Ok(()),
    }
}
