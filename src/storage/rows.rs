//! Engine-neutral glue between stored columns and domain values: what every engine
//! needs around its SQL, written once.

use crate::domain::audit::{AuditEvent, Event, Repeats};
use crate::domain::grace::{PastEvent, Remedy};
use crate::domain::product::Price;
use crate::domain::time;
use crate::storage::{MintOutcome, StorageError};

/// A price from its two columns; none unless both are there.
pub fn price_from(amount: Option<i64>, currency: Option<String>) -> Option<Price> {
    Some(Price {
        amount: u64::try_from(amount?).ok()?,
        currency: currency?,
    })
}

/// A price as two columns.
pub fn price_columns(p: Option<&Price>) -> (Option<i64>, Option<&str>) {
    (
        p.and_then(|p| i64::try_from(p.amount).ok()),
        p.map(|p| p.currency.as_str()),
    )
}

/// The repeats counted beside a chained event: shown only once it repeated.
pub fn repeats_from(
    count: Option<i64>,
    last_at: Option<i64>,
) -> Result<Option<Repeats>, StorageError> {
    match (count, last_at) {
        (Some(count), Some(last_at)) if count > 1 => Ok(Some(Repeats {
            count: u64::try_from(count)
                .map_err(|_| StorageError::Corrupt("repeat count".into()))?,
            last_at: time::from_unix(last_at),
        })),
        _ => Ok(None),
    }
}

/// Stored events as the evidence reads them, oldest first.
pub fn past_events(mut events: Vec<Event>) -> Result<Vec<PastEvent>, StorageError> {
    events.sort_by_key(|e| e.seq);
    events
        .into_iter()
        .map(|e| {
            let event = AuditEvent::from_stored(&e.kind, e.data)
                .map_err(|err| StorageError::Corrupt(format!("event {}: {err}", e.seq)))?;
            Ok(PastEvent {
                at: e.at,
                event,
                repeats: e.repeats,
            })
        })
        .collect()
}

/// A remedy from its stored name.
pub fn remedy_of(s: &str) -> Option<Remedy> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
}

/// One item of a batch mint: a rule's refusal fails the item alone (it is refused
/// before it writes anything); any other error fails the whole batch.
pub fn batch_item(
    result: Result<MintOutcome, StorageError>,
) -> Result<Result<MintOutcome, StorageError>, StorageError> {
    match result {
        Ok(outcome) => Ok(Ok(outcome)),
        Err(refused @ StorageError::Domain(_)) => Ok(Err(refused)),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remedies_read_back_from_their_names() {
        for r in [
            Remedy::Extend,
            Remedy::Substitute,
            Remedy::Upgrade,
            Remedy::Credit,
            Remedy::Refund,
            Remedy::Decline,
        ] {
            assert_eq!(remedy_of(r.as_str()), Some(r));
        }
    }

    #[test]
    fn an_event_that_happened_once_shows_no_repeats() {
        assert!(repeats_from(Some(1), Some(5)).unwrap().is_none());
        assert_eq!(repeats_from(Some(3), Some(5)).unwrap().unwrap().count, 3);
    }
}
