//! Failed sign-ins back off per account: after a few free failures, each further one locks the
//! account for twice as long as the last (up to a cap); a success forgets them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::clock::Clock;

/// Below this many accounts nothing is pruned.
const PRUNE_FLOOR: usize = 10_000;

struct Record {
    failures: u32,
    /// Microseconds of the server's clock, as every time below.
    locked_until: i64,
    /// The later of the last failure and the end of the lock: a record quiet for the longest
    /// wait from then on is forgotten.
    quiet_from: i64,
}

struct Records {
    map: HashMap<String, Record>,
    prune_at: usize,
}

pub struct Backoff {
    free_failures: u32,
    max_wait_micros: i64,
    clock: Clock,
    records: Mutex<Records>,
}

impl Backoff {
    pub fn new(free_failures: u32, max_wait: Duration, clock: Clock) -> Self {
        Self {
            free_failures,
            max_wait_micros: i64::try_from(max_wait.as_micros()).unwrap_or(i64::MAX),
            clock,
            records: Mutex::new(Records {
                map: HashMap::new(),
                prune_at: PRUNE_FLOOR,
            }),
        }
    }

    /// How long `account` stays locked, if it is.
    pub fn check(&self, account: &str) -> Result<(), Duration> {
        let now = self.now();
        let records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        match records.map.get(account) {
            Some(record) if record.locked_until > now => Err(micros(record.locked_until - now)),
            _ => Ok(()),
        }
    }

    /// Counts a failure; past the free ones it locks the account.
    pub fn failed(&self, account: &str) {
        let now = self.now();
        let max_wait = self.max_wait_micros;
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        if records.map.len() >= records.prune_at {
            records
                .map
                .retain(|_, record| now - record.quiet_from < max_wait);
            records.prune_at = PRUNE_FLOOR.max(records.map.len() * 2);
        }
        let record = records.map.entry(account.to_owned()).or_insert(Record {
            failures: 0,
            locked_until: now,
            quiet_from: now,
        });
        if now - record.quiet_from >= max_wait {
            record.failures = 0;
        }
        record.failures = record.failures.saturating_add(1);
        if let Some(beyond) = record.failures.checked_sub(self.free_failures + 1) {
            // 1 s, 2 s, 4 s, ... up to the cap.
            let wait = 1_000_000_i64
                .checked_shl(beyond.min(40))
                .map_or(max_wait, |wait| wait.min(max_wait));
            record.locked_until = now + wait;
        }
        record.quiet_from = now.max(record.locked_until);
    }

    /// A successful sign-in forgets the account's failures.
    pub fn succeeded(&self, account: &str) {
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        records.map.remove(account);
    }

    fn now(&self) -> i64 {
        self.clock.now().timestamp_micros()
    }
}

fn micros(value: i64) -> Duration {
    Duration::from_micros(u64::try_from(value).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_up_to_the_cap_and_resets_on_success_or_quiet() {
        let clock = Clock::default();
        let backoff = Backoff::new(2, Duration::from_secs(10), clock.clone());
        let fail = || {
            backoff.failed("ann");
            let wait = backoff
                .check("ann")
                .err()
                .map_or(0, |w| w.as_secs_f64().ceil() as i64);
            clock.shift(chrono::Duration::seconds(wait));
            wait
        };
        let waits: Vec<i64> = (0..7).map(|_| fail()).collect();
        assert_eq!(waits, [0, 0, 1, 2, 4, 8, 10]);
        assert_eq!(
            fail(),
            10,
            "the cap holds for as long as failures keep coming"
        );
        backoff.succeeded("ann");
        assert_eq!((fail(), fail(), fail()), (0, 0, 1), "a success starts over");
        clock.shift(chrono::Duration::seconds(10));
        assert_eq!(fail(), 0, "so does a quiet spell as long as the cap");
        assert!(backoff.check("bob").is_ok());
    }
}
