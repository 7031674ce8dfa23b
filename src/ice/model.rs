use async_graphql::SimpleObject;

/// One entry of `RTCPeerConnection`'s `iceServers`.
#[derive(SimpleObject, Clone, Debug, PartialEq, Eq)]
pub struct IceServer {
    pub urls: Vec<String>,
    /// For TURN: the user name (`<expiry unix time>:<user id>` when minted).
    pub username: Option<String>,
    /// For TURN: the password.
    pub credential: Option<String>,
}
