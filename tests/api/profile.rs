//! The profile: editing one's name and phone, and verifying one's email through a real mail.

use medilink::auth::password::Passwords;
use medilink::db::{Db, Pool};
use serde_json::json;
use uuid::Uuid;

use crate::common::smtp::{ORIGIN, spawn_app_with_mail};
use crate::common::*;

const UPDATE_ME: &str =
    "mutation($input: UpdateMeInput!) { updateMe(input: $input) { id name phone emailVerified } }";
const VERIFY: &str =
    "mutation($token: String!) { verifyEmail(token: $token) { id emailVerified } }";
const RESEND: &str = "mutation { resendVerificationEmail }";
const ME: &str = "{ me { id name phone emailVerified } }";

#[tokio::test]
async fn update_me_checks_fields_as_register_does() {
    let app = spawn_app().await;
    let ann = app.register_patient().await;
    let update = |input| app.graphql(UPDATE_ME, json!({ "input": input }), Some(&ann.access));

    for (input, field) in [
        (json!({ "name": "   " }), "name"),
        (json!({ "name": "x".repeat(101) }), "name"),
        (json!({ "name": "Ann\u{7}" }), "name"),
        (json!({ "phone": "12345" }), "phone"),
        (json!({ "phone": "+1 555 abc 9999" }), "phone"),
    ] {
        let body = update(input.clone()).await;
        assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{input}: {body}");
        assert_eq!(error_field(&body), Some(field), "{input}");
    }
    let unchanged = app.ok(ME, json!({}), Some(&ann.access)).await;
    assert_eq!(unchanged["me"]["name"], "Test User");

    let body = update(json!({ "name": "  Ann Smith ", "phone": "+1 (555) 010-9999" })).await;
    assert_eq!(body["data"]["updateMe"]["name"], "Ann Smith", "{body}");
    assert_eq!(body["data"]["updateMe"]["phone"], "+15550109999");
    // A field left out stays; an empty phone removes it.
    let body = update(json!({ "phone": "" })).await;
    assert_eq!(body["data"]["updateMe"]["name"], "Ann Smith", "{body}");
    assert_eq!(body["data"]["updateMe"]["phone"], json!(null));

    let anonymous = app
        .graphql(UPDATE_ME, json!({ "input": { "name": "Eve" } }), None)
        .await;
    assert_eq!(error_code(&anonymous), Some("UNAUTHENTICATED"));
}

#[tokio::test]
async fn registration_mails_a_link_that_verifies_the_address_once() {
    let (app, smtp) = spawn_app_with_mail(|_| {}).await;
    let ann = app.register_patient().await;
    let me = app.ok(ME, json!({}), Some(&ann.access)).await;
    assert_eq!(me["me"]["emailVerified"], false);

    let mail = smtp.mail_to(&ann.email, "Confirm your email address").await;
    let link = format!("{ORIGIN}/verify?token={}", mail.token());
    assert!(mail.text.as_deref().unwrap().contains(&link), "{mail:?}");
    assert!(
        mail.html.as_deref().unwrap().contains("MediLink"),
        "{mail:?}"
    );

    // The link may be opened where nobody is signed in.
    let verified = app.ok(VERIFY, json!({ "token": mail.token() }), None).await;
    assert_eq!(verified["verifyEmail"]["id"], ann.id);
    assert_eq!(verified["verifyEmail"]["emailVerified"], true);
    let again = app
        .graphql(VERIFY, json!({ "token": mail.token() }), None)
        .await;
    assert_eq!(error_code(&again), Some("BAD_USER_INPUT"), "{again}");
    assert_eq!(error_field(&again), Some("token"));

    let resent = app.ok(RESEND, json!({}), Some(&ann.access)).await;
    assert_eq!(resent["resendVerificationEmail"], false, "already verified");
    // Operators vouch for the admins they create.
    let admin = app.admin().await;
    let me = app.ok(ME, json!({}), Some(&admin.access)).await;
    assert_eq!(me["me"]["emailVerified"], true);
}

#[tokio::test]
async fn a_resent_link_replaces_the_old_one_and_resending_is_limited() {
    let (app, smtp) = spawn_app_with_mail(|config| {
        config.limit_verification_mail_per_user = "2/h".parse().unwrap();
    })
    .await;
    let ann = app.register_patient().await;
    let first = smtp.mail_to(&ann.email, "Confirm").await.token();

    // One at a time: mails sent together may arrive in any order.
    let mut tokens = vec![first];
    for n in 2..=3 {
        let resent = app.ok(RESEND, json!({}), Some(&ann.access)).await;
        assert_eq!(resent["resendVerificationEmail"], true);
        tokens.push(smtp.mails_about(&ann.email, "Confirm", n).await[n - 1].token());
    }
    let limited = app.graphql(RESEND, json!({}), Some(&ann.access)).await;
    assert_eq!(error_code(&limited), Some("RATE_LIMITED"), "{limited}");
    let anonymous = app.graphql(RESEND, json!({}), None).await;
    assert_eq!(error_code(&anonymous), Some("UNAUTHENTICATED"));

    for old in &tokens[..2] {
        let old = app.graphql(VERIFY, json!({ "token": old }), None).await;
        assert_eq!(error_field(&old), Some("token"), "{old}");
    }
    app.ok(VERIFY, json!({ "token": tokens[2] }), None).await;
}

#[tokio::test]
async fn with_verification_required_unverified_patients_cannot_book_or_call() {
    let (app, smtp) = spawn_app_with_mail(|config| config.require_verified_email = true).await;
    let admin = app.admin().await;
    let (doctor, doctor_id, _online) = app.online_doctor(&admin, "LIC-VERIFY-1").await;
    app.open_around_the_clock(&doctor, 1440).await;
    let today = app.clock.now().date_naive();
    let slots = app
        .ok(
            "query($d: ID!, $f: Date!, $t: Date!) { availableSlots(doctorId: $d, from: $f, to: $t) { startsAt } }",
            json!({ "d": doctor_id, "f": today.to_string(), "t": (today + chrono::Duration::days(2)).to_string() }),
            None,
        )
        .await;
    let booking = json!({ "input": { "doctorId": doctor_id, "startsAt": slots["availableSlots"][0]["startsAt"] } });
    const BOOK: &str =
        "mutation($input: BookAppointmentInput!) { bookAppointment(input: $input) { id } }";
    let ann = app.register_patient().await;

    let refused = app.graphql(BOOK, booking.clone(), Some(&ann.access)).await;
    assert_eq!(error_code(&refused), Some("FORBIDDEN"), "{refused}");
    assert!(
        error_message(&refused).contains("verify your email"),
        "{refused}"
    );
    let call = app
        .graphql(
            "mutation($d: ID!) { startCall(input: { doctorId: $d }) { id } }",
            json!({ "d": doctor_id }),
            Some(&ann.access),
        )
        .await;
    assert_eq!(error_code(&call), Some("FORBIDDEN"), "{call}");
    assert!(error_message(&call).contains("verify your email"), "{call}");

    let token = smtp.mail_to(&ann.email, "Confirm").await.token();
    app.ok(VERIFY, json!({ "token": token }), None).await;
    let booked = app.graphql(BOOK, booking, Some(&ann.access)).await;
    assert!(booked.get("errors").is_none(), "{booked}");
}

/// Migration 0009 counts accounts made before email verification existed as verified, so that
/// MEDILINK_REQUIRE_VERIFIED_EMAIL does not lock them out unasked.
#[tokio::test]
async fn accounts_made_before_verification_count_as_verified() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(&dir).await;
    let backend = if url.starts_with("sqlite") {
        "sqlite"
    } else {
        "postgres"
    };
    // The schema as it was before: the migrations up to 0008, from their files.
    let before = tempfile::tempdir().unwrap();
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name.as_str() < "0009" {
            std::fs::copy(&path, before.path().join(name)).unwrap();
        }
    }
    let old = sqlx::migrate::Migrator::new(before.path()).await.unwrap();
    let db = Db::connect(&url, 2).await.unwrap();
    let email = unique_email("early");
    let hash = Passwords::new()
        .await
        .unwrap()
        .hash(PASSWORD)
        .await
        .unwrap();
    const INSERT: &str = "INSERT INTO users (id, email, password_hash, name, role, created_at, \
        updated_at) VALUES ($1, $2, $3, 'Early', 'PATIENT', $4, $4)";
    let now = medilink::db::now();
    match db.pool() {
        Pool::Sqlite(pool) => {
            old.run(pool).await.unwrap();
            sqlx::query(INSERT)
                .bind(Uuid::now_v7())
                .bind(&email)
                .bind(&hash)
                .bind(now)
                .execute(pool)
                .await
                .unwrap();
        }
        Pool::Postgres(pool) => {
            old.run(pool).await.unwrap();
            sqlx::query(INSERT)
                .bind(Uuid::now_v7())
                .bind(&email)
                .bind(&hash)
                .bind(now)
                .execute(pool)
                .await
                .unwrap();
        }
    }
    db.close().await;

    let app = spawn_app_with(|config| config.database_url = url.clone()).await;
    let early = account(&app.login(&email, PASSWORD).await["data"]["login"]);
    let me = app.ok(ME, json!({}), Some(&early.access)).await;
    assert_eq!(me["me"]["emailVerified"], true);
    let late = app.register_patient().await;
    let me = app.ok(ME, json!({}), Some(&late.access)).await;
    assert_eq!(me["me"]["emailVerified"], false);
}
