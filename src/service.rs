//! Operations that combine the domain, the keyring and storage: what handlers call.

use std::sync::Arc;

use crate::domain::audit::Actor;
use crate::domain::ids::new_id;
use crate::domain::license::{License, MintRequest};
use crate::domain::product::{Catalog, KeyFormat};
use crate::domain::time::Timestamp;
use crate::domain::DomainError;
use crate::error::ApiError;
use crate::storage::{IssuedKey, MintOutcome, Storage, StorageError, StoredKey};
use crate::token::claims::LicenseClaims;
use crate::token::Keyring;

/// Everything a request needs, shared by all workers.
pub struct AppState {
    /// The database.
    pub store: Arc<dyn Storage>,
    /// The signing keys.
    pub keyring: Arc<Keyring>,
    /// The products.
    pub catalog: Arc<Catalog>,
    /// The `iss` claim.
    pub issuer: String,
}

/// Largest batch of `POST /v1/licenses/batch`.
pub const MAX_BATCH: usize = 1000;

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

fn internal(what: &str) -> ApiError {
    log::error!("{what}");
    ApiError::Internal
}

impl AppState {
    /// Signs a key for a new license with the active key.
    fn issue(&self, license: &License) -> Result<(String, IssuedKey), ApiError> {
        let active = self
            .keyring
            .active()
            .ok_or_else(|| internal("no active signing key"))?;
        let kid = active.kid.clone();
        let (key, payload) = match license.key_format {
            KeyFormat::Signed => {
                let claims = LicenseClaims::for_license(license, &self.issuer);
                let payload = serde_json::to_string(&claims).map_err(|_| internal("claims"))?;
                let token = self
                    .keyring
                    .sign_with(&kid, payload.as_bytes())
                    .ok_or_else(|| internal("active key cannot sign"))?;
                (token, payload)
            }
            KeyFormat::Short => {
                let short = self
                    .keyring
                    .short_key(&kid, &license.id)
                    .ok_or_else(|| internal("active key cannot derive"))?;
                (short.to_string(), String::new())
            }
        };
        let hash = crate::domain::key::LicenseKey::parse(&key)
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

    /// The key a license was issued with, made again from what was stored.
    pub fn reissue(&self, license: &License, stored: &StoredKey) -> Result<String, ApiError> {
        let key = match license.key_format {
            KeyFormat::Signed => self
                .keyring
                .sign_with(&stored.kid, stored.payload.as_bytes()),
            KeyFormat::Short => self
                .keyring
                .short_key(&stored.kid, &license.id)
                .map(|k| k.to_string()),
        };
        key.ok_or_else(|| internal(&format!("signing key {} is missing", stored.kid)))
    }

    fn prepare(
        &self,
        req: MintRequest,
        now: Timestamp,
    ) -> Result<(crate::domain::license::NewLicense, String, IssuedKey), ApiError> {
        let product = self
            .catalog
            .get(&req.product)
            .ok_or_else(|| DomainError::UnknownProduct(req.product.clone()))?;
        let new = req.into_new_license(product, new_id("lic", now), now)?;
        let (key, issued) = self.issue(&new.license)?;
        Ok((new, key, issued))
    }

    fn finish(&self, outcome: MintOutcome, fresh_key: String) -> Result<Minted, ApiError> {
        Ok(match outcome {
            MintOutcome::Created(license) => Minted {
                created: true,
                license,
                key: fresh_key,
            },
            MintOutcome::Existing(license, stored) => Minted {
                created: false,
                key: self.reissue(&license, &stored)?,
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
    ) -> Result<Minted, ApiError> {
        let (new, key, issued) = self.prepare(req, now)?;
        let outcome = self.store.mint(new, issued, actor).await?;
        self.finish(outcome, key)
    }

    /// Mints a batch; each item gets its own result.
    pub async fn mint_batch(
        self: Arc<Self>,
        items: Vec<Result<MintRequest, ApiError>>,
        actor: Actor,
        now: Timestamp,
    ) -> Result<Vec<Result<Minted, ApiError>>, ApiError> {
        // Signing up to a thousand keys takes milliseconds: keep it off the executor.
        let this = Arc::clone(&self);
        let prepared = tokio::task::spawn_blocking(move || {
            items
                .into_iter()
                .map(|item| item.and_then(|req| this.prepare(req, now)))
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|_| internal("batch preparation failed"))?;
        let mut to_store = Vec::new();
        let mut keys = Vec::new();
        let mut results: Vec<Option<Result<Minted, ApiError>>> = Vec::with_capacity(prepared.len());
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
        Ok(results
            .into_iter()
            .map(|r| match r {
                Some(done) => done,
                None => match stored.next() {
                    Some((Ok(outcome), key)) => self.finish(outcome, key),
                    Some((Err(e), _)) => Err(ApiError::from(e)),
                    None => Err(internal("batch result missing")),
                },
            })
            .collect())
    }

    /// A license and its current key.
    pub async fn license_with_key(&self, id: &str) -> Result<(License, String), ApiError> {
        let (license, stored) = self
            .store
            .license(id)
            .await?
            .ok_or(StorageError::Domain(DomainError::LicenseNotFound))?;
        let key = self.reissue(&license, &stored)?;
        Ok((license, key))
    }
}
