//! The console's templates (askama: checked when keyclerk is compiled, every value
//! HTML-escaped unless marked safe) and how a page becomes an answer.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use askama::Template;

use crate::domain::staff::StaffRole;
use crate::web::session::Staff;

/// The signed-in staff member, as the layout shows them.
#[derive(Debug, Clone)]
pub struct Me {
    /// Their email.
    pub email: String,
    /// Their role's name.
    pub role: &'static str,
    /// Whether the admin pages are theirs.
    pub admin: bool,
    /// The CSRF token of their session, for the forms.
    pub csrf: String,
}

impl Me {
    /// The layout's view of `staff`.
    pub fn of(staff: &Staff) -> Self {
        Self {
            email: staff.user.email.clone(),
            role: staff.user.role.as_str(),
            admin: staff.user.role == StaffRole::Admin,
            csrf: staff.session.csrf_token.clone(),
        }
    }
}

/// An answer of `status` with the page `t`.
pub fn render(status: StatusCode, t: &impl Template) -> HttpResponse {
    match t.render() {
        Ok(html) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(html),
        Err(e) => {
            log::error!("a console page failed to render: {e}");
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body("Something went wrong on our side.")
        }
    }
}

/// A page that says what went wrong and what to do.
#[derive(Template)]
#[template(path = "console/error.html")]
pub struct ErrorPage {
    /// The layout's user, if signed in.
    pub me: Option<Me>,
    /// What happened.
    pub heading: String,
    /// What to do.
    pub advice: String,
}

/// An error page of `status`.
pub fn error_page(status: StatusCode, heading: &str, advice: &str) -> HttpResponse {
    render(
        status,
        &ErrorPage {
            me: None,
            heading: heading.to_owned(),
            advice: advice.to_owned(),
        },
    )
}

/// The sign-in form.
#[derive(Template)]
#[template(path = "console/login.html")]
pub struct LoginPage {
    /// Never signed in here.
    pub me: Option<Me>,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// The email typed (kept after a failure).
    pub email: String,
    /// Where to go after signing in.
    pub next: String,
}

/// The setup form of a setup link.
#[derive(Template)]
#[template(path = "console/setup.html")]
pub struct SetupPage {
    /// Never signed in here.
    pub me: Option<Me>,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// The account's email.
    pub email: String,
    /// The link's secret (the form posts back to it).
    pub secret: String,
    /// The TOTP key offered, in base32.
    pub totp_key: String,
    /// The QR code of its `otpauth://` URI, as SVG made by keyclerk.
    pub qr_svg: String,
    /// Whether TOTP is required.
    pub require_totp: bool,
}

/// The console's first page: the search.
#[derive(Template)]
#[template(path = "console/home.html")]
pub struct HomePage {
    /// The staff member.
    pub me: Option<Me>,
}

/// One row of the staff list.
#[derive(Debug, Clone)]
pub struct UserRow {
    /// Email.
    pub email: String,
    /// Role.
    pub role: &'static str,
    /// Active, awaiting setup, disabled.
    pub state: String,
    /// Whether TOTP is set up.
    pub totp: &'static str,
    /// The last sign-in, or "never".
    pub last_sign_in: String,
}

/// The admins' list of staff accounts.
#[derive(Template)]
#[template(path = "console/admin_users.html")]
pub struct AdminUsersPage {
    /// The staff member.
    pub me: Option<Me>,
    /// The accounts.
    pub users: Vec<UserRow>,
}
