//! Secrets stay secret: a whole session's logs, at the most verbose level and in
//! both formats (text and JSON), hold no token, no license key, no certificate and no
//! private key; no response carries the private key.

use serde_json::{json, Value};

use crate::helpers::{into_resp, Dirs};
use crate::process::{admin_token, agent, ServerProcess};

struct Session {
    url: String,
    agent: ureq::Agent,
    /// Every response body seen.
    bodies: Vec<String>,
}

impl Session {
    fn call(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Value {
        self.call_with(method, path, token, body, &[])
    }

    fn call_with(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Value {
        let mut r = self.agent.request(method, &format!("{}{path}", self.url));
        if let Some(t) = token {
            r = r.set("Authorization", &format!("Bearer {t}"));
        }
        for (k, v) in headers {
            r = r.set(k, v);
        }
        let resp = into_resp(match body {
            Some(b) => r.send_json(b),
            None => r.call(),
        });
        assert!(resp.status < 500, "{method} {path}: {}", resp.body);
        self.bodies.push(resp.body.to_string());
        resp.body
    }
}

fn s(v: &Value) -> String {
    v.as_str().unwrap().to_owned()
}

#[test]
fn a_whole_sessions_logs_and_responses_hold_no_secret() {
    whole_session_without_secrets(&[]);
}

#[test]
fn a_whole_sessions_json_logs_hold_no_secret_either() {
    let (log, secrets) = whole_session_without_secrets(&[("KEYCLERK_LOG__FORMAT", "json")]);
    // Every line is JSON; what its strings say, once unescaped, holds no secret.
    let mut said = String::new();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        strings_of(&v, &mut said);
    }
    assert!(said.contains("POST /v1/activations"), "{said}");
    for secret in &secrets {
        assert!(
            !said.contains(secret.as_str()),
            "a JSON line holds a secret ({secret:.24}…)"
        );
    }
}

/// Every string in `v` (keys too), one a line.
fn strings_of(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        Value::Array(items) => items.iter().for_each(|i| strings_of(i, out)),
        Value::Object(map) => {
            for (k, v) in map {
                out.push_str(k);
                out.push('\n');
                strings_of(v, out);
            }
        }
        _ => {}
    }
}

/// Runs the session with `env` beside log level trace, checks its log and answers,
/// and returns the log and the secrets looked for.
fn whole_session_without_secrets(env: &[(&str, &str)]) -> (String, Vec<String>) {
    let dirs = Dirs::new();
    let mut env = env.to_vec();
    env.push(("KEYCLERK_LOG", "trace"));
    let server = ServerProcess::spawn(&dirs, &env);
    let admin = admin_token(&dirs);
    let mut x = Session {
        url: server.url(),
        agent: agent(),
        bodies: Vec::new(),
    };
    let mut secrets = vec![admin.clone()];

    let vendor = s(&x.call(
        "POST",
        "/v1/tokens",
        Some(&admin),
        Some(json!({"role": "vendor", "name": "shop"})),
    )["secret"]);
    let support = s(&x.call(
        "POST",
        "/v1/tokens",
        Some(&admin),
        Some(json!({"role": "support", "name": "desk"})),
    )["secret"]);
    secrets.extend([vendor.clone(), support.clone()]);

    let signed = x.call("POST", "/v1/licenses", Some(&vendor), Some(json!({"product": "photo-pro", "order_id": "sec-1", "customer_email": "ann@example.com"})));
    let short = x.call(
        "POST",
        "/v1/licenses",
        Some(&vendor),
        Some(json!({"product": "font-pack", "order_id": "sec-2"})),
    );
    let late = x.call("POST", "/v1/licenses", Some(&vendor), Some(json!({"product": "photo-pro", "order_id": "sec-3", "purchased_at": "2025-01-01T00:00:00Z"})));
    let (key, short_key, late_key) = (s(&signed["key"]), s(&short["key"]), s(&late["key"]));
    secrets.extend([
        key.clone(),
        short_key.clone(),
        short_key.replace('-', ""),
        late_key.clone(),
    ]);
    let batch = x.call(
        "POST",
        "/v1/licenses/batch",
        Some(&vendor),
        Some(json!({"licenses": [{"product": "photo-basic", "order_id": "sec-4"}]})),
    );
    secrets.push(s(&batch["results"][0]["key"]));
    let id = s(&signed["license"]["id"]);
    x.call("GET", &format!("/v1/licenses/{id}"), Some(&support), None);
    x.call(
        "GET",
        &format!("/v1/licenses?key={key}"),
        Some(&support),
        None,
    );
    x.call(
        "GET",
        &format!("/v1/licenses?key={short_key}"),
        Some(&support),
        None,
    );

    let act = x.call(
        "POST",
        "/v1/activations",
        None,
        Some(json!({"license_key": key, "fingerprint": "fp-secret-test", "name": "ann's laptop"})),
    );
    secrets.push(s(&act["certificate"]));
    let act_short = x.call(
        "POST",
        "/v1/activations",
        None,
        Some(json!({"license_key": short_key, "fingerprint": "fp-2"})),
    );
    secrets.push(s(&act_short["certificate"]));
    let v = x.call(
        "POST",
        "/v1/validate",
        None,
        Some(
            json!({"license_key": key, "fingerprint": "fp-secret-test", "nonce": "n-123456789012"}),
        ),
    );
    secrets.push(s(&v["receipt"]));
    x.call(
        "POST",
        "/v1/validate",
        None,
        Some(json!({"license_key": crate::helpers::flip_one_char(&key)})),
    );
    let act_id = s(&act["activation"]["id"]);
    x.call(
        "POST",
        &format!("/v1/activations/{act_id}/deactivate"),
        None,
        Some(json!({"license_key": key})),
    );
    x.call(
        "POST",
        "/v1/claims",
        None,
        Some(json!({"license_key": late_key, "email": "late@example.com"})),
    );
    let late_id = s(&late["license"]["id"]);
    let g = x.call_with(
        "POST",
        &format!("/v1/licenses/{late_id}/grace-extension"),
        Some(&support),
        Some(
            json!({"remedy": "credit", "reason": "asked for credit", "email": "late@example.com"}),
        ),
        &[("Idempotency-Key", "idem-secret-1")],
    );
    assert!(g["decision"]["id"].is_string(), "{g}");
    x.call(
        "GET",
        &format!("/v1/licenses/{late_id}/history"),
        Some(&support),
        None,
    );
    // Refusals: wrong, malformed and revoked tokens, too.
    x.call(
        "GET",
        "/v1/licenses",
        Some("kc_not_a_real_token_at_all"),
        None,
    );
    x.call("GET", "/v1/licenses", Some("garbage token"), None);
    let tokens = x.call("GET", "/v1/tokens", Some(&admin), None);
    let vendor_id = tokens["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["role"] == "vendor")
        .map(|t| s(&t["id"]))
        .unwrap();
    x.call(
        "POST",
        &format!("/v1/tokens/{vendor_id}/revoke"),
        Some(&admin),
        Some(json!({})),
    );
    let refused = x.call(
        "POST",
        "/v1/licenses",
        Some(&vendor),
        Some(json!({"product": "photo-pro", "order_id": "sec-5"})),
    );
    assert_eq!(refused["code"], "token_revoked");
    x.call("GET", "/v1/keys", None, None);
    x.call("GET", "/openapi.json", None, None);
    let log = server.stop();

    assert!(
        log.contains("POST /v1/activations"),
        "the access log is missing:\n{log}"
    );
    assert!(
        log.lines().count() > 20,
        "suspiciously little was logged:\n{log}"
    );
    for secret in &secrets {
        assert!(
            secret.len() >= 20,
            "not a secret worth looking for: {secret}"
        );
        assert!(
            !log.contains(secret.as_str()),
            "the log holds a secret ({secret:.24}…):\n{log}"
        );
        // The signed part alone (a token's payload without its header) is a secret too.
        if let Some(body) = secret.strip_prefix("v4.public.") {
            assert!(!log.contains(&body[..40]), "the log holds a token's body");
        }
    }
    // The private keys: in no response, and not in the log.
    let mut private = Vec::new();
    for entry in std::fs::read_dir(dirs.keys()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "secret") {
            let text = std::fs::read_to_string(&path).unwrap().trim().to_owned();
            let payload = text.strip_prefix("k4.secret.").unwrap().to_owned();
            private.extend([text, payload[..43].to_owned()]);
        }
    }
    assert!(!private.is_empty());
    for p in &private {
        assert!(!log.contains(p.as_str()), "the log holds the private key");
        for body in &x.bodies {
            assert!(
                !body.contains(p.as_str()),
                "a response holds the private key: {body}"
            );
        }
    }
    secrets.extend(private);
    (log, secrets)
}
