//! The binary: configuration errors, create-admin, migrate, print-schema, graceful shutdown.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::ws::WsClient;
use crate::common::*;
use serde_json::json;
use sqlx::Connection;

const SECRET: &str = "a-test-secret-that-is-long-enough-0123456789";

/// The binary with a clean `MEDILINK_*` environment, run in `dir`.
fn medilink(dir: &Path) -> Command {
    let mut command = binary(dir);
    command.env("MEDILINK_LOG", "warn");
    command
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A failed start: non-zero exit, one `error:` line naming `setting`, no panic or backtrace.
fn assert_clear_failure(output: &Output, setting: &str) {
    let err = stderr(output);
    assert!(!output.status.success(), "should fail: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(lines[0].contains(setting), "names {setting}: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}

/// `serve` in a fresh directory with a good JWT secret and `settings`, each `NAME=value`.
fn serve_with(settings: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut command = medilink(dir.path());
    command.arg("serve").env("MEDILINK_JWT_SECRET", SECRET);
    for setting in settings {
        let (name, value) = setting.split_once('=').expect("NAME=value");
        command.env(name, value);
    }
    command.output().unwrap()
}

#[test]
fn a_missing_or_short_jwt_secret_stops_start_up_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let serve = |vars: &[(&str, &str)]| {
        medilink(dir.path())
            .arg("serve")
            .envs(vars.iter().copied())
            .output()
            .unwrap()
    };
    assert_clear_failure(&serve(&[]), "MEDILINK_JWT_SECRET");
    assert_clear_failure(
        &serve(&[("MEDILINK_JWT_SECRET", "short")]),
        "MEDILINK_JWT_SECRET",
    );
}

#[test]
fn a_bad_value_stops_start_up_with_one_line_naming_its_setting() {
    for setting in [
        "MEDILINK_BIND=not-an-address",
        "MEDILINK_METRICS_BIND=not-an-address",
        "MEDILINK_ACCESS_TOKEN_TTL_SECS=soon",
        "MEDILINK_DATABASE_URL=mysql://x/y",
        "MEDILINK_DATABASE_URL=postgres://nobody@127.0.0.1:1/none",
        "MEDILINK_LOG==[",
        "MEDILINK_MAX_BATCH=0",
        "MEDILINK_LOG_FORMAT=xml",
        "MEDILINK_PUBLIC_ORIGINS=https://app.example.com/path",
        "MEDILINK_PLATFORM_FEE_BPS=10001",
        "MEDILINK_ICE_SERVERS=stun:ok.example.org,http://x",
        "MEDILINK_GRAPHIQL_ASSETS=/no/such/folder",
        "MEDILINK_TRUSTED_PROXIES=10.0.0.0/33",
        "MEDILINK_TRUSTED_PROXIES=proxy.internal",
        "MEDILINK_LIMIT_LOGIN_PER_IP=lots",
        "MEDILINK_LIMIT_LOGIN_PER_IP=10",
        "MEDILINK_LIMIT_SIGNALS_PER_USER=0/s",
        "MEDILINK_WS_MAX_CONNECTIONS_PER_IP=0",
        "MEDILINK_LOGIN_BACKOFF_MAX_SECS=0",
    ] {
        let (name, _) = setting.split_once('=').unwrap();
        assert_clear_failure(&serve_with(&[setting]), name);
    }
}

#[test]
fn a_setting_without_what_it_needs_stops_start_up_naming_what_is_missing_or_wrong() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let metrics_on_taken = format!("MEDILINK_METRICS_BIND={}", taken.local_addr().unwrap());
    let cases: [(&[&str], &str); 5] = [
        (
            &["MEDILINK_BIND=127.0.0.1:0", &metrics_on_taken],
            "MEDILINK_METRICS_BIND",
        ),
        (
            &[
                "MEDILINK_STRIPE_SECRET_KEY=sk_test_x",
                "MEDILINK_PUBLIC_ORIGINS=https://app.example.com",
            ],
            "MEDILINK_STRIPE_WEBHOOK_SECRET",
        ),
        (
            &[
                "MEDILINK_STRIPE_SECRET_KEY=sk_test_x",
                "MEDILINK_STRIPE_WEBHOOK_SECRET=whsec_x",
            ],
            "MEDILINK_PUBLIC_ORIGINS",
        ),
        (
            &["MEDILINK_ICE_SERVERS=turn:turn.example.org:3478"],
            "MEDILINK_TURN_SECRET",
        ),
        (
            &[
                "MEDILINK_REDIS_URL=rediss://127.0.0.1:1",
                "MEDILINK_REDIS_CA_FILE=/no/such/ca.pem",
            ],
            "MEDILINK_REDIS_CA_FILE",
        ),
    ];
    for (settings, named) in cases {
        assert_clear_failure(&serve_with(settings), named);
    }
    // A CA file for a Redis without TLS is refused too, with the scheme it would need.
    let plain = serve_with(&[
        "MEDILINK_REDIS_URL=redis://127.0.0.1:1",
        "MEDILINK_REDIS_CA_FILE=/no/such/ca.pem",
    ]);
    assert_clear_failure(&plain, "MEDILINK_REDIS_CA_FILE");
    assert!(stderr(&plain).contains("rediss://"), "{}", stderr(&plain));
}

/// `migrate` on `url`: what start-up does with a database URL, without the rest of `serve`.
fn migrate(dir: &Path, url: &str) -> Output {
    medilink(dir)
        .arg("migrate")
        .env("MEDILINK_DATABASE_URL", url)
        .output()
        .unwrap()
}

/// A failed start that names the database URL and says `what` about it.
fn assert_database_failure(output: &Output, what: &[&str]) {
    assert_clear_failure(output, "MEDILINK_DATABASE_URL");
    let err = stderr(output);
    for part in what {
        assert!(err.contains(part), "says {part:?}: {err}");
    }
}

#[test]
fn postgresql_tls_settings_that_cannot_work_stop_start_up_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let server = "postgres://nobody@127.0.0.1:1/none";
    assert_database_failure(
        &migrate(
            dir.path(),
            &format!("{server}?sslmode=verify-ca&sslrootcert=/no/such/root.pem"),
        ),
        &["sslrootcert", "/no/such/root.pem", "No such file"],
    );
    let not_pem = dir.path().join("root.txt");
    std::fs::write(&not_pem, "not a certificate").unwrap();
    assert_database_failure(
        &migrate(
            dir.path(),
            &format!(
                "{server}?sslmode=verify-full&sslrootcert={}",
                not_pem.display()
            ),
        ),
        &["sslrootcert", "holds no PEM certificate"],
    );
    assert_database_failure(
        &migrate(dir.path(), &format!("{server}?sslmode=verify-ful")),
        &["sslmode=verify-ful", "verify-full"],
    );
    assert_database_failure(
        &migrate(
            dir.path(),
            &format!(
                "{server}?sslmode=require&sslcert=/no/such/client.pem&sslkey=/no/such/client.key"
            ),
        ),
        &["sslcert", "/no/such/client.pem"],
    );

    // A server that answers PostgreSQL's TLS request with "N", as one with `ssl = off` does.
    let refusing = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = refusing.local_addr().unwrap();
    std::thread::spawn(move || {
        use std::io::Read;
        for stream in refusing.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut request = [0u8; 8];
            if stream.read_exact(&mut request).is_ok() {
                let _ = stream.write_all(b"N");
                let _ = stream.read_to_end(&mut Vec::new());
            }
        }
    });
    assert_database_failure(
        &migrate(
            dir.path(),
            &format!("postgres://nobody@{addr}/none?sslmode=require"),
        ),
        &["sslmode=require", "server does not support TLS"],
    );
}

/// The test PostgreSQL server's URL for a database beside the test's, and the certificate it
/// presents (Debian's self-signed snakeoil one, for `localhost`).
async fn postgres_and_its_certificate() -> (String, String) {
    let url = std::env::var("MEDILINK_TEST_DATABASE_URL")
        .expect("MEDILINK_TEST_DATABASE_URL names a PostgreSQL server");
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    let certificate = sqlx::query_scalar("SHOW ssl_cert_file")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    (url, certificate)
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn a_postgresql_certificate_that_does_not_verify_stops_start_up_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let (url, certificate) = postgres_and_its_certificate().await;
    let separator = if url.contains('?') { '&' } else { '?' };
    let wrong = crate::common::tls::TestCa::new("Not the PostgreSQL server's CA");
    let output = migrate(
        dir.path(),
        &format!(
            "{url}{separator}sslmode=verify-ca&sslrootcert={}",
            wrong.cert.display()
        ),
    );
    assert_database_failure(
        &output,
        &[
            "sslmode=verify-ca",
            "does not verify against sslrootcert=",
            &wrong.cert.display().to_string(),
        ],
    );
    // As libpq does, `require` checks the certificate when given a root file.
    let output = migrate(
        dir.path(),
        &format!(
            "{url}{separator}sslmode=require&sslrootcert={}",
            wrong.cert.display()
        ),
    );
    assert_database_failure(&output, &["sslmode=require", "does not verify"]);
    // The right root, but a name the certificate is not for: the server's address.
    let by_address = url.replacen("@localhost", "@127.0.0.1", 1);
    let output = migrate(
        dir.path(),
        &format!("{by_address}{separator}sslmode=verify-full&sslrootcert={certificate}"),
    );
    assert_database_failure(&output, &["sslmode=verify-full", "not valid for name"]);
}

#[tokio::test]
#[ignore = "needs Redis"]
async fn a_redis_certificate_that_does_not_verify_stops_start_up_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let redis = crate::common::tls::TlsRedis::start();
    let serve = |vars: &[(&str, &str)]| {
        medilink(dir.path())
            .arg("serve")
            .env("MEDILINK_JWT_SECRET", SECRET)
            .env("MEDILINK_BIND", "127.0.0.1:0")
            .env("MEDILINK_REDIS_URL", redis.url())
            .envs(vars.iter().copied())
            .output()
            .unwrap()
    };
    let wrong = crate::common::tls::TestCa::new("Not the Redis server's CA");
    let output = serve(&[("MEDILINK_REDIS_CA_FILE", wrong.cert.to_str().unwrap())]);
    assert_clear_failure(&output, "MEDILINK_REDIS_URL");
    let err = stderr(&output);
    assert!(
        err.contains(&format!(
            "does not verify against MEDILINK_REDIS_CA_FILE={}",
            wrong.cert.display()
        )),
        "{err}"
    );
    // Without a CA file, the system's roots, which do not know the server's CA either.
    let output = serve(&[]);
    assert_clear_failure(&output, "MEDILINK_REDIS_URL");
    assert!(
        stderr(&output).contains("does not verify against the system's root CAs"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn limits_and_trusted_proxies_read_from_the_file_and_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("medilink.toml"),
        "limit_login_per_ip = \"5/min\"\ntrusted_proxies = \"10.0.0.0/8, ::1\"\n",
    )
    .unwrap();
    let output = medilink(dir.path())
        .arg("migrate")
        .env(
            "MEDILINK_TRUSTED_PROXIES",
            "127.0.0.1, 10.0.0.0/8, fd00::/8",
        )
        .env("MEDILINK_LIMIT_SIGNALS_PER_USER", "200/4s")
        .env("MEDILINK_LIMIT_REGISTER_PER_IP", "20/h")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn settings_come_from_the_file_and_the_environment_wins() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("medilink.toml"),
        "database_url = \"sqlite://from-file.db\"\n",
    )
    .unwrap();

    let output = medilink(dir.path()).arg("migrate").output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        dir.path().join("from-file.db").exists(),
        "the file's database was created"
    );

    let output = medilink(dir.path())
        .arg("migrate")
        .env("MEDILINK_DATABASE_URL", "sqlite://from-env.db")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        dir.path().join("from-env.db").exists(),
        "the environment overrides the file"
    );

    std::fs::write(dir.path().join("medilink.toml"), "bind = 8080\n").unwrap();
    let output = medilink(dir.path()).arg("migrate").output().unwrap();
    assert_clear_failure(&output, "MEDILINK_BIND");
}

#[test]
fn the_default_database_is_a_sqlite_file_in_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let output = medilink(dir.path()).arg("migrate").output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(dir.path().join("medilink.db").exists());
    let again = medilink(dir.path()).arg("migrate").output().unwrap();
    assert!(
        again.status.success(),
        "migrating twice is fine: {}",
        stderr(&again)
    );
}

#[tokio::test]
async fn create_admin_reads_the_password_from_stdin_or_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("admin.db").display());

    let mut child = medilink(dir.path())
        .args(["create-admin", "--email", "Root@Example.com"])
        .env("MEDILINK_DATABASE_URL", &url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"stdin password 1\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("root@example.com"));

    let output = medilink(dir.path())
        .args([
            "create-admin",
            "--email",
            "ops@example.com",
            "--name",
            "Ops",
        ])
        .env("MEDILINK_DATABASE_URL", &url)
        .env("MEDILINK_ADMIN_PASSWORD", "env password 2")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));

    let duplicate = medilink(dir.path())
        .args(["create-admin", "--email", "ROOT@example.com"])
        .env("MEDILINK_DATABASE_URL", &url)
        .env("MEDILINK_ADMIN_PASSWORD", "another password")
        .output()
        .unwrap();
    assert_clear_failure(&duplicate, "email");

    let short = medilink(dir.path())
        .args(["create-admin", "--email", "x@example.com"])
        .env("MEDILINK_DATABASE_URL", &url)
        .env("MEDILINK_ADMIN_PASSWORD", "short")
        .output()
        .unwrap();
    assert_clear_failure(&short, "password");

    // The admins sign in over the API of a server on the same database.
    let app = crate::common::spawn_app_with(|config| config.database_url = url.clone()).await;
    for (email, password) in [
        ("root@example.com", "stdin password 1"),
        ("ops@example.com", "env password 2"),
    ] {
        let body = app.login(email, password).await;
        assert_eq!(body["data"]["login"]["user"]["role"], "ADMIN", "{body}");
    }
    let admin = account(&app.login("root@example.com", "stdin password 1").await["data"]["login"]);
    let users = app
        .ok("{ users { totalCount } }", json!({}), Some(&admin.access))
        .await;
    assert_eq!(users["users"]["totalCount"], 2);
}

#[test]
fn print_schema_prints_the_committed_schema() {
    let dir = tempfile::tempdir().unwrap();
    let output = medilink(dir.path()).arg("print-schema").output().unwrap();
    assert!(output.status.success());
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql")).unwrap();
    assert!(
        String::from_utf8_lossy(&output.stdout) == committed,
        "schema.graphql is stale"
    );
}

#[test]
fn help_describes_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let output = medilink(dir.path()).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    for command in ["serve", "migrate", "create-admin", "print-schema"] {
        assert!(help.contains(command), "{help}");
    }
    let output = medilink(dir.path())
        .args(["create-admin", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(
        help.contains("MEDILINK_ADMIN_PASSWORD") && help.contains("--email"),
        "{help}"
    );
}

#[tokio::test]
async fn serve_stops_on_sigterm_sending_sockets_away_within_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_local_addr();
    let child = medilink(dir.path())
        .args(["serve", "--dev"])
        .env("MEDILINK_BIND", addr.to_string())
        .env("MEDILINK_LOG", "info")
        .env("MEDILINK_SHUTDOWN_GRACE_SECS", "2")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "server did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let registered: serde_json::Value = reqwest::Client::new()
        .post(format!("http://{addr}/graphql"))
        .json(&json!({ "query": REGISTER, "variables": { "input": {
            "email": "ann@example.com", "password": PASSWORD, "name": "Ann", "role": "PATIENT" } } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ann = account(&registered["data"]["register"]);
    let mut socket = WsClient::signed_in(addr, &ann.access).await;
    // A request whose body never comes: the server stops anyway when the deadline passes.
    let _stuck = request_in_flight(addr, 100).await;

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(socket.closed().await, 1001, "the socket is sent away");
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || child.wait_with_output()),
    )
    .await
    .expect("the server exits")
    .unwrap()
    .unwrap();
    let log = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "exit status {:?}: {log}",
        output.status
    );
    assert!(
        log.contains("generated a JWT secret"),
        "--dev says so: {log}"
    );
    assert!(log.contains("shutdown deadline"), "{log}");
    assert!(log.contains("stopped"), "{log}");
}
