//! `/v1/mail`: the customers' mail in the outbox, for the admin (the failed ones
//! above all: `?status=failed`).

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::time::{self, Timestamp};
use crate::domain::webhook::MAX_DELIVERY_PAGE;
use crate::error::ApiError;
use crate::service::AppState;
use crate::storage::webhooks::{Delivery, DeliveryStatus};

/// One message to one customer.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = MailMessage)]
pub struct MailView {
    /// The message in the outbox.
    id: i64,
    /// What caused it (`license_key:lic_…`): one message per cause.
    cause: String,
    /// The recipient.
    to: String,
    /// `license_key` (more kinds to come: `sign_in`, `claim_received`,
    /// `claim_decided`, `reminder`).
    kind: String,
    /// The language it is written in (`en`, `fr`).
    locale: String,
    /// Where it stands.
    status: DeliveryStatus,
    /// Attempts made.
    attempts: u32,
    /// The SMTP server's last reply code, when it answered.
    last_status: Option<u16>,
    /// The last error.
    last_error: Option<String>,
    /// When the message was queued.
    #[serde(with = "time::serde_req")]
    #[schema(value_type = String, format = DateTime)]
    created_at: Timestamp,
    /// When it was last tried.
    #[serde(with = "time::serde_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    last_attempt_at: Option<Timestamp>,
    /// When it was sent or failed for good.
    #[serde(with = "time::serde_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    done_at: Option<Timestamp>,
}

impl From<&Delivery> for MailView {
    fn from(d: &Delivery) -> Self {
        // The payload holds the key: only its language is shown.
        let locale = serde_json::from_str::<crate::domain::mail::MailContent>(&d.payload)
            .map(|c| c.locale.as_str().to_owned())
            .unwrap_or_default();
        Self {
            id: d.id,
            cause: d.message_id.clone(),
            to: d.endpoint_id.clone(),
            kind: d.event_type.clone(),
            locale,
            status: d.status,
            attempts: d.attempts,
            last_status: d.last_status,
            last_error: d.last_error.clone(),
            created_at: d.created_at,
            last_attempt_at: d.last_attempt_at,
            done_at: d.done_at,
        }
    }
}

/// A page of mail.
#[derive(Debug, Serialize, ToSchema)]
pub struct MailList {
    /// Newest first.
    messages: Vec<MailView>,
    /// The `before` of the next page, when there may be one.
    next: Option<i64>,
}

/// Query of `GET /v1/mail`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MailQuery {
    /// Only messages in this state (`failed`: every attempt failed, or the SMTP
    /// server refused it for good).
    status: Option<DeliveryStatus>,
    /// At most this many (default: the most a page holds).
    #[param(value_type = Option<crate::domain::schema::DeliveryPageLimit>)]
    limit: Option<u32>,
    /// Only messages older than this one (the `next` of the page before).
    #[param(value_type = Option<crate::domain::schema::DeliveryId>)]
    before: Option<i64>,
}

/// The customers' mail, newest first; `?status=failed` lists the failures.
#[utoipa::path(
    get,
    path = "/v1/mail",
    operation_id = "list_mail",
    tag = "admin",
    params(MailQuery),
    responses(
        (status = 200, description = "A page of mail, newest first", body = crate::routes::mail::MailList)
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    q: web::Query<MailQuery>,
) -> Result<HttpResponse, ApiError> {
    if q.before.is_some_and(|b| b < 1) {
        return Err(ApiError::InvalidQuery("before: a message id".into()));
    }
    let limit = q.limit.unwrap_or(MAX_DELIVERY_PAGE);
    if !(1..=MAX_DELIVERY_PAGE).contains(&limit) {
        return Err(ApiError::InvalidQuery(format!(
            "limit: 1 to {MAX_DELIVERY_PAGE}"
        )));
    }
    let list = state
        .store
        .mail_deliveries(q.status, limit, q.before)
        .await
        .map_err(crate::service::ServiceError::from)?;
    let next = (list.len() == limit as usize)
        .then(|| list.last().map(|d| d.id))
        .flatten();
    Ok(HttpResponse::Ok().json(MailList {
        messages: list.iter().map(MailView::from).collect(),
        next,
    }))
}
