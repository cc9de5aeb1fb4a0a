//! `GET /v1/products`: the catalog.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::domain::token::Role;
use crate::error::ApiError;
use crate::routes::auth::Caller;
use crate::service::AppState;

/// Every product and its policy.
#[utoipa::path(
    get,
    path = "/v1/products",
    tag = "admin",
    responses(
        (status = 200, description = "The catalog", body = crate::routes::openapi::ProductList)
    )
)]
pub async fn list(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Vendor, Role::Support])?;
    let products: Vec<_> = state.catalog.iter().collect();
    Ok(HttpResponse::Ok().json(json!({ "products": products })))
}
