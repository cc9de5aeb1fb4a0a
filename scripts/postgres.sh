#!/usr/bin/env bash
# A throwaway PostgreSQL for the tests, sourced by scripts/test.sh:
# `start_test_postgres` finds the server binaries under /usr/lib/postgresql/*/bin
# (installing Debian's postgresql package when they are absent), initdb's a cluster
# in a temporary directory, starts it with pg_ctl on a free port of 127.0.0.1 (as
# the postgres user when run as root), exports KC_TEST_POSTGRES_URL, and stops and
# removes it when the calling shell exits; KC_TEST_POSTGRES_BIN names the binaries
# for the tests that run a cluster of their own. fsync is off: the cluster dies with the
# run, and the tests kill keyclerk, never this server.

pg_bin_dir() {
  local dir
  dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  if [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
    echo "$dir"
  fi
}

start_test_postgres() {
  local bin
  bin="$(pg_bin_dir)"
  if [ -z "$bin" ]; then
    echo "installing Debian's postgresql package for the PostgreSQL tests" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    bin="$(pg_bin_dir)"
    if [ -z "$bin" ]; then
      echo "no initdb and pg_ctl under /usr/lib/postgresql/*/bin after installing postgresql" >&2
      return 1
    fi
  fi
  # As root the cluster belongs to postgres, who must reach its directory: /tmp, not
  # a TMPDIR under root's home.
  local base="${TMPDIR:-/tmp}"
  if [ "$(id -u)" = 0 ]; then base=/tmp; fi
  KC_PG_DIR="$(mktemp -d "$base/keyclerk-pg.XXXXXX")"
  local port
  port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  KC_PG_AS=()
  if [ "$(id -u)" = 0 ]; then
    chown postgres: "$KC_PG_DIR"
    KC_PG_AS=(runuser -u postgres --)
  fi
  KC_PG_CTL="$bin/pg_ctl"
  trap stop_test_postgres EXIT
  "${KC_PG_AS[@]}" "$bin/initdb" -D "$KC_PG_DIR/data" -U postgres --auth=trust -E UTF8 \
    >"$KC_PG_DIR/initdb.log" 2>&1 || { cat "$KC_PG_DIR/initdb.log" >&2; return 1; }
  "${KC_PG_AS[@]}" "$KC_PG_CTL" -D "$KC_PG_DIR/data" -l "$KC_PG_DIR/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $KC_PG_DIR -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start >/dev/null || { cat "$KC_PG_DIR/server.log" >&2; return 1; }
  export KC_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
  # For the tests that stop and start a server of their own (the outage test).
  export KC_TEST_POSTGRES_BIN="$bin"
  echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') for the tests at $KC_TEST_POSTGRES_URL" >&2
}

stop_test_postgres() {
  if [ -n "${KC_PG_DIR:-}" ] && [ -d "$KC_PG_DIR/data" ]; then
    "${KC_PG_AS[@]}" "$KC_PG_CTL" -D "$KC_PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  if [ -n "${KC_PG_DIR:-}" ]; then
    rm -rf "$KC_PG_DIR"
  fi
}
