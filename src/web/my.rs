//! The customer page (`/my`): sign-in with a key or a link by mail, the
//! customer's licenses, deactivating a machine and the late claim. Every action
//! goes through the service operations the API uses. The security of the
//! console's pages applies (headers, Origin check, CSRF token); only the session
//! cookie differs (`SameSite=Lax`, so that a link from a mail keeps it).

use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use crate::domain::audit::ClaimStatus;
use crate::domain::customer::{days_until, CustomerSession, LinkState, Subject};
use crate::domain::license::{License, LicenseStatus};
use crate::domain::mail::Locale;
use crate::domain::staff::StaffSecret;
use crate::domain::time::{self, Timestamp};
use crate::routes::extract::ClientAddr;
use crate::service::grace::{balances, ClaimAnswer, ClaimBody};
use crate::service::my::LinkLimits;
use crate::service::{AppState, DeactivationRequest, ServiceError};
use crate::storage::activation::Activation;
use crate::storage::EventPage;
use crate::web::i18n::{self, Arg, Text};
use crate::web::pages::render;
use crate::web::{csrf_ok, finish, origin_ok, secure_headers, see_other, session};

/// The session cookie of the customer page.
pub const COOKIE: &str = "__Host-keyclerk_my";
/// The cookie that carries the CSRF token of the forms shown before signing in.
pub const PRE_COOKIE: &str = "__Host-keyclerk_my_pre";
/// The cookie that keeps the language chosen.
pub const LANG_COOKIE: &str = "__Host-keyclerk_lang";

/// Sign-in links asked per email per hour.
pub const LINKS_PER_EMAIL_PER_HOUR: u32 = 5;
/// Sign-in links asked per client address per hour.
pub const LINKS_PER_ADDRESS_PER_HOUR: u32 = 30;

/// What the customer page shares across requests.
pub struct MyState {
    /// The address people reach keyclerk at: links in mail start with it, and a
    /// form's `Origin` must be it (else the `Host` the request came to).
    pub public_url: Option<String>,
    /// Sign-in links asked, per email and per address.
    pub links: LinkLimits,
}

impl MyState {
    /// The state for the top-level `public_url`.
    pub fn new(public_url: Option<String>) -> Self {
        Self {
            public_url,
            links: LinkLimits::new(LINKS_PER_EMAIL_PER_HOUR, LINKS_PER_ADDRESS_PER_HOUR),
        }
    }
}

/// Routes that need a signed-in customer (the others are open to anyone).
const NEED_SESSION: &[&str] = &[
    "/my/logout",
    "/my/machines/{id}/deactivate",
    "/my/licenses/{id}/claim",
];

/// Registers the customer page under `/my`, behind its guard.
pub fn configure(state: Arc<MyState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::from(state)).service(
            web::scope("/my")
                .wrap(actix_web::middleware::from_fn(guard))
                .route("", web::get().to(home))
                .route("/static/my.css", web::get().to(stylesheet))
                .route("/static/my.js", web::get().to(script))
                .route("/sign-in/key", web::post().to(sign_in_key))
                .route("/sign-in/email", web::post().to(sign_in_email))
                .route("/link", web::get().to(link_page))
                .route("/link", web::post().to(link_use))
                .route("/logout", web::post().to(logout))
                .route("/offline", web::get().to(crate::web::my_offline::form))
                .route("/offline", web::post().to(crate::web::my_offline::activate))
                .route("/machines/{id}/deactivate", web::get().to(deactivate_page))
                .route("/machines/{id}/deactivate", web::post().to(deactivate))
                .route("/licenses/{id}/claim", web::post().to(claim))
                .default_service(web::to(not_found)),
        );
    }
}

/// Who is asking, as the guard found out: the session (if any), the CSRF token
/// of the page's forms, and the language.
#[derive(Debug, Clone)]
pub struct Visitor {
    /// The live session, if signed in.
    pub session: Option<CustomerSession>,
    /// The forms' CSRF token (the session's, or the pre-session cookie's).
    pub csrf: String,
    /// The page's strings.
    pub text: Text,
}

impl FromRequest for Visitor {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, actix_web::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let visitor = req.extensions().get::<Visitor>().cloned();
        // The guard runs before every handler of the scope; without it, fail closed.
        std::future::ready(visitor.ok_or_else(|| actix_web::error::ErrorForbidden("no visitor")))
    }
}

impl Visitor {
    /// The signed-in session, or the way to the sign-in (the guard lets none
    /// through without one).
    fn signed_in(&self) -> Result<&CustomerSession, Box<HttpResponse>> {
        self.session
            .as_ref()
            .ok_or_else(|| Box::new(see_other("/my")))
    }
}

fn set_cookie(res: &mut HttpResponse, value: &str) {
    if let Ok(v) = header::HeaderValue::from_str(value) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
}

fn cookie(name: &str, value: &str, extra: &str) -> String {
    format!("{name}={value}; Path=/; Secure; HttpOnly; SameSite=Lax{extra}")
}

/// The live session a cookie names at `now`: an ended one is removed and counts
/// as none.
async fn live_session(
    app: &AppState,
    secret: &StaffSecret,
    now: Timestamp,
) -> Option<CustomerSession> {
    let store = app.store.customer_store();
    let hash = secret.hash();
    let session = match store.customer_session(hash).await {
        Ok(found) => found?,
        Err(e) => {
            log::warn!("customer session look-up failed: {e}");
            return None;
        }
    };
    if session.ended(now) {
        if let Err(e) = store.end_customer_session(hash).await {
            log::warn!("could not end a customer session: {e}");
        }
        return None;
    }
    if session.needs_touch(now) {
        if let Err(e) = store.touch_customer_session(hash, now).await {
            log::warn!("could not note a customer session's use: {e}");
        }
    }
    Some(session)
}

fn query_lang(req: &ServiceRequest) -> Option<Locale> {
    form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "lang")
        .and_then(|(_, v)| Locale::parse(&v))
}

/// Finds the session and the language, checks Origin and the CSRF token on every
/// POST, sends a signed-out visitor of a signed-in page to the sign-in, and sets
/// the security headers (and the pre-session and language cookies).
async fn guard<B: MessageBody + 'static>(
    mut req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let now = time::now();
    let (Some(app), Some(my)) = (
        req.app_data::<web::Data<AppState>>().cloned(),
        req.app_data::<web::Data<MyState>>().cloned(),
    ) else {
        return Ok(finish(req, HttpResponse::InternalServerError().finish()));
    };
    let asked_lang = query_lang(&req);
    let accept = req
        .headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let kept_lang = session::cookie_named(&req, LANG_COOKIE);
    let text = Text::new(i18n::choose(
        asked_lang.map(Locale::as_str),
        kept_lang.as_deref(),
        accept.as_deref(),
    ));
    let session = match session::secret_cookie(&req, COOKIE) {
        Some(secret) => live_session(&app, &secret, now).await,
        None => None,
    };
    let pre = session::cookie_named(&req, PRE_COOKIE).filter(|p| (32..=128).contains(&p.len()));
    let (csrf, new_pre) = match (&session, pre) {
        (Some(s), _) => (s.csrf_token.clone(), None),
        (None, Some(p)) => (p, None),
        (None, None) => {
            let fresh = StaffSecret::generate().expose().to_owned();
            (fresh.clone(), Some(fresh))
        }
    };
    let signed_in = session.is_some();
    let page = |status, heading: &str, advice: &str| {
        message(
            status,
            &Layout::new(text, csrf.clone(), signed_in),
            text.get(heading),
            vec![text.get(advice)],
            None,
        )
    };
    if req.method() == actix_web::http::Method::POST {
        if !origin_ok(&req, my.public_url.as_deref()) {
            let res = page(StatusCode::FORBIDDEN, "my-foreign-title", "my-foreign");
            return Ok(finish(req, res));
        }
        // A fresh pre-session token was never in a form: the POST fails, as it must.
        if !csrf_ok(&mut req, &csrf).await? {
            let res = page(
                StatusCode::FORBIDDEN,
                "my-form-expired-title",
                "my-form-expired",
            );
            return Ok(finish(req, res));
        }
    }
    let pattern = req.match_pattern();
    if !signed_in
        && pattern
            .as_deref()
            .is_some_and(|p| NEED_SESSION.contains(&p))
    {
        return Ok(finish(req, see_other("/my")));
    }
    req.extensions_mut().insert(Visitor {
        session,
        csrf,
        text,
    });
    let mut res = next.call(req).await?;
    secure_headers(res.response_mut());
    let headers = res.response_mut().headers_mut();
    let mut add = |value: String| {
        if let Ok(v) = header::HeaderValue::from_str(&value) {
            headers.append(header::SET_COOKIE, v);
        }
    };
    if let Some(p) = new_pre {
        add(cookie(PRE_COOKIE, &p, ""));
    }
    if let Some(lang) = asked_lang {
        add(cookie(LANG_COOKIE, lang.as_str(), "; Max-Age=31536000"));
    }
    Ok(res.map_into_left_body())
}

/// What every page's layout shows.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The strings.
    pub t: Text,
    /// The CSRF token of the forms.
    pub csrf: String,
    /// Whether the sign-out button shows.
    pub signed_in: bool,
}

impl Layout {
    fn new(t: Text, csrf: String, signed_in: bool) -> Self {
        Self { t, csrf, signed_in }
    }

    pub(crate) fn of(v: &Visitor) -> Self {
        Self::new(v.text, v.csrf.clone(), v.session.is_some())
    }
}

/// A page that says one thing: an outcome or an error.
#[derive(Template)]
#[template(path = "my/message.html")]
pub struct MessagePage {
    /// The strings.
    pub t: Text,
    /// The CSRF token.
    pub csrf: String,
    /// Signed in.
    pub signed_in: bool,
    /// What happened.
    pub heading: String,
    /// What it means, what to do.
    pub paragraphs: Vec<String>,
    /// A new key to show (a granted claim's).
    pub key: Option<String>,
    /// Where to go next.
    pub back_href: String,
    /// Its text.
    pub back_text: String,
}

pub(crate) fn message(
    status: StatusCode,
    layout: &Layout,
    heading: String,
    paragraphs: Vec<String>,
    key: Option<String>,
) -> HttpResponse {
    let t = layout.t;
    render(
        status,
        &MessagePage {
            t,
            csrf: layout.csrf.clone(),
            signed_in: layout.signed_in,
            heading,
            paragraphs,
            key,
            back_href: "/my".to_owned(),
            back_text: t.get("my-back"),
        },
    )
}

pub(crate) fn simple(status: StatusCode, v: &Visitor, heading: &str, advice: &str) -> HttpResponse {
    message(
        status,
        &Layout::of(v),
        v.text.get(heading),
        vec![v.text.get(advice)],
        None,
    )
}

/// An operation failed: a page that says so (the cause goes to the log).
pub(crate) fn failed(v: &Visitor, e: &ServiceError) -> HttpResponse {
    match e {
        ServiceError::Unavailable(_) => simple(
            StatusCode::SERVICE_UNAVAILABLE,
            v,
            "my-down-title",
            "my-down",
        ),
        ServiceError::RateLimited { retry_after_secs } => throttled(v, *retry_after_secs),
        other => {
            log::error!("customer page: {other}");
            simple(
                StatusCode::INTERNAL_SERVER_ERROR,
                v,
                "my-failed-title",
                "my-failed",
            )
        }
    }
}

pub(crate) fn throttled_text(t: Text, secs: u64) -> String {
    let minutes = i64::try_from(secs.div_ceil(60).max(1)).unwrap_or(i64::MAX);
    t.num("my-throttled", "minutes", minutes)
}

pub(crate) fn retry_after(mut res: HttpResponse, secs: u64) -> HttpResponse {
    if let Ok(v) = header::HeaderValue::from_str(&secs.to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

fn throttled(v: &Visitor, secs: u64) -> HttpResponse {
    let res = message(
        StatusCode::TOO_MANY_REQUESTS,
        &Layout::of(v),
        v.text.get("my-failed-title"),
        vec![throttled_text(v.text, secs)],
        None,
    );
    retry_after(res, secs)
}

/// A `/my` path no page has.
pub async fn not_found(v: Visitor) -> HttpResponse {
    simple(
        StatusCode::NOT_FOUND,
        &v,
        "my-not-found-title",
        "my-not-found",
    )
}

/// The style sheet: the console's, and the customer page's few rules.
pub async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .body(concat!(
            include_str!("../../static/console.css"),
            include_str!("../../static/my.css")
        ))
}

/// The script (the copy buttons; nothing a page needs).
pub async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .body(include_str!("../../static/my.js"))
}

/// The sign-in forms.
#[derive(Template)]
#[template(path = "my/sign_in.html")]
pub struct SignInPage {
    /// The strings.
    pub t: Text,
    /// The CSRF token.
    pub csrf: String,
    /// Never signed in here.
    pub signed_in: bool,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// Whether mail is set up (else the email form is replaced by a notice).
    pub mail_on: bool,
}

fn sign_in_page(
    app: &AppState,
    v: &Visitor,
    status: StatusCode,
    error: Option<String>,
) -> HttpResponse {
    render(
        status,
        &SignInPage {
            t: v.text,
            csrf: v.csrf.clone(),
            signed_in: false,
            error,
            mail_on: app.mail_on,
        },
    )
}

/// `/my`: the customer's licenses, or the sign-in forms.
pub async fn home(app: web::Data<AppState>, v: Visitor) -> HttpResponse {
    match &v.session {
        Some(session) => licenses_page(&app, &v, session, time::now()).await,
        None => sign_in_page(&app, &v, StatusCode::OK, None),
    }
}

/// The field of the key form.
#[derive(Deserialize)]
pub struct KeyForm {
    key: String,
}

fn signed_in_answer(secret: &StaffSecret) -> HttpResponse {
    let mut res = see_other("/my");
    set_cookie(&mut res, &cookie(COOKIE, secret.expose(), ""));
    res
}

async fn end_old(app: &AppState, v: &Visitor) {
    if let Some(old) = &v.session {
        let _ = app
            .store
            .customer_store()
            .end_customer_session(old.id_hash)
            .await;
    }
}

/// Signs in with a license key: a new session for that license. Counted like
/// every public look-up of a key; an unknown, malformed or forged key alike.
pub async fn sign_in_key(
    app: web::Data<AppState>,
    v: Visitor,
    address: ClientAddr,
    body: web::Bytes,
) -> HttpResponse {
    let Ok(form) = serde_urlencoded::from_bytes::<KeyForm>(&body) else {
        return simple(
            StatusCode::BAD_REQUEST,
            &v,
            "my-bad-form-title",
            "my-bad-form",
        );
    };
    let now = time::now();
    match app.license_by_key(&form.key, &address.0, now).await {
        Ok(license) => match app
            .start_customer_session(Subject::License(license.id), now)
            .await
        {
            Ok((_, secret)) => {
                end_old(&app, &v).await;
                signed_in_answer(&secret)
            }
            Err(e) => failed(&v, &e),
        },
        Err(ServiceError::Domain(crate::domain::DomainError::LicenseNotFound)) => sign_in_page(
            &app,
            &v,
            StatusCode::UNAUTHORIZED,
            Some(v.text.get("my-key-unknown")),
        ),
        Err(ServiceError::RateLimited { retry_after_secs }) => retry_after(
            sign_in_page(
                &app,
                &v,
                StatusCode::TOO_MANY_REQUESTS,
                Some(throttled_text(v.text, retry_after_secs)),
            ),
            retry_after_secs,
        ),
        Err(e) => failed(&v, &e),
    }
}

/// The field of the email form.
#[derive(Deserialize)]
pub struct EmailForm {
    email: String,
}

/// The address links in mail start with: `public_url`, else the address this
/// request came to.
fn link_base(my: &MyState, req: &HttpRequest) -> String {
    match &my.public_url {
        Some(u) => u.trim_end_matches('/').to_owned(),
        None => {
            let info = req.connection_info();
            format!("{}://{}", info.scheme(), info.host())
        }
    }
}

/// Asks for a sign-in link: the same page, status and work whether or not the
/// email has licenses (the link is stored and mailed only when it has).
pub async fn sign_in_email(
    app: web::Data<AppState>,
    my: web::Data<MyState>,
    v: Visitor,
    address: ClientAddr,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    if !app.mail_on {
        return sign_in_page(
            &app,
            &v,
            StatusCode::SERVICE_UNAVAILABLE,
            Some(v.text.get("my-email-unavailable")),
        );
    }
    let Ok(form) = serde_urlencoded::from_bytes::<EmailForm>(&body) else {
        return simple(
            StatusCode::BAD_REQUEST,
            &v,
            "my-bad-form-title",
            "my-bad-form",
        );
    };
    let email = form.email.trim().to_owned();
    if email.is_empty() || email.len() > 320 {
        return simple(
            StatusCode::BAD_REQUEST,
            &v,
            "my-bad-form-title",
            "my-bad-form",
        );
    }
    let base = link_base(&my, &req);
    let asked = app
        .ask_sign_in_link(
            &my.links,
            &email,
            &address.0,
            v.text.locale,
            // In the query: access logs never keep it, as they keep paths.
            |secret| format!("{base}/my/link?t={secret}"),
            time::now(),
        )
        .await;
    match asked {
        Ok(_) => message(
            StatusCode::OK,
            &Layout::of(&v),
            v.text.get("my-link-sent-title"),
            vec![
                v.text.with("my-link-sent", "email", &email),
                v.text.get("my-link-sent-spam"),
            ],
            None,
        ),
        Err(e) => failed(&v, &e),
    }
}

/// The confirmation of a link from a mail (a button: a link prefetcher that
/// opens the link spends nothing).
#[derive(Template)]
#[template(path = "my/link.html")]
pub struct LinkPage {
    /// The strings.
    pub t: Text,
    /// The CSRF token.
    pub csrf: String,
    /// Signed in (another session may be open).
    pub signed_in: bool,
    /// The link's secret (the form posts back to it).
    pub secret: String,
}

fn link_refused(v: &Visitor, state: &LinkState) -> HttpResponse {
    let (status, heading, advice) = match state {
        LinkState::Used => (StatusCode::GONE, "my-link-used-title", "my-link-used"),
        LinkState::Expired => (StatusCode::GONE, "my-link-expired-title", "my-link-expired"),
        _ => (
            StatusCode::NOT_FOUND,
            "my-link-unknown-title",
            "my-link-unknown",
        ),
    };
    let t = v.text;
    render(
        status,
        &MessagePage {
            t,
            csrf: v.csrf.clone(),
            signed_in: v.session.is_some(),
            heading: t.get(heading),
            paragraphs: vec![t.get(advice)],
            key: None,
            back_href: "/my".to_owned(),
            back_text: t.get("my-link-again"),
        },
    )
}

fn presented(path: &str) -> Option<StaffSecret> {
    (!path.is_empty() && path.len() <= 128 && path.chars().all(|c| c.is_ascii_alphanumeric()))
        .then(|| StaffSecret::from_presented(path))
}

/// `?t=` of the link in the mail.
#[derive(Debug, Deserialize)]
pub struct LinkQuery {
    #[serde(default)]
    t: Option<String>,
}

/// `GET /my/link?t=…`: the button that signs in, or why the link fails.
pub async fn link_page(
    app: web::Data<AppState>,
    v: Visitor,
    query: web::Query<LinkQuery>,
) -> HttpResponse {
    let Some(secret) = query.t.as_deref().and_then(presented) else {
        return link_refused(&v, &LinkState::Unknown);
    };
    match app.sign_in_link_state(&secret, time::now()).await {
        Ok(LinkState::Usable(_)) => render(
            StatusCode::OK,
            &LinkPage {
                t: v.text,
                csrf: v.csrf.clone(),
                signed_in: v.session.is_some(),
                secret: secret.expose().to_owned(),
            },
        ),
        Ok(state) => link_refused(&v, &state),
        Err(e) => failed(&v, &e),
    }
}

/// `POST /my/link` (the secret in the form's `t`, or the query's): spends the
/// link and signs in its email.
pub async fn link_use(
    app: web::Data<AppState>,
    v: Visitor,
    query: web::Query<LinkQuery>,
    body: web::Bytes,
) -> HttpResponse {
    let from_form = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "t")
        .map(|(_, v)| v.into_owned());
    let Some(secret) = from_form
        .or_else(|| query.t.clone())
        .as_deref()
        .and_then(presented)
    else {
        return link_refused(&v, &LinkState::Unknown);
    };
    match app.redeem_sign_in_link(&secret, time::now()).await {
        Ok((LinkState::Usable(_), cookie_secret)) => {
            end_old(&app, &v).await;
            signed_in_answer(&cookie_secret)
        }
        Ok((state, _)) => link_refused(&v, &state),
        Err(e) => failed(&v, &e),
    }
}

/// Signs out: the session ends on the server and the cookie is removed.
pub async fn logout(app: web::Data<AppState>, v: Visitor) -> HttpResponse {
    let session = match v.signed_in() {
        Ok(s) => s,
        Err(res) => return *res,
    };
    if let Err(e) = app
        .store
        .customer_store()
        .end_customer_session(session.id_hash)
        .await
    {
        return failed(&v, &e.into());
    }
    let mut res = see_other("/my");
    set_cookie(&mut res, &cookie(COOKIE, "", "; Max-Age=0"));
    res
}

/// One machine as the page lists it.
#[derive(Debug, Clone)]
pub struct MachineView {
    /// `act_...`
    pub id: String,
    /// Its name, or "(no name)".
    pub name: String,
    /// Its platform.
    pub platform: String,
    /// First activation (date).
    pub since: String,
    /// Last seen (date).
    pub seen: String,
}

/// A file of a license's product, as the page offers it.
#[derive(Debug, Clone)]
pub struct DownloadView {
    /// The file's name.
    pub name: String,
    /// Its size, in words.
    pub size: String,
    /// The signed link.
    pub url: String,
}

/// A size in bytes for people: `12.3 MB`, `512 KB`, `900 B`.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// One license as the page shows it.
#[derive(Debug, Clone)]
pub struct LicenseView {
    /// `lic_...`
    pub id: String,
    /// The product's name.
    pub product: String,
    /// The status, in words.
    pub status: String,
    /// The status's name (its style).
    pub status_code: &'static str,
    /// The shop's order id.
    pub order_id: String,
    /// Purchase date.
    pub purchased: String,
    /// The activation deadline and the days left (or that it was activated).
    pub activate_by: String,
    /// The expiry and the days left.
    pub expires: String,
    /// Seats in use of the seats.
    pub seats: String,
    /// The key.
    pub key: String,
    /// The machines holding a seat.
    pub machines: Vec<MachineView>,
    /// Its files, each with a signed link good for a few minutes.
    pub downloads: Vec<DownloadView>,
    /// Grace decisions, in words.
    pub decisions: Vec<String>,
    /// Claims waiting for support, in words.
    pub pending: Vec<String>,
    /// Whether the late-claim form shows.
    pub claim_form: bool,
}

/// The customer's licenses.
#[derive(Template)]
#[template(path = "my/licenses.html")]
pub struct LicensesPage {
    /// The strings.
    pub t: Text,
    /// The CSRF token.
    pub csrf: String,
    /// Signed in.
    pub signed_in: bool,
    /// Whose licenses these are.
    pub heading: String,
    /// Store credit balances, per currency.
    pub credit: Vec<String>,
    /// The licenses.
    pub licenses: Vec<LicenseView>,
}

fn date(t: Timestamp) -> String {
    t.format("%Y-%m-%d").to_string()
}

fn dated(t: Text, at: Timestamp, now: Timestamp) -> String {
    let d = days_until(at, now);
    let left = if d >= 0 {
        t.num("my-days-left", "days", d)
    } else {
        t.num("my-days-late", "days", -d)
    };
    format!("{} ({left})", date(at))
}

fn decision_text(t: Text, e: &crate::domain::audit::Event) -> String {
    let remedy = e.data.get("remedy").and_then(|r| r.as_str()).unwrap_or("");
    let remedy = match remedy {
        "extend" | "substitute" | "upgrade" | "credit" | "refund" | "decline" => {
            t.get(&format!("my-remedy-{remedy}"))
        }
        other => other.to_owned(),
    };
    let automatic = e
        .data
        .get("automatic")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    t.format(
        "my-decision",
        &[
            ("date", Arg::Str(date(e.at))),
            ("remedy", Arg::Str(remedy)),
            (
                "automatic",
                Arg::Str(if automatic { "yes" } else { "no" }.to_owned()),
            ),
        ],
    )
}

async fn license_view(
    app: &AppState,
    t: Text,
    license: License,
    now: Timestamp,
) -> Result<LicenseView, ServiceError> {
    let (_, key) = app.license_with_key(&license.id).await?;
    let activations = app.store.activations(&license.id).await?;
    let ever_activated = !activations.is_empty();
    let live: Vec<&Activation> = activations
        .iter()
        .filter(|a| a.deactivated_at.is_none())
        .collect();
    let pending = app
        .license_claims(&license.id, ClaimStatus::Pending)
        .await?;
    let history = app
        .history(
            &license.id,
            EventPage {
                after: None,
                limit: 1000,
            },
        )
        .await?;
    let product = app
        .catalog
        .get(&license.product)
        .map_or_else(|| license.product.clone(), |p| p.spec.name.clone());
    let activate_by = if ever_activated {
        t.get("my-activated")
    } else {
        license
            .activate_by
            .map_or_else(|| t.get("my-no-deadline"), |by| dated(t, by, now))
    };
    let expires = match (license.expires_at, license.duration_days) {
        (Some(at), _) => dated(t, at, now),
        (None, Some(_)) => t.get("my-not-yet"),
        (None, None) => t.get("my-never"),
    };
    let claim_form = license.status == LicenseStatus::Active
        && license.window_closed(ever_activated, now)
        && pending.is_empty();
    Ok(LicenseView {
        status: t.get(&format!("my-status-{}", license.status.as_str())),
        status_code: license.status.as_str(),
        order_id: license.order_id.clone(),
        purchased: date(license.purchased_at),
        activate_by,
        expires,
        seats: t.format(
            "my-seats",
            &[
                (
                    "used",
                    Arg::Num(i64::try_from(live.len()).unwrap_or(i64::MAX)),
                ),
                ("seats", Arg::Num(i64::from(license.seats))),
            ],
        ),
        key,
        machines: live
            .iter()
            .map(|a| MachineView {
                id: a.id.clone(),
                name: a
                    .name
                    .clone()
                    .unwrap_or_else(|| t.get("my-machine-unnamed")),
                platform: a.platform.clone().unwrap_or_default(),
                since: date(a.activated_at),
                seen: date(a.last_seen),
            })
            .collect(),
        downloads: app
            .download_links(&license, now)
            .into_iter()
            .map(|d| DownloadView {
                size: human_size(d.size),
                name: d.name,
                url: d.url,
            })
            .collect(),
        decisions: history
            .iter()
            .filter(|e| e.kind == "grace_decision")
            .map(|e| decision_text(t, e))
            .collect(),
        pending: pending
            .iter()
            .map(|c| t.with("my-claims-pending", "date", &date(c.created_at)))
            .collect(),
        claim_form,
        product,
        id: license.id,
    })
}

async fn licenses_page(
    app: &AppState,
    v: &Visitor,
    session: &CustomerSession,
    now: Timestamp,
) -> HttpResponse {
    let t = v.text;
    let licenses = match app.customer_licenses(&session.subject).await {
        Ok(l) => l,
        Err(e) => return failed(v, &e),
    };
    let (heading, email) = match &session.subject {
        Subject::Email(e) => (t.with("my-signed-in-as-email", "email", e), Some(e.clone())),
        Subject::License(_) => (
            t.get("my-signed-in-as-key"),
            licenses.first().and_then(|l| l.customer_email.clone()),
        ),
    };
    let credit = match email {
        Some(e) => match app.credits(&e).await {
            Ok(entries) => balances(&entries)
                .into_iter()
                .filter(|(_, minor)| *minor != 0)
                .map(|(currency, minor)| crate::web::customers::money(minor, &currency))
                .collect(),
            Err(e) => return failed(v, &e),
        },
        None => Vec::new(),
    };
    let mut views = Vec::with_capacity(licenses.len());
    for l in licenses {
        match license_view(app, t, l, now).await {
            Ok(view) => views.push(view),
            Err(e) => return failed(v, &e),
        }
    }
    render(
        StatusCode::OK,
        &LicensesPage {
            t,
            csrf: v.csrf.clone(),
            signed_in: true,
            heading,
            credit,
            licenses: views,
        },
    )
}

/// The session's license that holds the live activation `id`, with it.
async fn own_activation(
    app: &AppState,
    session: &CustomerSession,
    id: &str,
) -> Result<Option<(License, Activation)>, ServiceError> {
    for license in app.customer_licenses(&session.subject).await? {
        let activations = app.store.activations(&license.id).await?;
        if let Some(a) = activations
            .into_iter()
            .find(|a| a.id == id && a.deactivated_at.is_none())
        {
            return Ok(Some((license, a)));
        }
    }
    Ok(None)
}

/// The confirmation step of a deactivation.
#[derive(Template)]
#[template(path = "my/deactivate.html")]
pub struct DeactivatePage {
    /// The strings.
    pub t: Text,
    /// The CSRF token.
    pub csrf: String,
    /// Signed in.
    pub signed_in: bool,
    /// `act_...`
    pub activation_id: String,
    /// "Deactivate NAME?"
    pub question: String,
    /// The churn limit, in words.
    pub limit: String,
}

fn machine_name(t: Text, a: &Activation) -> String {
    a.name
        .clone()
        .unwrap_or_else(|| t.get("my-machine-unnamed"))
}

/// `GET /my/machines/{id}/deactivate`: are you sure?
pub async fn deactivate_page(
    app: web::Data<AppState>,
    v: Visitor,
    path: web::Path<String>,
) -> HttpResponse {
    let session = match v.signed_in() {
        Ok(s) => s,
        Err(res) => return *res,
    };
    let t = v.text;
    match own_activation(&app, session, &path).await {
        Ok(Some((license, a))) => {
            let limit = app
                .policies
                .of(&license.product)
                .max_deactivations_per_30_days;
            render(
                StatusCode::OK,
                &DeactivatePage {
                    t,
                    csrf: v.csrf.clone(),
                    signed_in: true,
                    activation_id: a.id.clone(),
                    question: t.with("my-deactivate-confirm", "name", &machine_name(t, &a)),
                    limit: t.num("my-deactivate-limit", "limit", i64::from(limit)),
                },
            )
        }
        Ok(None) => simple(
            StatusCode::NOT_FOUND,
            &v,
            "my-not-found-title",
            "my-machine-unknown",
        ),
        Err(e) => failed(&v, &e),
    }
}

/// `POST /my/machines/{id}/deactivate`: frees the seat through the service's
/// customer deactivation (within the churn limit).
pub async fn deactivate(
    app: web::Data<AppState>,
    v: Visitor,
    address: ClientAddr,
    path: web::Path<String>,
) -> HttpResponse {
    let session = match v.signed_in() {
        Ok(s) => s,
        Err(res) => return *res,
    };
    let t = v.text;
    let now = time::now();
    let (license, activation) = match own_activation(&app, session, &path).await {
        Ok(Some(found)) => found,
        Ok(None) => {
            return simple(
                StatusCode::NOT_FOUND,
                &v,
                "my-not-found-title",
                "my-machine-unknown",
            )
        }
        Err(e) => return failed(&v, &e),
    };
    let key = match app.license_with_key(&license.id).await {
        Ok((_, key)) => key,
        Err(e) => return failed(&v, &e),
    };
    let request = DeactivationRequest {
        license_key: Some(key),
        reason: None,
    };
    let layout = Layout::of(&v);
    match app
        .deactivate(&activation.id, request, None, &address.0, now)
        .await
    {
        Ok(_) => message(
            StatusCode::OK,
            &layout,
            t.get("my-deactivated-title"),
            vec![t.with("my-deactivated", "name", &machine_name(t, &activation))],
            None,
        ),
        Err(ServiceError::DeactivationLimitReached { retry_after_secs }) => {
            let text = match retry_after_secs {
                Some(secs) => {
                    let at = now + chrono::Duration::seconds(i64::try_from(secs).unwrap_or(0));
                    t.with(
                        "my-deactivate-refused",
                        "date",
                        &at.format("%Y-%m-%d %H:%M UTC").to_string(),
                    )
                }
                None => t.get("my-deactivate-refused-never"),
            };
            let res = message(
                StatusCode::TOO_MANY_REQUESTS,
                &layout,
                t.get("my-deactivate-refused-title"),
                vec![text],
                None,
            );
            match retry_after_secs {
                Some(secs) => retry_after(res, secs),
                None => res,
            }
        }
        Err(ServiceError::ActivationNotFound) => simple(
            StatusCode::NOT_FOUND,
            &v,
            "my-not-found-title",
            "my-machine-unknown",
        ),
        Err(e) => failed(&v, &e),
    }
}

/// The field of the claim form.
#[derive(Deserialize)]
pub struct ClaimForm {
    #[serde(default)]
    message: Option<String>,
}

/// `POST /my/licenses/{id}/claim`: the late claim, through the service's
/// `claim` (the `[late_claims]` policy grants it at once or it waits for support).
pub async fn claim(
    app: web::Data<AppState>,
    v: Visitor,
    address: ClientAddr,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let session = match v.signed_in() {
        Ok(s) => s,
        Err(res) => return *res,
    };
    let t = v.text;
    let Ok(form) = serde_urlencoded::from_bytes::<ClaimForm>(&body) else {
        return simple(
            StatusCode::BAD_REQUEST,
            &v,
            "my-bad-form-title",
            "my-bad-form",
        );
    };
    let license = match app.customer_licenses(&session.subject).await {
        Ok(ls) => ls.into_iter().find(|l| l.id == *path),
        Err(e) => return failed(&v, &e),
    };
    let Some(license) = license else {
        return simple(
            StatusCode::NOT_FOUND,
            &v,
            "my-not-found-title",
            "my-not-found",
        );
    };
    let key = match app.license_with_key(&license.id).await {
        Ok((_, key)) => key,
        Err(e) => return failed(&v, &e),
    };
    let body = ClaimBody {
        license_key: key,
        email: None,
        message: form.message.filter(|m| !m.trim().is_empty()),
        // The mail about the claim is in the page's language.
        locale: Some(t.locale.as_str().to_owned()),
    };
    let layout = Layout::of(&v);
    match app.claim(body, &address.0, time::now()).await {
        Ok(ClaimAnswer::Granted(granted)) => {
            let (decision, _) = *granted;
            let new_key = match &decision.result.new_license {
                Some(id) => match app.license_with_key(id).await {
                    Ok((_, key)) => Some(key),
                    Err(e) => return failed(&v, &e),
                },
                None => None,
            };
            message(
                StatusCode::OK,
                &layout,
                t.get("my-claim-granted-title"),
                vec![t.get("my-claim-granted")],
                new_key,
            )
        }
        Ok(ClaimAnswer::Filed(_)) => message(
            StatusCode::ACCEPTED,
            &layout,
            t.get("my-claim-filed-title"),
            vec![t.get("my-claim-filed")],
            None,
        ),
        Ok(ClaimAnswer::NotNeeded(_)) => message(
            StatusCode::OK,
            &layout,
            t.get("my-claim-not-needed-title"),
            vec![t.get("my-claim-not-needed")],
            None,
        ),
        Err(ServiceError::Domain(crate::domain::DomainError::InvalidField { .. })) => simple(
            StatusCode::BAD_REQUEST,
            &v,
            "my-bad-form-title",
            "my-bad-form",
        ),
        Err(e) => failed(&v, &e),
    }
}
