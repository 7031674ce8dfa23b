//! A real SMTP server per test: `tests/smtp/run` (aiosmtpd, installed on first use in a cached
//! venv) on a port of its own, storing each message it accepts as a JSON file the test reads.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use medilink::config::Config;
use serde::Deserialize;

use super::{TestApp, eventually, free_local_addr, spawn_app_with};

/// The app's pages the mailed links point at.
pub const ORIGIN: &str = "https://app.example.com";

/// A message as the server received and decoded it.
#[derive(Clone, Debug, Deserialize)]
pub struct Received {
    pub rcpt_to: Vec<String>,
    pub from: String,
    pub to: String,
    pub subject: String,
    pub message_id: String,
    pub content_type: String,
    pub text: Option<String>,
    pub html: Option<String>,
    pub auth_user: Option<String>,
}

impl Received {
    /// The token of the first link in the text body (`...?token=TOKEN`).
    pub fn token(&self) -> String {
        let text = self.text.as_deref().expect("a text body");
        let start = text.find("token=").expect("a link with a token") + "token=".len();
        text[start..]
            .split(|c: char| c.is_whitespace())
            .next()
            .unwrap()
            .to_owned()
    }
}

pub struct SmtpServer {
    pub port: u16,
    folder: tempfile::TempDir,
    child: Child,
}

impl SmtpServer {
    pub async fn start() -> Self {
        Self::start_on(free_local_addr().port(), None).await
    }

    /// A server on `port` that takes mail only after AUTH with `credentials` (`user:password`),
    /// when given.
    pub async fn start_on(port: u16, credentials: Option<&str>) -> Self {
        let folder = tempfile::tempdir().expect("temp dir");
        let log = folder.path().join("server.log");
        let mut command = Command::new("bash");
        command
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp/run"))
            .args(["--port", &port.to_string(), "--dir"])
            .arg(folder.path())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"));
        if let Some(credentials) = credentials {
            command.args(["--auth", credentials]);
        }
        let mut child = command.spawn().expect("tests/smtp/run starts");
        let stdout = child.stdout.take().expect("stdout");
        // The first run installs aiosmtpd: minutes at most.
        let ready = tokio::time::timeout(
            Duration::from_secs(600),
            tokio::task::spawn_blocking(move || {
                let mut line = String::new();
                BufReader::new(stdout).read_line(&mut line).map(|_| line)
            }),
        )
        .await;
        let started = matches!(&ready, Ok(Ok(Ok(line))) if line.trim() == "ready");
        if !started {
            let _ = child.kill();
            panic!(
                "the SMTP server did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        Self {
            port,
            folder,
            child,
        }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        let mut files: Vec<_> = std::fs::read_dir(self.folder.path())
            .expect("the mail folder")
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|path| serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap())
            .collect()
    }

    pub fn received_by(&self, email: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|mail| mail.rcpt_to.iter().any(|to| to == email))
            .collect()
    }

    /// Waits for the `n`th message to `email` whose subject contains `subject`; returns the
    /// first `n`.
    pub async fn mails_about(&self, email: &str, subject: &str, n: usize) -> Vec<Received> {
        eventually(
            &format!("{n} mails to {email} about {subject:?}"),
            || async {
                let mails: Vec<_> = self
                    .received_by(email)
                    .into_iter()
                    .filter(|mail| mail.subject.contains(subject))
                    .collect();
                (mails.len() >= n).then(|| mails[..n].to_vec())
            },
        )
        .await
    }

    /// Waits for the first message to `email` whose subject contains `subject`.
    pub async fn mail_to(&self, email: &str, subject: &str) -> Received {
        eventually(&format!("a mail to {email} about {subject:?}"), || async {
            self.received_by(email)
                .into_iter()
                .find(|mail| mail.subject.contains(subject))
        })
        .await
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Mail settings for a test server sending to `smtp`, with links to [`ORIGIN`].
pub fn mail_to(config: &mut Config, smtp: &SmtpServer) {
    config.smtp_url = Some(smtp.url());
    config.mail_from = "MediLink <no-reply@medilink.test>".into();
    config.public_origins = ORIGIN.into();
    config.password_reset_url = Some(format!("{ORIGIN}/reset?token={{token}}"));
    config.email_verification_url = Some(format!("{ORIGIN}/verify?token={{token}}"));
}

/// An SMTP server and an app that mails to it.
pub async fn spawn_app_with_mail(configure: impl FnOnce(&mut Config)) -> (TestApp, SmtpServer) {
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with(|config| {
        mail_to(config, &smtp);
        configure(config);
    })
    .await;
    (app, smtp)
}

/// Waits until the outbox is empty: every queued mail sent or dropped.
pub async fn outbox_drained(app: &TestApp) {
    eventually("the outbox drained", || async {
        (app.count_rows("outbox").await == 0).then_some(())
    })
    .await;
}
