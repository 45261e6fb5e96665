"""The registry boundary: Docker Registry HTTP API v2 (tags, manifests) over plain HTTP to
KOYRA_REGISTRY. Garbage collection runs inside the registry's container (engine.registry_gc)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from django.conf import settings

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)


class RegistryError(Exception):
    """The registry refused or could not be reached; the message says which and why."""


def _call(method: str, path: str, timeout: float = 30) -> tuple[int, bytes]:
    url = f"http://{settings.KOYRA_REGISTRY}{path}"
    req = urllib.request.Request(url, method=method, headers={"Accept": MANIFEST_TYPES})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (fixed scheme)
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        raise RegistryError(f"registry {settings.KOYRA_REGISTRY} unreachable: {exc}") from exc


def wait_ready(timeout: float, *, on_wait: Callable[[str], None] | None = None) -> None:
    """Return once the registry answers `GET /v2/` (any HTTP answer below 500: 200, or 401
    from one with authentication), probing every half second for up to `timeout` seconds.

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
        with urllib.request.urlopen(url, timeout=wait):
            return None
    except urllib.error.HTTPError as exc:
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
        raise RegistryError(f"listing tags of {repo}: HTTP {status}")
    return sorted(json.loads(body).get("tags") or [])


def manifest_digest(repo: str, tag: str) -> str | None:
    """The digest of the manifest a tag points to, or None when there is no such tag."""
    url = f"http://{settings.KOYRA_REGISTRY}/v2/{repo}/manifests/{tag}"
    req = urllib.request.Request(url, method="HEAD", headers={"Accept": MANIFEST_TYPES})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 (fixed scheme)
            digest: str | None = resp.headers.get("Docker-Content-Digest")
            return digest
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise RegistryError(f"reading {repo}:{tag}: HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise RegistryError(f"registry {settings.KOYRA_REGISTRY} unreachable: {exc}") from exc


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
    raise RegistryError(f"deleting {repo}@{digest}: HTTP {status} {body[:200]!r}")
