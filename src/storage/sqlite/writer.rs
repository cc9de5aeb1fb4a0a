//! The one writer: owns the only write connection and commits in groups.
//!
//! Jobs queue on a channel. The writer takes every job waiting (up to
//! [`MAX_BATCH`]), runs them in one transaction with a savepoint each, so that a job
//! that fails rolls back alone, commits once, and only then answers each caller.
//! With `synchronous = FULL` that is one fsync per batch instead of per request.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Instant;

use rusqlite::{params, Connection, OptionalExtension};

use crate::domain::audit::{NewEvent, PreparedEvent};
use crate::domain::time::Timestamp;
use crate::domain::webhook::WEBHOOK_CHANNEL;
use crate::metrics::Histogram;
use crate::storage::webhooks::{messages_of, NewMessage};
use crate::storage::{QueueStats, StorageError};

/// Most jobs committed together.
pub const MAX_BATCH: usize = 512;

/// The connection of the current transaction and the head of the audit chain (kept
/// here while the batch runs and written to `audit_head` once, before its commit).
pub struct WriteCtx<'c> {
    /// The write connection, inside the batch's transaction.
    pub conn: &'c Connection,
    head_seq: i64,
    head_hash: [u8; 32],
    /// Enabled webhook endpoints (read with the head): none, and an event costs no
    /// outbox statement.
    webhook_endpoints: i64,
}

impl WriteCtx<'_> {
    /// Appends an event to the hash-chained log; a repeat of a refusal or refresh
    /// already chained in its window is counted beside that event instead (see
    /// [`crate::domain::audit::AuditEvent::repeat_window`]). The seq of the chained
    /// event.
    pub fn append(&mut self, event: NewEvent) -> Result<i64, StorageError> {
        self.append_prepared(event.prepare())
    }

    /// [`WriteCtx::append`] for an event rendered before the writer took it.
    pub fn append_prepared(&mut self, event: PreparedEvent) -> Result<i64, StorageError> {
        let at = event.at;
        let window = match (&event.license_id, &event.repeat_window) {
            (Some(license), Some(window)) => {
                let counted: Option<i64> = self
                    .conn
                    .prepare_cached(
                        "UPDATE event_repeats SET count = count + 1, last_at = max(last_at, ?3)
                         WHERE license_id = ?1 AND window = ?2 RETURNING seq",
                    )?
                    .query_row(params![license, window, at.timestamp()], |r| r.get(0))
                    .optional()?;
                if let Some(seq) = counted {
                    return Ok(seq);
                }
                Some((license.clone(), window.clone()))
            }
            _ => None,
        };
        let record = event.into_record(self.head_seq + 1);
        let hash = record.chain_hash(&self.head_hash);
        self.conn
            .prepare_cached(
                "INSERT INTO events (seq, at, actor, kind, license_id, data, hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                record.seq,
                record.at,
                record.actor,
                record.kind,
                record.license_id,
                record.data,
                &hash[..]
            ])?;
        if let Some((license, window)) = window {
            self.conn
                .prepare_cached(
                    "INSERT INTO event_repeats (seq, license_id, window, count, last_at)
                     VALUES (?1, ?2, ?3, 1, ?4)",
                )?
                .execute(params![record.seq, license, window, record.at])?;
        }
        if self.sends_webhooks() {
            self.queue_messages(messages_of(&record, at), at)?;
        }
        self.head_seq = record.seq;
        self.head_hash = hash;
        Ok(record.seq)
    }

    /// Whether an endpoint is enabled (the count is read with the head, in this
    /// transaction): with none, a write makes no webhook message at all.
    pub fn sends_webhooks(&self) -> bool {
        self.webhook_endpoints > 0
    }

    /// Writes `messages` into the outbox, one row per enabled endpoint subscribed to
    /// each one's type, due at `at`. Nothing when there is no enabled endpoint (the
    /// count is read with the head, in this transaction).
    pub fn queue_messages(
        &mut self,
        messages: Vec<NewMessage>,
        at: Timestamp,
    ) -> Result<(), StorageError> {
        if self.webhook_endpoints == 0 {
            return Ok(());
        }
        for m in messages {
            self.conn
                .prepare_cached(
                    "INSERT INTO outbox (message_id, channel, target, kind, payload,
                                         created_at, status, next_at_ms)
                     SELECT ?1, ?2, id, ?3, ?4, ?5, 'pending', ?6 FROM webhook_endpoints
                     WHERE enabled = 1
                       AND (events = ' * ' OR instr(events, ' ' || ?3 || ' ') > 0)",
                )?
                .execute(params![
                    m.message_id,
                    WEBHOOK_CHANNEL,
                    m.kind,
                    m.payload,
                    at.timestamp(),
                    at.timestamp_millis()
                ])?;
        }
        Ok(())
    }

    /// Writes a customer's mail into the outbox, due at `at`; a second mail of the
    /// same cause is none (the row is unique per cause and recipient).
    pub fn queue_mail(
        &mut self,
        mail: &crate::domain::mail::NewMail,
        at: Timestamp,
    ) -> Result<(), StorageError> {
        self.conn
            .prepare_cached(
                "INSERT INTO outbox (message_id, channel, target, kind, payload,
                                     created_at, status, next_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7)
                 ON CONFLICT (message_id, channel, target) DO NOTHING",
            )?
            .execute(params![
                mail.cause,
                crate::domain::mail::MAIL_CHANNEL,
                mail.to,
                mail.kind.as_str(),
                mail.payload(),
                at.timestamp(),
                at.timestamp_millis()
            ])?;
        Ok(())
    }

    /// Counts the enabled webhook endpoints again (after a write changed them) and
    /// keeps the count beside the head for the writes that follow.
    pub fn recount_webhook_endpoints(&mut self) -> Result<(), StorageError> {
        self.webhook_endpoints = self.conn.query_row(
            "UPDATE audit_head SET webhook_endpoints =
                 (SELECT count(*) FROM webhook_endpoints WHERE enabled = 1)
             WHERE id = 1 RETURNING webhook_endpoints",
            [],
            |r| r.get(0),
        )?;
        Ok(())
    }
}

type Deliver = Box<dyn FnOnce(Result<(), StorageError>) + Send>;
type Job = Box<dyn FnOnce(&mut WriteCtx<'_>) -> (bool, Deliver) + Send>;

/// A handle to the writer thread; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::SyncSender<Job>,
    stats: Arc<WriterStats>,
}

/// Bounds of the batch-size histogram: powers of two up to [`MAX_BATCH`].
const BATCH_BOUNDS: &[u64] = &[1, 2, 4, 8, 16, 32, 64, 128, 256, 512];

/// What the writer has done, kept with atomics (read by `/metrics`).
#[derive(Debug)]
pub struct WriterStats {
    /// Jobs queued and not yet taken by the writer.
    queued: AtomicUsize,
    capacity: usize,
    /// Jobs per group commit.
    pub batch_size: Histogram,
    /// Microseconds from `BEGIN` to the end of `COMMIT`.
    pub batch_micros: Histogram,
    /// Microseconds of `COMMIT` alone.
    pub commit_micros: Histogram,
}

impl WriterStats {
    fn new(capacity: usize) -> Self {
        Self {
            queued: AtomicUsize::new(0),
            capacity,
            batch_size: Histogram::new(BATCH_BOUNDS, 1.0),
            batch_micros: Histogram::latency(),
            commit_micros: Histogram::latency(),
        }
    }

    /// The queue now.
    pub fn queue(&self) -> QueueStats {
        QueueStats {
            depth: self.queued.load(Ordering::Relaxed),
            capacity: self.capacity,
        }
    }
}

/// Jobs that may wait for the writer; past this a write is refused as unavailable
/// (503 with `Retry-After`) instead of queueing without bound.
pub const QUEUE_CAPACITY: usize = 16 * MAX_BATCH;

impl Writer {
    /// Starts the writer thread on `conn`.
    pub fn start(conn: Connection) -> std::io::Result<Self> {
        Self::start_with_capacity(conn, QUEUE_CAPACITY)
    }

    /// Starts the writer thread with room for `capacity` waiting jobs.
    fn start_with_capacity(conn: Connection, capacity: usize) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::sync_channel::<Job>(capacity);
        let stats = Arc::new(WriterStats::new(capacity));
        let thread_stats = Arc::clone(&stats);
        thread::Builder::new()
            .name("keyclerk-writer".into())
            .spawn(move || run(conn, rx, &thread_stats))?;
        Ok(Self { jobs: tx, stats })
    }

    /// What the writer has done.
    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }

    /// Queues `job`, counted until the writer takes it.
    fn enqueue(&self, job: Job) -> Result<(), mpsc::TrySendError<Job>> {
        // Counted before it is sent: the writer may take it (and count it out) at once.
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        self.jobs.try_send(job).inspect_err(|_| {
            self.stats.queued.fetch_sub(1, Ordering::Relaxed);
        })
    }

    /// Runs `f` in the next group commit; answers after the commit that holds it.
    pub async fn write<R, F>(&self, f: F) -> Result<R, StorageError>
    where
        R: Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> Result<R, StorageError> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |ctx| {
            // A panic is a bug: the caller hears of it as such (never as a retryable
            // "unavailable"), and the job's savepoint rolls it back.
            let result = catch_unwind(AssertUnwindSafe(|| f(ctx)))
                .unwrap_or_else(|p| Err(StorageError::Panicked(panic_message(p.as_ref()))));
            let ok = result.is_ok();
            let deliver: Deliver = Box::new(move |commit| {
                let outcome = match result {
                    Ok(v) => commit.map(|()| v),
                    Err(e) => Err(e),
                };
                // The caller may have gone away; then nobody waits for the answer.
                let _ = tx.send(outcome);
            });
            (ok, deliver)
        });
        self.enqueue(job).map_err(|e| match e {
            mpsc::TrySendError::Full(_) => StorageError::Unavailable("the write queue is full"),
            mpsc::TrySendError::Disconnected(_) => StorageError::Unavailable("writer stopped"),
        })?;
        rx.await
            .map_err(|_| StorageError::Unavailable("writer dropped a job"))?
    }
}

/// The message of a caught panic.
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

#[cfg(test)]
impl Writer {
    /// Queues `f` for the next group commit without waiting for it (best effort:
    /// a failure is logged).
    pub fn submit<F>(&self, f: F)
    where
        F: FnOnce(&mut WriteCtx<'_>) -> Result<(), StorageError> + Send + 'static,
    {
        let job: Job = Box::new(move |ctx| {
            let result = f(ctx);
            let ok = result.is_ok();
            if let Err(e) = result {
                log::warn!("background write failed: {e}");
            }
            (ok, Box::new(|_| {}) as Deliver)
        });
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        if self.jobs.send(job).is_err() {
            self.stats.queued.fetch_sub(1, Ordering::Relaxed);
            log::warn!("background write dropped: the writer stopped");
        }
    }
}

fn run(mut conn: Connection, rx: mpsc::Receiver<Job>, stats: &WriterStats) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        stats.queued.fetch_sub(batch.len(), Ordering::Relaxed);
        stats.batch_size.observe(batch.len() as u64);
        run_batch(&mut conn, batch, stats);
    }
}

fn micros_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX)
}

fn read_head(conn: &Connection) -> rusqlite::Result<(i64, [u8; 32], i64)> {
    conn.query_row(
        "SELECT seq, hash, webhook_endpoints FROM audit_head WHERE id = 1",
        [],
        |r| {
            let seq: i64 = r.get(0)?;
            let hash: Vec<u8> = r.get(1)?;
            // A head that is not a hash would start the chain from nothing: refuse it.
            let h: [u8; 32] = hash
                .try_into()
                .map_err(|_| super::corrupt("audit_head.hash"))?;
            Ok((seq, h, r.get(2)?))
        },
    )
}

fn run_batch(conn: &mut Connection, batch: Vec<Job>, stats: &WriterStats) {
    let started = Instant::now();
    let begun = conn
        .prepare_cached("BEGIN IMMEDIATE")
        .and_then(|mut s| s.execute([]))
        .and_then(|_| read_head(conn));
    let (head_seq, head_hash, webhook_endpoints) = match begun {
        Ok(head) => head,
        Err(e) => {
            log::error!("writer could not begin a transaction: {e}");
            let _ = conn.execute_batch("ROLLBACK");
            for job in batch {
                fail_without_running(job);
            }
            return;
        }
    };
    let mut ctx = WriteCtx {
        conn,
        head_seq,
        head_hash,
        webhook_endpoints,
    };
    let mut delivers = Vec::with_capacity(batch.len());
    let mut broken = false;
    for job in batch {
        if broken {
            fail_without_running(job);
            continue;
        }
        let saved = (ctx.head_seq, ctx.head_hash, ctx.webhook_endpoints);
        if let Err(e) = exec(ctx.conn, "SAVEPOINT job") {
            log::error!("writer could not open a savepoint: {e}");
            broken = true;
            fail_without_running(job);
            continue;
        }
        let (ok, deliver) = match catch_unwind(AssertUnwindSafe(|| job(&mut ctx))) {
            Ok(pair) => pair,
            Err(_) => {
                log::error!("a write job panicked; it is rolled back");
                (
                    false,
                    Box::new(|_| {}) as Deliver, // its sender was dropped: the caller sees Unavailable
                )
            }
        };
        let end = if ok {
            exec(ctx.conn, "RELEASE job")
        } else {
            (ctx.head_seq, ctx.head_hash, ctx.webhook_endpoints) = saved;
            exec(ctx.conn, "ROLLBACK TO job").and_then(|()| exec(ctx.conn, "RELEASE job"))
        };
        if let Err(e) = end {
            log::error!("writer could not close a savepoint: {e}");
            broken = true;
        }
        delivers.push(deliver);
    }
    if !broken && (ctx.head_seq, ctx.head_hash) != (head_seq, head_hash) {
        let written = ctx
            .conn
            .prepare_cached("UPDATE audit_head SET seq = ?1, hash = ?2 WHERE id = 1")
            .and_then(|mut s| s.execute(params![ctx.head_seq, &ctx.head_hash[..]]));
        if let Err(e) = written {
            log::error!("writer could not write the audit head: {e}");
            broken = true;
        }
    }
    let committed = if broken {
        Err(StorageError::Unavailable("transaction aborted"))
    } else {
        let commit = Instant::now();
        let done = exec(ctx.conn, "COMMIT").map_err(StorageError::from);
        stats.commit_micros.observe(micros_since(commit));
        stats.batch_micros.observe(micros_since(started));
        done
    };
    let committed = match committed {
        Ok(()) => Ok(()),
        Err(e) => {
            log::error!("group commit failed: {e}");
            let _ = ctx.conn.execute_batch("ROLLBACK");
            Err(e)
        }
    };
    for deliver in delivers {
        let result = match &committed {
            Ok(()) => Ok(()),
            Err(_) => Err(StorageError::Unavailable("commit failed")),
        };
        deliver(result);
    }
}

/// Runs a statement without parameters from the statement cache (the savepoint and
/// transaction statements run thousands of times a second).
fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Answers a job that never ran with an error, by dropping it (its sender goes too).
fn fail_without_running(job: Job) {
    drop(job);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::audit::{Actor, AuditEvent};
    use crate::domain::time;
    use crate::domain::DomainError;

    /// A writer on a fresh database, and the database's path for checks.
    fn writer() -> (tempfile::TempDir, std::path::PathBuf, Writer) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let mut conn = Connection::open(&path).unwrap();
        super::super::configure(&conn).unwrap();
        super::super::migrations::migrate(&mut conn).unwrap();
        conn.execute_batch("CREATE TABLE t (n INTEGER PRIMARY KEY)")
            .unwrap();
        (dir, path, Writer::start(conn).unwrap())
    }

    fn event(n: i64) -> NewEvent {
        NewEvent::general(
            time::now(),
            Actor::System,
            AuditEvent::TokenRevoked {
                token: format!("tok_{n}"),
                name: "test".into(),
            },
        )
    }

    #[test]
    fn a_full_queue_refuses_a_write_as_unavailable_instead_of_growing() {
        let (_dir, path, _unused) = writer();
        let mut conn = Connection::open(&path).unwrap();
        super::super::configure(&conn).unwrap();
        super::super::migrations::migrate(&mut conn).unwrap();
        let writer = Writer::start_with_capacity(conn, 2).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (started, go) = std::sync::mpsc::channel::<()>();
        let (release, wait) = std::sync::mpsc::channel::<()>();
        writer.submit(move |_| {
            let _ = started.send(());
            let _ = wait.recv();
            Ok(())
        });
        go.recv().unwrap();
        let waiting: Vec<_> = (0..2)
            .map(|_| {
                let w = writer.clone();
                runtime.spawn(async move { w.write(|_| Ok(())).await })
            })
            .collect();
        runtime.block_on(async {
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
        });
        let refused = runtime.block_on(writer.write(|_| Ok(())));
        assert!(
            matches!(refused, Err(StorageError::Unavailable(m)) if m.contains("full")),
            "{refused:?}"
        );
        assert_eq!(
            writer.stats().queue(),
            QueueStats {
                depth: 2,
                capacity: 2
            },
            "the two waiting, not the one running nor the one refused"
        );
        release.send(()).unwrap();
        for w in waiting {
            assert!(
                runtime.block_on(w).unwrap().is_ok(),
                "the queued ones still run"
            );
        }
        assert_eq!(writer.stats().queue().depth, 0);
        let batches = writer.stats().batch_size.snapshot();
        assert_eq!(batches.sum, 3, "three jobs committed: {batches:?}");
        assert!(writer.stats().commit_micros.snapshot().count() >= 2);
    }

    /// Jobs queued while the writer is busy share one transaction; the ones that
    /// fail (after writing a row and an event) or panic are rolled back alone.
    #[test]
    fn a_failing_job_rolls_back_alone_and_the_rest_of_its_group_commits() {
        let (_dir, path, writer) = writer();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (started, go) = std::sync::mpsc::channel::<()>();
        let (release, wait) = std::sync::mpsc::channel::<()>();
        // Holds the writer until all the jobs below are queued.
        writer.submit(move |_| {
            let _ = started.send(());
            let _ = wait.recv();
            Ok(())
        });
        go.recv().unwrap();
        let handles: Vec<_> = (0..60i64)
            .map(|n| {
                let w = writer.clone();
                runtime.spawn(async move {
                    w.write(move |ctx| {
                        ctx.conn.execute("INSERT INTO t (n) VALUES (?1)", [n])?;
                        ctx.append(event(n))?;
                        match n % 3 {
                            0 => Err(DomainError::LicenseNotFound.into()),
                            1 if n == 31 => panic!("job {n} panics"),
                            _ => Ok(n),
                        }
                    })
                    .await
                })
            })
            .collect();
        // Let every job reach the queue, then free the writer.
        runtime.block_on(async {
            for _ in 0..60 {
                tokio::task::yield_now().await;
            }
        });
        release.send(()).unwrap();
        let answers: Vec<_> = runtime.block_on(async {
            let mut out = Vec::new();
            for h in handles {
                out.push(h.await.unwrap());
            }
            out
        });
        for (n, answer) in answers.iter().enumerate() {
            let n = n as i64;
            match (n % 3, answer) {
                (0, Err(StorageError::Domain(_))) => {}
                (_, Err(StorageError::Panicked(m))) if n == 31 && m == "job 31 panics" => {}
                (_, Ok(v)) if *v == n && n % 3 != 0 && n != 31 => {}
                other => panic!("job {n}: {other:?}"),
            }
        }
        let conn = Connection::open(&path).unwrap();
        let rows: Vec<i64> = conn
            .prepare("SELECT n FROM t ORDER BY n")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let expected: Vec<i64> = (0..60).filter(|n| n % 3 != 0 && *n != 31).collect();
        assert_eq!(rows, expected);
        // The events of the kept jobs form an unbroken chain: no gap where a
        // rolled-back job had appended.
        let seqs: Vec<i64> = conn
            .prepare("SELECT seq FROM events ORDER BY seq")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(seqs, (1..=expected.len() as i64).collect::<Vec<_>>());
        let head: i64 = conn
            .query_row("SELECT seq FROM audit_head", [], |r| r.get(0))
            .unwrap();
        assert_eq!(head, expected.len() as i64);
        let verified = super::super::verify_audit_on(&conn).unwrap();
        assert_eq!(verified.ok(), Some(expected.len() as i64));
    }
}
