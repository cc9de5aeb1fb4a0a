//! Request and response details the route table decides, ahead of the access check:
//! one `Authorization` header at most where a token is read, and no caching of
//! anything that is not public.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::Next;

use crate::error::ApiError;
use crate::routes::{access_of, Access};

/// The access of the route `req` matched (HEAD as GET).
fn access(req: &ServiceRequest) -> Option<Access> {
    let method = if req.method() == Method::HEAD {
        "GET"
    } else {
        req.method().as_str()
    };
    req.match_pattern().and_then(|p| access_of(method, &p))
}

/// 400 `duplicate_authorization` for two `Authorization` headers on a route that
/// reads a token (a proxy that reads the other one would disagree about the
/// caller), and `Cache-Control: no-store` on every answer of a route that is not
/// public: they carry token secrets, license keys, customers' data.
pub async fn hygiene(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let access = access(&req);
    let reads_token = matches!(access, Some(Access::Roles(_) | Access::KeyOrRoles(_)));
    if reads_token
        && req
            .headers()
            .get_all(header::AUTHORIZATION)
            .nth(1)
            .is_some()
    {
        return Err(ApiError::DuplicateAuthorization.into());
    }
    let mut res = next.call(req).await?;
    if !matches!(access, Some(Access::Anyone)) {
        res.headers_mut().insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        );
    }
    Ok(res)
}
