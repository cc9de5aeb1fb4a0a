//! `ApiError`: every error a client can see, as RFC 9457 problem+json with a stable `code`.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::domain::activation::Refusal;
use crate::domain::download::DownloadRefusal;
use crate::domain::DomainError;
use crate::service::ServiceError;
use crate::storage::StorageError;

/// An error answered to a client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A business rule refused the request.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// A license refused a machine (window, status, expiry, seats).
    #[error("{0}")]
    Refused(#[from] Refusal),
    /// A download link or the file it names was refused.
    #[error("{0}")]
    Download(#[from] DownloadRefusal),
    /// No `Authorization: Bearer` header.
    #[error("this endpoint needs an API token (Authorization: Bearer kc_...)")]
    MissingToken,
    /// Neither the license key nor a token, where either would do.
    #[error(
        "send the license key (`license_key`), or a support token (Authorization: Bearer kc_...)"
    )]
    MissingCredentials,
    /// The token is malformed or unknown.
    #[error("the API token is not valid")]
    InvalidToken,
    /// The token was revoked.
    #[error("the API token was revoked")]
    TokenRevoked,
    /// The token's role may not do this.
    #[error("a token with role {0} is needed")]
    Forbidden(&'static str),
    /// No such route.
    #[error("no such endpoint")]
    NotFound,
    /// A webhook endpoint URL the URL parser refuses (beyond what its pattern says).
    #[error("url: {0}")]
    InvalidUrl(String),
    /// The route exists but not with this method.
    #[error("method not allowed on this endpoint")]
    MethodNotAllowed,
    /// The body is not JSON.
    #[error("the body is not valid JSON: {0}")]
    InvalidJson(String),
    /// A required field is missing.
    #[error("missing field `{0}`")]
    MissingField(String),
    /// A field has the wrong type or an unknown field was sent.
    #[error("{field}: {message}")]
    BadField {
        /// The field's path (`licenses[3].seats`).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A query parameter or path segment is malformed.
    #[error("{0}")]
    InvalidQuery(String),
    /// Query parameters that do not go together.
    #[error("{0}")]
    ConflictingParameters(String),
    /// The body is larger than allowed.
    #[error("the body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// The body is not `application/json`.
    #[error("the body must be application/json")]
    UnsupportedMediaType,
    /// The body did not arrive within the deadline; the connection is closed.
    #[error("the request body did not arrive within {0} seconds")]
    BodyTimeout(u64),
    /// The body has a `Content-Encoding` keyclerk does not decode.
    #[error("the body must not be compressed (Content-Encoding: {0} is not decoded)")]
    UnsupportedEncoding(String),
    /// The body's `charset` is not UTF-8.
    #[error("the body must be UTF-8 (charset {0} is not accepted)")]
    UnsupportedCharset(String),
    /// More than one `Authorization` header.
    #[error("send one Authorization header, not several")]
    DuplicateAuthorization,
    /// A batch with no items.
    #[error("a batch needs at least one item")]
    EmptyBatch,
    /// A batch with too many items.
    #[error("a batch holds at most {0} items")]
    BatchTooLarge(usize),
    /// No activation with that id on the license of the presented key.
    #[error("activation not found")]
    ActivationNotFound,
    /// The customer freed too many seats in the last 30 days.
    #[error("too many deactivations of this license in the last 30 days; ask support to free a lost machine")]
    DeactivationLimitReached {
        /// Seconds until a deactivation leaves the 30-day window (`None`: never).
        retry_after_secs: Option<u64>,
    },
    /// Too many requests from one key or address.
    #[error("too many requests; try again later")]
    RateLimited {
        /// Seconds until the window resets.
        retry_after_secs: u64,
    },
    /// Something failed on our side; the cause goes to the request's log line,
    /// never to the client.
    #[error("internal error")]
    Internal(String),
    /// The database does not answer (lost, restarting, failing over), or storage
    /// is shutting down or full: a retry after `Retry-After` may succeed.
    #[error("the database is unavailable; try again shortly")]
    Unavailable,
    /// The keys directory could not be loaded as it is now (a key gone, a bad
    /// file): the keys in use stay.
    #[error("{0}")]
    KeysNotReloaded(String),
    /// No payment provider of that name is configured.
    #[error("no payment provider of that name is configured")]
    PaymentProviderNotFound,
    /// A provider's webhook whose signature is missing, stale or wrong (which, is
    /// not told).
    #[error("the webhook's signature is missing, stale or does not match a configured secret")]
    InvalidSignature,
    /// A verified webhook body that is not what the provider sends.
    #[error("the webhook's body cannot be read: {0}")]
    InvalidPayload(String),
}

/// The `Retry-After` of a 503 `database_unavailable`, in seconds.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 1;

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        ServiceError::from(e).into()
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Domain(d) => Self::Domain(d),
            ServiceError::Refused(r) => Self::Refused(r),
            ServiceError::Download(d) => Self::Download(d),
            ServiceError::InvalidParameter(m) => Self::InvalidQuery(m),
            ServiceError::MissingField(f) => Self::MissingField(f),
            ServiceError::InvalidUrl(m) => Self::InvalidUrl(m),
            ServiceError::MissingCredentials => Self::MissingCredentials,
            ServiceError::ActivationNotFound => Self::ActivationNotFound,
            ServiceError::DeactivationLimitReached { retry_after_secs } => {
                Self::DeactivationLimitReached { retry_after_secs }
            }
            ServiceError::RateLimited { retry_after_secs } => {
                Self::RateLimited { retry_after_secs }
            }
            ServiceError::InvalidToken => Self::InvalidToken,
            ServiceError::TokenRevoked => Self::TokenRevoked,
            ServiceError::Unavailable(what) => {
                log::warn!("storage unavailable: {what}");
                Self::Unavailable
            }
            ServiceError::Internal(cause) => Self::Internal(cause),
            ServiceError::KeysNotReloaded(why) => Self::KeysNotReloaded(why),
            ServiceError::PaymentProviderNotFound => Self::PaymentProviderNotFound,
            ServiceError::InvalidSignature => Self::InvalidSignature,
            ServiceError::InvalidPayload(why) => Self::InvalidPayload(why),
        }
    }
}

/// The cause of a 500, kept with the response for the request's log line.
#[derive(Debug, Clone)]
pub struct ErrorCause(pub String);

/// The `code` of a problem answer, kept with the response for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProblemCode(pub &'static str);

/// The cause of a response that is a 500, for its log line.
pub fn cause_of<B>(res: &HttpResponse<B>) -> Option<String> {
    res.extensions().get::<ErrorCause>().map(|c| c.0.clone())
}

impl ApiError {
    /// The stable code clients branch on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Domain(d) => match d {
                DomainError::UnknownProduct(_) => "unknown_product",
                DomainError::PurchasedInFuture => "purchased_in_future",
                DomainError::InvalidExpiry => "invalid_expiry",
                DomainError::OrderConflict(_) => "order_conflict",
                DomainError::InvalidTransition { .. } => "invalid_transition",
                DomainError::LicensePerpetual => "license_perpetual",
                DomainError::DaysRequired => "days_required",
                DomainError::LicenseNotFound => "license_not_found",
                DomainError::TokenNotFound => "token_not_found",
                DomainError::InvalidField { .. } => "invalid_field",
                DomainError::PriceUnknown => "price_unknown",
                DomainError::ProductRequired => "product_required",
                DomainError::CurrencyMismatch { .. } => "currency_mismatch",
                DomainError::SubstituteTooExpensive { .. } => "substitute_too_expensive",
                DomainError::UpgradeNotDearer => "upgrade_not_dearer",
                DomainError::EmailRequired => "email_required",
                DomainError::InsufficientCredit { .. } => "insufficient_credit",
                DomainError::IdempotencyKeyReused => "idempotency_key_reused",
                DomainError::ClaimNotFound => "claim_not_found",
                DomainError::WebhookEndpointNotFound => "webhook_endpoint_not_found",
                DomainError::DeliveryNotFound => "delivery_not_found",
                DomainError::DeliveryNotFailed(_) => "delivery_not_failed",
                DomainError::AddressNotAllowed(_) => "address_not_allowed",
                DomainError::ClaimResolved => "claim_resolved",
                DomainError::DateOutOfRange => "date_out_of_range",
                DomainError::PaymentEventNotFound => "payment_event_not_found",
                DomainError::PaymentEventSettled(_) => "payment_event_settled",
            },
            Self::Refused(r) => r.code(),
            Self::Download(d) => d.code(),
            Self::MissingToken => "missing_token",
            Self::MissingCredentials => "missing_credentials",
            Self::InvalidToken => "invalid_token",
            Self::TokenRevoked => "token_revoked",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound => "not_found",
            Self::InvalidUrl(_) => "invalid_url",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::InvalidJson(_) => "invalid_json",
            Self::MissingField(_) => "missing_field",
            Self::BadField { .. } => "invalid_field",
            Self::InvalidQuery(_) => "invalid_parameter",
            Self::ConflictingParameters(_) => "conflicting_parameters",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::BodyTimeout(_) => "body_timeout",
            Self::UnsupportedEncoding(_) => "unsupported_content_encoding",
            Self::UnsupportedCharset(_) => "unsupported_charset",
            Self::DuplicateAuthorization => "duplicate_authorization",
            Self::EmptyBatch => "empty_batch",
            Self::BatchTooLarge(_) => "batch_too_large",
            Self::ActivationNotFound => "activation_not_found",
            Self::RateLimited { .. } => "rate_limited",
            Self::DeactivationLimitReached { .. } => "deactivation_limit_reached",
            Self::Internal(_) => "internal_error",
            Self::KeysNotReloaded(_) => "keys_not_reloaded",
            Self::Unavailable => "database_unavailable",
            Self::PaymentProviderNotFound => "payment_provider_not_found",
            Self::InvalidSignature => "invalid_signature",
            Self::InvalidPayload(_) => "invalid_payload",
        }
    }

    /// The problem document (without transport details).
    pub fn problem(&self) -> serde_json::Value {
        let status = self.status_code();
        let mut body = json!({
            "type": format!("urn:keyclerk:problem:{}", self.code()),
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "code": self.code(),
            "detail": self.to_string(),
        });
        match self {
            Self::Domain(DomainError::InvalidField { field, .. })
            | Self::BadField { field, .. }
            | Self::MissingField(field) => {
                body["field"] = json!(field);
            }
            Self::Domain(DomainError::InvalidTransition { status, .. }) => {
                body["current_status"] = json!(status.as_str());
            }
            Self::DeactivationLimitReached { retry_after_secs } => {
                body["retry_after_seconds"] = json!(retry_after_secs);
            }
            Self::RateLimited { retry_after_secs } => {
                body["retry_after_seconds"] = json!(retry_after_secs);
            }
            Self::Unavailable => {
                body["retry_after_seconds"] = json!(UNAVAILABLE_RETRY_AFTER_SECS);
            }
            Self::Domain(DomainError::SubstituteTooExpensive { price, ceiling }) => {
                body["price"] = json!(price);
                body["ceiling"] = json!(ceiling);
                body["suggested_remedy"] = json!("upgrade");
            }
            Self::Domain(DomainError::InsufficientCredit { balance, .. }) => {
                body["balance"] = json!(balance);
            }
            _ => {}
        }
        body
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Domain(d) => match d {
                DomainError::UnknownProduct(_)
                | DomainError::PurchasedInFuture
                | DomainError::InvalidExpiry
                | DomainError::LicensePerpetual
                | DomainError::DaysRequired
                | DomainError::InvalidField { .. }
                | DomainError::PriceUnknown
                | DomainError::ProductRequired
                | DomainError::CurrencyMismatch { .. }
                | DomainError::SubstituteTooExpensive { .. }
                | DomainError::UpgradeNotDearer
                | DomainError::EmailRequired
                | DomainError::AddressNotAllowed(_)
                | DomainError::DateOutOfRange => StatusCode::UNPROCESSABLE_ENTITY,
                DomainError::OrderConflict(_)
                | DomainError::InvalidTransition { .. }
                | DomainError::InsufficientCredit { .. }
                | DomainError::IdempotencyKeyReused
                | DomainError::DeliveryNotFailed(_)
                | DomainError::ClaimResolved
                | DomainError::PaymentEventSettled(_) => StatusCode::CONFLICT,
                DomainError::LicenseNotFound
                | DomainError::TokenNotFound
                | DomainError::ClaimNotFound
                | DomainError::WebhookEndpointNotFound
                | DomainError::DeliveryNotFound
                | DomainError::PaymentEventNotFound => StatusCode::NOT_FOUND,
            },
            Self::Refused(Refusal::SeatLimitReached) => StatusCode::CONFLICT,
            Self::Refused(_) => StatusCode::FORBIDDEN,
            Self::Download(d) => match d {
                DownloadRefusal::LinkInvalid => StatusCode::FORBIDDEN,
                DownloadRefusal::LinkExpired => StatusCode::GONE,
                DownloadRefusal::FileNotFound => StatusCode::NOT_FOUND,
                DownloadRefusal::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            },
            Self::MissingToken
            | Self::MissingCredentials
            | Self::InvalidToken
            | Self::TokenRevoked => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::InvalidUrl(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::InvalidJson(_)
            | Self::MissingField(_)
            | Self::BadField { .. }
            | Self::InvalidQuery(_)
            | Self::ConflictingParameters(_)
            | Self::EmptyBatch
            | Self::BatchTooLarge(_)
            | Self::DuplicateAuthorization => StatusCode::BAD_REQUEST,
            Self::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::UnsupportedEncoding(_) | Self::UnsupportedCharset(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::ActivationNotFound => StatusCode::NOT_FOUND,
            Self::DeactivationLimitReached { .. } | Self::RateLimited { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::KeysNotReloaded(_) => StatusCode::CONFLICT,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::PaymentProviderNotFound => StatusCode::NOT_FOUND,
            Self::InvalidSignature | Self::InvalidPayload(_) => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        res.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        if matches!(
            self,
            Self::MissingToken | Self::MissingCredentials | Self::InvalidToken | Self::TokenRevoked
        ) {
            res.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        let retry = match self {
            Self::DeactivationLimitReached {
                retry_after_secs: Some(secs),
            }
            | Self::RateLimited {
                retry_after_secs: secs,
            } => Some(*secs),
            // The database is busy (a full write queue) or away: soon, not never.
            Self::Unavailable => Some(UNAVAILABLE_RETRY_AFTER_SECS),
            _ => None,
        };
        if let Some(secs) = retry {
            res.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        if let Self::Internal(cause) = self {
            res.extensions_mut().insert(ErrorCause(cause.clone()));
        }
        res.extensions_mut().insert(ProblemCode(self.code()));
        self.transport_headers(&mut res);
        res.body(self.problem().to_string())
    }
}

impl ApiError {
    /// What the HTTP layer must add for some errors: a timed-out body closes the
    /// connection (the rest of the body may still be on its way); an encoding that
    /// is not decoded names the one that is (RFC 9110 §15.5.16).
    fn transport_headers(&self, res: &mut actix_web::HttpResponseBuilder) {
        match self {
            Self::BodyTimeout(_) => {
                res.force_close();
            }
            Self::UnsupportedEncoding(_) => {
                res.insert_header((header::ACCEPT_ENCODING, "identity"));
            }
            // RFC 9110 §14.4: a 416 names the current length.
            Self::Download(DownloadRefusal::RangeNotSatisfiable { size }) => {
                res.insert_header((header::CONTENT_RANGE, format!("bytes */{size}")));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::license::LicenseStatus;

    #[test]
    fn a_problem_carries_its_code_status_and_extras() {
        let e = ApiError::Domain(DomainError::InvalidTransition {
            action: "reinstate",
            status: LicenseStatus::Revoked,
        });
        let p = e.problem();
        assert_eq!(p["status"], 409);
        assert_eq!(p["code"], "invalid_transition");
        assert_eq!(p["current_status"], "revoked");
    }

    #[test]
    fn the_cause_of_a_500_goes_to_the_log_line_and_not_to_the_client() {
        let e = ApiError::from(StorageError::Database(Box::new(std::io::Error::other(
            "disk I/O error at page 7",
        ))));
        let res = e.error_response();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            cause_of(&res).as_deref(),
            Some("storage: database: disk I/O error at page 7")
        );
        assert_eq!(
            res.extensions().get::<ProblemCode>(),
            Some(&ProblemCode("internal_error"))
        );
        assert!(!e.problem().to_string().contains("page 7"));
        assert_eq!(cause_of(&HttpResponse::Ok().finish()), None);
    }

    #[test]
    fn an_internal_error_says_nothing_of_its_cause() {
        let e = ApiError::from(StorageError::Corrupt("secret table layout".into()));
        assert_eq!(e.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!e.problem().to_string().contains("secret table"));
    }
}
