//! The customer page (`/my`) over HTTP: sign-in with a key and with a link from
//! a real mailbox (aiosmtpd), no email enumeration, expired and reused links, the
//! CSRF token and Origin check, a deactivation past the churn limit, the late
//! claim, the languages.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use keyclerk::domain::time;
use serde_json::{json, Value};

use crate::helpers::{both_engines, Dirs, Engine, TestServer};
use crate::mail::{free_port, mail_settings, wait_for, Smtp};

/// An answer as a browser sees it.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Page {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The value of the (first) hidden input `name`.
    pub fn input(&self, name: &str) -> Option<String> {
        let marker = format!("name=\"{name}\" value=\"");
        let at = self.body.find(&marker)?;
        let rest = &self.body[at + marker.len()..];
        Some(rest[..rest.find('"')?].to_owned())
    }

    fn set_cookies(&self) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

fn page_of(r: Result<ureq::Response, ureq::Error>) -> Page {
    let resp = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("transport error: {e}"),
    };
    let status = resp.status();
    let headers = resp
        .headers_names()
        .into_iter()
        .flat_map(|n| {
            resp.all(&n)
                .into_iter()
                .map(|v| (n.clone(), v.to_owned()))
                .collect::<Vec<_>>()
        })
        .collect();
    let body = resp.into_string().unwrap_or_default();
    Page {
        status,
        headers,
        body,
    }
}

/// A browser of one customer: its cookies, no redirects followed.
pub struct Customer<'s> {
    server: &'s TestServer,
    agent: ureq::Agent,
    pub cookies: BTreeMap<String, String>,
    pub accept_language: Option<String>,
}

impl<'s> Customer<'s> {
    pub fn new(server: &'s TestServer) -> Self {
        Self {
            server,
            agent: ureq::AgentBuilder::new().redirects(0).build(),
            cookies: BTreeMap::new(),
            accept_language: None,
        }
    }

    fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.port)
    }

    fn request(&self, method: &str, path: &str) -> ureq::Request {
        let mut r = self.agent.request(method, &self.server.url(path));
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            r = r.set("Cookie", &jar.join("; "));
        }
        if let Some(l) = &self.accept_language {
            r = r.set("Accept-Language", l);
        }
        r
    }

    fn keep(&mut self, page: &Page) {
        for c in page.set_cookies() {
            let first = c.split(';').next().unwrap_or("");
            if let Some((name, value)) = first.split_once('=') {
                if value.is_empty() || c.contains("Max-Age=0") {
                    self.cookies.remove(name);
                } else {
                    self.cookies.insert(name.to_owned(), value.to_owned());
                }
            }
        }
    }

    pub fn get(&mut self, path: &str) -> Page {
        let page = page_of(self.request("GET", path).call());
        self.keep(&page);
        page
    }

    pub fn post_from(&mut self, path: &str, fields: &[(&str, &str)], origin: Option<&str>) -> Page {
        let mut r = self.request("POST", path);
        if let Some(o) = origin {
            r = r.set("Origin", o);
        }
        let page = page_of(r.send_form(fields));
        self.keep(&page);
        page
    }

    /// Posts a form from the page's own origin, with the CSRF token the last page
    /// `from` gave.
    pub fn post(&mut self, path: &str, from: &Page, fields: &[(&str, &str)]) -> Page {
        let csrf = from.input("csrf").expect("the page has a form token");
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        let origin = self.origin();
        self.post_from(path, &all, Some(&origin))
    }

    /// Signs in with `key`; the answer.
    pub fn sign_in_with_key(&mut self, key: &str) -> Page {
        let form = self.get("/my");
        self.post("/my/sign-in/key", &form, &[("key", key)])
    }
}

fn days_ago(days: i64) -> String {
    time::format(time::now() - chrono::Duration::days(days))
}

fn mint(server: &TestServer, body: Value) -> (String, String) {
    let m = server.mint(body).expect(201);
    (
        m["license"]["id"].as_str().unwrap().to_owned(),
        m["key"].as_str().unwrap().to_owned(),
    )
}

fn activate(server: &TestServer, key: &str, fingerprint: &str, name: &str) -> Value {
    server
        .post(
            "/v1/activations",
            None,
            &json!({"license_key": key, "fingerprint": fingerprint, "name": name,
                    "platform": "linux"}),
        )
        .expect(201)
}

#[track_caller]
fn assert_secure(page: &Page, what: &str) {
    let csp = page.header("content-security-policy").unwrap_or("");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{what}: {csp:?}"
    );
    assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
    assert_eq!(page.header("cache-control"), Some("no-store"), "{what}");
    assert_eq!(page.header("x-frame-options"), Some("DENY"), "{what}");
}

fn session_cookie(page: &Page) -> Option<String> {
    page.set_cookies()
        .into_iter()
        .find(|c| c.starts_with("__Host-keyclerk_my="))
        .map(str::to_owned)
}

/// The link in a sign-in mail's text.
fn link_in(message: &Value) -> String {
    message["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["type"] == "text/plain")
        .unwrap()["content"]
        .as_str()
        .unwrap()
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("http://") && l.contains("/my/link?t="))
        .unwrap_or_else(|| panic!("no link in {message}"))
        .to_owned()
}

fn path_of(link: &str) -> String {
    let at = link.find("/my/link?t=").unwrap();
    link[at..].to_owned()
}

both_engines!(a_customer_signs_in_with_the_key_and_sees_the_license);
fn a_customer_signs_in_with_the_key_and_sees_the_license(engine: Engine) {
    let server = TestServer::start_on(engine);
    let (id, key) = mint(
        &server,
        json!({"product": "photo-pro", "order_id": "my-key-1", "customer_email": "ann@example.com"}),
    );
    let mut c = Customer::new(&server);
    let form = c.get("/my");
    assert_eq!(form.status, 200);
    assert_secure(&form, "the sign-in page");
    assert!(
        form.body.contains("Sign in to see your licenses"),
        "{}",
        form.body
    );
    assert!(
        form.body.contains("email-unavailable"),
        "without [mail] the page says email sign-in is unavailable"
    );

    let unknown = c.post("/my/sign-in/key", &form, &[("key", "v4.public.nope")]);
    assert_eq!(unknown.status, 401);
    assert!(unknown.body.contains("This key is not one we know"));
    assert!(session_cookie(&unknown).is_none());

    let signed = c.post("/my/sign-in/key", &form, &[("key", &key)]);
    assert_eq!(signed.status, 303, "{}", signed.body);
    let cookie = session_cookie(&signed).expect("a session cookie");
    for attr in ["Path=/", "Secure", "HttpOnly", "SameSite=Lax"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert!(!cookie.contains("Domain"), "{cookie}");
    let page = c.get("/my");
    assert_eq!(page.status, 200);
    assert_secure(&page, "the licenses page");
    assert!(page.body.contains("Photo Pro"), "{}", page.body);
    assert!(page.body.contains("my-key-1"));
    assert!(page.body.contains(&key), "the key is on the page");
    assert!(page.body.contains(&format!("id=\"{id}\"")));
    assert!(page.body.contains("days left"), "{}", page.body);
    assert!(
        !page.body.contains("DOWNLOADS"),
        "the marker is a template comment"
    );

    // Signing out ends the session on the server: the old cookie opens nothing.
    let old = c.cookies.clone();
    let out = c.post("/my/logout", &page, &[]);
    assert_eq!(out.status, 303);
    c.cookies = old;
    let after = c.get("/my");
    assert!(after.body.contains("Sign in to see your licenses"));
}

both_engines!(a_sign_in_link_from_the_mail_signs_in_once_and_shows_every_license_of_the_email);
fn a_sign_in_link_from_the_mail_signs_in_once_and_shows_every_license_of_the_email(engine: Engine) {
    let inbox = tempfile::tempdir().unwrap();
    let port = free_port();
    let _smtp = Smtp::start(inbox.path(), port);
    let server = TestServer::start_with(Dirs::on(engine), |s| {
        s.mail = Some(mail_settings(port));
    });
    mint(
        &server,
        json!({"product": "photo-pro", "order_id": "my-link-1", "send_email": false, "customer_email": "ann@example.com"}),
    );
    mint(
        &server,
        json!({"product": "studio-suite", "order_id": "my-link-2", "send_email": false, "customer_email": "Ann@Example.com"}),
    );
    let mut c = Customer::new(&server);
    let form = c.get("/my");
    assert!(!form.body.contains("email-unavailable"));
    let sent = c.post("/my/sign-in/email", &form, &[("email", "ann@example.com")]);
    assert_eq!(sent.status, 200);
    assert!(
        sent.body.contains("a sign-in link is on its way"),
        "{}",
        sent.body
    );
    let got = wait_for(inbox.path(), 1);
    assert_eq!(got[0]["rcpt_to"], json!(["ann@example.com"]));
    assert_eq!(got[0]["subject"], "Your sign-in link");
    let link = link_in(&got[0]);
    assert!(
        link.starts_with(&format!("http://127.0.0.1:{}/my/link?t=", server.port)),
        "{link}"
    );
    let path = path_of(&link);

    // Opening the link (a prefetcher too) spends nothing: a button does.
    let mut fresh = Customer::new(&server);
    let confirm = fresh.get(&path);
    assert_eq!(confirm.status, 200);
    assert_secure(&confirm, "the link's page");
    assert!(session_cookie(&confirm).is_none());
    let confirm = fresh.get(&path);
    assert_eq!(confirm.status, 200, "still usable");
    let used = fresh.post(&path, &confirm, &[]);
    assert_eq!(used.status, 303, "{}", used.body);
    assert!(session_cookie(&used).is_some());
    let page = fresh.get("/my");
    assert!(
        page.body.contains("Licenses of ann@example.com"),
        "{}",
        page.body
    );
    assert!(page.body.contains("my-link-1") && page.body.contains("my-link-2"));

    // Used once: a second use is refused, clearly.
    let mut other = Customer::new(&server);
    let again = other.get(&path);
    assert_eq!(again.status, 410);
    assert!(again.body.contains("This link was already used"));
    let confirm_page = other.get("/my");
    let again = other.post(&path, &confirm_page, &[]);
    assert_eq!(again.status, 410);
    assert!(session_cookie(&again).is_none());
}

both_engines!(an_expired_sign_in_link_is_refused);
fn an_expired_sign_in_link_is_refused(engine: Engine) {
    let inbox = tempfile::tempdir().unwrap();
    let port = free_port();
    let _smtp = Smtp::start(inbox.path(), port);
    let server = TestServer::start_with(Dirs::on(engine), |s| {
        s.mail = Some(mail_settings(port));
    });
    mint(
        &server,
        json!({"product": "photo-pro", "order_id": "my-exp-1", "send_email": false, "customer_email": "bob@example.com"}),
    );
    let mut c = Customer::new(&server);
    let form = c.get("/my");
    assert_eq!(
        c.post("/my/sign-in/email", &form, &[("email", "bob@example.com")])
            .status,
        200
    );
    let path = path_of(&link_in(&wait_for(inbox.path(), 1)[0]));
    // The link's 30 minutes pass.
    server
        .dirs()
        .execute("UPDATE customer_sign_ins SET expires_at = created_at - 1");
    let page = c.get(&path);
    assert_eq!(page.status, 410);
    assert!(page.body.contains("This link has expired"), "{}", page.body);
    let form = c.get("/my");
    let used = c.post(&path, &form, &[]);
    assert_eq!(used.status, 410);
    assert!(session_cookie(&used).is_none());
    // A link nobody was sent.
    for unknown in [
        "/my/link?t=abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrst",
        "/my/link?t=",
        "/my/link?t=%3Cscript%3E",
        "/my/link",
    ] {
        let page = c.get(unknown);
        assert_eq!(page.status, 404, "{unknown}");
        assert!(page.body.contains("This link does not work"), "{unknown}");
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
fn a_known_and_an_unknown_email_get_the_same_status_body_and_about_the_same_time() {
    let inbox = tempfile::tempdir().unwrap();
    let port = free_port();
    let _smtp = Smtp::start(inbox.path(), port);
    let server = TestServer::start_with(Dirs::new(), |s| {
        s.mail = Some(mail_settings(port));
    });
    mint(
        &server,
        json!({"product": "photo-pro", "order_id": "my-enum-1", "send_email": false, "customer_email": "known@example.com"}),
    );
    let mut c = Customer::new(&server);
    let form = c.get("/my");
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    let mut bodies = Vec::new();
    for i in 0..4 {
        // Alternating, each address its own email (the per-email limit is 5 an hour).
        for (email, times) in [
            ("known@example.com", &mut known),
            (&*format!("nobody{i}@example.com"), &mut unknown),
        ] {
            let started = Instant::now();
            let page = c.post("/my/sign-in/email", &form, &[("email", email)]);
            times.push(started.elapsed());
            assert_eq!(page.status, 200, "{email}");
            bodies.push(page.body.replace(email, "EMAIL"));
        }
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "the same page whether or not the email is known"
    );
    let (k, u) = (median(known), median(unknown));
    // Both paths run the same transaction; the bound is wide so a slow machine
    // cannot fail it, yet a skipped database write (or a mail sent inline) would.
    let slack = Duration::from_millis(100);
    assert!(
        k <= u * 4 + slack && u <= k * 4 + slack,
        "known {k:?}, unknown {u:?}"
    );
    let got = wait_for(inbox.path(), 4);
    std::thread::sleep(Duration::from_millis(300));
    let got_later = crate::mail::received(inbox.path());
    assert_eq!(got_later.len(), got.len(), "mail only for the known email");
    assert!(got
        .iter()
        .all(|m| m["rcpt_to"] == json!(["known@example.com"])));
    // The sixth link for one email in an hour is refused, known or not alike.
    for (email, asked) in [("known@example.com", 4), ("nobody0@example.com", 1)] {
        for n in asked..5 {
            let page = c.post("/my/sign-in/email", &form, &[("email", email)]);
            assert_eq!(page.status, 200, "{email}: link {}", n + 1);
        }
        let page = c.post("/my/sign-in/email", &form, &[("email", email)]);
        assert_eq!(page.status, 429, "{email}: the sixth");
        assert!(page.header("retry-after").is_some());
    }
}

/// A refused form: what is wrong, its fields, its `Origin`.
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Option<&'a str>);

#[test]
fn forms_without_the_token_or_from_another_origin_are_refused() {
    let server = TestServer::start();
    let (_, key) = mint(
        &server,
        json!({"product": "photo-pro", "order_id": "my-csrf-1", "customer_email": "c@example.com"}),
    );
    let mut c = Customer::new(&server);
    let form = c.get("/my");
    let own = format!("http://127.0.0.1:{}", server.port);
    let token = form.input("csrf").unwrap();
    let wrong = "x".repeat(52);
    let cases: [Case<'_>; 4] = [
        ("no token", vec![("key", key.as_str())], Some(own.as_str())),
        (
            "a wrong token",
            vec![("csrf", wrong.as_str()), ("key", key.as_str())],
            Some(own.as_str()),
        ),
        (
            "another origin",
            vec![("csrf", token.as_str()), ("key", key.as_str())],
            Some("http://evil.example"),
        ),
        (
            "no origin",
            vec![("csrf", token.as_str()), ("key", key.as_str())],
            None,
        ),
    ];
    for (case, fields, origin) in cases {
        let page = c.post_from("/my/sign-in/key", &fields, origin);
        assert_eq!(page.status, 403, "{case}");
        assert!(session_cookie(&page).is_none(), "{case}");
        assert_secure(&page, case);
    }
    // Signed in: the session's token, not the pre-session one, guards the forms.
    let signed = c.sign_in_with_key(&key);
    assert_eq!(signed.status, 303);
    let page = c.get("/my");
    let own_token = page.input("csrf").unwrap();
    assert_ne!(own_token, token, "a new token with the session");
    let refused = c.post_from(
        "/my/logout",
        &[("csrf", token.as_str())],
        Some(own.as_str()),
    );
    assert_eq!(refused.status, 403);
    assert!(c.get("/my").body.contains("my-csrf-1"), "still signed in");
    let refused = c.post_from(
        "/my/logout",
        &[("csrf", own_token.as_str())],
        Some("https://evil.example"),
    );
    assert_eq!(refused.status, 403);
    // A signed-out visitor of a signed-in form is sent to the sign-in.
    let mut stranger = Customer::new(&server);
    let f = stranger.get("/my");
    let sent = stranger.post("/my/licenses/lic_x/claim", &f, &[]);
    assert_eq!(sent.status, 303);
    assert_eq!(sent.header("location"), Some("/my"));
}

both_engines!(a_machine_is_deactivated_after_a_confirmation_and_refused_past_the_churn_limit);
fn a_machine_is_deactivated_after_a_confirmation_and_refused_past_the_churn_limit(engine: Engine) {
    let server = TestServer::start_with(Dirs::on(engine), |s| {
        s.products
            .get_mut("studio-suite")
            .unwrap()
            .max_deactivations_per_30_days = 1;
    });
    let (_, key) = mint(
        &server,
        json!({"product": "studio-suite", "order_id": "my-churn-1", "seats": 3}),
    );
    let old = activate(&server, &key, "fp-old", "old-laptop");
    let old = old["activation"]["id"].as_str().unwrap().to_owned();
    let office = activate(&server, &key, "fp-office", "office-pc");
    let office = office["activation"]["id"].as_str().unwrap().to_owned();
    let mut c = Customer::new(&server);
    assert_eq!(c.sign_in_with_key(&key).status, 303);
    let page = c.get("/my");
    assert!(page.body.contains("old-laptop") && page.body.contains("office-pc"));

    let confirm = c.get(&format!("/my/machines/{old}/deactivate"));
    assert_eq!(confirm.status, 200);
    assert!(
        confirm.body.contains("Deactivate old-laptop?"),
        "{}",
        confirm.body
    );
    assert!(
        confirm.body.contains("one seat every 30 days"),
        "{}",
        confirm.body
    );
    let done = c.post(&format!("/my/machines/{old}/deactivate"), &confirm, &[]);
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("old-laptop no longer holds a seat"));
    let page = c.get("/my");
    assert!(!page.body.contains("old-laptop"), "{}", page.body);

    let confirm = c.get(&format!("/my/machines/{office}/deactivate"));
    let refused = c.post(&format!("/my/machines/{office}/deactivate"), &confirm, &[]);
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert!(
        refused.body.contains("One more is possible on"),
        "the refusal says when: {}",
        refused.body
    );
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((29 * 86_400..=30 * 86_400).contains(&retry), "{retry}");
    assert!(
        c.get("/my").body.contains("office-pc"),
        "still holds its seat"
    );

    // Another license's machine is not this customer's.
    let (_, other_key) = mint(
        &server,
        json!({"product": "studio-suite", "order_id": "my-churn-2"}),
    );
    let theirs = activate(&server, &other_key, "fp-theirs", "their-pc");
    let theirs = theirs["activation"]["id"].as_str().unwrap();
    let page = c.get(&format!("/my/machines/{theirs}/deactivate"));
    assert_eq!(page.status, 404);
}

both_engines!(a_buyer_of_400_days_ago_claims_on_the_page_and_then_activates);
fn a_buyer_of_400_days_ago_claims_on_the_page_and_then_activates(engine: Engine) {
    let server = TestServer::start_on(engine);
    let (_, key) = mint(
        &server,
        json!({"product": "photo-pro", "order_id": "my-late-1",
               "customer_email": "late@example.com", "purchased_at": days_ago(400)}),
    );
    let mut c = Customer::new(&server);
    assert_eq!(c.sign_in_with_key(&key).status, 303);
    let page = c.get("/my");
    assert!(
        page.body.contains("The activation window has closed"),
        "{}",
        page.body
    );
    assert!(page.body.contains("days ago"));
    let id = page
        .body
        .split("action=\"/my/licenses/")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap()
        .to_owned();
    let answer = c.post(
        &format!("/my/licenses/{id}/claim"),
        &page,
        &[("message", "I was travelling.")],
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(
        answer.body.contains("Your license works again"),
        "{}",
        answer.body
    );
    let page = c.get("/my");
    assert!(!page.body.contains("The activation window has closed"));
    assert!(
        page.body
            .contains("the activation window was opened again, granted at once"),
        "{}",
        page.body
    );
    activate(&server, &key, "fp-late", "late-pc");
}

#[test]
fn a_claim_the_policy_leaves_to_support_says_it_waits() {
    let server = TestServer::start_with(Dirs::new(), |s| {
        s.late_claims.max_age_days = 300;
    });
    let (_, key) = mint(
        &server,
        json!({"product": "photo-pro", "order_id": "my-late-2",
               "customer_email": "wait@example.com", "purchased_at": days_ago(400)}),
    );
    let mut c = Customer::new(&server);
    assert_eq!(c.sign_in_with_key(&key).status, 303);
    let page = c.get("/my");
    let id = page
        .body
        .split("action=\"/my/licenses/")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap()
        .to_owned();
    let answer = c.post(
        &format!("/my/licenses/{id}/claim"),
        &page,
        &[("message", "")],
    );
    assert_eq!(answer.status, 202, "{}", answer.body);
    assert!(answer.body.contains("Your claim was sent"));
    let page = c.get("/my");
    assert!(
        page.body.contains("waits for our support team"),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains("action=\"/my/licenses/"),
        "no second claim form"
    );
}

#[test]
fn the_page_speaks_french_from_accept_language_and_switches_with_a_link() {
    let server = TestServer::start();
    let (_, key) = mint(
        &server,
        json!({"product": "photo-pro", "order_id": "my-fr-1", "customer_email": "fr@example.com"}),
    );
    let mut c = Customer::new(&server);
    c.accept_language = Some("fr-FR,fr;q=0.9,en;q=0.5".into());
    let form = c.get("/my");
    assert!(form.body.contains("<html lang=\"fr\">"));
    assert!(form.body.contains("Connectez-vous pour voir vos licences"));
    assert_eq!(c.sign_in_with_key(&key).status, 303);
    let page = c.get("/my");
    assert!(page.body.contains("Vos licences") && page.body.contains("Copier la clé"));
    assert!(page.body.contains("encore "), "{}", page.body);
    // The link switches, and the cookie keeps the choice.
    let en = c.get("/my?lang=en");
    assert!(en.body.contains("<html lang=\"en\">"));
    assert!(en
        .set_cookies()
        .iter()
        .any(|s| s.starts_with("__Host-keyclerk_lang=en")));
    let again = c.get("/my");
    assert!(
        again.body.contains("Your licenses"),
        "the cookie wins over the header"
    );
}

#[test]
fn a_key_sign_in_is_throttled_like_activation() {
    let server = TestServer::start_with(Dirs::new(), |s| {
        s.rate_limits.enabled = true;
        s.rate_limits.failed_lookups_per_address_per_hour = 5;
    });
    let mut c = Customer::new(&server);
    let form = c.get("/my");
    let mut statuses = Vec::new();
    for i in 0..10 {
        let page = c.post(
            "/my/sign-in/key",
            &form,
            &[("key", &format!("v4.public.guess{i}"))],
        );
        statuses.push(page.status);
        if page.status == 429 {
            assert!(page.header("retry-after").is_some());
            break;
        }
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    assert!(statuses[..statuses.len() - 1].iter().all(|s| *s == 401));
}

#[test]
fn a_key_session_shows_the_license_that_replaced_it_with_its_key_and_the_decision() {
    let server = TestServer::start();
    let (id, old_key) = mint(
        &server,
        json!({"product": "photo-pro", "order_id": "my-sub-1",
               "customer_email": "sub@example.com", "purchased_at": days_ago(400)}),
    );
    let support = server.token("support");
    let sub = server
        .post(
            &format!("/v1/licenses/{id}/grace-extension"),
            Some(&support),
            &json!({"remedy": "substitute", "reason": "discontinued", "product": "photo-basic"}),
        )
        .expect(201);
    let new_key = sub["key"].as_str().unwrap();
    let mut c = Customer::new(&server);
    assert_eq!(c.sign_in_with_key(&old_key).status, 303);
    let page = c.get("/my");
    assert!(
        page.body.contains("Replaced by another license"),
        "{}",
        page.body
    );
    assert!(page.body.contains("Photo Basic") && page.body.contains(new_key));
    assert!(
        page.body.contains("another product was given instead"),
        "the decision is listed: {}",
        page.body
    );
    assert!(!page.body.contains("The activation window has closed"));
}

#[test]
fn a_short_key_signs_in_too_with_spaces_and_lower_case_as_a_person_types_it() {
    let server = TestServer::start();
    let (_, key) = mint(
        &server,
        json!({"product": "font-pack", "order_id": "my-short-1", "customer_email": "s@example.com"}),
    );
    assert!(!key.starts_with("v4."), "a short key: {key}");
    let mut c = Customer::new(&server);
    let typed = format!("  {}  ", key.to_lowercase());
    let signed = c.sign_in_with_key(&typed);
    assert_eq!(signed.status, 303, "{}", signed.body);
    let page = c.get("/my");
    assert!(page.body.contains("Font Pack") && page.body.contains("my-short-1"));
    assert!(page.body.contains("No deadline"), "{}", page.body);
}
