//! Token-bucket rate limits per user and purpose (signals, chat messages).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use uuid::Uuid;

#[derive(Clone, Copy, Debug)]
pub struct Rate {
    /// Sustained events per second.
    pub per_second: f64,
    /// Events allowed at once after a quiet spell.
    pub burst: f64,
}

/// Tokens left, and when they were counted.
type Bucket = (f64, Instant);

#[derive(Default)]
pub struct Limiter {
    buckets: Mutex<HashMap<(Uuid, &'static str), Bucket>>,
}

impl Limiter {
    /// Takes one token from the user's bucket for `purpose`; false when it is empty.
    pub fn allow(&self, user_id: Uuid, purpose: &'static str, rate: Rate) -> bool {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > 100_000 {
            // Full buckets carry no information: drop them rather than grow without bound.
            buckets.retain(|_, (tokens, at)| {
                *tokens + at.elapsed().as_secs_f64() * rate.per_second < rate.burst
            });
        }
        let (tokens, at) = buckets
            .entry((user_id, purpose))
            .or_insert((rate.burst, now));
        *tokens =
            (*tokens + now.duration_since(*at).as_secs_f64() * rate.per_second).min(rate.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
