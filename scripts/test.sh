#!/usr/bin/env bash
# make test: every test, unit and end-to-end, against the real engine, swarm, registry and Redis,
# on SQLite; alongside it, the unit suite again on a throwaway PostgreSQL server
# (KOYRA_TEST_POSTGRES=0 skips that run). With arguments, only those tests, on SQLite
# (KOYRA_TEST_DB=postgres: on PostgreSQL instead).
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
BIN=.venv/bin

export KOYRA_DATA_DIR="${KOYRA_TEST_DATA_DIR:-$PWD/data/test}"
rm -rf "$KOYRA_DATA_DIR"; mkdir -p "$KOYRA_DATA_DIR"
export SECRET_KEY="test-secret-key-not-for-production"
export KOYRA_FERNET_KEYS="$($BIN/python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
export REDIS_URL="${KOYRA_TEST_REDIS_URL:-redis://127.0.0.1:6379/13}"
export KOYRA_HTTP_PORT="${KOYRA_TEST_HTTP_PORT:-18080}"
export KOYRA_BASE_URL="http://127.0.0.1:18000"
# Tests run `prune` themselves; an automatic one would race other suites sharing the registry.
export KOYRA_PRUNE_EVERY_HOURS=0
# The sample apps are local git repositories.
export KOYRA_ALLOW_FILE_REPOS=1
unset DATABASE_URL KOYRA_FERNET_KEYS_FILE SECRET_KEY_FILE KOYRA_ACME_EMAIL

ensure_redis || exit 1
ensure_docker || exit 1
ensure_swarm || exit 1

if [ -z "${KOYRA_TEST_SKIP_LINT:-}" ]; then
  $BIN/ruff check . || exit 1
  $BIN/ruff format --check . || exit 1
  $BIN/mypy || exit 1
fi

run_pytest() {
  $BIN/pytest "$@"
  local rc=$?
  if [ "$rc" = 5 ]; then echo "pytest collected no tests: that is a failure here" >&2; return 1; fi
  return "$rc"
}

# A throwaway PostgreSQL server: its own cluster in a fresh directory, reached only through a
# unix socket in that directory (no port to collide with, no one else can connect), stopped
# and removed when this script ends, however it ends.
PG_DIR="" PG_BIN="" PG_AS=()
pg_start() {
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
  [ -x "$PG_BIN/initdb" ] || PG_BIN=$(dirname "$(command -v initdb 2>/dev/null || echo /x/x)")
  if [ ! -x "$PG_BIN/initdb" ]; then
    say "PostgreSQL is not installed: bash scripts/provision.sh --test (or KOYRA_TEST_POSTGRES=0)"
    return 1
  fi
  PG_DIR=$(mktemp -d /tmp/koyra-test-pg.XXXXXX)
  trap pg_stop EXIT
  if [ "$(id -u)" = 0 ]; then # PostgreSQL refuses to run as root
    local user=postgres
    id -u postgres >/dev/null 2>&1 || user=nobody
    chown "$user" "$PG_DIR"
    PG_AS=(runuser -u "$user" --)
  fi
  if ! "${PG_AS[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -U koyra -A trust -E UTF8 --no-sync \
    >"$PG_DIR/initdb.log" 2>&1; then
    say "initdb failed:"; cat "$PG_DIR/initdb.log" >&2; return 1
  fi
  # Durability off: a test server that is thrown away needs none, and fsync costs minutes.
  if ! "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
    -o "-c listen_addresses='' -k $PG_DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start >/dev/null; then
    say "PostgreSQL did not start:"; cat "$PG_DIR/server.log" >&2; return 1
  fi
  export DATABASE_URL="postgres://koyra@${PG_DIR//\//%2F}/koyra"
  say "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') at $DATABASE_URL"
}
pg_stop() {
  [ -n "$PG_DIR" ] || return 0
  "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w -t 30 stop >/dev/null 2>&1 ||
    "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1
  rm -rf "$PG_DIR"
  PG_DIR=""
}

if [ "${KOYRA_TEST_DB:-sqlite}" = postgres ]; then
  pg_start || exit 1
  if [ "$#" = 0 ]; then set -- tests --ignore=tests/e2e; fi
  run_pytest "$@"
  exit
fi
# The unit suite again on PostgreSQL: what SQLite hides (row locks, concurrent unique inserts,
# types). The end-to-end part runs on SQLite only. The PostgreSQL run goes alongside the SQLite
# one (whose end-to-end part mostly waits on the engine), with a data directory, a Redis
# database and a pytest temp directory of its own so the two never meet; its output follows.
PG_RUN="" PG_LOG=""
if [ "$#" = 0 ] && [ "${KOYRA_TEST_POSTGRES:-1}" != 0 ]; then
  PG_LOG=$(mktemp /tmp/koyra-test-pg-log.XXXXXX)
  (
    export KOYRA_DATA_DIR="$KOYRA_DATA_DIR-postgres"
    rm -rf "$KOYRA_DATA_DIR"; mkdir -p "$KOYRA_DATA_DIR"
    export REDIS_URL="${REDIS_URL%/*}/12"
    pg_start && run_pytest tests --ignore=tests/e2e -p no:cacheprovider \
      --basetemp="$KOYRA_DATA_DIR/pytest"
  ) >"$PG_LOG" 2>&1 &
  PG_RUN=$!
fi
if [ "$#" = 0 ]; then set -- tests --durations=25; fi # the slowest, for the time budget
run_pytest "$@"; rc=$?
if [ -n "$PG_RUN" ]; then
  wait "$PG_RUN"; pg_rc=$?
  echo "==== the unit suite on PostgreSQL (ran alongside) ===="
  cat "$PG_LOG"; rm -f "$PG_LOG"
  if [ "$rc" = 0 ]; then rc=$pg_rc; fi
fi
exit "$rc"
