"""What accepted pushes cost the database: benchmarks/webhook_intake.py measures it at 200 a
second; this keeps the count from creeping back (issue 16)."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from deployments.models import Deploy
from deployments.webhooks import intake
from deployments.webhooks.models import WebhookDelivery
from tests.deployments.webhooks import payloads as gh
from tests.factories import AppFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _redis_is_down(settings):
    settings.RQ_QUEUES = {"deploys": {"URL": "redis://127.0.0.1:1/0", "DEFAULT_TIMEOUT": 60}}


def _request(name: str, *, secret: str = gh.SECRET) -> intake.Request:
    body = gh.encode(gh.push(sha=uuid.uuid4().hex + uuid.uuid4().hex[:8]), gh.JSON)
    headers = {
        "content-type": gh.JSON,
        "x-github-event": "push",
        "x-github-delivery": str(uuid.uuid4()),
        "x-hub-signature-256": gh.github.signature(secret, body),
    }
    return intake.Request(name, headers, body, "127.0.0.1")


def test_an_accepted_push_is_recorded_with_its_deploy_in_one_insert_each(client):
    app = AppFactory(name="octo", repo_url=gh.REPO_URL)
    with CaptureQueriesContext(connection) as queries:
        assert gh.deliver(client, "octo", gh.push()).status_code == 202
    sql = [q["sql"] for q in queries.captured_queries]
    delivery = WebhookDelivery.objects.get(app=app)
    assert delivery.deploy == Deploy.objects.get(app=app)
    # The delivery row is written once, already pointing at its deploy; no look for an
    # accepted original (the unique index on accepted ids catches a redelivery).
    assert [s for s in sql if "webhookdelivery" in s] == [
        s for s in sql if s.startswith('INSERT INTO "deployments_webhookdelivery"')
    ]
    assert len([s for s in sql if s.startswith('INSERT INTO "deployments_deploy"')]) == 1
    row_lock = 1 if connection.features.has_select_for_update else 0  # not on SQLite
    assert len(sql) <= 7 + row_lock, "\n".join(sql)


def test_a_burst_costs_the_statements_of_one_delivery():
    apps = [AppFactory(name=f"octo{i}", repo_url=gh.REPO_URL) for i in range(3)]
    with CaptureQueriesContext(connection) as one:
        assert intake.answer_all([_request("octo0")])[0].status == 202
    burst = [_request(f"octo{i % 3}") for i in range(30)]
    with CaptureQueriesContext(connection) as many:
        answers = intake.answer_all(burst)
    assert [a.status for a in answers] == [202] * 30
    assert len(many.captured_queries) == len(one.captured_queries)
    # Each delivery its own deploy, in the order they came, answered with its id.
    for request, answer in zip(burst, answers, strict=True):
        delivery = WebhookDelivery.objects.get(delivery_id=request.headers["x-github-delivery"])
        assert answer.data == {"status": "queued", "deploy": delivery.deploy_id}
        assert delivery.deploy.app == delivery.app == apps[int(request.name[-1])]
        assert delivery.deploy.commit == delivery.commit
        assert delivery.deploy.status == Deploy.Status.QUEUED
