#!/usr/bin/env bash
# The machine's packages for Koyra: the one list that `make run` (scripts/run.sh) and CI
# (.ci/run) install from, on Debian or Ubuntu.
#
#   provision.sh                      install what `make run` needs and is missing (as root)
#   provision.sh --test               the same, and what `make test` needs too
#   provision.sh --install            the same, and what `make install` needs too
#   provision.sh --missing [--test|--install]   print the missing packages, install nothing
#
# A package counts as present when dpkg has it installed, or when what Koyra needs from it is
# here from elsewhere (Docker from docker-ce, say: installing docker.io over it would conflict).
set -euo pipefail

# What `make run` needs: the engine, the registry and busybox for the images built from this
# machine's packages where registry:2 cannot be pulled, Redis, git, and a Python with venv.
RUN_PACKAGES=(docker.io docker-registry busybox-static redis-server git iproute2 make
  python3-venv ca-certificates)
# What `make test` needs besides: Chromium for the browser tests, PostgreSQL for the second run
# of the unit suite, an ssh server for the private-repository tests (with openssl for their
# test CA and procps for `ps`, which samples process arguments; and `sysctl`), util-linux's
# nsenter and unshare for the second Docker engine of the multi-node tests (with iproute2).
TEST_PACKAGES=(chromium postgresql openssh-server openssl procps util-linux)
# What `make install` needs besides, where Docker Hub does not answer: debootstrap, for the
# Debian base of Koyra's image (its test runs in `make test` too).
INSTALL_PACKAGES=(debootstrap)

present() {
  [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ] && return 0
  case "$1" in
    docker.io) command -v docker >/dev/null && command -v dockerd >/dev/null ;;
    redis-server) command -v redis-server >/dev/null && command -v redis-cli >/dev/null ;;
    git | make) command -v "$1" >/dev/null ;;
    python3-venv) "${PY:-python3}" -c 'import ensurepip, venv' >/dev/null 2>&1 ;;
    postgresql) compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null ;;
    *) return 1 ;;
  esac
}

only_missing="" wanted=("${RUN_PACKAGES[@]}")
for arg in "$@"; do
  case "$arg" in
    --missing) only_missing=1 ;;
    --test) wanted+=("${TEST_PACKAGES[@]}" "${INSTALL_PACKAGES[@]}") ;;
    --install) wanted+=("${INSTALL_PACKAGES[@]}") ;;
    *) echo "usage: $0 [--missing] [--test] [--install]" >&2; exit 2 ;;
  esac
done

need=()
for pkg in "${wanted[@]}"; do
  present "$pkg" || need+=("$pkg")
done
if [ -n "$only_missing" ]; then
  [ "${#need[@]}" -eq 0 ] || printf '%s\n' "${need[@]}"
  exit 0
fi
if [ "${#need[@]}" -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "koyra: missing packages: ${need[*]}; install them as root: sudo bash $(realpath "$0") $*" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null; then
  echo "koyra: missing packages: ${need[*]}; this script knows apt-get only (Debian, Ubuntu)" >&2
  exit 1
fi
echo "koyra: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${need[@]}"
