//! The mail worker: leases due mail from the outbox, writes each message out from
//! the catalogs and sends it over SMTP, and records what each attempt came to.
//!
//! As the webhook worker: a thread of its own, at least once (a message is marked
//! delivered after the SMTP server accepted it), one lease at a time per message
//! (`FOR UPDATE SKIP LOCKED` with several instances on PostgreSQL). A message the
//! server refuses for good (a 5xx) fails at once; a server that cannot be reached
//! or answers 4xx is tried again on the retry schedule.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::domain::mail::{render, MailContent, MailKind, MAIL_CHANNEL};
use crate::domain::time;
use crate::domain::webhook::RetrySchedule;
use crate::storage::webhooks::{Attempt, AttemptOutcome, LeasedMail};
use crate::storage::Storage;

/// The environment variable that holds the SMTP password (never the file).
pub const PASSWORD_VARIABLE: &str = "KEYCLERK_MAIL__PASSWORD";

/// The waits between attempts by default, in seconds: a minute, five, fifteen,
/// an hour, four, twelve, a day, then it fails.
pub const DEFAULT_MAIL_RETRY_SECONDS: &[f64] =
    &[60.0, 300.0, 900.0, 3600.0, 14_400.0, 43_200.0, 86_400.0];

/// A password that never shows in a log or a `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Password(pub String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"…\"")
    }
}

/// `[mail]`: mail to customers. Without the section no mail is queued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailSettings {
    /// The SMTP server: `smtp://host:port` (plain, or STARTTLS with
    /// `?tls=required`), `smtps://host:port` (TLS from the start); a user name
    /// goes before the host (`smtps://shop@mail.example.com`).
    pub url: String,
    /// The sender, `shop@example.com` or `Example Shop <shop@example.com>`.
    pub from: String,
    /// From `KEYCLERK_MAIL__PASSWORD` only (refused in the file).
    #[serde(default, skip_serializing)]
    pub password: Option<Password>,
    /// Whether this instance delivers (messages are queued either way).
    #[serde(default = "yes")]
    pub deliver: bool,
    /// The waits between attempts, in seconds (after the last, a message fails).
    #[serde(default = "default_retry")]
    pub retry_schedule_seconds: Vec<f64>,
    /// Each wait is stretched or shrunk at random by up to this fraction (0 to 1).
    #[serde(default = "default_jitter")]
    pub retry_jitter: f64,
    /// The longest one attempt may take, connection included, in seconds.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: f64,
    /// Messages sent at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// How often the worker looks for due messages when it has none, in milliseconds.
    #[serde(default = "default_poll")]
    pub poll_interval_ms: u64,
    /// Sent and failed messages are kept this many days (listed), then deleted.
    #[serde(default = "default_keep")]
    pub keep_days: f64,
    /// How often reminders that fell due are looked for, in seconds.
    #[serde(default = "default_reminder_interval")]
    pub reminder_interval_seconds: f64,
}

fn yes() -> bool {
    true
}
fn default_retry() -> Vec<f64> {
    DEFAULT_MAIL_RETRY_SECONDS.to_vec()
}
fn default_jitter() -> f64 {
    0.2
}
fn default_timeout() -> f64 {
    30.0
}
/// 32: lettre writes a message's data and its closing `.` in two writes, and the
/// second waits for the server's delayed acknowledgement of the first (Nagle's
/// algorithm; about 40 ms on Linux, measured by keyclerk-bench's SMTP server), so one
/// connection sends at most about 24 messages a second.
fn default_concurrency() -> usize {
    32
}
fn default_poll() -> u64 {
    200
}
fn default_keep() -> f64 {
    30.0
}
fn default_reminder_interval() -> f64 {
    60.0
}

impl MailSettings {
    /// The first setting that cannot be used, and why.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        if let Err(e) = self.transport() {
            return Some(("url", e));
        }
        if self.from.parse::<Mailbox>().is_err() {
            return Some((
                "from",
                "an address such as shop@example.com or \"Example Shop <shop@example.com>\"".into(),
            ));
        }
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
        if !(self.timeout_seconds.is_finite() && (0.05..=300.0).contains(&self.timeout_seconds)) {
            return Some(("timeout_seconds", "between 0.05 and 300".into()));
        }
        if !(1..=256).contains(&self.concurrency) {
            return Some(("concurrency", "between 1 and 256".into()));
        }
        if !(1..=60_000).contains(&self.poll_interval_ms) {
            return Some(("poll_interval_ms", "between 1 and 60000".into()));
        }
        if !(self.keep_days.is_finite() && (0.0..=3650.0).contains(&self.keep_days)) {
            return Some(("keep_days", "between 0 and 3650".into()));
        }
        let interval = self.reminder_interval_seconds;
        if !(interval.is_finite() && (0.05..=86_400.0).contains(&interval)) {
            return Some(("reminder_interval_seconds", "between 0.05 and 86400".into()));
        }
        None
    }

    /// The SMTP client of `url`, with the password; why not, for the operator.
    fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
        let parsed = url::Url::parse(&self.url).map_err(|e| {
            format!(
                "`{}` is not a URL ({e}): smtp://host:port or smtps://host:port",
                self.url
            )
        })?;
        if !matches!(parsed.scheme(), "smtp" | "smtps") {
            return Err("smtp://host:port or smtps://host:port".into());
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err("names no host: smtp://host:port or smtps://host:port".into());
        }
        if parsed.password().is_some() {
            return Err(format!(
                "holds a password: set it in the environment ({PASSWORD_VARIABLE}), never in the file"
            ));
        }
        let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(&self.url)
            .map_err(|e| format!("`{}`: {e}", self.url))?
            .timeout(Some(Duration::from_secs_f64(self.timeout_seconds)));
        let builder = match (&self.password, parsed.username()) {
            (Some(p), user) => builder.credentials(Credentials::new(user.to_owned(), p.0.clone())),
            (None, _) => builder,
        };
        Ok(builder.build())
    }

    fn schedule(&self) -> RetrySchedule {
        RetrySchedule {
            delays: self
                .retry_schedule_seconds
                .iter()
                .map(|s| Duration::from_secs_f64(*s))
                .collect(),
            jitter: self.retry_jitter,
        }
    }

    /// A lease outlives an attempt with room to record it.
    fn lease(&self) -> Duration {
        Duration::from_secs_f64(self.timeout_seconds) + Duration::from_secs(15)
    }
}

/// Results recorded together at most.
const RECORD_BATCH: usize = 256;
/// How often messages past `keep_days` are deleted (and once at start).
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Messages deleted by one statement at most.
const PRUNE_BATCH: u32 = 5000;

/// The running worker; dropping it stops it (messages in flight are sent again
/// when their leases run out).
pub struct MailWorker {
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl MailWorker {
    /// Starts the worker on a thread of its own.
    pub fn start(store: Arc<dyn Storage>, settings: MailSettings) -> std::io::Result<Self> {
        let transport = settings.transport().map_err(|e| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("mail.url: {e}"))
        })?;
        let from: Mailbox = settings.from.parse().map_err(|e| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("mail.from: {e}"))
        })?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("keyclerk-mail".into())
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::select! {
                        _ = stopped => {}
                        () = run(store, settings, transport, from) => {}
                    }
                });
            })?;
        Ok(Self { _stop: stop })
    }
}

async fn run(
    store: Arc<dyn Storage>,
    settings: MailSettings,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
) {
    let owner = crate::domain::ids::new_id("mlw", time::now());
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
            // A result not recorded leaves its lease to run out: sent again then.
            if let Err(e) = recorder_store.record_attempts(attempts).await {
                log::warn!("mail: could not record delivery results: {e}");
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
                    .prune_outbox(MAIL_CHANNEL, before, PRUNE_BATCH)
                    .await
                {
                    Ok(n) if u64::from(PRUNE_BATCH) == n => continue,
                    Ok(_) => break,
                    Err(e) => {
                        log::warn!("mail: could not delete old messages: {e}");
                        break;
                    }
                }
            }
            tokio::time::sleep(PRUNE_EVERY).await;
        }
    });
    let from = Arc::new(from);
    super::deliver(
        permits,
        poll,
        "mail",
        |free| store.lease_mail(owner.clone(), now_ms(), lease_ms, free),
        |message| {
            let transport = transport.clone();
            let schedule = Arc::clone(&schedule);
            let results = results.clone();
            let owner = owner.clone();
            let from = Arc::clone(&from);
            async move {
                let attempt = attempt(&transport, &from, &schedule, message, owner).await;
                let _ = results.send(attempt);
            }
        },
    )
    .await;
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The message of an outbox row, multipart/alternative (text, then HTML).
pub fn message(from: &Mailbox, leased: &LeasedMail) -> Result<Message, String> {
    let kind: MailKind = serde_json::from_value(serde_json::Value::String(leased.kind.clone()))
        .map_err(|_| format!("unknown kind of mail `{}`", leased.kind))?;
    let content: MailContent =
        serde_json::from_str(&leased.payload).map_err(|e| format!("payload: {e}"))?;
    let rendered = render(kind, &content).map_err(|e| e.to_string())?;
    let to: Mailbox = leased
        .to
        .parse()
        .map_err(|e| format!("recipient `{}`: {e}", leased.to))?;
    let domain = from.email.domain().to_owned();
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(rendered.subject)
        .message_id(Some(format!(
            "<{}@{domain}>",
            leased.message_id.replace(':', ".")
        )))
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(rendered.text),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(rendered.html),
                ),
        )
        .map_err(|e| e.to_string())
}

async fn attempt(
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    from: &Mailbox,
    schedule: &RetrySchedule,
    leased: LeasedMail,
    owner: String,
) -> Attempt {
    let now = time::now();
    let attempts = leased.attempts.saturating_add(1);
    let (outcome, status, error) = match message(from, &leased) {
        // A message that cannot be written out never will be: it fails at once.
        Err(e) => (AttemptOutcome::Failed, None, Some(e)),
        Ok(m) => match transport.send(m).await {
            Ok(response) => (
                AttemptOutcome::Delivered,
                Some(u16::from(response.code())),
                None,
            ),
            Err(e) => {
                let status = e.status().map(u16::from);
                let outcome = if e.is_permanent() {
                    AttemptOutcome::Failed
                } else {
                    let unit: f64 = rand::thread_rng().gen();
                    match schedule.after(attempts, None, unit) {
                        Some(wait) => AttemptOutcome::Retry {
                            next_at_ms: now_ms()
                                + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 4),
                        },
                        None => AttemptOutcome::Failed,
                    }
                };
                (outcome, status, Some(e.to_string()))
            }
        },
    };
    if let Some(e) = &error {
        log::info!("mail {} (attempt {attempts}): {e}", leased.message_id);
    }
    Attempt {
        id: leased.id,
        owner,
        status,
        error,
        outcome,
        endpoint_id: String::new(),
        at: now,
    }
}
