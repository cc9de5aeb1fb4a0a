//! Outgoing webhooks: which audit events become which webhook event types, the
//! Standard Webhooks signature, endpoint secrets, the retry schedule and which
//! addresses an endpoint may reach.
//!
//! Signing follows the Standard Webhooks specification 1.0.0
//! (github.com/standard-webhooks/standard-webhooks, `spec/standard-webhooks.md`):
//! `webhook-signature: v1,<base64 HMAC-SHA256(secret, "{id}.{timestamp}.{body}")>`,
//! space-separated when several secrets sign (a rotation's overlap).

use std::net::IpAddr;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use sha2_11::Sha256;

use crate::domain::payments::{Outcome, PaymentEvent};
use crate::domain::time::{self, Timestamp};

/// The channel of webhook messages in the outbox (mail will be another).
pub const WEBHOOK_CHANNEL: &str = "webhook";

/// One audit event kind that becomes one webhook event type, where `applies` says so.
#[derive(Debug, Clone, Copy)]
pub struct EventMapping {
    /// The audit event's stored kind, or [`PAYMENT_DECIDED`].
    pub audit_kind: &'static str,
    /// The webhook event type it is sent as.
    pub event_type: &'static str,
    /// Whether this event (its stored data) is one of this type.
    pub applies: fn(&serde_json::Value) -> bool,
}

const fn always(audit_kind: &'static str, event_type: &'static str) -> EventMapping {
    EventMapping {
        audit_kind,
        event_type,
        applies: |_| true,
    }
}

/// The kind a stored payment event's decision is looked up by in
/// [`EVENT_MAPPINGS`]. A decision is not an audit event: what it did to licenses
/// is in the audit log already, and the decision itself is the row in
/// `payment_events`, whose outbox rows the engines write in the same transaction.
pub const PAYMENT_DECIDED: &str = "payment_decided";

fn outcome_is(data: &serde_json::Value, outcome: Outcome) -> bool {
    data["outcome"] == outcome.as_str()
}

/// Every webhook event type and the audit event it comes from: one line per type.
pub const EVENT_MAPPINGS: &[EventMapping] = &[
    always("license_minted", "license.created"),
    always("license_renewed", "license.renewed"),
    always("license_suspended", "license.suspended"),
    always("license_reinstated", "license.reinstated"),
    always("license_revoked", "license.revoked"),
    always("license_refunded", "license.refunded"),
    // Recorded on the new license, naming the one it supersedes.
    always("license_replaces", "license.superseded"),
    always("activation_created", "activation.created"),
    always("activation_deactivated", "activation.deactivated"),
    always("activation_released", "activation.deactivated"),
    always("grace_decision", "grace.decided"),
    EventMapping {
        audit_kind: "grace_decision",
        event_type: "claim.resolved",
        applies: |data| !data["claim"].is_null(),
    },
    always("claim_filed", "claim.filed"),
    always("credit_granted", "credit.granted"),
    always("credit_redeemed", "credit.redeemed"),
    // An event that changed licenses; not one keyclerk had nothing to do for.
    EventMapping {
        audit_kind: PAYMENT_DECIDED,
        event_type: "payment.applied",
        applies: |data| {
            outcome_is(data, Outcome::Applied)
                && data["licenses"].as_array().is_some_and(|l| !l.is_empty())
        },
    },
    EventMapping {
        audit_kind: PAYMENT_DECIDED,
        event_type: "payment.unmapped",
        applies: |data| outcome_is(data, Outcome::Unmapped),
    },
];

/// Subscribes an endpoint to every event type.
pub const ALL_EVENTS: &str = "*";

/// The webhook event types an audit event of `kind` with `data` is sent as.
pub fn event_types_of<'a>(
    kind: &'a str,
    data: &'a serde_json::Value,
) -> impl Iterator<Item = &'static str> + 'a {
    EVENT_MAPPINGS
        .iter()
        .filter(move |m| m.audit_kind == kind && (m.applies)(data))
        .map(|m| m.event_type)
}

/// Whether an audit event of `kind` may become a webhook at all (cheap: no JSON).
pub fn may_be_sent(kind: &str) -> bool {
    EVENT_MAPPINGS.iter().any(|m| m.audit_kind == kind)
}

/// Every event type, once each, in the table's order.
pub fn event_types() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for m in EVENT_MAPPINGS {
        if !out.contains(&m.event_type) {
            out.push(m.event_type);
        }
    }
    out
}

/// The event types an endpoint asked for, checked: known types or `*`, no
/// repeats, at least one. The error names the first bad one.
pub fn parse_event_filter(events: &[String]) -> Result<Vec<String>, String> {
    if events.is_empty() {
        return Err("at least one event type, or \"*\" for all".into());
    }
    let known = event_types();
    let mut out: Vec<String> = Vec::new();
    for e in events {
        if e != ALL_EVENTS && !known.contains(&e.as_str()) {
            return Err(format!("`{e}` is not an event type"));
        }
        if !out.contains(e) {
            out.push(e.clone());
        }
    }
    if out.iter().any(|e| e == ALL_EVENTS) {
        return Ok(vec![ALL_EVENTS.to_owned()]);
    }
    Ok(out)
}

/// The filter as stored: the types with a space before and after each, so that a
/// database finds ` type ` inside it with a plain substring search.
pub fn stored_filter(events: &[String]) -> String {
    format!(" {} ", events.join(" "))
}

/// The filter read back.
pub fn filter_from_stored(stored: &str) -> Vec<String> {
    stored.split_whitespace().map(str::to_owned).collect()
}

/// The body of a webhook: `{type, timestamp, data}` as the specification
/// recommends; `data` is the audit event's data with the license. (Not the event's
/// place in the audit log: on PostgreSQL that is given at the commit, after the
/// message is written.)
pub fn payload(
    event_type: &str,
    at: Timestamp,
    license_id: Option<&str>,
    data: &serde_json::Value,
) -> String {
    let mut body = serde_json::Map::new();
    body.insert(
        "license_id".into(),
        license_id.map_or(serde_json::Value::Null, serde_json::Value::from),
    );
    if let Some(fields) = data.as_object() {
        for (k, v) in fields {
            body.insert(k.clone(), v.clone());
        }
    }
    serde_json::json!({
        "type": event_type,
        "timestamp": time::format(at),
        "data": body,
    })
    .to_string()
}

/// The data of a payment event's message: the stored event as
/// `GET /v1/payments/events` shows it (its `id` as `payment_event_id`), with the
/// first license it touched as `license_id`.
pub fn payment_data(event: &PaymentEvent) -> serde_json::Value {
    serde_json::json!({
        "payment_event_id": event.id,
        "provider": event.provider,
        "event_id": event.event_id,
        "kind": event.kind,
        "outcome": event.outcome,
        "reason": event.reason,
        "licenses": event.licenses,
    })
}

/// Bytes of a new endpoint secret (the specification asks for 24 to 64).
pub const SECRET_BYTES: usize = 32;

/// An endpoint's signing secret: `whsec_` + base64 of random bytes. `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(String);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(…)")
    }
}

impl WebhookSecret {
    /// A new random secret.
    pub fn generate() -> Self {
        let mut bytes = [0u8; SECRET_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(format!("whsec_{}", STANDARD.encode(bytes)))
    }

    /// A stored or given secret, if it has the shape `whsec_` + base64 of 24 to 64 bytes.
    pub fn parse(s: &str) -> Option<Self> {
        let bytes = STANDARD.decode(s.strip_prefix("whsec_")?).ok()?;
        (24..=64).contains(&bytes.len()).then(|| Self(s.to_owned()))
    }

    /// The secret as shown once and stored.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The HMAC key.
    fn key(&self) -> Vec<u8> {
        // Parsed or generated: always `whsec_` + valid base64.
        STANDARD
            .decode(self.0.strip_prefix("whsec_").unwrap_or_default())
            .unwrap_or_default()
    }

    /// `v1,<base64 HMAC-SHA256>` of `{msg_id}.{timestamp}.{body}`.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        // HMAC takes a key of any length.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key()) else {
            return String::new();
        };
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// The `webhook-signature` header: one signature per secret, space-separated.
pub fn signature_header(
    secrets: &[WebhookSecret],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets
        .iter()
        .map(|s| s.sign(msg_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// How long the old secret keeps signing beside the new one after a rotation.
pub const DEFAULT_ROTATION_OVERLAP_HOURS: u32 = 24;

/// When to try again after a failed attempt: the specification's example schedule
/// with jitter, as `[webhooks] retry_schedule_seconds` and `retry_jitter` set it.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySchedule {
    /// The wait before attempt 2, 3, …; after the last, the delivery has failed.
    pub delays: Vec<Duration>,
    /// Each wait is stretched or shrunk by up to this fraction, at random.
    pub jitter: f64,
}

/// The specification's example: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h.
pub const DEFAULT_RETRY_SECONDS: &[f64] = &[
    5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 50400.0, 72000.0, 86400.0,
];

/// The longest `Retry-After` honoured: past it the schedule's own wait is used.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

impl RetrySchedule {
    /// The wait after the `attempts`-th failed attempt (1-based), or `None` when that
    /// was the last; `retry_after` is the receiver's own ask, honoured when it is
    /// longer than the schedule's wait (and not absurd). `unit` is a random number
    /// in `[0, 1)`.
    pub fn after(
        &self,
        attempts: u32,
        retry_after: Option<Duration>,
        unit: f64,
    ) -> Option<Duration> {
        let base = *self
            .delays
            .get(usize::try_from(attempts).ok()?.checked_sub(1)?)?;
        let stretch = 1.0 + self.jitter * (2.0 * unit - 1.0);
        let jittered = base.mul_f64(stretch.max(0.0));
        Some(match retry_after {
            Some(asked) if asked > jittered && asked <= MAX_RETRY_AFTER => asked,
            _ => jittered,
        })
    }

    /// Attempts in all: the first and one per wait.
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.delays.len()).unwrap_or(u32::MAX - 1) + 1
    }
}

/// What a receiver's answer means for a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A 2xx: delivered.
    Delivered,
    /// 410 Gone: the endpoint is disabled and nothing more is sent to it.
    Gone,
    /// Anything else (3xx included: redirects are not followed): try again later.
    Retry,
}

/// The verdict of an HTTP status.
pub fn verdict(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered,
        410 => Verdict::Gone,
        _ => Verdict::Retry,
    }
}

/// `Retry-After`, read where the specification says to (429 and 503), in either
/// form RFC 9110 (§10.2.3) allows: delay-seconds, or an HTTP-date (IMF-fixdate, and
/// the obsolete RFC 850 and asctime forms a recipient must still read), as the wait
/// from `now`; a date already past asks for no wait.
pub fn retry_after(status: u16, header: Option<&str>, now: Timestamp) -> Option<Duration> {
    if !matches!(status, 429 | 503) {
        return None;
    }
    let value = header?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at: Timestamp = httpdate::parse_http_date(value).ok()?.into();
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// Whether an address is one a webhook may be sent to without
/// `allow_private_addresses`: not loopback, private, link-local, shared (CGNAT),
/// unspecified, multicast, broadcast, documentation or unique-local.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0)
                || (a == 198 && (18..20).contains(&b))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8
                || first == 0x0064 && v6.segments()[1] == 0xff9b)
        }
    }
}

/// Most deliveries on one page of an endpoint's list (and the default).
pub const MAX_DELIVERY_PAGE: u32 = 100;
/// Longest overlap of a rotation, in hours (30 days).
pub const MAX_OVERLAP_HOURS: u32 = 720;

/// Longest endpoint URL accepted.
pub const MAX_URL_CHARS: usize = 2048;
/// Longest description of an endpoint.
pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// An endpoint URL: `http` or `https`, a host, no credentials, no fragment.
pub fn parse_endpoint_url(s: &str) -> Result<url::Url, String> {
    if s.chars().count() > MAX_URL_CHARS {
        return Err(format!("at most {MAX_URL_CHARS} characters"));
    }
    let url = url::Url::parse(s).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("an http or https URL".into());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("a URL with a host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("a URL without credentials".into());
    }
    if url.fragment().is_some() {
        return Err("a URL without a fragment".into());
    }
    Ok(url)
}

/// The literal address a URL's host is, if it is one (names are resolved at
/// delivery, where every address they give is checked).
pub fn literal_address(url: &url::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(a) => Some(IpAddr::V4(a)),
        url::Host::Ipv6(a) => Some(IpAddr::V6(a)),
        url::Host::Domain(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payment_is_sent_as_applied_when_it_changed_licenses_and_as_unmapped_when_unmapped() {
        let types = |outcome: &str, licenses: &[&str]| -> Vec<&'static str> {
            let data = serde_json::json!({"outcome": outcome, "licenses": licenses});
            event_types_of(PAYMENT_DECIDED, &data).collect()
        };
        assert_eq!(types("applied", &["lic_1"]), ["payment.applied"]);
        assert!(types("applied", &[]).is_empty(), "nothing to do");
        assert_eq!(types("unmapped", &[]), ["payment.unmapped"]);
        assert!(types("duplicate", &["lic_1"]).is_empty());
        assert!(types("failed", &[]).is_empty());
    }

    /// The official known answers, from the specification's libraries (see
    /// `tests/vectors/standard-webhooks/README.md`).
    #[test]
    fn the_signer_gives_the_specifications_known_answers() {
        let cases = [
            (
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                r#"{"test": 2432232314}"#,
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            ),
            (
                "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1_649_367_553,
                r#"{"email":"test@example.com","username":"test_user"}"#,
                "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
            ),
        ];
        for (secret, id, ts, body, want) in cases {
            let s = WebhookSecret::parse(secret).unwrap();
            assert_eq!(s.sign(id, ts, body.as_bytes()), want);
        }
    }

    #[test]
    fn every_event_type_comes_from_one_line_and_a_claim_decision_is_two() {
        let mut types = event_types();
        types.sort_unstable();
        // DESIGN.md, "Events out": the event types, sorted.
        let designed = [
            "activation.created",
            "activation.deactivated",
            "claim.filed",
            "claim.resolved",
            "credit.granted",
            "credit.redeemed",
            "grace.decided",
            "license.created",
            "license.refunded",
            "license.reinstated",
            "license.renewed",
            "license.revoked",
            "license.superseded",
            "license.suspended",
            "payment.applied",
            "payment.unmapped",
        ];
        assert_eq!(types, designed);
        let with_claim = serde_json::json!({"claim": "clm_1"});
        let got: Vec<_> = event_types_of("grace_decision", &with_claim).collect();
        assert_eq!(got, ["grace.decided", "claim.resolved"]);
        let without = serde_json::json!({"claim": null});
        let got: Vec<_> = event_types_of("grace_decision", &without).collect();
        assert_eq!(got, ["grace.decided"]);
        assert_eq!(event_types_of("token_created", &without).count(), 0);
        assert!(!may_be_sent("activation_refreshed"));
    }

    #[test]
    fn a_filter_takes_known_types_or_everything() {
        let f =
            |v: &[&str]| parse_event_filter(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            f(&["license.created", "license.created"]).unwrap(),
            ["license.created"]
        );
        assert_eq!(f(&["license.created", "*"]).unwrap(), ["*"]);
        assert!(f(&[]).is_err());
        assert!(f(&["license.exploded"])
            .unwrap_err()
            .contains("license.exploded"));
        let stored = stored_filter(&["a.b".into(), "c.d".into()]);
        assert_eq!(stored, " a.b c.d ");
        assert_eq!(filter_from_stored(&stored), ["a.b", "c.d"]);
    }

    #[test]
    fn the_schedule_jitters_honours_retry_after_and_ends() {
        let s = RetrySchedule {
            delays: vec![Duration::from_secs(10), Duration::from_secs(100)],
            jitter: 0.5,
        };
        assert_eq!(s.after(1, None, 0.5), Some(Duration::from_secs(10)));
        assert_eq!(s.after(1, None, 0.0), Some(Duration::from_secs(5)));
        assert_eq!(s.after(2, None, 0.999_999).map(|d| d.as_secs()), Some(149));
        assert_eq!(
            s.after(1, Some(Duration::from_secs(60)), 0.5),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            s.after(1, Some(Duration::from_secs(999_999)), 0.5),
            Some(Duration::from_secs(10)),
            "an absurd Retry-After is not honoured"
        );
        assert_eq!(s.after(3, None, 0.5), None);
        assert_eq!(s.max_attempts(), 3);
        let now = time::parse("2026-11-06T08:49:30Z").unwrap();
        let seven = Some(Duration::from_secs(7));
        assert_eq!(retry_after(429, Some("7"), now), seven);
        assert_eq!(retry_after(500, Some("7"), now), None);
        for date in [
            "Fri, 06 Nov 2026 08:49:37 GMT",
            "Friday, 06-Nov-26 08:49:37 GMT",
            "Fri Nov  6 08:49:37 2026",
        ] {
            assert_eq!(retry_after(503, Some(date), now), seven, "{date}");
        }
        assert_eq!(
            retry_after(429, Some("Fri, 06 Nov 2026 08:49:00 GMT"), now),
            Some(Duration::ZERO),
            "a date already past"
        );
        assert_eq!(retry_after(429, Some("soon"), now), None);
        assert_eq!(verdict(204), Verdict::Delivered);
        assert_eq!(verdict(301), Verdict::Retry);
        assert_eq!(verdict(410), Verdict::Gone);
    }

    #[test]
    fn private_loopback_and_link_local_addresses_are_not_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn endpoint_urls_are_http_or_https_with_a_host_and_no_credentials() {
        assert!(parse_endpoint_url("https://hooks.example.com/kc").is_ok());
        for (bad, why) in [
            ("ftp://example.com/", "scheme"),
            ("https://user:pw@example.com/", "credentials"),
            ("https://example.com/#x", "fragment"),
            ("not a url", "shape"),
        ] {
            assert!(parse_endpoint_url(bad).is_err(), "{why}");
        }
        let u = parse_endpoint_url("http://[::1]:9/x").unwrap();
        assert_eq!(literal_address(&u), Some("::1".parse().unwrap()));
    }

    #[test]
    fn a_secret_is_whsec_and_base64_and_never_printed() {
        let s = WebhookSecret::generate();
        assert!(s.expose().starts_with("whsec_"));
        assert!(WebhookSecret::parse(s.expose()).is_some());
        assert!(!format!("{s:?}").contains(s.expose()));
        assert!(WebhookSecret::parse("whsec_AAAA").is_none(), "too short");
        let payload = payload(
            "license.created",
            time::from_unix(0),
            Some("lic_1"),
            &serde_json::json!({"seats": 2}),
        );
        let v: serde_json::Value = serde_json::from_str(&payload).unwrap();
        assert_eq!(v["type"], "license.created");
        assert_eq!(v["timestamp"], "1970-01-01T00:00:00Z");
        assert_eq!(v["data"]["license_id"], "lic_1");
        assert_eq!(v["data"]["seats"], 2);
    }
}
