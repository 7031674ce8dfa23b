//! ICE servers for WebRTC: the STUN and TURN servers a client should use, with TURN
//! credentials minted per user when a shared secret is configured.

pub mod graphql;
pub mod model;
pub mod service;
