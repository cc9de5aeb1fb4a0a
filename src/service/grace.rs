//! Late claims: grace decisions by support, customers' own claims, store credit.

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::domain::audit::Actor;
use crate::domain::grace::{
    check_remedy_fields, extension_deadline, DecisionTerms, Remedy, IDEMPOTENCY_KEY,
};
use crate::domain::ids::new_id;
use crate::domain::license::{parse_email, parse_order_id, License, MintRequest};
use crate::domain::mail::{Locale, NewMail};
use crate::domain::product::{is_currency, Price};
use crate::domain::text::REASON;
use crate::domain::time::Timestamp;
use crate::domain::DomainError;
use crate::service::error::ServiceError;
use crate::service::{key_tag, note, rate_limited, text, AppState};
use crate::storage::grace::{
    Claim, ClaimOutcome, CreditEntry, Decision, DecisionOutcome, GraceRequest, Idempotency,
    NewClaim, Redemption, Target,
};
use crate::storage::StorageError;

/// Body of `POST /v1/licenses/{id}/grace-extension` and `POST /v1/claims/{id}/resolve`.
/// `days`, `product` and `email` are each taken by some remedies only; another
/// remedy given one is refused.
#[derive(Debug, Clone, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"remedy": "extend", "reason": "bought in time, came back late", "days": 30}))]
pub struct GraceBody {
    /// `extend`, `substitute`, `upgrade`, `credit`, `refund` or `decline`.
    pub remedy: Remedy,
    /// Why; always required.
    #[schema(value_type = crate::domain::schema::Reason)]
    pub reason: String,
    /// `extend` only: the window's length (default: the product's window).
    #[serde(default, deserialize_with = "crate::domain::whole::option")]
    #[schema(value_type = Option<crate::domain::schema::ExtensionDays>)]
    pub days: Option<u32>,
    /// `substitute` and `upgrade` only, and required: the other product.
    #[serde(default)]
    #[schema(value_type = Option<crate::domain::product::ProductId>)]
    pub product: Option<String>,
    /// `credit` only: the ledger's email when the license has none.
    #[serde(default)]
    #[schema(value_type = Option<crate::domain::schema::EmailAddress>)]
    pub email: Option<String>,
}

/// A decision with the licenses it touched.
#[derive(Debug)]
pub struct Granted {
    /// The decision, with its evidence.
    pub decision: Decision,
    /// Found again by its `Idempotency-Key`: nothing was done twice.
    pub replayed: bool,
    /// The license decided on, as it stands now.
    pub license: License,
    /// The license a substitute or upgrade made.
    pub new_license: Option<License>,
    /// The key the customer should use now (a new license's, or the extended one's).
    pub key: Option<String>,
}

/// Body of `POST /v1/claims`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimBody {
    /// The customer's key (any other text is an unknown key).
    pub license_key: String,
    /// An email to reach the customer.
    #[serde(default)]
    #[schema(value_type = Option<crate::domain::schema::EmailAddress>)]
    pub email: Option<String>,
    /// What the customer wants to say.
    #[serde(default)]
    #[schema(value_type = Option<crate::domain::schema::Note>)]
    pub message: Option<String>,
    /// The language of the mail about the claim, `en` or `fr` (a tag such as
    /// `fr-CA` is read by its language); defaults to the request's
    /// `Accept-Language`, else `en`. The mail goes to `email`, else the license's
    /// customer email, with `[mail]` set up.
    #[serde(default)]
    #[schema(value_type = Option<crate::domain::schema::MailLocale>)]
    pub locale: Option<String>,
}

/// What a customer's claim came to.
#[derive(Debug)]
pub enum ClaimAnswer {
    /// The key works as it is.
    NotNeeded(Box<License>),
    /// Extended at once by the policy.
    Granted(Box<(Decision, License)>),
    /// Filed for support.
    Filed(Box<Claim>),
}

/// Body of `POST /v1/credits/redeem`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ann@example.com", "order_id": "order-1002", "amount": 500, "currency": "EUR"}))]
pub struct RedeemBody {
    /// The customer.
    #[schema(value_type = crate::domain::schema::EmailAddress)]
    pub email: String,
    /// The shop's order paid with the credit; redeeming is idempotent on it.
    #[schema(value_type = crate::domain::schema::OrderId)]
    pub order_id: String,
    /// What is spent, in minor units.
    #[serde(deserialize_with = "crate::domain::whole::deserialize")]
    #[schema(value_type = crate::domain::schema::CreditAmount)]
    pub amount: u64,
    /// The ledger's currency.
    #[schema(value_type = crate::domain::schema::Currency)]
    pub currency: String,
}

fn parse_idempotency_key(value: Option<String>) -> Result<Option<String>, ServiceError> {
    match value {
        Some(v) if !IDEMPOTENCY_KEY.allows(&v) => Err(ServiceError::InvalidParameter(format!(
            "Idempotency-Key: {}",
            IDEMPOTENCY_KEY.describe()
        ))),
        other => Ok(other),
    }
}

fn parse_currency(s: &str) -> Result<String, ServiceError> {
    if is_currency(s) {
        Ok(s.to_owned())
    } else {
        Err(DomainError::field("currency", "three upper-case letters (ISO 4217)").into())
    }
}

impl AppState {
    /// Makes a grace decision on a license (or on the license of a claim, whose
    /// customer is then told by mail how it was decided).
    pub async fn grace(
        &self,
        license_id: &str,
        body: GraceBody,
        actor: Actor,
        idempotency: Option<String>,
        claim: Option<&Claim>,
        now: Timestamp,
    ) -> Result<Granted, ServiceError> {
        let claim_id = claim.map(|c| c.id.clone());
        let idempotency = parse_idempotency_key(idempotency)?;
        let reason = text("reason", &REASON, Some(body.reason.clone()))?
            .unwrap_or_default()
            .trim()
            .to_owned();
        let given = [
            ("days", body.days.is_some()),
            ("product", body.product.is_some()),
            ("email", body.email.is_some()),
        ];
        let given: Vec<&str> = given.iter().filter(|g| g.1).map(|g| g.0).collect();
        check_remedy_fields(body.remedy, &given)?;
        let email = body
            .email
            .as_deref()
            .map(|e| parse_email("email", e))
            .transpose()?;
        let (original, _) = self
            .store
            .license(license_id)
            .await?
            .ok_or(DomainError::LicenseNotFound)?;
        let product = self.catalog.get(&original.product);
        let window = product.and_then(|p| p.spec.activation_window_days);
        let id = new_id("dec", now);
        // The key the customer uses from now on, for the mail about their claim.
        let mut new_key = None;
        let target = match (body.remedy.mints(), &body.product) {
            (true, Some(slug)) => {
                let target = self
                    .catalog
                    .get(slug)
                    .ok_or_else(|| DomainError::UnknownProduct(slug.clone()))?;
                let mut metadata = serde_json::Map::new();
                metadata.insert("replaces_order".into(), original.order_id.clone().into());
                let req = MintRequest {
                    product: slug.clone(),
                    order_id: parse_order_id(&format!("{}/{id}", body.remedy.as_str()))?,
                    customer_email: original.customer_email.clone(),
                    purchased_at: None,
                    seats: None,
                    entitlements: None,
                    expires_at: None,
                    metadata: Some(metadata),
                    // The claim's decision mails the new key itself.
                    send_email: Some(false),
                    locale: None,
                };
                let new = req.into_new_license(target, new_id("lic", now), now)?;
                let (token, key) = self.issue(&new.license)?;
                new_key = Some(token);
                Some(Target {
                    price: target.spec.price.clone(),
                    license: new,
                    key,
                })
            }
            (true, None) => return Err(DomainError::ProductRequired.into()),
            (false, _) => None,
        };
        // The key re-signed with the deadline the plan will set; a request the plan
        // refuses (no or bad `days`) gets no key and fails there.
        let fresh_key = match (body.remedy, extension_deadline(body.days, window, now)) {
            (Remedy::Extend, Ok((activate_by, _))) => {
                let mut extended = original.clone();
                extended.activate_by = Some(activate_by);
                let (token, key) = self.issue(&extended)?;
                new_key = Some(token);
                Some(key)
            }
            _ => None,
        };
        let request_hash: [u8; 32] = Sha256::digest(
            serde_json::json!({ "license": license_id, "claim": claim_id, "body": body })
                .to_string()
                .as_bytes(),
        )
        .into();
        let mail = claim.and_then(|c| self.decided_mail(c, &original, &id, body.remedy, new_key));
        let req = GraceRequest {
            id,
            license_id: original.id.clone(),
            remedy: body.remedy,
            reason,
            days: body.days,
            email,
            target,
            fresh_key,
            terms: DecisionTerms::of(
                &self.catalog,
                &original.product,
                self.claim_policy.substitute_tolerance_percent,
            ),
            actor,
            automatic: false,
            idempotency: idempotency.map(|key| Idempotency { key, request_hash }),
            claim_id: claim_id.clone(),
            credit_id: new_id("cre", now),
            mail,
        };
        let outcome = match claim_id {
            Some(_) => self.store.resolve_claim(req, now).await?,
            None => self.store.decide(req, now).await?,
        };
        let (decision, replayed) = match outcome {
            DecisionOutcome::Made(d) => (d, false),
            DecisionOutcome::Replayed(d) => (d, true),
        };
        // Only the key the customer should use now is signed again.
        let (license, stored) = self
            .store
            .license(&decision.license_id)
            .await?
            .ok_or(DomainError::LicenseNotFound)?;
        let (new_license, key) = match &decision.result.new_license {
            Some(new_id) => {
                let (l, k) = self.license_with_key(new_id).await?;
                (Some(l), Some(k))
            }
            None if decision.remedy == Remedy::Extend => {
                (None, Some(self.reissue(&license, &stored).await?))
            }
            None => (None, None),
        };
        Ok(Granted {
            decision,
            replayed,
            license,
            new_license,
            key,
        })
    }

    /// A customer's own late claim, limited per key and per client address.
    pub async fn claim(
        &self,
        body: ClaimBody,
        client: &str,
        now: Timestamp,
    ) -> Result<ClaimAnswer, ServiceError> {
        if self.limits.enabled {
            self.limits
                .claims_per_address
                .hit(client, now)
                .map_err(rate_limited)?;
        }
        let email = body
            .email
            .as_deref()
            .map(|e| parse_email("email", e))
            .transpose()?;
        let message = note("message", body.message)?;
        let locale = Locale::field(body.locale.as_deref())?;
        let Some(hash) = self.admit(&body.license_key, client, now).await? else {
            return Err(self.not_found(client, now).await);
        };
        if self.limits.enabled {
            if let Err(secs) = self.limits.claims_per_key.hit(&key_tag(&hash), now) {
                // Not looked up: the reserved failure stays counted, and stops
                // holding back the address's other look-ups.
                self.limits.public.failed(client, now);
                return Err(rate_limited(secs));
            }
        }
        let outcome = self
            .store
            .file_claim(
                NewClaim {
                    id: new_id("clm", now),
                    decision_id: new_id("dec", now),
                    credit_id: new_id("cre", now),
                    key_hash: hash,
                    email,
                    message,
                    rules: std::sync::Arc::clone(&self.claim_rules),
                    locale,
                    mail: self.mail_on,
                },
                now,
            )
            .await;
        let outcome = self.settle(outcome, client, now)?;
        if !matches!(outcome, ClaimOutcome::NotFound) {
            self.found(client, now);
        }
        Ok(match outcome {
            ClaimOutcome::NotFound => return Err(self.not_found(client, now).await),
            ClaimOutcome::NotNeeded(l) => ClaimAnswer::NotNeeded(l),
            ClaimOutcome::Granted(d) => {
                let (license, _) = self
                    .store
                    .license(&d.license_id)
                    .await?
                    .ok_or(StorageError::Corrupt("claimed license vanished".into()))?;
                ClaimAnswer::Granted(Box::new((*d, license)))
            }
            ClaimOutcome::Filed(c) => ClaimAnswer::Filed(c),
        })
    }

    /// Support closes a pending claim with any remedy.
    pub async fn resolve_claim(
        &self,
        claim_id: &str,
        body: GraceBody,
        actor: Actor,
        idempotency: Option<String>,
        now: Timestamp,
    ) -> Result<Granted, ServiceError> {
        let claim = self
            .store
            .claim(claim_id)
            .await?
            .ok_or(DomainError::ClaimNotFound)?;
        self.grace(
            &claim.license_id,
            body,
            actor,
            idempotency,
            Some(&claim),
            now,
        )
        .await
    }

    /// The mail telling a claim's customer how support decided it (to the email
    /// they gave, else the license's), with mail set up.
    fn decided_mail(
        &self,
        claim: &Claim,
        license: &License,
        decision_id: &str,
        remedy: Remedy,
        key: Option<String>,
    ) -> Option<NewMail> {
        if !self.mail_on {
            return None;
        }
        let to = claim
            .email
            .as_deref()
            .or(license.customer_email.as_deref())?;
        let product = self
            .catalog
            .get(&license.product)
            .map_or(license.product.as_str(), |p| p.spec.name.as_str());
        Some(NewMail::claim_decided(
            license,
            product,
            decision_id,
            remedy,
            key.as_deref(),
            to,
            claim.locale,
        ))
    }

    /// Spends store credit on an order.
    pub async fn redeem(
        &self,
        body: RedeemBody,
        actor: Actor,
        now: Timestamp,
    ) -> Result<(CreditEntry, bool), ServiceError> {
        let email = parse_email("email", &body.email)?;
        let order_id = parse_order_id(&body.order_id)?;
        let currency = parse_currency(&body.currency)?;
        if body.amount == 0 || i64::try_from(body.amount).is_err() {
            return Err(
                DomainError::field("amount", "must be a positive amount in minor units").into(),
            );
        }
        Ok(self
            .store
            .redeem(
                Redemption {
                    id: new_id("cre", now),
                    email,
                    order_id,
                    amount: Price {
                        amount: body.amount,
                        currency,
                    },
                    actor,
                },
                now,
            )
            .await?)
    }
}

/// Balance per currency of a ledger.
pub fn balances(entries: &[CreditEntry]) -> std::collections::BTreeMap<String, i64> {
    let mut out = std::collections::BTreeMap::new();
    for e in entries {
        *out.entry(e.currency.clone()).or_insert(0) += e.amount;
    }
    out
}
