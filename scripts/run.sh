#!/usr/bin/env bash
# make run: the whole control plane on this machine (web + websockets on 127.0.0.1:8000, worker).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
BIN=.venv/bin

# What this machine lacks for Koyra (Docker, Redis, git, a Python with venv...), from the one
# list CI installs from too: installed when root, else the one command to run.
ensure_packages || exit 1
make --no-print-directory venv
export KOYRA_DATA_DIR="${KOYRA_DATA_DIR:-$PWD/data}"
mkdir -p "$KOYRA_DATA_DIR"
chmod 700 "$KOYRA_DATA_DIR"

# Keys: koyra/settings.py reads them from the environment, else from KOYRA_DATA_DIR
# (fernet.keys, secret_key) and makes them there on first run, saying where: back them up,
# without the Fernet key the stored secrets cannot be read. `python manage.py ...` in any
# shell, the worker and daphne read the same files.

ensure_redis
ensure_docker
ensure_swarm

# Images for the registry and Traefik (scripts/lib.sh): pulled, else built from this machine's
# packages.
pick_cluster_images

$BIN/python manage.py check
$BIN/python manage.py migrate --noinput -v0
$BIN/python manage.py bootstrap_cluster || say "bootstrap_cluster reported a problem (above); the dashboard still starts"
$BIN/python manage.py ensure_admin

pids=()
stop() { trap - INT TERM EXIT; kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; say "stopped"; }
trap stop INT TERM EXIT
# daphne, through koyra/serve.py: without the TLS libraries Twisted loads for nothing here.
$BIN/python -m koyra.serve -b 127.0.0.1 -p "${KOYRA_PORT:-8000}" koyra.asgi:application & pids+=($!)
$BIN/python manage.py worker & pids+=($!)
say "Koyra is at http://127.0.0.1:${KOYRA_PORT:-8000}/ (Ctrl-C stops it)"
wait -n "${pids[@]}"
