//! What this instance knows of the accounts that signed in on it: their role and the token
//! version their sessions carry, so that a socket's `connection_init` or an HTTP request with a
//! token already seen does not wait for the database.
//!
//! Whatever ends an account's sessions (logout, blocking, a password changed or reset, a
//! refresh token used twice) bumps its token version and forgets the account here, and on every
//! other instance through the bus's kick, which all instances hear. While the bus is down such
//! news may be lost, so the cache is not used then, and a reconnected bus starts it afresh.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use foldhash::HashMap;
use uuid::Uuid;

use crate::auth::Role;
use crate::events::Event;

/// Accounts remembered at most; past it the cache starts again (a few MiB at most).
const CAPACITY: usize = 100_000;
/// How long an answer is trusted without news. Sessions end through the service, which
/// forgets at once; this only bounds how long a change made behind its back (by hand, in
/// the database) goes unseen.
const FRESH_FOR: Duration = Duration::from_secs(60);

#[derive(Clone, Default)]
pub struct AccountCache {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    accounts: HashMap<Uuid, Known>,
    /// Counts forgets: a lookup that began before one must not store what it read.
    forgets: u64,
    /// The bus connection the entries were learnt under.
    epoch: u64,
}

struct Known {
    token_version: i64,
    role: Role,
    learnt: Instant,
}

/// Taken before reading an account, so that [`AccountCache::learn`] can tell whether the
/// answer may already be stale.
pub struct Lookup {
    forgets: u64,
    epoch: Option<u64>,
}

impl AccountCache {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The role of `user_id` if its sessions of `token_version` are known to be current.
    /// `epoch` is the bus's ([`crate::realtime::bus::EventBus::epoch`]).
    pub fn role(&self, user_id: Uuid, token_version: i64, epoch: Option<u64>) -> Option<Role> {
        let epoch = epoch?;
        let mut inner = self.lock();
        if inner.epoch != epoch {
            inner.accounts.clear();
            inner.epoch = epoch;
            return None;
        }
        let known = inner.accounts.get(&user_id)?;
        (known.token_version == token_version && known.learnt.elapsed() < FRESH_FOR)
            .then_some(known.role)
    }

    pub fn lookup(&self, epoch: Option<u64>) -> Lookup {
        Lookup {
            forgets: self.lock().forgets,
            epoch,
        }
    }

    /// Remembers what was read after `lookup`, unless an account was forgotten or the bus
    /// reconnected since.
    pub fn learn(&self, lookup: Lookup, user_id: Uuid, token_version: i64, role: Role) {
        let mut inner = self.lock();
        if lookup.forgets != inner.forgets || lookup.epoch != Some(inner.epoch) {
            return;
        }
        if inner.accounts.len() >= CAPACITY {
            inner.accounts.clear();
        }
        inner.accounts.insert(
            user_id,
            Known {
                token_version,
                role,
                learnt: Instant::now(),
            },
        );
    }

    /// The account's sessions ended.
    pub fn forget(&self, user_id: Uuid) {
        let mut inner = self.lock();
        inner.accounts.remove(&user_id);
        inner.forgets += 1;
    }

    /// Forgets accounts whose sessions another instance ended.
    pub fn observe(&self, event: &Event) {
        if let Event::Kick(user_id) = event {
            self.forget(*user_id);
        }
    }
}
