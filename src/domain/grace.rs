//! Late claims: the remedies support can grant a customer who never activated in
//! time, the evidence each decision carries, and the self-serve policy.
//!
//! Every rule takes `now`; the evidence is computed from the license's audit events.

use serde::{Deserialize, Serialize};

use crate::domain::audit::{AuditEvent, ClaimStatus, CreditMove, Repeats};
use crate::domain::license::{License, LicenseStatus, NewLicense};
use crate::domain::product::{Catalog, Price};
use crate::domain::text::{Chars, TextRule};
use crate::domain::time::{self, plus_days, Timestamp};
use crate::domain::DomainError;

/// What support (or the policy) grants a late claimer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Remedy {
    /// Re-open the activation window; the same key works again.
    Extend,
    /// A license for another product of equal or lower price; the old one is closed.
    Substitute,
    /// A license for a dearer product, usable once the difference is paid.
    Upgrade,
    /// The price paid goes to the customer's store credit; the old license is closed.
    Credit,
    /// The refund is recorded; the old license is closed.
    Refund,
    /// Nothing changes; the reason is recorded.
    Decline,
}

impl Remedy {
    /// The name in requests and in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Extend => "extend",
            Self::Substitute => "substitute",
            Self::Upgrade => "upgrade",
            Self::Credit => "credit",
            Self::Refund => "refund",
            Self::Decline => "decline",
        }
    }

    /// Whether the remedy mints a license for another product (and so takes, and
    /// needs, `product`).
    pub fn mints(self) -> bool {
        matches!(self, Self::Substitute | Self::Upgrade)
    }

    /// Whether the remedy takes `days`: the length of the window it opens.
    pub fn takes_days(self) -> bool {
        self == Self::Extend
    }

    /// Whether the remedy takes `email`: the ledger the credit goes to.
    pub fn takes_email(self) -> bool {
        self == Self::Credit
    }

    /// Every remedy.
    pub const ALL: [Self; 6] = [
        Self::Extend,
        Self::Substitute,
        Self::Upgrade,
        Self::Credit,
        Self::Refund,
        Self::Decline,
    ];
}

/// A field of a decision that only some remedies take.
#[derive(Debug, Clone, Copy)]
pub struct RemedyField {
    /// Its name in the request.
    pub name: &'static str,
    /// Whether a remedy takes it.
    pub takes: fn(Remedy) -> bool,
    /// Whether the remedies that take it need it too (`product_required`).
    pub needed: bool,
}

/// The fields of a decision that only some remedies take: another remedy given
/// one is refused, not silently ignored.
pub const REMEDY_FIELDS: [RemedyField; 3] = [
    RemedyField {
        name: "days",
        takes: Remedy::takes_days,
        needed: false,
    },
    RemedyField {
        name: "product",
        takes: Remedy::mints,
        needed: true,
    },
    RemedyField {
        name: "email",
        takes: Remedy::takes_email,
        needed: false,
    },
];

/// Refuses a field `remedy` does not take; `given` names the fields sent.
pub fn check_remedy_fields(remedy: Remedy, given: &[&str]) -> Result<(), DomainError> {
    for field in REMEDY_FIELDS {
        if given.contains(&field.name) && !(field.takes)(remedy) {
            let takers: Vec<&str> = Remedy::ALL
                .into_iter()
                .filter(|r| (field.takes)(*r))
                .map(Remedy::as_str)
                .collect();
            return Err(DomainError::field(
                field.name,
                format!("only {} takes {}", takers.join(" and "), field.name),
            ));
        }
    }
    Ok(())
}

/// Longest `Idempotency-Key` accepted.
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 200;

/// What an `Idempotency-Key` may be.
pub const IDEMPOTENCY_KEY: TextRule = TextRule {
    chars: Chars::AsciiGraphic,
    max_chars: MAX_IDEMPOTENCY_KEY_CHARS,
    required: true,
};

/// An audit event of the license, as the evidence reads it.
#[derive(Debug, Clone)]
pub struct PastEvent {
    /// When.
    pub at: Timestamp,
    /// What happened.
    pub event: AuditEvent,
    /// How often it repeated that day, if it did.
    pub repeats: Option<Repeats>,
}

/// The events the evidence reads, so that storage reads only those (with an index)
/// and never a license's whole history: of the kinds in `first_of` only the first
/// event matters, of those in `all_of` every one.
pub struct EvidenceEvents;

impl EvidenceEvents {
    /// Kinds of which the evidence reads only the first event.
    pub const FIRST_OF: [&'static str; 2] = ["key_first_presented", "activation_created"];
    /// Kinds of which the evidence reads every event (refusals are chained at most
    /// once per machine, code and day, so these stay few).
    /// Downloads are chained once per file and day with a count, so these stay few too.
    pub const ALL_OF: [&'static str; 3] =
        ["activation_refused", "grace_decision", "file_downloaded"];
}

/// What a decision did, beside the evidence.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DecisionResult {
    /// `extend`: the new deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activate_by: Option<String>,
    /// `extend`: its length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<u32>,
    /// `substitute`/`upgrade`: the new license.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_license: Option<String>,
    /// `upgrade`: what is still to pay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_due: Option<Price>,
    /// `credit`: what went to the ledger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credit: Option<Price>,
    /// `credit`: whose ledger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credit_email: Option<String>,
    /// `refund`: what was paid back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund: Option<Price>,
}

/// A refused activation, from the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RefusedAttempt {
    /// When.
    #[serde(with = "time::serde_req")]
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// The refusal code (`activation_window_closed`, ...).
    pub code: String,
    /// Refusals of this machine with this code that day (at least 1).
    pub attempts: u64,
    /// The last of them.
    #[serde(with = "time::serde_req")]
    #[schema(value_type = String, format = DateTime)]
    pub last_at: Timestamp,
}

/// An earlier decision on the same license, from the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EarlierDecision {
    /// When.
    #[serde(with = "time::serde_req")]
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// The decision id.
    pub decision: String,
    /// The remedy granted.
    pub remedy: String,
    /// Whether the policy granted it without a person.
    pub automatic: bool,
}

/// What the audit log says about a license, for a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Evidence {
    /// When the customer paid.
    #[serde(with = "time::serde_req")]
    #[schema(value_type = String, format = DateTime)]
    pub purchased_at: Timestamp,
    /// The activation deadline, if the product has one.
    #[serde(with = "time::serde_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub activate_by: Option<Timestamp>,
    /// Whole days past the deadline at the time of the decision (0 if not past).
    pub days_late: i64,
    /// Whether the key was ever presented (activation or validation).
    pub ever_presented: bool,
    /// The first time it was.
    #[serde(with = "time::serde_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub first_presented_at: Option<Timestamp>,
    /// Whether that first presentation came before the deadline.
    pub presented_before_deadline: bool,
    /// Whether any machine ever activated it.
    pub ever_activated: bool,
    /// The first time a file of the product was downloaded with it.
    #[serde(with = "time::serde_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub first_downloaded_at: Option<Timestamp>,
    /// Downloads started with it (each transfer from a file's first byte).
    pub downloads: u64,
    /// Every refused activation, oldest first.
    pub refused_activations: Vec<RefusedAttempt>,
    /// Earlier grace decisions, oldest first.
    pub earlier_decisions: Vec<EarlierDecision>,
}

impl Evidence {
    /// Reads the evidence from the license and its events at `now`.
    pub fn gather(license: &License, events: &[PastEvent], now: Timestamp) -> Self {
        let first_presented_at = events
            .iter()
            .find(|e| matches!(e.event, AuditEvent::KeyFirstPresented { .. }))
            .map(|e| e.at);
        let days_late = license
            .activate_by
            .map_or(0, |by| ((now - by).num_days()).max(0));
        Self {
            purchased_at: license.purchased_at,
            activate_by: license.activate_by,
            days_late,
            ever_presented: first_presented_at.is_some(),
            first_presented_at,
            presented_before_deadline: match (first_presented_at, license.activate_by) {
                (Some(at), Some(by)) => at <= by,
                (Some(_), None) => true,
                (None, _) => false,
            },
            ever_activated: events
                .iter()
                .any(|e| matches!(e.event, AuditEvent::ActivationCreated { .. })),
            first_downloaded_at: events
                .iter()
                .filter(|e| matches!(e.event, AuditEvent::FileDownloaded { .. }))
                .map(|e| e.at)
                .min(),
            downloads: events
                .iter()
                .filter(|e| matches!(e.event, AuditEvent::FileDownloaded { .. }))
                .map(|e| e.repeats.map_or(1, |r| r.count))
                .sum(),
            refused_activations: events
                .iter()
                .filter_map(|e| match &e.event {
                    AuditEvent::ActivationRefused { code, .. } => Some(RefusedAttempt {
                        at: e.at,
                        code: code.clone(),
                        attempts: e.repeats.map_or(1, |r| r.count),
                        last_at: e.repeats.map_or(e.at, |r| r.last_at),
                    }),
                    _ => None,
                })
                .collect(),
            earlier_decisions: events
                .iter()
                .filter_map(|e| match &e.event {
                    AuditEvent::GraceDecision {
                        decision,
                        remedy,
                        automatic,
                        ..
                    } => Some(EarlierDecision {
                        at: e.at,
                        decision: decision.clone(),
                        remedy: remedy.as_str().to_owned(),
                        automatic: *automatic,
                    }),
                    _ => None,
                })
                .collect(),
        }
    }

    /// Whether the customer ever picked the purchase up: activated it on a machine,
    /// or downloaded a file of it. A late claim on a purchase picked up is not the
    /// never-used purchase the policy extends by itself.
    pub fn picked_up(&self) -> bool {
        self.ever_activated || self.downloads > 0
    }

    /// Extensions granted so far (by anyone).
    pub fn extensions(&self) -> usize {
        self.earlier_decisions
            .iter()
            .filter(|d| d.remedy == "extend")
            .count()
    }

    /// Extensions the policy granted on its own.
    pub fn automatic_extensions(&self) -> usize {
        self.earlier_decisions
            .iter()
            .filter(|d| d.remedy == "extend" && d.automatic)
            .count()
    }
}

/// What a decision does, worked out from the license, the request and the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Open the window until `activate_by` (`days` from now).
    Extend {
        /// The new deadline.
        activate_by: Timestamp,
        /// Its length in days.
        days: u32,
    },
    /// Close the license as superseded by a new license at no cost.
    Substitute,
    /// Close it as superseded by a new license that waits for `amount_due`.
    Upgrade {
        /// The difference to pay.
        amount_due: Price,
    },
    /// Close it; `amount` goes to `email`'s store credit.
    Credit {
        /// The price paid.
        amount: Price,
        /// Whose ledger.
        email: String,
    },
    /// Close it as refunded; `amount` was paid back.
    Refund {
        /// The price paid.
        amount: Price,
    },
    /// Change nothing.
    Decline,
}

/// The inputs of a decision beyond the license.
#[derive(Debug, Clone)]
pub struct DecisionInput<'a> {
    /// The remedy asked for.
    pub remedy: Remedy,
    /// `extend`: the window's length (default: the product's window).
    pub days: Option<u32>,
    /// The product's window length, if the product (still) has one.
    pub product_window_days: Option<u32>,
    /// `substitute`/`upgrade`: the other product's price.
    pub target_price: Option<&'a Price>,
    /// What the customer paid (from the license, or the catalog for old licenses).
    pub price_paid: Option<&'a Price>,
    /// How much dearer a substitute may be, in percent of the price paid.
    pub substitute_tolerance_percent: u32,
    /// `credit`: the ledger's email if the license has none.
    pub email: Option<&'a str>,
}

/// Longest window an extension may open.
pub const MAX_EXTENSION_DAYS: u32 = 3650;

/// The deadline an extension opens at `now`: `days` (default: the product's window
/// length) from now, and its length. The one computation both the plan and the
/// re-signed key use.
pub fn extension_deadline(
    days: Option<u32>,
    product_window_days: Option<u32>,
    now: Timestamp,
) -> Result<(Timestamp, u32), DomainError> {
    let days = days
        .or(product_window_days)
        .ok_or(DomainError::DaysRequired)?;
    if !(1..=MAX_EXTENSION_DAYS).contains(&days) {
        return Err(DomainError::field(
            "days",
            format!("must be between 1 and {MAX_EXTENSION_DAYS}"),
        ));
    }
    Ok((plus_days(now, days), days))
}

impl License {
    /// Works out what `input` does to this license at `now`, or why it cannot.
    pub fn plan(&self, input: &DecisionInput<'_>, now: Timestamp) -> Result<Plan, DomainError> {
        if input.remedy == Remedy::Decline {
            return Ok(Plan::Decline);
        }
        if self.status != LicenseStatus::Active {
            return Err(DomainError::InvalidTransition {
                action: input.remedy.as_str(),
                status: self.status,
            });
        }
        let paid = || input.price_paid.cloned().ok_or(DomainError::PriceUnknown);
        match input.remedy {
            Remedy::Extend => {
                let (activate_by, days) =
                    extension_deadline(input.days, input.product_window_days, now)?;
                Ok(Plan::Extend { activate_by, days })
            }
            Remedy::Substitute | Remedy::Upgrade => {
                let paid = paid()?;
                let target = input.target_price.ok_or(DomainError::ProductRequired)?;
                if target.currency != paid.currency {
                    return Err(DomainError::CurrencyMismatch {
                        paid: paid.currency,
                        target: target.currency.clone(),
                    });
                }
                let ceiling = paid
                    .amount
                    .saturating_mul(100 + u64::from(input.substitute_tolerance_percent))
                    / 100;
                match input.remedy {
                    Remedy::Substitute if target.amount <= ceiling => Ok(Plan::Substitute),
                    Remedy::Substitute => Err(DomainError::SubstituteTooExpensive {
                        price: target.amount,
                        ceiling,
                    }),
                    _ if target.amount <= paid.amount => Err(DomainError::UpgradeNotDearer),
                    _ => Ok(Plan::Upgrade {
                        amount_due: Price {
                            amount: target.amount - paid.amount,
                            currency: paid.currency,
                        },
                    }),
                }
            }
            Remedy::Credit => {
                let email = self
                    .customer_email
                    .clone()
                    .or_else(|| input.email.map(str::to_owned))
                    .ok_or(DomainError::EmailRequired)?;
                Ok(Plan::Credit {
                    amount: paid()?,
                    email,
                })
            }
            Remedy::Refund => Ok(Plan::Refund { amount: paid()? }),
            Remedy::Decline => Ok(Plan::Decline),
        }
    }
}

/// A request sent again under its `Idempotency-Key` is answered with the first
/// decision; another request under the same key is refused. `stored` is the hash of
/// the request the key was first used with.
pub fn check_replay(stored: &[u8], request_hash: &[u8; 32]) -> Result<(), DomainError> {
    if stored == request_hash {
        Ok(())
    } else {
        Err(DomainError::IdempotencyKeyReused)
    }
}

impl License {
    /// What the customer paid: kept with the license, or for licenses minted before
    /// prices were kept, the product's catalog price.
    pub fn price_paid(&self, catalog_price: Option<&Price>) -> Option<Price> {
        self.price.clone().or_else(|| catalog_price.cloned())
    }
}

/// Store credit granted to a customer by a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditGrant {
    /// Whose ledger.
    pub email: String,
    /// How much (the price paid).
    pub amount: Price,
}

/// What applying a [`Plan`] changes beyond the license itself.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Effects {
    /// What the decision reports.
    pub result: DecisionResult,
    /// `substitute`/`upgrade`: the license to mint, pointing back to the old one.
    pub mint: Option<NewLicense>,
    /// `credit`: the ledger entry to make.
    pub credit: Option<CreditGrant>,
    /// `extend`: store the key re-signed with the new deadline, if one was made.
    pub store_fresh_key: bool,
    /// Whether the license changed (anything but `decline`).
    pub license_changed: bool,
}

impl Plan {
    /// Applies the plan to `license` at `now`: its new status, deadline or
    /// replacement; `target` is the license a substitute or upgrade mints.
    pub fn apply(
        &self,
        license: &mut License,
        target: Option<&NewLicense>,
        now: Timestamp,
    ) -> Result<Effects, DomainError> {
        let mut effects = Effects {
            license_changed: *self != Plan::Decline,
            ..Effects::default()
        };
        match self {
            Plan::Extend { activate_by, days } => {
                license.activate_by = Some(*activate_by);
                effects.result.activate_by = Some(time::format(*activate_by));
                effects.result.days = Some(*days);
                effects.store_fresh_key = true;
            }
            Plan::Substitute | Plan::Upgrade { .. } => {
                let mut new = target.ok_or(DomainError::ProductRequired)?.clone();
                new.license.supersedes = Some(license.id.clone());
                if let Plan::Upgrade { amount_due } = self {
                    new.license.status = LicenseStatus::PendingPayment;
                    new.license.amount_due = Some(amount_due.clone());
                    effects.result.amount_due = Some(amount_due.clone());
                }
                effects.result.new_license = Some(new.license.id.clone());
                license.superseded_by = Some(new.license.id.clone());
                license.status = LicenseStatus::Superseded;
                effects.mint = Some(new);
            }
            Plan::Credit { amount, email } => {
                effects.result.credit = Some(amount.clone());
                effects.result.credit_email = Some(email.clone());
                effects.credit = Some(CreditGrant {
                    email: email.clone(),
                    amount: amount.clone(),
                });
                license.status = LicenseStatus::Credited;
            }
            Plan::Refund { amount } => {
                effects.result.refund = Some(amount.clone());
                license.status = LicenseStatus::Refunded;
            }
            Plan::Decline => {}
        }
        if effects.license_changed {
            license.updated_at = now;
        }
        Ok(effects)
    }
}

/// The facts a decision records in the log.
#[derive(Debug, Clone)]
pub struct DecisionRecord<'a> {
    /// `dec_...`
    pub id: &'a str,
    /// The remedy.
    pub remedy: Remedy,
    /// Granted by the policy.
    pub automatic: bool,
    /// Why.
    pub reason: &'a str,
    /// What it did.
    pub result: &'a DecisionResult,
    /// What the log said.
    pub evidence: &'a Evidence,
    /// The claim it closes.
    pub claim: Option<&'a str>,
}

impl DecisionRecord<'_> {
    /// The decision's event.
    pub fn event(&self) -> AuditEvent {
        AuditEvent::GraceDecision {
            decision: self.id.to_owned(),
            remedy: self.remedy,
            automatic: self.automatic,
            reason: self.reason.to_owned(),
            result: Box::new(self.result.clone()),
            days_late: self.evidence.days_late,
            ever_presented: self.evidence.ever_presented,
            claim: self.claim.map(str::to_owned),
        }
    }

    /// The event on the new license of a substitute or upgrade, if one was made.
    pub fn replacement_event(&self, old_license: &str) -> Option<(String, AuditEvent)> {
        let new = self.result.new_license.clone()?;
        Some((
            new,
            AuditEvent::LicenseReplaces {
                supersedes: old_license.to_owned(),
                decision: self.id.to_owned(),
            },
        ))
    }
}

/// A line of the credit ledger: a grant or a redemption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreditKind {
    /// Credit granted by a decision.
    Grant,
    /// Credit spent on an order.
    Redeem,
}

impl CreditKind {
    /// The name stored and answered.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grant => "grant",
            Self::Redeem => "redeem",
        }
    }

    /// The signed amount of a line: grants add, redemptions take away.
    pub fn signed(self, amount: &Price) -> Result<i64, DomainError> {
        let a = i64::try_from(amount.amount)
            .map_err(|_| DomainError::field("amount", "is too large"))?;
        Ok(match self {
            Self::Grant => a,
            Self::Redeem => -a,
        })
    }

    /// The event of a ledger line.
    pub fn event(self, line: CreditMove) -> AuditEvent {
        match self {
            Self::Grant => AuditEvent::CreditGranted(line),
            Self::Redeem => AuditEvent::CreditRedeemed(line),
        }
    }
}

/// A redemption stored before for the same order.
#[derive(Debug, Clone, Copy)]
pub struct StoredRedemption<'a> {
    /// Its customer.
    pub email: &'a str,
    /// Its signed amount (negative).
    pub amount: i64,
    /// Its currency.
    pub currency: &'a str,
}

/// Whether a redemption of `amount` by `email` on an order may be made: the same
/// order again finds the first redemption (`Ok(false)`), other fields for it are a
/// conflict, and the balance in that currency may not be overdrawn (`Ok(true)`: a
/// new line).
pub fn check_redemption(
    order_id: &str,
    email: &str,
    amount: &Price,
    stored: Option<StoredRedemption<'_>>,
    balance: i64,
) -> Result<bool, DomainError> {
    let signed = CreditKind::Redeem.signed(amount)?;
    if let Some(e) = stored {
        if e.email != email || e.amount != signed || e.currency != amount.currency {
            return Err(DomainError::OrderConflict(order_id.to_owned()));
        }
        return Ok(false);
    }
    if balance < -signed {
        return Err(DomainError::InsufficientCredit {
            balance: u64::try_from(balance).unwrap_or(0),
            amount: amount.amount,
        });
    }
    Ok(true)
}

/// What the catalog and the policy say about a license's product for a decision:
/// storage hands these to [`License::plan_with`] and never reads them itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DecisionTerms {
    /// The product's window length, if the product (still) has one.
    pub product_window_days: Option<u32>,
    /// The product's catalog price, for licenses minted before prices were kept.
    pub catalog_price: Option<Price>,
    /// How much dearer a substitute may be, in percent of the price paid.
    pub substitute_tolerance_percent: u32,
}

impl DecisionTerms {
    /// The terms of `product` in `catalog` (none of it when it left the catalog).
    pub fn of(catalog: &Catalog, product: &str, substitute_tolerance_percent: u32) -> Self {
        let product = catalog.get(product);
        Self {
            product_window_days: product.and_then(|p| p.spec.activation_window_days),
            catalog_price: product.map(|p| p.spec.price.clone()),
            substitute_tolerance_percent,
        }
    }
}

/// What a decision is asked to do, beyond the terms.
#[derive(Debug, Clone, Copy)]
pub struct DecisionAsk<'a> {
    /// The remedy.
    pub remedy: Remedy,
    /// `extend`: the window's length.
    pub days: Option<u32>,
    /// `substitute`/`upgrade`: the other product's price.
    pub target_price: Option<&'a Price>,
    /// `credit`: the ledger's email if the license has none.
    pub email: Option<&'a str>,
}

impl License {
    /// [`License::plan`] under `terms`: the price paid is the license's own, or the
    /// catalog's for licenses minted before prices were kept.
    pub fn plan_with(
        &self,
        terms: &DecisionTerms,
        ask: DecisionAsk<'_>,
        now: Timestamp,
    ) -> Result<Plan, DomainError> {
        let price_paid = self.price_paid(terms.catalog_price.as_ref());
        self.plan(
            &DecisionInput {
                remedy: ask.remedy,
                days: ask.days,
                product_window_days: terms.product_window_days,
                target_price: ask.target_price,
                price_paid: price_paid.as_ref(),
                substitute_tolerance_percent: terms.substitute_tolerance_percent,
                email: ask.email,
            },
            now,
        )
    }
}

/// The `[late_claims]` policy with the catalog it reads, for a customer's claim.
#[derive(Debug, Clone)]
pub struct ClaimRules {
    /// The policy.
    pub policy: ClaimPolicy,
    /// The products (window lengths, prices).
    pub catalog: std::sync::Arc<Catalog>,
}

impl ClaimRules {
    /// What the policy does with a claim on `license` at `now`, and the terms of the
    /// decision it may make.
    pub fn judge(
        &self,
        license: &License,
        evidence: &Evidence,
        now: Timestamp,
    ) -> (ClaimVerdict, DecisionTerms) {
        let terms = DecisionTerms::of(
            &self.catalog,
            &license.product,
            self.policy.substitute_tolerance_percent,
        );
        let verdict = self
            .policy
            .judge(license, evidence, terms.product_window_days, now);
        (verdict, terms)
    }
}

/// The reason an automatic extension records.
pub const AUTOMATIC_EXTENSION_REASON: &str =
    "late_claims policy: never activated, within the policy's limits";

/// Claims listed at most per status.
pub const MAX_LISTED_CLAIMS: u32 = 500;

impl ClaimStatus {
    /// Whether support may decide a claim in this status: a pending one, or any one
    /// when the request is a retry under an `Idempotency-Key` (it then finds its
    /// first decision again).
    pub fn check_resolvable(self, retry_with_key: bool) -> Result<(), DomainError> {
        if self == ClaimStatus::Pending || retry_with_key {
            Ok(())
        } else {
            Err(DomainError::ClaimResolved)
        }
    }
}

/// The `[late_claims]` policy: what a customer's own claim gets without a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimPolicy {
    /// Grant an extension at once to a never-activated license that qualifies.
    #[serde(default = "yes")]
    pub auto_extend: bool,
    /// Only for purchases at most this many days old.
    #[serde(default = "two_years")]
    pub max_age_days: u32,
    /// Length of an automatic extension (default: the product's window).
    #[serde(default)]
    pub extension_days: Option<u32>,
    /// Automatic extensions per license, ever.
    #[serde(default = "one")]
    pub max_auto_extensions: u32,
    /// How much dearer (percent) a substitute may be than the price paid.
    #[serde(default)]
    pub substitute_tolerance_percent: u32,
    /// Claims accepted per license key per day.
    #[serde(default = "five")]
    pub max_claims_per_key_per_day: u32,
    /// Claims accepted per client address per hour.
    #[serde(default = "twenty")]
    pub max_claims_per_address_per_hour: u32,
}

fn yes() -> bool {
    true
}
fn two_years() -> u32 {
    730
}
fn one() -> u32 {
    1
}
fn five() -> u32 {
    5
}
fn twenty() -> u32 {
    20
}

impl Default for ClaimPolicy {
    fn default() -> Self {
        Self {
            auto_extend: yes(),
            max_age_days: two_years(),
            extension_days: None,
            max_auto_extensions: one(),
            substitute_tolerance_percent: 0,
            max_claims_per_key_per_day: five(),
            max_claims_per_address_per_hour: twenty(),
        }
    }
}

/// What the policy does with a customer's claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimVerdict {
    /// Nothing to claim: the key can be activated now.
    NotNeeded,
    /// Extend at once by this many days.
    Extend(u32),
    /// A person decides; the reason says why the policy did not.
    ForSupport(&'static str),
}

impl ClaimPolicy {
    /// Decides a claim on `license` with its `evidence` at `now`.
    pub fn judge(
        &self,
        license: &License,
        evidence: &Evidence,
        product_window_days: Option<u32>,
        now: Timestamp,
    ) -> ClaimVerdict {
        if license.status == LicenseStatus::Active
            && !license.is_expired(now)
            && !license.window_closed(evidence.ever_activated, now)
        {
            return ClaimVerdict::NotNeeded;
        }
        if !self.auto_extend {
            return ClaimVerdict::ForSupport("automatic extensions are off");
        }
        if license.status != LicenseStatus::Active {
            return ClaimVerdict::ForSupport("the license is not active");
        }
        if license.is_expired(now) {
            return ClaimVerdict::ForSupport("the license has expired");
        }
        if evidence.ever_activated {
            return ClaimVerdict::ForSupport("the license was activated before");
        }
        if evidence.picked_up() {
            return ClaimVerdict::ForSupport("the product was downloaded before");
        }
        if (now - license.purchased_at).num_days() > i64::from(self.max_age_days) {
            return ClaimVerdict::ForSupport("the purchase is older than the policy allows");
        }
        if evidence.automatic_extensions() >= self.max_auto_extensions as usize {
            return ClaimVerdict::ForSupport("the automatic extensions are used up");
        }
        match self.extension_days.or(product_window_days) {
            Some(days) if days > 0 => ClaimVerdict::Extend(days.min(MAX_EXTENSION_DAYS)),
            _ => ClaimVerdict::ForSupport("no extension length is configured"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::license::MintRequest;
    use crate::domain::product::tests::photo_pro;
    use crate::domain::time::parse;

    fn at(s: &str) -> Timestamp {
        parse(s).unwrap()
    }

    /// Photo Pro (49.00 EUR, 90-day window) bought on 2025-01-01, never activated.
    fn late() -> License {
        let req: MintRequest = serde_json::from_value(serde_json::json!({
            "product": "photo-pro", "order_id": "o-1", "purchased_at": "2025-01-01T00:00:00Z",
            "customer_email": "ann@example.com"
        }))
        .unwrap();
        req.into_new_license(&photo_pro(), "lic_x".into(), at("2025-01-01T00:00:00Z"))
            .unwrap()
            .license
    }

    fn eur(amount: u64) -> Price {
        Price {
            amount,
            currency: "EUR".into(),
        }
    }

    fn input<'a>(remedy: Remedy, paid: &'a Price, target: Option<&'a Price>) -> DecisionInput<'a> {
        DecisionInput {
            remedy,
            days: None,
            product_window_days: Some(90),
            target_price: target,
            price_paid: Some(paid),
            substitute_tolerance_percent: 0,
            email: None,
        }
    }

    fn event(at_: &str, event: AuditEvent) -> PastEvent {
        PastEvent {
            at: at(at_),
            event,
            repeats: None,
        }
    }

    #[test]
    fn the_evidence_kinds_are_the_kinds_it_reads() {
        let presented = presented().kind();
        let refused = refused("x").kind();
        assert_eq!(EvidenceEvents::FIRST_OF[0], presented);
        assert_eq!(EvidenceEvents::ALL_OF[0], refused);
        let created = AuditEvent::ActivationCreated {
            activation: "a".into(),
            fingerprint: "f".into(),
            seats_in_use: 1,
            expires_at: None,
        };
        assert_eq!(EvidenceEvents::FIRST_OF[1], created.kind());
        let decided = AuditEvent::GraceDecision {
            decision: "d".into(),
            remedy: Remedy::Decline,
            automatic: false,
            reason: "r".into(),
            result: Box::default(),
            days_late: 0,
            ever_presented: false,
            claim: None,
        };
        assert_eq!(EvidenceEvents::ALL_OF[1], decided.kind());
        let downloaded = AuditEvent::FileDownloaded {
            file: "A.dmg".into(),
        };
        assert_eq!(EvidenceEvents::ALL_OF[2], downloaded.kind());
    }

    fn downloaded(file: &str) -> AuditEvent {
        AuditEvent::FileDownloaded { file: file.into() }
    }

    #[test]
    fn downloads_are_counted_with_their_repeats_and_the_first_is_kept() {
        let mut again = event("2025-01-03T00:00:00Z", downloaded("A.dmg"));
        again.repeats = Some(Repeats {
            count: 3,
            last_at: at("2025-01-03T05:00:00Z"),
        });
        let events = [
            event("2025-01-02T00:00:00Z", downloaded("A.dmg")),
            again,
            event("2025-01-02T00:10:00Z", downloaded("B.zip")),
        ];
        let e = Evidence::gather(&late(), &events, at(NOW));
        assert_eq!(e.downloads, 5);
        assert_eq!(e.first_downloaded_at, Some(at("2025-01-02T00:00:00Z")));
        assert!(e.picked_up() && !e.ever_activated);
        let never = Evidence::gather(&late(), &[], at(NOW));
        assert_eq!((never.downloads, never.first_downloaded_at), (0, None));
        assert!(!never.picked_up());
    }

    #[test]
    fn a_purchase_downloaded_but_never_activated_is_picked_up_and_goes_to_support() {
        let policy = ClaimPolicy::default();
        let l = late();
        let fetched = Evidence::gather(
            &l,
            &[event("2025-01-02T00:00:00Z", downloaded("A.dmg"))],
            at(NOW),
        );
        assert_eq!(
            policy.judge(&l, &fetched, Some(90), at(NOW)),
            ClaimVerdict::ForSupport("the product was downloaded before")
        );
        let untouched = Evidence::gather(&l, &[], at(NOW));
        assert_eq!(
            policy.judge(&l, &untouched, Some(90), at(NOW)),
            ClaimVerdict::Extend(90),
            "never fetched and never activated: not picked up"
        );
        assert_eq!(
            policy.judge(&l, &fetched, Some(90), at("2025-02-01T00:00:00Z")),
            ClaimVerdict::NotNeeded,
            "a download does not close the window: the key still activates in it"
        );
    }

    fn presented() -> AuditEvent {
        AuditEvent::KeyFirstPresented {
            by: crate::domain::audit::PresentedBy::Activation,
        }
    }

    fn refused(code: &str) -> AuditEvent {
        AuditEvent::ActivationRefused {
            code: code.into(),
            fingerprint: "fp".into(),
        }
    }

    const NOW: &str = "2026-01-01T00:00:00Z";

    #[test]
    fn the_evidence_tells_a_year_late_claimer_who_tried_in_time() {
        let events = [
            event(
                "2025-01-01T00:00:00Z",
                AuditEvent::TokenRevoked {
                    token: "tok_x".into(),
                    name: "an event the evidence does not read".into(),
                },
            ),
            event("2025-02-01T00:00:00Z", presented()),
            event("2025-02-01T00:00:00Z", refused("license_suspended")),
            event("2025-12-01T00:00:00Z", refused("activation_window_closed")),
        ];
        let e = Evidence::gather(&late(), &events, at(NOW));
        assert_eq!(e.days_late, 275, "365 days after purchase, 90-day window");
        assert!(e.ever_presented && e.presented_before_deadline && !e.ever_activated);
        assert_eq!(e.refused_activations.len(), 2);
        assert_eq!(e.refused_activations[1].code, "activation_window_closed");
        let never = Evidence::gather(&late(), &events[..1], at(NOW));
        assert!(!never.ever_presented && !never.presented_before_deadline);
    }

    #[test]
    fn extend_defaults_to_the_products_window_from_now() {
        let paid = eur(4900);
        assert_eq!(
            late().plan(&input(Remedy::Extend, &paid, None), at(NOW)),
            Ok(Plan::Extend {
                activate_by: at("2026-04-01T00:00:00Z"),
                days: 90
            })
        );
        let mut i = input(Remedy::Extend, &paid, None);
        i.days = Some(14);
        assert!(matches!(
            late().plan(&i, at(NOW)),
            Ok(Plan::Extend { days: 14, .. })
        ));
        i.days = Some(0);
        assert!(late().plan(&i, at(NOW)).is_err());
    }

    #[test]
    fn a_substitute_may_not_cost_more_than_the_price_paid_plus_the_tolerance() {
        let paid = eur(4900);
        let cheaper = eur(2900);
        let dearer = eur(5100);
        let l = late();
        assert_eq!(
            l.plan(&input(Remedy::Substitute, &paid, Some(&cheaper)), at(NOW)),
            Ok(Plan::Substitute)
        );
        assert_eq!(
            l.plan(&input(Remedy::Substitute, &paid, Some(&dearer)), at(NOW)),
            Err(DomainError::SubstituteTooExpensive {
                price: 5100,
                ceiling: 4900
            })
        );
        let mut tolerant = input(Remedy::Substitute, &paid, Some(&dearer));
        tolerant.substitute_tolerance_percent = 5;
        assert_eq!(l.plan(&tolerant, at(NOW)), Ok(Plan::Substitute));
        let usd = Price {
            amount: 100,
            currency: "USD".into(),
        };
        assert!(matches!(
            l.plan(&input(Remedy::Substitute, &paid, Some(&usd)), at(NOW)),
            Err(DomainError::CurrencyMismatch { .. })
        ));
    }

    #[test]
    fn an_upgrade_owes_the_difference_and_must_be_dearer() {
        let paid = eur(4900);
        let l = late();
        assert_eq!(
            l.plan(&input(Remedy::Upgrade, &paid, Some(&eur(9900))), at(NOW)),
            Ok(Plan::Upgrade {
                amount_due: eur(5000)
            })
        );
        assert_eq!(
            l.plan(&input(Remedy::Upgrade, &paid, Some(&eur(4900))), at(NOW)),
            Err(DomainError::UpgradeNotDearer)
        );
    }

    #[test]
    fn credit_and_refund_give_back_the_price_paid_and_decline_changes_nothing() {
        let paid = eur(4900);
        let l = late();
        assert_eq!(
            l.plan(&input(Remedy::Credit, &paid, None), at(NOW)),
            Ok(Plan::Credit {
                amount: paid.clone(),
                email: "ann@example.com".into()
            })
        );
        assert_eq!(
            l.plan(&input(Remedy::Refund, &paid, None), at(NOW)),
            Ok(Plan::Refund {
                amount: paid.clone()
            })
        );
        let mut closed = late();
        closed.status = LicenseStatus::Revoked;
        assert!(matches!(
            closed.plan(&input(Remedy::Credit, &paid, None), at(NOW)),
            Err(DomainError::InvalidTransition { .. })
        ));
        assert_eq!(
            closed.plan(&input(Remedy::Decline, &paid, None), at(NOW)),
            Ok(Plan::Decline)
        );
        let mut anonymous = late();
        anonymous.customer_email = None;
        assert_eq!(
            anonymous.plan(&input(Remedy::Credit, &paid, None), at(NOW)),
            Err(DomainError::EmailRequired)
        );
    }

    #[test]
    fn the_policy_extends_once_for_a_never_activated_purchase_in_its_age_limit() {
        let policy = ClaimPolicy::default();
        let l = late();
        let clean = Evidence::gather(&l, &[], at(NOW));
        assert_eq!(
            policy.judge(&l, &clean, Some(90), at(NOW)),
            ClaimVerdict::Extend(90)
        );
        assert_eq!(
            policy.judge(
                &l,
                &clean,
                Some(90),
                at("2024-12-01T00:00:00Z").max(at("2025-02-01T00:00:00Z"))
            ),
            ClaimVerdict::NotNeeded,
            "inside the window there is nothing to claim"
        );
        let extended = Evidence::gather(
            &l,
            &[event(
                "2025-12-01T00:00:00Z",
                AuditEvent::GraceDecision {
                    decision: "d1".into(),
                    remedy: Remedy::Extend,
                    automatic: true,
                    reason: "policy".into(),
                    result: Box::default(),
                    days_late: 0,
                    ever_presented: false,
                    claim: None,
                },
            )],
            at(NOW),
        );
        assert!(matches!(
            policy.judge(&l, &extended, Some(90), at(NOW)),
            ClaimVerdict::ForSupport(_)
        ));
        assert!(
            matches!(
                policy.judge(&l, &clean, Some(90), at("2027-06-01T00:00:00Z")),
                ClaimVerdict::ForSupport(_)
            ),
            "older than two years"
        );
        let off = ClaimPolicy {
            auto_extend: false,
            ..ClaimPolicy::default()
        };
        assert!(matches!(
            off.judge(&l, &clean, Some(90), at(NOW)),
            ClaimVerdict::ForSupport(_)
        ));
    }
}
