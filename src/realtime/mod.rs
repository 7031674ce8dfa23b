//! Everything that crosses connections: the event bus, who is connected, and the
//! graphql-transport-ws endpoint that delivers events to clients.

pub mod bus;
pub mod limiter;
pub mod presence;
pub mod protocol;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bus::EventBus;
use limiter::Limiter;
use presence::Presence;
use uuid::Uuid;

use crate::calls::model::Call;

/// The real-time parts of the application state: instance-local, behind the bus.
#[derive(Clone)]
pub struct Realtime {
    pub bus: Arc<dyn EventBus>,
    pub presence: Arc<Presence>,
    pub limiter: Arc<Limiter>,
    /// Live calls by id, so that relaying a signal needs no database query.
    pub live_calls: Arc<Mutex<HashMap<Uuid, Call>>>,
}

impl Realtime {
    pub fn in_process() -> Self {
        let bus: Arc<dyn EventBus> = Arc::new(bus::InProcessBus::default());
        Self {
            presence: Arc::new(Presence::new(bus.clone())),
            bus,
            limiter: Arc::default(),
            live_calls: Arc::default(),
        }
    }
}
