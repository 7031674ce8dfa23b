//! Doctor rules: who may submit, change, verify, see and find which profiles.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use uuid::Uuid;

use super::model::{
    Doctor, DoctorFilter, DoctorProfileInput, DoctorSort, DoctorSortBy, LicenceFile, LicenceInfo,
    SearchFilter, SortDirection, SortKey, Specialization, UpdateDoctorProfileInput,
    VerificationStatus,
};
use super::{repo, validate};
use crate::auth::{AuthUser, Role};
use crate::db::{self, is_unique_violation_on};
use crate::enum_name::EnumName;
use crate::error::{AppError, AppResult};
use crate::events::DoctorStatus;
use crate::mail::templates;
use crate::notifications::{NotificationKind, notify};
use crate::pagination::{Page, PageArgs, malformed_cursor, time_id};
use crate::state::AppState;
use crate::users::model::User;

/// A doctor's first submission, or a resubmission while pending or after a rejection. Either
/// way the profile (re)enters the admin's queue with the new licence.
pub async fn submit(
    state: &AppState,
    viewer: AuthUser,
    input: DoctorProfileInput,
    licence: Vec<u8>,
) -> AppResult<Doctor> {
    viewer.require(Role::Doctor)?;
    let (fields, licence_number) = validate::profile(input)?;
    let licence = validate::licence(licence)?;
    let now = db::now();
    let saved = match repo::find_by_user(&state.db, viewer.id).await? {
        None => repo::insert(
            &state.db,
            Uuid::now_v7(),
            viewer.id,
            &fields,
            &licence_number,
            &licence,
            now,
        )
        .await
        .map(Some),
        Some(existing) if existing.verification_status == VerificationStatus::Approved => Ok(None),
        Some(existing) => {
            repo::resubmit(
                &state.db,
                existing.id,
                &fields,
                &licence_number,
                &licence,
                now,
            )
            .await
        }
    };
    match saved {
        Ok(Some(doctor)) => Ok(doctor),
        Ok(None) => Err(AppError::state_conflict(
            "your profile is already approved; change its public fields with updateDoctorProfile",
        )),
        Err(e) if is_unique_violation_on(&e, "licence_number") => Err(AppError::conflict(
            "licenceNumber",
            "another doctor has registered this licence number",
        )),
        Err(e) if is_unique_violation_on(&e, "user_id") => Err(AppError::state_conflict(
            "another submission of yours was saved at the same moment; reload your profile",
        )),
        Err(e) => Err(e.into()),
    }
}

/// Changes public fields without a new verification.
pub async fn update(
    state: &AppState,
    viewer: AuthUser,
    input: UpdateDoctorProfileInput,
) -> AppResult<Doctor> {
    viewer.require(Role::Doctor)?;
    let current = own_profile(state, viewer).await?.ok_or_else(no_profile)?;
    let fields = validate::update(&current, input)?;
    repo::update_profile(&state.db, current.id, &fields, db::now())
        .await?
        .ok_or_else(no_profile)
}

pub async fn own_profile(state: &AppState, viewer: AuthUser) -> AppResult<Option<Doctor>> {
    viewer.require(Role::Doctor)?;
    Ok(repo::find_by_user(&state.db, viewer.id).await?)
}

/// Approved, unblocked doctors for everyone; any profile for its owner and admins. Others get
/// NOT_FOUND, so that unlisted profiles do not even show that they exist.
pub async fn get(state: &AppState, viewer: Option<AuthUser>, id: Uuid) -> AppResult<Doctor> {
    if let Some(doctor) = repo::find_listed(&state.db, id).await? {
        return Ok(doctor);
    }
    if viewer.is_some()
        && let Some(doctor) = repo::find(&state.db, id).await?
        && sees_private(viewer, &doctor)
    {
        return Ok(doctor);
    }
    Err(AppError::not_found("no doctor has this id").with_field("id"))
}

/// Whether `viewer` may see the unpublished parts of `doctor` (status details, licence).
pub fn sees_private(viewer: Option<AuthUser>, doctor: &Doctor) -> bool {
    viewer.is_some_and(|v| v.is_admin() || v.id == doctor.user_id)
}

/// A page of listed doctors, and the accounts of those on it.
pub async fn search(
    state: &AppState,
    filter: &SearchFilter,
    sort: DoctorSort,
    args: &PageArgs,
) -> AppResult<(Page<Doctor>, Vec<User>)> {
    let after = args
        .after
        .as_deref()
        .map(|cursor| decode_search_cursor(cursor, sort))
        .transpose()?;
    let (doctors, users) =
        repo::search(&state.db, filter, sort, after.as_ref(), args.fetch_limit())
            .await?
            .into_iter()
            .unzip();
    let page = Page::from_rows(doctors, args, |doctor| search_cursor(doctor, sort));
    Ok((page, users))
}

pub async fn search_filter(
    state: &AppState,
    filter: Option<DoctorFilter>,
) -> AppResult<SearchFilter> {
    let filter = filter.unwrap_or_default();
    let status = filter.status;
    let mut search = validate::filter(filter)?;
    if let Some(status) = status {
        let present = state.realtime.presence.present_doctors().await?;
        if status == DoctorStatus::Offline {
            search.excluded_ids = present.into_iter().map(|(id, _)| id).collect();
        } else {
            search.only_ids = Some(
                present
                    .into_iter()
                    .filter(|(_, s)| *s == status)
                    .map(|(id, _)| id)
                    .collect(),
            );
        }
    }
    Ok(search)
}

/// Listed doctors who are ONLINE or BUSY, best rated first.
pub async fn present(state: &AppState) -> AppResult<Vec<Doctor>> {
    let ids = state
        .realtime
        .presence
        .present_doctors()
        .await?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let filter = SearchFilter {
        only_ids: Some(ids),
        ..SearchFilter::default()
    };
    let found = repo::search(&state.db, &filter, DoctorSort::default(), None, 100).await?;
    Ok(found.into_iter().map(|(doctor, _)| doctor).collect())
}

/// The doctor's presence status.
pub async fn status(state: &AppState, doctor: &Doctor) -> AppResult<DoctorStatus> {
    Ok(state
        .realtime
        .presence
        .status(doctor.id, doctor.user_id)
        .await?)
}

pub async fn count(state: &AppState, filter: &SearchFilter) -> AppResult<i64> {
    Ok(repo::count(&state.db, filter).await?)
}

pub async fn specializations(state: &AppState) -> AppResult<Vec<Specialization>> {
    Ok(repo::specializations(&state.db).await?)
}

/// The verification queue, oldest submission first (admins only).
pub async fn pending(
    state: &AppState,
    viewer: AuthUser,
    args: &PageArgs,
) -> AppResult<Page<Doctor>> {
    viewer.require(Role::Admin)?;
    let after = args.after_time_id()?;
    let rows = repo::pending(&state.db, after.as_ref(), args.fetch_limit()).await?;
    Ok(Page::from_rows(rows, args, |d| {
        time_id(d.submitted_at, d.id)
    }))
}

pub async fn count_pending(state: &AppState) -> AppResult<i64> {
    Ok(repo::count_pending(&state.db).await?)
}

pub async fn approve(state: &AppState, viewer: AuthUser, id: Uuid) -> AppResult<Doctor> {
    viewer.require(Role::Admin)?;
    let approved = repo::transition(
        &state.db,
        id,
        &[VerificationStatus::Pending],
        VerificationStatus::Approved,
        None,
        db::now(),
    )
    .await?;
    match approved {
        Some(doctor) => {
            notify(
                state,
                doctor.user_id,
                NotificationKind::DoctorApproved,
                "Your profile was approved: patients can now find and book you.",
                None,
            )
            .await;
            let mail = templates::doctor_approved();
            state
                .mail
                .enqueue_to_users(&state.db, &[doctor.user_id], &mail)
                .await;
            Ok(doctor)
        }
        None => Err(refused_transition(state, id, "approved").await),
    }
}

/// Rejects a pending profile, or withdraws an approval, with a reason the doctor sees.
pub async fn reject(
    state: &AppState,
    viewer: AuthUser,
    id: Uuid,
    reason: &str,
) -> AppResult<Doctor> {
    viewer.require(Role::Admin)?;
    let reason = validate::rejection_reason(reason)?;
    let rejected = repo::transition(
        &state.db,
        id,
        &[VerificationStatus::Pending, VerificationStatus::Approved],
        VerificationStatus::Rejected,
        Some(&reason),
        db::now(),
    )
    .await?;
    match rejected {
        Some(doctor) => {
            notify(
                state,
                doctor.user_id,
                NotificationKind::DoctorRejected,
                format!("Your profile was rejected: {reason}"),
                None,
            )
            .await;
            let mail = templates::doctor_rejected(&reason);
            state
                .mail
                .enqueue_to_users(&state.db, &[doctor.user_id], &mail)
                .await;
            Ok(doctor)
        }
        None => Err(refused_transition(state, id, "rejected").await),
    }
}

/// Why a transition matched no row: the doctor does not exist, or is in the wrong state.
async fn refused_transition(state: &AppState, id: Uuid, verb: &str) -> AppError {
    match repo::find(&state.db, id).await {
        Ok(Some(doctor)) => AppError::state_conflict(format!(
            "a {} profile cannot be {verb}",
            doctor.verification_status.as_str().to_lowercase()
        )),
        Ok(None) => AppError::not_found("no doctor has this id").with_field("id"),
        Err(e) => e.into(),
    }
}

/// Doctors by id in any state, for batched loading behind an access-checked edge.
pub async fn find_many(state: &AppState, ids: &[Uuid]) -> AppResult<HashMap<Uuid, Doctor>> {
    let doctors = repo::find_many(&state.db, ids).await?;
    Ok(doctors.into_iter().map(|d| (d.id, d)).collect())
}

/// Licence details by doctor id, for batched loading.
pub async fn licence_infos(
    state: &AppState,
    doctor_ids: &[Uuid],
) -> AppResult<HashMap<Uuid, LicenceInfo>> {
    let infos = repo::licence_infos(&state.db, doctor_ids).await?;
    Ok(infos.into_iter().map(|i| (i.doctor_id, i)).collect())
}

/// The licence file, for admins and the doctor it belongs to. Anyone else is FORBIDDEN whether
/// or not the doctor exists.
pub async fn licence_file(
    state: &AppState,
    viewer: AuthUser,
    doctor_id: Uuid,
) -> AppResult<LicenceFile> {
    let doctor = repo::find(&state.db, doctor_id).await?;
    let allowed = viewer.is_admin() || doctor.as_ref().is_some_and(|d| d.user_id == viewer.id);
    if !allowed {
        return Err(AppError::forbidden(
            "only admins and the doctor concerned may download a licence",
        ));
    }
    if doctor.is_none() {
        return Err(AppError::not_found("no doctor has this id"));
    }
    repo::licence_file(&state.db, doctor_id)
        .await?
        .ok_or_else(|| AppError::not_found("this doctor has no licence on file"))
}

fn no_profile() -> AppError {
    AppError::not_found("you have no doctor profile yet; submit one with submitDoctorProfile")
}

fn search_cursor(doctor: &Doctor, sort: DoctorSort) -> String {
    let value = match sort.by {
        DoctorSortBy::Rating => doctor.rating_average.to_string(),
        DoctorSortBy::Fee => doctor.fee_amount.to_string(),
        DoctorSortBy::Experience => doctor.experience_years.to_string(),
        DoctorSortBy::Newest => doctor.approved_at.map(format_time).unwrap_or_default(),
    };
    format!(
        "{}|{}|{value}|{}",
        sort.by.as_str(),
        direction(sort),
        doctor.id
    )
}

/// A search cursor must come from a search with the same sort, or it would skip or repeat.
fn decode_search_cursor(cursor: &str, sort: DoctorSort) -> AppResult<(SortKey, Uuid)> {
    let mut parts = cursor.splitn(4, '|');
    let (Some(by), Some(dir), Some(value), Some(id)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed_cursor());
    };
    if by != sort.by.as_str() || dir != direction(sort) {
        return Err(AppError::bad_input(
            "after",
            "this cursor belongs to a search with another sort order",
        ));
    }
    let key = match sort.by {
        DoctorSortBy::Rating => SortKey::Rating(value.parse().map_err(|_| malformed_cursor())?),
        DoctorSortBy::Fee => SortKey::Fee(value.parse().map_err(|_| malformed_cursor())?),
        DoctorSortBy::Experience => {
            SortKey::Experience(value.parse().map_err(|_| malformed_cursor())?)
        }
        DoctorSortBy::Newest => SortKey::Newest(parse_time(value)?),
    };
    Ok((key, parse_uuid(id)?))
}

fn direction(sort: DoctorSort) -> &'static str {
    match sort.direction {
        SortDirection::Asc => "ASC",
        SortDirection::Desc => "DESC",
    }
}

fn format_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_time(raw: &str) -> AppResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| malformed_cursor())
}

fn parse_uuid(raw: &str) -> AppResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| malformed_cursor())
}

/// The doctor's Stripe account: the stored one, or `account` stored now.
pub async fn set_payout_account(state: &AppState, id: Uuid, account: &str) -> AppResult<String> {
    repo::set_payout_account(&state.db, id, account)
        .await?
        .ok_or_else(|| AppError::not_found("no doctor has this id"))
}

/// Applies Stripe's view of a connected account; `false` when it is not one of ours.
pub async fn set_payout_state(
    state: &AppState,
    account: &str,
    charges_enabled: bool,
    payouts_enabled: bool,
) -> AppResult<bool> {
    Ok(repo::set_payout_state(&state.db, account, charges_enabled, payouts_enabled).await?)
}
