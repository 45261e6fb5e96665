#!/usr/bin/env bash
# make run: the whole control plane on this machine (web + websockets on 127.0.0.1:8000, worker).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
BIN=.venv/bin

# What this machine lacks for Koyra (Docker, Redis, git, a Python with venv...), from the one
# list CI installs from too: installed when root, else the one command to run.
missing=$(bash scripts/provision.sh --missing | tr '\n' ' ')
if [ -n "$missing" ]; then
  if [ "$(id -u)" != 0 ]; then
    say "missing packages: $missing- install them once with: sudo bash $PWD/scripts/provision.sh"
    exit 1
  fi
  bash scripts/provision.sh
fi
make --no-print-directory venv
export KOYRA_DATA_DIR="${KOYRA_DATA_DIR:-$PWD/data}"
mkdir -p "$KOYRA_DATA_DIR"
chmod 700 "$KOYRA_DATA_DIR"

# Keys: made once for local use, kept under the data dir. Back them up: without the Fernet
# key the stored secrets cannot be read.
if [ -z "${KOYRA_FERNET_KEYS:-}" ] && [ -z "${KOYRA_FERNET_KEYS_FILE:-}" ]; then
  export KOYRA_FERNET_KEYS_FILE="$KOYRA_DATA_DIR/fernet.keys"
  if [ ! -s "$KOYRA_FERNET_KEYS_FILE" ]; then
    (umask 077; $BIN/python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())' >"$KOYRA_FERNET_KEYS_FILE")
    say "made a Fernet key in $KOYRA_FERNET_KEYS_FILE - back it up: secrets cannot be read without it"
  fi
fi
if [ -z "${SECRET_KEY:-}" ] && [ -z "${SECRET_KEY_FILE:-}" ]; then
  export SECRET_KEY_FILE="$KOYRA_DATA_DIR/secret_key"
  if [ ! -s "$SECRET_KEY_FILE" ]; then
    (umask 077; $BIN/python -c 'import secrets; print(secrets.token_urlsafe(50))' >"$SECRET_KEY_FILE")
    say "made a SECRET_KEY in $SECRET_KEY_FILE"
  fi
fi

ensure_redis
ensure_docker
ensure_swarm

# Images for the registry and Traefik: the configured ones where they are here or can be
# pulled, else ones built from this machine's packages (no Docker Hub needed).
pick_image() { # VAR default
  local var=$1 default=$2
  [ -n "${!var:-}" ] && return 0
  if docker image inspect "$default" >/dev/null 2>&1 || timeout 60 docker pull -q "$default" >/dev/null 2>&1; then
    export "$var=$default"; return 0
  fi
  say "$default cannot be pulled here; using one built from this machine's packages"
  if [ -z "${local_images_built:-}" ]; then
    $BIN/python manage.py build_local_images >"$KOYRA_DATA_DIR/local-images.env"
    local_images_built=1
  fi
  export "$var=$(grep "^$var=" "$KOYRA_DATA_DIR/local-images.env" | cut -d= -f2)"
}
pick_image KOYRA_REGISTRY_IMAGE registry:2
pick_image KOYRA_TRAEFIK_IMAGE traefik:v3.7

$BIN/python manage.py check
$BIN/python manage.py migrate --noinput -v0
$BIN/python manage.py bootstrap_cluster || say "bootstrap_cluster reported a problem (above); the dashboard still starts"
$BIN/python manage.py ensure_admin

pids=()
stop() { trap - INT TERM EXIT; kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; say "stopped"; }
trap stop INT TERM EXIT
$BIN/daphne -b 127.0.0.1 -p "${KOYRA_PORT:-8000}" koyra.asgi:application & pids+=($!)
$BIN/python manage.py rqworker deploys & pids+=($!)
say "Koyra is at http://127.0.0.1:${KOYRA_PORT:-8000}/ (Ctrl-C stops it)"
wait -n "${pids[@]}"
