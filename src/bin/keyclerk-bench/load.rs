//! Drives a server with N concurrent keep-alive connections and measures every request.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::http::Conn;

/// How long a load runs.
#[derive(Debug, Clone, Copy)]
pub enum Span {
    /// Warm up, then count what completes within the measured time.
    Timed { warmup: Duration, measure: Duration },
    /// As `Timed`, but no more than `most` requests in all (warm-up included); the
    /// measured time ends with the last answer if they run out first.
    Capped {
        warmup: Duration,
        measure: Duration,
        most: u64,
    },
    /// Exactly this many requests, all counted.
    Requests(u64),
}

/// Makes request number `i`.
pub type Make = dyn Fn(u64) -> Vec<u8> + Send + Sync;
/// Judges the answer to request `i` (status, body); `false` counts as a failure.
pub type Check = dyn Fn(u64, u16, &[u8]) -> bool + Send + Sync;

/// What a load measured.
#[derive(Debug, Default)]
pub struct Stats {
    /// Requests counted that the check accepted.
    pub ok: u64,
    /// Requests counted that failed (bad answer or broken connection).
    pub failed: u64,
    /// The measured time.
    pub elapsed: Duration,
    /// Latency of every counted request, in microseconds, sorted.
    pub latencies_us: Vec<u32>,
    /// The first failure, for the report.
    pub first_failure: Option<String>,
}

impl Stats {
    /// Accepted requests per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `q` quantile (0..=1) of the latencies, in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let rank = ((self.latencies_us.len() as f64 - 1.0) * q).round() as usize;
        f64::from(self.latencies_us[rank]) / 1000.0
    }
}

#[derive(Default)]
struct Tally {
    ok: u64,
    failed: u64,
    latencies_us: Vec<u32>,
    first_failure: Option<String>,
}

/// Runs the load on `connections` connections, connection `c` to
/// `127.0.0.1:ports[c % ports.len()]` (several servers share the load evenly).
pub fn run(
    ports: &[u16],
    connections: usize,
    span: Span,
    make: Arc<Make>,
    check: Arc<Check>,
) -> io::Result<Stats> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    runtime.block_on(async move {
        let next = Arc::new(AtomicU64::new(0));
        let tally = Arc::new(Mutex::new(Tally::default()));
        let start = Instant::now();
        let (from, to, most) = match span {
            Span::Timed { warmup, measure } => {
                (start + warmup, Some(start + warmup + measure), None)
            }
            Span::Capped {
                warmup,
                measure,
                most,
            } => (start + warmup, Some(start + warmup + measure), Some(most)),
            Span::Requests(n) => (start, None, Some(n)),
        };
        let last_answer = Arc::new(Mutex::new(from));
        if ports.is_empty() {
            return Err(io::Error::other("no server to load"));
        }
        let mut tasks = Vec::with_capacity(connections);
        for c in 0..connections {
            let port = ports[c % ports.len()];
            let (next, tally, last_answer, make, check) = (
                Arc::clone(&next),
                Arc::clone(&tally),
                Arc::clone(&last_answer),
                Arc::clone(&make),
                Arc::clone(&check),
            );
            tasks.push(tokio::spawn(async move {
                let mut mine = Tally::default();
                let mut last = from;
                let mut conn = Conn::connect(port).await?;
                loop {
                    if to.is_some_and(|to| Instant::now() >= to) {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if most.is_some_and(|n| i >= n) {
                        break;
                    }
                    let request = make(i);
                    let t0 = Instant::now();
                    let answer = conn.roundtrip(&request).await;
                    let t1 = Instant::now();
                    let counted = t0 >= from && to.is_none_or(|to| t1 <= to);
                    let failure = match answer {
                        Ok(r) if check(i, r.status, &r.body) => None,
                        Ok(r) => Some(format!(
                            "{} {}",
                            r.status,
                            String::from_utf8_lossy(&r.body[..r.body.len().min(300)])
                        )),
                        Err(e) => {
                            conn = Conn::connect(port).await?;
                            Some(e.to_string())
                        }
                    };
                    if !counted {
                        continue;
                    }
                    last = last.max(t1);
                    match failure {
                        None => mine.ok += 1,
                        Some(f) => {
                            mine.failed += 1;
                            mine.first_failure.get_or_insert(f);
                        }
                    }
                    let us = u32::try_from((t1 - t0).as_micros()).unwrap_or(u32::MAX);
                    mine.latencies_us.push(us);
                }
                if let Ok(mut l) = last_answer.lock() {
                    *l = (*l).max(last);
                }
                let mut all = tally
                    .lock()
                    .map_err(|_| io::Error::other("tally poisoned"))?;
                all.ok += mine.ok;
                all.failed += mine.failed;
                all.latencies_us.append(&mut mine.latencies_us);
                if all.first_failure.is_none() {
                    all.first_failure = mine.first_failure;
                }
                Ok::<(), io::Error>(())
            }));
        }
        for task in tasks {
            task.await.map_err(io::Error::other)??;
        }
        let ran_out = most.is_some_and(|n| next.load(Ordering::Relaxed) >= n);
        let elapsed = match to {
            Some(to) if ran_out => {
                let last = *last_answer
                    .lock()
                    .map_err(|_| io::Error::other("last answer poisoned"))?;
                last.min(to) - from
            }
            Some(to) => to - from,
            None => start.elapsed(),
        };
        let mut tally = std::mem::take(
            &mut *tally
                .lock()
                .map_err(|_| io::Error::other("tally poisoned"))?,
        );
        tally.latencies_us.sort_unstable();
        Ok(Stats {
            ok: tally.ok,
            failed: tally.failed,
            elapsed,
            latencies_us: tally.latencies_us,
            first_failure: tally.first_failure,
        })
    })
}
