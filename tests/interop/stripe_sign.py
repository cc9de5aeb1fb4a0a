"""Prints the `Stripe-Signature` header Stripe's own SDK (PyPI `stripe`, 16 or later)
makes for the payload on stdin: `stripe_sign.py SECRET TIMESTAMP`."""

import sys

import stripe

secret, timestamp = sys.argv[1], int(sys.argv[2])
payload = sys.stdin.read()
print(stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp=timestamp))
