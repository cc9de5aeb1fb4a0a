//! Identifiers: time-ordered random ids written in lowercase Crockford base32.

use std::sync::Mutex;

use rand::RngCore;

use crate::domain::short_key::crockford_encode;
use crate::domain::time::Timestamp;

/// A new id `prefix_` + 26 characters: 48 bits of milliseconds then 80 random bits,
/// so that ids made at different times sort by time. Within one process, ids also
/// sort in the order they were made: one made in the same millisecond as (or a
/// clock step behind) the last is the last plus one. That gives lists an ordering
/// key any engine can use ("after this id"), in the order licenses were minted.
pub fn new_id(prefix: &str, now: Timestamp) -> String {
    static LAST: Mutex<u128> = Mutex::new(0);
    let millis = u64::try_from(now.timestamp_millis()).unwrap_or(0) & 0xFFFF_FFFF_FFFF;
    let mut random = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut random[6..]);
    let candidate = (u128::from(millis) << 80) | (u128::from_be_bytes(random) & ((1 << 80) - 1));
    let value = {
        // A poisoned lock holds a valid number: the last id made.
        let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
        let next = if candidate > *last {
            candidate
        } else {
            last.wrapping_add(1)
        };
        *last = next;
        next
    };
    let mut id = String::with_capacity(prefix.len() + 27);
    id.push_str(prefix);
    id.push('_');
    id.push_str(&crockford_encode(&value.to_be_bytes(), 26).to_ascii_lowercase());
    id
}

/// Characters after the prefix and `_` of an id.
pub const ID_BODY_CHARS: usize = 26;

/// Whether `c` is a character of lowercase Crockford base32 (no `i`, `l`, `o`, `u`).
pub fn is_id_char(c: char) -> bool {
    c.is_ascii_digit() || (c.is_ascii_lowercase() && !"ilou".contains(c))
}

/// Whether `s` has the shape of an id made by [`new_id`] with this prefix.
pub fn is_id(prefix: &str, s: &str) -> bool {
    s.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .is_some_and(|body| body.len() == ID_BODY_CHARS && body.chars().all(is_id_char))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::{from_unix, plus_days};

    #[test]
    fn ids_have_their_prefix_and_shape() {
        let id = new_id("lic", from_unix(1_700_000_000));
        assert!(is_id("lic", &id), "{id}");
        assert!(!is_id("tok", &id));
        assert!(!is_id("lic", "lic_short"));
    }

    #[test]
    fn later_ids_sort_after_earlier_ones() {
        let t = from_unix(1_700_000_000);
        let a = new_id("lic", t);
        let b = new_id("lic", plus_days(t, 1));
        assert!(a < b);
    }

    #[test]
    fn two_ids_made_at_once_differ() {
        let t = from_unix(1_700_000_000);
        assert_ne!(new_id("lic", t), new_id("lic", t));
    }

    #[test]
    fn ids_made_in_one_second_sort_in_the_order_they_were_made() {
        let t = from_unix(1_800_000_000);
        let ids: Vec<String> = (0..1000).map(|_| new_id("lic", t)).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }
}
