//! A cap on the connections open at once from one address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

type Open = Arc<Mutex<HashMap<IpAddr, u32>>>;

pub struct ConnectionCap {
    max: u32,
    open: Open,
}

/// One open connection; dropping it frees its place.
pub struct ConnectionPermit {
    open: Open,
    key: IpAddr,
}

impl ConnectionCap {
    pub fn new(max: u32) -> Self {
        Self {
            max,
            open: Arc::default(),
        }
    }

    /// A place for one more connection from `key`, unless it has `max` already.
    pub fn acquire(&self, key: IpAddr) -> Option<ConnectionPermit> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(key).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(ConnectionPermit {
            open: self.open.clone(),
            key,
        })
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}
