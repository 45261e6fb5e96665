#!/usr/bin/env bash
# make test: every test, unit and end-to-end, against the real engine, swarm, registry and Redis.
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

$BIN/pytest "${@:-tests}"
rc=$?
if [ "$rc" = 5 ]; then echo "pytest collected no tests: that is a failure here" >&2; exit 1; fi
exit "$rc"
