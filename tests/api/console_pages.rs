//! The support console's pages over HTTP: search, the license page and its
//! confirmed actions, the late-claim previews and decisions, the claims queue; the
//! actor of what an agent does, the password asked again, CSRF, escaping, CSP.

use keyclerk::domain::time;
use serde_json::{json, Value};

use crate::console::{staff, Browser, Page, PASSWORD};
use crate::helpers::{both_engines, Dirs, Engine, TestServer};

fn days_ago(days: i64) -> String {
    time::format(time::now() - chrono::Duration::days(days))
}

/// A photo-pro (90-day window) bought a year ago and never activated: id and key.
fn late_license(server: &TestServer, order: &str, email: &str) -> (String, String) {
    let m = server
        .mint(json!({"product": "photo-pro", "order_id": order,
                     "customer_email": email, "purchased_at": days_ago(365)}))
        .expect(201);
    (
        m["license"]["id"].as_str().unwrap().to_owned(),
        m["key"].as_str().unwrap().to_owned(),
    )
}

/// A server whose policy leaves a year-old claim to support.
fn server_with_claims_for_support(engine: Engine) -> TestServer {
    TestServer::start_with(Dirs::on(engine), |s| {
        s.late_claims.max_age_days = 300;
    })
}

/// An agent signed in: the browser and the session's CSRF token.
fn agent<'s>(server: &'s TestServer, email: &str) -> (Browser<'s>, String) {
    staff(server, email, "support");
    let mut b = Browser::new(server);
    assert_eq!(b.sign_in(email, PASSWORD, None).status, 303);
    let csrf = b.csrf();
    (b, csrf)
}

fn history(server: &TestServer, id: &str) -> Vec<Value> {
    let support = server.token("support");
    server
        .get(&format!("/v1/licenses/{id}/history"), Some(&support))
        .expect(200)["events"]
        .as_array()
        .unwrap()
        .clone()
}

/// Follows the redirect after a confirmed action: the license page it leads to.
#[track_caller]
fn after(b: &mut Browser<'_>, res: Page) -> Page {
    assert_eq!(res.status, 303, "{}", res.body);
    let to = res.header("location").unwrap().to_owned();
    assert!(to.contains("?done="), "{to}");
    b.get(&to)
}

#[track_caller]
fn assert_csp(page: &Page, what: &str) {
    let csp = page.header("content-security-policy").unwrap_or("");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{what}: {csp:?}"
    );
    assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
    assert_eq!(page.header("cache-control"), Some("no-store"), "{what}");
}

both_engines!(the_search_finds_a_license_by_key_short_key_email_order_id_and_license_id);
fn the_search_finds_a_license_by_key_short_key_email_order_id_and_license_id(engine: Engine) {
    let server = TestServer::start_on(engine);
    let (mut ann, _) = agent(&server, "ann@example.com");
    let (id, key) = late_license(&server, "ORD-SEARCH-1", "cat@example.com");
    let fonts = server
        .mint(json!({"product": "font-pack", "order_id": "ORD-SEARCH-2",
                     "customer_email": "cat@example.com"}))
        .expect(201);
    let fonts_id = fonts["license"]["id"].as_str().unwrap().to_owned();
    let short = fonts["key"].as_str().unwrap().to_owned();
    let typed_short = short.to_lowercase().replace('-', "");
    let q = |s: &str| {
        format!(
            "/console/search?q={}",
            form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
        )
    };
    // One hit goes straight to the license.
    for (case, query, to) in [
        ("full key", key.as_str(), &id),
        ("short key", short.as_str(), &fonts_id),
        ("short key as typed", typed_short.as_str(), &fonts_id),
        ("order id", "ORD-SEARCH-1", &id),
        ("license id", id.as_str(), &id),
    ] {
        let res = ann.get(&q(query));
        assert_eq!(res.status, 303, "{case}: {}", res.body);
        assert_eq!(
            res.header("location"),
            Some(format!("/console/licenses/{to}").as_str()),
            "{case}"
        );
    }
    // An email with two licenses lists both, status and product at a glance.
    let res = ann.get(&q("Cat@Example.com"));
    assert_eq!(res.status, 200);
    assert_csp(&res, "search");
    for part in [
        id.as_str(),
        fonts_id.as_str(),
        "photo-pro",
        "font-pack",
        "status-active",
        "email",
    ] {
        assert!(res.body.contains(part), "{part}: {}", res.body);
    }
    assert!(res.body.contains("id=\"search\""), "the search box stays");
    // The email leads to the customer page, from the results and from the license.
    assert!(
        res.body
            .contains("href=\"/console/customers/Cat%40Example.com\""),
        "{}",
        res.body
    );
    assert!(res
        .body
        .contains("href=\"/console/customers/cat%40example.com\""));
    let page = ann.get(&format!("/console/licenses/{id}"));
    assert!(
        page.body
            .contains("id=\"customer\" href=\"/console/customers/cat%40example.com\""),
        "{}",
        page.body
    );
    // Nothing found says what to try.
    let none = ann.get(&q("nobody@example.com"));
    assert_eq!(none.status, 404);
    assert!(none.body.contains("Nothing found"), "{}", none.body);
    assert!(none.body.contains("order id"), "{}", none.body);
    let empty = ann.get("/console/search?q=");
    assert_eq!(empty.status, 200);
    assert!(empty.body.contains("Type what the customer gave you"));
    // The home page has the search box.
    let home = ann.get("/console");
    assert!(home.body.contains("<form id=\"search\""), "{}", home.body);
    assert!(home.body.contains("name=\"q\""));
}

both_engines!(markup_in_emails_metadata_machine_names_and_claim_messages_is_escaped_on_every_page);
fn markup_in_emails_metadata_machine_names_and_claim_messages_is_escaped_on_every_page(
    engine: Engine,
) {
    let server = server_with_claims_for_support(engine);
    let (mut ann, _) = agent(&server, "ann@example.com");
    // An email may hold quotes and ampersands, never `<` (the email rule refuses it).
    let email = "o'hara&co@example.com";
    let evil = "\"'><script>alert(1)</script>";
    let fresh = server
        .mint(json!({"product": "photo-pro", "order_id": "ORD-XSS-1",
                     "customer_email": email, "metadata": {"note": evil}}))
        .expect(201);
    let fresh_id = fresh["license"]["id"].as_str().unwrap().to_owned();
    let key = fresh["key"].as_str().unwrap().to_owned();
    server
        .post(
            "/v1/activations",
            None,
            &json!({"license_key": key, "fingerprint": "fp-xss", "name": evil, "platform": evil}),
        )
        .expect(201);
    let (late_id, late_key) = late_license(&server, "ORD-XSS-2", email);
    let filed = server
        .post(
            "/v1/claims",
            None,
            &json!({"license_key": late_key, "email": email, "message": evil}),
        )
        .expect(202);
    assert_eq!(filed["status"], "pending");

    let escaped = "&#34;&#39;&#62;&#60;script&#62;alert(1)&#60;/script&#62;";
    let escaped_email = "o&#39;hara&#38;co@example.com";
    let q = form_urlencoded::byte_serialize(email.as_bytes()).collect::<String>();
    let pages = [
        ("search", format!("/console/search?q={q}"), false),
        ("license", format!("/console/licenses/{fresh_id}"), true),
        ("late license", format!("/console/licenses/{late_id}"), true),
        ("claims queue", "/console/claims".to_owned(), true),
        (
            "preview",
            format!("/console/licenses/{late_id}/remedy?remedy=extend"),
            false,
        ),
    ];
    for (case, path, has_markup) in pages {
        let page = ann.get(&path);
        assert_eq!(page.status, 200, "{case}: {}", page.body);
        assert!(
            !page.body.contains("<script>alert"),
            "{case}: {}",
            page.body
        );
        assert!(!page.body.contains("o'hara"), "{case}");
        if has_markup {
            assert!(page.body.contains(escaped), "{case}: {}", page.body);
        }
        if case != "preview" {
            assert!(page.body.contains(escaped_email), "{case}: {}", page.body);
        }
        assert_csp(&page, case);
    }
}

both_engines!(a_lifecycle_action_and_an_extension_made_in_the_console_have_the_agent_as_actor);
fn a_lifecycle_action_and_an_extension_made_in_the_console_have_the_agent_as_actor(engine: Engine) {
    let server = TestServer::start_on(engine);
    let (mut ann, csrf) = agent(&server, "ann@example.com");
    let (id, key) = late_license(&server, "ORD-ACT-1", "dan@example.com");
    server
        .post(
            "/v1/activations",
            None,
            &json!({"license_key": key, "fingerprint": "fp-late"}),
        )
        .expect_problem(403, "activation_window_closed");

    let page = ann.get(&format!("/console/licenses/{id}"));
    assert_eq!(page.status, 200, "{}", page.body);
    for part in [
        "Late claim: the activation window closed",
        "activation_window_closed",
        "275 days late",
        "id=\"remedy-extend\"",
        "id=\"action-suspend\"",
        "<time datetime=\"",
        " UTC\">",
        "0 of 3 in use",
        "365 days after the first activation",
        "Minted for order ORD-ACT-1",
    ] {
        assert!(page.body.contains(part), "{part}: {}", page.body);
    }
    assert!(!page.body.contains(&key), "the key is hidden until asked");
    let shown = ann.post(&format!("/console/licenses/{id}/key"), &[("csrf", &csrf)]);
    assert_eq!(shown.status, 200);
    assert!(shown.body.contains(&key), "shown when asked");

    // Suspend: a confirmation, then the action.
    let confirm = ann.get(&format!("/console/licenses/{id}/confirm?action=suspend"));
    assert_eq!(confirm.status, 200);
    assert!(confirm.body.contains("id=\"confirm-action\""));
    assert!(
        !confirm.body.contains("name=\"password\""),
        "no password for a suspension"
    );
    let done = ann.post(
        &format!("/console/licenses/{id}/act"),
        &[
            ("csrf", &csrf),
            ("action", "suspend"),
            ("reason", "chargeback open"),
        ],
    );
    let done = after(&mut ann, done);
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("now suspended"), "{}", done.body);
    let done = ann.post(
        &format!("/console/licenses/{id}/act"),
        &[("csrf", &csrf), ("action", "reinstate"), ("reason", "")],
    );
    let done = after(&mut ann, done);
    assert!(done.body.contains("now active"), "{}", done.body);

    // Extend: the preview shows the new deadline, the decision the key.
    let preview = ann.get(&format!(
        "/console/licenses/{id}/remedy?remedy=extend&days=30"
    ));
    assert_eq!(preview.status, 200, "{}", preview.body);
    assert!(
        preview.body.contains("id=\"new-deadline\""),
        "{}",
        preview.body
    );
    assert!(preview.body.contains("30 days left"), "{}", preview.body);
    let idem = preview.input("idempotency").unwrap();
    let fields = [
        ("csrf", csrf.as_str()),
        ("remedy", "extend"),
        ("days", "30"),
        ("reason", "bought in time, came back late"),
        ("idempotency", idem.as_str()),
    ];
    let decided = ann.post(&format!("/console/licenses/{id}/remedy"), &fields);
    assert_eq!(decided.status, 200, "{}", decided.body);
    assert!(decided.body.contains("Decided: extend"), "{}", decided.body);
    assert!(decided.body.contains("New deadline"));
    assert!(decided.body.contains("id=\"license-key\""));
    assert_csp(&decided, "decision");
    // Sent twice, decided once.
    let again = ann.post(&format!("/console/licenses/{id}/remedy"), &fields);
    assert!(
        again.body.contains("nothing was done twice"),
        "{}",
        again.body
    );

    let events = history(&server, &id);
    for kind in ["license_suspended", "license_reinstated", "grace_decision"] {
        let by: Vec<&Value> = events
            .iter()
            .filter(|e| e["kind"] == kind)
            .map(|e| &e["actor"])
            .collect();
        assert_eq!(by.len(), 1, "{kind}: {events:?}");
        assert_eq!(
            by[0],
            &json!({"type": "user", "email": "ann@example.com"}),
            "{kind}"
        );
    }
    // The customer's app activates now, with the key the page showed.
    server
        .post(
            "/v1/activations",
            None,
            &json!({"license_key": key, "fingerprint": "fp-late"}),
        )
        .expect(201);
    let page = ann.get(&format!("/console/licenses/{id}"));
    assert!(
        !page.body.contains("Late claim: the activation window"),
        "closed panel gone"
    );
    assert!(page.body.contains("user:ann@example.com"), "{}", page.body);
    assert!(page.body.contains("Late claim decided"), "{}", page.body);
    assert!(page.body.contains("1 of 3 in use"), "{}", page.body);

    // A lost machine deactivated with a reason.
    let act_id = page.body.split("id=\"deactivate-").nth(1).unwrap();
    let act_id = &act_id[..act_id.find('"').unwrap()];
    let confirm = ann.get(&format!(
        "/console/licenses/{id}/confirm?action=deactivate&activation={act_id}"
    ));
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    let done = ann.post(
        &format!("/console/licenses/{id}/act"),
        &[
            ("csrf", &csrf),
            ("action", "deactivate"),
            ("activation", act_id),
            ("reason", "laptop stolen"),
        ],
    );
    let done = after(&mut ann, done);
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(
        done.body.contains("machine is deactivated"),
        "{}",
        done.body
    );
    assert!(done.body.contains("0 of 3 in use"));
    let events = history(&server, &id);
    let off = events
        .iter()
        .find(|e| e["kind"] == "activation_deactivated")
        .unwrap();
    assert_eq!(off["actor"]["email"], "ann@example.com");
    assert_eq!(off["data"]["reason"], "laptop stolen");
}

both_engines!(a_refund_asks_for_the_password_again_and_then_not_within_reauth_minutes);
fn a_refund_asks_for_the_password_again_and_then_not_within_reauth_minutes(engine: Engine) {
    let server = TestServer::start_on(engine);
    let (mut ann, csrf) = agent(&server, "ann@example.com");
    let (id, _) = late_license(&server, "ORD-REF-1", "eve@example.com");
    let (other, _) = late_license(&server, "ORD-REF-2", "eve@example.com");
    let confirm = ann.get(&format!("/console/licenses/{id}/confirm?action=refund"));
    assert!(
        confirm.body.contains("name=\"password\""),
        "{}",
        confirm.body
    );
    let path = format!("/console/licenses/{id}/act");
    let without = ann.post(&path, &[("csrf", &csrf), ("action", "refund")]);
    assert_eq!(without.status, 422);
    assert!(
        without.body.contains("Enter your password"),
        "{}",
        without.body
    );
    let wrong = ann.post(
        &path,
        &[
            ("csrf", &csrf),
            ("action", "refund"),
            ("password", "not it at all"),
        ],
    );
    assert_eq!(wrong.status, 422);
    assert!(wrong.body.contains("not right"), "{}", wrong.body);
    let res = server
        .get(
            &format!("/v1/licenses/{id}"),
            Some(&server.token("support")),
        )
        .expect(200);
    assert_eq!(res["license"]["status"], "active", "nothing done yet");
    let right = ann.post(
        &path,
        &[
            ("csrf", &csrf),
            ("action", "refund"),
            ("password", PASSWORD),
            ("reason", "asked within 14 days"),
        ],
    );
    let right = after(&mut ann, right);
    assert_eq!(right.status, 200, "{}", right.body);
    assert!(right.body.contains("now refunded"), "{}", right.body);
    // Within reauth_minutes, a credit remedy asks no second time.
    let preview = ann.get(&format!("/console/licenses/{other}/remedy?remedy=credit"));
    assert_eq!(preview.status, 200, "{}", preview.body);
    assert!(preview
        .body
        .contains("49.00 EUR goes to the store credit of eve@example.com"));
    assert!(
        !preview.body.contains("name=\"password\""),
        "{}",
        preview.body
    );
    let idem = preview.input("idempotency").unwrap();
    let credited = ann.post(
        &format!("/console/licenses/{other}/remedy"),
        &[
            ("csrf", csrf.as_str()),
            ("remedy", "credit"),
            ("reason", "would rather have credit"),
            ("idempotency", idem.as_str()),
        ],
    );
    assert_eq!(credited.status, 200, "{}", credited.body);
    assert!(
        credited.body.contains("49.00 EUR to eve@example.com"),
        "{}",
        credited.body
    );
    // Another agent's fresh session is asked.
    let (mut bob, _) = agent(&server, "bob@example.com");
    let (third, _) = late_license(&server, "ORD-REF-3", "eve@example.com");
    let confirm = bob.get(&format!("/console/licenses/{third}/remedy?remedy=refund"));
    assert!(
        confirm.body.contains("name=\"password\""),
        "{}",
        confirm.body
    );
}

both_engines!(a_pending_claim_is_resolved_from_the_queue_with_a_substitute_after_its_preview);
fn a_pending_claim_is_resolved_from_the_queue_with_a_substitute_after_its_preview(engine: Engine) {
    let server = server_with_claims_for_support(engine);
    let (mut ann, csrf) = agent(&server, "ann@example.com");
    let empty = ann.get("/console/claims");
    assert!(empty.body.contains("id=\"queue-empty\""), "{}", empty.body);
    let (id, key) = late_license(&server, "ORD-Q-1", "fay@example.com");
    let filed = server
        .post(
            "/v1/claims",
            None,
            &json!({"license_key": key, "message": "I was travelling"}),
        )
        .expect(202);
    let claim = filed["claim"]["id"].as_str().unwrap().to_owned();
    let queue = ann.get("/console/claims");
    assert_eq!(queue.status, 200);
    for part in [
        claim.as_str(),
        id.as_str(),
        "I was travelling",
        "275",
        &format!("id=\"resolve-{claim}\""),
    ] {
        assert!(queue.body.contains(part), "{part}: {}", queue.body);
    }
    // The license page shows the claim, and its remedies close it.
    let page = ann.get(&format!("/console/licenses/{id}"));
    assert!(page.body.contains("id=\"pending-claims\""), "{}", page.body);
    assert!(
        page.body
            .contains(&format!("remedy=substitute&amp;claim={claim}")),
        "{}",
        page.body
    );
    // The substitutes the price and the tolerance allow; the upgrade's amount due.
    let preview = ann.get(&format!(
        "/console/licenses/{id}/remedy?remedy=substitute&claim={claim}"
    ));
    assert_eq!(preview.status, 200, "{}", preview.body);
    assert!(
        preview.body.contains("id=\"product-photo-basic\""),
        "{}",
        preview.body
    );
    assert!(preview.body.contains("id=\"product-font-pack\""));
    assert!(
        !preview.body.contains("id=\"product-studio-suite\""),
        "too dear"
    );
    assert!(
        preview
            .body
            .contains("Costs 199.00 EUR, more than the 49.00 EUR a substitute may cost"),
        "{}",
        preview.body
    );
    let upgrade = ann.get(&format!(
        "/console/licenses/{id}/remedy?remedy=upgrade&product=studio-suite"
    ));
    assert!(upgrade.body.contains("150.00 EUR due"), "{}", upgrade.body);
    assert!(
        upgrade.body.contains("usable once 150.00 EUR is paid"),
        "{}",
        upgrade.body
    );
    let idem = preview.input("idempotency").unwrap();
    let decided = ann.post(
        &format!("/console/licenses/{id}/remedy"),
        &[
            ("csrf", csrf.as_str()),
            ("remedy", "substitute"),
            ("product", "photo-basic"),
            ("claim", claim.as_str()),
            ("reason", "wants the basic one now"),
            ("idempotency", idem.as_str()),
        ],
    );
    assert_eq!(decided.status, 200, "{}", decided.body);
    assert!(
        decided.body.contains("Decided: substitute"),
        "{}",
        decided.body
    );
    assert!(decided.body.contains("Claim closed"), "{}", decided.body);
    assert!(decided.body.contains("New license"));
    let at = decided.body.find("id=\"license-key\"").unwrap();
    let rest = &decided.body[at..];
    let start = rest.find('>').unwrap() + 1;
    let new_key = rest[start..start + rest[start..].find('<').unwrap()].to_owned();
    server
        .post(
            "/v1/activations",
            None,
            &json!({"license_key": new_key, "fingerprint": "fp-new"}),
        )
        .expect(201);
    let queue = ann.get("/console/claims");
    assert!(queue.body.contains("id=\"queue-empty\""), "{}", queue.body);
    let events = history(&server, &id);
    let decision = events
        .iter()
        .find(|e| e["kind"] == "grace_decision")
        .unwrap();
    assert_eq!(decision["actor"]["email"], "ann@example.com");
    assert_eq!(decision["data"]["claim"], claim.as_str());
}

both_engines!(the_console_forms_refuse_a_missing_csrf_token_and_a_foreign_origin);
fn the_console_forms_refuse_a_missing_csrf_token_and_a_foreign_origin(engine: Engine) {
    let server = TestServer::start_on(engine);
    let (mut ann, csrf) = agent(&server, "ann@example.com");
    let (id, _) = late_license(&server, "ORD-CSRF-1", "gus@example.com");
    let own = format!("http://127.0.0.1:{}", server.port);
    let forms: [(String, Vec<(&str, &str)>); 3] = [
        (format!("/console/licenses/{id}/key"), vec![]),
        (
            format!("/console/licenses/{id}/act"),
            vec![("action", "suspend"), ("reason", "x")],
        ),
        (
            format!("/console/licenses/{id}/remedy"),
            vec![("remedy", "decline"), ("reason", "x")],
        ),
    ];
    for (path, fields) in &forms {
        let mut with_token = fields.clone();
        with_token.push(("csrf", &csrf));
        for (case, sent, origin) in [
            ("no token", fields.clone(), Some(own.as_str())),
            (
                "a foreign origin",
                with_token.clone(),
                Some("http://evil.example"),
            ),
            ("no origin", with_token.clone(), None),
        ] {
            let res = ann.post_from(path, &sent, origin);
            assert_eq!(res.status, 403, "{path}: {case}");
            assert_csp(&res, case);
        }
    }
    let events = history(&server, &id);
    assert!(
        events
            .iter()
            .all(|e| e["kind"] != "license_suspended" && e["kind"] != "grace_decision"),
        "{events:?}"
    );
}

both_engines!(an_upgrade_shows_its_amount_due_and_a_renewal_its_new_expiry);
fn an_upgrade_shows_its_amount_due_and_a_renewal_its_new_expiry(engine: Engine) {
    let server = TestServer::start_on(engine);
    let (mut ann, csrf) = agent(&server, "ann@example.com");
    let (id, _) = late_license(&server, "ORD-UP-1", "hal@example.com");
    let preview = ann.get(&format!(
        "/console/licenses/{id}/remedy?remedy=upgrade&product=studio-suite"
    ));
    let idem = preview.input("idempotency").unwrap();
    let path = format!("/console/licenses/{id}/remedy");
    let no_reason = ann.post(
        &path,
        &[
            ("csrf", csrf.as_str()),
            ("remedy", "upgrade"),
            ("product", "studio-suite"),
            ("idempotency", idem.as_str()),
        ],
    );
    assert_eq!(no_reason.status, 422);
    assert!(
        no_reason.body.contains("Write the reason"),
        "{}",
        no_reason.body
    );
    let decided = ann.post(
        &path,
        &[
            ("csrf", csrf.as_str()),
            ("remedy", "upgrade"),
            ("product", "studio-suite"),
            ("reason", "wants the suite"),
            ("idempotency", idem.as_str()),
        ],
    );
    assert_eq!(decided.status, 200, "{}", decided.body);
    for part in ["Amount due", "150.00 EUR", "New license", "now superseded"] {
        assert!(decided.body.contains(part), "{part}: {}", decided.body);
    }

    let fonts = server
        .mint(json!({"product": "font-pack", "order_id": "ORD-RENEW-1"}))
        .expect(201);
    let fonts_id = fonts["license"]["id"].as_str().unwrap().to_owned();
    let expires = fonts["license"]["expires_at"].as_str().unwrap().to_owned();
    let page = ann.get(&format!("/console/licenses/{fonts_id}"));
    assert!(page.body.contains("365 days left"), "{}", page.body);
    assert!(page.body.contains("no email"), "{}", page.body);
    let confirm = ann.get(&format!(
        "/console/licenses/{fonts_id}/confirm?action=renew"
    ));
    assert!(confirm.body.contains("name=\"days\""), "{}", confirm.body);
    let bad = ann.post(
        &format!("/console/licenses/{fonts_id}/act"),
        &[("csrf", &csrf), ("action", "renew"), ("days", "a year")],
    );
    assert_eq!(bad.status, 422);
    assert!(bad.body.contains("whole number"), "{}", bad.body);
    let done = ann.post(
        &format!("/console/licenses/{fonts_id}/act"),
        &[("csrf", &csrf), ("action", "renew"), ("days", "30")],
    );
    let done = after(&mut ann, done);
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(
        done.body.contains("Renewed: the license now expires"),
        "{}",
        done.body
    );
    // 365 + 30 days from the mint; a second passed since it (whole-second times)
    // leaves 394 full days and some hours: either is right, the machine's speed
    // decides which.
    assert!(
        done.body.contains("395 days left") || done.body.contains("394 days left"),
        "{}",
        done.body
    );
    assert!(!done.body.contains(&expires), "the expiry moved");
}
