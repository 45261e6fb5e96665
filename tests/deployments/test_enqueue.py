"""Handing a queued deploy to the worker when Redis cannot be reached: the row stays queued
for the sweep, and for a few seconds nobody pays the connect timeout again."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from deployments import services
from deployments.models import Deploy
from tests.factories import DeployFactory

Status = Deploy.Status


class _Queue:
    def __init__(self, error: Exception | None) -> None:
        self.error = error
        self.calls: list[int] = []

    def enqueue_many(self, job_datas):
        self.calls.extend(data.args[0] for data in job_datas)
        if self.error is not None:
            raise self.error


@pytest.fixture
def world(monkeypatch, settings):
    settings.RQ_QUEUES = {"deploys": {"URL": "redis://10.255.255.1:6379/0", "DEFAULT_TIMEOUT": 1}}
    now = [100.0]
    monkeypatch.setattr(services, "time", SimpleNamespace(monotonic=lambda: now[0]))
    monkeypatch.setattr(services, "_redis_down_until", {})
    queue = _Queue(RedisTimeoutError("Timeout connecting to server"))
    monkeypatch.setattr(services, "_deploy_queue", lambda: queue)
    return queue, now


def _queued():
    return DeployFactory(status=Status.QUEUED, enqueued=None)


@pytest.mark.django_db
@pytest.mark.parametrize("error", [RedisTimeoutError("t"), RedisConnectionError("refused")])
def test_after_redis_could_not_be_reached_it_is_not_tried_again_for_a_while(world, error):
    queue, now = world
    queue.error = error
    first, second, third = _queued(), _queued(), _queued()
    assert services.deploy_enqueue(deploy_id=first.pk) is False
    now[0] += services.REDIS_RETRY_SECONDS - 0.5
    assert services.deploy_enqueue(deploy_id=second.pk) is False
    assert queue.calls == [first.pk]  # the second did not wait for a connect timeout
    for d in (first, second):  # both left to the sweep, claimable again
        d.refresh_from_db()
        assert d.status == Status.QUEUED and d.enqueued is None
    now[0] += 1
    queue.error = None  # Redis answers again
    assert services.deploy_enqueue(deploy_id=third.pk) is True
    assert queue.calls == [first.pk, third.pk]
    third.refresh_from_db()
    assert third.enqueued is not None


@pytest.mark.django_db
def test_an_error_redis_answered_with_does_not_hold_the_next_deploys_back(world):
    queue, _ = world
    queue.error = ResponseError("OOM command not allowed")
    a, b = _queued(), _queued()
    assert services.deploy_enqueue(deploy_id=a.pk) is False
    assert services.deploy_enqueue(deploy_id=b.pk) is False
    assert queue.calls == [a.pk, b.pk]


@pytest.mark.django_db
def test_the_memory_is_per_redis_configuration(world, settings):
    queue, _ = world
    assert services.deploy_enqueue(deploy_id=_queued().pk) is False
    settings.RQ_QUEUES = {"deploys": {"URL": "redis://127.0.0.1:6379/3", "DEFAULT_TIMEOUT": 1}}
    queue.error = None
    other = _queued()
    assert services.deploy_enqueue(deploy_id=other.pk) is True
    assert queue.calls[-1] == other.pk


@pytest.mark.django_db
def test_only_queued_deploys_nobody_handed_over_yet_are_enqueued_in_one_go(world):
    from django.utils import timezone

    queue, _ = world
    queue.error = None
    fresh, other = _queued(), _queued()
    taken = DeployFactory(status=Status.QUEUED, enqueued=timezone.now())  # the sweep's
    gone = DeployFactory(status=Status.CANCELLED, enqueued=None)
    ids = [fresh.pk, taken.pk, gone.pk, other.pk]
    assert services.deploy_enqueue_many(deploy_ids=ids) == {fresh.pk, other.pk}
    assert queue.calls == [fresh.pk, other.pk]  # one call, in their order
    assert services.deploy_enqueue_many(deploy_ids=ids) == set()  # claimed once only
    assert queue.calls == [fresh.pk, other.pk]


@pytest.mark.django_db
def test_deploys_made_together_are_webhook_deploys_of_valid_commits():
    from django.core.exceptions import ValidationError

    from tests.factories import AppFactory

    app = AppFactory()
    with pytest.raises(ValueError, match="manual"):
        services.deploy_create_many(commits=[(app, "a" * 40)], trigger="manual")
    with pytest.raises(ValidationError):
        services.deploy_create_many(commits=[(app, "a" * 40), (app, "not-a-sha")], trigger="push")
    assert not Deploy.objects.exists()  # nothing half made
    made = services.deploy_create_many(commits=[(app, "a" * 40), (app, "b" * 40)], trigger="push")
    assert [(d.commit, d.trigger, d.status) for d in made] == [
        ("a" * 40, "push", Status.QUEUED),
        ("b" * 40, "push", Status.QUEUED),
    ]
    assert all(d.pk for d in made)


@pytest.mark.django_db(transaction=True)
def test_inside_enqueue_after_committed_deploys_are_handed_over_together_at_the_end(monkeypatch):
    """Every deploy committed in the block, from deploy_create_many and deploy_create alike, in
    one enqueue when it ends; a transaction rolled back hands nothing over; outside a block a
    deploy is handed over at its commit, as before."""
    from django.db import transaction

    from tests.factories import AppFactory

    calls: list[list[int]] = []

    def handed_over(*, deploy_ids):
        calls.append(list(deploy_ids))
        return set(deploy_ids)

    monkeypatch.setattr(services, "deploy_enqueue_many", handed_over)
    app, other = AppFactory(), AppFactory()
    with services.enqueue_after():
        made = services.deploy_create_many(
            commits=[(app, "a" * 40), (other, "b" * 40)], trigger="push"
        )
        with pytest.raises(RuntimeError), transaction.atomic():
            services.deploy_create_many(commits=[(app, "c" * 40)], trigger="push")
            raise RuntimeError("the batch broke down")
        single = services.deploy_create(app=other, trigger="push")
        assert calls == []  # nothing yet: the answers go first
    assert calls == [[made[0].pk, made[1].pk, single.pk]]
    later = services.deploy_create(app=app, trigger="push")
    assert calls[1:] == [[later.pk]]


@pytest.mark.django_db(transaction=True)
def test_what_enqueue_after_could_not_hand_over_stays_queued_for_the_sweep(world):
    queue, _now = world  # Redis does not answer
    from tests.factories import AppFactory

    with services.enqueue_after():
        (made,) = services.deploy_create_many(commits=[(AppFactory(), "a" * 40)], trigger="push")
    assert queue.calls == [made.pk]
    made.refresh_from_db()
    assert made.status == Status.QUEUED and made.enqueued is None


@pytest.mark.django_db(transaction=True)
def test_a_nested_enqueue_after_hands_over_its_own_and_leaves_the_outer_one_whole(monkeypatch):
    from tests.factories import AppFactory

    calls: list[list[int]] = []

    def handed_over(*, deploy_ids):
        calls.append(list(deploy_ids))
        return set(deploy_ids)

    monkeypatch.setattr(services, "deploy_enqueue_many", handed_over)
    app = AppFactory()
    with services.enqueue_after():
        (first,) = services.deploy_create_many(commits=[(app, "a" * 40)], trigger="push")
        with services.enqueue_after():
            (inner,) = services.deploy_create_many(commits=[(app, "b" * 40)], trigger="push")
        assert calls == [[inner.pk]]
        (last,) = services.deploy_create_many(commits=[(app, "c" * 40)], trigger="push")
    assert calls == [[inner.pk], [first.pk, last.pk]]
