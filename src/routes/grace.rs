//! Late claims over HTTP: grace decisions, payment of upgrades, customers' claims, credit.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::domain::license::parse_email;
use crate::domain::time;
use crate::domain::token::Role;
use crate::error::ApiError;
use crate::routes::auth::Caller;
use crate::routes::extract::{ClientAddr, JsonBody};
use crate::service::grace::{balances, ClaimAnswer, ClaimBody, GraceBody, Granted, RedeemBody};
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
    HttpResponse::build(status).json(json!({
        "decision": g.decision,
        "replayed": g.replayed,
        "license": g.license,
        "new_license": g.new_license,
        "key": g.key,
        "credit": g.decision.result.credit,
        "amount_due": g.decision.result.amount_due,
    }))
}

/// `POST /v1/licenses/{id}/grace-extension` (support): a remedy with its evidence.
pub async fn grace_extension(
    state: web::Data<AppState>,
    caller: Caller,
    http: HttpRequest,
    path: web::Path<String>,
    JsonBody(body): JsonBody<GraceBody>,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.require(&[Role::Support])?;
    let idem = idempotency_key(&http)?;
    let g = state
        .grace(&path, body, actor, idem, None, time::now())
        .await?;
    Ok(granted(g))
}

/// `POST /v1/licenses/{id}/confirm-payment` (vendor): an upgrade's difference was paid.
pub async fn confirm_payment(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.require(&[Role::Vendor])?;
    let license = state
        .store
        .confirm_payment(path.into_inner(), actor, time::now())
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "license": license })))
}

/// `POST /v1/claims` (the customer, with the key): granted by policy (200) or filed (202).
pub async fn file(
    state: web::Data<AppState>,
    ClientAddr(client): ClientAddr,
    JsonBody(body): JsonBody<ClaimBody>,
) -> Result<HttpResponse, ApiError> {
    Ok(match state.claim(body, &client, time::now()).await? {
        ClaimAnswer::NotNeeded(license) => HttpResponse::Ok().json(json!({
            "status": "not_needed",
            "detail": "the key can be activated as it is",
            "license": license,
        })),
        ClaimAnswer::Granted(granted) => HttpResponse::Ok().json(json!({
            "status": "granted",
            "detail": "the activation window is open again; activate with the same key",
            "decision": granted.0,
            "license": granted.1,
        })),
        ClaimAnswer::Filed(claim) => HttpResponse::Accepted().json(json!({
            "status": "pending",
            "detail": "support will decide",
            "claim": claim,
        })),
    })
}

/// Query of `GET /v1/claims`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimsQuery {
    status: Option<String>,
}

/// `GET /v1/claims?status=pending` (support).
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    q: web::Query<ClaimsQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Support])?;
    let status = q.status.as_deref().unwrap_or("pending");
    if !["pending", "granted", "resolved"].contains(&status) {
        return Err(ApiError::InvalidQuery(
            "status: one of pending, granted, resolved".into(),
        ));
    }
    let claims = state.store.claims(status).await?;
    Ok(HttpResponse::Ok().json(json!({ "claims": claims })))
}

/// `POST /v1/claims/{id}/resolve` (support): closes a claim with any remedy.
pub async fn resolve(
    state: web::Data<AppState>,
    caller: Caller,
    http: HttpRequest,
    path: web::Path<String>,
    JsonBody(body): JsonBody<GraceBody>,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.require(&[Role::Support])?;
    let idem = idempotency_key(&http)?;
    let g = state
        .resolve_claim(&path, body, actor, idem, time::now())
        .await?;
    Ok(granted(g))
}

/// Query of `GET /v1/credits`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreditsQuery {
    email: String,
}

/// `GET /v1/credits?email=` (vendor, support): balance per currency and entries.
pub async fn credits(
    state: web::Data<AppState>,
    caller: Caller,
    q: web::Query<CreditsQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Vendor, Role::Support])?;
    let email = parse_email(&q.email)
        .map_err(|_| ApiError::InvalidQuery("email: not an email address".into()))?;
    let entries = state.store.credits(&email).await?;
    Ok(HttpResponse::Ok().json(json!({
        "email": email,
        "balances": balances(&entries),
        "entries": entries,
    })))
}

/// `POST /v1/credits/redeem` (vendor): spends credit on an order, idempotent on it.
pub async fn redeem(
    state: web::Data<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<RedeemBody>,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.require(&[Role::Vendor])?;
    let (entry, created) = state.redeem(body, actor, time::now()).await?;
    let email = entry.email.clone();
    let entries = state.store.credits(&email).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(HttpResponse::build(status).json(json!({
        "entry": entry,
        "balances": balances(&entries),
    })))
}
