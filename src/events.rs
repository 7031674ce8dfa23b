//! What crosses connections: the events the bus carries between domains and sockets, and
//! between instances over Redis. Domains publish and read them; `realtime` carries them without
//! importing any domain, through this module that both sides depend on.

use std::sync::Arc;

use async_graphql::Enum;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::calls::model::{CallEvent, Signal};
use crate::chat::model::ChatMessage;
use crate::notifications::model::Notification;

/// Every variant is shared or small (three words at most): every subscriber of a topic
/// receives a clone, and a queued event costs its size plus the queue's node.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Event {
    DoctorStatus(#[serde(with = "shared")] Arc<DoctorStatusEvent>),
    Call(#[serde(with = "shared")] Arc<CallEvent>),
    Signal(#[serde(with = "shared")] Arc<Signal>),
    Chat(#[serde(with = "shared")] Arc<ChatMessage>),
    Notification(#[serde(with = "shared")] Arc<Notification>),
    /// The user was logged out or blocked: their sockets on every instance must close.
    Kick(Uuid),
}

// Every subscriber's queue holds events by value: a variant that grows them shows here.
const _: () = assert!(std::mem::size_of::<Event>() <= 3 * std::mem::size_of::<usize>());

/// Encodes an `Arc<T>` as its `T`, without serde's `rc` feature.
mod shared {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(value: &Arc<T>, s: S) -> Result<S::Ok, S::Error> {
        T::serialize(value, s)
    }

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Arc<T>, D::Error> {
        T::deserialize(d).map(Arc::new)
    }
}

#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DoctorStatus {
    /// Connected and taking calls.
    Online,
    /// In a call.
    Busy,
    Offline,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DoctorStatusEvent {
    pub doctor_id: Uuid,
    pub status: DoctorStatus,
    pub at: DateTime<Utc>,
}
