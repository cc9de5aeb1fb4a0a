//! `ServiceError`: why an operation of the service failed, with no transport in it.
//! The HTTP layer turns it into a problem document (`crate::error::ApiError`).

use crate::domain::activation::Refusal;
use crate::domain::DomainError;
use crate::storage::StorageError;

/// Why an operation of the service failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A business rule refused the request.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// A license refused a machine (window, status, expiry, seats).
    #[error("{0}")]
    Refused(#[from] Refusal),
    /// A download link or the file it names was refused.
    #[error("{0}")]
    Download(#[from] crate::domain::download::DownloadRefusal),
    /// A parameter of the request is malformed.
    #[error("{0}")]
    InvalidParameter(String),
    /// An endpoint URL that is not an http or https URL with a host.
    #[error("url: {0}")]
    InvalidUrl(String),
    /// A required field is missing.
    #[error("missing field `{0}`")]
    MissingField(String),
    /// Neither a license key nor a token came with a request that takes either.
    #[error("no credentials")]
    MissingCredentials,
    /// No activation with that id on the license of the presented key.
    #[error("activation not found")]
    ActivationNotFound,
    /// The customer freed too many seats in the last 30 days.
    #[error("too many deactivations in the last 30 days")]
    DeactivationLimitReached {
        /// Seconds until one more fits (`None`: never).
        retry_after_secs: Option<u64>,
    },
    /// Too many requests from one key or address.
    #[error("too many requests")]
    RateLimited {
        /// Seconds until the window resets.
        retry_after_secs: u64,
    },
    /// The presented API token is unknown.
    #[error("the API token is not valid")]
    InvalidToken,
    /// The presented API token was revoked.
    #[error("the API token was revoked")]
    TokenRevoked,
    /// No payment provider of that name is configured.
    #[error("no such payment provider is configured")]
    PaymentProviderNotFound,
    /// A provider's webhook whose signature is missing, stale or wrong.
    #[error("invalid signature")]
    InvalidSignature,
    /// A verified webhook body that is not what the provider sends.
    #[error("invalid payload: {0}")]
    InvalidPayload(String),
    /// The database cannot be reached or is shutting down; retrying may help.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The keys directory could not be loaded as it is now: the keys in use stay.
    #[error("keys not reloaded: {0}")]
    KeysNotReloaded(String),
    /// Something failed on our side: the cause chain, for the log only.
    #[error("internal: {0}")]
    Internal(String),
}

impl ServiceError {
    /// An internal failure while doing `what`, with its cause chain.
    pub fn internal(what: &str, cause: &(dyn std::error::Error + 'static)) -> Self {
        Self::Internal(format!("{what}: {}", chain(cause)))
    }
}

/// An error and its sources, `outer: inner: innermost`.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

impl From<StorageError> for ServiceError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Domain(d) => Self::Domain(d),
            StorageError::Unavailable(what) => Self::Unavailable(what.to_owned()),
            other => Self::Internal(format!("storage: {}", chain(&other))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_internal_error_keeps_its_whole_cause_chain() {
        let inner = std::io::Error::other("disk full");
        let e = StorageError::Database(Box::new(inner));
        match ServiceError::from(e) {
            ServiceError::Internal(cause) => assert_eq!(cause, "storage: database: disk full"),
            other => panic!("{other:?}"),
        }
    }
}
