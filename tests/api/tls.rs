//! PostgreSQL over TLS: the server's connections are encrypted and verified, and `/readyz`
//! follows an encrypted connection that drops. (Redis over TLS: tests/api/redis_recovery.rs;
//! settings that stop start-up: tests/api/cli.rs.)

use crate::common::gate::{tcp_gate, wait_for_readiness};
use crate::common::*;
use serde_json::json;
use sqlx::{Connection, PgConnection};

/// The test server's superuser connection, and the certificate the server presents (Debian's
/// self-signed snakeoil one), which is then its own root.
async fn postgres_and_its_certificate() -> (PgConnection, String) {
    let url = std::env::var("MEDILINK_TEST_DATABASE_URL")
        .expect("MEDILINK_TEST_DATABASE_URL names a PostgreSQL server");
    let mut admin = PgConnection::connect(&url)
        .await
        .expect("connect to MEDILINK_TEST_DATABASE_URL");
    let certificate = sqlx::query_scalar("SHOW ssl_cert_file")
        .fetch_one(&mut admin)
        .await
        .expect("the server's certificate file");
    (admin, certificate)
}

/// `url` asking for a TLS connection that verifies against `root`.
fn verify_ca(url: &str, root: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}sslmode=verify-ca&sslrootcert={root}")
}

fn database_name(url: &str) -> &str {
    let path = url.split('?').next().unwrap_or(url);
    path.rsplit('/').next().expect("the URL names a database")
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn the_server_talks_to_postgresql_over_verified_tls() {
    let (mut admin, certificate) = postgres_and_its_certificate().await;
    let app = spawn_app_with(|config| {
        config.database_url = verify_ca(&config.database_url, &certificate)
    })
    .await;
    let patient = app.register_patient().await;
    let me = app
        .ok("{ me { email } }", json!({}), Some(&patient.access))
        .await;
    assert_eq!(me["me"]["email"], patient.email);

    let connections: Vec<(bool, Option<String>)> = sqlx::query_as(
        "SELECT s.ssl, s.version FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.datname = $1",
    )
    .bind(database_name(&app.config.database_url))
    .fetch_all(&mut admin)
    .await
    .expect("pg_stat_ssl");
    assert!(!connections.is_empty(), "the server has connections open");
    for (ssl, version) in &connections {
        assert!(ssl, "every connection is encrypted: {connections:?}");
        assert!(
            version.as_deref().is_some_and(|v| v.starts_with("TLSv1.")),
            "{connections:?}"
        );
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn readiness_follows_an_encrypted_database_connection_through_an_outage() {
    let (_, certificate) = postgres_and_its_certificate().await;
    let base = std::env::var("MEDILINK_TEST_DATABASE_URL").expect("a PostgreSQL server");
    let server = base
        .split_once('@')
        .map_or(&*base, |(_, rest)| rest)
        .split(['/', '?'])
        .next()
        .expect("host:port")
        .to_owned();
    // The gate stands where the server was; TLS passes through it unchanged.
    let (gate_addr, gate) = tcp_gate(server.clone()).await;
    let app = spawn_app_with(|config| {
        let url = config
            .database_url
            .replacen(&server, &gate_addr.to_string(), 1);
        config.database_url = verify_ca(&url, &certificate);
    })
    .await;
    wait_for_readiness(&app, 200).await;

    gate.send_replace(false);
    let body = wait_for_readiness(&app, 503).await;
    assert_eq!(body["database"], "postgres");

    gate.send_replace(true);
    wait_for_readiness(&app, 200).await;
    app.register_patient().await;
}
