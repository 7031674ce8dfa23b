//! The signaling relay under load, beside a bare WebSocket relay as the floor. Prints numbers;
//! asserts nothing. `cargo bench --bench relay`.
//!
//! Servers run as child processes (the `medilink` binary; the bare relay is this bench started
//! again with `RELAY_BARE_SERVER=PORT`), so their CPU time (`/proc/PID/stat`) and resident
//! memory (`/proc/PID/status`) are theirs alone; the load clients run in this process, on the
//! same cores. `RELAY_PAIRS` call pairs (default 1,000) each send `RELAY_RATE` ICE candidates a
//! second (default 5) both ways over graphql-transport-ws for `RELAY_SECONDS` (default 10); a
//! candidate carries its send time, so the receiver gets the one-way latency. Then `RELAY_IDLE`
//! (default 10,000) sockets are opened and signed in, beside as many bare connects, for the
//! server CPU a connection costs (first with tokens the server has not seen, then again), and
//! as many idle sockets with one subscription each measure memory per connection.
//! The loads run on one instance, then on two instances over Redis (`MEDILINK_TEST_REDIS_URL`, default
//! redis://127.0.0.1:6379; skipped if it does not answer), patients on one, doctors on the other.
//! `RELAY_WRAP` runs each MediLink server under a profiler, for example
//! `RELAY_WRAP="valgrind --tool=massif --pages-as-heap=yes" RELAY_PAIRS=2 RELAY_IDLE=2000`
//! (mimalloc maps its own pages, which plain massif does not see); such servers are stopped
//! with SIGTERM, so that the profiler writes its output.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::{self, SplitSink};
use futures_util::{SinkExt, StreamExt};
use medilink::auth::Role;
use medilink::auth::tokens::TokenKeys;
use medilink::config::Config;
use medilink::db::Pool;
use serde_json::{Value, json};
use sqlx::QueryBuilder;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

const SECRET: &str = "relay-bench-secret-relay-bench-secret-0123456789";
const SEND_SIGNAL: &str = "mutation($input: SendSignalInput!) { sendSignal(input: $input) }";
const SIGNALS: &str = "subscription($c: ID!) { signals(callId: $c) { candidate { candidate } } }";
/// How many sockets set up at once.
const SETUP_CONCURRENCY: usize = 64;

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if let Ok(port) = std::env::var("RELAY_BARE_SERVER") {
        let port: u16 = port.parse().expect("RELAY_BARE_SERVER is a port");
        tokio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(bare_server(port));
        return;
    }
    raise_open_files();
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(bench());
}

async fn bench() {
    let pairs = setting("RELAY_PAIRS", 1_000);
    let rate = setting("RELAY_RATE", 5);
    let seconds = setting("RELAY_SECONDS", 10);
    let idle = setting("RELAY_IDLE", 10_000);
    println!(
        "{pairs} call pairs, {rate} signals/s from each side, {seconds} s; {idle} idle sockets"
    );

    // The loads run first: opening and dropping 10,000 sockets leaves the kernel and the
    // allocator busy for a while, which showed in the next load's tail latency.
    let bare = Process::bare();
    let floor = run_bare(&bare, pairs, rate, seconds).await;
    floor.print("bare tokio-tungstenite relay");
    drop(bare);

    let one_database = Database::seed(pairs, idle).await;
    let server = Process::medilink(&one_database, None);
    let one = run_medilink(&one_database, &[&server], pairs, rate, seconds).await;
    one.print("MediLink, one instance");
    one.compare(&floor);
    drop(server);

    let redis = redis_url();
    let redis_pid = redis_pid(&redis).await;
    let prefix = format!("relay-bench-{}", Uuid::new_v4().simple());
    let two_database = match redis_pid {
        Some(redis_pid) => {
            let database = Database::seed(pairs, idle).await;
            let a = Process::medilink(&database, Some((&redis, &prefix)));
            let b = Process::medilink(&database, Some((&redis, &prefix)));
            let redis_before = cpu_seconds(redis_pid);
            let two = run_medilink(&database, &[&a, &b], pairs, rate, seconds).await;
            let redis_cpu = cpu_seconds(redis_pid) - redis_before;
            two.print("MediLink, two instances over Redis (both servers' CPU)");
            two.compare(&floor);
            println!(
                "  Redis server CPU during the run: {:.1} µs per delivered signal",
                redis_cpu * 1e6 / two.delivered as f64
            );
            Some(database)
        }
        None => {
            println!("no Redis at {redis}: two-instance runs skipped");
            None
        }
    };

    // RELAY_IDLE=0 skips the connection and memory measurements (for profiling the relay
    // alone).
    if idle == 0 {
        return;
    }
    let bare = Process::bare();
    let bare_connects = connects_bare(&bare, idle).await;
    drop(bare);
    println!(
        "bare relay: {:.1} µs server CPU per connection opened ({idle} connections)",
        bare_connects * 1e6 / idle as f64
    );
    let server = Process::medilink(&one_database, None);
    let (first, again) = connects_medilink(&one_database, &server, idle).await;
    drop(server);
    for (what, cpu) in [("first sign-in", first), ("known token", again)] {
        println!(
            "MediLink, one instance, {what}: {:.1} µs server CPU per connection opened and signed in ({:.2}x the bare relay)",
            cpu * 1e6 / idle as f64,
            cpu / bare_connects,
        );
    }

    let bare = Process::bare();
    let bare_idle = idle_bare(&bare, idle).await;
    println!("bare relay: {bare_idle:.1} KiB resident per idle connection");
    drop(bare);
    let server = Process::medilink(&one_database, None);
    let one_idle = idle_medilink(&one_database, &server, idle).await;
    println!(
        "MediLink, one instance: {one_idle:.1} KiB resident per idle connection with one subscription ({:.1}x the bare relay)",
        one_idle / bare_idle
    );
    drop(server);
    if let Some(database) = two_database {
        let a = Process::medilink(&database, Some((&redis, &prefix)));
        let two_idle = idle_medilink(&database, &a, idle).await;
        println!(
            "MediLink over Redis: {two_idle:.1} KiB resident per idle connection with one subscription"
        );
    }
}

fn redis_url() -> String {
    std::env::var("MEDILINK_TEST_REDIS_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into())
}

async fn redis_pid(url: &str) -> Option<u32> {
    let client = redis::Client::open(url).ok()?;
    let mut connection = client.get_multiplexed_async_connection().await.ok()?;
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut connection)
        .await
        .ok()?;
    info.lines()
        .find_map(|line| line.strip_prefix("process_id:"))
        .and_then(|pid| pid.trim().parse().ok())
}

fn raise_open_files() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// A server in a child process, stopped when dropped.
struct Process {
    child: Child,
    addr: SocketAddr,
    /// Runs under `RELAY_WRAP`.
    wrapped: bool,
}

impl Drop for Process {
    fn drop(&mut self) {
        match i32::try_from(self.child.id()) {
            // SAFETY: kill(2) only sends a signal, to our own child.
            Ok(pid) if self.wrapped => unsafe {
                libc::kill(pid, libc::SIGTERM);
            },
            _ => {
                let _ = self.child.kill();
            }
        }
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Process {
    fn start(mut command: Command, addr: SocketAddr, wrapped: bool) -> Self {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("server starts");
        let process = Self {
            child,
            addr,
            wrapped,
        };
        for _ in 0..600 {
            if std::net::TcpStream::connect(addr).is_ok() {
                return process;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the server at {addr} did not start");
    }

    fn bare() -> Self {
        let port = free_port();
        let mut command = Command::new(std::env::current_exe().expect("this bench"));
        command.env("RELAY_BARE_SERVER", port.to_string());
        Self::start(command, SocketAddr::from(([127, 0, 0, 1], port)), false)
    }

    fn medilink(database: &Database, redis: Option<(&str, &str)>) -> Self {
        let port = free_port();
        let wrap = std::env::var("RELAY_WRAP").unwrap_or_default();
        let mut words = wrap
            .split_whitespace()
            .chain([env!("CARGO_BIN_EXE_medilink")]);
        let mut command = Command::new(words.next().expect("a program"));
        command.args(words);
        command
            .arg("serve")
            .env("MEDILINK_DATABASE_URL", &database.url)
            .env("MEDILINK_BIND", format!("127.0.0.1:{port}"))
            .env("MEDILINK_JWT_SECRET", SECRET)
            .env("MEDILINK_LOG", "warn")
            .env("MEDILINK_RING_TIMEOUT_SECS", "3600")
            .env("MEDILINK_WS_PING_INTERVAL_SECS", "3600")
            // Every load client connects from 127.0.0.1.
            .env("MEDILINK_LIMIT_WS_CONNECTS_PER_IP", "1000000/s")
            .env("MEDILINK_WS_MAX_CONNECTIONS_PER_IP", "1000000");
        if let Some((url, prefix)) = redis {
            command
                .env("MEDILINK_REDIS_URL", url)
                .env("MEDILINK_REDIS_PREFIX", prefix);
        }
        let wrapped = !wrap.is_empty();
        Self::start(command, SocketAddr::from(([127, 0, 0, 1], port)), wrapped)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// User and system CPU seconds of a process so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc stat");
    let fields: Vec<&str> = stat[stat.rfind(')').expect("comm") + 2..]
        .split_whitespace()
        .collect();
    // Fields 14 and 15 of stat (utime, stime), counted after the command name.
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    // SAFETY: sysconf reads a constant of the system.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks as f64 / per_second
}

fn resident_kib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// A fresh SQLite database with approved doctors, their patients, and idle users, and an
/// access token for each.
struct Database {
    url: String,
    _dir: tempfile::TempDir,
    doctors: Vec<(Uuid, String)>,
    patients: Vec<String>,
    idle: Vec<String>,
}

impl Database {
    async fn seed(pairs: usize, idle: usize) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("relay.db").display());
        let config = Config {
            database_url: url.clone(),
            ..Config::default()
        };
        let db = medilink::open_database(&config).await.expect("database");
        let Pool::Sqlite(pool) = db.pool() else {
            unreachable!("the bench seeds SQLite")
        };
        let keys = TokenKeys::new(SECRET.as_bytes(), Duration::from_secs(3600));
        let now = medilink::db::now();
        let mut users = Vec::new();
        let doctors: Vec<(Uuid, Uuid)> = (0..pairs)
            .map(|_| (Uuid::now_v7(), Uuid::now_v7()))
            .collect();
        users.extend(doctors.iter().map(|(user, _)| (*user, "DOCTOR")));
        let patients: Vec<Uuid> = (0..pairs + idle).map(|_| Uuid::now_v7()).collect();
        users.extend(patients.iter().map(|user| (*user, "PATIENT")));
        for chunk in users.chunks(1000) {
            let mut insert = QueryBuilder::new(
                "INSERT INTO users (id, email, password_hash, name, role, created_at, updated_at) ",
            );
            insert.push_values(chunk, |mut row, (id, role)| {
                row.push_bind(*id)
                    .push_bind(format!("{id}@example.com"))
                    .push_bind("x")
                    .push_bind("Bench User")
                    .push_bind(*role)
                    .push_bind(now)
                    .push_bind(now);
            });
            insert.build().execute(pool).await.expect("users");
        }
        for chunk in doctors.chunks(1000) {
            let mut insert = QueryBuilder::new(
                "INSERT INTO doctors (id, user_id, specialization, specialization_key, qualifications, \
                 experience_years, fee_amount, fee_currency, languages, licence_number, bio, \
                 verification_status, submitted_at, approved_at, created_at, updated_at) ",
            );
            insert.push_values(chunk, |mut row, (user, doctor)| {
                row.push_bind(*doctor)
                    .push_bind(*user)
                    .push_bind("General Practice")
                    .push_bind("general practice")
                    .push_bind("[\"MD\"]")
                    .push_bind(5_i64)
                    .push_bind(1000_i64)
                    .push_bind("USD")
                    .push_bind("[\"English\"]")
                    .push_bind(format!("RELAY-{doctor}"))
                    .push_bind("A doctor generated for the benchmark.")
                    .push_bind("APPROVED")
                    .push_bind(now)
                    .push_bind(now)
                    .push_bind(now)
                    .push_bind(now);
            });
            insert.build().execute(pool).await.expect("doctors");
        }
        db.close().await;
        let token = |id: Uuid, role: Role| keys.issue_access(id, role, 0).expect("token");
        let mut patient_tokens: Vec<String> = patients
            .iter()
            .map(|id| token(*id, Role::Patient))
            .collect();
        let idle_tokens = patient_tokens.split_off(pairs);
        Self {
            url,
            _dir: dir,
            doctors: doctors
                .iter()
                .map(|(user, doctor)| (*doctor, token(*user, Role::Doctor)))
                .collect(),
            patients: patient_tokens,
            idle: idle_tokens,
        }
    }
}

fn client_config() -> WebSocketConfig {
    // Small client buffers: ten thousand sockets in this process must fit beside the servers.
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

async fn connect(addr: SocketAddr, subprotocol: bool) -> Socket {
    let mut request = format!("ws://{addr}/graphql/ws")
        .into_client_request()
        .expect("request");
    if subprotocol {
        request.headers_mut().insert(
            "sec-websocket-protocol",
            "graphql-transport-ws".parse().expect("header"),
        );
    }
    let (socket, _) =
        tokio_tungstenite::connect_async_with_config(request, Some(client_config()), true)
            .await
            .expect("connects");
    socket
}

async fn send_json(socket: &mut Socket, message: Value) {
    socket
        .send(Message::Text(message.to_string().into()))
        .await
        .expect("sent");
}

/// A graphql-transport-ws socket past `connection_ack`.
async fn graphql_socket(addr: SocketAddr, token: &str) -> Socket {
    let mut socket = connect(addr, true).await;
    send_json(
        &mut socket,
        json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {token}") } }),
    )
    .await;
    let ack = next_json(&mut socket).await;
    assert_eq!(ack["type"], "connection_ack", "{ack}");
    socket
}

async fn next_json(socket: &mut Socket) -> Value {
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) => {
                return serde_json::from_str(text.as_str()).expect("JSON");
            }
            Some(Ok(_)) => continue,
            other => panic!("socket ended: {other:?}"),
        }
    }
}

/// Runs a query or mutation and returns its `data`.
async fn execute(socket: &mut Socket, id: &str, query: &str, variables: Value) -> Value {
    send_json(
        socket,
        json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables } }),
    )
    .await;
    loop {
        let message = next_json(socket).await;
        if message["id"] == id && message["type"] == "next" {
            assert!(message["payload"].get("errors").is_none(), "{message}");
            return message["payload"]["data"].clone();
        }
        assert_ne!(message["type"], "error", "{message}");
    }
}

/// A patient's and a doctor's socket in an active call, both subscribed to its signals.
async fn call_pair(
    patient_server: SocketAddr,
    doctor_server: SocketAddr,
    patient: &str,
    (doctor_id, doctor): &(Uuid, String),
) -> (Socket, Socket, String) {
    let mut doctor_ws = graphql_socket(doctor_server, doctor).await;
    execute(
        &mut doctor_ws,
        "on",
        "mutation { setDoctorStatus(status: ONLINE) }",
        json!({}),
    )
    .await;
    let mut patient_ws = graphql_socket(patient_server, patient).await;
    let call = execute(
        &mut patient_ws,
        "call",
        "mutation($d: ID!) { startCall(input: { doctorId: $d }) { id } }",
        json!({ "d": doctor_id }),
    )
    .await;
    let call_id = call["startCall"]["id"].as_str().expect("call").to_owned();
    execute(
        &mut doctor_ws,
        "answer",
        "mutation($c: ID!) { answerCall(callId: $c, accept: true) { id } }",
        json!({ "c": call_id }),
    )
    .await;
    for socket in [&mut doctor_ws, &mut patient_ws] {
        send_json(
            socket,
            json!({ "id": "sig", "type": "subscribe", "payload": { "query": SIGNALS, "variables": { "c": call_id } } }),
        )
        .await;
        execute(socket, "sync", "{ __typename }", json!({})).await;
    }
    (patient_ws, doctor_ws, call_id)
}

/// What one load run measured.
struct Run {
    latencies_us: Vec<u64>,
    delivered: usize,
    seconds: f64,
    cpu_seconds: f64,
}

impl Run {
    fn percentile(&self, p: f64) -> u64 {
        self.latencies_us[((self.latencies_us.len() - 1) as f64 * p) as usize]
    }

    fn cpu_per_signal_us(&self) -> f64 {
        self.cpu_seconds * 1e6 / self.delivered as f64
    }

    fn print(&self, name: &str) {
        println!(
            "{name}: one-way p50 {} µs, p99 {} µs; {:.0} signals/s delivered; server CPU {:.1} µs per delivered signal ({:.2} cores)",
            self.percentile(0.5),
            self.percentile(0.99),
            self.delivered as f64 / self.seconds,
            self.cpu_per_signal_us(),
            self.cpu_seconds / self.seconds,
        );
    }

    fn compare(&self, floor: &Run) {
        println!(
            "  ratio to the bare relay: CPU per signal {:.2}x, p50 {:.2}x, p99 {:.2}x",
            self.cpu_per_signal_us() / floor.cpu_per_signal_us(),
            self.percentile(0.5) as f64 / floor.percentile(0.5) as f64,
            self.percentile(0.99) as f64 / floor.percentile(0.99) as f64,
        );
    }
}

/// The send time (µs since `base`) carried in a candidate: the digits after the last
/// `"candidate":"`.
fn carried_time(text: &str) -> Option<u64> {
    let start = text.rfind("\"candidate\":\"")? + "\"candidate\":\"".len();
    let digits: &str = &text[start..];
    let end = digits.find('"')?;
    digits[..end].parse().ok()
}

/// The message a socket sends per signal; `{T}` is replaced by the send time.
fn signal_message(call_id: &str) -> String {
    json!({ "id": "m", "type": "subscribe", "payload": { "query": SEND_SIGNAL, "variables": { "input": { "callId": call_id, "kind": "ICE_CANDIDATE", "candidate": { "candidate": "{T}" } } } } })
        .to_string()
}

/// Every socket sends `rate` messages a second (spread over the second) for `seconds`, and
/// records the latency of what it receives; `relevant` picks received messages that are
/// signals. Server CPU is measured over the run on `pids`.
async fn load(
    sockets: Vec<(Socket, String)>,
    rate: usize,
    seconds: usize,
    pids: &[u32],
    relevant: fn(&str) -> bool,
) -> Run {
    let base = Instant::now();
    let count = sockets.len();
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let duration = Duration::from_secs(seconds as u64);
    let cpu_before: f64 = pids.iter().map(|pid| cpu_seconds(*pid)).sum();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, (socket, message)) in sockets.into_iter().enumerate() {
        let latencies = latencies.clone();
        tasks.push(tokio::spawn(async move {
            let (mut write, mut read) = socket.split();
            let period = Duration::from_secs(1) / rate as u32;
            let offset = period * (i as u32) / count as u32;
            let sender = async move {
                let mut tick =
                    tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
                while started.elapsed() < duration {
                    tick.tick().await;
                    let now = base.elapsed().as_micros().to_string();
                    send_text(&mut write, message.replace("{T}", &now)).await;
                }
                write
            };
            let receiver = async move {
                let mut mine = Vec::new();
                let drain_until = duration + Duration::from_secs(2);
                while let Ok(Some(Ok(frame))) =
                    tokio::time::timeout(drain_until.saturating_sub(started.elapsed()), read.next())
                        .await
                {
                    if let Message::Text(text) = frame
                        && relevant(text.as_str())
                        && let Some(sent) = carried_time(text.as_str())
                    {
                        mine.push(base.elapsed().as_micros() as u64 - sent);
                    }
                }
                mine
            };
            let (_, mine) = tokio::join!(sender, receiver);
            latencies.lock().expect("latencies").extend(mine);
        }));
    }
    for task in tasks {
        task.await.expect("socket task");
    }
    let cpu_after: f64 = pids.iter().map(|pid| cpu_seconds(*pid)).sum();
    let mut latencies_us = std::mem::take(&mut *latencies.lock().expect("latencies"));
    latencies_us.sort_unstable();
    Run {
        delivered: latencies_us.len(),
        latencies_us,
        seconds: duration.as_secs_f64(),
        cpu_seconds: cpu_after - cpu_before,
    }
}

async fn send_text(write: &mut SplitSink<Socket, Message>, text: String) {
    let _ = write.send(Message::Text(text.into())).await;
}

async fn run_medilink(
    database: &Database,
    servers: &[&Process],
    pairs: usize,
    rate: usize,
    seconds: usize,
) -> Run {
    let patient_server = servers[0].addr;
    let doctor_server = servers[servers.len() - 1].addr;
    let set_up = Instant::now();
    let calls: Vec<(Socket, Socket, String)> = stream::iter(0..pairs)
        .map(|i| {
            call_pair(
                patient_server,
                doctor_server,
                &database.patients[i],
                &database.doctors[i],
            )
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .collect()
        .await;
    println!("  ({pairs} calls set up in {:.1?})", set_up.elapsed());
    let sockets = calls
        .into_iter()
        .flat_map(|(patient, doctor, call_id)| {
            let message = signal_message(&call_id);
            [(patient, message.clone()), (doctor, message)]
        })
        .collect();
    let pids: Vec<u32> = servers.iter().map(|s| s.pid()).collect();
    load(sockets, rate, seconds, &pids, |text| {
        text.contains("\"id\":\"sig\"")
    })
    .await
}

async fn run_bare(server: &Process, pairs: usize, rate: usize, seconds: usize) -> Run {
    let mut sockets = Vec::new();
    for pair in 0..pairs {
        for side in 0..2 {
            let mut socket = connect(server.addr, false).await;
            let (me, peer) = (pair * 2 + side, pair * 2 + 1 - side);
            socket
                .send(Message::Text(format!("{me} {peer}").into()))
                .await
                .expect("hello");
            sockets.push((socket, signal_message(&Uuid::now_v7().to_string())));
        }
    }
    load(sockets, rate, seconds, &[server.pid()], |_| true).await
}

/// Server CPU seconds spent opening `count` sockets with `open`, `SETUP_CONCURRENCY` at a
/// time; they are closed afterwards, outside the measurement.
async fn connect_cpu<F, Fut>(pid: u32, count: usize, open: F) -> f64
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Socket>,
{
    let before = cpu_seconds(pid);
    let sockets = open_all(0..count, open).await;
    let cpu = cpu_seconds(pid) - before;
    drop(sockets);
    tokio::time::sleep(Duration::from_secs(1)).await;
    cpu
}

async fn connects_bare(server: &Process, count: usize) -> f64 {
    let addr = server.addr;
    connect_cpu(server.pid(), count, |i| bare_socket(addr, i)).await
}

/// Server CPU for `count` sockets through `connection_ack`, each of another user: on a fresh
/// server (each token read from the database), then again (tokens the server knows).
async fn connects_medilink(database: &Database, server: &Process, count: usize) -> (f64, f64) {
    let addr = server.addr;
    let open = |i: usize| {
        let token = database.idle[i % database.idle.len()].clone();
        async move { graphql_socket(addr, &token).await }
    };
    let first = connect_cpu(server.pid(), count, open).await;
    let again = connect_cpu(server.pid(), count, open).await;
    (first, again)
}

/// A socket to the bare relay, registered as number `i` (and its own peer).
async fn bare_socket(addr: SocketAddr, i: usize) -> Socket {
    let mut socket = connect(addr, false).await;
    socket
        .send(Message::Text(format!("{i} {i}").into()))
        .await
        .expect("hello");
    socket
}

/// The sockets `open` makes for each of `numbers`, `SETUP_CONCURRENCY` at a time.
async fn open_all<F, Fut>(numbers: impl Iterator<Item = usize>, open: F) -> Vec<Socket>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Socket>,
{
    stream::iter(numbers)
        .map(open)
        .buffer_unordered(SETUP_CONCURRENCY)
        .collect()
        .await
}

/// Resident memory per socket added to a fresh server, in KiB.
async fn idle_growth<F, Fut>(pid: u32, idle: usize, open: F) -> f64
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Socket>,
{
    // One socket first, so that what every connection shares is already there.
    let warm = open(0).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = resident_kib(pid);
    let sockets = open_all(1..=idle, open).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = resident_kib(pid);
    drop((warm, sockets));
    (after - before) / idle as f64
}

async fn idle_medilink(database: &Database, server: &Process, idle: usize) -> f64 {
    let addr = server.addr;
    idle_growth(server.pid(), idle, |i| {
        let token = database.idle[i % database.idle.len()].clone();
        async move {
            let mut socket = graphql_socket(addr, &token).await;
            send_json(
                &mut socket,
                json!({ "id": "events", "type": "subscribe", "payload": { "query": "subscription { callEvents { kind } }" } }),
            )
            .await;
            execute(&mut socket, "sync", "{ __typename }", json!({})).await;
            socket
        }
    })
    .await
}

async fn idle_bare(server: &Process, idle: usize) -> f64 {
    let addr = server.addr;
    idle_growth(server.pid(), idle, |i| bare_socket(addr, i)).await
}

/// The floor: a WebSocket relay with no protocol, no auth and no GraphQL. A socket's first
/// message is "ME PEER"; every later text message goes to PEER as it is.
async fn bare_server(port: u16) {
    let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
    let peers: Arc<Mutex<HashMap<usize, mpsc::UnboundedSender<Message>>>> = Arc::default();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let peers = peers.clone();
        tokio::spawn(async move {
            // MediLink's buffer sizes, so that the floor differs from it in nothing else.
            let config = WebSocketConfig::default()
                .read_buffer_size(1024)
                .write_buffer_size(0);
            let Ok(mut socket) =
                tokio_tungstenite::accept_async_with_config(stream, Some(config)).await
            else {
                return;
            };
            let Some(Ok(Message::Text(hello))) = socket.next().await else {
                return;
            };
            let mut ids = hello
                .as_str()
                .split(' ')
                .filter_map(|n| n.parse::<usize>().ok());
            let (Some(me), Some(peer)) = (ids.next(), ids.next()) else {
                return;
            };
            let (sender, mut inbox) = mpsc::unbounded_channel();
            peers.lock().expect("peers").insert(me, sender);
            loop {
                tokio::select! {
                    message = socket.next() => match message {
                        Some(Ok(message @ Message::Text(_))) => {
                            if let Some(peer) = peers.lock().expect("peers").get(&peer) {
                                let _ = peer.send(message);
                            }
                        }
                        Some(Ok(_)) => {}
                        _ => break,
                    },
                    Some(message) = inbox.recv() => {
                        if socket.send(message).await.is_err() {
                            break;
                        }
                    }
                }
            }
            peers.lock().expect("peers").remove(&me);
        });
    }
}
