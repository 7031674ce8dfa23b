//! Who is connected, and what that makes each doctor: ONLINE, BUSY or OFFLINE.
//!
//! A user is connected while any WebSocket of theirs is open. A doctor's status is derived, not
//! stored: OFFLINE while not connected, BUSY while in a call, ONLINE if they chose to be,
//! OFFLINE otherwise. Every change of a doctor's status is published on the bus.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_graphql::Enum;
use chrono::{DateTime, Utc};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::bus::{Event, EventBus, Topic};

#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DoctorStatus {
    /// Connected and taking calls.
    Online,
    /// In a call.
    Busy,
    Offline,
}

#[derive(Clone, Debug)]
pub struct DoctorStatusEvent {
    pub doctor_id: Uuid,
    pub status: DoctorStatus,
    pub at: DateTime<Utc>,
}

/// An open WebSocket: resolves `kicked` when the server must close it (logout, block).
pub struct Connection {
    pub id: u64,
    pub kicked: oneshot::Receiver<()>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    connections: HashMap<Uuid, HashMap<u64, oneshot::Sender<()>>>,
    /// Doctor profile id by user id, for doctors that ever set a status or took a call.
    doctor_of: HashMap<Uuid, Uuid>,
    wants_online: HashSet<Uuid>,
    busy: HashSet<Uuid>,
}

impl State {
    fn connected(&self, user_id: Uuid) -> bool {
        self.connections
            .get(&user_id)
            .is_some_and(|c| !c.is_empty())
    }

    fn status(&self, doctor_id: Uuid, user_id: Uuid) -> DoctorStatus {
        if !self.connected(user_id) {
            DoctorStatus::Offline
        } else if self.busy.contains(&doctor_id) {
            DoctorStatus::Busy
        } else if self.wants_online.contains(&doctor_id) {
            DoctorStatus::Online
        } else {
            DoctorStatus::Offline
        }
    }
}

pub struct Presence {
    bus: Arc<dyn EventBus>,
    state: Mutex<State>,
}

impl Presence {
    pub fn new(bus: Arc<dyn EventBus>) -> Self {
        Self {
            bus,
            state: Mutex::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `change` and publishes the doctor's status if it changed.
    fn with_doctor<T>(
        &self,
        doctor_id: Uuid,
        user_id: Uuid,
        change: impl FnOnce(&mut State) -> T,
    ) -> T {
        let mut state = self.state();
        state.doctor_of.insert(user_id, doctor_id);
        let before = state.status(doctor_id, user_id);
        let out = change(&mut state);
        let after = state.status(doctor_id, user_id);
        drop(state);
        if before != after {
            self.publish(doctor_id, after);
        }
        out
    }

    fn publish(&self, doctor_id: Uuid, status: DoctorStatus) {
        self.bus.publish(
            Topic::DoctorStatus,
            Event::DoctorStatus(DoctorStatusEvent {
                doctor_id,
                status,
                at: Utc::now(),
            }),
        );
    }

    pub fn connect(&self, user_id: Uuid) -> Connection {
        let (kick, kicked) = oneshot::channel();
        let mut state = self.state();
        state.next_id += 1;
        let id = state.next_id;
        state
            .connections
            .entry(user_id)
            .or_default()
            .insert(id, kick);
        Connection { id, kicked }
    }

    /// Forgets a closed connection; true if it was the user's last.
    pub fn disconnect(&self, user_id: Uuid, connection_id: u64) -> bool {
        let mut state = self.state();
        let doctor = state.doctor_of.get(&user_id).copied();
        let before = doctor.map(|d| state.status(d, user_id));
        if let Some(open) = state.connections.get_mut(&user_id) {
            open.remove(&connection_id);
            if open.is_empty() {
                state.connections.remove(&user_id);
            }
        }
        let last = !state.connected(user_id);
        if last && let Some(doctor_id) = doctor {
            // Coming back does not make a doctor ONLINE again by itself.
            state.wants_online.remove(&doctor_id);
        }
        let after = doctor.map(|d| state.status(d, user_id));
        drop(state);
        if let (Some(doctor_id), Some(before), Some(after)) = (doctor, before, after)
            && before != after
        {
            self.publish(doctor_id, after);
        }
        last
    }

    pub fn is_connected(&self, user_id: Uuid) -> bool {
        self.state().connected(user_id)
    }

    /// Closes every connection of the user (after logout or blocking).
    pub fn kick(&self, user_id: Uuid) {
        let kicks = self
            .state()
            .connections
            .remove(&user_id)
            .unwrap_or_default();
        for (_, kick) in kicks {
            let _ = kick.send(());
        }
    }

    /// The doctor's choice; false if they asked to be ONLINE without an open connection.
    pub fn set_available(
        &self,
        doctor_id: Uuid,
        user_id: Uuid,
        available: bool,
    ) -> Result<DoctorStatus, NotConnected> {
        self.with_doctor(doctor_id, user_id, |state| {
            if available && !state.connected(user_id) {
                return Err(NotConnected);
            }
            if available {
                state.wants_online.insert(doctor_id);
            } else {
                state.wants_online.remove(&doctor_id);
            }
            Ok(state.status(doctor_id, user_id))
        })
    }

    pub fn set_busy(&self, doctor_id: Uuid, user_id: Uuid, busy: bool) {
        self.with_doctor(doctor_id, user_id, |state| {
            if busy {
                state.busy.insert(doctor_id);
            } else {
                state.busy.remove(&doctor_id);
            }
        });
    }

    pub fn status(&self, doctor_id: Uuid, user_id: Uuid) -> DoctorStatus {
        self.state().status(doctor_id, user_id)
    }

    /// Doctors whose status is not OFFLINE, by profile id.
    pub fn present_doctors(&self) -> Vec<(Uuid, DoctorStatus)> {
        let state = self.state();
        state
            .doctor_of
            .iter()
            .map(|(user, doctor)| (*doctor, state.status(*doctor, *user)))
            .filter(|(_, status)| *status != DoctorStatus::Offline)
            .collect()
    }
}

#[derive(Debug)]
pub struct NotConnected;
