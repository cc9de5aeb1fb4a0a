//! The admins' pages: staff accounts (create, disable, reset: the operations of
//! `keyclerk users`), API tokens (the operations of `/v1/tokens`) and the audit
//! chain's status (what `keyclerk audit verify` checks).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use crate::domain::staff::StaffRole;
use crate::domain::time;
use crate::domain::token::Role;
use crate::service::staff as accounts;
use crate::service::{AppState, ServiceError};
use crate::web::console::{capitalized, failed};
use crate::web::pages::{
    error_page, render, AdminAuditPage, AdminTokensPage, AdminUsersPage, Me, Shown, TokenRow,
    UserRow,
};
use crate::web::session::Staff;
use crate::web::{see_other, ConsoleState};

/// A refusal the admin can fix (a taken email, a malformed name), in words; `None`
/// for a failure of keyclerk's own.
fn refusal(e: &ServiceError) -> Option<String> {
    match e {
        ServiceError::Domain(d) => Some(format!("{}.", capitalized(&d.to_string()))),
        ServiceError::InvalidParameter(m) => Some(format!("{}.", capitalized(m))),
        _ => None,
    }
}

/// The staff list, with what was just made (shown once) or why it was refused.
async fn users_page(
    app: &AppState,
    staff: &Staff,
    status: StatusCode,
    shown: Option<Shown>,
    error: Option<String>,
) -> HttpResponse {
    let users = match app.store.staff_store().staff().await {
        Ok(u) => u,
        Err(e) => return failed(&e.into()),
    };
    let users = users
        .into_iter()
        .map(|u| UserRow {
            state: match (u.disabled_at, u.has_password) {
                (Some(_), _) => "disabled".into(),
                (None, false) => "awaiting setup".into(),
                (None, true) => "active".into(),
            },
            disabled: u.disabled_at.is_some(),
            totp: if u.has_totp { "set up" } else { "none" },
            last_sign_in: u
                .last_sign_in_at
                .map_or_else(|| "never".to_owned(), time::format),
            role: u.role.as_str(),
            email: u.email,
        })
        .collect();
    render(
        status,
        &AdminUsersPage {
            me: Some(Me::of(staff)),
            csrf: staff.session.csrf_token.clone(),
            users,
            shown,
            error,
        },
    )
}

/// Staff accounts.
pub async fn users(app: web::Data<AppState>, staff: Staff) -> HttpResponse {
    users_page(&app, &staff, StatusCode::OK, None, None).await
}

/// The address setup links start with: `public_url`, else the one this page was
/// opened at.
fn link_base(console: &ConsoleState, req: &HttpRequest) -> String {
    match &console.settings.public_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => {
            let info = req.connection_info();
            format!("{}://{}", info.scheme(), info.host())
        }
    }
}

/// The fields of the new-account form.
#[derive(Deserialize)]
pub struct CreateUserForm {
    email: String,
    role: String,
}

/// Makes an account with a setup link, shown once.
pub async fn create_user(
    app: web::Data<AppState>,
    console: web::Data<ConsoleState>,
    staff: Staff,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let Ok(form) = serde_urlencoded::from_bytes::<CreateUserForm>(&body) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "The form was incomplete",
            "Give the email and the role of the new account.",
        );
    };
    let Some(role) = StaffRole::parse(&form.role) else {
        let error = "Choose the role support or admin.".to_owned();
        return users_page(
            &app,
            &staff,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            Some(error),
        )
        .await;
    };
    let store = app.store.staff_store();
    let made = accounts::create(
        store,
        &form.email,
        role,
        None,
        staff.user.actor(),
        time::now(),
    )
    .await;
    match made {
        Ok((user, Some(secret))) => {
            let shown = Shown {
                what: format!(
                    "The setup link of {} ({}): send it to them; it works once, for {} hours, \
                     and is not shown again.",
                    user.email,
                    user.role.as_str(),
                    crate::domain::staff::SETUP_VALID_HOURS
                ),
                secret: format!(
                    "{}{}",
                    link_base(&console, &req),
                    accounts::setup_path(&secret)
                ),
            };
            users_page(&app, &staff, StatusCode::OK, Some(shown), None).await
        }
        Ok((_, None)) => see_other("/console/admin/users"),
        Err(e) => match refusal(&e) {
            Some(error) => {
                users_page(
                    &app,
                    &staff,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    None,
                    Some(error),
                )
                .await
            }
            None => failed(&e),
        },
    }
}

/// The field of the disable and reset forms.
#[derive(Deserialize)]
pub struct EmailForm {
    email: String,
}

fn incomplete_email_form() -> HttpResponse {
    error_page(
        StatusCode::BAD_REQUEST,
        "The form was incomplete",
        "Open the staff page again and use its buttons.",
    )
}

/// Disables an account; its sessions end at once.
pub async fn disable_user(
    app: web::Data<AppState>,
    staff: Staff,
    body: web::Bytes,
) -> HttpResponse {
    let Ok(form) = serde_urlencoded::from_bytes::<EmailForm>(&body) else {
        return incomplete_email_form();
    };
    let store = app.store.staff_store();
    match accounts::disable(store, &form.email, staff.user.actor(), time::now()).await {
        Ok(_) => see_other("/console/admin/users"),
        Err(e) => match refusal(&e) {
            Some(error) => {
                users_page(
                    &app,
                    &staff,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    None,
                    Some(error),
                )
                .await
            }
            None => failed(&e),
        },
    }
}

/// Gives an account a new setup link (shown once); its password, TOTP and
/// sessions end.
pub async fn reset_user(
    app: web::Data<AppState>,
    console: web::Data<ConsoleState>,
    staff: Staff,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let Ok(form) = serde_urlencoded::from_bytes::<EmailForm>(&body) else {
        return incomplete_email_form();
    };
    let store = app.store.staff_store();
    match accounts::reset(store, &form.email, staff.user.actor(), time::now()).await {
        Ok((user, secret)) => {
            let shown = Shown {
                what: format!(
                    "The new setup link of {}: its password and sessions have ended; the link \
                     works once, for {} hours, and is not shown again.",
                    user.email,
                    crate::domain::staff::SETUP_VALID_HOURS
                ),
                secret: format!(
                    "{}{}",
                    link_base(&console, &req),
                    accounts::setup_path(&secret)
                ),
            };
            users_page(&app, &staff, StatusCode::OK, Some(shown), None).await
        }
        Err(e) => match refusal(&e) {
            Some(error) => {
                users_page(
                    &app,
                    &staff,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    None,
                    Some(error),
                )
                .await
            }
            None => failed(&e),
        },
    }
}

/// The token list, with a new secret (shown once) or why a form was refused.
async fn tokens_page(
    app: &AppState,
    staff: &Staff,
    status: StatusCode,
    shown: Option<Shown>,
    error: Option<String>,
) -> HttpResponse {
    let tokens = match app.tokens().await {
        Ok(t) => t,
        Err(e) => return failed(&e),
    };
    let tokens = tokens
        .into_iter()
        .map(|t| TokenRow {
            role: t.role.as_str(),
            created: time::format(t.created_at),
            revoked: t.revoked_at.map(time::format),
            id: t.id,
            name: t.name,
            prefix: t.prefix,
        })
        .collect();
    render(
        status,
        &AdminTokensPage {
            me: Some(Me::of(staff)),
            csrf: staff.session.csrf_token.clone(),
            tokens,
            shown,
            error,
        },
    )
}

/// API tokens.
pub async fn tokens(app: web::Data<AppState>, staff: Staff) -> HttpResponse {
    tokens_page(&app, &staff, StatusCode::OK, None, None).await
}

/// The fields of the new-token form.
#[derive(Deserialize)]
pub struct CreateTokenForm {
    name: String,
    role: String,
}

/// Makes a token; its secret is on this page and nowhere else.
pub async fn create_token(
    app: web::Data<AppState>,
    staff: Staff,
    body: web::Bytes,
) -> HttpResponse {
    let Ok(form) = serde_urlencoded::from_bytes::<CreateTokenForm>(&body) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "The form was incomplete",
            "Give the new token a name and a role.",
        );
    };
    let Some(role) = Role::parse(&form.role) else {
        let error = "Choose the role admin, vendor or support.".to_owned();
        return tokens_page(
            &app,
            &staff,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            Some(error),
        )
        .await;
    };
    match app
        .create_token(role, &form.name, staff.user.actor(), time::now())
        .await
    {
        Ok((token, secret)) => {
            let shown = Shown {
                what: format!(
                    "The secret of {} ({}, {}): copy it now; keyclerk keeps only its hash \
                     and will not show it again.",
                    token.name,
                    token.role.as_str(),
                    token.id
                ),
                secret: secret.expose().to_owned(),
            };
            tokens_page(&app, &staff, StatusCode::CREATED, Some(shown), None).await
        }
        Err(e) => match refusal(&e) {
            Some(error) => {
                tokens_page(
                    &app,
                    &staff,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    None,
                    Some(error),
                )
                .await
            }
            None => failed(&e),
        },
    }
}

/// Revokes a token: the API refuses it from now on.
pub async fn revoke_token(
    app: web::Data<AppState>,
    staff: Staff,
    path: web::Path<String>,
) -> HttpResponse {
    match app
        .revoke_token(path.into_inner(), staff.user.actor(), time::now())
        .await
    {
        Ok(_) => see_other("/console/admin/tokens"),
        Err(e) => match refusal(&e) {
            Some(error) => {
                tokens_page(&app, &staff, StatusCode::NOT_FOUND, None, Some(error)).await
            }
            None => failed(&e),
        },
    }
}

/// The audit chain: verified from its first event, its length and head.
pub async fn audit(app: web::Data<AppState>, staff: Staff) -> HttpResponse {
    let checked = match app.store.audit_head().await {
        Ok(c) => c,
        Err(e) => return failed(&e.into()),
    };
    let (intact, length, head, problem) = match checked {
        Ok(h) => (
            true,
            h.length,
            crate::domain::payments::hex(&h.hash),
            String::new(),
        ),
        Err(e) => (false, 0, String::new(), e.to_string()),
    };
    render(
        StatusCode::OK,
        &AdminAuditPage {
            me: Some(Me::of(&staff)),
            intact,
            length,
            head,
            problem,
            checked_at: time::format(time::now()),
        },
    )
}
