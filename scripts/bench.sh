#!/usr/bin/env bash
# make bench: every script in benchmarks/ (each exits non-zero when its target is missed; the
# missed ones are listed at the end), with what they need started first, as `make test` does:
# Redis, the engine in swarm mode. Each script makes its own data directory, keys and images.
# With arguments, only those scripts: bash scripts/bench.sh webhook_intake.py log_latency.py
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
BIN=$PWD/.venv/bin

if [ "$#" = 0 ]; then set -- $(cd benchmarks && ls [!_]*.py); fi
for b in "$@"; do
  ok=$b
  case $b in */* | _*) ok="" ;; esac
  [ -n "$ok" ] && [ -f "benchmarks/$ok" ] || { say "no benchmark named $b (ls benchmarks/)"; exit 2; }
done

ensure_packages || exit 1
ensure_redis || exit 1
ensure_docker || exit 1
ensure_swarm || exit 1

cd benchmarks
missed=""
for b in "$@"; do
  say "benchmark $b"
  "$BIN/python" "$b" || missed="$missed $b"
done
if [ -n "$missed" ]; then say "targets missed:$missed"; exit 1; fi
