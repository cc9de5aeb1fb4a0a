//! The customer page's operations: sign-in with a key (counted like any public
//! look-up of a key), sign-in links by mail (counted per email and per address),
//! and the licenses a customer session may see.

use crate::domain::customer::{CustomerSession, LinkState, NewSignIn, Subject};
use crate::domain::ids::new_id;
use crate::domain::license::{Email, License};
use crate::domain::mail::Locale;
use crate::domain::staff::StaffSecret;
use crate::domain::time::Timestamp;
use crate::service::limits::Limiter;
use crate::service::{rate_limited, AppState, ServiceError};
use crate::storage::LicenseLookup;

/// How many licenses a key's session follows along `superseded_by`.
const MAX_SUCCESSORS: usize = 8;

/// Sign-in links asked for, per email and per client address.
pub struct LinkLimits {
    /// Per (lower-case) email.
    pub per_email: Limiter,
    /// Per client address.
    pub per_address: Limiter,
}

impl LinkLimits {
    /// `per_email` and `per_address` links per hour.
    pub fn new(per_email: u32, per_address: u32) -> Self {
        Self {
            per_email: Limiter::new(per_email, 3600),
            per_address: Limiter::new(per_address, 3600),
        }
    }
}

/// What asking for a sign-in link did (the customer is told the same either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkAsked {
    /// A link was stored (and mailed): the email has licenses.
    Sent,
    /// Nothing: the email has none (or is not an email).
    Nothing,
}

impl AppState {
    /// The license a key (signed or short) opens, counted against `client` as
    /// activation counts its look-ups: unknown, malformed and forged keys alike
    /// are `license_not_found`.
    pub async fn license_by_key(
        &self,
        key: &str,
        client: &str,
        now: Timestamp,
    ) -> Result<License, ServiceError> {
        let Some(hash) = self.admit(key.trim(), client, now).await? else {
            return Err(self.not_found(client, now).await);
        };
        let found = self.store.find_licenses(LicenseLookup::KeyHash(hash)).await;
        let found = self.settle(found, client, now)?;
        match found.into_iter().next() {
            Some(license) => {
                self.found(client, now);
                Ok(license)
            }
            None => Err(self.not_found(client, now).await),
        }
    }

    /// Starts a customer session for `subject`; the secret is the cookie's value.
    pub async fn start_customer_session(
        &self,
        subject: Subject,
        now: Timestamp,
    ) -> Result<(CustomerSession, StaffSecret), ServiceError> {
        let (session, secret) = CustomerSession::start(subject, now);
        self.store
            .customer_store()
            .start_customer_session(session.clone())
            .await?;
        Ok((session, secret))
    }

    /// Asks for a sign-in link for `email`: counted per email and per address
    /// first; then, in one transaction, a link stored and its mail queued when the
    /// email has licenses, nothing otherwise. The same work runs either way.
    /// `link` makes the mailed address from the link's secret.
    pub async fn ask_sign_in_link(
        &self,
        limits: &LinkLimits,
        email: &str,
        client: &str,
        locale: Locale,
        link: impl Fn(&str) -> String,
        now: Timestamp,
    ) -> Result<LinkAsked, ServiceError> {
        let normalized = Email::parse(email.trim())
            .map(Email::into_string)
            .unwrap_or_else(|| email.trim().to_lowercase());
        limits.per_address.hit(client, now).map_err(rate_limited)?;
        limits
            .per_email
            .hit(&normalized, now)
            .map_err(rate_limited)?;
        let (new, _secret) = NewSignIn::issue(new_id("sgn", now), &normalized, locale, link, now);
        let stored = self
            .store
            .customer_store()
            .issue_sign_in(new, self.mail_on, now)
            .await?;
        Ok(if stored {
            LinkAsked::Sent
        } else {
            LinkAsked::Nothing
        })
    }

    /// What a presented sign-in link is at `now`, without using it.
    pub async fn sign_in_link_state(
        &self,
        secret: &StaffSecret,
        now: Timestamp,
    ) -> Result<LinkState, ServiceError> {
        Ok(self
            .store
            .customer_store()
            .sign_in_state(secret.hash(), now)
            .await?)
    }

    /// Uses a sign-in link: when it works, it is spent and a session for its email
    /// starts (the cookie's secret answered with it).
    pub async fn redeem_sign_in_link(
        &self,
        secret: &StaffSecret,
        now: Timestamp,
    ) -> Result<(LinkState, StaffSecret), ServiceError> {
        let (session, cookie) = CustomerSession::start(Subject::Email(String::new()), now);
        let state = self
            .store
            .customer_store()
            .redeem_sign_in(secret.hash(), session, now)
            .await?;
        Ok((state, cookie))
    }

    /// The licenses a customer session sees: the one of its key, or every
    /// license of its email.
    pub async fn customer_licenses(&self, subject: &Subject) -> Result<Vec<License>, ServiceError> {
        match subject {
            Subject::License(id) => {
                // The license of the key, and those that replaced it (a substitute
                // or upgrade granted on a claim), so the new key is at hand too.
                let mut found = Vec::new();
                let mut next = Some(id.clone());
                while let Some(id) = next.take() {
                    if found.len() >= MAX_SUCCESSORS || found.iter().any(|l: &License| l.id == id) {
                        break;
                    }
                    if let Some((l, _)) = self.store.license(&id).await? {
                        next.clone_from(&l.superseded_by);
                        found.push(l);
                    }
                }
                Ok(found)
            }
            Subject::Email(email) => Ok(self
                .store
                .find_licenses(LicenseLookup::Email(email.clone()))
                .await?),
        }
    }
}
