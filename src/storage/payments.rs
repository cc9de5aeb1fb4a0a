//! What the engines store of payment events, and what they are asked to do with
//! one: the shapes the [`crate::storage::Storage`] trait's payment operations take.
//!
//! Each engine applies a payment event in one write transaction: it looks the event
//! up by provider and event id (a repeat changes nothing), does its effect (mint,
//! a change decided by [`crate::domain::payments::plan`], a link), and stores the
//! event with its outcome, so that the event row and its effect commit together.

use crate::domain::license::NewLicense;
use crate::domain::payments::{LicenseChange, Outcome, PaymentEvent, Provider, Reference};
use crate::domain::time::Timestamp;
use crate::storage::{IssuedKey, MintOutcome, StorageError};

/// A verified event about to be stored.
#[derive(Debug, Clone)]
pub struct NewPaymentEvent {
    /// `pay_…` (used only if the event is new).
    pub id: String,
    /// Whose.
    pub provider: Provider,
    /// The provider's id of the event.
    pub event_id: String,
    /// The provider's name of its type.
    pub kind: String,
    /// When it arrived.
    pub received_at: Timestamp,
    /// The body as received.
    pub body: String,
}

/// What a payment event does, prepared by the service.
#[derive(Debug, Clone)]
pub enum PaymentEffect {
    /// Mint these licenses and link each to the order's references.
    Mint {
        /// The licenses, with their keys.
        licenses: Vec<(NewLicense, IssuedKey)>,
        /// The references later events will find them by.
        refs: Vec<Reference>,
    },
    /// Change the licenses the first matching reference finds.
    Change {
        /// Tried in order.
        refs: Vec<Reference>,
        /// What to do to them.
        change: LicenseChange,
    },
    /// Add references to the licenses the first matching reference finds.
    Link {
        /// Tried in order.
        refs: Vec<Reference>,
        /// What to add.
        add: Vec<Reference>,
    },
    /// Store the event with this outcome and nothing else.
    Record {
        /// Decided by the service (an ignored type, an unmapped price, a body that
        /// cannot be read).
        outcome: Outcome,
        /// Why.
        reason: Option<String>,
    },
}

/// A payment event to apply.
#[derive(Debug, Clone)]
pub struct PaymentRequest {
    /// The event as received.
    pub event: NewPaymentEvent,
    /// What it does.
    pub effect: PaymentEffect,
    /// Apply the stored event with this id again (after a mapping was fixed)
    /// instead of storing a new one; only an `unmapped` or `failed` one changes.
    pub again: Option<String>,
    /// The time of the change.
    pub now: Timestamp,
}

/// What applying a payment event did.
#[derive(Debug, Clone)]
pub struct PaymentResult {
    /// The event as stored now.
    pub event: PaymentEvent,
    /// The delivery was seen before (or the event was settled): nothing was done.
    pub repeated: bool,
    /// The licenses a mint made or found, with their keys.
    pub minted: Vec<MintOutcome>,
}

/// Filters of `GET /v1/payments/events`.
#[derive(Debug, Clone)]
pub struct PaymentFilter {
    /// Only this provider's.
    pub provider: Option<Provider>,
    /// Only events with this outcome.
    pub outcome: Option<Outcome>,
    /// At most this many.
    pub limit: u32,
    /// Events whose id sorts after this one (ids sort by arrival).
    pub after: Option<String>,
}

/// The license ids of an event, as stored (a JSON array).
pub fn licenses_column(ids: &[String]) -> String {
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())
}

/// A stored event from its columns.
#[expect(clippy::too_many_arguments, reason = "one argument per column")]
pub fn event_from_columns(
    id: String,
    provider: &str,
    event_id: String,
    kind: String,
    received_at: i64,
    outcome: &str,
    reason: Option<String>,
    licenses: &str,
    decided_at: i64,
    body: String,
) -> Result<PaymentEvent, StorageError> {
    let corrupt = |what: &str| StorageError::Corrupt(format!("payment_events.{what}"));
    Ok(PaymentEvent {
        id,
        provider: Provider::parse(provider).ok_or_else(|| corrupt("provider"))?,
        event_id,
        kind,
        received_at: crate::domain::time::from_unix(received_at),
        outcome: Outcome::parse(outcome).ok_or_else(|| corrupt("outcome"))?,
        reason,
        licenses: serde_json::from_str(licenses).map_err(|_| corrupt("licenses"))?,
        decided_at: crate::domain::time::from_unix(decided_at),
        body,
    })
}

/// The event a request stores, with its outcome decided.
pub fn decided(
    req: &NewPaymentEvent,
    outcome: Outcome,
    reason: Option<String>,
    licenses: Vec<String>,
    now: Timestamp,
) -> PaymentEvent {
    PaymentEvent {
        id: req.id.clone(),
        provider: req.provider,
        event_id: req.event_id.clone(),
        kind: req.kind.clone(),
        received_at: req.received_at,
        outcome,
        reason,
        licenses,
        decided_at: now,
        body: req.body.clone(),
    }
}
