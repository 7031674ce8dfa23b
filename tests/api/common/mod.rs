//! Shared test harness: a real server on port 0 with a fresh database (a temporary SQLite file,
//! or a new PostgreSQL database when MEDILINK_TEST_DATABASE_URL is set).

pub mod gate;
pub mod smtp;
pub mod stripe;
pub mod tls;
pub mod ws;

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;

use tokio::sync::{Mutex, Notify};
use tokio::task::JoinHandle;

use medilink::Application;
use medilink::auth::password::Passwords;
use medilink::clock::Clock;
use medilink::config::{Config, Secret};
use medilink::db::{Db, Pool};
use medilink::limits::Rate;
use serde_json::{Value, json};
use sqlx::Connection;
use uuid::Uuid;

pub const PASSWORD: &str = "correct horse battery";

/// A server reached over the network only: the flows of the public API work against any
/// server, whether in this process or the real binary (tests/api/logs.rs).
pub struct Api {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
}

impl Api {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            client: reqwest::Client::new(),
        }
    }
}

/// A server in this process, with its database and clock at hand.
pub struct TestApp {
    pub api: Api,
    /// Where `/metrics` is served when `metrics_bind` is set.
    pub metrics_addr: Option<SocketAddr>,
    pub db: Db,
    /// The server's clock, to step through time-bound rules without waiting.
    pub clock: Clock,
    pub jwt_secret: String,
    /// What it was started with, to start more instances beside it.
    pub config: Config,
    /// Wakes `run_until`'s shutdown future, as SIGTERM does in the binary.
    stop: Arc<Notify>,
    serving: Arc<Mutex<Option<JoinHandle<std::io::Result<()>>>>>,
    _dir: Arc<tempfile::TempDir>,
}

pub struct Account {
    pub id: String,
    pub email: String,
    pub access: String,
    pub refresh: String,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let jwt_secret = format!("test-secret-{}", Uuid::new_v4());
    let mut config = Config {
        database_url: fresh_database_url(&dir).await,
        bind: "127.0.0.1:0".parse().expect("address"),
        jwt_secret: Some(Secret::new(jwt_secret.clone())),
        log: "warn".into(),
        ..Config::default()
    };
    unlimited_sign_ins(&mut config);
    configure(&mut config);
    start(
        config,
        jwt_secret,
        Arc::new(dir),
        &tokio::runtime::Handle::current(),
    )
    .await
}

/// Tests sign up, sign in and connect many times from 127.0.0.1: the per-address and
/// per-account limits are lifted (tests/api/limits.rs sets its own); signals and chat keep theirs.
fn unlimited_sign_ins(config: &mut Config) {
    let unlimited = Rate::new(1_000_000, 1);
    config.limit_login_per_ip = unlimited;
    config.limit_login_per_account = unlimited;
    config.login_free_failures = 1_000_000;
    config.limit_register_per_ip = unlimited;
    config.limit_refresh_per_ip = unlimited;
    config.limit_refresh_per_account = unlimited;
    config.limit_ws_connects_per_ip = unlimited;
    config.ws_max_connections_per_ip = 1_000_000;
}

/// Builds and serves an instance of `config` on `runtime`.
async fn start(
    config: Config,
    jwt_secret: String,
    dir: Arc<tempfile::TempDir>,
    runtime: &tokio::runtime::Handle,
) -> TestApp {
    let (started, built) = tokio::sync::oneshot::channel();
    let serving = config.clone();
    let stop = Arc::new(Notify::new());
    let stopped = stop.clone();
    let handle = runtime.spawn(async move {
        let app = Application::build(serving).await.expect("app builds");
        let state = app.state();
        let _ = started.send((
            app.local_addr(),
            app.metrics_addr(),
            state.db.clone(),
            state.clock.clone(),
        ));
        app.run_until(async move { stopped.notified().await }).await
    });
    let (addr, metrics_addr, db, clock) = built.await.expect("the instance started");
    TestApp {
        api: Api::new(addr),
        metrics_addr,
        db,
        clock,
        jwt_secret,
        config,
        stop,
        serving: Arc::new(Mutex::new(Some(handle))),
        _dir: dir,
    }
}

/// The Redis of the tests that need one: `MEDILINK_TEST_REDIS_URL`, or the local default.
pub fn test_redis_url() -> String {
    std::env::var("MEDILINK_TEST_REDIS_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into())
}

/// Two instances on one fresh database and one Redis, under a key and channel prefix of
/// their own so that tests running at once do not meet.
pub async fn spawn_instances(configure: impl Fn(&mut Config)) -> (TestApp, TestApp) {
    let prefix = format!("medilink-test-{}", Uuid::new_v4().simple());
    let first = spawn_app_with(|config| {
        config.redis_url = Some(test_redis_url());
        config.redis_prefix = prefix;
        configure(config);
    })
    .await;
    let second = first
        .another_instance(&tokio::runtime::Handle::current())
        .await;
    (first, second)
}

impl TestApp {
    /// Tells the instance to stop, as SIGTERM does, and returns at once.
    pub fn begin_shutdown(&self) {
        self.stop.notify_one();
    }

    /// Tells the instance to stop, as SIGTERM does, and waits until it has (its pool closed).
    pub async fn shutdown(&self) {
        self.begin_shutdown();
        let serving = self
            .serving
            .lock()
            .await
            .take()
            .expect("the instance is running");
        serving
            .await
            .expect("the instance did not panic")
            .expect("the instance stopped cleanly");
    }

    /// One more instance with this one's settings and database, served on `runtime`.
    pub async fn another_instance(&self, runtime: &tokio::runtime::Handle) -> TestApp {
        let mut config = self.config.clone();
        config.bind = "127.0.0.1:0".parse().expect("address");
        start(config, self.jwt_secret.clone(), self._dir.clone(), runtime).await
    }
}

/// The test database: PostgreSQL when `MEDILINK_TEST_DATABASE_URL` names a server (a new
/// database per call), otherwise a SQLite file in `dir`.
pub async fn fresh_database_url(dir: &tempfile::TempDir) -> String {
    match std::env::var("MEDILINK_TEST_DATABASE_URL") {
        Ok(base) if !base.is_empty() => {
            let name = format!("medilink_test_{}", Uuid::new_v4().simple());
            let mut conn = sqlx::PgConnection::connect(&base)
                .await
                .expect("connect to MEDILINK_TEST_DATABASE_URL");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .expect("create test database");
            conn.close().await.ok();
            let (server, query) = match base.split_once('?') {
                Some((server, query)) => (server, format!("?{query}")),
                None => (base.as_str(), String::new()),
            };
            let (server, _) = server.rsplit_once('/').expect("database URL has a path");
            format!("{server}/{name}{query}")
        }
        _ => format!("sqlite://{}", dir.path().join("test.db").display()),
    }
}

impl Deref for TestApp {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Api {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// POSTs a GraphQL request and returns the JSON body, whatever the status.
    pub async fn graphql(&self, query: &str, variables: Value, token: Option<&str>) -> Value {
        let mut request = self
            .client
            .post(self.url("/graphql"))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request sent");
        response.json().await.expect("JSON body")
    }

    /// Like `graphql`, but panics unless the request succeeded; returns `data`.
    pub async fn ok(&self, query: &str, variables: Value, token: Option<&str>) -> Value {
        let body = self.graphql(query, variables, token).await;
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    pub async fn register(&self, role: &str, email: &str) -> Account {
        let data = self
            .ok(
                REGISTER,
                json!({ "input": { "email": email, "password": PASSWORD, "name": "Test User", "role": role } }),
                None,
            )
            .await;
        account(&data["register"])
    }

    pub async fn register_patient(&self) -> Account {
        self.register("PATIENT", &unique_email("patient")).await
    }

    pub async fn register_doctor(&self) -> Account {
        self.register("DOCTOR", &unique_email("doctor")).await
    }

    pub async fn login(&self, email: &str, password: &str) -> Value {
        self.graphql(
            LOGIN,
            json!({ "input": { "email": email, "password": password } }),
            None,
        )
        .await
    }
}

impl TestApp {
    /// An admin made the way operators make them (`create-admin` calls the same function), then
    /// signed in over the API.
    pub async fn admin(&self) -> Account {
        let email = unique_email("admin");
        let passwords = Passwords::new().await.expect("passwords");
        medilink::users::service::create_admin(&self.db, &passwords, &email, PASSWORD, "Admin")
            .await
            .expect("admin created");
        let body = self.login(&email, PASSWORD).await;
        assert!(body.get("errors").is_none(), "admin login failed: {body}");
        account(&body["data"]["login"])
    }

    pub async fn count_rows(&self, table: &str) -> i64 {
        let sql = sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}"));
        match self.db.pool() {
            Pool::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
            Pool::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
        }
        .expect("count rows")
    }
}

pub const REGISTER: &str = "mutation($input: RegisterInput!) { register(input: $input) { \
    accessToken refreshToken user { id email role } } }";
pub const LOGIN: &str = "mutation($input: LoginInput!) { login(input: $input) { \
    accessToken refreshToken user { id email role } } }";

pub fn account(payload: &Value) -> Account {
    Account {
        id: payload["user"]["id"].as_str().expect("user id").to_owned(),
        email: payload["user"]["email"].as_str().expect("email").to_owned(),
        access: payload["accessToken"]
            .as_str()
            .expect("access token")
            .to_owned(),
        refresh: payload["refreshToken"]
            .as_str()
            .expect("refresh token")
            .to_owned(),
    }
}

pub fn unique_email(prefix: &str) -> String {
    format!("{prefix}-{}@example.com", Uuid::new_v4().simple())
}

/// Polls `check` until it returns something, for at most 30 s: for what changes in the
/// background with no event to wait for.
pub async fn eventually<T, F, R>(what: &str, check: F) -> T
where
    F: Fn() -> R,
    R: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within 30 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A `POST /graphql` of a `length`-byte body, sent without its body: once this returns, the
/// server's interim `100 Continue` has shown that its handler runs and waits for the body.
pub async fn request_in_flight(addr: SocketAddr, length: usize) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    let head = format!(
        "POST /graphql HTTP/1.1\r\nHost: medilink\r\nContent-Type: application/json\r\n\
         Content-Length: {length}\r\nExpect: 100-continue\r\n\r\n"
    );
    stream
        .write_all(head.as_bytes())
        .await
        .expect("headers sent");
    let mut read = Vec::new();
    let mut chunk = [0u8; 1024];
    while !read.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(std::time::Duration::from_secs(30), stream.read(&mut chunk))
            .await
            .expect("the server answers within 30 s")
            .expect("read");
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&read));
        read.extend_from_slice(&chunk[..n]);
    }
    let interim = String::from_utf8_lossy(&read);
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");
    stream
}

/// `extensions.code` of the first error, if any.
pub fn error_code(body: &Value) -> Option<&str> {
    body["errors"][0]["extensions"]["code"].as_str()
}

pub fn error_field(body: &Value) -> Option<&str> {
    body["errors"][0]["extensions"]["field"].as_str()
}

pub fn error_message(body: &Value) -> &str {
    body["errors"][0]["message"].as_str().unwrap_or_default()
}

/// A minimal valid PDF with `marker` in it, so different licences have different hashes.
pub fn pdf(marker: &str) -> Vec<u8> {
    format!("%PDF-1.4\n% {marker}\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")
        .into_bytes()
}

pub const SUBMIT: &str = "mutation($input: DoctorProfileInput!, $licence: Upload!) { \
    submitDoctorProfile(input: $input, licence: $licence) { id verificationStatus rejectionReason \
    licenceNumber licence { sizeBytes sha256 contentType url } } }";

pub fn profile_input(licence_number: &str) -> Value {
    json!({
        "specialization": "Cardiology",
        "qualifications": ["MD", "FACC"],
        "experienceYears": 12,
        "consultationFee": { "amount": 5000, "currency": "usd" },
        "languages": ["English", "Spanish"],
        "licenceNumber": licence_number,
        "bio": "Heart specialist with a calm bedside manner."
    })
}

impl Api {
    /// A GraphQL multipart request (the spec of jaydenseric/graphql-multipart-request-spec)
    /// with `file` bound to the variable `file_variable`; `None` sends no file part at all.
    pub async fn graphql_upload(
        &self,
        query: &str,
        mut variables: Value,
        file_variable: &str,
        file: Option<(Vec<u8>, &str, &str)>,
        token: Option<&str>,
    ) -> Value {
        variables[file_variable] = Value::Null;
        let operations = json!({ "query": query, "variables": variables });
        let mut form = reqwest::multipart::Form::new().text("operations", operations.to_string());
        match file {
            Some((bytes, name, mime)) => {
                let map = json!({ "0": [format!("variables.{file_variable}")] });
                let part = reqwest::multipart::Part::bytes(bytes)
                    .file_name(name.to_owned())
                    .mime_str(mime)
                    .expect("mime type");
                form = form.text("map", map.to_string()).part("0", part);
            }
            None => form = form.text("map", "{}"),
        }
        let mut request = self.client.post(self.url("/graphql")).multipart(form);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request
            .send()
            .await
            .expect("sent")
            .json()
            .await
            .expect("JSON body")
    }

    pub async fn submit_profile(&self, token: &str, input: Value, licence: Vec<u8>) -> Value {
        self.graphql_upload(
            SUBMIT,
            json!({ "input": input }),
            "licence",
            Some((licence, "licence.pdf", "application/pdf")),
            Some(token),
        )
        .await
    }

    /// A registered doctor whose profile `input` was submitted and approved by `admin`.
    /// Returns the account and the doctor id.
    pub async fn approved_doctor(
        &self,
        admin: &Account,
        name: &str,
        input: Value,
    ) -> (Account, String) {
        let data = self
            .ok(
                REGISTER,
                json!({ "input": { "email": unique_email("doctor"), "password": PASSWORD, "name": name, "role": "DOCTOR" } }),
                None,
            )
            .await;
        let doctor = account(&data["register"]);
        let submitted = self.submit_profile(&doctor.access, input, pdf(name)).await;
        assert!(submitted.get("errors").is_none(), "{submitted}");
        let id = submitted["data"]["submitDoctorProfile"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        self.ok(
            "mutation($id: ID!) { approveDoctor(id: $id) { verificationStatus } }",
            json!({ "id": id }),
            Some(&admin.access),
        )
        .await;
        (doctor, id)
    }

    /// Database calls the server has made so far, from `/metrics`.
    pub async fn db_calls(&self) -> u64 {
        self.metric("medilink_db_calls_total").await
    }

    /// The value of an unlabelled series on `/metrics`.
    pub async fn metric(&self, name: &str) -> u64 {
        let text = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} on /metrics"))
    }
}

impl TestApp {
    /// Sets `doctor`'s schedule: every day 00:00-23:59 UTC in 30-minute slots, bookable at once.
    pub async fn open_around_the_clock(&self, doctor: &Account, cancellation_notice_minutes: i32) {
        let weekly: Vec<Value> = [
            "MONDAY",
            "TUESDAY",
            "WEDNESDAY",
            "THURSDAY",
            "FRIDAY",
            "SATURDAY",
            "SUNDAY",
        ]
        .iter()
        .map(|d| json!({ "weekday": d, "start": "00:00", "end": "23:59" }))
        .collect();
        self.ok(
            "mutation($input: ScheduleInput!) { setSchedule(input: $input) { slotMinutes } }",
            json!({ "input": { "timeZone": "UTC", "slotMinutes": 30, "minNoticeMinutes": 0,
                "cancellationNoticeMinutes": cancellation_notice_minutes, "weekly": weekly } }),
            Some(&doctor.access),
        )
        .await;
    }

    /// An approved doctor open around the clock, and a patient with a confirmed appointment
    /// with them: (doctor, doctor id, patient, appointment id).
    pub async fn booked_pair(
        &self,
        admin: &Account,
        licence: &str,
    ) -> (Account, String, Account, String) {
        let (doctor, doctor_id) = self
            .approved_doctor(admin, &format!("Dr {licence}"), profile_input(licence))
            .await;
        self.open_around_the_clock(&doctor, 1440).await;
        let today = self.clock.now().date_naive();
        let slots = self
            .ok(
                "query($d: ID!, $f: Date!, $t: Date!) { availableSlots(doctorId: $d, from: $f, to: $t) { startsAt } }",
                json!({ "d": doctor_id, "f": today.to_string(), "t": (today + chrono::Duration::days(2)).to_string() }),
                None,
            )
            .await;
        let patient = self.register_patient().await;
        let booked = self
            .ok(
                "mutation($input: BookAppointmentInput!) { bookAppointment(input: $input) { id } }",
                json!({ "input": { "doctorId": doctor_id, "startsAt": slots["availableSlots"][0]["startsAt"] } }),
                Some(&patient.access),
            )
            .await;
        let appointment = booked["bookAppointment"]["id"]
            .as_str()
            .expect("booked")
            .to_owned();
        (doctor, doctor_id, patient, appointment)
    }
}

/// The `medilink` binary run in `dir` with none of the caller's `MEDILINK_*` settings (nor
/// `RUST_LOG`): each test says what it sets.
pub fn binary(dir: &std::path::Path) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_medilink"));
    command.current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("MEDILINK_") || key == "RUST_LOG" {
            command.env_remove(key);
        }
    }
    command
}

/// A loopback address with a port nobody listened on a moment ago, for a server started as
/// its own process.
pub fn free_local_addr() -> SocketAddr {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    SocketAddr::from(([127, 0, 0, 1], port))
}
