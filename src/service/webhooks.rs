//! Webhook endpoints as admins manage them (API and CLI alike) and their deliveries.

use std::net::IpAddr;

use crate::domain::audit::Actor;
use crate::domain::ids::{is_id, new_id};
use crate::domain::time::{self, Timestamp};
use crate::domain::webhook::{
    is_public, literal_address, parse_endpoint_url, parse_event_filter, WebhookSecret,
    MAX_DELIVERY_PAGE, MAX_OVERLAP_HOURS,
};
use crate::domain::DomainError;
use crate::outbox::WebhookSettings;
use crate::service::{note, ServiceError};
use crate::storage::webhooks::{
    found, Delivery, DeliveryPage, DeliveryStatus, Endpoint, EndpointChange, NewEndpoint,
};
use crate::storage::Storage;

/// What an admin asks for when adding an endpoint.
#[derive(Debug, Clone)]
pub struct EndpointRequest {
    /// Where to send.
    pub url: String,
    /// Which event types (or `*`).
    pub events: Vec<String>,
    /// For people.
    pub description: Option<String>,
}

/// Refuses a URL whose host is, or resolves to, an address webhooks may not reach.
async fn check_address(url: &url::Url, settings: &WebhookSettings) -> Result<(), ServiceError> {
    if settings.allow_private_addresses {
        return Ok(());
    }
    let refused = |ip: IpAddr| {
        ServiceError::from(DomainError::AddressNotAllowed(format!(
            "the host is (or resolves to) {ip}, a loopback, private or link-local address; set [webhooks] allow_private_addresses = true to allow it"
        )))
    };
    if let Some(ip) = literal_address(url) {
        return if is_public(ip) {
            Ok(())
        } else {
            Err(refused(ip))
        };
    }
    let host = url.host_str().unwrap_or_default().to_owned();
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<_> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|_| DomainError::AddressNotAllowed(format!("the host `{host}` does not resolve")))?
        .collect();
    match addrs.iter().find(|a| !is_public(a.ip())) {
        Some(a) => Err(refused(a.ip())),
        None => Ok(()),
    }
}

/// Checks and stores a new endpoint; its secret, shown this once.
pub async fn add_endpoint(
    store: &dyn Storage,
    settings: &WebhookSettings,
    req: EndpointRequest,
    actor: Actor,
    now: Timestamp,
) -> Result<(Endpoint, WebhookSecret), ServiceError> {
    let url = parse_endpoint_url(&req.url).map_err(ServiceError::InvalidUrl)?;
    let events = parse_event_filter(&req.events).map_err(|m| DomainError::field("events", m))?;
    let description = note("description", req.description)?;
    check_address(&url, settings).await?;
    let secret = WebhookSecret::generate();
    let endpoint = store
        .create_webhook_endpoint(
            NewEndpoint {
                id: new_id("whe", now),
                url: url.to_string(),
                events,
                description,
                secret: secret.clone(),
                created_at: now,
            },
            actor,
        )
        .await?;
    Ok((endpoint, secret))
}

/// An endpoint id as given, or a 404 (an id of another shape names no endpoint).
fn endpoint_id(id: &str) -> Result<String, ServiceError> {
    if is_id("whe", id) {
        Ok(id.to_owned())
    } else {
        Err(DomainError::WebhookEndpointNotFound.into())
    }
}

/// One endpoint.
pub async fn endpoint(store: &dyn Storage, id: &str) -> Result<Endpoint, ServiceError> {
    Ok(found(store.webhook_endpoint(&endpoint_id(id)?).await?)?)
}

/// Disables, enables or removes an endpoint.
pub async fn change(
    store: &dyn Storage,
    id: &str,
    change: EndpointChange,
    actor: Actor,
    now: Timestamp,
) -> Result<Endpoint, ServiceError> {
    Ok(store
        .change_webhook_endpoint(endpoint_id(id)?, change, actor, now)
        .await?)
}

/// A new secret for an endpoint; the old one signs too for `overlap_hours`
/// (default: `[webhooks] rotation_overlap_hours`).
pub async fn rotate_secret(
    store: &dyn Storage,
    settings: &WebhookSettings,
    id: &str,
    overlap_hours: Option<u32>,
    actor: Actor,
    now: Timestamp,
) -> Result<(Endpoint, WebhookSecret), ServiceError> {
    let hours = overlap_hours.unwrap_or(settings.rotation_overlap_hours);
    if hours > MAX_OVERLAP_HOURS {
        return Err(
            DomainError::field("overlap_hours", format!("0 to {MAX_OVERLAP_HOURS}")).into(),
        );
    }
    let secret = WebhookSecret::generate();
    let endpoint = change(
        store,
        id,
        EndpointChange::RotateSecret {
            secret: secret.clone(),
            overlap_until: now + chrono::Duration::hours(i64::from(hours)),
        },
        actor,
        now,
    )
    .await?;
    Ok((endpoint, secret))
}

/// A page of an endpoint's deliveries, newest first.
pub async fn deliveries(
    store: &dyn Storage,
    id: &str,
    status: Option<DeliveryStatus>,
    limit: Option<u32>,
    before: Option<i64>,
) -> Result<Vec<Delivery>, ServiceError> {
    let endpoint = endpoint(store, id).await?;
    let limit = limit.unwrap_or(MAX_DELIVERY_PAGE);
    if !(1..=MAX_DELIVERY_PAGE).contains(&limit) {
        return Err(ServiceError::InvalidParameter(format!(
            "limit: 1 to {MAX_DELIVERY_PAGE}"
        )));
    }
    Ok(store
        .webhook_deliveries(DeliveryPage {
            endpoint_id: endpoint.id,
            status,
            limit,
            before,
        })
        .await?)
}

/// Sends a failed delivery again (same `webhook-id`), from now on the schedule.
pub async fn resend(
    store: &dyn Storage,
    id: &str,
    delivery: i64,
) -> Result<Delivery, ServiceError> {
    Ok(store
        .resend_delivery(endpoint_id(id)?, delivery, time::now())
        .await?)
}
