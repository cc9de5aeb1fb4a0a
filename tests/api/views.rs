//! What each caller sees of a license: a key holder (an app) gets what it needs to
//! decide and nothing about the customer, the order or the price; staff tokens get
//! the whole license.

use keyclerk::domain::time;
use serde_json::{json, Value};

use crate::helpers::{both_engines, Dirs, Engine, TestServer};

/// What a key holder must never see.
const PRIVATE: [&str; 4] = ["customer_email", "order_id", "price", "metadata"];

/// The members of the license a key holder sees, sorted.
const APP_LICENSE: [&str; 7] = [
    "activate_by",
    "entitlements",
    "expires_at",
    "id",
    "product",
    "seats",
    "status",
];

/// Every member name anywhere in `v`, at any depth.
fn member_names(v: &Value) -> Vec<String> {
    match v {
        Value::Object(map) => map
            .iter()
            .flat_map(|(k, v)| std::iter::once(k.clone()).chain(member_names(v)))
            .collect(),
        Value::Array(items) => items.iter().flat_map(member_names).collect(),
        _ => Vec::new(),
    }
}

#[track_caller]
fn assert_nothing_private(what: &str, body: &Value) {
    let names = member_names(body);
    for private in PRIVATE {
        assert!(
            !names.iter().any(|n| n == private),
            "{what} shows `{private}` to a key holder: {body}"
        );
    }
}

#[track_caller]
fn assert_app_license(what: &str, license: &Value, id: &str) {
    let mut names: Vec<_> = license
        .as_object()
        .unwrap_or_else(|| panic!("{what}: no license in {license}"))
        .keys()
        .cloned()
        .collect();
    names.sort();
    assert_eq!(names, APP_LICENSE, "{what}");
    assert_eq!(license["id"], id, "{what}");
}

#[track_caller]
fn assert_full_license(what: &str, license: &Value, order: &str) {
    assert_eq!(license["order_id"], order, "{what}: {license}");
    assert_eq!(license["customer_email"], "ann@example.com", "{what}");
    assert_eq!(
        license["price"],
        json!({"amount": 4900, "currency": "EUR"}),
        "{what}"
    );
    assert_eq!(license["metadata"], json!({"crm": "C-17"}), "{what}");
}

fn days_ago(days: i64) -> String {
    time::format(time::now() - chrono::Duration::days(days))
}

/// A photo-pro license with everything a shop can tell about the customer.
fn mint(server: &TestServer, order: &str, purchased_days_ago: i64) -> (String, String) {
    let minted = server
        .mint(json!({
            "product": "photo-pro",
            "order_id": order,
            "customer_email": "Ann@example.com",
            "purchased_at": days_ago(purchased_days_ago),
            "metadata": {"crm": "C-17"},
        }))
        .expect(201);
    assert_full_license("mint", &minted["license"], order);
    (
        minted["license"]["id"].as_str().unwrap().to_owned(),
        minted["key"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn an_app_that_activates_validates_and_frees_its_seat_never_sees_customer_order_price_or_metadata()
{
    let server = TestServer::start();
    let (id, key) = mint(&server, "VIEW-1", 1);
    let activate = json!({"license_key": key, "fingerprint": "fp-view"});

    let created = server.post("/v1/activations", None, &activate).expect(201);
    assert_nothing_private("activation", &created);
    assert_app_license("activation", &created["license"], &id);
    let refreshed = server.post("/v1/activations", None, &activate).expect(200);
    assert_nothing_private("refresh", &refreshed);
    assert_app_license("refresh", &refreshed["license"], &id);

    let valid = server
        .post(
            "/v1/validate",
            None,
            &json!({"license_key": key, "fingerprint": "fp-view", "nonce": "n-1"}),
        )
        .expect(200);
    assert_eq!(valid["code"], "VALID");
    assert_nothing_private("validation", &valid);
    assert_app_license("validation", &valid["license"], &id);

    let activation = created["activation"]["id"].as_str().unwrap();
    let freed = server
        .post(
            &format!("/v1/activations/{activation}/deactivate"),
            None,
            &json!({"license_key": key}),
        )
        .expect(200);
    assert_nothing_private("deactivation", &freed);
    assert_eq!(freed["activation"]["license_id"], id);
}

#[test]
fn a_customers_claim_answers_with_the_reduced_license_whether_granted_or_not_needed() {
    let server = TestServer::start();
    let (id, key) = mint(&server, "VIEW-2", 365);

    let granted = server
        .post("/v1/claims", None, &json!({"license_key": key}))
        .expect(200);
    assert_eq!(granted["status"], "granted");
    assert_nothing_private("granted claim", &granted);
    assert_app_license("granted claim", &granted["license"], &id);

    let not_needed = server
        .post("/v1/claims", None, &json!({"license_key": key}))
        .expect(200);
    assert_eq!(not_needed["status"], "not_needed");
    assert_nothing_private("claim not needed", &not_needed);
    assert_app_license("claim not needed", &not_needed["license"], &id);
}

#[test]
fn a_claim_left_to_support_answers_the_key_holder_without_the_license() {
    let server = TestServer::start_with(Dirs::new(), |s| {
        s.late_claims.max_age_days = 300;
    });
    let (id, key) = mint(&server, "VIEW-3", 365);
    let pending = server
        .post(
            "/v1/claims",
            None,
            &json!({"license_key": key, "message": "I was travelling"}),
        )
        .expect(202);
    assert_eq!(pending["status"], "pending");
    assert_eq!(pending["claim"]["license_id"], id);
    assert!(pending.get("license").is_none(), "{pending}");
    assert_nothing_private("pending claim", &pending);
}

both_engines!(staff_tokens_see_the_whole_license_with_customer_order_price_and_metadata);
fn staff_tokens_see_the_whole_license_with_customer_order_price_and_metadata(engine: Engine) {
    let server = TestServer::start_on(engine);
    let support = server.token("support");
    let vendor = server.token("vendor");
    let (id, key) = mint(&server, "VIEW-4", 1);

    let got = server
        .get(&format!("/v1/licenses/{id}"), Some(&support))
        .expect(200);
    assert_full_license("look-up", &got["license"], "VIEW-4");
    let found = server
        .get("/v1/licenses?order_id=VIEW-4", Some(&support))
        .expect(200);
    assert_full_license("search", &found["items"][0], "VIEW-4");
    let page = server.get("/v1/licenses", Some(&vendor)).expect(200);
    assert_full_license("page", &page["items"][0], "VIEW-4");

    let created = server
        .post(
            "/v1/activations",
            None,
            &json!({"license_key": key, "fingerprint": "fp-staff"}),
        )
        .expect(201);
    let activation = created["activation"]["id"].as_str().unwrap();
    // Support frees the seat with its token; the answer is the activation, as the
    // app's own deactivation is.
    let freed = server
        .post(
            &format!("/v1/activations/{activation}/deactivate"),
            Some(&support),
            &json!({"reason": "lost laptop"}),
        )
        .expect(200);
    assert_eq!(freed["activation"]["id"], activation);
    assert!(freed["activation"]["deactivated_at"].is_string(), "{freed}");

    let suspended = server
        .post(
            &format!("/v1/licenses/{id}/suspend"),
            Some(&vendor),
            &json!({}),
        )
        .expect(200);
    assert_full_license("suspend", &suspended["license"], "VIEW-4");
    let extended = server
        .post(
            &format!("/v1/licenses/{id}/grace-extension"),
            Some(&support),
            &json!({"remedy": "decline", "reason": "asked twice"}),
        )
        .expect(201);
    assert_full_license("grace decision", &extended["license"], "VIEW-4");
}
