//! The claims of a license's key, made from the license.

use crate::domain::license::License;
use crate::domain::time;

pub use keyclerk_client::claims::*;

/// The claims a key of `license` carries, issued by `iss`.
pub fn license_claims(license: &License, iss: &str) -> LicenseClaims {
    LicenseClaims {
        kind: LICENSE_KIND.to_owned(),
        iss: iss.to_owned(),
        sub: license.id.clone(),
        product: license.product.clone(),
        iat: time::format(license.purchased_at),
        activate_by: license.activate_by.map(time::format),
        exp: license.expires_at.map(time::format),
        seats: license.seats,
        entitlements: license.entitlements.clone(),
    }
}
