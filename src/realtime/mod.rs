//! Everything that crosses connections: the event bus, who is connected, and the
//! graphql-transport-ws endpoint that delivers events to clients.

pub mod bus;
mod fanout;
pub mod presence;
pub mod protocol;
pub mod redis_bus;
pub mod shared_presence;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
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

    /// The bus and presence over Redis through `client`, under the key and channel `prefix`; an
    /// instance whose heartbeat is older than `expiry` counts as gone, and a user whose last
    /// connection went has `grace` to come back.
    pub async fn redis(
        client: redis::Client,
        prefix: &str,
        expiry: Duration,
        grace: Duration,
    ) -> redis::RedisResult<Self> {
        let live_calls: Arc<Mutex<HashMap<Uuid, Call>>> = Arc::default();
        let cache = live_calls.clone();
        // Set once presence exists, which needs the bus first.
        let presence_slot: Arc<OnceLock<Weak<Presence>>> = Arc::default();
        let kicks = presence_slot.clone();
        let observer = Box::new(move |event: &Event| match event {
            // Another instance may answer or end a call this one has cached: its call events
            // keep the cache true.
            Event::Call(event) => {
                let mut calls = cache.lock().unwrap_or_else(|p| p.into_inner());
                if !event.call.is_live() {
                    calls.remove(&event.call.id);
                } else if let Some(cached) = calls.get_mut(&event.call.id) {
                    *cached = event.call.clone();
                }
            }
            // A user logged out or blocked anywhere loses their sockets here too; the socket
            // holds the user's topic, so the kick reaches every instance they are on.
            Event::Kick(user_id) => {
                if let Some(presence) = kicks.get().and_then(Weak::upgrade) {
                    presence.close_local(*user_id);
                }
            }
            _ => {}
        });
        let (bus, connection) = RedisBus::connect(client, prefix, observer).await?;
        let bus: Arc<dyn EventBus> = Arc::new(bus);
        let shared = SharedPresence::new(connection, prefix, expiry, grace);
        let presence = Arc::new(Presence::shared(bus.clone(), shared));
        let _ = presence_slot.set(Arc::downgrade(&presence));
        Ok(Self {
            presence,
            bus,
            live_calls,
        })
    }
}
