//! Doctor search over generated doctors: every filter and sort checked against the same filter
//! computed here, every page walked, and the cost of a page in database calls.

use std::cmp::Ordering;

use crate::common::*;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use medilink::db::Pool;
use serde_json::{Value, json};
use uuid::Uuid;

const GENERATED: usize = 200;
const SPECIALIZATIONS: [&str; 5] = [
    "Cardiology",
    "Dermatology",
    "Pediatrics",
    "Neurology",
    "General Practice",
];
const SURNAMES: [&str; 5] = ["Smith", "Jones", "Garcia", "Chen", "Okafor"];
const SECOND_LANGUAGES: [&str; 4] = ["Spanish", "French", "German", "Hindi"];

#[derive(Clone, Debug)]
struct Generated {
    id: String,
    name: String,
    specialization: String,
    fee: i64,
    currency: &'static str,
    experience: i64,
    languages: Vec<String>,
    bio: String,
    rating: f64,
    approved_at: DateTime<Utc>,
}

fn profile(i: usize) -> (String, Value) {
    let specialization = if i.is_multiple_of(7) {
        SPECIALIZATIONS[i % 5].to_lowercase()
    } else {
        SPECIALIZATIONS[i % 5].to_owned()
    };
    let mut languages = vec!["English".to_owned(), SECOND_LANGUAGES[i % 4].to_owned()];
    if i.is_multiple_of(3) {
        languages.push("Arabic".to_owned());
    }
    let input = json!({
        "specialization": specialization,
        "qualifications": ["MD"],
        "experienceYears": (i * 13) % 41,
        "consultationFee": { "amount": 1000 + (i * 37 % 50) * 500, "currency": if i.is_multiple_of(10) { "EUR" } else { "USD" } },
        "languages": languages,
        "licenceNumber": format!("GEN-{i}"),
        "bio": if i.is_multiple_of(6) { "Specialist in sleep medicine." } else { "General care for all ages." },
    });
    (format!("Dr {} {i}", SURNAMES[i % 5]), input)
}

/// Ratings from 0 to 4.9 that need all 17 digits to be written exactly (as averages do), so
/// that a rating rounded anywhere on the way breaks the keyset pages that end on a tie.
fn rating(i: usize) -> f64 {
    ((i * 7919) % 51) as f64 / 10.2
}

async fn set_rating(app: &TestApp, id: &str, average: f64) {
    const SQL: &str = "UPDATE doctors SET rating_average = $1, rating_count = 3 WHERE id = $2";
    let id = Uuid::parse_str(id).unwrap();
    match app.db.pool() {
        Pool::Sqlite(pool) => sqlx::query(SQL)
            .bind(average)
            .bind(id)
            .execute(pool)
            .await
            .map(drop),
        Pool::Postgres(pool) => sqlx::query(SQL)
            .bind(average)
            .bind(id)
            .execute(pool)
            .await
            .map(drop),
    }
    .expect("rating set");
}

/// Registers, submits and approves doctor `i`; the approval time comes from the approval.
async fn generate(app: &TestApp, admin: &Account, i: usize) -> Generated {
    let (name, input) = profile(i);
    let data = app
        .ok(
            REGISTER,
            json!({ "input": { "email": unique_email("gen"), "password": PASSWORD, "name": name, "role": "DOCTOR" } }),
            None,
        )
        .await;
    let doctor = account(&data["register"]);
    let submitted = app
        .submit_profile(&doctor.access, input.clone(), pdf(&name))
        .await;
    let id = submitted["data"]["submitDoctorProfile"]["id"]
        .as_str()
        .expect("submitted")
        .to_owned();
    let approved = app
        .ok(
            "mutation($id: ID!) { approveDoctor(id: $id) { approvedAt } }",
            json!({ "id": id }),
            Some(&admin.access),
        )
        .await;
    set_rating(app, &id, rating(i)).await;
    Generated {
        id,
        name,
        specialization: input["specialization"].as_str().unwrap().to_owned(),
        fee: input["consultationFee"]["amount"].as_i64().unwrap(),
        currency: if i.is_multiple_of(10) { "EUR" } else { "USD" },
        experience: input["experienceYears"].as_i64().unwrap(),
        languages: serde_json::from_value(input["languages"].clone()).unwrap(),
        bio: input["bio"].as_str().unwrap().to_owned(),
        rating: rating(i),
        approved_at: approved["approveDoctor"]["approvedAt"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap(),
    }
}

/// Doctors that exist but must never be listed: pending, rejected, and approved-but-blocked.
async fn unlisted(app: &TestApp, admin: &Account) {
    for i in 0..2 {
        let doctor = app.register_doctor().await;
        app.submit_profile(&doctor.access, profile(900 + i).1, pdf("pending"))
            .await;
    }
    let rejected = app.register_doctor().await;
    let submitted = app
        .submit_profile(&rejected.access, profile(910).1, pdf("rejected"))
        .await;
    app.ok(
        "mutation($id: ID!) { rejectDoctor(id: $id, reason: \"no\") { id } }",
        json!({ "id": submitted["data"]["submitDoctorProfile"]["id"] }),
        Some(&admin.access),
    )
    .await;
    // One blocked doctor shares a specialization with listed ones; the other is the only one
    // in theirs, which must then not be listed at all.
    let mut only_in_theirs = profile(921).1;
    only_in_theirs["specialization"] = json!("Sleep Medicine");
    for (name, input) in [
        ("Dr Blocked Smith", profile(920).1),
        ("Dr Blocked Jones", only_in_theirs),
    ] {
        let (blocked, _) = app.approved_doctor(admin, name, input).await;
        app.ok(
            "mutation($id: ID!) { blockUser(id: $id) { id } }",
            json!({ "id": blocked.id }),
            Some(&admin.access),
        )
        .await;
    }
}

struct Case {
    name: &'static str,
    filter: Value,
    by: &'static str,
    direction: &'static str,
    keep: fn(&Generated) -> bool,
}

fn compare(by: &str, a: &Generated, b: &Generated) -> Ordering {
    let key = match by {
        "RATING" => a.rating.partial_cmp(&b.rating).unwrap(),
        "FEE" => a.fee.cmp(&b.fee),
        "EXPERIENCE" => a.experience.cmp(&b.experience),
        "NEWEST" => a.approved_at.cmp(&b.approved_at),
        other => panic!("unknown sort {other}"),
    };
    key.then_with(|| a.id.cmp(&b.id))
}

fn speaks(d: &Generated, language: &str) -> bool {
    d.languages.iter().any(|l| l.eq_ignore_ascii_case(language))
}

const PAGE: &str = "query($filter: DoctorFilter, $sort: DoctorSort, $first: Int, $after: String) { \
    doctors(filter: $filter, sort: $sort, first: $first, after: $after) { totalCount \
    edges { cursor node { id } } pageInfo { hasNextPage endCursor } } }";

/// Every page of a search, in order, with the totalCount of the first page.
async fn walk(app: &TestApp, filter: &Value, sort: &Value, page_size: usize) -> (Vec<String>, i64) {
    let mut ids = Vec::new();
    let mut after: Option<String> = None;
    let mut total = None;
    loop {
        let data = app
            .ok(
                PAGE,
                json!({ "filter": filter, "sort": sort, "first": page_size, "after": after }),
                None,
            )
            .await;
        let page = &data["doctors"];
        total.get_or_insert(page["totalCount"].as_i64().unwrap());
        for edge in page["edges"].as_array().unwrap() {
            ids.push(edge["node"]["id"].as_str().unwrap().to_owned());
        }
        if page["pageInfo"]["hasNextPage"] == false {
            return (ids, total.unwrap());
        }
        after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
}

/// Every field an admin sees, as the search reads it (the doctor and the account from one
/// joined row) and as `doctor(id)` reads it (the doctor's row, the account through its loader).
const EVERY_FIELD: &str = "id specialization qualifications experienceYears \
    consultationFee { amount currency } languages bio verificationStatus rejectionReason \
    licenceNumber ratingAverage ratingCount payoutsEnabled submittedAt approvedAt \
    user { id name role email phone blocked createdAt }";

#[tokio::test]
async fn a_search_page_shows_each_doctor_exactly_as_doctor_does() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let generated: Vec<Generated> = futures_util::stream::iter(0..30)
        .map(|i| generate(&app, &admin, i))
        .buffer_unordered(8)
        .collect()
        .await;
    let page = app
        .ok(
            &format!("{{ doctors(first: 100, sort: {{ by: RATING, direction: DESC }}) {{ edges {{ node {{ {EVERY_FIELD} }} }} }} }}"),
            json!({}),
            Some(&admin.access),
        )
        .await;
    let edges = page["doctors"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), generated.len());
    for edge in edges {
        let node = &edge["node"];
        let alone = app
            .ok(
                &format!("query($id: ID!) {{ doctor(id: $id) {{ {EVERY_FIELD} }} }}"),
                json!({ "id": node["id"] }),
                Some(&admin.access),
            )
            .await;
        assert_eq!(node, &alone["doctor"]);
        assert_ne!(node["bio"], "", "{node}");
    }
}

/// `n` generated doctors, listed, and beside them the doctors that must never be.
async fn generated_doctors(app: &TestApp, admin: &Account, n: usize) -> Vec<Generated> {
    let generated = futures_util::stream::iter(0..n)
        .map(|i| generate(app, admin, i))
        .buffer_unordered(8)
        .collect()
        .await;
    unlisted(app, admin).await;
    generated
}

/// Each filter alone and all combined, each with a sort of its own, and what it keeps.
fn reference_cases() -> Vec<Case> {
    vec![
        Case {
            name: "everything, best rated first",
            filter: json!({}),
            by: "RATING",
            direction: "DESC",
            keep: |_| true,
        },
        Case {
            name: "specialization in another case, cheapest first",
            filter: json!({ "specialization": "CARDIOLOGY" }),
            by: "FEE",
            direction: "ASC",
            keep: |d| d.specialization.eq_ignore_ascii_case("cardiology"),
        },
        Case {
            name: "fee range in USD, most experienced first",
            filter: json!({ "minFee": 5000, "maxFee": 15000, "currency": "usd" }),
            by: "EXPERIENCE",
            direction: "DESC",
            keep: |d| (5000..=15000).contains(&d.fee) && d.currency == "USD",
        },
        Case {
            name: "experience and language, newest first",
            filter: json!({ "minExperience": 20, "language": "spanish" }),
            by: "NEWEST",
            direction: "DESC",
            keep: |d| d.experience >= 20 && speaks(d, "spanish"),
        },
        Case {
            name: "minimum rating, worst first",
            filter: json!({ "minRating": 3.5 }),
            by: "RATING",
            direction: "ASC",
            keep: |d| d.rating >= 3.5,
        },
        Case {
            name: "text in the bio, dearest first",
            filter: json!({ "text": "SLEEP" }),
            by: "FEE",
            direction: "DESC",
            keep: |d| d.bio.to_lowercase().contains("sleep"),
        },
        Case {
            name: "text in the name with a language, oldest approval first",
            filter: json!({ "text": "garcia", "language": "English" }),
            by: "NEWEST",
            direction: "ASC",
            keep: |d| d.name.to_lowercase().contains("garcia") && speaks(d, "english"),
        },
        Case {
            name: "everything combined",
            filter: json!({ "specialization": "neurology", "minRating": 1, "maxFee": 20000, "language": "Hindi", "minExperience": 5 }),
            by: "EXPERIENCE",
            direction: "ASC",
            keep: |d| {
                d.specialization.eq_ignore_ascii_case("neurology")
                    && d.rating >= 1.0
                    && d.fee <= 20000
                    && speaks(d, "hindi")
                    && d.experience >= 5
            },
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_filters_sorts_and_pages_like_the_reference() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let generated = generated_doctors(&app, &admin, GENERATED).await;
    for case in &reference_cases() {
        let mut expected: Vec<&Generated> = generated.iter().filter(|d| (case.keep)(d)).collect();
        expected.sort_by(|a, b| compare(case.by, a, b));
        if case.direction == "DESC" {
            expected.reverse();
        }
        let expected: Vec<String> = expected.into_iter().map(|d| d.id.clone()).collect();
        assert!(
            !expected.is_empty() || case.name == "everything combined",
            "{}: the case selects something",
            case.name
        );
        let sort = json!({ "by": case.by, "direction": case.direction });
        let (ids, total) = walk(&app, &case.filter, &sort, 7).await;
        assert_eq!(ids, expected, "{}", case.name);
        assert_eq!(total, expected.len() as i64, "{}: totalCount", case.name);
    }
}

#[tokio::test]
async fn specializations_group_case_insensitively_and_count_listed_doctors_only() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    // Every seventh doctor writes their specialization in lower case: 30 cover all five.
    let generated = generated_doctors(&app, &admin, 30).await;
    let specializations = app
        .ok("{ specializations { name doctorCount } }", json!({}), None)
        .await;
    for entry in specializations["specializations"].as_array().unwrap() {
        let name = entry["name"].as_str().unwrap();
        let count = generated
            .iter()
            .filter(|d| d.specialization.eq_ignore_ascii_case(name))
            .count();
        assert_eq!(entry["doctorCount"], count, "{name}");
    }
    assert_eq!(
        specializations["specializations"].as_array().unwrap().len(),
        SPECIALIZATIONS.len()
    );
}

/// The database calls of a page of 5 doctors and of one of 50, with their users and licences,
/// as `token` sees them; and the page of 50's edges.
async fn cost_of_pages(app: &TestApp, token: Option<&str>) -> (Vec<u64>, Vec<Value>) {
    const WITH_EDGES: &str = "query($first: Int) { doctors(first: $first) { edges { node { id user { name } licence { sha256 } } } } }";
    let (mut costs, mut edges) = (Vec::new(), Vec::new());
    for first in [5, 50] {
        let before = app.db_calls().await;
        let data = app.ok(WITH_EDGES, json!({ "first": first }), token).await;
        costs.push(app.db_calls().await - before);
        edges = data["doctors"]["edges"].as_array().unwrap().clone();
        assert_eq!(edges.len(), first);
    }
    (costs, edges)
}

/// A page of 50 doctors with their users and licences costs what a page of 5 does.
#[tokio::test]
async fn a_page_of_doctors_costs_the_same_few_database_calls_whatever_its_size() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    generated_doctors(&app, &admin, 50).await;
    let (costs, edges) = cost_of_pages(&app, None).await;
    assert!(edges.iter().all(|e| {
        e["node"]["user"]["name"]
            .as_str()
            .unwrap()
            .starts_with("Dr ")
    }));
    assert_eq!(
        costs[0], costs[1],
        "database calls for 5 and for 50 doctors: {costs:?}"
    );
    assert!(
        costs[1] <= 3,
        "a page with its users takes {} calls",
        costs[1]
    );

    // The same for an admin, who also sees every licence.
    let (costs, edges) = cost_of_pages(&app, Some(&admin.access)).await;
    assert!(
        edges
            .iter()
            .all(|e| e["node"]["licence"]["sha256"].is_string())
    );
    assert_eq!(
        costs[0], costs[1],
        "an admin's page of 5 and of 50: {costs:?}"
    );
    assert!(costs[1] <= 4, "an admin's page takes {} calls", costs[1]);
}

#[tokio::test]
async fn pages_stay_stable_when_doctors_are_added_between_them() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let mut original = Vec::new();
    for i in 0..9 {
        original.push(
            app.approved_doctor(&admin, &format!("Dr Stable {i}"), profile(i).1)
                .await
                .1,
        );
    }
    let sort = json!({ "by": "NEWEST", "direction": "DESC" });
    let first = app
        .ok(PAGE, json!({ "sort": sort, "first": 4 }), None)
        .await;
    let mut seen: Vec<String> = first["doctors"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
        .collect();
    // A newer doctor lands before the cursor; offset paging would now repeat a row.
    let (_, newcomer) = app
        .approved_doctor(&admin, "Dr Newcomer", profile(50).1)
        .await;
    let mut after = first["doctors"]["pageInfo"]["endCursor"]
        .as_str()
        .map(str::to_owned);
    while let Some(cursor) = after {
        let data = app
            .ok(
                PAGE,
                json!({ "sort": sort, "first": 4, "after": cursor }),
                None,
            )
            .await;
        for edge in data["doctors"]["edges"].as_array().unwrap() {
            seen.push(edge["node"]["id"].as_str().unwrap().to_owned());
        }
        after = (data["doctors"]["pageInfo"]["hasNextPage"] == true).then(|| {
            data["doctors"]["pageInfo"]["endCursor"]
                .as_str()
                .unwrap()
                .to_owned()
        });
    }
    original.reverse();
    assert_eq!(seen, original, "each original doctor once, newest first");
    assert!(!seen.contains(&newcomer));
}

#[tokio::test]
async fn search_arguments_are_checked() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    for i in 0..3 {
        app.approved_doctor(&admin, &format!("Dr Arg {i}"), profile(i).1)
            .await;
    }
    let fee_cursor = app
        .ok(
            PAGE,
            json!({ "sort": { "by": "FEE", "direction": "ASC" }, "first": 1 }),
            None,
        )
        .await["doctors"]["pageInfo"]["endCursor"]
        .clone();
    let cases = [
        ("page too large", json!({ "first": 101 }), "first"),
        ("negative page", json!({ "first": -5 }), "first"),
        ("malformed cursor", json!({ "after": "!!!" }), "after"),
        ("garbage cursor", json!({ "after": "Z2FyYmFnZQ" }), "after"),
        (
            "cursor of another sort",
            json!({ "after": fee_cursor, "sort": { "by": "RATING" } }),
            "after",
        ),
        (
            "negative fee",
            json!({ "filter": { "minFee": -1 } }),
            "filter.minFee",
        ),
        (
            "fee range upside down",
            json!({ "filter": { "minFee": 500, "maxFee": 100 } }),
            "filter.maxFee",
        ),
        (
            "negative experience",
            json!({ "filter": { "minExperience": -1 } }),
            "filter.minExperience",
        ),
        (
            "rating above 5",
            json!({ "filter": { "minRating": 5.5 } }),
            "filter.minRating",
        ),
        (
            "unknown currency",
            json!({ "filter": { "currency": "ABC" } }),
            "filter.currency",
        ),
        (
            "language holding a line break",
            json!({ "filter": { "language": "english\nspanish" } }),
            "filter.language",
        ),
    ];
    for (name, variables, field) in cases {
        let body = app.graphql(PAGE, variables, None).await;
        assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{name}: {body}");
        assert_eq!(error_field(&body), Some(field), "{name}: {body}");
    }
    let body = app
        .graphql(PAGE, json!({ "sort": { "by": "SIZE" } }), None)
        .await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "unknown sort");
}
