//! Signed tokens: PASETO v4.public, PASERK key ids, the signing keyring, claims.

pub mod claims;
pub mod keyring;

pub use keyclerk_client::{paserk, paseto};

pub use keyring::Keyring;
