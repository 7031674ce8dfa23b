//! Everything that crosses connections: the event bus, who is connected, and the
//! graphql-transport-ws endpoint that delivers events to clients.

pub mod bus;
mod fanout;
pub mod presence;
pub mod protocol;
pub mod redis_bus;
pub mod shared_presence;

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use bus::{EventBus, Hold, Topic};
use presence::Presence;
use redis_bus::{Observer, RedisBus};
use shared_presence::SharedPresence;

use crate::events::Event;

/// The real-time parts of the application state: the bus and presence, in process or shared
/// with other instances through Redis.
#[derive(Clone)]
pub struct Realtime {
    pub bus: Arc<dyn EventBus>,
    pub presence: Arc<Presence>,
    /// Keeps this instance hearing the topic every instance hears.
    _everyone: Arc<Hold>,
}

impl Realtime {
    /// A user whose last connection went has `grace` to come back.
    pub fn in_process(grace: Duration) -> Self {
        let bus: Arc<dyn EventBus> = Arc::new(bus::InProcessBus::default());
        Self {
            presence: Arc::new(Presence::new(bus.clone(), grace)),
            bus,
            _everyone: Arc::new(Hold::local()),
        }
    }

    /// The bus and presence over Redis through `client`, under the key and channel `prefix`; an
    /// instance whose heartbeat is older than `expiry` counts as gone, and a user whose last
    /// connection went has `grace` to come back. `observe` sees every event that arrives
    /// from another instance, for the domains' caches.
    pub async fn redis(
        client: redis::Client,
        prefix: &str,
        expiry: Duration,
        grace: Duration,
        observe: Observer,
    ) -> redis::RedisResult<Self> {
        // Set once presence exists, which needs the bus first.
        let presence_slot: Arc<OnceLock<Weak<Presence>>> = Arc::default();
        let kicks = presence_slot.clone();
        let observer = Box::new(move |event: &Event| {
            // A user logged out or blocked anywhere loses their sockets here too: every
            // instance holds the topic kicks go to.
            if let Event::Kick(user_id) = event
                && let Some(presence) = kicks.get().and_then(Weak::upgrade)
            {
                presence.close_local(*user_id);
            }
            observe(event);
        });
        let (bus, connection) = RedisBus::connect(client, prefix, observer).await?;
        let bus: Arc<dyn EventBus> = Arc::new(bus);
        let everyone = Arc::new(bus.hold(Topic::Accounts).await);
        let shared = SharedPresence::new(connection, prefix, expiry, grace);
        let presence = Arc::new(Presence::shared(bus.clone(), shared));
        let _ = presence_slot.set(Arc::downgrade(&presence));
        Ok(Self {
            presence,
            bus,
            _everyone: everyone,
        })
    }
}
