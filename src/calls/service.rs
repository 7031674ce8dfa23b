//! Call rules: who may call whom and when, the life of a call, and the signaling relay.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tracing::Instrument;
use uuid::Uuid;

use super::model::{
    Call, CallEndReason, CallEvent, CallEventKind, CallStatus, CallTarget, LiveCalls,
    OutgoingSignal, Signal, SignalKind,
};
use super::repo;
use crate::appointments;
use crate::appointments::model::AppointmentStatus;
use crate::auth::{AuthUser, Role};
use crate::doctors;
use crate::enum_name::EnumName;
use crate::error::{AppError, AppResult};
use crate::events::Event;
use crate::events::{DoctorStatus, DoctorStatusEvent};
use crate::pagination::{Page, PageArgs, time_id};
use crate::realtime::bus::Topic;
use crate::realtime::presence::PresenceError;
use crate::state::AppState;
use crate::users;

const SDP_MAX_BYTES: usize = 64 * 1024;
const CANDIDATE_MAX_BYTES: usize = 4 * 1024;

/// A doctor's own choice of ONLINE or OFFLINE; BUSY belongs to calls.
pub async fn set_doctor_status(
    state: &AppState,
    viewer: AuthUser,
    status: DoctorStatus,
) -> AppResult<DoctorStatus> {
    let doctor = doctors::service::own_profile(state, viewer)
        .await?
        .ok_or_else(|| AppError::not_found("you have no doctor profile yet"))?;
    if doctor.verification_status != doctors::model::VerificationStatus::Approved {
        return Err(AppError::forbidden("only approved doctors can go online"));
    }
    let available = match status {
        DoctorStatus::Online => true,
        DoctorStatus::Offline => false,
        DoctorStatus::Busy => {
            return Err(AppError::bad_input(
                "status",
                "BUSY is set by calls; choose ONLINE or OFFLINE",
            ));
        }
    };
    state
        .realtime
        .presence
        .set_available(doctor.id, viewer.id, available)
        .await
        .map_err(|e| match e {
            PresenceError::NotConnected => {
                AppError::state_conflict("connect to /graphql/ws before going online")
            }
            PresenceError::Store(e) => e.into(),
        })
}

pub async fn start(state: &AppState, viewer: AuthUser, target: CallTarget) -> AppResult<Call> {
    users::service::require_verified_email(state, viewer, "start a call").await?;
    let now = state.clock.now();
    let call = match target {
        CallTarget::Doctor(doctor_id) => {
            viewer.require(Role::Patient)?;
            let doctor = doctors::service::get(state, None, doctor_id).await?;
            match state
                .realtime
                .presence
                .status(doctor.id, doctor.user_id)
                .await?
            {
                DoctorStatus::Online => {}
                DoctorStatus::Busy => return Err(busy()),
                DoctorStatus::Offline => {
                    return Err(AppError::state_conflict("the doctor is not online"));
                }
            }
            new_call(
                doctor.id,
                doctor.user_id,
                viewer.id,
                viewer.id,
                doctor.user_id,
                None,
                now,
            )
        }
        CallTarget::Appointment(appointment_id) => {
            let appointment = appointments::service::get(state, viewer, appointment_id).await?;
            if !matches!(
                appointment.status,
                AppointmentStatus::Confirmed | AppointmentStatus::InProgress
            ) {
                return Err(AppError::state_conflict(
                    "only a confirmed appointment can be called",
                ));
            }
            if now < appointment.starts_at - appointments::service::EARLY_START
                || now >= appointment.ends_at
            {
                return Err(AppError::state_conflict(
                    "an appointment can be called from 10 minutes before its start until its end",
                ));
            }
            let doctor = doctors::service::find_many(state, &[appointment.doctor_id])
                .await?
                .remove(&appointment.doctor_id)
                .ok_or_else(|| AppError::not_found("the appointment's doctor no longer exists"))?;
            let callee = if viewer.id == appointment.patient_id {
                doctor.user_id
            } else if viewer.id == doctor.user_id {
                appointment.patient_id
            } else {
                return Err(AppError::forbidden(
                    "only the appointment's patient and doctor can call",
                ));
            };
            new_call(
                doctor.id,
                doctor.user_id,
                appointment.patient_id,
                viewer.id,
                callee,
                Some(appointment.id),
                now,
            )
        }
    };
    let call = repo::insert(&state.db, &call).await?.ok_or_else(busy)?;
    tracing::info!(
        call = %call.id,
        doctor = %call.doctor_id,
        caller = %call.caller_id,
        callee = %call.callee_id,
        appointment = ?call.appointment_id,
        "call started"
    );
    remember(state, &call);
    set_busy(state, &call, true).await;
    publish(state, call.callee_id, CallEventKind::Incoming, &call);
    let ring = Duration::from_secs(state.config.ring_timeout_secs);
    let (timer, id) = (state.clone(), call.id);
    // If this instance stops first, it or another instance ends the ring at its stop or later.
    // In the caller's span: a missed call's lines say whose request rang.
    state.shutdown.after(
        ring,
        async move {
            if let Err(e) = finish(&timer, id, &[CallStatus::Ringing], CallEndReason::Missed).await
            {
                tracing::warn!(call = %id, error = ?e.message(), "ring timeout failed");
            }
        }
        .in_current_span(),
    );
    Ok(call)
}

fn new_call(
    doctor_id: Uuid,
    doctor_user_id: Uuid,
    patient_id: Uuid,
    caller_id: Uuid,
    callee_id: Uuid,
    appointment_id: Option<Uuid>,
    now: DateTime<Utc>,
) -> Call {
    Call {
        id: Uuid::now_v7(),
        doctor_id,
        doctor_user_id,
        patient_id,
        caller_id,
        callee_id,
        appointment_id,
        status: CallStatus::Ringing,
        end_reason: None,
        created_at: now,
        answered_at: None,
        ended_at: None,
    }
}

fn busy() -> AppError {
    AppError::state_conflict("the doctor or the patient is already in a call")
}

/// The callee accepts or declines a ringing call.
pub async fn answer(
    state: &AppState,
    viewer: AuthUser,
    call_id: Uuid,
    accept: bool,
) -> AppResult<Call> {
    let call = participant_call(state, viewer, call_id).await?;
    if call.callee_id != viewer.id {
        return Err(AppError::forbidden("only the person called can answer"));
    }
    if !accept {
        return finish(
            state,
            call_id,
            &[CallStatus::Ringing],
            CallEndReason::Declined,
        )
        .await?
        .ok_or_else(not_ringing);
    }
    users::service::require_verified_email(state, viewer, "answer a call").await?;
    let call = repo::answer(&state.db, call_id, state.clock.now())
        .await?
        .ok_or_else(not_ringing)?;
    tracing::info!(call = %call.id, "call answered");
    remember(state, &call);
    if let Some(appointment_id) = call.appointment_id {
        appointments::service::begin_by_call(state, appointment_id).await?;
    }
    publish(state, call.caller_id, CallEventKind::Accepted, &call);
    publish(state, call.callee_id, CallEventKind::Accepted, &call);
    Ok(call)
}

fn not_ringing() -> AppError {
    AppError::state_conflict("the call is not ringing any more")
}

/// The caller hangs up before an answer.
pub async fn cancel(state: &AppState, viewer: AuthUser, call_id: Uuid) -> AppResult<Call> {
    let call = participant_call(state, viewer, call_id).await?;
    if call.caller_id != viewer.id {
        return Err(AppError::forbidden(
            "only the caller can cancel; the callee declines",
        ));
    }
    finish(
        state,
        call_id,
        &[CallStatus::Ringing],
        CallEndReason::Cancelled,
    )
    .await?
    .ok_or_else(not_ringing)
}

/// Either participant hangs up.
pub async fn end(state: &AppState, viewer: AuthUser, call_id: Uuid) -> AppResult<Call> {
    participant_call(state, viewer, call_id).await?;
    finish(
        state,
        call_id,
        &[CallStatus::Ringing, CallStatus::Active],
        CallEndReason::Hangup,
    )
    .await?
    .ok_or_else(|| AppError::state_conflict("the call has already ended"))
}

/// Ends the call if it is in one of `from`: frees the doctor and tells both participants.
async fn finish(
    state: &AppState,
    call_id: Uuid,
    from: &[CallStatus],
    reason: CallEndReason,
) -> AppResult<Option<Call>> {
    let Some(call) = repo::end(&state.db, call_id, from, reason, state.clock.now()).await? else {
        return Ok(None);
    };
    let talked_secs = call
        .answered_at
        .zip(call.ended_at)
        .map(|(answered, ended)| (ended - answered).num_seconds());
    tracing::info!(call = %call.id, reason = reason.as_str(), talked_secs, "call ended");
    forget(state, call_id);
    set_busy(state, &call, false).await;
    publish(state, call.caller_id, reason.event(), &call);
    publish(state, call.callee_id, reason.event(), &call);
    Ok(Some(call))
}

/// The database decided the call; presence follows it, and a failure there must not undo it.
async fn set_busy(state: &AppState, call: &Call, busy: bool) {
    if let Err(e) = state
        .realtime
        .presence
        .set_busy(call.doctor_id, call.doctor_user_id, busy)
        .await
    {
        tracing::warn!(call = %call.id, error = %e.0, "cannot record the doctor's call in presence");
    }
}

/// A user's last connection closed: presence recorded when their grace period ends. Unless
/// this instance stops first (another one then does it), this ends their live calls at that
/// moment if they are not back.
pub fn connection_lost(state: &AppState) {
    let grace = Duration::from_secs(state.config.call_grace_secs);
    let timer = state.clone();
    // In the lost connection's span, whose lines it ends.
    state.shutdown.after(
        grace,
        async move { end_abandoned_calls(&timer).await }.in_current_span(),
    );
}

/// Ends the live calls of the users whose grace period is over and who are not back, wherever
/// they lost their connection.
async fn end_abandoned_calls(state: &AppState) {
    let users = match state.realtime.presence.take_overdue().await {
        Ok(users) => users,
        Err(e) => {
            tracing::warn!(error = %e.0, "cannot tell which lost connections are overdue");
            return;
        }
    };
    for user_id in users {
        end_calls_of(state, user_id).await;
    }
}

/// Ends the user's live calls: a ringing one as MISSED (it was never answered), an active one
/// as DROPPED.
async fn end_calls_of(state: &AppState, user_id: Uuid) {
    let calls = match repo::live_for(&state.db, user_id).await {
        Ok(calls) => calls,
        Err(e) => {
            tracing::warn!(user = %user_id, error = %e, "cannot look up calls of a lost connection");
            return;
        }
    };
    end_calls(state, calls).await;
}

async fn end_calls(state: &AppState, calls: Vec<Call>) {
    for call in calls {
        let (from, reason) = match call.status {
            CallStatus::Ringing => (CallStatus::Ringing, CallEndReason::Missed),
            _ => (CallStatus::Active, CallEndReason::Dropped),
        };
        if let Err(e) = finish(state, call.id, &[from], reason).await {
            tracing::warn!(call = %call.id, error = ?e.message(), "cannot end a dropped call");
        }
    }
}

/// Called before the instance serves. With several instances: keeps this instance's heartbeat,
/// and ends the calls of users whose grace ran out (wherever they were: their instance may be
/// gone) and rings that outlived the instance that timed them. Alone (without Redis), the
/// instance ends the calls a crashed predecessor left live, which would otherwise keep their
/// doctor and patient from calling again.
pub async fn instance_started(state: &AppState) {
    let Some(every) = state.realtime.presence.heartbeat_every() else {
        end_all_live_calls(state).await;
        return;
    };
    let watcher = state.clone();
    state.shutdown.every(every, move || {
        let state = watcher.clone();
        async move {
            if let Err(e) = state.realtime.presence.heartbeat().await {
                tracing::warn!(error = %e.0, "cannot refresh this instance's heartbeat");
            }
            end_abandoned_calls(&state).await;
            end_overdue_rings(&state).await;
        }
    });
}

async fn end_overdue_rings(state: &AppState) {
    let ring = chrono::Duration::seconds(
        i64::try_from(state.config.ring_timeout_secs).unwrap_or(i64::MAX),
    );
    let stale = match repo::ringing_since(&state.db, state.clock.now() - ring).await {
        Ok(stale) => stale,
        Err(e) => {
            tracing::warn!(error = %e, "cannot look up overdue rings");
            return;
        }
    };
    for call_id in stale {
        if let Err(e) = finish(
            state,
            call_id,
            &[CallStatus::Ringing],
            CallEndReason::Missed,
        )
        .await
        {
            tracing::warn!(call = %call_id, error = ?e.message(), "ring timeout failed");
        }
    }
}

/// Called when the instance has closed its sockets and ended its timers. With several
/// instances, it leaves presence and the grace periods of its users to the others (their
/// calls go on if they reconnect there in time). Alone, nobody can come back to it: it ends
/// its live calls, a ringing one as MISSED and an active one as DROPPED.
pub async fn instance_stopped(state: &AppState) {
    if state.realtime.presence.is_shared() {
        if let Err(e) = state.realtime.presence.leave().await {
            tracing::warn!(error = %e.0, "cannot take this instance out of presence; it will expire");
        }
    } else {
        end_all_live_calls(state).await;
    }
    // Status changes published on the way out reach the other instances before the exit.
    state.realtime.bus.flush().await;
}

async fn end_all_live_calls(state: &AppState) {
    match repo::live(&state.db).await {
        Ok(calls) => end_calls(state, calls).await,
        Err(e) => tracing::warn!(error = %e, "cannot look up live calls"),
    }
}

/// The call, if the viewer takes part in it; FORBIDDEN otherwise.
async fn participant_call(state: &AppState, viewer: AuthUser, call_id: Uuid) -> AppResult<Call> {
    let call = match live(state, call_id) {
        Some(call) => call,
        None => repo::find(&state.db, call_id)
            .await?
            .ok_or_else(forbidden)?,
    };
    if call.has_participant(viewer.id) {
        Ok(call)
    } else {
        Err(forbidden())
    }
}

fn forbidden() -> AppError {
    AppError::forbidden("only the two participants of a call can do this")
}

fn live(state: &AppState, call_id: Uuid) -> Option<Call> {
    let calls = state.live_calls.lock();
    calls.get(&call_id).cloned()
}

fn remember(state: &AppState, call: &Call) {
    let mut calls = state.live_calls.lock();
    calls.insert(call.id, call.clone());
}

fn forget(state: &AppState, call_id: Uuid) {
    let mut calls = state.live_calls.lock();
    calls.remove(&call_id);
}

fn publish(state: &AppState, user_id: Uuid, kind: CallEventKind, call: &Call) {
    state.realtime.bus.publish(
        Topic::User(user_id),
        Event::Call(Arc::new(CallEvent {
            kind,
            call: call.clone(),
        })),
    );
}

/// Relays a signal to the other participant of a ringing or active call. Nothing is stored.
pub async fn send_signal(
    state: &AppState,
    viewer: AuthUser,
    call_id: Uuid,
    input: OutgoingSignal,
) -> AppResult<bool> {
    match send_signal_now(state, viewer, call_id, input) {
        Ok(sent) => sent,
        Err(admitted) => send_signal_later(state, viewer, call_id, admitted).await,
    }
}

/// A signal that passed its checks and the rate limit, for a call this instance does not
/// know: the database decides.
pub struct Admitted(OutgoingSignal);

/// [`send_signal`] without waiting: all of it for a call live on this instance (every signal
/// of a call this instance serves), which the socket then answers in the same wake-up.
pub fn send_signal_now(
    state: &AppState,
    viewer: AuthUser,
    call_id: Uuid,
    input: OutgoingSignal,
) -> Result<AppResult<bool>, Admitted> {
    if let Err(error) = admit(state, viewer, &input) {
        return Ok(Err(error));
    }
    match live(state, call_id) {
        Some(call) if call.has_participant(viewer.id) => Ok(relay(state, viewer, &call, input)),
        Some(_) => Ok(Err(forbidden())),
        None => Err(Admitted(input)),
    }
}

/// [`send_signal`] for what [`send_signal_now`] left to the database.
pub async fn send_signal_later(
    state: &AppState,
    viewer: AuthUser,
    call_id: Uuid,
    Admitted(input): Admitted,
) -> AppResult<bool> {
    let call = participant_call(state, viewer, call_id).await?;
    relay(state, viewer, &call, input)
}

fn admit(state: &AppState, viewer: AuthUser, input: &OutgoingSignal) -> AppResult<()> {
    check_signal(input)?;
    state
        .limits
        .signals_per_user
        .check(viewer.id)
        .map_err(|wait| AppError::rate_limited("too many signals; slow down", wait))
}

/// Publishes the signal to the other participant of `call`, which the viewer is one of.
fn relay(
    state: &AppState,
    viewer: AuthUser,
    call: &Call,
    input: OutgoingSignal,
) -> AppResult<bool> {
    if !call.is_live() {
        return Err(AppError::state_conflict("the call has ended"));
    }
    let call_id = call.id;
    let kind = input.kind;
    let signal = Signal {
        call_id,
        from: viewer.id,
        kind,
        sdp: input.sdp,
        candidate: input.candidate,
        audio_enabled: input.audio_enabled,
        video_enabled: input.video_enabled,
        at: Utc::now(),
    };
    // Debug only: one line per ICE candidate is noise at info. Never the SDP or candidate.
    tracing::debug!(call = %call_id, kind = ?signal.kind, "signal relayed");
    state.realtime.bus.publish(
        Topic::User(call.other(viewer.id)),
        Event::Signal(Arc::new(signal)),
    );
    state.metrics.signal_relayed(kind);
    Ok(true)
}

fn check_signal(input: &OutgoingSignal) -> AppResult<()> {
    if input
        .sdp
        .as_ref()
        .is_some_and(|sdp| sdp.len() > SDP_MAX_BYTES)
    {
        return Err(AppError::bad_input("sdp", "an SDP may be at most 64 KiB"));
    }
    if input
        .candidate
        .as_ref()
        .is_some_and(|c| c.candidate.len() > CANDIDATE_MAX_BYTES)
    {
        return Err(AppError::bad_input(
            "candidate",
            "an ICE candidate may be at most 4 KiB",
        ));
    }
    let missing = match input.kind {
        SignalKind::Offer | SignalKind::Answer | SignalKind::Renegotiate => {
            input.sdp.is_none().then_some("sdp")
        }
        SignalKind::IceCandidate => input.candidate.is_none().then_some("candidate"),
        SignalKind::MediaState => (input.audio_enabled.is_none() && input.video_enabled.is_none())
            .then_some("audioEnabled"),
    };
    match missing {
        Some(field) => Err(AppError::bad_input(
            field,
            format!("a {:?} signal needs {field}", input.kind),
        )),
        None => Ok(()),
    }
}

/// Whether the viewer may listen to the signals of `call_id`, when the call is live on this
/// instance (`None`: ask [`signals`], which may read the database).
pub fn may_watch_signals_now(
    state: &AppState,
    viewer: AuthUser,
    call_id: Uuid,
) -> Option<AppResult<()>> {
    let call = live(state, call_id)?;
    Some(if !call.has_participant(viewer.id) {
        Err(forbidden())
    } else if !call.is_live() {
        Err(AppError::state_conflict("the call has ended"))
    } else {
        Ok(())
    })
}

/// Whether `event` ends the signals of `call_id`: the call ended.
pub fn ends_signals(event: &Event, call_id: Uuid) -> bool {
    matches!(event, Event::Call(e) if e.call.id == call_id && !e.call.is_live())
}

/// The signals the other participant sends on this call, until it ends.
pub async fn signals(
    state: &AppState,
    viewer: AuthUser,
    call_id: Uuid,
) -> AppResult<BoxStream<'static, Arc<Signal>>> {
    // Listening starts before the check, which may wait for the database (a call started on
    // another instance): a client that subscribed and then made a round trip must not miss the
    // offer its peer sends next.
    let events = state.realtime.bus.subscribe(Topic::User(viewer.id));
    let call = participant_call(state, viewer, call_id).await?;
    if !call.is_live() {
        return Err(AppError::state_conflict("the call has ended"));
    }
    Ok(events
        .take_while(move |event| std::future::ready(!ends_signals(event, call_id)))
        .filter_map(move |event| {
            std::future::ready(match event {
                Event::Signal(signal) if signal.call_id == call_id => Some(signal),
                _ => None,
            })
        })
        .boxed())
}

/// Doctors a `doctorStatusChanged` subscription may name.
const MAX_WATCHED_DOCTORS: usize = 100;

pub fn check_watched_doctors(count: usize) -> AppResult<()> {
    if count > MAX_WATCHED_DOCTORS {
        return Err(AppError::bad_input(
            "doctorIds",
            "at most 100 doctors can be watched in one subscription",
        ));
    }
    Ok(())
}

/// Doctors' status changes, all of them or those of the doctors in `only`.
pub fn doctor_statuses(
    state: &AppState,
    only: Option<HashSet<Uuid>>,
) -> BoxStream<'static, DoctorStatusEvent> {
    state
        .realtime
        .bus
        .subscribe(Topic::DoctorStatus)
        .filter_map(move |event| {
            std::future::ready(match event {
                Event::DoctorStatus(event)
                    if only
                        .as_ref()
                        .is_none_or(|ids| ids.contains(&event.doctor_id)) =>
                {
                    Some(Arc::unwrap_or_clone(event))
                }
                _ => None,
            })
        })
        .boxed()
}

/// The call events among a user's `events`.
pub fn call_events(events: BoxStream<'static, Event>) -> BoxStream<'static, CallEvent> {
    events
        .filter_map(|event| {
            std::future::ready(match event {
                Event::Call(event) => Some(Arc::unwrap_or_clone(event)),
                _ => None,
            })
        })
        .boxed()
}

/// The viewer's calls, newest first.
pub async fn my_calls(
    state: &AppState,
    viewer: AuthUser,
    args: &PageArgs,
) -> AppResult<Page<Call>> {
    let after = args.after_time_id()?;
    let rows = repo::list_for(&state.db, viewer.id, after.as_ref(), args.fetch_limit()).await?;
    Ok(Page::from_rows(rows, args, |c| time_id(c.created_at, c.id)))
}

/// Whether `a` and `b` have spoken in a call (an answered one, live or over).
pub async fn shared_a_call(state: &AppState, a: Uuid, b: Uuid) -> AppResult<bool> {
    Ok(repo::answered_between(&state.db, a, b).await?)
}

pub async fn count_calls(state: &AppState, user_id: Uuid) -> AppResult<i64> {
    Ok(repo::count_for(&state.db, user_id).await?)
}

/// How many calls are live across the deployment, for `/metrics`. Read from the database, the
/// one place that knows every instance's calls, through a handle that leaves the count of
/// database calls alone.
pub async fn live_calls(state: &AppState) -> AppResult<LiveCalls> {
    let mut live = LiveCalls::default();
    for (status, count) in repo::count_live(&state.db.uncounted()).await? {
        let count = u64::try_from(count).unwrap_or_default();
        match status {
            CallStatus::Ringing => live.ringing = count,
            CallStatus::Active => live.active = count,
            CallStatus::Ended => {}
        }
    }
    Ok(live)
}
