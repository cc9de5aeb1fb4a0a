//! Webhook delivery under a steady event rate: mints paced at `rate` per second,
//! each making one `license.created` message to one endpoint on a local receiver
//! (the hello-world server, which answers 200), while the outbox's pending count is
//! sampled from `/metrics`. Delivery keeps up when that count stays flat (it does
//! not grow with the run's length) and drains soon after the last mint.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::http::{self, Conn};
use crate::server::{Server, Workspace};

/// What a run measured.
pub struct Figures {
    /// Mints asked for per second.
    pub target_rate: f64,
    /// Mints answered 201 per second, over the run.
    pub minted_rate: f64,
    /// Mints answered 201.
    pub minted: u64,
    /// The pending count sampled every 100 ms: its largest value, in the first
    /// half and in the second half of the run (growth shows as a larger second).
    pub max_pending: (u64, u64),
    /// From the last mint to an empty outbox.
    pub drain: Duration,
}

fn pending(metrics: &str) -> Option<u64> {
    metrics
        .lines()
        .find(|l| l.starts_with("keyclerk_outbox_pending{"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v as u64)
}

async fn metrics(conn: &mut Conn, token: &str) -> Result<u64, String> {
    let request = format!(
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    let r = conn
        .roundtrip(request.as_bytes())
        .await
        .map_err(|e| format!("GET /metrics: {e}"))?;
    pending(&String::from_utf8_lossy(&r.body)).ok_or_else(|| "no keyclerk_outbox_pending".into())
}

/// Runs the load for `seconds` at `rate` mints per second.
pub fn run(base: &Path, log: &str, rate: f64, seconds: f64) -> Result<Figures, String> {
    let receiver = Server::hello_world().map_err(|e| format!("receiver: {e}"))?;
    let ws = Workspace::new(base, "webhooks", log).map_err(|e| format!("workspace: {e}"))?;
    let mut config = std::fs::read_to_string(ws.config()).map_err(|e| e.to_string())?;
    // The receiver listens on loopback.
    config.push_str("\n[webhooks]\nallow_private_addresses = true\n");
    std::fs::write(ws.config(), config).map_err(|e| e.to_string())?;
    let server = Server::keyclerk(&ws.config()).map_err(|e| format!("keyclerk: {e}"))?;
    let token = ws.admin_token().map_err(|e| format!("admin token: {e}"))?;
    let port = server.port;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let figures = runtime.block_on(async {
        let mut admin = Conn::connect(port).await.map_err(|e| e.to_string())?;
        let body = format!(
            r#"{{"url":"http://127.0.0.1:{}/hello","events":["license.created"]}}"#,
            receiver.port
        );
        let r = admin
            .roundtrip(&http::post("/v1/webhook-endpoints", Some(&token), &body))
            .await
            .map_err(|e| e.to_string())?;
        if r.status != 201 {
            return Err(format!("adding the endpoint: {}", r.status));
        }
        let total = (rate * seconds) as u64;
        let minted = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let conns = 16u64;
        let mut tasks = Vec::new();
        for c in 0..conns {
            let token = token.clone();
            let minted = Arc::clone(&minted);
            tasks.push(tokio::spawn(async move {
                let mut conn = Conn::connect(port).await.map_err(|e| e.to_string())?;
                let mut i = c;
                while i < total {
                    let due = start + Duration::from_secs_f64(i as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                    let body = format!(r#"{{"product":"bench","order_id":"hook-{i}"}}"#);
                    let r = conn
                        .roundtrip(&http::post("/v1/licenses", Some(&token), &body))
                        .await
                        .map_err(|e| e.to_string())?;
                    if r.status == 201 {
                        minted.fetch_add(1, Ordering::Relaxed);
                    }
                    i += conns;
                }
                Ok::<(), String>(())
            }));
        }
        let half = start + Duration::from_secs_f64(seconds / 2.0);
        let end = start + Duration::from_secs_f64(seconds);
        let mut max_pending = (0u64, 0u64);
        while Instant::now() < end {
            let p = metrics(&mut admin, &token).await?;
            if Instant::now() < half {
                max_pending.0 = max_pending.0.max(p);
            } else {
                max_pending.1 = max_pending.1.max(p);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for t in tasks {
            t.await.map_err(|e| e.to_string())??;
        }
        let minted_at = start.elapsed();
        let last = Instant::now();
        loop {
            if metrics(&mut admin, &token).await? == 0 {
                break;
            }
            if last.elapsed() > Duration::from_secs(120) {
                return Err("the outbox did not drain within two minutes".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let drain = last.elapsed();
        let minted = minted.load(Ordering::Relaxed);
        Ok(Figures {
            target_rate: rate,
            minted_rate: minted as f64 / minted_at.as_secs_f64(),
            minted,
            max_pending,
            drain,
        })
    })?;
    server
        .stop()
        .map_err(|e| format!("stopping keyclerk: {e}"))?;
    receiver
        .stop()
        .map_err(|e| format!("stopping the receiver: {e}"))?;
    Ok(figures)
}
