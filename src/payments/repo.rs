//! SQL for payments. A payment and the appointment it settles change in one transaction, with
//! the Stripe event that caused it, so an event takes effect once and completely or not at all.

use chrono::{DateTime, Utc};
use sqlx::{Database, Encode, QueryBuilder, Type};
use uuid::Uuid;

use super::model::{NewPayment, PaymentFilter, PaymentRow, PaymentStatus, PaymentTotals};
use crate::db::{Db, is_unique_violation, push_keyset, push_list};
use crate::doctors::currency::Currency;
use crate::{transaction, with_db};

const COLUMNS: &str = "id, appointment_id, status, amount, currency, platform_fee, \
    destination_account, checkout_session_id, checkout_url, expires_at, payment_intent_id, \
    refund_id, note, created_at, paid_at, refunded_at, updated_at";

const RECORD_EVENT: &str = "INSERT INTO stripe_events (id, type, received_at) VALUES ($1, $2, $3)";

/// Confirms a booking that waited for payment; nothing else is ever moved by a payment.
const CONFIRM_APPOINTMENT: &str = "UPDATE appointments SET status = 'CONFIRMED', \
    confirmed_at = $2, updated_at = $2 WHERE id = $1 AND status = 'PENDING_PAYMENT'";

/// Cancels a booking whose payment window closed, which frees its slot.
const RELEASE_APPOINTMENT: &str = "UPDATE appointments SET status = 'CANCELLED', \
    cancelled_at = $2, updated_at = $2, cancellation_reason = 'the payment was not completed in time' \
    WHERE id = $1 AND status = 'PENDING_PAYMENT'";

/// Inserts the event's row inside a transaction: `true` when it is new, `false` when an
/// earlier delivery of the same event already took effect.
macro_rules! record {
    ($tx:expr, $id:expr, $kind:expr, $now:expr) => {
        match sqlx::query(RECORD_EVENT)
            .bind($id)
            .bind($kind)
            .bind($now)
            .execute($tx)
            .await
        {
            Ok(_) => true,
            Err(e) if is_unique_violation(&e) => false,
            Err(e) => return Err(e),
        }
    };
}

pub async fn find(db: &Db, appointment_id: Uuid) -> sqlx::Result<Option<PaymentRow>> {
    let sql = format!("SELECT {COLUMNS} FROM payments WHERE appointment_id = $1");
    with_db!(db, pool => sqlx::query_as::<_, PaymentRow>(sqlx::AssertSqlSafe(sql)).bind(appointment_id).fetch_optional(pool).await)
}

pub async fn find_many(db: &Db, appointment_ids: &[Uuid]) -> sqlx::Result<Vec<PaymentRow>> {
    if appointment_ids.is_empty() {
        return Ok(Vec::new());
    }
    with_db!(db, pool => {
        let mut query = QueryBuilder::new(format!("SELECT {COLUMNS} FROM payments WHERE appointment_id IN "));
        push_list(&mut query, appointment_ids.iter().copied());
        query.build_query_as::<PaymentRow>().fetch_all(pool).await
    })
}

/// Stores the payment of an appointment unless it has one; returns the stored one either way.
pub async fn open(db: &Db, new: &NewPayment) -> sqlx::Result<PaymentRow> {
    const INSERT: &str = "INSERT INTO payments (id, appointment_id, status, amount, currency, \
        platform_fee, destination_account, expires_at, created_at, updated_at) \
        VALUES ($1, $2, 'UNPAID', $3, $4, $5, $6, $7, $8, $8) ON CONFLICT (appointment_id) DO NOTHING";
    with_db!(db, pool => {
        sqlx::query(INSERT)
            .bind(new.id)
            .bind(new.appointment_id)
            .bind(new.amount)
            .bind(new.currency)
            .bind(new.platform_fee)
            .bind(&new.destination_account)
            .bind(new.expires_at)
            .bind(new.now)
            .execute(pool)
            .await?;
    });
    find(db, new.appointment_id)
        .await?
        .ok_or(sqlx::Error::RowNotFound)
}

pub async fn attach_session(
    db: &Db,
    payment_id: Uuid,
    session_id: &str,
    url: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    const SQL: &str = "UPDATE payments SET checkout_session_id = $2, checkout_url = $3, \
        updated_at = $4 WHERE id = $1";
    with_db!(db, pool => sqlx::query(SQL).bind(payment_id).bind(session_id).bind(url).bind(now).execute(pool).await.map(drop))?;
    Ok(())
}

/// What a `paid` event did.
pub enum Settlement {
    /// This event was handled before.
    Duplicate,
    /// The payment is recorded and the appointment confirmed.
    Confirmed(PaymentRow),
    /// The money came after the appointment was cancelled: it must go back.
    RefundDue(PaymentRow),
    /// Nothing to change (already paid, or no payment of ours).
    Unchanged,
}

pub async fn settle_paid(
    db: &Db,
    event_id: &str,
    event_type: &str,
    appointment_id: Uuid,
    payment_intent: Option<&str>,
    now: DateTime<Utc>,
) -> sqlx::Result<Settlement> {
    let select = format!("SELECT {COLUMNS} FROM payments WHERE appointment_id = $1");
    let paid = format!(
        "UPDATE payments SET status = 'PAID', paid_at = $2, updated_at = $2, \
         payment_intent_id = COALESCE($3, payment_intent_id) \
         WHERE id = $1 AND status = 'UNPAID' RETURNING {COLUMNS}"
    );
    let refund_due = format!(
        "UPDATE payments SET status = 'REFUND_PENDING', updated_at = $2, \
         note = 'paid after the appointment was cancelled; refunded in full' \
         WHERE id = $1 RETURNING {COLUMNS}"
    );
    let outcome = transaction!(db, tx => {
        match record!(&mut *tx, event_id, event_type, now) {
            false => Settlement::Duplicate,
            true => {
                let payment = sqlx::query_as::<_, PaymentRow>(sqlx::AssertSqlSafe(select))
                    .bind(appointment_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                let payment = match payment {
                    Some(p) => sqlx::query_as::<_, PaymentRow>(sqlx::AssertSqlSafe(paid))
                        .bind(p.id)
                        .bind(now)
                        .bind(payment_intent)
                        .fetch_optional(&mut *tx)
                        .await?,
                    None => None,
                };
                match payment {
                    None => Settlement::Unchanged,
                    Some(payment) => {
                        let confirmed = sqlx::query(CONFIRM_APPOINTMENT)
                            .bind(appointment_id)
                            .bind(now)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                        if confirmed == 1 {
                            Settlement::Confirmed(payment)
                        } else {
                            let payment = sqlx::query_as::<_, PaymentRow>(sqlx::AssertSqlSafe(refund_due))
                                .bind(payment.id)
                                .bind(now)
                                .fetch_one(&mut *tx)
                                .await?;
                            Settlement::RefundDue(payment)
                        }
                    }
                }
            }
        }
    });
    Ok(outcome)
}

/// Records the event and, if it is new, releases the appointment's slot when it still waits for
/// payment. `false` for a duplicate.
pub async fn close_checkout(
    db: &Db,
    event_id: &str,
    event_type: &str,
    appointment_id: Uuid,
    now: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let fresh = transaction!(db, tx => {
        let fresh = record!(&mut *tx, event_id, event_type, now);
        if fresh {
            sqlx::query(RELEASE_APPOINTMENT).bind(appointment_id).bind(now).execute(&mut *tx).await?;
        }
        fresh
    });
    Ok(fresh)
}

/// Records a refund's outcome for the payment of `payment_intent`, with its event; `false` for a
/// duplicate.
pub async fn refund_event(
    db: &Db,
    event_id: &str,
    event_type: &str,
    payment_intent: &str,
    to: PaymentStatus,
    now: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let fresh = transaction!(db, tx => {
        let fresh = record!(&mut *tx, event_id, event_type, now);
        if fresh {
            let sql = refund_outcome_sql(to, "payment_intent_id");
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(payment_intent).bind(now).execute(&mut *tx).await?;
        }
        fresh
    });
    Ok(fresh)
}

/// Records an event that changes nothing here by itself; `false` for a duplicate.
pub async fn record_event(
    db: &Db,
    event_id: &str,
    event_type: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<bool> {
    Ok(transaction!(db, tx => record!(&mut *tx, event_id, event_type, now)))
}

/// The statement that moves a payment found by `key` ($1) out of a pending refund to `to`.
fn refund_outcome_sql(to: PaymentStatus, key: &str) -> String {
    match to {
        PaymentStatus::Refunded => format!(
            "UPDATE payments SET status = 'REFUNDED', refunded_at = $2, updated_at = $2 \
             WHERE {key} = $1 AND status IN ('PAID', 'REFUND_PENDING')"
        ),
        _ => format!(
            "UPDATE payments SET status = 'FAILED', updated_at = $2, \
             note = 'the refund failed at Stripe; an admin must settle it' \
             WHERE {key} = $1 AND status = 'REFUND_PENDING'"
        ),
    }
}

/// Marks a paid payment as being refunded, with why; `None` when it is not paid.
pub async fn begin_refund(
    db: &Db,
    appointment_id: Uuid,
    note: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<Option<PaymentRow>> {
    let sql = format!(
        "UPDATE payments SET status = 'REFUND_PENDING', note = $2, updated_at = $3 \
         WHERE appointment_id = $1 AND status = 'PAID' RETURNING {COLUMNS}"
    );
    with_db!(db, pool => sqlx::query_as::<_, PaymentRow>(sqlx::AssertSqlSafe(sql)).bind(appointment_id).bind(note).bind(now).fetch_optional(pool).await)
}

/// Stores the refund Stripe created, and its outcome when Stripe already knows it.
pub async fn refund_created(
    db: &Db,
    payment_id: Uuid,
    refund_id: &str,
    outcome: Option<PaymentStatus>,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    const SQL: &str = "UPDATE payments SET refund_id = $2, updated_at = $3 WHERE id = $1";
    transaction!(db, tx => {
        sqlx::query(SQL).bind(payment_id).bind(refund_id).bind(now).execute(&mut *tx).await?;
        if let Some(to) = outcome {
            let sql = refund_outcome_sql(to, "id");
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(payment_id).bind(now).execute(&mut *tx).await?;
        }
    });
    Ok(())
}

/// Adds a note to a paid payment that stays paid (a late cancellation by the patient).
pub async fn keep(
    db: &Db,
    appointment_id: Uuid,
    note: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    const SQL: &str = "UPDATE payments SET note = $2, updated_at = $3 \
        WHERE appointment_id = $1 AND status = 'PAID'";
    with_db!(db, pool => sqlx::query(SQL).bind(appointment_id).bind(note).bind(now).execute(pool).await.map(drop))?;
    Ok(())
}

/// Refunds asked for but never created at Stripe (the call failed): the sweep retries them.
pub async fn unsent_refunds(db: &Db) -> sqlx::Result<Vec<PaymentRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM payments WHERE status = 'REFUND_PENDING' AND refund_id IS NULL \
         AND payment_intent_id IS NOT NULL"
    );
    with_db!(db, pool => sqlx::query_as::<_, PaymentRow>(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await)
}

/// Releases the slots of bookings whose payment window (the booking hold, or the Checkout
/// session when there is one) has closed; returns how many.
pub async fn release_expired(db: &Db, now: DateTime<Utc>) -> sqlx::Result<u64> {
    const SQL: &str = "UPDATE appointments SET status = 'CANCELLED', cancelled_at = $1, \
        updated_at = $1, cancellation_reason = 'the payment was not completed in time' \
        WHERE status = 'PENDING_PAYMENT' AND payment_due_at < $1 \
        AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.appointment_id = appointments.id \
            AND p.expires_at >= $1)";
    let released = with_db!(db, pool => sqlx::query(SQL).bind(now).execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(released)
}

pub async fn list(
    db: &Db,
    filter: &PaymentFilter,
    after: Option<&(DateTime<Utc>, Uuid)>,
    limit: usize,
) -> sqlx::Result<Vec<PaymentRow>> {
    with_db!(db, pool => {
        let mut query = QueryBuilder::new(format!("SELECT {COLUMNS} FROM payments WHERE 1 = 1"));
        push_filter(&mut query, filter);
        push_keyset(&mut query, "created_at, id", "<", after);
        query
            .push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
        query.build_query_as::<PaymentRow>().fetch_all(pool).await
    })
}

pub async fn count(db: &Db, filter: &PaymentFilter) -> sqlx::Result<i64> {
    with_db!(db, pool => {
        let mut query = QueryBuilder::new("SELECT COUNT(*) FROM payments WHERE 1 = 1");
        push_filter(&mut query, filter);
        query.build_query_scalar::<i64>().fetch_one(pool).await
    })
}

fn push_filter<DB: Database>(query: &mut QueryBuilder<DB>, filter: &PaymentFilter)
where
    for<'t> PaymentStatus: Encode<'t, DB> + Type<DB>,
    for<'t> DateTime<Utc>: Encode<'t, DB> + Type<DB>,
{
    if let Some(status) = filter.status {
        query.push(" AND status = ").push_bind(status);
    }
    if let Some(from) = filter.from {
        query.push(" AND created_at >= ").push_bind(from);
    }
    if let Some(to) = filter.to {
        query.push(" AND created_at < ").push_bind(to);
    }
}

/// Money paid, kept as fees and refunded in [from, to), per currency.
pub async fn totals(
    db: &Db,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<Vec<PaymentTotals>> {
    const SQL: &str = "SELECT currency, \
        CAST(SUM(CASE WHEN paid_at >= $1 AND paid_at < $2 THEN amount ELSE 0 END) AS BIGINT), \
        CAST(SUM(CASE WHEN paid_at >= $1 AND paid_at < $2 AND status = 'PAID' \
            THEN platform_fee ELSE 0 END) AS BIGINT), \
        CAST(SUM(CASE WHEN refunded_at >= $1 AND refunded_at < $2 THEN amount ELSE 0 END) AS BIGINT), \
        CAST(SUM(CASE WHEN paid_at >= $1 AND paid_at < $2 THEN 1 ELSE 0 END) AS BIGINT) \
        FROM payments WHERE (paid_at >= $1 AND paid_at < $2) OR (refunded_at >= $1 AND refunded_at < $2) \
        GROUP BY currency ORDER BY currency";
    let rows: Vec<(Currency, i64, i64, i64, i64)> =
        with_db!(db, pool => sqlx::query_as(SQL).bind(from).bind(to).fetch_all(pool).await)?;
    Ok(rows
        .into_iter()
        .map(
            |(currency, gross, fees, refunded, payment_count)| PaymentTotals {
                currency,
                gross,
                fees,
                refunded,
                payment_count,
            },
        )
        .collect())
}
