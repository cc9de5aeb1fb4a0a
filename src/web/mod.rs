//! The pages: the support console (`/console`), its sessions, CSRF and Origin
//! checks, and the security headers of every page.
//!
//! The console's route table below is the one truth of who may open what, as
//! [`crate::routes::ROUTES`] is for the API (kept apart: the API table is also the
//! API's contract, which pages are not part of).

pub mod admin;
pub mod claims;
pub mod console;
pub mod customers;
pub mod display;
pub mod i18n;
pub mod licenses;
pub mod my;
pub mod my_offline;
pub mod pages;
pub mod session;
pub mod settings;

use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpResponse};

use crate::domain::staff::StaffRole;
use crate::domain::time;
use crate::service::staff::SignInLimits;
use crate::service::AppState;
pub use settings::ConsoleSettings;

/// The Content-Security-Policy of every console page: nothing inline, nothing from
/// elsewhere, no frames.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// Who may open a console route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageAccess {
    /// Anyone (sign-in, setup links, the style sheet).
    Public,
    /// A signed-in staff member of this role (admins may open every page).
    Staff(StaffRole),
}

/// One console route: method, pattern and access.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// The pattern, `{name}` for a path parameter.
    pub path: &'static str,
    /// Who may open it.
    pub access: PageAccess,
}

const SUPPORT: PageAccess = PageAccess::Staff(StaffRole::Support);
const ADMIN: PageAccess = PageAccess::Staff(StaffRole::Admin);

macro_rules! page_table {
    ($( $method:ident $path:literal => $handler:path, $access:expr; )+) => {
        /// Every console route.
        pub const PAGES: &[Page] = &[
            $( Page {
                method: match stringify!($method).as_bytes() {
                    b"get" => "GET",
                    _ => "POST",
                },
                path: $path,
                access: $access,
            }, )+
        ];

        fn register(cfg: &mut web::ServiceConfig) {
            $( cfg.route(
                $path.strip_prefix("/console").unwrap_or($path),
                web::$method().to($handler),
            ); )+
        }
    };
}

page_table! {
    get "/console/static/console.css" => console::stylesheet, PageAccess::Public;
    get "/console/static/console.js" => console::script, PageAccess::Public;
    get "/console/login" => console::login_page, PageAccess::Public;
    post "/console/login" => console::login, PageAccess::Public;
    get "/console/setup/{secret}" => console::setup_page, PageAccess::Public;
    post "/console/setup/{secret}" => console::setup, PageAccess::Public;
    post "/console/logout" => console::logout, SUPPORT;
    get "/console" => console::home, SUPPORT;
    get "/console/search" => licenses::search, SUPPORT;
    get "/console/licenses/{id}" => licenses::license, SUPPORT;
    post "/console/licenses/{id}/key" => licenses::reveal_key, SUPPORT;
    get "/console/licenses/{id}/confirm" => licenses::confirm, SUPPORT;
    post "/console/licenses/{id}/act" => licenses::act, SUPPORT;
    get "/console/licenses/{id}/remedy" => claims::preview, SUPPORT;
    post "/console/licenses/{id}/remedy" => claims::decide, SUPPORT;
    get "/console/claims" => claims::queue, SUPPORT;
    get "/console/customers" => customers::lookup, SUPPORT;
    get "/console/customers/{email}" => customers::customer, SUPPORT;
    get "/console/admin/users" => admin::users, ADMIN;
    post "/console/admin/users" => admin::create_user, ADMIN;
    post "/console/admin/users/disable" => admin::disable_user, ADMIN;
    post "/console/admin/users/reset" => admin::reset_user, ADMIN;
    get "/console/admin/tokens" => admin::tokens, ADMIN;
    post "/console/admin/tokens" => admin::create_token, ADMIN;
    post "/console/admin/tokens/{id}/revoke" => admin::revoke_token, ADMIN;
    get "/console/admin/audit" => admin::audit, ADMIN;
}

/// The access of the console route `method` on `pattern`.
pub fn access_of(method: &str, pattern: &str) -> Option<PageAccess> {
    let method = if method == "HEAD" { "GET" } else { method };
    PAGES
        .iter()
        .find(|p| p.path == pattern && p.method == method)
        .map(|p| p.access)
}

/// What the console shares across requests.
pub struct ConsoleState {
    /// `[console]`.
    pub settings: ConsoleSettings,
    /// Failed sign-ins per account and address.
    pub limits: SignInLimits,
    /// The name shown in authenticator apps (the issuer).
    pub issuer: String,
}

impl ConsoleState {
    /// The state for `settings`.
    pub fn new(settings: &ConsoleSettings, issuer: &str) -> Self {
        Self {
            settings: settings.clone(),
            limits: SignInLimits::new(
                settings.failed_sign_ins_per_account,
                settings.failed_sign_ins_per_address,
            ),
            issuer: issuer.to_owned(),
        }
    }
}

/// Registers the console under `/console`, behind its guard.
pub fn configure(state: Arc<ConsoleState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::from(state)).service(
            web::scope("/console")
                .wrap(actix_web::middleware::from_fn(guard))
                .configure(register)
                .default_service(web::to(console::not_found)),
        );
    }
}

/// Sets the security headers of a page's answer (the console's and the
/// customer page's alike).
pub(crate) fn secure_headers(res: &mut HttpResponse<impl MessageBody>) {
    let h = res.headers_mut();
    let set = |h: &mut header::HeaderMap, name: header::HeaderName, value: &'static str| {
        h.insert(name, header::HeaderValue::from_static(value));
    };
    set(h, header::CONTENT_SECURITY_POLICY, CSP);
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::CACHE_CONTROL, "no-store");
    // `same-origin`, not `no-referrer`: under `no-referrer` a browser sends
    // `Origin: null` with the console's own forms, which the Origin check must
    // refuse. No page address (a setup link's secret) leaves for another site.
    set(h, header::REFERRER_POLICY, "same-origin");
    set(
        h,
        header::HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
}

/// A redirect (303: the browser follows with GET).
pub fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .finish()
}

/// Resolves the session, enforces the page table, checks Origin and CSRF on every
/// POST, and sets the security headers on every answer.
async fn guard<B: MessageBody + 'static>(
    mut req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let now = time::now();
    let pattern = req.match_pattern();
    let access = pattern
        .as_deref()
        .and_then(|p| access_of(req.method().as_str(), p));
    let (Some(app), Some(console)) = (
        req.app_data::<web::Data<AppState>>().cloned(),
        req.app_data::<web::Data<ConsoleState>>().cloned(),
    ) else {
        return Ok(req
            .into_response(HttpResponse::InternalServerError().finish())
            .map_into_right_body());
    };
    let staff = match session::cookie_of(&req) {
        Some(secret) => console::live_session(&app, &console, &secret, now).await,
        None => None,
    };
    let is_post = req.method() == actix_web::http::Method::POST;
    if is_post && !origin_ok(&req, console.settings.public_url.as_deref()) {
        let res = pages::error_page(
            StatusCode::FORBIDDEN,
            "This form did not come from keyclerk's own pages",
            "Open the page again from the console and send the form from there.",
        );
        return Ok(finish(req, res));
    }
    match access {
        None | Some(PageAccess::Public) => {}
        Some(PageAccess::Staff(role)) => {
            let Some(staff) = &staff else {
                let path = req.uri().path().to_owned();
                let query = req
                    .uri()
                    .query()
                    .map(|q| format!("?{q}"))
                    .unwrap_or_default();
                let next = if req.method() == actix_web::http::Method::GET {
                    format!("{path}{query}")
                } else {
                    "/console".to_owned()
                };
                let to = format!(
                    "/console/login?next={}",
                    form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
                );
                return Ok(finish(req, see_other(&to)));
            };
            if !staff.user.role.may(role) {
                let res = pages::error_page(
                    StatusCode::FORBIDDEN,
                    "This page is for admins",
                    "Ask an admin if you need what it offers.",
                );
                return Ok(finish(req, res));
            }
            if is_post {
                let ok = csrf_ok(&mut req, &staff.session.csrf_token).await?;
                if !ok {
                    let res = pages::error_page(
                        StatusCode::FORBIDDEN,
                        "This form has expired",
                        "Open the page again and send the form once more.",
                    );
                    return Ok(finish(req, res));
                }
            }
        }
    }
    if let Some(staff) = staff {
        req.extensions_mut().insert(staff);
    }
    let mut res = next.call(req).await?;
    secure_headers(res.response_mut());
    Ok(res.map_into_left_body())
}

/// Whether a request's `Origin` is keyclerk's own (see [`session::origin_is_own`]).
pub(crate) fn origin_ok(req: &ServiceRequest, public_url: Option<&str>) -> bool {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok());
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok());
    session::origin_is_own(origin, host, public_url)
}

/// Whether a POST carries the CSRF token `expected` (in the `X-CSRF-Token` header
/// or the form's `csrf` field); the body is put back for the handler.
pub(crate) async fn csrf_ok(
    req: &mut ServiceRequest,
    expected: &str,
) -> Result<bool, actix_web::Error> {
    let from_header = req
        .headers()
        .get(session::CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = req.extract::<web::Bytes>().await?;
    let token = from_header.or_else(|| session::csrf_in_form(&body));
    req.set_payload(actix_web::dev::Payload::from(body));
    Ok(token
        .as_deref()
        .is_some_and(|t| !expected.is_empty() && crate::domain::staff::same_secret(t, expected)))
}

/// A page answer of the guard, with the security headers.
pub(crate) fn finish<B>(
    req: ServiceRequest,
    mut res: HttpResponse,
) -> ServiceResponse<EitherBody<B>> {
    secure_headers(&mut res);
    req.into_response(res).map_into_right_body()
}
