//! The messages and close codes of graphql-transport-ws, as the `graphql-ws` client speaks it.

use async_graphql::{Extensions, Request, Response, ServerError, Variables};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

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
    /// A message over the socket's size limit (RFC 6455's "Message Too Big").
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// The server cannot serve the socket now (presence store unreachable). "Try Again Later":
    /// the `graphql-ws` client retries it, where it gives up after 1011.
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

#[derive(Debug)]
pub enum ClientMessage {
    ConnectionInit {
        payload: Option<serde_json::Value>,
    },
    Ping {
        payload: Option<serde_json::Value>,
    },
    Pong {
        payload: Option<serde_json::Value>,
    },
    Subscribe {
        id: String,
        payload: Box<SubscribePayload>,
    },
    Complete {
        id: String,
    },
}

/// A message before its payload is read. serde's internally tagged enums buffer the whole
/// message in a tree of their own before they look at the tag, which every relayed signal would
/// pay. Keys may come in any order.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type")]
    kind: Kind,
    id: Option<String>,
    #[serde(borrow)]
    payload: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    ConnectionInit,
    Ping,
    Pong,
    Subscribe,
    Complete,
}

impl ClientMessage {
    pub fn from_json(text: &str) -> serde_json::Result<Self> {
        let Envelope { kind, id, payload } = serde_json::from_str(text)?;
        let id = || id.ok_or_else(|| serde::de::Error::missing_field("id"));
        Ok(match kind {
            Kind::ConnectionInit => Self::ConnectionInit {
                payload: read(payload)?,
            },
            Kind::Ping => Self::Ping {
                payload: read(payload)?,
            },
            Kind::Pong => Self::Pong {
                payload: read(payload)?,
            },
            Kind::Subscribe => Self::Subscribe {
                id: id()?,
                payload: read(payload)?
                    .ok_or_else(|| serde::de::Error::missing_field("payload"))?,
            },
            Kind::Complete => Self::Complete { id: id()? },
        })
    }
}

/// A `subscribe` payload: a GraphQL request whose variables are still JSON, so that an operation
/// the socket serves itself reads them straight into its own types (async-graphql's tree of
/// variables was a tenth of a relayed signal's user-space CPU). Refused as a `Request` is: its
/// variables, when present and not null, must be an object.
#[derive(Debug, Deserialize)]
pub struct SubscribePayload {
    #[serde(default)]
    pub query: String,
    #[serde(default, rename = "operationName")]
    pub operation_name: Option<String>,
    #[serde(default, deserialize_with = "variables_object")]
    pub variables: Option<Box<RawValue>>,
    #[serde(default)]
    extensions: Extensions,
}

impl SubscribePayload {
    /// The request async-graphql executes.
    pub fn into_request(self) -> serde_json::Result<Request> {
        let variables: Variables = match &self.variables {
            Some(raw) => serde_json::from_str(raw.get())?,
            None => Variables::default(),
        };
        let mut request = Request::new(self.query).variables(variables);
        request.operation_name = self.operation_name;
        request.extensions = self.extensions;
        Ok(request)
    }
}

fn variables_object<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Box<RawValue>>, D::Error> {
    let raw = Option::<Box<RawValue>>::deserialize(deserializer)?;
    match raw {
        Some(raw) if !raw.get().starts_with('{') => Err(serde::de::Error::invalid_type(
            serde::de::Unexpected::Other("a value other than an object"),
            &"the variables object",
        )),
        raw => Ok(raw),
    }
}

fn read<T: DeserializeOwned>(payload: Option<&RawValue>) -> serde_json::Result<Option<T>> {
    payload
        .map(|raw| serde_json::from_str(raw.get()))
        .transpose()
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

/// A `next` message whose payload is JSON written already, as [`ServerMessage::Next`] writes
/// one.
pub fn next_frame(id: &str, payload: &str) -> String {
    let mut frame = Vec::with_capacity(payload.len() + id.len() + 32);
    frame.extend_from_slice(br#"{"type":"next","id":"#);
    serde_json::to_writer(&mut frame, id).expect("a string always serializes");
    frame.extend_from_slice(br#","payload":"#);
    frame.extend_from_slice(payload.as_bytes());
    frame.push(b'}');
    String::from_utf8(frame).expect("both parts are UTF-8")
}

/// A `complete` message, for writers that hold no [`ServerMessage`].
pub fn complete_frame(id: &str) -> String {
    serde_json::to_string(&ServerMessage::Complete { id }).expect("an id always serializes")
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

#[cfg(test)]
mod tests {
    use async_graphql::{Name, Value};

    use super::*;

    #[test]
    fn a_written_next_frame_is_the_serialized_message() {
        let data = Value::Object([(Name::new("sendSignal"), Value::Boolean(true))].into());
        let response = Response::new(data);
        let id = "an \"odd\" id\n";
        let serialized = serde_json::to_string(&ServerMessage::Next {
            id,
            payload: &response,
        })
        .unwrap();
        let payload = serde_json::to_string(&response).unwrap();
        assert_eq!(next_frame(id, &payload), serialized);
    }
}
