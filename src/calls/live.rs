//! This instance's live calls by id, so that relaying a signal needs no database query.

use std::sync::{Arc, Mutex, MutexGuard};

use foldhash::HashMap;
use uuid::Uuid;

use super::model::Call;
use crate::events::Event;

#[derive(Clone, Default)]
pub struct LiveCallCache(Arc<Mutex<HashMap<Uuid, Call>>>);

impl LiveCallCache {
    pub fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, Call>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps the cache true when another instance answers or ends a call this one has cached
    /// (its call events arrive over Redis).
    pub fn observe(&self, event: &Event) {
        if let Event::Call(event) = event {
            let mut calls = self.lock();
            if !event.call.is_live() {
                calls.remove(&event.call.id);
            } else if let Some(cached) = calls.get_mut(&event.call.id) {
                *cached = event.call.clone();
            }
        }
    }
}
