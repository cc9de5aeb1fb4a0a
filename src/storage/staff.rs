//! Staff accounts and their console sessions: the storage operations, one
//! implementation per engine (`sqlite/staff.rs`, `postgres/staff.rs`).

use async_trait::async_trait;

use crate::domain::audit::Actor;
use crate::domain::staff::{Credentials, NewStaffUser, Session, Setup, StaffUser};
use crate::domain::time::Timestamp;
use crate::storage::StorageError;

/// What a completed setup link stores.
#[derive(Clone)]
pub struct SetupDone {
    /// The hash of the link's secret (it must still be the account's and unexpired).
    pub setup_hash: [u8; 32],
    /// The new Argon2id PHC string.
    pub password_hash: String,
    /// The TOTP secret, when the staff member set it up.
    pub totp_secret: Option<Vec<u8>>,
}

impl std::fmt::Debug for SetupDone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SetupDone(..)")
    }
}

/// The operations of the console's accounts and sessions.
#[async_trait]
pub trait StaffStore: Send + Sync {
    /// Stores a new account (its email must be free), with its event.
    async fn create_staff(
        &self,
        new: NewStaffUser,
        actor: Actor,
    ) -> Result<StaffUser, StorageError>;

    /// Every account, by email.
    async fn staff(&self) -> Result<Vec<StaffUser>, StorageError>;

    /// An account and what signing in checks, by its (lower-case) email.
    async fn staff_credentials(&self, email: &str) -> Result<Option<Credentials>, StorageError>;

    /// The account a live setup link (the hash of its secret) opens at `now`.
    async fn staff_by_setup(
        &self,
        setup_hash: [u8; 32],
        now: Timestamp,
    ) -> Result<Option<StaffUser>, StorageError>;

    /// Sets the password (and TOTP) through a live setup link, which then stops
    /// working; the account's sessions end. `None` if the link no longer works.
    async fn complete_setup(
        &self,
        done: SetupDone,
        now: Timestamp,
    ) -> Result<Option<StaffUser>, StorageError>;

    /// Disables an account by email; its sessions end at once.
    async fn disable_staff(
        &self,
        email: String,
        actor: Actor,
        now: Timestamp,
    ) -> Result<StaffUser, StorageError>;

    /// Gives an account a new setup link: its password, TOTP and sessions end.
    async fn reset_staff(
        &self,
        email: String,
        setup: Setup,
        actor: Actor,
        now: Timestamp,
    ) -> Result<StaffUser, StorageError>;

    /// Stores a new session after a sign-in, with the TOTP step used (if any).
    async fn start_session(
        &self,
        session: Session,
        totp_step: Option<i64>,
    ) -> Result<(), StorageError>;

    /// A session and its account, by the hash of the cookie's value.
    async fn session(
        &self,
        id_hash: [u8; 32],
    ) -> Result<Option<(Session, StaffUser)>, StorageError>;

    /// Writes a session's last-seen time (and, if given, the time the password was
    /// asked again).
    async fn touch_session(
        &self,
        id_hash: [u8; 32],
        last_seen_at: Timestamp,
        reauth_at: Option<Timestamp>,
    ) -> Result<(), StorageError>;

    /// Ends a session (sign-out, time-out).
    async fn end_session(&self, id_hash: [u8; 32]) -> Result<(), StorageError>;
}

/// The refusal of an email that has an account already.
pub fn email_taken() -> StorageError {
    crate::domain::DomainError::field("email", "a staff account with this email exists").into()
}

/// The refusal of an email no account has.
pub fn no_such_staff() -> StorageError {
    crate::domain::DomainError::field("email", "no staff account has this email").into()
}
