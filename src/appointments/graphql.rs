use std::sync::Arc;

use async_graphql::{Context, ID, InputObject, Object};
use chrono::{DateTime, Utc};

use super::model::{Appointment, AppointmentFilter, AppointmentStatus, BookingRequest};
use super::service;
use crate::auth::Role;
use crate::doctors::loaders::DoctorLoader;
use crate::doctors::model::{Doctor, Money};
use crate::error::{AppError, AppResult};
use crate::graphql::connection::{Connection, connection};
use crate::graphql::context::{state, viewer};
use crate::graphql::ids::parse_id;
use crate::graphql::loaders::{loader, prefetch};
use crate::pagination::{PageArgs, page_complexity};
use crate::payments;
use crate::payments::loaders::PaymentLoader;
use crate::payments::model::Payment;
use crate::reviews::loaders::ReviewLoader;
use crate::reviews::model::Review;
use crate::scheduling::date::Date;
use crate::scheduling::model::Slot;
use crate::users::loaders::UserLoader;
use crate::users::model::User;

#[derive(Default)]
pub struct AppointmentsQuery;

#[Object]
impl AppointmentsQuery {
    /// Free slots of an approved doctor on the dates `from` to `to` (at most 31 days), read in
    /// `timeZone` (an IANA name; the doctor's own zone when omitted). Times are UTC.
    async fn available_slots(
        &self,
        ctx: &Context<'_>,
        doctor_id: ID,
        from: Date,
        to: Date,
        time_zone: Option<String>,
    ) -> AppResult<Vec<Slot>> {
        let doctor_id = parse_id(&doctor_id, "doctorId")?;
        service::available_slots(state(ctx), doctor_id, from.0, to.0, time_zone.as_deref()).await
    }

    /// An appointment of yours (as its patient or doctor), or any for an admin.
    async fn appointment(&self, ctx: &Context<'_>, id: ID) -> AppResult<Appointment> {
        service::get(state(ctx), viewer(ctx).await?, parse_id(&id, "id")?).await
    }

    /// Your appointments as a patient or as a doctor, soonest first.
    #[graphql(complexity = "page_complexity(first, child_complexity)")]
    async fn my_appointments(
        &self,
        ctx: &Context<'_>,
        filter: Option<AppointmentFilter>,
        #[graphql(desc = "Page size, 0 to 100 (default 20).")] first: Option<i32>,
        after: Option<String>,
    ) -> AppResult<Connection<Appointment>> {
        let viewer = viewer(ctx).await?;
        let args = PageArgs::new(first, after)?;
        let filter = Arc::new(filter.unwrap_or_default());
        let state = state(ctx);
        let (party, page) = service::list_mine(state, viewer, &filter, &args).await?;
        let appointments = || page.edges.iter().map(|(_, a)| a);
        prefetch::<DoctorLoader>(ctx, "doctor", appointments().map(|a| a.doctor_id)).await?;
        prefetch::<UserLoader>(ctx, "patient", appointments().map(|a| a.patient_id)).await?;
        prefetch::<ReviewLoader>(ctx, "review", appointments().map(|a| a.id)).await?;
        prefetch::<PaymentLoader>(ctx, "payment", appointments().map(|a| a.id)).await?;
        let state = state.clone();
        Ok(connection(
            page,
            Arc::new(move || {
                let (state, filter) = (state.clone(), filter.clone());
                Box::pin(async move { service::count(&state, party, &filter).await })
            }),
        ))
    }
}

#[derive(Default)]
pub struct AppointmentsMutation;

#[Object]
impl AppointmentsMutation {
    /// Books one of an approved doctor's free slots as the signed-in patient. Of two patients
    /// booking the same slot at once, one gets it and the other CONFLICT.
    async fn book_appointment(
        &self,
        ctx: &Context<'_>,
        input: BookAppointmentInput,
    ) -> AppResult<Appointment> {
        let viewer = viewer(ctx).await?;
        let request = BookingRequest {
            doctor_id: parse_id(&input.doctor_id, "doctorId")?,
            starts_at: input.starts_at,
            reason: input.reason,
        };
        service::book(state(ctx), &payments::service::Payments, viewer, request).await
    }

    /// Cancels: the patient until the doctor's cancellation notice before the start, the doctor
    /// and admins until its end. The slot is free again at once. A paid appointment is refunded
    /// in full, except when the patient cancels inside the notice (allowed only while payments
    /// are on): then the payment is kept and `payment.note` says so.
    async fn cancel_appointment(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(default)] reason: String,
    ) -> AppResult<Appointment> {
        service::cancel(
            state(ctx),
            &payments::service::Payments,
            viewer(ctx).await?,
            parse_id(&id, "id")?,
            &reason,
        )
        .await
    }

    /// The doctor starts it, from 10 minutes before its start until its end.
    async fn start_appointment(&self, ctx: &Context<'_>, id: ID) -> AppResult<Appointment> {
        service::start(state(ctx), viewer(ctx).await?, parse_id(&id, "id")?).await
    }

    /// The doctor completes an appointment in progress.
    async fn complete_appointment(&self, ctx: &Context<'_>, id: ID) -> AppResult<Appointment> {
        service::complete(state(ctx), viewer(ctx).await?, parse_id(&id, "id")?).await
    }

    /// The doctor records that the patient did not come, once the start has passed.
    async fn mark_no_show(&self, ctx: &Context<'_>, id: ID) -> AppResult<Appointment> {
        service::mark_no_show(state(ctx), viewer(ctx).await?, parse_id(&id, "id")?).await
    }

    /// Moves the appointment to another free slot of the same doctor, atomically: the old
    /// slot is freed and the new one taken, or nothing changes.
    async fn reschedule_appointment(
        &self,
        ctx: &Context<'_>,
        id: ID,
        starts_at: DateTime<Utc>,
    ) -> AppResult<Appointment> {
        service::reschedule(
            state(ctx),
            viewer(ctx).await?,
            parse_id(&id, "id")?,
            starts_at,
        )
        .await
    }
}

#[Object]
impl Appointment {
    async fn id(&self) -> ID {
        ID(self.id.to_string())
    }

    async fn doctor(&self, ctx: &Context<'_>) -> AppResult<Doctor> {
        loader::<DoctorLoader>(ctx)
            .load_one(self.doctor_id)
            .await?
            .ok_or_else(|| AppError::not_found("the appointment's doctor no longer exists"))
    }

    async fn patient(&self, ctx: &Context<'_>) -> AppResult<User> {
        loader::<UserLoader>(ctx)
            .load_one(self.patient_id)
            .await?
            .ok_or_else(|| AppError::not_found("the appointment's patient no longer exists"))
    }

    async fn starts_at(&self) -> DateTime<Utc> {
        self.starts_at
    }

    async fn ends_at(&self) -> DateTime<Utc> {
        self.ends_at
    }

    async fn status(&self) -> AppointmentStatus {
        self.status
    }

    async fn reason(&self) -> &str {
        &self.reason
    }

    /// The doctor's fee when it was booked.
    /// Where the money stands: NOT_REQUIRED when the booking needed no payment.
    async fn payment(&self, ctx: &Context<'_>) -> AppResult<Payment> {
        let row = loader::<PaymentLoader>(ctx).load_one(self.id).await?;
        Ok(payments::service::of_appointment(state(ctx), self, row))
    }

    /// Until when a booking that waits for payment holds its slot.
    async fn payment_due_at(&self) -> Option<DateTime<Utc>> {
        (self.status == AppointmentStatus::PendingPayment)
            .then_some(self.payment_due_at)
            .flatten()
    }

    async fn fee(&self) -> Money {
        Money {
            amount: self.fee_amount,
            currency: self.fee_currency,
        }
    }

    async fn cancelled_by(&self) -> Option<Role> {
        self.cancelled_by
    }

    async fn cancellation_reason(&self) -> Option<&str> {
        self.cancellation_reason.as_deref()
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }

    async fn confirmed_at(&self) -> Option<DateTime<Utc>> {
        self.confirmed_at
    }

    async fn started_at(&self) -> Option<DateTime<Utc>> {
        self.started_at
    }

    async fn completed_at(&self) -> Option<DateTime<Utc>> {
        self.completed_at
    }

    async fn cancelled_at(&self) -> Option<DateTime<Utc>> {
        self.cancelled_at
    }

    async fn no_show_at(&self) -> Option<DateTime<Utc>> {
        self.no_show_at
    }

    /// The patient's review, once written.
    async fn review(&self, ctx: &Context<'_>) -> AppResult<Option<Review>> {
        loader::<ReviewLoader>(ctx).load_one(self.id).await
    }
}

#[derive(InputObject)]
pub struct BookAppointmentInput {
    pub doctor_id: ID,
    /// Exactly the start of one of the doctor's free slots (see `availableSlots`).
    pub starts_at: DateTime<Utc>,
    /// What the consultation is about, up to 1000 characters.
    #[graphql(default)]
    pub reason: String,
}
