use std::collections::HashSet;
use std::sync::Arc;

use async_graphql::{
    Context, ID, InputObject, InputType, Object, OneofObject, Subscription, Value,
};
use chrono::{DateTime, Utc};
use futures_util::Stream;
use serde::{Deserialize, Deserializer};
use uuid::Uuid;

use super::model::{
    Call, CallEndReason, CallEvent, CallEventKind, CallStatus, CallTarget, IceCandidate,
    OutgoingSignal, Signal, SignalKind,
};
use super::service;
use crate::appointments;
use crate::appointments::model::Appointment;
use crate::doctors;
use crate::doctors::loaders::DoctorLoader;
use crate::doctors::model::Doctor;
use crate::error::{AppError, AppResult};
use crate::events::{DoctorStatus, DoctorStatusEvent};
use crate::graphql::connection::{Connection, connection};
use crate::graphql::context::user_events;
use crate::graphql::context::{state, viewer};
use crate::graphql::ids::parse_id;
use crate::graphql::loaders::{loader, prefetch};
use crate::pagination::{PageArgs, page_complexity};
use crate::users::loaders::UserLoader;
use crate::users::model::User;

#[derive(Default)]
pub struct CallsQuery;

#[Object]
impl CallsQuery {
    /// Approved doctors who are ONLINE or BUSY right now.
    async fn online_doctors(&self, ctx: &Context<'_>) -> AppResult<Vec<Doctor>> {
        doctors::service::present(state(ctx)).await
    }

    /// Your calls, newest first.
    #[graphql(complexity = "page_complexity(first, child_complexity)")]
    async fn my_calls(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0 to 100 (default 20).")] first: Option<i32>,
        after: Option<String>,
    ) -> AppResult<Connection<Call>> {
        let viewer = viewer(ctx).await?;
        let args = PageArgs::new(first, after)?;
        let state = state(ctx);
        let page = service::my_calls(state, viewer, &args).await?;
        let calls = || page.edges.iter().map(|(_, call)| call);
        for (field, users) in [
            ("caller", calls().map(|c| c.caller_id).collect::<Vec<_>>()),
            ("callee", calls().map(|c| c.callee_id).collect()),
            ("patient", calls().map(|c| c.patient_id).collect()),
        ] {
            prefetch::<UserLoader>(ctx, field, users).await?;
        }
        prefetch::<DoctorLoader>(ctx, "doctor", calls().map(|c| c.doctor_id)).await?;
        let state = state.clone();
        Ok(connection(
            page,
            Arc::new(move || {
                let state = state.clone();
                Box::pin(async move { service::count_calls(&state, viewer.id).await })
            }),
        ))
    }
}

#[derive(Default)]
pub struct CallsMutation;

#[Object]
impl CallsMutation {
    /// An approved doctor goes ONLINE (with an open WebSocket) or OFFLINE.
    async fn set_doctor_status(
        &self,
        ctx: &Context<'_>,
        status: DoctorStatus,
    ) -> AppResult<DoctorStatus> {
        service::set_doctor_status(state(ctx), viewer(ctx).await?, status).await
    }

    /// Rings a doctor who is ONLINE (patients), or the other party of a confirmed appointment
    /// in its window. Of two callers racing for one doctor, one rings and one gets CONFLICT.
    async fn start_call(&self, ctx: &Context<'_>, input: StartCallInput) -> AppResult<Call> {
        let viewer = viewer(ctx).await?;
        let target = match input {
            StartCallInput::DoctorId(id) => CallTarget::Doctor(parse_id(&id, "doctorId")?),
            StartCallInput::AppointmentId(id) => {
                CallTarget::Appointment(parse_id(&id, "appointmentId")?)
            }
        };
        service::start(state(ctx), viewer, target).await
    }

    /// The callee accepts or declines.
    async fn answer_call(&self, ctx: &Context<'_>, call_id: ID, accept: bool) -> AppResult<Call> {
        service::answer(
            state(ctx),
            viewer(ctx).await?,
            parse_id(&call_id, "callId")?,
            accept,
        )
        .await
    }

    /// The caller gives up while it rings.
    async fn cancel_call(&self, ctx: &Context<'_>, call_id: ID) -> AppResult<Call> {
        service::cancel(
            state(ctx),
            viewer(ctx).await?,
            parse_id(&call_id, "callId")?,
        )
        .await
    }

    /// Either participant hangs up.
    async fn end_call(&self, ctx: &Context<'_>, call_id: ID) -> AppResult<Call> {
        service::end(
            state(ctx),
            viewer(ctx).await?,
            parse_id(&call_id, "callId")?,
        )
        .await
    }

    /// Relays WebRTC signaling to the other participant of a ringing or active call. Send it
    /// over the WebSocket to avoid an HTTP round trip per ICE candidate.
    async fn send_signal(&self, ctx: &Context<'_>, input: SendSignalInput) -> AppResult<bool> {
        let (call_id, signal) = input.into_parts()?;
        service::send_signal(state(ctx), viewer(ctx).await?, call_id, signal).await
    }
}

#[derive(Default)]
pub struct CallsSubscription;

#[Subscription]
impl CallsSubscription {
    /// Doctors going ONLINE, BUSY or OFFLINE (signed-in users). With `doctorIds` (at most
    /// 100), only those doctors' changes: what a page showing a few doctors needs.
    async fn doctor_status_changed(
        &self,
        ctx: &Context<'_>,
        doctor_ids: Option<Vec<ID>>,
    ) -> async_graphql::Result<impl Stream<Item = DoctorStatusEvent>> {
        viewer(ctx).await?;
        let only = doctor_ids
            .map(|ids| {
                service::check_watched_doctors(ids.len())?;
                ids.iter()
                    .map(|id| parse_id(id, "doctorIds"))
                    .collect::<AppResult<HashSet<_>>>()
            })
            .transpose()?;
        Ok(service::doctor_statuses(state(ctx), only))
    }

    /// Your calls ringing, being answered and ending.
    async fn call_events(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<impl Stream<Item = CallEvent>> {
        let viewer = viewer(ctx).await?;
        Ok(service::call_events(user_events(
            ctx,
            state(ctx),
            viewer.id,
        )))
    }

    /// What the other participant of this call sends, until the call ends.
    async fn signals(
        &self,
        ctx: &Context<'_>,
        call_id: ID,
    ) -> async_graphql::Result<impl Stream<Item = Arc<Signal>>> {
        let call_id = parse_id(&call_id, "callId")?;
        Ok(service::signals(state(ctx), viewer(ctx).await?, call_id).await?)
    }
}

async fn load_user(ctx: &Context<'_>, id: uuid::Uuid) -> AppResult<User> {
    loader::<UserLoader>(ctx)
        .load_one(id)
        .await?
        .ok_or_else(|| AppError::not_found("the user no longer exists"))
}

async fn load_doctor(ctx: &Context<'_>, id: uuid::Uuid) -> AppResult<Doctor> {
    loader::<DoctorLoader>(ctx)
        .load_one(id)
        .await?
        .ok_or_else(|| AppError::not_found("the doctor no longer exists"))
}

#[Object]
impl Call {
    async fn id(&self) -> ID {
        ID(self.id.to_string())
    }

    async fn status(&self) -> CallStatus {
        self.status
    }

    async fn end_reason(&self) -> Option<CallEndReason> {
        self.end_reason
    }

    async fn caller(&self, ctx: &Context<'_>) -> AppResult<User> {
        load_user(ctx, self.caller_id).await
    }

    async fn callee(&self, ctx: &Context<'_>) -> AppResult<User> {
        load_user(ctx, self.callee_id).await
    }

    async fn doctor(&self, ctx: &Context<'_>) -> AppResult<Doctor> {
        load_doctor(ctx, self.doctor_id).await
    }

    async fn patient(&self, ctx: &Context<'_>) -> AppResult<User> {
        load_user(ctx, self.patient_id).await
    }

    /// The appointment this call is for, if any.
    async fn appointment(&self, ctx: &Context<'_>) -> AppResult<Option<Appointment>> {
        match self.appointment_id {
            Some(id) => Ok(Some(
                appointments::service::get(state(ctx), viewer(ctx).await?, id).await?,
            )),
            None => Ok(None),
        }
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }

    async fn answered_at(&self) -> Option<DateTime<Utc>> {
        self.answered_at
    }

    async fn ended_at(&self) -> Option<DateTime<Utc>> {
        self.ended_at
    }

    /// Seconds from the answer to the end, once both happened.
    async fn duration_seconds(&self) -> Option<i64> {
        Some((self.ended_at? - self.answered_at?).num_seconds())
    }
}

#[Object]
impl CallEvent {
    async fn kind(&self) -> CallEventKind {
        self.kind
    }

    async fn call(&self) -> &Call {
        &self.call
    }
}

#[Object]
impl Signal {
    async fn call_id(&self) -> ID {
        ID(self.call_id.to_string())
    }

    /// The sender's user id.
    async fn from(&self) -> ID {
        ID(self.from.to_string())
    }

    async fn kind(&self) -> SignalKind {
        self.kind
    }

    async fn sdp(&self) -> Option<&str> {
        self.sdp.as_deref()
    }

    async fn candidate(&self) -> Option<&IceCandidate> {
        self.candidate.as_ref()
    }

    async fn audio_enabled(&self) -> Option<bool> {
        self.audio_enabled
    }

    async fn video_enabled(&self) -> Option<bool> {
        self.video_enabled
    }

    async fn at(&self) -> DateTime<Utc> {
        self.at
    }
}

#[Object]
impl DoctorStatusEvent {
    async fn doctor(&self, ctx: &Context<'_>) -> AppResult<Doctor> {
        load_doctor(ctx, self.doctor_id).await
    }

    async fn status(&self) -> DoctorStatus {
        self.status
    }

    async fn at(&self) -> DateTime<Utc> {
        self.at
    }
}

#[derive(OneofObject)]
pub enum StartCallInput {
    /// Call an ONLINE doctor now (patients only).
    DoctorId(ID),
    /// Call the other party of a confirmed appointment, from 10 minutes before its start.
    AppointmentId(ID),
}

// `sendSignal`'s input. The socket's fast path (`super::socket`) reads this same type with serde,
// so the two paths take exactly the same fields: serde's attributes mirror GraphQL's names and
// refuse what GraphQL would not take as it is (the executor then gives its error).
#[derive(InputObject, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SendSignalInput {
    pub call_id: ID,
    #[serde(deserialize_with = "graphql_enum")]
    pub kind: SignalKind,
    /// For OFFER, ANSWER and RENEGOTIATE; at most 64 KiB.
    pub sdp: Option<String>,
    /// For ICE_CANDIDATE.
    pub candidate: Option<IceCandidateInput>,
    /// For MEDIA_STATE.
    pub audio_enabled: Option<bool>,
    pub video_enabled: Option<bool>,
}

#[derive(InputObject, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IceCandidateInput {
    pub candidate: String,
    pub sdp_mid: Option<String>,
    pub sdp_m_line_index: Option<i32>,
    pub username_fragment: Option<String>,
}

impl SendSignalInput {
    /// The call and the signal, as the service takes them. Destructured whole, so that a field
    /// added here and not passed on does not compile.
    pub fn into_parts(self) -> AppResult<(Uuid, OutgoingSignal)> {
        let Self {
            call_id,
            kind,
            sdp,
            candidate,
            audio_enabled,
            video_enabled,
        } = self;
        let candidate = candidate.map(
            |IceCandidateInput {
                 candidate,
                 sdp_mid,
                 sdp_m_line_index,
                 username_fragment,
             }| IceCandidate {
                candidate,
                sdp_mid,
                sdp_m_line_index,
                username_fragment,
            },
        );
        let signal = OutgoingSignal {
            kind,
            sdp,
            candidate,
            audio_enabled,
            video_enabled,
        };
        Ok((parse_id(&call_id, "callId")?, signal))
    }
}

/// A GraphQL enum by its GraphQL name (`ICE_CANDIDATE`), as variables carry it.
fn graphql_enum<'de, D: Deserializer<'de>, T: InputType>(deserializer: D) -> Result<T, D::Error> {
    let name = String::deserialize(deserializer)?;
    T::parse(Some(Value::String(name)))
        .map_err(|_| serde::de::Error::custom("not a value of the enum"))
}
