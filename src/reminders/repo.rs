//! SQL for reminders. A reminder is claimed by writing its row in `appointment_reminders`, in
//! the same transaction as the notifications it sends, so that it goes out once and completely
//! or not at all, whichever instance runs the sweep.

use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;
use uuid::Uuid;

use crate::db::{Db, push_list};
use crate::notifications::Notification;
use crate::notifications::repo::insert;
use crate::{transaction, with_db};

/// A confirmed appointment whose reminder at some offset is due and not yet handled.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Due {
    pub appointment_id: Uuid,
    pub patient_id: Uuid,
    pub doctor_user_id: Uuid,
    pub starts_at: DateTime<Utc>,
    /// When the appointment last changed: it was booked, confirmed or moved then.
    pub updated_at: DateTime<Utc>,
}

/// A reminder to claim, with what it sends to whom (nothing when it is skipped).
pub struct Claim {
    pub appointment_id: Uuid,
    pub offset_secs: i64,
    pub starts_at: DateTime<Utc>,
    pub notifications: Vec<(Uuid, Notification)>,
}

/// Confirmed appointments starting in (`from`, `to`] whose reminder at `offset_secs` was not
/// handled for their current start, soonest first. `CROSS JOIN` keeps SQLite on the
/// appointments' start index (PostgreSQL plans it as any inner join).
pub async fn due(
    db: &Db,
    offset_secs: i64,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: usize,
) -> sqlx::Result<Vec<Due>> {
    const SQL: &str = "SELECT a.id AS appointment_id, a.patient_id, d.user_id AS doctor_user_id, \
        a.starts_at, a.updated_at FROM appointments a CROSS JOIN doctors d \
        WHERE d.id = a.doctor_id AND a.status = 'CONFIRMED' AND a.starts_at > $1 \
        AND a.starts_at <= $2 AND NOT EXISTS (SELECT 1 FROM appointment_reminders r \
        WHERE r.appointment_id = a.id AND r.offset_secs = $3 AND r.starts_at = a.starts_at) \
        ORDER BY a.starts_at LIMIT $4";
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    with_db!(db, pool => sqlx::query_as(SQL).bind(from).bind(to).bind(offset_secs).bind(limit).fetch_all(pool).await)
}

/// Claims the reminders whose appointment is still confirmed at the same start and whose row
/// no other sweep has written for that start, storing their notifications with the claim, in
/// one transaction; returns the claims won. On PostgreSQL the appointments are locked
/// (`FOR UPDATE SKIP LOCKED`): one that another instance's sweep or a cancellation holds is
/// left for a later sweep, and a cancellation waits for the reminder rather than cross it. On
/// SQLite the transaction holds the write lock throughout.
pub async fn claim(db: &Db, claims: Vec<Claim>) -> sqlx::Result<Vec<Claim>> {
    const CLAIM: &str = "INSERT INTO appointment_reminders (appointment_id, offset_secs, starts_at) \
        VALUES ($1, $2, $3) ON CONFLICT (appointment_id, offset_secs) \
        DO UPDATE SET starts_at = excluded.starts_at \
        WHERE appointment_reminders.starts_at <> excluded.starts_at RETURNING appointment_id";
    if claims.is_empty() {
        return Ok(claims);
    }
    let lock = if db.backend() == "postgres" {
        " FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    let won = transaction!(db, tx => {
        let mut current = QueryBuilder::new(
            "SELECT id, starts_at FROM appointments WHERE status = 'CONFIRMED' AND id IN ",
        );
        push_list(&mut current, claims.iter().map(|c| c.appointment_id));
        current.push(lock);
        let current: Vec<(Uuid, DateTime<Utc>)> =
            current.build_query_as().fetch_all(&mut *tx).await?;
        let mut won = Vec::with_capacity(claims.len());
        for claim in claims {
            if !current.contains(&(claim.appointment_id, claim.starts_at)) {
                continue;
            }
            let claimed: Option<Uuid> = sqlx::query_scalar(CLAIM)
                .bind(claim.appointment_id)
                .bind(claim.offset_secs)
                .bind(claim.starts_at)
                .fetch_optional(&mut *tx)
                .await?;
            if claimed.is_some() {
                for (user, notification) in &claim.notifications {
                    insert!(&mut *tx, *user, notification)?;
                }
                won.push(claim);
            }
        }
        won
    });
    Ok(won)
}

/// Forgets the reminders of appointments that started before `before`: the sweep only looks
/// at appointments that have not started.
pub async fn forget_before(db: &Db, before: DateTime<Utc>) -> sqlx::Result<u64> {
    const SQL: &str = "DELETE FROM appointment_reminders WHERE starts_at < $1";
    with_db!(db, pool => sqlx::query(SQL).bind(before).execute(pool).await.map(|done| done.rows_affected()))
}
