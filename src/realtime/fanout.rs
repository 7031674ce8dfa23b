//! A topic's local subscribers, each with a bounded queue of its own.
//!
//! tokio's broadcast channel allocates its ring of slots up front: with a topic per connected
//! user, every user would pay for it even while nothing happened. A futures-channel queue holds
//! only the events actually waiting.

use futures_channel::mpsc;

use crate::events::Event;

/// Events a subscriber may fall behind by before it misses new ones.
const CAPACITY: usize = 64;

#[derive(Default)]
pub struct Subscribers {
    queues: Vec<mpsc::Sender<Event>>,
}

impl Subscribers {
    /// A new subscriber's queue; it stops receiving when the receiver is dropped.
    pub fn subscribe(&mut self) -> mpsc::Receiver<Event> {
        let (sender, receiver) = mpsc::channel(CAPACITY);
        self.queues.push(sender);
        receiver
    }

    /// Queues `event` for every subscriber still listening, in publishing order. One whose queue
    /// is full misses it rather than slowing down everyone else.
    pub fn send(&mut self, event: &Event) {
        self.queues
            .retain_mut(|queue| match queue.try_send(event.clone()) {
                Ok(()) => true,
                Err(error) => !error.is_disconnected(),
            });
    }

    /// Forgets the subscribers that have gone; whether any are left.
    pub fn prune(&mut self) -> bool {
        self.queues.retain(|queue| !queue.is_closed());
        !self.queues.is_empty()
    }

    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }
}
