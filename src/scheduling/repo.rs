//! SQL for doctors' schedules.

use uuid::Uuid;

use super::model::ScheduleRow;
use crate::db::Db;
use crate::with_db;

pub async fn find(db: &Db, doctor_id: Uuid) -> sqlx::Result<Option<ScheduleRow>> {
    const SQL: &str = "SELECT doctor_id, time_zone, slot_minutes, min_notice_minutes, \
        booking_horizon_days, cancellation_notice_minutes, weekly, exceptions, updated_at \
        FROM doctor_schedules WHERE doctor_id = $1";
    with_db!(db, pool => sqlx::query_as::<_, ScheduleRow>(SQL).bind(doctor_id).fetch_optional(pool).await)
}

pub async fn upsert(db: &Db, row: &ScheduleRow) -> sqlx::Result<()> {
    const SQL: &str = "INSERT INTO doctor_schedules (doctor_id, time_zone, slot_minutes, \
        min_notice_minutes, booking_horizon_days, cancellation_notice_minutes, weekly, exceptions, \
        updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
        ON CONFLICT (doctor_id) DO UPDATE SET time_zone = excluded.time_zone, \
        slot_minutes = excluded.slot_minutes, min_notice_minutes = excluded.min_notice_minutes, \
        booking_horizon_days = excluded.booking_horizon_days, \
        cancellation_notice_minutes = excluded.cancellation_notice_minutes, \
        weekly = excluded.weekly, exceptions = excluded.exceptions, updated_at = excluded.updated_at";
    with_db!(db, pool => sqlx::query(SQL)
        .bind(row.doctor_id)
        .bind(&row.time_zone)
        .bind(row.slot_minutes)
        .bind(row.min_notice_minutes)
        .bind(row.booking_horizon_days)
        .bind(row.cancellation_notice_minutes)
        .bind(&row.weekly)
        .bind(&row.exceptions)
        .bind(row.updated_at)
        .execute(pool)
        .await
        .map(drop))
}
