//! Schedule rules: a doctor sets their own; anyone may read an approved doctor's.

use uuid::Uuid;

use super::model::{Schedule, ScheduleInput, ScheduleRow};
use super::{repo, validate};
use crate::auth::AuthUser;
use crate::doctors;
use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// Replaces the viewer's schedule. Existing appointments stay as they are.
pub async fn set(state: &AppState, viewer: AuthUser, input: ScheduleInput) -> AppResult<Schedule> {
    let doctor = doctors::service::own_profile(state, viewer)
        .await?
        .ok_or_else(|| {
            AppError::not_found("submit your doctor profile before setting a schedule")
        })?;
    let mut schedule = validate::schedule(doctor.id, input)?;
    schedule.updated_at = state.clock.now();
    repo::upsert(&state.db, &to_row(&schedule)?).await?;
    Ok(schedule)
}

pub async fn get(state: &AppState, doctor_id: Uuid) -> AppResult<Option<Schedule>> {
    repo::find(&state.db, doctor_id)
        .await?
        .map(from_row)
        .transpose()
}

fn to_row(schedule: &Schedule) -> AppResult<ScheduleRow> {
    Ok(ScheduleRow {
        doctor_id: schedule.doctor_id,
        time_zone: schedule.time_zone.name().to_owned(),
        slot_minutes: schedule.slot_minutes,
        min_notice_minutes: schedule.min_notice_minutes,
        booking_horizon_days: schedule.booking_horizon_days,
        cancellation_notice_minutes: schedule.cancellation_notice_minutes,
        weekly: serde_json::to_string(&schedule.weekly).map_err(AppError::internal)?,
        exceptions: serde_json::to_string(&schedule.exceptions).map_err(AppError::internal)?,
        updated_at: schedule.updated_at,
    })
}

fn from_row(row: ScheduleRow) -> AppResult<Schedule> {
    Ok(Schedule {
        doctor_id: row.doctor_id,
        time_zone: row
            .time_zone
            .parse()
            .map_err(|_| AppError::internal(StoredZone(row.time_zone.clone())))?,
        slot_minutes: row.slot_minutes,
        min_notice_minutes: row.min_notice_minutes,
        booking_horizon_days: row.booking_horizon_days,
        cancellation_notice_minutes: row.cancellation_notice_minutes,
        weekly: serde_json::from_str(&row.weekly).map_err(AppError::internal)?,
        exceptions: serde_json::from_str(&row.exceptions).map_err(AppError::internal)?,
        updated_at: row.updated_at,
    })
}

#[derive(Debug)]
struct StoredZone(String);

impl std::fmt::Display for StoredZone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stored time zone {:?} is unknown to this build", self.0)
    }
}

impl std::error::Error for StoredZone {}
