//! A small pool of read-only connections.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

use rusqlite::{Connection, OpenFlags};

/// Page cache of each read connection, in KiB.
const READER_CACHE_KIB: i64 = 2 * 1024;

/// Read-only connections handed out one at a time.
pub struct ReadPool {
    idle: Mutex<Vec<Connection>>,
    available: Condvar,
    size: usize,
    /// Callers blocked in [`ReadPool::get`].
    waiting: AtomicUsize,
}

/// A connection borrowed from the pool; returned when dropped.
pub struct PooledConn<'p> {
    pool: &'p ReadPool,
    conn: Option<Connection>,
}

impl std::ops::Deref for PooledConn<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        // Invariant: `conn` is Some from creation until drop.
        self.conn.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for PooledConn<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if let Ok(mut idle) = self.pool.idle.lock() {
                idle.push(conn);
                self.pool.available.notify_one();
            }
        }
    }
}

impl ReadPool {
    /// Opens `size` read-only connections to `path`.
    pub fn open(path: &Path, size: usize) -> rusqlite::Result<Self> {
        let mut idle = Vec::with_capacity(size);
        for _ in 0..size {
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            conn.busy_timeout(std::time::Duration::from_secs(5))?;
            conn.set_prepared_statement_cache_capacity(super::STATEMENT_CACHE);
            conn.pragma_update(None, "cache_size", -READER_CACHE_KIB)?;
            idle.push(conn);
        }
        Ok(Self {
            idle: Mutex::new(idle),
            available: Condvar::new(),
            size,
            waiting: AtomicUsize::new(0),
        })
    }

    /// An idle connection, if one is free now.
    pub fn try_get(&self) -> Option<PooledConn<'_>> {
        let conn = self.idle.lock().ok()?.pop()?;
        Some(PooledConn {
            pool: self,
            conn: Some(conn),
        })
    }

    /// Waits for an idle connection.
    pub fn get(&self) -> Option<PooledConn<'_>> {
        let mut idle = self.idle.lock().ok()?;
        loop {
            if let Some(conn) = idle.pop() {
                return Some(PooledConn {
                    pool: self,
                    conn: Some(conn),
                });
            }
            self.waiting.fetch_add(1, Ordering::Relaxed);
            let woken = self.available.wait(idle);
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            idle = woken.ok()?;
        }
    }

    /// Its load now: connections, idle ones, callers waiting.
    pub fn stats(&self) -> crate::storage::PoolStats {
        let idle = self.idle.lock().map_or(0, |i| i.len());
        crate::storage::PoolStats {
            name: "sqlite_read",
            max: self.size,
            open: self.size,
            idle,
            waiting: self.waiting.load(Ordering::Relaxed),
        }
    }
}
