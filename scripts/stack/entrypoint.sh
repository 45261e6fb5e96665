#!/bin/sh
# Koyra's web and worker containers (scripts/install.sh): put the registry login where Koyra
# reads it, start the relays to the registry and Traefik, then run the command.
set -eu
: "${KOYRA_DATA_DIR:=/data}"
mkdir -p "$KOYRA_DATA_DIR"
chmod 700 "$KOYRA_DATA_DIR"
# The login bootstrap_cluster made on the host, as a Docker secret: Koyra reads it from the
# data dir (registry-auth.json, 0600).
if [ -s /run/secrets/koyra_registry_auth ]; then
  (umask 077 && cp /run/secrets/koyra_registry_auth "$KOYRA_DATA_DIR/registry-auth.json.new" &&
    mv "$KOYRA_DATA_DIR/registry-auth.json.new" "$KOYRA_DATA_DIR/registry-auth.json")
fi
if [ -n "${KOYRA_STACK_RELAYS:-}" ]; then
  # shellcheck disable=SC2086 # one word per relay
  python /opt/koyra/scripts/stack/relay.py $KOYRA_STACK_RELAYS &
fi
exec "$@"
