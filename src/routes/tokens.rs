//! `GET/POST /v1/tokens`, `POST /v1/tokens/{id}/revoke` (admin).

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::domain::ids::new_id;
use crate::domain::time;
use crate::domain::token::{parse_token_name, NewApiToken, Role, TokenSecret};
use crate::domain::DomainError;
use crate::error::ApiError;
use crate::routes::auth::Caller;
use crate::routes::extract::JsonBody;
use crate::service::AppState;

/// Body of `POST /v1/tokens`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    role: Role,
    name: String,
}

/// Creates a token; the secret is in this response and nowhere else.
#[utoipa::path(
    post,
    path = "/v1/tokens",
    tag = "admin",
    request_body = crate::routes::tokens::CreateToken,
    responses(
        (status = 201, description = "The token and its secret, shown this once", body = crate::routes::openapi::TokenCreated),
        (status = 422, description = "`invalid_field`: a name of the wrong shape")
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateToken>,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.require(&[])?;
    let name = parse_token_name(&body.name)
        .ok_or_else(|| DomainError::field("name", "must be 1 to 100 printable characters"))?;
    let now = time::now();
    let secret = TokenSecret::generate();
    let token = state
        .store
        .create_token(
            NewApiToken {
                id: new_id("tok", now),
                role: body.role,
                name,
                secret_hash: secret.hash(),
                prefix: secret.prefix(),
                created_at: now,
            },
            actor,
        )
        .await?;
    Ok(HttpResponse::Created().json(json!({ "token": token, "secret": secret.expose() })))
}

/// Every token, without secrets.
#[utoipa::path(
    get,
    path = "/v1/tokens",
    tag = "admin",
    responses(
        (status = 200, description = "Every token, without secrets", body = crate::routes::openapi::TokenList)
    )
)]
pub async fn list(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    caller.require(&[])?;
    Ok(HttpResponse::Ok().json(json!({ "tokens": state.store.tokens().await? })))
}

/// Revokes a token by id or prefix.
#[utoipa::path(
    post,
    path = "/v1/tokens/{id}/revoke",
    tag = "admin",
    params(("id" = String, Path, description = "Token id (tok_…) or visible prefix (kc_…)")),
    responses(
        (status = 200, description = "Revoked", body = crate::routes::openapi::TokenBody),
        (status = 404, description = "`token_not_found`")
    )
)]
pub async fn revoke(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.require(&[])?;
    let token = state
        .store
        .revoke_token(path.into_inner(), actor, time::now())
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "token": token })))
}
