//! Pure business rules: licenses, products, keys, tokens and the audit chain.
//!
//! Nothing here touches the network, the database or the clock: every rule that
//! depends on time takes `now` as an argument.

pub mod activation;
pub mod audit;
pub mod customer;
pub mod download;
pub mod grace;
pub mod ids;
pub mod key;
pub mod license;
pub mod mail;
pub mod payments;
pub mod product;
pub mod reminder;
pub mod schema;
pub mod short_key;
pub mod staff;
pub mod text;
pub mod time;
pub mod token;
pub mod webhook;
pub mod whole;

use crate::domain::license::LicenseStatus;

/// A rule of the product refused an operation; each variant maps to a stable API code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The product id names no product in the catalog.
    #[error("no product `{0}` in the catalog")]
    UnknownProduct(String),
    /// A purchase time lies in the future.
    #[error("purchased_at lies in the future")]
    PurchasedInFuture,
    /// An explicit expiry does not come after the purchase.
    #[error("expires_at must come after purchased_at")]
    InvalidExpiry,
    /// The order id is known with different fields.
    #[error("order `{0}` was already minted with different fields")]
    OrderConflict(String),
    /// The lifecycle action does not apply to the license's current status.
    #[error("cannot {action} a license that is {status}")]
    InvalidTransition {
        /// The action that was asked for.
        action: &'static str,
        /// The license's current status.
        status: LicenseStatus,
    },
    /// A perpetual license cannot be renewed.
    #[error("a perpetual license cannot be renewed")]
    LicensePerpetual,
    /// Renewal needs an explicit number of days.
    #[error("this license has no duration of its own; give `days`")]
    DaysRequired,
    /// No license with that id, order or key.
    #[error("license not found")]
    LicenseNotFound,
    /// No API token with that id.
    #[error("token not found")]
    TokenNotFound,
    /// The price paid for the license is not known (old license, product gone).
    #[error("the price paid for this license is not known")]
    PriceUnknown,
    /// `substitute`/`upgrade` need a `product`.
    #[error("this remedy needs `product`")]
    ProductRequired,
    /// The other product is priced in another currency.
    #[error("the license was paid in {paid}, the product costs {target}")]
    CurrencyMismatch {
        /// Currency paid.
        paid: String,
        /// Currency of the other product.
        target: String,
    },
    /// A substitute dearer than the price paid (plus tolerance).
    #[error("the substitute costs {price}, more than the {ceiling} allowed; use `upgrade` for a dearer product")]
    SubstituteTooExpensive {
        /// The substitute's price.
        price: u64,
        /// The most a substitute may cost.
        ceiling: u64,
    },
    /// An upgrade to a product that is not dearer.
    #[error("an upgrade must be dearer than the price paid; use `substitute`")]
    UpgradeNotDearer,
    /// Store credit needs an email and the license has none.
    #[error("the license has no customer email; give `email` for the credit ledger")]
    EmailRequired,
    /// Not enough store credit.
    #[error("the credit balance is {balance}, less than {amount}")]
    InsufficientCredit {
        /// What the ledger holds.
        balance: u64,
        /// What was asked for.
        amount: u64,
    },
    /// An `Idempotency-Key` sent again with another request.
    #[error("this Idempotency-Key was used for another request")]
    IdempotencyKeyReused,
    /// No claim with that id.
    #[error("claim not found")]
    ClaimNotFound,
    /// No webhook endpoint with that id.
    #[error("webhook endpoint not found")]
    WebhookEndpointNotFound,
    /// No delivery with that id to that endpoint.
    #[error("delivery not found")]
    DeliveryNotFound,
    /// Only a failed delivery can be sent again.
    #[error("only a failed delivery can be sent again; this one is {0}")]
    DeliveryNotFailed(&'static str),
    /// The endpoint's address is loopback, private or link-local.
    #[error("{0}")]
    AddressNotAllowed(String),
    /// The claim was decided already.
    #[error("the claim was already resolved")]
    ClaimResolved,
    /// No payment event with that id.
    #[error("payment event not found")]
    PaymentEventNotFound,
    /// A payment event that was applied (or found a duplicate) is not applied again.
    #[error("the payment event is {0}; only an unmapped or failed one is applied again")]
    PaymentEventSettled(&'static str),
    /// The result would lie past 9999-12-31, which RFC 3339 cannot write.
    #[error("the new date would lie past 9999-12-31")]
    DateOutOfRange,
    /// A field of the request is out of its allowed shape or range.
    #[error("{field}: {message}")]
    InvalidField {
        /// The field's name, as the client sent it.
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

impl DomainError {
    /// Shorthand for an [`DomainError::InvalidField`].
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidField {
            field: field.into(),
            message: message.into(),
        }
    }
}
