//! Token buckets per institution and per officer, in this process: a burst up to a minute's
//! allowance, refilled continuously. With several replicas each enforces its own share (the
//! Deployment's replica count divides the configured rate; see docs/operations.md).

use std::{collections::HashMap, sync::Mutex, time::Instant};

pub struct Limiter {
    per_minute: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Limiter {
    pub fn per_minute(per_minute: u32) -> Self {
        Self { per_minute: f64::from(per_minute), buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one token from `key`'s bucket; false when it is empty.
    pub fn take(&self, key: &str) -> bool {
        self.take_at(key, Instant::now())
    }

    fn take_at(&self, key: &str, now: Instant) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (tokens, last) = buckets.entry(key.to_owned()).or_insert((self.per_minute, now));
        let refill = now.saturating_duration_since(*last).as_secs_f64() * self.per_minute / 60.0;
        *tokens = (*tokens + refill).min(self.per_minute);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_gets_a_minutes_allowance_then_the_rate() {
        let limiter = Limiter::per_minute(60);
        let start = Instant::now();
        assert_eq!((0..100).filter(|_| limiter.take_at("o", start)).count(), 60);
        assert!(!limiter.take_at("o", start + Duration::from_millis(500)));
        assert!(limiter.take_at("o", start + Duration::from_millis(1600)), "one a second after that");
        assert!(limiter.take_at("other", start), "buckets are per key");
    }
}
