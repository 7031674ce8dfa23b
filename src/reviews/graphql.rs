use async_graphql::{Context, ID, InputObject, Object};
use chrono::{DateTime, Utc};

use super::model::{NewReview, Review};
use super::service;
use crate::error::{AppError, AppResult};
use crate::graphql::context::{state, viewer};
use crate::graphql::ids::parse_id;
use crate::graphql::loaders::loader;
use crate::users::loaders::UserLoader;
use crate::users::model::User;

#[derive(Default)]
pub struct ReviewsMutation;

#[Object]
impl ReviewsMutation {
    /// Reviews a completed appointment, once, as its patient; the doctor's rating follows.
    async fn review_appointment(&self, ctx: &Context<'_>, input: ReviewInput) -> AppResult<Review> {
        let viewer = viewer(ctx).await?;
        let review = NewReview {
            appointment_id: parse_id(&input.appointment_id, "appointmentId")?,
            rating: input.rating,
            comment: input.comment,
        };
        service::review(state(ctx), viewer, review).await
    }
}

#[derive(InputObject)]
pub struct ReviewInput {
    pub appointment_id: ID,
    /// 1 to 5.
    pub rating: i32,
    /// Up to 2000 characters.
    #[graphql(default)]
    pub comment: String,
}

#[Object]
impl Review {
    async fn id(&self) -> ID {
        ID(self.id.to_string())
    }

    async fn rating(&self) -> i64 {
        self.rating
    }

    async fn comment(&self) -> &str {
        &self.comment
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }

    /// The patient who wrote it (their name; contact details stay private).
    async fn author(&self, ctx: &Context<'_>) -> AppResult<User> {
        loader::<UserLoader>(ctx)
            .load_one(self.patient_id)
            .await?
            .ok_or_else(|| AppError::not_found("the review's author no longer exists"))
    }
}
