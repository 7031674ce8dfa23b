//! SQL for reviews. A review and the doctor's rating it changes are written together.

use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;
use uuid::Uuid;

use super::model::Review;
use crate::db::{Db, push_keyset, push_list};
use crate::{transaction, with_db};

const COLUMNS: &str = "id, appointment_id, doctor_id, patient_id, rating, comment, created_at";

/// Stores the review and recomputes the doctor's average and count from all their reviews, in
/// one transaction, so search always sorts and filters on current ratings.
pub async fn insert(db: &Db, review: &Review) -> sqlx::Result<()> {
    const INSERT: &str = "INSERT INTO reviews (id, appointment_id, doctor_id, patient_id, rating, \
        comment, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";
    const RATE: &str = "UPDATE doctors SET \
        rating_average = (SELECT AVG(CAST(rating AS DOUBLE PRECISION)) FROM reviews WHERE doctor_id = $1), \
        rating_count = (SELECT COUNT(*) FROM reviews WHERE doctor_id = $1) WHERE id = $1";
    transaction!(db, tx => {
        sqlx::query(INSERT)
            .bind(review.id)
            .bind(review.appointment_id)
            .bind(review.doctor_id)
            .bind(review.patient_id)
            .bind(review.rating)
            .bind(&review.comment)
            .bind(review.created_at)
            .execute(&mut *tx)
            .await?;
        sqlx::query(RATE).bind(review.doctor_id).execute(&mut *tx).await?;
    });
    Ok(())
}

/// A page of a doctor's reviews, newest first, after (created_at, id).
pub async fn for_doctor(
    db: &Db,
    doctor_id: Uuid,
    after: Option<&(DateTime<Utc>, Uuid)>,
    limit: usize,
) -> sqlx::Result<Vec<Review>> {
    with_db!(db, pool => {
        let mut query = QueryBuilder::new(format!("SELECT {COLUMNS} FROM reviews WHERE doctor_id = "));
        query.push_bind(doctor_id);
        push_keyset(&mut query, "created_at, id", "<", after);
        query
            .push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
        query.build_query_as::<Review>().fetch_all(pool).await
    })
}

pub async fn count_for_doctor(db: &Db, doctor_id: Uuid) -> sqlx::Result<i64> {
    const SQL: &str = "SELECT COUNT(*) FROM reviews WHERE doctor_id = $1";
    with_db!(db, pool => sqlx::query_scalar(SQL).bind(doctor_id).fetch_one(pool).await)
}

pub async fn for_appointments(db: &Db, ids: &[Uuid]) -> sqlx::Result<Vec<Review>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    with_db!(db, pool => {
        let mut query = QueryBuilder::new(format!("SELECT {COLUMNS} FROM reviews WHERE appointment_id IN "));
        push_list(&mut query, ids.iter().copied());
        query.build_query_as::<Review>().fetch_all(pool).await
    })
}
