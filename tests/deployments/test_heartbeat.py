"""A deploy some process is running is left alone by the sweep; one nobody runs is not."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from deployments import heartbeat, services
from deployments.models import Deploy
from tests.factories import DeployFactory

Status = Deploy.Status


def _sweep(monkeypatch) -> tuple[dict[str, int], list[int]]:
    enqueued: list[int] = []

    def enqueue(*, deploy_id: int) -> bool:
        enqueued.append(deploy_id)
        return True

    monkeypatch.setattr(services, "deploy_enqueue", enqueue)
    done = services.deploy_sweep(job_exists=lambda pk: False, running_elsewhere=lambda pk: False)
    return done, enqueued


@pytest.mark.django_db
@pytest.mark.parametrize("status", Deploy.ACTIVE)
def test_the_sweep_leaves_a_running_deploy_with_a_fresh_heartbeat(monkeypatch, status):
    now = timezone.now()
    alive = DeployFactory.create(status=status, heartbeat=now - timedelta(seconds=3))
    dead = DeployFactory.create(status=status, heartbeat=now - heartbeat.STALE_AFTER * 2)
    never = DeployFactory.create(status=status, heartbeat=None)
    done, _ = _sweep(monkeypatch)
    assert done["failed"] == 2
    statuses = {d.pk: Deploy.objects.get(pk=d.pk).status for d in (alive, dead, never)}
    assert statuses == {alive.pk: status, dead.pk: Status.FAILED, never.pk: Status.FAILED}


@pytest.mark.django_db
def test_the_sweep_does_not_queue_again_a_deploy_a_process_just_took(monkeypatch):
    taken = DeployFactory.create(status=Status.QUEUED, heartbeat=timezone.now())
    lost = DeployFactory.create(status=Status.QUEUED, heartbeat=None)
    _, enqueued = _sweep(monkeypatch)
    assert enqueued == [lost.pk]
    assert taken.pk not in enqueued


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_stamps_now_and_then_while_the_block_runs():
    d = DeployFactory.create(status=Status.QUEUED)
    with heartbeat.Heartbeat(d.pk, every=0.2):
        first = Deploy.objects.get(pk=d.pk).heartbeat
        assert first is not None  # stamped before anything else happens
        Deploy.objects.filter(pk=d.pk).update(status=Status.BUILDING)
        deadline = time.monotonic() + 10
        while Deploy.objects.get(pk=d.pk).heartbeat == first:
            assert time.monotonic() < deadline, "no second beat"
            time.sleep(0.05)
    last = Deploy.objects.get(pk=d.pk).heartbeat
    time.sleep(0.5)
    assert Deploy.objects.get(pk=d.pk).heartbeat == last  # the thread stopped with the block


@pytest.mark.django_db(transaction=True)
def test_a_finished_deploy_is_not_stamped():
    d = DeployFactory.create(status=Status.LIVE)
    heartbeat.beat(d.pk)
    assert Deploy.objects.get(pk=d.pk).heartbeat is None
