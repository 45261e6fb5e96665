"""What the Swarm runs for each app right now: replicas healthy/total of the apps' services, for
every app in one engine call (the apps list, the app page, `list_apps`)."""

from __future__ import annotations

import logging

from deployments.boundaries import engine

log = logging.getLogger(__name__)

APP_LABEL = "koyra.app"


def replica_counts() -> dict[str, tuple[int, int]] | None:
    """Service name (`<app>_web`) -> (healthy tasks, desired tasks) of every Koyra service, or
    None when the engine cannot be asked (callers show `?`, never fail). An app without a
    service is absent: it runs 0 of 0."""
    try:
        counts = engine.services_replicas(APP_LABEL)
    except engine.EngineError as exc:
        log.warning("replica counts unavailable: %s", exc)
        return None
    # During a start-first update the old and the new task run side by side for a moment:
    # healthy never reads more than what the service asks for.
    return {name: (min(running, desired), desired) for name, (running, desired) in counts.items()}
