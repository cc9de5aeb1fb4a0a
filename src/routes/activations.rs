//! `/v1/activations`: machines taking, refreshing and freeing seats.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::domain::time;
use crate::error::ApiError;
use crate::routes::extract::JsonBody;
use crate::service::{ActivationRequest, AppState};

/// `POST /v1/activations`: 201 with a new seat, 200 for a machine that holds one.
pub async fn activate(
    state: web::Data<AppState>,
    JsonBody(req): JsonBody<ActivationRequest>,
) -> Result<HttpResponse, ApiError> {
    let done = state.activate(req, time::now()).await?;
    let status = if done.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(HttpResponse::build(status).json(json!({
        "activation": done.activation,
        "certificate": done.certificate,
        "license": done.license,
    })))
}
