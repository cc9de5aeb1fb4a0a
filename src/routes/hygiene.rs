//! Request and response details the route table decides, ahead of the access check:
//! one `Authorization` header at most where a token is read, and no caching of
//! anything that is not public.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;

use crate::error::ApiError;
use crate::routes::{Access, RouteMatch};

/// 400 `duplicate_authorization` for two `Authorization` headers on a route that
/// reads a token (a proxy that reads the other one would disagree about the
/// caller), and `Cache-Control: no-store` on every answer of a route that is not
/// public: they carry token secrets, license keys, customers' data.
pub async fn hygiene<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let access = RouteMatch::cached(&req).access();
    let reads_token = matches!(access, Some(Access::Roles(_) | Access::KeyOrRoles(_)));
    if reads_token
        && req
            .headers()
            .get_all(header::AUTHORIZATION)
            .nth(1)
            .is_some()
    {
        let mut res = req.error_response(ApiError::DuplicateAuthorization);
        res.headers_mut().insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        );
        return Ok(res.map_into_right_body());
    }
    let mut res = next.call(req).await?.map_into_left_body();
    if !matches!(access, Some(Access::Anyone)) {
        res.headers_mut().insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        );
    }
    Ok(res)
}
