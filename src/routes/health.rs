//! `GET /healthz` (the process answers) and `GET /readyz` (the database answers).

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::error::ApiError;
use crate::service::AppState;

/// The process is up.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses(
        (status = 200, description = "The process answers", body = crate::routes::openapi::Status)
    )
)]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// The database answers.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "The database answers", body = crate::routes::openapi::Status)
    )
)]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.store.ready().await.map_err(|e| {
        log::error!("readiness check failed: {e}");
        ApiError::Unavailable
    })?;
    Ok(HttpResponse::Ok().json(json!({ "status": "ready" })))
}
