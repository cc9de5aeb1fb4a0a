//! The append-only audit log and its hash chain.
//!
//! `hash(n) = SHA-256(hash(n-1) || canonical(event n))`, with 32 zero bytes before the
//! first event. The canonical bytes are each field as an 8-byte big-endian length
//! followed by its UTF-8 bytes, in the order seq, at, actor, kind, license, data.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::grace::{DecisionResult, Remedy};
use crate::domain::product::Price;
use crate::domain::time::{self, Timestamp};

/// The hash that comes before the first event.
pub const GENESIS: [u8; 32] = [0u8; 32];

/// Most events on one page of a license's history (and the default).
pub const MAX_HISTORY_PAGE: u32 = 1000;

/// Who did something.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// A payment provider's verified webhook (see [`crate::domain::payments`]).
    Payment {
        /// `stripe`, `paddle`, `lemonsqueezy`, `paypro` or `fastspring`.
        provider: String,
    },
    /// A staff member signed in to the console.
    User {
        /// The account's email.
        email: String,
    },
}

impl Actor {
    /// The JSON stored in the log.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }

    /// The actor in one word, for people and logs: `token:tok_…`, `cli`,
    /// `license_key`, `system`, `payment:stripe`, `user:ann@example.com`.
    pub fn label(&self) -> String {
        match self {
            Self::Token { id, .. } => format!("token:{id}"),
            Self::Cli => "cli".into(),
            Self::LicenseKey => "license_key".into(),
            Self::System => "system".into(),
            Self::Payment { provider } => format!("payment:{provider}"),
            Self::User { email } => format!("user:{email}"),
        }
    }
}

/// Who freed a seat: only the customer's own deactivations count toward the churn
/// limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeactivatedBy {
    /// The customer's app, with the key.
    Customer,
    /// Support or admin, for a lost machine.
    Support,
    /// keyclerk, for a machine unseen too long.
    Released,
}

impl DeactivatedBy {
    /// The name stored with the activation.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Support => "support",
            Self::Released => "released",
        }
    }

    /// Whether this deactivation counts toward the customer's churn limit.
    pub fn counts_toward_churn(self) -> bool {
        self == Self::Customer
    }
}

/// What first presented a key to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresentedBy {
    /// `POST /v1/activations`.
    Activation,
    /// `POST /v1/validate`.
    Validation,
    /// `POST /v1/claims`.
    Claim,
}

/// Every kind of audit event with its data: the one definition of what the log
/// holds. Storage serializes it as `kind` and `data` and reads it back with
/// [`AuditEvent::from_stored`]; the evidence of a late claim reads these variants.
///
/// Field order does not matter to the stored bytes: `data` is written with its keys
/// sorted. `Option` fields are written as `null` when absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum AuditEvent {
    /// A license was minted.
    LicenseMinted {
        /// The shop's order.
        order_id: String,
        /// Its product.
        product: String,
        /// Its seats.
        seats: u32,
        /// Purchase time.
        #[serde(with = "time::serde_req")]
        purchased_at: Timestamp,
        /// Activation deadline.
        #[serde(with = "time::serde_opt")]
        activate_by: Option<Timestamp>,
        /// Expiry, if fixed.
        #[serde(with = "time::serde_opt")]
        expires_at: Option<Timestamp>,
        /// The signing key of its key.
        kid: String,
    },
    /// Suspended by the vendor.
    LicenseSuspended(StatusChange),
    /// Reinstated after a suspension.
    LicenseReinstated(StatusChange),
    /// Revoked.
    LicenseRevoked(StatusChange),
    /// Refunded.
    LicenseRefunded(StatusChange),
    /// Renewed by a payment.
    LicenseRenewed {
        /// Days added.
        days: u32,
        /// Expiry before.
        #[serde(with = "time::serde_opt")]
        expires_before: Option<Timestamp>,
        /// Expiry after.
        #[serde(with = "time::serde_opt")]
        expires_at: Option<Timestamp>,
        /// Days held back until the expiry starts.
        extra_days: u32,
    },
    /// An API token was made.
    TokenCreated {
        /// Its id.
        token: String,
        /// Its role.
        role: String,
        /// Its name.
        name: String,
    },
    /// A staff account of the console was made.
    StaffUserCreated {
        /// Its id.
        user: String,
        /// Its email.
        email: String,
        /// Its role.
        role: String,
    },
    /// A staff account was disabled (its sessions ended).
    StaffUserDisabled {
        /// Its id.
        user: String,
        /// Its email.
        email: String,
    },
    /// A staff account got a new setup link (its password and sessions ended).
    StaffUserReset {
        /// Its id.
        user: String,
        /// Its email.
        email: String,
    },
    /// A staff member set a password (and TOTP) through a setup link.
    StaffUserSetUp {
        /// Its id.
        user: String,
        /// Whether TOTP was set up.
        totp: bool,
    },
    /// An API token was revoked.
    TokenRevoked {
        /// Its id.
        token: String,
        /// Its name.
        name: String,
    },
    /// The database saw a signing key for the first time.
    SigningKeyRegistered {
        /// `k4.pid.…`
        kid: String,
        /// `k4.public.…`
        public_key: String,
    },
    /// A license's key was presented for the first time.
    KeyFirstPresented {
        /// Which endpoint saw it.
        by: PresentedBy,
    },
    /// A machine unseen too long lost its seat.
    ActivationReleased {
        /// The activation.
        activation: String,
        /// The product's `release_after_days`.
        after_days: u32,
    },
    /// A machine was refused.
    ActivationRefused {
        /// The refusal code.
        code: String,
        /// The machine.
        fingerprint: String,
    },
    /// A machine holding a seat got a fresh certificate.
    ActivationRefreshed {
        /// The activation.
        activation: String,
    },
    /// A machine took a seat.
    ActivationCreated {
        /// The activation.
        activation: String,
        /// The machine.
        fingerprint: String,
        /// Seats held after it.
        seats_in_use: u32,
        /// The license's expiry after it (it may start now).
        #[serde(with = "time::serde_opt")]
        expires_at: Option<Timestamp>,
    },
    /// A customer's deactivation was refused by the churn limit.
    DeactivationRefused {
        /// The activation.
        activation: String,
        /// `deactivation_limit_reached`.
        code: String,
        /// The limit.
        limit: u32,
    },
    /// A seat was freed.
    ActivationDeactivated {
        /// The activation.
        activation: String,
        /// The machine.
        fingerprint: String,
        /// Who freed it.
        by: DeactivatedBy,
        /// Support's note.
        reason: Option<String>,
    },
    /// A file of the license's product began downloading (a transfer from its
    /// first byte through a signed link).
    FileDownloaded {
        /// The file's name, as the product lists it.
        file: String,
    },
    /// A late-claim decision.
    GraceDecision {
        /// The decision id.
        decision: String,
        /// The remedy.
        remedy: Remedy,
        /// Granted by the policy.
        automatic: bool,
        /// Why.
        reason: String,
        /// What it did.
        result: Box<DecisionResult>,
        /// Days past the deadline.
        days_late: i64,
        /// Whether the key had ever been presented.
        ever_presented: bool,
        /// The claim it closed.
        claim: Option<String>,
    },
    /// This license replaces another (substitute, upgrade).
    LicenseReplaces {
        /// The license it replaces.
        supersedes: String,
        /// The decision.
        decision: String,
    },
    /// Store credit granted.
    CreditGranted(CreditMove),
    /// Store credit spent.
    CreditRedeemed(CreditMove),
    /// An upgrade's payment was confirmed.
    PaymentConfirmed {
        /// What was due.
        amount: Option<Price>,
    },
    /// A subscription ended at the payment provider: no further renewals; the
    /// license runs to its expiry.
    SubscriptionEnded {
        /// The provider.
        provider: String,
        /// The provider's subscription id.
        subscription: String,
    },
    /// A customer filed a claim.
    ClaimFiled {
        /// The claim.
        claim: String,
        /// `pending` or `granted`.
        status: ClaimStatus,
        /// Why the policy left it to support.
        note: Option<String>,
        /// The decision that granted it.
        decision: Option<String>,
        /// The email given.
        email: Option<String>,
    },
    /// An outgoing webhook endpoint was added, changed or removed.
    WebhookEndpointChanged {
        /// The endpoint.
        endpoint: String,
        /// `created`, `disabled`, `enabled`, `secret_rotated`, `removed`, or
        /// `disabled_gone` (its receiver answered 410).
        action: String,
        /// Where it sends.
        url: String,
    },
}

/// A lifecycle transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    /// Status before.
    pub from: String,
    /// Status after.
    pub to: String,
    /// Why.
    pub reason: Option<String>,
}

/// One line of the credit ledger, as the log records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditMove {
    /// The ledger entry.
    pub entry: String,
    /// Whose ledger.
    pub email: String,
    /// Minor units (negative for a redemption).
    pub amount: i64,
    /// ISO 4217.
    pub currency: String,
    /// The order a redemption paid for.
    pub order_id: Option<String>,
}

/// Where a customer's claim stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClaimStatus {
    /// Waiting for support.
    Pending,
    /// Granted by the policy at once.
    Granted,
    /// Decided by support.
    Resolved,
}

impl ClaimStatus {
    /// The name in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Granted => "granted",
            Self::Resolved => "resolved",
        }
    }

    /// Reads a status name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "granted" => Some(Self::Granted),
            "resolved" => Some(Self::Resolved),
            _ => None,
        }
    }

    /// How a claim closes with a decision: by the policy or by a person.
    pub fn closed_by(automatic: bool) -> Self {
        if automatic {
            Self::Granted
        } else {
            Self::Resolved
        }
    }
}

/// A stored event's `kind` and `data` could not be read as an [`AuditEvent`].
#[derive(Debug, thiserror::Error)]
#[error("event of kind `{kind}`: {source}")]
pub struct UnreadableEvent {
    /// The stored kind.
    pub kind: String,
    /// Why.
    pub source: serde_json::Error,
}

impl AuditEvent {
    /// The `kind` column and the `data` JSON stored for this event.
    pub fn to_stored(&self) -> (String, String) {
        // Serializing plain data with string keys into a Value cannot fail.
        let mut v = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        let kind = v["kind"].as_str().unwrap_or_default().to_owned();
        let data = v
            .get_mut("data")
            .map(serde_json::Value::take)
            .unwrap_or_else(|| serde_json::json!({}));
        (kind, data.to_string())
    }

    /// The event stored as `kind` and `data` (already parsed JSON).
    pub fn from_stored(kind: &str, data: serde_json::Value) -> Result<Self, UnreadableEvent> {
        serde_json::from_value(serde_json::json!({ "kind": kind, "data": data })).map_err(
            |source| UnreadableEvent {
                kind: kind.to_owned(),
                source,
            },
        )
    }

    /// The stored kind (`license_minted`, ...).
    pub fn kind(&self) -> String {
        self.to_stored().0
    }

    /// Events a key holder can repeat at will (a refused machine retrying, a machine
    /// refreshing) are chained once per license, subject, code and UTC day; the
    /// repeats of that day are counted beside the first instead of each growing the
    /// log. This is the window such an event falls in, or `None` for an event that
    /// is always chained.
    pub fn repeat_window(&self, at: Timestamp) -> Option<String> {
        let day = at.timestamp().div_euclid(86_400);
        match self {
            Self::ActivationRefused { code, fingerprint } => {
                Some(format!("activation_refused/{day}/{code}/{fingerprint}"))
            }
            Self::ActivationRefreshed { activation } => {
                Some(format!("activation_refreshed/{day}/{activation}"))
            }
            Self::DeactivationRefused {
                activation, code, ..
            } => Some(format!("deactivation_refused/{day}/{code}/{activation}")),
            // A download manager may start one file many times; the count is kept.
            Self::FileDownloaded { file } => Some(format!("file_downloaded/{day}/{file}")),
            _ => None,
        }
    }
}

/// How often a chained event repeated in its window (see
/// [`AuditEvent::repeat_window`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Repeats {
    /// Times it happened in its window, the chained one included.
    pub count: u64,
    /// The last time.
    #[serde(with = "time::serde_req")]
    #[schema(value_type = String, format = DateTime)]
    pub last_at: Timestamp,
}

/// An event about to be appended.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// When it happened.
    pub at: Timestamp,
    /// Who did it.
    pub actor: Actor,
    /// The license concerned, if any.
    pub license_id: Option<String>,
    /// What happened.
    pub event: AuditEvent,
}

impl NewEvent {
    /// An event about a license.
    pub fn about(license_id: &str, at: Timestamp, actor: Actor, event: AuditEvent) -> Self {
        Self {
            at,
            actor,
            license_id: Some(license_id.to_owned()),
            event,
        }
    }

    /// An event about no license (tokens, keys).
    pub fn general(at: Timestamp, actor: Actor, event: AuditEvent) -> Self {
        Self {
            at,
            actor,
            license_id: None,
            event,
        }
    }

    /// The record to hash and store at `seq`.
    pub fn record(&self, seq: i64) -> EventRecord {
        self.prepare().into_record(seq)
    }

    /// The event rendered as it will be stored, all but its place in the chain.
    pub fn prepare(&self) -> PreparedEvent {
        let (kind, data) = self.event.to_stored();
        PreparedEvent {
            at: self.at,
            actor: self.actor.to_json(),
            kind,
            license_id: self.license_id.clone(),
            data,
            repeat_window: self.event.repeat_window(self.at),
        }
    }
}

/// An event rendered to the text it is stored and hashed as, before it has a place
/// in the chain: made wherever is convenient (off the one writer), so that
/// appending it only numbers, hashes and stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedEvent {
    /// When it happened.
    pub at: Timestamp,
    /// Actor JSON.
    pub actor: String,
    /// Kind.
    pub kind: String,
    /// License id or none.
    pub license_id: Option<String>,
    /// Data JSON.
    pub data: String,
    /// Its [`AuditEvent::repeat_window`].
    pub repeat_window: Option<String>,
}

impl PreparedEvent {
    /// The record to hash and store at `seq`.
    pub fn into_record(self, seq: i64) -> EventRecord {
        EventRecord {
            seq,
            at: self.at.timestamp(),
            actor: self.actor,
            kind: self.kind,
            license_id: self.license_id,
            data: self.data,
        }
    }
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Position in the log, from 1 with no gaps.
    pub seq: i64,
    /// When it happened.
    pub at: Timestamp,
    /// Who did it (JSON).
    pub actor: serde_json::Value,
    /// What happened.
    pub kind: String,
    /// The license concerned.
    pub license_id: Option<String>,
    /// Details.
    pub data: serde_json::Value,
    /// For a refusal or refresh that repeated the same day: how often, until when.
    pub repeats: Option<Repeats>,
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
    /// The chained hash of this record after `prev`: SHA-256 of `prev`, then each
    /// field as its length (8 bytes, big-endian) and its bytes, the sequence number
    /// and the time in decimal.
    pub fn chain_hash(&self, prev: &[u8; 32]) -> [u8; 32] {
        let mut buf = Vec::with_capacity(16);
        put(&mut buf, self.seq.to_string().as_bytes());
        let mut h = Sha256::new();
        h.update(prev);
        h.update(&buf);
        h.update(self.hashed_after_seq());
        h.finalize().into()
    }

    /// What [`EventRecord::chain_hash`] hashes after `prev` and the sequence
    /// number: for an engine that numbers and hashes the event where the head is
    /// (PostgreSQL does, in the statement that appends it).
    pub fn hashed_after_seq(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(112 + self.actor.len() + self.data.len());
        put(&mut buf, self.at.to_string().as_bytes());
        put(&mut buf, self.actor.as_bytes());
        put(&mut buf, self.kind.as_bytes());
        put(
            &mut buf,
            self.license_id.as_deref().unwrap_or("").as_bytes(),
        );
        put(&mut buf, self.data.as_bytes());
        buf
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
    verify_chain_head(records, head_seq).map(|h| h.length)
}

/// The end of a verified chain: how many events, and the hash of the last one (the
/// genesis value when there is none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHead {
    /// Events in the chain.
    pub length: i64,
    /// The last event's hash.
    pub hash: [u8; 32],
}

/// As [`verify_chain`], with the head's hash too.
pub fn verify_chain_head(
    records: impl IntoIterator<Item = (EventRecord, [u8; 32])>,
    head_seq: i64,
) -> Result<ChainHead, ChainError> {
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
    Ok(ChainHead {
        length: last,
        hash: prev,
    })
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
    fn a_payment_provider_acts_as_payment_and_its_name() {
        let actor = crate::domain::payments::Provider::Stripe.actor();
        assert_eq!(actor.to_json(), r#"{"type":"payment","provider":"stripe"}"#);
        assert_eq!(actor.label(), "payment:stripe");
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

    #[test]
    fn an_event_is_stored_as_its_kind_and_sorted_data_and_reads_back() {
        let e = AuditEvent::ActivationCreated {
            activation: "act_1".into(),
            fingerprint: "fp".into(),
            seats_in_use: 1,
            expires_at: None,
        };
        let (kind, data) = e.to_stored();
        assert_eq!(kind, "activation_created");
        assert_eq!(
            data, r#"{"activation":"act_1","expires_at":null,"fingerprint":"fp","seats_in_use":1}"#,
            "the bytes the chain hashes: keys sorted, absent options as null"
        );
        let back = AuditEvent::from_stored(&kind, serde_json::from_str(&data).unwrap()).unwrap();
        assert_eq!(back, e);
        let t = AuditEvent::LicenseSuspended(StatusChange {
            from: "active".into(),
            to: "suspended".into(),
            reason: Some("chargeback".into()),
        });
        assert_eq!(
            t.to_stored(),
            (
                "license_suspended".to_owned(),
                r#"{"from":"active","reason":"chargeback","to":"suspended"}"#.to_owned()
            )
        );
        assert!(
            AuditEvent::from_stored("activation_created", serde_json::json!({"code": 1})).is_err(),
            "data that does not fit its kind is refused, not guessed"
        );
        assert!(AuditEvent::from_stored("no_such_kind", serde_json::json!({})).is_err());
    }
}
