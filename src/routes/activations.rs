//! `/v1/activations` and `/v1/validate`: machines taking, refreshing and freeing
//! seats, and apps checking their license.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::domain::time;
use crate::error::ApiError;
use crate::routes::auth::Caller;
use crate::routes::extract::{ClientAddr, JsonBody, OptionalJsonBody};
use crate::routes::observe::Verdict;
use crate::routes::views::{ActivationReply, DeactivationReply, Validated};
use crate::service::{ActivationRequest, AppState, DeactivationRequest, ValidationRequest};

/// `POST /v1/activations`: 201 with a new seat, 200 for a machine that holds one.
#[utoipa::path(
    post,
    path = "/v1/activations",
    tag = "apps",
    request_body = crate::service::ActivationRequest,
    responses(
        (status = 201, description = "A new seat: the activation, its certificate and the license", body = crate::routes::views::ActivationReply),
        (status = 200, description = "The machine holds a seat already: a fresh certificate", body = crate::routes::views::ActivationReply),
        (status = 403, description = "`license_suspended`, `license_revoked`, `license_superseded`, `license_expired`, `license_pending_payment`, `activation_window_closed`"),
        (status = 404, description = "`license_not_found`: unknown, malformed and forged keys alike"),
        (status = 409, description = "`seat_limit_reached`"),
        (status = 422, description = "`invalid_field`: a fingerprint, name or platform of the wrong shape")
    )
)]
pub async fn activate(
    state: web::Data<AppState>,
    ClientAddr(client): ClientAddr,
    JsonBody(req): JsonBody<ActivationRequest>,
) -> Result<HttpResponse, ApiError> {
    let done = state.activate(req, &client, time::now()).await?;
    let status = if done.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    // Written straight from the view (no JSON tree in between): this and
    // `validate` are the hot paths.
    Ok(HttpResponse::build(status).json(ActivationReply::from(&done)))
}

/// `POST /v1/activations/{id}/deactivate`: frees the seat. The app proves itself
/// with `license_key`; a support token (in `Authorization`) frees a lost machine's
/// seat outside the churn limit.
#[utoipa::path(
    post,
    path = "/v1/activations/{id}/deactivate",
    tag = "apps",
    params(("id" = crate::domain::schema::ActivationId, Path, description = "The activation")),
    request_body = Option<crate::service::DeactivationRequest>,
    responses(
        (status = 200, description = "The seat is free (`already_deactivated`: it was before; safe to retry)", body = crate::routes::views::DeactivationReply),
        (status = 401, description = "`missing_credentials`: neither `license_key` nor a token; `invalid_token`, `token_revoked` (when a token is sent)"),
        (status = 404, description = "`activation_not_found`: no such activation on the license of the key given"),
        (status = 422, description = "`invalid_field`"),
        (status = 429, description = "`deactivation_limit_reached`: the license freed its limit of seats in the last 30 days; `rate_limited`: too many failed look-ups or requests for the key. `Retry-After` says when")
    )
)]
pub async fn deactivate(
    state: web::Data<AppState>,
    http: HttpRequest,
    ClientAddr(client): ClientAddr,
    path: web::Path<String>,
    OptionalJsonBody(body): OptionalJsonBody<DeactivationRequest>,
) -> Result<HttpResponse, ApiError> {
    // With `Authorization`, the route table has checked the token (support or admin).
    let support = Caller::checked(&http).map(|caller| caller.actor());
    let done = state
        .deactivate(&path, body, support, &client, time::now())
        .await?;
    Ok(HttpResponse::Ok().json(DeactivationReply::from(&done)))
}

/// `POST /v1/validate`: always 200 with `{valid, code, license}` (and `receipt` when
/// the app sent a `nonce`).
#[utoipa::path(
    post,
    path = "/v1/validate",
    tag = "apps",
    request_body = crate::service::ValidationRequest,
    responses(
        (status = 200, description = "The verdict (also for unknown keys: `NOT_FOUND`)", body = crate::routes::views::Validated),
        (status = 422, description = "`invalid_field`: a fingerprint or nonce of the wrong shape")
    )
)]
pub async fn validate(
    state: web::Data<AppState>,
    ClientAddr(client): ClientAddr,
    JsonBody(req): JsonBody<ValidationRequest>,
) -> Result<HttpResponse, ApiError> {
    let v = state.validate(req, &client, time::now()).await?;
    let mut res = HttpResponse::Ok().json(Validated::try_from(&v)?);
    res.extensions_mut().insert(Verdict(v.code));
    Ok(res)
}
