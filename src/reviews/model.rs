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

/// A patient's review of one of their completed appointments.
pub struct NewReview {
    pub appointment_id: Uuid,
    pub rating: i32,
    pub comment: String,
}
