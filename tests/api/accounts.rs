//! Accounts over GraphQL: registration, sign-in, refresh, logout, blocking, the user list.

use crate::common::*;
use futures_util::future::join_all;
use serde_json::json;

const ME: &str = "{ me { id email name role phone blocked } }";

#[tokio::test]
async fn register_signs_in_and_me_shows_the_account() {
    let app = spawn_app().await;
    let data = app
        .ok(
            REGISTER,
            json!({ "input": { "email": "  Ann.Lee@Example.COM ", "password": PASSWORD,
                "name": " Ann Lee ", "phone": "+1 (555) 010-9999", "role": "PATIENT" } }),
            None,
        )
        .await;
    let ann = account(&data["register"]);
    assert_eq!(ann.email, "ann.lee@example.com", "email is normalised");
    assert_eq!(data["register"]["user"]["role"], "PATIENT");

    let me = app.ok(ME, json!({}), Some(&ann.access)).await;
    assert_eq!(me["me"]["id"], ann.id.as_str());
    assert_eq!(me["me"]["name"], "Ann Lee");
    assert_eq!(me["me"]["phone"], "+15550109999");
    assert_eq!(me["me"]["blocked"], false);

    let doctor = app.register_doctor().await;
    let me = app.ok(ME, json!({}), Some(&doctor.access)).await;
    assert_eq!(me["me"]["role"], "DOCTOR");
}

#[tokio::test]
async fn a_duplicate_email_is_a_conflict_whatever_its_case() {
    let app = spawn_app().await;
    app.register("PATIENT", "sam@example.com").await;
    let body = app
        .graphql(
            REGISTER,
            json!({ "input": { "email": "SAM@example.com", "password": PASSWORD, "name": "Sam", "role": "DOCTOR" } }),
            None,
        )
        .await;
    assert_eq!(error_code(&body), Some("CONFLICT"));
    assert_eq!(error_field(&body), Some("email"));
    assert_eq!(app.count_rows("users").await, 1);
}

#[tokio::test]
async fn admins_cannot_register_themselves() {
    let app = spawn_app().await;
    let body = app
        .graphql(
            REGISTER,
            json!({ "input": { "email": "boss@example.com", "password": PASSWORD, "name": "Boss", "role": "ADMIN" } }),
            None,
        )
        .await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"));
    assert_eq!(error_field(&body), Some("role"));
    assert_eq!(app.count_rows("users").await, 0);
}

#[tokio::test]
async fn login_refuses_unknown_emails_and_wrong_passwords_alike() {
    let app = spawn_app().await;
    let ann = app.register_patient().await;

    let ok = app.login(&ann.email.to_uppercase(), PASSWORD).await;
    assert!(ok.get("errors").is_none(), "{ok}");
    let session = account(&ok["data"]["login"]);
    assert_eq!(session.id, ann.id);
    app.ok(ME, json!({}), Some(&session.access)).await;

    let wrong_password = app.login(&ann.email, "not the password").await;
    let unknown_email = app.login("nobody@example.com", PASSWORD).await;
    assert_eq!(error_code(&wrong_password), Some("UNAUTHENTICATED"));
    assert_eq!(wrong_password["errors"], unknown_email["errors"]);
}

#[tokio::test]
async fn a_blocked_user_cannot_sign_in_and_their_tokens_stop_at_once() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let ann = app.register_patient().await;
    app.ok(ME, json!({}), Some(&ann.access)).await;

    let blocked = app
        .ok(
            "mutation($id: ID!) { blockUser(id: $id) { id blocked email } }",
            json!({ "id": ann.id }),
            Some(&admin.access),
        )
        .await;
    assert_eq!(blocked["blockUser"]["blocked"], true);
    assert_eq!(
        blocked["blockUser"]["email"],
        ann.email.as_str(),
        "admins see emails"
    );

    let me = app.graphql(ME, json!({}), Some(&ann.access)).await;
    assert_eq!(error_code(&me), Some("FORBIDDEN"));
    assert!(error_message(&me).contains("blocked"), "{me}");

    let login = app.login(&ann.email, PASSWORD).await;
    assert_eq!(error_code(&login), Some("FORBIDDEN"));
    assert!(error_message(&login).contains("blocked"), "{login}");

    let refresh = app
        .graphql(REFRESH, json!({ "token": ann.refresh }), None)
        .await;
    assert_eq!(error_code(&refresh), Some("UNAUTHENTICATED"));

    app.ok(
        "mutation($id: ID!) { unblockUser(id: $id) { blocked } }",
        json!({ "id": ann.id }),
        Some(&admin.access),
    )
    .await;
    let old_token = app.graphql(ME, json!({}), Some(&ann.access)).await;
    assert_eq!(
        error_code(&old_token),
        Some("UNAUTHENTICATED"),
        "tokens from before the block stay dead after unblocking"
    );
    let login = app.login(&ann.email, PASSWORD).await;
    assert!(login.get("errors").is_none(), "{login}");
}

#[tokio::test]
async fn only_admins_block_and_nobody_blocks_themselves() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let ann = app.register_patient().await;
    let bob = app.register_doctor().await;
    const BLOCK: &str = "mutation($id: ID!) { blockUser(id: $id) { id } }";

    let by_patient = app
        .graphql(BLOCK, json!({ "id": bob.id }), Some(&ann.access))
        .await;
    assert_eq!(error_code(&by_patient), Some("FORBIDDEN"));
    let anonymous = app.graphql(BLOCK, json!({ "id": bob.id }), None).await;
    assert_eq!(error_code(&anonymous), Some("UNAUTHENTICATED"));
    let themselves = app
        .graphql(BLOCK, json!({ "id": admin.id }), Some(&admin.access))
        .await;
    assert_eq!(error_code(&themselves), Some("BAD_USER_INPUT"));
    let unknown = app
        .graphql(
            BLOCK,
            json!({ "id": uuid::Uuid::now_v7().to_string() }),
            Some(&admin.access),
        )
        .await;
    assert_eq!(error_code(&unknown), Some("NOT_FOUND"));
    let malformed = app
        .graphql(BLOCK, json!({ "id": "42" }), Some(&admin.access))
        .await;
    assert_eq!(error_code(&malformed), Some("BAD_USER_INPUT"));
    app.ok(ME, json!({}), Some(&bob.access)).await;
}

const REFRESH: &str = "mutation($token: String!) { refreshToken(token: $token) { accessToken refreshToken user { id email role } } }";

#[tokio::test]
async fn refresh_rotates_and_a_replayed_token_revokes_the_family() {
    let app = spawn_app().await;
    let ann = app.register_patient().await;

    let first =
        account(&app.ok(REFRESH, json!({ "token": ann.refresh }), None).await["refreshToken"]);
    assert_eq!(first.id, ann.id);
    assert_ne!(first.refresh, ann.refresh, "refresh tokens rotate");
    app.ok(ME, json!({}), Some(&first.access)).await;

    let replay = app
        .graphql(REFRESH, json!({ "token": ann.refresh }), None)
        .await;
    assert_eq!(error_code(&replay), Some("UNAUTHENTICATED"));
    assert!(error_message(&replay).contains("already used"), "{replay}");

    let successor = app
        .graphql(REFRESH, json!({ "token": first.refresh }), None)
        .await;
    assert_eq!(
        error_code(&successor),
        Some("UNAUTHENTICATED"),
        "after a replay, the rotated token is revoked too"
    );

    let garbage = app
        .graphql(REFRESH, json!({ "token": "not-a-token" }), None)
        .await;
    assert_eq!(error_code(&garbage), Some("UNAUTHENTICATED"));
}

#[tokio::test]
async fn concurrent_refreshes_of_one_token_have_one_winner() {
    let app = spawn_app().await;
    let ann = app.register_patient().await;
    let attempts = (0..10).map(|_| app.graphql(REFRESH, json!({ "token": ann.refresh }), None));
    let results = join_all(attempts).await;
    let winners = results.iter().filter(|b| b.get("errors").is_none()).count();
    assert_eq!(winners, 1, "{results:?}");
    assert!(
        results
            .iter()
            .filter(|b| b.get("errors").is_some())
            .all(|b| error_code(b) == Some("UNAUTHENTICATED")),
        "{results:?}"
    );
}

#[tokio::test]
async fn logout_ends_every_session_at_once() {
    let app = spawn_app().await;
    let ann = app.register_patient().await;
    let second_device = account(&app.login(&ann.email, PASSWORD).await["data"]["login"]);

    assert_eq!(
        app.ok("mutation { logout }", json!({}), Some(&ann.access))
            .await["logout"],
        true
    );

    for token in [&ann.access, &second_device.access] {
        let me = app.graphql(ME, json!({}), Some(token)).await;
        assert_eq!(error_code(&me), Some("UNAUTHENTICATED"), "{me}");
    }
    for token in [&ann.refresh, &second_device.refresh] {
        let refresh = app.graphql(REFRESH, json!({ "token": token }), None).await;
        assert_eq!(error_code(&refresh), Some("UNAUTHENTICATED"));
    }
    let logout_again = app
        .graphql("mutation { logout }", json!({}), Some(&ann.access))
        .await;
    assert_eq!(error_code(&logout_again), Some("UNAUTHENTICATED"));

    let login = app.login(&ann.email, PASSWORD).await;
    let fresh = account(&login["data"]["login"]);
    app.ok(ME, json!({}), Some(&fresh.access)).await;
}

#[tokio::test]
async fn bad_tokens_are_refused_with_unauthenticated() {
    let app = spawn_app().await;
    let ann = app.register_patient().await;

    let missing = app.graphql(ME, json!({}), None).await;
    assert_eq!(error_code(&missing), Some("UNAUTHENTICATED"));

    let malformed = app.graphql(ME, json!({}), Some("not.a.jwt")).await;
    assert_eq!(error_code(&malformed), Some("UNAUTHENTICATED"));

    let now = chrono::Utc::now().timestamp();
    let claims = |exp: i64| json!({ "sub": ann.id, "role": "PATIENT", "tv": 0, "iat": now - 3600, "exp": exp, "iss": "medilink" });
    let sign = |claims: &serde_json::Value, secret: &str| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .expect("token")
    };

    let expired = app
        .graphql(
            ME,
            json!({}),
            Some(&sign(&claims(now - 60), &app.jwt_secret)),
        )
        .await;
    assert_eq!(error_code(&expired), Some("UNAUTHENTICATED"));
    assert!(error_message(&expired).contains("expired"), "{expired}");

    let forged = app
        .graphql(
            ME,
            json!({}),
            Some(&sign(
                &claims(now + 600),
                "someone else's secret, 32 bytes+",
            )),
        )
        .await;
    assert_eq!(error_code(&forged), Some("UNAUTHENTICATED"));

    let valid = app
        .ok(
            ME,
            json!({}),
            Some(&sign(&claims(now + 600), &app.jwt_secret)),
        )
        .await;
    assert_eq!(
        valid["me"]["id"],
        ann.id.as_str(),
        "the hand-made token is otherwise right"
    );

    let basic = app
        .client
        .post(app.url("/graphql"))
        .header("authorization", "Basic YTpi")
        .json(&json!({ "query": ME }))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(error_code(&basic), Some("UNAUTHENTICATED"));
}

#[tokio::test]
async fn a_stale_token_does_not_break_public_operations() {
    let app = spawn_app().await;
    let ann = app.register_patient().await;
    let body = app
        .graphql(
            LOGIN,
            json!({ "input": { "email": ann.email, "password": PASSWORD } }),
            Some("stale.token.here"),
        )
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(body["data"]["login"]["user"]["email"], ann.email.as_str());
}

const USERS: &str = "query($filter: UserFilter, $first: Int, $after: String) { \
    users(filter: $filter, first: $first, after: $after) { totalCount \
    edges { cursor node { id email role blocked } } pageInfo { hasNextPage hasPreviousPage endCursor } } }";

/// Five patients (the second one blocked) and a doctor, registered in that order.
async fn some_users(app: &TestApp, admin: &Account) -> (Vec<Account>, Account) {
    let mut patients = Vec::new();
    for i in 0..5 {
        patients.push(
            app.register("PATIENT", &format!("patient{i}@example.com"))
                .await,
        );
    }
    let doctor = app.register("DOCTOR", "dr.who@tardis.example").await;
    app.ok(
        "mutation($id: ID!) { blockUser(id: $id) { id } }",
        json!({ "id": patients[1].id }),
        Some(&admin.access),
    )
    .await;
    (patients, doctor)
}

#[tokio::test]
async fn admins_page_through_users_by_role_with_stable_cursors() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (patients, _) = some_users(&app, &admin).await;

    // Walk all patients two at a time; a user registered mid-walk must not shift the pages.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let data = app
            .ok(
                USERS,
                json!({ "filter": { "role": "PATIENT" }, "first": 2, "after": after }),
                Some(&admin.access),
            )
            .await;
        let users = &data["users"];
        assert_eq!(users["pageInfo"]["hasPreviousPage"], after.is_some());
        for edge in users["edges"].as_array().unwrap() {
            seen.push(edge["node"]["id"].as_str().unwrap().to_owned());
            assert!(
                edge["node"]["email"]
                    .as_str()
                    .unwrap()
                    .starts_with("patient")
            );
        }
        if seen.len() == 2 {
            app.register("DOCTOR", "late@example.com").await;
        }
        if users["pageInfo"]["hasNextPage"] == false {
            assert_eq!(users["totalCount"], 5);
            break;
        }
        after = users["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    let expected: Vec<String> = patients.iter().map(|p| p.id.clone()).collect();
    assert_eq!(seen, expected, "every patient once, in registration order");
    let everyone = app
        .ok(USERS, json!({ "first": 100 }), Some(&admin.access))
        .await;
    assert_eq!(everyone["users"]["totalCount"], 8);
}

#[tokio::test]
async fn admins_filter_users_by_blocked_and_by_search_text_taken_literally() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (patients, doctor) = some_users(&app, &admin).await;
    let blocked = app
        .ok(
            USERS,
            json!({ "filter": { "blocked": true } }),
            Some(&admin.access),
        )
        .await;
    let blocked_ids: Vec<&str> = blocked["users"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(blocked_ids, vec![patients[1].id.as_str()]);

    let search = app
        .ok(
            USERS,
            json!({ "filter": { "search": "TARDIS" } }),
            Some(&admin.access),
        )
        .await;
    assert_eq!(search["users"]["totalCount"], 1);
    assert_eq!(
        search["users"]["edges"][0]["node"]["id"],
        doctor.id.as_str()
    );

    let wildcard = app
        .ok(
            USERS,
            json!({ "filter": { "search": "%" } }),
            Some(&admin.access),
        )
        .await;
    assert_eq!(
        wildcard["users"]["totalCount"], 0,
        "LIKE wildcards in input are literal"
    );
}

#[tokio::test]
async fn the_user_list_is_for_admins_and_checks_its_arguments() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let ann = app.register_patient().await;

    let by_patient = app.graphql(USERS, json!({}), Some(&ann.access)).await;
    assert_eq!(error_code(&by_patient), Some("FORBIDDEN"));
    assert!(by_patient["data"].is_null(), "no data leaks with the error");

    for (variables, field) in [
        (json!({ "first": 101 }), "first"),
        (json!({ "first": -1 }), "first"),
        (json!({ "after": "%%%not base64" }), "after"),
        (json!({ "after": "bm90LWEtdXVpZA" }), "after"),
    ] {
        let body = app
            .graphql(USERS, variables.clone(), Some(&admin.access))
            .await;
        assert_eq!(
            error_code(&body),
            Some("BAD_USER_INPUT"),
            "{variables}: {body}"
        );
        assert_eq!(error_field(&body), Some(field), "{variables}");
    }
}

#[tokio::test]
async fn no_type_exposes_a_password_or_its_hash() {
    let app = spawn_app().await;
    let data = app
        .ok(
            "{ __schema { types { name fields { name } } } }",
            json!({}),
            None,
        )
        .await;
    for ty in data["__schema"]["types"].as_array().unwrap() {
        // Operations such as changePassword take passwords; they return none.
        if ty["name"] == "Mutation" {
            continue;
        }
        for field in ty["fields"].as_array().into_iter().flatten() {
            let name = field["name"].as_str().unwrap().to_lowercase();
            assert!(
                !name.contains("password") && !name.contains("hash"),
                "{} exposes {name}",
                ty["name"]
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_registrations_of_one_email_have_one_winner() {
    let app = spawn_app().await;
    let attempts = (0..50).map(|i| {
        app.graphql(
            REGISTER,
            json!({ "input": { "email": if i % 2 == 0 { "race@example.com" } else { "RACE@example.com" },
                "password": PASSWORD, "name": format!("Racer {i}"), "role": "PATIENT" } }),
            None,
        )
    });
    let results = join_all(attempts).await;
    let winners = results.iter().filter(|b| b.get("errors").is_none()).count();
    let conflicts = results
        .iter()
        .filter(|b| error_code(b) == Some("CONFLICT"))
        .count();
    assert_eq!((winners, conflicts), (1, 49), "{results:?}");
    assert_eq!(app.count_rows("users").await, 1);
}
