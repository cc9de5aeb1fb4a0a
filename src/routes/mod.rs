//! HTTP handlers, one file per resource, and the route table: every route with the
//! access it demands, from which both the router and the access check are built.

pub mod activations;
pub mod auth;
pub mod downloads;
pub mod extract;
pub mod grace;
pub mod health;
pub mod hygiene;
pub mod keys;
pub mod licenses;
pub mod mail;
pub mod metrics;
pub mod observe;
pub mod openapi;
pub mod payments;
pub mod products;
pub mod tokens;
pub mod views;
pub mod webhooks;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{guard, web, HttpMessage, HttpResponse, ResponseError};

use crate::domain::token::Role;
use crate::error::ApiError;
use crate::metrics::http::Slot;
use auth::Caller;

/// Who may call a route. Admin tokens may call every route that takes a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credential (health, public keys, the API description).
    Anyone,
    /// The license key in the body; tokens are not looked at.
    LicenseKey,
    /// A token of one of these roles (none listed: admin only).
    Roles(&'static [Role]),
    /// The license key, or else (when `Authorization` is sent) a token of these roles.
    KeyOrRoles(&'static [Role]),
    /// A payment provider's signature over the body; tokens are not looked at.
    ProviderSignature,
}

/// One route: method, path pattern as registered, and its access.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// The HTTP method, upper case (`GET`, `POST`, ...).
    pub method: &'static str,
    /// The pattern, `{name}` for a path parameter.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
}

const ADMIN: Access = Access::Roles(&[]);
const VENDOR: Access = Access::Roles(&[Role::Vendor]);
const SUPPORT: Access = Access::Roles(&[Role::Support]);
const STAFF: Access = Access::Roles(&[Role::Vendor, Role::Support]);

/// Builds [`ROUTES`] and [`configure`] from one list, so they cannot disagree.
macro_rules! route_table {
    ($( $path:literal { $( $method:ident => $handler:path, $access:expr; )+ } )+) => {
        /// Every path pattern, in registration order.
        pub const PATTERNS: &[&str] = &[$( $path, )+];

        /// Every route, in registration order (the first match wins).
        pub const ROUTES: &[Route] = &[
            $( $( Route {
                method: match stringify!($method).as_bytes() {
                    b"get" => "GET",
                    b"post" => "POST",
                    b"put" => "PUT",
                    b"patch" => "PATCH",
                    b"delete" => "DELETE",
                    b"head" => "HEAD",
                    _ => panic!("the route table takes get, post, put, patch, delete or head"),
                },
                path: $path,
                access: $access,
            }, )+ )+
        ];

        /// Registers every route of [`ROUTES`].
        pub fn configure(cfg: &mut web::ServiceConfig) {
            $(
                cfg.service(
                    web::resource($path)
                        $( .route(method_route(stringify!($method)).to($handler)) )+
                        .default_service(web::to(|| method_not_allowed($path))),
                );
            )+
        }
    };
}

route_table! {
    "/healthz" { get => health::healthz, Access::Anyone; }
    "/readyz" { get => health::readyz, Access::Anyone; }
    "/openapi.json" { get => openapi::document, Access::Anyone; }
    "/metrics" { get => metrics::scrape, ADMIN; }
    "/v1/keys" { get => keys::list, Access::Anyone; }
    "/v1/keys/reload" { post => keys::reload, ADMIN; }
    "/v1/activations" { post => activations::activate, Access::LicenseKey; }
    "/v1/validate" { post => activations::validate, Access::LicenseKey; }
    "/v1/products" { get => products::list, STAFF; }
    "/v1/tokens" {
        get => tokens::list, ADMIN;
        post => tokens::create, ADMIN;
    }
    "/v1/licenses" {
        get => licenses::list, STAFF;
        post => licenses::mint, VENDOR;
    }
    "/v1/licenses/batch" { post => licenses::mint_batch, VENDOR; }
    "/v1/payments/events" { get => payments::list, ADMIN; }
    // The first dynamic pattern: each is matched with a regular expression, tried
    // in the table's order (twice a request: the route, and the pattern the
    // metrics and the access check read), and a payment provider's webhook is the
    // busiest route that has one; the busiest of all (activation, validation,
    // mint) are static and come before it. Its static sibling `events` too, so
    // that `events` is no provider.
    "/v1/payments/{provider}" { post => payments::receive, Access::ProviderSignature; }
    "/v1/activations/{id}/deactivate" {
        post => activations::deactivate, Access::KeyOrRoles(&[Role::Support]);
    }
    "/v1/tokens/{id}/revoke" { post => tokens::revoke, ADMIN; }
    "/v1/payments/events/{id}/apply" { post => payments::apply, ADMIN; }
    "/v1/licenses/{id}" { get => licenses::get, STAFF; }
    "/v1/licenses/{id}/grace-extension" { post => grace::grace_extension, SUPPORT; }
    "/v1/licenses/{id}/confirm-payment" { post => grace::confirm_payment, VENDOR; }
    "/v1/claims" {
        get => grace::list, SUPPORT;
        post => grace::file, Access::LicenseKey;
    }
    "/v1/claims/{id}/resolve" { post => grace::resolve, SUPPORT; }
    "/v1/credits" { get => grace::credits, STAFF; }
    "/v1/credits/redeem" { post => grace::redeem, VENDOR; }
    "/v1/licenses/{id}/activations" { get => licenses::activations, STAFF; }
    "/v1/licenses/{id}/history" { get => licenses::history, STAFF; }
    "/v1/licenses/{id}/downloads" { get => downloads::links, STAFF; }
    // The signed link is the credential (see `crate::domain::download`).
    "/v1/downloads" { get => downloads::download, Access::Anyone; }
    "/v1/licenses/{id}/suspend" { post => licenses::suspend, VENDOR; }
    "/v1/licenses/{id}/reinstate" { post => licenses::reinstate, VENDOR; }
    "/v1/licenses/{id}/revoke" { post => licenses::revoke, VENDOR; }
    "/v1/licenses/{id}/refund" { post => licenses::refund, VENDOR; }
    "/v1/licenses/{id}/renew" { post => licenses::renew, VENDOR; }
    "/v1/webhook-endpoints" {
        get => webhooks::list, ADMIN;
        post => webhooks::create, ADMIN;
    }
    "/v1/webhook-endpoints/{id}" {
        get => webhooks::get, ADMIN;
        delete => webhooks::remove, ADMIN;
    }
    "/v1/webhook-endpoints/{id}/disable" { post => webhooks::disable, ADMIN; }
    "/v1/webhook-endpoints/{id}/enable" { post => webhooks::enable, ADMIN; }
    "/v1/webhook-endpoints/{id}/rotate-secret" { post => webhooks::rotate_secret, ADMIN; }
    "/v1/webhook-endpoints/{id}/deliveries" { get => webhooks::deliveries, ADMIN; }
    "/v1/webhook-endpoints/{id}/deliveries/{delivery}/resend" {
        post => webhooks::resend, ADMIN;
    }
    "/v1/mail" { get => mail::list, ADMIN; }
}

/// The access of the route a request matched, if any.
pub fn access_of(method: &str, pattern: &str) -> Option<Access> {
    route_index(method, pattern).map(|i| ROUTES[i].access)
}

/// The index in [`ROUTES`] of `method` on `pattern` (HEAD as GET).
pub fn route_index(method: &str, pattern: &str) -> Option<usize> {
    let method = if method == "HEAD" { "GET" } else { method };
    ROUTES
        .iter()
        .position(|r| r.path == pattern && r.method == method)
}

/// Where a request lands in the route table, worked out once per request (by
/// [`observe::observe`]) and read by the access check, the headers and the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteMatch {
    /// The index in [`PATTERNS`] of the pattern its path matches.
    pub pattern: Option<usize>,
    /// The index in [`ROUTES`] of its route (pattern and method).
    pub route: Option<usize>,
}

impl RouteMatch {
    /// Matches `req`'s path and method against the table.
    pub fn of(req: &ServiceRequest) -> Self {
        let Some(pattern) = req.match_pattern() else {
            return Self {
                pattern: None,
                route: None,
            };
        };
        Self {
            pattern: PATTERNS.iter().position(|p| *p == pattern),
            route: route_index(req.method().as_str(), &pattern),
        }
    }

    /// The match [`observe::observe`] left in `req`, or a new one.
    pub fn cached(req: &ServiceRequest) -> Self {
        let cached = req.extensions().get::<Self>().copied();
        cached.unwrap_or_else(|| Self::of(req))
    }

    /// The access of its route.
    pub fn access(self) -> Option<Access> {
        self.route.and_then(|i| ROUTES.get(i)).map(|r| r.access)
    }

    /// Its slot in the request metrics.
    pub fn slot(self) -> Slot {
        match (self.route, self.pattern) {
            (Some(r), _) => Slot::Route(r),
            (None, Some(p)) => Slot::Pattern(p),
            (None, None) => Slot::Unmatched,
        }
    }
}

/// Checks the table's access before any handler or body parser runs: 401 for a
/// missing, malformed, unknown or revoked token, 403 for a role the route does not
/// take. The authenticated caller is left in the request for the handler. A refusal
/// is an answer, not an error, so that the layers around see its status and code.
pub async fn enforce_access<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    // HEAD is GET without the body: the same access (`route_index` sees to it).
    let access = RouteMatch::cached(&req).access();
    let roles = match access {
        Some(Access::Roles(roles)) => Some(roles),
        Some(Access::KeyOrRoles(roles)) if req.headers().contains_key(header::AUTHORIZATION) => {
            Some(roles)
        }
        _ => None,
    };
    if let Some(roles) = roles {
        let checked = match Caller::authenticate(req.request()).await {
            Ok(caller) => caller.require(roles).map(|_| caller),
            Err(e) => Err(e),
        };
        match checked {
            Ok(caller) => {
                log::debug!("caller: token {} ({})", caller.0.id, caller.0.role.as_str());
                req.extensions_mut().insert(caller);
            }
            Err(e) => return Ok(req.error_response(e).map_into_right_body()),
        }
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

/// The route of a table entry's method: a GET route answers HEAD too (actix sends
/// the headers of the GET answer without its body).
fn method_route(method: &str) -> actix_web::Route {
    match method {
        "get" => web::route().guard(guard::Any(guard::Get()).or(guard::Head())),
        "delete" => web::delete(),
        _ => web::post(),
    }
}

/// The methods `path` (a pattern of the table) answers, for `Allow`.
pub fn allowed_methods(path: &str) -> String {
    let mut methods = Vec::new();
    for route in ROUTES.iter().filter(|r| r.path == path) {
        methods.push(route.method);
        if route.method == "GET" {
            methods.push("HEAD");
        }
    }
    methods.join(", ")
}

/// Answers a method the route does not have, naming the ones it has (RFC 9110
/// §15.5.6: a 405 must carry `Allow`).
async fn method_not_allowed(path: &'static str) -> HttpResponse {
    let mut res = ApiError::MethodNotAllowed.error_response();
    if let Ok(allow) = header::HeaderValue::from_str(&allowed_methods(path)) {
        res.headers_mut().insert(header::ALLOW, allow);
    }
    res
}

/// Answers a path no route has.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn ok() -> HttpResponse {
        HttpResponse::Ok().finish()
    }

    mod every_verb {
        use super::*;

        route_table! {
            "/x" {
                get => ok, Access::Anyone;
                post => ok, ADMIN;
                put => ok, ADMIN;
                patch => ok, VENDOR;
                delete => ok, SUPPORT;
                head => ok, Access::Anyone;
            }
        }
    }

    #[test]
    fn the_route_table_keeps_each_routes_own_method() {
        let methods: Vec<_> = every_verb::ROUTES.iter().map(|r| r.method).collect();
        assert_eq!(methods, ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]);
        // The router half of the same table compiles for every verb too.
        let _: fn(&mut web::ServiceConfig) = every_verb::configure;
    }

    #[test]
    fn every_route_is_found_by_its_own_method() {
        for route in ROUTES {
            assert_eq!(
                access_of(route.method, route.path),
                Some(route.access),
                "{route:?}"
            );
        }
        assert_eq!(every_verb::PATTERNS, ["/x"]);
    }

    #[test]
    fn every_pattern_of_the_table_is_listed_once_and_every_route_has_its_pattern() {
        for (i, p) in PATTERNS.iter().enumerate() {
            assert_eq!(PATTERNS.iter().position(|q| q == p), Some(i), "{p} twice");
        }
        for route in ROUTES {
            assert!(PATTERNS.contains(&route.path), "{route:?}");
        }
        assert_eq!(
            route_index("HEAD", "/healthz"),
            route_index("GET", "/healthz")
        );
    }
}
