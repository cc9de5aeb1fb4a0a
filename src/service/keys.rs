//! The signing keys of a running server, reloaded from the keys directory without a
//! restart: `keyclerk keys rotate` beside a running server is picked up by a watch
//! of the directory (every [`WATCH_EVERY`]), at once on `SIGHUP` or
//! `POST /v1/keys/reload`, and, so that no request fails meanwhile, on demand when a
//! license names a key this instance has not loaded yet (another instance on the same
//! database, sharing the directory, may have signed with it a moment earlier).
//!
//! A reload never loses a key: a directory that no longer holds a key this server
//! had is refused and the old ring kept (a refusal is logged once per state of the
//! directory). New keys
//! are registered in the database (their event in the audit log) before they sign.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::domain::audit::Actor;
use crate::domain::time::Timestamp;
use crate::storage::{KnownKey, Storage, StorageError};
use crate::token::keyring::KeyError;
use crate::token::Keyring;

/// How often the keys directory is looked at for new keys.
pub const WATCH_EVERY: Duration = Duration::from_secs(2);

/// The shortest time between two reloads asked for by a missing key, so that keys
/// named by forged or foreign data cannot make every request read the directory.
const ON_DEMAND_EVERY: Duration = Duration::from_secs(1);

/// The keyring in use and where it comes from.
pub struct Keys {
    dir: PathBuf,
    ring: RwLock<Arc<Keyring>>,
    /// The `.public` file names the ring was loaded from (the watch compares them).
    files: Mutex<Vec<String>>,
    /// When a missing key last made this server reload; serialises reloads too.
    on_demand: Mutex<Option<Instant>>,
}

/// Why a reload was refused; the old ring stays in use.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// A key file could not be read or is not a key.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Keys this server signed with, or the database used, are gone from the directory.
    #[error("the keys directory {dir} no longer holds signing key(s) {missing}; the keys in use were kept")]
    Missing {
        /// The keys directory.
        dir: PathBuf,
        /// The missing key ids.
        missing: String,
    },
    /// The ring has no key with a secret.
    #[error(
        "the keys directory {0} holds no signing key with its secret; the keys in use were kept"
    )]
    NoSigningKey(PathBuf),
    /// The database could not be asked or written.
    #[error("the database: {0}")]
    Storage(#[from] StorageError),
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// Key ids loaded now that the ring did not have.
    pub added: Vec<String>,
    /// The key that signs from now on.
    pub active: String,
}

impl Keys {
    /// The ring loaded at start-up from `dir`.
    pub fn new(ring: Keyring, dir: &Path) -> Self {
        Self {
            files: Mutex::new(public_files(dir).unwrap_or_default()),
            dir: dir.to_owned(),
            ring: RwLock::new(Arc::new(ring)),
            on_demand: Mutex::new(None),
        }
    }

    /// The ring in use: one operation signs with one snapshot of it.
    pub fn ring(&self) -> Arc<Keyring> {
        Arc::clone(&self.ring.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Whether the directory's key files differ from those of the ring in use.
    pub fn changed_on_disk(&self) -> bool {
        match public_files(&self.dir) {
            Ok(files) => *self.files.lock().unwrap_or_else(|e| e.into_inner()) != files,
            Err(_) => false,
        }
    }

    /// Loads the directory again; keeps the old ring (and says why) when the new one
    /// lost a key or the database could not record the new keys.
    pub async fn reload(
        &self,
        store: &dyn Storage,
        now: Timestamp,
    ) -> Result<Reloaded, ReloadError> {
        let files = public_files(&self.dir).map_err(|source| KeyError::Io {
            path: self.dir.clone(),
            source,
        })?;
        let known = store.known_keys().await?;
        let outcome = self.check();
        if outcome.is_err() {
            // Not tried again until the directory changes once more (the watch
            // would otherwise log the same refusal every few seconds).
            *self.files.lock().unwrap_or_else(|e| e.into_inner()) = files.clone();
        }
        let (fresh, active) = outcome?;
        let current = self.ring();
        let added: Vec<KnownKey> = fresh
            .public_keys()
            .into_iter()
            .filter(|k| current.get(&k.kid).is_none())
            .map(|k| KnownKey {
                kid: k.kid,
                public_key: k.public_key,
            })
            .collect();
        let unregistered: Vec<KnownKey> = added
            .iter()
            .filter(|k| !known.iter().any(|kk| kk.kid == k.kid))
            .cloned()
            .collect();
        if !unregistered.is_empty() {
            store
                .register_keys(unregistered, Actor::System, now)
                .await?;
        }
        *self.ring.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh);
        *self.files.lock().unwrap_or_else(|e| e.into_inner()) = files;
        let added: Vec<String> = added.into_iter().map(|k| k.kid).collect();
        if !added.is_empty() {
            log::info!("loaded signing key(s) {}; {active} signs", added.join(", "));
        }
        Ok(Reloaded { added, active })
    }

    /// The directory's ring and its active key, unless it lacks a signing key or a
    /// key this server had (which, at start-up, held every key the database used,
    /// unless started with `--force`).
    fn check(&self) -> Result<(Keyring, String), ReloadError> {
        let fresh = Keyring::load(&self.dir)?;
        let Some(active) = fresh.active().map(|k| k.kid.clone()) else {
            return Err(ReloadError::NoSigningKey(self.dir.clone()));
        };
        let missing: Vec<String> = self
            .ring()
            .public_keys()
            .into_iter()
            .map(|k| k.kid)
            .filter(|kid| fresh.get(kid).is_none())
            .collect();
        if !missing.is_empty() {
            return Err(ReloadError::Missing {
                dir: self.dir.clone(),
                missing: missing.join(", "),
            });
        }
        Ok((fresh, active))
    }

    /// The ring, reloaded first when it lacks `kid` and the directory changed (at
    /// most once per [`ON_DEMAND_EVERY`]): a key another instance signed with a
    /// moment ago.
    pub async fn ring_with(&self, kid: &str, store: &dyn Storage, now: Timestamp) -> Arc<Keyring> {
        let ring = self.ring();
        if ring.get(kid).is_some() || !self.changed_on_disk() {
            return ring;
        }
        {
            let mut last = self.on_demand.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|t| t.elapsed() < ON_DEMAND_EVERY) {
                return ring;
            }
            *last = Some(Instant::now());
        }
        if let Err(e) = self.reload(store, now).await {
            log::error!("reloading the signing keys for {kid}: {e}");
        }
        self.ring()
    }
}

/// The sorted names of the `.public` files in `dir`.
fn public_files(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".public"))
        .collect();
    names.sort();
    Ok(names)
}

/// Watches the directory every [`WATCH_EVERY`] (reloading when a key file came or
/// went) and reloads on `SIGHUP`. Runs on the actix system.
pub fn watch(keys: Arc<Keys>, store: Arc<dyn Storage>) {
    {
        let (keys, store) = (Arc::clone(&keys), Arc::clone(&store));
        actix_web::rt::spawn(async move {
            let mut tick = actix_web::rt::time::interval(WATCH_EVERY);
            loop {
                tick.tick().await;
                if keys.changed_on_disk() {
                    reload_logged(&keys, &*store).await;
                }
            }
        });
    }
    actix_web::rt::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(h) => h,
            Err(e) => return log::warn!("SIGHUP will not reload the keys: {e}"),
        };
        while hangup.recv().await.is_some() {
            log::info!("SIGHUP: reloading the signing keys");
            reload_logged(&keys, &*store).await;
        }
    });
}

async fn reload_logged(keys: &Keys, store: &dyn Storage) {
    if let Err(e) = keys.reload(store, crate::domain::time::now()).await {
        log::error!("reloading the signing keys: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_file_is_a_change_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        Keyring::init(dir.path(), crate::domain::time::from_unix(1000)).unwrap();
        let keys = Keys::new(Keyring::load(dir.path()).unwrap(), dir.path());
        assert!(!keys.changed_on_disk());
        Keyring::generate_into(dir.path(), crate::domain::time::from_unix(2000)).unwrap();
        assert!(keys.changed_on_disk());
    }
}
