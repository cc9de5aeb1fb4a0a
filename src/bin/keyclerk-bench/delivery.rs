//! Instant delivery: from a verified Stripe-shaped `checkout.session.completed`
//! webhook to the mail with the key accepted by a local SMTP server. The SMTP
//! server here is a small one of the benchmark's own, which accepts every message
//! and notes when each buyer's arrived (the recipient names the order); the time is
//! counted from just before the webhook's request is written to the end of the
//! message's data. Two loads: a steady rate of orders, and a burst sent at once.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::http::{self, Conn};
use crate::server::{Server, Workspace};

/// What one load measured.
pub struct Figures {
    /// The load's name.
    pub name: String,
    /// Orders sent (each answered 200 `applied`).
    pub orders: u64,
    /// Payment to accepted mail.
    pub p50: Duration,
    /// The same, 99th percentile.
    pub p99: Duration,
    /// The slowest.
    pub max: Duration,
    /// Orders whose mail never came (within a minute of the last order).
    pub lost: u64,
    /// Mails beyond the first for one order.
    pub doubled: u64,
}

/// When each order was sent and when its mails arrived, by order number.
#[derive(Default)]
struct Clock {
    sent: HashMap<u64, Instant>,
    arrived: HashMap<u64, Vec<Instant>>,
}

type Shared = Arc<Mutex<Clock>>;

/// The clock, also after a task panicked holding it (its notes stay good).
fn lock(clock: &Shared) -> std::sync::MutexGuard<'_, Clock> {
    clock
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The order number in a recipient `RCPT TO:<buyer-17@example.com>`.
fn order_of(rcpt: &str) -> Option<u64> {
    let start = rcpt.find("buyer-")? + "buyer-".len();
    let rest = &rcpt[start..];
    let end = rest.find('@')?;
    rest[..end].parse().ok()
}

/// Speaks enough SMTP for lettre: greets, accepts every command, takes the data.
async fn smtp_session(stream: tokio::net::TcpStream, clock: Shared) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 keyclerk-bench sink\r\n").await?;
    let mut line = String::new();
    let mut orders = Vec::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let upper = line.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-keyclerk-bench\r\n250 8BITMIME\r\n"
        } else if upper.starts_with("RCPT") {
            orders.extend(order_of(&line));
            b"250 ok\r\n"
        } else if upper.starts_with("DATA") {
            write.write_all(b"354 go on\r\n").await?;
            loop {
                line.clear();
                if lines.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" || line == ".\n" {
                    break;
                }
            }
            let now = Instant::now();
            let mut c = lock(&clock);
            for o in orders.drain(..) {
                c.arrived.entry(o).or_default().push(now);
            }
            b"250 accepted\r\n"
        } else if upper.starts_with("QUIT") {
            write.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            if upper.starts_with("RSET") {
                orders.clear();
            }
            b"250 ok\r\n"
        };
        write.write_all(reply).await?;
    }
}

/// A signed Stripe `checkout.session.completed` for order `i`, the buyer
/// `buyer-i@example.com`.
fn order(i: u64) -> Vec<u8> {
    use keyclerk::domain::payments::{hex, hmac_sha256};
    let t = keyclerk::domain::time::now().timestamp().to_string();
    let body = format!(
        r#"{{"id":"evt_delivery_{i}","object":"event","type":"checkout.session.completed","created":{t},"data":{{"object":{{"id":"cs_delivery_{i}","object":"checkout.session","mode":"payment","payment_status":"paid","customer_details":{{"email":"buyer-{i}@example.com"}},"metadata":{{"keyclerk_product":"bench"}},"payment_intent":"pi_delivery_{i}"}}}}}}"#
    );
    let mac = hmac_sha256(
        crate::STRIPE_SECRET.as_bytes(),
        &[t.as_bytes(), b".", body.as_bytes()],
    );
    http::post_with(
        "/v1/payments/stripe",
        &[("Stripe-Signature", format!("t={t},v1={}", hex(&mac)))],
        &body,
    )
}

/// Sends orders `first..first + n` over `conns` connections; `rate` paces them
/// (orders per second over all connections), none sends them at once.
async fn send(
    port: u16,
    first: u64,
    n: u64,
    conns: u64,
    rate: Option<f64>,
    clock: Shared,
) -> Result<(), String> {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..conns {
        let clock = Arc::clone(&clock);
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::connect(port).await.map_err(|e| e.to_string())?;
            let mut k = c;
            while k < n {
                if let Some(rate) = rate {
                    let due = start + Duration::from_secs_f64(k as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                let i = first + k;
                let request = order(i);
                lock(&clock).sent.insert(i, Instant::now());
                let r = conn.roundtrip(&request).await.map_err(|e| e.to_string())?;
                let applied = String::from_utf8_lossy(&r.body).contains(r#""outcome":"applied""#);
                if r.status != 200 || !applied {
                    return Err(format!(
                        "order {i}: {} {}",
                        r.status,
                        String::from_utf8_lossy(&r.body)
                    ));
                }
                k += conns;
            }
            Ok::<(), String>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// Waits until every order `first..first + n` has its mail, or a minute passed,
/// then counts.
async fn settle(name: &str, first: u64, n: u64, clock: &Shared) -> Figures {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let all = {
            let c = lock(clock);
            (first..first + n).all(|i| c.arrived.contains_key(&i))
        };
        if all || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Late doubles, if any, show up by now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let c = lock(clock);
    let mut took = Vec::with_capacity(n as usize);
    let (mut lost, mut doubled) = (0, 0);
    for i in first..first + n {
        match (c.sent.get(&i), c.arrived.get(&i)) {
            (Some(sent), Some(arrived)) => {
                took.push(arrived[0].saturating_duration_since(*sent));
                doubled += arrived.len() as u64 - 1;
            }
            _ => lost += 1,
        }
    }
    took.sort();
    let at = |q: f64| {
        took.get(((took.len() as f64 * q).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or_default()
    };
    Figures {
        name: name.to_owned(),
        orders: n,
        p50: at(0.50),
        p99: at(0.99),
        max: took.last().copied().unwrap_or_default(),
        lost,
        doubled,
    }
}

/// Runs the steady load (`rate` orders a second for `seconds`) and then the burst
/// (`burst` orders at once over 64 connections).
pub fn run(
    base: &Path,
    log: &str,
    rate: f64,
    seconds: f64,
    burst: u64,
) -> Result<Vec<Figures>, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("SMTP sink: {e}"))?;
        let smtp_port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let clock: Shared = Arc::default();
        let sink_clock = Arc::clone(&clock);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(smtp_session(stream, Arc::clone(&sink_clock)));
            }
        });

        let ws = Workspace::new(base, "delivery", log).map_err(|e| format!("workspace: {e}"))?;
        let config = std::fs::read_to_string(ws.config()).map_err(|e| e.to_string())?;
        let config = config.replace(
            "[products.bench]\n",
            "[products.bench]\ndeliver_by_email = true\n",
        );
        let config = format!(
            "public_url = \"https://licenses.example.com\"\n{config}\n[mail]\nurl = \"smtp://127.0.0.1:{smtp_port}\"\nfrom = \"Bench Shop <shop@example.com>\"\n"
        );
        std::fs::write(ws.config(), config).map_err(|e| e.to_string())?;
        let server = Server::keyclerk(&ws.config())
            .map_err(|e| format!("keyclerk: {e}"))?;
        let port = server.port;

        let steady = (rate * seconds).round() as u64;
        send(port, 0, steady, 8, Some(rate), Arc::clone(&clock)).await?;
        let mut figures = vec![
            settle(
                &format!("steady, {rate:.0} orders/s for {seconds:.0} s"),
                0,
                steady,
                &clock,
            )
            .await,
        ];
        let first = steady;
        send(port, first, burst, 64, None, Arc::clone(&clock)).await?;
        figures.push(settle(&format!("burst of {burst} at once"), first, burst, &clock).await);
        server.stop().map_err(|e| format!("stopping keyclerk: {e}"))?;
        Ok(figures)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_order_is_read_from_the_recipient() {
        assert_eq!(order_of("RCPT TO:<buyer-17@example.com>\r\n"), Some(17));
        assert_eq!(order_of("RCPT TO:<ann@example.com>\r\n"), None);
    }
}
