//! API tokens: roles, secrets (shown once, stored as SHA-256) and what each role may do.

use std::fmt;

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::domain::audit::AuditEvent;
use crate::domain::short_key::crockford_encode;
use crate::domain::text::{Chars, TextRule};
use crate::domain::time::Timestamp;
use crate::domain::DomainError;

/// What a token may do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including tokens and products.
    Admin,
    /// The shop: mint, renew, revoke, refund.
    Vendor,
    /// Support agents: look up, history, remedies.
    Support,
}

impl Role {
    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Vendor => "vendor",
            Self::Support => "support",
        }
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Admin, Self::Vendor, Self::Support]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

/// Length of the visible prefix kept beside the hash, for telling tokens apart.
pub const PREFIX_LEN: usize = 10;

/// What every token secret starts with.
pub const TOKEN_PREFIX: &str = "kc_";

/// A token secret: `kc_` and 52 base32 characters (256 random bits). `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSecret(String);

impl TokenSecret {
    /// A fresh random secret.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(format!(
            "{TOKEN_PREFIX}{}",
            crockford_encode(&bytes, 52).to_ascii_lowercase()
        ))
    }

    /// Wraps what a client presented.
    pub fn from_presented(s: &str) -> Self {
        Self(s.to_owned())
    }

    /// The secret itself, to show once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// SHA-256 of the secret: what the database keeps.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }

    /// The visible prefix (`kc_` and a few characters).
    pub fn prefix(&self) -> String {
        self.0.chars().take(PREFIX_LEN).collect()
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret(..)")
    }
}

/// Compares two hashes in constant time.
pub fn hashes_equal(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// A token to insert.
#[derive(Debug, Clone)]
pub struct NewApiToken {
    /// `tok_...`
    pub id: String,
    /// What it may do.
    pub role: Role,
    /// Who it is for ("shop", "alice").
    pub name: String,
    /// SHA-256 of the secret.
    pub secret_hash: [u8; 32],
    /// Visible prefix.
    pub prefix: String,
    /// Creation time.
    pub created_at: Timestamp,
}

/// A token as stored (never with its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// `tok_...`
    pub id: String,
    /// What it may do.
    pub role: Role,
    /// Who it is for.
    pub name: String,
    /// Visible prefix of the secret.
    pub prefix: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// Revocation time, if revoked.
    pub revoked_at: Option<Timestamp>,
}

impl ApiToken {
    /// Whether this token is one of `roles` (admin may do everything).
    pub fn may(&self, roles: &[Role]) -> bool {
        self.role == Role::Admin || roles.contains(&self.role)
    }
}

impl NewApiToken {
    /// A new token with a fresh secret; the secret is returned once, beside it.
    pub fn generate(role: Role, name: String, now: Timestamp) -> (Self, TokenSecret) {
        let secret = TokenSecret::generate();
        let new = Self {
            id: crate::domain::ids::new_id("tok", now),
            role,
            name,
            secret_hash: secret.hash(),
            prefix: secret.prefix(),
            created_at: now,
        };
        (new, secret)
    }

    /// The token as stored, before any revocation, and the event of its creation.
    pub fn created(self) -> (ApiToken, AuditEvent) {
        let event = AuditEvent::TokenCreated {
            token: self.id.clone(),
            role: self.role.as_str().to_owned(),
            name: self.name.clone(),
        };
        let token = ApiToken {
            id: self.id,
            role: self.role,
            name: self.name,
            prefix: self.prefix,
            created_at: self.created_at,
            revoked_at: None,
        };
        (token, event)
    }
}

impl ApiToken {
    /// Revokes at `now`; the event to record, or none when it was revoked before
    /// (a second revocation changes nothing).
    pub fn revoke(&mut self, now: Timestamp) -> Option<AuditEvent> {
        if self.revoked_at.is_some() {
            return None;
        }
        self.revoked_at = Some(now);
        Some(AuditEvent::TokenRevoked {
            token: self.id.clone(),
            name: self.name.clone(),
        })
    }
}

/// The one token a revocation names: `matches` are the tokens whose id or visible
/// prefix equals what was given. None, or more than one, is "not found".
pub fn the_named_token(mut matches: Vec<ApiToken>) -> Result<ApiToken, DomainError> {
    match matches.len() {
        1 => Ok(matches.remove(0)),
        _ => Err(DomainError::TokenNotFound),
    }
}

/// Longest token name.
pub const MAX_TOKEN_NAME_CHARS: usize = 100;

/// What a token's name may be, as sent.
pub const TOKEN_NAME: TextRule = TextRule {
    chars: Chars::Text,
    max_chars: MAX_TOKEN_NAME_CHARS,
    required: true,
};

/// Checks a token name against [`TOKEN_NAME`]; kept without surrounding white space.
pub fn parse_token_name(s: &str) -> Option<String> {
    TOKEN_NAME.allows(s).then(|| s.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_random_and_hidden_from_debug() {
        let a = TokenSecret::generate();
        let b = TokenSecret::generate();
        assert!(a.expose().starts_with("kc_"));
        assert_eq!(a.expose().len(), 55);
        assert_ne!(a, b);
        assert_eq!(format!("{a:?}"), "TokenSecret(..)");
        assert_eq!(a.prefix().len(), PREFIX_LEN);
    }

    #[test]
    fn the_hash_is_sha256_of_the_secret() {
        let s = TokenSecret::from_presented("kc_abc");
        let expected: [u8; 32] = Sha256::digest(b"kc_abc").into();
        assert_eq!(s.hash(), expected);
        assert!(hashes_equal(&s.hash(), &expected));
        assert!(!hashes_equal(&s.hash(), &[0u8; 32]));
    }

    #[test]
    fn admin_may_do_what_any_role_may() {
        let mut t = ApiToken {
            id: "tok_x".into(),
            role: Role::Admin,
            name: "root".into(),
            prefix: "kc_".into(),
            created_at: crate::domain::time::from_unix(0),
            revoked_at: None,
        };
        assert!(t.may(&[Role::Vendor]));
        t.role = Role::Support;
        assert!(!t.may(&[Role::Vendor]));
        assert!(t.may(&[Role::Vendor, Role::Support]));
    }
}
