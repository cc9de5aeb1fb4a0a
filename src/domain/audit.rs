//! The append-only audit log and its hash chain.
//!
//! `hash(n) = SHA-256(hash(n-1) || canonical(event n))`, with 32 zero bytes before the
//! first event. The canonical bytes are each field as an 8-byte big-endian length
//! followed by its UTF-8 bytes, in the order seq, at, actor, kind, license, data.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::domain::time::{self, Timestamp};

/// The hash that comes before the first event.
pub const GENESIS: [u8; 32] = [0u8; 32];

/// Who did something.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Actor {
    /// An API token.
    Token {
        /// Token id.
        id: String,
        /// Token name.
        name: String,
        /// Token role.
        role: String,
    },
    /// The operator at the command line.
    Cli,
    /// Whoever presented the license key (a customer's app).
    LicenseKey,
    /// The server itself (start-up, policy).
    System,
}

impl Actor {
    /// The JSON stored in the log.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }
}

/// An event about to be appended.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// When it happened.
    pub at: Timestamp,
    /// Who did it.
    pub actor: Actor,
    /// What happened (`license_minted`, ...).
    pub kind: &'static str,
    /// The license concerned, if any.
    pub license_id: Option<String>,
    /// Details, as a JSON object.
    pub data: serde_json::Value,
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Event {
    /// Position in the log, from 1 with no gaps.
    pub seq: i64,
    /// When it happened.
    #[serde(with = "time::serde_req")]
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// Who did it (JSON).
    pub actor: serde_json::Value,
    /// What happened.
    pub kind: String,
    /// The license concerned.
    pub license_id: Option<String>,
    /// Details.
    pub data: serde_json::Value,
}

/// The stored text of one event, exactly as it is hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    /// Position in the log.
    pub seq: i64,
    /// Unix seconds.
    pub at: i64,
    /// Actor JSON.
    pub actor: String,
    /// Kind.
    pub kind: String,
    /// License id or none.
    pub license_id: Option<String>,
    /// Data JSON.
    pub data: String,
}

fn put(buf: &mut Vec<u8>, field: &[u8]) {
    buf.extend_from_slice(&(field.len() as u64).to_be_bytes());
    buf.extend_from_slice(field);
}

impl EventRecord {
    /// The chained hash of this record after `prev`.
    pub fn chain_hash(&self, prev: &[u8; 32]) -> [u8; 32] {
        let mut buf = Vec::with_capacity(128 + self.actor.len() + self.data.len());
        put(&mut buf, self.seq.to_string().as_bytes());
        put(&mut buf, self.at.to_string().as_bytes());
        put(&mut buf, self.actor.as_bytes());
        put(&mut buf, self.kind.as_bytes());
        put(
            &mut buf,
            self.license_id.as_deref().unwrap_or("").as_bytes(),
        );
        put(&mut buf, self.data.as_bytes());
        let mut h = Sha256::new();
        h.update(prev);
        h.update(&buf);
        h.finalize().into()
    }
}

/// Where and why a chain stops being intact.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// The stored hash is not the hash of the stored content.
    #[error("event {seq}: its hash does not match its content or its predecessor (edited)")]
    HashMismatch {
        /// The first bad event.
        seq: i64,
    },
    /// A sequence number is missing.
    #[error("event {expected} is missing (found {found} next): events were removed")]
    Gap {
        /// The sequence number that should come next.
        expected: i64,
        /// The one that came.
        found: i64,
    },
    /// The log is shorter than its recorded head.
    #[error("the log ends at event {last} but its head says {head}: events were removed")]
    Truncated {
        /// The last event present.
        last: i64,
        /// The head recorded beside the log.
        head: i64,
    },
}

/// Walks records in order from the first and checks every link; returns the count.
pub fn verify_chain(
    records: impl IntoIterator<Item = (EventRecord, [u8; 32])>,
    head_seq: i64,
) -> Result<i64, ChainError> {
    let mut prev = GENESIS;
    let mut expected = 1;
    for (record, stored) in records {
        if record.seq != expected {
            return Err(ChainError::Gap {
                expected,
                found: record.seq,
            });
        }
        let computed = record.chain_hash(&prev);
        if computed != stored {
            return Err(ChainError::HashMismatch { seq: record.seq });
        }
        prev = stored;
        expected += 1;
    }
    let last = expected - 1;
    if last < head_seq {
        return Err(ChainError::Truncated {
            last,
            head: head_seq,
        });
    }
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: i64, data: &str) -> EventRecord {
        EventRecord {
            seq,
            at: 1_700_000_000 + seq,
            actor: Actor::System.to_json(),
            kind: "license_minted".into(),
            license_id: Some("lic_x".into()),
            data: data.into(),
        }
    }

    fn chain(n: i64) -> Vec<(EventRecord, [u8; 32])> {
        let mut prev = GENESIS;
        (1..=n)
            .map(|seq| {
                let r = record(seq, "{}");
                prev = r.chain_hash(&prev);
                (r, prev)
            })
            .collect()
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert_eq!(verify_chain(chain(5), 5), Ok(5));
        assert_eq!(verify_chain(Vec::new(), 0), Ok(0));
    }

    #[test]
    fn an_edited_event_is_named() {
        let mut c = chain(5);
        c[2].0.data = r#"{"seats":99}"#.into();
        assert_eq!(verify_chain(c, 5), Err(ChainError::HashMismatch { seq: 3 }));
    }

    #[test]
    fn a_removed_event_is_named() {
        let mut c = chain(5);
        c.remove(1);
        assert_eq!(
            verify_chain(c, 5),
            Err(ChainError::Gap {
                expected: 2,
                found: 3
            })
        );
    }

    #[test]
    fn a_removed_tail_is_caught_by_the_head() {
        let mut c = chain(5);
        c.pop();
        assert_eq!(
            verify_chain(c, 5),
            Err(ChainError::Truncated { last: 4, head: 5 })
        );
    }

    #[test]
    fn the_hash_pins_the_canonical_encoding() {
        let r = record(1, "{}");
        let h = r.chain_hash(&GENESIS);
        let mut expected = Vec::new();
        expected.extend_from_slice(&GENESIS);
        for f in [
            "1",
            "1700000001",
            r#"{"type":"system"}"#,
            "license_minted",
            "lic_x",
            "{}",
        ] {
            expected.extend_from_slice(&(f.len() as u64).to_be_bytes());
            expected.extend_from_slice(f.as_bytes());
        }
        let want: [u8; 32] = Sha256::digest(&expected).into();
        assert_eq!(h, want);
    }
}
