//! Mail through a real SMTP server: its shape and credentials, the queue surviving an SMTP
//! outage, several instances sending each mail once, the mails of bookings and verification
//! decisions, and the development folder.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::smtp::{SmtpServer, mail_to, outbox_drained, spawn_app_with_mail};
use crate::common::*;

const REQUEST: &str = "mutation($email: String!) { requestPasswordReset(email: $email) }";

#[tokio::test]
async fn mail_logs_in_with_the_urls_or_the_settings_credentials() {
    let port = free_local_addr().port();
    let smtp = SmtpServer::start_on(port, Some("medilink:s3cret")).await;
    let in_url = spawn_app_with(|config| {
        mail_to(config, &smtp);
        config.smtp_url = Some(format!("smtp://medilink:s3cret@127.0.0.1:{port}"));
    })
    .await;
    let in_settings = spawn_app_with(|config| {
        mail_to(config, &smtp);
        config.smtp_user = Some("medilink".into());
        config.smtp_password = Some(medilink::config::Secret::new("s3cret"));
    })
    .await;

    for app in [&in_url, &in_settings] {
        let ann = app.register_patient().await;
        let mail = smtp.mail_to(&ann.email, "Confirm your email address").await;
        assert_eq!(mail.auth_user.as_deref(), Some("medilink"));
        assert_eq!(mail.subject, "MediLink: Confirm your email address");
        assert_eq!(mail.from, "MediLink <no-reply@medilink.test>");
        assert_eq!(mail.content_type, "multipart/alternative");
        assert!(mail.message_id.ends_with("@medilink.test>"), "{mail:?}");
        assert!(mail.text.unwrap().contains("The MediLink team"));
        assert!(mail.html.unwrap().contains("<h2"));
    }
}

#[tokio::test]
async fn mail_queued_while_smtp_is_down_arrives_once_when_it_is_up() {
    let port = free_local_addr().port();
    let app = spawn_app_with(|config| {
        config.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
    })
    .await;
    let ann = app.register_patient().await;
    eventually("a failed attempt", || async {
        (app.count_rows("outbox WHERE last_error IS NOT NULL").await == 1).then_some(())
    })
    .await;

    let smtp = SmtpServer::start_on(port, None).await;
    // The retry is due after the backoff; the clock moves instead of the test waiting.
    app.clock.shift(chrono::Duration::hours(1));
    smtp.mail_to(&ann.email, "Confirm").await;
    outbox_drained(&app).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(smtp.received().len(), 1, "{:?}", smtp.received());
}

/// The queue fills while SMTP is down; then both instances' workers find the same due mail at
/// once.
#[tokio::test]
async fn two_instances_on_one_database_send_each_mail_once() {
    let port = free_local_addr().port();
    let first = spawn_app_with(|config| {
        config.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
        config.limit_password_reset_per_ip = "1000/h".parse().unwrap();
    })
    .await;
    let second = first
        .another_instance(&tokio::runtime::Handle::current())
        .await;
    let mut queued = 0;
    for i in 0..6 {
        let on = if i % 2 == 0 { &first } else { &second };
        let user = on.register_patient().await;
        for _ in 0..4 {
            on.ok(REQUEST, json!({ "email": user.email }), None).await;
        }
        queued += 5;
    }
    eventually("every mail tried once", || async {
        (first
            .count_rows("outbox WHERE last_error IS NOT NULL")
            .await
            == queued)
            .then_some(())
    })
    .await;

    let smtp = SmtpServer::start_on(port, None).await;
    first.clock.shift(chrono::Duration::hours(1));
    second.clock.shift(chrono::Duration::hours(1));
    outbox_drained(&first).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let received = smtp.received();
    let mut ids: Vec<_> = received.iter().map(|m| m.message_id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(received.len(), usize::try_from(queued).unwrap());
    assert_eq!(ids.len(), received.len(), "a mail was sent twice");
}

#[tokio::test]
async fn bookings_and_verification_decisions_are_mailed_to_those_concerned() {
    let (app, smtp) = spawn_app_with_mail(|_| {}).await;
    let admin = app.admin().await;
    let (doctor, doctor_id, patient, appointment) = app.booked_pair(&admin, "LIC-MAIL-1").await;
    smtp.mail_to(&doctor.email, "Your doctor profile was approved")
        .await;
    for party in [&doctor, &patient] {
        smtp.mail_to(&party.email, "Appointment confirmed").await;
    }

    let today = app.clock.now().date_naive();
    let slots = app
        .ok(
            "query($d: ID!, $f: Date!, $t: Date!) { availableSlots(doctorId: $d, from: $f, to: $t) { startsAt } }",
            json!({ "d": doctor_id, "f": today.to_string(), "t": (today + chrono::Duration::days(2)).to_string() }),
            None,
        )
        .await;
    app.ok(
        "mutation($id: ID!, $at: DateTime!) { rescheduleAppointment(id: $id, startsAt: $at) { id } }",
        json!({ "id": appointment, "at": slots["availableSlots"][1]["startsAt"] }),
        Some(&doctor.access),
    )
    .await;
    app.ok(
        "mutation($id: ID!) { cancelAppointment(id: $id, reason: \"Feeling better\") { id } }",
        json!({ "id": appointment }),
        Some(&doctor.access),
    )
    .await;
    for party in [&doctor, &patient] {
        smtp.mail_to(&party.email, "Appointment moved to").await;
        let cancelled = smtp.mail_to(&party.email, "Appointment cancelled").await;
        assert!(cancelled.text.unwrap().contains("Reason: Feeling better"));
    }

    let rejected = app.register_doctor().await;
    let submitted = app
        .submit_profile(&rejected.access, profile_input("LIC-MAIL-2"), pdf("mail"))
        .await;
    app.ok(
        "mutation($id: ID!) { rejectDoctor(id: $id, reason: \"<b>Blurry</b> licence\") { id } }",
        json!({ "id": submitted["data"]["submitDoctorProfile"]["id"] }),
        Some(&admin.access),
    )
    .await;
    let mail = smtp.mail_to(&rejected.email, "was not approved").await;
    assert!(mail.text.unwrap().contains("<b>Blurry</b> licence"));
    assert!(
        mail.html
            .unwrap()
            .contains("&lt;b&gt;Blurry&lt;/b&gt; licence")
    );
}

/// The binary serving on a free port with JSON logs to a file; killed when dropped.
struct Served {
    child: Child,
    api: Api,
    log: std::path::PathBuf,
}

impl Served {
    async fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Served {
        let log = dir.join("serve.log");
        let child = binary(dir)
            .env("MEDILINK_BIND", "127.0.0.1:0")
            .env("MEDILINK_LOG_FORMAT", "json")
            .env("MEDILINK_LOG", "debug")
            .envs(env.iter().copied())
            .args(args)
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut served = Served {
            child,
            api: Api::new(([127, 0, 0, 1], 0).into()),
            log,
        };
        let listening = served.line("listening").await;
        served.api = Api::new(
            listening["fields"]["address"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap(),
        );
        served
    }

    fn lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// Waits for the first line whose message starts with `text`.
    async fn line(&self, text: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let found = self.lines().into_iter().find(|line| {
                line["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(text))
            });
            if let Some(line) = found {
                return line;
            }
            assert!(Instant::now() < deadline, "no `{text}` line");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn without_smtp_dev_writes_eml_files_and_other_runs_say_mail_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "a-jwt-secret-of-at-least-32-bytes-long";
    let plain = Served::start(dir.path(), &["serve"], &[("MEDILINK_JWT_SECRET", secret)]).await;
    plain.line("mail is off").await;
    drop(plain);

    let dev = Served::start(dir.path(), &["serve", "--dev"], &[]).await;
    let named = dev.line("no SMTP server").await;
    let folder = Path::new(named["fields"]["folder"].as_str().unwrap()).to_owned();
    assert_eq!(
        folder,
        dir.path().canonicalize().unwrap().join("medilink-mail")
    );
    let ann = dev.api.register_patient().await;
    dev.api
        .ok(REQUEST, json!({ "email": ann.email }), None)
        .await;
    let files = eventually("two .eml files", || async {
        let files: Vec<_> = std::fs::read_dir(&folder)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        (files.len() == 2).then_some(files)
    })
    .await;
    // Quoted-printable, undone enough to read the link.
    let eml: String = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect::<String>()
        .replace("=\r\n", "")
        .replace("=3D", "=");
    assert!(
        eml.contains("Subject: MediLink: Reset your password"),
        "{eml}"
    );
    assert!(eml.contains("multipart/alternative"), "{eml}");
    let start = eml.find("#reset-token=").expect("a link to /demo") + "#reset-token=".len();
    let token: String = eml[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || "-_".contains(*c))
        .collect();
    assert!(token.len() >= 20, "{token}");
    dev.line("mail sent").await;
    let logs = std::fs::read_to_string(&dev.log).unwrap();
    assert!(!logs.contains(&token[..20]), "a token in the logs");
}
