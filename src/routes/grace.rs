//! Late claims over HTTP: grace decisions, payment of upgrades, customers' claims, credit.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use crate::domain::audit::ClaimStatus;
use crate::domain::license::Email;
use crate::domain::time;
use crate::error::ApiError;
use crate::routes::auth::Caller;
use crate::routes::extract::{ClientAddr, JsonBody};
use crate::routes::views::{ClaimList, ClaimReply, Credits, GraceDecision, LicenseBody, Redeemed};
use crate::service::grace::{ClaimAnswer, ClaimBody, GraceBody, Granted, RedeemBody};
use crate::service::AppState;

fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    req.headers()
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| ApiError::InvalidQuery("Idempotency-Key: not ASCII".into()))
        })
        .transpose()
}

fn granted(g: Granted) -> HttpResponse {
    let status = if g.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    HttpResponse::build(status).json(GraceDecision::from(&g))
}

/// `POST /v1/licenses/{id}/grace-extension` (support): a remedy with its evidence.
#[utoipa::path(
    post,
    path = "/v1/licenses/{id}/grace-extension",
    tag = "support",
    params(("id" = crate::domain::schema::LicenseId, Path, description = "License id (lic_…)"), ("Idempotency-Key" = Option<crate::domain::schema::IdempotencyKey>, Header, description = "A retry with the same key and body answers the first decision (200, replayed)")),
    request_body = crate::service::grace::GraceBody,
    responses(
        (status = 201, description = "The decision with its evidence and what it produced", body = crate::routes::views::GraceDecision),
        (status = 200, description = "A retry with the same Idempotency-Key: the first decision", body = crate::routes::views::GraceDecision),
        (status = 404, description = "`license_not_found`"),
        (status = 409, description = "`idempotency_key_reused`: the key came with another request; `invalid_transition`"),
        (status = 422, description = "`substitute_too_expensive` (with `price`, `ceiling`, `suggested_remedy`), `upgrade_not_dearer`, `currency_mismatch`, `product_required`, `email_required`, `price_unknown`, `unknown_product`, `days_required`, `invalid_field`")
    )
)]
pub async fn grace_extension(
    state: web::Data<AppState>,
    caller: Caller,
    http: HttpRequest,
    path: web::Path<String>,
    JsonBody(body): JsonBody<GraceBody>,
) -> Result<HttpResponse, ApiError> {
    let idem = idempotency_key(&http)?;
    let g = state
        .grace(&path, body, caller.actor(), idem, None, time::now())
        .await?;
    Ok(granted(g))
}

/// `POST /v1/licenses/{id}/confirm-payment` (vendor): an upgrade's difference was paid.
#[utoipa::path(
    post,
    path = "/v1/licenses/{id}/confirm-payment",
    tag = "vendor",
    params(("id" = crate::domain::schema::LicenseId, Path, description = "License id (lic_…)")),
    responses(
        (status = 200, description = "The upgrade is paid: the license is active", body = crate::routes::views::LicenseBody),
        (status = 404, description = "`license_not_found`"),
        (status = 409, description = "`invalid_transition`: the license is not waiting for a payment")
    )
)]
pub async fn confirm_payment(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let license = state
        .confirm_payment(path.into_inner(), caller.actor(), time::now())
        .await?;
    Ok(HttpResponse::Ok().json(LicenseBody::from(&license)))
}

/// `POST /v1/claims` (the customer, with the key): granted by policy (200) or filed (202).
#[utoipa::path(
    post,
    path = "/v1/claims",
    operation_id = "file_claim",
    tag = "apps",
    request_body = crate::service::grace::ClaimBody,
    responses(
        (status = 200, description = "`granted` by the policy, or `not_needed`: the key works as it is", body = crate::routes::views::ClaimReply),
        (status = 202, description = "`pending`: support will decide", body = crate::routes::views::ClaimReply),
        (status = 404, description = "`license_not_found`"),
        (status = 422, description = "`invalid_field`"),
        (status = 429, description = "`rate_limited`: too many claims for the key or from the address, or failed look-ups; `Retry-After`")
    )
)]
pub async fn file(
    state: web::Data<AppState>,
    http: actix_web::HttpRequest,
    ClientAddr(client): ClientAddr,
    JsonBody(mut body): JsonBody<ClaimBody>,
) -> Result<HttpResponse, ApiError> {
    if body.locale.is_none() {
        body.locale = crate::routes::licenses::accept_language(&http);
    }
    let answer = state.claim(body, &client, time::now()).await?;
    let status = match answer {
        ClaimAnswer::NotNeeded(_) | ClaimAnswer::Granted(_) => StatusCode::OK,
        ClaimAnswer::Filed(_) => StatusCode::ACCEPTED,
    };
    Ok(HttpResponse::build(status).json(ClaimReply::from(&answer)))
}

/// Query of `GET /v1/claims`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ClaimsQuery {
    /// Only claims that stand so (default: `pending`).
    #[param(value_type = Option<crate::domain::audit::ClaimStatus>)]
    status: Option<String>,
}

/// `GET /v1/claims?status=pending` (support).
#[utoipa::path(
    get,
    path = "/v1/claims",
    operation_id = "list_claims",
    tag = "support",
    params(crate::routes::grace::ClaimsQuery),
    responses(
        (status = 200, description = "Claims, oldest first", body = crate::routes::views::ClaimList)
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    q: web::Query<ClaimsQuery>,
) -> Result<HttpResponse, ApiError> {
    let status = q.status.as_deref().unwrap_or("pending");
    let status = ClaimStatus::parse(status).ok_or_else(|| {
        ApiError::InvalidQuery("status: one of pending, granted, resolved".into())
    })?;
    let claims = state.claims(status).await?;
    Ok(HttpResponse::Ok().json(ClaimList::new(&claims)))
}

/// `POST /v1/claims/{id}/resolve` (support): closes a claim with any remedy.
#[utoipa::path(
    post,
    path = "/v1/claims/{id}/resolve",
    operation_id = "resolve_claim",
    tag = "support",
    params(("id" = crate::domain::schema::ClaimId, Path, description = "Claim id (clm_…)"), ("Idempotency-Key" = Option<crate::domain::schema::IdempotencyKey>, Header, description = "A retry with the same key and body answers the first decision (200, replayed)")),
    request_body = crate::service::grace::GraceBody,
    responses(
        (status = 201, description = "The decision that closes the claim", body = crate::routes::views::GraceDecision),
        (status = 200, description = "A retry with the same Idempotency-Key: the first decision", body = crate::routes::views::GraceDecision),
        (status = 404, description = "`claim_not_found`"),
        (status = 409, description = "`claim_resolved`, `idempotency_key_reused`, `invalid_transition`"),
        (status = 422, description = "`substitute_too_expensive`, `upgrade_not_dearer`, `currency_mismatch`, `product_required`, `email_required`, `price_unknown`, `unknown_product`, `days_required`, `invalid_field`")
    )
)]
pub async fn resolve(
    state: web::Data<AppState>,
    caller: Caller,
    http: HttpRequest,
    path: web::Path<String>,
    JsonBody(body): JsonBody<GraceBody>,
) -> Result<HttpResponse, ApiError> {
    let idem = idempotency_key(&http)?;
    let g = state
        .resolve_claim(&path, body, caller.actor(), idem, time::now())
        .await?;
    Ok(granted(g))
}

/// Query of `GET /v1/credits`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CreditsQuery {
    /// The customer.
    #[param(value_type = crate::domain::schema::EmailAddress)]
    email: String,
}

/// `GET /v1/credits?email=` (vendor, support): balance per currency and entries.
#[utoipa::path(
    get,
    path = "/v1/credits",
    tag = "support",
    params(crate::routes::grace::CreditsQuery),
    responses(
        (status = 200, description = "Balances and ledger of a customer", body = crate::routes::views::Credits)
    )
)]
pub async fn credits(
    state: web::Data<AppState>,
    q: web::Query<CreditsQuery>,
) -> Result<HttpResponse, ApiError> {
    let email = Email::parse(&q.email)
        .ok_or_else(|| ApiError::InvalidQuery("email: not an email address".into()))?
        .into_string();
    let entries = state.credits(&email).await?;
    Ok(HttpResponse::Ok().json(Credits::new(&email, &entries)))
}

/// `POST /v1/credits/redeem` (vendor): spends credit on an order, idempotent on it.
#[utoipa::path(
    post,
    path = "/v1/credits/redeem",
    tag = "vendor",
    request_body = crate::service::grace::RedeemBody,
    responses(
        (status = 201, description = "Spent", body = crate::routes::views::Redeemed),
        (status = 200, description = "The same order again: the same entry", body = crate::routes::views::Redeemed),
        (status = 409, description = "`insufficient_credit` (with `balance`)"),
        (status = 422, description = "`invalid_field`")
    )
)]
pub async fn redeem(
    state: web::Data<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<RedeemBody>,
) -> Result<HttpResponse, ApiError> {
    let (entry, created) = state.redeem(body, caller.actor(), time::now()).await?;
    let ledger = state.credits(&entry.email).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(HttpResponse::build(status).json(Redeemed::new(&entry, &ledger)))
}
