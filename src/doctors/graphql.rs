use std::io::Read;
use std::sync::Arc;

use async_graphql::{Context, ID, Object, Upload};
use chrono::{DateTime, Utc};

use super::loaders::LicenceLoader;
use super::model::{
    Doctor, DoctorFilter, DoctorProfileInput, DoctorSort, LicenceInfo, Money, Specialization,
    UpdateDoctorProfileInput, VerificationStatus,
};
use super::service;
use crate::error::{AppError, AppResult};
use crate::events::DoctorStatus;
use crate::graphql::connection::{Connection, connection};
use crate::graphql::context::{optional_viewer, state, viewer};
use crate::graphql::ids::parse_id;
use crate::graphql::loaders::{loader, prefetch};
use crate::pagination::{Page, PageArgs, page_complexity};
use crate::reviews::model::Review;
use crate::scheduling::model::Schedule;
use crate::users::loaders::UserLoader;
use crate::users::model::User;
use crate::{reviews, scheduling};

#[derive(Default)]
pub struct DoctorsQuery;

#[Object]
impl DoctorsQuery {
    /// Approved doctors that match every given filter, best rated first unless `sort` says
    /// otherwise. Open to everyone, signed in or not.
    #[graphql(complexity = "page_complexity(first, child_complexity)")]
    async fn doctors(
        &self,
        ctx: &Context<'_>,
        filter: Option<DoctorFilter>,
        sort: Option<DoctorSort>,
        #[graphql(desc = "Page size, 0 to 100 (default 20).")] first: Option<i32>,
        after: Option<String>,
    ) -> AppResult<Connection<Doctor>> {
        let args = PageArgs::new(first, after)?;
        let state = state(ctx);
        let filter = Arc::new(service::search_filter(state, filter).await?);
        let (page, users) =
            service::search(state, &filter, sort.unwrap_or_default(), &args).await?;
        loader::<UserLoader>(ctx)
            .feed_many(users.into_iter().map(|user| (user.id, user)))
            .await;
        prefetch_licences(ctx, &page).await?;
        let state = state.clone();
        Ok(connection(
            page,
            Arc::new(move || {
                let (state, filter) = (state.clone(), filter.clone());
                Box::pin(async move { service::count(&state, &filter).await })
            }),
        ))
    }

    /// An approved doctor; the owner and admins also see unapproved profiles.
    async fn doctor(&self, ctx: &Context<'_>, id: ID) -> AppResult<Doctor> {
        service::get(
            state(ctx),
            optional_viewer(ctx).await?,
            parse_id(&id, "id")?,
        )
        .await
    }

    /// The specializations of approved doctors, with how many doctors practise each.
    async fn specializations(&self, ctx: &Context<'_>) -> AppResult<Vec<Specialization>> {
        service::specializations(state(ctx)).await
    }

    /// The signed-in doctor's own profile, in whatever state; null before the first submission.
    async fn my_doctor_profile(&self, ctx: &Context<'_>) -> AppResult<Option<Doctor>> {
        service::own_profile(state(ctx), viewer(ctx).await?).await
    }

    /// Profiles waiting for verification, oldest submission first (admins only).
    #[graphql(complexity = "page_complexity(first, child_complexity)")]
    async fn pending_doctors(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0 to 100 (default 20).")] first: Option<i32>,
        after: Option<String>,
    ) -> AppResult<Connection<Doctor>> {
        let viewer = viewer(ctx).await?;
        let args = PageArgs::new(first, after)?;
        let state = state(ctx);
        let page = service::pending(state, viewer, &args).await?;
        prefetch_edges(ctx, &page).await?;
        let state = state.clone();
        Ok(connection(
            page,
            Arc::new(move || {
                let state = state.clone();
                Box::pin(async move { service::count_pending(&state).await })
            }),
        ))
    }
}

/// Loads the users, and the licences the viewer may see, of a page of doctors in one batch each.
async fn prefetch_edges(ctx: &Context<'_>, page: &Page<Doctor>) -> AppResult<()> {
    let users = page.edges.iter().map(|(_, doctor)| doctor.user_id);
    prefetch::<UserLoader>(ctx, "user", users).await?;
    prefetch_licences(ctx, page).await
}

/// Loads the licences the viewer may see of a page of doctors in one batch.
async fn prefetch_licences(ctx: &Context<'_>, page: &Page<Doctor>) -> AppResult<()> {
    let viewer = optional_viewer(ctx).await?;
    let private = page
        .edges
        .iter()
        .map(|(_, doctor)| doctor)
        .filter(|d| service::sees_private(viewer, d));
    prefetch::<LicenceLoader>(ctx, "licence", private.map(|d| d.id)).await
}

#[derive(Default)]
pub struct DoctorsMutation;

#[Object]
impl DoctorsMutation {
    /// Submits the signed-in doctor's profile with their licence (a PDF of at most 5 MiB, sent
    /// as a GraphQL multipart upload) for verification. Allowed again while pending or after a
    /// rejection; the new licence replaces the old one.
    async fn submit_doctor_profile(
        &self,
        ctx: &Context<'_>,
        input: DoctorProfileInput,
        licence: Upload,
    ) -> AppResult<Doctor> {
        let viewer = viewer(ctx).await?;
        let mut content = Vec::new();
        licence
            .value(ctx)
            .map_err(|_| AppError::bad_input("licence", "the licence upload is missing"))?
            .into_read()
            .read_to_end(&mut content)
            .map_err(|_| AppError::bad_input("licence", "the licence upload could not be read"))?;
        service::submit(state(ctx), viewer, input, content).await
    }

    /// Changes public profile fields; no new verification is needed.
    async fn update_doctor_profile(
        &self,
        ctx: &Context<'_>,
        input: UpdateDoctorProfileInput,
    ) -> AppResult<Doctor> {
        service::update(state(ctx), viewer(ctx).await?, input).await
    }

    /// Approves a pending profile (admins only).
    async fn approve_doctor(&self, ctx: &Context<'_>, id: ID) -> AppResult<Doctor> {
        service::approve(state(ctx), viewer(ctx).await?, parse_id(&id, "id")?).await
    }

    /// Rejects a pending profile or withdraws an approval (admins only); the doctor sees the
    /// reason and may resubmit.
    async fn reject_doctor(&self, ctx: &Context<'_>, id: ID, reason: String) -> AppResult<Doctor> {
        service::reject(
            state(ctx),
            viewer(ctx).await?,
            parse_id(&id, "id")?,
            &reason,
        )
        .await
    }
}

#[Object]
impl Doctor {
    async fn id(&self) -> ID {
        ID(self.id.to_string())
    }

    /// The doctor's account (name; contact details only for admins and the doctor).
    async fn user(&self, ctx: &Context<'_>) -> AppResult<User> {
        loader::<UserLoader>(ctx)
            .load_one(self.user_id)
            .await?
            .ok_or_else(|| AppError::not_found("the doctor's account no longer exists"))
    }

    async fn specialization(&self) -> &str {
        &self.specialization
    }

    async fn qualifications(&self) -> &[String] {
        &self.qualifications.0
    }

    async fn experience_years(&self) -> i64 {
        self.experience_years
    }

    async fn consultation_fee(&self) -> Money {
        Money {
            amount: self.fee_amount,
            currency: self.fee_currency,
        }
    }

    async fn languages(&self) -> &[String] {
        &self.languages.0
    }

    async fn bio(&self) -> &str {
        &self.bio
    }

    async fn verification_status(&self) -> VerificationStatus {
        self.verification_status
    }

    /// ONLINE, BUSY or OFFLINE right now.
    async fn status(&self, ctx: &Context<'_>) -> AppResult<DoctorStatus> {
        service::status(state(ctx), self).await
    }

    /// Why the profile was rejected; for admins and the doctor only.
    async fn rejection_reason(&self, ctx: &Context<'_>) -> AppResult<Option<&str>> {
        Ok(self
            .private(ctx)
            .await?
            .then_some(self.rejection_reason.as_deref())
            .flatten())
    }

    /// For admins and the doctor only.
    async fn licence_number(&self, ctx: &Context<'_>) -> AppResult<Option<&str>> {
        Ok(self
            .private(ctx)
            .await?
            .then_some(self.licence_number.as_str()))
    }

    /// The licence on file; for admins and the doctor only.
    async fn licence(&self, ctx: &Context<'_>) -> AppResult<Option<LicenceInfo>> {
        if !self.private(ctx).await? {
            return Ok(None);
        }
        loader::<LicenceLoader>(ctx).load_one(self.id).await
    }

    /// Average review rating, 0 to 5 (0 without reviews).
    async fn rating_average(&self) -> f64 {
        self.rating_average
    }

    async fn rating_count(&self) -> i64 {
        self.rating_count
    }

    /// Whether Stripe lets this doctor take card payments and receive payouts (see
    /// `createPayoutOnboardingLink`). While payments are on, only such doctors can be booked.
    async fn payouts_enabled(&self) -> bool {
        self.charges_enabled && self.payouts_enabled
    }

    /// When the profile was last submitted; for admins and the doctor only.
    async fn submitted_at(&self, ctx: &Context<'_>) -> AppResult<Option<DateTime<Utc>>> {
        Ok(self.private(ctx).await?.then_some(self.submitted_at))
    }

    async fn approved_at(&self) -> Option<DateTime<Utc>> {
        self.approved_at
    }

    /// Weekly hours and booking rules; null until the doctor publishes them.
    async fn schedule(&self, ctx: &Context<'_>) -> AppResult<Option<Schedule>> {
        scheduling::service::get(state(ctx), self.id).await
    }

    /// Patients' reviews, newest first.
    #[graphql(complexity = "page_complexity(first, child_complexity)")]
    async fn reviews(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0 to 100 (default 20).")] first: Option<i32>,
        after: Option<String>,
    ) -> AppResult<Connection<Review>> {
        let args = PageArgs::new(first, after)?;
        let state = state(ctx);
        let page = reviews::service::for_doctor(state, self.id, &args).await?;
        let reviews = page.edges.iter().map(|(_, r)| r.patient_id);
        prefetch::<UserLoader>(ctx, "author", reviews).await?;
        let (state, doctor_id) = (state.clone(), self.id);
        Ok(connection(
            page,
            Arc::new(move || {
                let state = state.clone();
                Box::pin(async move { reviews::service::count_for_doctor(&state, doctor_id).await })
            }),
        ))
    }
}

impl Doctor {
    async fn private(&self, ctx: &Context<'_>) -> AppResult<bool> {
        Ok(service::sees_private(optional_viewer(ctx).await?, self))
    }
}

#[Object]
impl LicenceInfo {
    async fn size_bytes(&self) -> i64 {
        self.size_bytes
    }

    /// Hex SHA-256 of the file.
    async fn sha256(&self) -> &str {
        &self.sha256
    }

    async fn content_type(&self) -> &str {
        &self.content_type
    }

    async fn uploaded_at(&self) -> DateTime<Utc> {
        self.uploaded_at
    }

    /// Where to download it, with `Authorization: Bearer`.
    async fn url(&self) -> String {
        format!("/files/licences/{}", self.doctor_id)
    }
}
