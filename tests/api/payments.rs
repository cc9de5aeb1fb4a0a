//! Payments in, through real HTTP: each provider's signed webhook (bodies from
//! `tests/fixtures/payments/`, whose `PROVENANCE.md` says where each shape comes
//! from) mints, renews, refunds, suspends, revokes and reinstates, each event once;
//! Stripe's own SDK (PyPI `stripe`, installed by `scripts/test.sh`) signs deliveries
//! keyclerk must accept.

use std::process::{Command, Stdio};

use base64::Engine as _;
use keyclerk::config::Settings;
use keyclerk::domain::payments::{hex, hmac_sha256, ProductMapping, ProviderSettings, Secret};
use keyclerk::domain::time;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::{both_engines, into_resp, repo, Dirs, Engine, Resp, TestServer};

pub(crate) const STRIPE_SECRET: &str = "whsec_test_secret";
const PADDLE_SECRET: &str =
    "pdl_ntfset_01hs0t3tw21j988db1pam5xg8m_GrOWLNef+vmtjJYq4mSnHNzvc8uWoJ1I";
const LS_SECRET: &str = "test_signing_secret";
const PAYPRO_KEY: &str = "123qwerty";
const FS_SECRET: &str = "test_fs_secret";

fn provider(secret: &str, products: &[(&str, ProductMapping)]) -> ProviderSettings {
    ProviderSettings {
        webhook_secrets: vec![Secret::new("an-old-secret"), Secret::new(secret)],
        tolerance_seconds: None,
        products: products
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    }
}

fn fonts() -> ProductMapping {
    ProductMapping::Product("font-pack".into())
}

/// Every provider configured; Paddle maps `pri_fonts` only (and `extra` more).
pub(crate) fn configure(s: &mut Settings, extra: &[(&str, ProductMapping)]) {
    let mut paddle = vec![("pri_fonts", fonts())];
    paddle.extend(extra.iter().cloned());
    s.payments = [
        (
            "stripe",
            provider(STRIPE_SECRET, &[("price_1Fonts", fonts())]),
        ),
        ("paddle", provider(PADDLE_SECRET, &paddle)),
        ("lemonsqueezy", provider(LS_SECRET, &[("4242", fonts())])),
        ("paypro", provider(PAYPRO_KEY, &[("555", fonts())])),
        (
            "fastspring",
            provider(FS_SECRET, &[("fonts-yearly", fonts())]),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
}

fn start(engine: Engine) -> TestServer {
    TestServer::start_with(Dirs::on(engine), |s| configure(s, &[]))
}

/// A fixture with its placeholders replaced.
pub(crate) fn fixture(path: &str, replace: &[(&str, &str)]) -> String {
    let mut text =
        std::fs::read_to_string(repo().join("tests/fixtures/payments").join(path)).unwrap();
    for (from, to) in replace {
        text = text.replace(from, to);
    }
    text
}

/// A JSON fixture with its placeholders replaced and `change` applied.
fn json_fixture(path: &str, replace: &[(&str, &str)], change: impl FnOnce(&mut Value)) -> String {
    let mut v: Value = serde_json::from_str(&fixture(path, replace)).unwrap();
    change(&mut v);
    v.to_string()
}

fn now() -> i64 {
    time::now().timestamp()
}

/// Posts `body` to `/v1/payments/{name}` with `headers`.
fn post(
    server: &TestServer,
    name: &str,
    content_type: &str,
    headers: &[(&str, String)],
    body: &str,
) -> Resp {
    let mut r = server
        .request("POST", &format!("/v1/payments/{name}"), None)
        .set("Content-Type", content_type);
    for (k, v) in headers {
        r = r.set(k, v);
    }
    into_resp(r.send_bytes(body.as_bytes()))
}

pub(crate) fn stripe_header(body: &str, secret: &str, t: i64) -> String {
    let t = t.to_string();
    let mac = hmac_sha256(secret.as_bytes(), &[t.as_bytes(), b".", body.as_bytes()]);
    format!("t={t},v1={}", hex(&mac))
}

fn paddle_header(body: &str, secret: &str, ts: i64) -> String {
    let ts = ts.to_string();
    let mac = hmac_sha256(secret.as_bytes(), &[ts.as_bytes(), b":", body.as_bytes()]);
    format!("ts={ts};h1={}", hex(&mac))
}

/// A PayPro IPN form with its `SIGNATURE`, as the IPN page defines it.
fn paypro_form(kind: &str, order: &str, product: &str, sub: &str) -> String {
    let form = fixture(
        "paypro/ipn.form",
        &[
            ("@TYPE@", kind),
            ("@ORDER@", order),
            ("@ITEM@", "1"),
            ("@PRODUCT@", product),
            ("@SUB@", sub),
        ],
    );
    let f: std::collections::BTreeMap<String, String> = form_urlencoded::parse(form.as_bytes())
        .into_owned()
        .collect();
    let mut h = Sha256::new();
    for part in [
        &f["ORDER_ID"],
        &f["ORDER_STATUS"],
        &f["ORDER_TOTAL_AMOUNT"],
        &f["CUSTOMER_EMAIL"],
        &PAYPRO_KEY.to_owned(),
        &f["TEST_MODE"],
        &f["IPN_TYPE_NAME"],
    ] {
        h.update(part.as_bytes());
    }
    format!("{form}&SIGNATURE={}", hex(&h.finalize()))
}

/// Delivers `body` to `name`'s endpoint, signed as that provider signs, now.
pub(crate) fn deliver(server: &TestServer, name: &str, body: &str) -> Resp {
    let (ct, headers) = match name {
        "stripe" => (
            "application/json",
            vec![(
                "Stripe-Signature",
                stripe_header(body, STRIPE_SECRET, now()),
            )],
        ),
        "paddle" => (
            "application/json",
            vec![(
                "Paddle-Signature",
                paddle_header(body, PADDLE_SECRET, now()),
            )],
        ),
        "lemonsqueezy" => (
            "application/json",
            vec![(
                "X-Signature",
                hex(&hmac_sha256(LS_SECRET.as_bytes(), &[body.as_bytes()])),
            )],
        ),
        "fastspring" => (
            "application/json",
            vec![(
                "X-FS-Signature",
                base64::engine::general_purpose::STANDARD
                    .encode(hmac_sha256(FS_SECRET.as_bytes(), &[body.as_bytes()])),
            )],
        ),
        "paypro" => ("application/x-www-form-urlencoded", vec![]),
        other => panic!("{other}"),
    };
    post(server, name, ct, &headers, body)
}

/// Delivers and expects 200; the first event's outcome and the answer.
#[track_caller]
fn delivered(server: &TestServer, name: &str, body: &str) -> (String, Value) {
    let answer = deliver(server, name, body).expect(200);
    let outcome = answer["events"][0]["outcome"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    (outcome, answer)
}

/// The licenses of an order id.
fn by_order(server: &TestServer, order: &str) -> Vec<Value> {
    server
        .get(
            &format!("/v1/licenses?order_id={order}"),
            Some(&server.admin),
        )
        .expect(200)["items"]
        .as_array()
        .unwrap()
        .clone()
}

#[track_caller]
fn the_license(server: &TestServer, order: &str) -> Value {
    let found = by_order(server, order);
    assert_eq!(found.len(), 1, "one license of {order}: {found:?}");
    found[0].clone()
}

fn status_of(server: &TestServer, order: &str) -> String {
    the_license(server, order)["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn expiry_of(server: &TestServer, order: &str) -> String {
    the_license(server, order)["expires_at"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

fn payment_events(server: &TestServer, query: &str) -> Vec<Value> {
    server
        .get(&format!("/v1/payments/events{query}"), Some(&server.admin))
        .expect(200)["events"]
        .as_array()
        .unwrap()
        .clone()
}

pub(crate) fn stripe_checkout(order: &str) -> String {
    fixture(
        "stripe/checkout.session.completed.json",
        &[
            ("evt_1PcheckoutAAA", &format!("evt_checkout_{order}")),
            ("ORDER", order),
            ("PRODUCT", "font-pack"),
        ],
    )
}

fn paddle_transaction(order: &str, price: &str) -> String {
    fixture(
        "paddle/transaction.completed.json",
        &[
            (
                "evt_01hv8wptq8987qeep44cyrewp9",
                &format!("evt_txn_{order}"),
            ),
            ("ORDER", order),
            ("PRICE", price),
        ],
    )
}

fn ls_order(order: &str) -> String {
    fixture("lemonsqueezy/order_created.json", &[("ORDER", order)])
}

fn fs_order(order: &str) -> String {
    fixture(
        "fastspring/order.completed.json",
        &[
            ("fs_evt_ORDER", &format!("fs_evt_{order}")),
            ("ORDER", order),
        ],
    )
}

both_engines!(a_paid_order_of_each_provider_mints_once_with_the_buyers_email);
fn a_paid_order_of_each_provider_mints_once_with_the_buyers_email(engine: Engine) {
    let server = start(engine);
    for (name, body, order) in [
        ("stripe", stripe_checkout("o1"), "stripe:cs_test_o1"),
        (
            "paddle",
            paddle_transaction("o1", "pri_fonts"),
            "paddle:txn_o1",
        ),
        ("lemonsqueezy", ls_order("1001"), "lemonsqueezy:1001"),
        ("fastspring", fs_order("FS1"), "fastspring:FS1"),
    ] {
        let (outcome, first) = delivered(&server, name, &body);
        assert_eq!(outcome, "applied", "{name}: {first}");
        let license = the_license(&server, order);
        assert_eq!(license["customer_email"], "ann@example.com", "{name}");
        assert_eq!(license["product"], "font-pack", "{name}");
        assert_eq!(first["events"][0]["licenses"][0], license["id"], "{name}");
        let history = server
            .get(
                &format!("/v1/licenses/{}/history", license["id"].as_str().unwrap()),
                Some(&server.admin),
            )
            .expect(200);
        assert_eq!(
            history["events"][0]["actor"],
            json!({"type": "payment", "provider": name}),
            "{name}: the mint's actor"
        );
        let (_, again) = delivered(&server, name, &body);
        assert_eq!(
            again["events"][0]["id"], first["events"][0]["id"],
            "{name}: the same event"
        );
        assert_eq!(by_order(&server, order).len(), 1, "{name}: minted once");
    }
    // PayPro's License Generator: the key is the answer, and the charge of the same
    // order that follows finds the same license.
    let requested = deliver(
        &server,
        "paypro",
        &paypro_form("LicenseRequested", "70001", "555", "0"),
    );
    assert_eq!(requested.status, 200, "{:?}", requested.body);
    assert!(
        requested.content_type.starts_with("text/plain"),
        "{}",
        requested.content_type
    );
    let key = requested.body.as_str().unwrap().to_owned();
    let license = the_license(&server, "paypro:70001");
    let found = server
        .get(
            &format!("/v1/licenses/{}", license["id"].as_str().unwrap()),
            Some(&server.admin),
        )
        .expect(200);
    assert_eq!(found["key"], key.as_str());
    assert_eq!(license["customer_email"], "ann@example.com");
    let again = deliver(
        &server,
        "paypro",
        &paypro_form("LicenseRequested", "70001", "555", "0"),
    );
    assert_eq!(
        again.body.as_str(),
        Some(key.as_str()),
        "a repeat answers the same key"
    );
    let (outcome, _) = delivered(
        &server,
        "paypro",
        &paypro_form("OrderCharged", "70001", "555", "0"),
    );
    assert_eq!(
        outcome, "duplicate",
        "the order was minted by the license request"
    );
    assert_eq!(payment_events(&server, "").len(), 6);
}

both_engines!(a_paid_order_of_a_product_that_delivers_by_email_mails_the_key_once);
fn a_paid_order_of_a_product_that_delivers_by_email_mails_the_key_once(engine: Engine) {
    use crate::mail::{free_port, mail_settings, received, wait_for, Smtp};
    let inbox = tempfile::tempdir().unwrap();
    let port = free_port();
    let _smtp = Smtp::start(inbox.path(), port);
    let server = TestServer::start_with(Dirs::on(engine), |s| {
        configure(s, &[]);
        s.mail = Some(mail_settings(port));
        s.products.get_mut("font-pack").unwrap().deliver_by_email = true;
    });
    let body = stripe_checkout("mail1");
    let (outcome, _) = delivered(&server, "stripe", &body);
    assert_eq!(outcome, "applied");
    let got = wait_for(inbox.path(), 1);
    assert_eq!(got[0]["rcpt_to"], json!(["ann@example.com"]));
    // Font Pack has short keys: the one in the mail is the license's, and it activates.
    let license = the_license(&server, "stripe:cs_test_mail1");
    let id = license["id"].as_str().unwrap();
    let stored = server
        .get(&format!("/v1/licenses/{id}"), Some(&server.admin))
        .expect(200);
    let key = stored["key"].as_str().unwrap();
    let text = got[0]["parts"][0]["content"].as_str().unwrap();
    let in_mail = text.lines().map(str::trim).find(|l| *l == key);
    assert!(in_mail.is_some(), "the key {key} in {text}");
    server
        .post(
            "/v1/activations",
            None,
            &json!({"license_key": in_mail.unwrap(), "fingerprint": "mail-machine"}),
        )
        .expect(201);
    // The provider sends the event again: the same license, no second mail.
    delivered(&server, "stripe", &body);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(received(inbox.path()).len(), 1);
}

both_engines!(twenty_concurrent_copies_of_one_delivery_mint_one_license);
fn twenty_concurrent_copies_of_one_delivery_mint_one_license(engine: Engine) {
    let server = start(engine);
    let body = stripe_checkout("race");
    let header = stripe_header(&body, STRIPE_SECRET, now());
    let barrier = std::sync::Barrier::new(20);
    let answers: Vec<Resp> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..20)
            .map(|_| {
                let (server, body, header, barrier) = (&server, &body, &header, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    post(
                        server,
                        "stripe",
                        "application/json",
                        &[("Stripe-Signature", header.clone())],
                        body,
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ids: std::collections::BTreeSet<String> = answers
        .iter()
        .map(|a| {
            assert_eq!(a.status, 200, "{}", a.body);
            assert_eq!(a.body["events"][0]["outcome"], "applied");
            a.body["events"][0]["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "one stored event: {ids:?}");
    let license = the_license(&server, "stripe:cs_test_race");
    let history = server
        .get(
            &format!("/v1/licenses/{}/history", license["id"].as_str().unwrap()),
            Some(&server.admin),
        )
        .expect(200);
    let mints = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "license_minted")
        .count();
    assert_eq!(mints, 1);
    assert_eq!(payment_events(&server, "?provider=stripe").len(), 1);
}

both_engines!(a_subscription_payment_of_each_provider_moves_the_expiry);
fn a_subscription_payment_of_each_provider_moves_the_expiry(engine: Engine) {
    let server = start(engine);
    // Bought 2026-01-01T10:00Z: a year of fonts, to 2027-01-01T10:00Z.
    let first = "2027-01-01T10:00:00Z";
    let renewed = "2028-01-01T10:00:00Z";

    delivered(&server, "stripe", &stripe_checkout("s1"));
    assert_eq!(expiry_of(&server, "stripe:cs_test_s1"), first);
    let invoice = fixture("stripe/invoice.paid.json", &[("ORDER", "s1")]);
    assert_eq!(delivered(&server, "stripe", &invoice).0, "applied");
    assert_eq!(
        expiry_of(&server, "stripe:cs_test_s1"),
        renewed,
        "to the period's end"
    );
    let not_a_cycle = json_fixture("stripe/invoice.paid.json", &[("ORDER", "s1")], |v| {
        v["id"] = "evt_first_invoice".into();
        v["data"]["object"]["billing_reason"] = "subscription_create".into();
    });
    assert_eq!(delivered(&server, "stripe", &not_a_cycle).0, "applied");
    assert_eq!(
        expiry_of(&server, "stripe:cs_test_s1"),
        renewed,
        "the first invoice renews nothing"
    );
    let ended = fixture(
        "stripe/customer.subscription.deleted.json",
        &[("ORDER", "s1")],
    );
    assert_eq!(delivered(&server, "stripe", &ended).0, "applied");
    let after_end = json_fixture("stripe/invoice.paid.json", &[("ORDER", "s1")], |v| {
        v["id"] = "evt_after_end".into();
    });
    let (outcome, answer) = delivered(&server, "stripe", &after_end);
    assert_eq!(outcome, "failed", "{answer}");
    assert_eq!(
        expiry_of(&server, "stripe:cs_test_s1"),
        renewed,
        "no renewal after the end"
    );

    delivered(&server, "paddle", &paddle_transaction("p1", "pri_fonts"));
    let recurring = json_fixture(
        "paddle/transaction.completed.json",
        &[
            ("evt_01hv8wptq8987qeep44cyrewp9", "evt_txn_p1_renewal"),
            ("ORDER", "p1"),
            ("PRICE", "pri_fonts"),
        ],
        |v| {
            v["data"]["id"] = "txn_p1_renewal".into();
            v["data"]["origin"] = "subscription_recurring".into();
            v["data"]["billing_period"]["ends_at"] = renewed.into();
        },
    );
    assert_eq!(delivered(&server, "paddle", &recurring).0, "applied");
    assert_eq!(expiry_of(&server, "paddle:txn_p1"), renewed);

    delivered(&server, "lemonsqueezy", &ls_order("2001"));
    let sub = fixture(
        "lemonsqueezy/subscription_created.json",
        &[("SUB", "5001"), ("ORDER", "2001")],
    );
    assert_eq!(delivered(&server, "lemonsqueezy", &sub).0, "applied");
    let paid = fixture(
        "lemonsqueezy/subscription_payment_success.json",
        &[("SUB", "5001"), ("INVOICE", "9001")],
    );
    assert_eq!(delivered(&server, "lemonsqueezy", &paid).0, "applied");
    assert_eq!(
        expiry_of(&server, "lemonsqueezy:2001"),
        renewed,
        "one period more"
    );

    delivered(
        &server,
        "paypro",
        &paypro_form("OrderCharged", "70002", "555", "9001"),
    );
    let charge = paypro_form("SubscriptionChargeSucceed", "70003", "555", "9001");
    assert_eq!(delivered(&server, "paypro", &charge).0, "applied");
    let purchased = the_license(&server, "paypro:70002");
    let expires = time::parse(purchased["expires_at"].as_str().unwrap()).unwrap();
    let bought = time::parse(purchased["purchased_at"].as_str().unwrap()).unwrap();
    assert_eq!((expires - bought).num_days(), 730, "two periods");

    delivered(&server, "fastspring", &fs_order("FS2"));
    let rebill = json!({"events": [{"id": "fs_evt_rebill", "type": "subscription.charge.completed",
        "live": false, "created": 1_798_797_600_000_i64, "data": {"subscription": "fs_sub_FS2"}}]})
    .to_string();
    assert_eq!(delivered(&server, "fastspring", &rebill).0, "applied");
    assert_eq!(expiry_of(&server, "fastspring:FS2"), renewed);
}

/// Activates `license` on `fingerprint`; the answer.
fn activate(server: &TestServer, license: &Value, fingerprint: &str) -> Resp {
    let key = server
        .get(
            &format!("/v1/licenses/{}", license["id"].as_str().unwrap()),
            Some(&server.admin),
        )
        .expect(200)["key"]
        .as_str()
        .unwrap()
        .to_owned();
    server.post(
        "/v1/activations",
        None,
        &json!({"license_key": key, "fingerprint": fingerprint}),
    )
}

both_engines!(a_full_refund_of_each_provider_closes_the_license_and_its_app_is_refused);
fn a_full_refund_of_each_provider_closes_the_license_and_its_app_is_refused(engine: Engine) {
    let server = start(engine);
    delivered(&server, "stripe", &stripe_checkout("r1"));
    let license = the_license(&server, "stripe:cs_test_r1");
    activate(&server, &license, "machine-1").expect(201);
    let partial = json_fixture("stripe/charge.refunded.json", &[("ORDER", "r1")], |v| {
        v["id"] = "evt_partial".into();
        v["data"]["object"]["refunded"] = false.into();
        v["data"]["object"]["amount_refunded"] = 900.into();
    });
    assert_eq!(delivered(&server, "stripe", &partial).0, "applied");
    assert_eq!(
        status_of(&server, "stripe:cs_test_r1"),
        "active",
        "a partial refund changes nothing"
    );
    let full = fixture("stripe/charge.refunded.json", &[("ORDER", "r1")]);
    assert_eq!(delivered(&server, "stripe", &full).0, "applied");
    assert_eq!(status_of(&server, "stripe:cs_test_r1"), "refunded");
    // A refunded license refuses a machine as a revoked one does.
    activate(&server, &license, "machine-2").expect_problem(403, "license_revoked");

    delivered(&server, "paddle", &paddle_transaction("r2", "pri_fonts"));
    let adjustment = fixture("paddle/adjustment.created.json", &[("ORDER", "r2")]);
    assert_eq!(delivered(&server, "paddle", &adjustment).0, "applied");
    assert_eq!(status_of(&server, "paddle:txn_r2"), "refunded");

    delivered(&server, "lemonsqueezy", &ls_order("3001"));
    let refunded = json_fixture(
        "lemonsqueezy/order_created.json",
        &[("ORDER", "3001")],
        |v| {
            v["meta"]["event_name"] = "order_refunded".into();
            let a = &mut v["data"]["attributes"];
            a["status"] = "refunded".into();
            a["refunded"] = true.into();
            a["refunded_amount"] = 1500.into();
            a["updated_at"] = "2026-01-03T10:00:00.000000Z".into();
        },
    );
    assert_eq!(delivered(&server, "lemonsqueezy", &refunded).0, "applied");
    assert_eq!(status_of(&server, "lemonsqueezy:3001"), "refunded");

    delivered(
        &server,
        "paypro",
        &paypro_form("OrderCharged", "70010", "555", "0"),
    );
    let refund = paypro_form("OrderRefunded", "70010", "555", "0");
    assert_eq!(delivered(&server, "paypro", &refund).0, "applied");
    assert_eq!(status_of(&server, "paypro:70010"), "refunded");

    delivered(&server, "fastspring", &fs_order("FS3"));
    let ret = json!({"events": [{"id": "fs_evt_return", "type": "return.created", "live": false,
        "data": {"return": "RET1", "reference": "KEY-RET", "original": {"id": "FS3", "order": "FS3"}}}]})
    .to_string();
    assert_eq!(delivered(&server, "fastspring", &ret).0, "applied");
    assert_eq!(status_of(&server, "fastspring:FS3"), "refunded");
    let history = server
        .get(
            &format!("/v1/licenses/{}/history", license["id"].as_str().unwrap()),
            Some(&server.admin),
        )
        .expect(200);
    let refund = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "license_refunded")
        .unwrap();
    assert_eq!(
        refund["actor"],
        json!({"type": "payment", "provider": "stripe"})
    );
}

fn dispute(order: &str, event: &str, kind: &str, status: &str) -> String {
    json_fixture("stripe/charge.dispute.json", &[("ORDER", order)], |v| {
        v["id"] = event.into();
        v["type"] = kind.into();
        v["data"]["object"]["status"] = status.into();
    })
}

both_engines!(a_chargeback_suspends_and_its_outcome_revokes_or_reinstates);
fn a_chargeback_suspends_and_its_outcome_revokes_or_reinstates(engine: Engine) {
    let server = start(engine);
    for (order, closed, after) in [("won", "won", "active"), ("lost", "lost", "revoked")] {
        delivered(&server, "stripe", &stripe_checkout(order));
        let name = format!("stripe:cs_test_{order}");
        let opened = dispute(
            order,
            &format!("evt_dp_open_{order}"),
            "charge.dispute.created",
            "needs_response",
        );
        assert_eq!(delivered(&server, "stripe", &opened).0, "applied");
        assert_eq!(status_of(&server, &name), "suspended");
        let close = dispute(
            order,
            &format!("evt_dp_close_{order}"),
            "charge.dispute.closed",
            closed,
        );
        assert_eq!(delivered(&server, "stripe", &close).0, "applied");
        assert_eq!(status_of(&server, &name), after);
    }

    delivered(&server, "paddle", &paddle_transaction("c1", "pri_fonts"));
    let chargeback = |event: &str, action: &str| {
        json_fixture("paddle/adjustment.created.json", &[("ORDER", "c1")], |v| {
            v["event_id"] = event.into();
            v["data"]["action"] = action.into();
        })
    };
    assert_eq!(
        delivered(&server, "paddle", &chargeback("evt_cb1", "chargeback")).0,
        "applied"
    );
    assert_eq!(status_of(&server, "paddle:txn_c1"), "suspended");
    let (again, _) = delivered(
        &server,
        "paddle",
        &chargeback("evt_cb1_update", "chargeback"),
    );
    assert_eq!(again, "duplicate", "suspended already");
    assert_eq!(
        delivered(
            &server,
            "paddle",
            &chargeback("evt_cb2", "chargeback_reverse")
        )
        .0,
        "applied"
    );
    assert_eq!(status_of(&server, "paddle:txn_c1"), "active");

    delivered(
        &server,
        "paypro",
        &paypro_form("OrderCharged", "70020", "555", "0"),
    );
    let charged_back = paypro_form("OrderChargedBack", "70020", "555", "0");
    assert_eq!(delivered(&server, "paypro", &charged_back).0, "applied");
    assert_eq!(status_of(&server, "paypro:70020"), "suspended");
    let won = paypro_form("OrderChargebackIsWon", "70020", "555", "0");
    assert_eq!(delivered(&server, "paypro", &won).0, "applied");
    assert_eq!(status_of(&server, "paypro:70020"), "active");

    // FastSpring documents `chargeback.created` and no event for its outcome.
    delivered(&server, "fastspring", &fs_order("FS4"));
    let chargeback = fixture("fastspring/chargeback.created.json", &[("ORDER", "FS4")]);
    let (outcome, first) = delivered(&server, "fastspring", &chargeback);
    assert_eq!(outcome, "applied", "{first}");
    assert_eq!(status_of(&server, "fastspring:FS4"), "suspended");
    let (_, again) = delivered(&server, "fastspring", &chargeback);
    assert_eq!(again["events"][0]["id"], first["events"][0]["id"]);
    assert_eq!(status_of(&server, "fastspring:FS4"), "suspended");
}

both_engines!(an_unmapped_price_is_listed_and_applied_once_the_mapping_is_added);
fn an_unmapped_price_is_listed_and_applied_once_the_mapping_is_added(engine: Engine) {
    let server = start(engine);
    let (outcome, answer) = delivered(&server, "paddle", &paddle_transaction("u1", "pri_new"));
    assert_eq!(outcome, "unmapped", "{answer}");
    assert!(
        answer["events"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("pri_new"),
        "{answer}"
    );
    assert!(by_order(&server, "paddle:txn_u1").is_empty());
    let refund = json_fixture(
        "stripe/charge.refunded.json",
        &[("ORDER", "never-seen")],
        |_| {},
    );
    assert_eq!(
        delivered(&server, "stripe", &refund).0,
        "unmapped",
        "a refund of an unknown order"
    );
    let unmapped = payment_events(&server, "?outcome=unmapped&provider=paddle");
    assert_eq!(unmapped.len(), 1);
    let id = unmapped[0]["id"].as_str().unwrap().to_owned();
    let apply = format!("/v1/payments/events/{id}/apply");
    let still = server
        .post(&apply, Some(&server.admin), &json!({}))
        .expect(200);
    assert_eq!(still["outcome"], "unmapped", "the mapping is still missing");

    let dirs = server.stop();
    let server = TestServer::start_with(dirs, |s| {
        configure(
            s,
            &[(
                "pri_new",
                ProductMapping::WithSeats {
                    product: "photo-pro".into(),
                    seats: Some(2),
                },
            )],
        );
    });
    let applied = server
        .post(&apply, Some(&server.admin), &json!({}))
        .expect(200);
    assert_eq!(applied["outcome"], "applied", "{applied}");
    let license = the_license(&server, "paddle:txn_u1");
    assert_eq!(license["product"], "photo-pro");
    assert_eq!(license["seats"], 2);
    assert_eq!(applied["licenses"][0], license["id"]);
    server
        .post(&apply, Some(&server.admin), &json!({}))
        .expect_problem(409, "payment_event_settled");
    assert!(payment_events(&server, "?outcome=unmapped&provider=paddle").is_empty());
    server
        .post(
            "/v1/payments/events/pay_00000000000000000000000000/apply",
            Some(&server.admin),
            &json!({}),
        )
        .expect_problem(404, "payment_event_not_found");
    // A delivery of the event again still changes nothing.
    let (_, again) = delivered(&server, "paddle", &paddle_transaction("u1", "pri_new"));
    assert_eq!(again["events"][0]["id"], id.as_str());
    assert_eq!(by_order(&server, "paddle:txn_u1").len(), 1);
}

#[test]
fn missing_stale_and_wrong_signatures_are_refused_and_nothing_is_stored() {
    let server = start(Engine::Sqlite);
    let stripe = stripe_checkout("sig");
    let paddle = paddle_transaction("sig", "pri_fonts");
    let tampered = stripe.replace("Ann@Example.com", "Eve@Example.com");
    // (case, provider, headers, body)
    type Case<'a> = (&'a str, &'a str, Vec<(&'a str, String)>, String);
    let cases: Vec<Case> = vec![
        ("stripe without a header", "stripe", vec![], stripe.clone()),
        (
            "stripe signed 301 s ago",
            "stripe",
            vec![(
                "Stripe-Signature",
                stripe_header(&stripe, STRIPE_SECRET, now() - 301),
            )],
            stripe.clone(),
        ),
        (
            "stripe with another secret",
            "stripe",
            vec![(
                "Stripe-Signature",
                stripe_header(&stripe, "whsec_other", now()),
            )],
            stripe.clone(),
        ),
        (
            "stripe with a changed body",
            "stripe",
            vec![(
                "Stripe-Signature",
                stripe_header(&stripe, STRIPE_SECRET, now()),
            )],
            tampered,
        ),
        (
            "paddle signed 6 s ago",
            "paddle",
            vec![(
                "Paddle-Signature",
                paddle_header(&paddle, PADDLE_SECRET, now() - 6),
            )],
            paddle.clone(),
        ),
        (
            "lemon squeezy with a signature in base64",
            "lemonsqueezy",
            vec![(
                "X-Signature",
                base64::engine::general_purpose::STANDARD.encode(hmac_sha256(
                    LS_SECRET.as_bytes(),
                    &[ls_order("1").as_bytes()],
                )),
            )],
            ls_order("1"),
        ),
        (
            "fastspring without a header",
            "fastspring",
            vec![],
            fs_order("FSX"),
        ),
        (
            "paypro without a signature",
            "paypro",
            vec![],
            fixture(
                "paypro/ipn.form",
                &[
                    ("@TYPE@", "OrderCharged"),
                    ("@ORDER@", "1"),
                    ("@ITEM@", "1"),
                    ("@PRODUCT@", "555"),
                    ("@SUB@", "0"),
                ],
            ),
        ),
    ];
    for (case, name, headers, body) in cases {
        post(&server, name, "application/json", &headers, &body)
            .expect_problem(400, "invalid_signature");
        assert!(
            payment_events(&server, "").is_empty(),
            "{case}: nothing stored"
        );
    }
    post(&server, "paypal", "application/json", &[], "{}")
        .expect_problem(404, "payment_provider_not_found");
    let unconfigured = TestServer::start();
    post(&unconfigured, "stripe", "application/json", &[], &stripe)
        .expect_problem(404, "payment_provider_not_found");
    // Verified, but not Stripe's: 400 invalid_payload, and recorded as failed.
    let not_an_event = r#"{"object":"event"}"#;
    deliver(&server, "stripe", not_an_event).expect_problem(400, "invalid_payload");
    let failed = payment_events(&server, "?outcome=failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["type"], "unreadable");
    assert!(by_order(&server, "stripe:cs_test_sig").is_empty());
    server
        .get("/v1/payments/events?outcome=lost", Some(&server.admin))
        .expect_problem(400, "invalid_parameter");
}

/// `header` from stripe-python's `WebhookSignature.generate_signature_header`.
fn stripe_sdk_header(payload: &str, secret: &str, timestamp: i64) -> String {
    let python = std::env::var("KC_TEST_PYTHON")
        .expect("KC_TEST_PYTHON: run the suite with ./scripts/test.sh, which installs stripe");
    let mut child = Command::new(python)
        .arg(repo().join("tests/interop/stripe_sign.py"))
        .args([secret, &timestamp.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), payload.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn events_signed_by_stripes_own_sdk_are_accepted_and_altered_ones_refused() {
    let server = start(Engine::Sqlite);
    let body = stripe_checkout("sdk");
    let signed = |payload: &str, secret: &str, t: i64| {
        post(
            &server,
            "stripe",
            "application/json",
            &[("Stripe-Signature", stripe_sdk_header(payload, secret, t))],
            payload,
        )
    };
    let header = stripe_sdk_header(&body, STRIPE_SECRET, now());
    let changed = body.replacen("paid", "pAid", 1);
    post(
        &server,
        "stripe",
        "application/json",
        &[("Stripe-Signature", header.clone())],
        &changed,
    )
    .expect_problem(400, "invalid_signature");
    signed(&body, STRIPE_SECRET, now() - 301).expect_problem(400, "invalid_signature");
    signed(&body, "whsec_another_secret", now()).expect_problem(400, "invalid_signature");
    assert!(
        payment_events(&server, "").is_empty(),
        "nothing refused is stored"
    );
    let accepted = post(
        &server,
        "stripe",
        "application/json",
        &[("Stripe-Signature", header)],
        &body,
    )
    .expect(200);
    assert_eq!(accepted["events"][0]["outcome"], "applied");
    assert_eq!(
        the_license(&server, "stripe:cs_test_sdk")["customer_email"],
        "ann@example.com"
    );
}

both_engines!(
    a_receiver_gets_payment_applied_for_a_minted_order_and_payment_unmapped_for_an_unknown_price
);
fn a_receiver_gets_payment_applied_for_a_minted_order_and_payment_unmapped_for_an_unknown_price(
    engine: Engine,
) {
    use crate::webhooks::{add_endpoint, fast, Receiver};
    let server = TestServer::start_with(Dirs::on(engine), |s| {
        configure(s, &[]);
        fast(s);
    });
    let receiver = Receiver::start(&[]);
    let (_, secret) = add_endpoint(
        &server,
        &receiver.url(),
        &["payment.applied", "payment.unmapped"],
    );
    receiver.trust(&[&secret]);
    let (outcome, minted) = delivered(&server, "paddle", &paddle_transaction("w1", "pri_fonts"));
    assert_eq!(outcome, "applied", "{minted}");
    let (outcome, unknown) = delivered(&server, "paddle", &paddle_transaction("w2", "pri_gone"));
    assert_eq!(outcome, "unmapped", "{unknown}");
    // Neither a repeat nor an event keyclerk has nothing to do for is sent.
    assert_eq!(
        delivered(&server, "paddle", &paddle_transaction("w1", "pri_fonts")).0,
        "applied"
    );
    let nothing = json_fixture("paddle/transaction.completed.json", &[], |v| {
        v["event_id"] = "evt_nothing_to_do".into();
        v["event_type"] = "customer.created".into();
    });
    assert_eq!(delivered(&server, "paddle", &nothing).0, "applied");
    let records = receiver.wait_for("payment.applied and payment.unmapped", |r| {
        Receiver::accepted_ids(r).len() >= 2
    });
    let body_of = |kind: &str| -> Value {
        let r = records
            .iter()
            .find(|r| r["type"] == kind)
            .unwrap_or_else(|| panic!("no {kind}: {records:#?}"));
        serde_json::from_str(r["body"].as_str().unwrap()).unwrap()
    };
    let applied = body_of("payment.applied");
    let license = the_license(&server, "paddle:txn_w1");
    assert_eq!(applied["data"]["license_id"], license["id"], "{applied}");
    assert_eq!(applied["data"]["licenses"], json!([license["id"]]));
    assert_eq!(
        applied["data"]["payment_event_id"],
        minted["events"][0]["id"]
    );
    assert_eq!(applied["data"]["provider"], "paddle");
    assert_eq!(applied["data"]["event_id"], "evt_txn_w1");
    assert_eq!(applied["data"]["kind"], "transaction.completed");
    assert_eq!(applied["data"]["outcome"], "applied");
    let unmapped = body_of("payment.unmapped");
    assert_eq!(unmapped["data"]["license_id"], Value::Null, "{unmapped}");
    assert_eq!(unmapped["data"]["licenses"], json!([]));
    assert_eq!(
        unmapped["data"]["payment_event_id"],
        unknown["events"][0]["id"]
    );
    assert!(
        unmapped["data"]["reason"]
            .as_str()
            .unwrap()
            .contains("pri_gone"),
        "{unmapped}"
    );
    assert_eq!(
        server.dirs().query_i64("SELECT count(*) FROM outbox"),
        2,
        "one message each: the repeat and the event with nothing to do made none"
    );
}
