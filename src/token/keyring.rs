//! The signing keys in `keys/`: creation, rotation, loading, signing and verifying.
//!
//! Each key is two files named after its creation time and id:
//! `key-<unix seconds>-<id>.secret` (PASERK `k4.secret`, mode 0600) and
//! `key-<unix seconds>-<id>.public` (PASERK `k4.public`). The newest key signs; the
//! older ones are retired and still verify.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use blake2::digest::consts::U15;
use blake2::digest::Mac;
use blake2::Blake2bMac;
use ed25519_dalek::{SigningKey, VerifyingKey};
use rand::RngCore;
use serde::Serialize;

use crate::domain::short_key::{ShortKey, SHORT_KEY_BYTES};
use crate::domain::time::{self, Timestamp};
use crate::token::claims::Footer;
use crate::token::paserk;
use crate::token::paseto::{self, TokenError};

/// Why the keys directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A key file is readable by others.
    #[error("{path} is readable by group or others (mode {mode:o}); run `chmod 600 {path}`")]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
    },
    /// A key file does not hold a key.
    #[error("{path}: not a PASERK k4 key, or its public half does not match: {reason}")]
    BadKeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
    /// There is no key at all.
    #[error("no signing key in {0}; run `keyclerk keys init`")]
    NoKeys(PathBuf),
    /// `keys init` found keys already.
    #[error("{0} already holds signing keys; use `keyclerk keys rotate` to add one")]
    AlreadyInitialized(PathBuf),
}

/// Whether a key signs new tokens or only verifies old ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    /// Signs new tokens.
    Active,
    /// Only verifies.
    Retired,
}

/// One key of the ring.
pub struct KeyEntry {
    /// `k4.pid.…`
    pub kid: String,
    /// The public half.
    pub public: VerifyingKey,
    /// Creation time (from the file name).
    pub created: Timestamp,
    /// Active or retired.
    pub status: KeyStatus,
    secret: Option<SigningKey>,
}

impl std::fmt::Debug for KeyEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyEntry")
            .field("kid", &self.kid)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// A published public key (`GET /v1/keys`, `keys list`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PublicKeyInfo {
    /// `k4.pid.…`
    pub kid: String,
    /// `k4.public.…`
    pub public_key: String,
    /// Active or retired.
    pub status: KeyStatus,
    /// Creation time.
    #[serde(with = "time::serde_req")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

/// All signing keys, newest last; the newest with a secret signs.
#[derive(Debug, Default)]
pub struct Keyring {
    keys: Vec<KeyEntry>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The key id of a public key.
pub fn kid_of(public: &VerifyingKey) -> String {
    // A VerifyingKey is always 32 bytes, so `pid` always answers.
    paserk::pid_of(public.as_bytes())
}

fn file_stem(created: Timestamp, kid: &str) -> String {
    let body = kid.trim_start_matches(paserk::PID_PREFIX);
    format!(
        "key-{}-{}",
        created.timestamp(),
        &body[..body.len().min(12)]
    )
}

/// Creates `dir` (mode 0700) if it does not exist.
pub fn ensure_dir(dir: &Path) -> Result<(), KeyError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))
}

fn write_new(path: &Path, content: &str, mode: u32) -> Result<(), KeyError> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io(&tmp))?;
    f.write_all(content.as_bytes()).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))
}

impl Keyring {
    /// Loads every key in `dir`; secrets must be mode 0600 (no group or other bits).
    pub fn load(dir: &Path) -> Result<Self, KeyError> {
        Self::load_inner(dir, true)
    }

    /// Loads only the public keys in `dir` (for offline verification).
    pub fn load_public(dir: &Path) -> Result<Self, KeyError> {
        Self::load_inner(dir, false)
    }

    fn load_inner(dir: &Path, with_secrets: bool) -> Result<Self, KeyError> {
        let mut keys = Vec::new();
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(io(dir)(e)),
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "public"))
            .collect();
        paths.sort();
        for public_path in paths {
            let text = fs::read_to_string(&public_path).map_err(io(&public_path))?;
            let bad = |reason| KeyError::BadKeyFile {
                path: public_path.clone(),
                reason,
            };
            let bytes = paserk::parse_public(&text).ok_or_else(|| bad("not k4.public"))?;
            let public =
                VerifyingKey::from_bytes(&bytes).map_err(|_| bad("not an Ed25519 point"))?;
            let created = public_path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.split('-').nth(1))
                .and_then(|s| s.parse::<i64>().ok())
                .map(time::from_unix)
                .ok_or_else(|| bad("file name is not key-<unix time>-<id>.public"))?;
            let secret = if with_secrets {
                let secret_path = public_path.with_extension("secret");
                Self::load_secret(&secret_path, &public)?
            } else {
                None
            };
            keys.push(KeyEntry {
                kid: kid_of(&public),
                public,
                created,
                status: KeyStatus::Retired,
                secret,
            });
        }
        keys.sort_by_key(|k| k.created);
        if let Some(newest) = keys
            .iter_mut()
            .rev()
            .find(|k| k.secret.is_some() || !with_secrets)
        {
            newest.status = KeyStatus::Active;
        }
        Ok(Self { keys })
    }

    fn load_secret(path: &Path, public: &VerifyingKey) -> Result<Option<SigningKey>, KeyError> {
        let meta = match fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(path)(e)),
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Permissions {
                path: path.to_owned(),
                mode,
            });
        }
        let text = fs::read_to_string(path).map_err(io(path))?;
        let bad = |reason| KeyError::BadKeyFile {
            path: path.to_owned(),
            reason,
        };
        let bytes = paserk::parse_secret(&text).ok_or_else(|| bad("not k4.secret"))?;
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&bytes[..32]);
        let key = SigningKey::from_bytes(&seed);
        if key.verifying_key().as_bytes()[..] != bytes[32..] || key.verifying_key() != *public {
            return Err(bad(
                "the secret does not belong to the public key beside it",
            ));
        }
        Ok(Some(key))
    }

    /// Writes a new random key into `dir`; it becomes the active one.
    pub fn generate_into(dir: &Path, now: Timestamp) -> Result<String, KeyError> {
        ensure_dir(dir)?;
        // Creation times order the keys: a key made within the same second as the
        // newest one is dated a second later, so "newest" is never a tie.
        let newest = Self::load_public(dir)?.keys.iter().map(|k| k.created).max();
        let now = match newest {
            Some(n) if n >= now => time::from_unix(n.timestamp() + 1),
            _ => now,
        };
        let mut seed = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut seed);
        let key = SigningKey::from_bytes(&seed);
        let public = key.verifying_key();
        let kid = kid_of(&public);
        let stem = file_stem(now, &kid);
        let secret_text = paserk::secret_of(&key.to_keypair_bytes());
        write_new(&dir.join(format!("{stem}.secret")), &secret_text, 0o600)?;
        let public_text = paserk::public_of(public.as_bytes());
        write_new(&dir.join(format!("{stem}.public")), &public_text, 0o644)?;
        Ok(kid)
    }

    /// `keys init`: the first key; refuses a directory that has keys already.
    pub fn init(dir: &Path, now: Timestamp) -> Result<String, KeyError> {
        if !Self::load_public(dir)?.is_empty() {
            return Err(KeyError::AlreadyInitialized(dir.to_owned()));
        }
        Self::generate_into(dir, now)
    }

    /// Loads the ring for signing, creating a first key when `dir` has none.
    /// Returns the ring and the id of a key created now, if one was.
    pub fn load_or_create(dir: &Path, now: Timestamp) -> Result<(Self, Option<String>), KeyError> {
        let ring = Self::load(dir)?;
        if !ring.is_empty() {
            if ring.active().is_none() {
                return Err(KeyError::NoKeys(dir.to_owned()));
            }
            return Ok((ring, None));
        }
        let kid = Self::generate_into(dir, now)?;
        // The directory held no key: keyclerk makes it its own, closed to others
        // (a checkout's keys/ arrives 0755 with only its README in it).
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|source| {
            KeyError::Io {
                path: dir.to_owned(),
                source,
            }
        })?;
        Ok((Self::load(dir)?, Some(kid)))
    }

    /// A ring holding one in-memory key (tests, benchmarks).
    pub fn from_signing_key(key: SigningKey, created: Timestamp) -> Self {
        let public = key.verifying_key();
        Self {
            keys: vec![KeyEntry {
                kid: kid_of(&public),
                public,
                created,
                status: KeyStatus::Active,
                secret: Some(key),
            }],
        }
    }

    /// A ring of public keys only (verification).
    pub fn from_public_keys(keys: impl IntoIterator<Item = VerifyingKey>) -> Self {
        Self {
            keys: keys
                .into_iter()
                .map(|public| KeyEntry {
                    kid: kid_of(&public),
                    public,
                    created: time::from_unix(0),
                    status: KeyStatus::Active,
                    secret: None,
                })
                .collect(),
        }
    }

    /// Whether the ring holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key that signs.
    pub fn active(&self) -> Option<&KeyEntry> {
        self.keys.iter().find(|k| k.status == KeyStatus::Active)
    }

    /// The key with this id.
    pub fn get(&self, kid: &str) -> Option<&KeyEntry> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    /// Every key, oldest first, as published.
    pub fn public_keys(&self) -> Vec<PublicKeyInfo> {
        self.keys
            .iter()
            .map(|k| PublicKeyInfo {
                kid: k.kid.clone(),
                public_key: paserk::public_of(k.public.as_bytes()),
                status: k.status,
                created_at: k.created,
            })
            .collect()
    }

    /// Signs `payload` with the key `kid` (it must hold its secret).
    pub fn sign_with(&self, kid: &str, payload: &[u8]) -> Option<String> {
        let entry = self.get(kid)?;
        let secret = entry.secret.as_ref()?;
        let footer = serde_json::to_vec(&Footer {
            kid: entry.kid.clone(),
        })
        .ok()?;
        Some(paseto::sign(secret, payload, &footer, b""))
    }

    /// The short key of `license_id` under key `kid`: a keyed BLAKE2b of the id, so
    /// that the same license always gets the same key and the server need not store it.
    pub fn short_key(&self, kid: &str, license_id: &str) -> Option<ShortKey> {
        let secret = self.get(kid)?.secret.as_ref()?;
        let mut mac = Blake2bMac::<U15>::new_with_salt_and_personal(
            secret.as_bytes(),
            b"",
            b"keyclerk-short1",
        )
        .ok()?;
        mac.update(license_id.as_bytes());
        let out: [u8; SHORT_KEY_BYTES] = mac.finalize().into_bytes().into();
        Some(ShortKey::from_bytes(&out))
    }

    /// Verifies a token signed by any key of the ring; returns the payload and the kid.
    pub fn verify(&self, token: &str) -> Result<(Vec<u8>, String), TokenError> {
        let parts = paseto::split(token)?;
        let footer: Footer =
            serde_json::from_slice(&parts.footer).map_err(|_| TokenError::UnknownKey)?;
        let entry = self.get(&footer.kid).ok_or(TokenError::UnknownKey)?;
        let payload = parts.verify(&entry.public, b"")?;
        Ok((payload, entry.kid.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_directory_gets_one_active_key_with_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let (ring, created) = Keyring::load_or_create(dir.path(), time::from_unix(1000)).unwrap();
        let kid = created.unwrap();
        assert_eq!(ring.active().unwrap().kid, kid);
        let secret = fs::read_dir(dir.path())
            .unwrap()
            .filter_map(Result::ok)
            .find(|e| e.path().extension().is_some_and(|x| x == "secret"))
            .unwrap();
        assert_eq!(
            secret.metadata().unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn after_rotation_the_new_key_signs_and_the_old_one_still_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let first = Keyring::init(dir.path(), time::from_unix(1000)).unwrap();
        let ring = Keyring::load(dir.path()).unwrap();
        let old_token = ring.sign_with(&first, b"{}").unwrap();
        let second = Keyring::generate_into(dir.path(), time::from_unix(1000)).unwrap();
        let ring = Keyring::load(dir.path()).unwrap();
        assert_eq!(ring.active().unwrap().kid, second);
        assert_eq!(ring.get(&first).unwrap().status, KeyStatus::Retired);
        assert_eq!(ring.verify(&old_token).unwrap().1, first);
        let new_token = ring.sign_with(&second, b"{}").unwrap();
        assert_eq!(ring.verify(&new_token).unwrap().1, second);
    }

    #[test]
    fn init_refuses_a_directory_with_keys() {
        let dir = tempfile::tempdir().unwrap();
        Keyring::init(dir.path(), time::from_unix(1000)).unwrap();
        assert!(matches!(
            Keyring::init(dir.path(), time::from_unix(2000)),
            Err(KeyError::AlreadyInitialized(_))
        ));
    }

    #[test]
    fn a_secret_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        Keyring::init(dir.path(), time::from_unix(1000)).unwrap();
        for e in fs::read_dir(dir.path()).unwrap().filter_map(Result::ok) {
            if e.path().extension().is_some_and(|x| x == "secret") {
                fs::set_permissions(e.path(), fs::Permissions::from_mode(0o644)).unwrap();
            }
        }
        assert!(matches!(
            Keyring::load(dir.path()),
            Err(KeyError::Permissions { mode: 0o644, .. })
        ));
    }

    #[test]
    fn a_token_from_an_unknown_key_is_refused() {
        let a = Keyring::from_signing_key(SigningKey::from_bytes(&[1; 32]), time::from_unix(0));
        let b = Keyring::from_signing_key(SigningKey::from_bytes(&[2; 32]), time::from_unix(0));
        let token = a.sign_with(&a.active().unwrap().kid, b"{}").unwrap();
        assert_eq!(b.verify(&token), Err(TokenError::UnknownKey));
    }

    #[test]
    fn short_keys_are_stable_per_license_and_differ_between_licenses() {
        let ring = Keyring::from_signing_key(SigningKey::from_bytes(&[1; 32]), time::from_unix(0));
        let kid = ring.active().unwrap().kid.clone();
        let a = ring.short_key(&kid, "lic_a").unwrap();
        assert_eq!(Some(a.clone()), ring.short_key(&kid, "lic_a"));
        assert_ne!(Some(a), ring.short_key(&kid, "lic_b"));
    }
}
