//! Request extractors whose failures are problem+json: JSON bodies, query strings.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::server::BodyDeadline;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Largest batch body: a thousand licenses with emails and metadata do not fit in 64 KiB.
pub const MAX_BATCH_BODY_BYTES: usize = 2 * 1024 * 1024;
/// Largest payment provider webhook: a Stripe event with its object expanded can
/// pass 64 KiB.
pub const MAX_PAYMENT_BODY_BYTES: usize = 1024 * 1024;

/// A body as raw bytes, of any content type (a payment provider's webhook, whose
/// signature covers the bytes exactly as sent), at most [`MAX_PAYMENT_BODY_BYTES`].
#[derive(Debug)]
pub struct RawBody(pub Vec<u8>);

/// A JSON body of at most `LIMIT` bytes parsed into `T`; errors name the offending field.
#[derive(Debug)]
pub struct JsonBody<T, const LIMIT: usize = MAX_BODY_BYTES>(pub T);

/// Like [`JsonBody`], but an empty body without a content type, or the JSON `null`,
/// gives `T::default()`.
#[derive(Debug)]
pub struct OptionalJsonBody<T>(pub T);

/// A body that is not a JSON object: serde would read a struct from an array of
/// its fields' values (`["key", "fingerprint"]`), which no client means.
fn not_an_object() -> ApiError {
    ApiError::BadField {
        field: "body".into(),
        message: "expected a JSON object".into(),
    }
}

/// Whether the JSON text opens with an object (a cheap look before parsing).
fn opens_an_object(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_none_or(|b| *b == b'{')
}

/// Parses JSON bytes into `T`, mapping serde's errors to stable codes. Every body
/// is an object (`null` too where `T` is an `Option`).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let null = bytes.trim_ascii() == b"null";
    if !opens_an_object(bytes)
        && !null
        && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
    {
        return Err(not_an_object());
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(json_error)?;
    de.end()
        .map_err(|e| ApiError::InvalidJson(strip_position(&e)))?;
    Ok(value)
}

/// Deserializes one already-parsed JSON value (a batch item), which must be an object.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(not_an_object());
    }
    serde_path_to_error::deserialize(value).map_err(json_error)
}

fn strip_position(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

fn json_error(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    if matches!(
        inner.classify(),
        serde_json::error::Category::Syntax
            | serde_json::error::Category::Eof
            | serde_json::error::Category::Io
    ) {
        return ApiError::InvalidJson(strip_position(&inner));
    }
    let message = strip_position(&inner);
    let prefix = if path == "." {
        String::new()
    } else {
        format!("{path}.")
    };
    if let Some(name) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
    {
        return ApiError::MissingField(format!("{prefix}{name}"));
    }
    if let Some(name) = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next())
    {
        // The path already ends at the unknown field.
        let field = if path == "." { name.to_owned() } else { path };
        return ApiError::BadField { field, message };
    }
    ApiError::BadField {
        field: if path == "." { "body".to_owned() } else { path },
        message,
    }
}

fn is_json(req: &HttpRequest) -> Option<bool> {
    let ct = req.headers().get(header::CONTENT_TYPE)?;
    let mime = ct
        .to_str()
        .ok()?
        .split(';')
        .next()?
        .trim()
        .to_ascii_lowercase();
    Some(
        mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json")),
    )
}

async fn read_body(
    req: &HttpRequest,
    mut payload: Payload,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(0));
    let read = async move {
        while let Some(chunk) = payload.next().await {
            let chunk =
                chunk.map_err(|_| ApiError::InvalidJson("the body could not be read".into()))?;
            if body.len() + chunk.len() > limit {
                return Err(ApiError::PayloadTooLarge(limit));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    };
    // The whole body, not each chunk: a client trickling a byte a second must not
    // hold its connection forever.
    let deadline = req.app_data::<BodyDeadline>().copied().unwrap_or_default();
    actix_web::rt::time::timeout(deadline.0, read)
        .await
        .map_err(|_| ApiError::BodyTimeout(deadline.0.as_secs()))?
}

/// Refuses what would be misread as JSON: a `Content-Encoding` other than
/// `identity` (nothing is decoded, so a gzip body is not JSON) and a `charset`
/// other than UTF-8 (the only one JSON allows, RFC 8259 §8.1).
fn check_encoding(req: &HttpRequest) -> Result<(), ApiError> {
    for value in req.headers().get_all(header::CONTENT_ENCODING) {
        let text = value.to_str().unwrap_or("?");
        if text
            .split(',')
            .map(str::trim)
            .any(|c| !c.is_empty() && !c.eq_ignore_ascii_case("identity"))
        {
            return Err(ApiError::UnsupportedEncoding(shorten(text)));
        }
    }
    let Some(ct) = req.headers().get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let Ok(ct) = ct.to_str() else {
        return Err(ApiError::UnsupportedMediaType);
    };
    for param in ct.split(';').skip(1) {
        let Some((name, value)) = param.split_once('=') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("charset") {
            let value = value.trim().trim_matches('"');
            if !value.eq_ignore_ascii_case("utf-8") && !value.eq_ignore_ascii_case("utf8") {
                return Err(ApiError::UnsupportedCharset(shorten(value)));
            }
        }
    }
    Ok(())
}

/// A header value as it may appear in an error's detail: printable ASCII, short.
fn shorten(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(40)
        .collect()
}

impl<T: DeserializeOwned + 'static, const LIMIT: usize> FromRequest for JsonBody<T, LIMIT> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let payload = payload.take();
        Box::pin(async move {
            if is_json(&req) != Some(true) {
                return Err(ApiError::UnsupportedMediaType);
            }
            check_encoding(&req)?;
            let body = read_body(&req, payload, LIMIT).await?;
            parse_json(&body).map(JsonBody)
        })
    }
}

impl FromRequest for RawBody {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let payload = payload.take();
        Box::pin(async move {
            check_encoding(&req)?;
            read_body(&req, payload, MAX_PAYMENT_BODY_BYTES)
                .await
                .map(RawBody)
        })
    }
}

impl<T: DeserializeOwned + Default + 'static> FromRequest for OptionalJsonBody<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let payload = payload.take();
        Box::pin(async move {
            let json = is_json(&req);
            check_encoding(&req)?;
            let body = read_body(&req, payload, MAX_BODY_BYTES).await?;
            match json {
                None if body.is_empty() => Ok(OptionalJsonBody(T::default())),
                Some(true) => parse_json::<Option<T>>(&body)
                    .map(|body| OptionalJsonBody(body.unwrap_or_default())),
                _ => Err(ApiError::UnsupportedMediaType),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "fields exist to be deserialized")]
    struct Req {
        name: String,
        n: u32,
        inner: Option<Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[expect(dead_code, reason = "fields exist to be deserialized")]
    struct Inner {
        x: u8,
    }

    #[test]
    fn each_kind_of_bad_body_gets_its_code_and_field() {
        for (case, body, code, field) in [
            ("not json", "{nope", "invalid_json", None),
            (
                "trailing garbage",
                r#"{"name":"a","n":1} x"#,
                "invalid_json",
                None,
            ),
            (
                "missing field",
                r#"{"name":"a"}"#,
                "missing_field",
                Some("n"),
            ),
            (
                "wrong type",
                r#"{"name":"a","n":"one"}"#,
                "invalid_field",
                Some("n"),
            ),
            (
                "unknown field",
                r#"{"name":"a","n":1,"m":2}"#,
                "invalid_field",
                Some("m"),
            ),
            (
                "nested",
                r#"{"name":"a","n":1,"inner":{"x":300}}"#,
                "invalid_field",
                Some("inner.x"),
            ),
            (
                "nested missing",
                r#"{"name":"a","n":1,"inner":{}}"#,
                "missing_field",
                Some("inner.x"),
            ),
            ("not an object", r#""text""#, "invalid_field", Some("body")),
            (
                "an array of the fields",
                r#"["a", 1]"#,
                "invalid_field",
                Some("body"),
            ),
            ("an empty array", "[]", "invalid_field", Some("body")),
        ] {
            let err = parse_json::<Req>(body.as_bytes()).unwrap_err();
            assert_eq!(err.code(), code, "{case}: {err}");
            let problem = err.problem();
            assert_eq!(problem["field"].as_str(), field, "{case}");
        }
    }
}

/// The client's address as the rate limits count it: the socket's peer, or the
/// forwarded client when the peer is a trusted proxy; IPv6 by its /64.
#[derive(Debug, Clone)]
pub struct ClientAddr(pub String);

impl FromRequest for ClientAddr {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        use crate::service::limits::{client_address, ForwardedHeader};
        let public = req
            .app_data::<actix_web::web::Data<crate::service::AppState>>()
            .map(|s| &s.limits.public);
        let trusted = public.map(|p| p.trusted_proxies()).unwrap_or_default();
        let header = public.map_or(ForwardedHeader::default(), |p| p.forwarded_header());
        let forwarded: Vec<&str> = if trusted.is_empty() {
            Vec::new()
        } else {
            req.headers()
                .get_all(header.name())
                .filter_map(|v| v.to_str().ok())
                .collect()
        };
        let client = client_address(req.peer_addr().map(|a| a.ip()), &forwarded, header, trusted);
        std::future::ready(Ok(Self(client.map(|c| c.bucket()).unwrap_or_default())))
    }
}
