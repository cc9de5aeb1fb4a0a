//! The one writer: owns the only write connection and commits in groups.
//!
//! Jobs queue on a channel. The writer takes every job waiting (up to
//! [`MAX_BATCH`]), runs them in one transaction with a savepoint each, so that a job
//! that fails rolls back alone, commits once, and only then answers each caller.
//! With `synchronous = FULL` that is one fsync per batch instead of per request.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::thread;

use rusqlite::{params, Connection};

use crate::domain::audit::{EventRecord, NewEvent};
use crate::storage::StorageError;

/// Most jobs committed together.
pub const MAX_BATCH: usize = 512;

/// The connection of the current transaction and the head of the audit chain.
pub struct WriteCtx<'c> {
    /// The write connection, inside the batch's transaction.
    pub conn: &'c Connection,
    head_seq: i64,
    head_hash: [u8; 32],
}

impl WriteCtx<'_> {
    /// The chain head, to restore if a nested savepoint is rolled back.
    pub fn head(&self) -> (i64, [u8; 32]) {
        (self.head_seq, self.head_hash)
    }

    /// Puts back a head taken with [`WriteCtx::head`].
    pub fn restore_head(&mut self, head: (i64, [u8; 32])) {
        (self.head_seq, self.head_hash) = head;
    }

    /// Appends an event to the hash-chained log.
    pub fn append(&mut self, event: NewEvent) -> Result<i64, StorageError> {
        let record = EventRecord {
            seq: self.head_seq + 1,
            at: event.at.timestamp(),
            actor: event.actor.to_json(),
            kind: event.kind.to_owned(),
            license_id: event.license_id,
            data: event.data.to_string(),
        };
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
        self.conn
            .prepare_cached("UPDATE audit_head SET seq = ?1, hash = ?2 WHERE id = 1")?
            .execute(params![record.seq, &hash[..]])?;
        self.head_seq = record.seq;
        self.head_hash = hash;
        Ok(record.seq)
    }
}

type Deliver = Box<dyn FnOnce(Result<(), StorageError>) + Send>;
type Job = Box<dyn FnOnce(&mut WriteCtx<'_>) -> (bool, Deliver) + Send>;

/// A handle to the writer thread; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer thread on `conn`.
    pub fn start(conn: Connection) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name("keyclerk-writer".into())
            .spawn(move || run(conn, rx))?;
        Ok(Self { jobs: tx })
    }

    /// Runs `f` in the next group commit; answers after the commit that holds it.
    pub async fn write<R, F>(&self, f: F) -> Result<R, StorageError>
    where
        R: Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> Result<R, StorageError> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |ctx| {
            let result = f(ctx);
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
        self.jobs
            .send(job)
            .map_err(|_| StorageError::Unavailable("writer stopped"))?;
        rx.await
            .map_err(|_| StorageError::Unavailable("writer dropped a job"))?
    }
}

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
        if self.jobs.send(job).is_err() {
            log::warn!("background write dropped: the writer stopped");
        }
    }
}

fn run(mut conn: Connection, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        run_batch(&mut conn, batch);
    }
}

fn read_head(conn: &Connection) -> rusqlite::Result<(i64, [u8; 32])> {
    conn.query_row("SELECT seq, hash FROM audit_head WHERE id = 1", [], |r| {
        let seq: i64 = r.get(0)?;
        let hash: Vec<u8> = r.get(1)?;
        let mut h = [0u8; 32];
        if hash.len() == 32 {
            h.copy_from_slice(&hash);
        }
        Ok((seq, h))
    })
}

fn run_batch(conn: &mut Connection, batch: Vec<Job>) {
    let begun = conn
        .prepare_cached("BEGIN IMMEDIATE")
        .and_then(|mut s| s.execute([]))
        .and_then(|_| read_head(conn));
    let (head_seq, head_hash) = match begun {
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
    };
    let mut delivers = Vec::with_capacity(batch.len());
    let mut broken = false;
    for job in batch {
        if broken {
            fail_without_running(job);
            continue;
        }
        let saved = (ctx.head_seq, ctx.head_hash);
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
            (ctx.head_seq, ctx.head_hash) = saved;
            exec(ctx.conn, "ROLLBACK TO job").and_then(|()| exec(ctx.conn, "RELEASE job"))
        };
        if let Err(e) = end {
            log::error!("writer could not close a savepoint: {e}");
            broken = true;
        }
        delivers.push(deliver);
    }
    let committed = if broken {
        Err(StorageError::Unavailable("transaction aborted"))
    } else {
        exec(ctx.conn, "COMMIT").map_err(StorageError::from)
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
