//! SQL for chat messages.

use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;
use uuid::Uuid;

use super::model::ChatMessage;
use crate::db::{Db, push_keyset};
use crate::{transaction, with_db};

const COLUMNS: &str = "id, channel, sender_id, body, created_at";

/// Stores a message; `keep` bounds how many the channel retains (oldest go first).
pub async fn insert(db: &Db, message: &ChatMessage, keep: Option<i64>) -> sqlx::Result<()> {
    const INSERT: &str = "INSERT INTO chat_messages (id, channel, sender_id, body, created_at) \
        VALUES ($1, $2, $3, $4, $5)";
    const TRIM: &str = "DELETE FROM chat_messages WHERE channel = $1 AND id NOT IN \
        (SELECT id FROM chat_messages WHERE channel = $1 ORDER BY created_at DESC, id DESC LIMIT $2)";
    transaction!(db, tx => {
        sqlx::query(INSERT)
            .bind(message.id)
            .bind(&message.channel)
            .bind(message.sender_id)
            .bind(&message.body)
            .bind(message.created_at)
            .execute(&mut *tx)
            .await?;
        if let Some(keep) = keep {
            sqlx::query(TRIM).bind(&message.channel).bind(keep).execute(&mut *tx).await?;
        }
    });
    Ok(())
}

/// The newest `limit` messages of the channel before (created_at, id), newest first.
pub async fn before(
    db: &Db,
    channel: &str,
    before: Option<&(DateTime<Utc>, Uuid)>,
    limit: usize,
) -> sqlx::Result<Vec<ChatMessage>> {
    with_db!(db, pool => {
        let mut query = QueryBuilder::new(format!("SELECT {COLUMNS} FROM chat_messages WHERE channel = "));
        query.push_bind(channel.to_owned());
        push_keyset(&mut query, "created_at, id", "<", before);
        query
            .push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
        query.build_query_as::<ChatMessage>().fetch_all(pool).await
    })
}

pub async fn count(db: &Db, channel: &str) -> sqlx::Result<i64> {
    const SQL: &str = "SELECT COUNT(*) FROM chat_messages WHERE channel = $1";
    with_db!(db, pool => sqlx::query_scalar(SQL).bind(channel).fetch_one(pool).await)
}
