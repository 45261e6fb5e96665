"""The rollout wait: after the pipeline applied a release to `<app>_web`, watch the Swarm until
every task runs it and is healthy, then confirm Traefik routes it; otherwise put back what was
live. `live` means exactly that, so nothing here trusts the update call itself.

Who catches what (timeline of an update, start-first, one task at a time):
- a new task that never becomes healthy (or exits before it does) fails the update whatever
  Swarm's monitor window: swarmkit counts a failure of a task it is still waiting for;
- a task that crashes within the stability window after it became healthy
  (swarm_spec.monitor_seconds, Swarm's `monitor`) makes Swarm roll back by itself;
- a task of the new version that failed at any other moment before the update completed
  (e.g. the first replica crashes while a later one is still starting) is caught here, from
  the tasks Koyra watches itself, and the live release is applied again.
The deploy turns `live` only once Swarm says the update completed, i.e. after the stability
window of the last task, so Swarm cannot roll back a release Koyra already called live.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings

from apps.models import App
from deployments import cluster, health, swarm_spec
from deployments.boundaries import engine, ingress
from deployments.models import Deploy
from deployments.release_spec import ReleaseSpec

# How often the Swarm is asked (two API calls): the deploy turns live at most this long after
# the update completed.
POLL_SECONDS = 0.25
# How long a failed rollout waits for the previous release's tasks to run again.
UNDO_WAIT_SECONDS = 60


class RolloutFailed(Exception):
    """The release did not go live; str() is the reason shown to the user. What was live before
    runs again (or, for a first deploy, nothing of it is left)."""


@dataclass
class Rollout:
    """One rollout the pipeline started with engine.service_apply."""

    app: App
    deploy_id: int
    spec: ReleaseSpec
    previous: Deploy | None  # the live deploy it replaces, if any
    created: bool  # the service did not exist before this deploy
    log: Callable[[str], None]
    should_stop: Callable[[], bool]
    secret_refs: Callable[[list[str]], list[swarm_spec.SecretRef]]

    def wait(self) -> None:
        """Return once every task runs this release, healthy, and the update completed; raise
        RolloutFailed (after putting the live release back) otherwise."""
        self._converge()
        self._wait_routed(self.spec)

    def _converge(self) -> None:
        marker = str(self.deploy_id)
        name = self.app.service_name
        try:
            result = engine.service_wait(
                name,
                marker_label="koyra.deploy",
                marker=marker,
                replicas=self.spec.replicas,
                timeout=settings.KOYRA_ROLLOUT_TIMEOUT,
                should_stop=self.should_stop,
                on_line=self.log,
                poll=POLL_SECONDS,
            )
        except engine.Aborted:
            self._undo()  # cancelled mid-rollout: back to what was live
            raise
        for line in engine.task_logs(name, marker_label="koyra.deploy", marker=marker):
            self.log(line)
        message = result.message
        if result.ok and result.task_errors and not self.created:
            # Swarm let it through (the failure fell outside its monitor window and the task
            # was restarted), but a release whose task died during its own rollout is not one
            # Koyra calls live.
            message = "a task of the new version failed during the rollout"
        elif result.ok:
            return
        # Before the undo removes its containers: what the healthcheck's last probe said.
        probes = (
            engine.task_probes(name, marker_label="koyra.deploy", marker=marker)
            if self.spec.healthcheck
            else []
        )
        self._undo()
        errors = result.task_errors
        detail = f" ({'; '.join(errors[-3:])})" if errors else ""
        # A task that exited by itself (not killed by the engine for being unhealthy) crashed:
        # Swarm's words say so better than a probe that failed while it went down, even when a
        # later task of the slot ended up unhealthy on a loaded machine.
        crashed = any("non-zero exit" in e and "unhealthy container" not in e for e in errors)
        why = (
            "" if crashed else health.unhealthy_reason(self.spec, probes)
        ) or f"{message}{detail}"
        keep = "the previous version keeps serving" if self.previous else "no version was live"
        raise RolloutFailed(f"rollout failed: {why}; {keep}")

    def _undo(self) -> None:
        """After a failed rollout, make sure nothing of this deploy is left running."""
        name = self.app.service_name
        if self.created or self.previous is None:
            engine.service_remove(name)
            return
        spec = ReleaseSpec.from_json(self.previous.spec)
        attrs = engine.service_get(name) or {}
        if attrs.get("UpdateStatus", {}).get("State") != "rollback_completed":
            # Swarm did not roll back by itself (timeout, or a failure Koyra caught): put the
            # live spec back.
            svc = swarm_spec.service_spec(
                app=self.app,
                deploy_id=self.previous.pk,
                spec=spec,
                secret_refs=self.secret_refs(spec.secrets),
            )
            engine.service_apply(svc, force=True)
        self._wait_previous_back(spec.replicas)
        # Swarm's rollback may have started the previous release in new containers (new
        # addresses): "the previous version keeps serving" is said once Traefik routes it again.
        self._wait_routed(spec)

    def _wait_previous_back(self, replicas: int) -> None:
        """Swarm says `rollback_completed` while the slot of a task that crashed may still wait
        out its restart delay (a task of the previous release `ready`, not yet running): the
        deploy ends `failed` only once the previous release runs again, so "the previous
        version keeps serving" is true when it is said, and no task of this deploy is still
        wanted (one Swarm could not place stays pending until the update replaces it).
        Bounded; it never hides the failure."""
        marker = str(self.previous.pk) if self.previous else ""
        deadline = time.monotonic() + UNDO_WAIT_SECONDS
        while time.monotonic() < deadline:
            wanted = [
                t
                for t in engine.service_tasks(self.app.service_name)
                if t.get("DesiredState") == "running"
            ]
            up = [
                t
                for t in wanted
                if _deploy_of(t) == marker and t.get("Status", {}).get("State") == "running"
            ]
            ours = [t for t in wanted if _deploy_of(t) == str(self.deploy_id)]
            if len(up) >= replicas and not ours:
                return
            time.sleep(POLL_SECONDS)
        self.log(f"the previous release did not run {replicas} task(s) within {UNDO_WAIT_SECONDS}s")

    def _wait_routed(self, spec: ReleaseSpec) -> None:
        """A first deploy (or a release put back) is served only once Traefik's next poll of
        the Swarm has seen it: wait for that (briefly, never failing the deploy) so `live`, or
        "keeps serving", means reachable."""
        if not spec.domains or engine.service_get(cluster.TRAEFIK_SERVICE) is None:
            return
        host = spec.domains[0]
        if ingress.wait_routed(host, timeout=3 * settings.KOYRA_TRAEFIK_REFRESH_SECONDS + 2):
            self.log(f"traefik: routing {', '.join(spec.domains)}")
        else:
            self.log(
                f"traefik: {host} not confirmed on this node's port {settings.KOYRA_HTTP_PORT} yet"
            )


def _deploy_of(task: dict) -> str | None:
    return task["Spec"]["ContainerSpec"].get("Labels", {}).get("koyra.deploy")
