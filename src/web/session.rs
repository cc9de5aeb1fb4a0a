//! Console sessions in the browser: the `__Host-` cookie, the Origin and CSRF checks.

use actix_web::dev::ServiceRequest;
use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage, HttpRequest};

use crate::domain::staff::{same_secret, Session, StaffSecret, StaffUser};

/// The session cookie. `__Host-`: the browser keeps it only if it is `Secure`, has
/// `Path=/` and no `Domain`, so no other host or path can set or shadow it.
pub const COOKIE: &str = "__Host-keyclerk_console";

/// The form field and the header (htmx) that carry the CSRF token.
pub const CSRF_FIELD: &str = "csrf";
/// The header form of the CSRF token.
pub const CSRF_HEADER: &str = "X-CSRF-Token";

/// The `Set-Cookie` value of a new session (no `Max-Age`: it ends with the browser,
/// and the server ends it sooner).
pub fn set_cookie(secret: &StaffSecret) -> String {
    format!(
        "{COOKIE}={}; Path=/; Secure; HttpOnly; SameSite=Strict",
        secret.expose()
    )
}

/// The `Set-Cookie` value that removes the cookie.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// The session cookie's value, if the request has one.
pub fn cookie_of(req: &ServiceRequest) -> Option<StaffSecret> {
    secret_cookie(req, COOKIE)
}

/// The value of the cookie `name` (the first one sent), if the request has one.
pub fn cookie_named(req: &ServiceRequest, name: &str) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.trim().to_owned())
}

/// A secret (session id) in the cookie `name`: none when empty or too long.
pub fn secret_cookie(req: &ServiceRequest, name: &str) -> Option<StaffSecret> {
    cookie_named(req, name)
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(|v| StaffSecret::from_presented(&v))
}

/// The signed-in staff member of a request, left by the console's guard.
#[derive(Debug, Clone)]
pub struct Staff {
    /// The session.
    pub session: Session,
    /// Its account.
    pub user: StaffUser,
}

impl FromRequest for Staff {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, actix_web::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let staff = req.extensions().get::<Staff>().cloned();
        // The guard lets no request without a session reach a handler that takes
        // `Staff`; a route wrongly marked public fails closed here.
        std::future::ready(staff.ok_or_else(|| actix_web::error::ErrorForbidden("no session")))
    }
}

/// Whether `origin` (an `Origin` header) is keyclerk's own: the `public_url`'s
/// origin when one is set, else the `Host` the request was sent to.
pub fn origin_is_own(origin: Option<&str>, host: Option<&str>, public_url: Option<&str>) -> bool {
    let Some(origin) = origin else {
        return false;
    };
    if let Some(url) = public_url {
        let own = own_origin(url);
        return same_secret(origin, &own);
    }
    let Some(host) = host else {
        return false;
    };
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    authority.is_some_and(|a| a.eq_ignore_ascii_case(host))
}

/// The origin (`scheme://host[:port]`) of a URL.
fn own_origin(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
    let authority = rest.split('/').next().unwrap_or("");
    format!("{scheme}://{authority}")
}

/// The CSRF token a form body (`application/x-www-form-urlencoded`) carries.
pub fn csrf_in_form(body: &[u8]) -> Option<String> {
    form_urlencoded::parse(body)
        .find(|(k, _)| k == CSRF_FIELD)
        .map(|(_, v)| v.into_owned())
}

/// A local path to go back to after signing in (never another site: `//host` and
/// `/\host` are refused).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/console")
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control) =>
        {
            n.to_owned()
        }
        _ => "/console".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_keyclerks_own_origin_is_accepted() {
        let host = Some("127.0.0.1:8080");
        assert!(origin_is_own(Some("http://127.0.0.1:8080"), host, None));
        assert!(!origin_is_own(Some("http://evil.example"), host, None));
        assert!(!origin_is_own(Some("null"), host, None));
        assert!(!origin_is_own(None, host, None));
        let public = Some("https://licenses.example.com/");
        assert!(origin_is_own(
            Some("https://licenses.example.com"),
            host,
            public
        ));
        assert!(!origin_is_own(
            Some("http://licenses.example.com"),
            host,
            public
        ));
        assert!(!origin_is_own(Some("http://127.0.0.1:8080"), host, public));
    }

    #[test]
    fn the_page_after_sign_in_is_always_a_console_path() {
        assert_eq!(safe_next(Some("/console/claims")), "/console/claims");
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil",
            "/v1/keys",
        ] {
            assert_eq!(safe_next(Some(bad)), "/console", "{bad}");
        }
        assert_eq!(safe_next(None), "/console");
    }

    #[test]
    fn the_cookie_is_host_only_secure_http_only_and_strict() {
        let c = set_cookie(&StaffSecret::from_presented("abc"));
        assert_eq!(
            c,
            "__Host-keyclerk_console=abc; Path=/; Secure; HttpOnly; SameSite=Strict"
        );
    }
}
