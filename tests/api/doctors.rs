//! Doctor onboarding, verification, licence downloads and the profile rules.

use crate::common::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const DOCTOR: &str = "query($id: ID!) { doctor(id: $id) { id verificationStatus rejectionReason \
    licenceNumber submittedAt licence { sizeBytes sha256 url } user { name email } } }";
const APPROVE: &str =
    "mutation($id: ID!) { approveDoctor(id: $id) { id verificationStatus approvedAt } }";
const REJECT: &str = "mutation($id: ID!, $reason: String!) { rejectDoctor(id: $id, reason: $reason) { verificationStatus rejectionReason } }";
const SEARCH_IDS: &str = "{ doctors(first: 100) { totalCount edges { node { id } } } }";

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn listed_ids(data: &Value) -> Vec<String> {
    data["doctors"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
        .collect()
}

fn profile_id(submitted: &Value) -> String {
    submitted["data"]["submitDoctorProfile"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("not submitted: {submitted}"))
        .to_owned()
}

/// A registered doctor whose profile (licence number `licence_number`) awaits verification; and
/// the profile's id.
async fn pending_doctor(app: &TestApp, licence_number: &str) -> (Account, String) {
    let doctor = app.register_doctor().await;
    let submitted = app
        .submit_profile(&doctor.access, profile_input(licence_number), pdf("first"))
        .await;
    let id = profile_id(&submitted);
    (doctor, id)
}

async fn listed_count(app: &TestApp) -> Value {
    app.ok(SEARCH_IDS, json!({}), None).await["doctors"]["totalCount"].clone()
}

#[tokio::test]
async fn a_submission_waits_for_verification_with_a_normalised_number_and_its_licence() {
    let app = spawn_app().await;
    let doctor = app.register_doctor().await;
    let mine = app
        .ok(
            "{ myDoctorProfile { id } }",
            json!({}),
            Some(&doctor.access),
        )
        .await;
    assert!(
        mine["myDoctorProfile"].is_null(),
        "no profile before the first submission"
    );

    let licence = pdf("first");
    let submitted = app
        .submit_profile(&doctor.access, profile_input(" ab-123 "), licence.clone())
        .await;
    let profile = &submitted["data"]["submitDoctorProfile"];
    assert_eq!(profile["verificationStatus"], "PENDING", "{submitted}");
    assert_eq!(
        profile["licenceNumber"], "AB-123",
        "licence numbers are normalised"
    );
    assert_eq!(profile["licence"]["sizeBytes"], licence.len());
    assert_eq!(profile["licence"]["sha256"], sha256_hex(&licence).as_str());
    assert_eq!(profile["licence"]["contentType"], "application/pdf");
    let id = profile_id(&submitted);
    assert_eq!(
        profile["licence"]["url"],
        format!("/files/licences/{id}").as_str()
    );
}

/// Pending: invisible to patients and to search, visible to its owner and admins.
#[tokio::test]
async fn a_pending_doctor_is_seen_by_its_owner_and_admins_only() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let patient = app.register_patient().await;
    let (doctor, id) = pending_doctor(&app, "AB-123").await;
    let by_patient = app
        .graphql(DOCTOR, json!({ "id": id }), Some(&patient.access))
        .await;
    assert_eq!(error_code(&by_patient), Some("NOT_FOUND"));
    let anonymous = app.graphql(DOCTOR, json!({ "id": id }), None).await;
    assert_eq!(error_code(&anonymous), Some("NOT_FOUND"));
    assert_eq!(listed_count(&app).await, 0);
    let by_owner = app
        .ok(DOCTOR, json!({ "id": id }), Some(&doctor.access))
        .await;
    assert_eq!(by_owner["doctor"]["verificationStatus"], "PENDING");
    let queue = app
        .ok(
            "{ pendingDoctors { totalCount edges { node { id user { email } } } } }",
            json!({}),
            Some(&admin.access),
        )
        .await;
    assert_eq!(queue["pendingDoctors"]["totalCount"], 1);
    assert_eq!(
        queue["pendingDoctors"]["edges"][0]["node"]["id"],
        id.as_str()
    );
    assert_eq!(
        queue["pendingDoctors"]["edges"][0]["node"]["user"]["email"],
        doctor.email.as_str()
    );
}

/// Approved: public, without the private parts, and out of the queue.
#[tokio::test]
async fn an_approved_doctor_is_public_without_the_private_parts() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let patient = app.register_patient().await;
    let (_, id) = pending_doctor(&app, "AB-123").await;
    let approved = app
        .ok(APPROVE, json!({ "id": id }), Some(&admin.access))
        .await;
    assert_eq!(approved["approveDoctor"]["verificationStatus"], "APPROVED");
    assert!(approved["approveDoctor"]["approvedAt"].is_string());
    let again = app
        .graphql(APPROVE, json!({ "id": id }), Some(&admin.access))
        .await;
    assert_eq!(
        error_code(&again),
        Some("CONFLICT"),
        "approving twice is not a silent success"
    );

    let public = app
        .ok(DOCTOR, json!({ "id": id }), Some(&patient.access))
        .await["doctor"]
        .clone();
    assert_eq!(public["verificationStatus"], "APPROVED");
    for private in ["licenceNumber", "licence", "rejectionReason", "submittedAt"] {
        assert!(public[private].is_null(), "{private} is private: {public}");
    }
    assert!(
        public["user"]["email"].is_null(),
        "a doctor's email is not public"
    );
    assert_eq!(public["user"]["name"], "Test User");
    assert_eq!(
        listed_ids(&app.ok(SEARCH_IDS, json!({}), None).await),
        vec![id.clone()]
    );
    let queue = app
        .ok(
            "{ pendingDoctors { totalCount } }",
            json!({}),
            Some(&admin.access),
        )
        .await;
    assert_eq!(queue["pendingDoctors"]["totalCount"], 0);
}

#[tokio::test]
async fn a_blocked_doctor_disappears_from_search_and_public_view() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let patient = app.register_patient().await;
    let (doctor, id) = app
        .approved_doctor(&admin, "Dr Blocked", profile_input("AB-123"))
        .await;
    assert_eq!(listed_count(&app).await, 1);
    app.ok(
        "mutation($id: ID!) { blockUser(id: $id) { id } }",
        json!({ "id": doctor.id }),
        Some(&admin.access),
    )
    .await;
    assert_eq!(listed_count(&app).await, 0);
    let hidden = app
        .graphql(DOCTOR, json!({ "id": id }), Some(&patient.access))
        .await;
    assert_eq!(error_code(&hidden), Some("NOT_FOUND"));
}

/// An admin rejects profile `id` as unreadable.
async fn reject_as_unreadable(app: &TestApp, admin: &Account, id: &str) {
    let rejected = app
        .ok(
            REJECT,
            json!({ "id": id, "reason": "The scan is unreadable." }),
            Some(&admin.access),
        )
        .await;
    assert_eq!(rejected["rejectDoctor"]["verificationStatus"], "REJECTED");
}

/// A doctor whose first submission ("REJ-1") an admin rejected as unreadable; its id.
async fn rejected_doctor(app: &TestApp, admin: &Account) -> (Account, String) {
    let (doctor, id) = pending_doctor(app, "REJ-1").await;
    reject_as_unreadable(app, admin, &id).await;
    (doctor, id)
}

#[tokio::test]
async fn a_rejection_needs_a_reason_and_stands_until_the_doctor_resubmits() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (_, id) = pending_doctor(&app, "REJ-1").await;
    let empty_reason = app
        .graphql(
            REJECT,
            json!({ "id": id, "reason": "  " }),
            Some(&admin.access),
        )
        .await;
    assert_eq!(error_code(&empty_reason), Some("BAD_USER_INPUT"));
    assert_eq!(error_field(&empty_reason), Some("reason"));

    reject_as_unreadable(&app, &admin, &id).await;
    let twice = app
        .graphql(
            REJECT,
            json!({ "id": id, "reason": "again" }),
            Some(&admin.access),
        )
        .await;
    assert_eq!(error_code(&twice), Some("CONFLICT"));
    let approve_rejected = app
        .graphql(APPROVE, json!({ "id": id }), Some(&admin.access))
        .await;
    assert_eq!(
        error_code(&approve_rejected),
        Some("CONFLICT"),
        "a rejected profile must be resubmitted"
    );
}

#[tokio::test]
async fn a_rejected_doctor_sees_why_and_resubmits() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (doctor, id) = rejected_doctor(&app, &admin).await;
    // The doctor still signs in and sees the status and reason.
    let login = app.login(&doctor.email, PASSWORD).await;
    let session = account(&login["data"]["login"]);
    let mine = app
        .ok(
            "{ myDoctorProfile { verificationStatus rejectionReason } }",
            json!({}),
            Some(&session.access),
        )
        .await;
    assert_eq!(mine["myDoctorProfile"]["verificationStatus"], "REJECTED");
    assert_eq!(
        mine["myDoctorProfile"]["rejectionReason"],
        "The scan is unreadable."
    );

    let clear = pdf("clear scan");
    let resubmitted = app
        .submit_profile(&session.access, profile_input("REJ-1"), clear.clone())
        .await;
    let profile = &resubmitted["data"]["submitDoctorProfile"];
    assert_eq!(profile["id"], id.as_str(), "same profile");
    assert_eq!(profile["verificationStatus"], "PENDING");
    assert!(profile["rejectionReason"].is_null());
    assert_eq!(
        profile["licence"]["sha256"],
        sha256_hex(&clear).as_str(),
        "the licence was replaced"
    );
    assert_eq!(
        app.count_rows("doctor_licences").await,
        1,
        "the old file is gone, not orphaned"
    );
}

#[tokio::test]
async fn an_approved_profile_is_not_resubmitted_but_its_approval_can_be_withdrawn() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (doctor, id) = app
        .approved_doctor(&admin, "Dr Withdrawn", profile_input("REJ-1"))
        .await;
    let after_approval = app
        .submit_profile(&doctor.access, profile_input("REJ-1"), pdf("x"))
        .await;
    assert_eq!(error_code(&after_approval), Some("CONFLICT"));

    let withdrawn = app
        .ok(
            REJECT,
            json!({ "id": id, "reason": "Licence expired." }),
            Some(&admin.access),
        )
        .await;
    assert_eq!(withdrawn["rejectDoctor"]["verificationStatus"], "REJECTED");
    assert_eq!(listed_count(&app).await, 0);
}

/// `GET url`, with `token` as a bearer if any.
async fn download(app: &TestApp, url: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = app.client.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn licences_are_served_to_admins_and_their_doctor_only() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (doctor, id) = pending_doctor(&app, "DL-1").await;
    let other_doctor = app.register_doctor().await;
    let patient = app.register_patient().await;
    let url = app.url(&format!("/files/licences/{id}"));

    for token in [&admin.access, &doctor.access] {
        let response = download(&app, &url, Some(token)).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/pdf");
        assert_eq!(response.bytes().await.unwrap().as_ref(), pdf("first"));
    }
    assert_eq!(download(&app, &url, None).await.status(), 401);
    assert_eq!(download(&app, &url, Some("garbage")).await.status(), 401);
    for token in [&other_doctor.access, &patient.access] {
        let response = download(&app, &url, Some(token)).await;
        assert_eq!(response.status(), 403);
        let body: Value = response.json().await.unwrap();
        assert_eq!(error_code(&body), Some("FORBIDDEN"));
    }
}

#[tokio::test]
async fn strangers_learn_nothing_of_a_licence_not_even_whether_it_exists() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (_, id) = pending_doctor(&app, "DL-1").await;
    let other_doctor = app.register_doctor().await;
    let patient = app.register_patient().await;
    let unknown = app.url(&format!("/files/licences/{}", uuid::Uuid::now_v7()));
    let by_admin = download(&app, &unknown, Some(&admin.access)).await;
    assert_eq!(by_admin.status(), 404);
    assert_eq!(
        download(&app, &unknown, Some(&patient.access))
            .await
            .status(),
        403,
        "strangers learn nothing, not even existence"
    );

    // The licence metadata follows the same rule.
    let as_other = app
        .graphql(DOCTOR, json!({ "id": id }), Some(&other_doctor.access))
        .await;
    assert_eq!(
        error_code(&as_other),
        Some("NOT_FOUND"),
        "pending profiles are private"
    );
    let as_admin = app
        .ok(DOCTOR, json!({ "id": id }), Some(&admin.access))
        .await;
    assert_eq!(
        as_admin["doctor"]["licence"]["sizeBytes"],
        pdf("first").len()
    );
}

#[tokio::test]
async fn licence_numbers_are_unique() {
    let app = spawn_app().await;
    let first = app.register_doctor().await;
    let second = app.register_doctor().await;
    let ok = app
        .submit_profile(&first.access, profile_input("UNIQ-7"), pdf("a"))
        .await;
    assert!(ok.get("errors").is_none(), "{ok}");
    let duplicate = app
        .submit_profile(&second.access, profile_input(" uniq-7"), pdf("b"))
        .await;
    assert_eq!(error_code(&duplicate), Some("CONFLICT"));
    assert_eq!(error_field(&duplicate), Some("licenceNumber"));
    assert_eq!(app.count_rows("doctors").await, 1);
    assert_eq!(
        app.count_rows("doctor_licences").await,
        1,
        "no orphaned bytes"
    );
}

/// Submits `input` with `file` (named and typed as a PDF) as `doctor`.
async fn submit(app: &TestApp, doctor: &Account, input: Value, file: Option<Vec<u8>>) -> Value {
    app.graphql_upload(
        SUBMIT,
        json!({ "input": input }),
        "licence",
        file.map(|bytes| (bytes, "licence.pdf", "application/pdf")),
        Some(&doctor.access),
    )
    .await
}

fn assert_refused(body: &Value, field: &str, case: &str) {
    let errors = &body["errors"];
    assert_eq!(error_code(body), Some("BAD_USER_INPUT"), "{case}: {errors}");
    assert_eq!(error_field(body), Some(field), "{case}: {errors}");
}

#[tokio::test]
async fn a_bad_or_missing_licence_file_is_refused_and_writes_nothing() {
    let app = spawn_app().await;
    let doctor = app.register_doctor().await;
    let mut five_mib_and_one = pdf("big");
    five_mib_and_one.resize(5 * 1024 * 1024 + 1, b' ');
    let png = b"\x89PNG\r\n\x1a\n not a pdf at all".to_vec();
    for (case, file) in [
        ("not a PDF, named and typed as one", Some(png)),
        ("empty file", Some(Vec::new())),
        ("5 MiB + 1 byte", Some(five_mib_and_one)),
        ("missing upload", None),
    ] {
        let body = submit(&app, &doctor, profile_input("BAD-1"), file).await;
        assert_refused(&body, "licence", case);
    }
    assert_eq!(app.count_rows("doctors").await, 0);
    assert_eq!(app.count_rows("doctor_licences").await, 0);
    let ok = app
        .submit_profile(&doctor.access, profile_input("BAD-1"), pdf("fine"))
        .await;
    assert!(
        ok.get("errors").is_none(),
        "the corrected submission works: {ok}"
    );
}

#[tokio::test]
async fn bad_profile_fields_are_refused_with_their_field_and_write_nothing() {
    let app = spawn_app().await;
    let doctor = app.register_doctor().await;
    // What is wrong, the input field set, its wrong value, and the field the error names.
    let cases = json!([
        ["negative fee", "consultationFee", { "amount": -1, "currency": "USD" }, "consultationFee.amount"],
        ["unknown currency", "consultationFee", { "amount": 100, "currency": "XYZ" }, "consultationFee.currency"],
        ["negative experience", "experienceYears", -3, "experienceYears"],
        ["no languages", "languages", [], "languages"],
        ["empty specialization", "specialization", " ", "specialization"],
        ["bad licence number", "licenceNumber", "#!", "licenceNumber"],
        ["huge bio", "bio", "b".repeat(4001), "bio"]
    ]);
    for case in cases.as_array().unwrap() {
        let mut input = profile_input("BAD-1");
        input[case[1].as_str().unwrap()] = case[2].clone();
        let body = submit(&app, &doctor, input, Some(pdf("x"))).await;
        assert_refused(&body, case[3].as_str().unwrap(), &case[0].to_string());
    }
    assert_eq!(app.count_rows("doctors").await, 0);
    assert_eq!(app.count_rows("doctor_licences").await, 0);
}

#[tokio::test]
async fn roles_are_enforced_on_doctor_operations() {
    let app = spawn_app().await;
    let patient = app.register_patient().await;
    let doctor = app.register_doctor().await;
    let submitted = app
        .submit_profile(&doctor.access, profile_input("ROLE-1"), pdf("r"))
        .await;
    let id = submitted["data"]["submitDoctorProfile"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let by_patient = app
        .submit_profile(&patient.access, profile_input("ROLE-2"), pdf("p"))
        .await;
    assert_eq!(error_code(&by_patient), Some("FORBIDDEN"));
    for (name, query, variables) in [
        ("approve", APPROVE, json!({ "id": id })),
        ("reject", REJECT, json!({ "id": id, "reason": "no" })),
        ("queue", "{ pendingDoctors { totalCount } }", json!({})),
    ] {
        for token in [&patient.access, &doctor.access] {
            let body = app.graphql(query, variables.clone(), Some(token)).await;
            assert_eq!(error_code(&body), Some("FORBIDDEN"), "{name}: {body}");
        }
    }
    let mine = app
        .graphql(
            "{ myDoctorProfile { id } }",
            json!({}),
            Some(&patient.access),
        )
        .await;
    assert_eq!(error_code(&mine), Some("FORBIDDEN"));
    let anonymous = app
        .submit_profile("", profile_input("ROLE-3"), pdf("a"))
        .await;
    assert_eq!(error_code(&anonymous), Some("UNAUTHENTICATED"));
}

#[tokio::test]
async fn updating_public_fields_keeps_the_verification() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (doctor, id) = app
        .approved_doctor(&admin, "Dr Update", profile_input("UPD-1"))
        .await;
    let updated = app
        .ok(
            "mutation($input: UpdateDoctorProfileInput!) { updateDoctorProfile(input: $input) { \
             id verificationStatus specialization consultationFee { amount currency } languages bio experienceYears } }",
            json!({ "input": { "consultationFee": { "amount": 7500, "currency": "EUR" }, "languages": ["French"], "bio": "New bio" } }),
            Some(&doctor.access),
        )
        .await["updateDoctorProfile"]
        .clone();
    assert_eq!(updated["id"], id.as_str());
    assert_eq!(updated["verificationStatus"], "APPROVED");
    assert_eq!(
        updated["consultationFee"],
        json!({ "amount": 7500, "currency": "EUR" })
    );
    assert_eq!(updated["languages"], json!(["French"]));
    assert_eq!(
        updated["specialization"], "Cardiology",
        "omitted fields stay"
    );
    assert_eq!(updated["experienceYears"], 12);

    let by_language = app
        .ok(
            "{ doctors(filter: { language: \"FRENCH\" }) { totalCount } }",
            json!({}),
            None,
        )
        .await;
    assert_eq!(
        by_language["doctors"]["totalCount"], 1,
        "the language index follows updates"
    );
    let old_language = app
        .ok(
            "{ doctors(filter: { language: \"spanish\" }) { totalCount } }",
            json!({}),
            None,
        )
        .await;
    assert_eq!(old_language["doctors"]["totalCount"], 0);
    let part_of_a_name = app
        .ok(
            "{ doctors(filter: { language: \"frenc\" }) { totalCount } }",
            json!({}),
            None,
        )
        .await;
    assert_eq!(
        part_of_a_name["doctors"]["totalCount"], 0,
        "a language matches whole names only"
    );

    let bad = app
        .graphql(
            "mutation { updateDoctorProfile(input: { experienceYears: -1 }) { id } }",
            json!({}),
            Some(&doctor.access),
        )
        .await;
    assert_eq!(error_code(&bad), Some("BAD_USER_INPUT"));
    assert_eq!(error_field(&bad), Some("experienceYears"));
    let without_profile = app.register_doctor().await;
    let none = app
        .graphql(
            "mutation { updateDoctorProfile(input: { bio: \"x\" }) { id } }",
            json!({}),
            Some(&without_profile.access),
        )
        .await;
    assert_eq!(error_code(&none), Some("NOT_FOUND"));
}
