//! What the support console reads besides the API's operations: one search box for
//! every way a license is found, the evidence of a license, and the effect each
//! late-claim remedy would have, worked out by the very rule the decision applies
//! ([`License::plan_with`] under [`DecisionTerms::of`]), never a copy of it.

use crate::domain::grace::{DecisionAsk, DecisionTerms, Evidence, Plan, Remedy};
use crate::domain::ids::is_id;
use crate::domain::key::LicenseKey;
use crate::domain::license::{parse_order_id, Email, License};
use crate::domain::product::Price;
use crate::domain::time::Timestamp;
use crate::domain::DomainError;
use crate::service::error::ServiceError;
use crate::service::AppState;
use crate::storage::grace::Claim;
use crate::storage::LicenseLookup;

/// Another product a substitute or an upgrade could give, with what it would do.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Its id.
    pub product: String,
    /// Its display name.
    pub name: String,
    /// Its catalog price.
    pub price: Price,
    /// What choosing it would do, or why it cannot be chosen.
    pub plan: Result<Plan, DomainError>,
}

/// How a search found a license.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FoundBy {
    /// Its id.
    LicenseId,
    /// Its signed key.
    Key,
    /// Its short key.
    ShortKey,
    /// The customer's email.
    Email,
    /// The shop's order id.
    OrderId,
}

impl FoundBy {
    /// In words.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LicenseId => "license id",
            Self::Key => "key",
            Self::ShortKey => "short key",
            Self::Email => "email",
            Self::OrderId => "order id",
        }
    }
}

impl AppState {
    /// The licenses `q` names, read as each of a license id, a key (signed or
    /// short), an email and an order id (whichever it can be), each license once.
    pub async fn search(&self, q: &str) -> Result<Vec<(License, FoundBy)>, ServiceError> {
        let q = q.trim();
        let mut found: Vec<(License, FoundBy)> = Vec::new();
        let mut add = |licenses: Vec<License>, by: FoundBy| {
            for l in licenses {
                if !found.iter().any(|(f, _)| f.id == l.id) {
                    found.push((l, by));
                }
            }
        };
        if is_id("lic", q) {
            if let Some((l, _)) = self.store.license(q).await? {
                add(vec![l], FoundBy::LicenseId);
            }
        }
        if let Some(key) = LicenseKey::parse(q) {
            let by = match key {
                LicenseKey::Signed(_) => FoundBy::Key,
                LicenseKey::Short(_) => FoundBy::ShortKey,
            };
            add(
                self.store
                    .find_licenses(LicenseLookup::KeyHash(key.hash()))
                    .await?,
                by,
            );
        }
        if let Some(email) = Email::parse(q) {
            add(
                self.store
                    .find_licenses(LicenseLookup::Email(email.into_string()))
                    .await?,
                FoundBy::Email,
            );
        }
        if let Ok(order) = parse_order_id(q) {
            add(
                self.store
                    .find_licenses(LicenseLookup::OrderId(order))
                    .await?,
                FoundBy::OrderId,
            );
        }
        Ok(found)
    }

    /// A license with the evidence a decision on it would read at `now`.
    pub async fn evidence(
        &self,
        license_id: &str,
        now: Timestamp,
    ) -> Result<(License, Evidence), ServiceError> {
        let (license, _) = self
            .store
            .license(license_id)
            .await?
            .ok_or(DomainError::LicenseNotFound)?;
        let evidence = self
            .store
            .evidence(license_id, now)
            .await?
            .ok_or(DomainError::LicenseNotFound)?;
        Ok((license, evidence))
    }

    /// The claim `id`.
    pub async fn claim_by_id(&self, id: &str) -> Result<Claim, ServiceError> {
        Ok(self
            .store
            .claim(id)
            .await?
            .ok_or(DomainError::ClaimNotFound)?)
    }

    /// The terms a decision on `license` is made under.
    fn terms(&self, license: &License) -> DecisionTerms {
        DecisionTerms::of(
            &self.catalog,
            &license.product,
            self.claim_policy.substitute_tolerance_percent,
        )
    }

    /// What `ask` would do to `license` at `now`, or why it would be refused.
    pub fn preview(
        &self,
        license: &License,
        ask: DecisionAsk<'_>,
        now: Timestamp,
    ) -> Result<Plan, DomainError> {
        license.plan_with(&self.terms(license), ask, now)
    }

    /// Every other product of the catalog as the target of `remedy` (a substitute or
    /// an upgrade), with what it would do: the ones a decision accepts have a plan.
    pub fn candidates(&self, license: &License, remedy: Remedy, now: Timestamp) -> Vec<Candidate> {
        let terms = self.terms(license);
        self.catalog
            .iter()
            .filter(|p| p.id.as_str() != license.product)
            .map(|p| Candidate {
                product: p.id.as_str().to_owned(),
                name: p.spec.name.clone(),
                price: p.spec.price.clone(),
                plan: license.plan_with(
                    &terms,
                    DecisionAsk {
                        remedy,
                        days: None,
                        target_price: Some(&p.spec.price),
                        email: None,
                    },
                    now,
                ),
            })
            .collect()
    }
}
