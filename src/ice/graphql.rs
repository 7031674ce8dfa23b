use async_graphql::{Context, Object};

use super::model::IceServer;
use super::service;
use crate::error::AppResult;
use crate::graphql::context::{state, viewer};

#[derive(Default)]
pub struct IceQuery;

#[Object]
impl IceQuery {
    /// STUN and TURN servers for `RTCPeerConnection` (signed-in users; TURN credentials are
    /// minted for you and expire).
    async fn ice_servers(&self, ctx: &Context<'_>) -> AppResult<Vec<IceServer>> {
        Ok(service::for_user(state(ctx), viewer(ctx).await?))
    }
}
