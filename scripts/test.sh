#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs the PASETO libraries the interop
# tests drive (Python pyseto in a venv under the target directory, Node paseto with
# npm ci), the Standard Webhooks libraries the webhook receivers verify with (Python
# standardwebhooks, same venv; Node standardwebhooks, same npm ci), Debian's chromium
# and playwright-core + axe-core (npm ci in tests/browser) for the console's browser
# tests, the Prometheus
# parser the metrics tests read /metrics with (prometheus_client, same venv), Stripe's
# SDK that signs the payment tests' events (stripe, same venv) and schemathesis (same
# venv), then runs every Rust
# test (unit, integration, doc; the schemathesis runs against a live server are
# integration tests), with a throwaway PostgreSQL of its own (scripts/postgres.sh) for
# the tests on that engine. The tests that need Python, Node or PostgreSQL fail
# without them (never skip): this script provides them.
set -euo pipefail
cd "$(dirname "$0")/.."

target="${CARGO_TARGET_DIR:-target}"
mkdir -p "$target"
venv="$(cd "$target" && pwd)/interop-venv"
if ! "$venv/bin/python" -c "import pyseto, schemathesis, prometheus_client, stripe, standardwebhooks, cryptography, aiosmtpd" 2>/dev/null; then
  echo "installing pyseto, prometheus_client, stripe, standardwebhooks, cryptography, aiosmtpd and schemathesis into $venv" >&2
  python3 -m venv "$venv"
  # `python -m pip`, not bin/pip: a venv copied elsewhere keeps bin/pip's old path.
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r tests/interop/requirements.txt -r tests/schemathesis/requirements.txt
fi
if [ ! -d tests/interop/node/node_modules/paseto ] || [ ! -d tests/interop/node/node_modules/standardwebhooks ]; then
  echo "installing the Node paseto and standardwebhooks libraries" >&2
  npm ci --prefix tests/interop/node --no-audit --no-fund --silent
fi

# The console's browser tests: Debian's chromium (apt, as root: CI machines are
# fresh) and playwright-core + axe-core from the committed lock file.
if [ -z "${KC_CHROMIUM:-}" ] && [ ! -x /usr/lib/chromium/chromium ]; then
  echo "installing Debian's chromium for the browser tests" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if [ ! -d tests/browser/node_modules/playwright-core ] || [ ! -d tests/browser/node_modules/axe-core ]; then
  echo "installing playwright-core and axe-core for the browser tests" >&2
  npm ci --prefix tests/browser --no-audit --no-fund --silent
fi

export KC_TEST_PYTHON="$venv/bin/python"
# shellcheck source=scripts/postgres.sh
source scripts/postgres.sh
start_test_postgres
cargo test --workspace --locked "$@"
