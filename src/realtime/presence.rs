//! Who is connected, and what that makes each doctor: ONLINE, BUSY or OFFLINE.
//!
//! A user is connected while any WebSocket of theirs is open. A doctor's status is derived, not
//! stored: OFFLINE while not connected, BUSY while in a call, ONLINE if they chose to be,
//! OFFLINE otherwise. Every change of a doctor's status is published on the bus. With several
//! instances, the counts and doctor state live in Redis (`super::shared_presence`); the kick
//! handles of this instance's sockets always stay here.
//!
//! A user whose last connection goes has the call grace period to come back: presence records
//! when it ends, their calls end when it is over (see `take_overdue`), and a doctor back in time
//! is ONLINE again if they were.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use foldhash::HashMap;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::bus::{EventBus, Topic};
use super::shared_presence::{Change, SharedPresence};
use crate::error::AppError;
use crate::events::{DoctorStatus, DoctorStatusEvent, Event};

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
    /// Users whose last connection went, by the end of their grace period.
    lost: HashMap<Uuid, Instant>,
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

/// Where the shared part of presence lives: in this process, or in Redis for all instances.
enum Store {
    /// With the time a user whose last connection went has to come back.
    Local {
        grace: Duration,
    },
    Shared(Box<SharedPresence>),
}

pub struct Presence {
    bus: Arc<dyn EventBus>,
    /// This instance's sockets; with `Store::Local`, also everyone's doctor state.
    state: Mutex<State>,
    store: Store,
}

impl Presence {
    pub fn new(bus: Arc<dyn EventBus>, grace: Duration) -> Self {
        Self {
            bus,
            state: Mutex::default(),
            store: Store::Local { grace },
        }
    }

    /// Presence shared with other instances through Redis.
    pub fn shared(bus: Arc<dyn EventBus>, shared: SharedPresence) -> Self {
        Self {
            bus,
            state: Mutex::default(),
            store: Store::Shared(Box::new(shared)),
        }
    }

    /// Whether other instances share this presence (and send kicks through the bus).
    pub fn is_shared(&self) -> bool {
        matches!(self.store, Store::Shared(_))
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
        self.publish_change(doctor_id, (before, after));
        out
    }

    fn publish_change(&self, doctor_id: Uuid, (before, after): Change) {
        if before != after {
            self.publish(doctor_id, after);
        }
    }

    fn publish(&self, doctor_id: Uuid, status: DoctorStatus) {
        self.bus.publish(
            Topic::DoctorStatus,
            Event::DoctorStatus(Arc::new(DoctorStatusEvent {
                doctor_id,
                status,
                at: Utc::now(),
            })),
        );
    }

    /// Records an open connection; a doctor coming back in a call is BUSY again, and ONLINE
    /// again if they were and come back within the grace.
    pub async fn connect(&self, user_id: Uuid) -> Result<Connection, StoreError> {
        let (kick, kicked) = oneshot::channel();
        let id = self.connect_local(user_id, kick);
        if let Store::Shared(shared) = &self.store {
            match shared.connect(user_id).await {
                Ok(Some((doctor_id, change))) => self.publish_change(doctor_id, change),
                Ok(None) => {}
                Err(error) => {
                    self.forget(user_id, id);
                    return Err(StoreError(error));
                }
            }
        }
        Ok(Connection { id, kicked })
    }

    /// Adds the connection to this instance's table; with local presence, also does what
    /// coming back does to a doctor's status.
    fn connect_local(&self, user_id: Uuid, kick: oneshot::Sender<()>) -> u64 {
        let mut state = self.state();
        state.next_id += 1;
        let id = state.next_id;
        let doctor = match self.store {
            Store::Local { .. } => state.doctor_of.get(&user_id).copied(),
            Store::Shared(_) => None,
        };
        let before = doctor.map(|d| state.status(d, user_id));
        if !state.connected(user_id) {
            let back_in_time = state
                .lost
                .remove(&user_id)
                .is_some_and(|due| Instant::now() < due);
            if let Some(doctor_id) = doctor.filter(|_| !back_in_time) {
                state.wants_online.remove(&doctor_id);
            }
        }
        state
            .connections
            .entry(user_id)
            .or_default()
            .insert(id, kick);
        let after = doctor.map(|d| state.status(d, user_id));
        drop(state);
        if let (Some(doctor_id), Some(before), Some(after)) = (doctor, before, after) {
            self.publish_change(doctor_id, (before, after));
        }
        id
    }

    /// Removes a connection from this instance's table; true if it was the user's last here.
    fn forget(&self, user_id: Uuid, connection_id: u64) -> bool {
        let mut state = self.state();
        if let Some(open) = state.connections.get_mut(&user_id) {
            open.remove(&connection_id);
            if open.is_empty() {
                state.connections.remove(&user_id);
            }
        }
        !state.connected(user_id)
    }

    /// Forgets a closed connection; true if it was the user's last (on any instance).
    pub async fn disconnect(&self, user_id: Uuid, connection_id: u64) -> Result<bool, StoreError> {
        let shared = match &self.store {
            Store::Shared(shared) => shared,
            Store::Local { grace } => {
                return Ok(self.disconnect_local(user_id, connection_id, *grace));
            }
        };
        self.forget(user_id, connection_id);
        let (last, doctor) = shared.disconnect(user_id).await.map_err(StoreError)?;
        if let Some((doctor_id, change)) = doctor {
            self.publish_change(doctor_id, change);
        }
        Ok(last)
    }

    fn disconnect_local(&self, user_id: Uuid, connection_id: u64, grace: Duration) -> bool {
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
        if last {
            state.lost.insert(user_id, Instant::now() + grace);
        }
        let after = doctor.map(|d| state.status(d, user_id));
        drop(state);
        if let (Some(doctor_id), Some(before), Some(after)) = (doctor, before, after) {
            self.publish_change(doctor_id, (before, after));
        }
        last
    }

    /// The users whose grace ended without them coming back, wherever they lost their last
    /// connection; with several instances, each is returned to one instance only.
    pub async fn take_overdue(&self) -> Result<Vec<Uuid>, StoreError> {
        if let Store::Shared(shared) = &self.store {
            return shared.take_overdue().await.map_err(StoreError);
        }
        let now = Instant::now();
        let mut state = self.state();
        let overdue: Vec<Uuid> = state
            .lost
            .iter()
            .filter(|(_, due)| **due <= now)
            .map(|(user, _)| *user)
            .collect();
        for user in &overdue {
            state.lost.remove(user);
        }
        Ok(overdue)
    }

    /// Closes every connection of the user, on this instance at once and on the others
    /// through the bus (after logout or blocking). Every instance hears kicks, also those
    /// where the user has no socket, for what they remember of the account.
    pub fn kick(&self, user_id: Uuid) {
        self.close_local(user_id);
        if let Store::Shared(_) = self.store {
            self.bus.publish(Topic::Accounts, Event::Kick(user_id));
        }
    }

    /// Closes every connection of the user on this instance (for a kick from another one).
    pub fn close_local(&self, user_id: Uuid) {
        let kicks = self
            .state()
            .connections
            .remove(&user_id)
            .unwrap_or_default();
        for (_, kick) in kicks {
            let _ = kick.send(());
        }
    }

    /// The doctor's choice; `NotConnected` if they asked to be ONLINE without an open
    /// connection.
    pub async fn set_available(
        &self,
        doctor_id: Uuid,
        user_id: Uuid,
        available: bool,
    ) -> Result<DoctorStatus, PresenceError> {
        if let Store::Shared(shared) = &self.store {
            let change = shared
                .set_flag(doctor_id, user_id, "online", available)
                .await
                .map_err(|e| PresenceError::Store(StoreError(e)))?
                .ok_or(PresenceError::NotConnected)?;
            self.publish_change(doctor_id, change);
            return Ok(change.1);
        }
        self.with_doctor(doctor_id, user_id, |state| {
            if available && !state.connected(user_id) {
                return Err(PresenceError::NotConnected);
            }
            if available {
                state.wants_online.insert(doctor_id);
            } else {
                state.wants_online.remove(&doctor_id);
            }
            Ok(state.status(doctor_id, user_id))
        })
    }

    pub async fn set_busy(
        &self,
        doctor_id: Uuid,
        user_id: Uuid,
        busy: bool,
    ) -> Result<(), StoreError> {
        if let Store::Shared(shared) = &self.store {
            if let Some(change) = shared
                .set_flag(doctor_id, user_id, "busy", busy)
                .await
                .map_err(StoreError)?
            {
                self.publish_change(doctor_id, change);
            }
            return Ok(());
        }
        self.with_doctor(doctor_id, user_id, |state| {
            if busy {
                state.busy.insert(doctor_id);
            } else {
                state.busy.remove(&doctor_id);
            }
        });
        Ok(())
    }

    pub async fn status(&self, doctor_id: Uuid, user_id: Uuid) -> Result<DoctorStatus, StoreError> {
        match &self.store {
            Store::Local { .. } => Ok(self.state().status(doctor_id, user_id)),
            Store::Shared(shared) => shared.status(doctor_id, user_id).await.map_err(StoreError),
        }
    }

    /// Doctors whose status is not OFFLINE, by profile id.
    pub async fn present_doctors(&self) -> Result<Vec<(Uuid, DoctorStatus)>, StoreError> {
        if let Store::Shared(shared) = &self.store {
            return shared.present_doctors().await.map_err(StoreError);
        }
        let state = self.state();
        Ok(state
            .doctor_of
            .iter()
            .map(|(user, doctor)| (*doctor, state.status(*doctor, *user)))
            .filter(|(_, status)| *status != DoctorStatus::Offline)
            .collect())
    }

    /// How often [`Self::heartbeat`] must run: with shared presence only.
    pub fn heartbeat_every(&self) -> Option<Duration> {
        match &self.store {
            Store::Shared(shared) => Some(shared.heartbeat_every()),
            Store::Local { .. } => None,
        }
    }

    /// With shared presence: refreshes this instance's heartbeat, and forgets instances that
    /// vanished (their users start their grace; their doctors go OFFLINE).
    pub async fn heartbeat(&self) -> Result<(), StoreError> {
        let Store::Shared(shared) = &self.store else {
            return Ok(());
        };
        let local: Vec<(Uuid, usize)> = self
            .state()
            .connections
            .iter()
            .map(|(user, open)| (*user, open.len()))
            .collect();
        for doctor_id in shared.heartbeat(&local).await.map_err(StoreError)? {
            self.publish(doctor_id, DoctorStatus::Offline);
        }
        Ok(())
    }

    /// With shared presence: this instance stops and leaves the others nothing to wait for;
    /// users of sockets still open start their grace.
    pub async fn leave(&self) -> Result<(), StoreError> {
        let Store::Shared(shared) = &self.store else {
            return Ok(());
        };
        for doctor_id in shared.leave().await.map_err(StoreError)? {
            self.publish(doctor_id, DoctorStatus::Offline);
        }
        Ok(())
    }
}

/// Redis failed to read or change presence.
#[derive(Debug)]
pub struct StoreError(pub redis::RedisError);

impl From<StoreError> for AppError {
    fn from(error: StoreError) -> Self {
        AppError::internal(error.0)
    }
}

#[derive(Debug)]
pub enum PresenceError {
    NotConnected,
    Store(StoreError),
}
