//! `GET /v1/products`: the catalog.

use actix_web::{web, HttpResponse};

use crate::routes::views::ProductList;
use crate::service::AppState;

/// Every product and its policy.
#[utoipa::path(
    get,
    path = "/v1/products",
    operation_id = "list_products",
    tag = "admin",
    responses(
        (status = 200, description = "The catalog", body = crate::routes::views::ProductList)
    )
)]
pub async fn list(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(ProductList {
        products: state.catalog.iter().cloned().collect(),
    })
}
