//! The look-ups and one-step writes handlers need besides the larger operations,
//! so that handlers call the service only and never the store.

use crate::domain::audit::{Actor, ClaimStatus, Event};
use crate::domain::license::{Action, License};
use crate::domain::time::Timestamp;
use crate::domain::token::{parse_token_name, ApiToken, NewApiToken, Role, TokenSecret};
use crate::domain::DomainError;
use crate::service::error::ServiceError;
use crate::service::AppState;
use crate::storage::activation::Activation;
use crate::storage::grace::{Claim, CreditEntry, QueuedClaim};
use crate::storage::{EventPage, LicenseLookup, LicensePage};

impl AppState {
    /// Whether the database answers: 503 `database_unavailable` when it does not.
    pub async fn ready(&self) -> Result<(), ServiceError> {
        self.store.ready().await.map_err(|e| {
            log::error!("readiness check failed: {e}");
            ServiceError::Unavailable("the database does not answer".into())
        })
    }

    /// The token whose secret was presented: 401 when unknown or revoked.
    pub async fn token_for(&self, secret: &TokenSecret) -> Result<ApiToken, ServiceError> {
        let token = self
            .store
            .token_by_hash(secret.hash())
            .await?
            .ok_or(ServiceError::InvalidToken)?;
        if token.revoked_at.is_some() {
            return Err(ServiceError::TokenRevoked);
        }
        Ok(token)
    }

    /// Creates a token named `name`; its secret is in the answer and nowhere else.
    pub async fn create_token(
        &self,
        role: Role,
        name: &str,
        actor: Actor,
        now: Timestamp,
    ) -> Result<(ApiToken, TokenSecret), ServiceError> {
        let name = parse_token_name(name)
            .ok_or_else(|| DomainError::field("name", "must be 1 to 100 printable characters"))?;
        let (new, secret) = NewApiToken::generate(role, name, now);
        let token = self.store.create_token(new, actor).await?;
        Ok((token, secret))
    }

    /// Every token, without secrets.
    pub async fn tokens(&self) -> Result<Vec<ApiToken>, ServiceError> {
        Ok(self.store.tokens().await?)
    }

    /// Revokes a token by id or visible prefix.
    pub async fn revoke_token(
        &self,
        id: String,
        actor: Actor,
        now: Timestamp,
    ) -> Result<ApiToken, ServiceError> {
        Ok(self.store.revoke_token(id, actor, now).await?)
    }

    /// The licenses a look-up by order id, email or key finds.
    pub async fn find_licenses(&self, lookup: LicenseLookup) -> Result<Vec<License>, ServiceError> {
        Ok(self.store.find_licenses(lookup).await?)
    }

    /// A page of licenses, with the `after` of the next page (none at the end).
    pub async fn list_licenses(
        &self,
        page: LicensePage,
    ) -> Result<(Vec<License>, Option<String>), ServiceError> {
        let limit = page.limit as usize;
        let items = self.store.list_licenses(page).await?;
        let next = (items.len() == limit)
            .then(|| items.last().map(|l| l.id.clone()))
            .flatten();
        Ok((items, next))
    }

    /// Suspends, reinstates, revokes or refunds a license.
    pub async fn transition(
        &self,
        id: String,
        action: Action,
        reason: Option<String>,
        actor: Actor,
        now: Timestamp,
    ) -> Result<License, ServiceError> {
        Ok(self
            .store
            .transition(id, action, reason, actor, now)
            .await?)
    }

    /// Renews a license by `days` (or its product's period).
    pub async fn renew(
        &self,
        id: String,
        days: Option<u32>,
        actor: Actor,
        now: Timestamp,
    ) -> Result<License, ServiceError> {
        Ok(self.store.renew(id, days, actor, now).await?)
    }

    /// Marks an upgrade's difference paid: the license becomes active.
    pub async fn confirm_payment(
        &self,
        id: String,
        actor: Actor,
        now: Timestamp,
    ) -> Result<License, ServiceError> {
        Ok(self.store.confirm_payment(id, actor, now).await?)
    }

    /// A license and its machines, newest first.
    pub async fn machines(
        &self,
        license_id: &str,
    ) -> Result<(License, Vec<Activation>), ServiceError> {
        let (license, _) = self
            .store
            .license(license_id)
            .await?
            .ok_or(DomainError::LicenseNotFound)?;
        let activations = self.store.activations(license_id).await?;
        Ok((license, activations))
    }

    /// A license's audit events, oldest first.
    pub async fn history(
        &self,
        license_id: &str,
        page: EventPage,
    ) -> Result<Vec<Event>, ServiceError> {
        if self.store.license(license_id).await?.is_none() {
            return Err(DomainError::LicenseNotFound.into());
        }
        Ok(self.store.history(license_id, page).await?)
    }

    /// Customers' claims of one status (`pending`, `granted`, `resolved`), oldest first.
    pub async fn claims(&self, status: ClaimStatus) -> Result<Vec<Claim>, ServiceError> {
        Ok(self.store.claims(status).await?)
    }

    /// A customer's claims: of their licenses and filed under their email.
    pub async fn customer_claims(&self, email: &str) -> Result<Vec<Claim>, ServiceError> {
        Ok(self.store.customer_claims(email).await?)
    }

    /// Claims with a status, the first `with_evidence` with their license and
    /// evidence at `now`.
    pub async fn claims_with_evidence(
        &self,
        status: ClaimStatus,
        with_evidence: usize,
        now: Timestamp,
    ) -> Result<Vec<QueuedClaim>, ServiceError> {
        Ok(self
            .store
            .claims_with_evidence(status, with_evidence, now)
            .await?)
    }

    /// The claims on one license with a status, oldest first.
    pub async fn license_claims(
        &self,
        license_id: &str,
        status: ClaimStatus,
    ) -> Result<Vec<Claim>, ServiceError> {
        Ok(self.store.license_claims(license_id, status).await?)
    }

    /// A customer's credit ledger.
    pub async fn credits(&self, email: &str) -> Result<Vec<CreditEntry>, ServiceError> {
        Ok(self.store.credits(email).await?)
    }
}
