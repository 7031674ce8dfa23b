//! SQL for the notification inbox.

use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;
use uuid::Uuid;

use super::model::Notification;
use crate::db::{Db, push_keyset, push_list};
use crate::{transaction, with_db};

const COLUMNS: &str = "id, kind, message, appointment_id, created_at, read_at";

pub const INSERT: &str = "INSERT INTO notifications \
    (id, user_id, kind, message, appointment_id, created_at) VALUES ($1, $2, $3, $4, $5, $6)";

/// Stores `$notification` for `$user` on `$executor` (a pool or, for a notification that must
/// commit with something else, a transaction).
macro_rules! insert {
    ($executor:expr, $user:expr, $notification:expr) => {
        sqlx::query($crate::notifications::repo::INSERT)
            .bind($notification.id)
            .bind($user)
            .bind($notification.kind)
            .bind(&$notification.message)
            .bind($notification.appointment_id)
            .bind($notification.at)
            .execute($executor)
            .await
            .map(drop)
    };
}
pub(crate) use insert;

pub async fn store(db: &Db, user: Uuid, notification: &Notification) -> sqlx::Result<()> {
    with_db!(db, pool => insert!(pool, user, notification))?;
    Ok(())
}

/// A page of the user's notifications, newest first, after (created_at, id).
pub async fn list(
    db: &Db,
    user: Uuid,
    unread_only: bool,
    after: Option<&(DateTime<Utc>, Uuid)>,
    limit: usize,
) -> sqlx::Result<Vec<Notification>> {
    with_db!(db, pool => {
        let mut query =
            QueryBuilder::new(format!("SELECT {COLUMNS} FROM notifications WHERE user_id = "));
        query.push_bind(user);
        if unread_only {
            query.push(" AND read_at IS NULL");
        }
        push_keyset(&mut query, "created_at, id", "<", after);
        query
            .push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
        query.build_query_as::<Notification>().fetch_all(pool).await
    })
}

pub async fn count(db: &Db, user: Uuid, unread_only: bool) -> sqlx::Result<i64> {
    const ALL: &str = "SELECT COUNT(*) FROM notifications WHERE user_id = $1";
    const UNREAD: &str =
        "SELECT COUNT(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL";
    let sql = if unread_only { UNREAD } else { ALL };
    with_db!(db, pool => sqlx::query_scalar(sql).bind(user).fetch_one(pool).await)
}

/// Marks the user's notifications `ids` (distinct) read: how many were unread, or `None` (and
/// no change) when some id is not one of the user's notifications.
pub async fn mark_read(
    db: &Db,
    user: Uuid,
    ids: &[Uuid],
    now: DateTime<Utc>,
) -> sqlx::Result<Option<u64>> {
    if ids.is_empty() {
        return Ok(Some(0));
    }
    let changed = transaction!(db, tx => {
        let mut owned = QueryBuilder::new("SELECT COUNT(*) FROM notifications WHERE user_id = ");
        owned.push_bind(user).push(" AND id IN ");
        push_list(&mut owned, ids.iter().copied());
        let owned: i64 = owned.build_query_scalar().fetch_one(&mut *tx).await?;
        if usize::try_from(owned).ok() == Some(ids.len()) {
            let mut update = QueryBuilder::new("UPDATE notifications SET read_at = ");
            update.push_bind(now).push(" WHERE user_id = ").push_bind(user);
            update.push(" AND read_at IS NULL AND id IN ");
            push_list(&mut update, ids.iter().copied());
            Some(update.build().execute(&mut *tx).await?.rows_affected())
        } else {
            None
        }
    });
    Ok(changed)
}

/// Marks every unread notification of the user read; how many there were.
pub async fn mark_all_read(db: &Db, user: Uuid, now: DateTime<Utc>) -> sqlx::Result<u64> {
    const SQL: &str =
        "UPDATE notifications SET read_at = $2 WHERE user_id = $1 AND read_at IS NULL";
    with_db!(db, pool => sqlx::query(SQL).bind(user).bind(now).execute(pool).await.map(|done| done.rows_affected()))
}

/// Deletes up to `batch` notifications created before `cutoff`; how many it deleted.
pub async fn delete_older_than(db: &Db, cutoff: DateTime<Utc>, batch: i64) -> sqlx::Result<u64> {
    const SQL: &str = "DELETE FROM notifications WHERE id IN \
        (SELECT id FROM notifications WHERE created_at < $1 LIMIT $2)";
    with_db!(db, pool => sqlx::query(SQL).bind(cutoff).bind(batch).execute(pool).await.map(|done| done.rows_affected()))
}
