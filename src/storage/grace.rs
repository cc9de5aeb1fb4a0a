//! Shapes the storage boundary uses for late claims: decisions, credit, claims.

use std::sync::Arc;

use crate::domain::audit::{Actor, ClaimStatus, CreditMove, NewEvent};
pub use crate::domain::grace::DecisionResult;
use crate::domain::grace::{
    ClaimRules, CreditKind, DecisionAsk, DecisionRecord, DecisionTerms, Effects, Evidence, Remedy,
};
use crate::domain::license::{License, NewLicense};
use crate::domain::mail::{Locale, NewMail};
use crate::domain::product::Price;
use crate::domain::time::Timestamp;
use crate::storage::{IssuedKey, StorageError};

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
    /// The mail telling the customer how their claim was decided, queued when the
    /// decision is made (not when a retry replays it).
    pub mail: Option<NewMail>,
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

/// A claim of a queue, with its license and the evidence a decision on it would
/// read, when those were asked for.
#[derive(Debug, Clone)]
pub struct QueuedClaim {
    /// The claim.
    pub claim: Claim,
    /// Its license and evidence (for the first claims of the queue only).
    pub read: Option<(License, Evidence)>,
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
    /// The language the customer filed it in (mail about it is written in it).
    pub locale: Locale,
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
    /// The customer's language.
    pub locale: Locale,
    /// Whether mail is sent (`[mail]` is set up): the customer is then told in the
    /// claim's transaction that it was received, or how the policy decided it.
    pub mail: bool,
}

impl NewClaim {
    /// The mail about this claim on `license`: received (filed for support), or
    /// decided (`decision`, the policy's extension; the same key works again).
    /// None without mail or without an address to write to.
    pub fn mail_about(&self, license: &License, decision: Option<&str>) -> Option<NewMail> {
        if !self.mail {
            return None;
        }
        let to = self
            .email
            .as_deref()
            .or(license.customer_email.as_deref())?;
        let product = self
            .rules
            .catalog
            .get(&license.product)
            .map_or(license.product.as_str(), |p| p.spec.name.as_str());
        Some(match decision {
            None => NewMail::claim_received(license, product, &self.id, to, self.locale),
            Some(id) => {
                NewMail::claim_decided(license, product, id, Remedy::Extend, None, to, self.locale)
            }
        })
    }
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

impl Redemption {
    /// The ledger line of this redemption at `now`.
    pub fn line(&self, now: Timestamp) -> Result<NewCreditLine, StorageError> {
        Ok(NewCreditLine {
            id: self.id.clone(),
            email: self.email.clone(),
            amount: CreditKind::Redeem.signed(&self.amount)?,
            currency: self.amount.currency.clone(),
            kind: CreditKind::Redeem,
            license_id: None,
            decision_id: None,
            order_id: Some(self.order_id.clone()),
            at: now,
            actor: self.actor.clone(),
        })
    }
}

/// A line of the credit ledger about to be written.
#[derive(Debug, Clone)]
pub struct NewCreditLine {
    /// `cre_...`
    pub id: String,
    /// The customer.
    pub email: String,
    /// Signed minor units: positive for a grant, negative for a redemption.
    pub amount: i64,
    /// ISO 4217.
    pub currency: String,
    /// Grant or redemption.
    pub kind: CreditKind,
    /// The license closed for it (grants).
    pub license_id: Option<String>,
    /// The decision that granted it.
    pub decision_id: Option<String>,
    /// The order it paid for (redemptions).
    pub order_id: Option<String>,
    /// When.
    pub at: Timestamp,
    /// Who.
    pub actor: Actor,
}

impl NewCreditLine {
    /// The event that records this line.
    pub fn event(&self) -> NewEvent {
        NewEvent {
            at: self.at,
            actor: self.actor.clone(),
            license_id: self.license_id.clone(),
            event: self.kind.event(CreditMove {
                entry: self.id.clone(),
                email: self.email.clone(),
                amount: self.amount,
                currency: self.currency.clone(),
                order_id: self.order_id.clone(),
            }),
        }
    }
}

/// Everything a decision writes, worked out once for every engine from the locked
/// license and its evidence; the engine stores it in this order: the fresh key, the
/// minted license, the credit line, the license's new state, the decision row, the
/// events, the claim's new status.
#[derive(Debug, Clone)]
pub struct DecisionWrites {
    /// The license after the decision.
    pub license: License,
    /// What the plan changes (fresh key, mint, whether the license changed).
    pub effects: Effects,
    /// `credit`: the ledger line.
    pub credit: Option<NewCreditLine>,
    /// The decision as stored and answered.
    pub decision: Decision,
    /// Its `result`, as the row stores it.
    pub result_json: String,
    /// The events of the decision (and of the license replacing it, if any).
    pub events: Vec<NewEvent>,
    /// The claim it closes, with the status it closes as.
    pub claim: Option<(String, ClaimStatus)>,
}

/// Plans the decision `req` on `license` (locked by the caller's transaction) with
/// the `evidence` read in it.
pub fn plan_decision(
    mut license: License,
    evidence: &Evidence,
    req: &GraceRequest,
    now: Timestamp,
) -> Result<DecisionWrites, StorageError> {
    let plan = license.plan_with(
        &req.terms,
        DecisionAsk {
            remedy: req.remedy,
            days: req.days,
            target_price: req.target.as_ref().map(|t| &t.price),
            email: req.email.as_deref(),
        },
        now,
    )?;
    let effects = plan.apply(&mut license, req.target.as_ref().map(|t| &t.license), now)?;
    let credit = match &effects.credit {
        Some(c) => Some(NewCreditLine {
            id: req.credit_id.clone(),
            email: c.email.clone(),
            amount: CreditKind::Grant.signed(&c.amount)?,
            currency: c.amount.currency.clone(),
            kind: CreditKind::Grant,
            license_id: Some(license.id.clone()),
            decision_id: Some(req.id.clone()),
            order_id: None,
            at: now,
            actor: req.actor.clone(),
        }),
        None => None,
    };
    let record = DecisionRecord {
        id: &req.id,
        remedy: req.remedy,
        automatic: req.automatic,
        reason: &req.reason,
        result: &effects.result,
        evidence,
        claim: req.claim_id.as_deref(),
    };
    let mut events = vec![NewEvent::about(
        &license.id,
        now,
        req.actor.clone(),
        record.event(),
    )];
    if let Some((new_id, event)) = record.replacement_event(&license.id) {
        events.push(NewEvent::about(&new_id, now, req.actor.clone(), event));
    }
    let json = |what: &str, e: serde_json::Error| StorageError::Corrupt(format!("{what}: {e}"));
    let result_json = serde_json::to_string(&effects.result).map_err(|e| json("result", e))?;
    let decision = Decision {
        id: req.id.clone(),
        license_id: license.id.clone(),
        remedy: req.remedy,
        reason: req.reason.clone(),
        actor: serde_json::to_value(&req.actor).map_err(|e| json("actor", e))?,
        automatic: req.automatic,
        at: now,
        evidence: serde_json::to_value(evidence).map_err(|e| json("evidence", e))?,
        result: effects.result.clone(),
        claim_id: req.claim_id.clone(),
    };
    let claim = req
        .claim_id
        .clone()
        .map(|c| (c, ClaimStatus::closed_by(req.automatic)));
    Ok(DecisionWrites {
        license,
        effects,
        credit,
        decision,
        result_json,
        events,
        claim,
    })
}
