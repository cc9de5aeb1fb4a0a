//! `/v1/licenses`: mint, batch, look up, list, lifecycle, history.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::Value;

use crate::domain::ids::is_id;
use crate::domain::key::LicenseKey;
use crate::domain::license::{Action, Email, LicenseStatus, MintRequest};
use crate::domain::time;
use crate::domain::DomainError;
use crate::error::ApiError;
use crate::routes::auth::Caller;
use crate::routes::extract::{from_value, JsonBody, OptionalJsonBody, MAX_BATCH_BODY_BYTES};
use crate::routes::views::{
    BatchItem, BatchResults, History, LicenseBody, LicenseListing, LicenseWithKey, Machines,
};
use crate::service::{long_text, AppState, MAX_BATCH};
use crate::storage::{EventPage, LicenseLookup, LicensePage};

/// `POST /v1/licenses`: 201 with the license and its key; 200 for a repeat of the order.
#[utoipa::path(
    post,
    path = "/v1/licenses",
    tag = "vendor",
    request_body = crate::domain::license::MintRequest,
    responses(
        (status = 201, description = "Minted: the license and its key", body = crate::routes::views::LicenseWithKey),
        (status = 200, description = "The same order again with the same fields: the same license and key", body = crate::routes::views::LicenseWithKey),
        (status = 409, description = "`order_conflict`: the order id was minted with other fields"),
        (status = 422, description = "`unknown_product`, `purchased_in_future`, `invalid_expiry`, `invalid_field`")
    )
)]
pub async fn mint(
    state: web::Data<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<MintRequest>,
) -> Result<HttpResponse, ApiError> {
    let minted = state.mint(req, caller.actor(), time::now()).await?;
    let status = if minted.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(HttpResponse::build(status).json(LicenseWithKey::from(&minted)))
}

/// Body of `POST /v1/licenses/batch`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    licenses: Vec<Value>,
}

/// `POST /v1/licenses/batch`: one result per item, in order.
#[utoipa::path(
    post,
    path = "/v1/licenses/batch",
    tag = "vendor",
    request_body = crate::routes::licenses::BatchRequest,
    responses(
        (status = 200, description = "One result per item, in order", body = crate::routes::views::BatchResults),
        (status = 400, description = "`empty_batch`, `batch_too_large` (over 1,000 items), `invalid_json`, `missing_field`, `invalid_field`")
    )
)]
pub async fn mint_batch(
    state: web::Data<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<BatchRequest, MAX_BATCH_BODY_BYTES>,
) -> Result<HttpResponse, ApiError> {
    if req.licenses.is_empty() {
        return Err(ApiError::EmptyBatch);
    }
    if req.licenses.len() > MAX_BATCH {
        return Err(ApiError::BatchTooLarge(MAX_BATCH));
    }
    let items = req
        .licenses
        .into_iter()
        .map(from_value::<MintRequest>)
        .collect();
    let results = state
        .into_inner()
        .mint_batch(items, caller.actor(), time::now())
        .await?;
    // At most `MAX_BATCH` items, so every index fits.
    let results = (0u32..).zip(&results).map(|(i, r)| BatchItem::new(i, r));
    Ok(HttpResponse::Ok().json(BatchResults {
        results: results.collect(),
    }))
}

fn license_id(raw: &str) -> Result<String, ApiError> {
    if is_id("lic", raw) {
        Ok(raw.to_owned())
    } else {
        Err(DomainError::LicenseNotFound.into())
    }
}

/// `GET /v1/licenses/{id}`: the license and its current key.
#[utoipa::path(
    get,
    path = "/v1/licenses/{id}",
    tag = "support",
    params(("id" = String, Path, description = "License id (lic_…)")),
    responses(
        (status = 200, description = "The license and its current key", body = crate::routes::views::LicenseWithKey),
        (status = 404, description = "`license_not_found`")
    )
)]
pub async fn get(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = license_id(&path)?;
    let (license, key) = state.license_with_key(&id).await?;
    Ok(HttpResponse::Ok().json(LicenseWithKey::new(&license, &key)))
}

/// Query of `GET /v1/licenses`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    order_id: Option<String>,
    email: Option<String>,
    key: Option<String>,
    status: Option<String>,
    product: Option<String>,
    limit: Option<u32>,
    after: Option<String>,
}

/// `GET /v1/licenses`: by `order_id`, `email` or `key`, or else a page.
#[utoipa::path(
    get,
    path = "/v1/licenses",
    tag = "support",
    params(crate::routes::licenses::ListQuery),
    responses(
        (status = 200, description = "Licenses by `order_id`, `email` or `key`, or else a page", body = crate::routes::views::LicenseListing)
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let lookup = match (&q.order_id, &q.email, &q.key) {
        (Some(o), None, None) => Some(LicenseLookup::OrderId(o.trim().to_owned())),
        (None, Some(e), None) => Some(LicenseLookup::Email(
            Email::parse(e)
                .ok_or_else(|| ApiError::InvalidQuery("email: not an email address".into()))?
                .into_string(),
        )),
        (None, None, Some(k)) => match LicenseKey::parse(k) {
            Some(key) => Some(LicenseLookup::KeyHash(key.hash())),
            // A malformed key matches nothing, like an unknown one.
            None => return Ok(HttpResponse::Ok().json(LicenseListing::new(&[], None))),
        },
        (None, None, None) => None,
        _ => {
            return Err(ApiError::InvalidQuery(
                "give at most one of order_id, email and key".into(),
            ))
        }
    };
    if let Some(lookup) = lookup {
        let items = state.find_licenses(lookup).await?;
        return Ok(HttpResponse::Ok().json(LicenseListing::new(&items, None)));
    }
    let limit = q.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::InvalidQuery("limit: between 1 and 100".into()));
    }
    let status = q
        .status
        .as_deref()
        .map(|s| {
            LicenseStatus::parse(s).ok_or_else(|| {
                ApiError::InvalidQuery(format!("status: `{s}` is not a license status"))
            })
        })
        .transpose()?;
    let (items, next) = state
        .list_licenses(LicensePage {
            status,
            product: q.product,
            limit,
            after: q.after,
        })
        .await?;
    Ok(HttpResponse::Ok().json(LicenseListing::new(&items, next)))
}

/// Body of the lifecycle actions.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    reason: Option<String>,
    days: Option<u32>,
}

/// `POST /v1/licenses/{id}/suspend|reinstate|revoke|refund|renew`.
#[utoipa::path(
    post,
    path = "/v1/licenses/{id}/{action}",
    tag = "vendor",
    params(("id" = String, Path, description = "License id (lic_…)"), ("action" = String, Path, description = "`suspend`, `reinstate`, `revoke`, `refund` or `renew`")),
    request_body = Option<crate::routes::licenses::ActionBody>,
    responses(
        (status = 200, description = "The license after the action", body = crate::routes::views::LicenseBody),
        (status = 404, description = "`license_not_found`; `not_found` for another action"),
        (status = 409, description = "`invalid_transition`: not from the current status (`current_status`)"),
        (status = 422, description = "`license_perpetual`, `days_required`, `date_out_of_range` (a renewal past 9999-12-31), `invalid_field`")
    )
)]
pub async fn act(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    OptionalJsonBody(body): OptionalJsonBody<ActionBody>,
) -> Result<HttpResponse, ApiError> {
    let (id, verb) = path.into_inner();
    let action = match verb.as_str() {
        "suspend" => Some(Action::Suspend),
        "reinstate" => Some(Action::Reinstate),
        "revoke" => Some(Action::Revoke),
        "refund" => Some(Action::Refund),
        "renew" => None,
        _ => return Err(ApiError::NotFound),
    };
    let actor = caller.actor();
    let id = license_id(&id)?;
    let reason = long_text("reason", body.reason)?;
    let now = time::now();
    let license = match action {
        Some(action) => {
            if body.days.is_some() {
                return Err(DomainError::field("days", "only renew takes days").into());
            }
            state.transition(id, action, reason, actor, now).await?
        }
        None => state.renew(id, body.days, actor, now).await?,
    };
    Ok(HttpResponse::Ok().json(LicenseBody::from(&license)))
}

/// `GET /v1/licenses/{id}/activations`: the machines of a license, newest first,
/// with the ids support needs to free a lost machine's seat.
#[utoipa::path(
    get,
    path = "/v1/licenses/{id}/activations",
    tag = "support",
    params(("id" = String, Path, description = "License id (lic_…)")),
    responses(
        (status = 200, description = "Every machine of the license, newest first", body = crate::routes::views::Machines),
        (status = 404, description = "`license_not_found`")
    )
)]
pub async fn activations(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = license_id(&path)?;
    let (license, activations) = state.machines(&id).await?;
    Ok(HttpResponse::Ok().json(Machines::new(&license, &activations)))
}

/// Query of `GET /v1/licenses/{id}/history`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// At most this many events (1 to 1000, default 1000).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Only events after this sequence number (the `next` of the page before).
    #[param(minimum = 0)]
    after: Option<i64>,
}

/// Most events in one page of a license's history.
const HISTORY_PAGE_MAX: u32 = 1000;

/// `GET /v1/licenses/{id}/history`: the license's audit events, oldest first, a page
/// at a time.
#[utoipa::path(
    get,
    path = "/v1/licenses/{id}/history",
    tag = "support",
    params(("id" = String, Path, description = "License id (lic_…)"), HistoryQuery),
    responses(
        (status = 200, description = "A page of the license's audit events, oldest first; `next` is the cursor of the next page", body = crate::routes::views::History),
        (status = 404, description = "`license_not_found`")
    )
)]
pub async fn history(
    state: web::Data<AppState>,
    path: web::Path<String>,
    q: web::Query<HistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = license_id(&path)?;
    let limit = q.limit.unwrap_or(HISTORY_PAGE_MAX);
    if !(1..=HISTORY_PAGE_MAX).contains(&limit) {
        return Err(ApiError::InvalidQuery(format!(
            "limit: between 1 and {HISTORY_PAGE_MAX}"
        )));
    }
    if q.after.is_some_and(|a| a < 0) {
        return Err(ApiError::InvalidQuery("after: a sequence number".into()));
    }
    let page = EventPage {
        after: q.after,
        limit,
    };
    let events = state.history(&id, page).await?;
    let next = (events.len() == limit as usize)
        .then(|| events.last().map(|e| e.seq))
        .flatten();
    Ok(HttpResponse::Ok().json(History::new(&id, &events, next)))
}
