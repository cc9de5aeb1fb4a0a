//! Mail to customers, with a real SMTP server: Python's `aiosmtpd`
//! (`tests/interop/smtp_receiver.py`), which writes every message it accepts to a
//! directory, beside what Python's `email` package reads in it. The key in a
//! delivered mail is verified with the server's public key by `pasetors`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keyclerk::config::Settings;
use keyclerk::outbox::MailSettings;
use keyclerk::token::{paserk, paseto};
use pasetors::keys::AsymmetricPublicKey;
use pasetors::token::UntrustedToken;
use pasetors::version4::{PublicToken, V4};
use pasetors::Public;
use serde_json::{json, Value};

use crate::helpers::{both_engines, into_resp, repo, Dirs, Engine, TestServer};
use crate::process::{admin_token, agent, ServerProcess};

fn python() -> String {
    std::env::var("KC_TEST_PYTHON")
        .expect("KC_TEST_PYTHON: run the suite with ./scripts/test.sh, which installs aiosmtpd")
}

/// A port nobody listens on (yet).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The SMTP server, on `port`, writing to `dir`; stopped when dropped.
pub(crate) struct Smtp {
    child: Child,
}

impl Smtp {
    pub(crate) fn start(dir: &Path, port: u16) -> Self {
        let mut child = Command::new(python())
            .arg(repo().join("tests/interop/smtp_receiver.py"))
            .arg("--dir")
            .arg(dir)
            .arg("--port")
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(
            line.trim(),
            format!("PORT {port}"),
            "the SMTP server did not start"
        );
        Self { child }
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The messages received so far, oldest first (as Python's `email` read them).
pub(crate) fn received(dir: &Path) -> Vec<Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.map_while(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "json"));
    files.sort();
    files
        .iter()
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .collect()
}

pub(crate) fn wait_for(dir: &Path, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = received(dir);
        if got.len() >= n {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{n} messages expected, {} received",
            got.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `[mail]` for the tests: the SMTP server on `port`, a short retry schedule.
pub(crate) fn mail_settings(port: u16) -> MailSettings {
    toml::from_str(&mail_toml(port)).unwrap()
}

fn mail_toml(port: u16) -> String {
    format!(
        "url = \"smtp://127.0.0.1:{port}\"\n\
         from = \"Example Shop <shop@example.com>\"\n\
         retry_schedule_seconds = [0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2]\n\
         retry_jitter = 0.1\n\
         poll_interval_ms = 20\n\
         timeout_seconds = 5\n\
         reminder_interval_seconds = 0.2\n"
    )
}

fn with_mail(port: u16) -> impl FnOnce(&mut Settings) {
    move |s: &mut Settings| s.mail = Some(mail_settings(port))
}

fn part<'a>(message: &'a Value, content_type: &str) -> &'a str {
    message["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["type"] == content_type)
        .unwrap_or_else(|| panic!("no {content_type} part: {message}"))["content"]
        .as_str()
        .unwrap()
}

/// The key in a message's text: the paragraph that is a PASETO token.
pub(crate) fn key_in(message: &Value) -> String {
    part(message, "text/plain")
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("v4.public."))
        .unwrap_or_else(|| panic!("no key in {message}"))
        .to_owned()
}

pub(crate) fn verifies(server: &TestServer, key: &str) -> Value {
    let (_, public) = server.public_keys().remove(0);
    let pk = AsymmetricPublicKey::<V4>::from(&paserk::parse_public(&public).unwrap()).unwrap();
    let footer = paseto::split(key).unwrap().footer;
    let untrusted = UntrustedToken::<Public, V4>::try_from(key).unwrap();
    let trusted = PublicToken::verify(&pk, &untrusted, Some(&footer), None).unwrap();
    serde_json::from_str(trusted.payload()).unwrap()
}

fn mail_list(server: &TestServer, query: &str) -> Vec<Value> {
    server
        .get(&format!("/v1/mail{query}"), Some(&server.admin))
        .expect(200)["messages"]
        .as_array()
        .unwrap()
        .clone()
}

both_engines!(a_mint_with_send_email_delivers_the_key_in_a_mail_whose_key_verifies);
fn a_mint_with_send_email_delivers_the_key_in_a_mail_whose_key_verifies(engine: Engine) {
    let inbox = tempfile::tempdir().unwrap();
    let port = free_port();
    let _smtp = Smtp::start(inbox.path(), port);
    let server = TestServer::start_with(Dirs::on(engine), with_mail(port));
    let minted = server
        .mint(json!({
            "product": "photo-pro",
            "order_id": "mail-1",
            "customer_email": "Ann@Example.com",
            "send_email": true
        }))
        .expect(201);
    let got = wait_for(inbox.path(), 1);
    let m = &got[0];
    assert_eq!(m["rcpt_to"], json!(["ann@example.com"]));
    assert_eq!(m["mail_from"], "shop@example.com");
    assert_eq!(m["content_type"], "multipart/alternative");
    assert!(m["subject"]
        .as_str()
        .unwrap()
        .starts_with("Your license key for "));
    let key = key_in(m);
    assert_eq!(key, minted["key"].as_str().unwrap());
    let claims = verifies(&server, &key);
    assert_eq!(claims["product"], "photo-pro");
    assert_eq!(claims["sub"], minted["license"]["id"]);
    assert!(part(m, "text/html").contains(&format!("<code>{key}</code>")));
    assert!(part(m, "text/plain").contains("Order: mail-1"));

    // The same order again: the same license, and no second mail.
    server
        .mint(json!({
            "product": "photo-pro",
            "order_id": "mail-1",
            "customer_email": "Ann@Example.com",
            "send_email": true
        }))
        .expect(200);
    // Without send_email (the product's deliver_by_email is false): none.
    server
        .mint(json!({"product": "photo-pro", "order_id": "mail-2", "customer_email": "b@example.com"}))
        .expect(201);
    let listed = mail_list(&server, "");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["status"], "delivered");
    assert_eq!(listed[0]["kind"], "license_key");
    assert_eq!(listed[0]["to"], "ann@example.com");
    assert!(listed[0].get("payload").is_none(), "the key is not listed");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(received(inbox.path()).len(), 1);

    // send_email without an address: minted, and nothing to send.
    server
        .mint(json!({"product": "photo-pro", "order_id": "mail-3", "send_email": true}))
        .expect(201);
    assert_eq!(mail_list(&server, "").len(), 1);
}

#[test]
fn a_product_that_delivers_by_email_mails_its_keys_unless_the_request_says_no() {
    let inbox = tempfile::tempdir().unwrap();
    let port = free_port();
    let _smtp = Smtp::start(inbox.path(), port);
    let server = TestServer::start_with(Dirs::new(), |s| {
        with_mail(port)(s);
        s.products.get_mut("photo-pro").unwrap().deliver_by_email = true;
    });
    server
        .mint(json!({"product": "photo-pro", "order_id": "by-default", "customer_email": "c@example.com"}))
        .expect(201);
    server
        .mint(json!({"product": "photo-pro", "order_id": "not-this-one", "customer_email": "d@example.com", "send_email": false}))
        .expect(201);
    let got = wait_for(inbox.path(), 1);
    assert_eq!(got[0]["rcpt_to"], json!(["c@example.com"]));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(received(inbox.path()).len(), 1);
}

#[test]
fn the_mail_is_in_french_with_locale_fr_or_accept_language_fr() {
    let inbox = tempfile::tempdir().unwrap();
    let port = free_port();
    let _smtp = Smtp::start(inbox.path(), port);
    let server = TestServer::start_with(Dirs::new(), with_mail(port));
    server
        .mint(json!({"product": "photo-pro", "order_id": "fr-1", "customer_email": "e@example.com", "send_email": true, "locale": "fr-CA"}))
        .expect(201);
    let got = wait_for(inbox.path(), 1);
    assert!(
        got[0]["subject"]
            .as_str()
            .unwrap()
            .starts_with("Votre clé de licence"),
        "{}",
        got[0]
    );
    assert!(part(&got[0], "text/plain").contains("Commande : fr-1"));
    assert!(part(&got[0], "text/html").contains("<html lang=\"fr\">"));
    verifies(&server, &key_in(&got[0]));

    into_resp(
        server
            .request("POST", "/v1/licenses", Some(&server.admin))
            .set("Accept-Language", "de, fr;q=0.8, en;q=0.5")
            .send_json(json!({"product": "photo-pro", "order_id": "fr-2", "customer_email": "f@example.com", "send_email": true})),
    )
    .expect(201);
    let got = wait_for(inbox.path(), 2);
    assert!(
        got[1]["subject"].as_str().unwrap().starts_with("Votre clé"),
        "{}",
        got[1]
    );

    server
        .mint(json!({"product": "photo-pro", "order_id": "fr-3", "customer_email": "g@example.com", "locale": "de"}))
        .expect_problem(422, "invalid_field");
}

#[test]
fn with_the_smtp_server_down_the_mail_waits_and_arrives_once_after_it_starts() {
    let inbox = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = TestServer::start_with(Dirs::new(), with_mail(port));
    server
        .mint(json!({"product": "photo-pro", "order_id": "down-1", "customer_email": "h@example.com", "send_email": true}))
        .expect(201);
    // Attempts fail while nobody listens, and the message stays pending.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listed = mail_list(&server, "?status=pending");
        if listed
            .first()
            .is_some_and(|m| m["attempts"].as_u64() >= Some(2))
        {
            assert!(listed[0]["last_error"].is_string(), "{listed:?}");
            break;
        }
        assert!(Instant::now() < deadline, "no failed attempt: {listed:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _smtp = Smtp::start(inbox.path(), port);
    let got = wait_for(inbox.path(), 1);
    assert_eq!(got[0]["rcpt_to"], json!(["h@example.com"]));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(received(inbox.path()).len(), 1, "sent once");
    let listed = mail_list(&server, "");
    assert_eq!(listed[0]["status"], "delivered");
    assert!(mail_list(&server, "?status=failed").is_empty());
}

#[test]
fn a_mail_the_smtp_server_never_takes_is_listed_as_failed_for_the_admin() {
    let port = free_port();
    let server = TestServer::start_with(Dirs::new(), |s| {
        let mut m = mail_settings(port);
        m.retry_schedule_seconds = vec![0.05, 0.05];
        s.mail = Some(m);
    });
    server
        .mint(json!({"product": "photo-pro", "order_id": "never-1", "customer_email": "i@example.com", "send_email": true}))
        .expect(201);
    let deadline = Instant::now() + Duration::from_secs(30);
    let failed = loop {
        let failed = mail_list(&server, "?status=failed");
        if !failed.is_empty() {
            break failed;
        }
        assert!(Instant::now() < deadline, "never failed");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(failed[0]["attempts"], 3);
    assert_eq!(failed[0]["to"], "i@example.com");
    // Admin only.
    let support = server.token("support");
    server
        .get("/v1/mail?status=failed", Some(&support))
        .expect_problem(403, "forbidden");
}

both_engines!(without_a_mail_section_nothing_is_queued);
fn without_a_mail_section_nothing_is_queued(engine: Engine) {
    let server = TestServer::start_on(engine);
    server
        .mint(json!({"product": "photo-pro", "order_id": "no-mail-1", "customer_email": "j@example.com", "send_email": true}))
        .expect(201);
    assert!(mail_list(&server, "").is_empty());
    assert_eq!(
        server
            .dirs()
            .query_i64("SELECT count(*) FROM outbox WHERE channel = 'mail'"),
        0
    );
}

both_engines!(mail_queued_when_keyclerk_is_sigkilled_is_all_delivered_once_after_the_restart);
/// The SMTP server is down while the first process queues and tries; on PostgreSQL
/// a message leased by the killed process waits for its lease to run out (the
/// attempt's timeout and 15 s); on SQLite the restart frees it at once.
fn mail_queued_when_keyclerk_is_sigkilled_is_all_delivered_once_after_the_restart(engine: Engine) {
    const N: usize = 10;
    let dirs = Dirs::on(engine);
    let port = free_port();
    let config = std::fs::read_to_string(repo().join("config.toml")).unwrap();
    std::fs::write(
        dirs.root.path().join("config.toml"),
        format!("{config}\n[mail]\n{}", mail_toml(port)),
    )
    .unwrap();
    let first = ServerProcess::spawn(&dirs, &[]);
    let admin = admin_token(&dirs);
    for i in 0..N {
        let r = agent()
            .post(&format!("{}/v1/licenses", first.url()))
            .set("Authorization", &format!("Bearer {admin}"))
            .send_json(json!({
                "product": "photo-pro",
                "order_id": format!("kill-{i}"),
                "customer_email": format!("k{i}@example.com"),
                "send_email": true
            }))
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    first.kill();
    let inbox = tempfile::tempdir().unwrap();
    let _smtp = Smtp::start(inbox.path(), port);
    let second = ServerProcess::spawn(&dirs, &[]);
    let got = wait_for(inbox.path(), N);
    std::thread::sleep(Duration::from_millis(500));
    let got_now = received(inbox.path());
    assert_eq!(got_now.len(), N, "each sent once");
    let mut to: Vec<String> = got
        .iter()
        .map(|m| m["rcpt_to"][0].as_str().unwrap().to_owned())
        .collect();
    to.sort();
    to.dedup();
    assert_eq!(to.len(), N, "every message delivered");
    drop(second);
}

fn days_ago(days: i64) -> String {
    keyclerk::domain::time::format(keyclerk::domain::time::now() - chrono::Duration::days(days))
}

both_engines!(a_late_claim_is_answered_by_mail_when_received_and_when_decided);
fn a_late_claim_is_answered_by_mail_when_received_and_when_decided(engine: Engine) {
    let inbox = tempfile::tempdir().unwrap();
    let port = free_port();
    let _smtp = Smtp::start(inbox.path(), port);
    let server = TestServer::start_with(Dirs::on(engine), |s| {
        with_mail(port)(s);
        // Claims older than this wait for support.
        s.late_claims.max_age_days = 300;
    });
    let support = server.token("support");

    // Bought 400 days ago, never activated: the claim waits for support, and the
    // customer (in French, from Accept-Language) is told it was received.
    let minted = server
        .mint(json!({"product": "photo-pro", "order_id": "late-400",
                     "customer_email": "late@example.com", "purchased_at": days_ago(400)}))
        .expect(201);
    let old_key = minted["key"].as_str().unwrap().to_owned();
    let filed = into_resp(
        server
            .request("POST", "/v1/claims", None)
            .set("Accept-Language", "fr-FR, en;q=0.5")
            .send_json(json!({"license_key": old_key, "email": "Reach@Example.com"})),
    )
    .expect(202);
    let claim_id = filed["claim"]["id"].as_str().unwrap().to_owned();
    let got = wait_for(inbox.path(), 1);
    assert_eq!(
        got[0]["rcpt_to"],
        json!(["reach@example.com"]),
        "the email the claim gave"
    );
    assert!(
        got[0]["subject"]
            .as_str()
            .unwrap()
            .starts_with("Nous avons reçu"),
        "{}",
        got[0]
    );
    assert!(part(&got[0], "text/plain").contains("late-400"));

    // Support substitutes another product: the mail says so, in French, with the
    // new key, which verifies and activates.
    server
        .post(
            &format!("/v1/claims/{claim_id}/resolve"),
            Some(&support),
            &json!({"remedy": "substitute", "reason": "discontinued", "product": "photo-basic"}),
        )
        .expect(201);
    let got = wait_for(inbox.path(), 2);
    let decided = &got[1];
    assert_eq!(decided["rcpt_to"], json!(["reach@example.com"]));
    let new_key = key_in(decided);
    assert_ne!(new_key, old_key);
    assert_eq!(verifies(&server, &new_key)["product"], "photo-basic");
    assert!(
        part(decided, "text/plain").contains("accordée"),
        "{decided}"
    );
    server
        .post(
            "/v1/activations",
            None,
            &json!({"license_key": new_key, "fingerprint": "fp-after-claim"}),
        )
        .expect(201);

    // A claim the policy grants at once: one mail, "decided", in English, to the
    // license's own email, with no new key (the same key works again).
    let minted = server
        .mint(json!({"product": "photo-pro", "order_id": "late-200",
                     "customer_email": "granted@example.com", "purchased_at": days_ago(200)}))
        .expect(201);
    let granted = server
        .post("/v1/claims", None, &json!({"license_key": minted["key"]}))
        .expect(200);
    assert_eq!(granted["status"], "granted");
    let got = wait_for(inbox.path(), 3);
    let decided = &got[2];
    assert_eq!(decided["rcpt_to"], json!(["granted@example.com"]));
    assert!(
        decided["subject"]
            .as_str()
            .unwrap()
            .starts_with("Your request for"),
        "{decided}"
    );
    let text = part(decided, "text/plain");
    assert!(text.contains("it is granted"), "{text}");
    assert!(!text.contains("v4.public."), "{text}");

    // Each cause once: the kinds queued, and nothing more arrives.
    let kinds: Vec<String> = mail_list(&server, "")
        .iter()
        .map(|m| m["kind"].as_str().unwrap().to_owned())
        .collect();
    let mut sorted = kinds.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["claim_decided", "claim_decided", "claim_received"],
        "{kinds:?}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(received(inbox.path()).len(), 3);
}

/// Mail with reminders 14 and 3 days before photo-pro's window closes, looked for
/// every `every` seconds.
fn reminded(port: u16, every: f64) -> impl FnOnce(&mut Settings) {
    move |s: &mut Settings| {
        with_mail(port)(s);
        s.mail.as_mut().unwrap().reminder_interval_seconds = every;
        s.products.get_mut("photo-pro").unwrap().remind_before_days = vec![14, 3];
    }
}

both_engines!(
    an_unused_license_is_reminded_once_before_its_window_closes_and_an_activated_one_never
);
/// photo-pro has a 90-day window and reminders 14 and 3 days before it closes.
fn an_unused_license_is_reminded_once_before_its_window_closes_and_an_activated_one_never(
    engine: Engine,
) {
    let inbox = tempfile::tempdir().unwrap();
    let port = free_port();
    let _smtp = Smtp::start(inbox.path(), port);
    // First a server that sends no mail and so does not look for reminders
    // (one that looked at its start could look after the first mints, when a slow
    // database answers late), while the licenses are made; the reminders are sent
    // by the next process.
    let server = TestServer::start_with(Dirs::on(engine), |s| {
        reminded(port, 3600.0)(s);
        s.mail.as_mut().unwrap().deliver = false;
    });
    let mint = |order: &str, days: i64, locale: &str| {
        server
            .mint(
                json!({"product": "photo-pro", "order_id": order, "locale": locale,
                         "customer_email": format!("{order}@example.com"),
                         "purchased_at": days_ago(days)}),
            )
            .expect(201)
    };
    // Bought 76 days ago: 14 days left, the 14-day reminder is due.
    let due = mint("bought-76", 76, "en");
    // The same, but activated: no reminder.
    let used = mint("used-76", 76, "en");
    server
        .post(
            "/v1/activations",
            None,
            &json!({"license_key": used["key"], "fingerprint": "fp-used"}),
        )
        .expect(201);
    // Bought 10 days ago: nothing due yet.
    mint("fresh-10", 10, "en");
    // Bought 88 days ago, while no reminder was sent (both days passed): only the
    // nearer, 3-day one, in the mint's language.
    mint("late-88", 88, "fr");
    // Suspended: none.
    let held = mint("held-76", 76, "en");
    server
        .post(
            &format!(
                "/v1/licenses/{}/suspend",
                held["license"]["id"].as_str().unwrap()
            ),
            Some(&server.admin),
            &json!({"reason": "chargeback"}),
        )
        .expect(200);
    std::thread::sleep(Duration::from_millis(300));
    assert!(received(inbox.path()).is_empty());
    let server = TestServer::start_with(server.stop(), reminded(port, 0.2));

    let got = wait_for(inbox.path(), 2);
    let to = |m: &Value| m["rcpt_to"][0].as_str().unwrap().to_owned();
    let mut recipients: Vec<String> = got.iter().map(to).collect();
    recipients.sort();
    assert_eq!(recipients, ["bought-76@example.com", "late-88@example.com"]);
    let fourteen = got
        .iter()
        .find(|m| to(m) == "bought-76@example.com")
        .unwrap();
    assert!(
        fourteen["subject"]
            .as_str()
            .unwrap()
            .contains("within 14 days"),
        "{fourteen}"
    );
    assert_eq!(
        key_in(fourteen),
        due["key"].as_str().unwrap(),
        "the license's own key"
    );
    verifies(&server, &key_in(fourteen));
    let three = got.iter().find(|m| to(m) == "late-88@example.com").unwrap();
    assert!(
        three["subject"].as_str().unwrap().starts_with("Activez"),
        "{three}"
    );
    assert!(
        three["subject"].as_str().unwrap().contains(" 2 jours"),
        "{three}"
    );

    // Many sweeps later, and after a restart, still one each.
    std::thread::sleep(Duration::from_millis(800));
    let server = TestServer::start_with(server.stop(), reminded(port, 0.2));
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(received(inbox.path()).len(), 2);
    let kinds: Vec<Value> = mail_list(&server, "")
        .iter()
        .filter(|m| m["kind"] == "reminder")
        .cloned()
        .collect();
    assert_eq!(kinds.len(), 2, "{kinds:?}");
}

#[test]
fn a_product_s_reminder_days_are_checked_at_start_up() {
    let dirs = Dirs::new();
    let path = dirs.root.path().join("reminders.toml");
    std::fs::write(
        &path,
        "[products.x]\nname = \"X\"\nprice = { amount = 100, currency = \"EUR\" }\n\
         activation_window_days = 30\nremind_before_days = [14, 0]\n",
    )
    .unwrap();
    let out = crate::helpers::cli_in(&dirs, &["--config", path.to_str().unwrap(), "serve"]);
    assert!(!out.status.success());
    let err = crate::helpers::stderr(&out);
    assert!(
        err.contains("products.x.remind_before_days") && err.contains("between 1 and"),
        "{err}"
    );
}

#[test]
fn two_instances_on_one_database_send_each_reminder_once() {
    const N: usize = 20;
    let dirs = Dirs::on(Engine::Postgres);
    let port = free_port();
    let config = std::fs::read_to_string(repo().join("config.toml"))
        .unwrap()
        .replace(
            "[products.photo-pro]\n",
            "[products.photo-pro]\nremind_before_days = [14, 3]\n",
        );
    let mail = mail_toml(port).replace(
        "reminder_interval_seconds = 0.2",
        "reminder_interval_seconds = 0.05",
    );
    std::fs::write(
        dirs.root.path().join("config.toml"),
        format!("{config}\n[mail]\n{mail}"),
    )
    .unwrap();
    let inbox = tempfile::tempdir().unwrap();
    let _smtp = Smtp::start(inbox.path(), port);
    let first = ServerProcess::spawn(&dirs, &[]);
    let second = ServerProcess::spawn(&dirs, &[]);
    let admin = admin_token(&dirs);
    for i in 0..N {
        let r = agent()
            .post(&format!("{}/v1/licenses", first.url()))
            .set("Authorization", &format!("Bearer {admin}"))
            .send_json(json!({
                "product": "photo-pro",
                "order_id": format!("two-{i}"),
                "customer_email": format!("r{i}@example.com"),
                "purchased_at": days_ago(76)
            }))
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let got = wait_for(inbox.path(), N);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(received(inbox.path()).len(), N, "each reminder once");
    let mut to: Vec<String> = got
        .iter()
        .map(|m| m["rcpt_to"][0].as_str().unwrap().to_owned())
        .collect();
    to.sort();
    to.dedup();
    assert_eq!(to.len(), N, "every license reminded");
    drop((first, second));
}
