//! SQL for the outbox. Claims differ by backend: PostgreSQL skips rows another worker has locked
//! (`FOR UPDATE SKIP LOCKED`); SQLite runs one writer at a time, so its conditional UPDATE is the
//! claim.

use chrono::{DateTime, Utc};
use sqlx::{Database, Encode, Executor, IntoArguments, QueryBuilder, Type};
use uuid::Uuid;

use super::Content;
use crate::db::{Db, Pool, push_list};
use crate::with_db;

/// A mail about to be queued.
pub struct Row {
    pub id: Uuid,
    pub kind: &'static str,
    pub recipient: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
    pub now: DateTime<Utc>,
}

pub async fn insert<'c, E, DB>(conn: E, row: &Row) -> sqlx::Result<()>
where
    E: Executor<'c, Database = DB>,
    DB: Database,
    DB::Arguments: IntoArguments<DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> DateTime<Utc>: Encode<'q, DB> + Type<DB>,
{
    const SQL: &str = "INSERT INTO outbox \
        (id, kind, recipient, subject, text_body, html_body, created_at, next_attempt_at) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $7)";
    insert_by(conn, SQL, row).await
}

/// Queues `row` if an account has its recipient address; the statement runs either way.
pub async fn insert_if_account<'c, E, DB>(conn: E, row: &Row) -> sqlx::Result<()>
where
    E: Executor<'c, Database = DB>,
    DB: Database,
    DB::Arguments: IntoArguments<DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> DateTime<Utc>: Encode<'q, DB> + Type<DB>,
{
    const SQL: &str = "INSERT INTO outbox \
        (id, kind, recipient, subject, text_body, html_body, created_at, next_attempt_at) \
        SELECT $1, $2, $3, $4, $5, $6, $7, $7 \
        WHERE EXISTS (SELECT 1 FROM users WHERE lower(email) = $3)";
    insert_by(conn, SQL, row).await
}

/// Runs `sql`, an insert taking `row`'s fields as $1 to $7.
async fn insert_by<'c, E, DB>(conn: E, sql: &'static str, row: &Row) -> sqlx::Result<()>
where
    E: Executor<'c, Database = DB>,
    DB: Database,
    DB::Arguments: IntoArguments<DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> DateTime<Utc>: Encode<'q, DB> + Type<DB>,
{
    sqlx::query::<DB>(sql)
        .bind(row.id)
        .bind(row.kind.to_owned())
        .bind(row.recipient.clone())
        .bind(row.subject.clone())
        .bind(row.text_body.clone())
        .bind(row.html_body.clone())
        .bind(row.now)
        .execute(conn)
        .await
        .map(drop)
}

/// Queues `content` to each account of `users` (id for the row, user) at its current address,
/// in one statement: one commit, however many recipients.
pub async fn insert_for_users(
    db: &Db,
    users: &[(Uuid, Uuid)],
    content: &Content,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    if users.is_empty() {
        return Ok(());
    }
    with_db!(db, pool => {
        let mut query = QueryBuilder::new(
            "INSERT INTO outbox \
             (id, kind, recipient, subject, text_body, html_body, created_at, next_attempt_at) \
             SELECT v.column1, ",
        );
        query
            .push_bind(content.kind)
            .push(", u.email, ")
            .push_bind(&content.subject)
            .push(", ")
            .push_bind(&content.text)
            .push(", ")
            .push_bind(&content.html)
            .push(", ")
            .push_bind(now)
            .push(", ")
            .push_bind(now)
            // VALUES names its columns column1, column2 on both backends.
            .push(" FROM users u JOIN (VALUES ");
        let mut rows = query.separated(", ");
        for (id, user) in users {
            rows.push("(")
                .push_bind_unseparated(*id)
                .push_unseparated(", ")
                .push_bind_unseparated(*user)
                .push_unseparated(")");
        }
        query.push(") AS v ON u.id = v.column2");
        query.build().execute(pool).await.map(drop)
    })
}

/// A queued mail a worker has claimed.
#[derive(sqlx::FromRow)]
pub struct Claimed {
    pub id: Uuid,
    pub kind: String,
    pub recipient: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
    pub created_at: DateTime<Utc>,
    pub attempts: i32,
}

/// Claims up to `limit` due mails for `lease`: none of them is due again until `lease_until`,
/// and only the holder of `lease` may finish them.
pub async fn claim(
    db: &Db,
    now: DateTime<Utc>,
    lease: Uuid,
    lease_until: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<Claimed>> {
    const SQLITE: &str = "UPDATE outbox SET next_attempt_at = $2, lease_id = $3, \
        attempts = attempts + 1 WHERE id IN (SELECT id FROM outbox WHERE next_attempt_at <= $1 \
        ORDER BY next_attempt_at LIMIT $4) \
        RETURNING id, kind, recipient, subject, text_body, html_body, created_at, attempts";
    const POSTGRES: &str = "UPDATE outbox SET next_attempt_at = $2, lease_id = $3, \
        attempts = attempts + 1 WHERE id IN (SELECT id FROM outbox WHERE next_attempt_at <= $1 \
        ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED) \
        RETURNING id, kind, recipient, subject, text_body, html_body, created_at, attempts";
    match db.pool() {
        Pool::Sqlite(pool) => {
            sqlx::query_as::<_, Claimed>(SQLITE)
                .bind(now)
                .bind(lease_until)
                .bind(lease)
                .bind(limit)
                .fetch_all(pool)
                .await
        }
        Pool::Postgres(pool) => {
            sqlx::query_as::<_, Claimed>(POSTGRES)
                .bind(now)
                .bind(lease_until)
                .bind(lease)
                .bind(limit)
                .fetch_all(pool)
                .await
        }
    }
}

/// Removes mails that were sent, or given up on, that `lease` still holds.
pub async fn remove(db: &Db, lease: Uuid, ids: &[Uuid]) -> sqlx::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    with_db!(db, pool => {
        let mut query = QueryBuilder::new("DELETE FROM outbox WHERE lease_id = ");
        query.push_bind(lease).push(" AND id IN ");
        push_list(&mut query, ids.iter().copied());
        query.build().execute(pool).await.map(drop)
    })
}

/// Releases a mail that could not be sent, to be tried again at `next_attempt_at`.
pub async fn retry_later(
    db: &Db,
    id: Uuid,
    lease: Uuid,
    next_attempt_at: DateTime<Utc>,
    error: &str,
) -> sqlx::Result<()> {
    const SQL: &str = "UPDATE outbox SET next_attempt_at = $3, lease_id = NULL, last_error = $4 \
        WHERE id = $1 AND lease_id = $2";
    with_db!(db, pool => sqlx::query(SQL)
        .bind(id)
        .bind(lease)
        .bind(next_attempt_at)
        .bind(error)
        .execute(pool)
        .await
        .map(drop))
}
