//! Shapes the storage boundary uses for late claims: decisions, credit, claims.

use std::sync::Arc;

use crate::domain::audit::{Actor, ClaimStatus};
pub use crate::domain::grace::DecisionResult;
use crate::domain::grace::{ClaimRules, DecisionTerms, Remedy};
use crate::domain::license::{License, NewLicense};
use crate::domain::product::Price;
use crate::domain::time::Timestamp;
use crate::storage::IssuedKey;

/// The other product of a substitute or upgrade, with the license it would mint.
#[derive(Debug, Clone)]
pub struct Target {
    /// The other product's price.
    pub price: Price,
    /// The license to mint if the decision stands (points back to the original).
    pub license: NewLicense,
    /// Its key, signed outside the writer.
    pub key: IssuedKey,
}

/// A retried request names its first attempt with an `Idempotency-Key`.
#[derive(Debug, Clone)]
pub struct Idempotency {
    /// The header's value.
    pub key: String,
    /// SHA-256 of the request, so another request under the same key is refused.
    pub request_hash: [u8; 32],
}

/// A grace decision to make on one license.
#[derive(Debug, Clone)]
pub struct GraceRequest {
    /// Id of the decision (`dec_...`).
    pub id: String,
    /// The license.
    pub license_id: String,
    /// The remedy asked for.
    pub remedy: Remedy,
    /// Why (always required).
    pub reason: String,
    /// `extend`: the window's length.
    pub days: Option<u32>,
    /// `credit`: the ledger's email if the license has none.
    pub email: Option<String>,
    /// `substitute`/`upgrade`: the other product.
    pub target: Option<Target>,
    /// `extend`: the license's key re-signed with the new deadline.
    pub fresh_key: Option<IssuedKey>,
    /// What the catalog and policy say, for the domain's plan (storage never reads
    /// them).
    pub terms: DecisionTerms,
    /// Who decides.
    pub actor: Actor,
    /// Granted by the policy, not a person.
    pub automatic: bool,
    /// The `Idempotency-Key`, if one was sent.
    pub idempotency: Option<Idempotency>,
    /// The claim this decision resolves.
    pub claim_id: Option<String>,
    /// Id of the ledger line if the decision grants credit (`cre_...`).
    pub credit_id: String,
}

/// A stored decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// `dec_...`
    pub id: String,
    /// The license decided on.
    pub license_id: String,
    /// The remedy granted.
    pub remedy: Remedy,
    /// Why.
    pub reason: String,
    /// Who decided (as in the audit log).
    pub actor: serde_json::Value,
    /// Granted by the policy.
    pub automatic: bool,
    /// When.
    pub at: Timestamp,
    /// What the log said at the time.
    pub evidence: serde_json::Value,
    /// What it did.
    pub result: DecisionResult,
    /// The claim it resolved, if any.
    pub claim_id: Option<String>,
}

/// A decision, new or found again by its `Idempotency-Key`.
#[derive(Debug, Clone)]
pub enum DecisionOutcome {
    /// Made now.
    Made(Decision),
    /// Made before under the same key; nothing was done twice.
    Replayed(Decision),
}

/// One line of a customer's credit ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditEntry {
    /// `cre_...`
    pub id: String,
    /// The customer.
    pub email: String,
    /// Positive for a grant, negative for a redemption (minor units).
    pub amount: i64,
    /// ISO 4217.
    pub currency: String,
    /// `grant` or `redeem`.
    pub kind: String,
    /// The license closed for it (grants).
    pub license_id: Option<String>,
    /// The decision that granted it.
    pub decision_id: Option<String>,
    /// The order it paid for (redemptions).
    pub order_id: Option<String>,
    /// When.
    pub at: Timestamp,
}

/// A redemption of store credit on an order.
#[derive(Debug, Clone)]
pub struct Redemption {
    /// Id if a new entry is made.
    pub id: String,
    /// The customer (lower-cased).
    pub email: String,
    /// The shop's order it pays for; redeeming is idempotent on it.
    pub order_id: String,
    /// How much.
    pub amount: Price,
    /// The vendor's token.
    pub actor: Actor,
}

/// A customer's claim, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// `clm_...`
    pub id: String,
    /// The license claimed.
    pub license_id: String,
    /// The email the customer gave.
    pub email: Option<String>,
    /// The customer's message.
    pub message: Option<String>,
    /// `pending`, `granted` (by the policy) or `resolved` (by support).
    pub status: ClaimStatus,
    /// Why the policy left it to support.
    pub note: Option<String>,
    /// The decision that closed it.
    pub decision_id: Option<String>,
    /// When it was filed.
    pub created_at: Timestamp,
    /// When it was closed.
    pub resolved_at: Option<Timestamp>,
}

/// A customer's claim to file.
#[derive(Debug, Clone)]
pub struct NewClaim {
    /// Id if a claim is filed.
    pub id: String,
    /// Id of the decision if the policy grants one.
    pub decision_id: String,
    /// Id of a ledger line, should a decision need one (`cre_...`).
    pub credit_id: String,
    /// SHA-256 of the key presented.
    pub key_hash: [u8; 32],
    /// The email given.
    pub email: Option<String>,
    /// The message given.
    pub message: Option<String>,
    /// The policy and the catalog, for the domain's judgement (storage never reads
    /// them).
    pub rules: Arc<ClaimRules>,
}

/// What a claim came to.
#[derive(Debug, Clone)]
pub enum ClaimOutcome {
    /// No license has that key.
    NotFound,
    /// The key works as it is; nothing was filed.
    NotNeeded(Box<License>),
    /// The policy extended the window at once.
    Granted(Box<Decision>),
    /// Filed for support.
    Filed(Box<Claim>),
}
