//! The support console: staff accounts from the CLI, sign-in, sessions, CSRF and the
//! security headers of every page.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::helpers::{both_engines, stderr, stdout, Dirs, Engine, TestServer};

/// Runs the keyclerk binary in `dirs` with `input` on its standard input.
pub fn cli_with_stdin(dirs: &Dirs, args: &[&str], input: &str) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyclerk"));
    cmd.args(args)
        .current_dir(dirs.root.path())
        .env("KEYCLERK_DATA_DIR", dirs.data())
        .env("KEYCLERK_KEYS_DIR", dirs.keys())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(url) = dirs.database_url() {
        cmd.env("KEYCLERK_DATABASE__URL", url);
    }
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// A password the rule accepts.
pub const PASSWORD: &str = "plum tractor velvet orbit";

both_engines!(users_create_list_disable_and_reset_keep_staff_accounts_with_their_events);
fn users_create_list_disable_and_reset_keep_staff_accounts_with_their_events(engine: Engine) {
    let server = TestServer::start_on(engine);
    let out = server.cli(&[
        "users",
        "create",
        "--email",
        "Ann@Example.com",
        "--role",
        "support",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let link = stdout(&out).trim().to_owned();
    assert!(
        link.starts_with("http://127.0.0.1:8080/console/setup/") && link.len() > 80,
        "{link}"
    );
    assert!(stderr(&out).contains("24 hours"), "{}", stderr(&out));

    let out = cli_with_stdin(
        server.dirs(),
        &[
            "users",
            "create",
            "--email",
            "boss@example.com",
            "--role",
            "admin",
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "", "no link when the password is given");

    let listed = stdout(&server.cli(&["users", "list"]));
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2, "{listed}");
    assert!(
        lines[0].starts_with("ann@example.com\tsupport\tawaiting setup"),
        "{listed}"
    );
    assert!(
        lines[1].starts_with("boss@example.com\tadmin\tactive"),
        "{listed}"
    );
    assert!(!listed.contains("argon2"), "{listed}");

    // The same email again (in any case) is refused, and so are weak passwords.
    let again = server.cli(&[
        "users",
        "create",
        "--email",
        "ANN@example.com",
        "--role",
        "admin",
    ]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("exists"), "{}", stderr(&again));
    for (case, password, words) in [
        ("short", "short pass", "12 characters"),
        ("common", "Password1234", "common passwords"),
    ] {
        let out = cli_with_stdin(
            server.dirs(),
            &[
                "users",
                "create",
                "--email",
                "weak@example.com",
                "--role",
                "support",
                "--password-stdin",
            ],
            &format!("{password}\n"),
        );
        assert!(!out.status.success(), "{case}");
        assert!(stderr(&out).contains(words), "{case}: {}", stderr(&out));
    }

    let out = server.cli(&["users", "disable", "ann@example.com"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&server.cli(&["users", "list"])).contains("ann@example.com\tsupport\tdisabled"));
    let out = server.cli(&["users", "reset", "ann@example.com"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let new_link = stdout(&out).trim().to_owned();
    assert!(new_link.contains("/console/setup/") && new_link != link);
    assert!(stdout(&server.cli(&["users", "list"]))
        .contains("ann@example.com\tsupport\tawaiting setup"));
    let unknown = server.cli(&["users", "disable", "nobody@example.com"]);
    assert!(!unknown.status.success());
    assert!(
        stderr(&unknown).contains("no staff account"),
        "{}",
        stderr(&unknown)
    );

    // Every change is in the chain, by the operator.
    let dirs = server.stop();
    for kind in [
        "staff_user_created",
        "staff_user_disabled",
        "staff_user_reset",
    ] {
        let n = dirs.query_i64(&format!(
            "SELECT count(*) FROM events WHERE kind = '{kind}' AND actor LIKE '%cli%'"
        ));
        assert!(n >= 1, "{kind}: {n}");
    }
    let out = crate::helpers::cli_in(&dirs, &["audit", "verify"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The password is kept only as an Argon2id hash.
    let hashed = dirs.query_i64(
        "SELECT count(*) FROM staff_users WHERE password_hash LIKE '$argon2id$v=19$m=19456,t=2,p=1$%'",
    );
    assert_eq!(hashed, 1);
}

/// A browser of one person: its own cookie, forms sent with keyclerk's `Origin`,
/// redirects not followed (the tests look at them).
pub struct Browser<'s> {
    server: &'s TestServer,
    agent: ureq::Agent,
    /// The session cookie's value, once signed in.
    pub cookie: Option<String>,
}

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
    /// The value of the hidden or text input `name` in the page.
    pub fn input(&self, name: &str) -> Option<String> {
        let at = self.body.find(&format!("name=\"{name}\" value=\""))?;
        let rest = &self.body[at + name.len() + 15..];
        Some(rest[..rest.find('"')?].to_owned())
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

impl<'s> Browser<'s> {
    pub fn new(server: &'s TestServer) -> Self {
        Self {
            server,
            agent: ureq::AgentBuilder::new().redirects(0).build(),
            cookie: None,
        }
    }

    fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.port)
    }

    fn request(&self, method: &str, path: &str) -> ureq::Request {
        let mut r = self.agent.request(method, &self.server.url(path));
        if let Some(c) = &self.cookie {
            r = r.set("Cookie", &format!("__Host-keyclerk_console={c}"));
        }
        r
    }

    pub fn get(&mut self, path: &str) -> Page {
        let page = page_of(self.request("GET", path).call());
        self.keep_cookie(&page);
        page
    }

    /// Posts a form with `origin` as its `Origin` (None: no header).
    pub fn post_from(&mut self, path: &str, fields: &[(&str, &str)], origin: Option<&str>) -> Page {
        let mut r = self.request("POST", path);
        if let Some(o) = origin {
            r = r.set("Origin", o);
        }
        let page = page_of(r.send_form(fields));
        self.keep_cookie(&page);
        page
    }

    /// Posts a form from keyclerk's own pages.
    pub fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let origin = self.origin();
        self.post_from(path, fields, Some(&origin))
    }

    fn keep_cookie(&mut self, page: &Page) {
        for (n, v) in &page.headers {
            if n.eq_ignore_ascii_case("set-cookie") {
                let value = v
                    .strip_prefix("__Host-keyclerk_console=")
                    .and_then(|rest| rest.split(';').next())
                    .unwrap_or("");
                self.cookie = (!value.is_empty()).then(|| value.to_owned());
            }
        }
    }

    /// Signs in with `email` and `password` (and `totp`); the answer.
    pub fn sign_in(&mut self, email: &str, password: &str, totp: Option<&str>) -> Page {
        let mut fields = vec![("email", email), ("password", password)];
        if let Some(t) = totp {
            fields.push(("totp", t));
        }
        self.post("/console/login", &fields)
    }

    /// The CSRF token of the signed-in session, read from a page's forms.
    pub fn csrf(&mut self) -> String {
        self.get("/console")
            .input("csrf")
            .expect("a signed-in page has the token")
    }
}

/// Makes an account with a password through the CLI.
pub fn staff(server: &TestServer, email: &str, role: &str) {
    let out = cli_with_stdin(
        server.dirs(),
        &[
            "users",
            "create",
            "--email",
            email,
            "--role",
            role,
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

#[track_caller]
fn assert_console_headers(page: &Page, what: &str) {
    let csp = page.header("content-security-policy").unwrap_or("");
    for part in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(part), "{what}: CSP {csp:?} lacks {part}");
    }
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{what}: {csp}"
    );
    assert_eq!(
        page.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(page.header("cache-control"), Some("no-store"), "{what}");
    assert_eq!(page.header("x-frame-options"), Some("DENY"), "{what}");
}

both_engines!(every_staff_page_sends_a_visitor_without_a_session_to_sign_in);
fn every_staff_page_sends_a_visitor_without_a_session_to_sign_in(engine: Engine) {
    use keyclerk::web::{PageAccess, PAGES};
    let server = TestServer::start_on(engine);
    let mut visitor = Browser::new(&server);
    let mut checked = 0;
    for page in PAGES.iter().filter(|p| p.access != PageAccess::Public) {
        let path = page
            .path
            .replace("{id}", "lic_x")
            .replace("{email}", "a@b.c");
        let answer = match page.method {
            "GET" => visitor.get(&path),
            _ => visitor.post(&path, &[("csrf", "x")]),
        };
        assert_eq!(answer.status, 303, "{} {path}", page.method);
        let to = answer.header("location").unwrap_or("");
        assert!(to.starts_with("/console/login?next="), "{path}: {to}");
        assert_console_headers(&answer, &path);
        checked += 1;
    }
    assert!(checked >= 3, "{checked}");
    // The page asked for comes back after signing in, and only a console page.
    let to = visitor.get("/console/admin/users");
    assert_eq!(
        to.header("location"),
        Some("/console/login?next=%2Fconsole%2Fadmin%2Fusers")
    );
    staff(&server, "boss@example.com", "admin");
    let mut admin = Browser::new(&server);
    let res = admin.post(
        "/console/login",
        &[
            ("email", "boss@example.com"),
            ("password", PASSWORD),
            ("next", "/console/admin/users"),
        ],
    );
    assert_eq!(res.header("location"), Some("/console/admin/users"));
    let mut other = Browser::new(&server);
    let res = other.post(
        "/console/login",
        &[
            ("email", "boss@example.com"),
            ("password", PASSWORD),
            ("next", "//evil.example/x"),
        ],
    );
    assert_eq!(res.header("location"), Some("/console"));
}

both_engines!(a_support_agent_gets_403_on_admin_pages_and_an_admin_gets_them);
fn a_support_agent_gets_403_on_admin_pages_and_an_admin_gets_them(engine: Engine) {
    use keyclerk::web::{PageAccess, PAGES};
    let server = TestServer::start_on(engine);
    staff(&server, "ann@example.com", "support");
    staff(&server, "boss@example.com", "admin");
    let mut ann = Browser::new(&server);
    assert_eq!(ann.sign_in("ann@example.com", PASSWORD, None).status, 303);
    let mut boss = Browser::new(&server);
    assert_eq!(boss.sign_in("boss@example.com", PASSWORD, None).status, 303);
    let admin_pages: Vec<_> = PAGES
        .iter()
        .filter(|p| p.access == PageAccess::Staff(keyclerk::domain::staff::StaffRole::Admin))
        .collect();
    assert!(!admin_pages.is_empty());
    for page in admin_pages.iter().filter(|p| p.method == "GET") {
        let denied = ann.get(page.path);
        assert_eq!(denied.status, 403, "{}", page.path);
        assert!(denied.body.contains("for admins"), "{}", denied.body);
        assert_console_headers(&denied, page.path);
        let allowed = boss.get(page.path);
        assert_eq!(allowed.status, 200, "{}", page.path);
    }
    assert_eq!(ann.get("/console").status, 200);
    assert!(
        !ann.get("/console").body.contains("/console/admin/users"),
        "no admin link"
    );
}

both_engines!(signing_in_sets_a_host_only_secure_strict_cookie_with_a_new_id_each_time);
fn signing_in_sets_a_host_only_secure_strict_cookie_with_a_new_id_each_time(engine: Engine) {
    let server = TestServer::start_on(engine);
    staff(&server, "ann@example.com", "support");
    let mut ann = Browser::new(&server);
    // A cookie planted before sign-in (session fixation) is not the session after.
    ann.cookie = Some("planted".into());
    let res = ann.sign_in("ann@example.com", PASSWORD, None);
    assert_eq!(res.status, 303);
    assert_eq!(res.header("location"), Some("/console"));
    let cookie = res.header("set-cookie").unwrap();
    assert!(cookie.starts_with("__Host-keyclerk_console="), "{cookie}");
    let attrs: Vec<&str> = cookie.split("; ").skip(1).collect();
    for a in ["Path=/", "Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(attrs.contains(&a), "{cookie} lacks {a}");
    }
    assert!(
        !cookie.contains("Domain") && !cookie.contains("Max-Age"),
        "{cookie}"
    );
    let first = ann.cookie.clone().unwrap();
    assert_ne!(first, "planted");
    assert_eq!(first.len(), 52);
    assert_eq!(ann.get("/console").status, 200);
    // Signing in again gives another id, and the one sent with it ends.
    let res = ann.sign_in("ann@example.com", PASSWORD, None);
    assert_eq!(res.status, 303);
    let second = ann.cookie.clone().unwrap();
    assert_ne!(first, second);
    let mut stale = Browser::new(&server);
    stale.cookie = Some(first);
    assert_eq!(stale.get("/console").status, 303, "the old session ended");
    // Only the hash of a session id is stored.
    let dirs = server.dirs();
    let raw = dirs.query_i64(&format!(
        "SELECT count(*) FROM staff_sessions WHERE csrf_token = '{second}'"
    ));
    assert_eq!(raw, 0);
}

both_engines!(a_form_without_the_csrf_token_or_from_another_origin_is_refused);
fn a_form_without_the_csrf_token_or_from_another_origin_is_refused(engine: Engine) {
    let server = TestServer::start_on(engine);
    staff(&server, "ann@example.com", "support");
    let mut ann = Browser::new(&server);
    ann.sign_in("ann@example.com", PASSWORD, None);
    let csrf = ann.csrf();
    assert_eq!(csrf.len(), 52);
    let own = format!("http://127.0.0.1:{}", server.port);
    for (case, fields, origin) in [
        ("no token", vec![], Some(own.as_str())),
        (
            "a wrong token",
            vec![("csrf", "0".repeat(52))],
            Some(own.as_str()),
        ),
        (
            "a foreign origin",
            vec![("csrf", csrf.clone())],
            Some("http://evil.example"),
        ),
        ("no origin", vec![("csrf", csrf.clone())], None),
        ("a null origin", vec![("csrf", csrf.clone())], Some("null")),
    ] {
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let res = ann.post_from("/console/logout", &fields, origin);
        assert_eq!(res.status, 403, "{case}");
        assert_console_headers(&res, case);
        assert_eq!(ann.get("/console").status, 200, "{case}: still signed in");
    }
    // Sign-in itself checks the origin too (login CSRF).
    let mut other = Browser::new(&server);
    let res = other.post_from(
        "/console/login",
        &[("email", "ann@example.com"), ("password", PASSWORD)],
        Some("http://evil.example"),
    );
    assert_eq!(res.status, 403);
    assert!(other.cookie.is_none());
    // The header form (htmx) works as the field does.
    let res = page_of(
        ureq::AgentBuilder::new()
            .redirects(0)
            .build()
            .post(&server.url("/console/logout"))
            .set(
                "Cookie",
                &format!("__Host-keyclerk_console={}", ann.cookie.clone().unwrap()),
            )
            .set("Origin", &own)
            .set("X-CSRF-Token", &csrf)
            .send_form(&[]),
    );
    assert_eq!(res.status, 303);
    assert_eq!(res.header("location"), Some("/console/login"));
    assert!(res.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(ann.get("/console").status, 303, "signed out on the server");
}

both_engines!(a_session_ends_after_its_idle_and_its_absolute_time_out);
fn a_session_ends_after_its_idle_and_its_absolute_time_out(engine: Engine) {
    let server = TestServer::start_on(engine);
    staff(&server, "ann@example.com", "support");
    let mut ann = Browser::new(&server);
    ann.sign_in("ann@example.com", PASSWORD, None);
    assert_eq!(ann.get("/console").status, 200);
    // Time as a parameter: the stored times move back, as if the clock moved on.
    let dirs = server.dirs();
    let back = |sql: &str| dirs.execute(sql);
    back("UPDATE staff_sessions SET created_at = created_at - 1740, last_seen_at = last_seen_at - 1740");
    assert_eq!(ann.get("/console").status, 200, "29 minutes idle");
    back("UPDATE staff_sessions SET last_seen_at = last_seen_at - 1860");
    let res = ann.get("/console");
    assert_eq!(res.status, 303, "31 minutes idle");
    assert_eq!(
        dirs.query_i64("SELECT count(*) FROM staff_sessions"),
        0,
        "ended on the server"
    );

    ann.sign_in("ann@example.com", PASSWORD, None);
    // Busy all day: the last request a minute ago, the sign-in 7 h 59 min ago.
    back("UPDATE staff_sessions SET created_at = created_at - 28740, last_seen_at = last_seen_at - 60");
    assert_eq!(ann.get("/console").status, 200, "7 h 59 min");
    back("UPDATE staff_sessions SET created_at = created_at - 120");
    assert_eq!(ann.get("/console").status, 303, "8 h 1 min");
}

both_engines!(failed_sign_ins_are_throttled_and_an_unknown_email_looks_like_a_wrong_password);
fn failed_sign_ins_are_throttled_and_an_unknown_email_looks_like_a_wrong_password(engine: Engine) {
    let server = TestServer::start_on(engine);
    staff(&server, "ann@example.com", "support");
    let mut b = Browser::new(&server);
    let wrong = b.sign_in("ann@example.com", "not the password at all", None);
    let unknown = b.sign_in("zed@example.com", "not the password at all", None);
    assert_eq!(wrong.status, 401);
    assert_eq!(unknown.status, 401);
    assert_eq!(
        wrong.body.replace("ann@example.com", "E"),
        unknown.body.replace("zed@example.com", "E"),
        "the same page for both"
    );
    // Five failures for one account (two done, one was another account): then even
    // the right password waits.
    for _ in 0..4 {
        assert_eq!(
            b.sign_in("ann@example.com", "still not it, sorry", None)
                .status,
            401
        );
    }
    let res = b.sign_in("ann@example.com", PASSWORD, None);
    assert_eq!(res.status, 429, "{}", res.body);
    assert!(res.header("retry-after").is_some());
    assert!(res.body.contains("Too many failed sign-ins"));
    assert!(b.cookie.is_none());
    // Per address: twenty failures from one address lock out every account there.
    let server = TestServer::start_on(engine);
    staff(&server, "bob@example.com", "support");
    let mut c = Browser::new(&server);
    for i in 0..20 {
        let email = format!("guess{i}@example.com");
        assert_eq!(
            c.sign_in(&email, "whatever whatever", None).status,
            401,
            "{i}"
        );
    }
    assert_eq!(c.sign_in("bob@example.com", PASSWORD, None).status, 429);
}

both_engines!(a_setup_link_sets_a_password_and_totp_and_then_sign_in_needs_the_code);
fn a_setup_link_sets_a_password_and_totp_and_then_sign_in_needs_the_code(engine: Engine) {
    use keyclerk::domain::staff::{base32_decode, totp_sha1};
    let server = TestServer::start_on(engine);
    let out = server.cli(&[
        "users",
        "create",
        "--email",
        "ann@example.com",
        "--role",
        "support",
    ]);
    let link = stdout(&out).trim().to_owned();
    let path = &link[link.find("/console/setup/").unwrap()..];
    let mut ann = Browser::new(&server);
    let form = ann.get(path);
    assert_eq!(form.status, 200);
    assert_console_headers(&form, "setup");
    assert!(form.body.contains("<svg"), "a QR code");
    let key = form.input("totp_secret").unwrap();
    let secret = base32_decode(&key).unwrap();
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    // A weak password and a wrong code are refused with what to do.
    let weak = ann.post(
        path,
        &[
            ("password", "Password1234"),
            ("password2", "Password1234"),
            ("totp_secret", &key),
        ],
    );
    assert_eq!(weak.status, 422);
    assert!(weak.body.contains("common passwords"), "{}", weak.body);
    let bad = ann.post(
        path,
        &[
            ("password", PASSWORD),
            ("password2", PASSWORD),
            ("totp_secret", &key),
            ("totp", "000000"),
        ],
    );
    assert_eq!(bad.status, 422);
    let code = totp_sha1(&secret, now(), 6);
    let done = ann.post(
        path,
        &[
            ("password", PASSWORD),
            ("password2", PASSWORD),
            ("totp_secret", &key),
            ("totp", &code),
        ],
    );
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(ann.get("/console").status, 200, "signed in by the setup");
    // The link works once.
    assert_eq!(Browser::new(&server).get(path).status, 404);
    // Now the password alone is not enough.
    let mut again = Browser::new(&server);
    assert_eq!(again.sign_in("ann@example.com", PASSWORD, None).status, 401);
    // The code used at setup is spent; the next step's code works (the test stands
    // one step ahead, within the drift allowed).
    let next = totp_sha1(&secret, now() + 30, 6);
    assert_eq!(
        again
            .sign_in("ann@example.com", PASSWORD, Some(&next))
            .status,
        303
    );
    assert_eq!(again.get("/console").status, 200);
    assert!(stdout(&server.cli(&["users", "list"])).contains("\ttotp\t"));
}

both_engines!(disabling_an_account_ends_its_sessions_at_once);
fn disabling_an_account_ends_its_sessions_at_once(engine: Engine) {
    let server = TestServer::start_on(engine);
    staff(&server, "ann@example.com", "support");
    let mut ann = Browser::new(&server);
    ann.sign_in("ann@example.com", PASSWORD, None);
    assert_eq!(ann.get("/console").status, 200);
    assert!(server
        .cli(&["users", "disable", "ann@example.com"])
        .status
        .success());
    assert_eq!(ann.get("/console").status, 303);
    assert_eq!(ann.sign_in("ann@example.com", PASSWORD, None).status, 401);
}

both_engines!(staff_emails_with_markup_and_quotes_are_escaped_on_the_pages);
fn staff_emails_with_markup_and_quotes_are_escaped_on_the_pages(engine: Engine) {
    let server = TestServer::start_on(engine);
    staff(&server, "boss@example.com", "admin");
    let evil = "\"'><script>alert(1)</script>@example.com";
    staff(&server, evil, "support");
    let mut boss = Browser::new(&server);
    boss.sign_in("boss@example.com", PASSWORD, None);
    let page = boss.get("/console/admin/users");
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("<script>alert"), "{}", page.body);
    // askama writes numeric character references: &#34; " &#39; ' &#60; < &#62; >.
    assert!(
        page.body
            .contains("&#34;&#39;&#62;&#60;script&#62;alert(1)&#60;/script&#62;@example.com"),
        "{}",
        page.body
    );
    // The sign-in form keeps a typed email escaped too.
    let mut b = Browser::new(&server);
    let res = b.sign_in(evil, "not the password at all", None);
    assert!(!res.body.contains("<script>alert"), "{}", res.body);
}

both_engines!(every_console_page_carries_the_security_headers);
fn every_console_page_carries_the_security_headers(engine: Engine) {
    use keyclerk::web::PAGES;
    let server = TestServer::start_on(engine);
    staff(&server, "boss@example.com", "admin");
    let mut boss = Browser::new(&server);
    let mut visitor = Browser::new(&server);
    boss.sign_in("boss@example.com", PASSWORD, None);
    for page in PAGES.iter().filter(|p| p.method == "GET") {
        let path = page
            .path
            .replace("{secret}", "unknown")
            .replace("{id}", "lic_x");
        for (who, b) in [("admin", &mut boss), ("visitor", &mut visitor)] {
            let res = b.get(&path);
            assert_console_headers(&res, &format!("{who} {path}"));
        }
    }
    let missing = visitor.get("/console/no-such-page");
    assert_eq!(missing.status, 404);
    assert_console_headers(&missing, "404");
    assert!(missing.body.contains("No such page"));
}
