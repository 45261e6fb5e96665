"""The worker's view of Redis for the sweep, against a real Redis (scripts/test.sh starts
one): a job a dead worker took off the queue is not taken for one still waiting."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue

from deployments import jobs
from deployments.models import PruneRun
from deployments.worker import KoyraWorker

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def queue():
    conn = Redis.from_url(settings.REDIS_URL)
    try:
        conn.ping()
    except RedisError as exc:  # the suite's script starts Redis: not having it is a failure
        pytest.fail(f"Redis at {settings.REDIS_URL} does not answer: {exc}")
    q = Queue(f"koyra-test-{secrets.token_hex(4)}", connection=conn)
    yield q
    q.delete(delete_jobs=True)
    conn.delete(q.intermediate_queue_key)


def _enqueue(q: Queue, deploy_id: int):
    return q.enqueue(jobs.run_deploy, deploy_id, job_id=f"deploy-{deploy_id}")


def test_a_job_waiting_on_the_queue_exists(queue):
    _enqueue(queue, 7)
    assert KoyraWorker([queue], connection=queue.connection)._job_exists(7)


def test_no_job_is_no_job(queue):
    assert not KoyraWorker([queue], connection=queue.connection)._job_exists(8)


def test_a_job_a_dead_worker_took_off_the_queue_is_lost_and_forgotten(queue):
    job = _enqueue(queue, 9)
    # What a worker's dequeue does (RQ 2+): the id moves to the intermediate list; the job
    # still says `queued`. Then the worker dies.
    queue.connection.lmove(queue.key, queue.intermediate_queue_key)
    assert job.get_status(refresh=True) == "queued"
    worker = KoyraWorker([queue], connection=queue.connection)
    assert not worker._job_exists(9)
    # Forgotten there, so RQ's clean-up will not fail the job the sweep enqueues again.
    assert queue.intermediate_queue.get_job_ids() == []
    _enqueue(queue, 9)
    assert worker._job_exists(9)


def test_a_started_job_exists(queue):
    job = _enqueue(queue, 10)
    queue.connection.lmove(queue.key, queue.intermediate_queue_key)
    job.set_status("started")
    assert KoyraWorker([queue], connection=queue.connection)._job_exists(10)


# The scheduled prune runs in a child process (deployments/worker.py, `_prune`).


def _prune_run_by(worker: KoyraWorker, monkeypatch, prune_all) -> list[PruneRun]:
    monkeypatch.setattr("deployments.retention.prune_all", prune_all)
    worker._prune()
    return list(PruneRun.objects.all())


@pytest.mark.django_db(transaction=True)
def test_the_scheduled_prune_runs_in_a_child_process_the_worker_waits_for(
    queue, monkeypatch, tmp_path
):
    def prune_all(*, say):
        (tmp_path / "pid").write_text(str(os.getpid()))
        return PruneRun.objects.create(summary="pruned")

    worker = KoyraWorker([queue], connection=queue.connection)
    [run] = _prune_run_by(worker, monkeypatch, prune_all)
    assert run.summary == "pruned"  # written by the child, before _prune returned
    assert int((tmp_path / "pid").read_text()) != os.getpid()


@pytest.mark.django_db(transaction=True)
def test_a_failed_prune_is_recorded_so_it_is_not_retried_at_every_sweep(queue, monkeypatch):
    def prune_all(*, say):
        raise RuntimeError("registry down")

    worker = KoyraWorker([queue], connection=queue.connection)
    [run] = _prune_run_by(worker, monkeypatch, prune_all)
    assert run.summary == "prune failed: registry down"


@pytest.mark.django_db(transaction=True)
def test_a_prune_process_that_dies_is_recorded_too(queue, monkeypatch):
    def prune_all(*, say):
        os.kill(os.getpid(), signal.SIGKILL)

    worker = KoyraWorker([queue], connection=queue.connection)
    [run] = _prune_run_by(worker, monkeypatch, prune_all)
    assert run.summary == "prune failed: its process ended with status -9"


# What the worker's own process holds at rest: after its start and a sweep with a prune due,
# neither the docker SDK nor cryptography (they load in the work horse and the prune's child).
AT_REST = """
import json, sys
import django
django.setup()
from django.core.management.base import BaseCommand
from redis import Redis
from django.conf import settings
from koyra import checks
from deployments.worker import KoyraWorker
BaseCommand().check(tags=[checks.TAG])  # what `manage.py worker` runs before rqworker
KoyraWorker._prune_here = lambda self: print("pruning", flush=True)  # the child, not here
worker = KoyraWorker(["deploys"], connection=Redis.from_url(settings.REDIS_URL))
worker._sweep()
print(json.dumps(sorted(m for m, mod in sys.modules.items() if mod is not None)))
"""
HEAVY = ("docker", "requests", "cryptography.fernet", "deployments.boundaries.engine")


def _test_database_url() -> str:
    """The test database, for a subprocess: SQLite's file, or PostgreSQL's test database on
    the server DATABASE_URL names (scripts/test.sh runs the suite on both)."""
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    return f"{os.environ['DATABASE_URL'].rsplit('/', 1)[0]}/{db['NAME']}"


@pytest.mark.django_db(transaction=True)
def test_the_worker_process_at_rest_holds_neither_the_docker_sdk_nor_cryptography():
    env = {
        **os.environ,
        "DATABASE_URL": _test_database_url(),
        "KOYRA_PRUNE_EVERY_HOURS": "24",  # due: no prune has run on this database
    }
    res = subprocess.run(
        [sys.executable, "-c", AT_REST], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    pruning, modules = res.stdout.splitlines()
    assert pruning == "pruning"  # the sweep really found the prune due and forked for it
    assert "deployments.services" in json.loads(modules)  # and really swept
    assert [m for m in json.loads(modules) if m in HEAVY] == []
