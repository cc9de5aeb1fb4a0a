//! What storage keeps for outgoing webhooks: endpoints and the outbox of messages.

use crate::domain::time::Timestamp;
use crate::domain::webhook::WebhookSecret;

/// An endpoint about to be stored.
#[derive(Debug, Clone)]
pub struct NewEndpoint {
    /// `whe_…`
    pub id: String,
    /// Where messages are sent.
    pub url: String,
    /// The event types it takes (or `*`).
    pub events: Vec<String>,
    /// For people.
    pub description: Option<String>,
    /// Signs its messages.
    pub secret: WebhookSecret,
    /// When it was made.
    pub created_at: Timestamp,
}

/// A stored endpoint.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `whe_…`
    pub id: String,
    /// Where messages are sent.
    pub url: String,
    /// The event types it takes (or `*`).
    pub events: Vec<String>,
    /// For people.
    pub description: Option<String>,
    /// Whether messages are made and sent for it.
    pub enabled: bool,
    /// Why it is disabled: `admin`, or `gone` (the receiver answered 410).
    pub disabled_reason: Option<String>,
    /// The secret that signs.
    pub secret: WebhookSecret,
    /// The secret before the last rotation, signing too until `previous_secret_until`.
    pub previous_secret: Option<(WebhookSecret, Timestamp)>,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

impl Endpoint {
    /// The secrets that sign a message sent at `now`: the current one, and the one
    /// before it while the rotation's overlap lasts.
    pub fn signing_secrets(&self, now: Timestamp) -> Vec<WebhookSecret> {
        let mut out = vec![self.secret.clone()];
        if let Some((old, until)) = &self.previous_secret {
            if *until > now {
                out.push(old.clone());
            }
        }
        out
    }
}

/// A change an admin makes to an endpoint.
#[derive(Debug, Clone)]
pub enum EndpointChange {
    /// Stop making and sending messages for it.
    Disable,
    /// Start again (messages from now on).
    Enable,
    /// A new secret; the old one signs too until `overlap_until`.
    RotateSecret {
        /// The new secret.
        secret: WebhookSecret,
        /// The end of the overlap.
        overlap_until: Timestamp,
    },
    /// Delete it and its messages.
    Remove,
}

impl EndpointChange {
    /// The name in the audit log.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Disable => "disabled",
            Self::Enable => "enabled",
            Self::RotateSecret { .. } => "secret_rotated",
            Self::Remove => "removed",
        }
    }
}

/// A webhook message leased for one delivery attempt, with what sending it needs.
#[derive(Debug, Clone)]
pub struct LeasedWebhook {
    /// The outbox row.
    pub id: i64,
    /// `webhook-id`: the same on every attempt.
    pub message_id: String,
    /// The event type.
    pub kind: String,
    /// The body.
    pub payload: String,
    /// Attempts made before this one.
    pub attempts: u32,
    /// The endpoint.
    pub endpoint: Endpoint,
}

/// A customer's mail leased for one delivery attempt.
#[derive(Debug, Clone)]
pub struct LeasedMail {
    /// The outbox row.
    pub id: i64,
    /// Its cause (`license_key:lic_…`), unique with the recipient.
    pub message_id: String,
    /// The kind of message ([`crate::domain::mail::MailKind`]'s name).
    pub kind: String,
    /// The recipient.
    pub to: String,
    /// The language and variables ([`crate::domain::mail::MailContent`] as JSON).
    pub payload: String,
    /// Attempts made before this one.
    pub attempts: u32,
}

/// What an attempt came to.
#[derive(Debug, Clone)]
pub enum AttemptOutcome {
    /// A 2xx.
    Delivered,
    /// Try again at `next_at_ms`.
    Retry {
        /// Unix milliseconds.
        next_at_ms: i64,
    },
    /// The last attempt failed: the delivery is `failed` (listed, can be sent again).
    Failed,
    /// 410: the delivery failed and the endpoint is disabled.
    Gone,
}

/// The result of one attempt, to record.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The outbox row.
    pub id: i64,
    /// The worker that held the lease (a result from a lease that expired and was
    /// taken by another is dropped).
    pub owner: String,
    /// The HTTP status, if the receiver answered.
    pub status: Option<u16>,
    /// What went wrong, if anything (for the operator).
    pub error: Option<String>,
    /// What it came to.
    pub outcome: AttemptOutcome,
    /// The endpoint (for [`AttemptOutcome::Gone`]).
    pub endpoint_id: String,
    /// When it was made.
    pub at: Timestamp,
}

/// Where a delivery stands.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    /// A 2xx was received.
    Delivered,
    /// Every attempt failed (or the endpoint answered 410).
    Failed,
}

impl DeliveryStatus {
    /// The name stored and answered.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// One message to one endpoint, as listed.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The outbox row.
    pub id: i64,
    /// `webhook-id`.
    pub message_id: String,
    /// The endpoint.
    pub endpoint_id: String,
    /// The event type.
    pub event_type: String,
    /// The body sent.
    pub payload: String,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: u32,
    /// The last HTTP status received.
    pub last_status: Option<u16>,
    /// The last error.
    pub last_error: Option<String>,
    /// When the message was made.
    pub created_at: Timestamp,
    /// When it was last tried.
    pub last_attempt_at: Option<Timestamp>,
    /// When it was delivered or failed for good.
    pub done_at: Option<Timestamp>,
}

/// Which deliveries of an endpoint to list.
#[derive(Debug, Clone)]
pub struct DeliveryPage {
    /// The endpoint.
    pub endpoint_id: String,
    /// Only this status.
    pub status: Option<DeliveryStatus>,
    /// At most this many, newest first.
    pub limit: u32,
    /// Only rows with an id below this one.
    pub before: Option<i64>,
}

/// An outbox row a write adds for one subscribed endpoint: built by the engines'
/// append from the audit event.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// `webhook-id`, shared by the endpoints of one event type.
    pub message_id: String,
    /// The event type.
    pub kind: &'static str,
    /// The body.
    pub payload: String,
}

/// The webhook messages an audit event makes (none when it is of no event type).
pub fn messages_of(record: &crate::domain::audit::EventRecord, at: Timestamp) -> Vec<NewMessage> {
    use crate::domain::webhook::{event_types_of, may_be_sent, payload};
    if !may_be_sent(&record.kind) {
        return Vec::new();
    }
    let data: serde_json::Value = serde_json::from_str(&record.data).unwrap_or_default();
    event_types_of(&record.kind, &data)
        .map(|kind| NewMessage {
            message_id: crate::domain::ids::new_id("msg", at),
            kind,
            payload: payload(kind, at, record.license_id.as_deref(), &data),
        })
        .collect()
}

/// The webhook messages a payment event's decision makes (`payment.applied`,
/// `payment.unmapped`; none for a duplicate, a failure or an event with nothing
/// to do).
pub fn payment_messages(
    event: &crate::domain::payments::PaymentEvent,
    at: Timestamp,
) -> Vec<NewMessage> {
    use crate::domain::webhook::{event_types_of, payload, payment_data, PAYMENT_DECIDED};
    let data = payment_data(event);
    let license_id = event.licenses.first().map(String::as_str);
    event_types_of(PAYMENT_DECIDED, &data)
        .map(|kind| NewMessage {
            message_id: crate::domain::ids::new_id("msg", at),
            kind,
            payload: payload(kind, at, license_id, &data),
        })
        .collect()
}

/// What the outbox needs from an engine: endpoints, and leasing and recording
/// deliveries. Every engine implements it beside [`crate::storage::Storage`].
#[async_trait::async_trait]
pub trait WebhookStore: Send + Sync {
    /// Stores a new endpoint (with an audit event).
    async fn create_webhook_endpoint(
        &self,
        new: NewEndpoint,
        actor: crate::domain::audit::Actor,
    ) -> Result<Endpoint, StorageError>;

    /// Every endpoint, oldest first.
    async fn webhook_endpoints(&self) -> Result<Vec<Endpoint>, StorageError>;

    /// One endpoint.
    async fn webhook_endpoint(&self, id: &str) -> Result<Option<Endpoint>, StorageError>;

    /// Disables, enables, rotates the secret of, or removes an endpoint (with an
    /// audit event); the endpoint after the change (before it, for a removal).
    async fn change_webhook_endpoint(
        &self,
        id: String,
        change: EndpointChange,
        actor: crate::domain::audit::Actor,
        now: Timestamp,
    ) -> Result<Endpoint, StorageError>;

    /// Leases up to `limit` webhook messages due at `now_ms` to enabled endpoints,
    /// for `lease_ms`, to `owner`: no other worker takes them while the lease lasts.
    async fn lease_webhooks(
        &self,
        owner: String,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<LeasedWebhook>, StorageError>;

    /// Leases up to `limit` mail messages due at `now_ms`, for `lease_ms`, to
    /// `owner`, as [`WebhookStore::lease_webhooks`] does webhooks.
    async fn lease_mail(
        &self,
        owner: String,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<LeasedMail>, StorageError>;

    /// A page of mail messages (`endpoint_id` is the recipient), newest first.
    async fn mail_deliveries(
        &self,
        status: Option<DeliveryStatus>,
        limit: u32,
        before: Option<i64>,
    ) -> Result<Vec<Delivery>, StorageError>;

    /// Records what attempts came to (each only while its lease is still its owner's;
    /// mail's attempts too, with an empty `endpoint_id`).
    async fn record_attempts(&self, attempts: Vec<Attempt>) -> Result<(), StorageError>;

    /// Frees every lease, of both channels: once at start-up, before any worker
    /// leases, where one process owns the database (SQLite), so that messages
    /// leased by a process that was killed go out at once. Does
    /// nothing where instances share the database (their leases run out instead).
    async fn release_own_leases(&self) -> Result<(), StorageError>;

    /// A page of an endpoint's deliveries, newest first.
    async fn webhook_deliveries(&self, page: DeliveryPage) -> Result<Vec<Delivery>, StorageError>;

    /// Makes a failed delivery pending again, due at `now` (with the same `webhook-id`).
    async fn resend_delivery(
        &self,
        endpoint_id: String,
        id: i64,
        now: Timestamp,
    ) -> Result<Delivery, StorageError>;

    /// Deletes up to `limit` messages of `channel` delivered or failed before
    /// `done_before`; how many it deleted.
    async fn prune_outbox(
        &self,
        channel: &'static str,
        done_before: Timestamp,
        limit: u32,
    ) -> Result<u64, StorageError>;

    /// Messages of `channel` waiting to be delivered (pending).
    async fn outbox_pending(&self, channel: &'static str) -> Result<i64, StorageError>;
}

use crate::storage::StorageError;

/// The one endpoint of an id, or the client's 404.
pub fn found(endpoint: Option<Endpoint>) -> Result<Endpoint, StorageError> {
    endpoint.ok_or_else(|| crate::domain::DomainError::WebhookEndpointNotFound.into())
}
