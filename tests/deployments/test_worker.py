"""The worker's view of Redis for the sweep, against a real Redis (scripts/test.sh starts
one): a job a dead worker took off the queue is not taken for one still waiting."""

from __future__ import annotations

import secrets

import pytest
from django.conf import settings
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue

from deployments import jobs
from deployments.worker import KoyraWorker


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
