//! Offline checks for apps licensed with keyclerk.
//!
//! A desktop app embeds the server's public keys (`GET /v1/keys`, PASERK
//! `k4.public`) and, with a [`Verifier`], checks without the network:
//!
//! - a license key ([`Verifier::verify_license`]),
//! - the activation certificate it stored, for this machine
//!   ([`Verifier::verify_certificate`]),
//! - the signed receipt of an online validation, against the nonce it sent
//!   ([`Verifier::verify_receipt`]),
//! - the certificate file of an offline activation
//!   ([`Verifier::verify_certificate_file`]; the machine without internet shows an
//!   [`offline::ActivationRequest`] code, and with the `qr` feature a QR code of it).
//!
//! Every failure is a typed [`ClientError`], so the app can tell a copied certificate
//! from an expired lease or a clock set back. [`machine_fingerprint`] turns a machine id
//! into the fingerprint to send (a hash: the raw id never leaves the machine).
//!
//! The crate depends only on `ed25519-dalek`, `base64`, `blake2`, `sha2`, `serde`,
//! `serde_json`, `chrono` and `thiserror` (and `qrcode` with the `qr` feature); it
//! makes no network calls.

pub mod base32;
pub mod claims;
pub mod offline;
pub mod paserk;
pub mod paseto;
#[cfg(feature = "qr")]
pub mod qr;
mod verifier;

pub use verifier::{machine_fingerprint, ClientError, Verifier, CLOCK_SKEW_SECS};
