//! Operations that combine the domain, the keyring and storage: what handlers call.

pub mod console;
pub mod downloads;
pub mod error;
pub mod grace;
pub mod keys;
pub mod limit_sync;
pub mod limits;
pub mod my;
pub mod payments;
pub mod queries;
pub mod reminders;
pub mod staff;
pub mod webhooks;

use std::sync::Arc;

use serde::Deserialize;

use crate::domain::activation::{
    certificate_expiry, Fingerprint, FINGERPRINT, MACHINE_LABEL, NONCE,
};
use crate::domain::audit::Actor;
use crate::domain::grace::ClaimPolicy;
use crate::domain::ids::is_id;
use crate::domain::ids::new_id;
use crate::domain::key::LicenseKey;
use crate::domain::license::{License, MintRequest};
use crate::domain::product::{Catalog, KeyFormat};
use crate::domain::text::{TextRule, NOTE};
use crate::domain::time;
use crate::domain::time::Timestamp;
use crate::domain::DomainError;
use crate::storage::activation::{
    Activation, ActivationOutcome, Deactivation, DeactivationOutcome, Deactivator, NewActivation,
    Policies,
};
use crate::storage::shared_limits::SharedLimits;
use crate::storage::{IssuedKey, MintOutcome, Storage, StorageError, StoredKey};
use crate::token::claims::{
    self, ActivationClaims, ValidationReceipt, ACTIVATION_KIND, VALIDATION_KIND,
};
use crate::token::Keyring;
pub use error::ServiceError;
use keys::Keys;
use limits::{Limiter, PublicLimits, RateLimitSettings};

/// Everything a request needs, shared by all workers.
pub struct AppState {
    /// The database.
    pub store: Arc<dyn Storage>,
    /// Last-seen times noted by validations, written in bulk.
    pub last_seen: Arc<crate::storage::last_seen::LastSeen>,
    /// The signing keys, reloaded when the keys directory changes.
    pub keyring: Arc<Keys>,
    /// The products.
    pub catalog: Arc<Catalog>,
    /// The `iss` claim.
    pub issuer: String,
    /// Seat rules (churn limit, release of unseen machines) per product.
    pub policies: Policies,
    /// The `[late_claims]` policy.
    pub claim_policy: ClaimPolicy,
    /// The policy with the catalog, as customers' claims are judged.
    pub claim_rules: Arc<crate::domain::grace::ClaimRules>,
    /// Request counters of the public endpoints.
    pub limits: Limits,
    /// The payment providers whose webhooks are taken (`[payments.<provider>]`).
    pub payments: Arc<payments::PaymentProviders>,
    /// `[webhooks]`: which addresses endpoints may reach, the rotation overlap.
    pub webhooks: crate::outbox::WebhookSettings,
    /// Whether `[mail]` is set up: without it no mail is queued.
    pub mail_on: bool,
    /// The products' files and the secret of their download links.
    pub downloads: Arc<downloads::Downloads>,
}

/// The rate limits keyclerk keeps in memory (the failed look-ups also in the
/// database, when instances share one: see [`limits`]).
pub struct Limits {
    /// Whether any limit applies (`[rate_limits] enabled`).
    pub enabled: bool,
    /// Claims per license key per day.
    pub claims_per_key: Limiter,
    /// Claims per client address per hour.
    pub claims_per_address: Limiter,
    /// Failed look-ups per address and requests per key on the public endpoints.
    pub public: Arc<PublicLimits>,
    /// Brings other instances' failed look-ups into `public`, while it runs.
    _sync: Option<limit_sync::LimitSync>,
}

impl Limits {
    /// Counters for `policy` and `settings`; failed look-ups counted in `shared`
    /// too, and the other instances' read from it, when the database is shared.
    pub fn new(
        policy: &ClaimPolicy,
        settings: &RateLimitSettings,
        shared: Option<Arc<dyn SharedLimits>>,
    ) -> std::io::Result<Self> {
        let public = Arc::new(PublicLimits::new(settings).shared_with(shared));
        let sync = match public.shared() {
            Some(shared) => Some(limit_sync::LimitSync::start(
                Arc::clone(shared),
                Arc::clone(&public),
                limit_sync::POLL_EVERY,
            )?),
            None => None,
        };
        Ok(Self {
            enabled: settings.enabled,
            claims_per_key: Limiter::new(policy.max_claims_per_key_per_day, 86_400),
            claims_per_address: Limiter::new(policy.max_claims_per_address_per_hour, 3600),
            public,
            _sync: sync,
        })
    }
}

/// The 429 of a limit.
pub fn rate_limited(retry_after_secs: u64) -> ServiceError {
    ServiceError::RateLimited { retry_after_secs }
}

/// The counting key of a license key: half its hash, in hex (never the key itself).
pub fn key_tag(hash: &[u8; 32]) -> String {
    use std::fmt::Write;
    hash[..16]
        .iter()
        .fold(String::with_capacity(32), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Lease and grace used for a product that has left the catalog: the defaults.
const FALLBACK_LEASE_DAYS: u32 = crate::domain::product::DEFAULT_LEASE_DAYS;
const FALLBACK_GRACE_DAYS: u32 = crate::domain::product::DEFAULT_OFFLINE_GRACE_DAYS;

/// An activation request from an app.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivationRequest {
    /// The license key as the customer has it (any other text is an unknown key).
    pub license_key: String,
    /// The machine's fingerprint (a hash of its machine id).
    #[schema(value_type = crate::domain::schema::Fingerprint)]
    pub fingerprint: String,
    /// A name for the machine.
    #[serde(default)]
    #[schema(value_type = Option<crate::domain::schema::MachineLabel>)]
    pub name: Option<String>,
    /// The platform (`windows`, `macos`, ...).
    #[serde(default)]
    #[schema(value_type = Option<crate::domain::schema::MachineLabel>)]
    pub platform: Option<String>,
}

/// A granted activation with its signed certificate.
#[derive(Debug)]
pub struct Activated {
    /// True for a new seat, false for a refresh of a machine holding one.
    pub created: bool,
    /// The activation.
    pub activation: Activation,
    /// The PASETO certificate the app stores.
    pub certificate: String,
    /// When the certificate's lease ends (its `exp`).
    pub lease_expires_at: Timestamp,
    /// The license as it stands now.
    pub license: License,
}

/// `value` if it follows `rule`, or an error naming `field`.
pub fn text(
    field: &str,
    rule: &TextRule,
    value: Option<String>,
) -> Result<Option<String>, ServiceError> {
    match value {
        Some(v) if !rule.allows(&v) => Err(DomainError::field(field, rule.describe()).into()),
        other => Ok(other),
    }
}

/// Body of `POST /v1/activations/{id}/deactivate`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeactivationRequest {
    /// The license key: how the customer's app proves itself. Without it the
    /// request needs a support token (401 `missing_credentials` otherwise).
    #[serde(default)]
    pub license_key: Option<String>,
    /// Why (support's note).
    #[serde(default)]
    #[schema(value_type = Option<crate::domain::schema::Note>)]
    pub reason: Option<String>,
}

/// A freed seat.
#[derive(Debug)]
pub struct Deactivated {
    /// The activation, with its `deactivated_at`.
    pub activation: Activation,
    /// It was freed before this request (nothing changed).
    pub already: bool,
}

/// Body of `POST /v1/validate`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidationRequest {
    /// The license key (any other text is an unknown key: `NOT_FOUND`).
    pub license_key: String,
    /// The machine; without it only the license is checked.
    #[serde(default)]
    #[schema(value_type = Option<crate::domain::schema::Fingerprint>)]
    pub fingerprint: Option<String>,
    /// A fresh random value from the app; the answer then carries a signed receipt.
    #[serde(default)]
    #[schema(value_type = Option<crate::domain::schema::Nonce>)]
    pub nonce: Option<String>,
}

/// The answer of a validation.
#[derive(Debug)]
pub struct Validation {
    /// `VALID`, `NOT_FOUND`, `SUSPENDED`, ...
    pub code: &'static str,
    /// The license, unless the key is unknown.
    pub license: Option<License>,
    /// The signed receipt, when the app sent a nonce.
    pub receipt: Option<String>,
}

fn parse_fingerprint(s: &str) -> Result<Fingerprint, ServiceError> {
    Fingerprint::parse(s)
        .ok_or_else(|| DomainError::field("fingerprint", FINGERPRINT.describe()).into())
}

/// A free-text note of the request field `field`, as [`NOTE`] allows.
pub fn note(field: &str, value: Option<String>) -> Result<Option<String>, ServiceError> {
    text(field, &NOTE, value)
}

pub use crate::domain::license::MAX_BATCH;

/// A minted (or found again) license with its key.
#[derive(Debug)]
pub struct Minted {
    /// True for a new license, false for one found again by its order id.
    pub created: bool,
    /// The license.
    pub license: License,
    /// Its key.
    pub key: String,
}

/// An internal failure with no cause beyond `what` (the cause chain goes to the
/// request's log line).
fn internal(what: &str) -> ServiceError {
    ServiceError::Internal(what.to_owned())
}

impl AppState {
    /// Signs a key for a new license with the active key.
    pub(crate) fn issue(&self, license: &License) -> Result<(String, IssuedKey), ServiceError> {
        let ring = self.keyring.ring();
        let active = ring
            .active()
            .ok_or_else(|| internal("no active signing key"))?;
        let kid = active.kid.clone();
        let (key, payload) = match license.key_format {
            KeyFormat::Signed => {
                let claims = claims::license_claims(license, &self.issuer);
                let payload = serde_json::to_string(&claims)
                    .map_err(|e| ServiceError::internal("claims", &e))?;
                let token = ring
                    .sign_with(&kid, payload.as_bytes())
                    .ok_or_else(|| internal("active key cannot sign"))?;
                (token, payload)
            }
            KeyFormat::Short => {
                let short = ring
                    .short_key(&kid, &license.id)
                    .ok_or_else(|| internal("active key cannot derive"))?;
                (short.to_string(), String::new())
            }
        };
        let hash = LicenseKey::parse(&key)
            .map(|k| k.hash())
            .ok_or_else(|| internal("issued an unparseable key"))?;
        Ok((
            key,
            IssuedKey {
                key_hash: hash,
                stored: StoredKey { kid, payload },
            },
        ))
    }

    /// Loads the keys directory again (`POST /v1/keys/reload`, `SIGHUP`, the watch).
    pub async fn reload_keys(&self, now: Timestamp) -> Result<keys::Reloaded, ServiceError> {
        self.keyring
            .reload(&*self.store, now)
            .await
            .map_err(|e| match e {
                keys::ReloadError::Storage(e) => ServiceError::from(e),
                other => ServiceError::KeysNotReloaded(other.to_string()),
            })
    }

    /// The key a license was issued with, made again from what was stored (by a key
    /// this instance may have to load first: see [`Keys::ring_with`]).
    pub async fn reissue(
        &self,
        license: &License,
        stored: &StoredKey,
    ) -> Result<String, ServiceError> {
        let ring = self
            .keyring
            .ring_with(&stored.kid, &*self.store, time::now())
            .await;
        reissue_with(&ring, license, stored)
    }

    fn prepare(
        &self,
        req: MintRequest,
        now: Timestamp,
    ) -> Result<(crate::domain::license::NewLicense, String, IssuedKey), ServiceError> {
        let product = self
            .catalog
            .get(&req.product)
            .ok_or_else(|| DomainError::UnknownProduct(req.product.clone()))?;
        let mail = req.mail_wanted(product)?.filter(|_| self.mail_on);
        let locale = crate::domain::mail::Locale::field(req.locale.as_deref())?;
        let mut new = req.into_new_license(product, new_id("lic", now), now)?;
        let reminded = self.mail_on
            && !product.spec.remind_before_days.is_empty()
            && new.license.customer_email.is_some()
            && new.license.activate_by.is_some();
        if reminded {
            new.reminders = Some(crate::domain::reminder::ReminderPlan {
                days: product.spec.remind_before_days.clone(),
                locale,
            });
        }
        let (key, issued) = self.issue(&new.license)?;
        if let (Some(locale), Some(to)) = (mail, new.license.customer_email.as_deref()) {
            new.mail = Some(crate::domain::mail::NewMail::license_key(
                &new.license,
                &product.spec.name,
                &key,
                to,
                locale,
            ));
        }
        Ok((new, key, issued))
    }

    async fn finish(
        &self,
        outcome: MintOutcome,
        fresh_key: String,
    ) -> Result<Minted, ServiceError> {
        Ok(match outcome {
            MintOutcome::Created(license) => Minted {
                created: true,
                license,
                key: fresh_key,
            },
            MintOutcome::Existing(license, stored) => Minted {
                created: false,
                key: self.reissue(&license, &stored).await?,
                license,
            },
        })
    }

    /// Mints one license (idempotent on the order id).
    pub async fn mint(
        &self,
        req: MintRequest,
        actor: Actor,
        now: Timestamp,
    ) -> Result<Minted, ServiceError> {
        let (new, key, issued) = self.prepare(req, now)?;
        let outcome = self.store.mint(new, issued, actor).await?;
        self.finish(outcome, key).await
    }

    /// Mints a batch; each item gets its own result.
    ///
    /// Items arrive already parsed or refused by the caller (`E` is the caller's
    /// error, into which this one's errors convert), and leave in the same order.
    pub async fn mint_batch<E>(
        self: Arc<Self>,
        items: Vec<Result<MintRequest, E>>,
        actor: Actor,
        now: Timestamp,
    ) -> Result<Vec<Result<Minted, E>>, ServiceError>
    where
        E: From<ServiceError> + Send + 'static,
    {
        // Signing up to a thousand keys takes milliseconds: keep it off the executor.
        let this = Arc::clone(&self);
        let prepared = tokio::task::spawn_blocking(move || {
            items
                .into_iter()
                .map(|item| item.and_then(|req| this.prepare(req, now).map_err(E::from)))
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| ServiceError::internal("batch preparation", &e))?;
        let mut to_store = Vec::new();
        let mut keys = Vec::new();
        let mut results: Vec<Option<Result<Minted, E>>> = Vec::with_capacity(prepared.len());
        for p in prepared {
            match p {
                Ok((new, key, issued)) => {
                    to_store.push((new, issued));
                    keys.push(key);
                    results.push(None);
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }
        let stored = if to_store.is_empty() {
            Vec::new()
        } else {
            self.store.mint_batch(to_store, actor).await?
        };
        let mut stored = stored.into_iter().zip(keys);
        let mut answers = Vec::with_capacity(results.len());
        for r in results {
            answers.push(match r {
                Some(done) => done,
                None => match stored.next() {
                    Some((Ok(outcome), key)) => self.finish(outcome, key).await.map_err(E::from),
                    Some((Err(e), _)) => Err(E::from(ServiceError::from(e))),
                    None => Err(E::from(internal("batch result missing"))),
                },
            });
        }
        Ok(answers)
    }

    /// Activates a machine, or refreshes one that holds a seat, and signs its certificate.
    pub async fn activate(
        &self,
        req: ActivationRequest,
        client: &str,
        now: Timestamp,
    ) -> Result<Activated, ServiceError> {
        let fingerprint = parse_fingerprint(&req.fingerprint)?;
        let name = text("name", &MACHINE_LABEL, req.name)?;
        let platform = text("platform", &MACHINE_LABEL, req.platform)?;
        // Unknown, malformed and forged keys all end here, alike.
        let Some(key_hash) = self.admit(&req.license_key, client, now).await? else {
            return Err(self.not_found(client, now).await);
        };
        let outcome = self
            .store
            .activate(
                NewActivation {
                    id: new_id("act", now),
                    key_hash,
                    fingerprint,
                    name,
                    platform,
                    policies: Arc::clone(&self.policies),
                },
                now,
            )
            .await;
        let outcome = self.settle(outcome, client, now)?;
        if !matches!(outcome, ActivationOutcome::NotFound) {
            self.found(client, now);
        }
        let (license, activation, created) = match outcome {
            ActivationOutcome::NotFound => return Err(self.not_found(client, now).await),
            ActivationOutcome::Refused(r) => return Err(ServiceError::Refused(r)),
            ActivationOutcome::Granted {
                license,
                activation,
                created,
            } => (*license, *activation, created),
        };
        let (certificate, lease_expires_at) = self.certificate(&license, &activation, now)?;
        Ok(Activated {
            created,
            activation,
            certificate,
            lease_expires_at,
            license,
        })
    }

    /// Frees a seat: with the license key (the customer's app, within the churn
    /// limit) or with a support token (`support`: its actor; outside the limit).
    pub async fn deactivate(
        &self,
        activation_id: &str,
        req: DeactivationRequest,
        support: Option<Actor>,
        client: &str,
        now: Timestamp,
    ) -> Result<Deactivated, ServiceError> {
        let reason = note("reason", req.reason)?;
        let customer = support.is_none();
        // A malformed key, or another license's, answers like an unknown activation.
        let unknown = || async move {
            if customer {
                if let Err(e) = self.lookup_failed(client, now).await {
                    return e;
                }
            }
            ServiceError::ActivationNotFound
        };
        let by = match (support, req.license_key) {
            (Some(actor), _) => Deactivator::Support(actor),
            (None, Some(key)) => match self.admit(&key, client, now).await? {
                Some(hash) => Deactivator::Customer(hash),
                None => return Err(unknown().await),
            },
            (None, None) => return Err(ServiceError::MissingCredentials),
        };
        if !is_id("act", activation_id) {
            return Err(unknown().await);
        }
        let outcome = self
            .store
            .deactivate(
                Deactivation {
                    activation_id: activation_id.to_owned(),
                    by,
                    reason,
                    policies: Arc::clone(&self.policies),
                },
                now,
            )
            .await;
        let outcome = if customer {
            self.settle(outcome, client, now)?
        } else {
            outcome?
        };
        if customer && !matches!(outcome, DeactivationOutcome::NotFound) {
            self.found(client, now);
        }
        match outcome {
            DeactivationOutcome::NotFound => Err(unknown().await),
            DeactivationOutcome::LimitReached(free_at) => {
                Err(ServiceError::DeactivationLimitReached {
                    retry_after_secs: free_at
                        .map(|t| (t - now).num_seconds().max(1).unsigned_abs()),
                })
            }
            DeactivationOutcome::Deactivated {
                activation,
                already,
            } => Ok(Deactivated {
                activation: *activation,
                already,
            }),
        }
    }

    /// Checks a key (and a machine) against the license's current state.
    ///
    /// A read, except the first time a key is ever presented; the last-seen time of a
    /// valid answer is noted and written in bulk, without an audit event.
    pub async fn validate(
        &self,
        req: ValidationRequest,
        client: &str,
        now: Timestamp,
    ) -> Result<Validation, ServiceError> {
        let nonce = text("nonce", &NONCE, req.nonce)?;
        let fingerprint = req
            .fingerprint
            .as_deref()
            .map(parse_fingerprint)
            .transpose()?;
        let facts = match self.admit(&req.license_key, client, now).await? {
            Some(hash) => {
                let facts = self
                    .store
                    .key_facts(hash, fingerprint.as_ref().map(|f| f.as_str().to_owned()))
                    .await;
                self.settle(facts, client, now)?
            }
            None => None,
        };
        let (code, license) = match facts {
            None => {
                self.lookup_failed(client, now).await?;
                ("NOT_FOUND", None)
            }
            Some(facts) => {
                self.found(client, now);
                if !facts.presented_before {
                    self.store
                        .mark_presented(
                            facts.license.id.clone(),
                            crate::domain::audit::PresentedBy::Validation,
                            now,
                        )
                        .await?;
                }
                let code = crate::domain::activation::validation_code(
                    &facts.license,
                    facts.ever_activated,
                    fingerprint.is_some(),
                    facts.activation_id.is_some(),
                    now,
                );
                if code == "VALID" {
                    self.last_seen
                        .note(&facts.license.id, facts.activation_id.as_deref(), now);
                }
                (code, Some(facts.license))
            }
        };
        let receipt = match nonce {
            Some(nonce) => Some(self.receipt(ValidationReceipt {
                kind: VALIDATION_KIND.to_owned(),
                iss: self.issuer.clone(),
                nonce,
                code: code.to_owned(),
                valid: code == "VALID",
                license: license.as_ref().map(|l| l.id.clone()),
                fingerprint: fingerprint.map(|f| f.as_str().to_owned()),
                iat: time::format(now),
            })?),
            None => None,
        };
        Ok(Validation {
            code,
            license,
            receipt,
        })
    }

    /// The rate limits before a look-up of `key` from `client`: 429 while the
    /// address or the key is over its limit, else the key's hash to look up (none for
    /// a malformed key). A failed look-up is reserved here, so concurrent look-ups
    /// cannot pass more failures than the limit; a caller whose look-up finds the key
    /// gives it back ([`AppState::found`]), one that finds nothing keeps it
    /// (`failed`). While the address's remaining failures are all reserved by
    /// look-ups in flight, this waits for them rather than refuse an honest client.
    async fn admit(
        &self,
        key: &str,
        client: &str,
        now: Timestamp,
    ) -> Result<Option<[u8; 32]>, ServiceError> {
        let hash = LicenseKey::parse(key).map(|k| k.hash());
        if self.limits.enabled {
            let tag = hash.as_ref().map(key_tag);
            self.limits
                .public
                .admit_waiting(client, tag.as_deref(), now)
                .await
                .map_err(rate_limited)?;
        }
        Ok(hash)
    }

    /// The result of a look-up admitted by [`AppState::admit`]: when it failed on our
    /// side, its reserved failure stays counted and no longer holds others back.
    pub(crate) fn settle<T>(
        &self,
        looked_up: Result<T, StorageError>,
        client: &str,
        now: Timestamp,
    ) -> Result<T, ServiceError> {
        looked_up.map_err(|e| {
            self.limits.public.failed(client, now);
            e.into()
        })
    }

    /// `license_not_found`, counted against `client` (429 instead when the shared
    /// count says other instances used the address's failures up).
    pub(crate) async fn not_found(&self, client: &str, now: Timestamp) -> ServiceError {
        match self.lookup_failed(client, now).await {
            Ok(()) => DomainError::LicenseNotFound.into(),
            Err(limited) => limited,
        }
    }

    /// A look-up admitted by [`AppState::admit`] found nothing: its reserved failure
    /// stands, on every instance; 429 when the shared count was used up meanwhile.
    async fn lookup_failed(&self, client: &str, now: Timestamp) -> Result<(), ServiceError> {
        self.limits
            .public
            .not_found(client, now)
            .await
            .map_err(rate_limited)
    }

    /// The look-up after [`AppState::admit`] found its key: the reserved failure goes back.
    pub(crate) fn found(&self, client: &str, now: Timestamp) {
        if self.limits.enabled {
            self.limits.public.found(client, now);
        }
    }

    fn receipt(&self, claims: ValidationReceipt) -> Result<String, ServiceError> {
        let payload = serde_json::to_vec(&claims)
            .map_err(|e| ServiceError::internal("receipt claims", &e))?;
        self.sign_active(&payload)
    }

    fn sign_active(&self, payload: &[u8]) -> Result<String, ServiceError> {
        let ring = self.keyring.ring();
        let kid = &ring
            .active()
            .ok_or_else(|| internal("no active signing key"))?
            .kid;
        ring.sign_with(kid, payload)
            .ok_or_else(|| internal("active key cannot sign"))
    }

    fn certificate(
        &self,
        license: &License,
        activation: &Activation,
        now: Timestamp,
    ) -> Result<(String, Timestamp), ServiceError> {
        let (lease, grace) = self
            .catalog
            .get(&license.product)
            .map_or((FALLBACK_LEASE_DAYS, FALLBACK_GRACE_DAYS), |p| {
                (p.spec.lease_days, p.spec.offline_grace_days)
            });
        let exp = certificate_expiry(now, lease, license.expires_at, grace);
        let claims = ActivationClaims {
            kind: ACTIVATION_KIND.to_owned(),
            iss: self.issuer.clone(),
            sub: activation.id.clone(),
            license: license.id.clone(),
            product: license.product.clone(),
            fingerprint: activation.fingerprint.clone(),
            iat: time::format(now),
            exp: time::format(exp),
            license_expires: license.expires_at.map(time::format),
            entitlements: license.entitlements.clone(),
        };
        let payload = serde_json::to_vec(&claims)
            .map_err(|e| ServiceError::internal("certificate claims", &e))?;
        Ok((self.sign_active(&payload)?, exp))
    }

    /// A license and its current key.
    pub async fn license_with_key(&self, id: &str) -> Result<(License, String), ServiceError> {
        let (license, stored) = self
            .store
            .license(id)
            .await?
            .ok_or(StorageError::Domain(DomainError::LicenseNotFound))?;
        let key = self.reissue(&license, &stored).await?;
        Ok((license, key))
    }
}

/// The key a license was issued with, made again by `ring` from what was stored.
fn reissue_with(
    ring: &Keyring,
    license: &License,
    stored: &StoredKey,
) -> Result<String, ServiceError> {
    let key = match license.key_format {
        KeyFormat::Signed => ring.sign_with(&stored.kid, stored.payload.as_bytes()),
        KeyFormat::Short => ring
            .short_key(&stored.kid, &license.id)
            .map(|k| k.to_string()),
    };
    key.ok_or_else(|| internal(&format!("signing key {} is missing", stored.kid)))
}
