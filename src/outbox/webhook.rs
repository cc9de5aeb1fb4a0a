//! The webhook worker: leases due messages, signs and sends each (many at once),
//! and records what each attempt came to, in batches.
//!
//! It runs on a thread of its own with its own runtime: a slow receiver holds one
//! of its tasks, never a request nor the writer. At least once: a message is marked
//! delivered only after its 2xx, so a crash between the two sends it again, with
//! the same `webhook-id`. With several instances on PostgreSQL each message is
//! leased to one of them at a time (`FOR UPDATE SKIP LOCKED`); a lease outlives
//! the attempt's timeout, so it runs out only for a worker that died.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::domain::time;
use crate::domain::webhook::{
    retry_after, signature_header, verdict, RetrySchedule, Verdict, DEFAULT_RETRY_SECONDS,
    DEFAULT_ROTATION_OVERLAP_HOURS,
};
use crate::outbox::client::{trusted_roots, WebhookClient};
use crate::storage::webhooks::{Attempt, AttemptOutcome, LeasedWebhook};
use crate::storage::Storage;

/// `[webhooks]`: delivery of keyclerk's own webhooks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSettings {
    /// Whether this instance delivers (messages are written either way; a copy of a
    /// production database used for a test may set false, so that it calls nobody).
    pub deliver: bool,
    /// Let endpoints reach loopback, private and link-local addresses.
    pub allow_private_addresses: bool,
    /// The waits between attempts, in seconds (after the last, a delivery fails).
    pub retry_schedule_seconds: Vec<f64>,
    /// Each wait is stretched or shrunk at random by up to this fraction (0 to 1).
    pub retry_jitter: f64,
    /// The longest one attempt may take, connection included, in seconds.
    pub timeout_seconds: f64,
    /// Attempts in flight at once.
    pub concurrency: usize,
    /// How often the worker looks for due messages when it has none, in milliseconds.
    pub poll_interval_ms: u64,
    /// How long the old secret keeps signing after a rotation, in hours.
    pub rotation_overlap_hours: u32,
    /// Delivered and failed messages are kept this many days (listed; a failed
    /// one can be sent again), then deleted.
    pub keep_days: f64,
    /// A PEM file of CA certificates trusted beside the Mozilla roots, for
    /// receivers whose certificates a private CA signs.
    pub ca_file: Option<std::path::PathBuf>,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            deliver: true,
            allow_private_addresses: false,
            retry_schedule_seconds: DEFAULT_RETRY_SECONDS.to_vec(),
            retry_jitter: 0.2,
            timeout_seconds: 15.0,
            concurrency: 64,
            poll_interval_ms: 200,
            rotation_overlap_hours: DEFAULT_ROTATION_OVERLAP_HOURS,
            keep_days: 30.0,
            ca_file: None,
        }
    }
}

impl WebhookSettings {
    /// The first setting that cannot be used, and why.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        let seconds = |v: f64| v.is_finite() && (0.0..=7.0 * 86_400.0).contains(&v);
        if !self.retry_schedule_seconds.iter().all(|s| seconds(*s)) {
            return Some((
                "retry_schedule_seconds",
                "each wait between 0 and 604800 seconds".into(),
            ));
        }
        if !(self.retry_jitter.is_finite() && (0.0..=1.0).contains(&self.retry_jitter)) {
            return Some(("retry_jitter", "between 0 and 1".into()));
        }
        if !(self.timeout_seconds.is_finite() && (0.05..=120.0).contains(&self.timeout_seconds)) {
            return Some(("timeout_seconds", "between 0.05 and 120".into()));
        }
        if !(1..=1024).contains(&self.concurrency) {
            return Some(("concurrency", "between 1 and 1024".into()));
        }
        if !(self.keep_days.is_finite() && (0.0..=3650.0).contains(&self.keep_days)) {
            return Some(("keep_days", "between 0 and 3650".into()));
        }
        if !(1..=60_000).contains(&self.poll_interval_ms) {
            return Some(("poll_interval_ms", "between 1 and 60000".into()));
        }
        None
    }

    /// The retry schedule.
    pub fn schedule(&self) -> RetrySchedule {
        RetrySchedule {
            delays: self
                .retry_schedule_seconds
                .iter()
                .map(|s| Duration::from_secs_f64(*s))
                .collect(),
            jitter: self.retry_jitter,
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout_seconds)
    }

    /// A lease outlives an attempt with room to record it.
    fn lease(&self) -> Duration {
        self.timeout() + Duration::from_secs(15)
    }
}

/// Results recorded together at most.
const RECORD_BATCH: usize = 512;
/// How often messages past `keep_days` are deleted (and once at start).
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Messages deleted by one statement at most (so that the writer is held briefly).
const PRUNE_BATCH: u32 = 5000;

/// The running worker; dropping it stops it (attempts in flight are abandoned, and
/// sent again when their leases run out).
pub struct WebhookWorker {
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl WebhookWorker {
    /// Starts the worker on a thread of its own; an unreadable `ca_file` is an
    /// error, so that `serve` refuses to start rather than fail every delivery.
    pub fn start(store: Arc<dyn Storage>, settings: WebhookSettings) -> std::io::Result<Self> {
        let roots = trusted_roots(settings.ca_file.as_deref()).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("webhooks.ca_file {e}"),
            )
        })?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("keyclerk-webhooks".into())
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::select! {
                        _ = stopped => {}
                        () = run(store, settings, roots) => {}
                    }
                });
            })?;
        Ok(Self { _stop: stop })
    }
}

async fn run(store: Arc<dyn Storage>, settings: WebhookSettings, roots: rustls::RootCertStore) {
    let owner = crate::domain::ids::new_id("wkr", time::now());
    let client = WebhookClient::new(settings.allow_private_addresses, settings.timeout(), roots);
    let schedule = Arc::new(settings.schedule());
    let permits = Arc::new(tokio::sync::Semaphore::new(settings.concurrency));
    let poll = Duration::from_millis(settings.poll_interval_ms);
    let lease_ms = i64::try_from(settings.lease().as_millis()).unwrap_or(i64::MAX / 4);
    let (results, mut received) = tokio::sync::mpsc::unbounded_channel::<Attempt>();
    let recorder_store = Arc::clone(&store);
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(RECORD_BATCH);
        while received.recv_many(&mut batch, RECORD_BATCH).await > 0 {
            let attempts = std::mem::take(&mut batch);
            // A result that cannot be recorded leaves its lease to run out: the
            // message is sent again then (at least once).
            if let Err(e) = recorder_store.record_attempts(attempts).await {
                log::warn!("webhooks: could not record delivery results: {e}");
            }
        }
    });
    let prune_store = Arc::clone(&store);
    let keep = chrono::Duration::seconds((settings.keep_days * 86_400.0) as i64);
    tokio::spawn(async move {
        loop {
            let before = time::now() - keep;
            loop {
                match prune_store
                    .prune_outbox(crate::domain::webhook::WEBHOOK_CHANNEL, before, PRUNE_BATCH)
                    .await
                {
                    Ok(n) if u64::from(PRUNE_BATCH) == n => continue,
                    Ok(_) => break,
                    Err(e) => {
                        log::warn!("webhooks: could not delete old messages: {e}");
                        break;
                    }
                }
            }
            tokio::time::sleep(PRUNE_EVERY).await;
        }
    });
    super::deliver(
        permits,
        poll,
        "webhooks",
        |free| store.lease_webhooks(owner.clone(), now_ms(), lease_ms, free),
        |message| {
            let client = client.clone();
            let schedule = Arc::clone(&schedule);
            let results = results.clone();
            let owner = owner.clone();
            async move {
                let attempt = attempt(&client, &schedule, message, owner).await;
                let _ = results.send(attempt);
            }
        },
    )
    .await;
}

/// The clock in milliseconds ([`time::now`] keeps whole seconds, which would
/// shorten a wait by up to one).
fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The headers of one attempt: content type, the three Standard Webhooks headers.
pub fn headers(message: &LeasedWebhook, now: time::Timestamp) -> Vec<(&'static str, String)> {
    let ts = now.timestamp();
    let secrets = message.endpoint.signing_secrets(now);
    vec![
        ("content-type", "application/json".to_owned()),
        (
            "user-agent",
            concat!("keyclerk/", env!("CARGO_PKG_VERSION")).to_owned(),
        ),
        ("webhook-id", message.message_id.clone()),
        ("webhook-timestamp", ts.to_string()),
        (
            "webhook-signature",
            signature_header(
                &secrets,
                &message.message_id,
                ts,
                message.payload.as_bytes(),
            ),
        ),
    ]
}

async fn attempt(
    client: &WebhookClient,
    schedule: &RetrySchedule,
    message: LeasedWebhook,
    owner: String,
) -> Attempt {
    let now = time::now();
    let headers = headers(&message, now);
    let answer = client
        .post(&message.endpoint.url, &headers, message.payload.clone())
        .await;
    let attempts = message.attempts.saturating_add(1);
    let (status, error, verdict, asked) = match answer {
        Ok(a) => (
            Some(a.status),
            (!(200..300).contains(&a.status)).then(|| format!("HTTP {}", a.status)),
            verdict(a.status),
            retry_after(a.status, a.retry_after.as_deref(), time::now()),
        ),
        Err(e) => (None, Some(e), Verdict::Retry, None),
    };
    let outcome = match verdict {
        Verdict::Delivered => AttemptOutcome::Delivered,
        Verdict::Gone => AttemptOutcome::Gone,
        Verdict::Retry => {
            let unit: f64 = rand::thread_rng().gen();
            match schedule.after(attempts, asked, unit) {
                Some(wait) => AttemptOutcome::Retry {
                    next_at_ms: now_ms() + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 4),
                },
                None => AttemptOutcome::Failed,
            }
        }
    };
    if let Some(e) = &error {
        log::info!(
            "webhook {} to {} (attempt {attempts}): {e}",
            message.message_id,
            message.endpoint.id
        );
    }
    Attempt {
        id: message.id,
        owner,
        status,
        error,
        outcome,
        endpoint_id: message.endpoint.id.clone(),
        at: now,
    }
}
