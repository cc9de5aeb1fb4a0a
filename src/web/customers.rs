//! The customer page: every license sold to an email, their credit ledger with its
//! balance per currency, and their claims.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

use crate::domain::license::License;
use crate::domain::time::{self, Timestamp};
use crate::service::grace::balances;
use crate::service::AppState;
use crate::storage::LicenseLookup;
use crate::web::console::failed;
use crate::web::pages::{render, ClaimRow, CreditRow, CustomerPage, LicenseRow, Me, When};
use crate::web::see_other;
use crate::web::session::Staff;

/// `?email=` of `/console/customers`.
#[derive(Debug, Deserialize)]
pub struct EmailQuery {
    email: Option<String>,
}

/// The path of the customer page of `email`.
pub fn customer_path(email: &str) -> String {
    let encoded: String = form_urlencoded::byte_serialize(email.as_bytes()).collect();
    // `byte_serialize` writes a space as `+`, which a path keeps as `+`.
    format!("/console/customers/{}", encoded.replace('+', "%20"))
}

/// `/console/customers?email=E`: the customer page of E (the form's target).
pub async fn lookup(query: web::Query<EmailQuery>) -> HttpResponse {
    match query.email.as_deref().map(str::trim) {
        Some(email) if !email.is_empty() => see_other(&customer_path(email)),
        _ => see_other("/console"),
    }
}

/// Money in minor units as a person reads it: `-12.50 EUR`.
pub fn money(minor: i64, currency: &str) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    format!("{sign}{}.{:02} {currency}", abs / 100, abs % 100)
}

fn license_row(l: License) -> LicenseRow {
    LicenseRow {
        status: l.status.as_str(),
        purchased: When::of(l.purchased_at),
        activate_by: l.activate_by.map(When::of),
        expires: l.expires_at.map(When::of),
        seats: l.seats,
        metadata: l
            .metadata
            .map(|m| serde_json::Value::Object(m).to_string())
            .unwrap_or_default(),
        product: l.product,
        order_id: l.order_id,
        id: l.id,
    }
}

/// `/console/customers/{email}`.
pub async fn customer(
    app: web::Data<AppState>,
    staff: Staff,
    path: web::Path<String>,
) -> HttpResponse {
    let email = path.trim().to_lowercase();
    let licenses = match app.find_licenses(LicenseLookup::Email(email.clone())).await {
        Ok(l) => l,
        Err(e) => return failed(&e),
    };
    let credits = match app.credits(&email).await {
        Ok(c) => c,
        Err(e) => return failed(&e),
    };
    let claims = match app.customer_claims(&email).await {
        Ok(c) => c,
        Err(e) => return failed(&e),
    };
    let balances = balances(&credits)
        .into_iter()
        .map(|(currency, minor)| money(minor, &currency))
        .collect();
    render(
        StatusCode::OK,
        &CustomerPage {
            me: Some(Me::of(&staff)),
            email,
            licenses: licenses.into_iter().map(license_row).collect(),
            balances,
            credits: credits
                .into_iter()
                .map(|c| CreditRow {
                    at: When::of(c.at),
                    kind: c.kind,
                    amount: money(c.amount, &c.currency),
                    license_id: c.license_id,
                    order_id: c.order_id,
                })
                .collect(),
            claims: claims
                .into_iter()
                .map(|c| ClaimRow {
                    filed: When::of(c.created_at),
                    status: c.status.as_str(),
                    message: c.message.unwrap_or_default(),
                    note: c.note.unwrap_or_default(),
                    resolved: c.resolved_at.map(When::of),
                    license_id: c.license_id,
                    id: c.id,
                })
                .collect(),
        },
    )
}

impl When {
    /// `t` as the pages write it.
    pub fn of(t: Timestamp) -> Self {
        Self {
            iso: time::format(t),
            date: t.format("%Y-%m-%d").to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_written_in_major_units_with_its_sign_and_currency() {
        assert_eq!(money(1250, "EUR"), "12.50 EUR");
        assert_eq!(money(-5, "USD"), "-0.05 USD");
        assert_eq!(money(0, "GBP"), "0.00 GBP");
    }

    #[test]
    fn a_customer_path_keeps_the_email_in_one_segment() {
        assert_eq!(
            customer_path("a+b c@x.y"),
            "/console/customers/a%2Bb%20c%40x.y"
        );
    }
}
