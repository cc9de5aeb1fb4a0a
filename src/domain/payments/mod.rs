//! Payments in: the providers' signed webhooks, checked and read into what keyclerk
//! does with them. One file per provider (its signature scheme and its payloads);
//! here the shapes they share, the mapping of the provider's ids to products, and
//! the rules that decide each event's outcome.
//!
//! The one picture of a payment event, for whoever reads what one did (the outgoing
//! webhooks derive `payment.applied` and `payment.unmapped` from it):
//! - each verified event is stored once per provider and event id as a
//!   [`PaymentEvent`], with its [`Outcome`] (`applied`, `duplicate`, `unmapped`,
//!   `failed`), the reason of any outcome but `applied`, and the licenses it touched;
//! - everything it does to a license (mint, renew, refund, suspend, revoke,
//!   reinstate, the end of a subscription) is in the audit log with the actor
//!   [`Provider::actor`], `{"type":"payment","provider":"stripe"}`, written
//!   `payment:stripe` ([`crate::domain::audit::Actor::label`]).

pub mod fastspring;
pub mod lemonsqueezy;
pub mod paddle;
pub mod paypro;
pub mod stripe;

use std::collections::BTreeMap;
use std::fmt;

use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::domain::audit::{Actor, AuditEvent};
use crate::domain::license::{Action, Email, License, LicenseStatus, MintRequest};
use crate::domain::product::{Catalog, MAX_SEATS};
use crate::domain::time::{self, Timestamp};
use crate::domain::DomainError;

/// Most payment events on one page of the list (and the default).
pub const MAX_PAYMENT_PAGE: u32 = 100;

/// A payment provider keyclerk takes webhooks from.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Stripe (`Stripe-Signature`).
    Stripe,
    /// Paddle Billing (`Paddle-Signature`).
    Paddle,
    /// Lemon Squeezy (`X-Signature`).
    LemonSqueezy,
    /// PayPro Global's IPN (form fields `SIGNATURE`).
    PayPro,
    /// FastSpring (`X-FS-Signature`).
    FastSpring,
}

impl Provider {
    /// Every provider, in the order the documentation lists them.
    pub const ALL: [Self; 5] = [
        Self::Stripe,
        Self::Paddle,
        Self::LemonSqueezy,
        Self::PayPro,
        Self::FastSpring,
    ];

    /// The name in the URL, the configuration and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stripe => "stripe",
            Self::Paddle => "paddle",
            Self::LemonSqueezy => "lemonsqueezy",
            Self::PayPro => "paypro",
            Self::FastSpring => "fastspring",
        }
    }

    /// Reads a provider's name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// Who acts in the audit log for what this provider's events do.
    pub fn actor(self) -> Actor {
        Actor::Payment {
            provider: self.as_str().to_owned(),
        }
    }

    /// The provider's own tolerance for the age of a signed timestamp, in seconds
    /// (Stripe's SDKs: 300; Paddle's: 5); `None` where nothing time-bound is signed.
    pub fn default_tolerance_secs(self) -> Option<u64> {
        match self {
            Self::Stripe => Some(300),
            Self::Paddle => Some(5),
            Self::LemonSqueezy | Self::PayPro | Self::FastSpring => None,
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A webhook secret from the configuration; its `Debug` prints no secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// A secret from its text.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret's bytes, for the HMAC key or the concatenation.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// What a price, variant or product id of the provider mints: a keyclerk product,
/// and optionally the seats of one unit (a quantity of units multiplies it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ProductMapping {
    /// `"price_1Photo" = "photo-pro"`.
    Product(String),
    /// `"price_1Team" = { product = "photo-pro", seats = 5 }`.
    WithSeats {
        /// The keyclerk product.
        product: String,
        /// Seats per unit bought (default: the product's).
        seats: Option<u32>,
    },
}

impl ProductMapping {
    /// The keyclerk product it names.
    pub fn product(&self) -> &str {
        match self {
            Self::Product(p) | Self::WithSeats { product: p, .. } => p,
        }
    }

    /// Seats per unit, when the mapping sets them.
    pub fn seats(&self) -> Option<u32> {
        match self {
            Self::Product(_) => None,
            Self::WithSeats { seats, .. } => *seats,
        }
    }
}

/// `[payments.<provider>]`: the secrets that sign its webhooks, its tolerance for
/// signed timestamps and the mapping of its ids to products.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    /// Every secret that may sign (several while one is rotated). One string, or a
    /// list (`KEYCLERK_PAYMENTS__STRIPE__WEBHOOK_SECRETS='["whsec_a","whsec_b"]'`).
    #[serde(default, deserialize_with = "one_or_many")]
    pub webhook_secrets: Vec<Secret>,
    /// Seconds a signed timestamp may lie from now (default: the provider's own).
    #[serde(default)]
    pub tolerance_seconds: Option<u64>,
    /// The provider's price, variant or product ids (or Stripe's
    /// `metadata.keyclerk_product` values) and what they mint.
    #[serde(default)]
    pub products: BTreeMap<String, ProductMapping>,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Secret>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![Secret(s)],
        OneOrMany::Many(v) => v.into_iter().map(Secret).collect(),
    })
}

impl ProviderSettings {
    /// The first problem of these settings against `catalog`, as (key, message),
    /// the key relative to `payments.<provider>`.
    pub fn problem(&self, products: &dyn Fn(&str) -> bool) -> Option<(String, String)> {
        if self.webhook_secrets.is_empty() {
            return Some((
                "webhook_secrets".into(),
                "at least one secret (the provider's signing secret)".into(),
            ));
        }
        if self.webhook_secrets.iter().any(|s| s.0.trim().is_empty()) {
            return Some((
                "webhook_secrets".into(),
                "a secret must not be empty".into(),
            ));
        }
        for (key, mapping) in &self.products {
            let name = format!("products.\"{key}\"");
            if !products(mapping.product()) {
                return Some((
                    name,
                    format!("no product `{}` in the catalog", mapping.product()),
                ));
            }
            if mapping
                .seats()
                .is_some_and(|s| !(1..=MAX_SEATS).contains(&s))
            {
                return Some((name, format!("seats must be between 1 and {MAX_SEATS}")));
            }
        }
        None
    }
}

/// A provider as configured: ready to check signatures and map ids.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// Which provider.
    pub provider: Provider,
    /// Its settings.
    pub settings: ProviderSettings,
}

impl ProviderConfig {
    /// The tolerance in force, in seconds (`None`: nothing time-bound is signed).
    pub fn tolerance_secs(&self) -> Option<u64> {
        self.provider
            .default_tolerance_secs()
            .map(|d| self.settings.tolerance_seconds.unwrap_or(d))
    }

    /// Checks the provider's signature over the raw `body` against every secret.
    /// `header` gives a request header by its lower-case name.
    pub fn verify(
        &self,
        header: &dyn Fn(&str) -> Option<String>,
        body: &[u8],
        now: Timestamp,
    ) -> Result<(), SignatureError> {
        let secrets = &self.settings.webhook_secrets;
        let tolerance = self.tolerance_secs();
        match self.provider {
            Provider::Stripe => stripe::verify(header, body, secrets, tolerance, now),
            Provider::Paddle => paddle::verify(header, body, secrets, tolerance, now),
            Provider::LemonSqueezy => lemonsqueezy::verify(header, body, secrets),
            Provider::PayPro => paypro::verify(body, secrets),
            Provider::FastSpring => fastspring::verify(header, body, secrets),
        }
    }
}

/// A missing, malformed, stale or wrong signature: which, is not told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the webhook's signature is missing, stale or does not match a configured secret")]
pub struct SignatureError;

/// A verified body that is not what the provider sends.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PayloadError(pub String);

impl PayloadError {
    /// A payload error saying `what`.
    pub fn new(what: impl Into<String>) -> Self {
        Self(what.into())
    }
}

/// Reads a verified body into the events it carries (FastSpring may batch several).
pub fn parse(provider: Provider, body: &[u8]) -> Result<Vec<ProviderEvent>, PayloadError> {
    match provider {
        Provider::Stripe => stripe::parse(body).map(|e| vec![e]),
        Provider::Paddle => paddle::parse(body).map(|e| vec![e]),
        Provider::LemonSqueezy => lemonsqueezy::parse(body).map(|e| vec![e]),
        Provider::PayPro => paypro::parse(body).map(|e| vec![e]),
        Provider::FastSpring => fastspring::parse(body),
    }
}

/// One event of a provider, read.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderEvent {
    /// The provider's id of the event (what makes a delivery a repeat).
    pub event_id: String,
    /// The provider's name of its type (`checkout.session.completed`).
    pub kind: String,
    /// When it happened, as the provider says.
    pub occurred_at: Option<Timestamp>,
    /// What it asks of keyclerk.
    pub intent: Intent,
}

/// What an event asks of keyclerk.
#[derive(Debug, Clone, PartialEq)]
pub enum Intent {
    /// An order was paid: mint.
    Purchase(Purchase),
    /// A subscription was paid again: renew its license.
    Renewal {
        /// Which license: its subscription.
        refs: Vec<Reference>,
        /// The end of the period paid for, where the payload says.
        period_end: Option<Timestamp>,
    },
    /// The money went back.
    Refund {
        /// Which license: its order or payment.
        refs: Vec<Reference>,
        /// All of it (the license closes) or part (recorded only).
        full: bool,
    },
    /// A chargeback: opened, won or lost.
    Dispute {
        /// Which license: its order or payment.
        refs: Vec<Reference>,
        /// Where the dispute stands.
        stage: DisputeStage,
    },
    /// The subscription ended: no further renewals.
    SubscriptionEnded {
        /// Which license: its subscription.
        refs: Vec<Reference>,
        /// The subscription's id.
        subscription: String,
    },
    /// Another reference of a license already minted (Lemon Squeezy's subscription,
    /// which arrives beside its order).
    Link {
        /// Which license: its order.
        refs: Vec<Reference>,
        /// The references to add.
        add: Vec<Reference>,
    },
    /// Nothing to do (an event type keyclerk does not act on, an unpaid session).
    Ignore(String),
}

/// Where a chargeback stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisputeStage {
    /// Opened: the license is suspended.
    Opened,
    /// Won by the seller: reinstated.
    Won,
    /// Lost: revoked.
    Lost,
}

/// A reference by which later events find a license: `order:…`,
/// `subscription:…`, `payment:…` (a provider's own id behind the prefix).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Reference(String);

impl Reference {
    /// The order of the provider with this id.
    pub fn order(id: &str) -> Self {
        Self(format!("order:{id}"))
    }
    /// The subscription of the provider with this id.
    pub fn subscription(id: &str) -> Self {
        Self(format!("subscription:{id}"))
    }
    /// A payment (Stripe's payment intent) with this id.
    pub fn payment(id: &str) -> Self {
        Self(format!("payment:{id}"))
    }
    /// As stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Reads a stored reference.
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }
}

/// A paid order.
#[derive(Debug, Clone, PartialEq)]
pub struct Purchase {
    /// The provider's stable id of the order.
    pub order_id: String,
    /// The buyer's email, if the payload carries it.
    pub email: Option<String>,
    /// What was bought.
    pub items: Vec<Item>,
    /// The subscription it starts, if any.
    pub subscription: Option<String>,
    /// Every reference of the order (its id, its payment, its subscription).
    pub refs: Vec<Reference>,
    /// The key is the answer (PayPro's `LicenseRequested`).
    pub answer_with_key: bool,
}

/// A line of an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The provider's ids of it, looked up in the mapping in this order (price
    /// before product).
    pub ids: Vec<String>,
    /// A keyclerk product named by the vendor's own metadata (Stripe's
    /// `metadata.keyclerk_product`), used when no mapping matches.
    pub named_product: Option<String>,
    /// Units bought.
    pub quantity: u32,
}

/// What a purchase mints, under the mapping in force.
pub fn mint_requests(
    provider: Provider,
    purchase: &Purchase,
    occurred_at: Option<Timestamp>,
    settings: &ProviderSettings,
    catalog: &Catalog,
) -> Result<Vec<MintRequest>, String> {
    if purchase.items.is_empty() {
        return Err(match provider {
            Provider::Stripe => {
                "the Checkout Session names no product: set metadata.keyclerk_product".into()
            }
            _ => "the order has no items".into(),
        });
    }
    let email = purchase
        .email
        .as_deref()
        .and_then(Email::parse)
        .map(Email::into_string);
    let mut metadata = serde_json::Map::new();
    metadata.insert("payment_provider".into(), provider.as_str().into());
    if let Some(sub) = &purchase.subscription {
        metadata.insert("subscription_id".into(), sub.as_str().into());
    }
    let mut out = Vec::with_capacity(purchase.items.len());
    for (n, item) in purchase.items.iter().enumerate() {
        let mapped = item.ids.iter().find_map(|id| settings.products.get(id));
        let (product, unit_seats) = match (mapped, &item.named_product) {
            (Some(m), _) => (m.product().to_owned(), m.seats()),
            (None, Some(named)) => match settings.products.get(named) {
                Some(m) => (m.product().to_owned(), m.seats()),
                None => (named.clone(), None),
            },
            (None, None) => {
                return Err(format!(
                    "no mapping for {} in [payments.{provider}.products]",
                    describe_ids(&item.ids)
                ))
            }
        };
        let Some(spec) = catalog.get(&product).map(|p| &p.spec) else {
            return Err(format!("no product `{product}` in the catalog"));
        };
        let seats = unit_seats
            .unwrap_or(spec.seats)
            .checked_mul(item.quantity.max(1))
            .filter(|s| *s <= MAX_SEATS)
            .ok_or_else(|| format!("more than {MAX_SEATS} seats"))?;
        let order_id = if n == 0 {
            format!("{provider}:{}", purchase.order_id)
        } else {
            format!("{provider}:{}:{n}", purchase.order_id)
        };
        out.push(MintRequest {
            product,
            order_id,
            customer_email: email.clone(),
            purchased_at: occurred_at.map(time::format),
            seats: Some(seats),
            entitlements: None,
            expires_at: None,
            metadata: Some(metadata.clone()),
            // The product's `deliver_by_email` decides; the language is the default.
            send_email: None,
            locale: None,
        });
    }
    Ok(out)
}

fn describe_ids(ids: &[String]) -> String {
    if ids.is_empty() {
        return "an item without an id".into();
    }
    ids.iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// What became of a verified event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It did what it asks (or there was nothing to do for its type).
    Applied,
    /// What it asks was done before (the order minted, the license already
    /// suspended): nothing changed.
    Duplicate,
    /// keyclerk cannot tell what it is about (an unknown price, an order it never
    /// saw); kept, and applied again on request once the mapping is fixed.
    Unmapped,
    /// A rule refused it (a refund of a revoked license, a body that cannot be read).
    Failed,
}

impl Outcome {
    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Duplicate => "duplicate",
            Self::Unmapped => "unmapped",
            Self::Failed => "failed",
        }
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Applied, Self::Duplicate, Self::Unmapped, Self::Failed]
            .into_iter()
            .find(|o| o.as_str() == s)
    }

    /// Whether applying it again may do something (`unmapped` and `failed`).
    pub fn may_apply_again(self) -> bool {
        matches!(self, Self::Unmapped | Self::Failed)
    }
}

/// A stored payment event.
#[derive(Debug, Clone, PartialEq)]
pub struct PaymentEvent {
    /// `pay_…`
    pub id: String,
    /// Whose.
    pub provider: Provider,
    /// The provider's id of the event.
    pub event_id: String,
    /// The provider's name of its type.
    pub kind: String,
    /// When keyclerk first received it.
    pub received_at: Timestamp,
    /// What became of it.
    pub outcome: Outcome,
    /// Why, for any outcome but a plain `applied`.
    pub reason: Option<String>,
    /// The licenses it minted or changed.
    pub licenses: Vec<String>,
    /// When its outcome was last decided.
    pub decided_at: Timestamp,
    /// The body as received.
    pub body: String,
}

/// A change a payment asks of the licenses its references find.
#[derive(Debug, Clone, PartialEq)]
pub enum LicenseChange {
    /// Suspend, reinstate, revoke or refund.
    Transition(Action),
    /// Renew, to the period end where there is one.
    Renew(Option<Timestamp>),
    /// The subscription ended: recorded, nothing else changes.
    EndSubscription(String),
}

/// A license found by a payment's references.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// The license.
    pub license: License,
    /// Whether the subscription it was found by has ended.
    pub subscription_ended: bool,
}

/// What a change does to the licenses found: each changed license with the event to
/// record, and the event's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Licenses to write, each with its audit event.
    pub changes: Vec<(License, AuditEvent)>,
    /// The outcome of the payment event.
    pub outcome: Outcome,
    /// Why, when not plainly applied.
    pub reason: Option<String>,
    /// Every license found (changed or not).
    pub licenses: Vec<String>,
}

/// The status a transition leads to, for telling "already done" from "refused".
fn target_status(action: Action) -> LicenseStatus {
    match action {
        Action::Suspend => LicenseStatus::Suspended,
        Action::Reinstate => LicenseStatus::Active,
        Action::Revoke => LicenseStatus::Revoked,
        Action::Refund => LicenseStatus::Refunded,
    }
}

/// Days a renewal must add so that the license runs to `end` (none: it already
/// does), counted as [`License::renew`] counts them: from the later of now and the
/// current expiry, whole days rounded up.
pub fn days_until(license: &License, end: Timestamp, now: Timestamp) -> Option<u32> {
    let from = license.expires_at.map_or(now, |e| e.max(now));
    let secs = (end - from).num_seconds();
    (secs > 0).then(|| u32::try_from((secs + 86_399) / 86_400).unwrap_or(u32::MAX))
}

/// Decides what `change` does to the licenses `found` at `now`, as `provider` asks.
pub fn plan(provider: Provider, change: &LicenseChange, found: Vec<Found>, now: Timestamp) -> Plan {
    let licenses: Vec<String> = found.iter().map(|f| f.license.id.clone()).collect();
    if found.is_empty() {
        return Plan {
            changes: Vec::new(),
            outcome: Outcome::Unmapped,
            reason: Some("no license of keyclerk belongs to this order or subscription".into()),
            licenses,
        };
    }
    let mut changes = Vec::new();
    let mut already = Vec::new();
    let mut refused = Vec::new();
    for Found {
        mut license,
        subscription_ended,
    } in found
    {
        let id = license.id.clone();
        let result = match change {
            LicenseChange::Transition(action) => {
                if license.status == target_status(*action) {
                    already.push(format!("{id} is already {}", license.status));
                    continue;
                }
                let reason = format!("{provider}: {}", action_reason(*action));
                license.transition(*action, Some(reason), now)
            }
            LicenseChange::Renew(end) => {
                if subscription_ended {
                    refused.push(format!("{id}: its subscription has ended"));
                    continue;
                }
                let days = match (end, license.expires_at) {
                    (Some(end), Some(_)) => match days_until(&license, *end, now) {
                        Some(d) => Some(d),
                        None => {
                            already.push(format!("{id} already runs to the period's end"));
                            continue;
                        }
                    },
                    _ => None,
                };
                license.apply_renewal(days, now)
            }
            LicenseChange::EndSubscription(subscription) => {
                if subscription_ended {
                    already.push(format!("{id}: its subscription had ended"));
                    continue;
                }
                Ok(AuditEvent::SubscriptionEnded {
                    provider: provider.as_str().to_owned(),
                    subscription: subscription.clone(),
                })
            }
        };
        match result {
            Ok(event) => changes.push((license, event)),
            Err(e) => refused.push(format!("{id}: {e}")),
        }
    }
    let (outcome, notes) = if !changes.is_empty() {
        let mut notes = already;
        notes.extend(refused);
        (Outcome::Applied, notes)
    } else if !refused.is_empty() {
        (Outcome::Failed, refused)
    } else {
        (Outcome::Duplicate, already)
    };
    Plan {
        changes,
        outcome,
        reason: (!notes.is_empty()).then(|| notes.join("; ")),
        licenses,
    }
}

fn action_reason(action: Action) -> &'static str {
    match action {
        Action::Suspend => "chargeback opened",
        Action::Reinstate => "chargeback won",
        Action::Revoke => "chargeback lost",
        Action::Refund => "refunded",
    }
}

/// The outcome of a mint: applied when it made a license, a duplicate when every
/// license was minted before (the same order by an earlier event), failed when a
/// rule refused it.
pub fn mint_outcome(
    created: usize,
    existing: usize,
    refused: &[DomainError],
) -> (Outcome, Option<String>) {
    let reason = (!refused.is_empty()).then(|| {
        refused
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    });
    if created > 0 {
        (Outcome::Applied, reason)
    } else if !refused.is_empty() {
        (Outcome::Failed, reason)
    } else if existing > 0 {
        (
            Outcome::Duplicate,
            Some("the order was minted before".into()),
        )
    } else {
        (Outcome::Failed, Some("nothing to mint".into()))
    }
}

/// HMAC-SHA256 of `parts`, one after the other, under `key`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes a key of any length: new_from_slice cannot fail.
    let mut mac = <hmac::Hmac<sha2_11::Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// Whether `given` (decoded) is `expected`, in constant time.
pub fn same(expected: &[u8], given: &[u8]) -> bool {
    expected.len() == given.len() && bool::from(expected.ct_eq(given))
}

/// Lower- or upper-case hex, decoded; `None` for anything else.
pub fn hex_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The SHA-256 of a body in hex: the name of an event that has no id of its own.
pub fn body_digest(body: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(body))
}

/// Whether a signed Unix time `t` is within `tolerance` seconds of `now`, either way.
pub fn fresh(t: i64, tolerance: u64, now: Timestamp) -> bool {
    now.timestamp().abs_diff(t) <= tolerance
}

/// A signature header of `key=value` parts that signs a Unix time with the body:
/// Stripe's `t=<unix>,v1=<hex>` over `"<t>.<body>"`, Paddle's `ts=<unix>;h1=<hex>`
/// over `"<ts>:<body>"`. Several signature parts may come (one per secret while the
/// provider rotates); other parts (Stripe's test-mode `v0`) are ignored.
pub(crate) struct TimedHeader {
    /// What separates the parts (`,` or `;`).
    pub parts: char,
    /// The key of the signed time (`t`, `ts`).
    pub time: &'static str,
    /// The key of a hex HMAC-SHA256 (`v1`, `h1`).
    pub signature: &'static str,
    /// What stands between the time and the body in the signed bytes.
    pub joiner: &'static [u8],
}

impl TimedHeader {
    /// Checks `value` over `body`: the first time part, within `tolerance` seconds of
    /// `now` when one is set, and any signature part matching any secret, compared in
    /// constant time.
    pub(crate) fn verify(
        &self,
        value: &str,
        body: &[u8],
        secrets: &[Secret],
        tolerance: Option<u64>,
        now: Timestamp,
    ) -> Result<(), SignatureError> {
        let mut time = None;
        let mut signatures = Vec::new();
        for part in value.split(self.parts) {
            match part.trim().split_once('=') {
                Some((k, v)) if k == self.time && time.is_none() => time = Some(v),
                Some((k, v)) if k == self.signature => signatures.extend(hex_decode(v)),
                _ => {}
            }
        }
        let time = time.ok_or(SignatureError)?;
        let at: i64 = time.parse().map_err(|_| SignatureError)?;
        if tolerance.is_some_and(|tol| !fresh(at, tol, now)) {
            return Err(SignatureError);
        }
        let matches = secrets.iter().any(|secret| {
            let expected = hmac_sha256(
                secret.expose().as_bytes(),
                &[time.as_bytes(), self.joiner, body],
            );
            signatures.iter().any(|s| same(&expected, s))
        });
        matches.then_some(()).ok_or(SignatureError)
    }
}

/// A JSON body as an object, or why not.
pub(crate) fn json_object(body: &[u8]) -> Result<serde_json::Value, PayloadError> {
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| PayloadError::new(format!("the body is not JSON: {e}")))?;
    if !v.is_object() {
        return Err(PayloadError::new("the body is not a JSON object"));
    }
    Ok(v)
}

/// The string at `pointer`, or a number there written as text; `None` for an
/// absent, null or empty value.
pub(crate) fn text_at(v: &serde_json::Value, pointer: &str) -> Option<String> {
    match v.pointer(pointer)? {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The text at `pointer`, or a payload error naming it.
pub(crate) fn required(v: &serde_json::Value, pointer: &str) -> Result<String, PayloadError> {
    text_at(v, pointer).ok_or_else(|| PayloadError::new(format!("`{pointer}` is missing")))
}

/// An RFC 3339 time at `pointer`.
pub(crate) fn time_at(v: &serde_json::Value, pointer: &str) -> Option<Timestamp> {
    text_at(v, pointer).and_then(|s| time::parse(&s))
}

/// A Unix time in seconds at `pointer`.
pub(crate) fn unix_at(v: &serde_json::Value, pointer: &str) -> Option<Timestamp> {
    v.pointer(pointer)
        .and_then(serde_json::Value::as_i64)
        .filter(|t| (0..=time::LATEST_UNIX).contains(t))
        .map(time::from_unix)
}

/// A whole number of units at `pointer` (default 1).
pub(crate) fn quantity_at(v: &serde_json::Value, pointer: &str) -> u32 {
    v.pointer(pointer)
        .and_then(|q| {
            q.as_u64()
                .or_else(|| q.as_str().and_then(|s| s.parse().ok()))
        })
        .and_then(|q| u32::try_from(q).ok())
        .filter(|q| *q > 0)
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::product::tests::photo_pro;
    use crate::domain::product::{Product, ProductId};

    /// Photo Pro (3 seats) and two others of the same policy.
    fn demo_catalog() -> Catalog {
        Catalog::new(
            ["photo-pro", "photo-basic", "studio-suite"].map(|id| Product {
                id: ProductId::parse(id).unwrap(),
                ..photo_pro()
            }),
        )
    }

    fn license() -> License {
        crate::domain::license::MintRequest {
            product: "photo-pro".into(),
            order_id: "stripe:o1".into(),
            customer_email: None,
            purchased_at: None,
            seats: None,
            entitlements: None,
            expires_at: None,
            metadata: None,
            send_email: None,
            locale: None,
        }
        .into_new_license(&photo_pro(), "lic_test".into(), at("2026-01-01T00:00:00Z"))
        .unwrap()
        .license
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        // RFC 4231 §4.3: key "Jefe", data "what do ya want for nothing?".
        let mac = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            hex(&mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn hex_round_trips_and_refuses_what_is_not_hex() {
        assert_eq!(hex_decode("00ff7A"), Some(vec![0, 255, 122]));
        assert_eq!(hex(&[0, 255, 122]), "00ff7a");
        for bad in ["0", "zz", "0g", "é1"] {
            assert_eq!(hex_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_secrets_debug_shows_no_secret() {
        let s = ProviderSettings {
            webhook_secrets: vec![Secret::new("whsec_topsecret")],
            ..Default::default()
        };
        assert!(!format!("{s:?}").contains("topsecret"));
    }

    fn at(s: &str) -> Timestamp {
        time::parse(s).unwrap()
    }

    fn found(status: LicenseStatus) -> Found {
        let mut l = license();
        l.status = status;
        Found {
            license: l,
            subscription_ended: false,
        }
    }

    #[test]
    fn a_change_without_a_license_is_unmapped() {
        let p = plan(
            Provider::Stripe,
            &LicenseChange::Transition(Action::Refund),
            vec![],
            at("2026-01-01T00:00:00Z"),
        );
        assert_eq!(p.outcome, Outcome::Unmapped);
    }

    #[test]
    fn transitions_apply_once_and_a_repeat_is_a_duplicate_and_a_refusal_fails() {
        let now = at("2026-01-02T00:00:00Z");
        use Action::*;
        use LicenseStatus::*;
        for (case, status, action, outcome) in [
            ("refund an active one", Active, Refund, Outcome::Applied),
            ("suspend on a chargeback", Active, Suspend, Outcome::Applied),
            ("suspend again", Suspended, Suspend, Outcome::Duplicate),
            (
                "reinstate a won one",
                Suspended,
                Reinstate,
                Outcome::Applied,
            ),
            ("revoke a lost one", Suspended, Revoke, Outcome::Applied),
            ("refund a revoked one", Revoked, Refund, Outcome::Failed),
            (
                "reinstate a revoked one",
                Revoked,
                Reinstate,
                Outcome::Failed,
            ),
        ] {
            let p = plan(
                Provider::Paddle,
                &LicenseChange::Transition(action),
                vec![found(status)],
                now,
            );
            assert_eq!(p.outcome, outcome, "{case}: {:?}", p.reason);
            assert_eq!(
                p.changes.len(),
                usize::from(outcome == Outcome::Applied),
                "{case}"
            );
        }
    }

    #[test]
    fn a_renewal_runs_to_the_period_end_once() {
        let now = at("2026-01-10T00:00:00Z");
        let mut f = found(LicenseStatus::Active);
        f.license.expires_at = Some(at("2026-01-15T00:00:00Z"));
        let end = at("2026-02-15T00:00:00Z");
        let p = plan(
            Provider::Stripe,
            &LicenseChange::Renew(Some(end)),
            vec![f.clone()],
            now,
        );
        assert_eq!(p.outcome, Outcome::Applied);
        let renewed = &p.changes[0].0;
        assert_eq!(renewed.expires_at, Some(end));
        let again = plan(
            Provider::Stripe,
            &LicenseChange::Renew(Some(end)),
            vec![Found {
                license: renewed.clone(),
                subscription_ended: false,
            }],
            now,
        );
        assert_eq!(again.outcome, Outcome::Duplicate);
        f.subscription_ended = true;
        let ended = plan(
            Provider::Stripe,
            &LicenseChange::Renew(Some(end)),
            vec![f],
            now,
        );
        assert_eq!(ended.outcome, Outcome::Failed);
    }

    #[test]
    fn a_renewal_without_a_period_end_adds_one_period() {
        let now = at("2026-01-10T00:00:00Z");
        let mut f = found(LicenseStatus::Active);
        f.license.expires_at = Some(at("2026-01-15T00:00:00Z"));
        let p = plan(Provider::PayPro, &LicenseChange::Renew(None), vec![f], now);
        assert_eq!(p.changes[0].0.expires_at, Some(at("2027-01-15T00:00:00Z")));
    }

    fn settings(products: &[(&str, ProductMapping)]) -> ProviderSettings {
        ProviderSettings {
            webhook_secrets: vec![Secret::new("s")],
            tolerance_seconds: None,
            products: products
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        }
    }

    fn purchase(items: Vec<Item>) -> Purchase {
        Purchase {
            order_id: "o1".into(),
            email: Some("Ann@Example.com".into()),
            items,
            subscription: Some("sub_1".into()),
            refs: vec![Reference::order("o1")],
            answer_with_key: false,
        }
    }

    fn item(ids: &[&str], quantity: u32) -> Item {
        Item {
            ids: ids.iter().map(|s| (*s).to_owned()).collect(),
            named_product: None,
            quantity,
        }
    }

    #[test]
    fn a_mapped_item_mints_its_product_with_quantity_times_seats() {
        let catalog = demo_catalog();
        let s = settings(&[(
            "pri_team",
            ProductMapping::WithSeats {
                product: "photo-pro".into(),
                seats: Some(5),
            },
        )]);
        let reqs = mint_requests(
            Provider::Paddle,
            &purchase(vec![item(&["pri_team", "pro_x"], 2)]),
            Some(at("2026-01-01T00:00:00Z")),
            &s,
            &catalog,
        )
        .unwrap();
        assert_eq!(reqs.len(), 1);
        let r = &reqs[0];
        assert_eq!((r.product.as_str(), r.seats), ("photo-pro", Some(10)));
        assert_eq!(r.order_id, "paddle:o1");
        assert_eq!(r.customer_email.as_deref(), Some("ann@example.com"));
        assert_eq!(r.purchased_at.as_deref(), Some("2026-01-01T00:00:00Z"));
        assert_eq!(
            r.metadata.as_ref().unwrap()["subscription_id"],
            serde_json::json!("sub_1")
        );
    }

    #[test]
    fn an_unknown_price_is_unmapped_with_its_ids_named() {
        let catalog = demo_catalog();
        let err = mint_requests(
            Provider::Stripe,
            &purchase(vec![item(&["price_x", "prod_y"], 1)]),
            None,
            &settings(&[]),
            &catalog,
        )
        .unwrap_err();
        assert!(err.contains("`price_x` or `prod_y`"), "{err}");
    }

    #[test]
    fn stripe_metadata_names_a_product_directly_or_through_the_mapping() {
        let catalog = demo_catalog();
        let mut it = item(&[], 1);
        it.named_product = Some("photo-basic".into());
        let direct = mint_requests(
            Provider::Stripe,
            &purchase(vec![it.clone()]),
            None,
            &settings(&[]),
            &catalog,
        )
        .unwrap();
        assert_eq!(direct[0].product, "photo-basic");
        let mapped = mint_requests(
            Provider::Stripe,
            &purchase(vec![it]),
            None,
            &settings(&[(
                "photo-basic",
                ProductMapping::Product("studio-suite".into()),
            )]),
            &catalog,
        )
        .unwrap();
        assert_eq!(mapped[0].product, "studio-suite");
    }

    #[test]
    fn a_mapping_to_an_unknown_product_is_a_problem_naming_its_key() {
        let s = settings(&[("price_x", ProductMapping::Product("nope".into()))]);
        let (key, message) = s.problem(&|p| p == "photo-pro").unwrap();
        assert_eq!(key, "products.\"price_x\"");
        assert!(message.contains("nope"), "{message}");
        let empty = ProviderSettings::default();
        assert_eq!(empty.problem(&|_| true).unwrap().0, "webhook_secrets");
    }
}
