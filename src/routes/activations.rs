//! `/v1/activations` and `/v1/validate`: machines taking, refreshing and freeing
//! seats, and apps checking their license.

use actix_web::http::{header, StatusCode};
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::json;

use crate::domain::license::License;
use crate::domain::time;
use crate::domain::token::Role;
use crate::error::ApiError;
use crate::routes::auth::Caller;
use crate::routes::extract::{ClientAddr, JsonBody, OptionalJsonBody};
use crate::service::{ActivationRequest, AppState, DeactivationRequest, ValidationRequest};
use crate::storage::activation::Activation;

/// `POST /v1/activations`: 201 with a new seat, 200 for a machine that holds one.
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
    // Written straight from the structs (no JSON tree in between): this and
    // `validate` are the hot paths.
    #[derive(Serialize)]
    struct Body<'a> {
        activation: &'a Activation,
        certificate: &'a str,
        license: &'a License,
    }
    Ok(HttpResponse::build(status).json(Body {
        activation: &done.activation,
        certificate: &done.certificate,
        license: &done.license,
    }))
}

/// `POST /v1/activations/{id}/deactivate`: frees the seat. The app proves itself
/// with `license_key`; a support token (in `Authorization`) frees a lost machine's
/// seat outside the churn limit.
pub async fn deactivate(
    state: web::Data<AppState>,
    http: HttpRequest,
    ClientAddr(client): ClientAddr,
    path: web::Path<String>,
    OptionalJsonBody(body): OptionalJsonBody<DeactivationRequest>,
) -> Result<HttpResponse, ApiError> {
    let support = if http.headers().contains_key(header::AUTHORIZATION) {
        let caller = Caller::extract(&http).await?;
        Some(caller.require(&[Role::Support])?)
    } else {
        None
    };
    let done = state
        .deactivate(&path, body, support, &client, time::now())
        .await?;
    Ok(HttpResponse::Ok().json(json!({
        "activation": done.activation,
        "already_deactivated": done.already,
    })))
}

/// `POST /v1/validate`: always 200 with `{valid, code, license}` (and `receipt` when
/// the app sent a `nonce`).
pub async fn validate(
    state: web::Data<AppState>,
    ClientAddr(client): ClientAddr,
    JsonBody(req): JsonBody<ValidationRequest>,
) -> Result<HttpResponse, ApiError> {
    #[derive(Serialize)]
    struct Body<'a> {
        valid: bool,
        code: &'a str,
        license: Option<&'a License>,
        #[serde(skip_serializing_if = "Option::is_none")]
        receipt: Option<&'a str>,
    }
    let v = state.validate(req, &client, time::now()).await?;
    Ok(HttpResponse::Ok().json(Body {
        valid: v.code == "VALID",
        code: v.code,
        license: v.license.as_ref(),
        receipt: v.receipt.as_deref(),
    }))
}
