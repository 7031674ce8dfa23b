//! The client address of a request, from the TCP peer and `MEDILINK_TRUSTED_PROXIES`.

use std::net::SocketAddr;

use axum::extract::rejection::ExtensionRejection;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

use super::HttpState;
use crate::limits::ClientIp;

impl FromRequestParts<HttpState> for ClientIp {
    type Rejection = ExtensionRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &HttpState,
    ) -> Result<Self, Self::Rejection> {
        let ConnectInfo(peer) = ConnectInfo::<SocketAddr>::from_request_parts(parts, state).await?;
        Ok(state
            .app
            .config
            .trusted_proxies
            .client_ip(peer.ip(), &parts.headers))
    }
}
