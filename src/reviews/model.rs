use async_graphql::{ID, InputObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Review {
    pub id: Uuid,
    pub appointment_id: Uuid,
    pub doctor_id: Uuid,
    pub patient_id: Uuid,
    pub rating: i64,
    pub comment: String,
    pub created_at: DateTime<Utc>,
}

#[derive(InputObject)]
pub struct ReviewInput {
    pub appointment_id: ID,
    /// 1 to 5.
    pub rating: i32,
    /// Up to 2000 characters.
    #[graphql(default)]
    pub comment: String,
}
