//! Fixed-window request counters, in memory, per key (a license key's hash, an address).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::domain::time::Timestamp;

/// Counters beyond this many trigger a sweep of expired windows.
const SWEEP_AT: usize = 100_000;

/// At most `limit` hits per `window_secs` for each key.
#[derive(Debug)]
pub struct Limiter {
    limit: u32,
    window_secs: i64,
    counters: Mutex<HashMap<String, (i64, u32)>>,
}

impl Limiter {
    /// A limiter of `limit` hits per `window_secs`.
    pub fn new(limit: u32, window_secs: i64) -> Self {
        Self {
            limit,
            window_secs: window_secs.max(1),
            counters: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a hit for `key` at `now`; past the limit, the seconds until the window ends.
    pub fn hit(&self, key: &str, now: Timestamp) -> Result<(), u64> {
        let now = now.timestamp();
        let window = now - now.rem_euclid(self.window_secs);
        // A poisoned lock only means a panic elsewhere mid-update; counts stay counts.
        let mut map = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= SWEEP_AT {
            map.retain(|_, (start, _)| *start == window);
        }
        let slot = map.entry(key.to_owned()).or_insert((window, 0));
        if slot.0 != window {
            *slot = (window, 0);
        }
        if slot.1 >= self.limit {
            return Err(u64::try_from(window + self.window_secs - now)
                .unwrap_or(1)
                .max(1));
        }
        slot.1 += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::from_unix;

    #[test]
    fn a_key_gets_its_limit_per_window_and_others_are_not_touched() {
        let l = Limiter::new(2, 3600);
        let t = from_unix(7200 + 100);
        assert!(l.hit("a", t).is_ok());
        assert!(l.hit("a", t).is_ok());
        assert_eq!(l.hit("a", t), Err(3500));
        assert!(l.hit("b", t).is_ok());
        assert!(l.hit("a", from_unix(10_800)).is_ok(), "a new window");
    }
}
