//! `GET /v1/keys`: the public keys, as PASERK, for offline verification.

use actix_web::{web, HttpResponse};

use crate::routes::views::KeyList;
use crate::service::AppState;

/// Every public key with its id and status.
#[utoipa::path(
    get,
    path = "/v1/keys",
    operation_id = "list_keys",
    tag = "operations",
    responses(
        (status = 200, description = "The public keys (PASERK k4.public) with their ids (k4.pid)", body = crate::routes::views::KeyList)
    )
)]
pub async fn list(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(KeyList {
        keys: state.keyring.public_keys(),
    })
}
