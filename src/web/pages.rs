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
    /// Whether it is disabled (no disable button then).
    pub disabled: bool,
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
    /// The CSRF token of the forms.
    pub csrf: String,
    /// The accounts.
    pub users: Vec<UserRow>,
    /// A setup link just made, shown this once.
    pub shown: Option<Shown>,
    /// Why the last form was refused.
    pub error: Option<String>,
}

/// A secret shown once (a setup link, an API token), and what it is.
#[derive(Debug, Clone)]
pub struct Shown {
    /// What it is and what to do with it.
    pub what: String,
    /// The secret.
    pub secret: String,
}

/// One row of the token list.
#[derive(Debug, Clone)]
pub struct TokenRow {
    /// `tok_...`
    pub id: String,
    /// Who it is for.
    pub name: String,
    /// Its role.
    pub role: &'static str,
    /// The visible start of its secret.
    pub prefix: String,
    /// When it was made (RFC 3339).
    pub created: String,
    /// When it was revoked (RFC 3339).
    pub revoked: Option<String>,
}

/// The admins' list of API tokens.
#[derive(Template)]
#[template(path = "console/admin_tokens.html")]
pub struct AdminTokensPage {
    /// The staff member.
    pub me: Option<Me>,
    /// The CSRF token of the forms.
    pub csrf: String,
    /// Every token, without secrets.
    pub tokens: Vec<TokenRow>,
    /// A secret just made, shown this once.
    pub shown: Option<Shown>,
    /// Why the last form was refused.
    pub error: Option<String>,
}

/// The audit chain's status.
#[derive(Template)]
#[template(path = "console/admin_audit.html")]
pub struct AdminAuditPage {
    /// The staff member.
    pub me: Option<Me>,
    /// Whether every link of the chain holds.
    pub intact: bool,
    /// Events in the chain (when intact).
    pub length: i64,
    /// The last event's hash, in hex (when intact).
    pub head: String,
    /// What is wrong (when not intact).
    pub problem: String,
    /// When it was checked (RFC 3339).
    pub checked_at: String,
}

/// A time as the pages show it: the date, with the full UTC time in `datetime`
/// (the script shows it in the agent's time zone).
#[derive(Debug, Clone)]
pub struct When {
    /// RFC 3339, UTC.
    pub iso: String,
    /// `YYYY-MM-DD`, UTC.
    pub date: String,
}

/// One license of a customer.
#[derive(Debug, Clone)]
pub struct LicenseRow {
    /// `lic_...`
    pub id: String,
    /// Product slug.
    pub product: String,
    /// Status name.
    pub status: &'static str,
    /// The shop's order id.
    pub order_id: String,
    /// When it was bought.
    pub purchased: When,
    /// The activation deadline.
    pub activate_by: Option<When>,
    /// The end.
    pub expires: Option<When>,
    /// Seats.
    pub seats: u32,
    /// The shop's metadata as JSON text (empty when none).
    pub metadata: String,
}

/// One line of a customer's credit ledger.
#[derive(Debug, Clone)]
pub struct CreditRow {
    /// When.
    pub at: When,
    /// `grant` or `redeem`.
    pub kind: String,
    /// Signed amount with its currency.
    pub amount: String,
    /// The license closed for it.
    pub license_id: Option<String>,
    /// The order it paid for.
    pub order_id: Option<String>,
}

/// One claim of a customer.
#[derive(Debug, Clone)]
pub struct ClaimRow {
    /// `clm_...`
    pub id: String,
    /// The license claimed.
    pub license_id: String,
    /// `pending`, `granted`, `resolved`.
    pub status: &'static str,
    /// When it was filed.
    pub filed: When,
    /// When it was closed.
    pub resolved: Option<When>,
    /// The customer's message.
    pub message: String,
    /// Why the policy left it to support.
    pub note: String,
}

/// A customer: their licenses, credit and claims.
#[derive(Template)]
#[template(path = "console/customer.html")]
pub struct CustomerPage {
    /// The staff member.
    pub me: Option<Me>,
    /// The customer's email (lower-cased).
    pub email: String,
    /// Every license sold to it.
    pub licenses: Vec<LicenseRow>,
    /// The balance per currency.
    pub balances: Vec<String>,
    /// The ledger, oldest first.
    pub credits: Vec<CreditRow>,
    /// Their claims, oldest first.
    pub claims: Vec<ClaimRow>,
}
