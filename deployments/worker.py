"""The RQ worker Koyra runs (`manage.py worker`, django_rq's `rqworker deploys` with Koyra's
checks only, via RQ["WORKER_CLASS"])."""

from __future__ import annotations

import logging
import os
import signal
import time

from django.db import connections
from rq import Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job

log = logging.getLogger(__name__)
SWEEP_EVERY = 10  # seconds


class KoyraWorker(Worker):
    """Listens in short slices so that, while idle, it can sweep the database: deploys the
    queue lost (Redis restarted or was down) are enqueued again, and deploys left active by a
    worker that died are marked failed. The database is the truth; Redis is transport."""

    def fork_work_horse(self, job, queue):
        # A database connection must never cross fork(): with SQLite the child would use
        # locks only the parent holds (SQLite's docs forbid it); with PostgreSQL two
        # processes would share one protocol stream. Each side opens its own afterwards.
        connections.close_all()
        super().fork_work_horse(job, queue)

    def dequeue_job_and_maintain_ttl(self, timeout, max_idle_time=None):
        while True:
            self._sweep()
            started = time.monotonic()
            result = super().dequeue_job_and_maintain_ttl(SWEEP_EVERY, SWEEP_EVERY)
            if result is not None:
                return result
            if max_idle_time is not None:
                max_idle_time -= time.monotonic() - started
                if max_idle_time <= 0:
                    return None

    def _sweep(self) -> None:
        from deployments import selectors, services

        try:
            done = services.deploy_sweep(
                job_exists=self._job_exists, running_elsewhere=self._running_elsewhere
            )
            if any(done.values()):
                log.info("sweep: %s", done)
            if selectors.prune_due():
                self._prune()
        except Exception:
            log.exception("sweep failed; trying again in %ss", SWEEP_EVERY)
        finally:
            connections.close_all()  # nothing open while idle, nothing to inherit on fork

    def _prune(self) -> None:
        """The scheduled prune, in a child process, waited for (nothing else runs meanwhile),
        as a deploy runs in RQ's work horse: it needs the docker SDK and the registry, which
        this process, asleep between two jobs, would otherwise keep in memory for the day
        until the next prune (BENCHMARKS.md, footprint)."""
        from deployments.models import PruneRun

        connections.close_all()  # as before a work horse: no database connection crosses fork
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                # Like RQ's work horse: stopping the worker is the parent's to handle.
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                self._prune_here()
                code = 0
            finally:
                os._exit(code)  # no atexit, no parent's cleanup in the child
        try:
            _, status = os.waitpid(pid, 0)
        except BaseException:  # the worker is being stopped (a second Ctrl-C): the prune too
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise
        if status != 0:
            reason = f"its process ended with status {os.waitstatus_to_exitcode(status)}"
            PruneRun.objects.create(summary=f"prune failed: {reason}")
            log.error("scheduled prune failed: %s", reason)

    def _prune_here(self) -> None:
        from deployments import retention
        from deployments.models import PruneRun

        try:
            retention.prune_all(say=log.info)
        except Exception as exc:
            # Recorded, so the next try is a period later rather than at every sweep.
            PruneRun.objects.create(summary=f"prune failed: {exc}")
            log.exception("scheduled prune failed")
        finally:
            connections.close_all()

    def _running_elsewhere(self, deploy_id: int) -> bool:
        """Whether another worker, alive (its heartbeat key still in Redis), runs the job."""
        try:
            job = Job.fetch(f"deploy-{deploy_id}", connection=self.connection)
        except NoSuchJobError:
            return False
        owner = job.worker_name
        if job.get_status() != "started" or not owner or owner == self.name:
            return False
        return bool(self.connection.exists(self.redis_worker_namespace_prefix + owner))

    def _job_exists(self, deploy_id: int) -> bool:
        """Whether Redis still holds a runnable job for the deploy.

        A job says `queued` from the moment it is enqueued until a worker starts it, also
        after a worker took it off the queue (RQ moves it to the queue's intermediate list)
        and then hung or died: RQ would fail it only after minutes of maintenance passes. So
        a queued job counts only while it is on the queue itself; one a worker took and
        dropped is forgotten there (RQ's clean-up must not fail the job enqueued again under
        the same id), and the sweep enqueues the deploy again."""
        job_id = f"deploy-{deploy_id}"
        try:
            job = Job.fetch(job_id, connection=self.connection)
        except NoSuchJobError:
            return False
        status = job.get_status()
        if status != "queued":
            return status in ("started", "deferred", "scheduled")
        for queue in self.queues:
            if self.connection.lpos(queue.key, job_id) is not None:
                return True
            queue.intermediate_queue.remove(job_id)
        return False
