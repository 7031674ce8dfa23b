//! `iceServers`: STUN and TURN from the settings, and coturn `use-auth-secret` credentials
//! checked against an HMAC-SHA1 computed here from the SHA-1 primitive (RFC 2104), not by the
//! server's HMAC code.

use crate::common::*;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use medilink::config::Secret;
use serde_json::{Value, json};
use sha1::{Digest, Sha1};

const ICE_SERVERS: &str = "{ iceServers { urls username credential } }";

/// HMAC (RFC 2104) over SHA-1, written out: H((K ^ opad) || H((K ^ ipad) || message)).
fn hmac_sha1(key: &[u8], message: &[u8]) -> [u8; 20] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..20].copy_from_slice(&Sha1::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha1::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha1::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

#[test]
fn the_reference_hmac_matches_rfc_2202() {
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    assert_eq!(
        hex(&hmac_sha1(b"Jefe", b"what do ya want for nothing?")),
        "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
    );
    assert_eq!(
        hex(&hmac_sha1(
            &[0xaa; 80],
            b"Test Using Larger Than Block-Size Key - Hash Key First"
        )),
        "aa4ae5e15272d00e95705637ce8a3b55ed402112"
    );
}

async fn ice_servers(app: &TestApp, token: &str) -> Value {
    app.ok(ICE_SERVERS, json!({}), Some(token)).await["iceServers"].clone()
}

#[tokio::test]
async fn ice_servers_need_a_signed_in_user() {
    let app = spawn_app_with(|c| c.ice_servers = "stun:stun.example.org:3478".into()).await;
    let body = app.graphql(ICE_SERVERS, json!({}), None).await;
    assert_eq!(error_code(&body), Some("UNAUTHENTICATED"), "{body}");
}

#[tokio::test]
async fn without_settings_there_are_no_ice_servers() {
    let app = spawn_app().await;
    let patient = app.register_patient().await;
    assert_eq!(ice_servers(&app, &patient.access).await, json!([]));
}

#[tokio::test]
async fn turn_credentials_are_minted_per_user_in_coturns_scheme() {
    const SECRET: &str = "the coturn static-auth-secret";
    // Not set: the default, an hour (a day of credentials outlived every consultation).
    const TTL: i64 = 3600;
    let app = spawn_app_with(|c| {
        c.ice_servers =
            "stun:stun.example.org:3478, turn:turn.example.org:3478?transport=udp,turns:turn.example.org:5349"
                .into();
        c.turn_secret = Some(Secret::new(SECRET));
    })
    .await;
    let patient = app.register_patient().await;
    let doctor = app.register_doctor().await;

    let before = app.clock.now().timestamp();
    let servers = ice_servers(&app, &patient.access).await;
    let after = app.clock.now().timestamp();
    assert_eq!(
        servers[0],
        json!({ "urls": ["stun:stun.example.org:3478"], "username": null, "credential": null })
    );
    assert_eq!(
        servers[1]["urls"],
        json!([
            "turn:turn.example.org:3478?transport=udp",
            "turns:turn.example.org:5349"
        ])
    );
    assert_eq!(servers.as_array().map(Vec::len), Some(2));

    let username = servers[1]["username"].as_str().expect("username");
    let (expiry, user) = username.split_once(':').expect("<expiry>:<user id>");
    let expiry: i64 = expiry.parse().expect("unix time");
    assert!(
        (before + TTL..=after + TTL).contains(&expiry),
        "expires TTL seconds from now: {expiry}"
    );
    assert_eq!(user, patient.id);
    let expected = STANDARD.encode(hmac_sha1(SECRET.as_bytes(), username.as_bytes()));
    assert_eq!(servers[1]["credential"], json!(expected));

    // Another user gets credentials of their own.
    let theirs = ice_servers(&app, &doctor.access).await;
    let their_name = theirs[1]["username"].as_str().expect("username");
    assert!(
        their_name.ends_with(&format!(":{}", doctor.id)),
        "{their_name}"
    );
    assert_eq!(
        theirs[1]["credential"],
        json!(STANDARD.encode(hmac_sha1(SECRET.as_bytes(), their_name.as_bytes())))
    );
}

#[tokio::test]
async fn a_turn_server_with_fixed_credentials_gets_them_as_they_are() {
    let app = spawn_app_with(|c| {
        c.ice_servers = "turn:turn.example.org:3478".into();
        c.turn_username = Some("medilink".into());
        c.turn_password = Some(Secret::new("relay password"));
    })
    .await;
    let patient = app.register_patient().await;
    assert_eq!(
        ice_servers(&app, &patient.access).await,
        json!([{ "urls": ["turn:turn.example.org:3478"], "username": "medilink", "credential": "relay password" }])
    );
}
