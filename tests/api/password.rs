//! Passwords: changing one, and resetting a forgotten one through the link of a real mail.

use chrono::Duration;
use serde_json::{Value, json};

use crate::common::smtp::{ORIGIN, spawn_app_with_mail};
use crate::common::*;
use medilink::db::Pool;

const REQUEST: &str = "mutation($email: String!) { requestPasswordReset(email: $email) }";
const RESET: &str = "mutation($input: ResetPasswordInput!) { resetPassword(input: $input) { \
    accessToken refreshToken user { id email role emailVerified } } }";
const CHANGE: &str = "mutation($input: ChangePasswordInput!) { changePassword(input: $input) { \
    accessToken refreshToken user { id email role } } }";
const REFRESH: &str = "mutation($token: String!) { refreshToken(token: $token) { accessToken } }";
const ME: &str = "{ me { id } }";
const NEW_PASSWORD: &str = "a brand new passphrase";

fn reset(token: &str, password: &str) -> Value {
    json!({ "input": { "token": token, "newPassword": password } })
}

#[tokio::test]
async fn a_reset_follows_the_mailed_link_and_signs_every_other_session_out() {
    let (app, smtp) = spawn_app_with_mail(|_| {}).await;
    let ann = app.register_patient().await;
    let mut socket = app.ws_client(&ann.access).await;
    socket.sync().await;

    let asked = app.ok(REQUEST, json!({ "email": ann.email }), None).await;
    assert_eq!(asked["requestPasswordReset"], true);
    let mail = smtp.mail_to(&ann.email, "Reset your password").await;
    assert_eq!(mail.subject, "MediLink: Reset your password");
    assert_eq!(mail.from, "MediLink <no-reply@medilink.test>");
    assert_eq!(mail.content_type, "multipart/alternative");
    let link = format!("{ORIGIN}/reset?token={}", mail.token());
    assert!(mail.text.as_deref().unwrap().contains(&link), "{mail:?}");
    assert!(mail.html.as_deref().unwrap().contains(&link), "{mail:?}");

    let short = app
        .graphql(RESET, reset(&mail.token(), "short"), None)
        .await;
    assert_eq!(error_field(&short), Some("newPassword"), "{short}");
    let data = app
        .ok(RESET, reset(&mail.token(), NEW_PASSWORD), None)
        .await;
    let fresh = account(&data["resetPassword"]);
    assert_eq!(fresh.id, ann.id);
    // The link reached the address, so it is the owner's.
    assert_eq!(data["resetPassword"]["user"]["emailVerified"], true);

    let again = app
        .graphql(RESET, reset(&mail.token(), NEW_PASSWORD), None)
        .await;
    assert_eq!(error_code(&again), Some("BAD_USER_INPUT"), "{again}");
    assert_eq!(error_field(&again), Some("token"));

    assert_eq!(socket.closed().await, 4403);
    let old_access = app.graphql(ME, json!({}), Some(&ann.access)).await;
    assert_eq!(
        error_code(&old_access),
        Some("UNAUTHENTICATED"),
        "{old_access}"
    );
    let old_refresh = app
        .graphql(REFRESH, json!({ "token": ann.refresh }), None)
        .await;
    assert_eq!(
        error_code(&old_refresh),
        Some("UNAUTHENTICATED"),
        "{old_refresh}"
    );
    let old_password = app.login(&ann.email, PASSWORD).await;
    assert_eq!(error_code(&old_password), Some("UNAUTHENTICATED"));

    let me = app.ok(ME, json!({}), Some(&fresh.access)).await;
    assert_eq!(me["me"]["id"], ann.id);
    let new_password = app.login(&ann.email, NEW_PASSWORD).await;
    assert!(new_password.get("errors").is_none(), "{new_password}");
    let notice = smtp.mail_to(&ann.email, "Your password was changed").await;
    assert!(notice.text.unwrap().contains("If this was not you"));
}

#[tokio::test]
async fn unknown_and_known_emails_get_the_same_answer_and_only_accounts_get_mail() {
    let (app, smtp) = spawn_app_with_mail(|_| {}).await;
    let ann = app.register_patient().await;
    let nobody = unique_email("nobody");

    let known = app
        .graphql(REQUEST, json!({ "email": ann.email }), None)
        .await;
    let unknown = app.graphql(REQUEST, json!({ "email": nobody }), None).await;
    assert_eq!(known, unknown);
    assert_eq!(known, json!({ "data": { "requestPasswordReset": true } }));
    let malformed = app
        .graphql(REQUEST, json!({ "email": "not an email" }), None)
        .await;
    assert_eq!(malformed, known);

    smtp.mail_to(&ann.email, "Reset your password").await;
    crate::common::smtp::outbox_drained(&app).await;
    assert!(smtp.received_by(&nobody).is_empty());

    // Nor does the time tell: both are answered before the database is asked, which a lock
    // held here keeps from answering meanwhile.
    let other = unique_email("ann");
    let answered = {
        let _lock = lock_account_tokens(&app).await;
        let started = std::time::Instant::now();
        for email in [&ann.email, &nobody, &other] {
            let body = app.graphql(REQUEST, json!({ "email": email }), None).await;
            assert_eq!(body, known);
        }
        started.elapsed()
    };
    assert!(answered < std::time::Duration::from_secs(2), "{answered:?}");
    smtp.mails_about(&ann.email, "Reset your password", 2).await;
}

/// A transaction that keeps every other from writing reset tokens until it is dropped.
async fn lock_account_tokens(app: &TestApp) -> Box<dyn std::any::Any> {
    match app.db.pool() {
        Pool::Sqlite(pool) => Box::new(pool.begin_with("BEGIN IMMEDIATE").await.unwrap()),
        Pool::Postgres(pool) => {
            let mut tx = pool.begin().await.unwrap();
            sqlx::query("LOCK TABLE account_tokens IN EXCLUSIVE MODE")
                .execute(&mut *tx)
                .await
                .unwrap();
            Box::new(tx)
        }
    }
}

#[tokio::test]
async fn superseded_expired_and_blocked_resets_are_refused() {
    let (app, smtp) = spawn_app_with_mail(|_| {}).await;
    let admin = app.admin().await;
    let ann = app.register_patient().await;

    // A newer token replaces the older one. (Mails sent together may arrive in any order.)
    app.ok(REQUEST, json!({ "email": ann.email }), None).await;
    let older = smtp.mails_about(&ann.email, "Reset", 1).await[0].token();
    app.ok(REQUEST, json!({ "email": ann.email }), None).await;
    let newer = smtp.mails_about(&ann.email, "Reset", 2).await[1].token();
    let superseded = app.graphql(RESET, reset(&older, NEW_PASSWORD), None).await;
    assert_eq!(
        error_code(&superseded),
        Some("BAD_USER_INPUT"),
        "{superseded}"
    );
    assert_eq!(error_field(&superseded), Some("token"));

    // 30 minutes by default.
    app.clock.shift(Duration::minutes(31));
    let expired = app.graphql(RESET, reset(&newer, NEW_PASSWORD), None).await;
    assert_eq!(error_code(&expired), Some("BAD_USER_INPUT"), "{expired}");
    assert!(error_message(&expired).contains("expired"), "{expired}");

    app.ok(REQUEST, json!({ "email": ann.email }), None).await;
    let latest = smtp.mails_about(&ann.email, "Reset", 3).await[2].token();
    app.ok(
        "mutation($id: ID!) { blockUser(id: $id) { id } }",
        json!({ "id": ann.id }),
        Some(&admin.access),
    )
    .await;
    let blocked = app.graphql(RESET, reset(&latest, NEW_PASSWORD), None).await;
    assert_eq!(error_code(&blocked), Some("FORBIDDEN"), "{blocked}");
    let still_old = app.login(&ann.email, PASSWORD).await;
    assert_eq!(error_code(&still_old), Some("FORBIDDEN"), "{still_old}");
}

#[tokio::test]
async fn of_concurrent_resets_with_one_token_exactly_one_wins() {
    let (app, smtp) = spawn_app_with_mail(|_| {}).await;
    let ann = app.register_patient().await;
    app.ok(REQUEST, json!({ "email": ann.email }), None).await;
    let token = smtp
        .mail_to(&ann.email, "Reset your password")
        .await
        .token();

    let attempts = (0..6).map(|i| {
        let (api, token) = (&app.api, token.clone());
        async move {
            api.graphql(RESET, reset(&token, &format!("{NEW_PASSWORD} {i}")), None)
                .await
        }
    });
    let answers = futures_util::future::join_all(attempts).await;
    let won: Vec<_> = answers
        .iter()
        .filter(|a| a.get("errors").is_none())
        .collect();
    assert_eq!(won.len(), 1, "{answers:?}");
    for lost in answers.iter().filter(|a| a.get("errors").is_some()) {
        assert_eq!(error_field(lost), Some("token"), "{lost}");
    }
}

#[tokio::test]
async fn reset_requests_are_limited_per_email_and_per_address() {
    let (app, _smtp) = spawn_app_with_mail(|config| {
        config.limit_password_reset_per_email = "2/h".parse().unwrap();
        config.limit_password_reset_per_ip = "4/h".parse().unwrap();
    })
    .await;
    let email = unique_email("ann");
    for _ in 0..2 {
        app.ok(REQUEST, json!({ "email": email }), None).await;
    }
    let limited = app.graphql(REQUEST, json!({ "email": email }), None).await;
    assert_eq!(error_code(&limited), Some("RATE_LIMITED"), "{limited}");
    assert!(
        limited["errors"][0]["extensions"]["retryAfter"]
            .as_u64()
            .unwrap()
            > 0
    );

    app.ok(REQUEST, json!({ "email": unique_email("bob") }), None)
        .await;
    let per_address = app
        .graphql(REQUEST, json!({ "email": unique_email("cy") }), None)
        .await;
    assert_eq!(
        error_code(&per_address),
        Some("RATE_LIMITED"),
        "{per_address}"
    );
}

#[tokio::test]
async fn changing_the_password_keeps_this_session_and_ends_the_others() {
    let (app, smtp) = spawn_app_with_mail(|_| {}).await;
    let ann = app.register_patient().await;
    let other = account(&app.login(&ann.email, PASSWORD).await["data"]["login"]);
    let mut other_socket = app.ws_client(&other.access).await;
    other_socket.sync().await;
    let change = |current: &str| json!({ "input": { "currentPassword": current, "newPassword": NEW_PASSWORD } });

    let wrong = app
        .graphql(CHANGE, change("not my password"), Some(&ann.access))
        .await;
    assert_eq!(error_code(&wrong), Some("BAD_USER_INPUT"), "{wrong}");
    assert_eq!(error_field(&wrong), Some("currentPassword"));
    let anonymous = app.graphql(CHANGE, change(PASSWORD), None).await;
    assert_eq!(error_code(&anonymous), Some("UNAUTHENTICATED"));

    let data = app.ok(CHANGE, change(PASSWORD), Some(&ann.access)).await;
    let fresh = account(&data["changePassword"]);
    assert_eq!(other_socket.closed().await, 4403);
    for stale in [&ann.access, &other.access] {
        let body = app.graphql(ME, json!({}), Some(stale)).await;
        assert_eq!(error_code(&body), Some("UNAUTHENTICATED"), "{body}");
    }
    let stale_refresh = app
        .graphql(REFRESH, json!({ "token": other.refresh }), None)
        .await;
    assert_eq!(error_code(&stale_refresh), Some("UNAUTHENTICATED"));

    app.ok(ME, json!({}), Some(&fresh.access)).await;
    app.ok(REFRESH, json!({ "token": fresh.refresh }), None)
        .await;
    assert_eq!(
        error_code(&app.login(&ann.email, PASSWORD).await),
        Some("UNAUTHENTICATED")
    );
    assert!(
        app.login(&ann.email, NEW_PASSWORD)
            .await
            .get("errors")
            .is_none()
    );
    let notice = smtp.mail_to(&ann.email, "Your password was changed").await;
    assert_eq!(notice.to, ann.email);
}

#[tokio::test]
async fn a_reset_link_must_point_at_a_public_origin() {
    let dir = tempfile::tempdir().unwrap();
    let refused = binary(dir.path())
        .env("MEDILINK_JWT_SECRET", "x".repeat(32))
        .env("MEDILINK_PUBLIC_ORIGINS", ORIGIN)
        .env(
            "MEDILINK_PASSWORD_RESET_URL",
            "https://elsewhere.example/reset?token={token}",
        )
        .arg("migrate")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("MEDILINK_PASSWORD_RESET_URL"), "{said}");
    assert!(said.contains("MEDILINK_PUBLIC_ORIGINS"), "{said}");
}
