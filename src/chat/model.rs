use async_graphql::{ID, InputObject, OneofObject};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(OneofObject, Clone)]
pub enum ChatChannelInput {
    /// The chat of one appointment, for its doctor and patient.
    AppointmentId(ID),
    /// Direct messages with this user.
    UserId(ID),
    /// The lobby, open to everyone signed in (pass `true`).
    Lobby(bool),
}

#[derive(InputObject)]
pub struct SendMessageInput {
    pub channel: ChatChannelInput,
    /// 1 to 4000 characters.
    pub body: String,
}

#[derive(Clone, Debug, sqlx::FromRow, Serialize, Deserialize)]
pub struct ChatMessage {
    pub id: Uuid,
    /// The channel's key: `appointment:<id>`, `direct:<id>:<id>` or `lobby`.
    pub channel: String,
    pub sender_id: Uuid,
    pub body: String,
    pub created_at: DateTime<Utc>,
}
