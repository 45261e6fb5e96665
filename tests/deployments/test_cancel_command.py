"""`manage.py cancel NAME`: every queued and running deploy of the app; with --deploy N, deploy
#N alone (as the deploy page's Cancel)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from deployments.models import Deploy
from tests.factories import AppFactory, DeployFactory

pytestmark = pytest.mark.django_db
Status = Deploy.Status


def _cancel(*args: str) -> str:
    out = StringIO()
    call_command("cancel", *args, stdout=out)
    return out.getvalue().strip()


def _state(*deploys: Deploy) -> list[tuple[str, bool]]:
    rows = Deploy.objects.filter(pk__in=[d.pk for d in deploys]).order_by("pk")
    return [(d.status, d.cancel_requested) for d in rows]


def test_cancel_with_a_deploy_stops_that_one_alone():
    app = AppFactory(name="shop")
    running = DeployFactory(app=app, commit="8" * 40, status=Status.BUILDING)
    first = DeployFactory(app=app, commit="9" * 40)
    second = DeployFactory(app=app, commit="a" * 40)
    assert _cancel("shop", "--deploy", str(first.pk)) == f"cancelling deploy #{first.pk}"
    assert _state(running, first, second) == [
        ("building", False),
        ("cancelled", False),
        ("queued", False),
    ]
    assert _cancel("shop", "--deploy", str(running.pk)) == f"cancelling deploy #{running.pk}"
    assert _state(running, first, second) == [
        ("building", True),
        ("cancelled", False),
        ("queued", False),
    ]


@pytest.mark.parametrize("status", Deploy.FINISHED)
def test_cancel_of_a_finished_deploy_says_so_and_changes_nothing(status):
    app = AppFactory(name="shop")
    done = DeployFactory(app=app, commit="8" * 40, status=status)
    assert _cancel("shop", "--deploy", str(done.pk)) == (
        f"nothing to cancel: deploy #{done.pk} already finished ({status})"
    )
    assert _state(done) == [(status, False)]


def test_cancel_of_another_apps_deploy_or_an_unknown_one_is_refused_by_name():
    AppFactory(name="shop")
    theirs = DeployFactory(app=AppFactory(name="blog"), commit="7" * 40)
    for pk in (theirs.pk, 999999, -1, 2**70):
        with pytest.raises(CommandError) as exc:
            _cancel("shop", "--deploy", str(pk))
        assert str(exc.value) == f"shop has no deploy #{pk}. List them with: list_deploys shop"
    assert _state(theirs) == [("queued", False)]


@pytest.mark.parametrize("value", ["", "abc", "1.5", "#3", "0x10"])
def test_cancel_with_a_deploy_that_is_no_number_is_refused(value):
    queued = DeployFactory(app=AppFactory(name="shop"))
    with pytest.raises(CommandError, match="--deploy: invalid int value"):
        _cancel("shop", "--deploy", value)
    assert _state(queued) == [("queued", False)]


def test_cancel_without_a_deploy_stops_every_pending_one():
    app = AppFactory(name="shop")
    running = DeployFactory(app=app, commit="8" * 40, status=Status.PUSHING)
    queued = DeployFactory(app=app, commit="9" * 40)
    assert _cancel("shop") == f"cancelling deploy #{running.pk}"
    assert _state(running, queued) == [("pushing", True), ("cancelled", False)]
    assert _cancel("shop") == f"cancelling deploy #{running.pk}"  # still running
    Deploy.objects.filter(pk=running.pk).update(status=Status.CANCELLED)
    assert _cancel("shop") == "nothing to cancel: no queued or running deploy"


def test_a_deploy_the_worker_starts_just_before_the_cancel_writes_is_asked_to_stop():
    """The worker moves queued -> building between the cancel's look at the row and its write:
    the build must be asked to stop (it stops at its next step), not the row marked cancelled
    while its clone still runs. The worker's move is made just before the cancel's first
    UPDATE reaches the database."""
    from deployments import services

    queued = DeployFactory(app=AppFactory(name="shop"), commit="9" * 40)
    started = []

    def the_worker_starts_it_first(execute, sql, params, many, context):
        if not started and sql.lstrip().upper().startswith("UPDATE"):
            started.append(0)  # before its own UPDATE, which comes through here too
            started[0] = Deploy.objects.filter(pk=queued.pk, status__in=Deploy.PENDING).update(
                status=Status.BUILDING
            )
        return execute(sql, params, many, context)

    with connection.execute_wrapper(the_worker_starts_it_first):
        assert services.deploy_cancel_one(deploy=queued) is True
    assert started == [1]
    assert _state(queued) == [(Status.BUILDING, True)]


@pytest.mark.parametrize("status", [Status.BUILDING, Status.PUSHING, Status.DEPLOYING])
def test_a_cancel_of_a_running_deploy_read_while_it_was_queued_asks_it_to_stop(status):
    app = AppFactory(name="shop")
    stale = DeployFactory(app=app, commit="9" * 40)  # read while queued
    Deploy.objects.filter(pk=stale.pk).update(status=status)
    from deployments import services

    assert services.deploy_cancel_one(deploy=stale) is True
    assert _state(stale) == [(status, True)]
