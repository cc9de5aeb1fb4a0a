//! The storage boundary: domain operations, one implementation per engine.

pub mod activation;
pub mod customer;
pub mod grace;
pub mod last_seen;
pub mod payments;
pub mod postgres;
pub mod reminders;
pub mod rows;
pub mod shared_limits;
pub mod sqlite;
pub mod staff;
pub mod webhooks;

use async_trait::async_trait;

use crate::domain::audit::{
    Actor, AuditEvent, ChainError, ChainHead, ClaimStatus, Event, PresentedBy,
};
use crate::domain::license::{Action, License, LicenseStatus, NewLicense};
use crate::domain::time::Timestamp;
use crate::domain::token::{ApiToken, NewApiToken};
use crate::domain::DomainError;
use crate::metrics::HistogramSnapshot;
use crate::storage::activation::{
    Activation, ActivationOutcome, Deactivation, DeactivationOutcome, KeyFacts, NewActivation,
};
use crate::storage::grace::{
    Claim, ClaimOutcome, CreditEntry, DecisionOutcome, GraceRequest, NewClaim, QueuedClaim,
    Redemption,
};

/// The engine a `[database] url` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineUrl {
    /// The embedded SQLite file in the data directory (no url, or `sqlite:`).
    Sqlite,
    /// A PostgreSQL database (`postgres://…` or `postgresql://…`, a libpq URL).
    Postgres(String),
}

impl EngineUrl {
    /// Reads the setting; the message of a refusal names it and never the URL
    /// (which may hold a password).
    pub fn parse(url: Option<&str>) -> Result<Self, OpenError> {
        match url.map(str::trim) {
            None | Some("") | Some("sqlite:") => Ok(Self::Sqlite),
            Some(u) if u.starts_with("sqlite:") => Err(OpenError::Setting(
                "a sqlite: URL takes no path: the file is keyclerk.db in data_dir".into(),
            )),
            Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
                Ok(Self::Postgres(u.to_owned()))
            }
            Some(_) => Err(OpenError::Setting(
                "must be sqlite: or a postgres:// URL".into(),
            )),
        }
    }
}

/// Why the storage could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// `[database] url` names no engine keyclerk has.
    #[error("database.url: {0}")]
    Setting(String),
    /// The SQLite file could not be opened.
    #[error(transparent)]
    Sqlite(#[from] sqlite::OpenError),
    /// The PostgreSQL database could not be opened.
    #[error(transparent)]
    Postgres(#[from] postgres::OpenError),
}

/// Opens the storage engine `url` names (see [`EngineUrl`]); SQLite lives in
/// `data_dir`. Start-up and the CLI hold only the trait object.
pub fn open(
    url: Option<&str>,
    data_dir: &std::path::Path,
) -> Result<std::sync::Arc<dyn Storage>, OpenError> {
    Ok(match EngineUrl::parse(url)? {
        EngineUrl::Sqlite => std::sync::Arc::new(sqlite::SqliteStore::open(data_dir)?),
        EngineUrl::Postgres(url) => std::sync::Arc::new(postgres::PostgresStore::open(&url)?),
    })
}

/// A storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A rule refused the operation (the client's business).
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The database failed (the operator's business; never shown to clients). The
    /// engine's own error is kept as the source, for the log.
    #[error("database")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The writer or the reader pool is gone (shutting down), or the write queue is
    /// full: retrying later may succeed.
    #[error("storage unavailable: {0}")]
    Unavailable(&'static str),
    /// A storage job panicked: a bug, not a reason to retry.
    #[error("a storage job panicked: {0}")]
    Panicked(String),
    /// Stored data could not be read back.
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

/// The key a license was issued with, as stored: enough to issue it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// Signing key id (for short keys: the key that derived it).
    pub kid: String,
    /// The signed claims (empty for short keys).
    pub payload: String,
}

/// A key about to be stored with its license.
#[derive(Debug, Clone)]
pub struct IssuedKey {
    /// SHA-256 of the key as presented (canonical form for short keys).
    pub key_hash: [u8; 32],
    /// What is needed to issue it again.
    pub stored: StoredKey,
}

/// What a mint did.
#[derive(Debug, Clone)]
pub enum MintOutcome {
    /// A new license was stored.
    Created(License),
    /// The order was minted before with the same fields; the license and its key.
    Existing(License, StoredKey),
}

/// Filters of `GET /v1/licenses`.
#[derive(Debug, Clone)]
pub enum LicenseLookup {
    /// By the shop's order id.
    OrderId(String),
    /// By customer email (lower-cased).
    Email(String),
    /// By the SHA-256 of a key.
    KeyHash([u8; 32]),
}

/// A page of the unfiltered list.
#[derive(Debug, Clone)]
pub struct LicensePage {
    /// Only this status.
    pub status: Option<LicenseStatus>,
    /// Only this product.
    pub product: Option<String>,
    /// At most this many.
    pub limit: u32,
    /// Licenses whose id sorts after this one (ids sort by creation time).
    pub after: Option<String>,
}

/// A page of a license's history.
#[derive(Debug, Clone, Copy)]
pub struct EventPage {
    /// Events after this sequence number.
    pub after: Option<i64>,
    /// At most this many.
    pub limit: u32,
}

/// A signing key the database has seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownKey {
    /// `k4.pid.…`
    pub kid: String,
    /// `k4.public.…`
    pub public_key: String,
}

impl KnownKey {
    /// The event of the database seeing this key for the first time.
    pub fn registered_event(&self) -> AuditEvent {
        AuditEvent::SigningKeyRegistered {
            kid: self.kid.clone(),
            public_key: self.public_key.clone(),
        }
    }
}

/// Mints a batch with `mint_one`, inside one transaction: an item refused by a rule
/// fails alone (it is refused before it writes anything, so the others go on); any
/// other error fails the whole batch, which the caller's transaction rolls back.
pub fn mint_each<T, F>(
    items: Vec<T>,
    mut mint_one: F,
) -> Result<Vec<Result<MintOutcome, StorageError>>, StorageError>
where
    F: FnMut(T) -> Result<MintOutcome, StorageError>,
{
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        out.push(rows::batch_item(mint_one(item))?);
    }
    Ok(out)
}

/// What an engine can tell of its load, cheap to read (for `/metrics`): its write
/// queue and group commits where it has them, and its connection pools.
#[derive(Debug, Clone, Default)]
pub struct StorageStats {
    /// `sqlite` or `postgres`.
    pub engine: &'static str,
    /// Writes waiting for the one writer (SQLite).
    pub write_queue: Option<QueueStats>,
    /// Writes committed together, per group commit (SQLite).
    pub write_batch_size: Option<HistogramSnapshot>,
    /// Time of one write transaction, first statement to the end of `COMMIT` (on
    /// SQLite one group commit of many writes), in microseconds.
    pub batch_micros: Option<HistogramSnapshot>,
    /// Time of one commit until it is on disk (SQLite with `synchronous = FULL`: the
    /// fsync; PostgreSQL: the chain's head locked, the events appended, `COMMIT`
    /// and the wait for the WAL's flush), in microseconds.
    pub commit_micros: Option<HistogramSnapshot>,
    /// The engine's connection pools.
    pub pools: Vec<PoolStats>,
}

/// A bounded queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Items waiting now.
    pub depth: usize,
    /// Items it holds at most.
    pub capacity: usize,
}

/// A connection pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Which pool (`sqlite_read`, `postgres`).
    pub name: &'static str,
    /// Connections it may open.
    pub max: usize,
    /// Connections open now.
    pub open: usize,
    /// Open connections nobody holds.
    pub idle: usize,
    /// Callers waiting for a connection.
    pub waiting: usize,
}

/// The name of the download links' secret in `server_secrets`.
pub const DOWNLOAD_SECRET: &str = "download_links";

/// The domain operations keyclerk needs from a database.
#[async_trait]
pub trait Storage: webhooks::WebhookStore + Send + Sync + 'static {
    /// Answers when the database answers (`/readyz`).
    async fn ready(&self) -> Result<(), StorageError>;

    /// The engine's load now: queues and pools (no database round trip).
    fn stats(&self) -> StorageStats;

    /// Stores a license, or finds the one minted before for the same order.
    async fn mint(
        &self,
        new: NewLicense,
        key: IssuedKey,
        actor: Actor,
    ) -> Result<MintOutcome, StorageError>;

    /// Mints many at once; each item succeeds or fails on its own.
    async fn mint_batch(
        &self,
        items: Vec<(NewLicense, IssuedKey)>,
        actor: Actor,
    ) -> Result<Vec<Result<MintOutcome, StorageError>>, StorageError>;

    /// One license and the key it was last issued with.
    async fn license(&self, id: &str) -> Result<Option<(License, StoredKey)>, StorageError>;

    /// Licenses matching a filter.
    async fn find_licenses(&self, lookup: LicenseLookup) -> Result<Vec<License>, StorageError>;

    /// A page of licenses in the order they were stored.
    async fn list_licenses(&self, page: LicensePage) -> Result<Vec<License>, StorageError>;

    /// Suspend, reinstate, revoke or refund.
    async fn transition(
        &self,
        id: String,
        action: Action,
        reason: Option<String>,
        actor: Actor,
        now: Timestamp,
    ) -> Result<License, StorageError>;

    /// Renew by `days` (default: one period).
    async fn renew(
        &self,
        id: String,
        days: Option<u32>,
        actor: Actor,
        now: Timestamp,
    ) -> Result<License, StorageError>;

    /// Activates (or refreshes) a machine on the license whose key hashes to
    /// `req.key_hash`; seats are counted in the same write transaction as the insert.
    async fn activate(
        &self,
        req: NewActivation,
        now: Timestamp,
    ) -> Result<ActivationOutcome, StorageError>;

    /// Frees a machine's seat (customer within the churn limit, or support).
    async fn deactivate(
        &self,
        req: Deactivation,
        now: Timestamp,
    ) -> Result<DeactivationOutcome, StorageError>;

    /// What validation needs about the license of a key; `None` for an unknown key.
    async fn key_facts(
        &self,
        key_hash: [u8; 32],
        fingerprint: Option<String>,
    ) -> Result<Option<KeyFacts>, StorageError>;

    /// Records the first presentation of a license's key (once, with an event).
    async fn mark_presented(
        &self,
        license_id: String,
        by: PresentedBy,
        now: Timestamp,
    ) -> Result<(), StorageError>;

    /// Writes last-seen times collected by [`last_seen::LastSeen`], without an
    /// audit event; a stored time later than the one given is kept.
    async fn record_last_seen(&self, seen: last_seen::SeenTimes) -> Result<(), StorageError>;

    /// Every activation of a license, newest first.
    async fn activations(&self, license_id: &str) -> Result<Vec<Activation>, StorageError>;

    /// Makes a grace decision with its evidence (or finds it again by its idempotency key).
    async fn decide(
        &self,
        req: GraceRequest,
        now: Timestamp,
    ) -> Result<DecisionOutcome, StorageError>;

    /// Confirms an upgrade's payment.
    async fn confirm_payment(
        &self,
        id: String,
        actor: Actor,
        now: Timestamp,
    ) -> Result<License, StorageError>;

    /// A customer's credit ledger, oldest first.
    async fn credits(&self, email: &str) -> Result<Vec<CreditEntry>, StorageError>;

    /// Spends credit on an order (idempotent on the order id); true if new.
    async fn redeem(
        &self,
        r: Redemption,
        now: Timestamp,
    ) -> Result<(CreditEntry, bool), StorageError>;

    /// Files a customer's claim, or grants it by policy.
    async fn file_claim(&self, c: NewClaim, now: Timestamp) -> Result<ClaimOutcome, StorageError>;

    /// One claim.
    async fn claim(&self, id: &str) -> Result<Option<Claim>, StorageError>;

    /// Claims with a status.
    async fn claims(&self, status: ClaimStatus) -> Result<Vec<Claim>, StorageError>;

    /// A customer's claims: of the licenses sold to `email`, and filed under it.
    async fn customer_claims(&self, email: &str) -> Result<Vec<Claim>, StorageError>;

    /// Claims with a status, as [`Storage::claims`], the first `with_evidence` of
    /// them with their license and evidence at `now`: one read for a whole queue.
    async fn claims_with_evidence(
        &self,
        status: ClaimStatus,
        with_evidence: usize,
        now: Timestamp,
    ) -> Result<Vec<QueuedClaim>, StorageError>;

    /// The claims on one license with a status, oldest first (through the
    /// license's index, however many other claims there are).
    async fn license_claims(
        &self,
        license_id: &str,
        status: ClaimStatus,
    ) -> Result<Vec<Claim>, StorageError>;

    /// Support closes a claim with a decision (`req.claim_id`).
    async fn resolve_claim(
        &self,
        req: GraceRequest,
        now: Timestamp,
    ) -> Result<DecisionOutcome, StorageError>;

    /// Stores a new API token.
    async fn create_token(&self, new: NewApiToken, actor: Actor) -> Result<ApiToken, StorageError>;

    /// Stores `new` only while no token exists at all (the first admin token of a new
    /// database); `None` when one does. Atomic across instances: of several starting
    /// on one new database at once, exactly one stores its token.
    async fn create_first_token(
        &self,
        new: NewApiToken,
        actor: Actor,
    ) -> Result<Option<ApiToken>, StorageError>;

    /// Every API token.
    async fn tokens(&self) -> Result<Vec<ApiToken>, StorageError>;

    /// Revokes a token by id or visible prefix.
    async fn revoke_token(
        &self,
        id: String,
        actor: Actor,
        now: Timestamp,
    ) -> Result<ApiToken, StorageError>;

    /// The token whose secret hashes to `hash`, revoked or not.
    async fn token_by_hash(&self, hash: [u8; 32]) -> Result<Option<ApiToken>, StorageError>;

    /// The signing keys this database has seen.
    async fn known_keys(&self) -> Result<Vec<KnownKey>, StorageError>;

    /// Records signing keys the database has not seen yet.
    async fn register_keys(
        &self,
        keys: Vec<KnownKey>,
        actor: Actor,
        now: Timestamp,
    ) -> Result<(), StorageError>;

    /// The secret download links are signed with: the one stored, or `candidate`
    /// stored now when there is none yet. Atomic across instances: of several
    /// starting on one new database at once, all get the one secret stored.
    async fn download_secret(
        &self,
        candidate: [u8; 32],
        now: Timestamp,
    ) -> Result<[u8; 32], StorageError>;

    /// Records that a file of a license began downloading (an audit event, chained
    /// once per license, file and day and counted beside it after).
    async fn record_download(
        &self,
        license_id: String,
        file: String,
        now: Timestamp,
    ) -> Result<(), StorageError>;

    /// A page of the events about one license, oldest first.
    async fn history(&self, license_id: &str, page: EventPage) -> Result<Vec<Event>, StorageError>;

    /// What the log says about a license at `now`, as a decision on it would read
    /// it (none for an unknown license): the late-claim panel's evidence.
    async fn evidence(
        &self,
        license_id: &str,
        now: Timestamp,
    ) -> Result<Option<crate::domain::grace::Evidence>, StorageError>;

    /// Checks the audit chain from the first event; the count of events if intact.
    async fn verify_audit(&self) -> Result<Result<i64, ChainError>, StorageError>;

    /// As [`Storage::verify_audit`], with the head's hash.
    async fn audit_head(&self) -> Result<Result<ChainHead, ChainError>, StorageError>;

    /// Applies a verified payment event once: stored with its outcome in the same
    /// transaction as its effect; the same provider event id again changes nothing.
    async fn apply_payment(
        &self,
        req: payments::PaymentRequest,
    ) -> Result<payments::PaymentResult, StorageError>;

    /// A page of stored payment events, in the order they arrived.
    async fn payment_events(
        &self,
        filter: payments::PaymentFilter,
    ) -> Result<Vec<crate::domain::payments::PaymentEvent>, StorageError>;

    /// One stored payment event.
    async fn payment_event(
        &self,
        id: &str,
    ) -> Result<Option<crate::domain::payments::PaymentEvent>, StorageError>;

    /// Up to `limit` scheduled reminders due at `now`, the earliest first.
    async fn due_reminders(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<reminders::DueReminder>, StorageError>;

    /// Records what became of due reminders, in one transaction: the mail of each
    /// one sent is queued (once per cause, whoever else settles it too), the
    /// schedule's rows of those sent or dropped are deleted, and those moved later
    /// are due again then.
    async fn settle_reminders(
        &self,
        settled: Vec<reminders::SettledReminder>,
        now: Timestamp,
    ) -> Result<(), StorageError>;

    /// The rate-limit counters every instance on this database sees, when several
    /// instances can share it (PostgreSQL); none when one process owns the database
    /// (SQLite), whose in-memory counters are then the whole count.
    fn shared_limits(&self) -> Option<std::sync::Arc<dyn shared_limits::SharedLimits>>;

    /// The console's staff accounts and sessions.
    fn staff_store(&self) -> &dyn staff::StaffStore;

    /// The customer page's sign-in links and sessions.
    fn customer_store(&self) -> &dyn customer::CustomerStore;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_names_the_engine_and_a_refusal_never_shows_the_url() {
        assert_eq!(EngineUrl::parse(None).unwrap(), EngineUrl::Sqlite);
        assert_eq!(
            EngineUrl::parse(Some("sqlite:")).unwrap(),
            EngineUrl::Sqlite
        );
        for url in [
            "postgres://kc@db/k",
            "postgresql://kc@a,b/k?target_session_attrs=read-write",
        ] {
            assert_eq!(
                EngineUrl::parse(Some(url)).unwrap(),
                EngineUrl::Postgres(url.into())
            );
        }
        for bad in ["mysql://kc:s3cret@db/k", "sqlite:/var/kc:s3cret"] {
            let e = EngineUrl::parse(Some(bad)).unwrap_err().to_string();
            assert!(e.starts_with("database.url: "), "{e}");
            assert!(!e.contains("s3cret"), "{e}");
        }
    }
}
