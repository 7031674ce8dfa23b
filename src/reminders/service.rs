//! Reminder rules: before each confirmed appointment, at each of `MEDILINK_REMINDER_OFFSETS`,
//! both parties get an APPOINTMENT_REMINDER, once per appointment, offset and start time,
//! whichever instance sweeps and however often they restart.
//!
//! A reminder is due from `offset` before the start until the next shorter offset's reminder
//! is due (or the start): after a pause, only the latest reminder goes out, not a stale
//! "in 24 hours" minutes before the start. One is skipped when the appointment was booked,
//! confirmed or moved after its moment had passed: its parties had just seen the time. The
//! sweep reads appointments as they are, so a cancelled appointment is never reminded and a
//! moved one is reminded for its new start.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::repo::{self, Claim, Due};
use crate::error::AppResult;
use crate::mail::templates;
use crate::notifications::{Notification, NotificationKind, service as notifications};
use crate::state::AppState;

/// Reminders claimed per transaction.
const BATCH: usize = 200;

/// How long after an appointment's start its reminder rows are kept: more than any clock skew
/// between instances, so that none sees it upcoming again once they are gone.
const KEEP_AFTER_START: Duration = Duration::days(1);

/// Sends the reminders due now; how many it sent.
pub async fn sweep(state: &AppState) -> AppResult<usize> {
    let offsets: Vec<Duration> = state
        .config
        .reminder_offsets()
        .into_iter()
        .filter_map(|offset| Duration::from_std(offset).ok())
        .collect();
    let now = state.clock.now();
    let mut sent = 0;
    for (i, &offset) in offsets.iter().enumerate() {
        let shorter = offsets.get(i + 1).copied().unwrap_or_else(Duration::zero);
        loop {
            let due = repo::due(
                &state.db,
                offset.num_seconds(),
                now + shorter,
                now + offset,
                BATCH,
            )
            .await?;
            let full = due.len() == BATCH;
            let claims = due.into_iter().map(|due| claim(due, offset, now)).collect();
            let won = repo::claim(&state.db, claims).await?;
            let handled = won.len();
            for claim in won {
                sent += usize::from(!claim.notifications.is_empty());
                deliver(state, claim).await;
            }
            // Nothing won: another instance holds these appointments and will handle them.
            if !full || handled == 0 {
                break;
            }
        }
    }
    repo::forget_before(&state.db, now - KEEP_AFTER_START).await?;
    Ok(sent)
}

/// The reminder at `offset` before `due`'s start, sent `now` to both parties, or skipped (no
/// notifications) when the appointment took its time after that moment.
fn claim(due: Due, offset: Duration, now: DateTime<Utc>) -> Claim {
    let moment = due.starts_at - offset;
    let notifications = if due.updated_at > moment {
        Vec::new()
    } else {
        let message = format!(
            "Reminder: your appointment on {} starts in {}",
            due.starts_at.format("%Y-%m-%d %H:%M UTC"),
            spoken(offset)
        );
        [due.patient_id, due.doctor_user_id]
            .into_iter()
            .map(|user| {
                let notification = Notification::new(
                    NotificationKind::AppointmentReminder,
                    message.clone(),
                    Some(due.appointment_id),
                    now,
                );
                (user, notification)
            })
            .collect()
    };
    Claim {
        appointment_id: due.appointment_id,
        offset_secs: offset.num_seconds(),
        starts_at: due.starts_at,
        notifications,
    }
}

/// What a reminder sends once its claim is committed: a mail to each party (queued right after
/// the claim, as booking mails are: a crash in between loses the mail, never doubles it) and
/// each stored notification, live. This is the one place a reminder leaves the database.
async fn deliver(state: &AppState, claim: Claim) {
    let parties: Vec<Uuid> = claim.notifications.iter().map(|(user, _)| *user).collect();
    if !parties.is_empty() {
        let offset = Duration::seconds(claim.offset_secs);
        let mail = templates::appointment_reminder(claim.starts_at, &spoken(offset));
        state
            .mail
            .enqueue_to_users(&state.db, &parties, &mail)
            .await;
    }
    for (user, notification) in claim.notifications {
        notifications::publish(state, user, notification);
    }
}

/// "2 days", "24 hours", "15 minutes", "90 seconds".
fn spoken(offset: Duration) -> String {
    let (n, unit) = match offset.num_seconds() {
        s if s % 86_400 == 0 && s > 86_400 => (s / 86_400, "day"),
        s if s % 3_600 == 0 => (s / 3_600, "hour"),
        s if s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// Runs the sweep every `MEDILINK_REMINDER_SWEEP_SECS` until the instance stops (no reminders
/// when `MEDILINK_REMINDER_OFFSETS` is empty). Its statements are left out of `/metrics`' count
/// of database calls, which shows what requests cost.
pub fn start_sweep(state: &AppState) {
    if state.config.reminder_offsets().is_empty() {
        return;
    }
    let period = StdDuration::from_secs(state.config.reminder_sweep_secs);
    let mut sweeper = state.clone();
    sweeper.db = state.db.uncounted();
    state.shutdown.every(period, move || {
        let state = sweeper.clone();
        async move {
            match sweep(&state).await {
                Ok(0) => {}
                Ok(sent) => tracing::info!(sent, "sent appointment reminders"),
                Err(error) => tracing::warn!(error = error.message(), "reminder sweep failed"),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_spoken_in_their_largest_whole_unit() {
        assert_eq!(spoken(Duration::hours(48)), "2 days");
        assert_eq!(spoken(Duration::hours(24)), "24 hours");
        assert_eq!(spoken(Duration::hours(1)), "1 hour");
        assert_eq!(spoken(Duration::minutes(15)), "15 minutes");
        assert_eq!(spoken(Duration::seconds(90)), "90 seconds");
    }
}
