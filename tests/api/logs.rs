//! Logs of the real binary, in JSON with every crate at `debug`: each flow (accounts with their
//! passwords and tokens; a licence, payouts and TURN; a call's SDP and ICE candidates; a chat
//! message), run with Stripe, TURN and database secrets set, leaves none of its secrets in any
//! line, in any usual encoding; every line is JSON; and lines carry the id of their request or
//! WebSocket connection, and its user.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::stripe::{FakeStripe, ORIGIN, event};
use crate::common::ws::{WsClient, accept_call, listen_for_signals, relay, start_call};
use crate::common::*;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use serde_json::{Value, json};
use uuid::Uuid;

const CALL_EVENTS: &str = "subscription { callEvents { kind call { id status } } }";
const SIGNALS: &str =
    "subscription($id: ID!) { signals(callId: $id) { kind sdp candidate { candidate } } }";
const REFRESH: &str = "mutation($token: String!) { refreshToken(token: $token) { accessToken refreshToken user { id email role } } }";

/// A value that cannot appear in a log by chance.
fn marker(what: &str) -> String {
    format!("{what}-{}", Uuid::new_v4().simple())
}

/// The binary with a clean `MEDILINK_*` environment, JSON logs and every crate at debug.
fn medilink(dir: &Path, env: &[(&str, &str)]) -> Command {
    let mut command = binary(dir);
    command
        .env("MEDILINK_LOG", "debug")
        .env("MEDILINK_LOG_FORMAT", "json")
        .envs(env.iter().copied());
    command
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn parsed(path: &Path) -> Vec<Value> {
    read_lines(path)
        .iter()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

fn message(line: &Value) -> &str {
    line["fields"]["message"].as_str().unwrap_or_default()
}

/// Waits until `count` lines of `path` say `text`; returns all lines then.
async fn wait_for(path: &Path, text: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let lines = parsed(path);
        if lines.iter().filter(|l| message(l) == text).count() >= count {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "no {count} `{text}` lines in:\n{}",
            read_lines(path).join("\n")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether the line was logged inside the request (or connection) `id`, signed in as `user`.
fn in_span(line: &Value, id: &str, user: Option<&str>) -> bool {
    line["spans"].as_array().is_some_and(|spans| {
        spans
            .iter()
            .any(|s| s["id"] == id && user.is_none_or(|u| s["user"] == u))
    })
}

/// The forms a secret could take in a log line: as it is, percent-encoded, hex, and base64
/// (both alphabets) at each of the three byte alignments it could have inside a longer value.
fn encodings(secret: &str) -> Vec<String> {
    let mut forms = vec![
        secret.to_owned(),
        form_urlencoded::byte_serialize(secret.as_bytes()).collect(),
        secret.bytes().map(|b| format!("{b:02x}")).collect(),
    ];
    for offset in 0..3 {
        let mut bytes = vec![0u8; offset];
        bytes.extend_from_slice(secret.as_bytes());
        for engine in [&STANDARD, &URL_SAFE] {
            let encoded = engine.encode(&bytes);
            // The first group mixes in the padding bytes, the last one the end: keep the middle.
            let skip = if offset == 0 { 0 } else { 4 };
            let end = encoded.len().saturating_sub(4);
            if end > skip + 12 {
                forms.push(encoded[skip..end].to_owned());
            }
        }
    }
    forms
}

/// The binary serving on a free port, its standard output and error going to files.
struct Server {
    child: Child,
    api: Api,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Server {
    async fn start(dir: &Path, env: &[(&str, &str)]) -> Server {
        let stdout = dir.join("serve.out");
        let stderr = dir.join("serve.err");
        let child = medilink(dir, env)
            .env("MEDILINK_BIND", "127.0.0.1:0")
            .arg("serve")
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        // Built before waiting, so that its drop ends the child if the wait fails.
        let mut server = Server {
            child,
            api: Api::new(([127, 0, 0, 1], 0).into()),
            stdout,
            stderr,
        };
        let started = wait_for(&server.stdout, "listening", 1).await;
        let address = started
            .iter()
            .find(|l| message(l) == "listening")
            .and_then(|l| l["fields"]["address"].as_str())
            .expect("the listening line has the address");
        server.api = Api::new(address.parse().unwrap());
        server
    }

    /// Stops the server with SIGTERM and returns its lines, raw and parsed, after checking that
    /// every line is a JSON object, the last says it stopped, and standard error stayed empty.
    fn stop(mut self) -> (Vec<String>, Vec<Value>) {
        let terminated = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(terminated.success());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "the server stopped cleanly: {status:?}");
        let lines = read_lines(&self.stdout);
        let errors = read_lines(&self.stderr);
        assert!(errors.is_empty(), "standard error: {}", errors.join("\n"));
        let logs: Vec<Value> = lines
            .iter()
            .map(|line| {
                let value: Value =
                    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                assert!(value.is_object(), "{line}");
                value
            })
            .collect();
        assert_eq!(logs.last().map(message), Some("stopped"));
        (lines, logs)
    }
}

/// A test that fails half-way must not leave its server running.
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A GraphQL request over HTTP with a request id chosen by the test.
async fn graphql_with_id(
    api: &Api,
    request_id: &str,
    query: &str,
    variables: Value,
    token: Option<&str>,
) -> Value {
    let mut request = api
        .client
        .post(api.url("/graphql"))
        .header("x-request-id", request_id)
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let body: Value = request.send().await.unwrap().json().await.unwrap();
    assert!(body.get("errors").is_none(), "{body}");
    body["data"].clone()
}

/// The binary serving a flow whose secrets are all known: `create-admin` ran first, then `serve`
/// with Stripe, TURN and (on PostgreSQL) a database password set. Every secret of the flow is
/// kept, and `stop` checks that none is in any line.
struct Flow {
    server: Server,
    stripe: FakeStripe,
    webhook_secret: String,
    admin_email: String,
    admin_password: String,
    admin_out: PathBuf,
    secrets: Vec<(String, String)>,
    _dir: tempfile::TempDir,
}

impl Flow {
    async fn start() -> Flow {
        let dir = tempfile::tempdir().unwrap();
        let stripe = FakeStripe::start().await;
        let jwt_secret = marker("jwt-secret");
        let stripe_key = format!("sk_test_{}", Uuid::new_v4().simple());
        let webhook_secret = format!("whsec_{}", Uuid::new_v4().simple());
        let turn_secret = marker("turn-secret");
        let admin_password = marker("admin-password");
        // On PostgreSQL, a password in the URL too (the test server trusts local connections, so
        // it is never checked, but it must not be shown).
        let db_password = marker("db-password");
        let mut database_url = fresh_database_url(&dir).await;
        if let Some((scheme, rest)) = database_url.split_once("://")
            && scheme.starts_with("postgres")
            && let Some((user, host)) = rest.split_once('@')
            && !user.contains(':')
        {
            database_url = format!("{scheme}://{user}:{db_password}@{host}");
        }
        let admin_email = unique_email("admin");
        let created = medilink(
            dir.path(),
            &[
                ("MEDILINK_DATABASE_URL", &database_url),
                ("MEDILINK_ADMIN_PASSWORD", &admin_password),
            ],
        )
        .args(["create-admin", "--email", &admin_email])
        .stdin(Stdio::null())
        .output()
        .unwrap();
        assert!(created.status.success(), "{created:?}");
        let admin_out = dir.path().join("create-admin.log");
        std::fs::write(&admin_out, [created.stdout, created.stderr].concat()).unwrap();
        let server = Server::start(
            dir.path(),
            &[
                ("MEDILINK_DATABASE_URL", &database_url),
                ("MEDILINK_JWT_SECRET", &jwt_secret),
                ("MEDILINK_STRIPE_SECRET_KEY", &stripe_key),
                ("MEDILINK_STRIPE_WEBHOOK_SECRET", &webhook_secret),
                ("MEDILINK_STRIPE_API_BASE", &stripe.base_url()),
                ("MEDILINK_PUBLIC_ORIGINS", ORIGIN),
                (
                    "MEDILINK_ICE_SERVERS",
                    "stun:stun.example.org:3478,turn:turn.example.org:3478",
                ),
                ("MEDILINK_TURN_SECRET", &turn_secret),
            ],
        )
        .await;
        let secrets = [
            ("JWT secret", &jwt_secret),
            ("Stripe secret key", &stripe_key),
            ("Stripe webhook secret", &webhook_secret),
            ("TURN secret", &turn_secret),
            ("admin password", &admin_password),
            ("database password", &db_password),
        ];
        let secrets = secrets.map(|(label, secret)| (label.to_owned(), secret.clone()));
        Flow {
            server,
            stripe,
            webhook_secret,
            admin_email,
            admin_password,
            admin_out,
            secrets: secrets.into(),
            _dir: dir,
        }
    }

    /// A client of the server (a handle apart, so that the flow can keep secrets meanwhile).
    fn api(&self) -> Api {
        Api::new(self.server.api.addr)
    }

    /// A new value that must not be logged.
    fn secret(&mut self, label: &str) -> String {
        let value = marker(label);
        self.keep(label, &value);
        value
    }

    fn keep(&mut self, label: &str, secret: &str) {
        self.secrets.push((label.to_owned(), secret.to_owned()));
    }

    /// Keeps the account's tokens, and each one's signature alone, which would do as well.
    fn keep_tokens(&mut self, label: &str, account: Account) -> Account {
        for token in [&account.access, &account.refresh] {
            self.keep(label, token);
            if let Some((_, signature)) = token.rsplit_once('.') {
                self.keep(label, signature);
            }
        }
        account
    }

    /// A new account of `role` whose password is a secret.
    async fn register(&mut self, role: &str) -> Account {
        let password = self.secret(&format!("{role} password"));
        let data = self
            .api()
            .ok(REGISTER, registration(&password, role), None)
            .await;
        self.keep_tokens(role, account(&data["register"]))
    }

    /// The admin made by `create-admin`, signed in.
    async fn admin(&mut self) -> Account {
        let login = self
            .api()
            .login(&self.admin_email, &self.admin_password)
            .await;
        self.keep_tokens("admin", account(&login["data"]["login"]))
    }

    /// A doctor whose licence (its bytes a secret) the admin approved: the account and doctor id.
    async fn approved_doctor(&mut self) -> (Account, String) {
        let doctor = self.register("DOCTOR").await;
        let licence = pdf(&self.secret("licence bytes"));
        let api = self.api();
        let submitted = api
            .submit_profile(&doctor.access, profile_input("LOG-1"), licence)
            .await;
        let doctor_id = submitted["data"]["submitDoctorProfile"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{submitted}"))
            .to_owned();
        let admin = self.admin().await;
        api.ok(
            "mutation($id: ID!) { approveDoctor(id: $id) { verificationStatus } }",
            json!({ "id": doctor_id }),
            Some(&admin.access),
        )
        .await;
        (doctor, doctor_id)
    }

    /// Stops the server, checks that no secret, in any form, is in any line of it or of
    /// `create-admin`, and returns the server's lines.
    fn stop(self) -> Vec<Value> {
        let (mut scanned, logs) = self.server.stop();
        scanned.extend(read_lines(&self.admin_out));
        for (label, secret) in &self.secrets {
            for form in encodings(secret) {
                if let Some(line) = scanned.iter().find(|l| l.contains(&form)) {
                    panic!("the {label} is in a log line (as {form}): {line}");
                }
            }
        }
        logs
    }
}

fn registration(password: &str, role: &str) -> Value {
    json!({ "input": { "email": unique_email(role), "password": password, "name": "Log Test", "role": role } })
}

/// A socket whose upgrade request has a known id, past `connection_init`; and that id.
async fn socket_with_id(api: &Api, who: &str, token: &str) -> (WsClient, String) {
    let id = marker(who);
    let mut socket = api.ws_raw_with_id(Some(&id)).await;
    socket.init(token).await;
    (socket, id)
}

/// The first line saying `text` logged in connection `id` signed in as `user`.
fn line<'a>(logs: &'a [Value], text: &str, id: &str, user: &str) -> &'a Value {
    logs.iter()
        .find(|l| message(l) == text && in_span(l, id, Some(user)))
        .unwrap_or_else(|| panic!("no `{text}` line in connection {id} of {user}"))
}

#[tokio::test]
async fn accounts_log_their_request_and_user_but_no_password_or_token() {
    let mut flow = Flow::start().await;
    let api = flow.api();
    let password = flow.secret("patient password");
    let register_id = marker("req-register");
    let registered = registration(&password, "PATIENT");
    let registered = graphql_with_id(&api, &register_id, REGISTER, registered, None).await;
    let patient = flow.keep_tokens("patient", account(&registered["register"]));
    let wrong_password = flow.secret("wrong password");
    let failed = api.login(&patient.email, &wrong_password).await;
    assert_eq!(error_code(&failed), Some("UNAUTHENTICATED"), "{failed}");
    let login = api.login(&patient.email, &password).await;
    let logged_in = flow.keep_tokens("patient (login)", account(&login["data"]["login"]));
    let refreshed = api
        .ok(REFRESH, json!({ "token": logged_in.refresh }), None)
        .await;
    let refreshed = flow.keep_tokens("patient (refreshed)", account(&refreshed["refreshToken"]));
    let me_id = marker("req-me");
    let me = graphql_with_id(
        &api,
        &me_id,
        "{ me { id } }",
        json!({}),
        Some(&refreshed.access),
    );
    assert_eq!(me.await["me"]["id"], patient.id.as_str());
    flow.admin().await;

    let logs = flow.stop();
    // Every crate really was at debug.
    let targets: Vec<&str> = logs.iter().filter_map(|l| l["target"].as_str()).collect();
    for target in ["sqlx::query", "tower_http::trace::on_response"] {
        assert!(targets.contains(&target), "no line from {target}");
    }
    // HTTP lines carry their request id, and the user once the request is signed in.
    assert!(logs.iter().any(|l| in_span(l, &register_id, None)));
    assert!(
        logs.iter().any(|l| in_span(l, &me_id, Some(&patient.id))
            && l["target"] == "tower_http::trace::on_response"),
        "the response line of `me` has its request id and user"
    );
}

#[tokio::test]
async fn a_licence_payouts_and_turn_credentials_log_no_secret() {
    let mut flow = Flow::start().await;
    let api = flow.api();
    let (doctor, _) = flow.approved_doctor().await;
    api.ok(
        "mutation($i: PayoutOnboardingInput!) { createPayoutOnboardingLink(input: $i) }",
        json!({ "i": { "returnUrl": format!("{ORIGIN}/done"), "refreshUrl": format!("{ORIGIN}/again") } }),
        Some(&doctor.access),
    )
    .await;
    let stripe_account = flow.stripe.requests("/v1/account_links")[0]
        .field("account")
        .unwrap()
        .to_owned();
    let body = event(
        &format!("evt_{}", Uuid::new_v4().simple()),
        "account.updated",
        json!({ "id": stripe_account, "object": "account", "charges_enabled": true, "payouts_enabled": true }),
    )
    .to_string();
    let signature =
        stripe_webhook::Webhook::generate_test_header(&body, &flow.webhook_secret, None);
    let delivered = api
        .client
        .post(api.url("/webhooks/stripe"))
        .header("stripe-signature", &signature)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(delivered.status(), 200);
    // TURN credentials minted from the secret.
    let ice = api
        .ok(
            "{ iceServers { urls username credential } }",
            json!({}),
            Some(&doctor.access),
        )
        .await;
    let turn_credential = ice["iceServers"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|s| s["credential"].as_str())
        .expect("a minted TURN credential");
    flow.keep("TURN credential", turn_credential);

    let logs = flow.stop();
    let webhook = logs
        .iter()
        .find(|l| message(l) == "webhook handled")
        .expect("a webhook handled line");
    assert_eq!(webhook["fields"]["kind"], "account.updated");
}

/// Socket lines carry the upgrade request's id and the user, also for GraphQL operations run
/// over the socket (their database queries) and the calls they cause.
#[tokio::test]
async fn a_call_logs_its_connections_and_users_but_no_sdp_or_candidate() {
    let mut flow = Flow::start().await;
    let api = flow.api();
    let (doctor, doctor_id) = flow.approved_doctor().await;
    let patient = flow.register("PATIENT").await;
    let (mut doctor_ws, doctor_ws_id) = socket_with_id(&api, "ws-doctor", &doctor.access).await;
    let (mut patient_ws, patient_ws_id) = socket_with_id(&api, "ws-patient", &patient.access).await;
    doctor_ws.go_online().await;
    for socket in [&mut doctor_ws, &mut patient_ws] {
        socket.subscribe("events", CALL_EVENTS, json!({})).await;
        socket.sync().await;
    }
    let call_id = start_call(&mut patient_ws, &mut doctor_ws, &doctor_id).await;
    accept_call(&mut doctor_ws, &mut patient_ws, &call_id).await;
    listen_for_signals(&mut doctor_ws, &mut patient_ws, SIGNALS, &call_id).await;

    let sdp = |m: &str| format!("v=0\r\no=- {m} 2 IN IP4 127.0.0.1\r\ns=-\r\n");
    let offer = sdp(&flow.secret("offer SDP"));
    let input = json!({ "callId": call_id, "kind": "OFFER", "sdp": offer });
    let received = relay(&mut patient_ws, &mut doctor_ws, input).await;
    assert_eq!(received["sdp"], offer.as_str());
    let answer = sdp(&flow.secret("answer SDP"));
    let input = json!({ "callId": call_id, "kind": "ANSWER", "sdp": answer });
    let received = relay(&mut doctor_ws, &mut patient_ws, input).await;
    assert_eq!(received["sdp"], answer.as_str());
    let candidate = |m: &str| json!({ "callId": call_id, "kind": "ICE_CANDIDATE", "candidate": { "candidate": format!("candidate:{m} 1 udp 2122260223 192.0.2.1 54321 typ host"), "sdpMid": "0", "sdpMLineIndex": 0 } });
    let input = candidate(&flow.secret("ICE candidate"));
    relay(&mut patient_ws, &mut doctor_ws, input).await;
    let input = candidate(&flow.secret("ICE candidate"));
    relay(&mut doctor_ws, &mut patient_ws, input).await;
    let ended = patient_ws
        .execute(
            "end",
            "mutation($id: ID!) { endCall(callId: $id) { status } }",
            json!({ "id": call_id }),
        )
        .await;
    assert_eq!(ended["data"]["endCall"]["status"], "ENDED", "{ended}");
    doctor_ws.close_cleanly(1000).await;
    patient_ws.close_cleanly(1000).await;
    wait_for(&flow.server.stdout, "socket closed", 2).await;

    let logs = flow.stop();
    let targets: Vec<&str> = logs.iter().filter_map(|l| l["target"].as_str()).collect();
    assert!(targets.contains(&"medilink::calls::service"), "at debug");
    let opened = line(&logs, "socket opened", &doctor_ws_id, &doctor.id);
    assert_eq!(opened["fields"]["role"], "DOCTOR");
    line(&logs, "socket opened", &patient_ws_id, &patient.id);
    line(&logs, "call started", &patient_ws_id, &patient.id);
    line(&logs, "call answered", &doctor_ws_id, &doctor.id);
    let ended = line(&logs, "call ended", &patient_ws_id, &patient.id);
    assert_eq!(ended["fields"]["reason"], "HANGUP");
    line(&logs, "signal relayed", &doctor_ws_id, &doctor.id);
    assert!(
        logs.iter()
            .any(|l| l["target"] == "sqlx::query" && in_span(l, &patient_ws_id, Some(&patient.id))),
        "database queries of operations over the socket are in its span"
    );
    for (id, user) in [(&doctor_ws_id, &doctor.id), (&patient_ws_id, &patient.id)] {
        let closed = line(&logs, "socket closed", id, user);
        assert_eq!(closed["fields"]["closed_by"], "client", "{closed}");
        assert_eq!(closed["fields"]["code"], 1000, "{closed}");
        assert!(closed["fields"]["duration_ms"].is_u64(), "{closed}");
    }
}

/// A patient may message an admin directly: the line names the connection, not the body.
#[tokio::test]
async fn a_chat_message_logs_its_connection_and_user_but_not_its_body() {
    let mut flow = Flow::start().await;
    let api = flow.api();
    let admin = flow.admin().await;
    let patient = flow.register("PATIENT").await;
    let (mut patient_ws, patient_ws_id) = socket_with_id(&api, "ws-patient", &patient.access).await;
    let body = flow.secret("chat body");
    let sent = patient_ws
        .execute(
            "chat",
            "mutation($input: SendMessageInput!) { sendMessage(input: $input) { id } }",
            json!({ "input": { "channel": { "userId": admin.id }, "body": body } }),
        )
        .await;
    assert!(sent["data"]["sendMessage"]["id"].is_string(), "{sent}");
    patient_ws.close_cleanly(1000).await;
    wait_for(&flow.server.stdout, "socket closed", 1).await;

    let logs = flow.stop();
    line(&logs, "chat message sent", &patient_ws_id, &patient.id);
}

/// Request spans are on whatever the filter, so a warning says which request it came from
/// even when nothing below WARN is logged.
#[tokio::test]
async fn warnings_name_their_request_whatever_the_filter() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = fresh_database_url(&dir).await;
    let jwt_secret = marker("jwt-secret");
    let server = Server::start(
        dir.path(),
        &[
            // The start-up line has the address; nothing else below WARN.
            ("MEDILINK_LOG", "warn,medilink::app=info"),
            ("MEDILINK_DATABASE_URL", &database_url),
            ("MEDILINK_JWT_SECRET", &jwt_secret),
            ("MEDILINK_STRIPE_SECRET_KEY", "sk_test_unused"),
            ("MEDILINK_STRIPE_WEBHOOK_SECRET", "whsec_unused"),
            ("MEDILINK_PUBLIC_ORIGINS", ORIGIN),
        ],
    )
    .await;
    let request_id = marker("req-webhook");
    let refused = server
        .api
        .client
        .post(server.api.url("/webhooks/stripe"))
        .header("x-request-id", &request_id)
        .header("stripe-signature", "t=1,v1=forged")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let (_, logs) = server.stop();
    let warning = logs
        .iter()
        .find(|l| message(l) == "Stripe webhook refused")
        .expect("the refusal is logged");
    assert_eq!(warning["level"], "WARN");
    assert!(in_span(warning, &request_id, None), "{warning}");
    // Without MEDILINK_METRICS_BIND, /metrics is public, and start-up says so.
    let public_metrics = logs
        .iter()
        .find(|l| message(l).starts_with("/metrics is served on the public port"))
        .expect("the public /metrics is warned of");
    assert_eq!(public_metrics["level"], "WARN");
}
