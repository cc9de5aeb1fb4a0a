//! The caller's API token: `Authorization: Bearer kc_...`.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use futures_util::future::LocalBoxFuture;

use crate::domain::audit::Actor;
use crate::domain::token::{ApiToken, Role, TokenSecret};
use crate::error::ApiError;
use crate::service::AppState;

/// A caller that presented a valid, unrevoked API token.
#[derive(Debug, Clone)]
pub struct Caller(pub ApiToken);

impl Caller {
    /// The caller as the audit log names it, if its role is one of `roles` (or admin).
    pub fn require(&self, roles: &[Role]) -> Result<Actor, ApiError> {
        if !self.0.may(roles) {
            let needed = match roles {
                [Role::Vendor] => "vendor or admin",
                [Role::Support] => "support or admin",
                [] | [Role::Admin] => "admin",
                _ => "vendor, support or admin",
            };
            return Err(ApiError::Forbidden(needed));
        }
        Ok(self.actor())
    }

    /// The caller as the audit log names it. The route table has checked its role
    /// before the handler runs.
    pub fn actor(&self) -> Actor {
        Actor::Token {
            id: self.0.id.clone(),
            name: self.0.name.clone(),
            role: self.0.role.as_str().to_owned(),
        }
    }

    /// The caller the route table authenticated for this request, if it did (a
    /// route open to a key holder or a token: the token, when one was sent).
    pub fn checked(req: &HttpRequest) -> Option<Self> {
        req.extensions().get::<Caller>().cloned()
    }
}

fn bearer(req: &HttpRequest) -> Result<TokenSecret, ApiError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or(ApiError::MissingToken)?;
    let value = value.to_str().map_err(|_| ApiError::InvalidToken)?;
    let (scheme, secret) = value.split_once(' ').ok_or(ApiError::InvalidToken)?;
    let secret = secret.trim();
    if !scheme.eq_ignore_ascii_case("bearer")
        || !secret.starts_with(crate::domain::token::TOKEN_PREFIX)
        || secret.len() > 200
    {
        return Err(ApiError::InvalidToken);
    }
    Ok(TokenSecret::from_presented(secret))
}

impl Caller {
    /// Looks up the request's bearer token: 401 when missing, malformed, unknown or revoked.
    pub fn authenticate(req: &HttpRequest) -> LocalBoxFuture<'static, Result<Self, ApiError>> {
        if let Some(caller) = req.extensions().get::<Caller>() {
            let caller = caller.clone();
            return Box::pin(async move { Ok(caller) });
        }
        let secret = bearer(req);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let secret = secret?;
            let state = state.ok_or_else(|| ApiError::Internal("no application state".into()))?;
            Ok(Caller(state.token_for(&secret).await?))
        })
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Self::authenticate(req)
    }
}
