//! Token buckets by key: a burst of `count` events, refilled at `count` per `period`.

use std::fmt;
use std::hash::Hash;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use foldhash::{HashMap, HashMapExt};
use serde::{Deserialize, Serialize};

use crate::clock::Clock;

/// `count` events per `period`, all of them at once after a quiet spell. Written `30/min`,
/// `200/4s` or `10/h` in the settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "Written", into = "String")]
pub struct Rate {
    count: u32,
    period_secs: u32,
}

impl Rate {
    pub const fn new(count: u32, period_secs: u32) -> Self {
        Self { count, period_secs }
    }
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        let invalid = || format!("{value:?} is not a rate such as 30/min, 200/4s or 10/h");
        let (count, period) = value.trim().split_once('/').ok_or_else(invalid)?;
        let count: u32 = count.trim().parse().map_err(|_| invalid())?;
        let period = period.trim();
        let digits = period.len()
            - period
                .trim_start_matches(|c: char| c.is_ascii_digit())
                .len();
        let (times, unit) = period.split_at(digits);
        let times: u32 = if times.is_empty() {
            1
        } else {
            times.parse().map_err(|_| invalid())?
        };
        let unit_secs = match unit {
            "s" => 1,
            "min" => 60,
            "h" => 3600,
            _ => return Err(invalid()),
        };
        let period_secs = times.checked_mul(unit_secs).ok_or_else(invalid)?;
        if count == 0 || period_secs == 0 {
            return Err(format!(
                "{value:?}: the count and the period must be at least 1"
            ));
        }
        Ok(Self::new(count, period_secs))
    }
}

/// A rate as the settings hold it; a bare number is read too, to say what it lacks.
#[derive(Deserialize)]
#[serde(untagged)]
enum Written {
    Text(String),
    Number(i64),
}

impl TryFrom<Written> for Rate {
    type Error = String;

    fn try_from(value: Written) -> Result<Self, String> {
        match value {
            Written::Text(text) => text.parse(),
            Written::Number(n) => Err(format!(
                "{n} is not a rate: say per how long, such as {n}/min, {n}/10s or {n}/h"
            )),
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (times, unit) = match self.period_secs {
            s if s % 3600 == 0 => (s / 3600, "h"),
            s if s % 60 == 0 => (s / 60, "min"),
            s => (s, "s"),
        };
        match times {
            1 => write!(f, "{}/{unit}", self.count),
            _ => write!(f, "{}/{times}{unit}", self.count),
        }
    }
}

impl From<Rate> for String {
    fn from(rate: Rate) -> Self {
        rate.to_string()
    }
}

/// Below this many keys nothing is pruned.
const PRUNE_FLOOR: usize = 10_000;

/// Tokens left, and when they were counted (microseconds of the server's clock).
type Bucket = (f64, i64);

struct Buckets<K> {
    map: HashMap<K, Bucket>,
    /// The size at which full buckets are dropped next: twice what survived the last pruning,
    /// so that pruning costs a constant per insert however many keys stay busy.
    prune_at: usize,
}

pub struct Limiter<K> {
    burst: f64,
    /// Tokens added per microsecond.
    refill: f64,
    clock: Clock,
    buckets: Mutex<Buckets<K>>,
}

impl<K: Hash + Eq> Limiter<K> {
    pub fn new(rate: Rate, clock: Clock) -> Self {
        let burst = f64::from(rate.count);
        Self {
            burst,
            refill: burst / (f64::from(rate.period_secs) * 1e6),
            clock,
            buckets: Mutex::new(Buckets {
                map: HashMap::new(),
                prune_at: PRUNE_FLOOR,
            }),
        }
    }

    /// Takes one token from `key`'s bucket, or says how long until there is one.
    pub fn check(&self, key: K) -> Result<(), Duration> {
        let now = self.clock.now().timestamp_micros();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.map.len() >= buckets.prune_at {
            // A full bucket says nothing a missing one would not.
            let (burst, refill) = (self.burst, self.refill);
            buckets
                .map
                .retain(|_, bucket| refilled(*bucket, now, refill) < burst);
            buckets.prune_at = PRUNE_FLOOR.max(buckets.map.len() * 2);
        }
        let bucket = buckets.map.entry(key).or_insert((self.burst, now));
        let tokens = refilled(*bucket, now, self.refill).min(self.burst);
        // A clock set back refills nothing until it has caught up again.
        *bucket = (tokens, bucket.1.max(now));
        if tokens >= 1.0 {
            bucket.0 -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_micros(
                ((1.0 - tokens) / self.refill).ceil() as u64
            ))
        }
    }
}

fn refilled((tokens, at): Bucket, now: i64, refill: f64) -> f64 {
    tokens + (now - at).max(0) as f64 * refill
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_and_print_the_same() {
        for (text, count, period) in [
            ("30/min", 30, 60),
            ("200/4s", 200, 4),
            ("10/h", 10, 3600),
            ("5/10min", 5, 600),
            ("1/s", 1, 1),
        ] {
            let rate: Rate = text.parse().unwrap();
            assert_eq!(rate, Rate::new(count, period), "{text}");
            assert_eq!(rate.to_string(), text);
        }
        for bad in [
            "", "30", "30/", "/min", "0/min", "3/0s", "3/day", "x/min", "3/-1s",
        ] {
            assert!(bad.parse::<Rate>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_bucket_refills_with_the_clock_and_says_how_long_to_wait() {
        let clock = Clock::default();
        let limiter = Limiter::new(Rate::new(2, 60), clock.clone());
        assert!(limiter.check("a").is_ok());
        assert!(limiter.check("a").is_ok());
        let wait = limiter.check("a").unwrap_err();
        assert!(
            wait > Duration::from_secs(29) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        assert!(limiter.check("b").is_ok(), "keys do not share a bucket");
        clock.shift(chrono::Duration::seconds(30));
        assert!(limiter.check("a").is_ok());
        assert!(limiter.check("a").is_err());
    }
}
