//! Brings the failed look-ups of the other instances on one database into this
//! instance's limiter: every [`POLL_EVERY`] it reads the shared counters changed
//! since its last poll and merges them (ours = the later of ours and theirs), so
//! that once an address is blocked on one instance, its genuine keys meet 429 on
//! every other one too, within a poll. Quiet counters are deleted in bounded steps.
//!
//! Polling rather than LISTEN/NOTIFY: a poll is one indexed query whatever the
//! traffic, it survives a lost connection or a failover by itself (the cursor
//! says where to go on; a notification sent while an instance was disconnected is
//! gone, so polling would be needed anyway to catch up), it needs no dedicated
//! connection outside the pool, and it adds nothing to the commit of the writes,
//! which NOTIFY serializes across the whole database. Its cost is a lag of one
//! poll, which changes no count of failures (every failure is charged to the shared
//! counter before it is answered); only a genuine key asked of another instance in
//! that lag still gets through.

use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use crate::domain::time;
use crate::service::limits::PublicLimits;
use crate::storage::shared_limits::{ChangeCursor, SharedLimits};
use crate::storage::StorageError;

/// How often each instance reads the counters the others changed.
pub const POLL_EVERY: Duration = Duration::from_millis(200);
/// Counters one poll reads at most (more are read by the next poll, at once).
const POLL_BATCH: u32 = 5000;
/// How often quiet counters are deleted, and how many at most each time (when a
/// batch is full, the next one follows at the next poll).
const CLEAN_UP_EVERY: Duration = Duration::from_secs(1);
const CLEAN_UP_BATCH: u32 = 1000;
/// The pause after a poll failed (the database is away): no need to ask five times
/// a second.
const AFTER_AN_ERROR: Duration = Duration::from_secs(1);

/// The thread that polls; stops when dropped.
pub struct LimitSync {
    _stop: mpsc::Sender<()>,
}

/// Where the polls stand.
struct Poller {
    shared: Arc<dyn SharedLimits>,
    limits: Arc<PublicLimits>,
    cursor: ChangeCursor,
    last_clean_up: Option<Instant>,
    clean_up_full: bool,
}

impl Poller {
    /// One poll (and a clean-up when due); whether more changes wait.
    async fn tick(&mut self) -> Result<bool, StorageError> {
        let now = time::now();
        let changes = self
            .shared
            .changes(self.cursor.clone(), now, POLL_BATCH)
            .await?;
        self.limits.merge(&changes.counters, now);
        self.cursor = changes.next;
        let due = self
            .last_clean_up
            .is_none_or(|at| at.elapsed() >= CLEAN_UP_EVERY);
        if self.clean_up_full || due {
            let gone = self.shared.forget_quiet(now, CLEAN_UP_BATCH).await?;
            self.clean_up_full = gone >= u64::from(CLEAN_UP_BATCH);
            self.last_clean_up = Some(Instant::now());
        }
        Ok(changes.more)
    }
}

impl LimitSync {
    /// Starts polling `shared` into `limits` every `every` (the first poll at once:
    /// a new instance learns the blocks in force).
    pub fn start(
        shared: Arc<dyn SharedLimits>,
        limits: Arc<PublicLimits>,
        every: Duration,
    ) -> std::io::Result<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread().build()?;
        let mut poller = Poller {
            shared,
            limits,
            cursor: ChangeCursor::default(),
            last_clean_up: None,
            clean_up_full: false,
        };
        std::thread::Builder::new()
            .name("keyclerk-limit-sync".into())
            .spawn(move || {
                let mut wait = Duration::ZERO;
                let mut failing = false;
                while matches!(
                    stopped.recv_timeout(wait),
                    Err(mpsc::RecvTimeoutError::Timeout)
                ) {
                    wait = match runtime.block_on(poller.tick()) {
                        Ok(more) => {
                            if std::mem::take(&mut failing) {
                                log::info!("reading the shared rate-limit counters again");
                            }
                            if more {
                                Duration::ZERO
                            } else {
                                every
                            }
                        }
                        Err(e) => {
                            if !std::mem::replace(&mut failing, true) {
                                log::warn!(
                                    "cannot read the shared rate-limit counters (other \
                                     instances' failed look-ups reach this one only with \
                                     its own next failures meanwhile): {e}"
                                );
                            }
                            AFTER_AN_ERROR
                        }
                    };
                }
            })?;
        Ok(Self { _stop: stop })
    }
}
