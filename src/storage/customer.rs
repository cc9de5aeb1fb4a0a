//! The customer page's sign-in links and sessions: the storage operations, one
//! implementation per engine (`sqlite/customer.rs`, `postgres/customer.rs`).

use async_trait::async_trait;

use crate::domain::customer::{CustomerSession, LinkState, NewSignIn};
use crate::domain::time::Timestamp;
use crate::storage::StorageError;

/// The operations of the customer page's sign-in and sessions.
#[async_trait]
pub trait CustomerStore: Send + Sync {
    /// Stores a sign-in link and queues its mail in one transaction, when the
    /// email has at least one license (`mail`: whether to queue it); nothing
    /// otherwise. Either way the same look-up runs, so both take about as long.
    /// Whether the link was stored.
    async fn issue_sign_in(
        &self,
        new: NewSignIn,
        mail: bool,
        now: Timestamp,
    ) -> Result<bool, StorageError>;

    /// What the link with this secret hash is at `now`, without using it.
    async fn sign_in_state(
        &self,
        token_hash: [u8; 32],
        now: Timestamp,
    ) -> Result<LinkState, StorageError>;

    /// Uses the link: when it is usable at `now` it is marked used (once, even
    /// under races) and the session starts in the same transaction.
    async fn redeem_sign_in(
        &self,
        token_hash: [u8; 32],
        session: CustomerSession,
        now: Timestamp,
    ) -> Result<LinkState, StorageError>;

    /// Stores a new session (a sign-in with a key).
    async fn start_customer_session(&self, session: CustomerSession) -> Result<(), StorageError>;

    /// A session by the hash of the cookie's value.
    async fn customer_session(
        &self,
        id_hash: [u8; 32],
    ) -> Result<Option<CustomerSession>, StorageError>;

    /// Writes a session's last-seen time.
    async fn touch_customer_session(
        &self,
        id_hash: [u8; 32],
        last_seen_at: Timestamp,
    ) -> Result<(), StorageError>;

    /// Ends a session (sign-out, time-out).
    async fn end_customer_session(&self, id_hash: [u8; 32]) -> Result<(), StorageError>;
}
