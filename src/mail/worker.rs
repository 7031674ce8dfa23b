//! The outbox worker: each instance claims due mails, sends them, and deletes them once sent.
//! A claim is a lease: the mail is not due again until the lease ends, so several instances
//! never send one mail at once, and a mail whose instance died mid-send is sent again after it.
//! A failed attempt is retried with exponential backoff; after a day the mail is dropped.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use uuid::Uuid;

use super::repo::{self, Claimed};
use crate::config::Config;
use crate::state::AppState;

/// How often each instance looks for due mail.
const POLL: Duration = Duration::from_secs(1);
/// Mails claimed at once; a round goes on while it finds full batches.
const BATCH: i64 = 20;
/// Longer than an attempt can take (`SEND_TIMEOUT` per SMTP command), so that a lease ends only
/// when its holder is gone.
const LEASE: chrono::Duration = chrono::Duration::minutes(5);
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
const FIRST_RETRY: chrono::Duration = chrono::Duration::seconds(10);
const LONGEST_RETRY: chrono::Duration = chrono::Duration::minutes(30);
/// A mail still unsent a day after it was queued is dropped: a reset link in it has long
/// expired, and news of a booking that late misleads more than it helps.
const GIVE_UP_AFTER: chrono::Duration = chrono::Duration::days(1);

/// Where mail goes.
pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// Each mail as an `.eml` file in this folder (development, without an SMTP server).
    Folder(PathBuf),
}

impl Transport {
    /// The transport the settings ask for; `None` when mail is off.
    pub fn from_config(config: &Config) -> Result<Option<Self>, String> {
        if let Some(url) = &config.smtp_url {
            let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                .map_err(|e| format!("invalid MEDILINK_SMTP_URL: {e}"))?
                .timeout(Some(SEND_TIMEOUT));
            if let (Some(user), Some(password)) = (&config.smtp_user, &config.smtp_password) {
                builder =
                    builder.credentials(Credentials::new(user.clone(), password.expose().into()));
            }
            return Ok(Some(Self::Smtp(builder.build())));
        }
        if let Some(folder) = &config.mail_dir {
            std::fs::create_dir_all(folder).map_err(|e| {
                format!(
                    "cannot create the mail folder {} (MEDILINK_MAIL_DIR): {e}",
                    folder.display()
                )
            })?;
            return Ok(Some(Self::Folder(folder.clone())));
        }
        Ok(None)
    }

    async fn send(&self, message: Message, id: Uuid) -> Result<(), Failure> {
        match self {
            Self::Smtp(smtp) => smtp.send(message).await.map(drop).map_err(|e| Failure {
                permanent: e.is_permanent(),
                reason: e.to_string(),
            }),
            Self::Folder(folder) => {
                let file = folder.join(format!("{id}.eml"));
                let partial = folder.join(format!("{id}.eml.partial"));
                let bytes = message.formatted();
                // Renamed into place, so that a reader never sees half a mail.
                tokio::task::spawn_blocking(move || {
                    std::fs::write(&partial, bytes)?;
                    std::fs::rename(&partial, &file)
                })
                .await
                .map_err(|e| Failure::transient(e.to_string()))?
                .map_err(|e| Failure::transient(e.to_string()))
            }
        }
    }
}

struct Failure {
    permanent: bool,
    reason: String,
}

impl Failure {
    fn transient(reason: String) -> Self {
        Self {
            permanent: false,
            reason,
        }
    }
}

/// Starts this instance's worker, which stops with the instance's other background tasks;
/// without a transport, says that mail is off.
pub fn start(state: &AppState, transport: Option<Transport>) {
    let Some(transport) = transport else {
        tracing::warn!(
            "mail is off (no MEDILINK_SMTP_URL): password resets, email verification and \
             notices are not sent, nor queued"
        );
        return;
    };
    match &transport {
        Transport::Smtp(_) => tracing::info!("sending mail over SMTP"),
        Transport::Folder(folder) => tracing::warn!(
            folder = %std::path::absolute(folder).unwrap_or_else(|_| folder.clone()).display(),
            "no SMTP server: each mail is written to this folder as an .eml file"
        ),
    }
    let Ok(from) = state.config.mail_from.parse::<Mailbox>() else {
        tracing::error!("MEDILINK_MAIL_FROM is not an address; mail is not sent");
        return;
    };
    let (state, transport, from) = (state.clone(), Arc::new(transport), Arc::new(from));
    state.shutdown.clone().every(POLL, move || {
        let (state, transport, from) = (state.clone(), transport.clone(), from.clone());
        async move { deliver_due(&state, &transport, &from).await }
    });
}

async fn deliver_due(state: &AppState, transport: &Transport, from: &Mailbox) {
    loop {
        let now = state.clock.now();
        let lease = Uuid::now_v7();
        let claimed = match repo::claim(&state.db, now, lease, now + LEASE, BATCH).await {
            Ok(claimed) => claimed,
            Err(error) => {
                tracing::warn!(%error, "cannot claim queued mail");
                return;
            }
        };
        let full = i64::try_from(claimed.len()).unwrap_or(i64::MAX) == BATCH;
        // At once: the SMTP transport keeps a pool of connections.
        let done: Vec<Uuid> = join_all(
            claimed
                .into_iter()
                .map(|mail| deliver(state, transport, from, lease, mail)),
        )
        .await
        .into_iter()
        .flatten()
        .collect();
        // One statement for the batch: on PostgreSQL each commit waits for the disk.
        if let Err(error) = repo::remove(&state.db, lease, &done).await {
            tracing::warn!(%error, "cannot remove sent mail from the queue");
        }
        if !full {
            return;
        }
    }
}

/// Tries to send `mail`: its id when it is done with (sent, or dropped), or `None` when it will
/// be tried again.
async fn deliver(
    state: &AppState,
    transport: &Transport,
    from: &Mailbox,
    lease: Uuid,
    mail: Claimed,
) -> Option<Uuid> {
    let (id, kind, attempt) = (mail.id, mail.kind.clone(), mail.attempts);
    let created_at = mail.created_at;
    let sent = match message(from, mail) {
        Ok(message) => transport.send(message, id).await,
        Err(reason) => Err(Failure {
            permanent: true,
            reason,
        }),
    };
    let now = state.clock.now();
    match sent {
        Ok(()) => {
            tracing::info!(mail = %id, kind, attempt, "mail sent");
            Some(id)
        }
        Err(failure) if failure.permanent || now - created_at >= GIVE_UP_AFTER => {
            tracing::warn!(mail = %id, kind, attempt, reason = failure.reason, "mail dropped");
            Some(id)
        }
        Err(failure) => {
            let next = now + backoff(attempt);
            tracing::warn!(
                mail = %id, kind, attempt, reason = failure.reason, retry_at = %next,
                "mail not sent; will retry"
            );
            if let Err(error) = repo::retry_later(&state.db, id, lease, next, &failure.reason).await
            {
                tracing::warn!(mail = %id, %error, "cannot record a failed attempt");
            }
            None
        }
    }
}

fn message(from: &Mailbox, mail: Claimed) -> Result<Message, String> {
    let to: Mailbox = mail
        .recipient
        .parse()
        .map_err(|_| "the recipient is not an address".to_owned())?;
    // The same Message-ID on every attempt, so a receiver can drop a copy sent twice.
    let domain = from.email.domain();
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(mail.subject)
        .message_id(Some(format!("<{}@{domain}>", mail.id)))
        .multipart(MultiPart::alternative_plain_html(
            mail.text_body,
            mail.html_body,
        ))
        .map_err(|e| e.to_string())
}

/// The wait after failed attempt `attempt` (from 1): 10 s, doubling, at most 30 minutes.
fn backoff(attempt: i32) -> chrono::Duration {
    let doublings = u32::try_from(attempt.saturating_sub(1))
        .unwrap_or(0)
        .min(16);
    (FIRST_RETRY * 2_i32.pow(doublings)).min(LONGEST_RETRY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_half_an_hour() {
        assert_eq!(backoff(1), chrono::Duration::seconds(10));
        assert_eq!(backoff(2), chrono::Duration::seconds(20));
        assert_eq!(backoff(5), chrono::Duration::seconds(160));
        assert_eq!(backoff(9), chrono::Duration::minutes(30));
        assert_eq!(backoff(1000), chrono::Duration::minutes(30));
    }
}
