#!/usr/bin/env bash
# make install: Koyra on this server as its own Docker Swarm stack (scripts/stack/koyra-stack.yml):
# web (daphne), worker (rqworker), Redis and PostgreSQL, each a Swarm service with its volume,
# restarted by Swarm when it exits and when the engine comes back after a reboot; the keys as
# Docker secrets; the dashboard behind Koyra's Traefik at KOYRA_HOST (TLS with
# KOYRA_ACME_EMAIL). Run it again to upgrade: it rebuilds the image and redeploys the stack.
#
#   install.sh              install or upgrade
#   install.sh --uninstall  remove the stack (volumes, keys and secrets stay; add --purge to
#                           remove the stack's volumes and secrets too, for good)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
BIN=.venv/bin
trap 'say "install.sh failed at line $LINENO (above)"' ERR
STACK="${KOYRA_STACK:-koyra}"
if ! [[ "$STACK" =~ ^[a-z][a-z0-9-]{0,29}$ ]]; then
  say "KOYRA_STACK=$STACK: use lowercase letters, digits and '-', starting with a letter (at most 30)"
  exit 2
fi

uninstall() { # [--purge]
  if docker stack ls --format '{{.Name}}' | grep -qx "$STACK"; then
    docker stack rm "$STACK" >/dev/null
    say "removing the stack $STACK"
  fi
  for _ in $(seq 1 120); do
    [ -z "$(docker ps -aq --filter "label=com.docker.stack.namespace=$STACK")" ] && break
    sleep 1
  done
  if [ "${1:-}" = --purge ]; then
    for v in data redis postgres; do docker volume rm -f "${STACK}_$v" >/dev/null 2>&1 || true; done
    docker secret ls -q --filter "label=koyra.stack=$STACK" | xargs -r docker secret rm >/dev/null
    docker config ls -q --filter "label=com.docker.stack.namespace=$STACK" | xargs -r docker config rm >/dev/null 2>&1 || true
    say "removed the volumes, secrets and configs of $STACK (the key files in ${KOYRA_INSTALL_DIR:-data/install-$STACK} stay)"
  else
    say "the volumes ${STACK}_data, ${STACK}_postgres, ${STACK}_redis and the secrets stay; make install brings it back"
  fi
}
case "${1:-}" in
  --uninstall) shift; uninstall "$@"; exit 0 ;;
  "") ;;
  *) echo "usage: $0 [--uninstall [--purge]]" >&2; exit 2 ;;
esac

ensure_packages --install || exit 1
make --no-print-directory venv
export KOYRA_DATA_DIR="${KOYRA_DATA_DIR:-$PWD/data}"
mkdir -p "$KOYRA_DATA_DIR" && chmod 700 "$KOYRA_DATA_DIR"
ensure_docker
ensure_swarm

# --- The keys: made once, kept here (back this directory up: without fernet.keys the stored
# secrets cannot be read; a Docker secret cannot be read back), given to the stack as Docker
# secrets named by a hash of their content, so changing a file and installing again rolls
# the stack onto the new value.
INSTALL_DIR="${KOYRA_INSTALL_DIR:-$KOYRA_DATA_DIR/install-$STACK}"
mkdir -p "$INSTALL_DIR" && chmod 700 "$INSTALL_DIR"
make_key() { # FILE PYTHON-EXPRESSION
  [ -s "$INSTALL_DIR/$1" ] && return 0
  (umask 077 && $BIN/python -c "import secrets, sys; from cryptography.fernet import Fernet; print($2)" >"$INSTALL_DIR/$1")
  say "made $INSTALL_DIR/$1"
}
make_key secret_key 'secrets.token_urlsafe(50)'
make_key fernet.keys 'Fernet.generate_key().decode()'
make_key postgres_password 'secrets.token_urlsafe(24)'
(umask 077 && printf 'postgres://koyra:%s@postgres:5432/koyra\n' "$(cat "$INSTALL_DIR/postgres_password")" \
  >"$INSTALL_DIR/database_url")
# The host side (bootstrap_cluster) uses the same keys.
export SECRET_KEY_FILE="$INSTALL_DIR/secret_key" KOYRA_FERNET_KEYS_FILE="$INSTALL_DIR/fernet.keys"
unset SECRET_KEY KOYRA_FERNET_KEYS

# --- The cluster's registry and Traefik (shared with the apps), and the registry login.
pick_cluster_images
$BIN/python manage.py bootstrap_cluster || { say "bootstrap_cluster failed (above)"; exit 1; }

secret() { # VAR NAME FILE: a Docker secret holding FILE, made when missing
  local name="${STACK}_$2_$(sha256sum "$3" | cut -c1-12)"
  if ! docker secret inspect "$name" >/dev/null 2>&1; then
    docker secret create --label "koyra.stack=$STACK" "$name" "$3" >/dev/null
  fi
  export "$1=$name"
}
secret KOYRA_SECRET_SECRET_KEY secret_key "$INSTALL_DIR/secret_key"
secret KOYRA_SECRET_FERNET_KEYS fernet_keys "$INSTALL_DIR/fernet.keys"
secret KOYRA_SECRET_POSTGRES_PASSWORD postgres_password "$INSTALL_DIR/postgres_password"
secret KOYRA_SECRET_DATABASE_URL database_url "$INSTALL_DIR/database_url"
secret KOYRA_SECRET_REGISTRY_AUTH registry_auth "$KOYRA_DATA_DIR/registry-auth.json"

# --- Images: the official ones where Docker Hub answers; else a Debian made here with
# debootstrap (with Redis and PostgreSQL from Debian), once, reused afterwards.
pullable() { docker image inspect "$1" >/dev/null 2>&1 || timeout 60 docker pull -q "$1" >/dev/null 2>&1; }
if [ -n "${KOYRA_INSTALL_BASE:-}" ]; then
  BASE=$KOYRA_INSTALL_BASE
  export KOYRA_REDIS_IMAGE="${KOYRA_REDIS_IMAGE:-$BASE}" KOYRA_POSTGRES_IMAGE="${KOYRA_POSTGRES_IMAGE:-$BASE}"
elif pullable python:3.11-slim && pullable redis:7 && pullable postgres:15; then
  BASE=python:3.11-slim
  export KOYRA_REDIS_IMAGE=redis:7 KOYRA_POSTGRES_IMAGE=postgres:15
else
  SUITE="${KOYRA_DEBIAN_SUITE:-bookworm}"
  MIRROR="${KOYRA_DEBIAN_MIRROR:-$(grep -rhoE '^(deb|URIs:) +https?://[^ ]+/debian/?( |$)' \
    /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null | awk 'NR == 1 {print $2}' || true)}"
  MIRROR="${MIRROR:-http://deb.debian.org/debian}"
  BASE="koyra-local/debian-base:$SUITE"
  if ! docker image inspect "$BASE" >/dev/null 2>&1; then
    say "Docker Hub does not answer: making $BASE with debootstrap from $MIRROR (once; a minute or two)"
    root=$(mktemp -d /tmp/koyra-debootstrap.XXXXXX)
    trap 'rm -rf "$root"' EXIT
    if ! debootstrap --variant=minbase \
      --include=python3,python3-venv,git,openssh-client,ca-certificates,tini,redis-server,postgresql \
      "$SUITE" "$root" "$MIRROR" >"$root.log" 2>&1; then
      say "debootstrap failed (log: $root.log)"; exit 1
    fi
    rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/usr/share/doc \
      "$root"/usr/share/man "$root"/usr/share/locale "$root.log"
    tar -C "$root" -c . | docker import -c 'CMD ["/bin/bash"]' - "$BASE" >/dev/null
    rm -rf "$root"
    trap - EXIT
  fi
  export KOYRA_REDIS_IMAGE="${KOYRA_REDIS_IMAGE:-$BASE}" KOYRA_POSTGRES_IMAGE="${KOYRA_POSTGRES_IMAGE:-$BASE}"
fi

# Koyra's image: the code (no data/, .venv, .git or tests) and wheels made here, so the build
# downloads nothing. Tagged by content: an unchanged tree redeploys nothing.
ctx=$(mktemp -d /tmp/koyra-image.XXXXXX)
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/code" "$ctx/requirements"
tar -c --exclude=./data --exclude=./.venv --exclude=./.git --exclude=./tests --exclude=./artifacts \
  --exclude=__pycache__ --exclude=./.mypy_cache --exclude=./.ruff_cache --exclude=./.pytest_cache \
  --exclude=./benchmarks . | tar -x -C "$ctx/code"
cp requirements/base.txt "$ctx/requirements/"
# The wheels come from this machine's pip (its index or mirror); what the image's own Python
# needs besides (a dependency behind a marker such as python_full_version) is asked of that
# Python and fetched here too.
wheel() { $BIN/pip wheel --quiet -w "$ctx/wheels" "$@" 2>"$ctx/pip.log" || { cat "$ctx/pip.log" >&2; exit 1; }; }
wheel -r requirements/base.txt
for _ in 1 2 3 4 5; do
  missing=$(docker run --rm -v "$ctx:/ctx:ro" "$BASE" sh -c 'python3 -m venv /tmp/v &&
    /tmp/v/bin/pip install --dry-run --quiet --no-index --find-links /ctx/wheels -r /ctx/requirements/base.txt 2>&1' |
    sed -n 's/.*No matching distribution found for \(.*\)/\1/p' | head -n1 || true)
  [ -n "$missing" ] || break
  wheel "${missing%%;*}"
done
say "building Koyra's image on $BASE"
docker build -q --build-arg "BASE=$BASE" --iidfile "$ctx/iid" -f scripts/stack/Dockerfile "$ctx" \
  >"$ctx/build.log" 2>&1 || { cat "$ctx/build.log" >&2; exit 1; }
export KOYRA_IMAGE="koyra-local/koyra:$(cut -d: -f2 "$ctx/iid" | cut -c1-12)"
docker tag "$(cat "$ctx/iid")" "$KOYRA_IMAGE"

# --- The stack.
export KOYRA_STACK="$STACK"
export KOYRA_HOST="${KOYRA_HOST:-$(hostname -f 2>/dev/null || hostname)}"
export KOYRA_REGISTRY="${KOYRA_REGISTRY:-127.0.0.1:5000}" KOYRA_NETWORK="${KOYRA_NETWORK:-koyra-public}"
export KOYRA_HTTP_PORT="${KOYRA_HTTP_PORT:-80}" KOYRA_ACME_EMAIL="${KOYRA_ACME_EMAIL:-}"
if [ -n "$KOYRA_ACME_EMAIL" ]; then
  export KOYRA_ENTRYPOINT=websecure KOYRA_TLS_LABEL="traefik.http.routers.$STACK-dashboard.tls.certresolver=le"
  default_url="https://$KOYRA_HOST"
else
  export KOYRA_ENTRYPOINT=web KOYRA_TLS_LABEL="koyra.tls=none"
  default_url="http://$KOYRA_HOST"
  [ "$KOYRA_HTTP_PORT" = 80 ] || default_url="$default_url:$KOYRA_HTTP_PORT"
fi
export KOYRA_BASE_URL="${KOYRA_BASE_URL:-$default_url}"
export KOYRA_CSRF_TRUSTED_ORIGINS="${CSRF_TRUSTED_ORIGINS:-$KOYRA_BASE_URL}"
export KOYRA_ALLOW_FILE_REPOS="${KOYRA_ALLOW_FILE_REPOS:-0}" KOYRA_PRUNE_EVERY_HOURS="${KOYRA_PRUNE_EVERY_HOURS:-24}"
export KOYRA_POSTGRES_START_VERSION
KOYRA_POSTGRES_START_VERSION=$(sha256sum scripts/stack/postgres.sh | cut -c1-12)
# Inside a container 127.0.0.1 is the container: relay the registry's and Traefik's
# addresses to their tasks (scripts/stack/relay.py).
export KOYRA_STACK_RELAYS="127.0.0.1:$KOYRA_HTTP_PORT=tasks.koyra-traefik:80"
case "$KOYRA_REGISTRY" in
  127.0.0.1:* | localhost:*)
    KOYRA_STACK_RELAYS="127.0.0.1:${KOYRA_REGISTRY##*:}=tasks.koyra-registry:5000 $KOYRA_STACK_RELAYS" ;;
esac
docker stack deploy --resolve-image never --prune -c scripts/stack/koyra-stack.yml "$STACK" \
  >"$ctx/deploy.log" 2>&1 || { cat "$ctx/deploy.log" >&2; exit 1; }
docker config ls -q --filter "name=${STACK}_postgres_start_" | xargs -r docker config inspect \
  --format '{{.ID}} {{.Spec.Name}}' | while read -r id name; do
  [ "$name" = "${STACK}_postgres_start_$KOYRA_POSTGRES_START_VERSION" ] || docker config rm "$id" >/dev/null 2>&1 || true
done

say "waiting for the dashboard service (${STACK}_dashboard) to answer"
web=""
for _ in $(seq 1 180); do
  web=$(docker ps -q --filter "label=com.docker.swarm.service.name=${STACK}_dashboard" \
    --filter "label=com.docker.swarm.task.name" --filter health=healthy | head -n1)
  if [ -n "$web" ] && [ "$(docker inspect -f '{{index .Config.Labels "com.docker.swarm.service.name"}} {{.Config.Image}}' "$web")" = "${STACK}_dashboard $KOYRA_IMAGE" ]; then
    break
  fi
  web=""
  sleep 1
done
if [ -z "$web" ]; then
  say "the dashboard service did not become healthy in 3 minutes: docker service ps ${STACK}_dashboard --no-trunc; docker service logs ${STACK}_dashboard"
  exit 1
fi
# Older secrets of this stack that no service mounts any more (Swarm refuses the others).
docker secret ls -q --filter "label=koyra.stack=$STACK" | xargs -r docker secret rm >/dev/null 2>&1 || true
docker exec "$web" python manage.py ensure_admin
say "Koyra is at $KOYRA_BASE_URL/ (stack $STACK; keys in $INSTALL_DIR: back them up)"
