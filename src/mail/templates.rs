//! The mails the product sends, each with a plain-text and an HTML body. Text from users (a
//! rejection or cancellation reason) is escaped in the HTML body.

use chrono::{DateTime, Utc};

use super::{Content, PRODUCT};

/// How the reader acts on a mail: a link into the app, or, when no app page is configured, a
/// code to type in.
pub enum Action {
    Link(String),
    Code(String),
}

pub fn password_reset(action: &Action, valid_minutes: u64) -> Content {
    compose(
        "password_reset",
        "Reset your password",
        &[
            "Somebody, hopefully you, asked to reset the password of your account.".into(),
            format!(
                "This works once and for {valid_minutes} minutes. If you did not ask, ignore \
                 this mail: your password stays as it is."
            ),
        ],
        Some(("Choose a new password", action)),
    )
}

pub fn email_verification(action: &Action) -> Content {
    compose(
        "email_verification",
        "Confirm your email address",
        &[format!(
            "Welcome to {PRODUCT}. Please confirm that this address is yours."
        )],
        Some(("Confirm my address", action)),
    )
}

pub fn password_changed(at: DateTime<Utc>) -> Content {
    compose(
        "password_changed",
        "Your password was changed",
        &[
            format!(
                "The password of your account was changed on {}, and every other session was \
                 signed out.",
                when(at)
            ),
            "If this was not you, reset your password at once and contact support.".into(),
        ],
        None,
    )
}

pub fn doctor_approved() -> Content {
    compose(
        "doctor_approved",
        "Your doctor profile was approved",
        &["Your profile was approved: patients can now find and book you.".into()],
        None,
    )
}

pub fn doctor_rejected(reason: &str) -> Content {
    compose(
        "doctor_rejected",
        "Your doctor profile was not approved",
        &[
            "Your profile was not approved, for this reason:".into(),
            reason.into(),
            "You can correct it and submit it again.".into(),
        ],
        None,
    )
}

pub fn appointment_confirmed(starts_at: DateTime<Utc>) -> Content {
    compose(
        "appointment_confirmed",
        &format!("Appointment confirmed: {}", when(starts_at)),
        &[format!(
            "The appointment on {} is confirmed.",
            when(starts_at)
        )],
        None,
    )
}

pub fn appointment_reminder(starts_at: DateTime<Utc>, in_how_long: &str) -> Content {
    compose(
        "appointment_reminder",
        &format!("Reminder: your appointment starts in {in_how_long}"),
        &[format!(
            "Your appointment on {} starts in {in_how_long}.",
            when(starts_at)
        )],
        None,
    )
}

pub fn appointment_cancelled(starts_at: DateTime<Utc>, reason: &str) -> Content {
    let mut lines = vec![format!(
        "The appointment on {} was cancelled.",
        when(starts_at)
    )];
    if !reason.is_empty() {
        lines.push(format!("Reason: {reason}"));
    }
    compose(
        "appointment_cancelled",
        &format!("Appointment cancelled: {}", when(starts_at)),
        &lines,
        None,
    )
}

pub fn appointment_rescheduled(from: DateTime<Utc>, to: DateTime<Utc>) -> Content {
    compose(
        "appointment_rescheduled",
        &format!("Appointment moved to {}", when(to)),
        &[format!(
            "The appointment on {} moved to {}.",
            when(from),
            when(to)
        )],
        None,
    )
}

fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn compose(
    kind: &'static str,
    subject: &str,
    paragraphs: &[String],
    action: Option<(&str, &Action)>,
) -> Content {
    let mut text = String::from("Hello,\n\n");
    let mut html = format!(
        "<!DOCTYPE html><html><body style=\"font-family: sans-serif; color: #222\">\
         <h2 style=\"color: #1565c0\">{PRODUCT}</h2><p>Hello,</p>"
    );
    for paragraph in paragraphs {
        text.push_str(paragraph);
        text.push_str("\n\n");
        html.push_str(&format!("<p>{}</p>", escape(paragraph)));
    }
    match action {
        Some((label, Action::Link(url))) => {
            text.push_str(&format!("{label}: {url}\n\n"));
            html.push_str(&format!(
                "<p><a href=\"{0}\" style=\"background: #1565c0; color: #fff; padding: 8px 16px; \
                 text-decoration: none; border-radius: 4px\">{1}</a></p>\
                 <p style=\"font-size: small\">Or open {0}</p>",
                escape(url),
                escape(label)
            ));
        }
        Some((label, Action::Code(code))) => {
            text.push_str(&format!("{label} with this code in the app: {code}\n\n"));
            html.push_str(&format!(
                "<p>{} with this code in the app:</p><p><code>{}</code></p>",
                escape(label),
                escape(code)
            ));
        }
        None => {}
    }
    text.push_str(&format!("The {PRODUCT} team\n"));
    html.push_str(&format!(
        "<p>The {PRODUCT} team</p>\
         <p style=\"font-size: small; color: #777\">You receive this mail because you have a \
         {PRODUCT} account.</p></body></html>"
    ));
    Content {
        kind,
        subject: format!("{PRODUCT}: {subject}"),
        text,
        html,
    }
}

fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            _ => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_text_is_escaped_in_html_only() {
        let mail = doctor_rejected("<script>alert(1)</script> & more");
        assert!(
            mail.html
                .contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; more")
        );
        assert!(!mail.html.contains("<script>"));
        assert!(mail.text.contains("<script>alert(1)</script> & more"));
        assert!(mail.subject.starts_with("MediLink: "));
    }
}
