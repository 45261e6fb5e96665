"""Concurrent writers on the same rows, as PostgreSQL serves them: real threads, each with its
own database connection, on committed rows.

SQLite takes one lock for the whole database per write transaction, so two writers never
interleave there and these races cannot even start; they run on PostgreSQL only
(`scripts/test.sh` runs the unit suite a second time on a throwaway PostgreSQL server).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.test import Client

from deployments import logstream
from deployments import services as deploy_services
from deployments.models import Deploy
from deployments.transitions import transition
from deployments.webhooks import github
from deployments.webhooks.models import WebhookDelivery
from tests.factories import AppFactory, DeployFactory

Status = Deploy.Status

pytestmark = [
    pytest.mark.skipif(
        settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
        reason="SQLite serializes every writer with one database lock: no row-level race to "
        "show (scripts/test.sh runs these on PostgreSQL)",
    ),
    pytest.mark.django_db(transaction=True),
]

SHAS = [f"{i:x}" * 40 for i in range(1, 9)]


@pytest.fixture
def relayed(monkeypatch) -> list[dict]:
    sent: list[dict] = []
    monkeypatch.setattr(logstream, "_send", lambda deploy_id, message: sent.append(message))
    return sent


@pytest.fixture(autouse=True)
def _redis_is_down(settings):
    # The enqueue after commit fails at once and the deploy stays queued in the database.
    settings.RQ_QUEUES = {"deploys": {"URL": "redis://127.0.0.1:1/0", "DEFAULT_TIMEOUT": 60}}


def _at_once(n: int, work: Callable[[int], Any]) -> list[Any]:
    """`work(i)` in n threads released together; each thread has its own connection."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[i] = work(i)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a thread is stuck (a deadlock?)"
    assert not errors, errors
    return results


# --- status changes -------------------------------------------------------------------------


def test_a_status_change_waits_for_the_one_in_flight_then_refuses(relayed):
    """Live commits while a cancel (which read the deploy as still deploying) waits on the row:
    the cancel is refused, and the deploy stays live with no cancel reason."""
    deploy = DeployFactory(status=Status.DEPLOYING)
    moved: dict[str, bool] = {}
    live_holds_the_row, commit_live = threading.Event(), threading.Event()

    def go_live() -> None:
        try:
            with transaction.atomic():
                moved["live"] = transition(Deploy.objects.get(pk=deploy.pk), Status.LIVE)
                live_holds_the_row.set()
                commit_live.wait(10)
        finally:
            connection.close()

    def cancel(stale: Deploy) -> None:
        try:
            moved["cancel"] = transition(stale, Status.CANCELLED)
        finally:
            connection.close()

    stale = Deploy.objects.get(pk=deploy.pk)
    live = threading.Thread(target=go_live)
    live.start()
    assert live_holds_the_row.wait(10)
    canceller = threading.Thread(target=cancel, args=(stale,))
    canceller.start()
    canceller.join(timeout=0.5)
    assert canceller.is_alive(), "the cancel did not wait for the row the live change holds"
    commit_live.set()
    live.join(timeout=10)
    canceller.join(timeout=10)

    assert moved == {"live": True, "cancel": False}
    deploy.refresh_from_db()
    assert (deploy.status, deploy.error) == (Status.LIVE, "")
    assert stale.status == Status.LIVE  # the refused caller sees what won
    assert [m["status"] for m in relayed if m["type"] == "deploy.status"] == [Status.LIVE]


@pytest.mark.parametrize("start", [Status.QUEUED, Status.BUILDING, Status.DEPLOYING])
def test_of_racing_status_changes_exactly_one_wins(start, relayed):
    deploy = DeployFactory(status=start)
    moves = [
        (Status.LIVE, {}),
        (Status.CANCELLED, {}),
        (Status.FAILED, {"reason": "failed by thread 2"}),
        (Status.FAILED, {"reason": "failed by thread 3"}),
    ] * 2

    def move(i: int) -> bool:
        to, kwargs = moves[i]
        return transition(Deploy.objects.get(pk=deploy.pk), to, **kwargs)

    won = _at_once(len(moves), move)

    deploy.refresh_from_db()
    allowed = [i for i, (to, _) in enumerate(moves) if to != Status.LIVE or start != "queued"]
    assert won.count(True) == 1, won
    winner = won.index(True)
    assert winner in allowed  # a queued deploy never goes live without running
    to, kwargs = moves[winner]
    assert deploy.status == to
    if to == Status.FAILED:
        assert deploy.error == kwargs["reason"]
    assert [m["status"] for m in relayed if m["type"] == "deploy.status"] == [to]


# --- webhooks -------------------------------------------------------------------------------


def _push(app_name: str, *, delivery: str, sha: str) -> tuple[int, dict]:
    body = json.dumps(
        {
            "ref": "refs/heads/main",
            "before": "0" * 39 + "1",
            "after": sha,
            "repository": {"full_name": "acme/shop", "name": "shop"},
            "deleted": False,
            "head_commit": {"id": sha},
        }
    ).encode()
    resp = Client().post(
        f"/webhooks/github/{app_name}/",
        data=body,
        content_type="application/json",
        headers={
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": github.signature("webhook-secret", body),
        },
    )
    return resp.status_code, resp.json()


def test_one_delivery_posted_eight_times_at_once_queues_one_deploy():
    app = AppFactory(name="shop")
    delivery = str(uuid.uuid4())

    answers = _at_once(8, lambda i: _push("shop", delivery=delivery, sha=SHAS[0]))

    deploy = Deploy.objects.get(app=app)
    assert deploy.status == Status.QUEUED
    queued = [a for code, a in answers if code == 202]
    assert queued == [{"status": "queued", "deploy": deploy.pk}]
    assert sorted(a["status"] for code, a in answers if code != 202) == ["duplicate"] * 7
    assert WebhookDelivery.objects.filter(deploy=deploy).count() == 1


@pytest.mark.parametrize("trigger", ["manual", "redeploy", "rollback"])
def test_deploys_asked_for_at_once_leave_one_queued_and_supersede_the_rest(trigger):
    """A user's deploy supersedes the app's queued ones: eight created at once must not each
    miss the others' uncommitted rows and leave eight builds queued."""
    app = AppFactory(name="shop")

    _at_once(8, lambda i: deploy_services.deploy_create(app=app, commit=SHAS[i], trigger=trigger))

    statuses = sorted(Deploy.objects.filter(app=app).values_list("status", flat=True))
    assert statuses == [Status.QUEUED] + [Status.SUPERSEDED] * 7
