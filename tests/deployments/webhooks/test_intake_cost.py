"""What one accepted push costs the database: benchmarks/webhook_intake.py measures it at
200 a second; this keeps the count from creeping back (issue 16)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from deployments.models import Deploy
from deployments.webhooks.models import WebhookDelivery
from tests.deployments.webhooks import payloads as gh
from tests.factories import AppFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _redis_is_down(settings):
    settings.RQ_QUEUES = {"deploys": {"URL": "redis://127.0.0.1:1/0", "DEFAULT_TIMEOUT": 60}}


def test_an_accepted_push_is_recorded_with_its_deploy_in_one_insert_each(client):
    app = AppFactory(name="octo", repo_url=gh.REPO_URL)
    with CaptureQueriesContext(connection) as queries:
        assert gh.deliver(client, "octo", gh.push()).status_code == 202
    sql = [q["sql"] for q in queries.captured_queries]
    delivery = WebhookDelivery.objects.get(app=app)
    assert delivery.deploy == Deploy.objects.get(app=app)
    # The delivery row is written once, already pointing at its deploy; one look for an
    # accepted original (under the app's lock), not two.
    assert [s for s in sql if "webhookdelivery" in s and not s.startswith("SELECT")] == [
        s for s in sql if s.startswith('INSERT INTO "deployments_webhookdelivery"')
    ]
    assert len([s for s in sql if s.startswith("SELECT") and "webhookdelivery" in s]) == 1
    assert len(sql) <= 12, "\n".join(sql)
