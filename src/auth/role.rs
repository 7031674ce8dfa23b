use serde::{Deserialize, Serialize};

// Stored by name in `users.role` and `appointments.cancelled_by`.
#[derive(
    async_graphql::Enum, sqlx::Type, Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[sqlx(type_name = "TEXT", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    Patient,
    Doctor,
    /// Created only with `medilink create-admin`; never by self-registration.
    Admin,
}
