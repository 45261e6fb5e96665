"""WebhookDelivery's move from `deployments` to `webhooks` (webhooks 0001, deployments 0003).

Both migrations change the state only: the table stays, so every delivery recorded before
the move is still there after it, and after the move is undone.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from deployments.webhooks.models import WebhookDelivery
from tests.factories import AppFactory, DeployFactory

pytestmark = pytest.mark.django_db(transaction=True)

# The database as it was before the move.
BEFORE = [("deployments", "0002_prunerun"), ("webhooks", None)]
SHA = "c0ffee" + "0" * 34
RECEIVED = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)


def _migrate(targets):
    """Migrate to `targets` and return the models of that state."""
    return MigrationExecutor(connection).migrate(targets).apps


def _migrate_to_latest():
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.fixture
def at_latest_afterwards():
    """The tests that follow expect the latest schema, whatever this one did."""
    try:
        yield
    finally:
        _migrate_to_latest()


def _fields(delivery) -> dict:
    return {
        "id": delivery.id,
        "delivery_id": delivery.delivery_id,
        "app_id": delivery.app_id,
        "event": delivery.event,
        "commit": delivery.commit,
        "outcome": delivery.outcome,
        "reason": delivery.reason,
        "deploy_id": delivery.deploy_id,
        "received": delivery.received,
    }


def test_a_delivery_recorded_before_the_move_is_there_after_it(at_latest_afterwards):
    old = _migrate(BEFORE)
    app = old.get_model("apps", "App").objects.create(
        name="shop", repo_url="https://github.com/acme/shop.git", webhook_secret_token="t"
    )
    deploy = old.get_model("deployments", "Deploy").objects.create(
        app=app, commit=SHA, trigger="push"
    )
    OldDelivery = old.get_model("deployments", "WebhookDelivery")
    delivery = OldDelivery.objects.create(
        delivery_id="72d3162e-cc78-11e3-81ab-4c9367dc0958",
        app=app,
        event="push",
        commit=SHA,
        outcome="accepted",
        reason="push to refs/heads/main",
        deploy=deploy,
        received=RECEIVED,
    )
    before = _fields(delivery)

    _migrate_to_latest()

    (moved,) = WebhookDelivery.objects.all()
    assert _fields(moved) == before
    assert list(moved.app.deliveries.all()) == [moved]
    assert moved.deploy.commit == SHA


def test_undoing_the_move_keeps_every_delivery(at_latest_afterwards):
    deploy = DeployFactory(commit=SHA)
    delivery = WebhookDelivery.objects.create(
        delivery_id="d-1",
        app=deploy.app,
        event="workflow_run",
        commit=SHA,
        outcome=WebhookDelivery.IGNORED,
        reason="workflow run CI: concluded failure; only a success deploys",
        deploy=deploy,
        received=RECEIVED,
    )
    refused = WebhookDelivery.objects.create(
        app=AppFactory(), outcome=WebhookDelivery.REFUSED, reason="no usable X-GitHub-Delivery"
    )

    old = _migrate(BEFORE)

    rows = old.get_model("deployments", "WebhookDelivery").objects.order_by("id")
    assert [_fields(d) for d in rows] == [_fields(delivery), _fields(refused)]


def test_permissions_on_deliveries_follow_the_model(at_latest_afterwards):
    old = _migrate(BEFORE)
    ContentType = old.get_model("contenttypes", "ContentType")
    # As in a database made before the move: the content type is the `deployments` one.
    ContentType.objects.filter(model="webhookdelivery").delete()
    content_type = ContentType.objects.create(app_label="deployments", model="webhookdelivery")
    permission = old.get_model("auth", "Permission").objects.create(
        content_type=content_type, codename="view_webhookdelivery", name="Can view"
    )
    staff = old.get_model("auth", "User").objects.create(username="staff", is_staff=True)
    staff.user_permissions.add(permission)

    new = _migrate(
        [("deployments", "0003_move_webhookdelivery_to_webhooks"), ("webhooks", "0001_initial")]
    )

    moved = new.get_model("contenttypes", "ContentType").objects.get(pk=content_type.pk)
    assert (moved.app_label, moved.model) == ("webhooks", "webhookdelivery")
    granted = new.get_model("auth", "User").objects.get(pk=staff.pk).user_permissions
    assert list(granted.values_list("content_type__app_label", "codename")) == [
        ("webhooks", "view_webhookdelivery")
    ]


# --- webhooks 0002: a delivery id unique per deploy, not per row -----------------------------

BEFORE_0002 = [("webhooks", "0001_initial")]


def test_0002_keeps_every_delivery_and_lets_attempts_share_an_id(at_latest_afterwards):
    old = _migrate(BEFORE_0002)
    app = old.get_model("apps", "App").objects.create(
        name="shop", repo_url="https://github.com/acme/shop.git", webhook_secret_token="x"
    )
    Delivery = old.get_model("webhooks", "WebhookDelivery")
    Delivery.objects.create(app_id=app.pk, delivery_id="d-1", outcome="ignored", reason="tag")

    _migrate_to_latest()

    first = WebhookDelivery.objects.get(delivery_id="d-1")
    assert (first.outcome, first.reason) == ("ignored", "tag")
    WebhookDelivery.objects.create(app_id=app.pk, delivery_id="d-1", outcome="accepted")
    assert WebhookDelivery.objects.filter(delivery_id="d-1").count() == 2


def test_0002_backwards_keeps_the_id_on_the_accepted_attempt(at_latest_afterwards):
    _migrate_to_latest()
    app = AppFactory(name="shop")
    for outcome in ("ignored", "refused", "accepted", "ignored"):
        WebhookDelivery.objects.create(app=app, delivery_id="d-1", outcome=outcome)

    old = _migrate(BEFORE_0002)

    rows = old.get_model("webhooks", "WebhookDelivery").objects.order_by("id")
    assert [(r.outcome, r.delivery_id) for r in rows] == [
        ("ignored", None),
        ("refused", None),
        ("accepted", "d-1"),
        ("ignored", None),
    ]
