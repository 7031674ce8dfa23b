//! Mail: what the product sends by email, queued in the `outbox` table and sent by a background
//! worker, off the request path. Other domains build a [`Content`] with [`templates`] and hand it
//! to [`Outbox`]: in the transaction of the change that causes it where they have one, so that
//! the mail is queued if and only if the change is made, else right after the change.

mod repo;
pub mod templates;
pub mod worker;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::clock::Clock;
use crate::db::Db;

/// The product's name, in every subject and signature.
pub const PRODUCT: &str = "MediLink";

/// A mail's subject and bodies, for any recipient.
#[derive(Clone, Debug)]
pub struct Content {
    /// What the mail is about, for logs (`password_reset`): logs never hold a mail's text.
    pub kind: &'static str,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// A mail to one address.
#[derive(Clone, Debug)]
pub struct Mail {
    pub to: String,
    pub content: Content,
}

/// Where mail is queued. Cheap to clone. When mail is off (no SMTP server and no folder to write
/// to), nothing is queued: a queue that nobody sends would only grow, and a reset link sent days
/// later, once mail is configured, would have expired anyway.
#[derive(Clone)]
pub struct Outbox(Arc<Inner>);

struct Inner {
    enabled: bool,
    clock: Clock,
}

impl Outbox {
    pub fn new(enabled: bool, clock: Clock) -> Self {
        Self(Arc::new(Inner { enabled, clock }))
    }

    /// Queues `mail` on `conn`, inside the caller's transaction.
    pub async fn enqueue_in<'c, E, DB>(&self, conn: E, mail: &Mail) -> sqlx::Result<()>
    where
        E: sqlx::Executor<'c, Database = DB>,
        DB: sqlx::Database,
        DB::Arguments: sqlx::IntoArguments<DB>,
        for<'q> Uuid: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        for<'q> DateTime<Utc>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    {
        if self.skip(&mail.content) {
            return Ok(());
        }
        repo::insert(conn, &self.row(mail)).await
    }

    /// Queues `mail` on `conn` if an account has its address (lower case), in a statement that
    /// runs and costs the same whether or not one has: for answers that must not tell.
    pub async fn enqueue_in_if_account<'c, E, DB>(&self, conn: E, mail: &Mail) -> sqlx::Result<()>
    where
        E: sqlx::Executor<'c, Database = DB>,
        DB: sqlx::Database,
        DB::Arguments: sqlx::IntoArguments<DB>,
        for<'q> Uuid: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        for<'q> DateTime<Utc>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    {
        if self.skip(&mail.content) {
            return Ok(());
        }
        repo::insert_if_account(conn, &self.row(mail)).await
    }

    /// Queues `content` to each of `users` at the address their account has now. Errors are
    /// logged, not returned: this is for mail about a change that has already been made.
    pub async fn enqueue_to_users(&self, db: &Db, users: &[Uuid], content: &Content) {
        if self.skip(content) {
            return;
        }
        let rows: Vec<(Uuid, Uuid)> = users.iter().map(|&user| (Uuid::now_v7(), user)).collect();
        let queued = repo::insert_for_users(db, &rows, content, self.0.clock.now()).await;
        if let Err(error) = queued {
            tracing::warn!(%error, kind = content.kind, "cannot queue a mail");
        }
    }

    fn skip(&self, content: &Content) -> bool {
        if !self.0.enabled {
            tracing::debug!(kind = content.kind, "mail is off: not queued");
        }
        !self.0.enabled
    }

    fn row(&self, mail: &Mail) -> repo::Row {
        repo::Row {
            id: Uuid::now_v7(),
            kind: mail.content.kind,
            recipient: mail.to.clone(),
            subject: mail.content.subject.clone(),
            text_body: mail.content.text.clone(),
            html_body: mail.content.html.clone(),
            now: self.0.clock.now(),
        }
    }
}
