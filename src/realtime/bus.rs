//! The event bus: everything delivered to other connections goes through it, so that a Redis
//! implementation can later carry the same events between server instances.

use std::collections::HashMap;
use std::sync::Mutex;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use uuid::Uuid;

use super::presence::DoctorStatusEvent;
use crate::calls::model::{CallEvent, Signal};
use crate::chat::model::ChatMessage;
use crate::notifications::Notification;

/// Where an event goes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Topic {
    /// One user's private stream: call events, signals, notifications.
    User(Uuid),
    /// Doctors going online, busy or offline.
    DoctorStatus,
    /// One chat channel, by its key.
    Chat(String),
}

#[derive(Clone, Debug)]
pub enum Event {
    DoctorStatus(DoctorStatusEvent),
    Call(Box<CallEvent>),
    Signal(Box<Signal>),
    Chat(Box<ChatMessage>),
    Notification(Notification),
}

pub trait EventBus: Send + Sync {
    /// Delivers `event` to the current subscribers of `topic`, in publishing order.
    fn publish(&self, topic: Topic, event: Event);

    /// Events published on `topic` from now on. A subscriber that falls too far behind misses
    /// the oldest events rather than slowing down everyone else.
    fn subscribe(&self, topic: Topic) -> BoxStream<'static, Event>;
}

/// Events a subscriber may fall behind by before it misses the oldest.
const CAPACITY: usize = 256;
const PRUNE_ABOVE: usize = 64;

/// The bus of a single server instance: one broadcast channel per topic with subscribers.
#[derive(Default)]
pub struct InProcessBus {
    channels: Mutex<HashMap<Topic, broadcast::Sender<Event>>>,
}

impl EventBus for InProcessBus {
    fn publish(&self, topic: Topic, event: Event) {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sender) = channels.get(&topic)
            && sender.send(event).is_err()
        {
            // Nobody listens any more: forget the topic.
            channels.remove(&topic);
        }
    }

    fn subscribe(&self, topic: Topic) -> BoxStream<'static, Event> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if channels.len() >= PRUNE_ABOVE {
            // Topics nobody listens to any more hold a buffer each: drop them.
            channels.retain(|_, sender| sender.receiver_count() > 0);
        }
        let receiver = channels
            .entry(topic)
            .or_insert_with(|| broadcast::channel(CAPACITY).0)
            .subscribe();
        BroadcastStream::new(receiver)
            .filter_map(|item| std::future::ready(item.ok()))
            .boxed()
    }
}
