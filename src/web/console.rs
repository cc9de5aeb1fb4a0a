//! The console's handlers: sign-in, setup links, sign-out and the pages.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use serde::Deserialize;

use crate::domain::staff::{
    base32, base32_decode, check_totp, new_totp_secret, otpauth_uri, Session, StaffSecret,
    TOTP_SECRET_BYTES,
};
use crate::domain::time::{self, Timestamp};
use crate::routes::extract::ClientAddr;
use crate::service::staff::{self as accounts, SignInAttempt, SignInRefused};
use crate::service::{AppState, ServiceError};
use crate::web::pages::{error_page, render, HomePage, LoginPage, Me, SetupPage};
use crate::web::session::{self, Staff};
use crate::web::{see_other, ConsoleState};

/// The style sheet.
pub async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .body(include_str!("../../static/console.css"))
}

/// The script (dates in the agent's time zone; nothing a page needs).
pub async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .body(include_str!("../../static/console.js"))
}

/// A console path no page has.
pub async fn not_found() -> HttpResponse {
    error_page(
        StatusCode::NOT_FOUND,
        "No such page",
        "Check the address, or start again from the search.",
    )
}

/// An operation failed: a page that says so (the cause goes to the log).
pub fn failed(e: &ServiceError) -> HttpResponse {
    match e {
        ServiceError::Unavailable(_) => error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "The database is not answering",
            "Try again in a minute.",
        ),
        other => {
            log::error!("console: {other}");
            error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong on our side",
                "Try again; if it keeps failing, tell the operator.",
            )
        }
    }
}

/// The live session a cookie names at `now`: an ended one (idle, absolute, a
/// disabled account) is removed and counts as none.
pub async fn live_session(
    app: &AppState,
    console: &ConsoleState,
    secret: &StaffSecret,
    now: Timestamp,
) -> Option<Staff> {
    let store = app.store.staff_store();
    let hash = secret.hash();
    let (session, user) = match store.session(hash).await {
        Ok(found) => found?,
        Err(e) => {
            log::warn!("console session look-up failed: {e}");
            return None;
        }
    };
    let ended = session
        .ended(console.settings.session_limits(), now)
        .is_some();
    if ended || user.disabled_at.is_some() {
        if let Err(e) = store.end_session(hash).await {
            log::warn!("could not end a console session: {e}");
        }
        return None;
    }
    if session.needs_touch(now) {
        if let Err(e) = store.touch_session(hash, now, None).await {
            log::warn!("could not note a console session's use: {e}");
        }
    }
    Some(Staff { session, user })
}

/// `?next=` of the sign-in page.
#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// The sign-in form.
pub async fn login_page(query: web::Query<NextQuery>, staff: Option<Staff>) -> HttpResponse {
    if staff.is_some() {
        return see_other(&session::safe_next(query.next.as_deref()));
    }
    render(
        StatusCode::OK,
        &LoginPage {
            me: None,
            error: None,
            email: String::new(),
            next: session::safe_next(query.next.as_deref()),
        },
    )
}

/// The fields of the sign-in form.
#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
    #[serde(default)]
    totp: Option<String>,
    #[serde(default)]
    next: Option<String>,
}

/// A new session's answer: the cookie, and a redirect to `to`.
fn signed_in(secret: &StaffSecret, to: &str) -> HttpResponse {
    let mut res = see_other(to);
    if let Ok(v) = header::HeaderValue::from_str(&session::set_cookie(secret)) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

/// Signs in: a new session (a new id, whatever the browser had) on success; the
/// same answer for an unknown email as for a wrong password.
pub async fn login(
    app: web::Data<AppState>,
    console: web::Data<ConsoleState>,
    address: ClientAddr,
    body: web::Bytes,
    old: Option<Staff>,
) -> HttpResponse {
    let Ok(form) = serde_urlencoded::from_bytes::<LoginForm>(&body) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "The sign-in form was incomplete",
            "Fill in the email and the password.",
        );
    };
    let now = time::now();
    let next = session::safe_next(form.next.as_deref());
    let email = form.email.clone();
    let attempt = SignInAttempt {
        email: form.email,
        password: form.password,
        totp: form.totp.filter(|t| !t.trim().is_empty()),
        address: address.0,
    };
    let store = app.store.staff_store();
    let outcome = accounts::sign_in(
        store,
        &console.limits,
        attempt,
        console.settings.require_totp,
        now,
    )
    .await;
    let page = |status, error: &str| {
        render(
            status,
            &LoginPage {
                me: None,
                error: Some(error.to_owned()),
                email: email.clone(),
                next: next.clone(),
            },
        )
    };
    match outcome {
        Ok(Ok((_, secret, _))) => {
            if let Some(old) = old {
                let _ = store.end_session(old.session.id_hash).await;
            }
            signed_in(&secret, &next)
        }
        Ok(Err(SignInRefused::Wrong)) => page(
            StatusCode::UNAUTHORIZED,
            "The email, the password or the code is not right.",
        ),
        Ok(Err(SignInRefused::Throttled(wait))) => {
            let mut res = page(
                StatusCode::TOO_MANY_REQUESTS,
                &format!(
                    "Too many failed sign-ins. Wait {} minute(s), then try again.",
                    wait.div_ceil(60)
                ),
            );
            if let Ok(v) = header::HeaderValue::from_str(&wait.to_string()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
            res
        }
        Ok(Err(SignInRefused::TotpRequired)) => page(
            StatusCode::FORBIDDEN,
            "This console asks every account for an authenticator code, and yours has none \
             yet. Ask an admin for a new setup link (keyclerk users reset).",
        ),
        Err(e) => failed(&e),
    }
}

/// Signs out: the session ends on the server and the cookie is removed.
pub async fn logout(app: web::Data<AppState>, staff: Staff) -> HttpResponse {
    if let Err(e) = app
        .store
        .staff_store()
        .end_session(staff.session.id_hash)
        .await
    {
        return failed(&e.into());
    }
    let mut res = see_other("/console/login");
    if let Ok(v) = header::HeaderValue::from_str(&session::clear_cookie()) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

fn qr_svg(uri: &str) -> String {
    match qrcode::QrCode::new(uri.as_bytes()) {
        Ok(code) => {
            let svg = code
                .render::<qrcode::render::svg::Color<'_>>()
                .min_dimensions(200, 200)
                .quiet_zone(true)
                .build();
            // The XML declaration has no place inside an HTML page.
            match svg.find("<svg") {
                Some(i) => svg[i..].to_owned(),
                None => svg,
            }
        }
        Err(_) => String::new(),
    }
}

fn setup_form(
    console: &ConsoleState,
    email: &str,
    secret: &str,
    totp: &[u8],
    error: Option<String>,
) -> SetupPage {
    SetupPage {
        me: None,
        error,
        email: email.to_owned(),
        secret: secret.to_owned(),
        totp_key: base32(totp),
        qr_svg: qr_svg(&otpauth_uri(&console.issuer, email, totp)),
        require_totp: console.settings.require_totp,
    }
}

fn link_gone() -> HttpResponse {
    error_page(
        StatusCode::NOT_FOUND,
        "This setup link has expired or was already used",
        "Ask an admin for a new one (keyclerk users reset EMAIL).",
    )
}

/// The form of a setup link: a password, and an authenticator offered.
pub async fn setup_page(
    app: web::Data<AppState>,
    console: web::Data<ConsoleState>,
    path: web::Path<String>,
) -> HttpResponse {
    let secret = StaffSecret::from_presented(&path);
    match app
        .store
        .staff_store()
        .staff_by_setup(secret.hash(), time::now())
        .await
    {
        Ok(Some(user)) => render(
            StatusCode::OK,
            &setup_form(&console, &user.email, &path, &new_totp_secret(), None),
        ),
        Ok(None) => link_gone(),
        Err(e) => failed(&e.into()),
    }
}

/// The fields of the setup form.
#[derive(Deserialize)]
pub struct SetupForm {
    password: String,
    password2: String,
    totp_secret: String,
    #[serde(default)]
    totp: Option<String>,
}

/// Sets the password (and TOTP, when a code proves the app has the key), then signs
/// the staff member in.
pub async fn setup(
    app: web::Data<AppState>,
    console: web::Data<ConsoleState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let now = time::now();
    let secret = StaffSecret::from_presented(&path);
    let store = app.store.staff_store();
    let user = match store.staff_by_setup(secret.hash(), now).await {
        Ok(Some(u)) => u,
        Ok(None) => return link_gone(),
        Err(e) => return failed(&e.into()),
    };
    let Ok(form) = serde_urlencoded::from_bytes::<SetupForm>(&body) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "The setup form was incomplete",
            "Open the setup link again and fill in both password fields.",
        );
    };
    let totp = base32_decode(&form.totp_secret)
        .filter(|k| k.len() == TOTP_SECRET_BYTES)
        .unwrap_or_else(new_totp_secret);
    let again = |error: String| {
        render(
            StatusCode::UNPROCESSABLE_ENTITY,
            &setup_form(&console, &user.email, &path, &totp, Some(error)),
        )
    };
    if form.password != form.password2 {
        return again("The two passwords differ; type the same one twice.".into());
    }
    let code = form.totp.filter(|c| !c.trim().is_empty());
    let (totp_secret, step) = match code {
        Some(code) => match check_totp(&totp, &code, now, None) {
            Some(step) => (Some(totp.clone()), Some(step)),
            None => {
                return again(
                    "That code does not match the key; check the app's clock and try the \
                     newest code."
                        .into(),
                )
            }
        },
        None if console.settings.require_totp => {
            return again("This console requires an authenticator app: enter its code.".into())
        }
        None => (None, None),
    };
    match accounts::complete_setup(store, &secret, form.password, totp_secret, now).await {
        Ok(Some(user)) => {
            let (session, cookie) = Session::start(&user.id, now);
            match store.start_session(session, step).await {
                Ok(()) => signed_in(&cookie, "/console"),
                Err(e) => failed(&e.into()),
            }
        }
        Ok(None) => link_gone(),
        Err(ServiceError::Domain(crate::domain::DomainError::InvalidField { message, .. })) => {
            again(format!("{}.", capitalized(&message)))
        }
        Err(e) => failed(&e),
    }
}

/// `s` with its first letter upper-cased.
pub fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The console's first page.
pub async fn home(staff: Staff) -> HttpResponse {
    render(
        StatusCode::OK,
        &HomePage {
            me: Some(Me::of(&staff)),
        },
    )
}
