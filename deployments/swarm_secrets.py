"""The app's secrets as Swarm secrets: one immutable, versioned Swarm secret per value, made
when a release needs it and removed once no service spec mounts it."""

from __future__ import annotations

import hashlib
import hmac

from django.conf import settings

from apps.models import App
from deployments.boundaries import engine
from deployments.swarm_spec import SecretRef


def swarm_secret_ensure(*, app: App, key: str, value: str) -> SecretRef:
    """A versioned Swarm secret per value: a change makes a new one, never an edit. The
    version is an HMAC, so the name says nothing about the value."""
    mac = hmac.new(
        settings.SECRET_KEY.encode(), f"{app.name}\0{key}\0{value}".encode(), hashlib.sha256
    ).hexdigest()[:16]
    name = f"koyra-{app.name}-{mac}"
    sid = engine.secret_ensure(name, value, {"koyra.app": app.name, "koyra.key": key})
    return SecretRef(id=sid, name=name, file=f"koyra-{key}", key=key)


def swarm_secrets_prune(*, app: App) -> None:
    """Remove this app's Swarm secret versions the live service spec no longer mounts. (Swarm
    refuses only while the current spec references one; a draining task keeps its tmpfs
    copy. Swarm's own `service rollback` would miss the old version: Koyra's rollback makes
    the versions it needs again.)"""
    attrs = engine.service_get(app.service_name) or {}
    used = {
        s["SecretName"]
        for s in attrs.get("Spec", {})
        .get("TaskTemplate", {})
        .get("ContainerSpec", {})
        .get("Secrets", [])
        or []
    }
    for s in engine.secrets_list(f"koyra.app={app.name}"):
        if s["name"] not in used:
            engine.secret_remove(s["id"])
