//! `GET /v1/keys`: the public keys, as PASERK, for offline verification;
//! `POST /v1/keys/reload` (admin): the keys directory loaded again.

use actix_web::{web, HttpResponse};

use crate::domain::time;
use crate::error::ApiError;
use crate::routes::views::{KeyList, KeysReloaded};
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
        keys: state.keyring.ring().public_keys(),
    })
}

/// Loads the keys directory again: a key added by `keyclerk keys rotate` signs from
/// now on, every older key keeps verifying. A running server also does this by
/// itself within seconds of the change, and on `SIGHUP`; this is for a script that
/// wants to know it happened.
#[utoipa::path(
    post,
    path = "/v1/keys/reload",
    tag = "admin",
    responses(
        (status = 200, description = "The keys now in use, the newly loaded ones named", body = crate::routes::views::KeysReloaded),
        (status = 409, description = "`keys_not_reloaded`: the directory lost a key in use or holds a bad file; the keys in use stay")
    )
)]
pub async fn reload(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let reloaded = state.reload_keys(time::now()).await?;
    Ok(HttpResponse::Ok().json(KeysReloaded {
        added: reloaded.added,
        active: reloaded.active,
        keys: state.keyring.ring().public_keys(),
    }))
}
