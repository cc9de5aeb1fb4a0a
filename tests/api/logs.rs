//! The log: `[log] format = "json"` writes one JSON object a line; every answer
//! carries a request id (the client's `X-Request-Id` when it is a sane one, else a
//! new one) and every line logged for that request carries it too.

use serde_json::Value;

use crate::helpers::{into_resp, Dirs, Resp};
use crate::process::{admin_token, agent, ServerProcess};

fn get(server: &ServerProcess, path: &str, token: Option<&str>, id: Option<&str>) -> Resp {
    let mut r = agent().get(&format!("{}{path}", server.url()));
    if let Some(t) = token {
        r = r.set("Authorization", &format!("Bearer {t}"));
    }
    if let Some(id) = id {
        r = r.set("X-Request-Id", id);
    }
    into_resp(r.call())
}

fn lines_of<'a>(log: &'a [Value], id: &str) -> Vec<&'a Value> {
    log.iter().filter(|l| l["request_id"] == id).collect()
}

fn access_line<'a>(log: &'a [Value], id: &str) -> &'a Value {
    let lines: Vec<&Value> = lines_of(log, id)
        .into_iter()
        .filter(|l| l["target"] == "keyclerk::access")
        .collect();
    assert_eq!(lines.len(), 1, "one access line for {id}: {lines:?}");
    lines[0]
}

#[test]
fn json_lines_parse_and_carry_the_request_id_the_client_sent_which_the_answer_echoes() {
    let dirs = Dirs::new();
    let server = ServerProcess::spawn(
        &dirs,
        &[("KEYCLERK_LOG", "debug"), ("KEYCLERK_LOG__FORMAT", "json")],
    );
    let admin = admin_token(&dirs);

    let given = "it-rid-0001:a/b+c=d";
    let listed = get(&server, "/v1/licenses", Some(&admin), Some(given));
    assert_eq!(listed.status, 200);
    assert_eq!(listed.header("x-request-id"), Some(given));

    let made = get(&server, "/healthz", None, None);
    let made_id = made.header("x-request-id").unwrap().to_owned();
    assert_eq!(made_id.len(), 32, "{made_id}");
    assert!(made_id.bytes().all(|b| b.is_ascii_hexdigit()), "{made_id}");

    // A request id that is too long (or has a space) is replaced, not echoed.
    let long = "x".repeat(500);
    for bad in [long.as_str(), "two words"] {
        let r = get(&server, "/healthz", None, Some(bad));
        let id = r.header("x-request-id").unwrap();
        assert_ne!(id, bad);
        assert_eq!(id.len(), 32);
    }

    let missing = get(&server, "/no/such/path", None, Some("it-rid-404"));
    missing.expect_problem(404, "not_found");
    assert_eq!(missing.header("x-request-id"), Some("it-rid-404"));
    let refused = get(&server, "/v1/tokens", None, Some("it-rid-401"));
    refused.expect_problem(401, "missing_token");
    assert_eq!(refused.header("x-request-id"), Some("it-rid-401"));

    let text = server.stop();
    let mut log = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}\n{text}"));
        assert!(v.is_object(), "{line}");
        assert!(
            v["time"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{line}"
        );
        assert!(v["level"].is_string() && v["message"].is_string(), "{line}");
        log.push(v);
    }
    assert!(
        log.iter().any(|l| l["message"]
            .as_str()
            .unwrap()
            .starts_with("listening on port")),
        "{text}"
    );

    // The admin's request: its debug line (the caller, logged while it was handled)
    // and its access line both carry the id it sent.
    let caller = lines_of(&log, given)
        .into_iter()
        .find(|l| l["message"].as_str().unwrap().starts_with("caller: token"))
        .unwrap_or_else(|| panic!("no caller line for {given}:\n{text}"));
    assert_eq!(caller["level"], "debug");
    let line = access_line(&log, given);
    assert_eq!(line["level"], "info");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["route"], "/v1/licenses");
    assert_eq!(line["path"], "/v1/licenses");
    assert_eq!(line["status"], 200);
    assert!(line["latency_ms"].as_f64().unwrap() >= 0.0, "{line}");
    assert!(
        line["message"]
            .as_str()
            .unwrap()
            .contains("\"GET /v1/licenses\" 200"),
        "{line}"
    );

    let line = access_line(&log, &made_id);
    assert_eq!(
        (&line["route"], &line["status"]),
        (&"/healthz".into(), &200.into())
    );
    let line = access_line(&log, "it-rid-404");
    assert_eq!(line["route"], "(unmatched)");
    assert_eq!(
        (&line["status"], &line["code"]),
        (&404.into(), &"not_found".into())
    );
    let line = access_line(&log, "it-rid-401");
    assert_eq!(
        (&line["route"], &line["status"]),
        (&"/v1/tokens".into(), &401.into())
    );
    assert_eq!(line["code"], "missing_token");
}

#[test]
fn a_text_access_line_carries_the_request_id_too() {
    let dirs = Dirs::new();
    let server = ServerProcess::spawn(&dirs, &[]);
    let r = get(&server, "/healthz", None, Some("it-text-1"));
    assert_eq!(r.header("x-request-id"), Some("it-text-1"));
    let text = server.stop();
    let line = text
        .lines()
        .find(|l| l.contains("\"GET /healthz\" 200"))
        .unwrap_or_else(|| panic!("no access line:\n{text}"));
    assert!(line.ends_with(" request_id=it-text-1"), "{line}");
    assert!(line.starts_with("[INFO ]"), "{line}");
}
