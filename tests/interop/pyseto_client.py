"""A desktop app's licensing in Python, with pyseto and the standard library only.

    python3 pyseto_client.py SERVER_URL LICENSE_KEY MACHINE_ID

Activates the key for this machine, verifies the certificate offline (signature,
kind, fingerprint, lease), then validates online with a nonce and verifies the signed
receipt. Prints a JSON summary; exits 1 with the reason on any failure. The functions
here are the ones the README shows to app developers.
"""
import datetime
import hashlib
import json
import secrets
import sys
import urllib.error
import urllib.request

import pyseto
from pyseto import Key

APP = "keyclerk-demo"


def machine_fingerprint(app: str, machine_id: str) -> str:
    """SHA-256 of the app name and the machine id: the raw id never leaves the machine."""
    data = b"keyclerk-fingerprint\0" + app.encode() + b"\0" + machine_id.strip().encode()
    return hashlib.sha256(data).hexdigest()


def call(method: str, url: str, body=None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            return res.status, json.load(res)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def parse_time(s: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))


def open_token(token: str, public_keys: list[str], kind: str) -> dict:
    """Verifies a keyclerk token with the server's public keys; checks its kind."""
    keys = [Key.from_paserk(k) for k in public_keys]
    claims = pyseto.decode(keys, token, deserializer=json).payload
    if claims.get("kind") != kind:
        raise ValueError(f"a {claims.get('kind')} token where a {kind} was expected")
    return claims


def verify_certificate(certificate: str, public_keys: list[str], fingerprint: str) -> dict:
    """What the app does at every start, offline."""
    claims = open_token(certificate, public_keys, "activation")
    if claims["fingerprint"] != fingerprint:
        raise ValueError("the certificate belongs to another machine")
    if parse_time(claims["exp"]) <= datetime.datetime.now(datetime.timezone.utc):
        raise ValueError("the lease has ended: refresh online")
    return claims


def main(server: str, license_key: str, machine_id: str) -> dict:
    _, keys = call("GET", f"{server}/v1/keys")
    public_keys = [k["public_key"] for k in keys["keys"]]
    fingerprint = machine_fingerprint(APP, machine_id)

    status, body = call(
        "POST",
        f"{server}/v1/activations",
        {"license_key": license_key, "fingerprint": fingerprint, "platform": "python"},
    )
    if status not in (200, 201):
        raise ValueError(f"activation refused: {status} {body.get('code')}")
    cert_claims = verify_certificate(body["certificate"], public_keys, fingerprint)

    copied_refused = False
    try:
        verify_certificate(body["certificate"], public_keys, machine_fingerprint(APP, "other"))
    except ValueError:
        copied_refused = True

    nonce = secrets.token_urlsafe(16)
    _, validation = call(
        "POST",
        f"{server}/v1/validate",
        {"license_key": license_key, "fingerprint": fingerprint, "nonce": nonce},
    )
    receipt = open_token(validation["receipt"], public_keys, "validation")
    if receipt["nonce"] != nonce:
        raise ValueError("the receipt answers another request")
    if receipt["code"] != validation["code"]:
        raise ValueError("the receipt disagrees with the answer")

    return {
        "status": status,
        "fingerprint": fingerprint,
        "activation": body["activation"]["id"],
        "certificate": cert_claims,
        "copied_certificate_refused": copied_refused,
        "validation": validation["code"],
        "receipt": receipt,
    }


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    try:
        print(json.dumps(main(*sys.argv[1:4])))
    except Exception as e:  # noqa: BLE001 - any failure is the answer
        print(f"failed: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
