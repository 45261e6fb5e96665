# Shared by run.sh, test.sh, bench.sh and install.sh: make sure the packages, Redis and a
# swarm-mode Docker engine are there. Starts local daemons where they are installed;
# otherwise says what to install.

say() { printf 'koyra: %s\n' "$*" >&2; }

# Daemons started here outlive the caller: they must not inherit its descriptors beyond
# stdio (a `flock` the caller holds on fd 3 would stay held for as long as dockerd runs).
close_inherited_fds() {
  local p fd
  for p in /proc/$BASHPID/fd/*; do
    fd=${p##*/}
    if [ "$fd" -gt 2 ] 2>/dev/null; then eval "exec $fd>&-" 2>/dev/null || true; fi
  done
}

# The packages scripts/provision.sh lists (its flags choose the list: --install, --test):
# installed when root, else the one command to run.
ensure_packages() {
  local missing; missing=$(bash scripts/provision.sh --missing "$@" | tr '\n' ' ')
  [ -z "$missing" ] && return 0
  if [ "$(id -u)" != 0 ]; then
    say "missing packages: $missing- install them once with: sudo bash $PWD/scripts/provision.sh $*"
    return 1
  fi
  bash scripts/provision.sh "$@"
}

ensure_redis() {
  local url="${REDIS_URL:-redis://127.0.0.1:6379/0}"
  if command -v redis-cli >/dev/null && redis-cli -u "$url" ping >/dev/null 2>&1; then return 0; fi
  case "$url" in
    redis://127.0.0.1:*|redis://localhost:*) ;;
    *) say "Redis at $url does not answer; start it or fix REDIS_URL"; return 1 ;;
  esac
  if ! command -v redis-server >/dev/null; then
    say "Redis is not running and not installed: apt-get install redis-server (or set REDIS_URL)"
    return 1
  fi
  local port; port=$(printf '%s' "$url" | sed -E 's#redis://[^:]+:([0-9]+).*#\1#')
  say "starting redis-server on 127.0.0.1:$port"
  (close_inherited_fds
    exec redis-server --port "$port" --bind 127.0.0.1 --dir /tmp --daemonize yes --save '' \
      --appendonly no >/dev/null)
  for _ in $(seq 1 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
  say "redis-server did not start"; return 1
}

ensure_docker() {
  if docker info >/dev/null 2>&1; then return 0; fi
  if [ -n "${DOCKER_HOST:-}" ]; then say "Docker at DOCKER_HOST=$DOCKER_HOST does not answer"; return 1; fi
  if ! command -v dockerd >/dev/null; then
    say "No Docker engine is running and dockerd is not installed: apt-get install docker.io"
    return 1
  fi
  if [ "$(id -u)" != 0 ]; then
    say "The Docker engine is not running: start it (sudo systemctl start docker), or run as root"
    return 1
  fi
  say "starting dockerd (log: ${KOYRA_DATA_DIR:-data}/dockerd.log)"
  mkdir -p "${KOYRA_DATA_DIR:-data}"
  (close_inherited_fds; setsid dockerd >"${KOYRA_DATA_DIR:-data}/dockerd.log" 2>&1 &)
  for _ in $(seq 1 120); do docker info >/dev/null 2>&1 && return 0; sleep 0.5; done
  say "dockerd did not start; see ${KOYRA_DATA_DIR:-data}/dockerd.log"; return 1
}

ensure_swarm() {
  local state; state=$(docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null)
  [ "$state" = active ] && return 0
  say "initialising a single-node swarm"
  docker swarm init --advertise-addr "${KOYRA_SWARM_ADVERTISE_ADDR:-127.0.0.1}" >/dev/null
}

# Images for the registry and Traefik: the configured ones where they are here or can be
# pulled, else ones built from this machine's packages (no Docker Hub needed).
pick_cluster_images() {
  local var default local_built=""
  for pair in KOYRA_REGISTRY_IMAGE=registry:2 KOYRA_TRAEFIK_IMAGE=traefik:v3.7; do
    var=${pair%%=*} default=${pair#*=}
    [ -n "${!var:-}" ] && continue
    if docker image inspect "$default" >/dev/null 2>&1 || timeout 60 docker pull -q "$default" >/dev/null 2>&1; then
      export "$var=$default"; continue
    fi
    say "$default cannot be pulled here; using one built from this machine's packages"
    if [ -z "$local_built" ]; then
      .venv/bin/python manage.py build_local_images >"$KOYRA_DATA_DIR/local-images.env" || return 1
      local_built=1
    fi
    export "$var=$(grep "^$var=" "$KOYRA_DATA_DIR/local-images.env" | cut -d= -f2)"
  done
}
