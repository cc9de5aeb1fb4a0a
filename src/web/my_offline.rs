//! Offline activation on the customer page (`/my/offline`): the customer pastes
//! the request code a machine without internet shows (or opens the page from its
//! QR code, the code in the address's fragment) and gets that machine's
//! certificate as a file. The code carries the license key, so the page needs no
//! sign-in: the activation is the service's own (`POST /v1/activations`), with its
//! seats, rules, audit events and look-up limits.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use askama::Template;
use keyclerk_client::offline::{
    ActivationRequest as RequestCode, CertificateFile, CodeError, CERTIFICATE_FILE_FORMAT,
};
use serde::Deserialize;

use crate::domain::activation::Refusal;
use crate::domain::time;
use crate::routes::extract::ClientAddr;
use crate::service::{Activated, ActivationRequest, AppState, ServiceError};
use crate::web::i18n::Text;
use crate::web::my::{failed, message, retry_after, simple, throttled_text, Layout, Visitor};
use crate::web::pages::render;

/// The offline activation form.
#[derive(Template)]
#[template(path = "my/offline.html")]
pub struct OfflinePage {
    /// The strings.
    pub t: Text,
    /// The CSRF token.
    pub csrf: String,
    /// Signed in (the sign-out button shows).
    pub signed_in: bool,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// The code sent, to correct it.
    pub code: String,
}

fn page(v: &Visitor, status: StatusCode, error: Option<String>, code: String) -> HttpResponse {
    render(
        status,
        &OfflinePage {
            t: v.text,
            csrf: v.csrf.clone(),
            signed_in: v.session.is_some(),
            error,
            code,
        },
    )
}

/// `GET /my/offline`: the form.
pub async fn form(v: Visitor) -> HttpResponse {
    page(&v, StatusCode::OK, None, String::new())
}

/// The field of the form.
#[derive(Deserialize)]
pub struct CodeForm {
    code: String,
}

/// The page's words for a refusal of the activation.
fn refusal_key(r: Refusal) -> &'static str {
    match r {
        Refusal::Suspended => "my-offline-suspended",
        Refusal::Revoked => "my-offline-revoked",
        Refusal::Superseded => "my-offline-superseded",
        Refusal::PendingPayment => "my-offline-pending",
        Refusal::Expired => "my-offline-expired",
        Refusal::WindowClosed => "my-offline-window-closed",
        Refusal::SeatLimitReached => "my-offline-seats",
    }
}

/// The file of a granted activation, as an attachment.
fn certificate_file(done: &Activated) -> HttpResponse {
    let file = CertificateFile {
        format: CERTIFICATE_FILE_FORMAT.to_owned(),
        version: 1,
        certificate: done.certificate.clone(),
        license: done.license.id.clone(),
        activation: done.activation.id.clone(),
        product: done.license.product.clone(),
        machine: done.activation.name.clone(),
        lease_expires_at: time::format(done.lease_expires_at),
    };
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{}\"", file.file_name()),
        ))
        .body(file.to_json())
}

/// `POST /my/offline`: reads the code and activates its machine; the answer is
/// the certificate file, or the form again with what went wrong.
pub async fn activate(
    app: web::Data<AppState>,
    v: Visitor,
    address: ClientAddr,
    body: web::Bytes,
) -> HttpResponse {
    let Ok(form) = serde_urlencoded::from_bytes::<CodeForm>(&body) else {
        return simple(
            StatusCode::BAD_REQUEST,
            &v,
            "my-bad-form-title",
            "my-bad-form",
        );
    };
    let t = v.text;
    let again = |status, key: &str| page(&v, status, Some(t.get(key)), form.code.clone());
    let request = match RequestCode::parse(&form.code) {
        Ok(r) => r,
        Err(CodeError::NotACode) => return again(StatusCode::BAD_REQUEST, "my-offline-not-a-code"),
        Err(CodeError::UnknownFormat(_)) => {
            return again(StatusCode::BAD_REQUEST, "my-offline-newer")
        }
        Err(CodeError::Damaged | CodeError::TooLong(_)) => {
            return again(StatusCode::BAD_REQUEST, "my-offline-damaged")
        }
    };
    let request = ActivationRequest {
        license_key: request.license_key,
        fingerprint: request.fingerprint,
        name: request.name,
        platform: request.platform,
    };
    match app.activate(request, &address.0, time::now()).await {
        Ok(done) => certificate_file(&done),
        Err(ServiceError::Domain(crate::domain::DomainError::LicenseNotFound)) => {
            again(StatusCode::NOT_FOUND, "my-offline-key-unknown")
        }
        // A code this crate wrote whose fields the server refuses (a fingerprint or
        // a name of the wrong shape): made by a broken app, not mistyped.
        Err(ServiceError::Domain(crate::domain::DomainError::InvalidField { .. })) => {
            again(StatusCode::BAD_REQUEST, "my-offline-invalid")
        }
        Err(ServiceError::Refused(r)) => {
            let status = if r == Refusal::SeatLimitReached {
                StatusCode::CONFLICT
            } else {
                StatusCode::FORBIDDEN
            };
            message(
                status,
                &Layout::of(&v),
                t.get("my-offline-refused-title"),
                vec![t.get(refusal_key(r))],
                None,
            )
        }
        Err(ServiceError::RateLimited { retry_after_secs }) => retry_after(
            page(
                &v,
                StatusCode::TOO_MANY_REQUESTS,
                Some(throttled_text(t, retry_after_secs)),
                form.code.clone(),
            ),
            retry_after_secs,
        ),
        Err(e) => failed(&v, &e),
    }
}
