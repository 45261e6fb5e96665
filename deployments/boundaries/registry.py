"""The registry boundary: Docker Registry HTTP API v2 (tags, manifests) over plain HTTP to
KOYRA_REGISTRY, with Koyra's login (HTTP Basic). Garbage collection runs inside the registry's
container (engine.registry_gc)."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from django.conf import settings

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)


# Koyra's registry login, made by bootstrap_cluster (deployments.registry_auth): JSON
# {"username", "password"}, mode 0600, in KOYRA_DATA_DIR.
AUTH_FILE = "registry-auth.json"


class RegistryError(Exception):
    """The registry refused or could not be reached; the message says which and why."""


def auth_path() -> Path:
    return Path(settings.KOYRA_DATA_DIR) / AUTH_FILE


def credentials() -> dict[str, str] | None:
    """{"username", "password", "serveraddress"} for KOYRA_REGISTRY, or None before
    bootstrap_cluster made a login. For pushes and Swarm pulls; never for builds."""
    path = auth_path()
    try:
        data = json.loads(path.read_text())
        user, password = str(data["username"]), str(data["password"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        # Only the error's type: its text could quote the file.
        raise RegistryError(
            f"the registry login in {path} is unreadable ({type(exc).__name__}): remove it and "
            "run `manage.py bootstrap_cluster` to make a new one"
        ) from None
    return {"username": user, "password": password, "serveraddress": settings.KOYRA_REGISTRY}


def _headers() -> dict[str, str]:
    headers = {"Accept": MANIFEST_TYPES}
    creds = credentials()
    if creds:
        token = base64.b64encode(f"{creds['username']}:{creds['password']}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    return headers


def _refused(status: int) -> str:
    if status == 401:
        return (
            "HTTP 401: the registry refuses Koyra's login (run `manage.py bootstrap_cluster`, "
            "which makes it and gives it to the registry)"
        )
    return f"HTTP {status}"


def _call(method: str, path: str, timeout: float = 30) -> tuple[int, bytes]:
    url = f"http://{settings.KOYRA_REGISTRY}{path}"
    req = urllib.request.Request(url, method=method, headers=_headers())
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (fixed scheme)
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        raise RegistryError(f"registry {settings.KOYRA_REGISTRY} unreachable: {exc}") from exc


def wait_ready(timeout: float, *, on_wait: Callable[[str], None] | None = None) -> None:
    """Return once the registry answers `GET /v2/` (any HTTP answer below 500; with Koyra's
    login, once it accepts that login: a registry still running with an older one is not
    ready), probing every half second for up to `timeout` seconds.

    After an engine restart or a fresh bootstrap_cluster the registry's task takes a while to
    be back, and until then its published port refuses (or drops) connections. `on_wait`
    hears one line when the first probe fails. RegistryError when it never answers, with the
    last reason.
    """
    deadline = time.monotonic() + timeout
    problem = _probe(deadline)
    if problem is None:
        return
    if on_wait is not None:
        on_wait(
            f"waiting for the registry at {settings.KOYRA_REGISTRY} to answer "
            f"(up to {timeout:g} s): {problem}"
        )
    while time.monotonic() < deadline:
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        problem = _probe(deadline)
        if problem is None:
            return
    raise RegistryError(
        f"the registry at {settings.KOYRA_REGISTRY} did not answer within {timeout:g} s ({problem})"
    )


def _probe(deadline: float) -> str | None:
    """None when the registry answers; else why not, in a few words."""
    url = f"http://{settings.KOYRA_REGISTRY}/v2/"
    wait = min(5.0, max(0.5, deadline - time.monotonic()))
    try:
        req = urllib.request.Request(url, headers=_headers())
        with urllib.request.urlopen(req, timeout=wait):  # noqa: S310 (fixed scheme)
            return None
    except urllib.error.HTTPError as exc:
        if exc.code == 401 and credentials():
            return _refused(401)
        return None if exc.code < 500 else f"HTTP {exc.code}"
    except urllib.error.URLError as exc:
        return str(exc.reason)
    except OSError as exc:  # reset, timed out
        return str(exc) or type(exc).__name__


def tags(repo: str) -> list[str]:
    status, body = _call("GET", f"/v2/{repo}/tags/list")
    if status == 404:
        return []
    if status != 200:
        raise RegistryError(f"listing tags of {repo}: {_refused(status)}")
    return sorted(json.loads(body).get("tags") or [])


def manifest_digest(repo: str, tag: str) -> str | None:
    """The digest of the manifest a tag points to, or None when there is no such tag."""
    url = f"http://{settings.KOYRA_REGISTRY}/v2/{repo}/manifests/{tag}"
    req = urllib.request.Request(url, method="HEAD", headers=_headers())
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 (fixed scheme)
            digest: str | None = resp.headers.get("Docker-Content-Digest")
            return digest
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise RegistryError(f"reading {repo}:{tag}: {_refused(exc.code)}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise RegistryError(f"registry {settings.KOYRA_REGISTRY} unreachable: {exc}") from exc


def manifest_exists(repo: str, digest: str) -> bool:
    """Whether the registry still holds the manifest `repo@digest` (a restored install asks
    which of its recorded images the registry kept)."""
    return manifest_digest(repo, digest) is not None


def delete_manifest(repo: str, digest: str) -> bool:
    """Delete a manifest (and so every tag on it). False when it was already gone."""
    status, body = _call("DELETE", f"/v2/{repo}/manifests/{digest}")
    if status in (200, 202):
        return True
    if status == 404:
        return False
    if status == 405:
        raise RegistryError(
            "the registry refuses deletes: set REGISTRY_STORAGE_DELETE_ENABLED=true "
            "(bootstrap_cluster does)"
        )
    raise RegistryError(f"deleting {repo}@{digest}: {_refused(status)} {body[:200]!r}")
