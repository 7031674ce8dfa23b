//! Notification rules: each one is stored in its user's inbox, then delivered live; the inbox
//! pages, counts and marks read only the viewer's own, and keeps them for the retention period.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::Duration;
use uuid::Uuid;

use super::model::{Notification, NotificationKind};
use super::repo;
use crate::auth::AuthUser;
use crate::error::{AppError, AppResult};
use crate::events::Event;
use crate::pagination::{Page, PageArgs, time_id};
use crate::realtime::bus::Topic;
use crate::state::AppState;

/// Most ids `markNotificationsRead` takes at once (a page's worth).
pub const MAX_IDS: usize = crate::pagination::MAX_PAGE_SIZE;

/// Rows one retention statement deletes, so that a large backlog never holds a long lock.
const DELETE_BATCH: i64 = 1000;

/// Stores `message` in `user_id`'s inbox, then sends it to their open connections. The change
/// it reports has already happened: a notification that cannot be stored is logged and still
/// delivered live.
pub async fn notify(
    state: &AppState,
    user_id: Uuid,
    kind: NotificationKind,
    message: impl Into<String>,
    appointment_id: Option<Uuid>,
) {
    let notification = Notification::new(kind, message.into(), appointment_id, state.clock.now());
    if let Err(error) = repo::store(&state.db, user_id, &notification).await {
        tracing::error!(%error, user = %user_id, ?kind, "notification not stored; delivered live only");
    }
    publish(state, user_id, notification);
}

/// Sends a notification already stored for `user_id` to their open connections.
pub fn publish(state: &AppState, user_id: Uuid, notification: Notification) {
    state.realtime.bus.publish(
        Topic::User(user_id),
        Event::Notification(Arc::new(notification)),
    );
}

/// The viewer's notifications, newest first; only the unread ones when `unread_only`.
pub async fn list_mine(
    state: &AppState,
    viewer: AuthUser,
    unread_only: bool,
    args: &PageArgs,
) -> AppResult<Page<Notification>> {
    let after = args.after_time_id()?;
    let rows = repo::list(
        &state.db,
        viewer.id,
        unread_only,
        after.as_ref(),
        args.fetch_limit(),
    )
    .await?;
    Ok(Page::from_rows(rows, args, |n| time_id(n.at, n.id)))
}

pub async fn count(state: &AppState, viewer: AuthUser, unread_only: bool) -> AppResult<i64> {
    Ok(repo::count(&state.db, viewer.id, unread_only).await?)
}

pub async fn unread_count(state: &AppState, viewer: AuthUser) -> AppResult<i64> {
    count(state, viewer, true).await
}

/// Marks the viewer's notifications `ids` read, or all of them with `all`; how many were
/// unread. An id that is not one of the viewer's notifications is NOT_FOUND and changes
/// nothing, so that nobody learns whether someone else's exists.
pub async fn mark_read(
    state: &AppState,
    viewer: AuthUser,
    ids: Option<Vec<Uuid>>,
    all: bool,
) -> AppResult<u64> {
    let now = state.clock.now();
    match (ids, all) {
        (None, true) => Ok(repo::mark_all_read(&state.db, viewer.id, now).await?),
        (Some(ids), false) => {
            if ids.len() > MAX_IDS {
                return Err(AppError::bad_input(
                    "ids",
                    format!("at most {MAX_IDS} ids at once; use `all: true` for every one"),
                ));
            }
            let mut seen = HashSet::with_capacity(ids.len());
            let ids: Vec<Uuid> = ids.into_iter().filter(|id| seen.insert(*id)).collect();
            repo::mark_read(&state.db, viewer.id, &ids, now)
                .await?
                .ok_or_else(|| {
                    AppError::not_found("no notification of yours has one of these ids")
                        .with_field("ids")
                })
        }
        _ => Err(AppError::bad_input(
            "ids",
            "give either `ids` or `all: true` (one of the two)",
        )),
    }
}

/// Deletes the notifications older than `MEDILINK_NOTIFICATION_RETENTION_DAYS`, a batch at a
/// time; how many.
pub async fn delete_expired(state: &AppState) -> AppResult<u64> {
    let retention = Duration::days(i64::from(state.config.notification_retention_days));
    let cutoff = state.clock.now() - retention;
    let mut deleted = 0;
    loop {
        let batch = repo::delete_older_than(&state.db, cutoff, DELETE_BATCH).await?;
        deleted += batch;
        if batch < DELETE_BATCH.unsigned_abs() {
            return Ok(deleted);
        }
    }
}

/// Runs the retention sweep every `MEDILINK_NOTIFICATION_SWEEP_SECS` until the instance stops.
/// Its statements are left out of `/metrics`' count of database calls, which shows what
/// requests cost.
pub fn start_retention_sweep(state: &AppState) {
    let period = std::time::Duration::from_secs(state.config.notification_sweep_secs);
    let mut sweeper = state.clone();
    sweeper.db = state.db.uncounted();
    state.shutdown.every(period, move || {
        let state = sweeper.clone();
        async move {
            match delete_expired(&state).await {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(deleted, "deleted notifications past retention"),
                Err(error) => {
                    tracing::warn!(
                        error = error.message(),
                        "notification retention sweep failed"
                    );
                }
            }
        }
    });
}
