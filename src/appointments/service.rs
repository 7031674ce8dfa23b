//! Appointment rules: which slots are free, who may book, and who may move an appointment
//! through its lifecycle, when.

use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use uuid::Uuid;

use super::model::{
    Action, Appointment, AppointmentFilter, AppointmentStatus, Booking, BookingRequest,
    NewAppointment, Party,
};
use super::payment::PaymentPolicy;
use super::repo;
use crate::auth::{AuthUser, Role};
use crate::doctors;
use crate::doctors::model::Doctor;
use crate::enum_name::EnumName;
use crate::error::{AppError, AppResult};
use crate::mail::Content;
use crate::mail::templates;
use crate::notifications::{NotificationKind, notify};
use crate::pagination::{Page, PageArgs, time_id};
use crate::scheduling::model::{Schedule, Slot};
use crate::scheduling::{self, slots};
use crate::state::AppState;
use crate::users;

const MAX_RANGE_DAYS: i64 = 31;
const REASON_MAX_CHARS: usize = 1000;
/// How early before its start a doctor may start an appointment.
pub const EARLY_START: Duration = Duration::minutes(10);

/// Free slots of a listed doctor on the dates `from..=to` (at most 31 days) in `zone`, the
/// doctor's own time zone unless the client names another.
pub async fn available_slots(
    state: &AppState,
    doctor_id: Uuid,
    from: NaiveDate,
    to: NaiveDate,
    zone: Option<&str>,
) -> AppResult<Vec<Slot>> {
    if to < from {
        return Err(AppError::bad_input("to", "`to` must not be before `from`"));
    }
    if (to - from).num_days() >= MAX_RANGE_DAYS {
        return Err(AppError::bad_input(
            "to",
            format!("the range may cover at most {MAX_RANGE_DAYS} days"),
        ));
    }
    let zone: Option<Tz> = zone
        .map(|z| {
            z.parse().map_err(|_| {
                AppError::bad_input("timeZone", format!("{z:?} is not an IANA time zone"))
            })
        })
        .transpose()?;
    let doctor = doctors::service::get(state, None, doctor_id).await?;
    let Some(schedule) = scheduling::service::get(state, doctor.id).await? else {
        return Ok(Vec::new());
    };
    let zone = zone.unwrap_or(schedule.time_zone);
    let range_start = start_of_day(zone, from);
    let range_end = start_of_day(zone, to + Duration::days(1));
    // The doctor's local calendar around the range: a day in one zone spans two in another.
    let local = |t: DateTime<Utc>| t.with_timezone(&schedule.time_zone).date_naive();
    let candidates = slots::scheduled(
        &schedule,
        local(range_start) - Duration::days(1),
        local(range_end) + Duration::days(1),
    );
    let booked = repo::booked(&state.db, doctor.id, range_start, range_end).await?;
    let mut free = slots::free(&schedule, candidates, &booked, state.clock.now());
    free.retain(|slot| slot.starts_at >= range_start && slot.starts_at < range_end);
    Ok(free)
}

/// Midnight of `date` in `zone` (or the first instant of that day if midnight is skipped).
fn start_of_day(zone: Tz, date: NaiveDate) -> DateTime<Utc> {
    let mut time = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    loop {
        if let Some(instant) = zone.from_local_datetime(&time).earliest() {
            return instant.with_timezone(&Utc);
        }
        time += Duration::minutes(15);
    }
}

pub async fn book(
    state: &AppState,
    payments: &dyn PaymentPolicy,
    viewer: AuthUser,
    input: BookingRequest,
) -> AppResult<Appointment> {
    viewer.require(Role::Patient)?;
    users::service::require_verified_email(state, viewer, "book an appointment").await?;
    let doctor_id = input.doctor_id;
    let reason = reason(&input.reason)?;
    let doctor = doctors::service::get(state, None, doctor_id).await?;
    let schedule = scheduling::service::get(state, doctor.id)
        .await?
        .ok_or_else(|| {
            AppError::bad_input("doctorId", "this doctor has not published a schedule yet")
        })?;
    let now = state.clock.now();
    let slot = bookable_slot(state, &schedule, input.starts_at, now, None).await?;
    let payment_due_at = payments.payment_due(state, &doctor, now)?;
    let new = NewAppointment {
        id: Uuid::now_v7(),
        doctor_id: doctor.id,
        patient_id: viewer.id,
        starts_at: slot.starts_at,
        ends_at: slot.ends_at,
        status: if payment_due_at.is_some() {
            AppointmentStatus::PendingPayment
        } else {
            AppointmentStatus::Confirmed
        },
        reason,
        fee_amount: doctor.fee_amount,
        fee_currency: doctor.fee_currency,
        payment_due_at,
        now,
    };
    let max_open = state.config.max_open_bookings_per_doctor;
    let appointment = booked(repo::book(&state.db, &new, max_open).await?, max_open)?;
    let when = appointment.starts_at.format("%Y-%m-%d %H:%M UTC");
    notify(
        state,
        doctor.user_id,
        NotificationKind::AppointmentBooked,
        format!("New appointment on {when}"),
        Some(appointment.id),
    )
    .await;
    if appointment.status == AppointmentStatus::Confirmed {
        let mail = templates::appointment_confirmed(appointment.starts_at);
        let parties = [appointment.patient_id, doctor.user_id];
        state
            .mail
            .enqueue_to_users(&state.db, &parties, &mail)
            .await;
    }
    Ok(appointment)
}

/// Mails both parties of the appointment (errors are logged: the change is made).
async fn mail_parties(state: &AppState, appointment: &Appointment, mail: &Content) {
    let doctor_user = match doctors::service::find_many(state, &[appointment.doctor_id]).await {
        Ok(mut doctors) => doctors.remove(&appointment.doctor_id).map(|d| d.user_id),
        Err(e) => {
            tracing::warn!(error = ?e.message(), "cannot find the doctor to mail");
            None
        }
    };
    let users: Vec<Uuid> = [Some(appointment.patient_id), doctor_user]
        .into_iter()
        .flatten()
        .collect();
    state.mail.enqueue_to_users(&state.db, &users, mail).await;
}

/// Tells the party who did not act on the appointment.
async fn notify_other(
    state: &AppState,
    viewer: AuthUser,
    appointment: &Appointment,
    kind: NotificationKind,
    message: String,
) -> AppResult<()> {
    let doctor_user = doctors::service::find_many(state, &[appointment.doctor_id])
        .await?
        .remove(&appointment.doctor_id)
        .map(|d| d.user_id);
    for user in [Some(appointment.patient_id), doctor_user]
        .into_iter()
        .flatten()
    {
        if user != viewer.id {
            notify(state, user, kind, message.clone(), Some(appointment.id)).await;
        }
    }
    Ok(())
}

/// The slot starting at `starts_at`, if the schedule offers it and it is free now; otherwise
/// an error saying which rule it breaks. `moving` is an appointment that may overlap it.
async fn bookable_slot(
    state: &AppState,
    schedule: &Schedule,
    starts_at: DateTime<Utc>,
    now: DateTime<Utc>,
    moving: Option<&Appointment>,
) -> AppResult<Slot> {
    let refuse = |message: &str| Err(AppError::bad_input("startsAt", message));
    if starts_at <= now {
        return refuse("this time is in the past");
    }
    if starts_at < now + Duration::minutes(schedule.min_notice_minutes) {
        return refuse(&format!(
            "this doctor takes bookings at least {} minutes ahead",
            schedule.min_notice_minutes
        ));
    }
    if starts_at > now + Duration::days(schedule.booking_horizon_days) {
        return refuse(&format!(
            "this doctor takes bookings at most {} days ahead",
            schedule.booking_horizon_days
        ));
    }
    let day = starts_at.with_timezone(&schedule.time_zone).date_naive();
    let Some(slot) = slots::scheduled(schedule, day - Duration::days(1), day + Duration::days(1))
        .into_iter()
        .find(|slot| slot.starts_at == starts_at)
    else {
        return refuse(
            "this is not the start of one of the doctor's slots; pick one from availableSlots",
        );
    };
    let booked = repo::booked(&state.db, schedule.doctor_id, slot.starts_at, slot.ends_at).await?;
    let taken = booked
        .iter()
        .any(|interval| moving.is_none_or(|m| (m.starts_at, m.ends_at) != *interval));
    if taken {
        return Err(slot_taken());
    }
    Ok(slot)
}

fn booked(booking: Booking, max_open: u32) -> AppResult<Appointment> {
    match booking {
        Booking::TooManyWithDoctor => Err(AppError::conflict(
            "doctorId",
            format!(
                "you already have {max_open} upcoming appointments with this doctor; cancel one \
                 or wait until one has taken place"
            ),
        )),
        Booking::Done(appointment) => Ok(*appointment),
        Booking::SlotTaken => Err(slot_taken()),
        Booking::PatientBusy => Err(AppError::conflict(
            "startsAt",
            "you already have an appointment at this time",
        )),
    }
}

fn slot_taken() -> AppError {
    AppError::conflict("startsAt", "this slot has just been booked; pick another")
}

fn reason(raw: &str) -> AppResult<String> {
    let reason = raw.trim();
    if reason.chars().count() > REASON_MAX_CHARS
        || reason.chars().any(|c| c.is_control() && c != '\n')
    {
        return Err(AppError::bad_input(
            "reason",
            format!("the reason may have at most {REASON_MAX_CHARS} printable characters"),
        ));
    }
    Ok(reason.to_owned())
}

/// An appointment by id, for rules that act on it without a viewer.
pub async fn find(state: &AppState, id: Uuid) -> AppResult<Appointment> {
    repo::find(&state.db, id).await?.ok_or_else(not_found)
}

/// Appointments by id, for batched loading; ids that match none are absent. Who may see each is
/// the caller's to check ([`visible_to`]).
pub async fn find_many(state: &AppState, ids: &[Uuid]) -> AppResult<HashMap<Uuid, Appointment>> {
    let found = repo::find_many(&state.db, ids).await?;
    Ok(found.into_iter().map(|a| (a.id, a)).collect())
}

/// `appointment`, whose doctor's account is `doctor_user_id`, if `viewer` may see it (its
/// patient, its doctor or an admin); NOT_FOUND otherwise, as [`get`] answers.
pub fn visible_to(
    appointment: Appointment,
    doctor_user_id: Uuid,
    viewer: AuthUser,
) -> AppResult<Appointment> {
    let party = appointment.patient_id == viewer.id || doctor_user_id == viewer.id;
    if party || viewer.is_admin() {
        Ok(appointment)
    } else {
        Err(not_found())
    }
}

/// The appointment if the viewer is its patient, its doctor or an admin; NOT_FOUND otherwise,
/// so that strangers cannot even learn that it exists.
pub async fn get(state: &AppState, viewer: AuthUser, id: Uuid) -> AppResult<Appointment> {
    let appointment = repo::find(&state.db, id).await?.ok_or_else(not_found)?;
    if viewer.is_admin() || appointment.patient_id == viewer.id {
        return Ok(appointment);
    }
    match own_doctor(state, viewer).await? {
        Some(doctor) if doctor.id == appointment.doctor_id => Ok(appointment),
        _ => Err(not_found()),
    }
}

async fn own_doctor(state: &AppState, viewer: AuthUser) -> AppResult<Option<Doctor>> {
    if viewer.role == Role::Doctor {
        doctors::service::own_profile(state, viewer).await
    } else {
        Ok(None)
    }
}

fn not_found() -> AppError {
    AppError::not_found("no appointment of yours has this id").with_field("id")
}

/// Who acts on an appointment.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Actor {
    Patient,
    Doctor,
    Admin,
}

impl Actor {
    fn role(self) -> Role {
        match self {
            Self::Patient => Role::Patient,
            Self::Doctor => Role::Doctor,
            Self::Admin => Role::Admin,
        }
    }
}

async fn actor(state: &AppState, viewer: AuthUser, appointment: &Appointment) -> AppResult<Actor> {
    if appointment.patient_id == viewer.id {
        return Ok(Actor::Patient);
    }
    if viewer.is_admin() {
        return Ok(Actor::Admin);
    }
    match own_doctor(state, viewer).await? {
        Some(doctor) if doctor.id == appointment.doctor_id => Ok(Actor::Doctor),
        _ => Err(not_found()),
    }
}

/// The patient until the doctor's cancellation notice before the start (later too while
/// payments are on, but then the payment is kept); the doctor and admins until the end. The
/// slot is free again at once, and a paid appointment cancelled in time is refunded.
pub async fn cancel(
    state: &AppState,
    payments: &dyn PaymentPolicy,
    viewer: AuthUser,
    id: Uuid,
    reason_text: &str,
) -> AppResult<Appointment> {
    let appointment = get(state, viewer, id).await?;
    let actor = actor(state, viewer, &appointment).await?;
    let reason_text = reason(reason_text)?;
    check_status(&appointment, Action::Cancel)?;
    let now = state.clock.now();
    let mut kept_because = String::new();
    match actor {
        Actor::Patient => {
            let notice = scheduling::service::get(state, appointment.doctor_id)
                .await?
                .map_or(0, |s| s.cancellation_notice_minutes);
            if now > appointment.starts_at - Duration::minutes(notice) {
                if state.payments.is_none() {
                    return Err(AppError::state_conflict(format!(
                        "patients can cancel until {notice} minutes before the start; ask the doctor"
                    )));
                }
                kept_because = format!(
                    "kept: the patient cancelled inside the doctor's {notice}-minute cancellation notice"
                );
            }
        }
        Actor::Doctor | Actor::Admin => {
            if now >= appointment.ends_at {
                return Err(AppError::state_conflict("the appointment is already over"));
            }
        }
    }
    let cancelled = transition(
        state,
        &appointment,
        Action::Cancel,
        AppointmentStatus::Cancelled,
        Some((actor.role(), &reason_text)),
        now,
    )
    .await?;
    payments
        .cancelled(state, &cancelled, kept_because.is_empty(), &kept_because)
        .await?;
    let when = cancelled.starts_at.format("%Y-%m-%d %H:%M UTC");
    let mail = templates::appointment_cancelled(cancelled.starts_at, &reason_text);
    mail_parties(state, &cancelled, &mail).await;
    let message = format!("The appointment on {when} was cancelled");
    notify_other(
        state,
        viewer,
        &cancelled,
        NotificationKind::AppointmentCancelled,
        message,
    )
    .await?;
    Ok(cancelled)
}

/// A call of the appointment was answered: it is in progress (if it was not already).
pub async fn begin_by_call(state: &AppState, id: Uuid) -> AppResult<()> {
    let now = state.clock.now();
    repo::transition(
        &state.db,
        id,
        Action::Start.allowed_from(),
        AppointmentStatus::InProgress,
        None,
        now,
    )
    .await?;
    Ok(())
}

/// The doctor starts a confirmed appointment from 10 minutes before its start until its end.
pub async fn start(state: &AppState, viewer: AuthUser, id: Uuid) -> AppResult<Appointment> {
    let appointment = doctor_action(state, viewer, id, Action::Start).await?;
    let now = state.clock.now();
    if now < appointment.starts_at - EARLY_START || now >= appointment.ends_at {
        return Err(AppError::state_conflict(
            "an appointment can be started from 10 minutes before its start until its end",
        ));
    }
    transition(
        state,
        &appointment,
        Action::Start,
        AppointmentStatus::InProgress,
        None,
        now,
    )
    .await
}

pub async fn complete(state: &AppState, viewer: AuthUser, id: Uuid) -> AppResult<Appointment> {
    let appointment = doctor_action(state, viewer, id, Action::Complete).await?;
    let now = state.clock.now();
    transition(
        state,
        &appointment,
        Action::Complete,
        AppointmentStatus::Completed,
        None,
        now,
    )
    .await
}

/// The doctor records that the patient did not come, once the start has passed.
pub async fn mark_no_show(state: &AppState, viewer: AuthUser, id: Uuid) -> AppResult<Appointment> {
    let appointment = doctor_action(state, viewer, id, Action::MarkNoShow).await?;
    let now = state.clock.now();
    if now < appointment.starts_at {
        return Err(AppError::state_conflict(
            "the appointment has not started yet",
        ));
    }
    transition(
        state,
        &appointment,
        Action::MarkNoShow,
        AppointmentStatus::NoShow,
        None,
        now,
    )
    .await
}

async fn doctor_action(
    state: &AppState,
    viewer: AuthUser,
    id: Uuid,
    action: Action,
) -> AppResult<Appointment> {
    let appointment = get(state, viewer, id).await?;
    if actor(state, viewer, &appointment).await? != Actor::Doctor {
        return Err(AppError::forbidden(format!(
            "only the appointment's doctor can have it {}",
            action.verb()
        )));
    }
    check_status(&appointment, action)?;
    Ok(appointment)
}

fn check_status(appointment: &Appointment, action: Action) -> AppResult<()> {
    if action.allowed_from().contains(&appointment.status) {
        Ok(())
    } else {
        Err(AppError::state_conflict(format!(
            "a {} appointment cannot be {}",
            appointment.status.as_str().to_lowercase().replace('_', " "),
            action.verb()
        )))
    }
}

async fn transition(
    state: &AppState,
    appointment: &Appointment,
    action: Action,
    to: AppointmentStatus,
    cancellation: Option<(Role, &str)>,
    now: DateTime<Utc>,
) -> AppResult<Appointment> {
    repo::transition(
        &state.db,
        appointment.id,
        action.allowed_from(),
        to,
        cancellation,
        now,
    )
    .await?
    .ok_or_else(|| AppError::state_conflict("the appointment changed meanwhile; reload it"))
}

/// Moves a live appointment to another free slot of the same doctor, by its patient (within
/// the cancellation notice) or its doctor.
pub async fn reschedule(
    state: &AppState,
    viewer: AuthUser,
    id: Uuid,
    starts_at: DateTime<Utc>,
) -> AppResult<Appointment> {
    let appointment = get(state, viewer, id).await?;
    let actor = actor(state, viewer, &appointment).await?;
    check_status(&appointment, Action::Reschedule)?;
    let schedule = scheduling::service::get(state, appointment.doctor_id)
        .await?
        .ok_or_else(|| AppError::state_conflict("the doctor has no schedule any more"))?;
    let now = state.clock.now();
    if actor == Actor::Patient
        && now > appointment.starts_at - Duration::minutes(schedule.cancellation_notice_minutes)
    {
        return Err(AppError::state_conflict(format!(
            "patients can reschedule until {} minutes before the start; ask the doctor",
            schedule.cancellation_notice_minutes
        )));
    }
    let slot = bookable_slot(state, &schedule, starts_at, now, Some(&appointment)).await?;
    let moved =
        match repo::reschedule(&state.db, &appointment, slot.starts_at, slot.ends_at, now).await? {
            Some(booking) => booked(booking, state.config.max_open_bookings_per_doctor)?,
            None => {
                return Err(AppError::state_conflict(
                    "the appointment changed meanwhile; reload it",
                ));
            }
        };
    let when = moved.starts_at.format("%Y-%m-%d %H:%M UTC");
    let mail = templates::appointment_rescheduled(appointment.starts_at, moved.starts_at);
    mail_parties(state, &moved, &mail).await;
    let message = format!("The appointment moved to {when}");
    notify_other(
        state,
        viewer,
        &moved,
        NotificationKind::AppointmentRescheduled,
        message,
    )
    .await?;
    Ok(moved)
}

/// Whether the two users have an appointment together (in any state), either way round.
pub async fn share_an_appointment(state: &AppState, a: Uuid, b: Uuid) -> AppResult<bool> {
    Ok(repo::shared(&state.db, a, b).await?)
}

/// The viewer's appointments (as patient, or as doctor), soonest first.
pub async fn list_mine(
    state: &AppState,
    viewer: AuthUser,
    filter: &AppointmentFilter,
    args: &PageArgs,
) -> AppResult<(Party, Page<Appointment>)> {
    let party = party(state, viewer).await?;
    let after = args.after_time_id()?;
    let rows = repo::list(&state.db, party, filter, after.as_ref(), args.fetch_limit()).await?;
    let page = Page::from_rows(rows, args, |a| time_id(a.starts_at, a.id));
    Ok((party, page))
}

async fn party(state: &AppState, viewer: AuthUser) -> AppResult<Party> {
    match viewer.role {
        Role::Patient => Ok(Party::Patient(viewer.id)),
        Role::Doctor => own_doctor(state, viewer)
            .await?
            .map(|d| Party::Doctor(d.id))
            .ok_or_else(|| AppError::not_found("you have no doctor profile yet")),
        Role::Admin => Err(AppError::forbidden(
            "admins have no appointments of their own",
        )),
    }
}

pub async fn count(state: &AppState, party: Party, filter: &AppointmentFilter) -> AppResult<i64> {
    Ok(repo::count(&state.db, party, filter).await?)
}
