//! `GET /healthz` (the process answers) and `GET /readyz` (the database answers).

use actix_web::{web, HttpResponse};

use crate::error::ApiError;
use crate::routes::views::Status;
use crate::service::AppState;

/// The process is up.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses(
        (status = 200, description = "The process answers", body = crate::routes::views::Status)
    )
)]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Status::new("ok"))
}

/// The database answers.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "The database answers", body = crate::routes::views::Status)
    )
)]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.ready().await?;
    Ok(HttpResponse::Ok().json(Status::new("ready")))
}
