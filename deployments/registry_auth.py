"""Koyra's login to its registry (SPEC §5): made once by bootstrap_cluster, kept in a 0600 file
in KOYRA_DATA_DIR (registry.auth_path()), given to the registry as a bcrypt htpasswd in a
versioned Swarm secret. Pushes and Swarm pulls use it; builds and apps never get it.

A file rather than the database: it is the cluster's, not an app's; the registry boundary
reads it for every API call and may import no model; and bootstrap_cluster needs it before
(and without) migrations. The data directory already holds what the web and worker share."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets

import bcrypt

from deployments.boundaries import engine, registry

USERNAME = "koyra"
SECRET_PREFIX = "koyra-registry-htpasswd-"
SECRET_LABEL = "koyra.role=registry-htpasswd"
# Where the registry's task finds the htpasswd (a Swarm secret on tmpfs).
HTPASSWD_FILE = "koyra-registry-htpasswd"
HTPASSWD_PATH = f"/run/secrets/{HTPASSWD_FILE}"
REALM = "koyra-registry"


def ensure() -> dict[str, str]:
    """The login, made now when there is none yet (then every earlier one is void: the
    registry gets the new htpasswd on this bootstrap)."""
    found = registry.credentials()
    if found:
        return found
    path = registry.auth_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps({"username": USERNAME, "password": secrets.token_urlsafe(32)})
    # O_EXCL: two bootstraps at once must not each believe their own password.
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(data)
    made = registry.credentials()
    if not made:
        raise registry.RegistryError(f"could not write the registry login to {path}")
    return made


def htpasswd(creds: dict[str, str]) -> str:
    """One htpasswd line, bcrypt (the only scheme the registry's htpasswd auth takes)."""
    hashed = bcrypt.hashpw(creds["password"].encode(), bcrypt.gensalt(rounds=10)).decode()
    return f"{creds['username']}:{hashed}\n"


def secret_name(creds: dict[str, str]) -> str:
    """Versioned by the login: the same login keeps the same secret (so bootstrap_cluster
    stays idempotent although bcrypt salts every hash anew). A hash of a 256-bit random
    password says nothing about it."""
    digest = hashlib.sha256(f"{creds['username']}\0{creds['password']}".encode()).hexdigest()
    return SECRET_PREFIX + digest[:16]


def htpasswd_secret(creds: dict[str, str]) -> dict[str, str]:
    """The Swarm secret holding the htpasswd, made when missing; a service mount for it."""
    name = secret_name(creds)
    key, _, value = SECRET_LABEL.partition("=")
    sid = engine.secret_ensure(name, htpasswd(creds), {key: value})
    return {"id": sid, "name": name, "file": HTPASSWD_FILE}


def prune_secrets(keep: str) -> None:
    """Remove older htpasswd secrets (Swarm refuses while a spec still mounts one)."""
    for s in engine.secrets_list(SECRET_LABEL):
        if s["name"] != keep:
            engine.secret_remove(s["id"])
