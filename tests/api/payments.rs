//! Payments against a fake Stripe API started in each test: onboarding, Checkout, the signed
//! webhook (idempotent, never backwards), expiry by webhook and by sweep, refunds, admin view.

use std::time::Duration;

use crate::common::stripe::{FakeStripe, ORIGIN, SECRET_KEY, event, signed};
use crate::common::{Account, TestApp, error_code, error_field, profile_input, spawn_app_with};
use chrono::Duration as ChronoDuration;
use serde_json::{Value, json};

const PLATFORM_FEE_BPS: u32 = 1500;

async fn paid_app() -> (TestApp, FakeStripe) {
    let fake = FakeStripe::start().await;
    let app = spawn_app_with(|c| {
        fake.configure(c);
        c.public_origins = format!("{ORIGIN}, http://localhost:3000");
        c.platform_fee_bps = PLATFORM_FEE_BPS;
        c.payment_sweep_secs = 1;
    })
    .await;
    (app, fake)
}

async fn webhook(app: &TestApp, body: &str, signature: Option<&str>) -> reqwest::StatusCode {
    let mut request = app
        .client
        .post(app.url("/webhooks/stripe"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(signature) = signature {
        request = request.header("stripe-signature", signature);
    }
    request.send().await.unwrap().status()
}

async fn deliver(app: &TestApp, event: &Value) -> reqwest::StatusCode {
    let (body, signature) = signed(event, None);
    webhook(app, &body, Some(&signature)).await
}

/// An approved doctor whose Stripe account can take charges, open around the clock with a
/// one-day cancellation notice: (doctor, doctor id, Stripe account).
async fn payable_doctor(
    app: &TestApp,
    fake: &FakeStripe,
    admin: &Account,
    licence: &str,
) -> (Account, String, String) {
    let (doctor, doctor_id) = app
        .approved_doctor(admin, &format!("Dr {licence}"), profile_input(licence))
        .await;
    app.open_around_the_clock(&doctor, 1440).await;
    let link = app
        .ok(
            "mutation($i: PayoutOnboardingInput!) { createPayoutOnboardingLink(input: $i) }",
            json!({ "i": { "returnUrl": format!("{ORIGIN}/payouts/done"), "refreshUrl": format!("{ORIGIN}/payouts/again") } }),
            Some(&doctor.access),
        )
        .await;
    assert!(
        link["createPayoutOnboardingLink"]
            .as_str()
            .unwrap()
            .starts_with("https://connect.stripe.test/")
    );
    let account = fake
        .requests("/v1/account_links")
        .last()
        .unwrap()
        .field("account")
        .unwrap()
        .to_owned();
    let updated = event(
        &format!("evt_acct_{licence}"),
        "account.updated",
        json!({ "id": account, "object": "account", "charges_enabled": true, "payouts_enabled": true }),
    );
    assert_eq!(deliver(app, &updated).await, 200);
    (doctor, doctor_id, account)
}

/// Books the first free slot at least `hours_ahead` from now: the appointment's id.
async fn book(
    app: &TestApp,
    patient: &Account,
    doctor_id: &str,
    hours_ahead: i64,
) -> Result<String, Value> {
    let after = app.clock.now() + ChronoDuration::hours(hours_ahead);
    let today = app.clock.now().date_naive();
    let slots = app
        .ok(
            "query($d: ID!, $f: Date!, $t: Date!) { availableSlots(doctorId: $d, from: $f, to: $t) { startsAt } }",
            json!({ "d": doctor_id, "f": today.to_string(), "t": (today + ChronoDuration::days(3)).to_string() }),
            None,
        )
        .await;
    let start = slots["availableSlots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["startsAt"].as_str().unwrap().to_owned())
        .find(|s| s.parse::<chrono::DateTime<chrono::Utc>>().unwrap() >= after)
        .expect("a free slot");
    let booked = app
        .graphql(
            "mutation($input: BookAppointmentInput!) { bookAppointment(input: $input) { id status } }",
            json!({ "input": { "doctorId": doctor_id, "startsAt": start } }),
            Some(&patient.access),
        )
        .await;
    match booked["data"]["bookAppointment"]["id"].as_str() {
        Some(id) => {
            assert_eq!(
                booked["data"]["bookAppointment"]["status"],
                "PENDING_PAYMENT"
            );
            Ok(id.to_owned())
        }
        None => Err(booked),
    }
}

const APPOINTMENT: &str = "query($id: ID!) { appointment(id: $id) { status startsAt \
    payment { status amount currency platformFee paidAt refundedAt note } } }";

async fn appointment(app: &TestApp, token: &str, id: &str) -> Value {
    app.ok(APPOINTMENT, json!({ "id": id }), Some(token)).await["appointment"].clone()
}

async fn checkout(app: &TestApp, patient: &Account, appointment: &str) -> Value {
    app.graphql(
        "mutation($i: CheckoutSessionInput!) { createCheckoutSession(input: $i) { url expiresAt } }",
        json!({ "i": { "appointmentId": appointment,
            "successUrl": format!("{ORIGIN}/paid?session={{CHECKOUT_SESSION_ID}}"),
            "cancelUrl": format!("{ORIGIN}/appointments") } }),
        Some(&patient.access),
    )
    .await
}

fn completed(id: &str, appointment: &str, intent: &str) -> Value {
    event(
        id,
        "checkout.session.completed",
        json!({ "id": "cs_test_x", "object": "checkout.session", "payment_status": "paid",
            "payment_intent": intent, "metadata": { "appointment_id": appointment } }),
    )
}

/// A patient with a paid, confirmed appointment: (patient, appointment id, payment intent).
async fn paid_appointment(
    app: &TestApp,
    doctor_id: &str,
    hours_ahead: i64,
    tag: &str,
) -> (Account, String, String) {
    let patient = app.register_patient().await;
    let id = book(app, &patient, doctor_id, hours_ahead)
        .await
        .expect("booked");
    let session = checkout(app, &patient, &id).await;
    assert!(session.get("errors").is_none(), "{session}");
    let intent = format!("pi_{tag}");
    assert_eq!(
        deliver(app, &completed(&format!("evt_paid_{tag}"), &id, &intent)).await,
        200
    );
    assert_eq!(
        appointment(app, &patient.access, &id).await["status"],
        "CONFIRMED"
    );
    (patient, id, intent)
}

#[tokio::test]
async fn onboarding_creates_one_account_and_follows_stripe() {
    let (app, fake) = paid_app().await;
    let admin = app.admin().await;
    let (doctor, doctor_id, account) = payable_doctor(&app, &fake, &admin, "PAY-ON-1").await;
    let accounts = fake.requests("/v1/accounts");
    assert_eq!(accounts.len(), 1);
    assert_eq!(
        accounts[0].idempotency_key.as_deref(),
        Some(format!("account-{doctor_id}").as_str())
    );
    assert_eq!(
        accounts[0].field("controller[stripe_dashboard][type]"),
        Some("express")
    );
    assert_eq!(
        accounts[0].field("capabilities[transfers][requested]"),
        Some("true")
    );
    assert_eq!(
        accounts[0].authorization.as_deref(),
        Some(format!("Bearer {SECRET_KEY}").as_str())
    );

    // A second link reuses the stored account.
    app.ok(
        "mutation($i: PayoutOnboardingInput!) { createPayoutOnboardingLink(input: $i) }",
        json!({ "i": { "returnUrl": "http://localhost:3000/back", "refreshUrl": "http://localhost:3000/again" } }),
        Some(&doctor.access),
    )
    .await;
    assert_eq!(fake.requests("/v1/accounts").len(), 1);
    let links = fake.requests("/v1/account_links");
    assert_eq!(links.len(), 2);
    assert_eq!(links[1].field("account"), Some(account.as_str()));
    assert_eq!(links[1].field("type"), Some("account_onboarding"));

    let doctor_query = "query($id: ID!) { doctor(id: $id) { payoutsEnabled } }";
    let shown = app.ok(doctor_query, json!({ "id": doctor_id }), None).await;
    assert_eq!(shown["doctor"]["payoutsEnabled"], true);
    let disabled = event(
        "evt_acct_off",
        "account.updated",
        json!({ "id": account, "object": "account", "charges_enabled": false, "payouts_enabled": false }),
    );
    assert_eq!(deliver(&app, &disabled).await, 200);
    let shown = app.ok(doctor_query, json!({ "id": doctor_id }), None).await;
    assert_eq!(shown["doctor"]["payoutsEnabled"], false);

    // A doctor who cannot take charges cannot be booked.
    let patient = app.register_patient().await;
    let refused = book(&app, &patient, &doctor_id, 2).await.unwrap_err();
    assert_eq!(error_code(&refused), Some("CONFLICT"), "{refused}");
    assert_eq!(error_field(&refused), Some("doctorId"));

    // Redirects must stay on the public origins.
    let evil = app
        .graphql(
            "mutation($i: PayoutOnboardingInput!) { createPayoutOnboardingLink(input: $i) }",
            json!({ "i": { "returnUrl": "https://app.example.com.evil.test/x", "refreshUrl": format!("{ORIGIN}/again") } }),
            Some(&doctor.access),
        )
        .await;
    assert_eq!(error_code(&evil), Some("BAD_USER_INPUT"));
    assert_eq!(error_field(&evil), Some("returnUrl"));
    let by_patient = app
        .graphql(
            "mutation($i: PayoutOnboardingInput!) { createPayoutOnboardingLink(input: $i) }",
            json!({ "i": { "returnUrl": format!("{ORIGIN}/a"), "refreshUrl": format!("{ORIGIN}/b") } }),
            Some(&patient.access),
        )
        .await;
    assert_eq!(error_code(&by_patient), Some("FORBIDDEN"));
}

#[tokio::test]
async fn checkout_sends_the_right_fields_once_and_a_retry_gets_the_same_session() {
    let (app, fake) = paid_app().await;
    let admin = app.admin().await;
    let (_, doctor_id, account) = payable_doctor(&app, &fake, &admin, "PAY-CO-1").await;
    let patient = app.register_patient().await;
    let id = book(&app, &patient, &doctor_id, 2).await.unwrap();
    let shown = appointment(&app, &patient.access, &id).await;
    assert_eq!(shown["payment"]["status"], "UNPAID");
    assert_eq!(
        shown["payment"]["platformFee"],
        5000 * i64::from(PLATFORM_FEE_BPS) / 10_000
    );

    let first = checkout(&app, &patient, &id).await;
    assert!(first.get("errors").is_none(), "{first}");
    let second = checkout(&app, &patient, &id).await;
    assert_eq!(first["data"], second["data"]);
    let sessions = fake.requests("/v1/checkout/sessions");
    assert_eq!(
        sessions.len(),
        1,
        "a retried call creates no second session"
    );
    let sent = &sessions[0];
    assert_eq!(
        sent.idempotency_key.as_deref(),
        Some(format!("checkout-{id}").as_str())
    );
    assert_eq!(sent.field("mode"), Some("payment"));
    assert_eq!(
        sent.field("line_items[0][price_data][unit_amount]"),
        Some("5000")
    );
    assert_eq!(
        sent.field("line_items[0][price_data][currency]"),
        Some("usd")
    );
    assert_eq!(sent.field("line_items[0][quantity]"), Some("1"));
    assert_eq!(
        sent.field("payment_intent_data[application_fee_amount]"),
        Some("750")
    );
    assert_eq!(
        sent.field("payment_intent_data[transfer_data][destination]"),
        Some(account.as_str())
    );
    assert_eq!(sent.field("metadata[appointment_id]"), Some(id.as_str()));
    assert_eq!(
        sent.field("success_url"),
        Some(format!("{ORIGIN}/paid?session={{CHECKOUT_SESSION_ID}}").as_str())
    );
    let expires: i64 = sent.field("expires_at").unwrap().parse().unwrap();
    let lead = expires - app.clock.now().timestamp();
    assert!(
        (1790..=1810).contains(&lead),
        "expires 30 minutes out, not {lead} s"
    );
    assert_eq!(
        first["data"]["createCheckoutSession"]["url"]
            .as_str()
            .unwrap(),
        "https://checkout.stripe.test/c/pay/cs_test_3"
    );

    // Only the patient, only allowed origins, only while waiting for payment.
    let stranger = app.register_patient().await;
    let refused = checkout(&app, &stranger, &id).await;
    assert_eq!(error_code(&refused), Some("NOT_FOUND"));
    let bad_url = app
        .graphql(
            "mutation($i: CheckoutSessionInput!) { createCheckoutSession(input: $i) { url } }",
            json!({ "i": { "appointmentId": id, "successUrl": "https://evil.test/ok", "cancelUrl": format!("{ORIGIN}/x") } }),
            Some(&patient.access),
        )
        .await;
    assert_eq!(error_code(&bad_url), Some("BAD_USER_INPUT"));
    assert_eq!(error_field(&bad_url), Some("successUrl"));
    assert_eq!(fake.requests("/v1/checkout/sessions").len(), 1);
}

#[tokio::test]
async fn a_signed_completion_confirms_once_and_bad_deliveries_change_nothing() {
    let (app, fake) = paid_app().await;
    let admin = app.admin().await;
    let (_, doctor_id, _) = payable_doctor(&app, &fake, &admin, "PAY-WH-1").await;
    let patient = app.register_patient().await;
    let id = book(&app, &patient, &doctor_id, 2).await.unwrap();
    checkout(&app, &patient, &id).await;

    let paid = completed("evt_paid_1", &id, "pi_1");
    let (body, signature) = signed(&paid, None);
    let stale = signed(&paid, Some(chrono::Utc::now().timestamp() - 600)).1;
    let forged = stripe_webhook::Webhook::generate_test_header(&body, "whsec_wrong", None);
    assert_eq!(webhook(&app, &body, None).await, 400, "unsigned");
    assert_eq!(
        webhook(&app, &body, Some(&forged)).await,
        400,
        "wrong secret"
    );
    assert_eq!(
        webhook(&app, &body, Some(&stale)).await,
        400,
        "stale timestamp"
    );
    assert_eq!(
        webhook(&app, &body.replace("pi_1", "pi_2"), Some(&signature)).await,
        400,
        "body changed after signing"
    );
    assert_eq!(
        webhook(&app, &body, Some("t=1,v1=nothex")).await,
        400,
        "garbage header"
    );
    assert_eq!(
        appointment(&app, &patient.access, &id).await["status"],
        "PENDING_PAYMENT"
    );
    assert_eq!(
        app.count_rows("stripe_events").await,
        1,
        "only the account update so far"
    );

    assert_eq!(webhook(&app, &body, Some(&signature)).await, 200);
    let confirmed = appointment(&app, &patient.access, &id).await;
    assert_eq!(confirmed["status"], "CONFIRMED");
    assert_eq!(confirmed["payment"]["status"], "PAID");
    let paid_at = confirmed["payment"]["paidAt"].clone();
    assert!(paid_at.is_string());

    app.clock.shift(ChronoDuration::seconds(5));
    assert_eq!(
        webhook(&app, &body, Some(&signed(&paid, None).1)).await,
        200,
        "a redelivery is acknowledged"
    );
    let again = appointment(&app, &patient.access, &id).await;
    assert_eq!(again["payment"]["paidAt"], paid_at, "and changes nothing");
    assert_eq!(app.count_rows("stripe_events").await, 2);

    let unknown = event(
        "evt_unknown",
        "invoice.created",
        json!({ "id": "in_1", "object": "invoice" }),
    );
    assert_eq!(deliver(&app, &unknown).await, 200);
}

#[tokio::test]
async fn concurrent_deliveries_of_a_late_completion_refund_exactly_once() {
    let (app, fake) = paid_app().await;
    let admin = app.admin().await;
    let (_, doctor_id, _) = payable_doctor(&app, &fake, &admin, "PAY-LATE-1").await;
    let patient = app.register_patient().await;
    let id = book(&app, &patient, &doctor_id, 48).await.unwrap();
    checkout(&app, &patient, &id).await;
    app.ok(
        "mutation($id: ID!) { cancelAppointment(id: $id) { status } }",
        json!({ "id": id }),
        Some(&patient.access),
    )
    .await;

    // The patient paid on the still-open page after cancelling: the money must go back.
    let late = completed("evt_late", &id, "pi_late");
    let deliveries = (0..8).map(|_| deliver(&app, &late));
    let statuses = futures_util::future::join_all(deliveries).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let shown = appointment(&app, &patient.access, &id).await;
    assert_eq!(
        shown["status"], "CANCELLED",
        "a payment never moves an appointment back"
    );
    let refunds = fake.requests("/v1/refunds");
    assert_eq!(refunds.len(), 1, "eight deliveries, one refund");
    assert_eq!(refunds[0].field("payment_intent"), Some("pi_late"));
    assert_eq!(shown["payment"]["status"], "REFUND_PENDING");
    assert!(
        shown["payment"]["note"]
            .as_str()
            .unwrap()
            .contains("cancelled")
    );

    let refunded = event(
        "evt_refunded_late",
        "charge.refunded",
        json!({ "id": "ch_1", "object": "charge", "payment_intent": "pi_late", "refunded": true }),
    );
    assert_eq!(deliver(&app, &refunded).await, 200);
    let shown = appointment(&app, &patient.access, &id).await;
    assert_eq!(shown["payment"]["status"], "REFUNDED");
    assert!(shown["payment"]["refundedAt"].is_string());
}

async fn free_slot_count(app: &TestApp, doctor_id: &str) -> usize {
    let today = app.clock.now().date_naive();
    app.ok(
        "query($d: ID!, $f: Date!, $t: Date!) { availableSlots(doctorId: $d, from: $f, to: $t) { startsAt } }",
        json!({ "d": doctor_id, "f": today.to_string(), "t": (today + ChronoDuration::days(3)).to_string() }),
        None,
    )
    .await["availableSlots"]
        .as_array()
        .unwrap()
        .len()
}

#[tokio::test]
async fn an_expired_session_frees_the_slot_by_webhook_and_by_sweep() {
    let (app, fake) = paid_app().await;
    let admin = app.admin().await;
    let (_, doctor_id, _) = payable_doctor(&app, &fake, &admin, "PAY-EXP-1").await;
    let free_before = free_slot_count(&app, &doctor_id).await;

    let patient = app.register_patient().await;
    let by_webhook = book(&app, &patient, &doctor_id, 5).await.unwrap();
    checkout(&app, &patient, &by_webhook).await;
    assert_eq!(
        free_slot_count(&app, &doctor_id).await,
        free_before - 1,
        "the hold takes the slot"
    );
    let expired = event(
        "evt_expired",
        "checkout.session.expired",
        json!({ "id": "cs_test_3", "object": "checkout.session", "payment_status": "unpaid",
            "metadata": { "appointment_id": by_webhook } }),
    );
    assert_eq!(deliver(&app, &expired).await, 200);
    assert_eq!(
        appointment(&app, &patient.access, &by_webhook).await["status"],
        "CANCELLED"
    );
    assert_eq!(free_slot_count(&app, &doctor_id).await, free_before);

    // No webhook at all: the sweep releases the hold once the session's time is over.
    let by_sweep = book(&app, &patient, &doctor_id, 5).await.unwrap();
    checkout(&app, &patient, &by_sweep).await;
    app.clock.shift(ChronoDuration::minutes(20));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        appointment(&app, &patient.access, &by_sweep).await["status"],
        "PENDING_PAYMENT",
        "still inside the window"
    );
    app.clock.shift(ChronoDuration::minutes(11));
    let mut status = Value::Null;
    for _ in 0..50 {
        status = appointment(&app, &patient.access, &by_sweep).await["status"].clone();
        if status == "CANCELLED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, "CANCELLED");
    let late_checkout = checkout(&app, &patient, &by_sweep).await;
    assert_eq!(error_code(&late_checkout), Some("CONFLICT"));
}

#[tokio::test]
async fn cancellations_refund_in_time_and_keep_the_payment_inside_the_notice() {
    let (app, fake) = paid_app().await;
    let admin = app.admin().await;
    let (doctor, doctor_id, _) = payable_doctor(&app, &fake, &admin, "PAY-REF-1").await;
    let cancel =
        "mutation($id: ID!) { cancelAppointment(id: $id) { status payment { status note } } }";

    // The doctor cancels: full refund, transfer and fee reversed.
    let (_, by_doctor, intent) = paid_appointment(&app, &doctor_id, 3, "doc").await;
    fake.set_refund_status("succeeded");
    let cancelled = app
        .ok(cancel, json!({ "id": by_doctor }), Some(&doctor.access))
        .await;
    assert_eq!(
        cancelled["cancelAppointment"]["payment"]["status"],
        "REFUNDED"
    );
    let refunds = fake.requests("/v1/refunds");
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0].field("payment_intent"), Some(intent.as_str()));
    assert_eq!(refunds[0].field("reverse_transfer"), Some("true"));
    assert_eq!(refunds[0].field("refund_application_fee"), Some("true"));
    assert!(
        refunds[0]
            .idempotency_key
            .as_deref()
            .unwrap()
            .starts_with("refund-")
    );

    // The patient cancels two days ahead (notice: one day): refunded, pending until Stripe says.
    fake.set_refund_status("pending");
    let (early_patient, early, _) = paid_appointment(&app, &doctor_id, 50, "early").await;
    let cancelled = app
        .ok(cancel, json!({ "id": early }), Some(&early_patient.access))
        .await;
    assert_eq!(
        cancelled["cancelAppointment"]["payment"]["status"],
        "REFUND_PENDING"
    );
    assert_eq!(fake.requests("/v1/refunds").len(), 2);

    // Inside the notice the patient may still cancel, but the payment is kept and says why.
    let (late_patient, late, _) = paid_appointment(&app, &doctor_id, 3, "late").await;
    let cancelled = app
        .ok(cancel, json!({ "id": late }), Some(&late_patient.access))
        .await;
    assert_eq!(cancelled["cancelAppointment"]["status"], "CANCELLED");
    assert_eq!(cancelled["cancelAppointment"]["payment"]["status"], "PAID");
    assert!(
        cancelled["cancelAppointment"]["payment"]["note"]
            .as_str()
            .unwrap()
            .contains("notice")
    );
    assert_eq!(
        fake.requests("/v1/refunds").len(),
        2,
        "no refund for a late cancellation"
    );
}

#[tokio::test]
async fn admins_list_payments_and_see_totals() {
    let (app, fake) = paid_app().await;
    let admin = app.admin().await;
    let (doctor, doctor_id, _) = payable_doctor(&app, &fake, &admin, "PAY-ADM-1").await;
    let start = app.clock.now() - ChronoDuration::minutes(1);
    let (patient, first, _) = paid_appointment(&app, &doctor_id, 3, "a").await;
    paid_appointment(&app, &doctor_id, 4, "b").await;
    fake.set_refund_status("succeeded");
    app.ok(
        "mutation($id: ID!) { cancelAppointment(id: $id) { status } }",
        json!({ "id": first }),
        Some(&doctor.access),
    )
    .await;
    let end = app.clock.now() + ChronoDuration::minutes(1);

    let list = "query($f: PaymentFilter, $first: Int, $after: String) { payments(filter: $f, first: $first, after: $after) { \
        totalCount edges { cursor node { status amount appointmentId } } pageInfo { hasNextPage endCursor } } }";
    let all = app
        .ok(list, json!({ "first": 1 }), Some(&admin.access))
        .await;
    assert_eq!(all["payments"]["totalCount"], 2);
    assert_eq!(all["payments"]["pageInfo"]["hasNextPage"], true);
    let next = app
        .ok(
            list,
            json!({ "first": 1, "after": all["payments"]["pageInfo"]["endCursor"] }),
            Some(&admin.access),
        )
        .await;
    assert_eq!(next["payments"]["pageInfo"]["hasNextPage"], false);
    let newest = &all["payments"]["edges"][0]["node"];
    let oldest = &next["payments"]["edges"][0]["node"];
    assert_eq!(oldest["appointmentId"], first.as_str(), "newest first");
    assert_eq!(oldest["status"], "REFUNDED");
    assert_eq!(newest["status"], "PAID");
    let refunded = app
        .ok(
            list,
            json!({ "f": { "status": "REFUNDED" } }),
            Some(&admin.access),
        )
        .await;
    assert_eq!(refunded["payments"]["totalCount"], 1);

    let totals = app
        .ok(
            "query($from: DateTime!, $to: DateTime!) { paymentTotals(from: $from, to: $to) { currency gross fees refunded paymentCount } }",
            json!({ "from": start.to_rfc3339(), "to": end.to_rfc3339() }),
            Some(&admin.access),
        )
        .await;
    assert_eq!(
        totals["paymentTotals"],
        json!([{ "currency": "USD", "gross": 10000, "fees": 750, "refunded": 5000, "paymentCount": 2 }])
    );

    let forbidden = app.graphql(list, json!({}), Some(&patient.access)).await;
    assert_eq!(error_code(&forbidden), Some("FORBIDDEN"));
    let backwards = app
        .graphql(
            "query($from: DateTime!, $to: DateTime!) { paymentTotals(from: $from, to: $to) { gross } }",
            json!({ "from": end.to_rfc3339(), "to": start.to_rfc3339() }),
            Some(&admin.access),
        )
        .await;
    assert_eq!(error_code(&backwards), Some("BAD_USER_INPUT"));
}

#[tokio::test]
async fn without_stripe_settings_bookings_confirm_at_once_and_webhooks_are_not_served() {
    let app = crate::common::spawn_app().await;
    let admin = app.admin().await;
    let (_, _, patient, id) = app.booked_pair(&admin, "PAY-OFF-1").await;
    let shown = appointment(&app, &patient.access, &id).await;
    assert_eq!(shown["status"], "CONFIRMED");
    assert_eq!(shown["payment"]["status"], "NOT_REQUIRED");
    let (body, signature) = signed(&completed("evt_off", &id, "pi_off"), None);
    assert_eq!(webhook(&app, &body, Some(&signature)).await, 404);
    let refused = checkout(&app, &patient, &id).await;
    assert_eq!(error_code(&refused), Some("CONFLICT"));
}

#[tokio::test]
async fn concurrent_checkout_calls_share_one_session() {
    let (app, fake) = paid_app().await;
    let admin = app.admin().await;
    let (_, doctor_id, _) = payable_doctor(&app, &fake, &admin, "PAY-CC-1").await;
    let patient = app.register_patient().await;
    let id = book(&app, &patient, &doctor_id, 2).await.unwrap();
    let calls = (0..6).map(|_| checkout(&app, &patient, &id));
    let answers = futures_util::future::join_all(calls).await;
    let urls: Vec<&str> = answers
        .iter()
        .map(|a| {
            a["data"]["createCheckoutSession"]["url"]
                .as_str()
                .expect("a session")
        })
        .collect();
    assert!(urls.iter().all(|u| *u == urls[0]), "{urls:?}");
    let keys: Vec<_> = fake
        .requests("/v1/checkout/sessions")
        .into_iter()
        .map(|r| r.idempotency_key)
        .collect();
    assert!(
        keys.iter()
            .all(|k| k.as_deref() == Some(format!("checkout-{id}").as_str()))
    );
    assert_eq!(app.count_rows("payments").await, 1);
}

#[tokio::test]
async fn a_refund_that_cannot_reach_stripe_is_retried_and_a_failed_one_shows() {
    let (app, fake) = paid_app().await;
    let admin = app.admin().await;
    let (doctor, doctor_id, _) = payable_doctor(&app, &fake, &admin, "PAY-RT-1").await;
    let cancel = "mutation($id: ID!) { cancelAppointment(id: $id) { payment { status } } }";

    let (patient, id, intent) = paid_appointment(&app, &doctor_id, 3, "retry").await;
    fake.set_refunds_down(true);
    let cancelled = app
        .ok(cancel, json!({ "id": id }), Some(&doctor.access))
        .await;
    assert_eq!(
        cancelled["cancelAppointment"]["payment"]["status"],
        "REFUND_PENDING"
    );
    fake.set_refunds_down(false);
    let mut sent = Vec::new();
    for _ in 0..40 {
        sent = fake.requests("/v1/refunds");
        if sent.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(sent.len() >= 2, "the sweep retries the refund");
    assert!(
        sent.iter()
            .all(|r| r.idempotency_key == sent[0].idempotency_key),
        "with the same key"
    );

    let failed = event(
        "evt_refund_failed",
        "refund.updated",
        json!({ "id": "re_x", "object": "refund", "payment_intent": intent, "status": "failed" }),
    );
    assert_eq!(deliver(&app, &failed).await, 200);
    let shown = appointment(&app, &patient.access, &id).await;
    assert_eq!(shown["payment"]["status"], "FAILED");
    assert!(
        shown["payment"]["note"]
            .as_str()
            .unwrap()
            .contains("failed")
    );
}

#[tokio::test]
async fn a_paid_booking_is_mailed_as_confirmed_to_both_parties_once_paid() {
    let fake = FakeStripe::start().await;
    let smtp = crate::common::smtp::SmtpServer::start().await;
    let app = spawn_app_with(|c| {
        crate::common::smtp::mail_to(c, &smtp);
        fake.configure(c);
        c.public_origins = ORIGIN.into();
    })
    .await;
    let admin = app.admin().await;
    let (doctor, doctor_id, _) = payable_doctor(&app, &fake, &admin, "LIC-PAID-MAIL").await;
    let (patient, _, _) = paid_appointment(&app, &doctor_id, 30, "mail").await;
    for party in [&doctor, &patient] {
        let mails = smtp
            .mails_about(&party.email, "Appointment confirmed", 1)
            .await;
        assert!(mails[0].text.as_deref().unwrap().contains("is confirmed"));
    }
    crate::common::smtp::outbox_drained(&app).await;
    let confirmations = |email: &str| {
        smtp.received_by(email)
            .iter()
            .filter(|m| m.subject.contains("Appointment confirmed"))
            .count()
    };
    assert_eq!(
        confirmations(&patient.email),
        1,
        "not when booked, only when paid"
    );
}
