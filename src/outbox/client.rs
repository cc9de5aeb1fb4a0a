//! The HTTP client of outgoing webhooks: hyper (HTTP/1.1, a keep-alive pool) over
//! rustls with the Mozilla roots (and the certificates of `[webhooks] ca_file`, for
//! receivers whose certificates a private CA signs), and a resolver of keyclerk's own that drops every
//! address a webhook may not reach, so that a host name is checked where it is
//! connected to (a name that resolves to a private address at delivery time is
//! refused then, whatever it resolved to when the endpoint was added).
//!
//! Redirects are never followed (hyper does not follow them; a 3xx is a failed
//! attempt, as the Standard Webhooks specification says).

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

use crate::domain::webhook::{is_public, literal_address};

/// Most bytes of a receiver's answer read (the rest is dropped with the connection).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Resolves names with the system resolver and keeps only the addresses a webhook
/// may be sent to.
#[derive(Debug, Clone, Copy)]
pub struct CheckedResolver {
    allow_private: bool,
}

impl tower_service::Service<Name> for CheckedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = all
                .iter()
                .copied()
                .filter(|a| allow_private || is_public(a.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!(
                        "{} resolves only to loopback, private or link-local addresses",
                        name.as_str()
                    ),
                ));
            }
            Ok(allowed.into_iter())
        })
    }
}

type Connector = hyper_rustls::HttpsConnector<HttpConnector<CheckedResolver>>;

/// A client for webhook deliveries; cheap to clone.
#[derive(Clone)]
pub struct WebhookClient {
    client: Client<Connector, Full<Bytes>>,
    allow_private: bool,
    timeout: Duration,
}

/// What a receiver answered.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// Its `Retry-After` header.
    pub retry_after: Option<String>,
}

/// The roots a receiver's certificate may chain to: the Mozilla roots, and every
/// certificate of the PEM file `ca_file` where one is given (none in it is an error:
/// a file that trusts nothing is a mistake).
pub fn trusted_roots(ca_file: Option<&Path>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        let shown = path.display();
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|e| format!("{shown}: {e}"))?;
        if certs.is_empty() {
            return Err(format!("{shown}: no PEM certificate in it"));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| format!("{shown}: a certificate that cannot be a root: {e}"))?;
        }
    }
    Ok(roots)
}

impl WebhookClient {
    /// A client that trusts `roots` and gives up on an attempt after `timeout`
    /// (connection included).
    pub fn new(allow_private: bool, timeout: Duration, roots: RootCertStore) -> Self {
        let mut http = HttpConnector::new_with_resolver(CheckedResolver { allow_private });
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(timeout));
        let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        // ring's provider supports the default versions: this cannot fail.
        .unwrap_or_else(|_| unreachable!("ring supports TLS 1.2 and 1.3"))
        .with_root_certificates(roots)
        .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        Self {
            client,
            allow_private,
            timeout,
        }
    }

    /// POSTs `body` to `url` with `headers`; the answer, or why there was none.
    pub async fn post(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: String,
    ) -> Result<Answer, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("bad URL: {e}"))?;
        if let Some(ip) = literal_address(&parsed) {
            if !self.allow_private && !is_public(ip) {
                return Err(format!("{ip} is a loopback, private or link-local address"));
            }
        }
        let mut request = hyper::Request::post(url);
        for (name, value) in headers {
            request = request.header(*name, value.as_str());
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("cannot build the request: {e}"))?;
        let attempt = async {
            let response = self.client.request(request).await.map_err(describe)?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(hyper::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            // Read the answer so that the connection can be used again; a long one
            // ends it (the status is all that counts).
            let _ = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await;
            Ok(Answer {
                status,
                retry_after,
            })
        };
        tokio::time::timeout(self.timeout, attempt)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {:?}", self.timeout)))
    }
}

/// An error and its causes on one line (hyper's own message is only "client error").
fn describe(e: hyper_util::client::legacy::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_that_is_missing_or_holds_no_certificate_is_refused_naming_it() {
        assert!(trusted_roots(None).is_ok_and(|r| !r.is_empty()));
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        assert!(trusted_roots(Some(&missing))
            .unwrap_err()
            .contains("missing.pem"));
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        assert!(trusted_roots(Some(&empty))
            .unwrap_err()
            .contains("no PEM certificate"));
    }
}
