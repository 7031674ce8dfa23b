use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A chat channel as a client names it.
#[derive(Clone, Copy, Debug)]
pub enum Channel {
    /// The chat of one appointment, for its doctor and patient.
    Appointment(Uuid),
    /// Direct messages with this user.
    Direct(Uuid),
    /// The lobby, open to everyone signed in.
    Lobby,
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
