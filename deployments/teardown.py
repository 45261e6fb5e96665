"""Deleting an app: what it runs goes first (its Swarm service and release job, and so its
Traefik routes, which are the service's labels; its Swarm secrets; its images in the registry
and on this engine), then its row (deploys, secrets and deliveries cascade). When a part
cannot be removed the row stays, so its name and domains stay taken; running it again picks
up where it stopped."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction

from apps.models import App
from deployments import selectors
from deployments.boundaries import engine, registry
from deployments.models import Deploy
from deployments.release_spec import ReleaseSpec
from deployments.services import deploy_cancel

log = logging.getLogger(__name__)


# docker-py's errors (and requests', when the engine goes away) are OSErrors.
_OUTSIDE_ERRORS = (engine.EngineError, registry.RegistryError, OSError)
# Swarm refuses to remove a secret while a task of a removed service still holds it.
SECRET_WAIT_SECONDS = 30


class TeardownError(Exception):
    """The app could not be torn down (it stays, unchanged or partly cleared); the message
    says why and what to do."""


@dataclass
class TeardownPlan:
    app: str
    services: list[str] = field(default_factory=list)
    secrets: list[dict] = field(default_factory=list)  # {"id", "name", "key"}
    domains: list[str] = field(default_factory=list)
    manifests: dict[str, str] = field(default_factory=dict)  # digest -> tags, for the message
    local_refs: list[str] = field(default_factory=list)
    pending: list[Deploy] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"cancel deploy #{d.pk} ({d.status})" for d in self.pending]
        out += [f"remove service {s}" for s in self.services]
        out += [f"stop routing {d}" for d in self.domains]
        out += [f"remove Swarm secret {s['name']} ({s['key']})" for s in self.secrets]
        out += [f"delete registry image {self.app}@{d} ({t})" for d, t in self.manifests.items()]
        out += [f"remove local image {r}" for r in self.local_refs]
        out.append(f"delete the app {self.app} (its deploys, logs, secrets and deliveries)")
        return out


def app_teardown_plan(*, app: App) -> TeardownPlan:
    """What deleting the app removes, read from the engine, the registry and the database."""
    plan = TeardownPlan(app=app.name)
    plan.pending = list(app.deploys.filter(status__in=Deploy.PENDING).order_by("created"))
    try:
        for name in (app.service_name, f"{app.name}_release"):
            if engine.service_get(name) is not None:
                plan.services.append(name)
        plan.secrets = [
            {"id": s["id"], "name": s["name"], "key": s["labels"].get("koyra.key", "?")}
            for s in engine.secrets_list(f"koyra.app={app.name}")
        ]
        for tag in registry.tags(app.name):
            digest = registry.manifest_digest(app.name, tag)
            if digest:
                plan.manifests[digest] = ", ".join(filter(None, [plan.manifests.get(digest), tag]))
    except _OUTSIDE_ERRORS as exc:
        raise TeardownError(_unreachable(app, exc)) from exc
    for image in app.images.filter(deleted__isnull=True):
        plan.manifests.setdefault(image.digest, image.ref.rsplit(":", 1)[-1])
    refs = {i.ref for i in app.images.all()}
    refs.update(f"{settings.KOYRA_REGISTRY}/{app.name}:{t}" for t in _tags(plan))
    plan.local_refs = sorted(refs)
    live = selectors.live_deploy(app)
    domains = list(app.domains) if isinstance(app.domains, list) else []
    if live is not None and live.spec:
        domains += ReleaseSpec.from_json(live.spec).domains
    plan.domains = sorted({d for d in domains if isinstance(d, str)}) if plan.services else []
    return plan


def app_delete(
    *,
    app: App,
    dry_run: bool = False,
    wait: float = 60,
    say: Callable[[str], None] = log.info,
) -> TeardownPlan:
    """Tear the app down, then delete it; with dry_run, only say what that would do.

    A queued deploy is cancelled; a running one is asked to stop and waited for (up to
    `wait` seconds), else TeardownError and nothing is removed. TeardownError too when the
    engine or registry refuses: the app row stays, so nobody can take its name or domains
    while anything of it still runs."""
    plan = app_teardown_plan(app=app)
    if dry_run:
        for line in plan.lines():
            say(f"would {line}")
        return plan
    if plan.pending:
        _stop_deploys(app, wait=wait, say=say)
    with transaction.atomic():
        # Deploys for the app take turns on its row (deploy_create): none can start now.
        app = App.objects.select_for_update().get(pk=app.pk)
        running = app.deploys.filter(status__in=Deploy.PENDING).first()
        if running is not None:
            raise TeardownError(_busy(app, running))
        plan = app_teardown_plan(app=app)
        try:
            _remove(plan, say=say)
        except _OUTSIDE_ERRORS as exc:
            raise TeardownError(_unreachable(app, exc)) from exc
        app.delete()
    say(f"deleted the app {plan.app}")
    return plan


def _stop_deploys(app: App, *, wait: float, say: Callable[[str], None]) -> None:
    deploy_cancel(app=app)
    deadline = time.monotonic() + wait
    while True:
        running = app.deploys.filter(status__in=Deploy.PENDING).first()
        if running is None:
            return
        if time.monotonic() >= deadline:
            raise TeardownError(_busy(app, running))
        say(f"waiting for deploy #{running.pk} ({running.status}) to stop")
        time.sleep(1)


def _remove(plan: TeardownPlan, *, say: Callable[[str], None]) -> None:
    for name in plan.services:
        say(f"remove service {name}")
        engine.service_remove(name)
    deadline = time.monotonic() + SECRET_WAIT_SECONDS
    left = list(plan.secrets)
    while left:
        left = [s for s in left if not engine.secret_remove(s["id"])]
        if left and time.monotonic() >= deadline:
            raise TeardownError(
                f"Swarm still holds the secret {left[0]['name']} of {plan.app} (a task is "
                f"stopping); run delete_app {plan.app} --yes again in a minute."
            )
        if left:
            time.sleep(0.5)
    for s in plan.secrets:
        say(f"removed Swarm secret {s['name']} ({s['key']})")
    for digest, tags in plan.manifests.items():
        say(f"delete registry image {plan.app}@{digest} ({tags})")
        registry.delete_manifest(plan.app, digest)
    for ref in plan.local_refs:
        if engine.image_remove(ref):
            say(f"removed local image {ref}")


def _tags(plan: TeardownPlan) -> list[str]:
    return [t.strip() for tags in plan.manifests.values() for t in tags.split(",") if t.strip()]


def _busy(app: App, deploy: Deploy) -> str:
    return (
        f"Deploy #{deploy.pk} of {app.name} is still {deploy.status}; it was asked to stop. "
        f"Delete the app again once it has finished (cancel {app.name}, list_deploys {app.name})."
    )


def _unreachable(app: App, exc: Exception) -> str:
    return (
        f"Cannot tear down {app.name}: {exc}. The app stays in Koyra (its name and domains "
        "stay taken); once the Docker engine and the registry answer (bootstrap_cluster), "
        "delete it again."
    )
