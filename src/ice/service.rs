//! Which ICE servers a user gets, and TURN credentials in coturn's `use-auth-secret` scheme.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use uuid::Uuid;

use super::model::IceServer;
use crate::auth::AuthUser;
use crate::config::Config;
use crate::state::AppState;

/// STUN servers in one entry, TURN servers in another with credentials for `viewer`.
pub fn for_user(state: &AppState, viewer: AuthUser) -> Vec<IceServer> {
    servers(&state.config, viewer.id, state.clock.now())
}

fn servers(config: &Config, user_id: Uuid, now: DateTime<Utc>) -> Vec<IceServer> {
    let (turn, stun): (Vec<&str>, Vec<&str>) = config
        .ice_server_urls()
        .partition(|url| url.starts_with("turn"));
    let mut servers = Vec::new();
    if !stun.is_empty() {
        servers.push(IceServer {
            urls: stun.into_iter().map(str::to_owned).collect(),
            username: None,
            credential: None,
        });
    }
    if !turn.is_empty() {
        let (username, credential) = match (&config.turn_secret, &config.turn_username) {
            (Some(secret), _) => {
                let ttl = i64::try_from(config.turn_credential_ttl_secs).unwrap_or(i64::MAX);
                let expiry = now.timestamp().saturating_add(ttl);
                let username = format!("{expiry}:{user_id}");
                let credential = turn_password(secret.expose().as_bytes(), &username);
                (Some(username), credential)
            }
            (None, Some(username)) => (
                Some(username.clone()),
                config.turn_password.as_ref().map(|p| p.expose().to_owned()),
            ),
            (None, None) => (None, None),
        };
        servers.push(IceServer {
            urls: turn.into_iter().map(str::to_owned).collect(),
            username,
            credential,
        });
    }
    servers
}

/// base64(HMAC-SHA1(secret, username)): what coturn computes for `use-auth-secret`. HMAC
/// takes keys of any length, so this is `None` never in practice.
fn turn_password(secret: &[u8], username: &str) -> Option<String> {
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret).ok()?;
    mac.update(username.as_bytes());
    Some(STANDARD.encode(mac.finalize().into_bytes()))
}
