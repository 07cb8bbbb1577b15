#!/usr/bin/env bash
# Runs the whole suite. SQLite always; PostgreSQL too when FIDELE_TEST_POSTGRES_URL is set,
# or when a local server answers. In CI (CI=true) PostgreSQL is mandatory: unreachable = failure.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

pg_ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }

if [ -z "${FIDELE_TEST_POSTGRES_URL:-}" ]; then
  if ! pg_ready && command -v pg_ctlcluster >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start >/dev/null 2>&1 || true
    for _ in $(seq 1 20); do pg_ready && break; sleep 0.5; done
  fi
  if pg_ready; then
    # A name no earlier run can have left behind (a killed run keeps its database, and PIDs
    # repeat across machines and restarts); dropped again on exit.
    db="fidele_test_$(date +%s)_$$_${RANDOM}"
    psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
    psql -q -h 127.0.0.1 -U postgres -c "CREATE DATABASE $db" >/dev/null
    trap 'psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
    export FIDELE_TEST_POSTGRES_URL="postgresql+psycopg://postgres@127.0.0.1:5432/$db"
  elif [ "${CI:-}" = "true" ]; then
    echo "PostgreSQL at 127.0.0.1:5432 is not reachable: in CI this is a failure." >&2
    exit 1
  else
    echo "note: PostgreSQL not reachable; running on SQLite only." >&2
  fi
fi
if [ "${CI:-}" = "true" ]; then export FIDELE_TEST_REQUIRE_POSTGRES=1; fi
# Not exec: the EXIT trap above must still run to drop the test database.
status=0
$BIN/python -m pytest "$@" || status=$?
exit $status
