//! The outermost layer of every request: its id, its place in the route table, its
//! access line and its metrics.
//!
//! The request id is the client's `X-Request-Id` when that is 1 to
//! [`MAX_REQUEST_ID_LEN`] printable ASCII characters, else one made here; every
//! answer carries it back in `X-Request-Id`, and every line logged while the request
//! is handled carries it (see [`crate::logging`]).

use std::sync::Arc;
use std::time::Instant;

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};

use crate::error::{cause_of, ProblemCode};
use crate::logging::in_request;
use crate::metrics::http::{HttpMetrics, Observation, UNMATCHED};
use crate::routes::{RouteMatch, PATTERNS};

/// The header that carries the request id both ways.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");
/// The longest request id taken from a client.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// The verdict of a validation, kept with its response for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict(pub &'static str);

/// The client's request id, if it is one: 1 to [`MAX_REQUEST_ID_LEN`] printable
/// ASCII characters (no space, no control character: it goes into log lines).
pub fn client_request_id(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(&REQUEST_ID_HEADER)?.as_bytes();
    let ok = (1..=MAX_REQUEST_ID_LEN).contains(&value.len())
        && value.iter().all(|b| b.is_ascii_graphic());
    // Printable ASCII is UTF-8.
    ok.then(|| std::str::from_utf8(value).ok()).flatten()
}

/// A new request id: 128 random bits in hex.
pub fn new_request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The layer itself (`middleware::from_fn`).
pub async fn observe<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let started = Instant::now();
    let metrics = req.app_data::<web::Data<HttpMetrics>>().cloned();
    let _in_flight = metrics.as_ref().map(|m| m.begin());
    let id: Arc<str> = match client_request_id(req.headers()) {
        Some(given) => Arc::from(given),
        None => Arc::from(new_request_id()),
    };
    let matched = RouteMatch::of(&req);
    req.extensions_mut().insert(matched);
    let answered = in_request(Arc::clone(&id), next.call(req)).await;
    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    let mut res = match answered {
        Ok(res) => res,
        Err(e) => {
            // Every layer below answers its refusals; an error here is actix's own.
            log::warn!(target: "keyclerk::access", request_id = &*id; "request failed: {e}");
            return Err(e);
        }
    };
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    let status = res.status().as_u16();
    let problem = res
        .response()
        .extensions()
        .get::<ProblemCode>()
        .map(|c| c.0);
    if let Some(metrics) = &metrics {
        metrics.record(&Observation {
            slot: matched.slot(),
            status,
            micros,
            problem,
            verdict: res.response().extensions().get::<Verdict>().map(|v| v.0),
        });
    }
    access_line(&res, &id, matched, micros, problem);
    Ok(res)
}

/// Logs the request: peer, method, path without the query string (keys in `?key=`
/// never reach the log), status, size, time, and the cause of a 500.
fn access_line<B: MessageBody>(
    res: &ServiceResponse<B>,
    id: &str,
    matched: RouteMatch,
    micros: u64,
    problem: Option<&'static str>,
) {
    if !log::log_enabled!(target: "keyclerk::access", log::Level::Info) {
        return;
    }
    let req = res.request();
    let peer = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "-".into());
    let bytes = match res.response().body().size() {
        BodySize::Sized(n) => n,
        _ => 0,
    };
    let route = matched
        .pattern
        .and_then(|p| PATTERNS.get(p).copied())
        .unwrap_or(UNMATCHED);
    let ms = micros as f64 / 1000.0;
    let cause = cause_of(res.response());
    let shown_cause = cause
        .as_deref()
        .map(|c| format!(" cause=\"{}\"", c.escape_debug()))
        .unwrap_or_default();
    log::info!(
        target: "keyclerk::access",
        request_id = id,
        method = req.method().as_str(),
        route = route,
        path = req.path(),
        status = res.status().as_u16(),
        latency_ms = ms,
        bytes = bytes,
        peer = peer.as_str(),
        code = problem,
        cause = cause.as_deref();
        "{peer} \"{} {}\" {} {bytes} {ms:.3}ms{shown_cause}",
        req.method(),
        req.path(),
        res.status().as_u16(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_request_id_is_taken_only_when_short_and_printable() {
        let long = "a".repeat(MAX_REQUEST_ID_LEN + 1);
        let longest = "a".repeat(MAX_REQUEST_ID_LEN);
        for (case, value, taken) in [
            ("a uuid", "3f2b6c1e-9a2d-4e55-8a8e-1c0f2f6b7d10", true),
            ("the longest", longest.as_str(), true),
            ("too long", long.as_str(), false),
            ("empty", "", false),
            ("a space", "a b", false),
            ("a tab", "a\tb", false),
            ("not ascii", "réquête", false),
        ] {
            let mut headers = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_bytes(value.as_bytes()) {
                headers.insert(REQUEST_ID_HEADER, v);
            }
            assert_eq!(
                client_request_id(&headers).is_some(),
                taken,
                "{case}: {value:?}"
            );
        }
        assert_eq!(client_request_id(&HeaderMap::new()), None);
    }

    #[test]
    fn a_made_request_id_is_new_each_time_and_a_valid_one() {
        let (a, b) = (new_request_id(), new_request_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID_HEADER, HeaderValue::from_str(&a).unwrap());
        assert_eq!(client_request_id(&headers), Some(a.as_str()));
    }
}
