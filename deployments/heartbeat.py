"""A running deploy says it is alive: while its heartbeat is fresh, the worker's sweep neither
fails it as interrupted nor queues it a second time.

The sweep cannot ask RQ alone: a deploy run outside the worker's job (a second worker, a shell,
a test) has no started job, and a deploy whose process died must still end `failed`. A thread
stamps `Deploy.heartbeat` every `BEAT_EVERY` seconds while the pipeline runs; a deploy whose
stamp is older than `STALE_AFTER` (or that has none) is one nobody runs.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from types import TracebackType

from django.db import connection
from django.utils import timezone

from deployments.models import Deploy

log = logging.getLogger(__name__)
BEAT_EVERY = 5.0  # seconds
STALE_AFTER = timedelta(seconds=30)  # several missed beats: a slow database is not a dead run


def beat(deploy_id: int) -> None:
    Deploy.objects.filter(pk=deploy_id, status__in=Deploy.PENDING).update(heartbeat=timezone.now())


def stale_before() -> datetime:
    """Heartbeats older than this belong to deploys nobody runs."""
    return timezone.now() - STALE_AFTER


class Heartbeat:
    """`with Heartbeat(deploy_id): ...` beats once now, then every BEAT_EVERY seconds."""

    def __init__(self, deploy_id: int, every: float = BEAT_EVERY) -> None:
        self.deploy_id = deploy_id
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"heartbeat-{deploy_id}", daemon=True
        )

    def __enter__(self) -> Heartbeat:
        beat(self.deploy_id)  # before the first status change: the sweep never sees it unstamped
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        # Bounded: a beat stuck on a database lock must not hold up the end of the deploy.
        self._thread.join(timeout=2)

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.every):
                try:
                    beat(self.deploy_id)
                except Exception:
                    log.warning("deploy %s: heartbeat not recorded", self.deploy_id, exc_info=True)
        finally:
            connection.close()  # this thread's own connection
