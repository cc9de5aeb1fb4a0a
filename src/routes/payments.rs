//! `/v1/payments`: the payment providers' webhooks, and the events they sent.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::domain::ids::is_id;
use crate::domain::payments::{Outcome, PaymentEvent, Provider, MAX_PAYMENT_PAGE};
use crate::domain::time;
use crate::domain::DomainError;
use crate::error::ApiError;
use crate::routes::extract::RawBody;
use crate::service::AppState;
use crate::storage::payments::PaymentFilter;

/// A payment event as the API shows it (the body it came with is kept, not shown).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PaymentEventView {
    /// `pay_…`
    #[schema(value_type = crate::domain::schema::PaymentEventId)]
    pub id: String,
    /// Whose.
    pub provider: Provider,
    /// The provider's id of the event.
    pub event_id: String,
    /// The provider's name of its type (`checkout.session.completed`).
    #[serde(rename = "type")]
    pub kind: String,
    /// When keyclerk first received it.
    #[schema(value_type = String, format = DateTime)]
    pub received_at: String,
    /// What became of it.
    pub outcome: Outcome,
    /// Why, for any outcome but a plain `applied`.
    pub reason: Option<String>,
    /// The licenses it minted or changed.
    pub licenses: Vec<String>,
    /// When its outcome was last decided.
    #[schema(value_type = String, format = DateTime)]
    pub decided_at: String,
}

impl From<&PaymentEvent> for PaymentEventView {
    fn from(e: &PaymentEvent) -> Self {
        Self {
            id: e.id.clone(),
            provider: e.provider,
            event_id: e.event_id.clone(),
            kind: e.kind.clone(),
            received_at: time::format(e.received_at),
            outcome: e.outcome,
            reason: e.reason.clone(),
            licenses: e.licenses.clone(),
            decided_at: time::format(e.decided_at),
        }
    }
}

/// The events of one delivery.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PaymentEvents {
    /// Each event, as stored.
    pub events: Vec<PaymentEventView>,
    /// The cursor of the next page (`after`), when the list may go on.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::domain::schema::PaymentEventId>)]
    pub next: Option<String>,
}

/// `POST /v1/payments/{provider}`: a provider's signed webhook.
#[utoipa::path(
    post,
    path = "/v1/payments/{provider}",
    tag = "payments",
    operation_id = "receive_payment",
    params(("provider" = crate::domain::payments::Provider, Path, description = "The payment provider")),
    request_body(content = String, description = "The provider's webhook exactly as it sends it: JSON (Stripe, Paddle, Lemon Squeezy, FastSpring) or a form (PayPro Global), signed as the provider signs (`Stripe-Signature`, `Paddle-Signature`, `X-Signature`, `X-FS-Signature`, or PayPro's `SIGNATURE` field)", content_type = "application/json"),
    responses(
        (status = 200, description = "Verified and stored: each event with its outcome (`applied`, `duplicate`, `unmapped` or `failed`). A delivery seen before answers the same and changes nothing. For PayPro Global's `LicenseRequested`, the license key as `text/plain`", content((crate::routes::payments::PaymentEvents = "application/json"), (String = "text/plain"))),
        (status = 400, description = "`invalid_signature`: the signature is missing, stale or matches no configured secret (nothing is stored); `invalid_payload`: a verified body that is not the provider's (recorded as `failed`)"),
        (status = 404, description = "`payment_provider_not_found`: no such provider is configured")
    )
)]
pub async fn receive(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    RawBody(body): RawBody,
) -> Result<HttpResponse, ApiError> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let received = state
        .receive_payment(&path, &header, &body, time::now())
        .await?;
    if let Some(key) = received.license_key {
        return Ok(HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body(key));
    }
    Ok(HttpResponse::Ok().json(PaymentEvents {
        events: received.events.iter().map(PaymentEventView::from).collect(),
        next: None,
    }))
}

/// Query of `GET /v1/payments/events`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only this provider's events.
    #[param(value_type = Option<crate::domain::payments::Provider>)]
    provider: Option<String>,
    /// Only events with this outcome (`unmapped`: what waits for a mapping).
    #[param(value_type = Option<crate::domain::payments::Outcome>)]
    outcome: Option<String>,
    /// At most this many events.
    #[param(value_type = Option<crate::domain::schema::PaymentPageLimit>)]
    limit: Option<u32>,
    /// Only events whose id sorts after this one (the `next` of the page before).
    after: Option<String>,
}

/// `GET /v1/payments/events` (admin): the payment events received, oldest first.
#[utoipa::path(
    get,
    path = "/v1/payments/events",
    tag = "payments",
    operation_id = "list_payment_events",
    params(EventsQuery),
    responses(
        (status = 200, description = "A page of payment events, oldest first; `next` is the cursor of the next page", body = crate::routes::payments::PaymentEvents)
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    q: web::Query<EventsQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let provider = q
        .provider
        .as_deref()
        .map(|p| {
            Provider::parse(p)
                .ok_or_else(|| ApiError::InvalidQuery(format!("provider: `{p}` is no provider")))
        })
        .transpose()?;
    let outcome = q
        .outcome
        .as_deref()
        .map(|o| {
            Outcome::parse(o)
                .ok_or_else(|| ApiError::InvalidQuery(format!("outcome: `{o}` is no outcome")))
        })
        .transpose()?;
    let limit = q.limit.unwrap_or(MAX_PAYMENT_PAGE);
    if !(1..=MAX_PAYMENT_PAGE).contains(&limit) {
        return Err(ApiError::InvalidQuery(format!(
            "limit: between 1 and {MAX_PAYMENT_PAGE}"
        )));
    }
    let events = state
        .payment_events(PaymentFilter {
            provider,
            outcome,
            limit,
            after: q.after,
        })
        .await?;
    let next = (events.len() == limit as usize)
        .then(|| events.last().map(|e| e.id.clone()))
        .flatten();
    Ok(HttpResponse::Ok().json(PaymentEvents {
        events: events.iter().map(PaymentEventView::from).collect(),
        next,
    }))
}

/// `POST /v1/payments/events/{id}/apply` (admin): an `unmapped` or `failed` event
/// applied again, under the mapping in force now.
#[utoipa::path(
    post,
    path = "/v1/payments/events/{id}/apply",
    tag = "payments",
    operation_id = "apply_payment_event",
    params(("id" = crate::domain::schema::PaymentEventId, Path, description = "Payment event id (pay_…)")),
    responses(
        (status = 200, description = "Applied again: the event with its new outcome", body = crate::routes::payments::PaymentEventView),
        (status = 404, description = "`payment_event_not_found`; `payment_provider_not_found`: its provider is no longer configured"),
        (status = 409, description = "`payment_event_settled`: only an `unmapped` or `failed` event is applied again")
    )
)]
pub async fn apply(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    if !is_id("pay", &path) {
        return Err(DomainError::PaymentEventNotFound.into());
    }
    let event = state.apply_payment_again(&path, time::now()).await?;
    Ok(HttpResponse::Ok().json(PaymentEventView::from(&event)))
}
