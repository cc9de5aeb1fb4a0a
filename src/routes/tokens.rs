//! `GET/POST /v1/tokens`, `POST /v1/tokens/{id}/revoke` (admin).

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use crate::domain::time;
use crate::domain::token::Role;
use crate::error::ApiError;
use crate::routes::auth::Caller;
use crate::routes::extract::JsonBody;
use crate::routes::views::{TokenBody, TokenCreated, TokenList};
use crate::service::AppState;

/// Body of `POST /v1/tokens`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// What it may do.
    role: Role,
    /// Who it is for.
    #[schema(value_type = crate::domain::schema::TokenName)]
    name: String,
}

/// Creates a token; the secret is in this response and nowhere else.
#[utoipa::path(
    post,
    path = "/v1/tokens",
    operation_id = "create_token",
    tag = "admin",
    request_body = crate::routes::tokens::CreateToken,
    responses(
        (status = 201, description = "The token and its secret, shown this once", body = crate::routes::views::TokenCreated),
        (status = 422, description = "`invalid_field`: a name of the wrong shape")
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateToken>,
) -> Result<HttpResponse, ApiError> {
    let (token, secret) = state
        .create_token(body.role, &body.name, caller.actor(), time::now())
        .await?;
    Ok(HttpResponse::Created().json(TokenCreated {
        token: (&token).into(),
        secret: secret.expose().to_owned(),
    }))
}

/// Every token, without secrets.
#[utoipa::path(
    get,
    path = "/v1/tokens",
    operation_id = "list_tokens",
    tag = "admin",
    responses(
        (status = 200, description = "Every token, without secrets", body = crate::routes::views::TokenList)
    )
)]
pub async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let tokens = state.tokens().await?;
    Ok(HttpResponse::Ok().json(TokenList::new(&tokens)))
}

/// Revokes a token by id or prefix.
#[utoipa::path(
    post,
    path = "/v1/tokens/{id}/revoke",
    operation_id = "revoke_token",
    tag = "admin",
    params(("id" = crate::domain::schema::TokenRef, Path, description = "Token id (tok_…) or visible prefix (kc_…)")),
    responses(
        (status = 200, description = "Revoked", body = crate::routes::views::TokenBody),
        (status = 404, description = "`token_not_found`")
    )
)]
pub async fn revoke(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let token = state
        .revoke_token(path.into_inner(), caller.actor(), time::now())
        .await?;
    Ok(HttpResponse::Ok().json(TokenBody {
        token: (&token).into(),
    }))
}
