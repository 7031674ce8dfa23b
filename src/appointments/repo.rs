//! SQL for appointments.

use chrono::{DateTime, Utc};
use sqlx::{Database, Encode, QueryBuilder, Type};
use uuid::Uuid;

use super::model::{
    Appointment, AppointmentFilter, AppointmentStatus, Booking, NewAppointment, Party,
};
use crate::auth::Role;
use crate::db::{Db, is_unique_violation, push_keyset, push_list};
use crate::{transaction, with_db};

const COLUMNS: &str = "id, doctor_id, patient_id, starts_at, ends_at, status, reason, fee_amount, \
    fee_currency, cancelled_by, cancellation_reason, created_at, confirmed_at, started_at, \
    completed_at, cancelled_at, no_show_at, updated_at, payment_due_at";

/// Serialises the bookings of one patient for the rest of the transaction (a row lock on
/// PostgreSQL; SQLite's write transactions are serial anyway), so that the overlap check and the
/// write that follows it cannot interleave with another booking of the same patient.
const LOCK_PATIENT: &str = "UPDATE users SET updated_at = updated_at WHERE id = $1";

/// Whether the patient has a live appointment overlapping [$2, $3), other than $4.
const PATIENT_BUSY: &str = "SELECT COUNT(*) FROM appointments WHERE patient_id = $1 \
    AND status NOT IN ('CANCELLED', 'NO_SHOW', 'COMPLETED') AND starts_at < $3 AND ends_at > $2 \
    AND id <> $4";

/// The patient's live appointments with the doctor that have not started by $3.
const OPEN_WITH_DOCTOR: &str = "SELECT COUNT(*) FROM appointments WHERE patient_id = $1 \
    AND doctor_id = $2 AND status NOT IN ('CANCELLED', 'NO_SHOW', 'COMPLETED') AND starts_at > $3";

pub async fn find(db: &Db, id: Uuid) -> sqlx::Result<Option<Appointment>> {
    let sql = format!("SELECT {COLUMNS} FROM appointments WHERE id = $1");
    with_db!(db, pool => sqlx::query_as::<_, Appointment>(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await)
}

/// Appointments by id; ids that match none are absent.
pub async fn find_many(db: &Db, ids: &[Uuid]) -> sqlx::Result<Vec<Appointment>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    with_db!(db, pool => {
        let mut query = QueryBuilder::new(format!("SELECT {COLUMNS} FROM appointments WHERE id IN "));
        push_list(&mut query, ids.iter().copied());
        query.build_query_as::<Appointment>().fetch_all(pool).await
    })
}

/// Whether `a` and `b` are the patient and the doctor (either way) of some appointment.
pub async fn shared(db: &Db, a: Uuid, b: Uuid) -> sqlx::Result<bool> {
    const SQL: &str = "SELECT COUNT(*) FROM appointments ap JOIN doctors d ON d.id = ap.doctor_id \
        WHERE (ap.patient_id = $1 AND d.user_id = $2) OR (ap.patient_id = $2 AND d.user_id = $1)";
    let count: i64 =
        with_db!(db, pool => sqlx::query_scalar(SQL).bind(a).bind(b).fetch_one(pool).await)?;
    Ok(count > 0)
}

/// Intervals of the doctor's live appointments that overlap [from, to).
pub async fn booked(
    db: &Db,
    doctor_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<Vec<(DateTime<Utc>, DateTime<Utc>)>> {
    const SQL: &str = "SELECT starts_at, ends_at FROM appointments WHERE doctor_id = $1 \
        AND status <> 'CANCELLED' AND starts_at < $3 AND ends_at > $2";
    with_db!(db, pool => sqlx::query_as(SQL).bind(doctor_id).bind(from).bind(to).fetch_all(pool).await)
}

/// Stores a booking unless the patient already holds `max_open_with_doctor` upcoming ones with
/// the doctor. The doctor's slot is guarded by the partial unique index alone: of two bookings
/// racing for it, the database lets exactly one in.
pub async fn book(
    db: &Db,
    new: &NewAppointment,
    max_open_with_doctor: u32,
) -> sqlx::Result<Booking> {
    let insert = format!(
        "INSERT INTO appointments (id, doctor_id, patient_id, starts_at, ends_at, status, reason, \
         fee_amount, fee_currency, created_at, confirmed_at, updated_at, payment_due_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $10, $12) RETURNING {COLUMNS}"
    );
    let confirmed_at = (new.status == AppointmentStatus::Confirmed).then_some(new.now);
    let outcome = transaction!(db, tx => {
        sqlx::query(LOCK_PATIENT).bind(new.patient_id).execute(&mut *tx).await?;
        let busy: i64 = sqlx::query_scalar(PATIENT_BUSY)
            .bind(new.patient_id)
            .bind(new.starts_at)
            .bind(new.ends_at)
            .bind(new.id)
            .fetch_one(&mut *tx)
            .await?;
        let open_with_doctor: i64 = sqlx::query_scalar(OPEN_WITH_DOCTOR)
            .bind(new.patient_id)
            .bind(new.doctor_id)
            .bind(new.now)
            .fetch_one(&mut *tx)
            .await?;
        if busy > 0 {
            Booking::PatientBusy
        } else if open_with_doctor >= i64::from(max_open_with_doctor) {
            Booking::TooManyWithDoctor
        } else {
            let inserted = sqlx::query_as::<_, Appointment>(sqlx::AssertSqlSafe(insert))
                .bind(new.id)
                .bind(new.doctor_id)
                .bind(new.patient_id)
                .bind(new.starts_at)
                .bind(new.ends_at)
                .bind(new.status)
                .bind(&new.reason)
                .bind(new.fee_amount)
                .bind(new.fee_currency)
                .bind(new.now)
                .bind(confirmed_at)
                .bind(new.payment_due_at)
                .fetch_one(&mut *tx)
                .await;
            match inserted {
                Ok(appointment) => Booking::Done(Box::new(appointment)),
                Err(e) if is_unique_violation(&e) => Booking::SlotTaken,
                Err(e) => return Err(e),
            }
        }
    });
    Ok(outcome)
}

/// Moves a live appointment to another interval in one statement: the old slot is free and the
/// new one taken at the same instant, or nothing changes.
pub async fn reschedule(
    db: &Db,
    appointment: &Appointment,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> sqlx::Result<Option<Booking>> {
    let update = format!(
        "UPDATE appointments SET starts_at = $2, ends_at = $3, updated_at = $4 \
         WHERE id = $1 AND status IN ('PENDING_PAYMENT', 'CONFIRMED') RETURNING {COLUMNS}"
    );
    let outcome = transaction!(db, tx => {
        sqlx::query(LOCK_PATIENT).bind(appointment.patient_id).execute(&mut *tx).await?;
        let busy: i64 = sqlx::query_scalar(PATIENT_BUSY)
            .bind(appointment.patient_id)
            .bind(starts_at)
            .bind(ends_at)
            .bind(appointment.id)
            .fetch_one(&mut *tx)
            .await?;
        if busy > 0 {
            Some(Booking::PatientBusy)
        } else {
            let moved = sqlx::query_as::<_, Appointment>(sqlx::AssertSqlSafe(update))
                .bind(appointment.id)
                .bind(starts_at)
                .bind(ends_at)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await;
            match moved {
                Ok(moved) => moved.map(|a| Booking::Done(Box::new(a))),
                Err(e) if is_unique_violation(&e) => Some(Booking::SlotTaken),
                Err(e) => return Err(e),
            }
        }
    });
    Ok(outcome)
}

/// Sets `to` if the appointment is in one of `from`, stamping the matching time column;
/// `None` (and no change) when it is not.
pub async fn transition(
    db: &Db,
    id: Uuid,
    from: &[AppointmentStatus],
    to: AppointmentStatus,
    cancellation: Option<(Role, &str)>,
    now: DateTime<Utc>,
) -> sqlx::Result<Option<Appointment>> {
    let stamp = match to {
        AppointmentStatus::Confirmed => "confirmed_at",
        AppointmentStatus::InProgress => "started_at",
        AppointmentStatus::Completed => "completed_at",
        AppointmentStatus::Cancelled => "cancelled_at",
        AppointmentStatus::NoShow => "no_show_at",
        AppointmentStatus::PendingPayment => "updated_at",
    };
    with_db!(db, pool => {
        let mut query = QueryBuilder::new("UPDATE appointments SET status = ");
        query.push_bind(to);
        query.push(format!(", {stamp} = ")).push_bind(now);
        query.push(", updated_at = ").push_bind(now);
        if let Some((by, reason)) = cancellation {
            query.push(", cancelled_by = ").push_bind(by);
            query.push(", cancellation_reason = ").push_bind(reason.to_owned());
        }
        query.push(" WHERE id = ").push_bind(id).push(" AND status IN ");
        push_list(&mut query, from.iter().copied());
        query.push(format!(" RETURNING {COLUMNS}"));
        query.build_query_as::<Appointment>().fetch_optional(pool).await
    })
}

/// A page of a party's appointments, soonest first, after (starts_at, id).
pub async fn list(
    db: &Db,
    party: Party,
    filter: &AppointmentFilter,
    after: Option<&(DateTime<Utc>, Uuid)>,
    limit: usize,
) -> sqlx::Result<Vec<Appointment>> {
    with_db!(db, pool => {
        let mut query = QueryBuilder::new(format!("SELECT {COLUMNS} FROM appointments WHERE "));
        push_filter(&mut query, party, filter);
        push_keyset(&mut query, "starts_at, id", ">", after);
        query
            .push(" ORDER BY starts_at, id LIMIT ")
            .push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
        query.build_query_as::<Appointment>().fetch_all(pool).await
    })
}

pub async fn count(db: &Db, party: Party, filter: &AppointmentFilter) -> sqlx::Result<i64> {
    with_db!(db, pool => {
        let mut query = QueryBuilder::new("SELECT COUNT(*) FROM appointments WHERE ");
        push_filter(&mut query, party, filter);
        query.build_query_scalar::<i64>().fetch_one(pool).await
    })
}

fn push_filter<DB: Database>(query: &mut QueryBuilder<DB>, party: Party, filter: &AppointmentFilter)
where
    for<'t> Uuid: Encode<'t, DB> + Type<DB>,
    for<'t> AppointmentStatus: Encode<'t, DB> + Type<DB>,
    for<'t> DateTime<Utc>: Encode<'t, DB> + Type<DB>,
{
    match party {
        Party::Patient(id) => query.push("patient_id = ").push_bind(id),
        Party::Doctor(id) => query.push("doctor_id = ").push_bind(id),
    };
    if let Some(status) = filter.status {
        query.push(" AND status = ").push_bind(status);
    }
    if let Some(from) = filter.from {
        query.push(" AND starts_at >= ").push_bind(from);
    }
    if let Some(to) = filter.to {
        query.push(" AND starts_at < ").push_bind(to);
    }
}
