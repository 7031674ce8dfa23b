use async_graphql::{Enum, SimpleObject};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Enum, sqlx::Type, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[sqlx(type_name = "TEXT", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CallStatus {
    Ringing,
    Active,
    Ended,
}

/// How a call ended.
#[derive(Enum, sqlx::Type, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
// On the bus between instances as it was when it was a string, so that versions mix.
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[sqlx(type_name = "TEXT", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CallEndReason {
    /// The callee declined.
    Declined,
    /// The caller hung up before an answer.
    Cancelled,
    /// Nobody answered in time.
    Missed,
    /// A participant hung up.
    Hangup,
    /// A participant's connection was lost and did not come back.
    Dropped,
}

impl CallEndReason {
    /// The event both participants receive when a call ends this way.
    pub fn event(self) -> CallEventKind {
        match self {
            Self::Declined => CallEventKind::Declined,
            Self::Cancelled => CallEventKind::Cancelled,
            Self::Missed => CallEventKind::Missed,
            Self::Hangup | Self::Dropped => CallEventKind::Ended,
        }
    }
}

#[derive(Clone, Debug, sqlx::FromRow, Serialize, Deserialize)]
pub struct Call {
    pub id: Uuid,
    pub doctor_id: Uuid,
    pub doctor_user_id: Uuid,
    pub patient_id: Uuid,
    pub caller_id: Uuid,
    pub callee_id: Uuid,
    pub appointment_id: Option<Uuid>,
    pub status: CallStatus,
    pub end_reason: Option<CallEndReason>,
    pub created_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
}

impl Call {
    pub fn is_live(&self) -> bool {
        matches!(self.status, CallStatus::Ringing | CallStatus::Active)
    }

    pub fn has_participant(&self, user_id: Uuid) -> bool {
        self.caller_id == user_id || self.callee_id == user_id
    }

    /// The participant who is not `user_id`.
    pub fn other(&self, user_id: Uuid) -> Uuid {
        if self.caller_id == user_id {
            self.callee_id
        } else {
            self.caller_id
        }
    }
}

#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallEventKind {
    /// Someone is calling you.
    Incoming,
    Accepted,
    Declined,
    Cancelled,
    Missed,
    Ended,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CallEvent {
    pub kind: CallEventKind,
    pub call: Call,
}

/// Whom a call rings.
#[derive(Clone, Copy, Debug)]
pub enum CallTarget {
    /// An ONLINE doctor, now (patients only).
    Doctor(Uuid),
    /// The other party of a confirmed appointment, from 10 minutes before its start.
    Appointment(Uuid),
}

#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SignalKind {
    Offer,
    Answer,
    IceCandidate,
    Renegotiate,
    /// Microphone or camera turned on or off.
    MediaState,
}

// An ICE candidate as the browser's `RTCIceCandidate` gives it.
#[derive(SimpleObject, Clone, Debug, Serialize, Deserialize)]
pub struct IceCandidate {
    pub candidate: String,
    pub sdp_mid: Option<String>,
    pub sdp_m_line_index: Option<i32>,
    pub username_fragment: Option<String>,
}

/// What a participant sends the other; checked by the service before it is relayed.
#[derive(Clone, Debug)]
pub struct OutgoingSignal {
    pub kind: SignalKind,
    pub sdp: Option<String>,
    pub candidate: Option<IceCandidate>,
    pub audio_enabled: Option<bool>,
    pub video_enabled: Option<bool>,
}

/// A signaling message on its way from one participant to the other; never stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Signal {
    pub call_id: Uuid,
    pub from: Uuid,
    pub kind: SignalKind,
    pub sdp: Option<String>,
    pub candidate: Option<IceCandidate>,
    pub audio_enabled: Option<bool>,
    pub video_enabled: Option<bool>,
    pub at: DateTime<Utc>,
}

/// How many calls are live, by state.
#[derive(Clone, Copy, Debug, Default)]
pub struct LiveCalls {
    pub ringing: u64,
    pub active: u64,
}
