//! Review rules: one per completed appointment, by its patient.

use std::collections::HashMap;

use uuid::Uuid;

use super::model::{NewReview, Review};
use super::repo;
use crate::appointments;
use crate::appointments::model::AppointmentStatus;
use crate::auth::{AuthUser, Role};
use crate::db::is_unique_violation;
use crate::error::{AppError, AppResult};
use crate::pagination::{Page, PageArgs, time_id};
use crate::state::AppState;

const COMMENT_MAX_CHARS: usize = 2000;

pub async fn review(state: &AppState, viewer: AuthUser, input: NewReview) -> AppResult<Review> {
    viewer.require(Role::Patient)?;
    let appointment_id = input.appointment_id;
    if !(1..=5).contains(&input.rating) {
        return Err(AppError::bad_input("rating", "the rating must be 1 to 5"));
    }
    let comment = input.comment.trim().to_owned();
    if comment.chars().count() > COMMENT_MAX_CHARS {
        return Err(AppError::bad_input(
            "comment",
            format!("the comment may have at most {COMMENT_MAX_CHARS} characters"),
        ));
    }
    let appointment = appointments::service::get(state, viewer, appointment_id).await?;
    if appointment.patient_id != viewer.id {
        return Err(AppError::forbidden(
            "only the appointment's patient can review it",
        ));
    }
    if appointment.status != AppointmentStatus::Completed {
        return Err(AppError::state_conflict(
            "only completed appointments can be reviewed",
        ));
    }
    let review = Review {
        id: Uuid::now_v7(),
        appointment_id,
        doctor_id: appointment.doctor_id,
        patient_id: viewer.id,
        rating: i64::from(input.rating),
        comment,
        created_at: state.clock.now(),
    };
    match repo::insert(&state.db, &review).await {
        Ok(()) => Ok(review),
        Err(e) if is_unique_violation(&e) => Err(AppError::conflict(
            "appointmentId",
            "this appointment has already been reviewed",
        )),
        Err(e) => Err(e.into()),
    }
}

/// A doctor's reviews, newest first.
pub async fn for_doctor(
    state: &AppState,
    doctor_id: Uuid,
    args: &PageArgs,
) -> AppResult<Page<Review>> {
    let after = args.after_time_id()?;
    let rows = repo::for_doctor(&state.db, doctor_id, after.as_ref(), args.fetch_limit()).await?;
    Ok(Page::from_rows(rows, args, |r| time_id(r.created_at, r.id)))
}

pub async fn count_for_doctor(state: &AppState, doctor_id: Uuid) -> AppResult<i64> {
    Ok(repo::count_for_doctor(&state.db, doctor_id).await?)
}

/// Reviews by appointment id, for batched loading.
pub async fn for_appointments(state: &AppState, ids: &[Uuid]) -> AppResult<HashMap<Uuid, Review>> {
    let reviews = repo::for_appointments(&state.db, ids).await?;
    Ok(reviews.into_iter().map(|r| (r.appointment_id, r)).collect())
}
