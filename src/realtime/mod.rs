//! Everything that crosses connections: the event bus, who is connected, and the
//! graphql-transport-ws endpoint that delivers events to clients.

pub mod bus;
mod fanout;
pub mod presence;
pub mod protocol;
pub mod redis_bus;
pub mod shared_presence;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bus::{Event, EventBus};
use presence::Presence;
use redis_bus::RedisBus;
use shared_presence::SharedPresence;
use uuid::Uuid;

use crate::calls::model::Call;

/// The real-time parts of the application state: the bus and presence, in process or shared
/// with other instances through Redis; the live-call cache stays local.
#[derive(Clone)]
pub struct Realtime {
    pub bus: Arc<dyn EventBus>,
    pub presence: Arc<Presence>,
    /// Live calls by id, so that relaying a signal needs no database query.
    pub live_calls: Arc<Mutex<HashMap<Uuid, Call>>>,
}

impl Realtime {
    /// A user whose last connection went has `grace` to come back.
    pub fn in_process(grace: Duration) -> Self {
        let bus: Arc<dyn EventBus> = Arc::new(bus::InProcessBus::default());
        Self {
            presence: Arc::new(Presence::new(bus.clone(), grace)),
            bus,
            live_calls: Arc::default(),
        }
    }

    /// The bus and presence over Redis at `url`, under the key and channel `prefix`; an
    /// instance whose heartbeat is older than `expiry` counts as gone, and a user whose last
    /// connection went has `grace` to come back.
    pub async fn redis(
        url: &str,
        prefix: &str,
        expiry: Duration,
        grace: Duration,
    ) -> redis::RedisResult<Self> {
        let live_calls: Arc<Mutex<HashMap<Uuid, Call>>> = Arc::default();
        let cache = live_calls.clone();
        // Another instance may answer or end a call this one has cached: its call events
        // keep the cache true.
        let observer = Box::new(move |event: &Event| {
            if let Event::Call(event) = event {
                let mut calls = cache.lock().unwrap_or_else(|p| p.into_inner());
                if !event.call.is_live() {
                    calls.remove(&event.call.id);
                } else if let Some(cached) = calls.get_mut(&event.call.id) {
                    *cached = event.call.clone();
                }
            }
        });
        let (bus, connection) = RedisBus::connect(url, prefix, observer).await?;
        let bus: Arc<dyn EventBus> = Arc::new(bus);
        let shared = SharedPresence::new(connection, prefix, expiry, grace);
        Ok(Self {
            presence: Arc::new(Presence::shared(bus.clone(), shared)),
            bus,
            live_calls,
        })
    }
}
