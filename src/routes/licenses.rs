//! `/v1/licenses`: mint, batch, look up, list, lifecycle, history.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::domain::ids::is_id;
use crate::domain::key::LicenseKey;
use crate::domain::license::{parse_email, Action, LicenseStatus, MintRequest};
use crate::domain::time;
use crate::domain::token::Role;
use crate::domain::DomainError;
use crate::error::ApiError;
use crate::routes::auth::Caller;
use crate::routes::extract::{from_value, JsonBody, OptionalJsonBody, MAX_BATCH_BODY_BYTES};
use crate::service::{long_text, AppState, Minted, MAX_BATCH};
use crate::storage::{LicenseLookup, LicensePage};

const READERS: &[Role] = &[Role::Vendor, Role::Support];

fn minted_json(m: &Minted) -> Value {
    json!({ "license": m.license, "key": m.key })
}

/// `POST /v1/licenses`: 201 with the license and its key; 200 for a repeat of the order.
#[utoipa::path(
    post,
    path = "/v1/licenses",
    tag = "vendor",
    request_body = crate::domain::license::MintRequest,
    responses(
        (status = 201, description = "Minted: the license and its key", body = crate::routes::openapi::LicenseWithKey),
        (status = 200, description = "The same order again with the same fields: the same license and key", body = crate::routes::openapi::LicenseWithKey),
        (status = 409, description = "`order_conflict`: the order id was minted with other fields"),
        (status = 422, description = "`unknown_product`, `purchased_in_future`, `invalid_expiry`, `invalid_field`")
    )
)]
pub async fn mint(
    state: web::Data<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<MintRequest>,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.require(&[Role::Vendor])?;
    let minted = state.mint(req, actor, time::now()).await?;
    let status = if minted.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(HttpResponse::build(status).json(minted_json(&minted)))
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
        (status = 200, description = "One result per item, in order", body = crate::routes::openapi::BatchResults),
        (status = 400, description = "`empty_batch`, `batch_too_large` (over 1,000 items), `invalid_json`, `missing_field`, `invalid_field`")
    )
)]
pub async fn mint_batch(
    state: web::Data<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<BatchRequest, MAX_BATCH_BODY_BYTES>,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.require(&[Role::Vendor])?;
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
        .mint_batch(items, actor, time::now())
        .await?;
    let results: Vec<Value> = results
        .iter()
        .enumerate()
        .map(|(index, r)| match r {
            Ok(m) => json!({
                "index": index,
                "status": if m.created { 201 } else { 200 },
                "license": m.license,
                "key": m.key,
            }),
            Err(e) => {
                use actix_web::ResponseError;
                json!({ "index": index, "status": e.status_code().as_u16(), "error": e.problem() })
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "results": results })))
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
        (status = 200, description = "The license and its current key", body = crate::routes::openapi::LicenseWithKey),
        (status = 404, description = "`license_not_found`")
    )
)]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(READERS)?;
    let id = license_id(&path)?;
    let (license, key) = state.license_with_key(&id).await?;
    Ok(HttpResponse::Ok().json(json!({ "license": license, "key": key })))
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
        (status = 200, description = "Licenses by `order_id`, `email` or `key`, or else a page", body = crate::routes::openapi::LicensePage)
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(READERS)?;
    let q = query.into_inner();
    let lookup = match (&q.order_id, &q.email, &q.key) {
        (Some(o), None, None) => Some(LicenseLookup::OrderId(o.trim().to_owned())),
        (None, Some(e), None) => {
            Some(LicenseLookup::Email(parse_email(e).map_err(|_| {
                ApiError::InvalidQuery("email: not an email address".into())
            })?))
        }
        (None, None, Some(k)) => match LicenseKey::parse(k) {
            Some(key) => Some(LicenseLookup::KeyHash(key.hash())),
            // A malformed key matches nothing, like an unknown one.
            None => return Ok(HttpResponse::Ok().json(json!({ "items": [], "next": null }))),
        },
        (None, None, None) => None,
        _ => {
            return Err(ApiError::InvalidQuery(
                "give at most one of order_id, email and key".into(),
            ))
        }
    };
    if let Some(lookup) = lookup {
        let items = state.store.find_licenses(lookup).await?;
        return Ok(HttpResponse::Ok().json(json!({ "items": items, "next": null })));
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
    let items = state
        .store
        .list_licenses(LicensePage {
            status,
            product: q.product,
            limit,
            after: q.after,
        })
        .await?;
    let next = (items.len() == limit as usize)
        .then(|| items.last().map(|l| l.id.clone()))
        .flatten();
    Ok(HttpResponse::Ok().json(json!({ "items": items, "next": next })))
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
        (status = 200, description = "The license after the action", body = crate::routes::openapi::LicenseBody),
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
    let actor = caller.require(&[Role::Vendor])?;
    let id = license_id(&id)?;
    let reason = long_text("reason", body.reason)?;
    let now = time::now();
    let license = match action {
        Some(action) => {
            if body.days.is_some() {
                return Err(DomainError::field("days", "only renew takes days").into());
            }
            state
                .store
                .transition(id, action, reason, actor, now)
                .await?
        }
        None => state.store.renew(id, body.days, actor, now).await?,
    };
    Ok(HttpResponse::Ok().json(json!({ "license": license })))
}

/// `GET /v1/licenses/{id}/activations`: the machines of a license, newest first,
/// with the ids support needs to free a lost machine's seat.
#[utoipa::path(
    get,
    path = "/v1/licenses/{id}/activations",
    tag = "support",
    params(("id" = String, Path, description = "License id (lic_…)")),
    responses(
        (status = 200, description = "Every machine of the license, newest first", body = crate::routes::openapi::Machines),
        (status = 404, description = "`license_not_found`")
    )
)]
pub async fn activations(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(READERS)?;
    let id = license_id(&path)?;
    let Some((license, _)) = state.store.license(&id).await? else {
        return Err(DomainError::LicenseNotFound.into());
    };
    let activations = state.store.activations(&id).await?;
    let in_use = activations
        .iter()
        .filter(|a| a.deactivated_at.is_none())
        .count();
    Ok(HttpResponse::Ok().json(json!({
        "license_id": id,
        "seats": license.seats,
        "seats_in_use": in_use,
        "activations": activations,
    })))
}

/// `GET /v1/licenses/{id}/history`: the license's audit events, oldest first.
#[utoipa::path(
    get,
    path = "/v1/licenses/{id}/history",
    tag = "support",
    params(("id" = String, Path, description = "License id (lic_…)")),
    responses(
        (status = 200, description = "The license's audit events, oldest first", body = crate::routes::openapi::History),
        (status = 404, description = "`license_not_found`")
    )
)]
pub async fn history(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(READERS)?;
    let id = license_id(&path)?;
    if state.store.license(&id).await?.is_none() {
        return Err(DomainError::LicenseNotFound.into());
    }
    let events = state.store.history(&id).await?;
    Ok(HttpResponse::Ok().json(json!({ "license_id": id, "events": events })))
}
