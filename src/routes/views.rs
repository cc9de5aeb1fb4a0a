//! The JSON bodies the API answers with: one type per body, which both serializes
//! it and documents it (crates.io's `Encodable*` views). Storage rows and domain
//! types are turned into views here, at the edge, so a column added to a table
//! reaches no client until a view names it.
//!
//! Each view keeps the schema name clients already know (`#[schema(as = ..)]`):
//! `ActivationView` is still `Activation` in the OpenAPI document.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::audit::{ClaimStatus, Event, Repeats};
use crate::domain::grace::Remedy;
use crate::domain::license::{License, LicenseStatus};
use crate::domain::product::{DurationFrom, KeyFormat, Price, Product};
use crate::domain::time::{self, Timestamp};
use crate::domain::token::{ApiToken, Role};
use crate::error::ApiError;
use crate::service::grace::{balances, ClaimAnswer, Granted};
use crate::service::{Activated, Deactivated, Minted, Validation};
use crate::storage::activation::Activation;
use crate::storage::grace::{Claim, CreditEntry, Decision, DecisionResult};
use crate::token::keyring::PublicKeyInfo;

/// A license as stored.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = License)]
pub struct LicenseView {
    /// `lic_...`
    pub id: String,
    /// Product slug (the product may since have left the catalog).
    pub product: String,
    /// The shop's order id; unique.
    pub order_id: String,
    /// Lower-cased customer email, if the shop gave one.
    pub customer_email: Option<String>,
    /// When the customer paid.
    #[serde(with = "time::serde_req")]
    #[schema(value_type = String, format = DateTime)]
    pub purchased_at: Timestamp,
    /// Deadline of the first activation; none = no deadline.
    #[serde(with = "time::serde_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub activate_by: Option<Timestamp>,
    /// End of the license; none = perpetual, or not known until first activation.
    #[serde(with = "time::serde_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
    /// Length of one period in days, kept from the product at mint time.
    pub duration_days: Option<u32>,
    /// Whether the period counts from purchase or first activation.
    pub duration_from: DurationFrom,
    /// Days paid for by renewals before the first activation, added when it happens.
    pub extra_days: u32,
    /// Machines that may hold an activation at once.
    pub seats: u32,
    /// Feature flags.
    pub entitlements: Vec<String>,
    /// Free-form data from the shop.
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// Where the license stands.
    pub status: LicenseStatus,
    /// Signed or short key.
    pub key_format: KeyFormat,
    /// What the customer paid: the product's price when it was minted.
    pub price: Option<Price>,
    /// The license this one replaced (a substitute or upgrade).
    pub supersedes: Option<String>,
    /// The license that replaced this one.
    pub superseded_by: Option<String>,
    /// What is still to be paid before an upgrade becomes usable.
    pub amount_due: Option<Price>,
    /// When the row was made.
    #[serde(with = "time::serde_req")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When the row last changed.
    #[serde(with = "time::serde_req")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl From<&License> for LicenseView {
    fn from(l: &License) -> Self {
        Self {
            id: l.id.clone(),
            product: l.product.clone(),
            order_id: l.order_id.clone(),
            customer_email: l.customer_email.clone(),
            purchased_at: l.purchased_at,
            activate_by: l.activate_by,
            expires_at: l.expires_at,
            duration_days: l.duration_days,
            duration_from: l.duration_from,
            extra_days: l.extra_days,
            seats: l.seats,
            entitlements: l.entitlements.clone(),
            metadata: l.metadata.clone(),
            status: l.status,
            key_format: l.key_format,
            price: l.price.clone(),
            supersedes: l.supersedes.clone(),
            superseded_by: l.superseded_by.clone(),
            amount_due: l.amount_due.clone(),
            created_at: l.created_at,
            updated_at: l.updated_at,
        }
    }
}

/// A license as a caller with only its key sees it: what an app needs to decide,
/// and nothing about the customer, the order or the price.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = AppLicense)]
pub struct AppLicenseView {
    /// `lic_...`
    pub id: String,
    /// Product slug.
    pub product: String,
    /// Where the license stands.
    pub status: LicenseStatus,
    /// Deadline of the first activation; none = no deadline.
    #[serde(with = "time::serde_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub activate_by: Option<Timestamp>,
    /// End of the license; none = perpetual, or not known until first activation.
    #[serde(with = "time::serde_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
    /// Machines that may hold an activation at once.
    pub seats: u32,
    /// Feature flags.
    pub entitlements: Vec<String>,
}

impl From<&License> for AppLicenseView {
    fn from(l: &License) -> Self {
        Self {
            id: l.id.clone(),
            product: l.product.clone(),
            status: l.status,
            activate_by: l.activate_by,
            expires_at: l.expires_at,
            seats: l.seats,
            entitlements: l.entitlements.clone(),
        }
    }
}

/// An activation as stored.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Activation)]
pub struct ActivationView {
    /// `act_...`
    pub id: String,
    /// The license it holds a seat of.
    pub license_id: String,
    /// The machine's fingerprint.
    pub fingerprint: String,
    /// A name the app gave the machine.
    pub name: Option<String>,
    /// The platform the app reported.
    pub platform: Option<String>,
    /// First activation of this machine.
    #[serde(with = "time::serde_req")]
    #[schema(value_type = String, format = DateTime)]
    pub activated_at: Timestamp,
    /// Last activation, refresh or validation.
    #[serde(with = "time::serde_req")]
    #[schema(value_type = String, format = DateTime)]
    pub last_seen: Timestamp,
    /// When the seat was freed, if it was.
    #[serde(with = "time::serde_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub deactivated_at: Option<Timestamp>,
}

impl From<&Activation> for ActivationView {
    fn from(a: &Activation) -> Self {
        Self {
            id: a.id.clone(),
            license_id: a.license_id.clone(),
            fingerprint: a.fingerprint.clone(),
            name: a.name.clone(),
            platform: a.platform.clone(),
            activated_at: a.activated_at,
            last_seen: a.last_seen,
            deactivated_at: a.deactivated_at,
        }
    }
}

/// What a decision did, beside the evidence.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = DecisionResult)]
pub struct DecisionResultView {
    /// `extend`: the new deadline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activate_by: Option<String>,
    /// `extend`: its length.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub days: Option<u32>,
    /// `substitute`/`upgrade`: the new license.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_license: Option<String>,
    /// `upgrade`: what is still to pay.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount_due: Option<Price>,
    /// `credit`: what went to the ledger.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credit: Option<Price>,
    /// `credit`: whose ledger.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credit_email: Option<String>,
    /// `refund`: what was paid back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund: Option<Price>,
}

impl From<&DecisionResult> for DecisionResultView {
    fn from(r: &DecisionResult) -> Self {
        Self {
            activate_by: r.activate_by.clone(),
            days: r.days,
            new_license: r.new_license.clone(),
            amount_due: r.amount_due.clone(),
            credit: r.credit.clone(),
            credit_email: r.credit_email.clone(),
            refund: r.refund.clone(),
        }
    }
}

/// A stored decision.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Decision)]
pub struct DecisionView {
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
    #[serde(with = "time::serde_req")]
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// What the log said at the time.
    pub evidence: serde_json::Value,
    /// What it did.
    pub result: DecisionResultView,
    /// The claim it resolved, if any.
    pub claim_id: Option<String>,
}

impl From<&Decision> for DecisionView {
    fn from(d: &Decision) -> Self {
        Self {
            id: d.id.clone(),
            license_id: d.license_id.clone(),
            remedy: d.remedy,
            reason: d.reason.clone(),
            actor: d.actor.clone(),
            automatic: d.automatic,
            at: d.at,
            evidence: d.evidence.clone(),
            result: DecisionResultView::from(&d.result),
            claim_id: d.claim_id.clone(),
        }
    }
}

/// A customer's claim, as stored.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Claim)]
pub struct ClaimView {
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
    #[serde(with = "time::serde_req")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When it was closed.
    #[serde(with = "time::serde_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub resolved_at: Option<Timestamp>,
}

impl From<&Claim> for ClaimView {
    fn from(c: &Claim) -> Self {
        Self {
            id: c.id.clone(),
            license_id: c.license_id.clone(),
            email: c.email.clone(),
            message: c.message.clone(),
            status: c.status,
            note: c.note.clone(),
            decision_id: c.decision_id.clone(),
            created_at: c.created_at,
            resolved_at: c.resolved_at,
        }
    }
}

/// One line of a customer's credit ledger.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = CreditEntry)]
pub struct CreditEntryView {
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
    #[serde(with = "time::serde_req")]
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
}

impl From<&CreditEntry> for CreditEntryView {
    fn from(e: &CreditEntry) -> Self {
        Self {
            id: e.id.clone(),
            email: e.email.clone(),
            amount: e.amount,
            currency: e.currency.clone(),
            kind: e.kind.clone(),
            license_id: e.license_id.clone(),
            decision_id: e.decision_id.clone(),
            order_id: e.order_id.clone(),
            at: e.at,
        }
    }
}

/// An event as stored.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Event)]
pub struct EventView {
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
    /// For a refusal or refresh that repeated the same day: how often, until when.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repeats: Option<Repeats>,
}

impl From<&Event> for EventView {
    fn from(e: &Event) -> Self {
        Self {
            seq: e.seq,
            at: e.at,
            actor: e.actor.clone(),
            kind: e.kind.clone(),
            license_id: e.license_id.clone(),
            data: e.data.clone(),
            repeats: e.repeats,
        }
    }
}

/// A token as stored (never with its secret).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = ApiToken)]
pub struct TokenView {
    /// `tok_...`
    pub id: String,
    /// What it may do.
    pub role: Role,
    /// Who it is for.
    pub name: String,
    /// Visible prefix of the secret.
    pub prefix: String,
    /// Creation time.
    #[serde(with = "time::serde_req")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// Revocation time, if revoked.
    #[serde(with = "time::serde_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<Timestamp>,
}

impl From<&ApiToken> for TokenView {
    fn from(t: &ApiToken) -> Self {
        Self {
            id: t.id.clone(),
            role: t.role,
            name: t.name.clone(),
            prefix: t.prefix.clone(),
            created_at: t.created_at,
            revoked_at: t.revoked_at,
        }
    }
}

/// Views of every row of a slice.
fn all<'a, T: 'a, V: From<&'a T>>(rows: impl IntoIterator<Item = &'a T>) -> Vec<V> {
    rows.into_iter().map(V::from).collect()
}

/// `GET /healthz`, `GET /readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    /// `ok` or `ready`.
    pub status: String,
}

impl Status {
    /// A status of this text.
    pub fn new(status: &str) -> Self {
        Self {
            status: status.to_owned(),
        }
    }
}

/// `GET /v1/keys`.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    /// Every signing key, active and retired.
    pub keys: Vec<PublicKeyInfo>,
}

/// `POST /v1/keys/reload`.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeysReloaded {
    /// Key ids loaded now that were not in use before (empty: nothing new).
    pub added: Vec<String>,
    /// The key that signs from now on.
    pub active: String,
    /// Every signing key now in use, active and retired.
    pub keys: Vec<PublicKeyInfo>,
}

/// `GET /v1/products`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductList {
    /// The catalog.
    pub products: Vec<Product>,
}

/// `GET /v1/tokens`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    /// Every token, never a secret.
    pub tokens: Vec<TokenView>,
}

impl TokenList {
    /// The list of these tokens.
    pub fn new(tokens: &[ApiToken]) -> Self {
        Self {
            tokens: all(tokens),
        }
    }
}

/// `POST /v1/tokens`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenCreated {
    /// The token.
    pub token: TokenView,
    /// The secret, shown this once.
    pub secret: String,
}

/// `POST /v1/tokens/{id}/revoke`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenBody {
    /// The token, revoked.
    pub token: TokenView,
}

/// A license and its key (`POST /v1/licenses`, `GET /v1/licenses/{id}`).
#[derive(Debug, Serialize, ToSchema)]
pub struct LicenseWithKey {
    /// The license.
    pub license: LicenseView,
    /// Its key: `v4.public.…` or a short key.
    pub key: String,
}

impl LicenseWithKey {
    /// A license with its key.
    pub fn new(license: &License, key: &str) -> Self {
        Self {
            license: license.into(),
            key: key.to_owned(),
        }
    }
}

impl From<&Minted> for LicenseWithKey {
    fn from(m: &Minted) -> Self {
        Self::new(&m.license, &m.key)
    }
}

/// One item's result in a batch.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchItem {
    /// Position in the request.
    pub index: u32,
    /// 201, 200, or the error's status.
    pub status: u16,
    /// When minted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license: Option<LicenseView>,
    /// When minted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// When refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::routes::openapi::Problem>)]
    pub error: Option<serde_json::Value>,
}

impl BatchItem {
    /// The result of the item at `index`.
    pub fn new(index: u32, result: &Result<Minted, ApiError>) -> Self {
        match result {
            Ok(m) => Self {
                index,
                status: if m.created { 201 } else { 200 },
                license: Some((&m.license).into()),
                key: Some(m.key.clone()),
                error: None,
            },
            Err(e) => {
                use actix_web::ResponseError;
                Self {
                    index,
                    status: e.status_code().as_u16(),
                    license: None,
                    key: None,
                    error: Some(e.problem()),
                }
            }
        }
    }
}

/// `POST /v1/licenses/batch`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResults {
    /// One per item, in order.
    pub results: Vec<BatchItem>,
}

/// `GET /v1/licenses`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = LicensePage)]
pub struct LicenseListing {
    /// The licenses.
    pub items: Vec<LicenseView>,
    /// The `after` of the next page; null at the end.
    pub next: Option<String>,
}

impl LicenseListing {
    /// These licenses, and the cursor of the page after them.
    pub fn new(items: &[License], next: Option<String>) -> Self {
        Self {
            items: all(items),
            next,
        }
    }
}

/// A license as it stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct LicenseBody {
    /// The license.
    pub license: LicenseView,
}

impl From<&License> for LicenseBody {
    fn from(l: &License) -> Self {
        Self { license: l.into() }
    }
}

/// `GET /v1/licenses/{id}/activations`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Machines {
    /// The license.
    pub license_id: String,
    /// Its seats.
    pub seats: u32,
    /// Seats held now.
    pub seats_in_use: u32,
    /// Every machine, newest first.
    pub activations: Vec<ActivationView>,
}

impl Machines {
    /// The machines of `license`.
    pub fn new(license: &License, activations: &[Activation]) -> Self {
        let in_use = activations
            .iter()
            .filter(|a| a.deactivated_at.is_none())
            .count();
        Self {
            license_id: license.id.clone(),
            seats: license.seats,
            seats_in_use: u32::try_from(in_use).unwrap_or(u32::MAX),
            activations: all(activations),
        }
    }
}

/// `GET /v1/licenses/{id}/history`.
#[derive(Debug, Serialize, ToSchema)]
pub struct History {
    /// The license.
    pub license_id: String,
    /// A page of its audit events, oldest first.
    pub events: Vec<EventView>,
    /// The `after` of the next page; null on the last page.
    pub next: Option<i64>,
}

impl History {
    /// A page of the events of the license `license_id`.
    pub fn new(license_id: &str, events: &[Event], next: Option<i64>) -> Self {
        Self {
            license_id: license_id.to_owned(),
            events: all(events),
            next,
        }
    }
}

/// `POST /v1/activations`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Activated)]
pub struct ActivationReply {
    /// The machine's seat.
    pub activation: ActivationView,
    /// The activation certificate (`v4.public.…`) the app keeps.
    pub certificate: String,
    /// The license, as its key holder sees it.
    pub license: AppLicenseView,
}

impl From<&Activated> for ActivationReply {
    fn from(done: &Activated) -> Self {
        Self {
            activation: (&done.activation).into(),
            certificate: done.certificate.clone(),
            license: (&done.license).into(),
        }
    }
}

/// `POST /v1/activations/{id}/deactivate`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Deactivated)]
pub struct DeactivationReply {
    /// The activation with its `deactivated_at`.
    pub activation: ActivationView,
    /// It was freed before: nothing changed (safe to retry).
    pub already_deactivated: bool,
}

impl From<&Deactivated> for DeactivationReply {
    fn from(done: &Deactivated) -> Self {
        Self {
            activation: (&done.activation).into(),
            already_deactivated: done.already,
        }
    }
}

/// The verdict of `POST /v1/validate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub enum ValidationCode {
    /// The license may be used (on this machine, when one was given).
    #[serde(rename = "VALID")]
    Valid,
    /// No license has this key (unknown, malformed or forged).
    #[serde(rename = "NOT_FOUND")]
    NotFound,
    /// Suspended by the vendor.
    #[serde(rename = "SUSPENDED")]
    Suspended,
    /// Revoked or refunded.
    #[serde(rename = "REVOKED")]
    Revoked,
    /// Replaced by another license.
    #[serde(rename = "SUPERSEDED")]
    Superseded,
    /// An upgrade waiting for its payment.
    #[serde(rename = "PENDING_PAYMENT")]
    PendingPayment,
    /// Past its expiry.
    #[serde(rename = "EXPIRED")]
    Expired,
    /// Never activated, and the window closed.
    #[serde(rename = "ACTIVATION_WINDOW_CLOSED")]
    ActivationWindowClosed,
    /// The machine holds no seat.
    #[serde(rename = "NOT_ACTIVATED")]
    NotActivated,
}

impl ValidationCode {
    /// The verdict the service names by `code` (`VALID`, `NOT_FOUND`, ...).
    pub fn parse(code: &str) -> Option<Self> {
        Some(match code {
            "VALID" => Self::Valid,
            "NOT_FOUND" => Self::NotFound,
            "SUSPENDED" => Self::Suspended,
            "REVOKED" => Self::Revoked,
            "SUPERSEDED" => Self::Superseded,
            "PENDING_PAYMENT" => Self::PendingPayment,
            "EXPIRED" => Self::Expired,
            "ACTIVATION_WINDOW_CLOSED" => Self::ActivationWindowClosed,
            "NOT_ACTIVATED" => Self::NotActivated,
            _ => return None,
        })
    }
}

/// `POST /v1/validate`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Validated {
    /// `code` is `VALID`.
    pub valid: bool,
    /// The verdict.
    pub code: ValidationCode,
    /// The license as its key holder sees it, when the key has one.
    pub license: Option<AppLicenseView>,
    /// With a `nonce`: a signed receipt (`v4.public.…`) of this answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt: Option<String>,
}

impl TryFrom<&Validation> for Validated {
    type Error = ApiError;

    fn try_from(v: &Validation) -> Result<Self, ApiError> {
        let code = ValidationCode::parse(v.code).ok_or_else(|| {
            ApiError::Internal(format!("validation code {} has no wire name", v.code))
        })?;
        Ok(Self {
            valid: code == ValidationCode::Valid,
            code,
            license: v.license.as_ref().map(AppLicenseView::from),
            receipt: v.receipt.clone(),
        })
    }
}

/// A grace decision (`POST /v1/licenses/{id}/grace-extension`, claims' resolve).
#[derive(Debug, Serialize, ToSchema)]
pub struct GraceDecision {
    /// The decision with its evidence.
    pub decision: DecisionView,
    /// Found again by its `Idempotency-Key`: nothing was done twice.
    pub replayed: bool,
    /// The license decided on, as it stands now.
    pub license: LicenseView,
    /// The license a substitute or upgrade made.
    pub new_license: Option<LicenseView>,
    /// The key the customer should use now.
    pub key: Option<String>,
    /// Store credit granted.
    pub credit: Option<Price>,
    /// What an upgrade still costs.
    pub amount_due: Option<Price>,
}

impl From<&Granted> for GraceDecision {
    fn from(g: &Granted) -> Self {
        Self {
            decision: (&g.decision).into(),
            replayed: g.replayed,
            license: (&g.license).into(),
            new_license: g.new_license.as_ref().map(LicenseView::from),
            key: g.key.clone(),
            credit: g.decision.result.credit.clone(),
            amount_due: g.decision.result.amount_due.clone(),
        }
    }
}

/// `POST /v1/claims`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ClaimAnswer)]
pub struct ClaimReply {
    /// `not_needed`, `granted` (200) or `pending` (202).
    pub status: String,
    /// For people.
    pub detail: String,
    /// The license as its key holder sees it (`not_needed`, `granted`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license: Option<AppLicenseView>,
    /// The policy's decision (`granted`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<DecisionView>,
    /// The claim support will decide (`pending`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claim: Option<ClaimView>,
}

impl From<&ClaimAnswer> for ClaimReply {
    fn from(answer: &ClaimAnswer) -> Self {
        let reply = |status: &str, detail: &str| Self {
            status: status.to_owned(),
            detail: detail.to_owned(),
            license: None,
            decision: None,
            claim: None,
        };
        match answer {
            ClaimAnswer::NotNeeded(license) => Self {
                license: Some(license.as_ref().into()),
                ..reply("not_needed", "the key can be activated as it is")
            },
            ClaimAnswer::Granted(granted) => Self {
                decision: Some((&granted.0).into()),
                license: Some((&granted.1).into()),
                ..reply(
                    "granted",
                    "the activation window is open again; activate with the same key",
                )
            },
            ClaimAnswer::Filed(claim) => Self {
                claim: Some(claim.as_ref().into()),
                ..reply("pending", "support will decide")
            },
        }
    }
}

/// `GET /v1/claims`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClaimList {
    /// Oldest first.
    pub claims: Vec<ClaimView>,
}

impl ClaimList {
    /// The list of these claims.
    pub fn new(claims: &[Claim]) -> Self {
        Self {
            claims: all(claims),
        }
    }
}

/// `GET /v1/credits`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Credits {
    /// The customer.
    pub email: String,
    /// Balance per currency, minor units.
    pub balances: BTreeMap<String, i64>,
    /// The ledger.
    pub entries: Vec<CreditEntryView>,
}

impl Credits {
    /// The ledger of `email`.
    pub fn new(email: &str, entries: &[CreditEntry]) -> Self {
        Self {
            email: email.to_owned(),
            balances: balances(entries),
            entries: all(entries),
        }
    }
}

/// `POST /v1/credits/redeem`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Redeemed {
    /// The ledger entry.
    pub entry: CreditEntryView,
    /// Balances after it.
    pub balances: BTreeMap<String, i64>,
}

impl Redeemed {
    /// `entry`, with the balances of the ledger after it.
    pub fn new(entry: &CreditEntry, ledger: &[CreditEntry]) -> Self {
        Self {
            entry: entry.into(),
            balances: balances(ledger),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::activation::Refusal;

    #[test]
    fn every_validation_code_the_service_gives_has_a_wire_name() {
        // Exhaustive: a new refusal fails to compile here until it is listed.
        let name = |r: Refusal| match r {
            Refusal::Suspended
            | Refusal::Revoked
            | Refusal::Superseded
            | Refusal::PendingPayment
            | Refusal::Expired
            | Refusal::WindowClosed
            | Refusal::SeatLimitReached => r.validation_code(),
        };
        let refusals = [
            Refusal::Suspended,
            Refusal::Revoked,
            Refusal::Superseded,
            Refusal::PendingPayment,
            Refusal::Expired,
            Refusal::WindowClosed,
            Refusal::SeatLimitReached,
        ];
        let codes = refusals
            .into_iter()
            .map(name)
            .chain(["VALID", "NOT_FOUND", "NOT_ACTIVATED"]);
        for code in codes {
            let parsed = ValidationCode::parse(code);
            assert!(parsed.is_some(), "{code}");
            assert_eq!(
                serde_json::to_value(parsed).ok(),
                Some(serde_json::Value::from(code))
            );
        }
    }
}
