use std::sync::Arc;

use async_graphql::{ComplexObject, Context, ID, InputObject, Object};
use chrono::{DateTime, Utc};

use super::model::{
    CheckoutSession, NewCheckout, Payment, PaymentFilter, PaymentTotals, PayoutOnboardingInput,
};
use super::service;
use crate::appointments;
use crate::appointments::model::Appointment;
use crate::error::AppResult;
use crate::graphql::connection::{Connection, connection};
use crate::graphql::context::{state, viewer};
use crate::graphql::ids::parse_id;
use crate::pagination::{PageArgs, page_complexity};

#[derive(Default)]
pub struct PaymentsQuery;

#[Object]
impl PaymentsQuery {
    /// All payments, newest first; admins only.
    #[graphql(complexity = "page_complexity(first, child_complexity)")]
    async fn payments(
        &self,
        ctx: &Context<'_>,
        filter: Option<PaymentFilter>,
        #[graphql(desc = "Page size, 0 to 100 (default 20).")] first: Option<i32>,
        after: Option<String>,
    ) -> AppResult<Connection<Payment>> {
        let viewer = viewer(ctx).await?;
        let args = PageArgs::new(first, after)?;
        let filter = Arc::new(filter.unwrap_or_default());
        let state = state(ctx);
        let page = service::list(state, viewer, &filter, &args).await?;
        let state = state.clone();
        Ok(connection(
            page,
            Arc::new(move || {
                let (state, filter) = (state.clone(), filter.clone());
                Box::pin(async move { service::count(&state, &filter).await })
            }),
        ))
    }

    /// Money paid, kept as platform fees and refunded in [from, to), per currency; admins only.
    async fn payment_totals(
        &self,
        ctx: &Context<'_>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> AppResult<Vec<PaymentTotals>> {
        service::totals(state(ctx), viewer(ctx).await?, from, to).await
    }
}

#[derive(Default)]
pub struct PaymentsMutation;

#[Object]
impl PaymentsMutation {
    /// A Stripe Checkout page where the patient pays for an appointment that waits for payment.
    /// Calling it again returns the same open session.
    async fn create_checkout_session(
        &self,
        ctx: &Context<'_>,
        input: CheckoutSessionInput,
    ) -> AppResult<CheckoutSession> {
        let viewer = viewer(ctx).await?;
        let checkout = NewCheckout {
            appointment_id: parse_id(&input.appointment_id, "appointmentId")?,
            success_url: input.success_url,
            cancel_url: input.cancel_url,
        };
        service::checkout_session(state(ctx), viewer, &checkout).await
    }

    /// A link to Stripe's onboarding for the signed-in doctor's payouts; the Stripe account is
    /// created on first use. `Doctor.payoutsEnabled` turns true when Stripe says so.
    async fn create_payout_onboarding_link(
        &self,
        ctx: &Context<'_>,
        input: PayoutOnboardingInput,
    ) -> AppResult<String> {
        service::payout_onboarding_link(state(ctx), viewer(ctx).await?, &input).await
    }
}

#[ComplexObject]
impl Payment {
    async fn appointment_id(&self) -> ID {
        ID(self.appointment_id.to_string())
    }

    async fn appointment(&self, ctx: &Context<'_>) -> AppResult<Appointment> {
        appointments::service::get(state(ctx), viewer(ctx).await?, self.appointment_id).await
    }
}

#[derive(InputObject)]
pub struct CheckoutSessionInput {
    pub appointment_id: ID,
    /// Where Stripe sends the patient after paying; must be on one of the server's public
    /// origins. `{CHECKOUT_SESSION_ID}` is replaced by Stripe.
    pub success_url: String,
    /// Where Stripe sends the patient who gives up; same origins.
    pub cancel_url: String,
}
