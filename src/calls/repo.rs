//! SQL for calls.

use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;
use uuid::Uuid;

use super::model::{Call, CallEndReason, CallStatus};
use crate::db::{Db, is_unique_violation, push_keyset, push_list};
use crate::with_db;

const COLUMNS: &str = "id, doctor_id, doctor_user_id, patient_id, caller_id, callee_id, \
    appointment_id, status, end_reason, created_at, answered_at, ended_at";

/// Stores a ringing call; `None` if the doctor or the patient already has a live call (the
/// partial unique indexes decide, whatever instance the other call started on).
pub async fn insert(db: &Db, call: &Call) -> sqlx::Result<Option<Call>> {
    let sql = format!(
        "INSERT INTO calls (id, doctor_id, doctor_user_id, patient_id, caller_id, callee_id, \
         appointment_id, status, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'RINGING', $8) \
         RETURNING {COLUMNS}"
    );
    let inserted = with_db!(db, pool => sqlx::query_as::<_, Call>(sqlx::AssertSqlSafe(sql))
        .bind(call.id)
        .bind(call.doctor_id)
        .bind(call.doctor_user_id)
        .bind(call.patient_id)
        .bind(call.caller_id)
        .bind(call.callee_id)
        .bind(call.appointment_id)
        .bind(call.created_at)
        .fetch_one(pool)
        .await);
    match inserted {
        Ok(call) => Ok(Some(call)),
        Err(e) if is_unique_violation(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

pub async fn find(db: &Db, id: Uuid) -> sqlx::Result<Option<Call>> {
    let sql = format!("SELECT {COLUMNS} FROM calls WHERE id = $1");
    with_db!(db, pool => sqlx::query_as::<_, Call>(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await)
}

/// RINGING to ACTIVE; `None` if the call was not ringing any more.
pub async fn answer(db: &Db, id: Uuid, now: DateTime<Utc>) -> sqlx::Result<Option<Call>> {
    let sql = format!(
        "UPDATE calls SET status = 'ACTIVE', answered_at = $2 WHERE id = $1 AND status = 'RINGING' \
         RETURNING {COLUMNS}"
    );
    with_db!(db, pool => sqlx::query_as::<_, Call>(sqlx::AssertSqlSafe(sql)).bind(id).bind(now).fetch_optional(pool).await)
}

/// Ends the call if it is in one of `from`; `None` (and no change) otherwise.
pub async fn end(
    db: &Db,
    id: Uuid,
    from: &[CallStatus],
    reason: CallEndReason,
    now: DateTime<Utc>,
) -> sqlx::Result<Option<Call>> {
    with_db!(db, pool => {
        let mut query = QueryBuilder::new("UPDATE calls SET status = 'ENDED', end_reason = ");
        query.push_bind(reason).push(", ended_at = ").push_bind(now);
        query.push(" WHERE id = ").push_bind(id).push(" AND status IN ");
        push_list(&mut query, from.iter().copied());
        query.push(format!(" RETURNING {COLUMNS}"));
        query.build_query_as::<Call>().fetch_optional(pool).await
    })
}

/// The user's live calls (at most one, by the unique indexes, but a doctor is also a user).
pub async fn live_for(db: &Db, user_id: Uuid) -> sqlx::Result<Vec<Call>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM calls WHERE status <> 'ENDED' AND (caller_id = $1 OR callee_id = $1)"
    );
    with_db!(db, pool => sqlx::query_as::<_, Call>(sqlx::AssertSqlSafe(sql)).bind(user_id).fetch_all(pool).await)
}

/// Every live call.
pub async fn live(db: &Db) -> sqlx::Result<Vec<Call>> {
    let sql = format!("SELECT {COLUMNS} FROM calls WHERE status <> 'ENDED'");
    with_db!(db, pool => sqlx::query_as::<_, Call>(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await)
}

/// Calls still ringing that started before `cutoff`.
pub async fn ringing_since(db: &Db, cutoff: DateTime<Utc>) -> sqlx::Result<Vec<Uuid>> {
    const SQL: &str = "SELECT id FROM calls WHERE status = 'RINGING' AND created_at < $1";
    with_db!(db, pool => sqlx::query_scalar(SQL).bind(cutoff).fetch_all(pool).await)
}

/// A page of the user's calls, newest first, after (created_at, id).
pub async fn list_for(
    db: &Db,
    user_id: Uuid,
    after: Option<&(DateTime<Utc>, Uuid)>,
    limit: usize,
) -> sqlx::Result<Vec<Call>> {
    with_db!(db, pool => {
        let mut query = QueryBuilder::new(format!("SELECT {COLUMNS} FROM calls WHERE (caller_id = "));
        query.push_bind(user_id).push(" OR callee_id = ").push_bind(user_id).push(")");
        push_keyset(&mut query, "created_at, id", "<", after);
        query
            .push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
        query.build_query_as::<Call>().fetch_all(pool).await
    })
}

/// Whether `a` and `b` were ever connected by an answered call (either way).
pub async fn answered_between(db: &Db, a: Uuid, b: Uuid) -> sqlx::Result<bool> {
    const SQL: &str = "SELECT COUNT(*) FROM calls WHERE answered_at IS NOT NULL \
        AND ((caller_id = $1 AND callee_id = $2) OR (caller_id = $2 AND callee_id = $1))";
    let count: i64 =
        with_db!(db, pool => sqlx::query_scalar(SQL).bind(a).bind(b).fetch_one(pool).await)?;
    Ok(count > 0)
}

pub async fn count_for(db: &Db, user_id: Uuid) -> sqlx::Result<i64> {
    const SQL: &str = "SELECT COUNT(*) FROM calls WHERE caller_id = $1 OR callee_id = $1";
    with_db!(db, pool => sqlx::query_scalar(SQL).bind(user_id).fetch_one(pool).await)
}

/// How many calls are live, by status (the live-call partial indexes cover the filter).
pub async fn count_live(db: &Db) -> sqlx::Result<Vec<(CallStatus, i64)>> {
    const SQL: &str = "SELECT status, COUNT(*) FROM calls WHERE status <> 'ENDED' GROUP BY status";
    with_db!(db, pool => sqlx::query_as(SQL).fetch_all(pool).await)
}
