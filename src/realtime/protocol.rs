//! The messages and close codes of graphql-transport-ws, as the `graphql-ws` client speaks it.

use async_graphql::{Response, ServerError};
use serde::{Deserialize, Serialize};

pub const SUBPROTOCOL: &str = "graphql-transport-ws";

/// Close codes. The `graphql-ws` client retries after 4403 and 4408 but gives up after 4400,
/// 4401, 4409 and 4429: those are for clients that break the protocol.
pub mod close {
    pub const BAD_MESSAGE: u16 = 4400;
    pub const UNAUTHORIZED: u16 = 4401;
    pub const FORBIDDEN: u16 = 4403;
    pub const INIT_TIMEOUT: u16 = 4408;
    pub const DUPLICATE_ID: u16 = 4409;
    pub const TOO_MANY_INITS: u16 = 4429;
    /// The peer stopped answering pings, or the server is stopping; clients reconnect.
    pub const GOING_AWAY: u16 = 1001;
    /// The server cannot serve the socket now (presence store unreachable). "Try Again Later":
    /// the `graphql-ws` client retries it, where it gives up after 1011.
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    ConnectionInit {
        #[serde(default)]
        payload: Option<serde_json::Value>,
    },
    Ping {
        #[serde(default)]
        payload: Option<serde_json::Value>,
    },
    Pong {
        #[serde(default)]
        payload: Option<serde_json::Value>,
    },
    Subscribe {
        id: String,
        payload: Box<async_graphql::Request>,
    },
    Complete {
        id: String,
    },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage<'a> {
    ConnectionAck,
    Ping,
    Pong,
    Next {
        id: &'a str,
        payload: &'a Response,
    },
    Error {
        id: &'a str,
        payload: &'a [ServerError],
    },
    Complete {
        id: &'a str,
    },
}

/// The access token of a `connection_init` payload: `authorization` ("Bearer <jwt>") or
/// `token`. The key's case is ignored: GraphiQL passes its headers editor's `Authorization`
/// as it is written.
pub fn init_token(payload: Option<&serde_json::Value>) -> Option<String> {
    let payload = payload?.as_object()?;
    let authorization = payload
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case("authorization"))
        .and_then(|(_, v)| v.as_str());
    if let Some(header) = authorization {
        let header = header.trim();
        return Some(match header.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
                token.trim().to_owned()
            }
            _ => header.to_owned(),
        });
    }
    payload
        .get("token")
        .and_then(|v| v.as_str())
        .map(str::to_owned)
}
