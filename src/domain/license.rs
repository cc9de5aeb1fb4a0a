//! Licenses: minting from an order, lifecycle transitions, renewal.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::audit::{AuditEvent, StatusChange};
use crate::domain::product::{
    is_entitlement, DurationFrom, KeyFormat, Price, Product, MAX_ENTITLEMENTS,
    MAX_ENTITLEMENT_CHARS, MAX_SEATS,
};
use crate::domain::text::{self, Chars, TextRule};
use crate::domain::time::{self, plus_days, Timestamp};
use crate::domain::DomainError;

/// How far ahead of the server's clock a shop's `purchased_at` may be (clock skew);
/// such a time is taken as "now". Anything later is refused.
pub const PURCHASE_CLOCK_SKEW_SECS: i64 = 300;
/// Largest `metadata` object, serialized.
pub const MAX_METADATA_BYTES: usize = 4096;
/// Most days one renewal adds.
pub const MAX_RENEWAL_DAYS: u32 = 36_500;
/// Most licenses one batch mints.
pub const MAX_BATCH: usize = 1000;
/// Most licenses on one page of the list.
pub const MAX_LICENSE_PAGE: u32 = 100;
/// Licenses on a page of the list unless the caller says.
pub const DEFAULT_LICENSE_PAGE: u32 = 50;

/// Where a license stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LicenseStatus {
    /// Usable (subject to its window and expiry).
    Active,
    /// Temporarily blocked; `reinstate` lifts it.
    Suspended,
    /// Closed for good (piracy, chargeback).
    Revoked,
    /// Closed because the purchase was refunded.
    Refunded,
    /// Closed because another license replaced it.
    Superseded,
    /// Waiting for the vendor to confirm a payment.
    PendingPayment,
    /// Closed because the price paid went to the customer's store credit.
    Credited,
}

impl LicenseStatus {
    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Revoked => "revoked",
            Self::Refunded => "refunded",
            Self::Superseded => "superseded",
            Self::PendingPayment => "pending_payment",
            Self::Credited => "credited",
        }
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Active,
            Self::Suspended,
            Self::Revoked,
            Self::Refunded,
            Self::Superseded,
            Self::PendingPayment,
            Self::Credited,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

impl fmt::Display for LicenseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A license as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct License {
    /// `lic_...`
    pub id: String,
    /// Product slug (the product may since have left the catalog).
    pub product: String,
    /// The shop's order id; unique.
    pub order_id: String,
    /// Lower-cased customer email, if the shop gave one.
    pub customer_email: Option<String>,
    /// When the customer paid.
    pub purchased_at: Timestamp,
    /// Deadline of the first activation; none = no deadline.
    pub activate_by: Option<Timestamp>,
    /// End of the license; none = perpetual, or not known until first activation.
    pub expires_at: Option<Timestamp>,
    /// Length of one period in days, kept from the product at mint time.
    pub duration_days: Option<u32>,
    /// Whether the period counts from purchase or first activation.
    pub duration_from: DurationFrom,
    /// Days paid for by renewals before the first activation, added when it happens.
    pub extra_days: u32,
    /// Machines that may hold an activation at once.
    pub seats: u32,
    /// Feature flags.
    pub entitlements: Vec<String>,
    /// Free-form data from the shop.
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// Where the license stands.
    pub status: LicenseStatus,
    /// Signed or short key.
    pub key_format: KeyFormat,
    /// What the customer paid: the product's price when it was minted.
    pub price: Option<Price>,
    /// The license this one replaced (a substitute or upgrade).
    pub supersedes: Option<String>,
    /// The license that replaced this one.
    pub superseded_by: Option<String>,
    /// What is still to be paid before an upgrade becomes usable.
    pub amount_due: Option<Price>,
    /// When the row was made.
    pub created_at: Timestamp,
    /// When the row last changed.
    pub updated_at: Timestamp,
}

/// A mint request as the shop sends it.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"product": "photo-pro", "order_id": "order-1001", "customer_email": "ann@example.com"}))]
pub struct MintRequest {
    /// Product slug, of the catalog (`unknown_product` otherwise).
    #[schema(value_type = crate::domain::product::ProductId)]
    pub product: String,
    /// The shop's order id; minting is idempotent on it.
    #[schema(value_type = crate::domain::schema::OrderId)]
    pub order_id: String,
    /// Customer email (optional).
    #[serde(default)]
    #[schema(value_type = Option<crate::domain::schema::EmailAddress>)]
    pub customer_email: Option<String>,
    /// Defaults to now; may lie in the past (imports), not ahead of the server's
    /// clock by more than its skew (`purchased_in_future`).
    #[serde(default)]
    #[schema(value_type = Option<crate::domain::schema::PointInTime>)]
    pub purchased_at: Option<String>,
    /// Overrides the product's seats.
    #[serde(default, deserialize_with = "crate::domain::whole::option")]
    #[schema(value_type = Option<crate::domain::schema::Seats>)]
    pub seats: Option<u32>,
    /// Overrides the product's entitlements.
    #[serde(default)]
    #[schema(value_type = Option<crate::domain::schema::Entitlements>)]
    pub entitlements: Option<Vec<String>>,
    /// A fixed expiry, after `purchased_at` (`invalid_expiry`), overriding the
    /// product's duration.
    #[serde(default)]
    #[schema(value_type = Option<crate::domain::schema::PointInTime>)]
    pub expires_at: Option<String>,
    /// Free-form object kept with the license.
    #[serde(default)]
    #[schema(value_type = Option<crate::domain::schema::Metadata>)]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// Mail the key to `customer_email` (with `[mail]` set up); defaults to the
    /// product's `deliver_by_email`. Not part of the order: a repeat of the order
    /// mails nothing again.
    #[serde(default)]
    pub send_email: Option<bool>,
    /// The language of the customer's mail, `en` or `fr` (a tag such as `fr-CA` is
    /// read by its language); defaults to the request's `Accept-Language`, else `en`.
    #[serde(default)]
    #[schema(value_type = Option<crate::domain::schema::MailLocale>)]
    pub locale: Option<String>,
}

/// A license ready to insert, with the hash that makes minting idempotent.
#[derive(Debug, Clone, PartialEq)]
pub struct NewLicense {
    /// The license as it will be stored.
    pub license: License,
    /// SHA-256 of the normalized request: a repeat with other fields is a conflict.
    pub request_hash: [u8; 32],
    /// The mail with the key, queued with the license when it is new.
    pub mail: Option<crate::domain::mail::NewMail>,
    /// The reminders before its window closes, scheduled with it when it is new.
    pub reminders: Option<crate::domain::reminder::ReminderPlan>,
}

fn parse_time(field: &str, s: &str) -> Result<Timestamp, DomainError> {
    time::parse_rfc3339(s).map_err(|e| match e {
        time::TimeError::Malformed => DomainError::field(field, "must be an RFC 3339 time"),
        time::TimeError::OutOfRange => DomainError::DateOutOfRange,
    })
}

/// Longest email address (RFC 5321's path, less its angle brackets).
pub const MAX_EMAIL_CHARS: usize = 254;
/// Longest part before the `@` (RFC 5321).
pub const MAX_EMAIL_LOCAL_CHARS: usize = 64;
/// Longest label of a domain name (RFC 1035).
pub const MAX_DOMAIN_LABEL_CHARS: usize = 63;

/// Whether `c` may be in an atom of the part before the `@`: a letter, a digit
/// or one of ``!#$%&'*+-/=?^_`{|}~`` (RFC 5322 `atext`).
pub fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c)
}

/// Whether `c` may be inside a label of the domain (letters, digits, `-`); a
/// label starts and ends with a letter or digit.
pub fn is_label_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-'
}

fn is_label(label: &str) -> bool {
    (1..=MAX_DOMAIN_LABEL_CHARS).contains(&label.len())
        && label.chars().all(is_label_char)
        && !label.starts_with('-')
        && !label.ends_with('-')
}

/// A customer's email, lower-cased: dot-separated atoms of [`is_atext`], `@`, a
/// domain of dot-separated labels (the common form of RFC 5321's mailbox: no
/// quoted local parts, no address literals, ASCII), at most [`MAX_EMAIL_CHARS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Reads an email as sent; `None` when it is not one. The error names no
    /// field: the caller knows which field it read (`customer_email`, `email`).
    pub fn parse(s: &str) -> Option<Self> {
        let (local, domain) = s.split_once('@')?;
        let valid = s.chars().count() <= MAX_EMAIL_CHARS
            && local.chars().count() <= MAX_EMAIL_LOCAL_CHARS
            && local
                .split('.')
                .all(|atom| !atom.is_empty() && atom.chars().all(is_atext))
            && domain.split('.').all(is_label);
        valid.then(|| Self(s.to_ascii_lowercase()))
    }

    /// The shape [`Email::parse`] reads, as a regular expression; the lengths of
    /// the whole and of the local part are left to `maxLength` and `format: email`.
    pub fn pattern() -> String {
        let atom = format!("{}+", text::class(is_atext));
        let end = text::class(|c| is_label_char(c) && c != '-');
        let inner = text::class(is_label_char);
        let label = format!("{end}(?:{inner}{{0,{}}}{end})?", MAX_DOMAIN_LABEL_CHARS - 2);
        format!("^{atom}(?:\\.{atom})*@{label}(?:\\.{label})*$")
    }

    /// The normalized address.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// Reads the email in the request field `field`: normalized, or an error naming
/// that field.
pub fn parse_email(field: &str, s: &str) -> Result<String, DomainError> {
    Email::parse(s)
        .map(Email::into_string)
        .ok_or_else(|| DomainError::field(field, "is not an email address"))
}

/// Longest order id.
pub const MAX_ORDER_ID_CHARS: usize = 200;

/// What an order id may be, as sent: no control or invisible format characters
/// (`U+200B`, `U+202E`: look-alike ids).
pub const ORDER_ID: TextRule = TextRule {
    chars: Chars::Identifier,
    max_chars: MAX_ORDER_ID_CHARS,
    required: true,
};

/// Checks an order id against [`ORDER_ID`]; kept without surrounding white space.
pub fn parse_order_id(s: &str) -> Result<String, DomainError> {
    if !ORDER_ID.allows(s) {
        return Err(DomainError::field("order_id", ORDER_ID.describe()));
    }
    Ok(s.trim().to_owned())
}

impl MintRequest {
    /// Whether the key is to be mailed, and in which language: `send_email`, else
    /// the product's `deliver_by_email`, when there is a `customer_email` (without
    /// one there is nobody to send to, and nothing is sent). The `locale` is read
    /// either way (the route fills it from `Accept-Language` when it is absent).
    pub fn mail_wanted(
        &self,
        product: &Product,
    ) -> Result<Option<crate::domain::mail::Locale>, DomainError> {
        let locale = crate::domain::mail::Locale::field(self.locale.as_deref())?;
        let wanted = self.send_email.unwrap_or(product.spec.deliver_by_email)
            && self.customer_email.is_some();
        Ok(wanted.then_some(locale))
    }

    /// Applies the product's policy to this request at `now`; `id` names the new license.
    pub fn into_new_license(
        self,
        product: &Product,
        id: String,
        now: Timestamp,
    ) -> Result<NewLicense, DomainError> {
        let order_id = parse_order_id(&self.order_id)?;
        let customer_email = self
            .customer_email
            .as_deref()
            .map(|e| parse_email("customer_email", e))
            .transpose()?;
        let given_purchase = self
            .purchased_at
            .as_deref()
            .map(|s| parse_time("purchased_at", s))
            .transpose()?;
        if let Some(t) = given_purchase {
            if t.timestamp() > now.timestamp() + PURCHASE_CLOCK_SKEW_SECS {
                return Err(DomainError::PurchasedInFuture);
            }
        }
        let purchased_at = given_purchase.map_or(now, |t| t.min(now));
        let seats = self.seats.unwrap_or(product.spec.seats);
        if !(1..=MAX_SEATS).contains(&seats) {
            return Err(DomainError::field(
                "seats",
                format!("must be between 1 and {MAX_SEATS}"),
            ));
        }
        let entitlements = match &self.entitlements {
            Some(list) => {
                if list.len() > MAX_ENTITLEMENTS {
                    return Err(DomainError::field(
                        "entitlements",
                        format!("at most {MAX_ENTITLEMENTS} entries"),
                    ));
                }
                if let Some(bad) = list.iter().find(|e| !is_entitlement(e)) {
                    return Err(DomainError::field(
                        "entitlements",
                        format!("`{bad}` is not 1-{MAX_ENTITLEMENT_CHARS} characters of letters, digits, - _ . :"),
                    ));
                }
                let mut out: Vec<String> = Vec::with_capacity(list.len());
                for e in list {
                    if !out.contains(e) {
                        out.push(e.clone());
                    }
                }
                out
            }
            None => product.spec.entitlements.clone(),
        };
        if let Some(meta) = &self.metadata {
            if serde_json::to_vec(meta).map_or(usize::MAX, |v| v.len()) > MAX_METADATA_BYTES {
                return Err(DomainError::field(
                    "metadata",
                    format!("at most {MAX_METADATA_BYTES} bytes"),
                ));
            }
            if crate::domain::text::control_in_map(meta).is_some() {
                return Err(DomainError::field(
                    "metadata",
                    "keys and strings may hold no control characters but newline and tab",
                ));
            }
        }
        let explicit_expiry = self
            .expires_at
            .as_deref()
            .map(|s| parse_time("expires_at", s))
            .transpose()?;
        let (expires_at, duration_days, duration_from) = match explicit_expiry {
            Some(e) if e <= purchased_at => return Err(DomainError::InvalidExpiry),
            Some(e) => (Some(e), None, DurationFrom::Purchase),
            None => {
                let from = product.spec.duration_from;
                let days = product.spec.duration_days;
                let expires = match (days, from) {
                    (Some(d), DurationFrom::Purchase) => Some(plus_days(purchased_at, d)),
                    _ => None,
                };
                (expires, days, from)
            }
        };
        let request_hash = self.normalized_hash(
            &order_id,
            customer_email.as_deref(),
            given_purchase,
            explicit_expiry,
        );
        Ok(NewLicense {
            license: License {
                id,
                product: product.id.to_string(),
                order_id,
                customer_email,
                purchased_at,
                activate_by: product
                    .spec
                    .activation_window_days
                    .map(|d| plus_days(purchased_at, d)),
                expires_at,
                duration_days,
                duration_from,
                extra_days: 0,
                seats,
                entitlements,
                metadata: self.metadata,
                status: LicenseStatus::Active,
                key_format: product.spec.key_format,
                price: Some(product.spec.price.clone()),
                supersedes: None,
                superseded_by: None,
                amount_due: None,
                created_at: now,
                updated_at: now,
            },
            request_hash,
            mail: None,
            reminders: None,
        })
    }

    fn normalized_hash(
        &self,
        order_id: &str,
        email: Option<&str>,
        purchased_at: Option<Timestamp>,
        expires_at: Option<Timestamp>,
    ) -> [u8; 32] {
        // serde_json's Map is ordered by key, so this encoding is canonical.
        let normalized = serde_json::json!({
            "product": self.product,
            "order_id": order_id,
            "customer_email": email,
            "purchased_at": purchased_at.map(time::format),
            "seats": self.seats,
            "entitlements": self.entitlements,
            "expires_at": expires_at.map(time::format),
            "metadata": self.metadata,
        });
        Sha256::digest(normalized.to_string().as_bytes()).into()
    }
}

/// A lifecycle action of the vendor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Block the license for now.
    Suspend,
    /// Lift a suspension.
    Reinstate,
    /// Close the license for good.
    Revoke,
    /// Close the license because the money went back.
    Refund,
}

impl Action {
    /// The verb as it appears in the URL.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Suspend => "suspend",
            Self::Reinstate => "reinstate",
            Self::Revoke => "revoke",
            Self::Refund => "refund",
        }
    }
}

/// What a renewal changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Renewal {
    /// The new expiry (none while it is still counted from a future first activation).
    pub expires_at: Option<Timestamp>,
    /// The new count of prepaid days waiting for the first activation.
    pub extra_days: u32,
    /// How many days were added.
    pub days: u32,
}

impl License {
    /// The status after `action`, or why it does not apply now.
    pub fn apply(&self, action: Action) -> Result<LicenseStatus, DomainError> {
        use LicenseStatus::*;
        let next = match (action, self.status) {
            (Action::Suspend, Active) => Suspended,
            (Action::Reinstate, Suspended) => Active,
            (Action::Revoke | Action::Refund, Active | Suspended | PendingPayment) => {
                if action == Action::Revoke {
                    Revoked
                } else {
                    Refunded
                }
            }
            _ => {
                return Err(DomainError::InvalidTransition {
                    action: action.as_str(),
                    status: self.status,
                })
            }
        };
        Ok(next)
    }

    /// Renewal by a subscription payment: `days` (default: one period) added to the
    /// later of now and the current expiry.
    pub fn renew(&self, days: Option<u32>, now: Timestamp) -> Result<Renewal, DomainError> {
        if !matches!(
            self.status,
            LicenseStatus::Active | LicenseStatus::Suspended
        ) {
            return Err(DomainError::InvalidTransition {
                action: "renew",
                status: self.status,
            });
        }
        if self.expires_at.is_none() && self.duration_days.is_none() {
            return Err(DomainError::LicensePerpetual);
        }
        let days = days
            .or(self.duration_days)
            .ok_or(DomainError::DaysRequired)?;
        if !(1..=MAX_RENEWAL_DAYS).contains(&days) {
            return Err(DomainError::field(
                "days",
                format!("must be between 1 and {MAX_RENEWAL_DAYS}"),
            ));
        }
        if let Some(current) = self.expires_at {
            if !time::fits_days(current.max(now), days) {
                return Err(DomainError::DateOutOfRange);
            }
        }
        Ok(match self.expires_at {
            Some(current) => Renewal {
                expires_at: Some(plus_days(current.max(now), days)),
                extra_days: self.extra_days,
                days,
            },
            // Counted from a first activation that has not happened: keep the days for it.
            None => Renewal {
                expires_at: None,
                extra_days: self.extra_days.saturating_add(days),
                days,
            },
        })
    }

    /// Whether the license has run out at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|e| e <= now)
    }
}

/// Most licenses a look-up by email answers with.
pub const MAX_EMAIL_MATCHES: u32 = 100;

/// What a mint does, given what is stored under its order id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MintDecision {
    /// The order is new: store the license.
    Create,
    /// The order was minted before with the same fields: answer with that license.
    Existing,
}

impl NewLicense {
    /// Mints are idempotent on the order id: the same request again finds the first
    /// license, other fields for the same order are a conflict. `stored` is the
    /// request hash kept with the order's license, if there is one.
    pub fn decide(&self, stored: Option<&[u8]>) -> Result<MintDecision, DomainError> {
        match stored {
            None => Ok(MintDecision::Create),
            Some(hash) if hash == self.request_hash => Ok(MintDecision::Existing),
            Some(_) => Err(DomainError::OrderConflict(self.license.order_id.clone())),
        }
    }

    /// The event of this license's mint, signed with `kid`.
    pub fn minted_event(&self, kid: &str) -> AuditEvent {
        let l = &self.license;
        AuditEvent::LicenseMinted {
            order_id: l.order_id.clone(),
            product: l.product.clone(),
            seats: l.seats,
            purchased_at: l.purchased_at,
            activate_by: l.activate_by,
            expires_at: l.expires_at,
            kid: kid.to_owned(),
        }
    }
}

impl License {
    /// Suspends, reinstates, revokes or refunds at `now`; the event to record.
    pub fn transition(
        &mut self,
        action: Action,
        reason: Option<String>,
        now: Timestamp,
    ) -> Result<AuditEvent, DomainError> {
        let from = self.status;
        self.status = self.apply(action)?;
        self.updated_at = now;
        let change = StatusChange {
            from: from.as_str().to_owned(),
            to: self.status.as_str().to_owned(),
            reason,
        };
        Ok(match action {
            Action::Suspend => AuditEvent::LicenseSuspended(change),
            Action::Reinstate => AuditEvent::LicenseReinstated(change),
            Action::Revoke => AuditEvent::LicenseRevoked(change),
            Action::Refund => AuditEvent::LicenseRefunded(change),
        })
    }

    /// Renews by `days` (default: one period) at `now`; the event to record.
    pub fn apply_renewal(
        &mut self,
        days: Option<u32>,
        now: Timestamp,
    ) -> Result<AuditEvent, DomainError> {
        let before = self.expires_at;
        let renewal = self.renew(days, now)?;
        self.expires_at = renewal.expires_at;
        self.extra_days = renewal.extra_days;
        self.updated_at = now;
        Ok(AuditEvent::LicenseRenewed {
            days: renewal.days,
            expires_before: before,
            expires_at: renewal.expires_at,
            extra_days: renewal.extra_days,
        })
    }

    /// The vendor confirms an upgrade's payment: `pending_payment` becomes `active`
    /// and nothing is due any more; the event to record.
    pub fn confirm_payment(&mut self, now: Timestamp) -> Result<AuditEvent, DomainError> {
        if self.status != LicenseStatus::PendingPayment {
            return Err(DomainError::InvalidTransition {
                action: "confirm-payment",
                status: self.status,
            });
        }
        let paid = self.amount_due.take();
        self.status = LicenseStatus::Active;
        self.updated_at = now;
        Ok(AuditEvent::PaymentConfirmed { amount: paid })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::product::tests::photo_pro;
    use crate::domain::time::parse;

    fn at(s: &str) -> Timestamp {
        parse(s).unwrap()
    }

    fn request(order: &str) -> MintRequest {
        MintRequest {
            product: "photo-pro".into(),
            order_id: order.into(),
            customer_email: Some("Ann@Example.COM".into()),
            purchased_at: None,
            seats: None,
            entitlements: None,
            expires_at: None,
            metadata: None,
            send_email: None,
            locale: None,
        }
    }

    fn mint(req: MintRequest, now: &str) -> Result<NewLicense, DomainError> {
        req.into_new_license(&photo_pro(), "lic_test".into(), at(now))
    }

    #[test]
    fn a_new_license_takes_its_policy_from_the_product() {
        let new = mint(request("o-1"), "2026-01-01T00:00:00Z")
            .unwrap()
            .license;
        assert_eq!(new.seats, 3);
        assert_eq!(new.entitlements, ["export"]);
        assert_eq!(new.activate_by, Some(at("2026-04-01T00:00:00Z")));
        assert_eq!(new.expires_at, None, "counted from activation");
        assert_eq!(new.duration_days, Some(365));
        assert_eq!(new.customer_email.as_deref(), Some("ann@example.com"));
        assert_eq!(new.status, LicenseStatus::Active);
    }

    #[test]
    fn a_duration_from_purchase_fixes_the_expiry_at_mint() {
        let mut product = photo_pro();
        product.spec.duration_from = DurationFrom::Purchase;
        let new = request("o-1")
            .into_new_license(&product, "lic_x".into(), at("2026-01-01T00:00:00Z"))
            .unwrap();
        assert_eq!(new.license.expires_at, Some(at("2027-01-01T00:00:00Z")));
    }

    #[test]
    fn a_purchase_in_the_past_counts_the_window_from_then() {
        let mut req = request("o-1");
        req.purchased_at = Some("2025-01-01T00:00:00Z".into());
        let new = mint(req, "2026-01-01T00:00:00Z").unwrap().license;
        assert_eq!(new.purchased_at, at("2025-01-01T00:00:00Z"));
        assert_eq!(new.activate_by, Some(at("2025-04-01T00:00:00Z")));
    }

    #[test]
    fn a_purchase_in_the_future_is_refused_beyond_clock_skew() {
        let mut req = request("o-1");
        req.purchased_at = Some("2026-01-01T01:00:00Z".into());
        assert_eq!(
            mint(req, "2026-01-01T00:00:00Z").unwrap_err(),
            DomainError::PurchasedInFuture
        );
        let mut skewed = request("o-1");
        skewed.purchased_at = Some("2026-01-01T00:01:00Z".into());
        let new = mint(skewed, "2026-01-01T00:00:00Z").unwrap().license;
        assert_eq!(
            new.purchased_at,
            at("2026-01-01T00:00:00Z"),
            "clamped to now"
        );
    }

    #[test]
    fn bad_fields_are_named() {
        type Change = Box<dyn Fn(&mut MintRequest)>;
        let cases: Vec<(&str, Change, &str)> = vec![
            (
                "empty order",
                Box::new(|r| r.order_id = " ".into()),
                "order_id",
            ),
            (
                "bad email",
                Box::new(|r| r.customer_email = Some("nobody".into())),
                "customer_email",
            ),
            ("zero seats", Box::new(|r| r.seats = Some(0)), "seats"),
            (
                "bad time",
                Box::new(|r| r.purchased_at = Some("soon".into())),
                "purchased_at",
            ),
            (
                "bad expiry",
                Box::new(|r| r.expires_at = Some("never".into())),
                "expires_at",
            ),
            (
                "bad entitlement",
                Box::new(|r| r.entitlements = Some(vec!["has space".into()])),
                "entitlements",
            ),
        ];
        for (case, change, field) in cases {
            let mut req = request("o-1");
            change(&mut req);
            match mint(req, "2026-01-01T00:00:00Z") {
                Err(DomainError::InvalidField { field: f, .. }) => assert_eq!(f, field, "{case}"),
                other => panic!("{case}: {other:?}"),
            }
        }
    }

    #[test]
    fn an_expiry_before_the_purchase_is_refused() {
        let mut req = request("o-1");
        req.expires_at = Some("2025-01-01T00:00:00Z".into());
        assert_eq!(
            mint(req, "2026-01-01T00:00:00Z").unwrap_err(),
            DomainError::InvalidExpiry
        );
    }

    #[test]
    fn the_same_request_hashes_the_same_and_another_differently() {
        let a = mint(request("o-1"), "2026-01-01T00:00:00Z").unwrap();
        let b = mint(request("o-1"), "2026-02-01T00:00:00Z").unwrap();
        assert_eq!(
            a.request_hash, b.request_hash,
            "time of the call does not matter"
        );
        let mut other = request("o-1");
        other.seats = Some(5);
        let c = mint(other, "2026-01-01T00:00:00Z").unwrap();
        assert_ne!(a.request_hash, c.request_hash);
    }

    fn license(status: LicenseStatus) -> License {
        let mut l = mint(request("o-1"), "2026-01-01T00:00:00Z")
            .unwrap()
            .license;
        l.status = status;
        l
    }

    #[test]
    fn lifecycle_transitions_follow_the_table() {
        use Action::*;
        use LicenseStatus::*;
        let table = [
            (Active, Suspend, Ok(Suspended)),
            (Suspended, Reinstate, Ok(Active)),
            (Active, Revoke, Ok(Revoked)),
            (Suspended, Refund, Ok(Refunded)),
            (PendingPayment, Revoke, Ok(Revoked)),
            (Active, Reinstate, Err(Active)),
            (Revoked, Reinstate, Err(Revoked)),
            (Refunded, Reinstate, Err(Refunded)),
            (Superseded, Reinstate, Err(Superseded)),
            (Revoked, Revoke, Err(Revoked)),
            (Suspended, Suspend, Err(Suspended)),
            (Refunded, Refund, Err(Refunded)),
        ];
        for (from, action, expected) in table {
            let got = license(from).apply(action);
            match expected {
                Ok(to) => assert_eq!(got, Ok(to), "{from} {action:?}"),
                Err(status) => assert_eq!(
                    got,
                    Err(DomainError::InvalidTransition {
                        action: action.as_str(),
                        status
                    }),
                    "{from} {action:?}"
                ),
            }
        }
    }

    #[test]
    fn renewal_counts_from_the_later_of_now_and_the_expiry() {
        let mut l = license(LicenseStatus::Active);
        l.expires_at = Some(at("2026-06-01T00:00:00Z"));
        let early = l.renew(None, at("2026-05-01T00:00:00Z")).unwrap();
        assert_eq!(early.expires_at, Some(at("2027-06-01T00:00:00Z")));
        let late = l.renew(Some(30), at("2026-07-01T00:00:00Z")).unwrap();
        assert_eq!(late.expires_at, Some(at("2026-07-31T00:00:00Z")));
    }

    #[test]
    fn renewal_before_the_first_activation_banks_the_days() {
        let l = license(LicenseStatus::Active);
        let r = l.renew(None, at("2026-02-01T00:00:00Z")).unwrap();
        assert_eq!(r.expires_at, None);
        assert_eq!(r.extra_days, 365);
    }

    #[test]
    fn a_perpetual_license_cannot_be_renewed() {
        let mut l = license(LicenseStatus::Active);
        l.duration_days = None;
        assert_eq!(
            l.renew(None, at("2026-02-01T00:00:00Z")),
            Err(DomainError::LicensePerpetual)
        );
    }

    #[test]
    fn a_closed_license_cannot_be_renewed() {
        let l = license(LicenseStatus::Revoked);
        assert!(matches!(
            l.renew(None, at("2026-02-01T00:00:00Z")),
            Err(DomainError::InvalidTransition {
                action: "renew",
                ..
            })
        ));
    }
}
