//! The claims inside keyclerk's tokens, and the footer that names the signing key.
//!
//! Times are RFC 3339 UTC strings, as on the wire.

use serde::{Deserialize, Serialize};

/// The footer of every keyclerk token: the PASERK id of the signing key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Footer {
    /// `k4.pid.…`
    pub kid: String,
}

/// Claims of a license key (`kind: "license"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LicenseClaims {
    /// Always `"license"`.
    pub kind: String,
    /// The issuer (the server's configured name).
    pub iss: String,
    /// License id.
    pub sub: String,
    /// Product slug.
    pub product: String,
    /// Purchase time (RFC 3339).
    pub iat: String,
    /// Deadline of the first activation, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activate_by: Option<String>,
    /// Fixed expiry, if known at mint time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<String>,
    /// Seats.
    pub seats: u32,
    /// Entitlements.
    pub entitlements: Vec<String>,
}

/// The `kind` of license claims.
pub const LICENSE_KIND: &str = "license";

/// The `kind` of activation certificate claims.
pub const ACTIVATION_KIND: &str = "activation";

/// Claims of an activation certificate (`kind: "activation"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivationClaims {
    /// Always `"activation"`.
    pub kind: String,
    /// The issuer.
    pub iss: String,
    /// Activation id.
    pub sub: String,
    /// License id.
    pub license: String,
    /// Product slug.
    pub product: String,
    /// The machine's fingerprint.
    pub fingerprint: String,
    /// Issue time.
    pub iat: String,
    /// End of the lease: refresh before then.
    pub exp: String,
    /// The license's expiry, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license_expires: Option<String>,
    /// Entitlements.
    pub entitlements: Vec<String>,
}

/// The `kind` of a validation receipt.
pub const VALIDATION_KIND: &str = "validation";

/// Claims of the signed receipt of `POST /v1/validate` (`kind: "validation"`): the
/// app's nonce, the answer and its time, so a replayed or forged answer shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationReceipt {
    /// Always `"validation"`.
    pub kind: String,
    /// The issuer.
    pub iss: String,
    /// The nonce the app sent.
    pub nonce: String,
    /// The validation code (`VALID`, ...).
    pub code: String,
    /// Whether the code is `VALID`.
    pub valid: bool,
    /// License id, unless the key is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// The fingerprint that was asked about, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// The time of the answer.
    pub iat: String,
}
