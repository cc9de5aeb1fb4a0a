//! keyclerk: a self-hosted license server with offline-verifiable keys.

pub mod domain;
pub mod storage;
pub mod token;
