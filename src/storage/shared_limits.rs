//! Rate-limit counters that every keyclerk instance on one database sees: the
//! failed-look-up limits hold across instances.
//!
//! A counter is what an in-memory limiter keeps (GCRA: the next time a hit is
//! allowed, its "theoretical arrival time", in Unix milliseconds) stored under a
//! bucket name. The limiter's arithmetic comes in with each charge (the cost of a
//! hit, the burst it may run ahead of now): the store applies it in one atomic
//! statement and invents no rule of its own.

use async_trait::async_trait;

use crate::domain::time::Timestamp;
use crate::storage::StorageError;

/// One hit charged to a shared counter, with its limiter's arithmetic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitCharge {
    /// The counter's name (the limiter's name and the client's bucket).
    pub bucket: String,
    /// Milliseconds one hit adds to the next-hit time.
    pub cost_ms: i64,
    /// How far ahead of now the next-hit time may be for a hit to be allowed
    /// (negative: none is).
    pub burst_ms: i64,
}

/// What a charge found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Charged {
    /// The counter's next-hit time after the charge (Unix ms): `max(tat, now) + cost`
    /// when allowed, as it was otherwise (`now` for a counter that has none).
    pub tat_ms: i64,
    /// Whether the hit fitted (`max(tat, now) <= now + burst`) and was counted; a
    /// refused hit is not counted.
    pub allowed: bool,
}

/// Where the previous [`SharedLimits::changes`] left off; the default reads every
/// live counter. What it holds is the engine's business.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeCursor {
    /// Changes from this mark on are read.
    pub(crate) from: i64,
    /// Within a read cut into pages: the last change read (mark and counter), and
    /// the mark the next read starts from once the pages are through.
    pub(crate) page: Option<(i64, String, i64)>,
}

/// A counter as another instance may have left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitChange {
    /// The counter's name.
    pub bucket: String,
    /// Its next-hit time (Unix ms).
    pub tat_ms: i64,
}

/// Counters changed since a cursor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitChanges {
    /// Each changed counter still live at `now`. A counter may come again in a
    /// later answer (merging is idempotent).
    pub counters: Vec<LimitChange>,
    /// What to pass next time.
    pub next: ChangeCursor,
    /// More changes wait than `max` allowed in this answer: ask again at once.
    pub more: bool,
}

/// Counters several instances on one database share.
#[async_trait]
pub trait SharedLimits: Send + Sync + 'static {
    /// Charges one hit to each counter at `now`, each atomically on its own (one
    /// may be refused while another is counted); the answers in the order given.
    async fn charge(
        &self,
        charges: Vec<LimitCharge>,
        now: Timestamp,
    ) -> Result<Vec<Charged>, StorageError>;

    /// Counters changed by any instance since `since` and still live at `now`
    /// (next-hit time after it), at most `max` of them; every change committed
    /// after an answer is in a later one.
    async fn changes(
        &self,
        since: ChangeCursor,
        now: Timestamp,
        max: u32,
    ) -> Result<LimitChanges, StorageError>;

    /// Deletes up to `max` counters that are quiet at `now` (next-hit time passed:
    /// as good as none); how many went.
    async fn forget_quiet(&self, now: Timestamp, max: u32) -> Result<u64, StorageError>;
}

impl std::fmt::Debug for dyn SharedLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedLimits")
    }
}
