//! The event bus: everything delivered to other connections goes through it, in process by
//! default or over Redis (`super::redis_bus`) so that several instances share users.

use std::sync::Mutex;

use foldhash::HashMap;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use uuid::Uuid;

use super::fanout::Subscribers;
use crate::events::Event;

/// Where an event goes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Topic {
    /// One user's private stream: call events, signals, notifications.
    User(Uuid),
    /// Doctors going online, busy or offline.
    DoctorStatus,
    /// One chat channel, by its key.
    Chat(String),
    /// What every instance hears: accounts whose sessions ended.
    Accounts,
}

/// Keeps this instance receiving a topic's events from other instances while it lives.
pub struct Hold {
    _release: Option<Box<dyn Send + Sync>>,
}

impl Hold {
    /// A hold on a bus that has no other instances to hear from.
    pub fn local() -> Self {
        Self { _release: None }
    }

    /// A hold that runs `release`'s `Drop` when it ends.
    pub fn new(release: impl Send + Sync + 'static) -> Self {
        Self {
            _release: Some(Box::new(release)),
        }
    }
}

pub trait EventBus: Send + Sync {
    /// Delivers `event` to the current subscribers of `topic`, in publishing order.
    fn publish(&self, topic: Topic, event: Event);

    /// Events published on `topic` from now on. A subscriber that falls too far behind misses
    /// events rather than slowing down everyone else.
    fn subscribe(&self, topic: Topic) -> BoxStream<'static, Event>;

    /// Resolves once events published on `topic` by any instance reach this instance's
    /// subscribers, and keeps it so while the returned hold lives.
    fn hold(&self, topic: Topic) -> BoxFuture<'static, Hold>;

    /// Whether events reach other instances now (always, in process).
    fn is_up(&self) -> bool;

    /// Which connection to the other instances this is, counted from one; `None` while
    /// down. Events published elsewhere between two connections may have been missed.
    fn epoch(&self) -> Option<u64>;

    /// Resolves once the events published so far have left this instance (at once, in
    /// process): a stopping instance waits for it before it exits.
    fn flush(&self) -> BoxFuture<'static, ()>;
}

/// Topics kept before the first sweep of those nobody listens to.
const PRUNE_ABOVE: usize = 64;

/// The bus of a single server instance: the subscribers of each topic that has any.
#[derive(Default)]
pub struct InProcessBus {
    channels: Mutex<Channels>,
}

#[derive(Default)]
struct Channels {
    by_topic: HashMap<Topic, Subscribers>,
    /// The number of topics at which the next sweep runs.
    sweep_at: usize,
}

impl EventBus for InProcessBus {
    fn publish(&self, topic: Topic, event: Event) {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(subscribers) = channels.by_topic.get_mut(&topic) {
            subscribers.send(&event);
            if subscribers.is_empty() {
                // Nobody listens any more: forget the topic.
                channels.by_topic.remove(&topic);
            }
        }
    }

    fn subscribe(&self, topic: Topic) -> BoxStream<'static, Event> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if channels.by_topic.len() >= channels.sweep_at.max(PRUNE_ABOVE) {
            // Forget the topics nobody listens to any more. The next sweep
            // waits until the map has doubled, so that with thousands of users listening a
            // subscription does not scan them all.
            channels
                .by_topic
                .retain(|_, subscribers| subscribers.prune());
            channels.sweep_at = channels.by_topic.len() * 2;
        }
        channels
            .by_topic
            .entry(topic)
            .or_default()
            .subscribe()
            .boxed()
    }

    fn hold(&self, _topic: Topic) -> BoxFuture<'static, Hold> {
        Box::pin(std::future::ready(Hold::local()))
    }

    fn is_up(&self) -> bool {
        true
    }

    fn epoch(&self) -> Option<u64> {
        Some(1)
    }

    fn flush(&self) -> BoxFuture<'static, ()> {
        Box::pin(std::future::ready(()))
    }
}
