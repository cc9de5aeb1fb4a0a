//! `GET /healthz` (the process answers) and `GET /readyz` (the database answers).

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::error::ApiError;
use crate::service::AppState;

/// The process is up.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// The database answers.
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.store.ready().await.map_err(|e| {
        log::error!("readiness check failed: {e}");
        ApiError::Unavailable
    })?;
    Ok(HttpResponse::Ok().json(json!({ "status": "ready" })))
}
