"""keyclerk interop check with pyseto, a PASETO library not written by us.

    python3 pyseto_interop.py verify K4_PUBLIC TOKEN   # prints the claims, exit 1 if refused
    python3 pyseto_interop.py sign                     # prints {"public_key", "kid", "token"}

The function verify_license_key is the code the README shows to app developers.
"""
import json
import sys

import pyseto
from pyseto import Key


def verify_license_key(token: str, public_keys: list[str]) -> dict:
    """Checks a keyclerk license key offline; returns its claims or raises."""
    keys = [Key.from_paserk(k) for k in public_keys]
    decoded = pyseto.decode(keys, token, deserializer=json)
    claims = decoded.payload
    if claims.get("kind") != "license":
        raise ValueError("not a license key")
    return claims


def sign_sample() -> dict:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    secret_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    secret = Key.new(version=4, purpose="public", key=secret_pem)
    public = Key.new(version=4, purpose="public", key=public_pem)
    kid = public.to_paserk_id()
    claims = {
        "kind": "license",
        "iss": "pyseto",
        "sub": "lic_from_python",
        "product": "photo-pro",
        "iat": "2026-01-01T00:00:00Z",
        "seats": 2,
        "entitlements": ["export"],
    }
    token = pyseto.encode(secret, payload=claims, footer={"kid": kid})
    return {"public_key": public.to_paserk(), "kid": kid, "token": token.decode()}


if __name__ == "__main__":
    if sys.argv[1:2] == ["verify"]:
        try:
            print(json.dumps(verify_license_key(sys.argv[3], [sys.argv[2]])))
        except Exception as e:  # noqa: BLE001 - any refusal is the answer
            print(f"refused: {type(e).__name__}: {e}", file=sys.stderr)
            sys.exit(1)
    elif sys.argv[1:2] == ["sign"]:
        print(json.dumps(sign_sample()))
    else:
        sys.exit(__doc__)
