//! A graceful stop under load. Prints numbers; asserts nothing. `cargo bench --bench restart`.
//!
//! The `medilink` binary runs as a child process with `RESTART_SOCKETS` (default 5,000) open
//! WebSockets of one user, each with one subscription, and gets SIGTERM. The bench prints how
//! long until every socket had its close frame (and which codes), and until the process exited
//! (and its status). Runs alone, then over Redis (`MEDILINK_TEST_REDIS_URL`, default
//! redis://127.0.0.1:6379; skipped if it does not answer), where each closed socket is also
//! taken out of the shared presence.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt, stream};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

const SECRET: &str = "restart-bench-secret-restart-bench-secret-0123456789";
/// How many sockets are set up at once.
const SETUP_CONCURRENCY: usize = 64;

fn main() {
    raise_open_files();
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(bench());
}

async fn bench() {
    let sockets = std::env::var("RESTART_SOCKETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    println!("graceful stop (SIGTERM) with {sockets} open sockets, one subscription each");
    run("alone", None, sockets).await;
    let url = std::env::var("MEDILINK_TEST_REDIS_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    let answers = match redis::Client::open(url.as_str()) {
        Ok(client) => client.get_multiplexed_async_connection().await.is_ok(),
        Err(_) => false,
    };
    if answers {
        run("with Redis", Some(&url), sockets).await;
    } else {
        println!("with Redis: skipped, nothing answers at {url}");
    }
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

async fn run(name: &str, redis: Option<&str>, sockets: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut command = Command::new(env!("CARGO_BIN_EXE_medilink"));
    command
        .arg("serve")
        .env(
            "MEDILINK_DATABASE_URL",
            format!("sqlite://{}", dir.path().join("bench.db").display()),
        )
        .env("MEDILINK_BIND", addr.to_string())
        .env("MEDILINK_JWT_SECRET", SECRET)
        .env("MEDILINK_LOG", "warn")
        .env("MEDILINK_WS_PING_INTERVAL_SECS", "3600")
        // Every socket comes from 127.0.0.1.
        .env("MEDILINK_LIMIT_WS_CONNECTS_PER_IP", "1000000/min")
        .env("MEDILINK_WS_MAX_CONNECTIONS_PER_IP", "1000000")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    if let Some(url) = redis {
        command.env("MEDILINK_REDIS_URL", url).env(
            "MEDILINK_REDIS_PREFIX",
            format!("medilink-bench-{}", std::process::id()),
        );
    }
    let mut child = command.spawn().expect("server starts");
    while std::net::TcpStream::connect(addr).is_err() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let token = register(addr).await;
    let open: Vec<Socket> = stream::iter(0..sockets)
        .map(|_| subscribed(addr, &token))
        .buffer_unordered(SETUP_CONCURRENCY)
        .collect()
        .await;
    let waiting: Vec<_> = open
        .into_iter()
        .map(|socket| tokio::spawn(close_of(socket)))
        .collect();

    let signalled = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success(), "SIGTERM sent");
    let mut codes = BTreeMap::new();
    let mut closed_after = Vec::with_capacity(sockets);
    for waiting in waiting {
        let (code, at) = waiting.await.expect("socket task");
        *codes.entry(code).or_insert(0usize) += 1;
        closed_after.push(at.duration_since(signalled));
    }
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("wait task")
        .expect("the server exits");
    let exited = signalled.elapsed();
    closed_after.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name}: every socket closed {:.0} ms after SIGTERM (p50 {:.0} ms), codes {codes:?}; \
         {status} after {:.0} ms",
        ms(closed_after[closed_after.len() - 1]),
        ms(closed_after[closed_after.len() / 2]),
        ms(exited),
    );
}

async fn register(addr: SocketAddr) -> String {
    let body: Value = reqwest::Client::new()
        .post(format!("http://{addr}/graphql"))
        .json(&json!({
            "query": "mutation($input: RegisterInput!) { register(input: $input) { accessToken } }",
            "variables": { "input": { "email": "bench@example.com", "password": "a bench password",
                "name": "Bench", "role": "PATIENT" } },
        }))
        .send()
        .await
        .expect("register sent")
        .json()
        .await
        .expect("JSON");
    body["data"]["register"]["accessToken"]
        .as_str()
        .expect("registered")
        .to_owned()
}

/// A socket past `connection_ack` whose `callEvents` subscription is listening.
async fn subscribed(addr: SocketAddr, token: &str) -> Socket {
    let mut request = format!("ws://{addr}/graphql/ws")
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().expect("header"),
    );
    // Small client buffers: thousands of sockets in this process beside the server.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(request, Some(config), true)
        .await
        .expect("connects");
    for message in [
        json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {token}") } }),
        json!({ "id": "events", "type": "subscribe", "payload": { "query": "subscription { callEvents { kind } }" } }),
        json!({ "id": "sync", "type": "subscribe", "payload": { "query": "{ __typename }" } }),
    ] {
        socket
            .send(Message::Text(message.to_string().into()))
            .await
            .expect("sent");
    }
    // The server reads a message only when the operations before it wait: once `sync`
    // completes, the subscription listens.
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) if text.contains("\"complete\"") => return socket,
            Some(Ok(_)) => continue,
            other => panic!("socket ended during set-up: {other:?}"),
        }
    }
}

/// The close code the socket gets, and when.
async fn close_of(mut socket: Socket) -> (u16, Instant) {
    loop {
        match socket.next().await {
            Some(Ok(Message::Close(frame))) => {
                return (
                    frame.map(|f| u16::from(f.code)).unwrap_or(1005),
                    Instant::now(),
                );
            }
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return (1006, Instant::now()),
        }
    }
}
