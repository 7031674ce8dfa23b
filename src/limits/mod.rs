//! Abuse limits: rate limits by client address, account and user, the sign-in backoff, and a
//! cap on WebSocket connections per address. They live in this instance's memory, so behind a
//! load balancer each instance applies them on its own. Time is the server's clock.

mod backoff;
mod bucket;
mod client_ip;
mod connections;

use std::net::IpAddr;
use std::time::Duration;

use uuid::Uuid;

pub use backoff::Backoff;
pub use bucket::{Limiter, Rate};
pub use client_ip::{ClientIp, TrustedProxies};
pub use connections::{ConnectionCap, ConnectionPermit};

pub struct Limits {
    pub login_per_ip: Limiter<IpAddr>,
    /// By normalised email, whether or not an account has it.
    pub login_per_account: Limiter<String>,
    pub login_failures: Backoff,
    pub register_per_ip: Limiter<IpAddr>,
    pub refresh_per_ip: Limiter<IpAddr>,
    /// By the refresh token's user.
    pub refresh_per_account: Limiter<Uuid>,
    pub ws_connects_per_ip: Limiter<IpAddr>,
    pub ws_connections_per_ip: ConnectionCap,
    /// Per user rather than per connection: opening more sockets does not buy more.
    pub signals_per_user: Limiter<Uuid>,
    pub chat_per_user: Limiter<Uuid>,
    pub password_reset_per_ip: Limiter<IpAddr>,
    /// By normalised email, whether or not an account has it.
    pub password_reset_per_email: Limiter<String>,
    pub verification_mail_per_user: Limiter<Uuid>,
}

/// A wait as the whole seconds clients are told to wait: rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}
