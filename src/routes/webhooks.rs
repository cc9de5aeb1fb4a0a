//! `/v1/webhook-endpoints` (admin): keyclerk's own webhooks to the vendor's systems.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::time::{self, Timestamp};
use crate::error::ApiError;
use crate::routes::auth::Caller;
use crate::routes::extract::{JsonBody, OptionalJsonBody};
use crate::service::webhooks::{self, EndpointRequest};
use crate::service::AppState;
use crate::storage::webhooks::{Delivery, DeliveryStatus, Endpoint, EndpointChange};

/// Body of `POST /v1/webhook-endpoints`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpoint {
    /// Where keyclerk POSTs the messages.
    #[schema(value_type = crate::domain::schema::WebhookUrl)]
    url: String,
    /// The event types it takes, or `["*"]` for all.
    #[schema(value_type = crate::domain::schema::EventTypes)]
    events: Vec<String>,
    /// For people.
    #[serde(default)]
    #[schema(value_type = Option<crate::domain::schema::Note>)]
    description: Option<String>,
}

/// Body of `POST /v1/webhook-endpoints/{id}/rotate-secret`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    /// How long the old secret keeps signing beside the new one (default:
    /// `[webhooks] rotation_overlap_hours`).
    #[serde(default, deserialize_with = "crate::domain::whole::option")]
    #[schema(value_type = Option<crate::domain::schema::OverlapHours>)]
    overlap_hours: Option<u32>,
}

/// An endpoint (never with its secret).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = WebhookEndpoint)]
pub struct EndpointView {
    /// `whe_…`
    id: String,
    /// Where messages go.
    url: String,
    /// The event types it takes (`*`: all).
    events: Vec<String>,
    /// For people.
    description: Option<String>,
    /// `enabled` or `disabled`.
    status: &'static str,
    /// Why it is disabled: `admin`, or `gone` (its receiver answered 410).
    disabled_reason: Option<String>,
    /// Until when the secret before the last rotation signs too.
    #[serde(with = "time::serde_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    previous_secret_expires_at: Option<Timestamp>,
    /// When it was added.
    #[serde(with = "time::serde_req")]
    #[schema(value_type = String, format = DateTime)]
    created_at: Timestamp,
    /// When it last changed.
    #[serde(with = "time::serde_req")]
    #[schema(value_type = String, format = DateTime)]
    updated_at: Timestamp,
}

impl From<&Endpoint> for EndpointView {
    fn from(e: &Endpoint) -> Self {
        Self {
            id: e.id.clone(),
            url: e.url.clone(),
            events: e.events.clone(),
            description: e.description.clone(),
            status: if e.enabled { "enabled" } else { "disabled" },
            disabled_reason: e.disabled_reason.clone(),
            previous_secret_expires_at: e.previous_secret.as_ref().map(|(_, until)| *until),
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

/// An endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointBody {
    /// The endpoint.
    endpoint: EndpointView,
}

/// An endpoint and its new secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointSecret {
    /// The endpoint.
    endpoint: EndpointView,
    /// `whsec_…`: the signing secret, shown this once.
    secret: String,
}

/// Every endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointList {
    /// Oldest first.
    endpoints: Vec<EndpointView>,
}

/// One message to one endpoint.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = WebhookDelivery)]
pub struct DeliveryView {
    /// The delivery.
    id: i64,
    /// `webhook-id`: the same on every attempt.
    message_id: String,
    /// The endpoint.
    endpoint_id: String,
    /// The event type.
    event_type: String,
    /// Where it stands.
    status: DeliveryStatus,
    /// Attempts made.
    attempts: u32,
    /// The last HTTP status received.
    last_status: Option<u16>,
    /// The last error.
    last_error: Option<String>,
    /// The body sent (`{type, timestamp, data}`).
    #[schema(value_type = Object)]
    payload: serde_json::Value,
    /// When the message was made.
    #[serde(with = "time::serde_req")]
    #[schema(value_type = String, format = DateTime)]
    created_at: Timestamp,
    /// When it was last tried.
    #[serde(with = "time::serde_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    last_attempt_at: Option<Timestamp>,
    /// When it was delivered or failed for good.
    #[serde(with = "time::serde_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    done_at: Option<Timestamp>,
}

impl From<&Delivery> for DeliveryView {
    fn from(d: &Delivery) -> Self {
        Self {
            id: d.id,
            message_id: d.message_id.clone(),
            endpoint_id: d.endpoint_id.clone(),
            event_type: d.event_type.clone(),
            status: d.status,
            attempts: d.attempts,
            last_status: d.last_status,
            last_error: d.last_error.clone(),
            payload: serde_json::from_str(&d.payload).unwrap_or_default(),
            created_at: d.created_at,
            last_attempt_at: d.last_attempt_at,
            done_at: d.done_at,
        }
    }
}

/// A page of deliveries.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    /// Newest first.
    deliveries: Vec<DeliveryView>,
    /// The `before` of the next page, when there may be one.
    next: Option<i64>,
}

/// A delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryBody {
    /// The delivery.
    delivery: DeliveryView,
}

/// Adds an endpoint; its secret is in this response and nowhere else.
#[utoipa::path(
    post,
    path = "/v1/webhook-endpoints",
    operation_id = "create_webhook_endpoint",
    tag = "admin",
    request_body = crate::routes::webhooks::CreateEndpoint,
    responses(
        (status = 201, description = "The endpoint and its signing secret, shown this once", body = crate::routes::webhooks::EndpointSecret),
        (status = 422, description = "`invalid_url`: a URL the URL parser refuses; `address_not_allowed`: the host is, or resolves to, a loopback, private or link-local address (or does not resolve); `invalid_field`")
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateEndpoint>,
) -> Result<HttpResponse, ApiError> {
    let (endpoint, secret) = webhooks::add_endpoint(
        &*state.store,
        &state.webhooks,
        EndpointRequest {
            url: body.url,
            events: body.events,
            description: body.description,
        },
        caller.actor(),
        time::now(),
    )
    .await?;
    Ok(HttpResponse::Created().json(EndpointSecret {
        endpoint: (&endpoint).into(),
        secret: secret.expose().to_owned(),
    }))
}

/// Every endpoint, without secrets.
#[utoipa::path(
    get,
    path = "/v1/webhook-endpoints",
    operation_id = "list_webhook_endpoints",
    tag = "admin",
    responses((status = 200, description = "Every endpoint, oldest first", body = crate::routes::webhooks::EndpointList))
)]
pub async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let endpoints = state.store.webhook_endpoints().await?;
    Ok(HttpResponse::Ok().json(EndpointList {
        endpoints: endpoints.iter().map(EndpointView::from).collect(),
    }))
}

/// One endpoint.
#[utoipa::path(
    get,
    path = "/v1/webhook-endpoints/{id}",
    operation_id = "get_webhook_endpoint",
    tag = "admin",
    params(("id" = crate::domain::schema::WebhookEndpointId, Path, description = "Endpoint id (whe_…)")),
    responses(
        (status = 200, description = "The endpoint", body = crate::routes::webhooks::EndpointBody),
        (status = 404, description = "`webhook_endpoint_not_found`")
    )
)]
pub async fn get(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let endpoint = webhooks::endpoint(&*state.store, &path).await?;
    Ok(HttpResponse::Ok().json(EndpointBody {
        endpoint: (&endpoint).into(),
    }))
}

/// Removes an endpoint and its messages.
#[utoipa::path(
    delete,
    path = "/v1/webhook-endpoints/{id}",
    operation_id = "remove_webhook_endpoint",
    tag = "admin",
    params(("id" = crate::domain::schema::WebhookEndpointId, Path, description = "Endpoint id (whe_…)")),
    responses(
        (status = 200, description = "The endpoint as it was", body = crate::routes::webhooks::EndpointBody),
        (status = 404, description = "`webhook_endpoint_not_found`")
    )
)]
pub async fn remove(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    change(state, caller, &path, EndpointChange::Remove).await
}

async fn change(
    state: web::Data<AppState>,
    caller: Caller,
    id: &str,
    change: EndpointChange,
) -> Result<HttpResponse, ApiError> {
    let endpoint = webhooks::change(&*state.store, id, change, caller.actor(), time::now()).await?;
    Ok(HttpResponse::Ok().json(EndpointBody {
        endpoint: (&endpoint).into(),
    }))
}

/// Stops making and sending messages for an endpoint.
#[utoipa::path(
    post,
    path = "/v1/webhook-endpoints/{id}/disable",
    operation_id = "disable_webhook_endpoint",
    tag = "admin",
    params(("id" = crate::domain::schema::WebhookEndpointId, Path, description = "Endpoint id (whe_…)")),
    responses(
        (status = 200, description = "The endpoint, disabled", body = crate::routes::webhooks::EndpointBody),
        (status = 404, description = "`webhook_endpoint_not_found`")
    )
)]
pub async fn disable(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    change(state, caller, &path, EndpointChange::Disable).await
}

/// Makes messages for an endpoint again (its pending ones go out too).
#[utoipa::path(
    post,
    path = "/v1/webhook-endpoints/{id}/enable",
    operation_id = "enable_webhook_endpoint",
    tag = "admin",
    params(("id" = crate::domain::schema::WebhookEndpointId, Path, description = "Endpoint id (whe_…)")),
    responses(
        (status = 200, description = "The endpoint, enabled", body = crate::routes::webhooks::EndpointBody),
        (status = 404, description = "`webhook_endpoint_not_found`")
    )
)]
pub async fn enable(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    change(state, caller, &path, EndpointChange::Enable).await
}

/// A new signing secret; the old one signs too during the overlap.
#[utoipa::path(
    post,
    path = "/v1/webhook-endpoints/{id}/rotate-secret",
    operation_id = "rotate_webhook_secret",
    tag = "admin",
    params(("id" = crate::domain::schema::WebhookEndpointId, Path, description = "Endpoint id (whe_…)")),
    request_body(content = Option<crate::routes::webhooks::RotateBody>, description = "Optional: an empty body keeps the configured overlap"),
    responses(
        (status = 200, description = "The endpoint and its new secret, shown this once", body = crate::routes::webhooks::EndpointSecret),
        (status = 404, description = "`webhook_endpoint_not_found`"),
        (status = 422, description = "`invalid_field`")
    )
)]
pub async fn rotate_secret(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    OptionalJsonBody(body): OptionalJsonBody<RotateBody>,
) -> Result<HttpResponse, ApiError> {
    let overlap = body.overlap_hours;
    let (endpoint, secret) = webhooks::rotate_secret(
        &*state.store,
        &state.webhooks,
        &path,
        overlap,
        caller.actor(),
        time::now(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(EndpointSecret {
        endpoint: (&endpoint).into(),
        secret: secret.expose().to_owned(),
    }))
}

/// Query of `GET /v1/webhook-endpoints/{id}/deliveries`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// Only deliveries in this state.
    status: Option<DeliveryStatus>,
    /// At most this many (default: the most a page holds).
    #[param(value_type = Option<crate::domain::schema::DeliveryPageLimit>)]
    limit: Option<u32>,
    /// Only deliveries older than this one (the `next` of the page before).
    #[param(value_type = Option<crate::domain::schema::DeliveryId>)]
    before: Option<i64>,
}

/// An endpoint's deliveries, newest first.
#[utoipa::path(
    get,
    path = "/v1/webhook-endpoints/{id}/deliveries",
    operation_id = "list_webhook_deliveries",
    tag = "admin",
    params(("id" = crate::domain::schema::WebhookEndpointId, Path, description = "Endpoint id (whe_…)"), DeliveriesQuery),
    responses(
        (status = 200, description = "A page of deliveries, newest first", body = crate::routes::webhooks::DeliveryList),
        (status = 404, description = "`webhook_endpoint_not_found`")
    )
)]
pub async fn deliveries(
    state: web::Data<AppState>,
    path: web::Path<String>,
    q: web::Query<DeliveriesQuery>,
) -> Result<HttpResponse, ApiError> {
    if q.before.is_some_and(|b| b < 1) {
        return Err(ApiError::InvalidQuery("before: a delivery id".into()));
    }
    let list = webhooks::deliveries(&*state.store, &path, q.status, q.limit, q.before).await?;
    let limit = q.limit.unwrap_or(crate::domain::webhook::MAX_DELIVERY_PAGE) as usize;
    let next = (list.len() == limit)
        .then(|| list.last().map(|d| d.id))
        .flatten();
    Ok(HttpResponse::Ok().json(DeliveryList {
        deliveries: list.iter().map(DeliveryView::from).collect(),
        next,
    }))
}

/// Sends a failed delivery again, with the same `webhook-id`.
#[utoipa::path(
    post,
    path = "/v1/webhook-endpoints/{id}/deliveries/{delivery}/resend",
    operation_id = "resend_webhook_delivery",
    tag = "admin",
    params(
        ("id" = crate::domain::schema::WebhookEndpointId, Path, description = "Endpoint id (whe_…)"),
        ("delivery" = crate::domain::schema::DeliveryId, Path, description = "Delivery id")
    ),
    responses(
        (status = 200, description = "The delivery, pending again", body = crate::routes::webhooks::DeliveryBody),
        (status = 404, description = "`webhook_endpoint_not_found`, `delivery_not_found`"),
        (status = 409, description = "`delivery_not_failed`: only a failed delivery is sent again")
    )
)]
pub async fn resend(
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
) -> Result<HttpResponse, ApiError> {
    let (id, delivery) = path.into_inner();
    let d = webhooks::resend(&*state.store, &id, delivery).await?;
    Ok(HttpResponse::Ok().json(DeliveryBody {
        delivery: (&d).into(),
    }))
}
