//! HTTP handlers, one file per resource, and the route table.

pub mod activations;
pub mod auth;
pub mod extract;
pub mod grace;
pub mod health;
pub mod keys;
pub mod licenses;
pub mod products;
pub mod tokens;

use actix_web::{web, HttpResponse};

use crate::error::ApiError;

/// Answers a method the route does not have.
async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed)
}

/// Answers a path no route has.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let na = || web::to(method_not_allowed);
    cfg.service(
        web::resource("/healthz")
            .get(health::healthz)
            .default_service(na()),
    )
    .service(
        web::resource("/readyz")
            .get(health::readyz)
            .default_service(na()),
    )
    .service(
        web::resource("/v1/activations")
            .post(activations::activate)
            .default_service(na()),
    )
    .service(
        web::resource("/v1/activations/{id}/deactivate")
            .post(activations::deactivate)
            .default_service(na()),
    )
    .service(
        web::resource("/v1/validate")
            .post(activations::validate)
            .default_service(na()),
    )
    .service(
        web::resource("/v1/keys")
            .get(keys::list)
            .default_service(na()),
    )
    .service(
        web::resource("/v1/products")
            .get(products::list)
            .default_service(na()),
    )
    .service(
        web::resource("/v1/tokens")
            .get(tokens::list)
            .post(tokens::create)
            .default_service(na()),
    )
    .service(
        web::resource("/v1/tokens/{id}/revoke")
            .post(tokens::revoke)
            .default_service(na()),
    )
    .service(
        web::resource("/v1/licenses")
            .get(licenses::list)
            .post(licenses::mint)
            .default_service(na()),
    )
    .service(
        web::resource("/v1/licenses/batch")
            .post(licenses::mint_batch)
            .default_service(na()),
    )
    .service(
        web::resource("/v1/licenses/{id}")
            .get(licenses::get)
            .default_service(na()),
    )
    .service(
        web::resource("/v1/licenses/{id}/grace-extension")
            .post(grace::grace_extension)
            .default_service(na()),
    )
    .service(
        web::resource("/v1/licenses/{id}/confirm-payment")
            .post(grace::confirm_payment)
            .default_service(na()),
    )
    .service(
        web::resource("/v1/claims")
            .get(grace::list)
            .post(grace::file)
            .default_service(na()),
    )
    .service(
        web::resource("/v1/claims/{id}/resolve")
            .post(grace::resolve)
            .default_service(na()),
    )
    .service(
        web::resource("/v1/credits")
            .get(grace::credits)
            .default_service(na()),
    )
    .service(
        web::resource("/v1/credits/redeem")
            .post(grace::redeem)
            .default_service(na()),
    )
    .service(
        web::resource("/v1/licenses/{id}/activations")
            .get(licenses::activations)
            .default_service(na()),
    )
    .service(
        web::resource("/v1/licenses/{id}/history")
            .get(licenses::history)
            .default_service(na()),
    )
    .service(
        web::resource("/v1/licenses/{id}/{action}")
            .post(licenses::act)
            .default_service(na()),
    );
}
