use std::sync::Arc;

use crate::auth::password::Passwords;
use crate::auth::tokens::TokenKeys;
use crate::calls::live::LiveCallCache;
use crate::clock::Clock;
use crate::config::Config;
use crate::db::Db;
use crate::limits::Limits;
use crate::mail::Outbox;
use crate::metrics::Metrics;
use crate::payments::gateway::Gateway;
use crate::realtime::Realtime;
use crate::shutdown::Shutdown;
use crate::users::cache::AccountCache;

/// What every request handler and service can reach.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub passwords: Passwords,
    pub tokens: TokenKeys,
    /// Accounts whose current token version this instance knows (see `users::cache`).
    pub accounts: AccountCache,
    pub config: Arc<Config>,
    pub clock: Clock,
    pub realtime: Realtime,
    /// This instance's live calls (see `calls::live`).
    pub live_calls: LiveCallCache,
    pub limits: Arc<Limits>,
    /// Stripe, when payments are configured.
    pub payments: Option<Arc<Gateway>>,
    /// Stopping in order: sockets told to go, timers ended (see `crate::shutdown`).
    pub shutdown: Shutdown,
    /// This instance's figures for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Where mail is queued (see `crate::mail`).
    pub mail: Outbox,
}
