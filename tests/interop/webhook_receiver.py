"""A receiver of keyclerk's webhooks for the tests (tests/api/webhooks.rs): every
delivery is verified with the PyPI `standardwebhooks` library, recorded as a JSON
line in --log, and answered as the test asks.

  --secret-file F   the endpoint's secret(s), one a line, read at each delivery (the
                    test writes it once it has created the endpoint); a delivery
                    that verifies with none is answered 400 and recorded unverified
  --fail-first N    answer 500 to the first N deliveries
  --status CODE     answer CODE to every delivery (410 to have the endpoint disabled)
  --accept-file F   answer 503 until F exists
  --retry-after S   answer the --fail-first deliveries 429 with `Retry-After: S`
                    instead of 500
  --retry-after-date S
                    the same with `Retry-After` as an HTTP-date (IMF-fixdate) S
                    seconds after the next whole second
  --tls-dir D       serve HTTPS with a certificate for 127.0.0.1 signed by a CA made
                    now (with the `cryptography` package); the CA's certificate is
                    written to D/ca.pem before `PORT` is printed
(a --status of 3xx comes with a `Location` back to this receiver, which keyclerk
must not follow)
Prints `PORT <n>` once listening on 127.0.0.1 (a port the system picks)."""

import argparse
import email.utils
import json
import math
import ssl
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


# The verification the README shows ("Webhooks to your systems"): the raw body and
# the request's headers, with the endpoint's `whsec_…` secret.
def verify_delivery(secret: str, body: bytes, headers: dict) -> dict:
    """The event ({type, timestamp, data}) if keyclerk signed it; raises otherwise."""
    return Webhook(secret).verify(body, headers)


def make_certificates(directory: Path) -> tuple[Path, Path]:
    """A CA (its certificate in ca.pem) and a server certificate for 127.0.0.1 it
    signed (server.pem, server.key), valid for a day."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def certificate(subject, key, issuer, issuer_key, ca: bool):
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            ).add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = certificate(name("keyclerk test CA"), ca_key, name("keyclerk test CA"), ca_key, True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = certificate(name("127.0.0.1"), key, ca.subject, ca_key, False)
    pem = serialization.Encoding.PEM
    (directory / "ca.pem").write_bytes(ca.public_bytes(pem))
    (directory / "server.pem").write_bytes(cert.public_bytes(pem))
    (directory / "server.key").write_bytes(
        key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return directory / "server.pem", directory / "server.key"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--secret-file", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--fail-first", type=int, default=0)
    parser.add_argument("--status", type=int, default=None)
    parser.add_argument("--accept-file", default=None)
    parser.add_argument("--retry-after", default=None)
    parser.add_argument("--retry-after-date", type=int, default=None)
    parser.add_argument("--tls-dir", default=None)
    args = parser.parse_args()
    lock = threading.Lock()
    seen = {"n": 0}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                with open(args.secret_file) as f:
                    secrets = [line.strip() for line in f if line.strip()]
            except FileNotFoundError:
                secrets = []
            verified, error, event = False, "no secret", None
            for secret in secrets:
                try:
                    event = verify_delivery(secret, body, headers)
                    verified, error = True, None
                    break
                except WebhookVerificationError as e:
                    error = str(e)
            with lock:
                seen["n"] += 1
                n = seen["n"]
                if not verified:
                    status = 400
                elif args.status is not None:
                    status = args.status
                elif n <= args.fail_first:
                    throttle = args.retry_after or args.retry_after_date is not None
                    status = 429 if throttle else 500
                elif args.accept_file and not os.path.exists(args.accept_file):
                    status = 503
                else:
                    status = 204
                record = {
                    "n": n,
                    "webhook_id": headers.get("webhook-id"),
                    "webhook_timestamp": headers.get("webhook-timestamp"),
                    "webhook_signature": headers.get("webhook-signature"),
                    "body": body.decode("utf-8", "replace"),
                    "verified": verified,
                    "error": error,
                    "type": event.get("type") if isinstance(event, dict) else None,
                    "answered": status,
                    "path": self.path,
                    "received_at": time.time(),
                }
                with open(args.log, "a") as log:
                    log.write(json.dumps(record) + "\n")
            self.send_response(status)
            if status == 429 and args.retry_after_date is not None:
                at = math.ceil(time.time()) + args.retry_after_date
                self.send_header("retry-after", email.utils.formatdate(at, usegmt=True))
            elif status == 429:
                self.send_header("retry-after", args.retry_after)
            if 300 <= status < 400:
                self.send_header("location", "/redirected")
            self.send_header("content-length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if args.tls_dir:
        cert, key = make_certificates(Path(args.tls_dir))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
